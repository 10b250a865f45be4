/*
 * The Sextant demo: open (or create) a database, commit in a write session, and read
 * the result back through a snapshot that a later commit does not disturb.
 *
 *   demo [path]        default path: ./demo.sx
 */
#include <stdio.h>
#include <stdlib.h>

#include "sextant.h"

static int fail(const char *what, int rc, const sx_error *err) {
  fprintf(stderr, "demo: %s failed: %s: %s\n", what, sx_status_name(rc), err->message);
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "demo.sx";
  sx_error err = SX_ERROR_INIT;
  sx_db *db = NULL;
  int rc = sx_db_open(&db, path, NULL, &err);
  if (rc) return fail("open", rc, &err);
  printf("Sextant %s, file format %d: opened %s\n", sx_version(), sx_format_version(), path);

  /* A snapshot taken now keeps seeing this state whatever is committed later. */
  sx_read *before = NULL;
  if ((rc = sx_read_begin(db, &before, &err))) return fail("read_begin", rc, &err);
  uint64_t v0 = 0;
  if ((rc = sx_read_user_version(before, &v0, &err))) return fail("read", rc, &err);

  sx_write *w = NULL;
  if ((rc = sx_write_begin(db, 5000, &w, &err))) return fail("write_begin", rc, &err);
  if ((rc = sx_write_set_user_version(w, v0 + 1, &err))) return fail("write", rc, &err);
  if ((rc = sx_write_commit(w, &err))) return fail("commit", rc, &err);
  sx_write_free(w);
  printf("committed user_version %llu (durable: sync=full)\n", (unsigned long long)(v0 + 1));

  sx_read *after = NULL;
  uint64_t v_old = 0, v_new = 0;
  if ((rc = sx_read_begin(db, &after, &err))) return fail("read_begin", rc, &err);
  if ((rc = sx_read_user_version(before, &v_old, &err))) return fail("read", rc, &err);
  if ((rc = sx_read_user_version(after, &v_new, &err))) return fail("read", rc, &err);
  printf("snapshot taken before the commit sees %llu; a new snapshot sees %llu\n",
         (unsigned long long)v_old, (unsigned long long)v_new);
  sx_read_free(before);
  sx_read_free(after);

  if ((rc = sx_db_check(db, &err))) return fail("check", rc, &err);
  sx_db_stats st;
  if ((rc = sx_db_stats_get(db, &st, &err))) return fail("stats", rc, &err);
  printf("integrity check: ok; %llu pages, %llu WAL frames, %llu commits since open\n",
         (unsigned long long)st.page_count, (unsigned long long)st.wal_frames,
         (unsigned long long)st.commits);
  sx_db_free(db);
  return v_old == v0 && v_new == v0 + 1 ? 0 : 1;
}
