// Filtered search: the filter language (every operator, nesting, paths, arrays,
// missing fields, types, escapes), invalid filters, damaged metadata, filters over
// flat and HNSW collections (deletes, re-upserts, batches, exact), HNSW recall under
// filters at several selectivities, and hits that carry metadata and vectors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "sextant.h"
extern "C" {
#include "collection/collection.h"
#include "session/session.h"
#include "testutil.h"
}
#include "testutil.hh"

namespace {

using sxt::TmpDir;

// 1, 0, or a negated status, as sx__filter_text gives them.
int Match(const char *filter, const char *meta) {
  sx__filter *f = nullptr;
  sx_error err = SX_ERROR_INIT;
  int rc = sx__filter_compile(filter, &f, &err);
  EXPECT_EQ(rc, SX_OK) << filter << ": " << err.message;
  if (rc) return -rc;
  sx__fstate s;
  sx__fstate_init(&s, nullptr, nullptr, f);
  int m = sx__filter_text(&s, meta, meta ? strlen(meta) : 0, 0, &err);
  sx__fstate_free(&s);
  sx__filter_free(f);
  return m;
}

struct Case {
  const char *filter, *meta;
  int want;
};

void RunCases(const std::vector<Case> &cases) {
  for (const Case &c : cases)
    EXPECT_EQ(Match(c.filter, c.meta), c.want)
        << "filter " << c.filter << " on " << (c.meta ? c.meta : "(none)");
}

TEST(FilterEval, Equality) {
  const char *m = R"({"s": "red", "n": 5, "f": 2.5, "b": true, "z": null, "o": {"x": 1}})";
  RunCases({
      {"{}", m, 1},
      {"{}", nullptr, 1},
      {R"({"s": "red"})", m, 1},
      {R"({"s": "blue"})", m, 0},
      {R"({"n": 5})", m, 1},
      {R"({"n": 5.0})", m, 1},  // ints and floats compare as numbers
      {R"({"f": 2.5})", m, 1},
      {R"({"b": true})", m, 1},
      {R"({"b": false})", m, 0},
      {R"({"z": null})", m, 1},
      {R"({"s": {"$eq": "red"}})", m, 1},
      {R"({"s": {"$ne": "red"}})", m, 0},
      {R"({"s": {"$ne": "blue"}})", m, 1},
      {R"({"s": "red", "n": 5})", m, 1},  // several keys: AND
      {R"({"s": "red", "n": 6})", m, 0},
      {R"({"o": 1})", m, 0},  // an object equals nothing
      {R"({"o": {"$ne": 1}})", m, 1},
  });
}

TEST(FilterEval, TypeMismatchesNeverMatch) {
  const char *m = R"({"s": "5", "n": 5, "b": true, "z": null, "one": 1})";
  RunCases({
      {R"({"s": 5})", m, 0},
      {R"({"n": "5"})", m, 0},
      {R"({"n": {"$gt": "4"}})", m, 0},
      {R"({"s": {"$lt": 9}})", m, 0},
      {R"({"b": 1})", m, 0},
      {R"({"one": true})", m, 0},  // booleans only equal booleans
      {R"({"z": false})", m, 0},
      {R"({"z": 0})", m, 0},
      {R"({"n": null})", m, 0},
      {R"({"n": {"$ne": "5"}})", m, 1},  // $ne across types: not equal
      {R"({"b": {"$in": [1, "true"]}})", m, 0},
  });
}

TEST(FilterEval, Ranges) {
  const char *m = R"({"n": 5, "f": -0.5, "s": "banana", "u": "\u00e9t\u00e9"})";
  RunCases({
      {R"({"n": {"$gt": 4}})", m, 1},
      {R"({"n": {"$gt": 5}})", m, 0},
      {R"({"n": {"$gte": 5}})", m, 1},
      {R"({"n": {"$lt": 5}})", m, 0},
      {R"({"n": {"$lte": 5}})", m, 1},
      {R"({"n": {"$lt": 5.5}})", m, 1},
      {R"({"f": {"$lt": 0}})", m, 1},
      {R"({"f": {"$gt": -1, "$lt": 0}})", m, 1},  // several operators: AND
      {R"({"f": {"$gt": -1, "$lt": -0.6}})", m, 0},
      {R"({"s": {"$gt": "apple"}})", m, 1},
      {R"({"s": {"$gt": "banana"}})", m, 0},
      {R"({"s": {"$gte": "banana"}})", m, 1},
      {R"({"s": {"$lt": "bananas"}})", m, 1},  // a prefix sorts first
      {R"({"s": {"$lt": "Z"}})", m, 0},        // bytewise: 'Z' < 'b'
      {R"({"u": {"$gt": "z"}})", m, 1},        // UTF-8 bytes of é sort after ASCII
      {R"({"missing": {"$gt": 0}})", m, 0},
      {R"({"missing": {"$lte": 0}})", m, 0},
  });
}

TEST(FilterEval, InAndNin) {
  const char *m = R"({"c": 3, "s": "x", "z": null})";
  RunCases({
      {R"({"c": {"$in": [1, 2, 3]}})", m, 1},
      {R"({"c": {"$in": [1, 2]}})", m, 0},
      {R"({"c": {"$in": []}})", m, 0},
      {R"({"c": {"$nin": [1, 2]}})", m, 1},
      {R"({"c": {"$nin": [3]}})", m, 0},
      {R"({"c": {"$nin": []}})", m, 1},
      {R"({"s": {"$in": ["y", "x"]}})", m, 1},
      {R"({"s": {"$in": [3, "3"]}})", m, 0},
      {R"({"z": {"$in": [null]}})", m, 1},
      {R"({"missing": {"$in": [1]}})", m, 0},
      {R"({"missing": {"$nin": [1]}})", m, 1},
  });
}

TEST(FilterEval, MissingFieldsAndExists) {
  const char *m = R"({"a": 1, "z": null, "o": {"p": 2}})";
  RunCases({
      {R"({"x": 1})", m, 0},
      {R"({"x": {"$ne": 1}})", m, 1},  // a missing field is not equal to anything
      {R"({"x": {"$ne": null}})", m, 1},
      {R"({"z": {"$ne": null}})", m, 0},
      {R"({"a": {"$exists": true}})", m, 1},
      {R"({"a": {"$exists": false}})", m, 0},
      {R"({"x": {"$exists": false}})", m, 1},
      {R"({"x": {"$exists": true}})", m, 0},
      {R"({"z": {"$exists": true}})", m, 1},  // null exists
      {R"({"o.p": {"$exists": true}})", m, 1},
      {R"({"o.q": {"$exists": true}})", m, 0},
      {R"({"a.b": {"$exists": false}})", m, 1},  // through a non-object: missing
      {R"({"a": 1})", nullptr, 0},               // no metadata: every field missing
      {R"({"a": {"$ne": 1}})", nullptr, 1},
      {R"({"a": {"$exists": false}})", nullptr, 1},
  });
}

TEST(FilterEval, DottedPaths) {
  const char *m = R"({"a": {"b": {"c": 7}, "s": "t"}, "a.b": 99, "x": [{"y": 1}]})";
  RunCases({
      {R"({"a.b.c": 7})", m, 1},
      {R"({"a.b.c": 8})", m, 0},
      {R"({"a.s": "t"})", m, 1},
      {R"({"a.b": {"$exists": true}})", m, 1},
      {R"({"a.b": 99})", m, 0},  // dots always separate levels
      {R"({"a.b.c.d": {"$exists": false}})", m, 1},
      {R"({"x.y": 1})", m, 0},  // paths do not go into arrays
  });
}

TEST(FilterEval, Arrays) {
  const char *m = R"({"tags": ["a", "b", 3], "e": [], "nest": [[1], {"k": 1}], "nums": [1, 10]})";
  RunCases({
      {R"({"tags": "a"})", m, 1},  // any element
      {R"({"tags": "c"})", m, 0},
      {R"({"tags": 3})", m, 1},
      {R"({"tags": {"$ne": "a"}})", m, 0},  // no element may equal
      {R"({"tags": {"$ne": "c"}})", m, 1},
      {R"({"tags": {"$in": ["x", "b"]}})", m, 1},
      {R"({"tags": {"$nin": ["x", "b"]}})", m, 0},
      {R"({"tags": {"$nin": ["x", "y"]}})", m, 1},
      {R"({"e": "a"})", m, 0},
      {R"({"e": {"$ne": "a"}})", m, 1},
      {R"({"e": {"$exists": true}})", m, 1},
      {R"({"nest": 1})", m, 0},  // nested arrays and objects equal nothing
      {R"({"nums": {"$gt": 5}})", m, 1},
      {R"({"nums": {"$gt": 10}})", m, 0},
      {R"({"nums": {"$gt": 5, "$lt": 2}})", m, 1},  // each condition by any element
  });
}

TEST(FilterEval, LogicalOperators) {
  const char *m = R"({"a": 1, "b": 2})";
  RunCases({
      {R"({"$and": [{"a": 1}, {"b": 2}]})", m, 1},
      {R"({"$and": [{"a": 1}, {"b": 3}]})", m, 0},
      {R"({"$or": [{"a": 2}, {"b": 2}]})", m, 1},
      {R"({"$or": [{"a": 2}, {"b": 3}]})", m, 0},
      {R"({"$not": {"a": 1}})", m, 0},
      {R"({"$not": {"a": 2}})", m, 1},
      {R"({"$not": {}})", m, 0},
      {R"({"$not": {"x": 1}})", m, 1},  // negates as a whole: no x matches
      {R"({"$or": [{"$and": [{"a": 1}, {"$not": {"b": 2}}]}, {"$and": [{"a": {"$gte": 1}}, {"b": {"$in": [2]}}]}]})",
       m, 1},
      {R"({"$or": [{"$and": [{"a": 1}, {"$not": {"b": 2}}]}, {"$and": [{"a": {"$gt": 1}}, {"b": {"$in": [2]}}]}]})",
       m, 0},
      {R"({"a": 1, "$or": [{"b": 5}, {"b": 2}]})", m, 1},
      {R"({"a": 1, "$or": [{"b": 5}, {"b": 6}]})", m, 0},
  });
}

TEST(FilterEval, EscapesAndUnicode) {
  // Escaped keys and values compare by their decoded bytes, whichever side escapes.
  const char *m =
      R"({"q\"k": "a\"b", "u": "\u00e9\ud83d\ude00", "n\u00e9": "x\\y\/z", "nl": "a\nb"})";
  RunCases({
      {R"({"q\"k": "a\"b"})", m, 1},
      {"{\"u\": \"\xc3\xa9\xf0\x9f\x98\x80\"}", m, 1},  // raw UTF-8 in the filter
      {R"({"u": "\u00e9\ud83d\ude00"})", m, 1},
      {R"({"u": "\u00e9"})", m, 0},
      {"{\"n\xc3\xa9\": \"x\\\\y/z\"}", m, 1},
      {R"({"nl": "a\nb"})", m, 1},
      {R"({"nl": "a\\nb"})", m, 0},
  });
  // A raw UTF-8 text in metadata against an escaped filter.
  EXPECT_EQ(Match(R"({"k": "\u00e9"})", "{\"k\": \"\xc3\xa9\"}"), 1);
}

