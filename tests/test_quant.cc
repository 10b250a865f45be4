// Quantized HNSW collections (SX_QUANTIZATION_INT8, hnsw_quant.c) through the public
// API: the option (checked at create, flat refused, too large a dimension refused,
// version 1 options and info structs still served), describe and persistence across
// reopen; recall at ef 64 against exact search, beside an unquantized collection of
// the same data (same graph); returned distances equal to the exact float32 ones
// (the rerank); codes kept consistent by upserts, replacements, deletes, slot reuse
// and compaction (sx_db_check encodes every vector again and compares); filtered
// searches. Damaged code pages and a bad quantization field are in test_corrupt.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "index/kernels.h"
#include "sextant.h"
#include "testutil.hh"

namespace {

using sxt::Gen;
using sxt::Ids;
using sxt::RefDist;
using sxt::TmpDir;

struct Db {
  TmpDir t{"quant"};
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  Db() {
    Open();
  }
  void Open() {
    EXPECT_EQ(sx_db_open(&db, t.db.c_str(), nullptr, &err), SX_OK) << err.message;
  }
  void Reopen() {
    sx_db_free(db);
    Open();
  }
  ~Db() {
    sx_db_free(db);
  }
  // Runs f in a write session and commits; returns f's status (or the commit's).
  template <class F>
  int Write(F f) {
    sx_write *w = nullptr;
    EXPECT_EQ(sx_write_begin(db, 5000, &w, &err), SX_OK) << err.message;
    int rc = f(w);
    if (rc == SX_OK) rc = sx_write_commit(w, &err);
    sx_write_free(w);
    return rc;
  }
  int Create(const char *name, uint32_t dim, int quant, int metric = SX_METRIC_L2,
             int index = SX_INDEX_HNSW) {
    return Write([&](sx_write *w) {
      sx_collection_options o = SX_COLLECTION_OPTIONS_INIT;
      o.dim = dim;
      o.metric = (sx_metric)metric;
      o.index = (sx_index_type)index;
      o.quantization = (sx_quantization)quant;
      return sx_write_create_collection(w, name, &o, &err);
    });
  }
  int Upsert(const char *name, const std::vector<std::string> &ids, const float *v, size_t dim,
             const std::vector<std::string> *meta = nullptr) {
    return Write([&](sx_write *w) {
      std::vector<const char *> p, m;
      for (auto &s : ids) p.push_back(s.c_str());
      if (meta)
        for (auto &s : *meta) m.push_back(s.c_str());
      return sx_write_upsert(w, name, ids.size(), p.data(), v, dim, meta ? m.data() : nullptr,
                             &err);
    });
  }
  int Delete(const char *name, const std::vector<std::string> &ids) {
    return Write([&](sx_write *w) {
      std::vector<const char *> p;
      for (auto &s : ids) p.push_back(s.c_str());
      size_t n = 0;
      return sx_write_delete(w, name, ids.size(), p.data(), &n, &err);
    });
  }
  void Check() {
    EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  }
  sx_collection_info Describe(const char *name) {
    sx_collection_info info = SX_COLLECTION_INFO_INIT;
    sx_read *r = nullptr;
    sx_collection *c = nullptr;
    EXPECT_EQ(sx_read_begin(db, &r, &err), SX_OK) << err.message;
    EXPECT_EQ(sx_read_collection(r, name, &c, &err), SX_OK) << err.message;
    EXPECT_EQ(sx_collection_describe(c, &info, &err), SX_OK) << err.message;
    sx_collection_free(c);
    sx_read_free(r);
    return info;
  }
  struct Hit {
    std::string id;
    float d;
  };
  // One search per query (k hits each), with an optional filter.
  std::vector<std::vector<Hit>> Search(const char *name, const std::vector<float> &qs, size_t dim,
                                       size_t k, uint32_t ef, const char *filter = nullptr,
                                       uint32_t exact = 0) {
    sx_read *r = nullptr;
    sx_collection *c = nullptr;
    EXPECT_EQ(sx_read_begin(db, &r, &err), SX_OK) << err.message;
    EXPECT_EQ(sx_read_collection(r, name, &c, &err), SX_OK) << err.message;
    std::vector<std::vector<Hit>> out;
    for (size_t q = 0; q < qs.size() / dim; q++) {
      sx_search_options o = SX_SEARCH_OPTIONS_INIT;
      o.ef = ef;
      o.filter = filter;
      o.exact = exact;
      sx_results *res = nullptr;
      EXPECT_EQ(sx_collection_search(c, &qs[q * dim], dim, k, &o, &res, &err), SX_OK)
          << err.message;
      std::vector<Hit> h;
      for (size_t i = 0; res && i < sx_results_count(res, 0); i++)
        h.push_back({sx_results_id(res, 0, i), sx_results_distance(res, 0, i)});
      sx_results_free(res);
      out.push_back(h);
    }
    sx_collection_free(c);
    sx_read_free(r);
    return out;
  }
  // The queries as one exact batch (sx_collection_search_batch).
  std::vector<std::vector<Hit>> SearchBatch(const char *name, const std::vector<float> &qs,
                                            size_t dim, size_t k) {
    sx_read *r = nullptr;
    sx_collection *c = nullptr;
    EXPECT_EQ(sx_read_begin(db, &r, &err), SX_OK) << err.message;
    EXPECT_EQ(sx_read_collection(r, name, &c, &err), SX_OK) << err.message;
    sx_search_options o = SX_SEARCH_OPTIONS_INIT;
    o.exact = 1;
    sx_results *res = nullptr;
    size_t nq = qs.size() / dim;
    EXPECT_EQ(sx_collection_search_batch(c, qs.data(), nq, dim, k, &o, &res, &err), SX_OK)
        << err.message;
    std::vector<std::vector<Hit>> out(nq);
    for (size_t q = 0; res && q < nq; q++)
      for (size_t i = 0; i < sx_results_count(res, q); i++)
        out[q].push_back({sx_results_id(res, q, i), sx_results_distance(res, q, i)});
    sx_results_free(res);
    sx_collection_free(c);
    sx_read_free(r);
    return out;
  }
};

// Rows of data by id ("v<i>" is row i), and which are live.
struct Truth {
  size_t dim;
  int metric;
  std::vector<float> v;
  std::vector<bool> live;
  const float *Row(const std::string &id) const {
    return &v[std::stoul(id.substr(1)) * dim];
  }
  std::set<std::string> Exact(const float *q, size_t k) const {
    std::vector<std::pair<double, size_t>> all;
    for (size_t i = 0; i < live.size(); i++)
      if (live[i]) all.push_back({RefDist(metric, q, &v[i * dim], dim), i});
    std::sort(all.begin(), all.end());
    std::set<std::string> s;
    for (size_t i = 0; i < k && i < all.size(); i++) s.insert("v" + std::to_string(all[i].second));
    return s;
  }
};

// Mean recall@k; and every hit is live, its distance the exact one (relative 1e-5),
// in ascending order.
double RecallAndExact(const Truth &t, const std::vector<float> &qs,
                      const std::vector<std::vector<Db::Hit>> &got, size_t k) {
  size_t found = 0, want = 0;
  for (size_t q = 0; q < got.size(); q++) {
    const float *qv = &qs[q * t.dim];
    auto ex = t.Exact(qv, k);
    want += ex.size();
    for (size_t i = 0; i < got[q].size(); i++) {
      const auto &h = got[q][i];
      found += ex.count(h.id);
      size_t row = std::stoul(h.id.substr(1));
      EXPECT_TRUE(t.live[row]) << h.id << " is not live";
      double ref = RefDist(t.metric, qv, t.Row(h.id), t.dim);
      EXPECT_NEAR(h.d, ref, 1e-5 * std::max(1.0, std::fabs(ref))) << "query " << q << " " << h.id;
      if (i) {
        EXPECT_LE(got[q][i - 1].d, h.d);
      }
    }
  }
  return want ? (double)found / (double)want : 1.0;
}

TEST(Quant, Options) {
  Db d;
  EXPECT_STREQ(sx_quantization_name(SX_QUANTIZATION_NONE), "none");
  EXPECT_STREQ(sx_quantization_name(SX_QUANTIZATION_INT8), "int8");
  EXPECT_EQ(sx_quantization_name(2), nullptr);
  sx_quantization q = SX_QUANTIZATION_NONE;
  EXPECT_EQ(sx_quantization_parse("int8", &q, &d.err), SX_OK);
  EXPECT_EQ(q, SX_QUANTIZATION_INT8);
  EXPECT_EQ(sx_quantization_parse("int4", &q, &d.err), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(d.err.message, "int4"), nullptr) << d.err.message;

  // Flat collections scan exactly: int8 is refused, naming it.
  EXPECT_EQ(d.Create("flat", 8, SX_QUANTIZATION_INT8, SX_METRIC_L2, SX_INDEX_FLAT),
            SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(d.err.message, "int8"), nullptr) << d.err.message;
  EXPECT_EQ(d.Create("bad", 8, 7), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(d.err.message, "quantization 7"), nullptr) << d.err.message;
  EXPECT_EQ(d.Create("bad", 8, -1), SX_INVALID_ARGUMENT);
  // A code record (dim + 16 bytes) must fit in a page (4096 bytes by default).
  EXPECT_EQ(d.Create("big", 4081, SX_QUANTIZATION_INT8), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(d.err.message, "4081"), nullptr) << d.err.message;
  EXPECT_EQ(d.Create("edge", 4000, SX_QUANTIZATION_INT8), SX_OK) << d.err.message;
  EXPECT_EQ(d.Create("flatnone", 8, SX_QUANTIZATION_NONE, SX_METRIC_L2, SX_INDEX_FLAT), SX_OK);

  // Version 1 options end before quantization: whatever follows them is not read.
  struct {
    sx_collection_options o;
    char pad[16];
  } v1;
  memset(&v1, 0x5a, sizeof v1);
  ASSERT_EQ(sx_collection_options_init(&v1.o, 1), SX_OK);
  EXPECT_EQ(v1.o.version, 1u);
  EXPECT_EQ(((unsigned char *)&v1.o.quantization)[0], 0x5a) << "init wrote past a version 1 struct";
  v1.o.dim = 4;
  EXPECT_EQ(
      d.Write([&](sx_write *w) { return sx_write_create_collection(w, "v1", &v1.o, &d.err); }),
      SX_OK)
      << d.err.message;
  EXPECT_EQ(d.Describe("v1").quantization, SX_QUANTIZATION_NONE);
  EXPECT_EQ(d.Describe("edge").quantization, SX_QUANTIZATION_INT8);

  // A version 1 info struct is filled up to quantization, not past it.
  sx_read *r = nullptr;
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_read_begin(d.db, &r, &d.err), SX_OK);
  ASSERT_EQ(sx_read_collection(r, "edge", &c, &d.err), SX_OK);
  struct {
    sx_collection_info i;
    char pad[16];
  } i1;
  memset(&i1, 0x5a, sizeof i1);
  i1.i.version = 1;
  EXPECT_EQ(sx_collection_describe(c, &i1.i, &d.err), SX_OK) << d.err.message;
  EXPECT_EQ(i1.i.dim, 4000u);
  EXPECT_EQ(((unsigned char *)&i1.i.quantization)[0], 0x5a) << "describe wrote past version 1";
  sx_collection_free(c);
  sx_read_free(r);
}

