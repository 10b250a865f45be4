/*
 * compact.c: space accounting and compaction of collections.
 *
 * Compaction rebuilds a collection in place, in one write transaction: every page
 * array of the collection is freed and its header reset to a new collection's
 * (schema kept, so the catalog entry and the header page stay where they are), then
 * (once the caller has put the free list in page order, so the new layout takes the
 * lowest pages and leaves the file's tail free) the live records are upserted again,
 * in slot order, from a read snapshot of the same commit the transaction began from. That snapshot
 * is what makes this safe and simple: its pages are immutable, so the records can be streamed from
 * the old layout while the transaction reuses the old pages for the new one. Upserting again builds
 * the HNSW graph from the live vectors alone, exactly as a new database would.
 *
 * A failure or a cancel leaves the transaction for the caller to abort: nothing is
 * committed, and the snapshot is unchanged.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collection/collection.h"
#include "collection/results.h"

static const unsigned PA_ARRAYS[] = {
    SX__H_PA_VEC, SX__H_PA_SLOTS, SX__H_PA_HEAP,  SX__H_PA_HASH,  SX__H_PA_FREE,   SX__H_PA_LIVE,
    SX__H_PA_G0,  SX__H_PA_META,  SX__H_PA_UPPER, SX__H_PA_NORMS, SX__H_PA_STAMPS, SX__H_PA_CODES};
/* The arrays with one entry per slot (their dead share is reclaimable). */
static const unsigned PA_PER_SLOT[] = {SX__H_PA_VEC,    SX__H_PA_SLOTS, SX__H_PA_G0,
                                       SX__H_PA_META,   SX__H_PA_UPPER, SX__H_PA_NORMS,
                                       SX__H_PA_STAMPS, SX__H_PA_CODES};

/* Live slots of the collection whose header is h, ascending, into *out (malloc'd). */
static int live_slots(const sx__coll *c, const uint8_t *h, uint32_t **out, uint64_t *n,
                      sx_error *err) {
  *out = NULL;
  *n = 0;
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS), count = sx__rd64(h + SX__H_COUNT);
  if (nslots > 0xfffffffeu || count > nslots)
    return sx__err_set(err, SX_CORRUPT,
                       "collection '%s' header is damaged: %llu live in %llu slots", c->name,
                       (unsigned long long)count, (unsigned long long)nslots);
  uint32_t *s = sx__mallocn(count, sizeof *s);
  uint8_t *bits = sx__mallocn(nslots / 8 + 1, 1);
  int rc = s && bits ? SX_OK
                     : sx__err_set(err, SX_NOMEM, "out of memory for %llu slots",
                                   (unsigned long long)nslots);
  sx__pa_cursor lc;
  sx__pa_cursor_init(&lc, &c->v, h + SX__H_PA_LIVE);
  if (!rc && nslots) rc = sx__pa_read(&lc, 0, bits, (nslots + 7) / 8, err);
  uint64_t k = 0;
  for (uint64_t i = 0; i < nslots && !rc; i++) {
    if (!(bits[i >> 3] >> (i & 7) & 1)) continue;
    if (k == count)
      rc = sx__err_set(err, SX_CORRUPT, "collection '%s' has more live slots than its count %llu",
                       c->name, (unsigned long long)count);
    else
      s[k++] = (uint32_t)i;
  }
  free(bits);
  if (rc) {
    free(s);
    return rc;
  }
  *out = s;
  *n = k;
  return SX_OK;
}

int sx__coll_space(const sx__coll *c, sx__space *out, sx_error *err) {
  memset(out, 0, sizeof *out);
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint32_t ps = sx__pager_page_size(c->v.p);
  uint64_t pages = 1, slot_pages = 0; /* the header page */
  for (size_t i = 0; i < sizeof PA_ARRAYS / sizeof PA_ARRAYS[0] && !rc; i++) {
    uint64_t n;
    rc = sx__pa_pages(&c->v, h + PA_ARRAYS[i], &n, err);
    pages += n;
    for (size_t j = 0; j < sizeof PA_PER_SLOT / sizeof PA_PER_SLOT[0]; j++)
      if (PA_PER_SLOT[j] == PA_ARRAYS[i]) slot_pages += n;
  }
  uint32_t *slots = NULL;
  uint64_t n = 0, heap_live = 0;
  if (!rc) rc = live_slots(c, h, &slots, &n, err);
  for (uint64_t i = 0; i < n && !rc; i++) {
    sx__slotrec r;
    rc = sx__slot_read(c, h, slots[i], &r, err);
    heap_live += r.id_len + (r.meta_len != SX__NO_META ? r.meta_len : 0);
  }
  free(slots);
  if (rc) return rc;
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS), heaplen = sx__rd64(h + SX__H_HEAPLEN);
  out->pages = pages;
  out->live_bytes = n * c->dim * 4 + heap_live;
  out->reclaimable_bytes = (heaplen > heap_live ? heaplen - heap_live : 0) +
                           (nslots ? slot_pages * ps * (nslots - n) / nslots : 0);
  return SX_OK;
}

