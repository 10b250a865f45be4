/*
 * shm.c: the wal-index in P-shm. A double-buffered header (the writer writes the
 * inactive copy, then bumps `ver`; readers retry when `ver` moved under them), and
 * per WAL file an area of hash segments mapping page numbers to frames (SEG_FRAMES
 * frames per segment). Only the writer appends or truncates entries; readers probe
 * without locks (entries are published with release stores).
 */
#include "pager/pager_int.h"

/* Header fields are loaded with acquire so the re-check of `ver` after them cannot move
 * before them (the seqlock read side, without a fence TSan cannot model). */
#define LD64(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ST64(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static void hdr_load(const sx__hdrc *src, sx__hdrc *h) {
  h->mx = LD64(&src->mx);
  h->backfill = LD64(&src->backfill);
  h->target = LD64(&src->target);
  h->base = LD64(&src->base);
  h->pbase = LD64(&src->pbase);
  h->pck0 = LD64(&src->pck0);
  h->pck1 = LD64(&src->pck1);
  h->ck0 = LD64(&src->ck0);
  h->ck1 = LD64(&src->ck1);
  h->commits = LD64(&src->commits);
  h->checkpoints = LD64(&src->checkpoints);
  h->npages = LD64(&src->npages);
  h->salt0 = LD64(&src->salt0);
  h->salt1 = LD64(&src->salt1);
  h->gen = LD64(&src->gen);
}

static void hdr_store(sx__hdrc *dst, const sx__hdrc *h) {
  ST64(&dst->mx, h->mx);
  ST64(&dst->backfill, h->backfill);
  ST64(&dst->target, h->target);
  ST64(&dst->base, h->base);
  ST64(&dst->pbase, h->pbase);
  ST64(&dst->pck0, h->pck0);
  ST64(&dst->pck1, h->pck1);
  ST64(&dst->ck0, h->ck0);
  ST64(&dst->ck1, h->ck1);
  ST64(&dst->commits, h->commits);
  ST64(&dst->checkpoints, h->checkpoints);
  ST64(&dst->npages, h->npages);
  ST64(&dst->salt0, h->salt0);
  ST64(&dst->salt1, h->salt1);
  ST64(&dst->gen, h->gen);
}

uint64_t sx__hdr_read(const sx__pager *p, sx__hdrc *h) {
  for (;;) {
    uint64_t v1 = __atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE);
    hdr_load(&p->hdr->copy[v1 & 1], h);
    if (__atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE) == v1) return v1;
  }
}

/* Writer only: publish h as the new header. The store of `ver` is sequentially
 * consistent: with the readers' sequentially consistent slot stores and `ver` loads,
 * that is the Dekker pairing the reader protocol relies on (no fences needed). */
void sx__hdr_publish(sx__pager *p, const sx__hdrc *h) {
  uint64_t v = __atomic_load_n(&p->hdr->ver, __ATOMIC_RELAXED);
  hdr_store(&p->hdr->copy[(v + 1) & 1], h);
  __atomic_store_n(&p->hdr->ver, v + 1, __ATOMIC_SEQ_CST);
}

void sx__hdr_current(const sx__pager *p, sx__hdrc *h) {
  hdr_load(&p->hdr->copy[__atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE) & 1], h);
}

/* Segment k of index area a (one area per WAL file). */
int sx__seg_get(sx__pager *p, int a, size_t k, sx__seg *s, sx_error *err) {
  if (k >= p->nsegs)
    return sx__err_set(err, SX_CORRUPT, "wal-index segment %zu of '%s' is past the WAL cap", k,
                       p->shm_path);
  size_t at = 2 * k + (size_t)a;
  uint8_t *m = __atomic_load_n(&p->segmap[at], __ATOMIC_ACQUIRE);
  if (!m) {
    m = sx__map_chunk(p, p->segmap, at, &p->segmap_hi, p->shm,
                      SHM_HDR_BYTES + (uint64_t)at * SEG_BYTES, SEG_BYTES, 1, err);
    if (!m) return err ? err->code : SX_IO;
  }
  s->pgno = (uint32_t *)m;
  s->hash = (uint16_t *)(m + SEG_FRAMES * 4);
  return SX_OK;
}

