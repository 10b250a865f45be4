/*
 * api.c: the public entry points of sextant.h. Argument checks, versioned options,
 * status names; everything else is delegated to the session layer. Every function
 * here is exported; nothing else is.
 */
#include <string.h>

#include "api/api.h"
#include "session/session.h"

static const char *const status_names[SX_STATUS_COUNT] = {
    "OK",     "NOT_FOUND", "EXISTS",  "INVALID_ARGUMENT", "DIMENSION_MISMATCH",
    "READ_ONLY", "BUSY",   "CLOSED",  "MISUSE",           "CORRUPT",
    "IO",     "FULL",      "NOMEM",   "VERSION"};

SX_EXPORT const char *sx_version(void) { return "0.1.0"; }
SX_EXPORT int sx_version_number(void) { return SX_VERSION_NUMBER; }
SX_EXPORT int sx_format_version(void) { return SX_FORMAT_VERSION; }

SX_EXPORT const char *sx_status_name(int status) {
  return status >= 0 && status < SX_STATUS_COUNT ? status_names[status] : "UNKNOWN";
}

SX_EXPORT int sx_open_options_init(sx_open_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_OPEN_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_open_options d = SX_OPEN_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
  return SX_OK;
}

SX_EXPORT int sx_db_open(sx_db **out, const char *path, const sx_open_options *opts,
                         sx_error *err) {
  return sx__db_open_vfs(out, path, opts, NULL, err);
}

SX_EXPORT int sx_db_close(sx_db *db) { return sx__db_close(db); }
SX_EXPORT void sx_db_free(sx_db *db) { sx__db_free(db); }
SX_EXPORT const char *sx_db_path(const sx_db *db) { return sx__db_path(db); }

SX_EXPORT int sx_db_checkpoint(sx_db *db, int timeout_ms, sx_error *err) {
  return sx__db_checkpoint(db, timeout_ms, err);
}

SX_EXPORT int sx_db_stats_get(sx_db *db, sx_db_stats *out, sx_error *err) {
  return sx__db_stats(db, out, err);
}

SX_EXPORT int sx_db_check(sx_db *db, sx_error *err) { return sx__db_check(db, err); }

SX_EXPORT int sx_read_begin(sx_db *db, sx_read **out, sx_error *err) {
  return sx__read_begin(db, out, err);
}

SX_EXPORT int sx_read_end(sx_read *r) { return sx__read_end(r); }
SX_EXPORT void sx_read_free(sx_read *r) { sx__read_free(r); }

SX_EXPORT int sx_read_user_version(sx_read *r, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = sx__read_enter(r, err);
  if (rc) return rc;
  const uint8_t *p0;
  rc = sx__read_page(r, 0, &p0, err);
  if (!rc) *out = sx__page0_user_version(p0);
  sx__read_leave(r);
  return rc;
}

SX_EXPORT int sx_write_begin(sx_db *db, int timeout_ms, sx_write **out, sx_error *err) {
  return sx__write_begin(db, timeout_ms, out, err);
}

SX_EXPORT int sx_write_commit(sx_write *w, sx_error *err) { return sx__write_commit(w, err); }
SX_EXPORT int sx_write_abort(sx_write *w) { return sx__write_abort(w); }
SX_EXPORT void sx_write_free(sx_write *w) { sx__write_free(w); }

SX_EXPORT int sx_write_set_user_version(sx_write *w, uint64_t value, sx_error *err) {
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  uint8_t *p0;
  sx__txn *t = sx__write_txn(w);
  rc = t ? sx__txn_write(t, 0, &p0, err) : sx__err_set(err, SX_CLOSED, "write session has ended");
  if (!rc) sx__page0_set_user_version(p0, value);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT int sx_write_user_version(sx_write *w, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  const uint8_t *p0;
  sx__txn *t = sx__write_txn(w);
  rc = t ? sx__txn_read(t, 0, &p0, err) : sx__err_set(err, SX_CLOSED, "write session has ended");
  if (!rc) *out = sx__page0_user_version(p0);
  sx__write_leave(w);
  return rc;
}