TEST(FilterEval, NumbersInMetadata) {
  RunCases({
      {R"({"n": 1000})", R"({"n": 1e3})", 1},
      {R"({"n": -0.001})", R"({"n": -1E-3})", 1},
      {R"({"n": 12345678901234567890})", R"({"n": 12345678901234567890})", 1},
      {R"({"n": 0})", R"({"n": -0})", 1},
      {R"({"n": -42})", R"({"n": -42})", 1},
      {R"({"n": 999999999999999})", R"({"n": 999999999999999})", 1},    // 15 digits: fast path
      {R"({"n": 9999999999999999})", R"({"n": 9999999999999999})", 1},  // 16: strtod
      {R"({"n": {"$gt": 999999999999998}})", R"({"n": 999999999999999})", 1},
      {R"({"n": 1})", R"({"n": 1.0})", 1},
      {R"({"n": {"$gt": 0}})",
       R"({"n": 100000000000000000000000000000000000000000000000000000000000000000000000000000000})",
       1},
  });
}

TEST(FilterEval, DamagedMetadataIsCorrupt) {
  const char *damaged[] = {
      "",
      "{",
      "{\"a\": 1",
      "[1, 2]",
      "\"s\"",
      "{\"a\": tru}",
      "{\"a\": 1.}",
      "{\"a\": -}",
      "{\"a\": \"\\q\"}",
      "{\"a\": \"\\u12\"}",
      "{\"a\": \"\\ud800\"}",
      "{\"a\": \"\\udc00x\"}",
      "{\"a\": 1} {\"b\": 2}",
      "{\"a\" 1}",
      "{1: 2}",
      "{\"a\": 0x10}",
      "{\"a\": nan}",
      "{\"a\": 01}",
      "{\"a\": -}",
      "{\"a\": 1-2}",
      "{\"a\": --1}",
  };
  for (const char *d : damaged) {
    sx__filter *f = nullptr;
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx__filter_compile(R"({"a": {"$ne": 5}})", &f, &err), SX_OK);
    sx__fstate s;
    sx__fstate_init(&s, nullptr, nullptr, f);
    EXPECT_EQ(sx__filter_text(&s, d, strlen(d), 0, &err), -SX_CORRUPT) << d;
    EXPECT_EQ(err.code, SX_CORRUPT) << d;
    sx__fstate_free(&s);
    sx__filter_free(f);
  }
}

