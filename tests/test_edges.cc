// Edges of the argument checks: float32 vectors whose norms or dot products overflow
// or underflow (no NaN distance, ever), k far beyond the collection, and what a
// database needs of its directory to be opened.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "sextant.h"
extern "C" {
#include "testutil.h"
}
#include "testutil.hh"

namespace {

using sxt::TmpDir;

sx_db *Open(const std::string &path) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = SX_SYNC_OFF;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_open(&db, path.c_str(), &o, &err), SX_OK) << err.message;
  return db;
}

void Create(sx_write *w, const char *name, uint32_t dim, sx_metric metric, sx_index_type index,
            uint32_t m = 0) {
  sx_error err = SX_ERROR_INIT;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = dim;
  co.metric = metric;
  co.index = index;
  if (m) co.hnsw_m = m;
  ASSERT_EQ(sx_write_create_collection(w, name, &co, &err), SX_OK) << err.message;
}

int Upsert1(sx_write *w, const char *coll, const char *id, const std::vector<float> &v,
            sx_error *err) {
  const char *ids[1] = {id};
  return sx_write_upsert(w, coll, 1, ids, v.data(), v.size(), nullptr, err);
}

// Searches q (k hits) and checks that every distance is a number and that they come
// in order; returns the ids.
std::vector<std::string> SearchOk(sx_collection *c, const std::vector<float> &q, size_t k,
                                  std::vector<float> *dists = nullptr, bool batch = false) {
  sx_error err = SX_ERROR_INIT;
  sx_results *res = nullptr;
  std::vector<std::string> ids;
  int rc;
  if (batch) {
    std::vector<float> qs;
    for (int i = 0; i < 32; i++) qs.insert(qs.end(), q.begin(), q.end());
    rc = sx_collection_search_batch(c, qs.data(), 32, q.size(), k, nullptr, &res, &err);
  } else {
    rc = sx_collection_search(c, q.data(), q.size(), k, nullptr, &res, &err);
  }
  EXPECT_EQ(rc, SX_OK) << err.message;
  if (rc) return ids;
  for (size_t i = 0; i < sx_results_count(res, 0); i++) {
    float d = sx_results_distance(res, 0, i);
    EXPECT_FALSE(std::isnan(d)) << "hit " << i << " (" << sx_results_id(res, 0, i) << ")";
    if (i) {
      EXPECT_LE(sx_results_distance(res, 0, i - 1), d) << "hit " << i;
    }
    ids.push_back(sx_results_id(res, 0, i));
    if (dists) dists->push_back(d);
  }
  sx_results_free(res);
  return ids;
}

// ---- issue 19 item 9: float32 overflow and underflow in distances ---------------

// Under cosine and ip a vector whose squared norm does not fit in float32 cannot have
// its distances computed in float32 (they came out NaN and sorted first): refused,
// naming the item, as stored vector and as query. All-subnormal cosine vectors, whose
// float32 norm is 0 (distance 1 to themselves), are refused too.
TEST(Floats, NormsThatOverflowOrUnderflowFloat32AreRefusedUnderCosineAndIp) {
  TmpDir t("floats");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  for (sx_index_type ix : {SX_INDEX_FLAT, SX_INDEX_HNSW}) {
    std::string cn = std::string("cos") + (ix == SX_INDEX_FLAT ? "f" : "h");
    std::string in = std::string("ip") + (ix == SX_INDEX_FLAT ? "f" : "h");
    Create(w, cn.c_str(), 8, SX_METRIC_COSINE, ix);
    Create(w, in.c_str(), 2, SX_METRIC_IP, ix);
    // Healthy neighbours first, so a NaN hit would have something to sort before.
    ASSERT_EQ(Upsert1(w, cn.c_str(), "one", std::vector<float>(8, 1.0f), &err), SX_OK);
    ASSERT_EQ(Upsert1(w, in.c_str(), "one", {1.0f, 0.5f}, &err), SX_OK);

    std::vector<float> big(8, 3e38f);
    const char *ids[3] = {"a", "b", "c"};
    std::vector<float> three(8 * 3, 1.0f);
    std::copy(big.begin(), big.end(), three.begin() + 16);
    EXPECT_EQ(sx_write_upsert(w, cn.c_str(), 3, ids, three.data(), 8, nullptr, &err),
              SX_INVALID_ARGUMENT);
    EXPECT_NE(strstr(err.message, "item 2"), nullptr) << err.message;
    EXPECT_NE(strstr(err.message, "squared norm"), nullptr) << err.message;
    EXPECT_NE(strstr(err.message, "overflows float32"), nullptr) << err.message;
    EXPECT_EQ(Upsert1(w, in.c_str(), "x", {3e38f, -3e38f}, &err), SX_INVALID_ARGUMENT);
    EXPECT_NE(strstr(err.message, "overflows float32"), nullptr) << err.message;
    // All subnormal: float32 squares are 0.
    EXPECT_EQ(Upsert1(w, cn.c_str(), "d", std::vector<float>(8, 1e-45f), &err), SX_INVALID_ARGUMENT);
    EXPECT_NE(strstr(err.message, "underflows float32"), nullptr) << err.message;
    EXPECT_EQ(Upsert1(w, cn.c_str(), "d", std::vector<float>(8, 1e-23f), &err), SX_INVALID_ARGUMENT);
    // ... but ip has no norm to divide by: tiny vectors are fine there.
    EXPECT_EQ(Upsert1(w, in.c_str(), "d", {1e-45f, 1e-45f}, &err), SX_OK) << err.message;

    sx_collection *c = nullptr;
    ASSERT_EQ(sx_write_collection(w, cn.c_str(), &c, &err), SX_OK);
    sx_results *res = nullptr;
    EXPECT_EQ(sx_collection_search(c, big.data(), 8, 3, nullptr, &res, &err), SX_INVALID_ARGUMENT);
    EXPECT_NE(strstr(err.message, "query 0"), nullptr) << err.message;
    std::vector<float> qs(16, 1.0f);
    std::fill(qs.begin() + 8, qs.end(), 1e-45f);
    EXPECT_EQ(sx_collection_search_batch(c, qs.data(), 2, 8, 3, nullptr, &res, &err),
              SX_INVALID_ARGUMENT);
    EXPECT_NE(strstr(err.message, "query 1"), nullptr) << err.message;
    sx_collection_free(c);
    ASSERT_EQ(sx_write_collection(w, in.c_str(), &c, &err), SX_OK);
    std::vector<float> ipq = {3e38f, 3e38f};
    EXPECT_EQ(sx_collection_search(c, ipq.data(), 2, 3, nullptr, &res, &err), SX_INVALID_ARGUMENT);
    sx_collection_free(c);
  }
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  sx_db_free(db);
}

