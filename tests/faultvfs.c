/*
 * faultvfs.c: the fault-injecting VFS used by the tests. It wraps the default VFS,
 * counts calls per kind, fails the call chosen by sx__faultvfs_arm, and simulates
 * power loss (see os.h for the contract).
 *
 * How power loss is simulated. The real files always hold the newest bytes; what
 * would be lost is kept as undo information. Per inode (so several handles on one
 * path share it) we keep, in order, one record per write or truncate since that
 * file's last successful sync: the bytes it overwrote inside the old size, the size
 * before it and, for TEAR, the new bytes. A sync of the file forgets its records. A
 * file created through this VFS is marked "created" until a dir_sync of its
 * directory, or a rename into that directory, makes its name durable. Power loss
 * then undoes every record in reverse (DROP), and for TEAR re-applies, in order, the
 * kept part of each write (whole, none, or a prefix ending on a 512-byte sector
 * boundary) on top of that synced image, so a later kept write still wins over an
 * earlier one, as on a disk that reordered them.
 *
 * Invariants
 * - One mutex (fv->mu) guards every field but the counters and flags read without
 *   it, which are only written under it and with __atomic stores.
 * - A tracked write holds fv->mu from reading the old bytes to the end of the
 *   pwrite, and a sync holds it around the fsync, so records are never taken or
 *   forgotten out of order with the I/O they describe.
 * - Files whose name ends in "-shm" are never tracked (they are written through
 *   mmap, which this VFS cannot see) and power loss leaves them alone.
 * Simplifications: unlink through this VFS forgets the file at once (as if its
 * directory were synced); a rename counts as RENAME, not as a SYNC, for faults and
 * for crash_at_sync; mmap writes are never tracked.
 */
#include "os/os_internal.h"
#include "faultvfs.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 512u

/* One unsynced write or truncate. */
struct rec {
  int is_trunc;
  uint64_t off;        /* write: offset; truncate: the new size */
  size_t len;          /* write: bytes in newb */
  unsigned char *newb; /* write: the bytes written */
  uint64_t old_off;    /* where oldb belongs */
  unsigned char *oldb; /* bytes the call destroyed, inside the size before it */
  size_t oldlen;
  uint64_t size_before;
};

/* What the VFS knows about one inode. */
struct tracked {
  struct tracked *next;
  uint64_t dev, ino;
  char *path;  /* canonical: realpath of the directory + "/" + name */
  int created; /* its directory entry is not durable yet */
  struct rec *recs;
  size_t nrecs, cap;
};

struct sx__faultvfs {
  sx__vfs vfs; /* first: a table pointer converts back to its sx__faultvfs */
  pthread_mutex_t mu;
  uint64_t counts[SX__IO_KINDS]; /* __atomic */
  uint64_t total;                /* __atomic */
  int armed, fault_kind, fault_mode, persistent;
  uint64_t fault_at;         /* the count (of fault_kind, or total) that fires */
  int fired;                 /* __atomic */
  uint64_t crash_syncs_left; /* 0: no crash pending */
  int crashed;               /* __atomic */
  struct tracked *files;
};

static sx__faultvfs *fv_of(sx__vfs *vfs) {
  return (sx__faultvfs *)vfs;
}

static sx__vfs *base(void) {
  return sx__vfs_default();
}

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------- */

static int is_shm(const char *path) {
  size_t n = strlen(path);
  return n >= 4 && strcmp(path + n - 4, "-shm") == 0;
}

/* Canonical directory of path: realpath when it resolves, else the text as is, so
 * "./a" and "/abs/a" name the same directory. */
static char *canon_dir(const char *path) {
  char *dir = sx__path_dir(path);
  if (!dir) return NULL;
  char *real = realpath(dir, NULL);
  if (!real) return dir;
  free(dir);
  return real;
}

