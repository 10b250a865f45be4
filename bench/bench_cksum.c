/*
 * bench_cksum: what page checksums cost. The same workloads on one database in the
 * format this library writes (format 2: a CRC32C per page, checked when a handle
 * first reads the page in a checkpoint epoch and computed when a checkpoint copies
 * it) and on a copy converted to format 1 (no checksum pages), which the library
 * still reads and writes as it is.
 *
 *   bench_cksum [--n 100000] [--dim 128] [--commits 5000] [--rounds 6] [--dir DIR]
 *
 * A flat collection of n vectors is loaded once and closed (checkpointed); its file
 * is converted to format 1 beside it. Then, per round, for each format in turn (the
 * first one alternating between rounds), on a fresh copy of that file:
 * 1. one-vector commits at sync=normal (new ids, 128-d vectors: six pages a commit,
 *    with the default autocheckpoint every 1,000 frames), commits/s;
 * 2. after reopening: the first single-query exact search (k = 10), which reads every
 *    page of the collection for the first time in the epoch (format 2 verifies them
 *    all), and the best of 20 searches after it (pages already verified).
 * Medians over rounds, and the per-round ratio format 2 / format 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "sextant.h"

static void die(const char *what, int rc, const sx_error *e) {
  fprintf(stderr, "bench_cksum: %s: %s: %s\n", what, sx_status_name(rc), e ? e->message : "");
  exit(1);
}

#define CHECK(what, call)          \
  do {                             \
    int rc_ = (call);              \
    if (rc_) die(what, rc_, &err); \
  } while (0)

static void rm_db(const char *p) {
  static const char *sfx[] = {"", "-wal", "-wal2", "-shm"};
  char b[4200];
  for (int i = 0; i < 4; i++) {
    snprintf(b, sizeof b, "%s%s", p, sfx[i]);
    unlink(b);
  }
}

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "bench_cksum: cannot read %s: %s\n", path, strerror(errno));
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) exit(1);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void write_all(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "bench_cksum: cannot write %s\n", path);
    exit(1);
  }
}

/* Format 2 keeps page p at file page p + p / (ps / 4) + 1 (page 0 at 0): a checksum
 * page leads each group of ps / 4 pages. Format 1 keeps page p at p, and says 1 at
 * byte 16 of page 0. */
static void to_format1(const char *from, const char *to, uint32_t ps, uint64_t npages) {
  size_t len;
  unsigned char *f2 = read_all(from, &len);
  unsigned char *f1 = malloc(npages * ps);
  if (!f1) exit(1);
  for (uint64_t p = 0; p < npages; p++) {
    uint64_t at = p == 0 ? 0 : p + p / (ps / 4) + 1;
    if ((at + 1) * ps > len) {
      fprintf(stderr, "bench_cksum: page %llu is past the end of %s\n", (unsigned long long)p,
              from);
      exit(1);
    }
    memcpy(f1 + p * ps, f2 + at * ps, ps);
  }
  uint32_t one = 1;
  memcpy(f1 + 16, &one, 4);
  write_all(to, f1, npages * ps);
  free(f1);
  free(f2);
}

/* The database at path, opened at the given sync level (exits on an error). */
static sx_db *open_db(const char *path, sx_sync sync) {
  sx_error err = SX_ERROR_INIT;
  sx_open_options o;
  sx_open_options_init(&o, SX_OPEN_OPTIONS_VERSION);
  o.sync = sync;
  sx_db *db;
  CHECK("open", sx_db_open(&db, path, &o, &err));
  return db;
}

typedef struct result {
  double commits_s, first_ms, steady_ms;
} result;

static result run(const char *tmpl, const char *work, size_t dim, int commits, uint64_t seed) {
  sx_error err = SX_ERROR_INIT;
  result r;
  size_t len;
  unsigned char *b = read_all(tmpl, &len);
  rm_db(work);
  write_all(work, b, len);
  free(b);
  sx_db *db = open_db(work, SX_SYNC_NORMAL);
  float *v = malloc(dim * sizeof *v);
  char id[32];
  const char *ids[1] = {id};
  uint64_t s = seed;
  double t = bench_now();
  for (int i = 0; i < commits; i++) {
    bench_gen(v, dim, &s);
    snprintf(id, sizeof id, "new%d", i);
    sx_write *w;
    CHECK("begin", sx_write_begin(db, -1, &w, &err));
    CHECK("upsert", sx_write_upsert(w, "c", 1, ids, v, dim, NULL, &err));
    CHECK("commit", sx_write_commit(w, &err));
  }
  r.commits_s = commits / (bench_now() - t);
  CHECK("checkpoint", sx_db_checkpoint(db, -1, &err));
  sx_db_close(db);
  db = open_db(work, SX_SYNC_NORMAL);
  sx_read *rd;
  sx_collection *c;
  CHECK("read", sx_read_begin(db, &rd, &err));
  CHECK("collection", sx_read_collection(rd, "c", &c, &err));
  bench_gen(v, dim, &s);
  sx_results *res;
  t = bench_now();
  CHECK("search", sx_collection_search(c, v, dim, 10, NULL, &res, &err));
  r.first_ms = (bench_now() - t) * 1e3;
  sx_results_free(res);
  r.steady_ms = 1e9;
  for (int i = 0; i < 20; i++) {
    t = bench_now();
    CHECK("search", sx_collection_search(c, v, dim, 10, NULL, &res, &err));
    t = (bench_now() - t) * 1e3;
    if (t < r.steady_ms) r.steady_ms = t;
    sx_results_free(res);
  }
  sx_collection_free(c);
  sx_read_free(rd);
  sx_db_close(db);
  free(v);
  rm_db(work);
  return r;
}

