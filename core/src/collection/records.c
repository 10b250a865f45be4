/*
 * records.c: the records of one collection: slot records, the id map (an
 * open-addressing hash of id tag and slot), the append-only heap of ids and metadata
 * texts, and the data operations on them (get, upsert, delete, and reclaiming the
 * slots of deleted HNSW nodes). Layout in collection.h.
 *
 * Invariants (checked by sx__coll_check_all, integrity.c)
 * - A slot is live iff its bit in `live` is set; a live slot's record names its id in
 *   the heap, and the id map has exactly one entry pointing at it.
 * - count == number of live slots; every slot < nslots is live or on the free stack
 *   (once), except in an HNSW collection, where a slot deleted or replaced stays
 *   dead, in the graph, until reclaim unlinks and frees it.
 * - Operations validate every argument before touching a page, and run under a
 *   transaction savepoint, so a failing operation changes nothing.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "collection/collection.h"
#include "collection/results.h"

static uint32_t id_tag(const char *id, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (uint32_t)(h >> 32);
}

/* A slot record's fields, from its SX__SLOT_SIZE bytes. */
static void slot_parse(const uint8_t *b, sx__slotrec *r) {
  r->id_off = sx__rd64(b);
  r->id_len = sx__rd32(b + 8);
  r->meta_len = sx__rd32(b + 12);
  r->meta_off = sx__rd64(b + 16);
}

/* SX_CORRUPT unless slot s's id lies within the heap and has a valid length. */
static int id_check(const sx__coll *c, const uint8_t *h, uint64_t s, const sx__slotrec *r,
                    sx_error *err) {
  uint64_t heaplen = sx__rd64(h + SX__H_HEAPLEN);
  if (r->id_len == 0 || r->id_len > SX_ID_MAX || r->id_off > heaplen ||
      r->id_len > heaplen - r->id_off)
    return sx__err_set(
        err, SX_CORRUPT,
        "slot %llu of collection '%s' has a bad id (offset %llu, length %u, heap %llu)",
        (unsigned long long)s, c->name, (unsigned long long)r->id_off, r->id_len,
        (unsigned long long)heaplen);
  return SX_OK;
}

int sx__slot_valid(const sx__coll *c, const uint8_t *h, uint64_t s, const sx__slotrec *r,
                   sx_error *err) {
  int rc = id_check(c, h, s, r, err);
  if (rc || r->meta_len == SX__NO_META) return rc;
  uint64_t heaplen = sx__rd64(h + SX__H_HEAPLEN);
  if (r->meta_off > heaplen || r->meta_len > heaplen - r->meta_off)
    return sx__err_set(err, SX_CORRUPT,
                       "slot %llu of collection '%s' has metadata past the heap (offset %llu, "
                       "length %u, heap %llu)",
                       (unsigned long long)s, c->name, (unsigned long long)r->meta_off, r->meta_len,
                       (unsigned long long)heaplen);
  return SX_OK;
}

int sx__slot_read(const sx__coll *c, const uint8_t *h, uint64_t s, sx__slotrec *r, sx_error *err) {
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_SLOTS);
  uint8_t b[SX__SLOT_SIZE];
  int rc = sx__pa_read(&cur, s * SX__SLOT_SIZE, b, SX__SLOT_SIZE, err);
  if (!rc) slot_parse(b, r);
  return rc;
}

/* The id of slot s into buf (NUL-terminated); *len its length. */
int sx__slot_id(const sx__coll *c, const uint8_t *h, uint64_t s, char buf[SX_ID_MAX + 1],
                size_t *len, sx_error *err) {
  sx__slotrec r;
  int rc = sx__slot_read(c, h, s, &r, err);
  if (!rc) rc = id_check(c, h, s, &r, err);
  if (rc) return rc;
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_HEAP);
  rc = sx__pa_read(&cur, r.id_off, buf, r.id_len, err);
  buf[r.id_len] = 0;
  if (len) *len = r.id_len;
  return rc;
}