static char *canon_path(const char *path) {
  char *dir = canon_dir(path);
  if (!dir) return NULL;
  const char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  size_t dn = strlen(dir), nn = strlen(name);
  char *p = (char *)malloc(dn + nn + 2);
  if (p) {
    memcpy(p, dir, dn);
    size_t at = dn;
    if (at == 0 || p[at - 1] != '/') p[at++] = '/';
    memcpy(p + at, name, nn + 1);
  }
  free(dir);
  return p;
}

static int in_dir(const struct tracked *t, const char *dir) {
  char *d = sx__path_dir(t->path);
  int same = d && strcmp(d, dir) == 0;
  free(d);
  return same;
}

static void free_recs(struct tracked *t) {
  for (size_t i = 0; i < t->nrecs; i++) {
    free(t->recs[i].newb);
    free(t->recs[i].oldb);
  }
  t->nrecs = 0;
}

static void free_tracked(struct tracked *t) {
  free_recs(t);
  free(t->recs);
  free(t->path);
  free(t);
}

static struct tracked *find_ino(sx__faultvfs *fv, uint64_t dev, uint64_t ino) {
  for (struct tracked *t = fv->files; t; t = t->next)
    if (t->dev == dev && t->ino == ino) return t;
  return NULL;
}

static void remove_tracked(sx__faultvfs *fv, struct tracked *gone) {
  for (struct tracked **pp = &fv->files; *pp; pp = &(*pp)->next)
    if (*pp == gone) {
      *pp = gone->next;
      free_tracked(gone);
      return;
    }
}

