/*
 * pager.c: the page file, the WAL, the shared wal-index, checkpoint and recovery.
 *
 * Files
 *   P          page 0 is the header page (magic, format version, page size, free list,
 *              user version), then pages 1.. as upper layers use them.
 *   P-wal,     the WAL, in generations that alternate between the two files (even
 *   P-wal2     generations in P-wal, odd in P-wal2). A file starts with a 64-byte
 *              header (magic, version, page size, generation, two salts, how the
 *              previous generation ended: its frame count and final checksum; and a
 *              checksum) followed by frames: a 32-byte frame header (page number; the
 *              database size in pages if the frame ends a commit, else 0; the salts;
 *              the running checksum) and the page image. The checksum runs over every
 *              frame since the header, so a frame is valid only if every frame before
 *              it is. Recovery replays up to the last valid commit frame.
 *   P-shm      the shared wal-index: a double-buffered header, the reader slots, and
 *              per WAL file an index of hash segments mapping page numbers to frames
 *              (4096 frames per segment). Its contents derive from the WAL files; the
 *              first process to open the database (the "dead man switch" byte lock
 *              tells) rebuilds it.
 *
 * Frame numbers are absolute (they keep counting across generations while any
 * process has the shared index open): frame base + r is frame r (1-based) of the
 * current generation's file; frames pbase+1..base are the previous generation's, in
 * the other file. The header holds mx (last committed frame), backfill (frames <=
 * backfill are copied into P), base and pbase.
 *
 * Why two files: the writer may reuse a WAL file only when no reader can still read
 * the frames in it. With one file, that needs a moment when every reader began after
 * the last checkpoint, which steady overlapping readers never leave, so the WAL grew
 * without bound. With two, the writer moves to the other file once that file's
 * generation is wholly in P and no pinned reader reads it; readers of the current
 * generation never stand in the way (this is SQLite's "wal2" idea).
 *
 * Who may change what
 *   Only the holder of the writer lock (the OFD byte WRITER in P-shm plus this
 *   handle's in-process flag) changes the shared header, appends frames, switches
 *   generations or checkpoints. It publishes a new header by writing the inactive
 *   copy and then bumping `ver`, so a reader never sees a half-written header and
 *   never waits: it retries when `ver` moved while it read. A writer that dies
 *   mid-publish leaves the active copy intact.
 *
 * Reader protocol (never blocks)
 *   1. Own a reader slot (an OFD byte; the kernel frees it when the process dies).
 *   2. Read the header (mx = M, backfill = B); store B, then M, into the slot
 *      (sequentially consistent stores); re-read `ver` (sequentially consistent load).
 *      If it moved, start again.
 *   3. Read frames in (B, M] from the WAL files, every other page from P.
 *   The writer, before a checkpoint raises backfill or a generation switch reuses a
 *   file, publishes a header (a sequentially consistent store of `ver`), then scans
 *   the slots (sequentially consistent loads). In the single total order of those
 *   operations either the writer sees the reader's slot, or the reader sees the bump
 *   and retries. So a checkpoint never copies past a pinned M (P keeps exactly the
 *   pages a reader may take from it), and a file is reused only when no pinned reader
 *   has B below the end of the generation it holds.
 *
 * Durability order: frames, then (sync=full) fdatasync of the WAL, then publish. A
 * new generation's header is written and synced before its frames. A checkpoint syncs
 * the WAL before copying into P and syncs P before raising backfill; with
 * sync=normal, a file is synced when the writer leaves it. A file is reused only
 * once backfill covers its generation. With sync=off no sync is made at all. A
 * failed sync poisons the handle (see os.h).
 */
#include "pager/pager.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "Sextant files are little-endian");

/* ---- formats -------------------------------------------------------------- */

static const char P_MAGIC[16] = {'S', 'e', 'x', 't', 'a', 'n', 't', ' ',
                                 'd', 'a', 't', 'a', 'b', 'a', 's', 'e'};
enum {
  P0_MAGIC = 0,      /* 16 bytes */
  P0_VERSION = 16,   /* u32 */
  P0_PAGESIZE = 20,  /* u32 */
  P0_FREEHEAD = 28,  /* u32: first free page, 0 = none */
  P0_FREECOUNT = 32, /* u32 */
  P0_USERVER = 40    /* u64 */
};

#define WAL_MAGIC 0x41575853u /* "SXWA" */
#define WAL_VERSION 1u
#define WAL_HDR 64u
#define FRAME_HDR 32u

#define SHM_MAGIC 0x4d485358u /* "SXHM" */
#define SHM_VERSION 2u
#define SHM_HDR_BYTES 32768u
#define SHM_SLOTS_OFF 1024u
#define SHM_FLOORS_OFF (SHM_SLOTS_OFF + 8u * SX__NSLOTS)
#define SHM_PIDS_OFF (SHM_FLOORS_OFF + 8u * SX__NSLOTS)
#define SEG_FRAMES 4096u
#define SEG_NSLOT 8192u
#define SEG_BYTES (SEG_FRAMES * 4u + SEG_NSLOT * 2u) /* 32 KiB */

#define SLOT_IDLE UINT64_MAX

/* OFD lock bytes in P-shm (far past its data so they never overlap a mapping). */
#define LK_BASE 0x40000000ull
#define LK_DMS (LK_BASE + 0)
#define LK_WRITER (LK_BASE + 1)
#define LK_CKPT (LK_BASE + 2)
#define LK_RECOVER (LK_BASE + 3)
#define LK_SLOT(i) (LK_BASE + 16 + (uint64_t)(i))

#define P_CHUNK_PAGES 65536ull /* P is mapped in chunks of 65536 pages */
#define P_CHUNKS 65536u        /* so P can reach 2^32 pages */
#define WAL_CHUNK (64ull << 20)

_Static_assert(SHM_PIDS_OFF + 4u * SX__NSLOTS <= SHM_HDR_BYTES, "shm header too small");

/* One copy of the shared header. All fields are read and written with relaxed
 * atomics; `ver` orders them. */
typedef struct hdrc {
  uint64_t mx, backfill, target;
  uint64_t base;       /* frames base+1.. are the current generation's, in WAL file gen & 1 */
  uint64_t pbase;      /* frames pbase+1..base are the previous generation's, in the other file */
  uint64_t ck0, ck1;   /* running checksum after frame mx (or of the WAL header) */
  uint64_t pck0, pck1; /* running checksum at the end of the previous generation */
  uint64_t commits, checkpoints;
  uint32_t npages, salt0, salt1, gen;
} hdrc;

typedef struct shm_hdr {
  uint32_t magic, version, page_size, nslots;
  uint32_t initialized, pad0;
  uint64_t ver;
  /* Nonzero while a writer appends index entries it has not yet published: the next
   * writer cleans them up only then (a writer died mid-commit). */
  uint64_t appending;
  uint64_t pad1[3];
  hdrc copy[2];
} shm_hdr;
_Static_assert(sizeof(shm_hdr) <= SHM_SLOTS_OFF, "shm header overlaps slots");

/* ---- the pager ------------------------------------------------------------ */

struct sx__pager {
  sx__vfs *vfs;
  char *path, *wal_path[2], *shm_path;
  sx__file *db, *wal[2], *shm; /* WAL files P-wal (even generations) and P-wal2 (odd) */
  uint32_t ps;   /* page size */
  uint32_t fsz;  /* frame size: FRAME_HDR + ps */
  int read_only, sync;
  uint32_t autockpt, wal_max;
  unsigned fork_gen;
  int32_t pid; /* of the process that opened the handle (reader slots record it) */
  atomic_int poisoned;

  uint8_t *shm_base; /* the SHM_HDR_BYTES header region */
  shm_hdr *hdr;
  uint64_t *slots;  /* per slot: the pinned snapshot's mx, or SLOT_IDLE */
  uint64_t *floors; /* per slot: the pinned snapshot's floor (backfill when it began) */
  int32_t *slot_pids;

  /* Lazily mapped chunks; pointers are published with release stores. */
  uint8_t **pmap;     /* P_CHUNKS entries */
  uint8_t **walmap[2]; /* nwalchunks entries per WAL file */
  size_t nwalchunks, walchunk_len;
  uint8_t **segmap;    /* 2 * nsegs entries: segment k of index area a at 2k + a */
  size_t nsegs;        /* per area */
  atomic_uint_fast64_t p_size; /* known size of P (only grows) */
  uint64_t shm_size;           /* writer-side: known size of P-shm */
  uint64_t wal_size[2];        /* writer-side: known sizes of the WAL files (0: unknown) */
  sx__mutex map_mu;            /* SX_RANK_MAP: serializes creating mappings */

  /* In-process writer exclusion, paired with the OFD writer byte. */
  sx__mutex wmu;
  sx__cond wcond;
  int wbusy;
  pthread_t wowner; /* the thread that set wbusy (it must never wait for itself) */

  /* Reader slots this handle owns (its OFD holds their lock bytes). */
  sx__mutex slot_mu;
  uint8_t owned[SX__NSLOTS];
  int idle[SX__NSLOTS];
  int nidle;
  int slot_hint;
};

/* ---- small helpers -------------------------------------------------------- */

/* Header fields are loaded with acquire so the re-check of `ver` after them cannot move
 * before them (the seqlock read side, without a fence TSan cannot model). */
#define LD64(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ST64(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

uint64_t sx__page0_user_version(const uint8_t *page0) { return rd64(page0 + P0_USERVER); }
void sx__page0_set_user_version(uint8_t *page0, uint64_t v) { wr64(page0 + P0_USERVER, v); }

/* Fletcher-style running checksum over 16-byte blocks (n % 16 == 0). */
static void cksum(const uint8_t *d, size_t n, uint64_t *s0, uint64_t *s1) {
  uint64_t a = *s0, b = *s1;
  for (size_t i = 0; i < n; i += 16) {
    uint64_t x, y;
    memcpy(&x, d + i, 8);
    memcpy(&y, d + i + 8, 8);
    a += x + b;
    b += y + a;
  }
  *s0 = a;
  *s1 = b;
}

static char *strcat2(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *r = malloc(la + lb + 1);
  if (!r) return NULL;
  memcpy(r, a, la);
  memcpy(r + la, b, lb + 1);
  return r;
}

static uint32_t random32(void) {
  uint32_t v = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f) {
    if (fread(&v, sizeof v, 1, f) != 1) v = 0;
    fclose(f);
  }
  return v ^ (uint32_t)sx__now_ns() ^ ((uint32_t)getpid() << 16);
}