int sx__slot_ids(const sx__coll *c, const uint8_t *h, const uint32_t *slots, size_t n, char **blob,
                 size_t *offs, sx_error *err) {
  enum { CHUNK = 64 };
  const uint8_t *rec[CHUNK];
  sx__slotrec r[CHUNK];
  size_t len = 0, cap = 0;
  *blob = NULL;
  sx__pa_cursor sc, hc;
  sx__pa_cursor_init(&sc, &c->v, h + SX__H_PA_SLOTS);
  sx__pa_cursor_init(&hc, &c->v, h + SX__H_PA_HEAP);
  for (size_t at = 0; at < n; at += CHUNK) {
    size_t m = n - at < CHUNK ? n - at : CHUNK, need = 0;
    /* Records never straddle pages (SX__SLOT_SIZE divides the page size). */
    for (size_t i = 0; i < m; i++) {
      uint64_t off = (uint64_t)slots[at + i] * SX__SLOT_SIZE;
      int rc = sx__pa_leaf(&sc, off / sc.ps, &rec[i], err);
      if (rc) return rc;
      rec[i] += off % sc.ps;
      __builtin_prefetch(rec[i]);
    }
    for (size_t i = 0; i < m; i++) {
      slot_parse(rec[i], &r[i]);
      const uint8_t *lp;
      int rc = id_check(c, h, slots[at + i], &r[i], err);
      if (!rc) rc = sx__pa_leaf(&hc, r[i].id_off / hc.ps, &lp, err);
      if (rc) return rc;
      __builtin_prefetch(lp + r[i].id_off % hc.ps);
      need += r[i].id_len + 1;
    }
    if (len + need > cap) {
      size_t nc = cap ? cap : 256;
      while (nc < len + need) nc *= 2;
      char *nb = realloc(*blob, nc);
      if (!nb) return sx__err_set(err, SX_NOMEM, "out of memory for search results");
      *blob = nb;
      cap = nc;
    }
    for (size_t i = 0; i < m; i++) {
      int rc = sx__pa_read(&hc, r[i].id_off, *blob + len, r[i].id_len, err);
      if (rc) return rc;
      offs[at + i] = len;
      (*blob)[len + r[i].id_len] = 0;
      len += r[i].id_len + 1;
    }
  }
  return SX_OK;
}

/* Looks an id up: *slot = its slot or UINT64_MAX; *pos = its hash position (or the
 * empty position where it would go). */
int sx__id_lookup(const sx__coll *c, const uint8_t *h, const char *id, size_t n, uint64_t *slot,
                  uint64_t *pos, sx_error *err) {
  *slot = UINT64_MAX;
  uint64_t cap = sx__rd64(h + SX__H_HASHCAP);
  if (cap == 0) {
    *pos = 0;
    return SX_OK;
  }
  uint32_t tag = id_tag(id, n);
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_HASH);
  char buf[SX_ID_MAX + 1];
  for (uint64_t i = tag & (cap - 1), probes = 0;; i = (i + 1) & (cap - 1), probes++) {
    if (probes > cap)
      return sx__err_set(err, SX_CORRUPT, "id map of '%s' has no empty entry", c->name);
    uint64_t e;
    int rc = sx__pa_read(&cur, i * 8, &e, 8, err);
    if (rc) return rc;
    if (e == 0) {
      *pos = i;
      return SX_OK;
    }
    uint64_t s = (e & 0xffffffffu) - 1;
    if (s >= sx__rd64(h + SX__H_NSLOTS))
      return sx__err_set(err, SX_CORRUPT, "id map entry %llu of '%s' names slot %lld, past the end",
                         (unsigned long long)i, c->name, s == UINT64_MAX ? -1LL : (long long)s);
    if ((uint32_t)(e >> 32) != tag) continue;
    size_t len;
    rc = sx__slot_id(c, h, s, buf, &len, err);
    if (rc) return rc;
    if (len == n && memcmp(buf, id, n) == 0) {
      *slot = s;
      *pos = i;
      return SX_OK;
    }
  }
}

void sx__record_free(sx_record *r) {
  if (!r) return;
  free(r->id);
  free(r->vec);
  free(r->meta);
  free(r);
}