// Recall at ef 64 beside the unquantized collection of the same data (the same
// graph: inserts measure float32 vectors), exact distances, persistence.
TEST(Quant, RecallExactDistancesReopen) {
  const size_t dim = 48, n = 4000, nq = 100, k = 10;
  for (int metric : {SX_METRIC_L2, SX_METRIC_IP, SX_METRIC_COSINE}) {
    SCOPED_TRACE(sx_metric_name(metric));
    Db d;
    Truth t{dim, metric, Gen(11 + metric, n, dim), std::vector<bool>(n, true)};
    if (metric == SX_METRIC_IP)  // unit vectors, as ip expects
      for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += t.v[i * dim + j] * t.v[i * dim + j];
        for (size_t j = 0; j < dim; j++) t.v[i * dim + j] /= (float)std::sqrt(s);
      }
    std::vector<float> qs = Gen(99, nq, dim);
    ASSERT_EQ(d.Create("q", dim, SX_QUANTIZATION_INT8, metric), SX_OK) << d.err.message;
    ASSERT_EQ(d.Create("f", dim, SX_QUANTIZATION_NONE, metric), SX_OK) << d.err.message;
    auto ids = Ids("v", n);
    // In a few commits, so that codes come from several inserts.
    for (size_t at = 0; at < n; at += 1000) {
      std::vector<std::string> part(ids.begin() + (long)at, ids.begin() + (long)(at + 1000));
      ASSERT_EQ(d.Upsert("q", part, &t.v[at * dim], dim), SX_OK) << d.err.message;
      ASSERT_EQ(d.Upsert("f", part, &t.v[at * dim], dim), SX_OK) << d.err.message;
    }
    d.Check();
    double rq = RecallAndExact(t, qs, d.Search("q", qs, dim, k, 64), k);
    double rf = RecallAndExact(t, qs, d.Search("f", qs, dim, k, 64), k);
    EXPECT_GE(rq, 0.9);
    EXPECT_GE(rq, rf - 0.03) << "int8 " << rq << " against float32 " << rf;
    d.Reopen();
    EXPECT_EQ(d.Describe("q").quantization, SX_QUANTIZATION_INT8);
    EXPECT_EQ(d.Describe("f").quantization, SX_QUANTIZATION_NONE);
    EXPECT_EQ(RecallAndExact(t, qs, d.Search("q", qs, dim, k, 64), k), rq);
    // ef = n walks the whole graph: the k exact nearest, with their exact distances.
    auto all =
        d.Search("q", std::vector<float>(qs.begin(), qs.begin() + 5 * dim), dim, k, (uint32_t)n);
    EXPECT_EQ(RecallAndExact(t, qs, all, k), 1.0);
    d.Check();
  }
}

