/*
 * worker_hnsw: the helper process of tests/test_hnsw.cc. One role per run, chosen
 * by argv[1]; all work on an HNSW collection named "h".
 *
 *   insert PATH
 *       Opens PATH (sync=full, autocheckpoint 64 frames), creates "h" (dim 16, l2,
 *       m 12, ef_construction 100) if missing, finds the batches present (the first
 *       b whose id "b<b>-0" is missing), then for b = that .. forever: upserts ids
 *       "b<b>-<j>" (j < 500) with vectors crash_vec(b, j), deletes "b<b-1>-<j>" for
 *       odd j (so dead nodes pile up, are unlinked every few batches, and their
 *       slots are reused), commits, and prints "b\n" once the commit is
 *       acknowledged. The parent kills it with SIGKILL.
 *   writer PATH SECONDS
 *       Creates "h" (dim 8, l2) and commits batch after batch for SECONDS: batch b
 *       upserts ids "b<b>-<j>" (j < 100) with vectors cluster_vec(b, j), spread
 *       around the point P_b (cluster_center). Prints "commits=N".
 *   reader PATH SECONDS
 *       For SECONDS, session after session: the count must be a multiple of 100
 *       (B = count / 100 batches, 0..B-1 visible), "b<B-1>-99" must exist and
 *       "b<B>-0" must not. At P_{B-1}, k = 100: every hit is from a visible batch and
 *       its distance is that of the vector the writer stored; the hits are compared
 *       with the exact 100 nearest of the B visible batches (recall, and recall of
 *       batch B-1's own vectors). At P_B (not visible) no hit is from batch B or
 *       later. Prints "sessions=N searches=S violations=V max_batches=M recall=R
 *       own_recall=O" (recalls in parts per million); the first violation is
 *       described on stderr.
 *
 * Exit status: 0 success (for reader: even with violations, which it reports),
 * 2 bad usage or setup failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sextant.h"
#include "testutil.h"

#define CRASH_DIM 16
#define CRASH_PER 500
#define MP_DIM 8
#define MP_PER 100

/* Keep in step with CrashVec in test_hnsw.cc. */
static void crash_vec(unsigned b, unsigned j, float *out) {
  sx_test_gen(((uint64_t)b << 32) | j, out, CRASH_DIM);
}

/* Keep in step with ClusterCenter in test_hnsw.cc. */
/* P_b, a random point of [-1, 1]^8; batch b lies around it (not in a tight far-off
 * cluster: HNSW, hnswlib's as well, can leave such clusters partly unreachable). */
static void cluster_center(unsigned b, float *out) {
  uint64_t st = 0xC0FFEE00000000ull + b;
  for (unsigned i = 0; i < MP_DIM; i++) out[i] = sx_test_component(&st);
}

static void cluster_vec(unsigned b, unsigned j, float *out) {
  cluster_center(b, out);
  uint64_t st = ((uint64_t)b << 32) | (j + 1000000u);
  for (unsigned i = 0; i < MP_DIM; i++) out[i] += sx_test_component(&st) * 0.25f;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const sx_error *e) {
  fprintf(stderr, "worker_hnsw: %s: %s\n", what, e ? e->message : "");
  exit(2);
}

/* Number of batches present: the first b whose "b<b>-0" is missing. */
static unsigned batches_present(sx_db *db) {
  sx_error e = SX_ERROR_INIT;
  sx_read *r;
  sx_collection *c;
  if (sx_read_begin(db, &r, &e)) die("read_begin", &e);
  if (sx_read_collection(r, "h", &c, &e)) die("read_collection", &e);
  unsigned b = 0;
  for (;; b++) {
    char id[32];
    snprintf(id, sizeof id, "b%u-0", b);
    sx_record *rec;
    if (sx_collection_get(c, id, &rec, &e)) break;
    sx_record_free(rec);
  }
  sx_collection_free(c);
  sx_read_free(r);
  return b;
}

static void create(sx_db *db, uint32_t dim, uint32_t m, uint32_t efc) {
  sx_error e = SX_ERROR_INIT;
  sx_write *w;
  if (sx_write_begin(db, -1, &w, &e)) die("write_begin", &e);
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = dim;
  co.hnsw_m = m;
  co.hnsw_ef_construction = efc;
  int rc = sx_write_create_collection(w, "h", &co, &e);
  if (rc && rc != SX_EXISTS) die("create", &e);
  if (sx_write_commit(w, &e)) die("commit", &e);
  sx_write_free(w);
}

