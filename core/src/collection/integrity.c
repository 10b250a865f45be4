/*
 * integrity.c: sx__coll_check_all, the collection half of sx_db_check. For every
 * collection it walks every slot and proves the invariants records.c keeps: each live
 * slot's id maps back to it, the counters agree with the live bitmap, free slots are
 * in range, dead and listed once; then the HNSW graph checks itself (index layer).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collection/collection.h"
#include "collection/results.h"

/* Marks the pages of collection c (its header and every array) in used. */
static int mark_pages(const sx__coll *c, const uint8_t *h, uint8_t *used, sx_error *err) {
  char what[96];
  snprintf(what, sizeof what, "collection '%s'", c->name);
  int rc = sx__page_mark(&c->v, c->hdr, used, what, err);
  for (size_t i = 0; i < SX__COLL_NPA && !rc; i++)
    rc = sx__pa_mark(&c->v, h + sx__coll_pa_all[i], used, err);
  return rc;
}

/* Every leaf of the array at pa holding bytes [0, n) exists (the arrays indexed by
 * slot, the heap, the id map and the free stack are written densely). */
static int covers(const sx__coll *c, const uint8_t *h, unsigned pa, uint64_t n, const char *what,
                  sx_error *err) {
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + pa);
  for (uint64_t leaf = 0; leaf * cur.ps < n; leaf++) {
    const uint8_t *lp;
    int rc = sx__pa_leaf(&cur, leaf, &lp, err);
    if (rc)
      return sx__err_set(err, SX_CORRUPT, "%s of collection '%s' (%llu bytes) lacks page %llu: %s",
                         what, c->name, (unsigned long long)n, (unsigned long long)leaf,
                         err ? err->message : "");
  }
  return SX_OK;
}