int sx__coll_get(const sx__coll *c, const char *id, sx_record **out, sx_error *err) {
  *out = NULL;
  int rc = sx__check_id(id, 0, err);
  if (rc) return rc;
  const uint8_t *h;
  rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint64_t slot, pos;
  size_t n = strlen(id);
  rc = sx__id_lookup(c, h, id, n, &slot, &pos, err);
  if (rc) return rc;
  if (slot == UINT64_MAX)
    return sx__err_set(err, SX_NOT_FOUND, "id '%s' is not in collection '%s'", id, c->name);
  sx__slotrec r;
  rc = sx__slot_read(c, h, slot, &r, err);
  if (!rc) rc = sx__slot_valid(c, h, slot, &r, err);
  if (rc) return rc;
  sx_record *rec = calloc(1, sizeof *rec);
  if (rec) {
    rec->id = strdup(id);
    rec->vec = sx__mallocn(c->dim, 4);
    rec->dim = c->dim;
    if (r.meta_len != SX__NO_META) rec->meta = sx__mallocn((uint64_t)r.meta_len + 1, 1);
  }
  if (!rec || !rec->id || !rec->vec || (r.meta_len != SX__NO_META && !rec->meta)) {
    sx__record_free(rec);
    return sx__err_set(err, SX_NOMEM, "out of memory");
  }
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_VEC);
  rc = sx__pa_read(&cur, slot * c->dim * 4, rec->vec, (size_t)c->dim * 4, err);
  if (!rc && rec->meta) {
    sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_HEAP);
    rc = sx__pa_read(&cur, r.meta_off, rec->meta, r.meta_len, err);
    rec->meta[r.meta_len] = 0;
  }
  if (rc) {
    sx__record_free(rec);
    return rc;
  }
  *out = rec;
  return SX_OK;
}

/* ---- writing ---------------------------------------------------------------------- */

static int hdr_w(sx__coll *c, uint8_t **h, sx_error *err) {
  return sx__txn_write(c->v.t, c->hdr, h, err);
}

static int heap_append(sx__coll *c, const void *data, size_t n, uint64_t *off, sx_error *err) {
  uint8_t *h;
  int rc = hdr_w(c, &h, err);
  if (rc) return rc;
  *off = sx__rd64(h + SX__H_HEAPLEN);
  rc = sx__pa_write(c->v.t, c->hdr, SX__H_PA_HEAP, *off, data, n, err);
  if (rc) return rc;
  rc = hdr_w(c, &h, err);
  if (!rc) sx__wr64(h + SX__H_HEAPLEN, *off + n);
  return rc;
}

static int hash_put(sx__coll *c, uint64_t pos, uint64_t e, sx_error *err) {
  return sx__pa_write(c->v.t, c->hdr, SX__H_PA_HASH, pos * 8, &e, 8, err);
}

static int live_set(sx__coll *c, uint64_t s, int on, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint8_t b = 0;
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS);
  /* bytes past the last written one read as zero */
  if (s / 8 < (nslots + 7) / 8 && !(on && s + 1 == nslots && s % 8 == 0)) {
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_LIVE);
    rc = sx__pa_read(&cur, s / 8, &b, 1, err);
    if (rc) return rc;
  }
  if (on)
    b |= (uint8_t)(1u << (s % 8));
  else
    b &= (uint8_t) ~(1u << (s % 8));
  return sx__pa_write(c->v.t, c->hdr, SX__H_PA_LIVE, s / 8, &b, 1, err);
}

/* Rebuilds the id map with capacity cap from the live slots. */
static int hash_rebuild(sx__coll *c, uint64_t cap, sx_error *err) {
  int rc = sx__pa_free(c->v.t, c->hdr, SX__H_PA_HASH, err);
  uint8_t *h;
  if (!rc) rc = hdr_w(c, &h, err);
  if (rc) return rc;
  sx__wr64(h + SX__H_HASHCAP, cap);
  sx__wr64(h + SX__H_HASHUSED, 0);
  /* Zero the table in page-sized pieces (fresh pages come zeroed, but the writes
   * allocate them). */
  uint32_t ps = sx__pager_page_size(c->v.p);
  uint8_t *zero = calloc(1, ps);
  if (!zero) return sx__err_set(err, SX_NOMEM, "out of memory");
  for (uint64_t off = 0; off < cap * 8 && !rc; off += ps)
    rc = sx__pa_write(c->v.t, c->hdr, SX__H_PA_HASH, off, zero, ps, err);
  free(zero);
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS), used = 0;
  char buf[SX_ID_MAX + 1];
  for (uint64_t s = 0; s < nslots && !rc; s++) {
    const uint8_t *hr;
    rc = sx__coll_header(c, &hr, err);
    if (rc) break;
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, hr + SX__H_PA_LIVE);
    uint8_t b;
    rc = sx__pa_read(&cur, s / 8, &b, 1, err);
    if (rc || !(b & (1u << (s % 8)))) continue;
    size_t len;
    rc = sx__slot_id(c, hr, s, buf, &len, err);
    uint64_t slot, pos;
    if (!rc) rc = sx__id_lookup(c, hr, buf, len, &slot, &pos, err);
    if (!rc) rc = hash_put(c, pos, ((uint64_t)id_tag(buf, len) << 32) | (s + 1), err);
    used++;
  }
  if (!rc) rc = hdr_w(c, &h, err);
  if (!rc) sx__wr64(h + SX__H_HASHUSED, used);
  return rc;
}

