/*
 * pager: fixed-size pages in the database file P, versioned through the WAL P-wal,
 * indexed for every process by the shared wal-index P-shm.
 *
 * A reader pins a snapshot (sx__snap) in a reader slot of P-shm and then reaches
 * every page of it through memory maps of P and of the WAL, without locks: pages
 * of a snapshot are immutable for its life. One write transaction (sx__txn) at a
 * time per database across all processes collects copy-on-write page images in
 * memory and commits them as WAL frames; the last frame of a commit carries the
 * database size in pages and marks the commit. Checkpoints copy frames back into P,
 * never past the oldest pinned snapshot. See pager_int.h for the protocols, and
 * parray.h for the page arrays built on pages.
 *
 * Page 0 is the header page. Its first SX__PAGE0_USER_OFFSET bytes belong to the
 * pager (magic, format version, page size, free list, user version); the rest
 * belongs to upper layers, and changes through sx__txn_write like any page.
 */
#ifndef SX_PAGER_H
#define SX_PAGER_H

#include <stdint.h>

#include "lock/lock.h"
#include "os/os.h"
#include "sextant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of page 0 that belong to the pager; upper layers use the rest. */
#define SX__PAGE0_USER_OFFSET 128
/* The longest WAL (in frames) of any handle: what recovery and readers can index.
 * sx_open_options.wal_max_frames (a per-handle cap on its own commits) is at most
 * this. 2^26 frames are 256 GiB with 4 KiB pages. */
#define SX__WAL_FRAMES_MAX (1u << 26)
/* Reader slots in the shared index. */
#define SX__NSLOTS 1024

typedef struct sx__pager sx__pager;
typedef struct sx__txn sx__txn;

typedef struct sx__pager_config {
  sx__vfs *vfs;            /* NULL: the default VFS */
  int read_only;           /* no write transactions */
  int create;              /* create P when missing */
  int sync;                /* SX_SYNC_FULL / NORMAL / OFF */
  uint32_t page_size;      /* for a new database; 0 = 4096 */
  uint32_t autocheckpoint; /* frames; 0 = 1000 */
  uint32_t wal_max_frames; /* 0 = 1048576 */
  uint64_t wal_size_limit; /* bytes each WAL file keeps after a restart (0: cut to empty) */
} sx__pager_config;

/*
 * A pinned snapshot. Frames (floor, mx] (absolute frame numbers) are read from the
 * WAL, everything else from P. Filled by sx__pager_snap_begin; released by
 * sx__pager_snap_end. Plain data: many threads may read through one snapshot.
 */
typedef struct sx__snap {
  uint64_t mx;     /* last committed frame the snapshot includes */
  uint64_t floor;  /* frames <= floor are already in P */
  uint64_t base;   /* frames base+1.. are in WAL generation gen */
  uint64_t pbase;  /* frames pbase+1..base are in generation gen - 1 (the other file) */
  uint32_t gen;    /* WAL generation; its file is gen & 1 */
  uint32_t npages; /* database size in pages */
  int slot;        /* reader slot pinned, or -1 for the writer's own view */
  uint64_t epoch;  /* checkpoints made when it began (pages of P verified per epoch) */
} sx__snap;

/* Opens (creating when asked) the database files at path and attaches to, or
 * rebuilds, the shared index. */
int sx__pager_open(const char *path, const sx__pager_config *cfg, sx__pager **out, sx_error *err);
/* Releases everything: locks, maps, files. No snapshot or transaction may be live.
 * In a child of fork() it only drops process-local resources and never touches
 * locks or the shared index, which still belong to the parent. */
void sx__pager_close(sx__pager *p);
/*
 * Puts the database file at tmp (complete and synced, with no WAL) in place of the
 * database at path, atomically for every opener in any process: under path-shm's
 * recovery lock (made when missing), which every opener takes before it opens path,
 * it refuses with SX_BUSY when a handle has path open, refuses with SX_EXISTS when
 * path or its WAL files exist and !overwrite, else removes the WAL files, renames tmp
 * over path (syncing the directory) and removes path-shm. `what` names path in the
 * messages ("backup destination"). On an error tmp is left for the caller to remove.
 */
