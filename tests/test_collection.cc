// Collections through the public API: catalog, upsert/replace/delete/get/count,
// validation (every rule of conformance/FORMAT.md), all-or-nothing batches, own-write
// visibility, snapshots, persistence, and exact search equal to a brute-force
// reference for every metric and many k.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "index/hnsw.h"
}
#include "sextant.h"
#include "testutil.hh"

namespace {

struct Db {
  char *dir;
  std::string path;
  sx_db *db = nullptr;
  explicit Db(const char *tag) : dir(sx_test_tmpdir(tag)), path(std::string(dir) + "/c.sx") {
    Open();
  }
  void Open() {
    sx_error err = SX_ERROR_INIT;
    EXPECT_EQ(sx_db_open(&db, path.c_str(), nullptr, &err), SX_OK) << err.message;
  }
  void Reopen() {
    sx_db_free(db);
    Open();
  }
  ~Db() {
    sx_db_free(db);
    sx_test_rmtree(dir);
    free(dir);
  }
};

struct W {
  sx_write *w = nullptr;
  sx_error err = SX_ERROR_INIT;
  explicit W(sx_db *db) {
    EXPECT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK) << err.message;
  }
  ~W() {
    sx_write_free(w);
  }
  int Create(const char *name, uint32_t dim, sx_metric m = SX_METRIC_L2,
             sx_index_type ix = SX_INDEX_FLAT) {
    sx_collection_options o = SX_COLLECTION_OPTIONS_INIT;
    o.dim = dim;
    o.metric = m;
    o.index = ix;
    return sx_write_create_collection(w, name, &o, &err);
  }
  int Upsert(const char *coll, const std::vector<std::string> &ids, const std::vector<float> &v,
             size_t dim, const std::vector<const char *> *meta = nullptr) {
    std::vector<const char *> p;
    for (auto &s : ids) p.push_back(s.c_str());
    return sx_write_upsert(w, coll, ids.size(), p.data(), v.data(), dim,
                           meta ? meta->data() : nullptr, &err);
  }
  int Delete(const char *coll, const std::vector<std::string> &ids, size_t *n) {
    std::vector<const char *> p;
    for (auto &s : ids) p.push_back(s.c_str());
    return sx_write_delete(w, coll, ids.size(), p.data(), n, &err);
  }
  int Commit() {
    return sx_write_commit(w, &err);
  }
};

using sxt::Count;
using sxt::Gen;
using sxt::Ids;

TEST(Collection, CreateListDescribeDrop) {
  Db d("cat");
  {
    W w(d.db);
    ASSERT_EQ(w.Create("zeta", 3), SX_OK) << w.err.message;
    ASSERT_EQ(w.Create("alpha", 8, SX_METRIC_COSINE), SX_OK);
    ASSERT_EQ(w.Create("Mid-1.x_", 2, SX_METRIC_IP, SX_INDEX_HNSW), SX_OK);
    EXPECT_EQ(w.Create("alpha", 8), SX_EXISTS);
    EXPECT_EQ(w.Create(".hidden", 8), SX_INVALID_ARGUMENT);
    EXPECT_EQ(w.Create("", 8), SX_INVALID_ARGUMENT);
    EXPECT_EQ(w.Create("has space", 8), SX_INVALID_ARGUMENT);
    EXPECT_EQ(w.Create(std::string(65, 'a').c_str(), 8), SX_INVALID_ARGUMENT);
    EXPECT_EQ(w.Create(std::string(64, 'a').c_str(), 8), SX_OK);
    EXPECT_EQ(w.Create("d0", 0), SX_INVALID_ARGUMENT);
    EXPECT_NE(std::string(w.err.message).find("dimension 0"), std::string::npos) << w.err.message;
    EXPECT_EQ(w.Create("m9", 4, (sx_metric)9), SX_INVALID_ARGUMENT);
    ASSERT_EQ(w.Commit(), SX_OK) << w.err.message;
  }
  sx_read *r;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_names *names;
  ASSERT_EQ(sx_read_list_collections(r, &names, &err), SX_OK);
  std::vector<std::string> got;
  for (size_t i = 0; i < sx_names_count(names); i++) got.push_back(sx_names_get(names, i));
  sx_names_free(names);
  std::vector<std::string> want = {"Mid-1.x_", std::string(64, 'a'), "alpha", "zeta"};
  EXPECT_EQ(got, want);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "Mid-1.x_", &c, &err), SX_OK);
  sx_collection_info info = SX_COLLECTION_INFO_INIT;
  ASSERT_EQ(sx_collection_describe(c, &info, &err), SX_OK);
  EXPECT_STREQ(info.name, "Mid-1.x_");
  EXPECT_EQ(info.dim, 2u);
  EXPECT_EQ(info.metric, SX_METRIC_IP);
  EXPECT_EQ(info.index, SX_INDEX_HNSW);
  EXPECT_EQ(info.hnsw_m, 16u);
  EXPECT_EQ(info.hnsw_ef_construction, 200u);
  EXPECT_EQ(info.count, 0u);
  sx_collection_free(c);
  EXPECT_EQ(sx_read_collection(r, "nope", &c, &err), SX_NOT_FOUND);
  EXPECT_NE(std::string(err.message).find("'nope'"), std::string::npos);
  sx_read_free(r);
  {
    W w(d.db);
    ASSERT_EQ(w.Upsert("zeta", Ids("z", 100), Gen(1, 100, 3), 3), SX_OK);
    ASSERT_EQ(sx_write_drop_collection(w.w, "zeta", &w.err), SX_OK);
    EXPECT_EQ(sx_write_drop_collection(w.w, "zeta", &w.err), SX_NOT_FOUND);
    ASSERT_EQ(w.Create("zeta", 5), SX_OK) << "a dropped name can be reused in the same session";
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  EXPECT_EQ(sx_db_check(d.db, &err), SX_OK) << err.message;
}