/* Removes the entry at pos (backward-shift deletion keeps probe chains whole). */
static int hash_remove(sx__coll *c, uint64_t pos, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint64_t cap = sx__rd64(h + SX__H_HASHCAP), mask = cap - 1, hole = pos;
  for (uint64_t j = (pos + 1) & mask, probes = 0;; j = (j + 1) & mask, probes++) {
    if (probes >= cap)
      return sx__err_set(err, SX_CORRUPT, "id map of '%s' has no empty entry", c->name);
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_HASH);
    uint64_t e;
    rc = sx__pa_read(&cur, j * 8, &e, 8, err);
    if (rc) return rc;
    if (e == 0) break;
    uint64_t home = (e >> 32) & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      rc = hash_put(c, hole, e, err);
      if (rc) return rc;
      hole = j;
    }
  }
  rc = hash_put(c, hole, 0, err);
  uint8_t *hw;
  if (!rc) rc = hdr_w(c, &hw, err);
  if (!rc) sx__wr64(hw + SX__H_HASHUSED, sx__rd64(hw + SX__H_HASHUSED) - 1);
  return rc;
}

/* A slot for a vector: the last freed one, or the next new one. */
static int take_slot(sx__coll *c, uint64_t *slot, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint64_t nfree = sx__rd64(h + SX__H_NFREE);
  uint8_t *hw;
  if (nfree) {
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_FREE);
    uint32_t s32;
    rc = sx__pa_read(&cur, (nfree - 1) * 4, &s32, 4, err);
    if (rc) return rc;
    if (s32 >= sx__rd64(h + SX__H_NSLOTS))
      return sx__err_set(err, SX_CORRUPT, "free slot %u of '%s' is past the end (%llu slots)", s32,
                         c->name, (unsigned long long)sx__rd64(h + SX__H_NSLOTS));
    *slot = s32;
    rc = hdr_w(c, &hw, err);
    if (!rc) sx__wr64(hw + SX__H_NFREE, nfree - 1);
    return rc;
  }
  *slot = sx__rd64(h + SX__H_NSLOTS);
  if (*slot >= 0xfffffffeu)
    return sx__err_set(err, SX_FULL, "collection '%s' has reached its maximum of %u vectors",
                       c->name, 0xfffffffeu);
  rc = hdr_w(c, &hw, err);
  if (!rc) sx__wr64(hw + SX__H_NSLOTS, *slot + 1);
  return rc;
}

static int slot_write(sx__coll *c, uint64_t slot, uint64_t id_off, uint32_t id_len,
                      uint64_t meta_off, uint32_t meta_len, sx_error *err) {
  uint8_t rec[SX__SLOT_SIZE] = {0};
  sx__wr64(rec, id_off);
  sx__wr32(rec + 8, id_len);
  sx__wr32(rec + 12, meta_len);
  sx__wr64(rec + 16, meta_off);
  return sx__pa_write(c->v.t, c->hdr, SX__H_PA_SLOTS, slot * SX__SLOT_SIZE, rec, SX__SLOT_SIZE,
                      err);
}

/* Marks a live slot dead: not live, its record zeroed. The caller keeps the counts. */
static int slot_kill(sx__coll *c, uint64_t slot, sx_error *err) {
  int rc = live_set(c, slot, 0, err);
  return rc ? rc : slot_write(c, slot, 0, 0, 0, 0, err);
}