int sx__pager_install(sx__vfs *vfs, const char *tmp, const char *path, int overwrite,
                      const char *what, sx_error *err);
/* sx__pager_install's refusals, checked now without its lock (so that a caller can
 * refuse before it writes tmp); the install checks again. */
int sx__pager_install_check(sx__vfs *vfs, const char *path, int overwrite, const char *what,
                            sx_error *err);
uint32_t sx__pager_page_size(const sx__pager *p);
const char *sx__pager_path(const sx__pager *p);
/* Nonzero once a failed sync made this handle refuse writes. */
int sx__pager_poisoned(const sx__pager *p);

/* Pins the latest committed snapshot in a reader slot. Never waits for the writer.
 * SX_BUSY only when every slot is taken. */
int sx__pager_snap_begin(sx__pager *p, sx__snap *s, sx_error *err);
void sx__pager_snap_end(sx__pager *p, sx__snap *s);
/* A page of the snapshot; valid until sx__pager_snap_end. SX_CORRUPT when pgno is
 * beyond the snapshot or the files. */
int sx__pager_snap_page(sx__pager *p, const sx__snap *s, uint32_t pgno, const uint8_t **out,
                        sx_error *err);

/*
 * Write transactions. Begin waits up to timeout_ms (0: try once, <0: for ever) for
 * the writer lock of this handle and of the database (an OFD lock byte in P-shm).
 * Page pointers from sx__txn_read stay valid until commit/abort; pointers from
 * sx__txn_write stay valid and writable until commit/abort. Several threads may
 * call these at once on one transaction; modifying one page image from several
 * threads is the callers' to coordinate (the HNSW index's parallel insert keeps its
 * own page locks, see hnsw.c).
 */
int sx__pager_write_begin(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx__txn **out,
                          sx_error *err);
int sx__txn_read(sx__txn *t, uint32_t pgno, const uint8_t **out, sx_error *err);
int sx__txn_write(sx__txn *t, uint32_t pgno, uint8_t **out, sx_error *err);
/* A new zeroed page, from the free list or past the end. */
int sx__txn_alloc(sx__txn *t, uint32_t *pgno, uint8_t **out, sx_error *err);
/* Returns a page to the free list (its contents are lost). */
int sx__txn_free_page(sx__txn *t, uint32_t pgno, sx_error *err);
uint32_t sx__txn_npages(sx__txn *t);
sx__pager *sx__txn_pager(sx__txn *t);
/*
 * Savepoints make one operation atomic inside a transaction: after
 * sx__txn_savepoint, sx__txn_rollback returns every page (and the page count) to its
 * state at the savepoint; sx__txn_release forgets the savepoint and keeps the
 * changes. One savepoint at a time; the caller serializes them with other writes.
 */
void sx__txn_savepoint(sx__txn *t);
void sx__txn_rollback(sx__txn *t);
void sx__txn_release(sx__txn *t);

/* Compaction: puts the free list in ascending page order, so that later allocations
 * take the lowest pages first. */
int sx__txn_sort_free(sx__txn *t, sx_error *err);
/* Compaction: when the last pages of the database are all free, drops them from the
 * free list and from the transaction, so the commit makes the database that much
 * shorter (the file follows at the next complete checkpoint); *released (may be
 * NULL) receives how many. Not inside a savepoint. */
int sx__txn_shrink(sx__txn *t, uint32_t *released, sx_error *err);

/* Commits and frees t (on failure too: nothing is committed then). */
int sx__txn_commit(sx__txn *t, sx_error *err);
/* Discards and frees t. NULL is a no-op. */
void sx__txn_abort(sx__txn *t);

/* Tests: takes (lock = 1) or releases (0) the reader-slot mutex of p, to fork() while
 * another thread holds it. */
void sx__pager_slots_mutex_for_test(sx__pager *p, int lock);

/* Checkpoint as far as pinned snapshots allow (takes the writer lock). */
int sx__pager_checkpoint(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx_error *err);