static int check_one(const sx__pv *v, const char *name, uint8_t *used, sx_error *err) {
  sx__coll c;
  int rc = sx__coll_open(v, name, &c, err);
  if (rc)
    return rc == SX_NOT_FOUND ? sx__err_set(err, SX_CORRUPT, "catalog entry '%s' is damaged", name)
                              : rc;
  const uint8_t *h;
  rc = sx__coll_header(&c, &h, err);
  if (!rc && used) rc = mark_pages(&c, h, used, err);
  if (rc) return rc;
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS), count = sx__rd64(h + SX__H_COUNT), live = 0;
  uint64_t nfree = sx__rd64(h + SX__H_NFREE);
  rc = covers(&c, h, SX__H_PA_VEC, nslots * c.dim * 4, "the vectors", err);
  if (!rc) rc = covers(&c, h, SX__H_PA_SLOTS, nslots * SX__SLOT_SIZE, "the slot records", err);
  if (!rc) rc = covers(&c, h, SX__H_PA_LIVE, (nslots + 7) / 8, "the live bitmap", err);
  if (!rc) rc = covers(&c, h, SX__H_PA_HEAP, sx__rd64(h + SX__H_HEAPLEN), "the heap", err);
  if (!rc) rc = covers(&c, h, SX__H_PA_HASH, sx__rd64(h + SX__H_HASHCAP) * 8, "the id map", err);
  if (!rc) rc = covers(&c, h, SX__H_PA_FREE, nfree * 4, "the free-slot stack", err);
  if (rc) return rc;
  char buf[SX_ID_MAX + 1];
  sx__pa_cursor lc, vc;
  sx__pa_cursor_init(&lc, v, h + SX__H_PA_LIVE);
  sx__pa_cursor_init(&vc, v, h + SX__H_PA_VEC);
  float *vec = sx__mallocn(c.dim, sizeof *vec);
  if (!vec) return sx__err_set(err, SX_NOMEM, "out of memory");
  for (uint64_t s = 0; s < nslots && !rc; s++) {
    uint8_t b;
    rc = sx__pa_read(&lc, s / 8, &b, 1, err);
    if (rc || !(b & (1u << (s % 8)))) continue;
    live++;
    size_t len;
    sx__slotrec r;
    rc = sx__slot_read(&c, h, s, &r, err);
    if (!rc) rc = sx__slot_valid(&c, h, s, &r, err);
    if (!rc) rc = sx__slot_id(&c, h, s, buf, &len, err);
    uint64_t slot = UINT64_MAX, pos;
    if (!rc) rc = sx__id_lookup(&c, h, buf, len, &slot, &pos, err);
    if (!rc && slot != s)
      rc = sx__err_set(err, SX_CORRUPT, "id '%s' of slot %llu in '%s' maps to slot %lld", buf,
                       (unsigned long long)s, name, slot == UINT64_MAX ? -1LL : (long long)slot);
    /* Every stored vector was finite when written (upserts refuse the others). */
    if (!rc) rc = sx__pa_read(&vc, s * c.dim * 4, vec, c.dim * 4, err);
    for (uint32_t j = 0; !rc && j < c.dim; j++)
      if (!isfinite(vec[j]))
        rc = sx__err_set(err, SX_CORRUPT,
                         "vector of slot %llu in '%s' has a non-finite component at %u",
                         (unsigned long long)s, name, j);
  }
  free(vec);
  if (rc) return rc;
  int hnsw = c.index == SX_INDEX_HNSW;
  if (live != count || (!hnsw && live + nfree != nslots) || (hnsw && live + nfree > nslots) ||
      sx__rd64(h + SX__H_HASHUSED) != live)
    return sx__err_set(
        err, SX_CORRUPT,
        "collection '%s' counts disagree: count %llu, live %llu, free %llu, slots %llu, "
        "ids %llu",
        name, (unsigned long long)count, (unsigned long long)live, (unsigned long long)nfree,
        (unsigned long long)nslots, (unsigned long long)sx__rd64(h + SX__H_HASHUSED));
  /* Free slots: in range, not live, each once. */
  uint8_t *freebits = sx__callocn(nslots / 8 + 1, 1);
  if (!freebits) return sx__err_set(err, SX_NOMEM, "out of memory");
  sx__pa_cursor fc;
  sx__pa_cursor_init(&fc, v, h + SX__H_PA_FREE);
  for (uint64_t i = 0; i < nfree && !rc; i++) {
    uint32_t s;
    uint8_t b = 0;
    rc = sx__pa_read(&fc, i * 4, &s, 4, err);
    if (!rc && s < nslots) rc = sx__pa_read(&lc, s / 8, &b, 1, err);
    if (rc) break;
    if (s >= nslots || (b >> (s % 8) & 1) || (freebits[s / 8] >> (s % 8) & 1))
      rc = sx__err_set(err, SX_CORRUPT, "free slot %u of '%s' is past the end, live or freed twice",
                       s, name);
    else
      freebits[s / 8] |= (uint8_t)(1u << (s % 8));
  }
  if (!rc && hnsw) {
    sx__hnsw_layout lay;
    sx__coll_hnsw_layout(c.hdr, &lay);
    sx__hnsw *g;
    rc = sx__hnsw_open(v, &lay, c.dim, c.metric, c.m, c.efc, &g, err);
    if (!rc) rc = sx__hnsw_check(g, freebits, err);
    sx__hnsw_close(g);
  }
  free(freebits);
  return rc;
}

int sx__coll_check_all(const sx__pv *v, uint8_t *used, sx_error *err) {
  sx_names *names;
  int rc = used ? sx__coll_mark_catalog(v, used, err) : SX_OK;
  if (!rc) rc = sx__coll_list(v, &names, err);
  if (rc) return rc;
  for (size_t i = 0; i < names->n && !rc; i++) {
    if (i > 0 && strcmp(names->names[i - 1], names->names[i]) == 0)
      rc = sx__err_set(err, SX_CORRUPT, "the catalog names collection '%s' twice", names->names[i]);
    else
      rc = check_one(v, names->names[i], used, err);
  }
  sx__names_free(names);
  return rc;
}
