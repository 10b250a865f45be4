/*
 * bench_import: the C API's bulk upsert of a float32 .npy file (2-D, C order), the
 * baseline for `sextant import`: the same batches (10000 rows, one commit each), the
 * same ids (the row number), the same collection (HNSW, m 16, ef_construction 200,
 * l2) and sync level. Reads the whole file first, so only the database work is timed.
 *
 *   bench_import FILE.npy DB [BATCH] [SYNC: full|normal|off]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "sextant.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_import FILE.npy DB [BATCH] [full|normal|off]\n");
    return 2;
  }
  size_t batch = argc > 3 ? (size_t)atol(argv[3]) : 10000;
  sx_sync sync = SX_SYNC_FULL;
  if (argc > 4)
    sync = !strcmp(argv[4], "off")      ? SX_SYNC_OFF
           : !strcmp(argv[4], "normal") ? SX_SYNC_NORMAL
                                        : SX_SYNC_FULL;
  FILE *f = fopen(argv[1], "rb");
  unsigned char pre[10];
  if (!f || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01", 7)) {
    fprintf(stderr, "'%s' is not a version 1 .npy file\n", argv[1]);
    return 1;
  }
  unsigned hl = pre[8] | pre[9] << 8;
  char hdr[1024] = {0};
  if (hl >= sizeof hdr || fread(hdr, 1, hl, f) != hl || !strstr(hdr, "'<f4'")) {
    fprintf(stderr, "'%s': only float32 '<f4' files\n", argv[1]);
    return 1;
  }
  unsigned long long rows, dim;
  const char *sh = strstr(hdr, "'shape': (");
  if (!sh || sscanf(sh, "'shape': (%llu, %llu", &rows, &dim) != 2) return 1;
  float *v = malloc(rows * dim * 4);
  if (fread(v, 4, rows * dim, f) != rows * dim) return 1;
  fclose(f);
  char **ids = malloc(rows * sizeof *ids);
  for (size_t i = 0; i < rows; i++) {
    char b[24];
    snprintf(b, sizeof b, "%zu", i);
    ids[i] = strdup(b);
  }
  sx_error e = SX_ERROR_INIT;
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = sync;
  sx_db *db;
  if (sx_db_open(&db, argv[2], &o, &e)) return fprintf(stderr, "%s\n", e.message), 1;
  double t0 = bench_now();
  sx_write *w;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = (uint32_t)dim;
  if (sx_write_begin(db, -1, &w, &e) || sx_write_create_collection(w, "c", &co, &e) ||
      sx_write_commit(w, &e))
    return fprintf(stderr, "%s\n", e.message), 1;
  sx_write_free(w);
  for (size_t at = 0; at < rows; at += batch) {
    size_t n = rows - at < batch ? rows - at : batch;
    if (sx_write_begin(db, -1, &w, &e) ||
        sx_write_upsert(w, "c", n, (const char *const *)ids + at, v + at * dim, dim, NULL, &e) ||
        sx_write_commit(w, &e))
      return fprintf(stderr, "%s\n", e.message), 1;
    sx_write_free(w);
  }
  double secs = bench_now() - t0;
  printf("{\"rows\": %llu, \"dim\": %llu, \"seconds\": %.3f, \"rows_per_second\": %.1f}\n", rows,
         dim, secs, rows / secs);
  sx_db_free(db);
  return 0;
}
