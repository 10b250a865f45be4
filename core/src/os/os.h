/*
 * os: the only layer that talks to the kernel about files.
 *
 * Everything above reaches files through an sx__vfs, a table of functions. The
 * real one (sx__vfs_default) calls the kernel; the tests' fault-injecting one
 * (tests/faultvfs.h) wraps it and can fail the Nth call of a kind or simulate power
 * loss by undoing every write not yet made durable by a sync.
 *
 * Invariants
 * - Nothing here keeps a caller's pointer after a call returns.
 * - Byte locks are Linux open-file-description locks (F_OFD_SETLK): they belong to
 *   the sx__file (its open file description), never to a process or thread, and
 *   the kernel drops them when the last descriptor of that description closes,
 *   which is how dead processes are detected. Two sx__files opened separately on
 *   one path exclude each other even inside one process.
 * - After a sync reports an error, the file is "poisoned": every later write or
 *   sync on that sx__file fails with SX_IO, because the kernel may have dropped the
 *   dirty pages and a retried fsync could report false success.
 * - No thread-local state; every function is safe to call from any thread on
 *   distinct files, and pread/pwrite/lock calls are safe concurrently on one file.
 */
#ifndef SX_OS_H
#define SX_OS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"
#include "sextant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Maps an errno value to a status: ENOSPC/EDQUOT -> SX_FULL, ENOMEM -> SX_NOMEM,
 * ENOENT -> SX_NOT_FOUND, EROFS -> SX_READ_ONLY, else SX_IO (EACCES and EPERM
 * included: a permission problem is not a read-only database). */
int sx__status_from_errno(int e);

typedef struct sx__vfs sx__vfs;
typedef struct sx__file sx__file;

/* Flags for sx__file_open. */
#define SX__OPEN_READ 0x01   /* read-only descriptor */
#define SX__OPEN_WRITE 0x02  /* read-write descriptor */
#define SX__OPEN_CREATE 0x04 /* create if missing (mode 0644) */
#define SX__OPEN_EXCL 0x08   /* with CREATE: fail with SX_EXISTS if it exists */

/* Lock kinds for sx__file_lock. */
enum sx__lock_kind { SX__UNLOCK = 0, SX__RDLOCK = 1, SX__WRLOCK = 2 };

/* Kinds of call the fault VFS can fail; also used to count calls. */
enum sx__io_kind {
  SX__IO_OPEN = 0,
  SX__IO_READ,
  SX__IO_WRITE,
  SX__IO_SYNC, /* fsync, fdatasync and directory sync */
  SX__IO_TRUNCATE,
  SX__IO_MMAP,
  SX__IO_RENAME,
  SX__IO_KINDS
};

/*
 * The table of file operations. A VFS is shared by every file opened through it
 * and must be thread-safe. Files remember the VFS that opened them.
 */
struct sx__vfs {
  const char *name;
  int (*open)(sx__vfs *vfs, const char *path, int flags, sx__file **out, sx_error *err);
  /* Closes the descriptor (dropping its OFD locks) and frees the file. NULL is a no-op. */
  void (*close)(sx__file *f);
  /* Reads exactly n bytes at off; a read past end of file is SX_IO ("short read"). */
  int (*read)(sx__file *f, void *buf, size_t n, uint64_t off, sx_error *err);
  /* Writes exactly n bytes at off (loops over partial writes; ENOSPC -> SX_FULL). */
  int (*write)(sx__file *f, const void *buf, size_t n, uint64_t off, sx_error *err);
  /* fdatasync (data_only) or fsync. An error poisons the file (see above). */
  int (*sync)(sx__file *f, int data_only, sx_error *err);
  int (*truncate)(sx__file *f, uint64_t size, sx_error *err);
  int (*size)(sx__file *f, uint64_t *out, sx_error *err);
  /* Maps [off, off+len) shared; off must be a multiple of the OS page size. The
   * range may extend past end of file (touching it before the file grows is a bug). */
  int (*mmap)(sx__file *f, uint64_t off, size_t len, int writable, void **out, sx_error *err);
  void (*munmap)(void *addr, size_t len);
  /* rename(from, to) then fsync of the directory holding `to`. */
  int (*rename)(sx__vfs *vfs, const char *from, const char *to, sx_error *err);
  /* fsync of the directory that holds path (after a create or rename). */
  int (*dir_sync)(sx__vfs *vfs, const char *path, sx_error *err);
  /* unlink; a missing file is not an error. */
  int (*unlink)(sx__vfs *vfs, const char *path, sx_error *err);
  /* Returns 1 if path exists, 0 if not, or a negative -SX_* status on error. */
  int (*exists)(sx__vfs *vfs, const char *path, sx_error *err);
};

/* The real VFS. */
sx__vfs *sx__vfs_default(void);

/* A file that lives in memory only (memfd_create), named `label` in messages, for
 * vfs's calls (reads, writes, truncate, maps, OFD locks): what a read-only handle uses
 * in place of a -shm or -wal file it cannot create or write. */
int sx__file_open_private(sx__vfs *vfs, const char *label, sx__file **out, sx_error *err);