TEST(FilterEval, BigTextsGrowTheTokenArray) {
  std::string m = "{";
  for (int i = 0; i < 5000; i++)
    m += "\"k" + std::to_string(i) + "\": [" + std::to_string(i) + "], ";
  m += "\"last\": \"yes\"}";
  EXPECT_EQ(Match(R"({"last": "yes"})", m.c_str()), 1);
  EXPECT_EQ(Match(R"({"k4999": 4999})", m.c_str()), 1);
  EXPECT_EQ(Match(R"({"k4999": 4998})", m.c_str()), 0);
}

TEST(FilterCheck, InvalidFiltersNameTheirPart) {
  struct Bad {
    const char *filter, *part;
  } bad[] = {
      {"not json", "not valid JSON"},
      {"[1]", "not a JSON object"},
      {"5", "not a JSON object"},
      {R"({"a": {"$foo": 1}})", "$foo"},
      {R"({"$foo": [{"a": 1}]})", "$foo"},
      {R"({"$and": {"a": 1}})", "$and"},
      {R"({"$and": []})", "$and"},
      {R"({"$or": [1]})", "$or"},
      {R"({"$not": [{"a": 1}]})", "$not"},
      {R"({"a": [1, 2]})", "'a'"},
      {R"({"a": {"$in": 1}})", "$in"},
      {R"({"a": {"$nin": [[1]]}})", "$nin"},
      {R"({"a": {"$eq": {"x": 1}}})", "$eq"},
      {R"({"a": {"$gt": true}})", "$gt"},
      {R"({"a": {"$lte": null}})", "$lte"},
      {R"({"a": {"$gt": [1]}})", "$gt"},
      {R"({"a": {"$exists": 1}})", "$exists"},
      {R"({"a": {"b": 1}})", "'b'"},
      {R"({"a": {}})", "'a'"},
      {R"({"a..b": 1})", "a..b"},
      {R"({".a": 1})", ".a"},
      {R"({"a": 1, "a": 2})", "duplicate"},
  };
  for (const Bad &b : bad) {
    sx_error err = SX_ERROR_INIT;
    EXPECT_EQ(sx_filter_check(b.filter, &err), SX_INVALID_ARGUMENT) << b.filter;
    EXPECT_NE(strstr(err.message, b.part), nullptr) << b.filter << " gave: " << err.message;
    EXPECT_EQ(strchr(err.message, '\n'), nullptr);
  }
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_filter_check(nullptr, &err), SX_INVALID_ARGUMENT);
  std::string deep;
  for (int i = 0; i < 70; i++) deep += R"({"$not": )";
  deep += "{}";
  for (int i = 0; i < 70; i++) deep += "}";
  EXPECT_EQ(sx_filter_check(deep.c_str(), &err), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "nested"), nullptr) << err.message;
  EXPECT_EQ(sx_filter_check(R"({"a": {"$gte": 1, "$lt": "z"}, "$or": [{"b": null}]})", &err),
            SX_OK);
  EXPECT_EQ(sx_filter_check("{}", &err), SX_OK);
}

// ---- through the API -------------------------------------------------------------

struct Db {
  TmpDir tmp{"filter"};
  sx_db *db = nullptr;
  // threads 1: graphs built in one thread are the same at every run
  explicit Db(uint32_t threads = 0) {
    sx_open_options o = SX_OPEN_OPTIONS_INIT;
    o.sync = SX_SYNC_OFF;
    o.threads = threads;
    sx_error err = SX_ERROR_INIT;
    EXPECT_EQ(sx_db_open(&db, tmp.db.c_str(), &o, &err), SX_OK) << err.message;
  }
  ~Db() {
    sx_db_free(db);
  }
};

