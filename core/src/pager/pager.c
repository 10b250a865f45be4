/*
 * pager.c: the page file P and the handle: opening (creating P, checking its header,
 * opening the WAL files, attaching to or rebuilding P-shm), closing (the last handle
 * checkpoints everything and empties the WAL), and the lazily made maps of P and of
 * the WAL through which every page is read. See pager_int.h for the files and the
 * protocols between processes.
 */
#include "pager/pager_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

uint64_t sx__page0_user_version(const uint8_t *page0) {
  return sx__rd64(page0 + P0_USERVER);
}
uint32_t sx__page0_free_count(const uint8_t *page0) {
  return sx__rd32(page0 + P0_FREECOUNT);
}
void sx__page0_set_user_version(uint8_t *page0, uint64_t v) {
  sx__wr64(page0 + P0_USERVER, v);
}

static char *strcat2(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *r = malloc(la + lb + 1);
  if (!r) return NULL;
  memcpy(r, a, la);
  memcpy(r + la, b, lb + 1);
  return r;
}

uint32_t sx__pager_random32(void) {
  uint32_t v = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f) {
    setvbuf(f, NULL, _IONBF, 0); /* 4 bytes, not a buffer's worth of random bytes */
    if (fread(&v, sizeof v, 1, f) != 1) v = 0;
    fclose(f);
  }
  return v ^ (uint32_t)sx__now_ns() ^ ((uint32_t)getpid() << 16);
}

int sx__pager_poisoned(const sx__pager *p) {
  return atomic_load(&p->poisoned);
}
uint32_t sx__pager_page_size(const sx__pager *p) {
  return p->ps;
}
const char *sx__pager_path(const sx__pager *p) {
  return p->path;
}

/* ---- maps ------------------------------------------------------------------ */

uint8_t *sx__map_chunk(sx__pager *p, uint8_t **table, size_t k, size_t *hi, sx__file *f,
                       uint64_t off, size_t len, int writable, sx_error *err) {
  sx__mutex_lock(&p->map_mu);
  uint8_t *m = __atomic_load_n(&table[k], __ATOMIC_ACQUIRE);
  if (!m) {
    void *addr = NULL;
    if (sx__file_mmap(f, off, len, writable, &addr, err) == SX_OK) {
      m = addr;
      __atomic_store_n(&table[k], m, __ATOMIC_RELEASE);
      if (k >= *hi) *hi = k + 1;
    }
  }
  sx__mutex_unlock(&p->map_mu);
  return m;
}

/* P is at least `end` bytes long (page pgno, named in the message, ends there). */
static int p_size_covers(sx__pager *p, uint64_t end, uint32_t pgno, sx_error *err) {
  if (atomic_load_explicit(&p->p_size, memory_order_acquire) >= end) return SX_OK;
  uint64_t sz = 0;
  int rc = sx__file_size(p->db, &sz, err);
  if (rc) return rc;
  uint64_t cur = atomic_load(&p->p_size);
  while (sz > cur && !atomic_compare_exchange_weak(&p->p_size, &cur, sz)) {
  }
  if (sz >= end) return SX_OK;
  return sx__err_set(err, SX_CORRUPT, "page %u of '%s' is beyond the end of the file", pgno,
                     p->path);
}

/* The file page of database page pgno (past the checksum pages, when P has them). */
static inline uint64_t db_file_page(const sx__pager *p, uint32_t pgno) {
  return p->cksum ? sx__pfile_page(p->ps, pgno) : pgno;
}

/* File page fpg within chunk k of P's map, which m maps. */
static inline const uint8_t *in_chunk(const sx__pager *p, const uint8_t *m, size_t k,
                                      uint64_t fpg) {
  return m + (fpg - (uint64_t)k * P_CHUNK_PAGES) * p->ps;
}

/* Pointer to file page fpg of P (a database page or a checksum page); pgno names the
 * database page wanted in a message. */
static int file_page(sx__pager *p, uint64_t fpg, uint32_t pgno, const uint8_t **out,
                     sx_error *err) {
  int rc = p_size_covers(p, (fpg + 1) * p->ps, pgno, err);
  if (rc) return rc;
  size_t k = (size_t)(fpg / P_CHUNK_PAGES);
  uint8_t *m = __atomic_load_n(&p->pmap[k], __ATOMIC_ACQUIRE);
  if (!m) {
    m = sx__map_chunk(p, p->pmap, k, &p->pmap_hi, p->db, k * P_CHUNK_PAGES * p->ps,
                      P_CHUNK_PAGES * p->ps, 0, err);
    if (!m) return err ? err->code : SX_IO;
  }
  *out = in_chunk(p, m, k, fpg);
  return SX_OK;
}