/* Stores one item; *slot_out receives its slot. Linking into an index is the
 * caller's. */
static int upsert_one(sx__coll *c, const char *id, const float *vec, const char *meta,
                      uint64_t *slot_out, sx_error *err) {
  size_t n = strlen(id);
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint64_t slot, pos;
  rc = sx__id_lookup(c, h, id, n, &slot, &pos, err);
  if (rc) return rc;
  uint8_t *hw;
  uint64_t meta_off = 0;
  uint32_t meta_len = SX__NO_META;
  if (meta) {
    size_t ml = strlen(meta);
    rc = heap_append(c, meta, ml, &meta_off, err);
    if (rc) return rc;
    meta_len = (uint32_t)ml;
  }
  uint32_t tag = id_tag(id, n);
  if (slot == UINT64_MAX) {
    /* A new id. */
    rc = sx__coll_header(c, &h, err);
    if (rc) return rc;
    if ((sx__rd64(h + SX__H_HASHUSED) + 1) * 2 > sx__rd64(h + SX__H_HASHCAP)) {
      uint64_t cap = sx__rd64(h + SX__H_HASHCAP) ? sx__rd64(h + SX__H_HASHCAP) * 2 : 1024;
      rc = hash_rebuild(c, cap, err);
      if (!rc) rc = sx__coll_header(c, &h, err);
      if (!rc) rc = sx__id_lookup(c, h, id, n, &slot, &pos, err);
      if (rc) return rc;
    }
    uint64_t id_off;
    rc = take_slot(c, &slot, err);
    if (!rc) rc = heap_append(c, id, n, &id_off, err);
    if (!rc) rc = slot_write(c, slot, id_off, (uint32_t)n, meta_off, meta_len, err);
    if (!rc) rc = hash_put(c, pos, ((uint64_t)tag << 32) | (slot + 1), err);
    if (!rc) rc = live_set(c, slot, 1, err);
    if (!rc) rc = hdr_w(c, &hw, err);
    if (rc) return rc;
    sx__wr64(hw + SX__H_HASHUSED, sx__rd64(hw + SX__H_HASHUSED) + 1);
    sx__wr64(hw + SX__H_COUNT, sx__rd64(hw + SX__H_COUNT) + 1);
  } else if (c->index == SX_INDEX_HNSW) {
    /* An existing id of an HNSW collection moves to a fresh slot, linked from its
     * new position; the old one stays a waypoint until it is unlinked. */
    sx__slotrec r;
    uint64_t old = slot;
    rc = sx__coll_header(c, &h, err); /* the metadata may have moved it */
    if (!rc) rc = sx__slot_read(c, h, old, &r, err);
    if (!rc) rc = take_slot(c, &slot, err);
    if (!rc) rc = slot_write(c, slot, r.id_off, r.id_len, meta_off, meta_len, err);
    if (!rc) rc = hash_put(c, pos, ((uint64_t)tag << 32) | (slot + 1), err);
    if (!rc) rc = slot_kill(c, old, err);
    if (!rc) rc = live_set(c, slot, 1, err);
    if (rc) return rc;
  } else {
    /* An existing id: new metadata (or none) in its record. */
    uint8_t m[12];
    sx__wr32(m, meta_len);
    sx__wr64(m + 4, meta_off);
    rc = sx__pa_write(c->v.t, c->hdr, SX__H_PA_SLOTS, slot * SX__SLOT_SIZE + 12, m, 12, err);
    if (rc) return rc;
  }
  *slot_out = slot;
  return sx__pa_write(c->v.t, c->hdr, SX__H_PA_VEC, slot * c->dim * 4, vec, (size_t)c->dim * 4,
                      err);
}

/* Dead slots of an HNSW collection (deleted or replaced, not yet free) are unlinked
 * from the graph and freed once they are 1/32 of the slots: searches walk through
 * them until then, and each unlink reads every list. */
#define UNLINK_SHARE 32

