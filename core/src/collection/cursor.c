/*
 * cursor.c: reading many records at once, for batch gets and cursors.
 *
 * A cursor walks a collection in ascending bytewise id order. Slot order would be
 * cheaper but is not stable: an HNSW upsert moves an id to a fresh slot and freed
 * slots are reused, so "resume after id X" in a later session could skip or repeat
 * records. Id order makes resuming exact across sessions. The cost is the sorted id
 * list, built once when the cursor opens (ids only; vectors and metadata are read
 * batch by batch by looking each id up again, which also makes a cursor on a write
 * session see deletes and updates made after it opened).
 *
 * Everything read from pages is bounds-checked: a slot record's metadata must lie in
 * the heap, live slots may not outnumber the header's count.
 */
#include <stdlib.h>
#include <string.h>

#include "collection/collection.h"
#include "collection/results.h"

void sx__records_free(sx_records *r) {
  if (!r) return;
  free(r->vec);
  free(r->found);
  free(r->ids);
  free(r->id_off);
  free(r->meta);
  free(r->meta_off);
  free(r);
}

/* A growable byte buffer. */
typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static int buf_reserve(buf *b, size_t more, sx_error *err) {
  if (b->len + more <= b->cap) return SX_OK;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < b->len + more) nc *= 2;
  char *np = realloc(b->p, nc);
  if (!np) return sx__err_set(err, SX_NOMEM, "out of memory for %zu bytes of records", nc);
  b->p = np;
  b->cap = nc;
  return SX_OK;
}

int sx__coll_get_many(const sx__coll *c, size_t n, const char *const *ids, int skip_missing,
                      sx_records **out, sx_error *err) {
  *out = NULL;
  if (n > 0 && !ids) return sx__err_set(err, SX_INVALID_ARGUMENT, "ids are NULL");
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  size_t dim = c->dim;
  if (n > SIZE_MAX / 4 / dim / 2) return sx__err_set(err, SX_NOMEM, "%zu records are too many", n);
  sx_records *r = calloc(1, sizeof *r);
  if (!r) return sx__err_set(err, SX_NOMEM, "out of memory");
  r->dim = dim;
  r->vec = calloc(n ? n * dim : 1, sizeof(float));
  r->found = calloc(n ? n : 1, 1);
  r->id_off = malloc((n + 1) * sizeof *r->id_off);
  r->meta_off = malloc((n + 1) * sizeof *r->meta_off);
  if (!r->vec || !r->found || !r->id_off || !r->meta_off) {
    sx__records_free(r);
    return sx__err_set(err, SX_NOMEM, "out of memory for %zu records", n);
  }
  buf ib = {NULL, 0, 0}, mb = {NULL, 0, 0};
  sx__pa_cursor vc, hc;
  sx__pa_cursor_init(&vc, &c->v, h + SX__H_PA_VEC);
  sx__pa_cursor_init(&hc, &c->v, h + SX__H_PA_HEAP);
  size_t k = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    uint64_t slot;
    rc = sx__coll_find(c, h, ids[i], i, &slot, err);
    if (rc) break;
    if (slot == UINT64_MAX && skip_missing) continue;
    size_t idlen = strlen(ids[i]);
    rc = buf_reserve(&ib, idlen + 1, err);
    if (rc) break;
    r->id_off[k] = ib.len;
    memcpy(ib.p + ib.len, ids[i], idlen + 1);
    ib.len += idlen + 1;
    r->meta_off[k] = mb.len;
    if (slot != UINT64_MAX) {
      sx__slotrec sr;
      rc = sx__slot_read(c, h, slot, &sr, err);
      if (!rc) rc = sx__slot_valid(c, h, slot, &sr, err);
      if (!rc) rc = sx__pa_read(&vc, slot * dim * 4, r->vec + k * dim, dim * 4, err);
      if (!rc && sr.meta_len != SX__NO_META) {
        rc = buf_reserve(&mb, (size_t)sr.meta_len + 1, err);
        if (!rc) rc = sx__pa_read(&hc, sr.meta_off, mb.p + mb.len, sr.meta_len, err);
        if (!rc) {
          mb.p[mb.len + sr.meta_len] = 0;
          mb.len += (size_t)sr.meta_len + 1;
        }
      }
      r->found[k] = 1;
    }
    k++;
  }
  if (!rc) {
    r->n = k;
    r->id_off[k] = ib.len;
    r->meta_off[k] = mb.len;
    /* Never NULL, so the bulk accessors hand out a valid (empty) buffer. */
    r->ids = ib.p ? ib.p : calloc(1, 1);
    r->meta = mb.p ? mb.p : calloc(1, 1);
    if (!r->ids || !r->meta) rc = sx__err_set(err, SX_NOMEM, "out of memory");
    ib.p = mb.p = NULL;
  }
  free(ib.p);
  free(mb.p);
  if (rc) {
    sx__records_free(r);
    return rc;
  }
  *out = r;
  return SX_OK;
}

