/*
 * session: database handles, read sessions and write sessions over the pager, and
 * their lifecycles: reference counts, close/end semantics, calls racing a close,
 * and handles that crossed fork().
 *
 * A call on a session "enters" it (an atomic in-flight count) and leaves it; ending
 * a session marks it ended, and whichever of the ender or the last in-flight call
 * comes last releases what it holds (its reader slot or its write transaction, and
 * its reference to the pager). So a close on one thread never pulls a page out from
 * under a search on another; the maps go when the last user leaves.
 */
#ifndef SX_SESSION_H
#define SX_SESSION_H

#include "collection/collection.h"
#include "pager/pager.h"
#include "sextant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens a database through a given VFS (NULL: the default); sx_db_open is this
 * with the default VFS. Tests use it with the fault-injecting VFS. */
int sx__db_open_vfs(sx_db **out, const char *path, const sx_open_options *opts, sx__vfs *vfs,
                    sx_error *err);

int sx__db_close(sx_db *db);
void sx__db_free(sx_db *db);
const char *sx__db_path(const sx_db *db);
int sx__db_checkpoint(sx_db *db, int timeout_ms, const sx_cancel *cancel, sx_error *err);
int sx__db_stats(sx_db *db, sx_db_stats *out, sx_error *err);
int sx__db_check(sx_db *db, sx_error *err);

int sx__read_begin(sx_db *db, sx_read **out, sx_error *err);
int sx__read_end(sx_read *r);
void sx__read_free(sx_read *r);
/* Enters r for a call (SX_CLOSED once ended, SX_MISUSE across fork); on success the
 * caller must sx__read_leave. */
int sx__read_enter(sx_read *r, sx_error *err);
void sx__read_leave(sx_read *r);
/* Page of r's snapshot; valid while r is entered. */
int sx__read_page(sx_read *r, uint32_t pgno, const uint8_t **out, sx_error *err);

/* Waits up to timeout_ms (negative: for ever) for the writer lock, until cancel is
 * set (NULL: never). A thread holding this handle's writer lock gets SX_BUSY. */
int sx__write_begin(sx_db *db, int timeout_ms, const sx_cancel *cancel, sx_write **out,
                    sx_error *err);
int sx__write_commit(sx_write *w, sx_error *err);
int sx__write_abort(sx_write *w);
void sx__write_free(sx_write *w);
/* Enters w for a call: SX_CLOSED once ended, SX_MISUSE while another call is in
 * (one call at a time) or across fork. On success the caller must sx__write_leave. */
int sx__write_enter(sx_write *w, sx_error *err);
void sx__write_leave(sx_write *w);
/* The pager transaction of an entered write session. */
sx__txn *sx__write_txn(sx_write *w);

/* Page views of entered sessions (valid until the matching leave). */
void sx__read_pv(sx_read *r, sx__pv *out);
void sx__write_pv(sx_write *w, sx__pv *out);
/* Extra references that keep a session's memory alive (collection views). */
void sx__read_ref(sx_read *r);
void sx__read_unref(sx_read *r);
void sx__write_ref(sx_write *w);
void sx__write_unref(sx_write *w);

/* Tests: takes (lock = 1) or releases (0) the handle's own mutex, to fork() while
 * another thread holds it. */
void sx__db_mutex_for_test(sx_db *db, int lock);
/* The pager behind a database handle (tests). */
sx__pager *sx__db_pager(sx_db *db);
/* Threads one call may use (sx_open_options.threads, resolved). */
int sx__read_threads(const sx_read *r);
int sx__write_threads(const sx_write *w);

/* The application's user version in page 0 (user_version.c): read through r's
 * snapshot or w's transaction, or set in w. */
int sx__read_user_version(sx_read *r, uint64_t *out, sx_error *err);
int sx__write_user_version(sx_write *w, uint64_t *out, sx_error *err);
int sx__write_set_user_version(sx_write *w, uint64_t value, sx_error *err);

/* Online backup of the latest snapshot to dest (backup.c); o is checked and complete. */
int sx__db_backup(sx_db *db, const char *dest, const sx_backup_options *o, sx_error *err);
/* Compaction as one write session (compact.c); o is checked and complete. */
int sx__db_compact(sx_db *db, const sx_compact_options *o, sx_error *err);
/* Space figures of r's snapshot into out (whose version the caller checked). */
int sx__read_space(sx_read *r, sx_space_stats *out, sx_error *err);

#ifdef __cplusplus
}
#endif
#endif
