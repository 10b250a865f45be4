/*
 * integrity.c: sx__coll_check_all, the collection half of sx_db_check. For every
 * collection it walks every slot and proves the invariants records.c keeps: each live
 * slot's id maps back to it, the counters agree with the live bitmap, free slots are
 * in range, dead and listed once; then the HNSW graph checks itself (index layer).
 */
#include <stdlib.h>
#include <string.h>

#include "collection/collection.h"

static int check_one(const sx__pv *v, const char *name, sx_error *err) {
  sx__coll c;
  int rc = sx__coll_open(v, name, &c, err);
  if (rc) return rc == SX_NOT_FOUND ? sx__err_set(err, SX_CORRUPT, "catalog entry '%s' is damaged", name) : rc;
  const uint8_t *h;
  rc = sx__coll_header(&c, &h, err);
  if (rc) return rc;
  uint64_t nslots = sx__rd64(h + H_NSLOTS), count = sx__rd64(h + H_COUNT), live = 0;
  uint64_t nfree = sx__rd64(h + H_NFREE);
  char buf[SX_ID_MAX + 1];
  sx__pa_cursor lc;
  sx__pa_cursor_init(&lc, v, h + H_PA_LIVE);
  for (uint64_t s = 0; s < nslots; s++) {
    uint8_t b;
    rc = sx__pa_read(&lc, s / 8, &b, 1, err);
    if (rc) return rc;
    if (!(b & (1u << (s % 8)))) continue;
    live++;
    size_t len;
    rc = sx__slot_id(&c, h, s, buf, &len, err);
    uint64_t slot, pos;
    if (!rc) rc = sx__id_lookup(&c, h, buf, len, &slot, &pos, err);
    if (rc) return rc;
    if (slot != s)
      return sx__err_set(err, SX_CORRUPT, "id '%s' of slot %llu in '%s' maps to slot %lld", buf,
                         (unsigned long long)s, name, slot == UINT64_MAX ? -1LL : (long long)slot);
  }
  int hnsw = c.index == SX_INDEX_HNSW;
  if (live != count || (!hnsw && live + nfree != nslots) || (hnsw && live + nfree > nslots) ||
      sx__rd64(h + H_HASHUSED) != live)
    return sx__err_set(err, SX_CORRUPT,
                       "collection '%s' counts disagree: count %llu, live %llu, free %llu, slots %llu, "
                       "ids %llu",
                       name, (unsigned long long)count, (unsigned long long)live,
                       (unsigned long long)nfree, (unsigned long long)nslots,
                       (unsigned long long)sx__rd64(h + H_HASHUSED));
  /* Free slots: in range, not live, each once. */
  uint8_t *freebits = calloc(nslots / 8 + 1, 1);
  if (!freebits) return sx__err_set(err, SX_NOMEM, "out of memory");
  sx__pa_cursor fc;
  sx__pa_cursor_init(&fc, v, h + H_PA_FREE);
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

int sx__coll_check_all(const sx__pv *v, sx_error *err) {
  sx_names *names;
  int rc = sx__coll_list(v, &names, err);
  if (rc) return rc;
  for (size_t i = 0; i < names->n && !rc; i++) rc = check_one(v, names->names[i], err);
  sx__names_free(names);
  return rc;
}