TEST(Collection, UpsertGetReplaceDeleteCount) {
  Db d("data");
  W w(d.db);
  ASSERT_EQ(w.Create("v", 4), SX_OK);
  std::vector<const char *> meta = {"{\"a\": 1, \"b\": [true, null]}", nullptr};
  ASSERT_EQ(w.Upsert("v", {"one", "two"}, {1, 2, 3, 4, 5, 6, 7, 8}, 4, &meta), SX_OK)
      << w.err.message;
  sx_collection *c;
  ASSERT_EQ(sx_write_collection(w.w, "v", &c, &w.err), SX_OK);
  EXPECT_EQ(Count(c), 2u);
  sx_record *rec;
  ASSERT_EQ(sx_collection_get(c, "one", &rec, &w.err), SX_OK);
  size_t dim;
  const float *v = sx_record_vector(rec, &dim);
  ASSERT_EQ(dim, 4u);
  EXPECT_EQ(std::vector<float>(v, v + 4), std::vector<float>({1, 2, 3, 4}));
  EXPECT_STREQ(sx_record_metadata(rec), "{\"a\": 1, \"b\": [true, null]}");
  EXPECT_STREQ(sx_record_id(rec), "one");
  sx_record_free(rec);
  ASSERT_EQ(sx_collection_get(c, "two", &rec, &w.err), SX_OK);
  EXPECT_EQ(sx_record_metadata(rec), nullptr);
  sx_record_free(rec);
  // Replace: new vector, metadata removed; within one batch the last wins.
  ASSERT_EQ(w.Upsert("v", {"one", "one"}, {9, 9, 9, 9, 0, 0, 0, 1}, 4), SX_OK);
  EXPECT_EQ(Count(c), 2u);
  ASSERT_EQ(sx_collection_get(c, "one", &rec, &w.err), SX_OK);
  v = sx_record_vector(rec, &dim);
  EXPECT_EQ(std::vector<float>(v, v + 4), std::vector<float>({0, 0, 0, 1}));
  EXPECT_EQ(sx_record_metadata(rec), nullptr);
  sx_record_free(rec);
  size_t n = 99;
  ASSERT_EQ(w.Delete("v", {"one", "missing", "one"}, &n), SX_OK);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(Count(c), 1u);
  EXPECT_EQ(sx_collection_get(c, "one", &rec, &w.err), SX_NOT_FOUND);
  EXPECT_EQ(rec, nullptr);
  // A deleted id comes back as a new vector.
  ASSERT_EQ(w.Upsert("v", {"one"}, {4, 3, 2, 1}, 4), SX_OK);
  EXPECT_EQ(Count(c), 2u);
  sx_collection_free(c);
  ASSERT_EQ(w.Commit(), SX_OK);
  // The view outlives its session as an object, but answers CLOSED.
  EXPECT_EQ(sx_db_check(d.db, &w.err), SX_OK) << w.err.message;
}