static uint32_t hkey(uint32_t pgno) {
  return (pgno * 383u) & (SEG_NSLOT - 1);
}

/* Newest frame r in (lo, hi] (relative numbers) of index area a holding pgno; 0 if
 * none. */
int sx__index_find(sx__pager *p, int a, uint32_t pgno, uint64_t lo, uint64_t hi, uint64_t *out,
                   sx_error *err) {
  *out = 0;
  if (hi <= lo) return SX_OK;
  for (int64_t k = (int64_t)((hi - 1) / SEG_FRAMES); k >= (int64_t)(lo / SEG_FRAMES); k--) {
    sx__seg s = {NULL, NULL};
    int rc = sx__seg_get(p, a, (size_t)k, &s, err);
    if (rc) return rc;
    uint64_t best = 0;
    uint32_t h = hkey(pgno);
    for (unsigned n = 0; n < SEG_NSLOT; n++, h = (h + 1) & (SEG_NSLOT - 1)) {
      uint16_t v = __atomic_load_n(&s.hash[h], __ATOMIC_ACQUIRE);
      if (v == 0) break;
      uint64_t r = (uint64_t)k * SEG_FRAMES + v;
      if (r > lo && r <= hi && r > best &&
          __atomic_load_n(&s.pgno[v - 1], __ATOMIC_RELAXED) == pgno)
        best = r;
    }
    if (best) {
      *out = best;
      return SX_OK;
    }
  }
  return SX_OK;
}

/* Writer: grow P-shm so that segment k of both areas exists. */
int sx__shm_cover_seg(sx__pager *p, size_t k, sx_error *err) {
  uint64_t need = SHM_HDR_BYTES + (uint64_t)(2 * k + 2) * SEG_BYTES;
  if (p->shm_size >= need) return SX_OK;
  uint64_t sz = 0;
  int rc = sx__file_size(p->shm, &sz, err);
  if (rc) return rc;
  if (sz < need) {
    /* Allocated, not only sized: every process maps these pages, and touching one
     * with no block behind it on a full device kills the process with SIGBUS. */
    uint64_t grow = SHM_HDR_BYTES + (uint64_t)(2 * k + 16) * SEG_BYTES;
    rc = sx__file_allocate(p->shm, grow, err);
    if (rc) return rc;
    sz = grow;
  }
  p->shm_size = sz;
  return SX_OK;
}

/* Writer: record that relative frame r holds pgno. The first frame of a segment
 * clears it (it may hold entries of an earlier WAL generation). */
