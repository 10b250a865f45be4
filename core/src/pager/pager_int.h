/*
 * pager_int.h: what the files of the pager share: the file formats, the handle, and
 * the functions one file of the pager calls in another. Not for other layers (they
 * use pager.h and parray.h).
 *
 *   pager.c   the page file P: open, create, close, the maps of P and the WAL
 *   shm.c     the wal-index in P-shm: the shared header, hash segments
 *   snap.c    reader slots and snapshots, reading a page of a snapshot
 *   wal.c     the WAL: headers, frames, replay and recovery, generation switch
 *   txn.c     the write transaction: writer lock, page table, alloc/free,
 *             savepoints, commit
 *   ckpt.c    checkpoints
 *   check.c   stats and the integrity check
 *
 * The design:
 *
 * Files
 *   P          page 0 is the header page (magic, format version, page size, free list,
 *              user version, database id), then pages 1.. as upper layers use them.
 *   P-wal,     the WAL, in generations that alternate between the two files (even
 *   P-wal2     generations in P-wal, odd in P-wal2). A file starts with a 64-byte
 *              header (magic, version, page size, generation, two salts, how the
 *              previous generation ended: its frame count and final checksum; the
 *              database id; and a checksum) followed by frames: a 32-byte frame header (page
 * number; the database size in pages if the frame ends a commit, else 0; the salts; the running
 * checksum) and the page image. The checksum runs over every frame since the header, so a frame is
 * valid only if every frame before it is. Recovery replays up to the last valid commit frame. P-shm
 * the shared wal-index: a double-buffered header, the reader slots, and per WAL file an index of
 * hash segments mapping page numbers to frames (4096 frames per segment). Its contents derive from
 * the WAL files; the first process to open the database (the "dead man switch" byte lock tells)
 * rebuilds it.
 *
 * Page checksums (format 2)
 *   Every page of P has a checksum (cksum.c: CRC32C of the page's four quarters and
 *   its page number), kept in checksum pages that P interleaves with the database's
 *   pages: with K = ps/4 entries of 4 bytes per checksum page, pages are grouped by K
 *   (group g holds pages gK..gK+K-1) and each group's checksum page comes first in
 *   the file, except that page 0 stays at offset 0:
 *       file page 0: page 0; 1: checksums of group 0; 2..K: pages 1..K-1;
 *       K+1: checksums of group 1; K+2..2K+1: pages K..2K-1; ...
 *   so page n (n > 0) is file page n + n/K + 1 and the checksum page of group g is
 *   file page g(K+1) (1 for g = 0) (sx__pfile_page, sx__pfile_cksum_page). A
 *   database of n pages is sx__pfile_pages(ps, n) file pages long: 0.1% more with
 *   4 KiB pages. Only the pager knows: page numbers everywhere else (the WAL, the
 *   upper layers) are the database's, and every page keeps its whole ps bytes.
 *
 *   Why not a reserve at the end of each page (SQLite's cksumvfs, PostgreSQL): the
 *   upper layers lay out byte streams over power-of-two pages (page arrays, vectors,
 *   HNSW spans: offsets split by shift and mask in the search loops); a page of
 *   ps - 4 usable bytes would change every one of those layouts and put a division
 *   into the hottest loops. Checksum pages cost an extra page read only when a page
 *   is first verified, and checkpoints write them (one per group touched).
 *
 *   Written: a page reaches P only through a checkpoint (and create, and a backup's
 *   new file, which write the same layout, sx__pimage_*): the checkpoint computes
 *   each copied page's checksum from its WAL image (itself covered by the running
 *   frame checksum) and rewrites the checksum pages of the groups it touched (their
 *   other entries keep their bytes, so a reader that reads one meanwhile sees the
 *   same value), all before P is synced and backfill raised. A crash in between
 *   leaves a page and its entry disagreeing only for pages whose frames are still
 *   in the WAL, from which every reader takes them, and the next checkpoint writes
 *   both again. Commits do not compute checksums at all (the frame checksum covers
 *   the WAL): they cost nothing.
 *
 *   Verified: when a snapshot reads a page from P (never from the WAL), the first
 *   time this handle reads it in the current checkpoint epoch (the header's
 *   `checkpoints` counter, which moves exactly when P's pages change, taken by
 *   sx__pager_snap_begin into sx__snap.epoch): the handle keeps a stamp per page
 *   (vstamp, 2 bytes a page, made per 65536 pages on first use). Every reader of
 *   epoch E that takes page X from P reads the same bytes (a checkpoint never copies
 *   a page that a pinned reader takes from P), so a stamp E stands for them all;
 *   readers never lock, and two threads may verify one page twice. A mismatch is
 *   SX_CORRUPT naming the page. A handle that checkpoints carries its own stamps
 *   into the new epoch (sx__stamps_carry: the pages it did not copy kept their bytes,
 *   and it computed the checksums of those it copied), so a process that writes and
 *   reads through one handle does not verify its pages again after each of its
 *   checkpoints; other handles do, once per page they read. sx_db_check verifies
 *   every page the snapshot takes from P, stamps or not.
 *
 *   Format 1 files (no checksum pages) are still read and written as they are:
 *   file page n is page n and nothing is verified; a backup of one is format 1 too.
 *   Only format 2 is created.
 *
 * Tying the WAL to its database: the id in page 0 (random at create, written into P
 * directly and never through the WAL) is carried by every WAL header, inside the
 * header checksum that seeds every frame's running checksum. Recovery ignores, as if
 * absent, a WAL file whose header names another id: another database's WAL copied
 * (or left) beside this one is never replayed; its file is overwritten when a new
 * generation starts in it. Id 0, in a database or a WAL header, means "not tied"
 * (files from before the id): such a pair is still replayed, and a database with id
 * 0 gets one when its last handle closes, after the WAL is wholly checkpointed.
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
 *
 * Tear or damage (wal.c, chain_check): recovery stops at the first frame that breaks
 * the chain, and refuses the WAL with SX_CORRUPT when whole frames of the generation
 * follow it up to a commit, unless the broken frame is a commit frame whose header is
 * whole (a torn commit frame). With sync=full whole commits after a broken frame are
 * always damage: a commit's frames are synced before the next commit's are written.
 * Without syncs (sync=normal between checkpoints, sync=off) the system may write a
 * later commit back before an earlier one; a write torn to a prefix of its sectors
 * ends in its commit frame and rolls back, but a block lost inside an earlier,
 * non-commit frame's page image reads as SX_CORRUPT; nothing in the files tells that
 * from damage (sextant.h documents it at sx_sync). In format 2 the first frame of a
 * commit carries FRAME_DURABLE in its commit field when every frame before it was
 * synced before the commit was written (the handle's own sync=full commit, or its
 * checkpoint's sync, covered them); any such frame after the break proves the broken
 * frame was whole once: SX_CORRUPT, whatever the damage (wal.c, chain_check). Without
 * one (commits without syncs between them, format 1) damage inside a commit frame's
 * page image, or a frame destroyed whole, rolls back like the tear it looks like.
 */