static int reclaim(sx__coll *c, int nthreads, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc || c->index != SX_INDEX_HNSW) return rc;
  /* The header's counters are in range (sx__coll_header checked count + nfree <=
   * nslots <= 2^32 - 2), so pending cannot wrap. */
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS), nfree = sx__rd64(h + SX__H_NFREE);
  uint64_t pending = nslots - sx__rd64(h + SX__H_COUNT) - nfree;
  if (pending == 0 || pending * UNLINK_SHARE < nslots) return SX_OK;
  uint8_t *freebits = sx__callocn(nslots / 8 + 1, 1), *livebits = sx__mallocn(nslots / 8 + 1, 1);
  uint64_t *dead = sx__mallocn(pending, sizeof *dead);
  if (!freebits || !livebits || !dead) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_FREE);
  for (uint64_t i = 0; i < nfree && !rc; i++) {
    uint32_t s;
    rc = sx__pa_read(&cur, i * 4, &s, 4, err);
    if (!rc && s >= nslots)
      rc = sx__err_set(err, SX_CORRUPT, "free slot %u of '%s' is past the end", s, c->name);
    if (!rc) freebits[s >> 3] |= (uint8_t)(1u << (s & 7));
  }
  sx__pa_cursor_init(&cur, &c->v, h + SX__H_PA_LIVE);
  if (!rc) rc = sx__pa_read(&cur, 0, livebits, (nslots + 7) / 8, err);
  uint64_t nd = 0;
  for (uint64_t s = 0; s < nslots && !rc; s++)
    if (!((livebits[s >> 3] | freebits[s >> 3]) >> (s & 7) & 1)) {
      if (nd == pending)
        rc = sx__err_set(err, SX_CORRUPT, "collection '%s' counts disagree", c->name);
      else
        dead[nd++] = s;
    }
  if (!rc) {
    sx__hnsw_layout lay;
    sx__coll_hnsw_layout(c->hdr, &lay);
    rc = sx__hnsw_unlink(&c->v, &lay, c->dim, c->metric, c->m, c->efc, dead, nd, nthreads, err);
  }
  /* Freed highest first, so that inserts reuse the lowest first. */
  for (uint64_t i = nd; i-- > 0 && !rc;) {
    uint32_t s32 = (uint32_t)dead[i];
    rc = sx__pa_write(c->v.t, c->hdr, SX__H_PA_FREE, nfree++ * 4, &s32, 4, err);
  }
  uint8_t *hw;
  if (!rc) rc = hdr_w(c, &hw, err);
  if (!rc) sx__wr64(hw + SX__H_NFREE, nfree);
  free(freebits);
  free(livebits);
  free(dead);
  return rc;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Item positions by id, then by position. */
static int cmp_item(const void *a, const void *b, void *ids) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  int c = strcmp(((const char *const *)ids)[x], ((const char *const *)ids)[y]);
  return c ? c : (x > y) - (x < y);
}