// What is accepted is computed: large and small but representable norms under cosine
// and ip give numbers in order, the vector itself first under cosine; under l2 the
// largest float32 values are accepted (conformance float32_values_round_trip) and the
// distance that overflows is +Inf, never NaN, in every search path.
TEST(Floats, AcceptedExtremesGiveOrderedNumbers) {
  TmpDir t("floats2");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  std::vector<float> ext = {FLT_MAX, -FLT_MAX, 1.401298464324817e-45f, -1.401298464324817e-45f,
                            1, 1, 1, 1};
  std::vector<float> big(8, 1e18f), tiny(8, 0), near(8, 1.0f);
  tiny[1] = 1e-20f;
  near[0] = 2.0f;
  for (sx_index_type ix : {SX_INDEX_FLAT, SX_INDEX_HNSW}) {
    const char *l2 = ix == SX_INDEX_FLAT ? "l2f" : "l2h";
    const char *cs = ix == SX_INDEX_FLAT ? "cosf" : "cosh";
    const char *ip = ix == SX_INDEX_FLAT ? "ipf" : "iph";
    Create(w, l2, 8, SX_METRIC_L2, ix);
    Create(w, cs, 8, SX_METRIC_COSINE, ix);
    Create(w, ip, 8, SX_METRIC_IP, ix);
    for (const char *cn : {l2, cs, ip}) {
      ASSERT_EQ(Upsert1(w, cn, "big", big, &err), SX_OK) << cn << ": " << err.message;
      ASSERT_EQ(Upsert1(w, cn, "tiny", tiny, &err), SX_OK) << cn << ": " << err.message;
      ASSERT_EQ(Upsert1(w, cn, "near", near, &err), SX_OK) << cn << ": " << err.message;
    }
    ASSERT_EQ(Upsert1(w, l2, "ext", ext, &err), SX_OK) << err.message;
    ASSERT_EQ(Upsert1(w, l2, "neg", {-FLT_MAX, FLT_MAX, 0, 0, 0, 0, 0, 0}, &err), SX_OK);
    // Filler, so that scans run in blocks.
    std::vector<float> fill = sxt::Gen(7, 100, 8);
    std::vector<std::string> fid;
    std::vector<const char *> fp;
    for (int i = 0; i < 100; i++) fid.push_back("f" + std::to_string(i));
    for (auto &s : fid) fp.push_back(s.c_str());
    for (const char *cn : {l2, cs, ip})
      ASSERT_EQ(sx_write_upsert(w, cn, 100, fp.data(), fill.data(), 8, nullptr, &err), SX_OK);

    sx_collection *c = nullptr;
    for (bool batch : {false, true}) {
      ASSERT_EQ(sx_write_collection(w, l2, &c, &err), SX_OK);
      std::vector<float> d;
      auto ids = SearchOk(c, ext, 200, &d, batch);
      ASSERT_FALSE(ids.empty());
      EXPECT_EQ(ids[0], "ext") << l2 << (batch ? " batch" : "");
      EXPECT_EQ(d[0], 0.0f);
      EXPECT_TRUE(std::isinf(d.back()));
      SearchOk(c, big, 200, nullptr, batch);
      sx_collection_free(c);

      ASSERT_EQ(sx_write_collection(w, cs, &c, &err), SX_OK);
      d.clear();
      ids = SearchOk(c, big, 3, &d, batch);
      ASSERT_FALSE(ids.empty());
      EXPECT_EQ(ids[0], "big") << cs << (batch ? " batch" : "");
      EXPECT_NEAR(d[0], 0.0f, 1e-5);
      d.clear();
      ids = SearchOk(c, tiny, 3, &d, batch);
      ASSERT_FALSE(ids.empty());
      EXPECT_EQ(ids[0], "tiny");
      EXPECT_NEAR(d[0], 0.0f, 1e-4);
      sx_collection_free(c);

      ASSERT_EQ(sx_write_collection(w, ip, &c, &err), SX_OK);
      d.clear();
      ids = SearchOk(c, big, 3, &d, batch);
      ASSERT_FALSE(ids.empty());
      EXPECT_EQ(ids[0], "big");
      EXPECT_FLOAT_EQ(d[0], 1.0f - 8e36f);
      sx_collection_free(c);
    }
  }
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  sx_db_free(db);
}

