/*
 * The C interop worker: tests/interop/PROTOCOL.md through the public C API.
 *
 * Usage: interop_c write-fixture DB | dump DB | writer DB SECONDS ACKFILE |
 *        reader DB SECONDS | verify DB ACKFILE
 */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sextant.h"

static const char *g_cmd = "?";

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "interop_c %s: ", g_cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* Dies with the call's status and message unless it returned SX_OK. */
static void ok(sx_status rc, const sx_error *err, const char *what) {
  if (rc != SX_OK) die("%s: %s: %s", what, sx_status_name(rc), err ? err->message : "");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void splitmix_vector(uint64_t state, size_t dim, float *out) {
  for (size_t d = 0; d < dim; d++) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    out[d] = (float)((double)(z >> 40) / (double)(1u << 24) * 2.0 - 1.0);
  }
}

static void fixture_id(int i, char *buf, size_t n) {
  if (i % 3 == 0)
    snprintf(buf, n, "item-%d", i);
  else if (i % 3 == 1)
    snprintf(buf, n, "\xc3\xa9-%d-\xc3\xbc\xe2\x9c\x93", i);
  else
    snprintf(buf, n, "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87/%d", i);
}

static char *fixture_meta(int i, const char *id) {
  json_t *m = json_pack("{s:i, s:s, s:f, s:[s, s], s:{s:b, s:{s:[i, n, b]}}}", "i", i, "id", id,
                        "half", i * 0.5, "tags",
                        i % 4 == 0   ? "t0"
                        : i % 4 == 1 ? "t1"
                        : i % 4 == 2 ? "t2"
                                     : "t3",
                        "x", "nested", "even", i % 2 == 0, "deep", "k", i, 1);
  char *s = json_dumps(m, JSON_COMPACT);
  json_decref(m);
  return s;
}

static void bits(float x, char out[9]) {
  uint32_t u;
  memcpy(&u, &x, 4);
  snprintf(out, 9, "%08x", u);
}

static sx_db *open_db(const char *path, int read_only, uint32_t threads) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.read_only = read_only;
  o.threads = threads;
  sx_db *db = NULL;
  sx_error err = SX_ERROR_INIT;
  ok(sx_db_open(&db, path, &o, &err), &err, "open");
  return db;
}

static json_t *write_fixture(const char *path) {
  sx_db *db = open_db(path, 0, 1);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = NULL;
  ok(sx_write_begin(db, -1, &w, &err), &err, "begin");
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = 16;
  co.metric = SX_METRIC_L2;
  co.index = SX_INDEX_FLAT;
  ok(sx_write_create_collection(w, "flat", &co, &err), &err, "create flat");
  co.metric = SX_METRIC_COSINE;
  co.index = SX_INDEX_HNSW;
  co.hnsw_m = 8;
  co.hnsw_ef_construction = 64;
  ok(sx_write_create_collection(w, "graph", &co, &err), &err, "create graph");
  char idbuf[200][64];
  const char *ids[200];
  char *metas[200];
  float vecs[200 * 16];
  for (int i = 0; i < 200; i++) {
    fixture_id(i, idbuf[i], sizeof idbuf[i]);
    ids[i] = idbuf[i];
    metas[i] = fixture_meta(i, idbuf[i]);
    splitmix_vector(1000 + (uint64_t)i, 16, vecs + i * 16);
  }
  ok(sx_write_upsert(w, "flat", 200, ids, vecs, 16, (const char *const *)metas, &err), &err,
     "upsert");
  ok(sx_write_upsert(w, "graph", 200, ids, vecs, 16, (const char *const *)metas, &err), &err,
     "upsert");
  ok(sx_write_set_user_version(w, 42, &err), &err, "user version");
  ok(sx_write_commit(w, &err), &err, "commit");
  for (int i = 0; i < 200; i++) free(metas[i]);
  sx_write_free(w);
  sx_db_free(db);
  return json_pack("{s:b}", "ok", 1);
}