sx_write *Begin(sx_db *db) {
  sx_write *w = nullptr;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK) << err.message;
  return w;
}

void Create(sx_write *w, const char *name, uint32_t dim, sx_index_type index) {
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = dim;
  co.index = index;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_write_create_collection(w, name, &co, &err), SX_OK) << err.message;
}

// n generated vectors "<prefix><i>" with metadata {"i": i, "c": i % m}, in batches.
void Fill(sx_write *w, const char *name, size_t n, uint32_t dim, uint64_t seed, size_t m,
          const char *prefix = "v") {
  std::vector<float> vecs = sxt::Gen(seed, n, dim);
  const size_t B = 2048;
  for (size_t at = 0; at < n; at += B) {
    size_t nb = std::min(B, n - at);
    std::vector<std::string> ids, metas;
    for (size_t i = at; i < at + nb; i++) {
      ids.push_back(prefix + std::to_string(i));
      metas.push_back("{\"i\": " + std::to_string(i) + ", \"c\": " + std::to_string(i % m) + "}");
    }
    std::vector<const char *> ip, mp;
    for (size_t i = 0; i < nb; i++) ip.push_back(ids[i].c_str()), mp.push_back(metas[i].c_str());
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_write_upsert(w, name, nb, ip.data(), vecs.data() + at * dim, dim, mp.data(), &err),
              SX_OK)
        << err.message;
  }
}