static int role_insert(const char *path) {
  sx_error e = SX_ERROR_INIT;
  sx_db *db;
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 64; /* kills land in checkpoints too */
  if (sx_db_open(&db, path, &o, &e)) die("open", &e);
  create(db, CRASH_DIM, 12, 100);
  static char idbuf[CRASH_PER][32];
  static const char *ids[CRASH_PER];
  static float v[CRASH_PER * CRASH_DIM];
  for (unsigned b = batches_present(db);; b++) {
    for (unsigned j = 0; j < CRASH_PER; j++) {
      snprintf(idbuf[j], 32, "b%u-%u", b, j);
      ids[j] = idbuf[j];
      crash_vec(b, j, v + (size_t)j * CRASH_DIM);
    }
    static char delbuf[CRASH_PER / 2][32];
    static const char *del[CRASH_PER / 2];
    unsigned nd = 0;
    for (unsigned j = 1; b > 0 && j < CRASH_PER; j += 2, nd++) {
      snprintf(delbuf[nd], 32, "b%u-%u", b - 1, j);
      del[nd] = delbuf[nd];
    }
    sx_write *w;
    if (sx_write_begin(db, -1, &w, &e) ||
        sx_write_upsert(w, "h", CRASH_PER, ids, v, CRASH_DIM, NULL, &e) ||
        sx_write_delete(w, "h", nd, del, NULL, &e) || sx_write_commit(w, &e))
      die("batch", &e);
    sx_write_free(w);
    printf("%u\n", b);
    fflush(stdout);
  }
  return 0;
}

static int role_writer(const char *path, double secs) {
  sx_error e = SX_ERROR_INIT;
  sx_db *db;
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = SX_SYNC_NORMAL;
  if (sx_db_open(&db, path, &o, &e)) die("open", &e);
  create(db, MP_DIM, 0, 0);
  static char idbuf[MP_PER][32];
  const char *ids[MP_PER];
  float v[MP_PER * MP_DIM];
  double end = now_s() + secs;
  unsigned b = batches_present(db), commits = 0;
  for (; now_s() < end; b++) {
    for (unsigned j = 0; j < MP_PER; j++) {
      snprintf(idbuf[j], 32, "b%u-%u", b, j);
      ids[j] = idbuf[j];
      cluster_vec(b, j, v + (size_t)j * MP_DIM);
    }
    sx_write *w;
    if (sx_write_begin(db, -1, &w, &e) ||
        sx_write_upsert(w, "h", MP_PER, ids, v, MP_DIM, NULL, &e) || sx_write_commit(w, &e))
      die("batch", &e);
    sx_write_free(w);
    commits++;
  }
  printf("commits=%u\n", commits);
  sx_db_free(db);
  return 0;
}

/* Batch number of an id "b<b>-<j>", or -1. */
static long batch_of(const char *id) {
  if (!id || id[0] != 'b') return -1;
  char *end;
  long b = strtol(id + 1, &end, 10);
  return *end == '-' ? b : -1;
}

static unsigned long violations;
static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...) {
  if (violations++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "worker_hnsw reader: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
  }
}

