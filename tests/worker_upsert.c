/*
 * worker_upsert: the writer of the collection crash test (test_coll_crash.cc).
 *
 *   worker_upsert PATH
 *
 * Opens PATH (sync=full), creates collection "c" (dim 16, l2) if missing, then for
 * batch b = (batches present) .. forever: upserts ids "b<b>-<j>" for j < 100 with
 * vectors value(b, j, i), deletes the odd-numbered ids of batch b - 3, commits, and
 * prints "b\n" once the commit is acknowledged. The state after B committed batches
 * is therefore a known function of B (see expected_present in the test).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sextant.h"

#define DIM 16
#define PER 100

float wl_value(unsigned b, unsigned j, unsigned i) {
  return (float)(b * 1000 + j) + (float)i / 32.0f;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  sx_error e = SX_ERROR_INIT;
  sx_db *db;
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 64; /* crashes land in checkpoints and WAL restarts too */
  if (sx_db_open(&db, argv[1], &o, &e)) {
    fprintf(stderr, "worker_upsert: %s\n", e.message);
    return 1;
  }
  sx_write *w;
  if (sx_write_begin(db, -1, &w, &e)) return 1;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = DIM;
  co.index = SX_INDEX_FLAT; /* storage under crashes; HNSW has its own crash test */
  int rc = sx_write_create_collection(w, "c", &co, &e);
  if (rc && rc != SX_EXISTS) return 1;
  sx_collection *c;
  uint64_t n = 0;
  if (sx_write_collection(w, "c", &c, &e) || sx_collection_count(c, &n, &e)) return 1;
  sx_collection_free(c);
  if (sx_write_commit(w, &e)) return 1;
  sx_write_free(w);
  /* Find how many batches are present: the first b whose id b-0 is missing. */
  unsigned b = 0;
  sx_read *r;
  if (sx_read_begin(db, &r, &e) || sx_read_collection(r, "c", &c, &e)) return 1;
  for (;; b++) {
    char id[32];
    snprintf(id, sizeof id, "b%u-0", b);
    sx_record *rec;
    if (sx_collection_get(c, id, &rec, &e)) break;
    sx_record_free(rec);
  }
  sx_collection_free(c);
  sx_read_free(r);
  static char idbuf[PER][32];
  const char *ids[PER], *del[PER];
  float v[PER * DIM];
  for (;; b++) {
    for (unsigned j = 0; j < PER; j++) {
      snprintf(idbuf[j], 32, "b%u-%u", b, j);
      ids[j] = idbuf[j];
      for (unsigned i = 0; i < DIM; i++) v[j * DIM + i] = wl_value(b, j, i);
    }
    static char delbuf[PER][32];
    size_t nd = 0;
    for (unsigned j = 1; b >= 3 && j < PER; j += 2) {
      snprintf(delbuf[nd], 32, "b%u-%u", b - 3, j);
      del[nd] = delbuf[nd];
      nd++;
    }
    if (sx_write_begin(db, -1, &w, &e) || sx_write_upsert(w, "c", PER, ids, v, DIM, NULL, &e) ||
        sx_write_delete(w, "c", nd, del, NULL, &e) || sx_write_commit(w, &e)) {
      fprintf(stderr, "worker_upsert: batch %u: %s\n", b, e.message);
      return 1;
    }
    sx_write_free(w);
    printf("%u\n", b);
    fflush(stdout);
  }
}