/* Pointer to page pgno in P (the caller has checked it is the right version). */
int sx__db_page(sx__pager *p, uint32_t pgno, const uint8_t **out, sx_error *err) {
  return file_page(p, db_file_page(p, pgno), pgno, out, err);
}

/* As file_page's way to a page, without mapping or failing: nothing when the page
 * lies beyond the file or its chunk is not mapped yet. */
void sx__db_page_prefetch(sx__pager *p, uint32_t pgno) {
  uint64_t fpg = db_file_page(p, pgno);
  size_t k = (size_t)(fpg / P_CHUNK_PAGES);
  if (k >= P_CHUNKS || (fpg + 1) * p->ps > atomic_load_explicit(&p->p_size, memory_order_relaxed))
    return;
  const uint8_t *m = __atomic_load_n(&p->pmap[k], __ATOMIC_ACQUIRE);
  if (!m) return;
  const uint8_t *a = in_chunk(p, m, k, fpg);
  for (uint32_t i = 0; i < p->ps; i += 64) __builtin_prefetch(a + i, 0, 1);
}

int sx__db_page_verify(sx__pager *p, uint32_t pgno, const uint8_t *page, sx_error *err) {
  if (!p->cksum) return SX_OK;
  const uint8_t *cp = NULL;
  int rc = file_page(p, sx__pfile_cksum_page(p->ps, pgno), pgno, &cp, err);
  if (rc) return rc;
  uint32_t want = sx__rd32(cp + (pgno % (p->ps / 4)) * 4), got = sx__page_cksum(pgno, page, p->ps);
  if (want != got)
    return sx__err_set(err, SX_CORRUPT,
                       "page %u of '%s': checksum mismatch (stored %08x, computed %08x)", pgno,
                       p->path, want, got);
  return SX_OK;
}

/* Pointer to the frame header of frame r (1-based) of WAL file w; the page image
 * follows it. */
int sx__wal_frame(sx__pager *p, int w, uint64_t r, const uint8_t **out, sx_error *err) {
  uint64_t off = WAL_HDR + (r - 1) * p->fsz;
  size_t k = off / WAL_CHUNK;
  if (k >= p->nwalchunks)
    return sx__err_set(err, SX_CORRUPT, "frame %llu of '%s' is past the WAL cap",
                       (unsigned long long)r, p->wal_path[w]);
  uint8_t *m = __atomic_load_n(&p->walmap[w][k], __ATOMIC_ACQUIRE);
  if (!m) {
    m = sx__map_chunk(p, p->walmap[w], k, &p->walmap_hi[w], p->wal[w], k * WAL_CHUNK,
                      p->walchunk_len, 0, err);
    if (!m) return err ? err->code : SX_IO;
  }
  *out = m + (off - k * WAL_CHUNK);
  return SX_OK;
}

static int create_db_file(sx__pager *p, sx_error *err) {
  char suffix[64];
  snprintf(suffix, sizeof suffix, ".tmp-%d-%08x", (int)getpid(), sx__pager_random32());
  char *tmp = strcat2(p->path, suffix);
  if (!tmp) return sx__err_set(err, SX_NOMEM, "out of memory");
  /* Page 0, then (format 2) the checksum page of group 0. */
  uint8_t *page = calloc(2, p->ps);
  int rc = page ? SX_OK : sx__err_set(err, SX_NOMEM, "out of memory");
  sx__file *f = NULL;
  if (!rc) rc = p->vfs->open(p->vfs, tmp, SX__OPEN_WRITE | SX__OPEN_CREATE, &f, err);
  if (!rc) {
    memcpy(page + P0_MAGIC, P_MAGIC, 16);
    sx__wr32(page + P0_VERSION, SX_FORMAT_VERSION);
    sx__wr32(page + P0_PAGESIZE, p->ps);
    uint32_t id;
    while ((id = sx__pager_random32()) == 0) {
    }
    sx__wr32(page + P0_DBID, id);
    sx__wr32(page + p->ps, sx__page_cksum(0, page, p->ps));
    rc = sx__file_write(f, page, 2 * (size_t)p->ps, 0, err);
    if (!rc) rc = sx__file_sync(f, 0, err);
    sx__file_close(f);
    if (!rc) rc = p->vfs->rename(p->vfs, tmp, p->path, err);
    if (rc) p->vfs->unlink(p->vfs, tmp, NULL);
  }
  free(page);
  free(tmp);
  return rc;
}