// The level in use by default, and the levels a batch search is tried at: the
// portable one, AVX2 where the CPU has it, and the default. The batch over codes
// (AVX2) is taken whatever the dimension, as these tests use small ones.
int BestLevel() {
  static const int best = sx__kernel_level();
  return best;
}
std::vector<int> BatchLevels() {
  sx__qdot_batch_min_dim(1);
  std::vector<int> v = {SX__KERNEL_PORTABLE};
  if (sx__kernel_supported(SX__KERNEL_AVX2)) v.push_back(SX__KERNEL_AVX2);
  if (BestLevel() > SX__KERNEL_AVX2) v.push_back(BestLevel());
  return v;
}

// An exact search of a quantized collection reads the codes first and measures only
// the vectors whose bound from their code is within the k best: it must return what
// the scan of a flat collection of the same data returns, the same ids in the same
// order with bit-identical distances, for every metric, on data made to stress the
// bounds: random; integers (exact codes); clusters of near-duplicates closer than a
// code step (every bound within the window); a large offset with a small spread
// (nearly parallel vectors under cosine); exact duplicates under other ids (ties
// broken by id). Single queries (k of 1, 10 and every item) and batches (k of 1, 10
// and 100), before and after deletes.
TEST(Quant, ExactScanByCodesEqualsFlat) {
  const size_t dim = 40, n = 1500, nq = 30;
  std::vector<std::pair<const char *, std::vector<float>>> sets;
  sets.push_back({"random", Gen(5, n, dim)});
  std::vector<float> ints = Gen(6, n, dim), near = Gen(7, n, dim), off = Gen(8, n, dim);
  for (float &x : ints) x = std::floor(std::fabs(x) * 80);
  std::vector<float> centers = Gen(9, 60, dim);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < dim; j++)
      near[i * dim + j] = centers[(i % 60) * dim + j] + 1e-3f * near[i * dim + j];
  for (float &x : off) x = 1000 + 0.01f * x;
  sets.push_back({"integers", ints});
  sets.push_back({"near-duplicates", near});
  sets.push_back({"offset", off});
  for (auto &set : sets) {
    std::vector<float> v = set.second;
    for (size_t i = 0; i < 100; i++)  // the last 100 rows repeat rows 0..99
      std::copy(v.begin() + (long)(i * dim), v.begin() + (long)((i + 1) * dim),
                v.begin() + (long)((n - 100 + i) * dim));
    // Queries: rows of the data, rows moved a little, and new vectors near the data.
    std::vector<float> qs(nq * dim), noise = Gen(10, nq, dim);
    for (size_t q = 0; q < nq; q++)
      for (size_t j = 0; j < dim; j++) {
        float x = v[(q * 97 % n) * dim + j];
        qs[q * dim + j] = q % 3 == 0   ? x
                          : q % 3 == 1 ? x + 1e-3f * noise[q * dim + j] * (std::fabs(x) + 1)
                                       : x + 0.5f * noise[q * dim + j] * (std::fabs(x) * 0.1f + 1);
      }
    for (int metric : {SX_METRIC_L2, SX_METRIC_IP, SX_METRIC_COSINE}) {
      SCOPED_TRACE(std::string(set.first) + " " + sx_metric_name(metric));
      Db d;
      ASSERT_EQ(d.Create("q", dim, SX_QUANTIZATION_INT8, metric), SX_OK) << d.err.message;
      ASSERT_EQ(d.Create("flat", dim, SX_QUANTIZATION_NONE, metric, SX_INDEX_FLAT), SX_OK)
          << d.err.message;
      auto ids = Ids("v", n);
      ASSERT_EQ(d.Upsert("q", ids, v.data(), dim), SX_OK) << d.err.message;
      ASSERT_EQ(d.Upsert("flat", ids, v.data(), dim), SX_OK) << d.err.message;
      std::vector<std::string> gone;
      for (size_t i = 0; i < n; i += 7) gone.push_back(ids[i]);
      for (int round = 0; round < 2; round++) {
        for (size_t k : {size_t(1), size_t(10), n}) {
          auto a = d.Search("q", qs, dim, k, 0, nullptr, 1);
          auto b = d.Search("flat", qs, dim, k, 0, nullptr, 1);
          ASSERT_EQ(a.size(), b.size());
          for (size_t q = 0; q < a.size(); q++) {
            ASSERT_EQ(a[q].size(), b[q].size()) << "query " << q << " k " << k;
            ASSERT_EQ(a[q].size(), std::min(k, round ? n - gone.size() : n));
            for (size_t i = 0; i < a[q].size(); i++) {
              ASSERT_EQ(a[q][i].id, b[q][i].id) << "query " << q << " k " << k << " hit " << i;
              ASSERT_EQ(std::memcmp(&a[q][i].d, &b[q][i].d, sizeof(float)), 0)
                  << "query " << q << " hit " << i << ": " << a[q][i].d << " " << b[q][i].d;
            }
          }
        }
        // A batch likewise, at each level the batch of a quantized collection takes
        // another path: bounds from the codes (sx__qdot_batch_preferred, AVX2), or the
        // float32 batch kernel with its candidates ranked again by the single-query
        // kernel (elsewhere).
        for (int level : BatchLevels()) {
          SCOPED_TRACE(sx__kernel_name(level));
          ASSERT_EQ(sx__kernel_force(level), SX_OK);
          sx_read *r = nullptr;
          sx_collection *cq = nullptr, *cf = nullptr;
          ASSERT_EQ(sx_read_begin(d.db, &r, &d.err), SX_OK);
          ASSERT_EQ(sx_read_collection(r, "q", &cq, &d.err), SX_OK);
          ASSERT_EQ(sx_read_collection(r, "flat", &cf, &d.err), SX_OK);
          sx_search_options o = SX_SEARCH_OPTIONS_INIT;
          o.exact = 1;
          for (size_t k : {size_t(1), size_t(10), size_t(100)}) {
            sx_results *ra = nullptr, *rb = nullptr;
            ASSERT_EQ(sx_collection_search_batch(cq, qs.data(), nq, dim, k, &o, &ra, &d.err), SX_OK)
                << d.err.message;
            ASSERT_EQ(sx_collection_search_batch(cf, qs.data(), nq, dim, k, &o, &rb, &d.err), SX_OK)
                << d.err.message;
            auto one = d.Search("flat", qs, dim, k, 0, nullptr, 1);
            for (size_t q = 0; q < nq; q++) {
              ASSERT_EQ(sx_results_count(ra, q), sx_results_count(rb, q));
              ASSERT_EQ(sx_results_count(ra, q), one[q].size());
              for (size_t i = 0; i < sx_results_count(ra, q); i++) {
                EXPECT_STREQ(sx_results_id(ra, q, i), sx_results_id(rb, q, i))
                    << "batch query " << q << " k " << k;
                EXPECT_EQ(sx_results_id(ra, q, i), one[q][i].id) << "batch query " << q;
                float x = sx_results_distance(ra, q, i), y = sx_results_distance(rb, q, i);
                EXPECT_EQ(std::memcmp(&x, &y, sizeof x), 0) << "batch query " << q << " hit " << i;
                EXPECT_EQ(std::memcmp(&x, &one[q][i].d, sizeof x), 0) << "batch query " << q;
              }
            }
            sx_results_free(ra);
            sx_results_free(rb);
          }
          sx_collection_free(cq);
          sx_collection_free(cf);
          sx_read_free(r);
        }
        ASSERT_EQ(sx__kernel_force(BestLevel()), SX_OK);
        ASSERT_EQ(d.Delete("q", gone), SX_OK) << d.err.message;
        ASSERT_EQ(d.Delete("flat", gone), SX_OK) << d.err.message;
      }
      d.Check();
    }
  }
}

