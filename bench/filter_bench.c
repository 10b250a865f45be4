/*
 * filter_bench: filtered HNSW search on Fashion-MNIST: recall@10 and single-query QPS
 * against the share of items the filter matches (100, 50, 10, 1, 0.1 %), at one ef.
 *
 *   filter_bench TRAIN.npy TEST.npy DB [--queries N] [--ef EF] [--threads T]
 *                [--rows none,100,50,10,1,0.1] [--repeats R]
 *
 * TRAIN.npy and TEST.npy are float32 (N x 784) files from tools/fashion_mnist_npy.py
 * (pixel values 0..255). DB is built when it does not exist: one HNSW collection
 * "fm" (l2, m 16, ef_construction 200) of the train rows, row i with id "i" and
 * metadata {"i": i, "c": i % 1000}, so that {"c": {"$lt": 10 * p}} matches p % of the
 * items, spread evenly. The exact answer of each filtered query comes from the same
 * API with sx_search_options.exact set (a scan of the matching items, which
 * tests/test_filter.cc checks against brute force). QPS: one query per call, one
 * thread, through one read session; the thread's CPU time is printed beside wall time
 * because the machine may be shared. The row "none" is the search without a filter.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sextant.h"

static double clk(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A float32 2-D .npy file: rows x cols, malloc'd. */
static float *load_npy(const char *path, size_t *rows, size_t *cols) {
  FILE *f = fopen(path, "rb");
  unsigned char pre[10];
  if (!f || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01", 7)) {
    fprintf(stderr, "'%s' is not a version 1 .npy file\n", path);
    exit(1);
  }
  unsigned hl = pre[8] | pre[9] << 8;
  char hdr[1024] = {0};
  if (hl >= sizeof hdr || fread(hdr, 1, hl, f) != hl || !strstr(hdr, "'<f4'")) {
    fprintf(stderr, "'%s': only float32 '<f4' files\n", path);
    exit(1);
  }
  const char *sh = strstr(hdr, "'shape': (");
  if (!sh || sscanf(sh, "'shape': (%zu, %zu)", rows, cols) != 2) {
    fprintf(stderr, "'%s': no 2-D shape\n", path);
    exit(1);
  }
  float *v = malloc(*rows * *cols * sizeof *v);
  if (!v || fread(v, sizeof *v, *rows * *cols, f) != *rows * *cols) {
    fprintf(stderr, "'%s': short file\n", path);
    exit(1);
  }
  fclose(f);
  return v;
}

static void die(const char *what, sx_error *err) {
  fprintf(stderr, "%s: %s\n", what, err->message);
  exit(1);
}