#ifndef SX_PAGER_INT_H
#define SX_PAGER_INT_H

#include <stdatomic.h>
#include <string.h>

#include "pager/pager.h"

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
  P0_USERVER = 40,   /* u64 */
  P0_DBID = 48       /* u32: this database's id, random at create (0: not tied, older files) */
};
/* Format 1: no checksum pages (files from before them; still read and written). */
#define P_VERSION_V1 1u

#define WAL_MAGIC 0x41575853u /* "SXWA" */
#define WAL_VERSION 1u
#define WAL_HDR 64u
#define FRAME_HDR 32u
/* Format 2: a frame's commit field holds the database size in its low 31 bits (a
 * commit frame; 0 in the others) and FRAME_DURABLE (the first frame of a commit), so
 * a database has at most SX__PAGES_MAX_V2 pages. */
#define FRAME_DURABLE 0x80000000u
#define SX__PAGES_MAX_V2 0x7fffffffu

#define SHM_MAGIC 0x4d485358u /* "SXHM" */
#define SHM_VERSION 2u
#define SHM_HDR_BYTES 32768u
#define SHM_SLOTS_OFF 1024u
#define SHM_FLOORS_OFF (SHM_SLOTS_OFF + 8u * SX__NSLOTS)
#define SHM_PIDS_OFF (SHM_FLOORS_OFF + 8u * SX__NSLOTS)
/* Page buffers a writer keeps between transactions, and the largest commit buffer. */
#define SX__SPARE_PAGES 32u
#define SX__CBUF_KEEP (1u << 20)
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
#define P_CHUNKS 65664u        /* so P can reach 2^32 pages and their checksum pages */
#define WAL_CHUNK (64ull << 20)

_Static_assert(SHM_PIDS_OFF + 4u * SX__NSLOTS <= SHM_HDR_BYTES, "shm header too small");

/* One copy of the shared header. All fields are read and written with relaxed
 * atomics; `ver` orders them. */