void sx__idlist_free(sx__idlist *l) {
  free(l->blob);
  free(l->ptrs);
  memset(l, 0, sizeof *l);
}

static int cmp_ptr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int sx__coll_sorted_ids(const sx__coll *c, const char *after, sx__idlist *out, sx_error *err) {
  memset(out, 0, sizeof *out);
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS), count = sx__rd64(h + SX__H_COUNT);
  if (nslots > 0xfffffffeu || count > nslots)
    return sx__err_set(err, SX_CORRUPT,
                       "collection '%s' header is damaged: %llu live in %llu slots", c->name,
                       (unsigned long long)count, (unsigned long long)nslots);
  if (count == 0) return SX_OK;
  uint32_t *slots = sx__mallocn(count, sizeof *slots);
  size_t *offs = sx__mallocn(count, sizeof *offs);
  enum { CHUNK = 65536 };
  uint8_t *bits = malloc(CHUNK);
  if (!slots || !offs || !bits)
    rc = sx__err_set(err, SX_NOMEM, "out of memory listing %llu ids", (unsigned long long)count);
  sx__pa_cursor lc;
  sx__pa_cursor_init(&lc, &c->v, h + SX__H_PA_LIVE);
  uint64_t nl = 0, nbytes = (nslots + 7) / 8;
  for (uint64_t at = 0; at < nbytes && !rc; at += CHUNK) {
    size_t m = nbytes - at < CHUNK ? (size_t)(nbytes - at) : CHUNK;
    rc = sx__pa_read(&lc, at, bits, m, err);
    for (size_t b = 0; b < m && !rc; b++) {
      if (!bits[b]) continue;
      for (unsigned j = 0; j < 8; j++) {
        uint64_t s = (at + b) * 8 + j;
        if (!(bits[b] >> j & 1) || s >= nslots) continue;
        if (nl == count) {
          rc = sx__err_set(err, SX_CORRUPT,
                           "collection '%s' has more live slots than its count %llu", c->name,
                           (unsigned long long)count);
          break;
        }
        slots[nl++] = (uint32_t)s;
      }
    }
  }
  char *blob = NULL;
  if (!rc) rc = sx__slot_ids(c, h, slots, nl, &blob, offs, err);
  char **ptrs = NULL;
  if (!rc) {
    ptrs = malloc((nl ? nl : 1) * sizeof *ptrs);
    if (!ptrs)
      rc = sx__err_set(err, SX_NOMEM, "out of memory listing %llu ids", (unsigned long long)nl);
  }
  size_t k = 0;
  for (uint64_t i = 0; i < nl && !rc; i++) {
    char *id = blob + offs[i];
    if (!after || strcmp(id, after) > 0) ptrs[k++] = id;
  }
  if (!rc && k) qsort(ptrs, k, sizeof *ptrs, cmp_ptr);
  free(slots);
  free(offs);
  free(bits);
  if (rc) {
    free(blob);
    free(ptrs);
    return rc;
  }
  out->n = k;
  out->blob = blob;
  out->ptrs = ptrs;
  return SX_OK;
}