TEST(Collection, ValidationRejectsAndStoresNothing) {
  Db d("valid");
  W w(d.db);
  ASSERT_EQ(w.Create("c", 3, SX_METRIC_COSINE), SX_OK);
  ASSERT_EQ(w.Upsert("c", {"keep"}, {1, 1, 1}, 3), SX_OK);
  float nan = std::nanf(""), inf = INFINITY;
  EXPECT_EQ(w.Upsert("c", {"a", "b"}, {1, 2, 3, 4, nan, 6}, 3), SX_INVALID_ARGUMENT);
  EXPECT_NE(std::string(w.err.message).find("item 1"), std::string::npos) << w.err.message;
  EXPECT_EQ(w.Upsert("c", {"a", "b"}, {1, 2, 3, -inf, 5, 6}, 3), SX_INVALID_ARGUMENT);
  EXPECT_EQ(w.Upsert("c", {"a", "z"}, {1, 2, 3, 0, 0, 0}, 3), SX_INVALID_ARGUMENT)
      << "zero vector under cosine";
  EXPECT_EQ(w.Upsert("c", {"a", ""}, {1, 2, 3, 1, 1, 1}, 3), SX_INVALID_ARGUMENT);
  EXPECT_EQ(w.Upsert("c", {"a", std::string(256, 'x')}, {1, 2, 3, 1, 1, 1}, 3),
            SX_INVALID_ARGUMENT);
  EXPECT_EQ(w.Upsert("c", {std::string(255, 'x')}, {1, 2, 3}, 3), SX_OK);
  EXPECT_EQ(w.Upsert("c", {"a", "\xff\xfe"}, {1, 2, 3, 1, 1, 1}, 3), SX_INVALID_ARGUMENT);
  EXPECT_EQ(w.Upsert("c", {"a"}, {1, 2}, 2), SX_DIMENSION_MISMATCH);
  EXPECT_NE(
      std::string(w.err.message).find("dimension 2 does not match collection 'c' (dimension 3)"),
      std::string::npos)
      << w.err.message;
  std::vector<const char *> bad = {"{}", "[1, 2]"};
  EXPECT_EQ(w.Upsert("c", {"a", "b"}, {1, 2, 3, 1, 1, 1}, 3, &bad), SX_INVALID_ARGUMENT);
  bad = {"{\"x\": }", nullptr};
  EXPECT_EQ(w.Upsert("c", {"a", "b"}, {1, 2, 3, 1, 1, 1}, 3, &bad), SX_INVALID_ARGUMENT);
  EXPECT_EQ(w.Upsert("nope", {"a"}, {1, 2, 3}, 3), SX_NOT_FOUND);
  sx_collection *c;
  ASSERT_EQ(sx_write_collection(w.w, "c", &c, &w.err), SX_OK);
  EXPECT_EQ(Count(c), 2u) << "failed batches stored nothing";
  sx_record *rec;
  EXPECT_EQ(sx_collection_get(c, "a", &rec, &w.err), SX_NOT_FOUND);
  sx_results *res;
  float q[3] = {1, 0, 0}, zero[3] = {0, 0, 0}, qn[3] = {1, nan, 0};
  EXPECT_EQ(sx_collection_search(c, q, 3, 0, nullptr, &res, &w.err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_collection_search(c, q, 2, 1, nullptr, &res, &w.err), SX_DIMENSION_MISMATCH);
  EXPECT_EQ(sx_collection_search(c, zero, 3, 1, nullptr, &res, &w.err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_collection_search(c, qn, 3, 1, nullptr, &res, &w.err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_collection_get(c, "", &rec, &w.err), SX_INVALID_ARGUMENT);
  sx_collection_free(c);
}

TEST(Collection, OwnWritesSnapshotsAndAbort) {
  Db d("vis");
  {
    W w(d.db);
    ASSERT_EQ(w.Create("c", 2), SX_OK);
    ASSERT_EQ(w.Upsert("c", {"a"}, {0, 0}, 2), SX_OK);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_error err = SX_ERROR_INIT;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *rc;
  ASSERT_EQ(sx_read_collection(r, "c", &rc, &err), SX_OK);
  {
    W w(d.db);
    ASSERT_EQ(w.Upsert("c", {"b", "c"}, {1, 1, 2, 2}, 2), SX_OK);
    sx_collection *wc;
    ASSERT_EQ(sx_write_collection(w.w, "c", &wc, &w.err), SX_OK);
    EXPECT_EQ(Count(wc), 3u) << "the writer sees its own changes";
    EXPECT_EQ(Count(rc), 1u) << "the reader does not";
    sx_collection_free(wc);
    ASSERT_EQ(sx_write_abort(w.w), SX_OK);
  }
  EXPECT_EQ(Count(rc), 1u);
  {
    W w(d.db);
    ASSERT_EQ(w.Upsert("c", {"b"}, {1, 1}, 2), SX_OK);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  EXPECT_EQ(Count(rc), 1u) << "the snapshot is stable";
  sx_read *r2;
  ASSERT_EQ(sx_read_begin(d.db, &r2, &err), SX_OK);
  sx_collection *rc2;
  ASSERT_EQ(sx_read_collection(r2, "c", &rc2, &err), SX_OK);
  EXPECT_EQ(Count(rc2), 2u) << "aborted 'c' left no trace, committed 'b' is there";
  sx_collection_free(rc2);
  sx_read_free(r2);
  // Session ended: the view answers CLOSED; freeing in any order is harmless.
  sx_read_end(r);
  uint64_t n;
  EXPECT_EQ(sx_collection_count(rc, &n, &err), SX_CLOSED);
  sx_read_free(r);
  EXPECT_EQ(sx_collection_count(rc, &n, &err), SX_CLOSED);
  sx_collection_free(rc);
  d.Reopen();
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  ASSERT_EQ(sx_read_collection(r, "c", &rc, &err), SX_OK);
  EXPECT_EQ(Count(rc), 2u) << "persisted across reopen";
  sx_collection_free(rc);
  sx_read_free(r);
}

TEST(Collection, SeveralCollectionsCommitAtomically) {
  Db d("atomic");
  W w(d.db);
  ASSERT_EQ(w.Create("a", 2), SX_OK);
  ASSERT_EQ(w.Create("b", 3), SX_OK);
  ASSERT_EQ(w.Upsert("a", {"x"}, {1, 2}, 2), SX_OK);
  ASSERT_EQ(w.Upsert("b", {"y"}, {1, 2, 3}, 3), SX_OK);
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &w.err), SX_OK);
  sx_names *names;
  ASSERT_EQ(sx_read_list_collections(r, &names, &w.err), SX_OK);
  EXPECT_EQ(sx_names_count(names), 0u);
  sx_names_free(names);
  sx_read_free(r);
  ASSERT_EQ(w.Commit(), SX_OK);
  ASSERT_EQ(sx_read_begin(d.db, &r, &w.err), SX_OK);
  ASSERT_EQ(sx_read_list_collections(r, &names, &w.err), SX_OK);
  EXPECT_EQ(sx_names_count(names), 2u);
  sx_names_free(names);
  sx_read_free(r);
}

// Brute-force reference: (distance, id) sorted, distances from the scalar oracle.
std::vector<std::pair<double, std::string>> Brute(const std::vector<float> &data,
                                                  const std::vector<std::string> &ids,
                                                  const std::vector<bool> &live, const float *q,
                                                  size_t dim, int metric) {
  std::vector<std::pair<double, std::string>> r;
  for (size_t i = 0; i < ids.size(); i++)
    if (live[i]) r.push_back({sx__distance_ref(metric, q, &data[i * dim], dim), ids[i]});
  std::sort(r.begin(), r.end());
  return r;
}

// Top 10 of each of nq queries in c, single and batched, against brute force over
// data (ids are a one-letter prefix and the item's index): the same ids in the same
// order, each distance bit for bit the kernel's on the whole vector, and the batch
// equal to the single queries.
void ExpectFlatTop10(sx_collection *c, const std::vector<float> &queries, size_t nq,
                     const std::vector<float> &data, const std::vector<std::string> &ids,
                     const std::vector<bool> &live, size_t dim, const std::string &where) {
  sx_error err = SX_ERROR_INIT;
  sx_results *batch;
  ASSERT_EQ(sx_collection_search_batch(c, queries.data(), nq, dim, 10, nullptr, &batch, &err),
            SX_OK)
      << where << ": " << err.message;
  for (size_t qi = 0; qi < nq; qi++) {
    const float *q = &queries[qi * dim];
    auto want = Brute(data, ids, live, q, dim, SX_METRIC_L2);
    sx_results *one;
    ASSERT_EQ(sx_collection_search(c, q, dim, 10, nullptr, &one, &err), SX_OK) << err.message;
    ASSERT_EQ(sx_results_count(one, 0), 10u);
    for (size_t i = 0; i < 10; i++) {
      std::string id = sx_results_id(one, 0, i);
      size_t at = (size_t)std::stoul(id.substr(1));
      EXPECT_EQ(sx_results_distance(one, 0, i), sx__distance(SX__L2, q, 0, &data[at * dim], dim))
          << where << ": distance of " << id << " is not the kernel's on the whole vector";
      EXPECT_EQ(id, want[i].second) << where << " query " << qi << " rank " << i;
      EXPECT_STREQ(sx_results_id(batch, qi, i), id.c_str()) << where << ": batch differs";
      EXPECT_EQ(sx_results_distance(batch, qi, i), sx_results_distance(one, 0, i)) << where;
    }
    sx_results_free(one);
  }
  sx_results_free(batch);
}

class FlatProperty : public ::testing::TestWithParam<std::tuple<int, size_t>> {};

TEST_P(FlatProperty, EqualsBruteForce) {
  int metric = std::get<0>(GetParam());
  size_t dim = std::get<1>(GetParam());
  Db d("prop");
  const size_t n = 1500;
  auto data = Gen(42 + dim, n, dim);
  // Duplicates to exercise ties: every 50th vector equals vector 0.
  for (size_t i = 50; i < n; i += 50) std::copy(&data[0], &data[dim], &data[i * dim]);
  auto ids = Ids("id", n);
  std::vector<bool> live(n, true);
  {
    W w(d.db);
    ASSERT_EQ(w.Create("p", (uint32_t)dim, (sx_metric)metric), SX_OK);
    ASSERT_EQ(w.Upsert("p", ids, data, dim), SX_OK) << w.err.message;
    std::vector<std::string> del;
    for (size_t i = 3; i < n; i += 7) {
      del.push_back(ids[i]);
      live[i] = false;
    }
    size_t nd;
    ASSERT_EQ(w.Delete("p", del, &nd), SX_OK);
    EXPECT_EQ(nd, del.size());
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_error err = SX_ERROR_INIT;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "p", &c, &err), SX_OK);
  auto queries = Gen(7, 12, dim);
  std::copy(&data[0], &data[dim], &queries[0]);  // a query with many exact ties
  for (size_t k : {1, 2, 10, 64, 500, 5000}) {
    sx_results *res;
    ASSERT_EQ(sx_collection_search_batch(c, queries.data(), 12, dim, k, nullptr, &res, &err), SX_OK)
        << err.message;
    for (size_t qi = 0; qi < 12; qi++) {
      auto want = Brute(data, ids, live, &queries[qi * dim], dim, metric);
      size_t kk = std::min(k, want.size());
      ASSERT_EQ(sx_results_count(res, qi), kk);
      // Single-query search agrees with the batch.
      sx_results *one;
      ASSERT_EQ(sx_collection_search(c, &queries[qi * dim], dim, k, nullptr, &one, &err), SX_OK);
      for (size_t i = 0; i < kk; i++) {
        double tol = 1e-4 + 1e-4 * std::fabs(want[i].first);
        EXPECT_NEAR(sx_results_distance(res, qi, i), want[i].first, tol * 10)
            << "k=" << k << " i=" << i;
        EXPECT_STREQ(sx_results_id(one, 0, i), sx_results_id(res, qi, i));
        // Ids must match wherever the reference distance is not within rounding of a
        // neighbour's (float kernels may order near-ties differently).
        bool near_tie = (i > 0 && want[i].first - want[i - 1].first < tol) ||
                        (i + 1 < want.size() && want[i + 1].first - want[i].first < tol);
        if (!near_tie) {
          EXPECT_EQ(sx_results_id(res, qi, i), want[i].second) << "k=" << k << " i=" << i;
        }
      }
      sx_results_free(one);
    }
    sx_results_free(res);
  }
  // Exact ties under l2: query 0 equals vectors 0, 50, 100, ... (distance 0 exactly);
  // they come first, by id in byte order.
  sx_results *res;
  ASSERT_EQ(sx_collection_search(c, &data[0], dim, 5, nullptr, &res, &err), SX_OK);
  if (metric != SX_METRIC_L2) {
    sx_results_free(res);
    res = nullptr;
  }
  std::vector<std::string> tied;
  for (size_t i = 0; i < n; i += 50)
    if (live[i]) tied.push_back(ids[i]);
  std::sort(tied.begin(), tied.end());
  for (size_t i = 0; res && i < 5; i++) EXPECT_EQ(sx_results_id(res, 0, i), tied[i]);
  sx_results_free(res);
  sx_collection_free(c);
  sx_read_free(r);
  EXPECT_EQ(sx_db_check(d.db, &err), SX_OK) << err.message;
}

INSTANTIATE_TEST_SUITE_P(AllMetrics, FlatProperty,
                         ::testing::Combine(::testing::Values(SX_METRIC_L2, SX_METRIC_IP,
                                                              SX_METRIC_COSINE),
                                            ::testing::Values(1, 3, 16, 100, 1500)));

TEST(Collection, ManyThreadsSearchOneReadSession) {
  Db d("mt");
  const size_t n = 3000, dim = 32;
  auto data = Gen(5, n, dim);
  {
    W w(d.db);
    ASSERT_EQ(w.Create("m", dim), SX_OK);
    ASSERT_EQ(w.Upsert("m", Ids("v", n), data, dim), SX_OK);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_error err = SX_ERROR_INIT;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "m", &c, &err), SX_OK);
  auto qs = Gen(9, 20, dim);
  std::vector<std::string> expect;
  for (size_t q = 0; q < 20; q++) {
    sx_results *res;
    ASSERT_EQ(sx_collection_search(c, &qs[q * dim], dim, 10, nullptr, &res, &err), SX_OK);
    for (size_t i = 0; i < 10; i++) expect.push_back(sx_results_id(res, 0, i));
    sx_results_free(res);
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&] {
      for (int rep = 0; rep < 5; rep++)
        for (size_t q = 0; q < 20; q++) {
          sx_results *res;
          sx_error e = SX_ERROR_INIT;
          if (sx_collection_search(c, &qs[q * dim], dim, 10, nullptr, &res, &e)) {
            bad++;
            continue;
          }
          for (size_t i = 0; i < 10; i++)
            if (expect[q * 10 + i] != sx_results_id(res, 0, i)) bad++;
          sx_results_free(res);
        }
    });
  // Meanwhile a writer changes the collection; the snapshot must not notice.
  {
    W w(d.db);
    ASSERT_EQ(w.Upsert("m", Ids("v", 500), Gen(77, 500, dim), dim), SX_OK);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  for (auto &t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  sx_collection_free(c);
  sx_read_free(r);
}

// A read view resolves the leaf pages of its vectors once, at its first full scan,
// and its later scans read them from that array: threads racing to a fresh view's
// first scans (single queries and batches) all get brute force's answer; after a
// writer replaces every vector and checkpoints, the old view still answers from its
// snapshot, and a new view from the new data.
TEST(Collection, ReadViewResolvesItsLeavesOnceAndKeepsItsSnapshot) {
  Db d("leaves");
  const size_t n = 3000, dim = 40, nq = 12;
  auto a = Gen(41, n, dim), b = Gen(42, n, dim), qs = Gen(43, nq, dim);
  auto ids = Ids("v", n);
  std::vector<bool> live(n, true);
  {
    W w(d.db);
    ASSERT_EQ(w.Create("m", dim), SX_OK);
    ASSERT_EQ(w.Upsert("m", ids, a, dim), SX_OK);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_error err = SX_ERROR_INIT;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "m", &c, &err), SX_OK);
  // The top 10 of every query, by brute force over the data given.
  auto want = [&](const std::vector<float> &data) {
    std::vector<std::string> top;
    for (size_t q = 0; q < nq; q++) {
      auto all = Brute(data, ids, live, &qs[q * dim], dim, SX_METRIC_L2);
      for (size_t i = 0; i < 10; i++) top.push_back(all[i].second);
    }
    return top;
  };
  const std::vector<std::string> top_a = want(a), top_b = want(b);
  // Single queries (odd threads) and batches (even ones) against the view c.
  auto misses = [&](sx_collection *v, const std::vector<std::string> &top, int t) {
    int bad = 0;
    sx_error e = SX_ERROR_INIT;
    sx_results *res = nullptr;
    if (t % 2 == 0) {
      if (sx_collection_search_batch(v, qs.data(), nq, dim, 10, nullptr, &res, &e)) return 1000;
      for (size_t q = 0; q < nq; q++)
        for (size_t i = 0; i < 10; i++) bad += top[q * 10 + i] != sx_results_id(res, q, i);
      sx_results_free(res);
      return bad;
    }
    for (size_t q = 0; q < nq; q++) {
      if (sx_collection_search(v, &qs[q * dim], dim, 10, nullptr, &res, &e)) return 1000;
      for (size_t i = 0; i < 10; i++) bad += top[q * 10 + i] != sx_results_id(res, 0, i);
      sx_results_free(res);
    }
    return bad;
  };
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) ts.emplace_back([&, t] { bad += misses(c, top_a, t); });
  for (auto &t : ts) t.join();
  EXPECT_EQ(bad.load(), 0) << "the first scans of a fresh view";
  {
    W w(d.db);
    ASSERT_EQ(w.Upsert("m", ids, b, dim), SX_OK);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  ASSERT_EQ(sx_db_checkpoint(d.db, 1000, &err), SX_OK) << err.message;
  for (int t = 0; t < 2; t++) EXPECT_EQ(misses(c, top_a, t), 0) << "the old view, " << t;
  // Both kinds of search through a new read view of the database.
  auto fresh = [&](const std::vector<std::string> &top, const char *what) {
    sx_read *nr;
    sx_collection *nc;
    ASSERT_EQ(sx_read_begin(d.db, &nr, &err), SX_OK);
    ASSERT_EQ(sx_read_collection(nr, "m", &nc, &err), SX_OK);
    for (int t = 0; t < 2; t++) EXPECT_EQ(misses(nc, top, t), 0) << what << ", " << t;
    sx_collection_free(nc);
    sx_read_free(nr);
  };
  fresh(top_b, "a new view");
  sx_collection_free(c);
  sx_read_free(r);
  // With the old view gone, the checkpoint copies everything; the data is b's.
  ASSERT_EQ(sx_db_checkpoint(d.db, 1000, &err), SX_OK) << err.message;
  fresh(top_b, "after the checkpoint");
}

TEST(Collection, LargeDimensionsStraddlePagesAndSurviveReopen) {
  Db d("dims");
  for (uint32_t dim : {1u, 33u, 768u, 1000u, 4096u}) {
    std::string name = "d" + std::to_string(dim);
    auto data = Gen(dim, 40, dim);
    {
      W w(d.db);
      ASSERT_EQ(w.Create(name.c_str(), dim), SX_OK);
      ASSERT_EQ(w.Upsert(name.c_str(), Ids("x", 40), data, dim), SX_OK);
      ASSERT_EQ(w.Commit(), SX_OK);
    }
    d.Reopen();
    sx_error err = SX_ERROR_INIT;
    sx_read *r;
    ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
    sx_collection *c;
    ASSERT_EQ(sx_read_collection(r, name.c_str(), &c, &err), SX_OK);
    for (size_t i = 0; i < 40; i++) {
      sx_record *rec;
      ASSERT_EQ(sx_collection_get(c, ("x" + std::to_string(i)).c_str(), &rec, &err), SX_OK);
      size_t got;
      const float *v = sx_record_vector(rec, &got);
      ASSERT_EQ(got, dim);
      EXPECT_EQ(0, memcmp(v, &data[i * dim], dim * 4)) << "dim " << dim << " item " << i;
      sx_record_free(rec);
      sx_results *res;
      ASSERT_EQ(sx_collection_search(c, &data[i * dim], dim, 1, nullptr, &res, &err), SX_OK);
      EXPECT_STREQ(sx_results_id(res, 0, 0), ("x" + std::to_string(i)).c_str());
      EXPECT_NEAR(sx_results_distance(res, 0, 0), 0.0, 1e-3);
      sx_results_free(res);
    }
    sx_collection_free(c);
    sx_read_free(r);
  }
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_check(d.db, &err), SX_OK) << err.message;
}

