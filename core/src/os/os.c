/*
 * os.c: the default VFS (the one that calls the kernel), the sx__file wrappers,
 * OFD byte locks, the network file system check, clocks and the fork counter.
 *
 * Invariants
 * - Every descriptor is opened O_CLOEXEC: an exec'd child must never keep a
 *   descriptor alive, or the OFD locks on it would outlive the process that took
 *   them.
 * - read/write move exactly the bytes asked for or fail; EINTR and partial
 *   transfers are retried here so no caller has to.
 * - The poison rule (os.h) is enforced in the wrappers, whatever VFS serves the
 *   file, and again inside the default VFS for callers that use the table directly.
 * - No thread-local state: errno is read right after the failing call and turned
 *   into a status and a message in the caller's sx_error.
 */
#include "os/os_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* Errors                                                                     */
/* ------------------------------------------------------------------------- */

int sx__status_from_errno(int e) {
  switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: /* the process's file size limit (RLIMIT_FSIZE) */
      return SX_FULL;
    case ENOMEM:
      return SX_NOMEM;
    case ENOENT:
      return SX_NOT_FOUND;
    case EROFS:
      return SX_READ_ONLY;
    default:
      return SX_IO;
  }
}

const char *sx__errno_text(int e, char *buf, size_t cap) {
  /* GNU strerror_r: returns a static string for known values and only uses buf
   * for unknown ones, so it is safe from any thread. */
  return strerror_r(e, buf, cap);
}

/* Formats "cannot <what> '<path>': <errno text>" into err; returns the status. */
static int err_errno(sx_error *err, int e, const char *what, const char *path) {
  char buf[64];
  return sx__err_set(err, sx__status_from_errno(e), "cannot %s '%s': %s", what, path,
                     sx__errno_text(e, buf, sizeof buf));
}

void sx__file_poison(sx__file *f) {
  __atomic_store_n(&f->poisoned, 1, __ATOMIC_RELEASE);
}

int sx__file_check_poison(sx__file *f, const char *what, sx_error *err) {
  if (!__atomic_load_n(&f->poisoned, __ATOMIC_ACQUIRE)) return SX_OK;
  return sx__err_set(err, SX_IO,
                     "cannot %s '%s': an earlier sync of this file failed, so its data may "
                     "be lost; reopen it",
                     what, f->path);
}

char *sx__path_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  /* "/x" lives in "/"; "a//b" in "a". */
  while (slash > path && slash[-1] == '/') slash--;
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  char *d = (char *)malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, path, n);
  d[n] = '\0';
  return d;
}

/* Offsets reach the kernel as off_t; refuse what would wrap negative. */
static int check_range(sx__file *f, uint64_t off, size_t n, sx_error *err) {
  if (off > (uint64_t)INT64_MAX || (uint64_t)n > (uint64_t)INT64_MAX - off)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "offset %llu + %zu bytes is out of range for '%s'",
                       (unsigned long long)off, n, f->path);
  return SX_OK;
}

/* ------------------------------------------------------------------------- */
/* fork generation                                                            */
/* ------------------------------------------------------------------------- */

static unsigned fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* Every descriptor the default VFS holds open. fork() shares open file
 * descriptions, and with them OFD locks: a child that kept its copies would keep
 * its parent's locks alive after the parent died. So the child closes them all at
 * once; handles it inherited re-open their files on first use (session.c). */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static sx__file *reg_head;

static void reg_add(sx__file *f) {
  pthread_mutex_lock(&reg_mu);
  f->reg_prev = NULL;
  f->reg_next = reg_head;
  if (reg_head) reg_head->reg_prev = f;
  reg_head = f;
  pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(sx__file *f) {
  pthread_mutex_lock(&reg_mu);
  if (f->reg_prev)
    f->reg_prev->reg_next = f->reg_next;
  else if (reg_head == f)
    reg_head = f->reg_next;
  if (f->reg_next) f->reg_next->reg_prev = f->reg_prev;
  f->reg_prev = f->reg_next = NULL;
  pthread_mutex_unlock(&reg_mu);
}

static void on_fork_prepare(void) {
  pthread_mutex_lock(&reg_mu);
}
static void on_fork_parent(void) {
  pthread_mutex_unlock(&reg_mu);
}

static void on_fork_child(void) {
  for (sx__file *f = reg_head; f; f = f->reg_next) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
  }
  reg_head = NULL;
  pthread_mutex_unlock(&reg_mu);
  __atomic_add_fetch(&fork_gen, 1, __ATOMIC_RELAXED);
}