static int forked(const sx__pager *p) { return p->fork_gen != sx__fork_generation(); }

int sx__pager_poisoned(const sx__pager *p) { return atomic_load(&p->poisoned); }
uint32_t sx__pager_page_size(const sx__pager *p) { return p->ps; }
const char *sx__pager_path(const sx__pager *p) { return p->path; }

/* ---- the shared header ---------------------------------------------------- */

static void hdr_load(const hdrc *src, hdrc *h) {
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

static void hdr_store(hdrc *dst, const hdrc *h) {
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

/* A consistent copy of the published header; returns the version it came from. */
static uint64_t hdr_read(const sx__pager *p, hdrc *h) {
  for (;;) {
    uint64_t v1 = __atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE);
    hdr_load(&p->hdr->copy[v1 & 1], h);
    if (__atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE) == v1) return v1;
  }
}

/* Writer only: publish h as the new header. The store of `ver` is sequentially
 * consistent: with the readers' sequentially consistent slot stores and `ver` loads,
 * that is the Dekker pairing the reader protocol relies on (no fences needed). */
static void hdr_publish(sx__pager *p, const hdrc *h) {
  uint64_t v = __atomic_load_n(&p->hdr->ver, __ATOMIC_RELAXED);
  hdr_store(&p->hdr->copy[(v + 1) & 1], h);
  __atomic_store_n(&p->hdr->ver, v + 1, __ATOMIC_SEQ_CST);
}

/* ---- maps ------------------------------------------------------------------ */

static uint8_t *map_chunk(sx__pager *p, uint8_t **slot, sx__file *f, uint64_t off, size_t len,
                          int writable, sx_error *err) {
  sx__mutex_lock(&p->map_mu);
  uint8_t *m = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (!m) {
    void *addr = NULL;
    if (sx__file_mmap(f, off, len, writable, &addr, err) == SX_OK) {
      m = addr;
      __atomic_store_n(slot, m, __ATOMIC_RELEASE);
    }
  }
  sx__mutex_unlock(&p->map_mu);
  return m;
}

static int p_size_covers(sx__pager *p, uint64_t end, sx_error *err) {
  if (atomic_load_explicit(&p->p_size, memory_order_acquire) >= end) return SX_OK;
  uint64_t sz = 0;
  int rc = sx__file_size(p->db, &sz, err);
  if (rc) return rc;
  uint64_t cur = atomic_load(&p->p_size);
  while (sz > cur && !atomic_compare_exchange_weak(&p->p_size, &cur, sz)) {
  }
  if (sz >= end) return SX_OK;
  return sx__err_set(err, SX_CORRUPT, "page %llu of '%s' is beyond the end of the file",
                     (unsigned long long)(end / p->ps - 1), p->path);
}

/* Pointer to page pgno in P (the caller has checked it is the right version). */
static int p_page(sx__pager *p, uint32_t pgno, const uint8_t **out, sx_error *err) {
  uint64_t off = (uint64_t)pgno * p->ps;
  int rc = p_size_covers(p, off + p->ps, err);
  if (rc) return rc;
  size_t k = pgno / P_CHUNK_PAGES;
  uint8_t *m = __atomic_load_n(&p->pmap[k], __ATOMIC_ACQUIRE);
  if (!m) {
    m = map_chunk(p, &p->pmap[k], p->db, k * P_CHUNK_PAGES * p->ps, P_CHUNK_PAGES * p->ps, 0, err);
    if (!m) return err ? err->code : SX_IO;
  }
  *out = m + (off - k * P_CHUNK_PAGES * p->ps);
  return SX_OK;
}

/* Pointer to the frame header of frame r (1-based) of WAL file w; the page image
 * follows it. */
static int wal_frame(sx__pager *p, int w, uint64_t r, const uint8_t **out, sx_error *err) {
  uint64_t off = WAL_HDR + (r - 1) * p->fsz;
  size_t k = off / WAL_CHUNK;
  if (k >= p->nwalchunks)
    return sx__err_set(err, SX_CORRUPT, "frame %llu of '%s' is past the WAL cap",
                       (unsigned long long)r, p->wal_path[w]);
  uint8_t *m = __atomic_load_n(&p->walmap[w][k], __ATOMIC_ACQUIRE);
  if (!m) {
    m = map_chunk(p, &p->walmap[w][k], p->wal[w], k * WAL_CHUNK, p->walchunk_len, 0, err);
    if (!m) return err ? err->code : SX_IO;
  }
  *out = m + (off - k * WAL_CHUNK);
  return SX_OK;
}

typedef struct seg {
  uint32_t *pgno; /* SEG_FRAMES entries: page of frame k*SEG_FRAMES + i + 1 */
  uint16_t *hash; /* SEG_NSLOT entries: i + 1, or 0 for empty */
} seg;

/* Segment k of index area a (one area per WAL file). */
static int seg_get(sx__pager *p, int a, size_t k, seg *s, sx_error *err) {
  if (k >= p->nsegs)
    return sx__err_set(err, SX_CORRUPT, "wal-index segment %zu of '%s' is past the WAL cap", k,
                       p->shm_path);
  size_t at = 2 * k + (size_t)a;
  uint8_t *m = __atomic_load_n(&p->segmap[at], __ATOMIC_ACQUIRE);
  if (!m) {
    m = map_chunk(p, &p->segmap[at], p->shm, SHM_HDR_BYTES + (uint64_t)at * SEG_BYTES, SEG_BYTES, 1,
                  err);
    if (!m) return err ? err->code : SX_IO;
  }
  s->pgno = (uint32_t *)m;
  s->hash = (uint16_t *)(m + SEG_FRAMES * 4);
  return SX_OK;
}

static uint32_t hkey(uint32_t pgno) { return (pgno * 383u) & (SEG_NSLOT - 1); }

/* Newest frame r in (lo, hi] (relative numbers) of index area a holding pgno; 0 if
 * none. */