// A batch over clustered data: 20 clusters far apart, stored one after another, and
// 12 queries each near one cluster's centre. Most tiles of 16 vectors lie in other
// clusters, and the AVX2 packed kernel drops them after a prefix of the dimensions
// (sx__distance_qbatch_within); the top 10 of every query stay those of brute force
// and of the single-query scan, with the same distances, from a write session's view
// and a reader's, with deletes.
TEST(Collection, FlatBatchOverClustersEqualsBruteForce) {
  const size_t dim = 300, per = 150, nc = 20, n = per * nc;
  Db d("clusters");
  auto centres = Gen(31, nc, dim);
  auto noise = Gen(32, n, dim);
  std::vector<float> data(n * dim);
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < dim; k++)
      data[i * dim + k] = 40.0f * centres[(i / per) * dim + k] + noise[i * dim + k];
  auto qn = Gen(33, 12, dim);
  std::vector<float> queries(12 * dim);
  for (size_t q = 0; q < 12; q++)
    for (size_t k = 0; k < dim; k++)
      queries[q * dim + k] = 40.0f * centres[(q * 7 % nc) * dim + k] + qn[q * dim + k];
  auto ids = Ids("c", n);
  std::vector<bool> live(n, true);
  {
    W w(d.db);
    ASSERT_EQ(w.Create("v", dim), SX_OK);
    ASSERT_EQ(w.Upsert("v", ids, data, dim), SX_OK) << w.err.message;
    std::vector<std::string> del;
    for (size_t i = 5; i < n; i += 11) {
      del.push_back(ids[i]);
      live[i] = false;
    }
    size_t nd;
    ASSERT_EQ(w.Delete("v", del, &nd), SX_OK);
    sx_collection *c;
    ASSERT_EQ(sx_write_collection(w.w, "v", &c, &w.err), SX_OK);
    ExpectFlatTop10(c, queries, 12, data, ids, live, dim, "write session");
    sx_collection_free(c);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_error err = SX_ERROR_INIT;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "v", &c, &err), SX_OK);
  ExpectFlatTop10(c, queries, 12, data, ids, live, dim, "reader");
  sx_collection_free(c);
  sx_read_free(r);
}