static void register_atfork(void) {
  pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
}

/* Registered lazily (before any file exists, so no handle can miss a fork). */
static void ensure_atfork(void) {
  pthread_once(&fork_once, register_atfork);
}

unsigned sx__fork_generation(void) {
  ensure_atfork();
  return __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------- */
/* The default VFS                                                            */
/* ------------------------------------------------------------------------- */

static int def_open(sx__vfs *vfs, const char *path, int flags, sx__file **out, sx_error *err) {
  *out = NULL;
  ensure_atfork();
  int oflags = O_CLOEXEC;
  oflags |= (flags & SX__OPEN_WRITE) ? O_RDWR : O_RDONLY;
  if (flags & SX__OPEN_CREATE) oflags |= O_CREAT;
  if ((flags & SX__OPEN_CREATE) && (flags & SX__OPEN_EXCL)) oflags |= O_EXCL;
  sx__file *f = (sx__file *)calloc(1, sizeof *f);
  char *copy = strdup(path);
  if (!f || !copy) {
    free(f);
    free(copy);
    return sx__err_set(err, SX_NOMEM, "out of memory opening '%s'", path);
  }
  /* O_NONBLOCK: opening a FIFO (or a device) must not wait for a peer; anything but
   * a regular file is refused below, and regular files ignore the flag. */
  int fd;
  do {
    fd = open(path, oflags | O_NONBLOCK, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    free(f);
    free(copy);
    if (e == EEXIST)
      return sx__err_set(err, SX_EXISTS, "cannot create '%s': it already exists", path);
    if (e == ENXIO)
      return sx__err_set(err, SX_IO, "'%s' is not a regular file (a FIFO or socket)", path);
    return err_errno(err, e, "open", path);
  }
  struct stat st;
  int serr = fstat(fd, &st) != 0 ? errno : 0;
  if (serr || !S_ISREG(st.st_mode)) {
    close(fd);
    free(f);
    free(copy);
    if (serr) return err_errno(err, serr, "fstat", path);
    return sx__err_set(err, SX_IO, "'%s' is not a regular file", path);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  f->vfs = vfs;
  f->fd = fd;
  f->flags = flags;
  f->path = copy;
  reg_add(f);
  *out = f;
  return SX_OK;
}

/* A file in memory only (memfd): reads, writes, maps and OFD locks work as on a
 * real file, but no other process can open it. */
int sx__file_open_private(sx__vfs *vfs, const char *label, sx__file **out, sx_error *err) {
  *out = NULL;
  ensure_atfork();
  sx__file *f = (sx__file *)calloc(1, sizeof *f);
  char *copy = strdup(label);
  int fd = f && copy ? memfd_create("sextant", MFD_CLOEXEC) : -1;
  if (fd < 0) {
    int e = errno;
    free(f);
    free(copy);
    if (!f || !copy) return sx__err_set(err, SX_NOMEM, "out of memory opening '%s'", label);
    return err_errno(err, e, "make a private file for", label);
  }
  f->vfs = vfs;
  f->fd = fd;
  f->flags = SX__OPEN_WRITE;
  f->path = copy;
  f->untracked = 1;
  reg_add(f);
  *out = f;
  return SX_OK;
}

static void def_close(sx__file *f) {
  if (!f) return;
  reg_remove(f);
  /* close() may report a deferred write error (NFS); the data is already covered
   * by sync, which is where durability is checked, so the result is not used. */
  if (f->fd >= 0) close(f->fd);
  free(f->path);
  free(f);
}

static int def_read(sx__file *f, void *buf, size_t n, uint64_t off, sx_error *err) {
  int rc = check_range(f, off, n, err);
  if (rc) return rc;
  size_t done = 0;
  while (done < n) {
    ssize_t got = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return err_errno(err, errno, "read", f->path);
    }
    if (got == 0)
      return sx__err_set(err, SX_IO,
                         "short read from '%s': wanted %zu bytes at offset %llu, file ends "
                         "at %llu",
                         f->path, n, (unsigned long long)off, (unsigned long long)(off + done));
    done += (size_t)got;
  }
  return SX_OK;
}

static int def_write(sx__file *f, const void *buf, size_t n, uint64_t off, sx_error *err) {
  int rc = sx__file_check_poison(f, "write", err);
  if (rc) return rc;
  rc = check_range(f, off, n, err);
  if (rc) return rc;
  size_t done = 0;
  while (done < n) {
    ssize_t put = pwrite(f->fd, (const char *)buf + done, n - done, (off_t)(off + done));
    if (put < 0) {
      if (errno == EINTR) continue;
      return err_errno(err, errno, "write", f->path);
    }
    /* A zero-byte write for a non-empty request makes no progress: treat it as a
     * full device rather than spin. */
    if (put == 0) return err_errno(err, ENOSPC, "write", f->path);
    done += (size_t)put;
  }
  return SX_OK;
}

static int def_sync(sx__file *f, int data_only, sx_error *err) {
  int rc = sx__file_check_poison(f, "sync", err);
  if (rc) return rc;
  int r;
  do {
    r = data_only ? fdatasync(f->fd) : fsync(f->fd);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    sx__file_poison(f);
    return err_errno(err, e, "sync", f->path);
  }
  return SX_OK;
}

static int def_truncate(sx__file *f, uint64_t size, sx_error *err) {
  int rc = check_range(f, size, 0, err);
  if (rc) return rc;
  int r;
  do {
    r = ftruncate(f->fd, (off_t)size);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return err_errno(err, errno, "truncate", f->path);
  return SX_OK;
}

static int def_size(sx__file *f, uint64_t *out, sx_error *err) {
  struct stat st;
  if (fstat(f->fd, &st) < 0) return err_errno(err, errno, "stat", f->path);
  *out = (uint64_t)st.st_size;
  return SX_OK;
}

static int def_mmap(sx__file *f, uint64_t off, size_t len, int writable, void **out,
                    sx_error *err) {
  *out = NULL;
  size_t page = sx__os_page_size();
  if (len == 0 || off % page != 0)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "cannot map '%s': offset %llu must be a multiple of %zu and length "
                       "nonzero (got %zu)",
                       f->path, (unsigned long long)off, page, len);
  int rc = check_range(f, off, len, err);
  if (rc) return rc;
  int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void *p = mmap(NULL, len, prot, MAP_SHARED, f->fd, (off_t)off);
  if (p == MAP_FAILED) return err_errno(err, errno, "map", f->path);
  /* A mapping holds its file: a fork child must not inherit it (see on_fork_child). */
  madvise(p, len, MADV_DONTFORK);
  *out = p;
  return SX_OK;
}

static void def_munmap(void *addr, size_t len) {
  if (addr) munmap(addr, len);
}

static int def_dir_sync(sx__vfs *vfs, const char *path, sx_error *err) {
  char *dir = sx__path_dir(path);
  if (!dir) return sx__err_set(err, SX_NOMEM, "out of memory syncing the directory of '%s'", path);
  int fd;
  do {
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int rc = err_errno(err, errno, "open directory", dir);
    free(dir);
    return rc;
  }
  int r;
  do {
    r = fsync(fd);
  } while (r < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  /* Some file systems cannot fsync a directory and say EINVAL; their directory
   * updates are already synchronous, so there is nothing to wait for. */
  if (r < 0 && e != EINVAL) {
    int rc = err_errno(err, e, "sync directory", dir);
    free(dir);
    return rc;
  }
  free(dir);
  return SX_OK;
}

static int def_rename(sx__vfs *vfs, const char *from, const char *to, sx_error *err) {
  if (rename(from, to) < 0) {
    char buf[64];
    int e = errno;
    return sx__err_set(err, sx__status_from_errno(e), "cannot rename '%s' to '%s': %s", from, to,
                       sx__errno_text(e, buf, sizeof buf));
  }
  /* The rename is only durable once the directory holding the new name is. */
  return def_dir_sync(vfs, to, err);
}

static int def_unlink(sx__vfs *vfs, const char *path, sx_error *err) {
  if (unlink(path) < 0 && errno != ENOENT) return err_errno(err, errno, "remove", path);
  return SX_OK;
}

static int def_exists(sx__vfs *vfs, const char *path, sx_error *err) {
  struct stat st;
  if (stat(path, &st) == 0) return 1;
  if (errno == ENOENT || errno == ENOTDIR) return 0;
  return -err_errno(err, errno, "stat", path);
}

static sx__vfs default_vfs = {
    "default", def_open, def_close,  def_read,   def_write,    def_sync,   def_truncate,
    def_size,  def_mmap, def_munmap, def_rename, def_dir_sync, def_unlink, def_exists,
};

sx__vfs *sx__vfs_default(void) {
  return &default_vfs;
}

/* ------------------------------------------------------------------------- */
/* Wrappers                                                                   */
/* ------------------------------------------------------------------------- */

int sx__file_read(sx__file *f, void *buf, size_t n, uint64_t off, sx_error *err) {
  return f->vfs->read(f, buf, n, off, err);
}

int sx__file_write(sx__file *f, const void *buf, size_t n, uint64_t off, sx_error *err) {
  int rc = sx__file_check_poison(f, "write", err);
  if (rc) return rc;
  return f->vfs->write(f, buf, n, off, err);
}

int sx__file_sync(sx__file *f, int data_only, sx_error *err) {
  int rc = sx__file_check_poison(f, "sync", err);
  if (rc) return rc;
  rc = f->vfs->sync(f, data_only, err);
  /* Poison here too, so the rule holds whichever VFS failed the sync. */
  if (rc) sx__file_poison(f);
  return rc;
}

void sx__file_writeback(sx__file *f, uint64_t off, uint64_t len) {
#ifdef SYNC_FILE_RANGE_WRITE
  if (f->fd >= 0 && len)
    (void)sync_file_range(f->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
  (void)f, (void)off, (void)len;
#endif
}

int sx__file_truncate(sx__file *f, uint64_t size, sx_error *err) {
  return f->vfs->truncate(f, size, err);
}

int sx__file_allocate(sx__file *f, uint64_t size, sx_error *err) {
  uint64_t cur = 0;
  int rc = sx__file_size(f, &cur, err);
  if (rc || cur >= size) return rc;
  /* The size through the VFS (whose faults the tests inject), then the blocks. */
  rc = sx__file_truncate(f, size, err);
  if (rc) return rc;
  int e = posix_fallocate(f->fd, (off_t)cur, (off_t)(size - cur));
  if (e == EOPNOTSUPP || e == EINVAL) {
    /* No fallocate on this file system: zeros written allocate the blocks too. */
    static const uint8_t zeros[65536];
    e = 0;
    for (uint64_t off = cur; off < size && !rc;) {
      size_t n = size - off < sizeof zeros ? (size_t)(size - off) : sizeof zeros;
      rc = sx__file_write(f, zeros, n, off, err);
      off += n;
    }
  } else if (e) {
    rc = err_errno(err, e, "allocate", f->path);
  }
  if (rc) sx__file_truncate(f, cur, NULL); /* no sparse tail left behind */
  return rc;
}

int sx__file_size(sx__file *f, uint64_t *out, sx_error *err) {
  return f->vfs->size(f, out, err);
}

int sx__file_mmap(sx__file *f, uint64_t off, size_t len, int writable, void **out, sx_error *err) {
  return f->vfs->mmap(f, off, len, writable, out, err);
}

void sx__file_munmap(sx__file *f, void *addr, size_t len) {
  if (f)
    f->vfs->munmap(addr, len);
  else
    def_munmap(addr, len);
}

void sx__file_close(sx__file *f) {
  if (f) f->vfs->close(f);
}

const char *sx__file_path(const sx__file *f) {
  return f ? f->path : NULL;
}

int sx__file_fd(const sx__file *f) {
  return f ? f->fd : -1;
}

int sx__file_is_at(const sx__file *f, const char *path) {
  struct stat a, b;
  if (fstat(f->fd, &a) != 0 || stat(path, &b) != 0) return 0;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* ------------------------------------------------------------------------- */
/* OFD locks                                                                  */
/* ------------------------------------------------------------------------- */

static const char *kind_name(int kind) {
  return kind == SX__WRLOCK ? "write" : kind == SX__RDLOCK ? "read" : "un";
}

static int fill_flock(sx__file *f, struct flock *fl, uint64_t off, uint64_t len, int kind,
                      sx_error *err) {
  memset(fl, 0, sizeof *fl);
  switch (kind) {
    case SX__UNLOCK:
      fl->l_type = F_UNLCK;
      break;
    case SX__RDLOCK:
      fl->l_type = F_RDLCK;
      break;
    case SX__WRLOCK:
      fl->l_type = F_WRLCK;
      break;
    default:
      return sx__err_set(err, SX_INVALID_ARGUMENT, "bad lock kind %d on '%s'", kind, f->path);
  }
  if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "lock range %llu+%llu is out of range on '%s'",
                       (unsigned long long)off, (unsigned long long)len, f->path);
  fl->l_whence = SEEK_SET;
  fl->l_start = (off_t)off;
  fl->l_len = (off_t)len;
  fl->l_pid = 0; /* required by OFD locks */
  return SX_OK;
}

/* One F_OFD_SETLK attempt: SX_OK, SX_BUSY (conflict, no message) or an error. */
static int try_lock(sx__file *f, struct flock *fl, uint64_t off, uint64_t len, int kind,
                    sx_error *err) {
  for (;;) {
    struct flock copy = *fl;
    if (fcntl(f->fd, F_OFD_SETLK, &copy) == 0) return SX_OK;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EACCES) return SX_BUSY;
    char buf[64];
    return sx__err_set(err, e == ENOLCK ? SX_NOMEM : SX_IO,
                       "cannot %slock bytes %llu+%llu of '%s': %s", kind_name(kind),
                       (unsigned long long)off, (unsigned long long)len, f->path,
                       sx__errno_text(e, buf, sizeof buf));
  }
}

int sx__file_lock(sx__file *f, uint64_t off, uint64_t len, int kind, int timeout_ms,
                  sx_error *err) {
  struct flock fl;
  int rc = fill_flock(f, &fl, off, len, kind, err);
  if (rc) return rc;
  if (kind == SX__UNLOCK || timeout_ms == 0) {
    rc = try_lock(f, &fl, off, len, kind, err);
    if (rc == SX_BUSY)
      sx__err_set(err, SX_BUSY, "bytes %llu+%llu of '%s' are locked by another handle",
                  (unsigned long long)off, (unsigned long long)len, f->path);
    return rc;
  }
  if (timeout_ms < 0) {
    for (;;) {
      struct flock copy = fl;
      if (fcntl(f->fd, F_OFD_SETLKW, &copy) == 0) return SX_OK;
      int e = errno;
      if (e == EINTR) continue;
      char buf[64];
      if (e == EDEADLK)
        return sx__err_set(err, SX_BUSY, "cannot %slock bytes %llu+%llu of '%s': %s",
                           kind_name(kind), (unsigned long long)off, (unsigned long long)len,
                           f->path, sx__errno_text(e, buf, sizeof buf));
      return sx__err_set(err, e == ENOLCK ? SX_NOMEM : SX_IO,
                         "cannot %slock bytes %llu+%llu of '%s': %s", kind_name(kind),
                         (unsigned long long)off, (unsigned long long)len, f->path,
                         sx__errno_text(e, buf, sizeof buf));
    }
  }
  /* There is no timed F_OFD_SETLKW, so poll with a backoff: short first (locks are
   * usually held briefly), capped so a release is noticed within 5 ms. */
  uint64_t deadline = sx__now_ns() + (uint64_t)timeout_ms * 1000000u;
  unsigned backoff_us = 50;
  for (;;) {
    rc = try_lock(f, &fl, off, len, kind, err);
    if (rc != SX_BUSY) return rc;
    uint64_t now = sx__now_ns();
    if (now >= deadline)
      return sx__err_set(err, SX_BUSY,
                         "bytes %llu+%llu of '%s' are still locked by another handle after "
                         "%d ms",
                         (unsigned long long)off, (unsigned long long)len, f->path, timeout_ms);
    uint64_t left_us = (deadline - now + 999) / 1000;
    sx__sleep_us(left_us < backoff_us ? (unsigned)left_us : backoff_us);
    if (backoff_us < 5000) backoff_us = backoff_us * 2 > 5000 ? 5000 : backoff_us * 2;
  }
}

int sx__file_lock_held(sx__file *f, uint64_t off, uint64_t len, int kind) {
  struct flock fl;
  if (kind == SX__UNLOCK || fill_flock(f, &fl, off, len, kind, NULL)) return -SX_IO;
  if (fcntl(f->fd, F_OFD_GETLK, &fl) < 0) return -SX_IO;
  return fl.l_type == F_UNLCK ? 0 : 1;
}

/* ------------------------------------------------------------------------- */
/* Network file systems                                                       */
/* ------------------------------------------------------------------------- */

/* Byte locks and shared memory maps are not coherent across hosts on these, and
 * some lie about fsync: refusing is better than silent corruption. */
static const struct {
  uint32_t magic;
  const char *name;
} network_fs[] = {
    {0x6969u, "nfs"},      {0x517Bu, "smb"},      {0xFF534D42u, "cifs"},  {0xFE534D42u, "smb2"},
    {0x00C36400u, "ceph"}, {0x5346414Fu, "afs"},  {0x01021997u, "9p"},    {0x73757245u, "coda"},
    {0x564cu, "ncp"},      {0x01161970u, "gfs2"}, {0x7461636fu, "ocfs2"},
};

char *sx__fs_canonical(const char *path) {
  char *r = realpath(path, NULL);
  if (r) return r;
  if (errno != ENOENT) return strdup(path);
  /* Not made yet: resolve the directory, keep the last component. */
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) return NULL;
  char *rdir = realpath(dir, NULL);
  free(dir);
  if (!rdir) return strdup(path);
  const char *base = slash ? slash + 1 : path;
  size_t n = strlen(rdir) + 1 + strlen(base) + 1;
  char *out = malloc(n);
  if (out) snprintf(out, n, "%s%s%s", rdir, strcmp(rdir, "/") == 0 ? "" : "/", base);
  free(rdir);
  return out;
}

int sx__fs_check_links(const char *path, sx_error *err) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink <= 1) return SX_OK;
  return sx__err_set(err, SX_IO,
                     "database '%s' has %llu hard links: opened through two names it would have "
                     "two WALs and two writer locks; remove the other links (or copy the file)",
                     path, (unsigned long long)st.st_nlink);
}