static int wal_find(sx__pager *p, int a, uint32_t pgno, uint64_t lo, uint64_t hi, uint64_t *out,
                    sx_error *err) {
  *out = 0;
  if (hi <= lo) return SX_OK;
  for (int64_t k = (int64_t)((hi - 1) / SEG_FRAMES); k >= (int64_t)(lo / SEG_FRAMES); k--) {
    seg s = {NULL, NULL};
    int rc = seg_get(p, a, (size_t)k, &s, err);
    if (rc) return rc;
    uint64_t best = 0;
    uint32_t h = hkey(pgno);
    for (unsigned n = 0; n < SEG_NSLOT; n++, h = (h + 1) & (SEG_NSLOT - 1)) {
      uint16_t v = __atomic_load_n(&s.hash[h], __ATOMIC_ACQUIRE);
      if (v == 0) break;
      uint64_t r = (uint64_t)k * SEG_FRAMES + v;
      if (r > lo && r <= hi && r > best && __atomic_load_n(&s.pgno[v - 1], __ATOMIC_RELAXED) == pgno)
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
static int shm_cover_seg(sx__pager *p, size_t k, sx_error *err) {
  uint64_t need = SHM_HDR_BYTES + (uint64_t)(2 * k + 2) * SEG_BYTES;
  if (p->shm_size >= need) return SX_OK;
  uint64_t sz = 0;
  int rc = sx__file_size(p->shm, &sz, err);
  if (rc) return rc;
  if (sz < need) {
    uint64_t grow = SHM_HDR_BYTES + (uint64_t)(2 * k + 16) * SEG_BYTES;
    rc = sx__file_truncate(p->shm, grow, err);
    if (rc) return rc;
    sz = grow;
  }
  p->shm_size = sz;
  return SX_OK;
}

/* Writer: record that relative frame r holds pgno. The first frame of a segment
 * clears it (it may hold entries of an earlier WAL generation). */
static int index_append(sx__pager *p, int a, uint64_t r, uint32_t pgno, sx_error *err) {
  size_t k = (size_t)((r - 1) / SEG_FRAMES);
  unsigned i = (unsigned)((r - 1) % SEG_FRAMES);
  int rc = shm_cover_seg(p, k, err);
  if (rc) return rc;
  seg s = {NULL, NULL};
  rc = seg_get(p, a, k, &s, err);
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
static int index_truncate(sx__pager *p, int a, uint64_t rmx, sx_error *err) {
  if (rmx % SEG_FRAMES == 0) return SX_OK; /* the next frame starts a fresh segment */
  size_t k = (size_t)(rmx / SEG_FRAMES);
  if (k >= p->nsegs) return SX_OK;
  int rc = shm_cover_seg(p, k, err);
  if (rc) return rc;
  seg s = {NULL, NULL};
  rc = seg_get(p, a, k, &s, err);
  if (rc) return rc;
  unsigned keep = (unsigned)(rmx % SEG_FRAMES);
  for (unsigned j = 0; j < SEG_NSLOT; j++) {
    uint16_t v = __atomic_load_n(&s.hash[j], __ATOMIC_RELAXED);
    if (v > keep) __atomic_store_n(&s.hash[j], 0, __ATOMIC_RELAXED);
  }
  for (unsigned j = keep; j < SEG_FRAMES; j++) __atomic_store_n(&s.pgno[j], 0, __ATOMIC_RELAXED);
  return SX_OK;
}

/* ---- reading pages of a view ----------------------------------------------- */

static int view_page(sx__pager *p, const sx__snap *s, uint32_t pgno, const uint8_t **out,
                     sx_error *err) {
  if (pgno >= s->npages)
    return sx__err_set(err, SX_CORRUPT, "page %u of '%s' is beyond the database size of %u pages",
                       pgno, p->path, s->npages);
  /* Frames (floor, mx]: the current generation's part first (newer), then the
   * previous generation's, then P. */
  uint64_t r = 0;
  int cur = (int)(s->gen & 1), rc;
  if (s->mx > s->base && s->mx > s->floor) {
    uint64_t lo = s->floor > s->base ? s->floor - s->base : 0;
    rc = wal_find(p, cur, pgno, lo, s->mx - s->base, &r, err);
    if (rc) return rc;
    if (r) goto wal;
  }
  if (s->floor < s->base && s->floor < s->mx) {
    cur ^= 1;
    uint64_t hi = (s->mx < s->base ? s->mx : s->base) - s->pbase;
    rc = wal_find(p, cur, pgno, s->floor - s->pbase, hi, &r, err);
    if (rc) return rc;
    if (r) goto wal;
  }
  return p_page(p, pgno, out, err);
wal:;
  const uint8_t *f;
  rc = wal_frame(p, cur, r, &f, err);
  if (rc) return rc;
  *out = f + FRAME_HDR;
  return SX_OK;
}

int sx__pager_snap_page(sx__pager *p, const sx__snap *s, uint32_t pgno, const uint8_t **out,
                        sx_error *err) {
  return view_page(p, s, pgno, out, err);
}

/* ---- reader slots ----------------------------------------------------------- */

static int slot_acquire(sx__pager *p, int *out, sx_error *err) {
  int rc = SX_OK;
  sx__mutex_lock(&p->slot_mu);
  if (p->nidle > 0) {
    *out = p->idle[--p->nidle];
  } else {
    rc = SX_BUSY;
    for (int n = 0; n < SX__NSLOTS; n++) {
      int i = (p->slot_hint + n) % SX__NSLOTS;
      if (p->owned[i]) continue;
      if (sx__file_lock(p->shm, LK_SLOT(i), 1, SX__WRLOCK, 0, NULL) == SX_OK) {
        p->owned[i] = 1;
        p->slot_hint = (i + 1) % SX__NSLOTS;
        *out = i;
        rc = SX_OK;
        break;
      }
    }
  }
  sx__mutex_unlock(&p->slot_mu);
  if (rc)
    sx__err_set(err, SX_BUSY, "all %d reader slots of '%s' are in use", SX__NSLOTS, p->shm_path);
  return rc;
}

/* A handle keeps a few idle slots locked so that beginning a read session costs no
 * system call; few enough that many processes cannot exhaust the table. */
#define IDLE_SLOTS_KEPT 4

static void slot_release(sx__pager *p, int i) {
  __atomic_store_n(&p->slots[i], SLOT_IDLE, __ATOMIC_RELEASE);
  sx__mutex_lock(&p->slot_mu);
  if (p->nidle < IDLE_SLOTS_KEPT) {
    p->idle[p->nidle++] = i;
  } else {
    p->owned[i] = 0;
    sx__file_lock(p->shm, LK_SLOT(i), 1, SX__UNLOCK, 0, NULL);
  }
  sx__mutex_unlock(&p->slot_mu);
}

/* Value of slot i if a live reader pins it, else SLOT_IDLE. */
static uint64_t slot_live(sx__pager *p, int i) {
  uint64_t v = __atomic_load_n(&p->slots[i], __ATOMIC_SEQ_CST);
  if (v == SLOT_IDLE) return SLOT_IDLE;
  sx__mutex_lock(&p->slot_mu);
  int mine = p->owned[i];
  sx__mutex_unlock(&p->slot_mu);
  if (mine) return v;
  /* A value left by a dead process stays behind; its lock byte tells. */
  return sx__file_lock_held(p->shm, LK_SLOT(i), 1, SX__WRLOCK) == 1 ? v : SLOT_IDLE;
}

int sx__pager_snap_begin(sx__pager *p, sx__snap *s, sx_error *err) {
  int slot;
  int rc = slot_acquire(p, &slot, err);
  if (rc) return rc;
  hdrc h;
  for (;;) {
    uint64_t v1 = hdr_read(p, &h);
    /* The floor first: a writer that sees the slot's new value sees its floor. */
    __atomic_store_n(&p->floors[slot], h.backfill, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->slots[slot], h.mx, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->slot_pids[slot], p->pid, __ATOMIC_RELAXED);
    if (__atomic_load_n(&p->hdr->ver, __ATOMIC_SEQ_CST) == v1) break;
  }
  s->mx = h.mx;
  s->floor = h.backfill;
  s->base = h.base;
  s->pbase = h.pbase;
  s->gen = h.gen;
  s->npages = h.npages;
  s->slot = slot;
  return SX_OK;
}

void sx__pager_snap_end(sx__pager *p, sx__snap *s) {
  if (s->slot < 0) return;
  /* In a fork child the slot belongs to the parent: leave it alone. */
  if (!forked(p)) slot_release(p, s->slot);
  s->slot = -1;
}

/* Smallest snapshot pinned by a live reader (lower bound for checkpoints), and
 * whether a pinned reader reads WAL frames at or below `below` (those of the
 * previous generation, when below is the current base). */
static void scan_slots(sx__pager *p, uint64_t below, uint64_t *minpin, int *prev_users,
                       int *nreaders, int32_t *pid) {
  *minpin = UINT64_MAX;
  *prev_users = 0;
  if (nreaders) *nreaders = 0;
  if (pid) *pid = 0;
  for (int i = 0; i < SX__NSLOTS; i++) {
    uint64_t m = slot_live(p, i);
    if (m == SLOT_IDLE) continue;
    uint64_t fl = __atomic_load_n(&p->floors[i], __ATOMIC_SEQ_CST);
    if (fl < m && fl < below) *prev_users = 1;
    if (nreaders) (*nreaders)++;
    if (m < *minpin) {
      *minpin = m;
      if (pid) *pid = __atomic_load_n(&p->slot_pids[i], __ATOMIC_RELAXED);
    }
  }
}

/* ---- open / recovery -------------------------------------------------------- */

/* The WAL header: magic, version, page size, generation, salts, then how the
 * previous generation ended (its frame count and final running checksum, so recovery
 * can tell it is whole), and a checksum of the first 48 bytes. */
static void wal_header_make(uint8_t b[WAL_HDR], uint32_t ps, const hdrc *h, uint64_t *ck0,
                            uint64_t *ck1) {
  memset(b, 0, WAL_HDR);
  wr32(b, WAL_MAGIC);
  wr32(b + 4, WAL_VERSION);
  wr32(b + 8, ps);
  wr32(b + 12, h->gen);
  wr32(b + 16, h->salt0);
  wr32(b + 20, h->salt1);
  wr32(b + 24, (uint32_t)(h->base - h->pbase));
  wr64(b + 32, h->pck0);
  wr64(b + 40, h->pck1);
  uint64_t a = 0, c = 0;
  cksum(b, 48, &a, &c);
  wr64(b + 48, a);
  wr64(b + 56, c);
  *ck0 = a;
  *ck1 = c;
}

/* New salts for the current generation, which has no frames yet. */
static void hdr_resalt(sx__pager *p, hdrc *h) {
  h->salt0 = random32();
  h->salt1 = random32();
  uint8_t b[WAL_HDR];
  wal_header_make(b, p->ps, h, &h->ck0, &h->ck1);
}

/* The next generation, in the other WAL file, starting after frame mx. */
static void hdr_next_gen(sx__pager *p, hdrc *h) {
  h->pbase = h->base;
  h->pck0 = h->ck0;
  h->pck1 = h->ck1;
  h->base = h->mx;
  h->gen++;
  hdr_resalt(p, h);
}

typedef struct walhdr {
  int ok;
  uint32_t gen, salt0, salt1, prev_frames;
  uint64_t pck0, pck1, ck0, ck1;
} walhdr;

static int read_wal_header(sx__pager *p, int w, walhdr *wh, sx_error *err) {
  memset(wh, 0, sizeof *wh);
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc || sz < WAL_HDR) return rc;
  uint8_t b[WAL_HDR];
  rc = sx__file_read(p->wal[w], b, WAL_HDR, 0, err);
  if (rc) return rc;
  uint64_t a = 0, c = 0;
  cksum(b, 48, &a, &c);
  wh->ok = rd32(b) == WAL_MAGIC && rd32(b + 4) == WAL_VERSION && rd32(b + 8) == p->ps &&
           rd64(b + 48) == a && rd64(b + 56) == c && rd32(b + 24) <= SX__WAL_FRAMES_MAX &&
           (rd32(b + 12) & 1) == (uint32_t)w; /* generation g lives in file g & 1 */
  wh->gen = rd32(b + 12);
  wh->salt0 = rd32(b + 16);
  wh->salt1 = rd32(b + 20);
  wh->prev_frames = rd32(b + 24);
  wh->pck0 = rd64(b + 32);
  wh->pck1 = rd64(b + 40);
  wh->ck0 = a;
  wh->ck1 = c;
  return SX_OK;
}

typedef struct replay {
  uint64_t last;     /* last valid commit frame (relative), 0 if none */
  uint32_t npages;   /* database size at it */
  uint64_t ck0, ck1; /* running checksum at it (the header's if none) */
} replay;

/* Indexes frames 1..limit of WAL file w (into index area w) while their salts match
 * and their checksum chain holds; reports the last commit among them. */
static int replay_wal(sx__pager *p, int w, const walhdr *wh, uint64_t limit, replay *out,
                      sx_error *err) {
  memset(out, 0, sizeof *out);
  out->ck0 = wh->ck0;
  out->ck1 = wh->ck1;
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc) return rc;
  uint64_t nfr = sz < WAL_HDR ? 0 : (sz - WAL_HDR) / p->fsz;
  if (nfr > limit) nfr = limit;
  /* Bounded by the format's limit, never by this handle's wal_max (a policy for
   * its own commits): another handle may have written a longer WAL. */
  if (nfr > SX__WAL_FRAMES_MAX) nfr = SX__WAL_FRAMES_MAX;
  size_t per = 256; /* frames per read */
  uint8_t *buf = nfr ? malloc((size_t)p->fsz * per) : NULL;
  if (nfr && !buf) return sx__err_set(err, SX_NOMEM, "out of memory recovering '%s'", p->wal_path[w]);
  uint64_t ck0 = wh->ck0, ck1 = wh->ck1, r = 1;
  int stop = 0;
  while (r <= nfr && !stop && !rc) {
    size_t cnt = (size_t)((nfr - r + 1) < per ? (nfr - r + 1) : per);
    rc = sx__file_read(p->wal[w], buf, cnt * p->fsz, WAL_HDR + (r - 1) * p->fsz, err);
    for (size_t i = 0; i < cnt && !rc; i++, r++) {
      const uint8_t *f = buf + i * p->fsz;
      if (rd32(f + 8) != wh->salt0 || rd32(f + 12) != wh->salt1) {
        stop = 1;
        break;
      }
      cksum(f, 16, &ck0, &ck1);
      cksum(f + FRAME_HDR, p->ps, &ck0, &ck1);
      if (rd64(f + 16) != ck0 || rd64(f + 24) != ck1) {
        stop = 1;
        break;
      }
      rc = index_append(p, w, r, rd32(f), err);
      if (!rc && rd32(f + 4)) {
        out->last = r;
        out->npages = rd32(f + 4);
        out->ck0 = ck0;
        out->ck1 = ck1;
      }
    }
  }
  free(buf);
  if (!rc) rc = index_truncate(p, w, out->last, err);
  return rc;
}

/*
 * Rebuilds the shared index from the WAL files. The newer generation (by the
 * generation number in a valid header) is the current one; its header says how many
 * frames the previous generation had and how its checksum chain ended. If the other
 * file holds that previous generation whole, it is replayed first. If it holds it
 * damaged, only its valid prefix is replayed and the newer generation is ignored (it
 * builds on frames that are gone). If it holds something else, the previous
 * generation was already copied into P: a generation's file is reused only after
 * every frame of it is in P.
 */
static int recover(sx__pager *p, sx_error *err) {
  hdrc h;
  memset(&h, 0, sizeof h);
  uint64_t psz = 0;
  int rc = sx__file_size(p->db, &psz, err);
  if (rc) return rc;
  atomic_store(&p->p_size, psz);
  uint32_t npages_p = (uint32_t)(psz / p->ps);
  if (npages_p == 0) npages_p = 1;
  h.npages = npages_p;

  walhdr wh[2];
  for (int w = 0; w < 2 && !rc; w++) rc = read_wal_header(p, w, &wh[w], err);
  if (rc) return rc;
  int n = -1;
  if (wh[0].ok && wh[1].ok) n = (int32_t)(wh[1].gen - wh[0].gen) > 0 ? 1 : 0;
  else if (wh[0].ok) n = 0;
  else if (wh[1].ok) n = 1;
  if (n < 0) {
    /* No WAL: a fresh generation in P-wal. */
    h.gen = 2;
    hdr_resalt(p, &h);
    goto publish;
  }
  int o = 1 - n;
  replay rp, rn;
  if (wh[n].prev_frames > 0 && wh[o].ok && wh[o].gen == wh[n].gen - 1) {
    rc = replay_wal(p, o, &wh[o], wh[n].prev_frames, &rp, err);
    if (rc) return rc;
    if (rp.last != wh[n].prev_frames || rp.ck0 != wh[n].pck0 || rp.ck1 != wh[n].pck1) {
      /* The previous generation is damaged: keep its valid prefix, drop the newer. */
      h.gen = wh[o].gen;
      h.salt0 = wh[o].salt0;
      h.salt1 = wh[o].salt1;
      h.pck0 = wh[o].pck0;
      h.pck1 = wh[o].pck1;
      h.mx = rp.last;
      h.npages = rp.last ? rp.npages : npages_p;
      h.ck0 = rp.ck0;
      h.ck1 = rp.ck1;
      if (rp.last == 0) hdr_resalt(p, &h);
      goto publish;
    }
    h.base = wh[n].prev_frames;
    h.npages = rp.npages;
  }
  h.gen = wh[n].gen;
  h.salt0 = wh[n].salt0;
  h.salt1 = wh[n].salt1;
  h.pck0 = wh[n].pck0;
  h.pck1 = wh[n].pck1;
  rc = replay_wal(p, n, &wh[n], SX__WAL_FRAMES_MAX, &rn, err);
  if (rc) return rc;
  h.mx = h.base + rn.last;
  if (rn.last) h.npages = rn.npages;
  h.ck0 = rn.ck0;
  h.ck1 = rn.ck1;
  /* A generation without frames gets new salts, so no frame left in its file from
   * before can ever chain on. */
  if (rn.last == 0) hdr_resalt(p, &h);
publish:
  h.backfill = 0;
  h.target = 0;
  h.pbase = 0;
  hdr_publish(p, &h);
  hdr_publish(p, &h); /* both copies valid */
  return SX_OK;
}

static int create_db_file(sx__pager *p, sx_error *err) {
  char suffix[64];
  snprintf(suffix, sizeof suffix, ".tmp-%d-%08x", (int)getpid(), random32());
  char *tmp = strcat2(p->path, suffix);
  if (!tmp) return sx__err_set(err, SX_NOMEM, "out of memory");
  uint8_t *page = calloc(1, p->ps);
  int rc = page ? SX_OK : sx__err_set(err, SX_NOMEM, "out of memory");
  sx__file *f = NULL;
  if (!rc) rc = p->vfs->open(p->vfs, tmp, SX__OPEN_WRITE | SX__OPEN_CREATE, &f, err);
  if (!rc) {
    memcpy(page + P0_MAGIC, P_MAGIC, 16);
    wr32(page + P0_VERSION, SX_FORMAT_VERSION);
    wr32(page + P0_PAGESIZE, p->ps);
    rc = sx__file_write(f, page, p->ps, 0, err);
    if (!rc) rc = sx__file_sync(f, 0, err);
    sx__file_close(f);
    if (!rc) rc = p->vfs->rename(p->vfs, tmp, p->path, err);
    if (rc) p->vfs->unlink(p->vfs, tmp, NULL);
  }
  free(page);
  free(tmp);
  return rc;
}

static int check_db_header(sx__pager *p, uint32_t want_ps, sx_error *err) {
  uint64_t sz = 0;
  int rc = sx__file_size(p->db, &sz, err);
  if (rc) return rc;
  uint8_t b[64];
  if (sz < sizeof b)
    return sx__err_set(err, SX_CORRUPT, "'%s' is not a Sextant database (file too short: %llu bytes)",
                       p->path, (unsigned long long)sz);
  rc = sx__file_read(p->db, b, sizeof b, 0, err);
  if (rc) return rc;
  if (memcmp(b + P0_MAGIC, P_MAGIC, 16) != 0)
    return sx__err_set(err, SX_CORRUPT, "'%s' is not a Sextant database (bad magic)", p->path);
  uint32_t ver = rd32(b + P0_VERSION);
  if (ver != SX_FORMAT_VERSION)
    return sx__err_set(err, SX_VERSION, "database '%s' has format version %u; this library reads version %d",
                       p->path, ver, SX_FORMAT_VERSION);
  uint32_t ps = rd32(b + P0_PAGESIZE);
  if (ps < 4096 || ps > 65536 || (ps & (ps - 1)))
    return sx__err_set(err, SX_CORRUPT, "database '%s' has an invalid page size %u", p->path, ps);
  (void)want_ps;
  p->ps = ps;
  p->fsz = FRAME_HDR + ps;
  return SX_OK;
}

static int open_shm_region(sx__pager *p, int init, sx_error *err) {
  int rc;
  if (init) {
    rc = sx__file_truncate(p->shm, 0, err);
    if (!rc) rc = sx__file_truncate(p->shm, SHM_HDR_BYTES, err);
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
  p->hdr = (shm_hdr *)m;
  p->slots = (uint64_t *)(p->shm_base + SHM_SLOTS_OFF);
  p->floors = (uint64_t *)(p->shm_base + SHM_FLOORS_OFF);
  p->slot_pids = (int32_t *)(p->shm_base + SHM_PIDS_OFF);
  if (init) {
    for (int i = 0; i < SX__NSLOTS; i++) __atomic_store_n(&p->slots[i], SLOT_IDLE, __ATOMIC_RELAXED);
    p->hdr->magic = SHM_MAGIC;
    p->hdr->version = SHM_VERSION;
    p->hdr->page_size = p->ps;
    p->hdr->nslots = SX__NSLOTS;
    rc = recover(p, err);
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

static int checkpoint_locked(sx__pager *p, hdrc *h, sx_error *err);

static void pager_free_maps(sx__pager *p) {
  if (forked(p)) {
    /* Mappings are not inherited (MADV_DONTFORK); their addresses may already
     * belong to mappings this process made since. */
    free(p->pmap);
    free(p->walmap[0]);
    free(p->walmap[1]);
    free(p->segmap);
    p->pmap = NULL;
    p->walmap[0] = p->walmap[1] = NULL;
    p->segmap = NULL;
    p->shm_base = NULL;
    return;
  }
  if (p->pmap) {
    for (size_t k = 0; k < P_CHUNKS; k++)
      if (p->pmap[k]) p->vfs->munmap(p->pmap[k], P_CHUNK_PAGES * p->ps);
    free(p->pmap);
  }
  for (int w = 0; w < 2; w++) {
    if (!p->walmap[w]) continue;
    for (size_t k = 0; k < p->nwalchunks; k++)
      if (p->walmap[w][k]) p->vfs->munmap(p->walmap[w][k], p->walchunk_len);
    free(p->walmap[w]);
  }
  if (p->segmap) {
    for (size_t k = 0; k < 2 * p->nsegs; k++)
      if (p->segmap[k]) p->vfs->munmap(p->segmap[k], SEG_BYTES);
    free(p->segmap);
  }
  if (p->shm_base) p->vfs->munmap(p->shm_base, SHM_HDR_BYTES);
  p->pmap = NULL;
  p->walmap[0] = p->walmap[1] = NULL;
  p->segmap = NULL;
  p->shm_base = NULL;
}

static void pager_destroy(sx__pager *p) {
  pager_free_maps(p);
  sx__file_close(p->db);
  sx__file_close(p->wal[0]);
  sx__file_close(p->wal[1]);
  sx__file_close(p->shm); /* drops every OFD lock this handle held */
  sx__mutex_destroy(&p->map_mu);
  sx__mutex_destroy(&p->wmu);
  sx__cond_destroy(&p->wcond);
  sx__mutex_destroy(&p->slot_mu);
  free(p->path);
  free(p->wal_path[0]);
  free(p->wal_path[1]);
  free(p->shm_path);
  free(p);
}

int sx__pager_open(const char *path, const sx__pager_config *cfg, sx__pager **out,
                   sx_error *err) {
  *out = NULL;
  sx__pager *p = calloc(1, sizeof *p);
  if (!p) return sx__err_set(err, SX_NOMEM, "out of memory opening '%s'", path);
  p->vfs = cfg->vfs ? cfg->vfs : sx__vfs_default();
  p->read_only = cfg->read_only;
  p->sync = cfg->sync;
  p->autockpt = cfg->autocheckpoint ? cfg->autocheckpoint : 1000;
  p->wal_max = cfg->wal_max_frames ? cfg->wal_max_frames : (1u << 20);
  if (p->wal_max > SX__WAL_FRAMES_MAX) p->wal_max = SX__WAL_FRAMES_MAX;
  p->fork_gen = sx__fork_generation();
  p->pid = (int32_t)getpid();
  p->ps = cfg->page_size ? cfg->page_size : 4096;
  p->fsz = FRAME_HDR + p->ps;
  sx__mutex_init(&p->map_mu, SX_RANK_MAP, "map");
  sx__mutex_init(&p->wmu, SX_RANK_WRITER, "writer");
  sx__cond_init(&p->wcond);
  sx__mutex_init(&p->slot_mu, SX_RANK_SLOTS, "reader slots");
  p->path = strdup(path);
  p->wal_path[0] = strcat2(path, "-wal");
  p->wal_path[1] = strcat2(path, "-wal2");
  p->shm_path = strcat2(path, "-shm");
  if (!p->path || !p->wal_path[0] || !p->wal_path[1] || !p->shm_path) {
    pager_destroy(p);
    return sx__err_set(err, SX_NOMEM, "out of memory opening '%s'", path);
  }
  int rc = SX_OK;
  int exists = p->vfs->exists(p->vfs, path, err);
  if (exists < 0) rc = -exists;
  else if (!exists && (cfg->read_only || !cfg->create))
    rc = sx__err_set(err, SX_NOT_FOUND, "database '%s' does not exist", path);
  if (!rc) {
    rc = sx__fs_check_local(path, err);
    if (rc == SX_NOT_FOUND)
      rc = sx__err_set(err, SX_IO, "cannot create database '%s': its directory does not exist", path);
  }
  if (!rc) {
    rc = p->vfs->open(p->vfs, p->shm_path, SX__OPEN_WRITE | SX__OPEN_CREATE, &p->shm, err);
    if (rc == SX_NOT_FOUND)
      rc = sx__err_set(err, SX_IO, "cannot create database '%s': its directory does not exist", path);
  }
  int locked_recover = 0;
  if (!rc) {
    rc = sx__file_lock(p->shm, LK_RECOVER, 1, SX__WRLOCK, 30000, err);
    locked_recover = rc == SX_OK;
  }
  if (!rc && !exists) {
    exists = p->vfs->exists(p->vfs, path, err);
    if (exists < 0) rc = -exists;
    else if (!exists) rc = create_db_file(p, err);
  }
  if (!rc)
    rc = p->vfs->open(p->vfs, path, p->read_only ? SX__OPEN_READ : SX__OPEN_WRITE, &p->db, err);
  if (!rc && !p->read_only) {
    /* An empty file (made by touch, say) becomes a new database, as in SQLite. */
    uint64_t sz = 1;
    rc = sx__file_size(p->db, &sz, err);
    if (!rc && sz == 0) {
      sx__file_close(p->db);
      p->db = NULL;
      rc = create_db_file(p, err);
      if (!rc) rc = p->vfs->open(p->vfs, path, SX__OPEN_WRITE, &p->db, err);
    }
  }
  if (!rc) rc = check_db_header(p, cfg->page_size, err);
  if (!rc) {
    for (int w = 0; w < 2 && !rc; w++) {
      int wal_exists = p->vfs->exists(p->vfs, p->wal_path[w], err);
      if (wal_exists < 0) rc = -wal_exists;
      if (!rc)
        rc = p->vfs->open(p->vfs, p->wal_path[w], SX__OPEN_WRITE | SX__OPEN_CREATE, &p->wal[w], err);
      if (!rc && !wal_exists) rc = p->vfs->dir_sync(p->vfs, p->wal_path[w], err);
    }
  }
  if (!rc) {
    p->pmap = calloc(P_CHUNKS, sizeof *p->pmap);
    /* Sized for the longest WAL any handle may write, not this one's cap. */
    p->nwalchunks = (size_t)((WAL_HDR + (uint64_t)SX__WAL_FRAMES_MAX * p->fsz) / WAL_CHUNK + 2);
    size_t osz = sx__os_page_size();
    p->walchunk_len = (size_t)(WAL_CHUNK + ((p->fsz + osz - 1) / osz) * osz);
    p->walmap[0] = calloc(p->nwalchunks, sizeof *p->walmap[0]);
    p->walmap[1] = calloc(p->nwalchunks, sizeof *p->walmap[1]);
    p->nsegs = SX__WAL_FRAMES_MAX / SEG_FRAMES + 2;
    p->segmap = calloc(2 * p->nsegs, sizeof *p->segmap);
    if (!p->pmap || !p->walmap[0] || !p->walmap[1] || !p->segmap)
      rc = sx__err_set(err, SX_NOMEM, "out of memory");
  }
  if (!rc) {
    /* First opener (no other handle holds the dead man switch) rebuilds P-shm. */
    int alone = sx__file_lock(p->shm, LK_DMS, 1, SX__WRLOCK, 0, NULL) == SX_OK;
    rc = open_shm_region(p, alone, err);
    if (!rc) rc = sx__file_lock(p->shm, LK_DMS, 1, SX__RDLOCK, alone ? 0 : 30000, err);
  }
  if (locked_recover) sx__file_lock(p->shm, LK_RECOVER, 1, SX__UNLOCK, 0, NULL);
  if (rc) {
    pager_destroy(p);
    return rc;
  }
  *out = p;
  return SX_OK;
}

/*
 * The last handle on a database (no other handle, in any process, holds the dead man
 * switch) copies the whole WAL into P, syncs P, and empties the WAL files, so the
 * next open needs no replay and its readers find every page in P. A crash in the
 * middle leaves either the whole WAL (replaying it rewrites what P already holds) or
 * none of it. Best effort: any failure just leaves the WAL for recovery.
 */
static void close_cleanly(sx__pager *p) {
  if (p->read_only || sx__pager_poisoned(p)) return;
  if (sx__file_lock(p->shm, LK_DMS, 1, SX__WRLOCK, 0, NULL) != SX_OK) return;
  if (sx__file_lock(p->shm, LK_WRITER, 1, SX__WRLOCK, 0, NULL) != SX_OK) return;
  hdrc h;
  hdr_load(&p->hdr->copy[__atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE) & 1], &h);
  int rc = checkpoint_locked(p, &h, NULL);
  if (!rc && h.backfill == h.mx) rc = sx__file_sync(p->db, 1, NULL);
  /* The previous generation's file first, durably: were the current one emptied
   * and the previous one not, recovery would replay an older generation over P. */
  int prev = (int)((h.gen + 1) & 1), cur = prev ^ 1;
  if (!rc && h.backfill == h.mx) rc = sx__file_truncate(p->wal[prev], 0, NULL);
  if (!rc && h.backfill == h.mx) rc = sx__file_sync(p->wal[prev], 0, NULL);
  if (!rc && h.backfill == h.mx) rc = sx__file_truncate(p->wal[cur], 0, NULL);
  if (!rc && h.backfill == h.mx) sx__file_sync(p->wal[cur], 0, NULL);
  p->wal_size[0] = p->wal_size[1] = 0;
  sx__file_lock(p->shm, LK_WRITER, 1, SX__UNLOCK, 0, NULL);
}

void sx__pager_close(sx__pager *p) {
  /* In a fork child the descriptors share their open file descriptions with the
   * parent: closing ours leaves the parent's OFD locks in place (they go only with
   * the last descriptor), and nothing here unlocks explicitly. */
  if (!p) return;
  if (!forked(p) && p->shm_base) close_cleanly(p);
  pager_destroy(p);
}

/* ---- the write transaction ---------------------------------------------------- */

typedef struct dpage {
  uint32_t pgno;
  uint8_t *buf;
  uint8_t *undo;    /* image at the savepoint, when dirtied before it */
  int sp_new;       /* first dirtied after the savepoint */
} dpage;

struct sx__txn {
  sx__pager *p;
  hdrc h;        /* the header as of begin (the writer is its only mutator) */
  sx__snap view; /* committed state the transaction builds on */
  sx__mutex mu;  /* SX_RANK_WAL: the page table and allocation */
  dpage **tab;   /* open addressing by pgno (linear probing) */
  size_t cap, n; /* n: pages in the table */
  size_t used;   /* slots taken, tombstones included */
  uint32_t npages;
  unsigned fork_gen;
  int sp_active;
  uint32_t sp_npages;
};

/* Marks a page-table slot whose page a rollback removed. Its page number matches no
 * real page (the largest page number is UINT32_MAX - 1). */
static dpage TOMB = {.pgno = UINT32_MAX};

/* Longest slice of a wait between two looks at a cancel token. */
#define CANCEL_POLL_MS 10

static int cancelled_err(sx__pager *p, sx_error *err) {
  return sx__err_set(err, SX_CANCELLED, "wait for the writer lock of '%s' was cancelled", p->path);
}

/* Takes the writer lock: the in-process flag (threads of this handle), then the OFD
 * byte (other handles and processes), within timeout_ms (negative: for ever) and
 * until `cancel` is set. A wait for ever, without a token, by the thread that took
 * the lock (it may have handed its session to another thread, which may end it: a
 * bounded wait stays allowed) gets SX_BUSY at once instead of waiting for itself. */
static int writer_lock(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx_error *err) {
  if (sx__cancelled(cancel)) return cancelled_err(p, err);
  uint64_t deadline = timeout_ms > 0 ? sx__now_ns() + (uint64_t)timeout_ms * 1000000ull : 0;
  sx__mutex_lock(&p->wmu);
  if (p->wbusy && timeout_ms < 0 && !cancel && pthread_equal(p->wowner, pthread_self())) {
    sx__mutex_unlock(&p->wmu);
    return sx__err_set(err, SX_BUSY,
                       "this thread already holds the writer lock of '%s' (an open write session "
                       "or a checkpoint of this handle); end it first",
                       p->path);
  }
  while (p->wbusy && timeout_ms != 0 && !sx__cancelled(cancel)) {
    uint64_t until = deadline;
    if (cancel) {
      uint64_t slice = sx__now_ns() + CANCEL_POLL_MS * 1000000ull;
      if (!until || slice < until) until = slice;
    }
    if (sx__cond_wait(&p->wcond, &p->wmu, until) == ETIMEDOUT && until == deadline) break;
  }
  if (p->wbusy || sx__cancelled(cancel)) {
    int busy = p->wbusy;
    sx__mutex_unlock(&p->wmu);
    if (!busy) return cancelled_err(p, err);
    if (sx__cancelled(cancel)) return cancelled_err(p, err);
    return sx__err_set(err, SX_BUSY, "database '%s' has a write session open on this handle",
                       p->path);
  }
  p->wbusy = 1;
  p->wowner = pthread_self();
  sx__mutex_unlock(&p->wmu);
  /* The OFD byte: with a token, in slices, looking at it between them. */
  int rc;
  for (;;) {
    int left = timeout_ms;
    if (timeout_ms > 0) {
      uint64_t now = sx__now_ns();
      left = now >= deadline ? 0 : (int)((deadline - now) / 1000000ull);
      if (left == 0 && now < deadline) left = 1;
    }
    int slice = left;
    if (cancel && (left < 0 || left > CANCEL_POLL_MS)) slice = CANCEL_POLL_MS;
    rc = sx__file_lock(p->shm, LK_WRITER, 1, SX__WRLOCK, slice, NULL);
    if (rc != SX_BUSY || slice == left) break;
    if (sx__cancelled(cancel)) {
      rc = SX_CANCELLED;
      break;
    }
  }
  if (rc) {
    sx__mutex_lock(&p->wmu);
    p->wbusy = 0;
    sx__cond_broadcast(&p->wcond);
    sx__mutex_unlock(&p->wmu);
    if (rc == SX_CANCELLED) return cancelled_err(p, err);
    if (rc == SX_BUSY)
      return sx__err_set(err, SX_BUSY, "database '%s' is locked by another writer (waited %d ms)",
                         p->path, timeout_ms < 0 ? 0 : timeout_ms);
    return sx__err_set(err, rc, "cannot take the writer lock of '%s'", p->path);
  }
  return SX_OK;
}

static void writer_unlock(sx__pager *p) {
  sx__file_lock(p->shm, LK_WRITER, 1, SX__UNLOCK, 0, NULL);
  sx__mutex_lock(&p->wmu);
  p->wbusy = 0;
  sx__cond_broadcast(&p->wcond);
  sx__mutex_unlock(&p->wmu);
}

static int checkpoint_locked(sx__pager *p, hdrc *h, sx_error *err);

int sx__pager_write_begin(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx__txn **out,
                          sx_error *err) {
  *out = NULL;
  if (p->read_only)
    return sx__err_set(err, SX_READ_ONLY, "database '%s' is open read-only", p->path);
  if (sx__pager_poisoned(p))
    return sx__err_set(err, SX_IO, "database '%s' refuses writes after a failed sync; reopen it",
                       p->path);
  sx__txn *t = calloc(1, sizeof *t);
  if (!t) return sx__err_set(err, SX_NOMEM, "out of memory");
  int rc = writer_lock(p, timeout_ms, cancel, err);
  if (rc) {
    free(t);
    return rc;
  }
  t->p = p;
  t->fork_gen = p->fork_gen;
  hdr_load(&p->hdr->copy[__atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE) & 1], &t->h);
  if (__atomic_load_n(&p->hdr->appending, __ATOMIC_ACQUIRE)) {
    rc = index_truncate(p, (int)(t->h.gen & 1), t->h.mx - t->h.base, err);
    if (!rc) __atomic_store_n(&p->hdr->appending, 0, __ATOMIC_RELEASE);
  }
  if (rc) {
    writer_unlock(p);
    free(t);
    return rc;
  }
  t->view.mx = t->h.mx;
  t->view.floor = t->h.backfill;
  t->view.base = t->h.base;
  t->view.pbase = t->h.pbase;
  t->view.gen = t->h.gen;
  t->view.npages = t->h.npages;
  t->view.slot = -1;
  t->npages = t->h.npages;
  sx__mutex_init(&t->mu, SX_RANK_WAL, "page table");
  *out = t;
  return SX_OK;
}

static dpage *tab_find(sx__txn *t, uint32_t pgno) {
  if (!t->cap) return NULL;
  for (size_t i = (pgno * 2654435761u) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (!t->tab[i]) return NULL;
    if (t->tab[i]->pgno == pgno) return t->tab[i];
  }
}

static int tab_insert(sx__txn *t, dpage *d) {
  if ((t->used + 1) * 2 > t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    dpage **nt = calloc(ncap, sizeof *nt);
    if (!nt) return SX_NOMEM;
    t->used = 0;
    for (size_t i = 0; i < t->cap; i++) {
      if (!t->tab[i] || t->tab[i] == &TOMB) continue;
      t->used++;
      size_t j = (t->tab[i]->pgno * 2654435761u) & (ncap - 1);
      while (nt[j]) j = (j + 1) & (ncap - 1);
      nt[j] = t->tab[i];
    }
    free(t->tab);
    t->tab = nt;
    t->cap = ncap;
  }
  size_t j = (d->pgno * 2654435761u) & (t->cap - 1);
  while (t->tab[j]) j = (j + 1) & (t->cap - 1);
  t->tab[j] = d;
  t->n++;
  t->used++;
  return SX_OK;
}

/* Dirty image of pgno, copied from the committed page on first touch. t->mu held. */
static int write_locked(sx__txn *t, uint32_t pgno, uint8_t **out, sx_error *err) {
  dpage *d = tab_find(t, pgno);
  if (d) {
    if (t->sp_active && !d->sp_new && !d->undo) {
      d->undo = malloc(t->p->ps);
      if (!d->undo) return sx__err_set(err, SX_NOMEM, "out of memory for page %u", pgno);
      memcpy(d->undo, d->buf, t->p->ps);
    }
    *out = d->buf;
    return SX_OK;
  }
  if (pgno >= t->npages)
    return sx__err_set(err, SX_CORRUPT, "page %u is beyond the database size of %u pages", pgno,
                       t->npages);
  d = calloc(1, sizeof *d);
  uint8_t *buf = d ? aligned_alloc(64, t->p->ps) : NULL;
  if (!buf) {
    free(d);
    return sx__err_set(err, SX_NOMEM, "out of memory for page %u", pgno);
  }
  if (pgno < t->view.npages) {
    const uint8_t *src;
    int rc = view_page(t->p, &t->view, pgno, &src, err);
    if (rc) {
      free(buf);
      free(d);
      return rc;
    }
    memcpy(buf, src, t->p->ps);
  } else {
    memset(buf, 0, t->p->ps);
  }
  d->pgno = pgno;
  d->buf = buf;
  d->sp_new = t->sp_active;
  if (tab_insert(t, d)) {
    free(buf);
    free(d);
    return sx__err_set(err, SX_NOMEM, "out of memory for page %u", pgno);
  }
  *out = buf;
  return SX_OK;
}

int sx__txn_read(sx__txn *t, uint32_t pgno, const uint8_t **out, sx_error *err) {
  sx__mutex_lock(&t->mu);
  dpage *d = tab_find(t, pgno);
  uint32_t np = t->npages;
  sx__mutex_unlock(&t->mu);
  if (d) {
    *out = d->buf;
    return SX_OK;
  }
  if (pgno >= np)
    return sx__err_set(err, SX_CORRUPT, "page %u is beyond the database size of %u pages", pgno, np);
  return view_page(t->p, &t->view, pgno, out, err);
}

int sx__txn_write(sx__txn *t, uint32_t pgno, uint8_t **out, sx_error *err) {
  sx__mutex_lock(&t->mu);
  int rc = write_locked(t, pgno, out, err);
  sx__mutex_unlock(&t->mu);
  return rc;
}

int sx__txn_alloc(sx__txn *t, uint32_t *pgno, uint8_t **out, sx_error *err) {
  sx__mutex_lock(&t->mu);
  uint8_t *p0;
  int rc = write_locked(t, 0, &p0, err);
  if (!rc) {
    uint32_t head = rd32(p0 + P0_FREEHEAD);
    if (head) {
      uint8_t *b;
      if (head >= t->npages) {
        rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' points to page %u past the end (%u)",
                         t->p->path, head, t->npages);
      } else {
        rc = write_locked(t, head, &b, err);
      }
      if (!rc) {
        wr32(p0 + P0_FREEHEAD, rd32(b));
        uint32_t cnt = rd32(p0 + P0_FREECOUNT);
        wr32(p0 + P0_FREECOUNT, cnt ? cnt - 1 : 0);
        memset(b, 0, t->p->ps);
        *pgno = head;
        *out = b;
      }
    } else if (t->npages == UINT32_MAX) {
      rc = sx__err_set(err, SX_FULL, "database '%s' has reached its maximum of %u pages",
                       t->p->path, UINT32_MAX);
    } else {
      uint32_t n = t->npages++;
      rc = write_locked(t, n, out, err);
      if (rc) t->npages--;
      else *pgno = n;
    }
  }
  sx__mutex_unlock(&t->mu);
  return rc;
}

int sx__txn_free_page(sx__txn *t, uint32_t pgno, sx_error *err) {
  if (pgno == 0)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "page 0 is the header page and cannot be freed");
  sx__mutex_lock(&t->mu);
  uint8_t *p0, *b;
  int rc = write_locked(t, 0, &p0, err);
  if (!rc) rc = write_locked(t, pgno, &b, err);
  if (!rc) {
    memset(b, 0, t->p->ps);
    wr32(b, rd32(p0 + P0_FREEHEAD));
    wr32(p0 + P0_FREEHEAD, pgno);
    wr32(p0 + P0_FREECOUNT, rd32(p0 + P0_FREECOUNT) + 1);
  }
  sx__mutex_unlock(&t->mu);
  return rc;
}

sx__pager *sx__txn_pager(sx__txn *t) { return t->p; }

uint32_t sx__txn_npages(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  uint32_t n = t->npages;
  sx__mutex_unlock(&t->mu);
  return n;
}

static void dpage_free(dpage *d) {
  free(d->undo);
  free(d->buf);
  free(d);
}

void sx__txn_savepoint(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  t->sp_active = 1;
  t->sp_npages = t->npages;
  sx__mutex_unlock(&t->mu);
}

void sx__txn_release(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  for (size_t i = 0; i < t->cap; i++) {
    dpage *d = t->tab[i];
    if (!d || d == &TOMB) continue;
    free(d->undo);
    d->undo = NULL;
    d->sp_new = 0;
  }
  t->sp_active = 0;
  sx__mutex_unlock(&t->mu);
}

void sx__txn_rollback(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  for (size_t i = 0; i < t->cap; i++) {
    dpage *d = t->tab[i];
    if (!d || d == &TOMB) continue;
    if (d->sp_new) {
      dpage_free(d);
      t->tab[i] = &TOMB; /* keeps probe chains through this slot intact */
      t->n--;
    } else if (d->undo) {
      memcpy(d->buf, d->undo, t->p->ps);
      free(d->undo);
      d->undo = NULL;
    }
  }
  t->npages = t->sp_npages;
  t->sp_active = 0;
  sx__mutex_unlock(&t->mu);
}

static void txn_free(sx__txn *t) {
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i] && t->tab[i] != &TOMB) dpage_free(t->tab[i]);
  free(t->tab);
  sx__mutex_destroy(&t->mu);
  free(t);
}