static struct tracked *find_path(sx__faultvfs *fv, const char *cpath) {
  for (struct tracked *t = fv->files; t; t = t->next)
    if (strcmp(t->path, cpath) == 0) return t;
  return NULL;
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

/* Counts a call of `kind` and returns the errno to inject (0: none) and the mode
 * in *mode. Requires fv->mu. */
static int gate(sx__faultvfs *fv, int kind, int *mode) {
  uint64_t c = __atomic_add_fetch(&fv->counts[kind], 1, __ATOMIC_RELAXED);
  uint64_t all = __atomic_add_fetch(&fv->total, 1, __ATOMIC_RELAXED);
  *mode = 0;
  if (!fv->armed) return 0;
  uint64_t v;
  if (fv->fault_kind == SX__IO_KINDS)
    v = all;
  else if (fv->fault_kind == kind)
    v = c;
  else
    return 0;
  if (v != fv->fault_at && !(fv->persistent && v > fv->fault_at)) return 0;
  __atomic_store_n(&fv->fired, 1, __ATOMIC_RELEASE);
  *mode = fv->fault_mode;
  return fv->fault_mode == SX__FAULT_ENOSPC ? ENOSPC : EIO;
}

static int injected(sx_error *err, int e, const char *what, const char *path) {
  char buf[64];
  return sx__err_set(err, sx__status_from_errno(e), "cannot %s '%s': %s (injected fault)", what,
                     path, sx__errno_text(e, buf, sizeof buf));
}

static int power_off(sx_error *err, const char *what, const char *path) {
  return sx__err_set(err, SX_IO, "cannot %s '%s': the power is off (simulated crash)", what, path);
}

static int crashed(const sx__faultvfs *fv) {
  return __atomic_load_n(&fv->crashed, __ATOMIC_ACQUIRE);
}

/* Appends a record to f's inode; NULL when out of memory. Requires fv->mu. */
static struct rec *new_rec(sx__faultvfs *fv, sx__file *f) {
  struct tracked *t = find_ino(fv, f->dev, f->ino);
  if (!t) {
    /* Tracking was reset (power loss) while this handle stayed open. */
    t = (struct tracked *)calloc(1, sizeof *t);
    if (!t) return NULL;
    t->path = canon_path(f->path);
    if (!t->path) {
      free(t);
      return NULL;
    }
    t->dev = f->dev;
    t->ino = f->ino;
    t->next = fv->files;
    fv->files = t;
  }
  if (t->nrecs == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    struct rec *r = (struct rec *)realloc(t->recs, cap * sizeof *r);
    if (!r) return NULL;
    t->recs = r;
    t->cap = cap;
  }
  struct rec *r = &t->recs[t->nrecs++];
  memset(r, 0, sizeof *r);
  return r;
}

static void drop_last_rec(sx__faultvfs *fv, sx__file *f) {
  struct tracked *t = find_ino(fv, f->dev, f->ino);
  if (!t || !t->nrecs) return;
  struct rec *r = &t->recs[--t->nrecs];
  free(r->newb);
  free(r->oldb);
}

/* Saves [off, end) of f's current contents (clipped to its size) into r->oldb. */
static int save_old(sx__file *f, struct rec *r, uint64_t off, uint64_t end, sx_error *err) {
  r->old_off = off;
  if (end > r->size_before) end = r->size_before;
  if (off >= end) return SX_OK;
  r->oldlen = (size_t)(end - off);
  r->oldb = (unsigned char *)malloc(r->oldlen);
  if (!r->oldb) return sx__err_set(err, SX_NOMEM, "out of memory tracking '%s'", f->path);
  if (pread_full(f->fd, r->oldb, r->oldlen, off) < 0)
    return sx__err_set(err, SX_IO, "cannot read old bytes of '%s' for power-loss tracking",
                       f->path);
  return SX_OK;
}

static int file_size(sx__file *f, uint64_t *out, sx_error *err) {
  struct stat st;
  if (fstat(f->fd, &st) < 0)
    return sx__err_set(err, SX_IO, "cannot stat '%s' for power-loss tracking", f->path);
  *out = (uint64_t)st.st_size;
  return SX_OK;
}

/* Records a write of n bytes at off before it happens. Requires fv->mu. */
static int track_write(sx__faultvfs *fv, sx__file *f, const void *buf, size_t n, uint64_t off,
                       sx_error *err) {
  uint64_t size = 0;
  int rc = file_size(f, &size, err);
  if (rc) return rc;
  struct rec *r = new_rec(fv, f);
  if (!r) return sx__err_set(err, SX_NOMEM, "out of memory tracking '%s'", f->path);
  r->off = off;
  r->len = n;
  r->size_before = size;
  r->newb = (unsigned char *)malloc(n);
  if (!r->newb) rc = sx__err_set(err, SX_NOMEM, "out of memory tracking '%s'", f->path);
  if (!rc) {
    memcpy(r->newb, buf, n);
    rc = save_old(f, r, off, off + n, err);
  }
  if (rc) drop_last_rec(fv, f);
  return rc;
}

static int track_truncate(sx__faultvfs *fv, sx__file *f, uint64_t size, sx_error *err) {
  uint64_t before = 0;
  int rc = file_size(f, &before, err);
  if (rc) return rc;
  struct rec *r = new_rec(fv, f);
  if (!r) return sx__err_set(err, SX_NOMEM, "out of memory tracking '%s'", f->path);
  r->is_trunc = 1;
  r->off = size;
  r->size_before = before;
  rc = save_old(f, r, size, before, err);
  if (rc) drop_last_rec(fv, f);
  return rc;
}

/* ------------------------------------------------------------------------- */
/* The table                                                                  */
/* ------------------------------------------------------------------------- */

static int fv_open(sx__vfs *vfs, const char *path, int flags, sx__file **out, sx_error *err) {
  sx__faultvfs *fv = fv_of(vfs);
  *out = NULL;
  int mode;
  pthread_mutex_lock(&fv->mu);
  int e = gate(fv, SX__IO_OPEN, &mode);
  if (e) {
    pthread_mutex_unlock(&fv->mu);
    return injected(err, e, "open", path);
  }
  struct stat st;
  int existed = stat(path, &st) == 0;
  if (!existed && (flags & SX__OPEN_CREATE) && crashed(fv)) {
    pthread_mutex_unlock(&fv->mu);
    return power_off(err, "create", path);
  }
  sx__file *f;
  int rc = base()->open(base(), path, flags, &f, err);
  if (rc) {
    pthread_mutex_unlock(&fv->mu);
    return rc;
  }
  f->vfs = vfs;
  if (fstat(f->fd, &st) < 0) {
    rc = sx__err_set(err, SX_IO, "cannot stat '%s' for power-loss tracking", path);
    goto fail;
  }
  f->dev = (uint64_t)st.st_dev;
  f->ino = (uint64_t)st.st_ino;
  if (is_shm(path)) {
    f->untracked = 1;
  } else {
    struct tracked *t = find_ino(fv, f->dev, f->ino);
    char *cpath = canon_path(path);
    if (!cpath || (!t && !(t = (struct tracked *)calloc(1, sizeof *t)))) {
      free(cpath);
      rc = sx__err_set(err, SX_NOMEM, "out of memory tracking '%s'", path);
      goto fail;
    }
    if (!t->path) {
      t->dev = f->dev;
      t->ino = f->ino;
      t->next = fv->files;
      fv->files = t;
    } else if (!existed) {
      /* A new file on a reused inode: what we knew is about a deleted file. */
      free_recs(t);
    }
    free(t->path);
    t->path = cpath;
    if (!existed) t->created = 1;
  }
  pthread_mutex_unlock(&fv->mu);
  *out = f;
  return SX_OK;
fail:
  pthread_mutex_unlock(&fv->mu);
  base()->close(f);
  return rc;
}

static void fv_close(sx__file *f) {
  base()->close(f);
}

static int fv_read(sx__file *f, void *buf, size_t n, uint64_t off, sx_error *err) {
  sx__faultvfs *fv = fv_of(f->vfs);
  int mode;
  pthread_mutex_lock(&fv->mu);
  int e = gate(fv, SX__IO_READ, &mode);
  pthread_mutex_unlock(&fv->mu);
  if (e) return injected(err, e, "read", f->path);
  return base()->read(f, buf, n, off, err);
}

static int fv_write(sx__file *f, const void *buf, size_t n, uint64_t off, sx_error *err) {
  sx__faultvfs *fv = fv_of(f->vfs);
  int rc = sx__file_check_poison(f, "write", err);
  if (rc) return rc;
  int mode;
  pthread_mutex_lock(&fv->mu);
  int e = gate(fv, SX__IO_WRITE, &mode);
  if (crashed(fv)) {
    pthread_mutex_unlock(&fv->mu);
    return power_off(err, "write", f->path);
  }
  if (e && mode != SX__FAULT_SHORT) {
    pthread_mutex_unlock(&fv->mu);
    return injected(err, e, "write", f->path);
  }
  /* A torn write as a disk might leave it: whole sectors, about half of them. */
  size_t todo = e ? (n / 2) & ~(size_t)(SECTOR - 1) : n;
  int in_range = n <= (size_t)INT64_MAX && off <= (uint64_t)INT64_MAX - n;
  if (!f->untracked && todo > 0 && in_range) rc = track_write(fv, f, buf, todo, off, err);
  if (!rc) rc = base()->write(f, buf, todo, off, err);
  pthread_mutex_unlock(&fv->mu);
  if (rc) return rc;
  if (e) {
    char b[64];
    return sx__err_set(err, SX_IO, "cannot write '%s': %s (injected fault after %zu of %zu bytes)",
                       f->path, sx__errno_text(EIO, b, sizeof b), todo, n);
  }
  return SX_OK;
}

/* Counts a sync and decides whether it may happen: SX_OK, or the failure (power
 * cut now or earlier, or an injected fault). Requires fv->mu. */
static int sync_gate(sx__faultvfs *fv, const char *what, const char *path, sx_error *err) {
  int mode;
  int e = gate(fv, SX__IO_SYNC, &mode);
  if (crashed(fv)) return power_off(err, what, path);
  if (fv->crash_syncs_left && --fv->crash_syncs_left == 0) {
    __atomic_store_n(&fv->crashed, 1, __ATOMIC_RELEASE);
    return power_off(err, what, path);
  }
  if (e) return injected(err, e, what, path);
  return SX_OK;
}

static int fv_sync(sx__file *f, int data_only, sx_error *err) {
  sx__faultvfs *fv = fv_of(f->vfs);
  int rc = sx__file_check_poison(f, "sync", err);
  if (rc) return rc;
  pthread_mutex_lock(&fv->mu);
  rc = sync_gate(fv, "sync", f->path, err);
  if (rc) {
    sx__file_poison(f);
  } else {
    rc = base()->sync(f, data_only, err);
    if (!rc && !f->untracked) {
      struct tracked *t = find_ino(fv, f->dev, f->ino);
      if (t) free_recs(t);
    }
  }
  pthread_mutex_unlock(&fv->mu);
  return rc;
}

static int fv_truncate(sx__file *f, uint64_t size, sx_error *err) {
  sx__faultvfs *fv = fv_of(f->vfs);
  int mode, rc = SX_OK;
  pthread_mutex_lock(&fv->mu);
  int e = gate(fv, SX__IO_TRUNCATE, &mode);
  if (crashed(fv))
    rc = power_off(err, "truncate", f->path);
  else if (e)
    rc = injected(err, e, "truncate", f->path);
  else {
    if (!f->untracked && size <= (uint64_t)INT64_MAX) rc = track_truncate(fv, f, size, err);
    if (!rc) rc = base()->truncate(f, size, err);
  }
  pthread_mutex_unlock(&fv->mu);
  return rc;
}

static int fv_size(sx__file *f, uint64_t *out, sx_error *err) {
  return base()->size(f, out, err);
}

static int fv_mmap(sx__file *f, uint64_t off, size_t len, int writable, void **out, sx_error *err) {
  sx__faultvfs *fv = fv_of(f->vfs);
  int mode;
  *out = NULL;
  pthread_mutex_lock(&fv->mu);
  int e = gate(fv, SX__IO_MMAP, &mode);
  pthread_mutex_unlock(&fv->mu);
  if (e) return injected(err, e, "map", f->path);
  return base()->mmap(f, off, len, writable, out, err);
}

static void fv_munmap(void *addr, size_t len) {
  base()->munmap(addr, len);
}

/* Every tracked name in dir is now durable. Requires fv->mu. */
static void dir_synced(sx__faultvfs *fv, const char *dir) {
  for (struct tracked *t = fv->files; t; t = t->next)
    if (t->created && in_dir(t, dir)) t->created = 0;
}

static int fv_rename(sx__vfs *vfs, const char *from, const char *to, sx_error *err) {
  sx__faultvfs *fv = fv_of(vfs);
  int mode, rc;
  pthread_mutex_lock(&fv->mu);
  int e = gate(fv, SX__IO_RENAME, &mode);
  if (crashed(fv)) {
    rc = power_off(err, "rename", from);
    goto out;
  }
  if (e) {
    rc = injected(err, e, "rename", from);
    goto out;
  }
  char *cfrom = canon_path(from), *cto = canon_path(to), *dto = canon_dir(to);
  if (!cfrom || !cto || !dto) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory renaming '%s'", from);
  } else {
    rc = base()->rename(base(), from, to, err);
    struct stat st;
    /* The default rename fails either before renaming or after, in the directory
     * sync; in the second case the new name exists but is not durable. */
    int moved = rc == SX_OK || stat(from, &st) < 0;
    if (moved) {
      struct tracked *src = find_path(fv, cfrom);
      for (struct tracked *t = fv->files, *next; t; t = next) {
        next = t->next;
        if (t != src && strcmp(t->path, cto) == 0) remove_tracked(fv, t); /* replaced */
      }
      if (src) {
        free(src->path);
        src->path = cto;
        cto = NULL;
        if (rc) src->created = 1;
      }
      if (!rc) dir_synced(fv, dto);
    }
  }
  free(cfrom);
  free(cto);
  free(dto);
out:
  pthread_mutex_unlock(&fv->mu);
  return rc;
}