static void build(sx_db *db, const float *base, size_t n, size_t dim) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w;
  if (sx_write_begin(db, -1, &w, &err)) die("begin", &err);
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = (uint32_t)dim;
  if (sx_write_create_collection(w, "fm", &co, &err)) die("create", &err);
  if (sx_write_commit(w, &err)) die("commit", &err);
  sx_write_free(w);
  const size_t B = 5000;
  double t0 = clk(CLOCK_MONOTONIC);
  for (size_t at = 0; at < n; at += B) {
    size_t nb = n - at < B ? n - at : B;
    char(*ids)[16] = malloc(nb * sizeof *ids);
    char(*meta)[48] = malloc(nb * sizeof *meta);
    const char **ip = malloc(nb * sizeof *ip), **mp = malloc(nb * sizeof *mp);
    for (size_t i = 0; i < nb; i++) {
      snprintf(ids[i], sizeof ids[i], "%zu", at + i);
      snprintf(meta[i], sizeof meta[i], "{\"i\": %zu, \"c\": %zu}", at + i, (at + i) % 1000);
      ip[i] = ids[i];
      mp[i] = meta[i];
    }
    if (sx_write_begin(db, -1, &w, &err)) die("begin", &err);
    if (sx_write_upsert(w, "fm", nb, ip, base + at * dim, dim, mp, &err)) die("upsert", &err);
    if (sx_write_commit(w, &err)) die("commit", &err);
    sx_write_free(w);
    free(ids), free(meta), free(ip), free(mp);
    fprintf(stderr, "\rbuilt %zu of %zu (%.0f s)", at + nb, n, clk(CLOCK_MONOTONIC) - t0);
  }
  fprintf(stderr, "\n");
  if (sx_db_checkpoint(db, -1, &err)) die("checkpoint", &err);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: filter_bench TRAIN.npy TEST.npy DB [--queries N] [--ef EF] [--threads T]\n");
    return 2;
  }
  size_t nq = 1000;
  uint32_t ef = 64, threads = 0;
  const char *only = NULL;
  int repeats = 1;
  for (int a = 4; a + 1 < argc; a += 2) {
    if (!strcmp(argv[a], "--queries"))
      nq = (size_t)atol(argv[a + 1]);
    else if (!strcmp(argv[a], "--ef"))
      ef = (uint32_t)atol(argv[a + 1]);
    else if (!strcmp(argv[a], "--threads"))
      threads = (uint32_t)atol(argv[a + 1]);
    else if (!strcmp(argv[a], "--rows"))
      only = argv[a + 1];
    else if (!strcmp(argv[a], "--repeats"))
      repeats = atoi(argv[a + 1]);
  }
  size_t n, dim, nt, dt;
  struct stat st;
  int exists = stat(argv[3], &st) == 0;
  float *base = exists ? NULL : load_npy(argv[1], &n, &dim);
  float *qs = load_npy(argv[2], &nt, &dt);
  if (nq > nt) nq = nt;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.sync = SX_SYNC_OFF;
  oo.threads = threads;
  sx_db *db;
  sx_error err = SX_ERROR_INIT;
  if (sx_db_open(&db, argv[3], &oo, &err)) die("open", &err);
  if (!exists) build(db, base, n, dim);
  free(base);
  sx_read *r;
  sx_collection *c;
  if (sx_read_begin(db, &r, &err)) die("read", &err);
  if (sx_read_collection(r, "fm", &c, &err)) die("collection", &err);
  uint64_t count = 0;
  sx_collection_count(c, &count, &err);
  const size_t k = 10;
  printf("filter_bench: %" PRIu64 " items, %zu queries, k %zu, ef %u\n", count, nq, k, ef);
  printf("%-10s %8s %10s %10s %12s\n", "match", "recall", "QPS", "QPS(cpu)", "exact QPS");
  const char *rows[] = {NULL,
                        "{\"c\": {\"$lt\": 1000}}",
                        "{\"c\": {\"$lt\": 500}}",
                        "{\"c\": {\"$lt\": 100}}",
                        "{\"c\": {\"$lt\": 10}}",
                        "{\"c\": {\"$lt\": 1}}"};
  const char *names[] = {"none", "100%", "50%", "10%", "1%", "0.1%"};
  const char *keys[] = {",none,", ",100,", ",50,", ",10,", ",1,", ",0.1,"};
  char onlyc[256];
  snprintf(onlyc, sizeof onlyc, ",%s,", only ? only : "");
  char(*want)[k][16] = malloc(nq * sizeof *want);
  for (size_t row = 0; row < sizeof rows / sizeof *rows; row++) {
    if (only && !strstr(onlyc, keys[row])) continue;
    sx_search_options o = SX_SEARCH_OPTIONS_INIT;
    o.filter = rows[row];
    o.exact = 1;
    double e0 = clk(CLOCK_MONOTONIC);
    for (size_t q = 0; q < nq; q++) {
      sx_results *res;
      if (sx_collection_search(c, qs + q * dt, dt, k, &o, &res, &err)) die("exact search", &err);
      for (size_t i = 0; i < k; i++) {
        const char *id = sx_results_id(res, 0, i);
        snprintf(want[q][i], 16, "%s", id ? id : "");
      }
      sx_results_free(res);
    }
    double exact_qps = nq / (clk(CLOCK_MONOTONIC) - e0);
    o.exact = 0;
    o.ef = ef;
    double hits = 0, t0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
    for (size_t qr = 0; qr < nq * (size_t)repeats; qr++) {
      size_t q = qr % nq;
      sx_results *res;
      if (sx_collection_search(c, qs + q * dt, dt, k, &o, &res, &err)) die("search", &err);
      size_t nw = 0, h = 0;
      for (size_t i = 0; i < k; i++) nw += want[q][i][0] != 0;
      for (size_t i = 0; i < sx_results_count(res, 0); i++)
        for (size_t j = 0; j < nw; j++) h += !strcmp(sx_results_id(res, 0, i), want[q][j]);
      hits += nw ? (double)h / nw : 1;
      sx_results_free(res);
    }
    double wall = clk(CLOCK_MONOTONIC) - t0, cpu = clk(CLOCK_THREAD_CPUTIME_ID) - c0;
    double tot = (double)nq * repeats;
    printf("%-10s %8.4f %10.0f %10.0f %12.0f\n", names[row], hits / tot, tot / wall, tot / cpu,
           exact_qps);
    fflush(stdout);
  }
  free(want);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
  free(qs);
  return 0;
}