// A committed collection "c" of Fill's n items (seed, m) and a read view of it.
void CommitAndView(Db &d, sx_index_type index, uint32_t dim, size_t n, uint64_t seed, size_t m,
                   sx_read **r, sx_collection **c) {
  sx_write *w = Begin(d.db);
  Create(w, "c", dim, index);
  Fill(w, "c", n, dim, seed, m);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
  ASSERT_EQ(sx_read_begin(d.db, r, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_read_collection(*r, "c", c, &err), SX_OK) << err.message;
}

struct Hits {
  std::vector<std::string> ids;
  std::vector<float> dist;
};

sx_status Search(sx_collection *c, const float *q, uint32_t dim, size_t k, const char *filter,
                 Hits *out, uint32_t exact = 0, uint32_t ef = 0, sx_error *errp = nullptr) {
  sx_search_options o = SX_SEARCH_OPTIONS_INIT;
  o.filter = filter;
  o.exact = exact;
  o.ef = ef;
  sx_results *res = nullptr;
  sx_error err = SX_ERROR_INIT;
  sx_status rc = sx_collection_search(c, q, dim, k, &o, &res, errp ? errp : &err);
  if (rc) return rc;
  out->ids.clear();
  out->dist.clear();
  for (size_t i = 0; i < sx_results_count(res, 0); i++) {
    out->ids.push_back(sx_results_id(res, 0, i));
    out->dist.push_back(sx_results_distance(res, 0, i));
  }
  sx_results_free(res);
  return SX_OK;
}

// The ids of the n items (generated by Fill over [0, n)) whose metadata matches
// `pred`, ranked exactly for q: the brute force a filtered search must equal.
std::vector<std::string> Brute(const std::vector<float> &vecs, size_t n, uint32_t dim,
                               const float *q, size_t k, bool (*pred)(size_t i, size_t m), size_t m,
                               const char *prefix = "v") {
  std::vector<std::pair<double, std::string>> all;
  for (size_t i = 0; i < n; i++) {
    if (!pred(i, m)) continue;
    double d = 0;
    for (uint32_t j = 0; j < dim; j++) {
      double x = (double)vecs[i * dim + j] - q[j];
      d += x * x;
    }
    all.push_back({d, prefix + std::to_string(i)});
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> ids;
  for (size_t i = 0; i < all.size() && i < k; i++) ids.push_back(all[i].second);
  return ids;
}

class FilterSearch : public ::testing::TestWithParam<sx_index_type> {};

TEST_P(FilterSearch, MatchesBruteForceOverTheMatchingItems) {
  Db d;
  const uint32_t dim = 8;
  const size_t n = 3000, m = 7;
  sx_read *r = nullptr;
  sx_collection *c = nullptr;
  ASSERT_NO_FATAL_FAILURE(CommitAndView(d, GetParam(), dim, n, 11, m, &r, &c));
  std::vector<float> vecs = sxt::Gen(11, n, dim), qs = sxt::Gen(99, 5, dim);
  struct F {
    const char *filter;
    bool (*pred)(size_t, size_t);
  } fs[] = {
      {R"({"c": 3})", [](size_t i, size_t mm) { return i % mm == 3; }},
      {R"({"c": {"$in": [1, 2]}, "i": {"$lt": 1500}})",
       [](size_t i, size_t mm) { return i % mm >= 1 && i % mm <= 2 && i < 1500; }},
      {R"({"$or": [{"i": {"$lt": 10}}, {"i": {"$gte": 2990}}]})",
       [](size_t i, size_t) { return i < 10 || i >= 2990; }},
      {R"({"$not": {"c": {"$ne": 0}}})", [](size_t i, size_t mm) { return i % mm == 0; }},
      {R"({"i": 1234})", [](size_t i, size_t) { return i == 1234; }},
      {R"({"i": -1})", [](size_t, size_t) { return false; }},
      {"{}", [](size_t, size_t) { return true; }},
  };
  for (const F &f : fs) {
    for (size_t q = 0; q < 5; q++) {
      Hits h;
      ASSERT_EQ(Search(c, &qs[q * dim], dim, 10, f.filter, &h, 1), SX_OK) << f.filter;
      EXPECT_EQ(h.ids, Brute(vecs, n, dim, &qs[q * dim], 10, f.pred, m)) << f.filter;
      if (GetParam() == SX_INDEX_FLAT || strcmp(f.filter, "{}") != 0) {
        ASSERT_EQ(Search(c, &qs[q * dim], dim, 10, f.filter, &h, 0, 200), SX_OK) << f.filter;
        std::vector<std::string> want = Brute(vecs, n, dim, &qs[q * dim], 10, f.pred, m);
        size_t found = 0;
        for (auto &id : h.ids) found += std::count(want.begin(), want.end(), id);
        EXPECT_GE(found + 1, want.size()) << f.filter;  // approximate at most one off
        EXPECT_LE(h.ids.size(), want.size());
      }
    }
  }
  sx_collection_free(c);
  sx_read_free(r);
}

// Any k and ef are answers, not crashes: k beyond the collection returns every match
// (a k of 2^62 once made the filtered walk's choice divide by zero), and an ef beyond
// the collection is the exhaustive walk (an ef of 2^31 once sized gigabytes and failed
// with NOMEM). Each must equal the brute force over the matching items.
TEST_P(FilterSearch, HugeKAndEfAreExhaustive) {
  Db d;
  const uint32_t dim = 8;
  const size_t n = 300, m = 3;
  sx_read *r = nullptr;
  sx_collection *c = nullptr;
  ASSERT_NO_FATAL_FAILURE(CommitAndView(d, GetParam(), dim, n, 12, m, &r, &c));
  sx_error err = SX_ERROR_INIT;
  std::vector<float> vecs = sxt::Gen(12, n, dim), qs = sxt::Gen(98, 3, dim);
  const size_t ks[] = {n, n + 1, (size_t)1 << 31, (size_t)1 << 62, SIZE_MAX};
  const uint32_t efs[] = {0, (uint32_t)1 << 31, UINT32_MAX};
  for (const char *filter : {(const char *)nullptr, R"({"c": 1})"}) {
    bool (*pred)(size_t, size_t) = filter ? +[](size_t i, size_t mm) { return i % mm == 1; }
                                          : +[](size_t, size_t) { return true; };
    for (size_t q = 0; q < 3; q++) {
      std::vector<std::string> want = Brute(vecs, n, dim, &qs[q * dim], n, pred, m);
      for (size_t k : ks) {
        for (uint32_t ef : efs) {
          Hits h;
          ASSERT_EQ(Search(c, &qs[q * dim], dim, k, filter, &h, 0, ef, &err), SX_OK)
              << err.message << " k " << k << " ef " << ef;
          EXPECT_EQ(h.ids, want) << "k " << k << " ef " << ef << " filter "
                                 << (filter ? filter : "none");
        }
      }
      // The same through a batch of two.
      std::vector<float> two(qs.begin() + q * dim, qs.begin() + (q + 1) * dim);
      two.insert(two.end(), two.begin(), two.end());
      sx_search_options o = SX_SEARCH_OPTIONS_INIT;
      o.filter = filter;
      o.ef = UINT32_MAX;
      sx_results *res = nullptr;
      ASSERT_EQ(sx_collection_search_batch(c, two.data(), 2, dim, SIZE_MAX, &o, &res, &err), SX_OK)
          << err.message;
      for (size_t b = 0; b < 2; b++) {
        std::vector<std::string> got;
        for (size_t i = 0; i < sx_results_count(res, b); i++)
          got.push_back(sx_results_id(res, b, i));
        EXPECT_EQ(got, want) << "batch query " << b;
      }
      sx_results_free(res);
    }
  }
  sx_collection_free(c);
  // An empty collection answers nothing, whatever k and ef ask.
  sx_write *w2 = Begin(d.db);
  Create(w2, "e", dim, GetParam());
  for (const char *filter : {(const char *)nullptr, "{}"}) {
    sx_collection *e = nullptr;
    ASSERT_EQ(sx_write_collection(w2, "e", &e, &err), SX_OK) << err.message;
    for (size_t k : ks) {
      for (uint32_t ef : efs) {
        Hits h;
        ASSERT_EQ(Search(e, qs.data(), dim, k, filter, &h, 0, ef, &err), SX_OK)
            << err.message << " empty, k " << k << " ef " << ef;
        EXPECT_TRUE(h.ids.empty());
      }
    }
    sx_collection_free(e);
  }
  sx_write_abort(w2);
  sx_write_free(w2);
  sx_read_free(r);
}

TEST_P(FilterSearch, DeletedAndReupsertedItems) {
  Db d;
  const uint32_t dim = 4;
  sx_write *w = Begin(d.db);
  Create(w, "c", dim, GetParam());
  Fill(w, "c", 200, dim, 5, 4);
  sx_error err = SX_ERROR_INIT;
  // Delete every item with c = 1 but v1; re-upsert v2 (c = 2) with c = 1.
  std::vector<std::string> del;
  for (size_t i = 5; i < 200; i += 4) del.push_back("v" + std::to_string(i));
  std::vector<const char *> dp;
  for (auto &s : del) dp.push_back(s.c_str());
  size_t gone = 0;
  ASSERT_EQ(sx_write_delete(w, "c", dp.size(), dp.data(), &gone, &err), SX_OK);
  ASSERT_EQ(gone, del.size());
  const char *id = "v2";
  const char *meta = R"({"c": 1, "moved": true})";
  std::vector<float> v(dim, 0.5f);
  ASSERT_EQ(sx_write_upsert(w, "c", 1, &id, v.data(), dim, &meta, &err), SX_OK);
  auto check = [&](sx_collection *c) {
    Hits h;
    ASSERT_EQ(Search(c, v.data(), dim, 50, R"({"c": 1})", &h), SX_OK);
    std::set<std::string> got(h.ids.begin(), h.ids.end());
    EXPECT_EQ(got, (std::set<std::string>{"v1", "v2"}));
    ASSERT_EQ(Search(c, v.data(), dim, 50, R"({"moved": true})", &h), SX_OK);
    EXPECT_EQ(h.ids, std::vector<std::string>{"v2"});
    ASSERT_EQ(Search(c, v.data(), dim, 500, R"({"c": 2})", &h), SX_OK);
    EXPECT_EQ(h.ids.size(), 49u);  // v2 left c = 2
    ASSERT_EQ(Search(c, v.data(), dim, 500, R"({"c": 1})", &h, 1), SX_OK);
    EXPECT_EQ(h.ids.size(), 2u);
  };
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_write_collection(w, "c", &c, &err), SX_OK);
  check(c);  // the write session sees its own changes
  sx_collection_free(c);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  ASSERT_EQ(sx_read_collection(r, "c", &c, &err), SX_OK);
  check(c);
  sx_collection_free(c);
  sx_read_free(r);
}

// A filter whose only operands are empty $in/$nin lists compiles to no operand at
// all: evaluating it against items that have the field must not index the empty
// operand array (clang's UBSan: a zero offset applied to its NULL pointer; found by
// fuzz_api, kept in tests/fuzz/regress/api/in-empty-list-alone).
TEST_P(FilterSearch, EmptyInAndNinListsAlone) {
  Db d;
  const uint32_t dim = 2;
  sx_write *w = Begin(d.db);
  Create(w, "c", dim, GetParam());
  Fill(w, "c", 20, dim, 3, 4);
  sx_error err = SX_ERROR_INIT;
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_write_collection(w, "c", &c, &err), SX_OK);
  const float q[dim] = {0, 0};
  Hits h;
  ASSERT_EQ(Search(c, q, dim, 50, R"({"c": {"$in": []}})", &h), SX_OK);
  EXPECT_TRUE(h.ids.empty());
  ASSERT_EQ(Search(c, q, dim, 50, R"({"c": {"$nin": []}})", &h), SX_OK);
  EXPECT_EQ(h.ids.size(), 20u);
  ASSERT_EQ(Search(c, q, dim, 50, R"({"$or": [{"c": {"$in": []}}, {"i": {"$nin": []}}]})", &h),
            SX_OK);
  EXPECT_EQ(h.ids.size(), 20u);
  sx_collection_free(c);
  EXPECT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
}