static int fv_dir_sync(sx__vfs *vfs, const char *path, sx_error *err) {
  sx__faultvfs *fv = fv_of(vfs);
  pthread_mutex_lock(&fv->mu);
  int rc = sync_gate(fv, "sync the directory of", path, err);
  if (!rc) rc = base()->dir_sync(base(), path, err);
  if (!rc) {
    char *dir = canon_dir(path);
    if (dir) dir_synced(fv, dir);
    free(dir);
  }
  pthread_mutex_unlock(&fv->mu);
  return rc;
}

static int fv_unlink(sx__vfs *vfs, const char *path, sx_error *err) {
  sx__faultvfs *fv = fv_of(vfs);
  int rc;
  pthread_mutex_lock(&fv->mu);
  if (crashed(fv)) {
    rc = power_off(err, "remove", path);
  } else {
    char *cpath = canon_path(path);
    rc = base()->unlink(base(), path, err);
    struct tracked *t = cpath && !rc ? find_path(fv, cpath) : NULL;
    if (t) remove_tracked(fv, t);
    free(cpath);
  }
  pthread_mutex_unlock(&fv->mu);
  return rc;
}

static int fv_exists(sx__vfs *vfs, const char *path, sx_error *err) {
  return base()->exists(base(), path, err);
}

/* ------------------------------------------------------------------------- */
/* Control                                                                    */
/* ------------------------------------------------------------------------- */

