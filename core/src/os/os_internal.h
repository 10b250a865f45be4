/*
 * os_internal: what os.c and the tests' fault VFS (tests/faultvfs.c) share and
 * nothing above the os layer may touch: the layout of sx__file and a few helpers.
 *
 * Invariants
 * - f->vfs is the VFS whose table serves f; the fault VFS opens through the default
 *   one and then points f->vfs at itself, so every wrapper call reaches the fault
 *   VFS first.
 * - f->poisoned only ever goes 0 -> 1 (see os.h on why a failed sync is final).
 * - f->path is owned by f and freed by the default close.
 */
#ifndef SX_OS_INTERNAL_H
#define SX_OS_INTERNAL_H

#include <stdint.h>

#include "os/os.h"

struct sx__file {
  sx__vfs *vfs;
  int fd;
  int flags;    /* SX__OPEN_* as opened */
  char *path;   /* malloc'd copy of the path as given */
  int poisoned; /* __atomic; set once a sync failed */
  /* For the fault VFS: identity of the inode (tracking is per inode, so several
   * handles on one path share it) and whether the file is exempt from tracking. */
  uint64_t dev;
  uint64_t ino;
  int untracked;
  /* Registry of open descriptors (os.c), so a fork child can drop them. */
  struct sx__file *reg_prev, *reg_next;
};

/* Marks f poisoned (a sync on it failed). */
void sx__file_poison(sx__file *f);
/* SX_OK, or SX_IO with a message when f is poisoned; `what` names the refused
 * operation ("write", "sync"). */
int sx__file_check_poison(sx__file *f, const char *what, sx_error *err);
/* The directory that holds path ("." when it has no slash): a malloc'd string, or
 * NULL when out of memory. */
char *sx__path_dir(const char *path);
/* strerror, without the thread-unsafety of strerror for unknown values. */
const char *sx__errno_text(int e, char *buf, size_t cap);

#endif