TEST_P(FilterSearch, BatchEqualsOneByOne) {
  Db d;
  const uint32_t dim = 16;
  const size_t n = 4000, nq = 12;
  sx_read *r = nullptr;
  sx_collection *c = nullptr;
  ASSERT_NO_FATAL_FAILURE(CommitAndView(d, GetParam(), dim, n, 3, 10, &r, &c));
  sx_error err = SX_ERROR_INIT;
  std::vector<float> qs = sxt::Gen(7, nq, dim);
  for (const char *f : {R"({"c": {"$lt": 5}})", R"({"c": 9, "i": {"$gt": 100}})"}) {
    for (uint32_t exact : {0u, 1u}) {
      sx_search_options o = SX_SEARCH_OPTIONS_INIT;
      o.filter = f;
      o.exact = exact;
      o.threads = 2;
      sx_results *res = nullptr;
      ASSERT_EQ(sx_collection_search_batch(c, qs.data(), nq, dim, 10, &o, &res, &err), SX_OK)
          << err.message;
      ASSERT_EQ(sx_results_queries(res), nq);
      for (size_t q = 0; q < nq; q++) {
        Hits h;
        ASSERT_EQ(Search(c, &qs[q * dim], dim, 10, f, &h, exact), SX_OK);
        ASSERT_EQ(sx_results_count(res, q), h.ids.size());
        for (size_t i = 0; i < h.ids.size(); i++)
          EXPECT_EQ(h.ids[i], sx_results_id(res, q, i)) << f;
      }
      sx_results_free(res);
    }
  }
  // An invalid filter fails the batch before any work.
  sx_search_options o = SX_SEARCH_OPTIONS_INIT;
  o.filter = R"({"c": {"$regex": "x"}})";
  sx_results *res = nullptr;
  EXPECT_EQ(sx_collection_search_batch(c, qs.data(), nq, dim, 10, &o, &res, &err),
            SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "$regex"), nullptr) << err.message;
  EXPECT_EQ(res, nullptr);
  sx_collection_free(c);
  sx_read_free(r);
}