static json_t *dump(const char *path) {
  sx_db *db = open_db(path, 1, 0);
  sx_error err = SX_ERROR_INIT;
  sx_read *r = NULL;
  ok(sx_read_begin(db, &r, &err), &err, "read");
  uint64_t uv = 0;
  ok(sx_read_user_version(r, &uv, &err), &err, "user version");
  json_t *out = json_pack("{s:I, s:{}, s:{}, s:{}}", "user_version", (json_int_t)uv, "describe",
                          "items", "search");
  const char *colls[] = {"flat", "graph"};
  for (int ci = 0; ci < 2; ci++) {
    sx_collection *c = NULL;
    ok(sx_read_collection(r, colls[ci], &c, &err), &err, "collection");
    sx_collection_info info = SX_COLLECTION_INFO_INIT;
    ok(sx_collection_describe(c, &info, &err), &err, "describe");
    json_object_set_new(json_object_get(out, "describe"), colls[ci],
                        json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:I}", "name", info.name, "dim",
                                  (int)info.dim, "metric", sx_metric_name(info.metric), "index",
                                  info.index == SX_INDEX_HNSW ? "hnsw" : "flat", "hnsw_m",
                                  (int)info.hnsw_m, "hnsw_ef_construction",
                                  (int)info.hnsw_ef_construction, "count", (json_int_t)info.count));
    json_t *items = json_object();
    for (int i = 0; i < 200; i++) {
      char id[64];
      fixture_id(i, id, sizeof id);
      sx_record *rec = NULL;
      ok(sx_collection_get(c, id, &rec, &err), &err, "get");
      size_t dim = 0;
      const float *v = sx_record_vector(rec, &dim);
      json_t *vec = json_array();
      for (size_t d = 0; d < dim; d++) {
        char b[9];
        bits(v[d], b);
        json_array_append_new(vec, json_string(b));
      }
      const char *meta = sx_record_metadata(rec);
      json_object_set_new(items, sx_record_id(rec),
                          json_pack("{s:o, s:s?}", "vector", vec, "metadata", meta));
      sx_record_free(rec);
    }
    json_object_set_new(json_object_get(out, "items"), colls[ci], items);
    json_t *searches = json_array();
    for (int q = 0; q < 5; q++) {
      float qv[16];
      splitmix_vector(77 + (uint64_t)q, 16, qv);
      sx_results *res = NULL;
      ok(sx_collection_search(c, qv, 16, 10, NULL, &res, &err), &err, "search");
      json_t *hits = json_array();
      for (size_t h = 0; h < sx_results_count(res, 0); h++) {
        char b[9];
        bits(sx_results_distance(res, 0, h), b);
        json_array_append_new(hits, json_pack("[s, s]", sx_results_id(res, 0, h), b));
      }
      json_array_append_new(searches, hits);
      sx_results_free(res);
    }
    json_object_set_new(json_object_get(out, "search"), colls[ci], searches);
    sx_collection_free(c);
  }
  sx_read_free(r);
  sx_db_free(db);
  return out;
}

static int has_collection(sx_names *names, const char *name) {
  for (size_t i = 0; i < sx_names_count(names); i++)
    if (strcmp(sx_names_get(names, i), name) == 0) return 1;
  return 0;
}

static void setup_live(sx_db *db) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = NULL;
  ok(sx_write_begin(db, -1, &w, &err), &err, "begin");
  sx_names *names = NULL;
  ok(sx_write_list_collections(w, &names, &err), &err, "list");
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  if (!has_collection(names, "live")) {
    co.dim = 8;
    ok(sx_write_create_collection(w, "live", &co, &err), &err, "create live");
  }
  if (!has_collection(names, "book")) {
    co.dim = 1;
    co.index = SX_INDEX_FLAT;
    ok(sx_write_create_collection(w, "book", &co, &err), &err, "create book");
  }
  sx_names_free(names);
  ok(sx_write_commit(w, &err), &err, "commit");
  sx_write_free(w);
}