typedef struct sx__pager_stats {
  uint64_t npages, wal_frames, wal_backfilled, commits, checkpoints, oldest_lag, mx;
  uint32_t readers;
  int32_t oldest_pid;
} sx__pager_stats;
int sx__pager_stats_get(sx__pager *p, sx__pager_stats *out, sx_error *err);

/* Integrity of the latest snapshot: P header, WAL checksum chain, bounds, free list. */
int sx__pager_check(sx__pager *p, sx_error *err);

/* sx_db_check, after the upper layers marked in `used` (a bit per page of s, page 0
 * included) every page they use, each once: walks the free list of s and reports
 * SX_CORRUPT naming a page that is both free and in use, or free twice. */
int sx__pager_check_pages(sx__pager *p, const sx__snap *s, uint8_t *used, sx_error *err);

/*
 * Page and WAL checksums and the layout of P (pager_int.h, "Page checksums"), for the pager,
 * backups and the tests and fuzzers that make or damage files.
 */
/* CRC32C (Castagnoli) of n bytes continuing crc (0 to begin). */
uint32_t sx__crc32c(uint32_t crc, const void *data, size_t n);
/* Tests: which CRC32C code runs: 0 the fastest the CPU has (VPCLMULQDQ folding for
 * page checksums), 1 the crc32 instruction only, 2 the table. */
void sx__crc32c_mode_for_test(int mode);
/* The checksum of page pgno whose ps bytes are `page`. */
uint32_t sx__page_cksum(uint32_t pgno, const uint8_t *page, uint32_t ps);
/* The WAL's running checksum (pager_int.h, sx__cksum: n % 16 == 0) over a page image
 * or more: the same values, computed in SIMD lanes when the CPU allows. */
void sx__cksum_long(const uint8_t *d, size_t n, uint64_t *s0, uint64_t *s1);
/* Tests: sx__cksum_long's portable loop even when the CPU has AVX-512. */
void sx__cksum_portable_for_test(int on);
/* Format 2: the file page holding page pgno; the file page holding its checksum (at
 * byte 4 * (pgno % (ps / 4)) of it); the file pages of a database of npages pages. */
uint64_t sx__pfile_page(uint32_t ps, uint32_t pgno);
uint64_t sx__pfile_cksum_page(uint32_t ps, uint32_t pgno);
uint64_t sx__pfile_pages(uint32_t ps, uint32_t npages);
/* Recomputes every checksum of a format 2 file image of len bytes in memory. */
void sx__pfile_seal(uint8_t *file, uint64_t len, uint32_t ps);
/* Recomputes the checksums of a WAL file image of len bytes in memory (its page size
 * read from its header): from frame `from` on, each whole frame gets the header's
 * salts and the running checksum, continued from frame from - 1's stored one; with
 * from 0, the header's own checksum first, and the chain starts from it. */
void sx__wal_seal(uint8_t *wal, uint64_t len, uint64_t from);

/* Writes a new file in P's format from the pages of a snapshot, given in order from
 * page 0 in runs (a backup): page images, and checksum pages when the format has
 * them. */
typedef struct sx__pimage {
  sx__pager *p;
  sx__file *f;
  uint8_t *ck;   /* the checksum page of the group being written */
  uint32_t next; /* next page expected */
} sx__pimage;
int sx__pimage_begin(sx__pimage *im, sx__pager *p, sx__file *f, sx_error *err);
/* Pages first..first+n-1 (first is the next page expected), ps bytes each. */
int sx__pimage_put(sx__pimage *im, uint32_t first, const uint8_t *pages, uint32_t n, sx_error *err);
/* Writes the last checksum page and frees im (also after a failure: rc 0 or not). */
int sx__pimage_end(sx__pimage *im, int failed, sx_error *err);

/* Page-0 user version helpers (offset 40 of page 0). */
uint64_t sx__page0_user_version(const uint8_t *page0);
void sx__page0_set_user_version(uint8_t *page0, uint64_t v);
/* Pages on the free list, as page 0 records it. */
uint32_t sx__page0_free_count(const uint8_t *page0);

#ifdef __cplusplus
}
#endif
#endif