static int check_db_header(sx__pager *p, sx_error *err) {
  uint64_t sz = 0;
  int rc = sx__file_size(p->db, &sz, err);
  if (rc) return rc;
  uint8_t b[64];
  if (sz < sizeof b)
    return sx__err_set(err, SX_CORRUPT,
                       "'%s' is not a Sextant database (file too short: %llu bytes)", p->path,
                       (unsigned long long)sz);
  rc = sx__file_read(p->db, b, sizeof b, 0, err);
  if (rc) return rc;
  if (memcmp(b + P0_MAGIC, P_MAGIC, 16) != 0)
    return sx__err_set(err, SX_CORRUPT, "'%s' is not a Sextant database (bad magic)", p->path);
  uint32_t ver = sx__rd32(b + P0_VERSION);
  if (ver != SX_FORMAT_VERSION && ver != P_VERSION_V1)
    return sx__err_set(err, SX_VERSION,
                       "database '%s' has format version %u; this library reads versions %u to %d",
                       p->path, ver, P_VERSION_V1, SX_FORMAT_VERSION);
  uint32_t ps = sx__rd32(b + P0_PAGESIZE);
  if (ps < 4096 || ps > 65536 || (ps & (ps - 1)))
    return sx__err_set(err, SX_CORRUPT, "database '%s' has an invalid page size %u", p->path, ps);
  p->ps = ps;
  p->fsz = FRAME_HDR + ps;
  p->dbid = sx__rd32(b + P0_DBID);
  p->version = ver;
  p->cksum = ver != P_VERSION_V1;
  return SX_OK;
}

static void pager_free_maps(sx__pager *p) {
  /* The stamps and the tables are this process's memory: a forked child has its own
   * copy to give back too. */
  if (p->vstamp) {
    for (size_t k = 0; k < p->vstamp_hi; k++)
      sx__os_table_free(p->vstamp[k], P_CHUNK_PAGES * sizeof **p->vstamp);
    sx__os_table_free(p->vstamp, P_CHUNKS * sizeof *p->vstamp);
    p->vstamp = NULL;
  }
  /* Mappings are not inherited (MADV_DONTFORK): in a forked child their addresses
   * may already belong to mappings this process made since. */
  int forked = sx__pager_forked(p);
  if (p->pmap && !forked)
    for (size_t k = 0; k < p->pmap_hi; k++)
      if (p->pmap[k]) p->vfs->munmap(p->pmap[k], P_CHUNK_PAGES * p->ps);
  sx__os_table_free(p->pmap, P_CHUNKS * sizeof *p->pmap);
  for (int w = 0; w < 2; w++) {
    if (p->walmap[w] && !forked)
      for (size_t k = 0; k < p->walmap_hi[w]; k++)
        if (p->walmap[w][k]) p->vfs->munmap(p->walmap[w][k], p->walchunk_len);
    sx__os_table_free(p->walmap[w], p->nwalchunks * sizeof *p->walmap[w]);
  }
  if (p->segmap && !forked)
    for (size_t k = 0; k < p->segmap_hi; k++)
      if (p->segmap[k]) p->vfs->munmap(p->segmap[k], SEG_BYTES);
  sx__os_table_free(p->segmap, 2 * p->nsegs * sizeof *p->segmap);
  if (p->shm_base && !forked) p->vfs->munmap(p->shm_base, SHM_HDR_BYTES);
  p->pmap = NULL;
  p->walmap[0] = p->walmap[1] = NULL;
  p->segmap = NULL;
  p->shm_base = NULL;
}