TEST_P(FilterSearch, IncludeMetadataAndVectors) {
  Db d;
  const uint32_t dim = 3;
  sx_write *w = Begin(d.db);
  Create(w, "c", dim, GetParam());
  const char *ids[] = {"a", "b", "c"};
  float vecs[] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
  const char *metas[] = {R"({"k": "\u00e9", "n": 1})", nullptr, R"({"n": 3})"};
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_write_upsert(w, "c", 3, ids, vecs, dim, metas, &err), SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_write_collection(w, "c", &c, &err), SX_OK);
  float q[] = {0, 0, 0};
  sx_search_options o = SX_SEARCH_OPTIONS_INIT;
  sx_results *res = nullptr;
  // Not included: no metadata, no vectors.
  ASSERT_EQ(sx_collection_search(c, q, dim, 3, &o, &res, &err), SX_OK);
  EXPECT_EQ(sx_results_metadata(res, 0, 0), nullptr);
  EXPECT_EQ(sx_results_vector(res, 0, 0), nullptr);
  EXPECT_EQ(sx_results_dim(res), 0u);
  const size_t *off = nullptr;
  EXPECT_EQ(sx_results_metadata_data(res, &off), nullptr);
  EXPECT_EQ(off, nullptr);
  EXPECT_EQ(sx_results_vectors(res), nullptr);
  sx_results_free(res);
  o.include = SX_INCLUDE_METADATA | SX_INCLUDE_VECTOR;
  ASSERT_EQ(sx_collection_search(c, q, dim, 3, &o, &res, &err), SX_OK);
  ASSERT_EQ(sx_results_count(res, 0), 3u);
  EXPECT_STREQ(sx_results_metadata(res, 0, 0), metas[0]);
  EXPECT_EQ(sx_results_metadata(res, 0, 1), nullptr);
  EXPECT_STREQ(sx_results_metadata(res, 0, 2), metas[2]);
  EXPECT_EQ(sx_results_metadata(res, 0, 3), nullptr);
  EXPECT_EQ(sx_results_metadata(res, 1, 0), nullptr);
  ASSERT_EQ(sx_results_dim(res), dim);
  for (size_t i = 0; i < 3; i++) {
    const float *v = sx_results_vector(res, 0, i);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(0, memcmp(v, vecs + i * dim, dim * 4));
  }
  EXPECT_EQ(sx_results_vector(res, 0, 3), nullptr);
  EXPECT_EQ(0, memcmp(sx_results_vectors(res), vecs, sizeof vecs));
  const char *md = sx_results_metadata_data(res, &off);
  ASSERT_NE(md, nullptr);
  EXPECT_STREQ(md + off[0], metas[0]);
  EXPECT_EQ(off[1] - off[0], strlen(metas[0]) + 1);
  EXPECT_EQ(off[2], off[1]);  // b has none: an empty range
  EXPECT_STREQ(md + off[2], metas[2]);
  EXPECT_EQ(off[3], off[2] + strlen(metas[2]) + 1);
  sx_results_free(res);
  // Only metadata, with a filter; and a batch with one query per hit.
  o.include = SX_INCLUDE_METADATA;
  o.filter = R"({"n": {"$gte": 2}})";
  ASSERT_EQ(sx_collection_search(c, q, dim, 3, &o, &res, &err), SX_OK);
  ASSERT_EQ(sx_results_count(res, 0), 1u);
  EXPECT_STREQ(sx_results_id(res, 0, 0), "c");
  EXPECT_STREQ(sx_results_metadata(res, 0, 0), metas[2]);
  EXPECT_EQ(sx_results_vectors(res), nullptr);
  sx_results_free(res);
  o.include = SX_INCLUDE_VECTOR;
  o.filter = nullptr;
  ASSERT_EQ(sx_collection_search_batch(c, vecs, 3, dim, 1, &o, &res, &err), SX_OK);
  for (size_t qq = 0; qq < 3; qq++) {
    ASSERT_EQ(sx_results_count(res, qq), 1u);
    EXPECT_EQ(0, memcmp(sx_results_vector(res, qq, 0), vecs + qq * dim, dim * 4));
  }
  sx_results_free(res);
  // Unknown include bits are an invalid argument.
  o.include = 4;
  EXPECT_EQ(sx_collection_search(c, q, dim, 3, &o, &res, &err), SX_INVALID_ARGUMENT);
  sx_collection_free(c);
  sx_write_free(w);
}

INSTANTIATE_TEST_SUITE_P(Index, FilterSearch, ::testing::Values(SX_INDEX_FLAT, SX_INDEX_HNSW),
                         [](const ::testing::TestParamInfo<sx_index_type> &i) {
                           return std::string(i.param == SX_INDEX_FLAT ? "flat" : "hnsw");
                         });

// Metadata damaged on its page (written over inside a write transaction, below the
// checksums that would catch it on disk): a search whose filter reads it fails with
// CORRUPT, flat or HNSW, scan or walk; a search without a filter does not read it.
TEST_P(FilterSearch, DamagedMetadataFailsTheSearchWithCorrupt) {
  Db d;
  const uint32_t dim = 4;
  sx_write *w = Begin(d.db);
  Create(w, "c", dim, GetParam());
  Fill(w, "c", 300, dim, 8, 3);
  sx__pv v;
  sx__write_pv(w, &v);
  sx__coll coll;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__coll_open(&v, "c", &coll, &err), SX_OK) << err.message;
  const uint8_t *h = nullptr;
  ASSERT_EQ(sx__pv_page(&v, coll.hdr, &h, &err), SX_OK);
  sx__slotrec rec;
  ASSERT_EQ(sx__slot_read(&coll, h, 7, &rec, &err), SX_OK);  // slot 7 holds v7
  ASSERT_NE(rec.meta_len, SX__NO_META);
  std::string junk(rec.meta_len, '[');
  ASSERT_EQ(sx__pa_write(sx__write_txn(w), coll.hdr, SX__H_PA_HEAP, rec.meta_off, junk.data(),
                         junk.size(), &err),
            SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_write_collection(w, "c", &c, &err), SX_OK);
  std::vector<float> q = sxt::Gen(8, 8, dim);  // v7 is the query itself: met by every search
  const float *q7 = &q[7 * dim];
  Hits hits;
  EXPECT_EQ(Search(c, q7, dim, 5, nullptr, &hits), SX_OK);
  // A small ef and a filter that matches everything: HNSW walks the graph.
  for (const char *f : {R"({"c": 1})", R"({"c": {"$ne": 5}})"}) {
    for (uint32_t exact : {0u, 1u}) {
      sx_error e2 = SX_ERROR_INIT;
      EXPECT_EQ(Search(c, q7, dim, 5, f, &hits, exact, 2, &e2), SX_CORRUPT) << f << exact;
      EXPECT_NE(strstr(e2.message, "slot 7"), nullptr) << e2.message;
    }
  }
  sx_collection_free(c);
  sx_write_free(w);
}