static double l2(const float *a, const float *b) {
  double s = 0;
  for (unsigned i = 0; i < MP_DIM; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return s;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int role_reader(const char *path, double secs) {
  sx_error e = SX_ERROR_INIT;
  sx_db *db;
  if (sx_db_open(&db, path, NULL, &e)) die("open", &e);
  double end = now_s() + secs;
  unsigned long sessions = 0, searches = 0, max_batches = 0;
  unsigned long long found = 0, wanted = 0, own_found = 0, own_wanted = 0;
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.ef = 200;
  float *vecs = NULL; /* the writer's vectors of batches 0..have-1 */
  double *dist = NULL;
  unsigned long have = 0;
  while (now_s() < end) {
    sx_read *r;
    sx_collection *c;
    if (sx_read_begin(db, &r, &e)) die("read_begin", &e);
    if (sx_read_collection(r, "h", &c, &e)) {
      sx_read_free(r);
      continue; /* not created yet */
    }
    sessions++;
    uint64_t n = 0;
    if (sx_collection_count(c, &n, &e)) die("count", &e);
    if (n % MP_PER) violation("count %lu is not a multiple of %d", (unsigned long)n, MP_PER);
    unsigned long B = (unsigned long)(n / MP_PER);
    if (B > max_batches) max_batches = B;
    if (B > have) {
      vecs = realloc(vecs, B * MP_PER * MP_DIM * sizeof *vecs);
      dist = realloc(dist, B * MP_PER * sizeof *dist);
      if (!vecs || !dist) die("out of memory", NULL);
      for (; have < B; have++)
        for (unsigned j = 0; j < MP_PER; j++)
          cluster_vec((unsigned)have, j, vecs + (have * MP_PER + j) * MP_DIM);
    }
    char id[32];
    sx_record *rec;
    if (B > 0) {
      snprintf(id, sizeof id, "b%lu-%u", B - 1, MP_PER - 1);
      if (sx_collection_get(c, id, &rec, &e))
        violation("count says %lu batches but b%lu-99 is missing", B, B - 1);
      sx_record_free(rec);
    }
    snprintf(id, sizeof id, "b%lu-0", B);
    if (sx_collection_get(c, id, &rec, &e) == SX_OK)
      violation("count says %lu batches but b%lu-0 exists", B, B);
    sx_record_free(rec);
    float q[MP_DIM];
    sx_results *res;
    if (B > 0) {
      /* At the latest visible batch's point, against the exact answer. */
      cluster_center((unsigned)(B - 1), q);
      if (sx_collection_search(c, q, MP_DIM, MP_PER, &so, &res, &e)) die("search", &e);
      searches++;
      size_t nv = B * MP_PER, kk = nv < MP_PER ? nv : MP_PER;
      for (size_t i = 0; i < nv; i++) dist[i] = l2(q, vecs + i * MP_DIM);
      unsigned own_exact = 0;
      double *sorted = malloc(nv * sizeof *sorted);
      if (!sorted) die("out of memory", NULL);
      memcpy(sorted, dist, nv * sizeof *sorted);
      qsort(sorted, nv, sizeof *sorted, cmp_double);
      double kth = sorted[kk - 1];
      free(sorted);
      for (unsigned j = 0; j < MP_PER; j++) own_exact += dist[(B - 1) * MP_PER + j] <= kth;
      size_t nh = sx_results_count(res, 0), own = 0, in_exact = 0;
      if (nh != kk) violation("search at P_%lu returned %zu hits of %zu", B - 1, nh, kk);
      for (size_t i = 0; i < nh; i++) {
        const char *hid = sx_results_id(res, 0, i);
        long hb = batch_of(hid);
        long hj = hb >= 0 ? strtol(strchr(hid, '-') + 1, NULL, 10) : -1;
        if (hb < 0 || (unsigned long)hb >= B || hj < 0 || hj >= MP_PER) {
          violation("snapshot of %lu batches returned a hit from batch %ld (%s)", B, hb, hid);
          continue;
        }
        double want = dist[(size_t)hb * MP_PER + (size_t)hj];
        float got = sx_results_distance(res, 0, i);
        if (got < want - 1e-4 - 1e-4 * want || got > want + 1e-4 + 1e-4 * want)
          violation("hit %s at distance %g, its vector is at %g (snapshot of %lu batches)", hid,
                    got, want, B);
        in_exact += want <= kth;
        own += (unsigned long)hb == B - 1 && want <= kth;
      }
      found += in_exact;
      wanted += kk;
      own_found += own;
      own_wanted += own_exact;
      sx_results_free(res);
    }
    /* The next batch's point: nothing of batch B or later. */
    cluster_center((unsigned)B, q);
    if (sx_collection_search(c, q, MP_DIM, 10, &so, &res, &e)) die("search", &e);
    searches++;
    for (size_t i = 0; i < sx_results_count(res, 0); i++) {
      long hb = batch_of(sx_results_id(res, 0, i));
      if (hb < 0 || (unsigned long)hb >= B)
        violation(
            "snapshot of %lu batches returned a hit from batch %ld (%s) at the next batch's point",
            B, hb, sx_results_id(res, 0, i));
    }
    sx_results_free(res);
    sx_collection_free(c);
    sx_read_free(r);
  }
  printf("sessions=%lu searches=%lu violations=%lu max_batches=%lu recall=%llu own_recall=%llu\n",
         sessions, searches, violations, max_batches, wanted ? found * 1000000 / wanted : 0,
         own_wanted ? own_found * 1000000 / own_wanted : 0);
  free(vecs);
  free(dist);
  sx_db_free(db);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "insert")) return role_insert(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "writer")) return role_writer(argv[2], atof(argv[3]));
  if (argc == 4 && !strcmp(argv[1], "reader")) return role_reader(argv[2], atof(argv[3]));
  fprintf(stderr,
          "usage: worker_hnsw insert PATH\n"
          "       worker_hnsw writer PATH SECONDS\n"
          "       worker_hnsw reader PATH SECONDS\n");
  return 2;
}
