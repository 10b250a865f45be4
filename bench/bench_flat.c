/*
 * bench_flat: exact search and upsert throughput, beside peers measured in the same
 * run.
 *
 *   bench_flat [--n N] [--dim D] [--dir DIR] [--repeats R] [--dump FILE]
 *
 * 1. Single-core read bandwidth: a plain loop summing 64-bit words of an N x D float
 *    buffer in memory (median of R), and the same loop over the database file
 *    through a read-only shared mapping of it, as Sextant's readers map it (the
 *    file's page-cache pages, 4 KiB each, against the buffer's anonymous memory).
 * 2. Single-query flat search over the same N x D vectors stored in a Sextant
 *    collection (a read session on a checkpointed snapshot: pages reached through
 *    the memory map), k = 10: vector bytes scanned per second, as a share of both
 *    loops of (1).
 * 3. 64 queries per call (sx_collection_search_batch): queries per second. The faiss
 *    IndexFlatL2 figure for the same data comes from bench/bench_faiss.py, which runs
 *    this program with --dump and faiss in one run.
 * 4. Upsert of 128-d vectors, 1,000 per commit, sync=full, vectors/s, beside SQLite
 *    in WAL mode with synchronous=FULL inserting 512-byte rows 1,000 per transaction.
 * 5. Storage overhead: file pages per vector byte.
 *
 * Vectors come from the conformance generator (splitmix64), so every program that
 * uses the same seed sees the same data.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "sextant.h"

static void gen(float *v, size_t n, uint64_t seed) {
  uint64_t s = seed;
  bench_gen(v, n, &s);
}

static void die(const char *what, int rc, const sx_error *e) {
  fprintf(stderr, "bench_flat: %s: %s: %s\n", what, sx_status_name(rc), e ? e->message : "");
  exit(1);
}

static volatile uint64_t sink;

static double read_bandwidth(const float *buf, size_t bytes) {
  const uint64_t *w = (const uint64_t *)buf;
  size_t n = bytes / 8;
  double t0 = bench_now();
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    a += w[i];
    b += w[i + 1];
    c += w[i + 2];
    d += w[i + 3];
  }
  sink = a + b + c + d;
  return bytes / (bench_now() - t0) / 1e9;
}

static void bench_sqlite_insert(const char *dir, size_t total, double *rate) {
  char path[4096];
  snprintf(path, sizeof path, "%s/peer.sqlite", dir);
  unlink(path);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) exit(1);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE t(id TEXT PRIMARY KEY, v BLOB)",
               0, 0, 0);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?, ?)", -1, &st, 0);
  char blob[512];
  memset(blob, 7, sizeof blob);
  double t0 = bench_now();
  for (size_t i = 0; i < total;) {
    sqlite3_exec(db, "BEGIN", 0, 0, 0);
    for (size_t j = 0; j < 1000 && i < total; j++, i++) {
      char id[32];
      snprintf(id, sizeof id, "v%zu", i);
      sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
      sqlite3_bind_blob(st, 2, blob, sizeof blob, SQLITE_STATIC);
      sqlite3_step(st);
      sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", 0, 0, 0);
  }
  *rate = total / (bench_now() - t0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  unlink(path);
}

static void bench_sextant_insert(const char *dir, size_t total, double *rate) {
  char path[4096];
  snprintf(path, sizeof path, "%s/ins.sx", dir);
  sx_error e = SX_ERROR_INIT;
  sx_db *db;
  int rc;
  if ((rc = sx_db_open(&db, path, NULL, &e))) die("open", rc, &e);
  sx_write *w;
  sx_collection_options o = SX_COLLECTION_OPTIONS_INIT;
  o.dim = 128;
  o.index = SX_INDEX_FLAT;
  if ((rc = sx_write_begin(db, -1, &w, &e)) || (rc = sx_write_create_collection(w, "c", &o, &e)) ||
      (rc = sx_write_commit(w, &e)))
    die("create", rc, &e);
  sx_write_free(w);
  float *v = malloc(1000 * 128 * sizeof(float));
  char(*idb)[32] = malloc(1000 * 32);
  const char **ids = malloc(1000 * sizeof *ids);
  double t0 = bench_now();
  for (size_t i = 0; i < total; i += 1000) {
    gen(v, 1000 * 128, i + 1);
    for (size_t j = 0; j < 1000; j++) {
      snprintf(idb[j], 32, "v%zu", i + j);
      ids[j] = idb[j];
    }
    if ((rc = sx_write_begin(db, -1, &w, &e)) ||
        (rc = sx_write_upsert(w, "c", 1000, ids, v, 128, NULL, &e)) ||
        (rc = sx_write_commit(w, &e)))
      die("upsert", rc, &e);
    sx_write_free(w);
  }
  *rate = total / (bench_now() - t0);
  free(v);
  free(idb);
  free(ids);
  sx_db_free(db);
  char p2[4200];
  unlink(path);
  snprintf(p2, sizeof p2, "%s-wal", path);
  unlink(p2);
  snprintf(p2, sizeof p2, "%s-shm", path);
  unlink(p2);
}

int main(int argc, char **argv) {
  size_t n = 1000000, dim = 128;
  int repeats = 5;
  const char *dir = NULL, *dump = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--n") && i + 1 < argc)
      n = strtoull(argv[++i], 0, 10);
    else if (!strcmp(argv[i], "--dim") && i + 1 < argc)
      dim = strtoull(argv[++i], 0, 10);
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
      repeats = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
      dump = argv[++i];
    else {
      fprintf(stderr,
              "usage: bench_flat [--n N] [--dim D] [--dir DIR] [--repeats R] [--dump FILE]\n");
      return 2;
    }
  }
  char tmpl[4096];
  if (!dir) {
    snprintf(tmpl, sizeof tmpl, "%s/sx-bench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    dir = mkdtemp(tmpl);
  }
  printf("bench_flat: n=%zu dim=%zu repeats=%d dir=%s\n", n, dim, repeats, dir);
  float *data = malloc(n * dim * sizeof(float));
  gen(data, n * dim, 1);
  if (dump) {
    FILE *f = fopen(dump, "wb");
    fwrite(data, sizeof(float), n * dim, f);
    fclose(f);
  }

  /* Load the collection, in commits of 10,000. */
  char path[4096];
  snprintf(path, sizeof path, "%s/flat.sx", dir);
  sx_error e = SX_ERROR_INIT;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.sync = SX_SYNC_OFF;
  sx_db *db;
  int rc;
  if ((rc = sx_db_open(&db, path, &oo, &e))) die("open", rc, &e);
  sx_write *w;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = (uint32_t)dim;
  co.index = SX_INDEX_FLAT; /* exact search is what this measures */
  if ((rc = sx_write_begin(db, -1, &w, &e)) || (rc = sx_write_create_collection(w, "f", &co, &e)) ||
      (rc = sx_write_commit(w, &e)))
    die("create", rc, &e);
  sx_write_free(w);
  sx_db_stats s0 = SX_DB_STATS_INIT, s1 = SX_DB_STATS_INIT;
  sx_db_checkpoint(db, -1, &e);
  sx_db_stats_get(db, &s0, &e);
  const size_t batch = 10000;
  char(*idb)[16] = malloc(batch * 16);
  const char **ids = malloc(batch * sizeof *ids);
  double tl = bench_now();
  for (size_t i = 0; i < n; i += batch) {
    size_t m = n - i < batch ? n - i : batch;
    for (size_t j = 0; j < m; j++) {
      snprintf(idb[j], 16, "%zu", i + j);
      ids[j] = idb[j];
    }
    if ((rc = sx_write_begin(db, -1, &w, &e)) ||
        (rc = sx_write_upsert(w, "f", m, ids, data + i * dim, dim, NULL, &e)) ||
        (rc = sx_write_commit(w, &e)))
      die("load", rc, &e);
    sx_write_free(w);
  }
  printf("loaded %zu vectors in %.1f s (sync=off)\n", n, bench_now() - tl);
  if ((rc = sx_db_checkpoint(db, -1, &e))) die("checkpoint", rc, &e);
  sx_db_stats_get(db, &s1, &e);
  double vec_bytes = (double)n * dim * 4;
  double file_bytes = (double)(s1.page_count - s0.page_count) * s1.page_size;
  double id_bytes = 0;
  for (size_t i = 0; i < n; i++)
    id_bytes += i < 10        ? 1
                : i < 100     ? 2
                : i < 1000    ? 3
                : i < 10000   ? 4
                : i < 100000  ? 5
                : i < 1000000 ? 6
                              : 7;
  printf(
      "RESULT storage pages per vector byte: %.4f (all collection pages: vectors, %zu-byte ids, "
      "slot records, id map)\n",
      file_bytes / vec_bytes, (size_t)8);
  printf("RESULT storage overhead beyond vectors+ids: %.1f bytes per vector\n",
         (file_bytes - vec_bytes - id_bytes) / n);

  sx_read *r;
  sx_collection *c;
  if ((rc = sx_read_begin(db, &r, &e)) || (rc = sx_read_collection(r, "f", &c, &e)))
    die("read", rc, &e);
  float *qs = malloc(64 * dim * sizeof(float));
  gen(qs, 64 * dim, 99);
  double *bw = malloc(repeats * sizeof *bw), *one = malloc(repeats * sizeof *one),
         *b64 = malloc(repeats * sizeof *b64), *fbw = malloc(repeats * sizeof *fbw);
  /* The database file as the readers see it: a shared read-only mapping. */
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 32) die("open the database file", SX_IO, NULL);
  size_t flen = (size_t)st.st_size & ~(size_t)31;
  const float *fmap = mmap(NULL, flen, PROT_READ, MAP_SHARED, fd, 0);
  if (fmap == MAP_FAILED) die("map the database file", SX_IO, NULL);
  for (int rep = 0; rep < repeats; rep++) {
    bw[rep] = read_bandwidth(data, n * dim * 4);
    fbw[rep] = read_bandwidth(fmap, flen);
    sx_results *res;
    double t0 = bench_now();
    if ((rc = sx_collection_search(c, qs + (rep % 64) * dim, dim, 10, NULL, &res, &e)))
      die("search", rc, &e);
    one[rep] = vec_bytes / (bench_now() - t0) / 1e9;
    sx_results_free(res);
    t0 = bench_now();
    if ((rc = sx_collection_search_batch(c, qs, 64, dim, 10, NULL, &res, &e))) die("batch", rc, &e);
    b64[rep] = 64 / (bench_now() - t0);
    sx_results_free(res);
  }
  munmap((void *)fmap, flen);
  close(fd);
  double mbw = bench_median(bw, repeats), mone = bench_median(one, repeats),
         mb = bench_median(b64, repeats), mfbw = bench_median(fbw, repeats);
  printf("RESULT memory read bandwidth (1 core): %.2f GB/s\n", mbw);
  printf(
      "RESULT read bandwidth through the database file's mapping (1 core): %.2f GB/s = %.0f%% "
      "of anonymous memory's\n",
      mfbw, 100 * mfbw / mbw);
  printf(
      "RESULT sextant single-query flat scan: %.2f GB/s = %.0f%% of bandwidth (goal >= 85%%): %s; "
      "%.0f%% of the loop over its own file's mapping\n",
      mone, 100 * mone / mbw, mone >= 0.85 * mbw ? "PASS" : "FAIL", 100 * mone / mfbw);
  printf("RESULT sextant 64-query batch: %.1f queries/s\n", mb);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);

  /* Upsert throughput, sync=full, against SQLite doing the equivalent. */
  size_t total = 50000;
  double *sx = malloc(repeats * sizeof *sx), *sq = malloc(repeats * sizeof *sq);
  int ur = repeats < 3 ? repeats : 3;
  for (int rep = 0; rep < ur; rep++) {
    bench_sextant_insert(dir, total, &sx[rep]);
    bench_sqlite_insert(dir, total, &sq[rep]);
  }
  double msx = bench_median(sx, ur), msq = bench_median(sq, ur);
  printf(
      "RESULT upsert 128-d, 1000/commit, sync=full: sextant %.0f vectors/s, sqlite %.0f rows/s "
      "(ratio %.2f)\n",
      msx, msq, msx / msq);
  char p2[4200];
  unlink(path);
  snprintf(p2, sizeof p2, "%s-wal", path);
  unlink(p2);
  snprintf(p2, sizeof p2, "%s-shm", path);
  unlink(p2);
  if (dir == tmpl) rmdir(dir);
  free(data);
  free(qs);
  free(idb);
  free(ids);
  free(bw);
  free(one);
  free(fbw);
  free(b64);
  free(sx);
  free(sq);
  return 0;
}