void sx__txn_abort(sx__txn *t) {
  if (!t) return;
  /* A transaction inherited across fork() holds nothing of the child's. */
  if (t->fork_gen == sx__fork_generation()) writer_unlock(t->p);
  txn_free(t);
}

static int cmp_dpage(const void *a, const void *b) {
  uint32_t x = (*(dpage *const *)a)->pgno, y = (*(dpage *const *)b)->pgno;
  return x < y ? -1 : x > y;
}

/*
 * Moves the writer to the other WAL file (the next generation) when that file is
 * free: every frame of the generation it holds is in P, and no pinned reader reads
 * those frames. It does so once the current file is past the autocheckpoint size or
 * wholly copied into P. Readers of the current generation never stand in the way,
 * so steady short reads cannot starve the switch; only a reader pinned across a
 * whole generation can (then the WAL grows, up to its cap). See the reader protocol
 * at the top for why publishing, then scanning the slots, is safe.
 */
static int try_switch(sx__pager *p, hdrc *h, sx_error *err) {
  if (h->mx == h->base || h->backfill < h->base) return SX_OK;
  if (h->mx - h->base < p->autockpt && h->backfill < h->mx) return SX_OK;
  uint64_t minpin;
  int prev_users;
  scan_slots(p, h->base, &minpin, &prev_users, NULL, NULL);
  if (prev_users) return SX_OK;
  if (p->sync == SX_SYNC_NORMAL) {
    /* The generation left behind is durable before the next one says how it ends. */
    int rc = sx__file_sync(p->wal[h->gen & 1], 1, err);
    if (rc) {
      atomic_store(&p->poisoned, 1);
      return rc;
    }
  }
  hdrc old = *h, nh = *h;
  hdr_next_gen(p, &nh);
  hdr_publish(p, &nh);
  scan_slots(p, old.base, &minpin, &prev_users, NULL, NULL);
  if (prev_users) {
    hdr_publish(p, &old); /* a reader slipped in: stay in this generation */
    return SX_OK;
  }
  *h = nh;
  return SX_OK;
}

