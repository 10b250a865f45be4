/*
 * faultvfs.h: the fault-injecting VFS of the tests (faultvfs.c). It wraps the
 * default VFS (sx__vfs_default), fails the call chosen by sx__faultvfs_arm, and
 * simulates power loss. Built into the tests only, never into the library.
 */
#ifndef SX_TESTS_FAULTVFS_H
#define SX_TESTS_FAULTVFS_H

#include <stdint.h>

#include "os/os.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sx__faultvfs sx__faultvfs;

enum sx__fault_mode {
  SX__FAULT_EIO = 1,    /* the call fails with EIO -> SX_IO */
  SX__FAULT_ENOSPC = 2, /* the call fails with ENOSPC -> SX_FULL (writes, truncate) */
  SX__FAULT_SHORT = 3   /* a write stores only a prefix of its bytes, then fails with EIO */
};

sx__faultvfs *sx__faultvfs_new(void);
void sx__faultvfs_free(sx__faultvfs *fv);
sx__vfs *sx__faultvfs_vfs(sx__faultvfs *fv);

/*
 * Arms a fault: the nth call (1-based, counted from now) of `kind` fails with
 * `mode`; with `persistent`, that call and every later one of the kind fail.
 * kind == SX__IO_KINDS means "the nth I/O call of any kind". One fault at a time;
 * arming replaces the previous one. sx__faultvfs_disarm clears it.
 */
void sx__faultvfs_arm(sx__faultvfs *fv, int kind, uint64_t nth, int mode, int persistent);
void sx__faultvfs_disarm(sx__faultvfs *fv);
/* 1 once the armed fault has fired. */
int sx__faultvfs_fired(const sx__faultvfs *fv);
/* Calls of `kind` (or all kinds with SX__IO_KINDS) seen since creation. */
uint64_t sx__faultvfs_count(const sx__faultvfs *fv, int kind);

/*
 * Power loss. The fault VFS remembers, for every file, the bytes each write
 * overwrote (and the size before it) since that file's last successful sync, and
 * which files were created or renamed since their directory's last sync.
 *   sx__faultvfs_crash_at_sync(fv, n): the nth sync from now "cuts the power"
 *       before it takes effect: it and every later write/sync/truncate through this
 *       VFS fail with SX_IO, so nothing more becomes durable.
 *   sx__faultvfs_crash_now(fv): cut the power at once, same effect.
 *   sx__faultvfs_crashed(fv): 1 once the power is cut.
 *   sx__faultvfs_power_loss(fv, how, seed): call after every handle using the VFS
 *       is closed: rewrites the real files into a state the disk could hold after
 *       the power cut, then forgets all tracking and clears the crash so the files
 *       can be reopened (through this VFS or another).
 *         SX__LOSS_DROP: every unsynced write is undone (in reverse order), files
 *             return to their synced size, files created since their directory's
 *             last sync disappear;
 *         SX__LOSS_TEAR: like DROP, but each unsynced write independently, chosen
 *             by `seed`, is kept whole, dropped, or kept only for a random prefix
 *             of its 512-byte sectors (a torn write).
 * Shared memory files (names ending in "-shm") are left as they are: a real
 * reboot leaves them on disk with stale contents, which the opener must detect.
 * Writes made through mmap are never tracked (only the shm file is written so).
 */
enum sx__loss { SX__LOSS_DROP = 1, SX__LOSS_TEAR = 2 };
void sx__faultvfs_crash_at_sync(sx__faultvfs *fv, uint64_t nth);
void sx__faultvfs_crash_now(sx__faultvfs *fv);
int sx__faultvfs_crashed(const sx__faultvfs *fv);
int sx__faultvfs_power_loss(sx__faultvfs *fv, int how, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