// ---- issue 19 item 12: metadata the core refused or could not bound --------------

std::string Nested(int depth) {
  std::string s;
  for (int i = 0; i < depth - 1; i++) s += "{\"a\":";
  s += "{\"x\":1}";
  for (int i = 0; i < depth - 1; i++) s += "}";
  return s;
}

int UpsertMeta(sx_write *w, const char *id, const std::string &meta, sx_error *err) {
  const char *ids[1] = {id};
  const char *metas[1] = {meta.c_str()};
  float v[2] = {1, 2};
  return sx_write_upsert(w, "m", 1, ids, v, 2, metas, err);
}

std::string GetMeta(sx_write *w, const char *id) {
  sx_error err = SX_ERROR_INIT;
  sx_collection *c = nullptr;
  EXPECT_EQ(sx_write_collection(w, "m", &c, &err), SX_OK);
  sx_record *rec = nullptr;
  std::string out = "<missing>";
  if (sx_collection_get(c, id, &rec, &err) == SX_OK) {
    const char *m = sx_record_metadata(rec);
    out = m ? m : "<none>";
  }
  sx_record_free(rec);
  sx_collection_free(c);
  return out;
}

// Valid JSON the core refused (a NUL escaped inside a key, integers beyond int64,
// numbers beyond double), which every binding can write and read back; a nesting
// limit of SX_METADATA_DEPTH_MAX levels (binding parsers recurse: 1,500 levels were
// stored and then unreadable from Python); what stays refused.
TEST(Metadata, ValidJsonIsStoredAsIsAndNestingIsBounded) {
  TmpDir t("meta");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  Create(w, "m", 2, SX_METRIC_L2, SX_INDEX_FLAT);
  const std::vector<std::string> good = {
      "{\"a\\u0000b\":1}",
      "{\"k\":\"v\\u0000w\"}",
      "{\"big\":123456789012345678901234567890,\"neg\":-99999999999999999999}",
      "{\"huge\":1e400,\"tiny\":-2.5E-400,\"z\":-0}",
      " {\"s\":\"\\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t é\", \"t\":[true,false,null,[],{}]} ",
      "{\"\":0,\"a\":{\"\":0}}",
      Nested(SX_METADATA_DEPTH_MAX),
  };
  for (size_t i = 0; i < good.size(); i++) {
    std::string id = "g" + std::to_string(i);
    EXPECT_EQ(UpsertMeta(w, id.c_str(), good[i], &err), SX_OK) << good[i] << ": " << err.message;
    EXPECT_EQ(GetMeta(w, id.c_str()), good[i]);
  }
  const std::vector<std::string> bad = {
      "",  "[]", "1", "\"s\"", "{", "{\"a\":1,}", "{\"a\":1}x", "{\"a\" 1}", "{'a':1}",
      "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":tru}",
      "{\"a\":NaN}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}",
      "{\"a\":\"\\udc00x\"}", "{\"a\":\"\t\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\x80\"}",
      "{\"a\":1,\"a\":2}", "{\"a\\u0000\":1,\"a\\u0000\":2}", "{\"x\":{\"b\":1,\"b\":1}}",
      "{\"a\":1} {}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{1:2}"};
  for (auto &b : bad) {
    EXPECT_EQ(UpsertMeta(w, "b", b, &err), SX_INVALID_ARGUMENT) << b;
    EXPECT_NE(strstr(err.message, "metadata of item 0"), nullptr) << err.message;
  }
  EXPECT_EQ(UpsertMeta(w, "d", Nested(SX_METADATA_DEPTH_MAX + 1), &err), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "nested deeper than"), nullptr) << err.message;
  std::string arrays = "{\"a\":" + std::string(SX_METADATA_DEPTH_MAX, '[') +
                       std::string(SX_METADATA_DEPTH_MAX, ']') + "}";
  EXPECT_EQ(UpsertMeta(w, "d", arrays, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(UpsertMeta(w, "d", Nested(100000), &err), SX_INVALID_ARGUMENT);
  std::string open(1000000, '[');
  EXPECT_EQ(UpsertMeta(w, "d", "{\"a\":" + open, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(GetMeta(w, "b"), "<missing>");
  EXPECT_EQ(GetMeta(w, "d"), "<missing>");
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  sx_db_free(db);
}

}  // namespace