int main(int argc, char **argv) {
  size_t n = 100000, dim = 128;
  int commits = 5000, rounds = 6;
  const char *dir = "/tmp";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--n") && i + 1 < argc)
      n = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--dim") && i + 1 < argc)
      dim = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--commits") && i + 1 < argc)
      commits = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else {
      fprintf(stderr,
              "usage: bench_cksum [--n N] [--dim D] [--commits C] [--rounds R] [--dir DIR]\n");
      return 2;
    }
  }
  if (rounds < 1 || rounds > 100 || commits < 1 || n < 1 || dim < 1) {
    fprintf(stderr, "bench_cksum: bad arguments\n");
    return 2;
  }
  char t2[4096], t1[4096], work[4096];
  snprintf(t2, sizeof t2, "%s/bench_cksum_f2.sx", dir);
  snprintf(t1, sizeof t1, "%s/bench_cksum_f1.sx", dir);
  snprintf(work, sizeof work, "%s/bench_cksum_work.sx", dir);
  printf("bench_cksum: n=%zu dim=%zu commits=%d rounds=%d dir=%s\n", n, dim, commits, rounds, dir);

  sx_error err = SX_ERROR_INIT;
  rm_db(t2);
  sx_db *db = open_db(t2, SX_SYNC_OFF);
  sx_write *w;
  CHECK("begin", sx_write_begin(db, -1, &w, &err));
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = (uint32_t)dim;
  co.index = SX_INDEX_FLAT;
  CHECK("create", sx_write_create_collection(w, "c", &co, &err));
  const size_t batch = 10000;
  float *v = malloc(batch * dim * sizeof *v);
  char **ids = malloc(batch * sizeof *ids);
  for (size_t i = 0; i < batch; i++) ids[i] = malloc(24);
  uint64_t s = 1;
  for (size_t at = 0; at < n; at += batch) {
    size_t m = n - at < batch ? n - at : batch;
    bench_gen(v, m * dim, &s);
    for (size_t i = 0; i < m; i++) snprintf(ids[i], 24, "v%zu", at + i);
    CHECK("upsert", sx_write_upsert(w, "c", m, (const char *const *)ids, v, dim, NULL, &err));
  }
  CHECK("commit", sx_write_commit(w, &err));
  sx_db_stats st = SX_DB_STATS_INIT;
  CHECK("stats", sx_db_stats_get(db, &st, &err));
  CHECK("close", sx_db_close(db));
  for (size_t i = 0; i < batch; i++) free(ids[i]);
  free(ids);
  free(v);
  rm_db(t1);
  to_format1(t2, t1, st.page_size, st.page_count);

  double c1[100], c2[100], f1[100], f2[100], s1[100], s2[100], rc[100], rf[100], rs[100];
  for (int r = 0; r < rounds; r++) {
    result a, b;
    if (r % 2) {
      b = run(t2, work, dim, commits, 100 + r);
      a = run(t1, work, dim, commits, 100 + r);
    } else {
      a = run(t1, work, dim, commits, 100 + r);
      b = run(t2, work, dim, commits, 100 + r);
    }
    c1[r] = a.commits_s, c2[r] = b.commits_s, rc[r] = b.commits_s / a.commits_s;
    f1[r] = a.first_ms, f2[r] = b.first_ms, rf[r] = b.first_ms / a.first_ms;
    s1[r] = a.steady_ms, s2[r] = b.steady_ms, rs[r] = b.steady_ms / a.steady_ms;
    printf(
        "round %d: commits/s %.0f (format 1) %.0f (format 2); first search %.2f / %.2f ms; "
        "search %.2f / %.2f ms\n",
        r + 1, a.commits_s, b.commits_s, a.first_ms, b.first_ms, a.steady_ms, b.steady_ms);
  }
  printf("RESULT one-vector commits/s, sync=normal: format 1 %.0f, format 2 %.0f (ratio %.3f)\n",
         bench_median(c1, rounds), bench_median(c2, rounds), bench_median(rc, rounds));
  printf(
      "RESULT first search after open (%.0f MB of vectors): format 1 %.2f ms, format 2 %.2f ms "
      "(ratio %.3f)\n",
      n * dim * 4 / 1e6, bench_median(f1, rounds), bench_median(f2, rounds),
      bench_median(rf, rounds));
  printf("RESULT later searches (best of 20): format 1 %.2f ms, format 2 %.2f ms (ratio %.3f)\n",
         bench_median(s1, rounds), bench_median(s2, rounds), bench_median(rs, rounds));
  rm_db(t1);
  rm_db(t2);
  return 0;
}