// The flat scan reads vectors in place: one that straddles two pages lying apart in
// memory (frames of the WAL, pages of P allocated between commits of other
// collections) is read in its two parts, one whose pages are adjacent as one run, and
// one spanning three pages or more is copied. Whichever, in a write session, from the
// WAL or from P after a checkpoint, single queries rank as the scalar reference does,
// with each distance bit for bit the kernel's on the whole vector, and the batch
// agrees.
TEST(Collection, FlatScanOfVectorsInPartsEqualsBruteForce) {
  for (uint32_t dim : {100u, 784u, 1500u, 2500u}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    Db d("parts");
    const size_t n = 600, per = 37;
    auto data = Gen(900 + dim, n, dim);
    auto ids = Ids("p", n);
    std::vector<bool> live(n, true);
    auto other = Gen(1, per, 64);
    {
      W w(d.db);
      ASSERT_EQ(w.Create("v", dim), SX_OK);
      ASSERT_EQ(w.Create("o", 64), SX_OK);
      ASSERT_EQ(w.Commit(), SX_OK);
    }
    for (size_t i = 0; i < n; i += per) {
      // Another collection's pages between this one's leaves.
      W w(d.db);
      size_t m = std::min(per, n - i);
      ASSERT_EQ(w.Upsert("o", Ids(("o" + std::to_string(i) + "_").c_str(), per), other, 64), SX_OK);
      std::vector<std::string> part(ids.begin() + (ptrdiff_t)i, ids.begin() + (ptrdiff_t)(i + m));
      std::vector<float> pv(data.begin() + (ptrdiff_t)(i * dim),
                            data.begin() + (ptrdiff_t)((i + m) * dim));
      ASSERT_EQ(w.Upsert("v", part, pv, dim), SX_OK) << w.err.message;
      ASSERT_EQ(w.Commit(), SX_OK);
    }
    auto queries = Gen(5, 6, dim);
    auto check = [&](sx_collection *c, const char *where) {
      ExpectFlatTop10(c, queries, 6, data, ids, live, dim, where);
    };
    {
      W w(d.db);  // a write session's view (copies)
      sx_collection *c;
      ASSERT_EQ(sx_write_collection(w.w, "v", &c, &w.err), SX_OK);
      check(c, "write session");
      sx_collection_free(c);
    }
    for (const char *where : {"WAL", "database file"}) {
      sx_error err = SX_ERROR_INIT;
      if (std::string(where) == "database file") {
        ASSERT_EQ(sx_db_checkpoint(d.db, 1000, &err), SX_OK);
      }
      sx_read *r;
      ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
      sx_collection *c;
      ASSERT_EQ(sx_read_collection(r, "v", &c, &err), SX_OK);
      check(c, where);
      sx_collection_free(c);
      sx_read_free(r);
    }
  }
}