// The bound where a code's error is at its worst: every component of the nearest
// vector half a step (0.49) from its code, each toward the query's sign, so its exact
// distance is below the code's estimate by almost the whole bound. Decoys with the
// same code (one component's error turned the other way) lie a block of the scan
// before it and fill the k best first; a bound short of the worst case by a fifth
// passes over the nearest vector.
TEST(Quant, ExactScanByCodesWorstCaseBound) {
  const size_t dim = 40, ndecoy = dim - 2;
  std::vector<float> sign = Gen(21, 1, dim), base = Gen(22, 1, dim), fill = Gen(23, 400, dim);
  std::vector<float> q(dim), v0(dim), v;
  for (size_t i = 0; i < dim; i++) {
    sign[i] = sign[i] < 0 ? -1.0f : 1.0f;
    q[i] = 1000 * sign[i];
    // lo 0 and scale 1 exactly: component 0 is 0, component 1 is 255; the others
    // lean toward the query, so that v0 is the nearest under every metric.
    float c = i == 0 ? 0 : i == 1 ? 255 : 128 + 100 * sign[i] + std::floor(10 * std::tanh(base[i]));
    v0[i] = i < 2 ? c : c + 0.49f * sign[i];
  }
  for (size_t j = 0; j < ndecoy; j++) {  // decoys first: slots 0..ndecoy-1
    std::vector<float> u = v0;
    u[j + 2] -= 0.98f * sign[j + 2];
    v.insert(v.end(), u.begin(), u.end());
  }
  // Then fillers, so that v0 lies in a later block of the scan than the decoys.
  for (float &x : fill) x = std::floor(128 + 60 * x);
  v.insert(v.end(), fill.begin(), fill.begin() + 300 * dim);
  const size_t at = v.size() / dim;
  v.insert(v.end(), v0.begin(), v0.end());
  v.insert(v.end(), fill.begin() + 300 * dim, fill.end());
  size_t n = v.size() / dim;
  for (int metric : {SX_METRIC_L2, SX_METRIC_IP, SX_METRIC_COSINE}) {
    SCOPED_TRACE(sx_metric_name(metric));
    Db d;
    ASSERT_EQ(d.Create("q", dim, SX_QUANTIZATION_INT8, metric), SX_OK) << d.err.message;
    ASSERT_EQ(d.Create("flat", dim, SX_QUANTIZATION_NONE, metric, SX_INDEX_FLAT), SX_OK);
    auto ids = Ids("v", n);
    ASSERT_EQ(d.Upsert("q", ids, v.data(), dim), SX_OK) << d.err.message;
    ASSERT_EQ(d.Upsert("flat", ids, v.data(), dim), SX_OK) << d.err.message;
    for (size_t k : {size_t(1), size_t(3)}) {
      auto a = d.Search("q", q, dim, k, 0, nullptr, 1);
      auto b = d.Search("flat", q, dim, k, 0, nullptr, 1);
      ASSERT_EQ(b[0][0].id, "v" + std::to_string(at)) << "the nearest is v0";
      ASSERT_EQ(a[0].size(), b[0].size());
      for (size_t i = 0; i < a[0].size(); i++) {
        EXPECT_EQ(a[0][i].id, b[0][i].id) << "k " << k << " hit " << i;
        EXPECT_EQ(a[0][i].d, b[0][i].d) << "k " << k << " hit " << i;
      }
      // The query first in a batch of seven (the others: fillers), at each level
      // the batch takes another path (bounds from every query's codes at once).
      std::vector<float> qb(q);
      qb.insert(qb.end(), fill.begin() + 10 * dim, fill.begin() + 16 * dim);
      for (int level : BatchLevels()) {
        SCOPED_TRACE(sx__kernel_name(level));
        ASSERT_EQ(sx__kernel_force(level), SX_OK);
        auto ab = d.SearchBatch("q", qb, dim, k);
        auto bl = d.Search("flat", q, dim, k, 0, nullptr, 1);  // this level's distances
        ASSERT_EQ(ab.size(), 7u);
        ASSERT_EQ(bl[0][0].id, "v" + std::to_string(at));
        ASSERT_EQ(ab[0].size(), bl[0].size());
        for (size_t i = 0; i < ab[0].size(); i++) {
          EXPECT_EQ(ab[0][i].id, bl[0][i].id) << "batch, k " << k << " hit " << i;
          EXPECT_EQ(ab[0][i].d, bl[0][i].d) << "batch, k " << k << " hit " << i;
        }
      }
      ASSERT_EQ(sx__kernel_force(BestLevel()), SX_OK);
    }
  }
}