static json_t *writer(const char *path, double seconds, const char *ackfile) {
  sx_db *db = open_db(path, 0, 0);
  setup_live(db);
  int ack = open(ackfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (ack < 0) die("cannot open %s", ackfile);
  double deadline = now_s() + seconds;
  uint64_t commits = 0, last = 0;
  while (now_s() < deadline) {
    sx_error err = SX_ERROR_INIT;
    sx_write *w = NULL;
    ok(sx_write_begin(db, -1, &w, &err), &err, "begin");
    uint64_t g = 0;
    ok(sx_write_user_version(w, &g, &err), &err, "user version");
    g++;
    char idbuf[20][48];
    const char *ids[20];
    float vecs[20 * 8];
    for (int j = 0; j < 20; j++) {
      snprintf(idbuf[j], sizeof idbuf[j], "g%llu-%d", (unsigned long long)g, j);
      ids[j] = idbuf[j];
      splitmix_vector(g * 100 + (uint64_t)j, 8, vecs + j * 8);
    }
    ok(sx_write_upsert(w, "live", 20, ids, vecs, 8, NULL, &err), &err, "upsert");
    if (g > 3) {
      for (int j = 0; j < 5; j++)
        snprintf(idbuf[j], sizeof idbuf[j], "g%llu-%d", (unsigned long long)(g - 3), j);
      ok(sx_write_delete(w, "live", 5, ids, NULL, &err), &err, "delete");
    }
    sx_collection *c = NULL;
    uint64_t count = 0;
    ok(sx_write_collection(w, "live", &c, &err), &err, "view");
    ok(sx_collection_count(c, &count, &err), &err, "count");
    sx_collection_free(c);
    char meta[96];
    snprintf(meta, sizeof meta, "{\"gen\": %llu, \"count\": %llu}", (unsigned long long)g,
             (unsigned long long)count);
    const char *sid[1] = {"state"};
    const char *smeta[1] = {meta};
    float gv = (float)g;
    ok(sx_write_upsert(w, "book", 1, sid, &gv, 1, smeta, &err), &err, "state");
    ok(sx_write_set_user_version(w, g, &err), &err, "set user version");
    ok(sx_write_commit(w, &err), &err, "commit");
    sx_write_free(w);
    char line[32];
    int n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)g);
    if (write(ack, line, (size_t)n) != n || fsync(ack) != 0) die("cannot append to %s", ackfile);
    commits++;
    last = g;
  }
  close(ack);
  sx_db_free(db);
  return json_pack("{s:I, s:I}", "commits", (json_int_t)commits, "last", (json_int_t)last);
}

/* Invariants 1-3 of PROTOCOL.md in one read session; returns its generation. */
static uint64_t check_session(sx_read *r) {
  sx_error err = SX_ERROR_INIT;
  uint64_t g = 0;
  ok(sx_read_user_version(r, &g, &err), &err, "user version");
  sx_names *names = NULL;
  ok(sx_read_list_collections(r, &names, &err), &err, "list");
  int ready = has_collection(names, "live") && has_collection(names, "book");
  sx_names_free(names);
  if (!ready) {
    if (g != 0) die("generation %llu without the live/book collections", (unsigned long long)g);
    return g;
  }
  sx_collection *book = NULL, *live = NULL;
  ok(sx_read_collection(r, "book", &book, &err), &err, "book");
  ok(sx_read_collection(r, "live", &live, &err), &err, "live");
  uint64_t count = 0;
  ok(sx_collection_count(live, &count, &err), &err, "count");
  sx_record *st = NULL;
  sx_status rc = sx_collection_get(book, "state", &st, &err);
  if (rc == SX_NOT_FOUND) {
    if (g != 0 || count != 0)
      die("generation %llu, count %llu, but no state record", (unsigned long long)g,
          (unsigned long long)count);
  } else {
    ok(rc, &err, "get state");
    json_error_t je;
    json_t *m = json_loads(sx_record_metadata(st), 0, &je);
    json_int_t mg = json_integer_value(json_object_get(m, "gen"));
    json_int_t mc = json_integer_value(json_object_get(m, "count"));
    json_decref(m);
    if ((uint64_t)mg != g || (uint64_t)mc != count)
      die("session sees user version %llu and count %llu; state says gen %lld count %lld",
          (unsigned long long)g, (unsigned long long)count, (long long)mg, (long long)mc);
    sx_record_free(st);
    if (g > 0) {
      char id[48];
      snprintf(id, sizeof id, "g%llu-0", (unsigned long long)g);
      sx_record *a = NULL, *b = NULL;
      ok(sx_collection_get(live, id, &a, &err), &err, "get");
      ok(sx_collection_get(live, id, &b, &err), &err, "get again");
      size_t da = 0, db = 0;
      const float *va = sx_record_vector(a, &da), *vb = sx_record_vector(b, &db);
      float want[8];
      splitmix_vector(g * 100, 8, want);
      if (da != 8 || db != 8 || memcmp(va, vb, 32) || memcmp(va, want, 32))
        die("%s read twice differs, or differs from what was written", id);
      sx_record_free(a);
      sx_record_free(b);
      float q[8];
      splitmix_vector(g * 7 + 1, 8, q);
      sx_results *res = NULL;
      ok(sx_collection_search(live, q, 8, 5, NULL, &res, &err), &err, "search");
      size_t n = sx_results_count(res, 0);
      if (n != (count < 5 ? count : 5))
        die("search returned %zu hits of %llu", n, (unsigned long long)count);
      for (size_t h = 0; h + 1 < n; h++)
        if (sx_results_distance(res, 0, h) > sx_results_distance(res, 0, h + 1))
          die("hits out of order");
      sx_results_free(res);
    }
  }
  sx_collection_free(book);
  sx_collection_free(live);
  return g;
}