sx__faultvfs *sx__faultvfs_new(void) {
  sx__faultvfs *fv = (sx__faultvfs *)calloc(1, sizeof *fv);
  if (!fv) return NULL;
  static const sx__vfs table = {
      "fault", fv_open, fv_close,  fv_read,   fv_write,    fv_sync,   fv_truncate,
      fv_size, fv_mmap, fv_munmap, fv_rename, fv_dir_sync, fv_unlink, fv_exists,
  };
  fv->vfs = table;
  pthread_mutex_init(&fv->mu, NULL);
  return fv;
}

static void forget_all(sx__faultvfs *fv) {
  while (fv->files) {
    struct tracked *t = fv->files;
    fv->files = t->next;
    free_tracked(t);
  }
}

void sx__faultvfs_free(sx__faultvfs *fv) {
  if (!fv) return;
  forget_all(fv);
  pthread_mutex_destroy(&fv->mu);
  free(fv);
}

sx__vfs *sx__faultvfs_vfs(sx__faultvfs *fv) {
  return &fv->vfs;
}

void sx__faultvfs_arm(sx__faultvfs *fv, int kind, uint64_t nth, int mode, int persistent) {
  if (kind < 0 || kind > SX__IO_KINDS) return;
  if (nth == 0) nth = 1;
  pthread_mutex_lock(&fv->mu);
  uint64_t now = kind == SX__IO_KINDS ? __atomic_load_n(&fv->total, __ATOMIC_RELAXED)
                                      : __atomic_load_n(&fv->counts[kind], __ATOMIC_RELAXED);
  fv->armed = 1;
  fv->fault_kind = kind;
  fv->fault_mode = mode;
  fv->persistent = persistent;
  fv->fault_at = now + nth;
  __atomic_store_n(&fv->fired, 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&fv->mu);
}