// A batch of more queries than a scan over codes takes at once (chunks of 1,020,
// the last one a single query) answers each query as a search of it alone does:
// the same ids, bit-identical distances, cosine too (each chunk's own norms).
TEST(Quant, ExactBatchBeyondAChunkEqualsSingleQueries) {
  const size_t dim = 12, n = 400, nq = 1021, k = 5;
  std::vector<float> v = Gen(31, n, dim), qs = Gen(32, nq, dim);
  for (int metric : {SX_METRIC_L2, SX_METRIC_COSINE}) {
    SCOPED_TRACE(sx_metric_name(metric));
    Db d;
    ASSERT_EQ(d.Create("q", dim, SX_QUANTIZATION_INT8, metric), SX_OK) << d.err.message;
    ASSERT_EQ(d.Upsert("q", Ids("v", n), v.data(), dim), SX_OK) << d.err.message;
    for (int level : BatchLevels()) {
      SCOPED_TRACE(sx__kernel_name(level));
      ASSERT_EQ(sx__kernel_force(level), SX_OK);
      auto one = d.Search("q", qs, dim, k, 0, nullptr, 1);
      auto all = d.SearchBatch("q", qs, dim, k);
      ASSERT_EQ(all.size(), nq);
      for (size_t q = 0; q < nq; q++) {
        ASSERT_EQ(all[q].size(), k) << "query " << q;
        for (size_t i = 0; i < k; i++) {
          ASSERT_EQ(all[q][i].id, one[q][i].id) << "query " << q << " hit " << i;
          ASSERT_EQ(std::memcmp(&all[q][i].d, &one[q][i].d, sizeof(float)), 0)
              << "query " << q << " hit " << i;
        }
      }
    }
    ASSERT_EQ(sx__kernel_force(BestLevel()), SX_OK);
  }
}