TEST(FilterOptions, OlderVersionsStillWork) {
  Db d;
  sx_write *w = Begin(d.db);
  Create(w, "c", 2, SX_INDEX_FLAT);
  const char *id = "a";
  float v[] = {1, 2};
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_write_upsert(w, "c", 1, &id, v, 2, nullptr, &err), SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_write_collection(w, "c", &c, &err), SX_OK);
  for (unsigned ver : {1u, 2u, 3u}) {
    sx_search_options o;
    ASSERT_EQ(sx_search_options_init(&o, ver), SX_OK);
    EXPECT_EQ(o.filter, nullptr);
    EXPECT_EQ(o.include, 0u);
    EXPECT_EQ(o.exact, 0u);
    sx_results *res = nullptr;
    ASSERT_EQ(sx_collection_search(c, v, 2, 1, &o, &res, &err), SX_OK) << ver;
    EXPECT_EQ(sx_results_count(res, 0), 1u);
    sx_results_free(res);
  }
  sx_search_options o;
  EXPECT_EQ(sx_search_options_init(&o, 4), SX_INVALID_ARGUMENT);
  sx_collection_free(c);
  sx_write_free(w);
}

// Recall of filtered HNSW searches against the exact answer, at selectivities from
// 100% down to 0.1%: the walk through non-matching nodes, and the scan of the
// matching items when they are few, keep it at every one.
TEST(FilterRecall, HnswAtEverySelectivity) {
  Db d(1);
  const uint32_t dim = 32;
  const size_t n = 20000, nq = 40, k = 10;
  sx_write *w = Begin(d.db);
  Create(w, "c", dim, SX_INDEX_HNSW);
  Fill(w, "c", n, dim, 21, 1000);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(d.db, &r, &err), SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_read_collection(r, "c", &c, &err), SX_OK);
  std::vector<float> qs = sxt::Gen(77, nq, dim);
  // c = i % 1000: c < s * 1000 selects s of the items.
  for (int permille : {0, 1000, 500, 100, 10, 1}) {
    // 0: no filter at all, the recall the graph gives unfiltered (printed only)
    std::string f = permille ? "{\"c\": {\"$lt\": " + std::to_string(permille) + "}}" : "{}";
    double sum = 0;
    for (size_t q = 0; q < nq; q++) {
      Hits got, want;
      ASSERT_EQ(Search(c, &qs[q * dim], dim, k, f.c_str(), &got, 0, 64), SX_OK);
      ASSERT_EQ(Search(c, &qs[q * dim], dim, k, f.c_str(), &want, 1), SX_OK);
      ASSERT_EQ(want.ids.size(), std::min(k, permille ? n * permille / 1000 : n));
      std::set<std::string> ws(want.ids.begin(), want.ids.end());
      size_t hit = 0;
      for (auto &id : got.ids) hit += ws.count(id);
      EXPECT_LE(got.ids.size(), k);
      sum += (double)hit / (double)want.ids.size();
    }
    double recall = sum / nq;
    if (permille) {
      EXPECT_GE(recall, 0.95) << "selectivity " << permille / 10.0 << "%";
    }
    printf("selectivity %5.1f%%: recall@%zu %.3f\n", permille / 10.0, k, recall);
  }
  // The walk alone, where the collection layer would scan instead: it must still
  // find the matching items through the ones that do not match.
  sx__pv v;
  sx__read_pv(r, &v);
  sx__coll coll;
  ASSERT_EQ(sx__coll_open(&v, "c", &coll, &err), SX_OK) << err.message;
  const uint8_t *h = nullptr;
  ASSERT_EQ(sx__pv_page(&v, coll.hdr, &h, &err), SX_OK);
  sx__hnsw_layout lay;
  sx__coll_hnsw_layout(coll.hdr, &lay);
  sx__hnsw *g = nullptr;
  ASSERT_EQ(sx__hnsw_open(&v, &lay, coll.dim, coll.metric, coll.m, coll.efc, &g, &err), SX_OK);
  for (int permille : {100, 10, 1}) {
    std::string f = "{\"c\": {\"$lt\": " + std::to_string(permille) + "}}";
    sx__filter *fl = nullptr;
    ASSERT_EQ(sx__filter_compile(f.c_str(), &fl, &err), SX_OK);
    sx__fstate fs;
    sx__fstate_init(&fs, &coll, h, fl);
    sx__hnsw_filter hf = {[](void *ctx, uint64_t slot, sx_error *e) {
                            return sx__filter_slot((sx__fstate *)ctx, slot, e);
                          },
                          &fs};
    double sum = 0;
    for (size_t q = 0; q < nq; q++) {
      Hits want;
      ASSERT_EQ(Search(c, &qs[q * dim], dim, k, f.c_str(), &want, 1), SX_OK);
      std::vector<sx__hit> hits(64);
      size_t nh = 0;
      ASSERT_EQ(sx__hnsw_search_filtered(g, &qs[q * dim], k, 64, &hf, hits.data(), &nh, &err),
                SX_OK);
      std::set<std::string> ws(want.ids.begin(), want.ids.end());
      size_t hit = 0;
      for (size_t i = 0; i < nh && i < k; i++) {
        char id[SX_ID_MAX + 1];
        ASSERT_EQ(sx__slot_id(&coll, h, hits[i].slot, id, nullptr, &err), SX_OK);
        hit += ws.count(id);
      }
      sum += (double)hit / (double)want.ids.size();
    }
    sx__fstate_free(&fs);
    sx__filter_free(fl);
    double recall = sum / nq;
    EXPECT_GE(recall, 0.95) << "walk at selectivity " << permille / 10.0 << "%";
    printf("walk alone, selectivity %5.1f%%: recall@%zu %.3f\n", permille / 10.0, k, recall);
  }
  sx__hnsw_close(g);
  sx_collection_free(c);
  sx_read_free(r);
}

}  // namespace