typedef struct sx__hdrc {
  uint64_t mx, backfill, target;
  uint64_t base;       /* frames base+1.. are the current generation's, in WAL file gen & 1 */
  uint64_t pbase;      /* frames pbase+1..base are the previous generation's, in the other file */
  uint64_t ck0, ck1;   /* running checksum after frame mx (or of the WAL header) */
  uint64_t pck0, pck1; /* running checksum at the end of the previous generation */
  uint64_t commits, checkpoints;
  uint32_t npages, salt0, salt1, gen;
} sx__hdrc;

typedef struct sx__shm_hdr {
  uint32_t magic, version, page_size, nslots;
  uint32_t initialized, pad0;
  uint64_t ver;
  /* Nonzero while a writer appends index entries it has not yet published: the next
   * writer cleans them up only then (a writer died mid-commit). */
  uint64_t appending;
  /* Bumped by every restart that cut a WAL file (wal.c): writers of other handles
   * forget the file sizes they knew. */
  uint64_t wal_cuts;
  uint64_t pad1[2];
  sx__hdrc copy[2];
} sx__shm_hdr;
_Static_assert(sizeof(sx__shm_hdr) <= SHM_SLOTS_OFF, "shm header overlaps slots");

/* ---- the pager ------------------------------------------------------------ */

struct sx__pager {
  sx__vfs *vfs;
  char *path, *wal_path[2], *shm_path;
  sx__file *db, *wal[2], *shm; /* WAL files P-wal (even generations) and P-wal2 (odd) */
  uint32_t ps;                 /* page size */
  uint32_t version;            /* P0_VERSION of P: SX_FORMAT_VERSION, or P_VERSION_V1 */
  int cksum;                   /* P has checksum pages (every version but 1) */
  uint32_t dbid;               /* P0_DBID of P, as read at open (0: not tied) */
  uint32_t fsz;                /* frame size: FRAME_HDR + ps */
  int read_only, sync;
  /* Read-only and P-shm could not be made or written (a read-only file system, no
   * write permission): the wal-index and any missing WAL file are private memory
   * files of this handle (pager.c, open_private_index). */
  int private_index;
  uint32_t autockpt, wal_max;
  uint64_t wal_limit; /* bytes a WAL file keeps after a restart (sx_open_options.wal_size_limit) */
  uint64_t wal_cuts_seen; /* writer-side: hdr->wal_cuts when wal_size[] was last valid */
  /* Writer-side: this handle's last sync of the current WAL file (a sync=full commit,
   * a sync=normal checkpoint) made generation synced_gen durable up to frame
   * synced_mx (both 0 at first: frame 0 is no frame). */
  uint32_t synced_gen;
  uint64_t synced_mx;
  unsigned fork_gen;
  int32_t pid; /* of the process that opened the handle (reader slots record it) */
  atomic_int poisoned;

  uint8_t *shm_base; /* the SHM_HDR_BYTES header region */
  sx__shm_hdr *hdr;
  uint64_t *slots;  /* per slot: the pinned snapshot's mx, or SLOT_IDLE */
  uint64_t *floors; /* per slot: the pinned snapshot's floor (backfill when it began) */
  int32_t *slot_pids;

