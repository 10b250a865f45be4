/*
 * user_version.c: the application's own 64-bit number in page 0, read through a
 * session's snapshot and written in a write session (committed with it).
 */
#include "pager/pager.h"
#include "session/session.h"

int sx__read_user_version(sx_read *r, uint64_t *out, sx_error *err) {
  int rc = sx__read_enter(r, err);
  if (rc) return rc;
  const uint8_t *p0;
  rc = sx__read_page(r, 0, &p0, err);
  if (!rc) *out = sx__page0_user_version(p0);
  sx__read_leave(r);
  return rc;
}

/* Page 0 of w's transaction, for writing (w entered). */
static int page0(sx_write *w, int write, uint8_t **p0, sx_error *err) {
  sx__txn *t = sx__write_txn(w);
  if (!t) return sx__err_set(err, SX_CLOSED, "write session has ended");
  if (write) return sx__txn_write(t, 0, p0, err);
  return sx__txn_read(t, 0, (const uint8_t **)p0, err);
}

int sx__write_user_version(sx_write *w, uint64_t *out, sx_error *err) {
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  uint8_t *p0;
  rc = page0(w, 0, &p0, err);
  if (!rc) *out = sx__page0_user_version(p0);
  sx__write_leave(w);
  return rc;
}

int sx__write_set_user_version(sx_write *w, uint64_t value, sx_error *err) {
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  uint8_t *p0;
  rc = page0(w, 1, &p0, err);
  if (!rc) sx__page0_set_user_version(p0, value);
  sx__write_leave(w);
  return rc;
}