int sx__fs_check_local(const char *path, sx_error *err) {
  struct statfs st;
  const char *checked = path;
  char *dir = NULL;
  int r = statfs(path, &st);
  if (r < 0 && errno == ENOENT) {
    /* Not created yet: what matters is where it will be created. */
    dir = sx__path_dir(path);
    if (!dir) return sx__err_set(err, SX_NOMEM, "out of memory checking '%s'", path);
    checked = dir;
    r = statfs(dir, &st);
  }
  if (r < 0) {
    char buf[64];
    int e = errno;
    int rc = sx__err_set(err, sx__status_from_errno(e), "cannot check the file system of '%s': %s",
                         checked, sx__errno_text(e, buf, sizeof buf));
    free(dir);
    return rc;
  }
  free(dir);
  uint32_t magic = (uint32_t)st.f_type;
  for (size_t i = 0; i < sizeof network_fs / sizeof network_fs[0]; i++)
    if (magic == network_fs[i].magic)
      return sx__err_set(err, SX_IO,
                         "database '%s' is on a network file system (%s); Sextant needs a "
                         "local file system",
                         path, network_fs[i].name);
  return SX_OK;
}

/* ------------------------------------------------------------------------- */
/* Time and memory                                                            */
/* ------------------------------------------------------------------------- */

uint64_t sx__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sx__sleep_us(unsigned us) {
  struct timespec req = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L};
  struct timespec rem;
  while (nanosleep(&req, &rem) < 0 && errno == EINTR) req = rem;
}

size_t sx__os_page_size(void) {
  static size_t cached; /* __atomic; every thread computes the same value */
  size_t p = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (p) return p;
  long v = sysconf(_SC_PAGESIZE);
  p = v > 0 ? (size_t)v : 4096;
  __atomic_store_n(&cached, p, __ATOMIC_RELAXED);
  return p;
}

void *sx__os_table(size_t len) {
  void *t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return t == MAP_FAILED ? NULL : t;
}

void sx__os_table_free(void *t, size_t len) {
  if (t) munmap(t, len);
}