  /* Lazily mapped chunks; pointers are published with release stores. */
  uint8_t **pmap; /* P_CHUNKS entries */
  /* Per 65536 pages of the database (P_CHUNKS entries, made on first use): the
   * checkpoint epoch, plus one, in which this handle last verified each page's
   * checksum in P (0: never); see "Page checksums" above. */
  uint16_t **vstamp;
  uint8_t **walmap[2]; /* nwalchunks entries per WAL file */
  size_t nwalchunks, walchunk_len;
  uint8_t **segmap; /* 2 * nsegs entries: segment k of index area a at 2k + a */
  size_t nsegs;     /* per area */
  /* One past the highest entry of each table ever mapped (under map_mu): closing
   * scans only these, not the whole tables. */
  size_t pmap_hi, walmap_hi[2], segmap_hi, vstamp_hi;
  atomic_uint_fast64_t
      p_size;           /* known size of P (grows; cut only by a complete checkpoint, ckpt.c) */
  uint64_t shm_size;    /* writer-side: known size of P-shm */
  uint64_t wal_size[2]; /* writer-side: known sizes of the WAL files (0: unknown) */
  uint64_t wal_wb[2];   /* writer-side, sync normal: WAL bytes below this offset have had
                         * their writeback started (sx__wal_write) */
  /* Writer-side (the writer lock held): what a write transaction leaves for the next
   * (txn.c), so that small commits allocate nothing: page-table entries with their
   * page buffers, and the buffer commits assemble their frames in. */
  struct sx__dpage *spare[SX__SPARE_PAGES];
  unsigned nspare;
  uint8_t *cbuf;
  size_t cbuf_cap;
  sx__mutex map_mu; /* SX__RANK_MAP: serializes creating mappings */

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

/* Fletcher-style running checksum over 16-byte blocks (n % 16 == 0). */
static inline void sx__cksum(const uint8_t *d, size_t n, uint64_t *s0, uint64_t *s1) {
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

/* Frees what write transactions kept for the next one (txn.c). */
void sx__pager_free_spares(sx__pager *p);

/* Nonzero in a child of fork() that inherited p. */
static inline int sx__pager_forked(const sx__pager *p) {
  return p->fork_gen != sx__fork_generation();
}

/* A failed sync: the handle refuses writes from now on (see os.h). */
static inline void sx__pager_poison(sx__pager *p) {
  atomic_store(&p->poisoned, 1);
}

/* The database size a frame header's commit field gives (0: not a commit frame). */
static inline uint32_t sx__frame_npages(const sx__pager *p, const uint8_t *f) {
  uint32_t c = sx__rd32(f + 4);
  return p->cksum ? c & ~FRAME_DURABLE : c;
}

/* Nonzero when the first frame of a commit says every frame before it was durable
 * before the commit was written (format 2). */
static inline int sx__frame_durable(const sx__pager *p, const uint8_t *f) {
  return p->cksum && (sx__rd32(f + 4) & FRAME_DURABLE);
}

/* ---- pager.c: the page file and the maps ----------------------------------- */

uint32_t sx__pager_random32(void);
/* Pointer to page pgno in P (the caller has checked it is the right version); not
 * verified. */
int sx__db_page(sx__pager *p, uint32_t pgno, const uint8_t **out, sx_error *err);
/* SX_CORRUPT naming pgno unless `page`, page pgno as P holds it, matches its
 * checksum (always SX_OK for a format 1 file). */
int sx__db_page_verify(sx__pager *p, uint32_t pgno, const uint8_t *page, sx_error *err);
/* Starts loading page pgno of P into the cache when it is mapped and inside the file:
 * a hint, never an error or a fault. */
void sx__db_page_prefetch(sx__pager *p, uint32_t pgno);
/* Pointer to the frame header of frame r (1-based) of WAL file w; the page image
 * follows it. */
int sx__wal_frame(sx__pager *p, int w, uint64_t r, const uint8_t **out, sx_error *err);
/* Maps [off, off + len) of f into table[k] once (threads race to the same mapping)
 * and raises *hi, the table's high-water mark, past k. */
uint8_t *sx__map_chunk(sx__pager *p, uint8_t **table, size_t k, size_t *hi, sx__file *f,
                       uint64_t off, size_t len, int writable, sx_error *err);

/* ---- cksum.c --------------------------------------------------------------------- */

/* Pages of the database that P, fpages file pages long, holds (at least 1). */
uint32_t sx__pfile_npages(const sx__pager *p, uint64_t fpages);

/* ---- shm.c: the wal-index ---------------------------------------------------- */

typedef struct sx__seg {
  uint32_t *pgno; /* SEG_FRAMES entries: page of frame k*SEG_FRAMES + i + 1 */
  uint16_t *hash; /* SEG_NSLOT entries: i + 1, or 0 for empty */
} sx__seg;

/* The published header, read by the writer (it is its only mutator: no retry). */
void sx__hdr_current(const sx__pager *p, sx__hdrc *h);
/* A consistent copy of the published header; returns the version it came from. */
uint64_t sx__hdr_read(const sx__pager *p, sx__hdrc *h);
/* Writer only: publish h as the new header. */
void sx__hdr_publish(sx__pager *p, const sx__hdrc *h);
/* Maps the header region of P-shm; init: make it anew and rebuild it from the WAL. */
int sx__shm_open_region(sx__pager *p, int init, sx_error *err);
int sx__seg_get(sx__pager *p, int a, size_t k, sx__seg *s, sx_error *err);
/* Writer: grow P-shm so that segment k of both areas exists. */
int sx__shm_cover_seg(sx__pager *p, size_t k, sx_error *err);
/* Newest frame r in (lo, hi] (relative numbers) of index area a holding pgno; 0 if
 * none. */
int sx__index_find(sx__pager *p, int a, uint32_t pgno, uint64_t lo, uint64_t hi, uint64_t *out,
                   sx_error *err);
/* Writer: record that relative frame r of area a holds pgno. */
int sx__index_append(sx__pager *p, int a, uint64_t r, uint32_t pgno, sx_error *err);
/* Writer: forget index entries of area a past relative frame rmx. */
int sx__index_truncate(sx__pager *p, int a, uint64_t rmx, sx_error *err);

/* ---- snap.c: reader slots and snapshots --------------------------------------- */

/* Where snapshot s finds page pgno: frame *r (1-based) of WAL file *w, or P when *r
 * is 0. */
int sx__view_locate(sx__pager *p, const sx__snap *s, uint32_t pgno, int *w, uint64_t *r,
                    sx_error *err);
/* Page pgno as snapshot s sees it; a page from P is verified (once per epoch). */
int sx__view_page(sx__pager *p, const sx__snap *s, uint32_t pgno, const uint8_t **out,
                  sx_error *err);
/* After this handle's checkpoint from epoch `epoch` to the next, which copied the n
 * pages `copied`: pages it verified in that epoch and did not copy kept their bytes,
 * and it computed the checksums of those it copied, so all of them count as
 * verified in the next epoch. */
void sx__stamps_carry(sx__pager *p, uint64_t epoch, uint32_t npages, const uint32_t *copied,
                      size_t n);
/* Smallest snapshot pinned by a live reader (lower bound for checkpoints), and
 * whether a pinned reader reads WAL frames at or below `below`; nreaders and pid
 * (of the oldest reader) may be NULL. */
void sx__scan_slots(sx__pager *p, uint64_t below, uint64_t *minpin, int *prev_users, int *nreaders,
                    int32_t *pid);

/* ---- wal.c: the WAL ------------------------------------------------------------- */

typedef struct sx__walhdr {
  int ok;
  int headless; /* recovered without its header (wal.c, header_repair): frame 1 seeds the chain */
  uint32_t gen, salt0, salt1, prev_frames, dbid;
  uint64_t pck0, pck1, ck0, ck1;
} sx__walhdr;

void sx__wal_header_make(const sx__pager *p, uint8_t b[WAL_HDR], const sx__hdrc *h, uint64_t *ck0,
                         uint64_t *ck1);
int sx__wal_read_header(sx__pager *p, int w, sx__walhdr *wh, sx_error *err);
/* SX_CORRUPT when a WAL file beside P (not open yet) has a valid header and a frame
 * of its generation: P is empty (0 bytes) but was a database with commits. */
int sx__wal_orphans(sx__pager *p, sx_error *err);
/* Fills frame f (FRAME_HDR + ps bytes) with page image `page` of page pgno; commit:
 * the database size in pages when the frame ends a commit, else 0. Advances the
 * running checksum. */
void sx__wal_frame_make(const sx__pager *p, const sx__hdrc *h, uint8_t *f, uint32_t pgno,
                        uint32_t commit, const uint8_t *page, uint64_t *ck0, uint64_t *ck1);
/* Writer: makes WAL file w at least `need` bytes long. */
int sx__wal_reserve(sx__pager *p, int w, uint64_t need, sx_error *err);
/* Writer: writes len bytes of buf at off of WAL file w, durably per the sync level;
 * a buffer that starts with a new generation's header (hdr_bytes = WAL_HDR) has that
 * header made durable first. */
int sx__wal_write(sx__pager *p, int w, const uint8_t *buf, size_t len, uint64_t off,
                  size_t hdr_bytes, sx_error *err);
/* Writer: moves to the other WAL file when it is free (updates h). */
int sx__wal_try_switch(sx__pager *p, sx__hdrc *h, sx_error *err);
/* Writer, after a checkpoint that left backfill == mx: when a WAL file is longer
 * than the handle's limit and no live reader reads any frame, restarts the WAL (a
 * new generation, both headers invalidated) and cuts the files to the limit. */
int sx__wal_restart(sx__pager *p, sx__hdrc *h, sx_error *err);
/* Rebuilds the shared index from the WAL files and publishes its header. */
int sx__wal_recover(sx__pager *p, sx_error *err);

/* ---- txn.c and ckpt.c --------------------------------------------------------------- */

/* SX_CORRUPT unless b, page pgno of a database of npages pages, looks like a page on
 * the free list: a next link in range and zeros after it. */
int sx__pager_free_page_valid(const sx__pager *p, uint32_t pgno, const uint8_t *b, uint32_t npages,
                              sx_error *err);
/* SX_CORRUPT unless page 0 (of a database of npages pages) has a valid header. */
int sx__page0_valid(const sx__pager *p, const uint8_t *p0, uint32_t npages, sx_error *err);
/* Takes the writer lock (in-process flag, then the OFD byte). */
int sx__writer_lock(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx_error *err);
void sx__writer_unlock(sx__pager *p);
/* Copies frames into P up to the oldest pinned snapshot. Writer lock held. */
int sx__checkpoint_locked(sx__pager *p, sx__hdrc *h, sx_error *err);

#endif