// A bulk-loaded flat collection spans more than one checksum group (1,024 pages of
// 4 KiB, each followed by its checksum page); a later commit's WAL frames supersede
// some of its pages, which readers that see that commit read from the WAL and a
// reader that began before it from P; and every page the scan reads is verified, so a
// flipped byte deep inside the vectors is SX_CORRUPT, never a wrong answer. Single
// queries and batches agree with brute force throughout.
TEST(Collection, FlatScanAcrossChecksumGroupsAndWalFramesMatchesBruteForce) {
  const size_t dim = 128, n = 12000;  // 6 MB of vectors: about 1,500 leaf pages
  Db d("runs");
  auto data = Gen(77, n, dim);
  auto ids = Ids("r", n);
  std::vector<bool> live(n, true);
  {
    W w(d.db);
    ASSERT_EQ(w.Create("v", (uint32_t)dim), SX_OK);
    ASSERT_EQ(w.Upsert("v", ids, data, dim), SX_OK) << w.err.message;
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_checkpoint(d.db, 1000, &err), SX_OK) << err.message;
  auto queries = Gen(3, 4, dim);
  auto check = [&](sx_collection *c, const std::vector<float> &vecs, const char *where) {
    ExpectFlatTop10(c, queries, 4, vecs, ids, live, dim, where);
  };
  sx_read *old_r;
  ASSERT_EQ(sx_read_begin(d.db, &old_r, &err), SX_OK);
  sx_collection *old_c;
  ASSERT_EQ(sx_read_collection(old_r, "v", &old_c, &err), SX_OK);
  check(old_c, data, "after the bulk load");
  // Rewrite a vector in every 500th slot with each query (the new vectors rank first
  // for their query): their pages now come from the WAL in the middle of runs.
  auto newer = data;
  {
    W w(d.db);
    for (size_t i = 250; i < n; i += 500) {
      const float *q = &queries[(i / 500 % 4) * dim];
      std::copy(q, q + dim, &newer[i * dim]);
      ASSERT_EQ(w.Upsert("v", {ids[i]}, std::vector<float>(q, q + dim), dim), SX_OK);
    }
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  check(old_c, data, "a reader from before the commit");
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "v", &c, &err), SX_OK);
  check(c, newer, "a reader of WAL frames amid P's pages");
  sx_collection_free(c);
  sx_read_free(r);
  sx_collection_free(old_c);
  sx_read_free(old_r);
  ASSERT_EQ(sx_db_checkpoint(d.db, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  ASSERT_EQ(sx_read_collection(r, "v", &c, &err), SX_OK);
  check(c, newer, "after the second checkpoint");
  sx_collection_free(c);
  sx_read_free(r);
  // A flipped byte inside vector 7777: the scan reports it.
  sx_db_free(d.db);
  d.db = nullptr;
  std::string bytes = sxt::ReadFile(d.path);
  size_t at = bytes.find(std::string((const char *)&newer[7777 * dim], dim * sizeof(float)));
  ASSERT_NE(at, std::string::npos);
  FILE *f = fopen(d.path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  fseek(f, (long)(at + 17), SEEK_SET);
  fputc(bytes[at + 17] ^ 0x40, f);
  fclose(f);
  d.Open();
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  ASSERT_EQ(sx_read_collection(r, "v", &c, &err), SX_OK);
  sx_results *res = nullptr;
  EXPECT_EQ(sx_collection_search(c, queries.data(), dim, 10, nullptr, &res, &err), SX_CORRUPT);
  EXPECT_NE(std::string(err.message).find("checksum"), std::string::npos) << err.message;
  sx_results_free(res);
  res = nullptr;
  EXPECT_EQ(sx_collection_search_batch(c, queries.data(), 4, dim, 10, nullptr, &res, &err),
            SX_CORRUPT);
  sx_results_free(res);
  sx_collection_free(c);
  sx_read_free(r);
}

TEST(Collection, GrowsIdMapAndReusesSlots) {
  Db d("grow");
  const size_t dim = 4;
  {
    W w(d.db);
    ASSERT_EQ(w.Create("g", dim), SX_OK);
    ASSERT_EQ(w.Upsert("g", Ids("k", 5000), Gen(3, 5000, dim), dim), SX_OK);  // several rehashes
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_db_stats before = SX_DB_STATS_INIT;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_stats_get(d.db, &before, &err), SX_OK);
  for (int round = 0; round < 3; round++) {
    W w(d.db);
    size_t n;
    ASSERT_EQ(w.Delete("g", Ids("k", 2500), &n), SX_OK);
    EXPECT_EQ(n, 2500u);
    ASSERT_EQ(w.Upsert("g", Ids("k", 2500), Gen(round, 2500, dim), dim), SX_OK);
    ASSERT_EQ(w.Commit(), SX_OK);
  }
  sx_db_stats after = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(d.db, &after, &err), SX_OK);
  // Slots are reused: the vectors array does not grow (only the heap of ids does).
  EXPECT_LT(after.page_count, before.page_count + before.page_count / 2);
  EXPECT_EQ(sx_db_check(d.db, &err), SX_OK) << err.message;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "g", &c, &err), SX_OK);
  EXPECT_EQ(Count(c), 5000u);
  for (size_t i = 0; i < 5000; i += 97) {
    sx_record *rec;
    EXPECT_EQ(sx_collection_get(c, ("k" + std::to_string(i)).c_str(), &rec, &err), SX_OK);
    sx_record_free(rec);
  }
  sx_collection_free(c);
  sx_read_free(r);
}

