// kill -9 of a process upserting and deleting vectors, at random instants: after
// each kill the database opens, passes sx_db_check (pages, WAL, and every
// collection's id map, slots and counts), holds every acknowledged batch exactly
// (vectors compared bit for bit), and shows no partial batch.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>

#include "sextant.h"
#include "testutil.hh"

namespace {

const unsigned DIM = 16, PER = 100;
float Value(unsigned b, unsigned j, unsigned i) {
  return (float)(b * 1000 + j) + (float)i / 32.0f;
}

// Checks the state equals "B batches committed"; returns B, or -1 with a failure.
long VerifyState(sx_db *db) {
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  sx_read *r;
  if (sx_read_begin(db, &r, &err)) return -1;
  sx_collection *c;
  if (sx_read_collection(r, "c", &c, &err)) {
    sx_read_free(r);
    return 0;  // killed before the collection was created
  }
  long B = 0;
  for (;; B++) {
    sx_record *rec;
    std::string id = "b" + std::to_string(B) + "-0";
    if (sx_collection_get(c, id.c_str(), &rec, &err)) break;
    sx_record_free(rec);
  }
  uint64_t expect_count = 0;
  for (long b = 0; b < B + 1; b++) {
    for (unsigned j = 0; j < PER; j++) {
      bool present = b < B && (j % 2 == 0 || b + 3 >= B);
      expect_count += present;
      sx_record *rec = nullptr;
      std::string id = "b" + std::to_string(b) + "-" + std::to_string(j);
      int rc = sx_collection_get(c, id.c_str(), &rec, &err);
      EXPECT_EQ(rc, present ? SX_OK : SX_NOT_FOUND) << id << " with " << B << " batches";
      if (rc == SX_OK) {
        size_t dim;
        const float *v = sx_record_vector(rec, &dim);
        for (unsigned i = 0; i < DIM; i++) EXPECT_EQ(v[i], Value((unsigned)b, j, i)) << id;
      }
      sx_record_free(rec);
    }
  }
  uint64_t n = 0;
  EXPECT_EQ(sx_collection_count(c, &n, &err), SX_OK);
  EXPECT_EQ(n, expect_count);
  sx_collection_free(c);
  sx_read_free(r);
  return B;
}

TEST(CollCrash, KillDuringUpsertsLosesNothingAcknowledged) {
  const char *env = getenv("SX_CRASH_ITERATIONS");
  int iters = env ? atoi(env) : 100;
  char *dir = sx_test_tmpdir("collcrash");
  std::string path = std::string(dir) + "/c.sx";
  std::mt19937 rng(1234);
  long acknowledged = -1;
  int mid_run = 0;
  // Kill instants are random within a window that stretches while runs end before
  // their first acknowledged batch (sanitizer builds run several times slower).
  double stretch = 1.0;
  for (int it = 0; it < iters; it++) {
    int ms = (int)((5 + (int)(rng() % 60)) * stretch);
    long last = sxt::RunAndKill({SX_WORKER_UPSERT, path}, ms);
    if (last >= 0) {
      acknowledged = last;
      mid_run++;
      stretch = stretch * 0.9 < 1.0 ? 1.0 : stretch * 0.9;
    } else if (stretch < 16) {
      stretch *= 1.5;
    }
    sx_db *db;
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_open(&db, path.c_str(), nullptr, &err), SX_OK) << err.message;
    long B = VerifyState(db);
    sx_db_free(db);
    ASSERT_GE(B, acknowledged + 1) << "iteration " << it << ": an acknowledged batch was lost";
    ASSERT_LE(B, acknowledged + 2) << "iteration " << it << ": more batches than were written";
    acknowledged = B - 1;  // the in-flight batch may have landed
    if (HasFailure()) break;
  }
  std::cout << "kills: " << iters << ", runs that acknowledged at least one batch: " << mid_run
            << ", batches at the end: " << acknowledged + 1 << "\n";
  EXPECT_GT(mid_run, iters / 4) << "the kills should land while the worker is committing";
  sx_test_rmtree(dir);
  free(dir);
}

}  // namespace