int sx__index_append(sx__pager *p, int a, uint64_t r, uint32_t pgno, sx_error *err) {
  size_t k = (size_t)((r - 1) / SEG_FRAMES);
  unsigned i = (unsigned)((r - 1) % SEG_FRAMES);
  int rc = sx__shm_cover_seg(p, k, err);
  if (rc) return rc;
  sx__seg s = {NULL, NULL};
  rc = sx__seg_get(p, a, k, &s, err);
  if (rc) return rc;
  if (i == 0) {
    for (unsigned j = 0; j < SEG_NSLOT; j++) __atomic_store_n(&s.hash[j], 0, __ATOMIC_RELAXED);
    for (unsigned j = 0; j < SEG_FRAMES; j++) __atomic_store_n(&s.pgno[j], 0, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&s.pgno[i], pgno, __ATOMIC_RELAXED);
  uint32_t h = hkey(pgno);
  while (__atomic_load_n(&s.hash[h], __ATOMIC_RELAXED) != 0) h = (h + 1) & (SEG_NSLOT - 1);
  __atomic_store_n(&s.hash[h], (uint16_t)(i + 1), __ATOMIC_RELEASE);
  return SX_OK;
}

/* Writer: forget index entries past relative frame rmx (left by a writer that died
 * before publishing). Entries are only ever appended, so removing the newest ones
 * never breaks a probe chain of an older one. */
int sx__index_truncate(sx__pager *p, int a, uint64_t rmx, sx_error *err) {
  if (rmx % SEG_FRAMES == 0) return SX_OK; /* the next frame starts a fresh segment */
  size_t k = (size_t)(rmx / SEG_FRAMES);
  if (k >= p->nsegs) return SX_OK;
  int rc = sx__shm_cover_seg(p, k, err);
  if (rc) return rc;
  sx__seg s = {NULL, NULL};
  rc = sx__seg_get(p, a, k, &s, err);
  if (rc) return rc;
  unsigned keep = (unsigned)(rmx % SEG_FRAMES);
  for (unsigned j = 0; j < SEG_NSLOT; j++) {
    uint16_t v = __atomic_load_n(&s.hash[j], __ATOMIC_RELAXED);
    if (v > keep) __atomic_store_n(&s.hash[j], 0, __ATOMIC_RELAXED);
  }
  for (unsigned j = keep; j < SEG_FRAMES; j++) __atomic_store_n(&s.pgno[j], 0, __ATOMIC_RELAXED);
  return SX_OK;
}

int sx__shm_open_region(sx__pager *p, int init, sx_error *err) {
  int rc;
  if (init) {
    rc = sx__file_truncate(p->shm, 0, err);
    if (!rc) rc = sx__file_allocate(p->shm, SHM_HDR_BYTES, err);
    if (rc) return rc;
    p->shm_size = SHM_HDR_BYTES;
  } else {
    uint64_t sz = 0;
    rc = sx__file_size(p->shm, &sz, err);
    if (rc) return rc;
    if (sz < SHM_HDR_BYTES)
      return sx__err_set(err, SX_CORRUPT, "shared index '%s' is truncated", p->shm_path);
    p->shm_size = sz;
  }
  void *m = NULL;
  rc = sx__file_mmap(p->shm, 0, SHM_HDR_BYTES, 1, &m, err);
  if (rc) return rc;
  p->shm_base = m;
  p->hdr = (sx__shm_hdr *)m;
  p->slots = (uint64_t *)(p->shm_base + SHM_SLOTS_OFF);
  p->floors = (uint64_t *)(p->shm_base + SHM_FLOORS_OFF);
  p->slot_pids = (int32_t *)(p->shm_base + SHM_PIDS_OFF);
  if (init) {
    for (int i = 0; i < SX__NSLOTS; i++)
      __atomic_store_n(&p->slots[i], SLOT_IDLE, __ATOMIC_RELAXED);
    p->hdr->magic = SHM_MAGIC;
    p->hdr->version = SHM_VERSION;
    p->hdr->page_size = p->ps;
    p->hdr->nslots = SX__NSLOTS;
    rc = sx__wal_recover(p, err);
    if (rc) return rc;
    __atomic_store_n(&p->hdr->initialized, 1, __ATOMIC_RELEASE);
  } else {
    if (__atomic_load_n(&p->hdr->initialized, __ATOMIC_ACQUIRE) != 1 || p->hdr->magic != SHM_MAGIC)
      return sx__err_set(err, SX_CORRUPT, "shared index '%s' is not initialized", p->shm_path);
    if (p->hdr->version != SHM_VERSION || p->hdr->nslots != SX__NSLOTS)
      return sx__err_set(err, SX_VERSION, "shared index '%s' has version %u; this library uses %u",
                         p->shm_path, p->hdr->version, SHM_VERSION);
    if (p->hdr->page_size != p->ps)
      return sx__err_set(err, SX_CORRUPT, "shared index '%s' has page size %u, database has %u",
                         p->shm_path, p->hdr->page_size, p->ps);
  }
  return SX_OK;
}