// Replacements, deletes (dead nodes unlinked, slots reused), compaction: codes
// follow the vectors (sx_db_check re-encodes every one), and search keeps finding.
TEST(Quant, UpsertDeleteReclaimCompact) {
  const size_t dim = 24, n = 3000, nq = 50, k = 10;
  Db d;
  Truth t{dim, SX_METRIC_L2, Gen(5, n, dim), std::vector<bool>(n, true)};
  std::vector<float> qs = Gen(6, nq, dim);
  ASSERT_EQ(d.Create("q", dim, SX_QUANTIZATION_INT8), SX_OK) << d.err.message;
  auto ids = Ids("v", n);
  std::vector<std::string> meta;
  for (size_t i = 0; i < n; i++) meta.push_back("{\"odd\": " + std::to_string(i % 2) + "}");
  ASSERT_EQ(d.Upsert("q", ids, t.v.data(), dim, &meta), SX_OK) << d.err.message;
  // Rounds: delete a third, replace another third with new vectors (new slots, the
  // old ones dead until reclaimed and reused).
  for (int round = 0; round < 3; round++) {
    std::vector<std::string> del, rep;
    std::vector<float> nv;
    std::vector<float> fresh = Gen(100 + round, n, dim);
    for (size_t i = 0; i < n; i++) {
      if ((i + round) % 3 == 0 && t.live[i]) {
        del.push_back(ids[i]);
        t.live[i] = false;
      } else if ((i + round) % 3 == 1) {
        rep.push_back(ids[i]);
        std::copy(&fresh[i * dim], &fresh[i * dim] + dim, &t.v[i * dim]);
        nv.insert(nv.end(), &t.v[i * dim], &t.v[i * dim] + dim);
        t.live[i] = true;
      }
    }
    ASSERT_EQ(d.Delete("q", del), SX_OK) << d.err.message;
    ASSERT_EQ(d.Upsert("q", rep, nv.data(), dim), SX_OK) << d.err.message;
    d.Check();
    EXPECT_GE(RecallAndExact(t, qs, d.Search("q", qs, dim, k, 64), k), 0.9) << "round " << round;
  }
  sx_compact_options co;
  ASSERT_EQ(sx_compact_options_init(&co, SX_COMPACT_OPTIONS_VERSION), SX_OK);
  ASSERT_EQ(sx_db_compact(d.db, &co, &d.err), SX_OK) << d.err.message;
  d.Check();
  EXPECT_EQ(d.Describe("q").quantization, SX_QUANTIZATION_INT8);
  EXPECT_GE(RecallAndExact(t, qs, d.Search("q", qs, dim, k, 64), k), 0.9);
  d.Reopen();
  d.Check();
  EXPECT_GE(RecallAndExact(t, qs, d.Search("q", qs, dim, k, 64), k), 0.9);
}

// A filtered search walks the codes too, and returns exact distances of matches only.
TEST(Quant, Filtered) {
  const size_t dim = 16, n = 2000, nq = 30, k = 10;
  Db d;
  Truth t{dim, SX_METRIC_L2, Gen(8, n, dim), std::vector<bool>(n, true)};
  std::vector<float> qs = Gen(9, nq, dim);
  ASSERT_EQ(d.Create("q", dim, SX_QUANTIZATION_INT8), SX_OK) << d.err.message;
  auto ids = Ids("v", n);
  std::vector<std::string> meta;
  for (size_t i = 0; i < n; i++) meta.push_back("{\"odd\": " + std::to_string(i % 2) + "}");
  ASSERT_EQ(d.Upsert("q", ids, t.v.data(), dim, &meta), SX_OK) << d.err.message;
  Truth odd = t;
  for (size_t i = 0; i < n; i += 2) odd.live[i] = false;
  auto got = d.Search("q", qs, dim, k, 64, "{\"odd\": 1}");
  EXPECT_GE(RecallAndExact(odd, qs, got, k), 0.9);
  for (auto &h : got) EXPECT_EQ(h.size(), k);
}

}  // namespace