/*
 * Makes WAL file w at least `need` bytes long by appending zeros, a megabyte at a
 * time: commits then overwrite blocks already allocated, and their fdatasync need
 * not also record a new file size. Zeros beyond the last frame fail the checksum
 * chain, so recovery ignores them.
 */
#define WAL_GROW (1u << 20)
static int wal_reserve(sx__pager *p, int w, uint64_t need, sx_error *err) {
  if (p->wal_size[w] >= need) return SX_OK;
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc) return rc;
  if (sz < need) {
    static const uint8_t zeros[65536];
    uint64_t target = (need + WAL_GROW - 1) / WAL_GROW * WAL_GROW;
    for (uint64_t off = sz; off < target && !rc;) {
      size_t n = target - off < sizeof zeros ? (size_t)(target - off) : sizeof zeros;
      rc = sx__file_write(p->wal[w], zeros, n, off, err);
      off += n;
    }
    if (rc) return rc;
    sz = target;
  }
  p->wal_size[w] = sz;
  return SX_OK;
}

int sx__txn_commit(sx__txn *t, sx_error *err) {
  sx__pager *p = t->p;
  if (t->fork_gen != sx__fork_generation()) {
    txn_free(t);
    return sx__err_set(err, SX_MISUSE, "write session was begun in the parent process before fork()");
  }
  int rc = SX_OK;
  uint8_t *buf = NULL;
  dpage **list = NULL;
  if (t->n == 0) goto done;
  if (sx__pager_poisoned(p)) {
    rc = sx__err_set(err, SX_IO, "database '%s' refuses writes after a failed sync; reopen it", p->path);
    goto done;
  }
  hdrc h = t->h;
  rc = try_switch(p, &h, err);
  if (rc) goto done;
  uint64_t nfr = t->n;
  if (h.mx - h.base + nfr > p->wal_max) {
    rc = checkpoint_locked(p, &h, err);
    if (!rc) rc = try_switch(p, &h, err);
    if (rc) goto done;
    if (h.mx - h.base + nfr > p->wal_max) {
      uint64_t minpin;
      int wu, nr;
      int32_t pid;
      scan_slots(p, h.base, &minpin, &wu, &nr, &pid);
      rc = sx__err_set(err, SX_BUSY,
                       "WAL '%s' would grow to %llu frames, past its cap of %u, because a read "
                       "session (process %d) pins a snapshot %llu commits-old frames behind; end long "
                       "read sessions",
                       p->wal_path[h.gen & 1], (unsigned long long)(h.mx - h.base + nfr), p->wal_max,
                       (int)pid,
                       (unsigned long long)(minpin == UINT64_MAX ? 0 : h.mx - minpin));
      goto done;
    }
  }
  list = malloc(nfr * sizeof *list);
  const int w = (int)(h.gen & 1);
  uint64_t rel = h.mx - h.base;
  size_t hdr_bytes = rel == 0 ? WAL_HDR : 0;
  buf = list ? aligned_alloc(64, (hdr_bytes + nfr * p->fsz + 63) / 64 * 64) : NULL;
  if (!buf) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory committing %llu pages", (unsigned long long)nfr);
    goto done;
  }
  size_t m = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i] && t->tab[i] != &TOMB) list[m++] = t->tab[i];
  qsort(list, nfr, sizeof *list, cmp_dpage);
  uint64_t ck0 = h.ck0, ck1 = h.ck1;
  if (hdr_bytes) wal_header_make(buf, p->ps, &h, &ck0, &ck1);
  for (size_t i = 0; i < nfr; i++) {
    uint8_t *f = buf + hdr_bytes + i * p->fsz;
    wr32(f, list[i]->pgno);
    wr32(f + 4, i + 1 == nfr ? t->npages : 0);
    wr32(f + 8, h.salt0);
    wr32(f + 12, h.salt1);
    memcpy(f + FRAME_HDR, list[i]->buf, p->ps);
    cksum(f, 16, &ck0, &ck1);
    cksum(f + FRAME_HDR, p->ps, &ck0, &ck1);
    wr64(f + 16, ck0);
    wr64(f + 24, ck1);
  }
  /* Reserve the index entries first: once the frames are in the WAL nothing may
   * fail, or a commit reported as failed would stand after a reopen. */
  for (uint64_t k = rel / SEG_FRAMES; k <= (rel + nfr - 1) / SEG_FRAMES; k++) {
    seg sg = {NULL, NULL};
    rc = shm_cover_seg(p, (size_t)k, err);
    if (!rc) rc = seg_get(p, w, (size_t)k, &sg, err);
    if (rc) goto done;
  }
  uint64_t off = rel == 0 ? 0 : WAL_HDR + rel * p->fsz;
  rc = wal_reserve(p, w, off + hdr_bytes + nfr * p->fsz, err);
  if (rc) goto done;
  size_t skip = 0;
  if (hdr_bytes && p->sync != SX_SYNC_OFF) {
    /* A new WAL generation: its header is durable before any of its frames overwrite
     * the old generation's, or a power cut could keep the old header and a prefix of
     * old frames, which recovery would replay over the newer checkpointed file. */
    rc = sx__file_write(p->wal[w], buf, WAL_HDR, 0, err);
    if (rc) goto done;
    rc = sx__file_sync(p->wal[w], 1, err);
    if (rc) {
      atomic_store(&p->poisoned, 1);
      goto done;
    }
    skip = WAL_HDR;
  }
  rc = sx__file_write(p->wal[w], buf + skip, hdr_bytes + nfr * p->fsz - skip, off + skip, err);
  if (rc) goto done;
  if (p->sync == SX_SYNC_FULL) {
    rc = sx__file_sync(p->wal[w], 1, err);
    if (rc) {
      atomic_store(&p->poisoned, 1);
      goto done;
    }
  }
  __atomic_store_n(&p->hdr->appending, 1, __ATOMIC_RELEASE);
  for (size_t i = 0; i < nfr; i++) {
    rc = index_append(p, w, rel + 1 + i, list[i]->pgno, err);
    if (rc) goto done;
  }
  h.mx += nfr;
  h.npages = t->npages;
  h.ck0 = ck0;
  h.ck1 = ck1;
  h.commits++;
  hdr_publish(p, &h);
  __atomic_store_n(&p->hdr->appending, 0, __ATOMIC_RELEASE);
  if (h.mx - h.backfill >= p->autockpt) {
    /* The commit stands whatever happens here; a failed sync still poisons. */
    checkpoint_locked(p, &h, NULL);
  }