static void pager_destroy(sx__pager *p) {
  sx__pager_free_spares(p);
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

/* The handle, before any file is opened. */
static int pager_alloc(const char *path, const sx__pager_config *cfg, sx__pager **out,
                       sx_error *err) {
  sx__pager *p = calloc(1, sizeof *p);
  if (!p) return sx__err_set(err, SX_NOMEM, "out of memory opening '%s'", path);
  p->vfs = cfg->vfs ? cfg->vfs : sx__vfs_default();
  p->read_only = cfg->read_only;
  p->sync = cfg->sync;
  p->autockpt = cfg->autocheckpoint ? cfg->autocheckpoint : 1000;
  p->wal_max = cfg->wal_max_frames ? cfg->wal_max_frames : (1u << 20);
  if (p->wal_max > SX__WAL_FRAMES_MAX) p->wal_max = SX__WAL_FRAMES_MAX;
  p->wal_limit = cfg->wal_size_limit;
  p->fork_gen = sx__fork_generation();
  p->pid = (int32_t)getpid();
  p->ps = cfg->page_size ? cfg->page_size : 4096;
  p->fsz = FRAME_HDR + p->ps;
  sx__mutex_init(&p->map_mu, SX__RANK_MAP, "map");
  sx__mutex_init(&p->wmu, SX__RANK_WRITER, "writer");
  sx__cond_init(&p->wcond);
  sx__mutex_init(&p->slot_mu, SX__RANK_SLOTS, "reader slots");
  /* One file, one name: a symbolic link leads to the same -wal/-shm files. */
  p->path = sx__fs_canonical(path);
  if (p->path) {
    p->wal_path[0] = strcat2(p->path, "-wal");
    p->wal_path[1] = strcat2(p->path, "-wal2");
    p->shm_path = strcat2(p->path, "-shm");
  }
  if (!p->path || !p->wal_path[0] || !p->wal_path[1] || !p->shm_path) {
    pager_destroy(p);
    return sx__err_set(err, SX_NOMEM, "out of memory opening '%s'", path);
  }
  *out = p;
  return SX_OK;
}

/* Whether P exists (*exists), refusing a missing one unless asked to create it, and
 * a file system that is not local. */
static int check_path(sx__pager *p, const sx__pager_config *cfg, int *exists, sx_error *err) {
  int rc = SX_OK;
  *exists = p->vfs->exists(p->vfs, p->path, err);
  if (*exists < 0) return -*exists;
  if (!*exists && (cfg->read_only || !cfg->create))
    return sx__err_set(err, SX_NOT_FOUND, "database '%s' does not exist", p->path);
  if (*exists && (rc = sx__fs_check_links(p->path, err))) return rc;
  rc = sx__fs_check_local(p->path, err);
  if (rc == SX_NOT_FOUND)
    rc = sx__err_set(err, SX_IO, "cannot create database '%s': its directory does not exist",
                     p->path);
  return rc;
}

static int open_shm_file(sx__pager *p, sx_error *err) {
  int rc = p->vfs->open(p->vfs, p->shm_path, SX__OPEN_WRITE | SX__OPEN_CREATE, &p->shm, err);
  if (rc == SX_NOT_FOUND)
    rc = sx__err_set(err, SX_IO, "cannot create database '%s': its directory does not exist",
                     p->path);
  return rc;
}

/* Opens P, creating it when it did not exist (under the recovery lock, so that two
 * openers do not both create it), and checks its header. */
static int open_db_file(sx__pager *p, int exists, sx_error *err) {
  int rc = SX_OK;
  if (!exists) {
    exists = p->vfs->exists(p->vfs, p->path, err);
    if (exists < 0)
      rc = -exists;
    else if (!exists)
      rc = create_db_file(p, err);
  }
  if (!rc)
    rc = p->vfs->open(p->vfs, p->path, p->read_only ? SX__OPEN_READ : SX__OPEN_WRITE, &p->db, err);
  if (!rc && !p->read_only) {
    /* An empty file (made by touch, say) becomes a new database, as in SQLite;
     * unless a WAL beside it holds frames (P is created whole, by a rename, so an
     * empty P there was truncated: its commits must not vanish). */
    uint64_t sz = 1;
    rc = sx__file_size(p->db, &sz, err);
    if (!rc && sz == 0) rc = sx__wal_orphans(p, err);
    if (!rc && sz == 0) {
      sx__file_close(p->db);
      p->db = NULL;
      rc = create_db_file(p, err);
      if (!rc) rc = p->vfs->open(p->vfs, p->path, SX__OPEN_WRITE, &p->db, err);
    }
  }
  if (!rc) rc = check_db_header(p, err);
  return rc;
}

/* Opens (creating) both WAL files; a new one's directory entry is made durable.
 * With a private index, a WAL file is only read, and one that does not exist is an
 * empty private file. */
static int open_wal_files(sx__pager *p, sx_error *err) {
  int rc = SX_OK;
  for (int w = 0; w < 2 && !rc; w++) {
    int wal_exists = p->vfs->exists(p->vfs, p->wal_path[w], err);
    if (wal_exists < 0) rc = -wal_exists;
    if (!rc && p->private_index) {
      rc = wal_exists ? p->vfs->open(p->vfs, p->wal_path[w], SX__OPEN_READ, &p->wal[w], err)
                      : sx__file_open_private(p->vfs, p->wal_path[w], &p->wal[w], err);
      continue;
    }
    if (!rc)
      rc = p->vfs->open(p->vfs, p->wal_path[w], SX__OPEN_WRITE | SX__OPEN_CREATE, &p->wal[w], err);
    if (!rc && !wal_exists) rc = p->vfs->dir_sync(p->vfs, p->wal_path[w], err);
  }
  return rc;
}

/* The tables of lazily made maps, sized for the largest P and the longest WAL any
 * handle may write (not this one's cap): about 1.4 MB of anonymous pages, of which a
 * handle touches only the few its files reach. */
static int alloc_map_tables(sx__pager *p, sx_error *err) {
  p->pmap = sx__os_table(P_CHUNKS * sizeof *p->pmap);
  p->vstamp = sx__os_table(P_CHUNKS * sizeof *p->vstamp);
  p->nwalchunks = (size_t)((WAL_HDR + (uint64_t)SX__WAL_FRAMES_MAX * p->fsz) / WAL_CHUNK + 2);
  size_t osz = sx__os_page_size();
  p->walchunk_len = (size_t)(WAL_CHUNK + ((p->fsz + osz - 1) / osz) * osz);
  p->walmap[0] = sx__os_table(p->nwalchunks * sizeof *p->walmap[0]);
  p->walmap[1] = sx__os_table(p->nwalchunks * sizeof *p->walmap[1]);
  p->nsegs = SX__WAL_FRAMES_MAX / SEG_FRAMES + 2;
  p->segmap = sx__os_table(2 * p->nsegs * sizeof *p->segmap);
  if (!p->pmap || !p->vstamp || !p->walmap[0] || !p->walmap[1] || !p->segmap)
    return sx__err_set(err, SX_NOMEM, "out of memory");
  return SX_OK;
}

/* Attaches to P-shm; the first opener (no other handle holds the dead man switch)
 * rebuilds it from the WAL. */
static int attach_shm(sx__pager *p, sx_error *err) {
  int alone = sx__file_lock(p->shm, LK_DMS, 1, SX__WRLOCK, 0, NULL) == SX_OK;
  int rc = sx__shm_open_region(p, alone, err);
  if (!rc) rc = sx__file_lock(p->shm, LK_DMS, 1, SX__RDLOCK, alone ? 0 : 30000, err);
  return rc;
}

/* An existing, non-empty P is a database before any file beside it is made: a failed
 * open leaves no P-shm or WAL files behind. (P is made whole by a rename, so its
 * header, once P has any bytes, is always complete; an empty P becomes a new
 * database under the recovery lock.) */
static int precheck_db_file(sx__pager *p, sx_error *err) {
  sx__file *f = NULL;
  int rc = p->vfs->open(p->vfs, p->path, SX__OPEN_READ, &f, err);
  uint64_t sz = 0;
  if (!rc) rc = sx__file_size(f, &sz, err);
  if (!rc && sz > 0) {
    sx__file *keep = p->db;
    p->db = f;
    rc = check_db_header(p, err);
    p->db = keep;
  }
  sx__file_close(f);
  return rc;
}

/* 0 when no handle holds the dead man switch of the wal-index at shm_path (or it does
 * not exist), nonzero when one does or it cannot be told. */
static int dms_held(sx__vfs *vfs, const char *shm_path) {
  if (vfs->exists(vfs, shm_path, NULL) <= 0) return 0;
  sx__file *f = NULL;
  if (vfs->open(vfs, shm_path, SX__OPEN_READ, &f, NULL)) return 1;
  int held = sx__file_lock_held(f, LK_DMS, 1, SX__WRLOCK);
  sx__file_close(f);
  return held != 0;
}

/* Nonzero when a handle, in any process (this one included), has the database at
 * path open (holds its wal-index's dead man switch), or when that cannot be told. */
static int db_in_use(sx__vfs *vfs, const char *path) {
  char *shm = strcat2(path, "-shm");
  int held = shm ? dms_held(vfs, shm) : 1;
  free(shm);
  return held;
}

/* The refusals of an install: SX_EXISTS when !overwrite and path or one of its WAL
 * files exists, SX_BUSY when in_use. */
static int install_refused(sx__vfs *vfs, const char *path, int overwrite, int in_use,
                           const char *what, sx_error *err) {
  static const char *const sfx[] = {"", "-wal", "-wal2"};
  for (int i = 0; i < 3 && !overwrite; i++) {
    char *pth = strcat2(path, sfx[i]);
    int e = pth ? vfs->exists(vfs, pth, err) : -sx__err_set(err, SX_NOMEM, "out of memory");
    if (e > 0) sx__err_set(err, SX_EXISTS, "%s '%s' exists (remove it, or overwrite)", what, pth);
    free(pth);
    if (e) return e < 0 ? -e : SX_EXISTS;
  }
  if (in_use)
    return sx__err_set(err, SX_BUSY,
                       "%s '%s' is a database open in another handle (close it first)", what, path);
  return SX_OK;
}

int sx__pager_install_check(sx__vfs *vfs, const char *path, int overwrite, const char *what,
                            sx_error *err) {
  return install_refused(vfs, path, overwrite, db_in_use(vfs, path), what, err);
}

int sx__pager_install(sx__vfs *vfs, const char *tmp, const char *path, int overwrite,
                      const char *what, sx_error *err) {
  char *wal = strcat2(path, "-wal"), *wal2 = strcat2(path, "-wal2"), *shm = strcat2(path, "-shm");
  int rc = wal && wal2 && shm ? SX_OK : sx__err_set(err, SX_NOMEM, "out of memory");
  sx__file *f = NULL;
  int made = 0, in_use = 0;
  /* Made when missing: an opener that would make it meanwhile must wait for the
   * lock on this one file. */
  for (int tries = 0; !rc; tries++) {
    made = vfs->exists(vfs, shm, NULL) == 0;
    rc = vfs->open(vfs, shm, SX__OPEN_WRITE | SX__OPEN_CREATE, &f, err);
    if (!rc) rc = sx__file_lock(f, LK_RECOVER, 1, SX__WRLOCK, 30000, err);
    if (rc == SX_BUSY)
      rc = sx__err_set(err, SX_BUSY, "%s '%s' is being opened by another handle (try again)", what,
                       path);
    if (rc || sx__file_is_at(f, shm)) break;
    sx__file_close(f); /* another install removed it meanwhile */
    f = NULL;
    if (tries == 100)
      rc = sx__err_set(err, SX_BUSY, "%s '%s': its wal-index was replaced 100 times", what, path);
  }
  if (!rc) in_use = sx__file_lock_held(f, LK_DMS, 1, SX__WRLOCK) != 0;
  if (!rc) rc = install_refused(vfs, path, overwrite, in_use, what, err);
  if (!rc && overwrite) rc = vfs->unlink(vfs, wal, err);
  if (!rc && overwrite) rc = vfs->unlink(vfs, wal2, err);
  if (!rc) rc = vfs->rename(vfs, tmp, path, err);
  /* Last, still under the lock (and never under a handle): openers waiting on it find
   * it gone and open again. */
  if (f && !in_use && (rc == SX_OK || made)) vfs->unlink(vfs, shm, NULL);
  sx__file_close(f);
  free(wal);
  free(wal2);
  free(shm);
  return rc;
}

/*
 * A read-only handle where P-shm cannot be made or opened for writing (a read-only
 * file system or medium, a directory or file without write permission): SQLite's
 * answer, a wal-index private to the handle. It is built from the WAL files (read
 * only) into a memory file, so the handle reads every committed transaction; its
 * reader slots and locks are its own. That is only right while no other process
 * writes the database, so the open is refused (BUSY) when another handle has it
 * open now (holds P-shm's dead man switch); one that starts writing later, which
 * needs write access this handle lacks, is not seen: documented in sextant.h.
 */
static int open_private_index(sx__pager *p, int shm_rc, sx_error *err) {
  if (dms_held(p->vfs, p->shm_path))
    return sx__err_set(err, shm_rc == SX_READ_ONLY ? SX_BUSY : shm_rc,
                       "cannot open '%s' read-only: its wal-index '%s' cannot be written here and "
                       "another process has the database open (or it cannot be read)",
                       p->path, p->shm_path);
  p->private_index = 1;
  return sx__file_open_private(p->vfs, p->shm_path, &p->shm, err);
}

/*
 * Opens P-shm (or a private wal-index, see above) and takes its recovery lock, which
 * serializes creating P and rebuilding P-shm between openers. sx__pager_install puts
 * a new file in place of P and removes P-shm while it holds that lock: an opener that
 * opened the old P-shm before finds, once it holds the lock, that its file is no
 * longer at the path, and opens again (the new P-shm, beside the new P).
 */
static int open_shm_locked(sx__pager *p, int exists, int *locked, sx_error *err) {
  for (int tries = 0;; tries++) {
    int rc = open_shm_file(p, err);
    if ((rc == SX_READ_ONLY || rc == SX_IO) && p->read_only && exists)
      rc = open_private_index(p, rc, err);
    if (!rc) rc = sx__file_lock(p->shm, LK_RECOVER, 1, SX__WRLOCK, 30000, err);
    *locked = rc == SX_OK;
    if (rc || p->private_index || sx__file_is_at(p->shm, p->shm_path)) return rc;
    sx__file_close(p->shm); /* drops the lock */
    p->shm = NULL;
    *locked = 0;
    if (tries == 100)
      return sx__err_set(err, SX_BUSY,
                         "cannot open '%s': its wal-index '%s' was replaced 100 times while it "
                         "was being opened",
                         p->path, p->shm_path);
  }
}

int sx__pager_open(const char *path, const sx__pager_config *cfg, sx__pager **out, sx_error *err) {
  *out = NULL;
  sx__pager *p = NULL;
  int rc = pager_alloc(path, cfg, &p, err);
  if (rc) return rc;
  int exists = 0, locked_recover = 0;
  rc = check_path(p, cfg, &exists, err);
  if (!rc && exists) rc = precheck_db_file(p, err);
  if (!rc) rc = open_shm_locked(p, exists, &locked_recover, err);
  if (!rc) rc = open_db_file(p, exists, err);
  if (!rc) rc = open_wal_files(p, err);
  if (!rc) rc = alloc_map_tables(p, err);
  if (!rc) rc = attach_shm(p, err);
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
  sx__hdrc h;
  sx__hdr_current(p, &h);
  int rc = sx__checkpoint_locked(p, &h, NULL);
  if (!rc && h.backfill == h.mx) rc = sx__file_sync(p->db, 1, NULL);
  /* The previous generation's file first, durably: were the current one emptied
   * and the previous one not, recovery would replay an older generation over P. */
  int prev = (int)((h.gen + 1) & 1), cur = prev ^ 1;
  if (!rc && h.backfill == h.mx) rc = sx__file_truncate(p->wal[prev], 0, NULL);
  if (!rc && h.backfill == h.mx) rc = sx__file_sync(p->wal[prev], 0, NULL);
  if (!rc && h.backfill == h.mx) rc = sx__file_truncate(p->wal[cur], 0, NULL);
  if (!rc && h.backfill == h.mx) rc = sx__file_sync(p->wal[cur], 0, NULL);
  if (!rc && h.backfill == h.mx && p->dbid == 0 && !p->cksum) {
    /* A database from before the id (format 1: format 2 is made with one) gets one
     * now, with no WAL left to tie: written straight into P's page 0 (the pager's
     * bytes of it never travel through the WAL again: every later page-0 image is a
     * copy of this one). */
    uint8_t id[4];
    uint32_t v;
    while ((v = sx__pager_random32()) == 0) {
    }
    sx__wr32(id, v);
    if (sx__file_write(p->db, id, 4, P0_DBID, NULL) == SX_OK &&
        sx__file_sync(p->db, 1, NULL) == SX_OK)
      p->dbid = v;
  }
  p->wal_size[0] = p->wal_size[1] = 0;
  sx__file_lock(p->shm, LK_WRITER, 1, SX__UNLOCK, 0, NULL);
}

void sx__pager_close(sx__pager *p) {
  /* In a fork child the descriptors share their open file descriptions with the
   * parent: closing ours leaves the parent's OFD locks in place (they go only with
   * the last descriptor), and nothing here unlocks explicitly. */
  if (!p) return;
  if (!sx__pager_forked(p) && p->shm_base) close_cleanly(p);
  pager_destroy(p);
}