TEST(Collection, StorageOverheadIsSmall) {
  // Vectors take at most 5% more than raw float32 bytes, dims 32 to 4096.
  for (uint32_t dim : {32u, 100u, 128u, 384u, 768u, 1536u, 4096u}) {
    Db d("ovh");
    size_t n = (size_t)(24u << 20) / (dim * 4);  // ~24 MB of vectors
    {
      W w(d.db);
      ASSERT_EQ(w.Create("o", dim), SX_OK);
      ASSERT_EQ(w.Commit(), SX_OK);
    }
    sx_db_stats s0 = SX_DB_STATS_INIT;
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_stats_get(d.db, &s0, &err), SX_OK);
    auto data = Gen(dim, n, dim);
    auto ids = Ids("", n);
    {
      W w(d.db);
      ASSERT_EQ(w.Upsert("o", ids, data, dim), SX_OK);
      ASSERT_EQ(w.Commit(), SX_OK);
    }
    sx_db_stats s1 = SX_DB_STATS_INIT;
    ASSERT_EQ(sx_db_stats_get(d.db, &s1, &err), SX_OK);
    double raw = (double)n * dim * 4;
    // Pages beyond the vectors: slot records (32 B), ids, id map (8 B/entry at <= 50%
    // load), live bits. Count only the vector share by subtracting those exactly.
    double other = (double)n * (32 + 16 + 1.0 / 8) + 0.0;
    for (auto &s : ids) other += s.size();
    double vec_bytes = (double)(s1.page_count - s0.page_count) * s1.page_size - other;
    EXPECT_LT(vec_bytes / raw, 1.05 + 4096.0 * 8 / raw) << "dim " << dim;
    RecordProperty("overhead_dim_" + std::to_string(dim), std::to_string(vec_bytes / raw));
  }
}

}  // namespace