done:
  free(buf);
  free(list);
  sx__txn_abort(t);
  return rc;
}

/* ---- checkpoint ----------------------------------------------------------------- */

typedef struct pf {
  uint32_t pgno;
  int w;        /* WAL file */
  uint64_t r;   /* frame in that file */
  uint64_t abs; /* absolute frame number (orders versions) */
} pf;

static int cmp_pf(const void *a, const void *b) {
  const pf *x = a, *y = b;
  if (x->pgno != y->pgno) return x->pgno < y->pgno ? -1 : 1;
  return x->abs > y->abs ? -1 : x->abs < y->abs; /* newest first */
}

/* Appends the frames (lo, hi] (relative) of WAL file w to v. */
static int collect(sx__pager *p, int w, uint64_t base, uint64_t lo, uint64_t hi, pf *v, size_t *n,
                   sx_error *err) {
  for (uint64_t r = lo + 1; r <= hi; r++) {
    seg s = {NULL, NULL};
    int rc = seg_get(p, w, (size_t)((r - 1) / SEG_FRAMES), &s, err);
    if (rc) return rc;
    v[*n].pgno = __atomic_load_n(&s.pgno[(r - 1) % SEG_FRAMES], __ATOMIC_RELAXED);
    v[*n].w = w;
    v[*n].r = r;
    v[*n].abs = base + r;
    (*n)++;
  }
  return SX_OK;
}

