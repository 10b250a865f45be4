/*
 * The Sextant demo: open (or create) a database, add vectors with metadata in a
 * write session, search them, and show that a read session keeps its snapshot while
 * a later commit changes the collection.
 *
 *   demo [path]        default path: ./demo.sx
 */
#include <stdio.h>
#include <stdlib.h>

#include "sextant.h"

#define CHECK(what, call)                                                                   \
  do {                                                                                      \
    int rc_ = (call);                                                                       \
    if (rc_ != SX_OK) {                                                                     \
      fprintf(stderr, "demo: %s failed: %s: %s\n", what, sx_status_name(rc_), err.message); \
      return 1;                                                                             \
    }                                                                                       \
  } while (0)

static void show(const char *title, sx_results *res) {
  printf("%s\n", title);
  for (size_t i = 0; i < sx_results_count(res, 0); i++)
    printf("  %-8s distance %.4f\n", sx_results_id(res, 0, i), sx_results_distance(res, 0, i));
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "demo.sx";
  sx_error err = SX_ERROR_INIT;
  sx_db *db = NULL;
  CHECK("open", sx_db_open(&db, path, NULL, &err));
  printf("Sextant %s, file format %d: opened %s\n", sx_version(), sx_format_version(), path);

  /* One write session: a collection (if new) and four 3-d vectors, committed at once. */
  sx_write *w = NULL;
  CHECK("write_begin", sx_write_begin(db, 5000, &w, &err));
  sx_collection_options opts = SX_COLLECTION_OPTIONS_INIT; /* HNSW index, l2 */
  opts.dim = 3;
  int rc = sx_write_create_collection(w, "points", &opts, &err);
  if (rc != SX_OK && rc != SX_EXISTS) CHECK("create_collection", rc);
  const char *ids[] = {"red", "green", "blue", "grey"};
  const float vecs[] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5f, 0.5f, 0.5f};
  const char *meta[] = {"{\"rgb\": \"#ff0000\"}", "{\"rgb\": \"#00ff00\"}",
                        "{\"rgb\": \"#0000ff\"}", NULL};
  CHECK("upsert", sx_write_upsert(w, "points", 4, ids, vecs, 3, meta, &err));
  CHECK("commit", sx_write_commit(w, &err));
  sx_write_free(w);
  printf("committed 4 vectors to collection 'points' (durable: sync=full)\n");

  /* A read session: a snapshot of everything committed so far. */
  sx_read *r = NULL;
  sx_collection *c = NULL;
  CHECK("read_begin", sx_read_begin(db, &r, &err));
  CHECK("read_collection", sx_read_collection(r, "points", &c, &err));
  const float q[] = {0.9f, 0.2f, 0.1f};
  sx_results *res = NULL;
  CHECK("search", sx_collection_search(c, q, 3, 3, NULL, &res, &err));
  show("nearest to (0.9, 0.2, 0.1):", res);
  sx_results_free(res);
  sx_record *rec = NULL;
  CHECK("get", sx_collection_get(c, "red", &rec, &err));
  printf("'red' has metadata %s\n", sx_record_metadata(rec));
  sx_record_free(rec);

  /* Another commit moves "blue" right next to the query... */
  CHECK("write_begin", sx_write_begin(db, 5000, &w, &err));
  const char *moved[] = {"blue"};
  const float near_q[] = {0.9f, 0.2f, 0.12f};
  CHECK("upsert", sx_write_upsert(w, "points", 1, moved, near_q, 3, NULL, &err));
  CHECK("commit", sx_write_commit(w, &err));
  sx_write_free(w);

  /* ...the old session still sees its snapshot; a new one sees the move. */
  CHECK("search", sx_collection_search(c, q, 3, 1, NULL, &res, &err));
  show("the earlier read session still finds:", res);
  sx_results_free(res);
  sx_collection_free(c);
  sx_read_free(r);
  CHECK("read_begin", sx_read_begin(db, &r, &err));
  CHECK("read_collection", sx_read_collection(r, "points", &c, &err));
  CHECK("search", sx_collection_search(c, q, 3, 1, NULL, &res, &err));
  show("a new read session finds:", res);
  int ok = sx_results_count(res, 0) == 1 && sx_results_id(res, 0, 0)[0] == 'b';
  sx_results_free(res);
  sx_collection_free(c);
  sx_read_free(r);

  CHECK("check", sx_db_check(db, &err));
  sx_db_stats st = SX_DB_STATS_INIT;
  CHECK("stats", sx_db_stats_get(db, &st, &err));
  printf("integrity check: ok; %llu pages, %llu WAL frames\n", (unsigned long long)st.page_count,
         (unsigned long long)st.wal_frames);
  sx_db_free(db);
  return ok ? 0 : 1;
}