static json_t *reader(const char *path, double seconds) {
  sx_db *db = open_db(path, 1, 0);
  double deadline = now_s() + seconds;
  uint64_t sessions = 0, max_gen = 0;
  while (now_s() < deadline) {
    sx_error err = SX_ERROR_INIT;
    sx_read *r = NULL;
    ok(sx_read_begin(db, &r, &err), &err, "read");
    uint64_t g = check_session(r);
    if (g > max_gen) max_gen = g;
    sx_read_free(r);
    sessions++;
  }
  sx_db_free(db);
  return json_pack("{s:I, s:I}", "sessions", (json_int_t)sessions, "max_gen", (json_int_t)max_gen);
}

static json_t *verify(const char *path, const char *ackfile) {
  unsigned long long acked = 0;
  FILE *f = fopen(ackfile, "r");
  if (f) {
    unsigned long long v;
    while (fscanf(f, "%llu", &v) == 1) acked = v;
    fclose(f);
  }
  sx_db *db = open_db(path, 0, 0);
  sx_error err = SX_ERROR_INIT;
  ok(sx_db_check(db, &err), &err, "check");
  sx_read *r = NULL;
  ok(sx_read_begin(db, &r, &err), &err, "read");
  uint64_t g = check_session(r);
  sx_read_free(r);
  sx_db_free(db);
  if (g < acked)
    die("generation %llu after recovery, but %llu was acknowledged", (unsigned long long)g, acked);
  return json_pack("{s:I, s:I}", "gen", (json_int_t)g, "acked", (json_int_t)acked);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: interop_c write-fixture|dump|writer|reader|verify DB ...\n");
    return 2;
  }
  g_cmd = argv[1];
  json_t *res = NULL;
  if (strcmp(g_cmd, "write-fixture") == 0)
    res = write_fixture(argv[2]);
  else if (strcmp(g_cmd, "dump") == 0)
    res = dump(argv[2]);
  else if (strcmp(g_cmd, "writer") == 0 && argc == 5)
    res = writer(argv[2], atof(argv[3]), argv[4]);
  else if (strcmp(g_cmd, "reader") == 0 && argc == 4)
    res = reader(argv[2], atof(argv[3]));
  else if (strcmp(g_cmd, "verify") == 0 && argc == 4)
    res = verify(argv[2], argv[3]);
  else
    die("unknown command or wrong arguments");
  char *s = json_dumps(res, JSON_COMPACT);
  puts(s);
  free(s);
  json_decref(res);
  return 0;
}
