/*
 * backup.c: online backup. A backup is a read session: it pins the latest snapshot
 * and copies its pages 0..npages-1, in order, into a new file (in the database's
 * format: with checksum pages, see sx__pimage_put). Pages of a snapshot
 * are immutable for its life (the pager's contract), so the copy is consistent
 * without any lock; the writer goes on committing, and a checkpoint only stops short
 * of the pinned snapshot until the backup ends.
 *
 * The result is a database with no WAL: the snapshot's pages are its pages. It is
 * written to `dest.tmp-<pid>-<n>` beside the destination, synced, then renamed over
 * the destination (the rename syncs the directory), so the destination is never
 * seen half-written. A stale WAL beside the destination would be replayed onto the
 * new file when it is opened, so an existing -wal/-wal2 is refused, or removed
 * (with -shm) when overwriting, unless a handle, in any process, has the destination
 * open as a database: removing its WAL under it would lose its commits, so that is
 * refused (BUSY), checked before the copy and again at the end by sx__pager_install,
 * which does the last checks, the removals and the rename under the lock every
 * opener of the destination takes first: a handle opening it meanwhile either
 * finishes first (and the backup is BUSY) or opens the new file after the rename.
 * An existing destination is taken through its symlinks
 * (as sx_db_open takes a database's path), so a link to a database has the database
 * replaced, not the link; one that is not a regular file (a device, a FIFO, a
 * directory) is refused, even when overwriting: renaming over it would replace the
 * device node.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session/session.h"

enum { BATCH_PAGES = 256 }; /* pages copied between progress reports and cancel checks */

static char *path_plus(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (s) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
  }
  return s;
}

/* Nonzero when dest names the same file as the database (or one of its companions). */
static int same_file(const char *db, const char *dest) {
  char a[PATH_MAX], b[PATH_MAX];
  if (!realpath(db, a) || !realpath(dest, b)) return 0;
  size_t la = strlen(a);
  return strcmp(a, b) == 0 || (strncmp(a, b, la) == 0 && b[la] == '-');
}

static int copy_pages(sx_read *r, sx__file *f, uint32_t ps, const sx_backup_options *o,
                      sx_error *err) {
  sx__pv v;
  sx__read_pv(r, &v);
  uint64_t npages = v.snap->npages;
  uint8_t *buf = malloc((size_t)ps * BATCH_PAGES);
  if (!buf) return sx__err_set(err, SX_NOMEM, "out of memory for the backup buffer");
  /* The new file in the database's format (with its checksum pages). */
  sx__pimage im;
  int rc = sx__pimage_begin(&im, v.p, f, err);
  for (uint64_t at = 0; at < npages && !rc; at += BATCH_PAGES) {
    if (sx__cancelled(o->cancel_token)) {
      rc = sx__err_set(err, SX_CANCELLED, "backup was cancelled after %llu of %llu pages",
                       (unsigned long long)at, (unsigned long long)npages);
      break;
    }
    uint64_t m = npages - at < BATCH_PAGES ? npages - at : BATCH_PAGES;
    for (uint64_t i = 0; i < m && !rc; i++) {
      const uint8_t *pg;
      rc = sx__read_page(r, (uint32_t)(at + i), &pg, err);
      if (!rc) memcpy(buf + i * ps, pg, ps);
    }
    if (!rc) rc = sx__pimage_put(&im, (uint32_t)at, buf, (uint32_t)m, err);
    if (!rc && o->progress) o->progress(o->progress_ctx, at + m, npages);
  }
  int rc2 = sx__pimage_end(&im, rc != SX_OK, err);
  free(buf);
  return rc ? rc : rc2;
}

int sx__db_backup(sx_db *db, const char *dest, const sx_backup_options *o, sx_error *err) {
  if (!dest || !*dest) return sx__err_set(err, SX_INVALID_ARGUMENT, "backup destination is empty");
  if (sx__cancelled(o->cancel_token))
    return sx__err_set(err, SX_CANCELLED, "backup was cancelled before it began");
  struct stat st;
  char *real = NULL;
  if (stat(dest, &st) == 0) {
    if (!S_ISREG(st.st_mode))
      return sx__err_set(err, SX_INVALID_ARGUMENT,
                         "backup destination '%s' is not a regular file (a device, FIFO or "
                         "directory)",
                         dest);
    if ((real = realpath(dest, NULL)) != NULL) dest = real;
  }
  sx__vfs *vfs = sx__vfs_default();
  sx_read *r = NULL;
  int rc = sx__read_begin(db, &r, err);
  if (rc) {
    free(real);
    return rc;
  }
  rc = sx__read_enter(r, err);
  if (rc) {
    sx__read_free(r);
    free(real);
    return rc;
  }
  sx__pv v;
  sx__read_pv(r, &v);
  uint32_t ps = sx__pager_page_size(v.p);
  const char *src = sx__pager_path(v.p);
  char suffix[64];
  static atomic_uint seq;
  snprintf(suffix, sizeof suffix, ".tmp-%d-%u", (int)getpid(), atomic_fetch_add(&seq, 1));
  char *tmp = path_plus(dest, suffix);
  if (!tmp) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  if (!rc && same_file(src, dest))
    rc = sx__err_set(err, SX_INVALID_ARGUMENT, "backup destination '%s' is the database itself",
                     dest);
  /* Refused now rather than after the copy; the install checks again. */
  if (!rc) rc = sx__pager_install_check(vfs, dest, o->overwrite, "backup destination", err);
  sx__file *f = NULL;
  if (!rc) rc = vfs->open(vfs, tmp, SX__OPEN_WRITE | SX__OPEN_CREATE | SX__OPEN_EXCL, &f, err);
  if (!rc) {
    rc = copy_pages(r, f, ps, o, err);
    if (!rc) rc = sx__file_sync(f, 0, err);
    sx__file_close(f);
    if (!rc) rc = sx__pager_install(vfs, tmp, dest, o->overwrite, "backup destination", err);
    if (rc) vfs->unlink(vfs, tmp, NULL);
  }
  sx__read_leave(r);
  sx__read_free(r);
  free(tmp);
  free(real);
  return rc;
}