int sx__coll_compact_reset(sx__coll *c, sx_error *err) {
  int rc = SX_OK;
  for (size_t i = 0; i < sizeof PA_ARRAYS / sizeof PA_ARRAYS[0] && !rc; i++)
    rc = sx__pa_free(c->v.t, c->hdr, PA_ARRAYS[i], err);
  uint8_t *h;
  if (!rc) rc = sx__txn_write(c->v.t, c->hdr, &h, err);
  if (rc) return rc;
  /* A new header is zero but for the magic, the schema and the name. */
  memset(h + SX__H_COUNT, 0, SX__H_NAME - SX__H_COUNT);
  uint32_t quant = sx__rd32(h + SX__H_QUANT); /* schema */
  memset(h + SX__H_HNSW_EP, 0, sx__pager_page_size(c->v.p) - SX__H_HNSW_EP);
  sx__wr32(h + SX__H_QUANT, quant);
  return SX_OK;
}

int sx__coll_compact_fill(const sx__coll *src, sx__coll *dst, int nthreads, const sx_cancel *cancel,
                          void (*step)(void *ctx, uint64_t n), void *ctx, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(src, &h, err);
  uint32_t *slots = NULL;
  uint64_t n = 0;
  if (!rc) rc = live_slots(src, h, &slots, &n, err);
  enum { BATCH = 1024 };
  size_t dim = src->dim;
  float *vecs = malloc(BATCH * dim * sizeof *vecs);
  const char **ids = malloc(BATCH * sizeof *ids), **metas = malloc(BATCH * sizeof *metas);
  size_t *offs = malloc(BATCH * sizeof *offs);
  char **mtext = calloc(BATCH, sizeof *mtext);
  if (!rc && (!vecs || !ids || !metas || !offs || !mtext))
    rc = sx__err_set(err, SX_NOMEM, "out of memory");
  sx__pa_cursor vc, hc;
  sx__pa_cursor_init(&vc, &src->v, h + SX__H_PA_VEC);
  sx__pa_cursor_init(&hc, &src->v, h + SX__H_PA_HEAP);
  for (uint64_t at = 0; at < n && !rc; at += BATCH) {
    if (sx__cancelled(cancel)) {
      rc = sx__err_set(err, SX_CANCELLED, "compaction was cancelled");
      break;
    }
    size_t m = n - at < BATCH ? (size_t)(n - at) : BATCH;
    char *blob = NULL;
    rc = sx__slot_ids(src, h, slots + at, m, &blob, offs, err);
    for (size_t i = 0; i < m && !rc; i++) {
      sx__slotrec r;
      ids[i] = blob + offs[i];
      metas[i] = NULL;
      rc = sx__slot_read(src, h, slots[at + i], &r, err);
      if (!rc) rc = sx__slot_valid(src, h, slots[at + i], &r, err);
      if (!rc)
        rc = sx__pa_read(&vc, (uint64_t)slots[at + i] * dim * 4, vecs + i * dim, dim * 4, err);
      for (size_t j = 0; !rc && j < dim; j++) /* upsert would blame the caller */
        if (!isfinite(vecs[i * dim + j]))
          rc = sx__err_set(err, SX_CORRUPT, "vector of slot %u of '%s' has a non-finite component",
                           slots[at + i], src->name);
      if (!rc && r.meta_len != SX__NO_META) {
        mtext[i] = sx__mallocn((uint64_t)r.meta_len + 1, 1);
        if (!mtext[i]) {
          rc = sx__err_set(err, SX_NOMEM, "out of memory");
          break;
        }
        rc = sx__pa_read(&hc, r.meta_off, mtext[i], r.meta_len, err);
        mtext[i][r.meta_len] = 0;
        metas[i] = mtext[i];
      }
    }
    if (!rc) rc = sx__coll_upsert(dst, m, ids, vecs, dim, metas, nthreads, err);
    for (size_t i = 0; i < m; i++) {
      free(mtext[i]);
      mtext[i] = NULL;
    }
    free(blob);
    if (!rc && step) step(ctx, m);
  }
  free(vecs);
  free(ids);
  free(metas);
  free(offs);
  free(mtext);
  free(slots);
  return rc;
}