/* Copies frames into P up to the oldest pinned snapshot. Writer lock held. */
static int checkpoint_locked(sx__pager *p, hdrc *h, sx_error *err) {
  if (h->backfill >= h->mx) return SX_OK;
  int rc = sx__file_lock(p->shm, LK_CKPT, 1, SX__WRLOCK, 0, err);
  if (rc) return rc;
  h->target = h->mx;
  hdr_publish(p, h);
  uint64_t minpin;
  int wu;
  scan_slots(p, h->base, &minpin, &wu, NULL, NULL);
  uint64_t T = h->mx < minpin ? h->mx : minpin;
  if (T != h->target) {
    h->target = T;
    hdr_publish(p, h);
  }
  pf *v = NULL;
  if (T <= h->backfill) goto out;
  if (p->sync == SX_SYNC_NORMAL) {
    /* (The previous generation's file was synced when the writer left it.) */
    rc = sx__file_sync(p->wal[h->gen & 1], 1, err);
    if (rc) {
      atomic_store(&p->poisoned, 1);
      goto out;
    }
  }
  /* Frames (backfill, T]: the previous generation's part, then the current's. */
  size_t n = 0;
  v = malloc((size_t)(T - h->backfill) * sizeof *v);
  if (!v) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory checkpointing '%s'", p->path);
    goto out;
  }
  if (h->backfill < h->base)
    rc = collect(p, (int)((h->gen + 1) & 1), h->pbase, h->backfill - h->pbase,
                 (T < h->base ? T : h->base) - h->pbase, v, &n, err);
  if (!rc && T > h->base)
    rc = collect(p, (int)(h->gen & 1), h->base, h->backfill > h->base ? h->backfill - h->base : 0,
                 T - h->base, v, &n, err);
  if (rc) goto out;
  qsort(v, n, sizeof *v, cmp_pf);
  uint64_t maxend = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (i > 0 && v[i].pgno == v[i - 1].pgno) continue;
    const uint8_t *f;
    rc = wal_frame(p, v[i].w, v[i].r, &f, err);
    if (!rc) rc = sx__file_write(p->db, f + FRAME_HDR, p->ps, (uint64_t)v[i].pgno * p->ps, err);
    if (rc) goto out;
    uint64_t end = ((uint64_t)v[i].pgno + 1) * p->ps;
    if (end > maxend) maxend = end;
  }
  if (p->sync != SX_SYNC_OFF) {
    rc = sx__file_sync(p->db, 1, err);
    if (rc) {
      atomic_store(&p->poisoned, 1);
      goto out;
    }
  }
  uint64_t cur = atomic_load(&p->p_size);
  while (maxend > cur && !atomic_compare_exchange_weak(&p->p_size, &cur, maxend)) {
  }
  h->backfill = T;
  h->checkpoints++;
  hdr_publish(p, h);