// Slot figures: a flat collection frees a slot on delete; an HNSW one keeps it dead
// (a waypoint of the graph) until dead slots are 1/32 of all, then frees them all;
// replacing an HNSW vector moves it to a fresh slot. NULL output and ended sessions
// are errors.
TEST(Collection, SlotStatsOfFlatAndHnswCollections) {
  Db d("slotstats");
  const size_t dim = 4, n = 3200;
  W w(d.db);
  ASSERT_EQ(w.Create("f", dim), SX_OK);
  ASSERT_EQ(w.Create("h", dim, SX_METRIC_L2, SX_INDEX_HNSW), SX_OK);
  auto stats = [&](const char *name) {
    sx_collection *c = nullptr;
    sx_collection_stats st = SX_COLLECTION_STATS_INIT;
    EXPECT_EQ(sx_write_collection(w.w, name, &c, &w.err), SX_OK);
    EXPECT_EQ(sx_collection_stats_get(c, &st, &w.err), SX_OK) << w.err.message;
    EXPECT_EQ(sx_collection_stats_get(c, nullptr, &w.err), SX_INVALID_ARGUMENT);
    sx_collection_free(c);
    return std::vector<uint64_t>{st.count, st.slots, st.dead, st.free};
  };
  size_t gone = 0;
  for (const char *name : {"f", "h"}) {
    ASSERT_EQ(w.Upsert(name, Ids("k", n), Gen(9, n, dim), dim), SX_OK) << w.err.message;
    ASSERT_EQ(w.Delete(name, Ids("k", 50), &gone), SX_OK);
    ASSERT_EQ(gone, 50u);
  }
  EXPECT_EQ(stats("f"), (std::vector<uint64_t>{n - 50, n, 0, 50}));
  EXPECT_EQ(stats("h"), (std::vector<uint64_t>{n - 50, n, 50, 0}));
  // 40 replacements: 40 fresh slots, 90 dead of 3240 (below 1/32).
  auto all = Ids("k", n);
  std::vector<std::string> last40(all.end() - 40, all.end());
  ASSERT_EQ(w.Upsert("h", last40, Gen(10, 40, dim), dim), SX_OK) << w.err.message;
  EXPECT_EQ(stats("h"), (std::vector<uint64_t>{n - 50, n + 40, 90, 0}));
  // 12 more deletes: 102 * 32 >= 3240, all unlinked and freed; then reused.
  std::vector<std::string> more(all.begin() + 50, all.begin() + 62);
  ASSERT_EQ(w.Delete("h", more, &gone), SX_OK);
  EXPECT_EQ(stats("h"), (std::vector<uint64_t>{n - 62, n + 40, 0, 102}));
  ASSERT_EQ(w.Upsert("h", Ids("new", 100), Gen(11, 100, dim), dim), SX_OK) << w.err.message;
  EXPECT_EQ(stats("h"), (std::vector<uint64_t>{n + 38, n + 40, 0, 2}));
  ASSERT_EQ(w.Commit(), SX_OK);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_check(d.db, &err), SX_OK) << err.message;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_read_collection(r, "h", &c, &err), SX_OK);
  sx_collection_stats st = SX_COLLECTION_STATS_INIT;
  ASSERT_EQ(sx_collection_stats_get(c, &st, &err), SX_OK);
  EXPECT_EQ(st.free, 2u) << "committed as seen in the session";
  sx_read_end(r);
  EXPECT_EQ(sx_collection_stats_get(c, &st, &err), SX_CLOSED);
  sx_collection_free(c);
  sx_read_free(r);
}