void sx__faultvfs_disarm(sx__faultvfs *fv) {
  pthread_mutex_lock(&fv->mu);
  fv->armed = 0;
  pthread_mutex_unlock(&fv->mu);
}

int sx__faultvfs_fired(const sx__faultvfs *fv) {
  return __atomic_load_n(&fv->fired, __ATOMIC_ACQUIRE);
}

uint64_t sx__faultvfs_count(const sx__faultvfs *fv, int kind) {
  if (kind == SX__IO_KINDS) return __atomic_load_n(&fv->total, __ATOMIC_RELAXED);
  if (kind < 0 || kind > SX__IO_KINDS) return 0;
  return __atomic_load_n(&fv->counts[kind], __ATOMIC_RELAXED);
}

/* nth == 0 cancels a pending crash. */
void sx__faultvfs_crash_at_sync(sx__faultvfs *fv, uint64_t nth) {
  pthread_mutex_lock(&fv->mu);
  fv->crash_syncs_left = nth;
  pthread_mutex_unlock(&fv->mu);
}

void sx__faultvfs_crash_now(sx__faultvfs *fv) {
  pthread_mutex_lock(&fv->mu);
  __atomic_store_n(&fv->crashed, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&fv->mu);
}

int sx__faultvfs_crashed(const sx__faultvfs *fv) {
  return crashed(fv);
}