out:
  free(v);
  sx__file_lock(p->shm, LK_CKPT, 1, SX__UNLOCK, 0, NULL);
  return rc;
}

void sx__pager_slots_mutex_for_test(sx__pager *p, int lock) {
  if (lock) sx__mutex_lock(&p->slot_mu);
  else sx__mutex_unlock(&p->slot_mu);
}

int sx__pager_checkpoint(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx_error *err) {
  if (p->read_only)
    return sx__err_set(err, SX_READ_ONLY, "database '%s' is open read-only", p->path);
  if (sx__pager_poisoned(p))
    return sx__err_set(err, SX_IO, "database '%s' refuses writes after a failed sync; reopen it", p->path);
  int rc = writer_lock(p, timeout_ms, cancel, err);
  if (rc) return rc;
  hdrc h;
  hdr_load(&p->hdr->copy[__atomic_load_n(&p->hdr->ver, __ATOMIC_ACQUIRE) & 1], &h);
  rc = checkpoint_locked(p, &h, err);
  writer_unlock(p);
  return rc;
}

/* ---- stats and integrity ------------------------------------------------------- */

int sx__pager_stats_get(sx__pager *p, sx__pager_stats *out, sx_error *err) {
  hdrc h;
  hdr_read(p, &h);
  uint64_t minpin;
  int wu, nr;
  int32_t pid;
  scan_slots(p, h.base, &minpin, &wu, &nr, &pid);
  memset(out, 0, sizeof *out);
  out->npages = h.npages;
  /* Frames the WAL files hold that may still be needed: the current generation's,
   * and the previous one's while it is not all in P. */
  uint64_t start = h.backfill < h.base ? h.pbase : h.base;
  out->wal_frames = h.mx - start;
  out->wal_backfilled = h.backfill - start;
  out->commits = h.commits;
  out->checkpoints = h.checkpoints;
  out->readers = (uint32_t)nr;
  out->mx = h.mx;
  out->oldest_lag = minpin == UINT64_MAX || minpin > h.mx ? 0 : h.mx - minpin;
  out->oldest_pid = pid;
  return SX_OK;
}

/* Checks frames 1..nfr of WAL file w with plain reads: a valid header of generation
 * gen, matching salts, an unbroken checksum chain, and a commit frame at nfr (of
 * npages pages, unless npages is 0). Reports the header's account of the previous
 * generation and the chain's value at frame nfr. */
static int check_chain(sx__pager *p, int w, uint32_t gen, uint64_t nfr, uint32_t npages,
                       uint64_t *pck0, uint64_t *pck1, uint32_t *prev_frames, uint64_t *end0,
                       uint64_t *end1, sx_error *err) {
  walhdr wh;
  int rc = read_wal_header(p, w, &wh, err);
  if (rc) return rc;
  if (!wh.ok || wh.gen != gen)
    return sx__err_set(err, SX_CORRUPT, "WAL header of '%s' does not match the shared index",
                       p->wal_path[w]);
  if (pck0) *pck0 = wh.pck0;
  if (pck1) *pck1 = wh.pck1;
  if (prev_frames) *prev_frames = wh.prev_frames;
  uint8_t *buf = malloc(p->fsz);
  if (!buf) return sx__err_set(err, SX_NOMEM, "out of memory");
  uint64_t a = wh.ck0, b = wh.ck1;
  for (uint64_t r = 1; r <= nfr && !rc; r++) {
    rc = sx__file_read(p->wal[w], buf, p->fsz, WAL_HDR + (r - 1) * p->fsz, err);
    if (rc) break;
    cksum(buf, 16, &a, &b);
    cksum(buf + FRAME_HDR, p->ps, &a, &b);
    if (rd32(buf + 8) != wh.salt0 || rd32(buf + 12) != wh.salt1 || rd64(buf + 16) != a ||
        rd64(buf + 24) != b)
      rc = sx__err_set(err, SX_CORRUPT, "WAL frame %llu of '%s' fails its checksum",
                       (unsigned long long)r, p->wal_path[w]);
    else if (r == nfr && (rd32(buf + 4) == 0 || (npages && rd32(buf + 4) != npages)))
      rc = sx__err_set(err, SX_CORRUPT, "WAL frame %llu of '%s' should end a commit of %u pages",
                       (unsigned long long)r, p->wal_path[w], npages);
  }
  free(buf);
  if (end0) *end0 = a;
  if (end1) *end1 = b;
  return rc;
}

int sx__pager_check(sx__pager *p, sx_error *err) {
  sx__snap s;
  int rc = sx__pager_snap_begin(p, &s, err);
  if (rc) return rc;
  uint8_t *bitmap = NULL;
  /* A snapshot that reads only from P does not depend on the WAL (whose files may be
   * reused under it); otherwise the files it reads cannot be reused while it is
   * pinned, so their frames can be checked with plain reads. */
  if (s.floor == s.mx) goto pages;
  uint64_t pck0 = 0, pck1 = 0;
  uint32_t prev_frames = 0;
  if (s.mx > s.base) {
    rc = check_chain(p, (int)(s.gen & 1), s.gen, s.mx - s.base, s.npages, &pck0, &pck1,
                     &prev_frames, NULL, NULL, err);
    if (rc) goto end;
  }
  if (s.floor < s.base) {
    /* The previous generation, whole, ending where the current one says it ends. */
    uint64_t e0, e1;
    rc = check_chain(p, (int)((s.gen + 1) & 1), s.gen - 1, s.base - s.pbase, 0, NULL, NULL, NULL,
                     &e0, &e1, err);
    if (rc) goto end;
    if (s.mx > s.base && (prev_frames != s.base - s.pbase || e0 != pck0 || e1 != pck1)) {
      rc = sx__err_set(err, SX_CORRUPT, "WAL '%s' does not end where '%s' says it does",
                       p->wal_path[(s.gen + 1) & 1], p->wal_path[s.gen & 1]);
      goto end;
    }
  }
pages:
  /* Every page is reachable, and the free list is a chain of distinct pages. */
  for (uint32_t pg = 0; pg < s.npages; pg++) {
    const uint8_t *pp;
    rc = view_page(p, &s, pg, &pp, err);
    if (rc) goto end;
  }
  const uint8_t *p0;
  rc = view_page(p, &s, 0, &p0, err);
  if (rc) goto end;
  if (memcmp(p0, P_MAGIC, 16) != 0 || rd32(p0 + P0_VERSION) != SX_FORMAT_VERSION ||
      rd32(p0 + P0_PAGESIZE) != p->ps) {
    rc = sx__err_set(err, SX_CORRUPT, "header page of '%s' is damaged", p->path);
    goto end;
  }
  bitmap = calloc(s.npages / 8 + 1, 1);
  if (!bitmap) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory");
    goto end;
  }
  uint32_t cnt = 0, want = rd32(p0 + P0_FREECOUNT);
  for (uint32_t pg = rd32(p0 + P0_FREEHEAD); pg != 0; cnt++) {
    if (pg >= s.npages || (bitmap[pg / 8] & (1u << (pg % 8))) || cnt > want) {
      rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' is damaged at page %u", p->path, pg);
      goto end;
    }
    bitmap[pg / 8] |= (uint8_t)(1u << (pg % 8));
    const uint8_t *fp;
    rc = view_page(p, &s, pg, &fp, err);
    if (rc) goto end;
    pg = rd32(fp);
  }
  if (cnt != want)
    rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' has %u pages, header says %u", p->path,
                     cnt, want);
end:
  free(bitmap);
  sx__pager_snap_end(p, &s);
  return rc;
}