int sx__coll_upsert(sx__coll *c, size_t n, const char *const *ids, const float *vectors, size_t dim,
                    const char *const *metadata, int nthreads, sx_error *err) {
  if (dim != c->dim)
    return sx__err_set(err, SX_DIMENSION_MISMATCH,
                       "dimension %zu does not match collection '%s' (dimension %u)", dim, c->name,
                       c->dim);
  if (n > 0 && (!ids || !vectors))
    return sx__err_set(err, SX_INVALID_ARGUMENT, "ids or vectors are NULL");
  /* Validate everything before touching a page. */
  for (size_t i = 0; i < n; i++) {
    int rc = sx__check_id(ids[i], i, err);
    if (!rc) rc = sx__check_vector(vectors + i * dim, dim, c->metric, "vector of item", i, err);
    if (rc) return rc;
    if (metadata && metadata[i]) {
      rc = sx__json_check(metadata[i], strlen(metadata[i]), i, err);
      if (rc) return rc;
      if (strlen(metadata[i]) >= SX__NO_META)
        return sx__err_set(err, SX_INVALID_ARGUMENT, "metadata of item %zu is too long", i);
    }
  }
  int rc = sx__coll_revalidate(c, err);
  if (rc) return rc;
  const uint8_t *h;
  rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  uint64_t nslots0 = sx__rd64(h + SX__H_NSLOTS);
  int hnsw = c->index == SX_INDEX_HNSW;
  /* An id given more than once keeps its last item; the others are not stored. */
  size_t *order = malloc((n ? n : 1) * sizeof *order);
  uint8_t *skip = calloc(n ? n : 1, 1);
  uint64_t *slots = hnsw ? malloc((n ? n : 1) * sizeof *slots) : NULL;
  uint8_t *reused = hnsw ? malloc(n ? n : 1) : NULL;
  if (!order || !skip || (hnsw && (!slots || !reused)))
    rc = sx__err_set(err, SX_NOMEM, "out of memory");
  for (size_t i = 0; i < n && !rc; i++) order[i] = i;
  if (!rc) qsort_r(order, n, sizeof *order, cmp_item, (void *)ids);
  for (size_t i = 0; i + 1 < n && !rc; i++)
    skip[order[i]] = strcmp(ids[order[i]], ids[order[i + 1]]) == 0;
  sx__txn_savepoint(c->v.t);
  size_t u = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (skip[i]) continue;
    uint64_t slot = 0;
    rc = upsert_one(c, ids[i], vectors + i * dim, metadata ? metadata[i] : NULL, &slot, err);
    if (hnsw) slots[u++] = slot;
  }
  if (!rc && hnsw && u) {
    /* Every vector is stored; now link the slots, lowest first. Those from before
     * this call were freed by an unlink. */
    qsort(slots, u, sizeof *slots, cmp_u64);
    for (size_t i = 0; i < u; i++) reused[i] = slots[i] < nslots0;
    sx__hnsw_layout lay;
    sx__coll_hnsw_layout(c->hdr, &lay);
    rc = sx__hnsw_insert_batch(&c->v, &lay, c->dim, c->metric, c->m, c->efc, slots, reused, u,
                               nthreads, err);
  }
  if (!rc) rc = reclaim(c, nthreads, err); /* replaced vectors left their slots dead */
  free(order);
  free(skip);
  free(slots);
  free(reused);
  if (rc)
    sx__txn_rollback(c->v.t);
  else
    sx__txn_release(c->v.t);
  return rc;
}

int sx__coll_delete(sx__coll *c, size_t n, const char *const *ids, int nthreads, size_t *deleted,
                    sx_error *err) {
  if (deleted) *deleted = 0;
  if (n > 0 && !ids) return sx__err_set(err, SX_INVALID_ARGUMENT, "ids are NULL");
  for (size_t i = 0; i < n; i++) {
    int rc = sx__check_id(ids[i], i, err);
    if (rc) return rc;
  }
  int rc = sx__coll_revalidate(c, err);
  if (rc) return rc;
  size_t gone = 0;
  sx__txn_savepoint(c->v.t);
  for (size_t i = 0; i < n && !rc; i++) {
    const uint8_t *h;
    rc = sx__coll_header(c, &h, err);
    uint64_t slot, pos;
    if (!rc) rc = sx__id_lookup(c, h, ids[i], strlen(ids[i]), &slot, &pos, err);
    if (rc || slot == UINT64_MAX) continue;
    rc = hash_remove(c, pos, err);
    if (!rc) rc = slot_kill(c, slot, err);
    uint8_t *hw;
    if (!rc) rc = hdr_w(c, &hw, err);
    if (!rc) {
      sx__wr64(hw + SX__H_COUNT, sx__rd64(hw + SX__H_COUNT) - 1);
      if (c->index != SX_INDEX_HNSW) { /* an HNSW slot is freed by reclaim */
        uint64_t nfree = sx__rd64(hw + SX__H_NFREE);
        uint32_t s32 = (uint32_t)slot;
        sx__wr64(hw + SX__H_NFREE, nfree + 1);
        rc = sx__pa_write(c->v.t, c->hdr, SX__H_PA_FREE, nfree * 4, &s32, 4, err);
      }
    }
    if (!rc) gone++;
  }
  if (!rc) rc = reclaim(c, nthreads, err);
  if (rc) {
    sx__txn_rollback(c->v.t);
    return rc;
  }
  sx__txn_release(c->v.t);
  if (deleted) *deleted = gone;
  return SX_OK;
}

/* ---- lookups for batch get and cursors (cursor.c) ------------------------------------ */

int sx__coll_find(const sx__coll *c, const uint8_t *h, const char *id, size_t item, uint64_t *slot,
                  sx_error *err) {
  int rc = sx__check_id(id, item, err);
  uint64_t pos;
  return rc ? rc : sx__id_lookup(c, h, id, strlen(id), slot, &pos, err);
}