/* Rewrites one tracked file into its post-power-loss state. */
static int lose_file(struct tracked *t, int how, uint64_t *rng) {
  struct stat st;
  if (t->created) {
    /* The name never reached the disk. Only remove the inode we know. */
    if (stat(t->path, &st) == 0 && (uint64_t)st.st_ino == t->ino && (uint64_t)st.st_dev == t->dev &&
        unlink(t->path) < 0)
      return -1;
    return 0;
  }
  if (t->nrecs == 0) return 0;
  int fd = open(t->path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return 0; /* gone (removed behind our back): nothing to restore */
  int bad = 0;
  if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != t->ino || (uint64_t)st.st_dev != t->dev) {
    close(fd);
    return 0;
  }
  /* Back to the synced image: each undo restores the state just before its call. */
  for (size_t i = t->nrecs; i-- > 0;) {
    struct rec *r = &t->recs[i];
    if (ftruncate(fd, (off_t)r->size_before) < 0) bad = -1;
    if (r->oldlen && pwrite_full(fd, r->oldb, r->oldlen, r->old_off) < 0) bad = -1;
  }
  if (how == SX__LOSS_TEAR) {
    for (size_t i = 0; i < t->nrecs; i++) {
      struct rec *r = &t->recs[i];
      uint64_t x = sx_test_splitmix64(rng);
      if (r->is_trunc) {
        if ((x & 1) && ftruncate(fd, (off_t)r->off) < 0) bad = -1;
        continue;
      }
      size_t keep;
      /* Sector boundaries strictly inside the write: where a tear can fall. */
      uint64_t first = (r->off / SECTOR + 1) * SECTOR, end = r->off + r->len;
      uint64_t cuts = first < end ? (end - 1 - first) / SECTOR + 1 : 0;
      switch (x % 3) {
        case 0:
          keep = r->len;
          break;
        case 1:
          keep = 0;
          break;
        default:
          if (cuts == 0)
            keep = (x >> 8) & 1 ? r->len : 0;
          else
            keep = (size_t)(first + (sx_test_splitmix64(rng) % cuts) * SECTOR - r->off);
          break;
      }
      if (keep && pwrite_full(fd, r->newb, keep, r->off) < 0) bad = -1;
    }
  }
  close(fd);
  return bad;
}

int sx__faultvfs_power_loss(sx__faultvfs *fv, int how, uint64_t seed) {
  if (how != SX__LOSS_DROP && how != SX__LOSS_TEAR) return SX_INVALID_ARGUMENT;
  pthread_mutex_lock(&fv->mu);
  uint64_t rng = seed;
  int rc = SX_OK;
  for (struct tracked *t = fv->files; t; t = t->next)
    if (lose_file(t, how, &rng) < 0) rc = SX_IO;
  forget_all(fv);
  fv->crash_syncs_left = 0;
  __atomic_store_n(&fv->crashed, 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&fv->mu);
  return rc;
}