/* Convenience wrappers that dispatch through the file's VFS. */
int sx__file_read(sx__file *f, void *buf, size_t n, uint64_t off, sx_error *err);
int sx__file_write(sx__file *f, const void *buf, size_t n, uint64_t off, sx_error *err);
int sx__file_sync(sx__file *f, int data_only, sx_error *err);
/* Starts writing the dirty cached pages of [off, off + len) to the device without
 * waiting (Linux sync_file_range WRITE; elsewhere nothing). A hint that spreads the
 * device's work over time so that a later sx__file_sync has less left to wait for; it
 * promises nothing about durability and cannot fail. */
void sx__file_writeback(sx__file *f, uint64_t off, uint64_t len);
int sx__file_truncate(sx__file *f, uint64_t size, sx_error *err);
/* Grows f to `size` bytes with its blocks allocated (posix_fallocate, or zeros where
 * the file system has none), for files reached through a shared mapping: a mapped
 * page with no block behind it faults with SIGBUS when the device is full, while
 * this fails with SX_FULL. Never shrinks. */
int sx__file_allocate(sx__file *f, uint64_t size, sx_error *err);
int sx__file_size(sx__file *f, uint64_t *out, sx_error *err);
int sx__file_mmap(sx__file *f, uint64_t off, size_t len, int writable, void **out, sx_error *err);
void sx__file_munmap(sx__file *f, void *addr, size_t len);
void sx__file_close(sx__file *f);
const char *sx__file_path(const sx__file *f);
int sx__file_fd(const sx__file *f);

/*
 * OFD byte-range locks on [off, off+len). These never go through the fault VFS
 * (a lock cannot fail with EIO in a way worth simulating) but do take the file.
 *   sx__file_lock(f, off, len, kind, 0)      try once: SX_OK or SX_BUSY
 *   sx__file_lock(f, off, len, kind, ms > 0) retry with backoff until ms elapse
 *   sx__file_lock(f, off, len, kind, -1)     wait for ever (F_OFD_SETLKW)
 * A lock already held by this same sx__file is converted (read <-> write).
 */
int sx__file_lock(sx__file *f, uint64_t off, uint64_t len, int kind, int timeout_ms, sx_error *err);
/* F_OFD_GETLK: 1 if another open file description holds a lock that conflicts with
 * `kind` on the range, 0 if none, negative -SX_IO on error. Locks held through f
 * itself never count. */
int sx__file_lock_held(sx__file *f, uint64_t off, uint64_t len, int kind);
/* 1 when path names the file f has open (the same device and inode), 0 when it names
 * another file or nothing (f's file was removed or renamed away since it was opened). */
int sx__file_is_at(const sx__file *f, const char *path);

/* Refuses network file systems: SX_IO "... is on a network file system (nfs) ..."
 * for the directory holding path (or path itself when it exists). */
int sx__fs_check_local(const char *path, sx_error *err);

/* The name a database is known by, whatever name it was opened through: path with
 * its symbolic links resolved (for a file not yet made, its directory's), so that one
 * file has one set of -wal/-shm files and one writer lock. malloc'd; NULL when out of
 * memory (a path that cannot be resolved is returned as given). */
char *sx__fs_canonical(const char *path);

/* SX_IO when the regular file at path has more than one hard link (each name would
 * get its own -wal/-shm files and writer lock: two writers on one file); SX_OK when
 * it has one or does not exist. */
int sx__fs_check_links(const char *path, sx_error *err);

/* Monotonic clock in nanoseconds, and a sleep. */
uint64_t sx__now_ns(void);
void sx__sleep_us(unsigned us);
/* The OS page size. */
size_t sx__os_page_size(void);
/* A zeroed table of len bytes in pages of its own (an anonymous mapping: the kernel
 * gives each page on its first write, so the untouched part costs neither time nor
 * memory), or NULL; sx__os_table_free(t, len) gives it back (NULL: nothing). For
 * tables sized for the largest file but mostly untouched. Nothing here is scanned
 * by a leak checker: hold no heap pointers in one. */
void *sx__os_table(size_t len);
void sx__os_table_free(void *t, size_t len);

/* Incremented in a child after fork() (pthread_atfork); handles compare the value
 * they were opened under to notice they crossed a fork. */
unsigned sx__fork_generation(void);

/* Runs fn(arg, i) for every i in [0, n) on n threads: i = 0 on the calling thread,
 * the others on threads started for the call and joined before it returns. A part
 * whose thread cannot be started runs on the calling thread after the others, so
 * every part runs exactly once whatever the system allows. */
void sx__par_for(int n, void (*fn)(void *arg, int i), void *arg);

/* The public cancel token (sextant.h): one flag, set from any thread. Polled by
 * the layers above through sx__cancelled (NULL: never cancelled). */
struct sx_cancel {
  int set; /* accessed with __atomic builtins only */
};
static inline int sx__cancelled(const sx_cancel *c) {
  return c && __atomic_load_n(&c->set, __ATOMIC_RELAXED);
}

#ifdef __cplusplus
}
#endif

#endif
