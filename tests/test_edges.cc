// Edges of the argument checks: float32 vectors whose norms or dot products overflow
// or underflow (no NaN distance, ever), k far beyond the collection, and what a
// database needs of its directory to be opened.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
  return sxt::OpenNoSync(path);
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
    EXPECT_EQ(Upsert1(w, cn.c_str(), "d", std::vector<float>(8, 1e-45f), &err),
              SX_INVALID_ARGUMENT);
    EXPECT_NE(strstr(err.message, "underflows float32"), nullptr) << err.message;
    EXPECT_EQ(Upsert1(w, cn.c_str(), "d", std::vector<float>(8, 1e-23f), &err),
              SX_INVALID_ARGUMENT);
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
  std::vector<float> ext = {
      FLT_MAX, -FLT_MAX, 1.401298464324817e-45f, -1.401298464324817e-45f, 1, 1, 1, 1};
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
  const std::vector<std::string> bad = {"",
                                        "[]",
                                        "1",
                                        "\"s\"",
                                        "{",
                                        "{\"a\":1,}",
                                        "{\"a\":1}x",
                                        "{\"a\" 1}",
                                        "{'a':1}",
                                        "{\"a\":01}",
                                        "{\"a\":1.}",
                                        "{\"a\":.5}",
                                        "{\"a\":1e}",
                                        "{\"a\":+1}",
                                        "{\"a\":tru}",
                                        "{\"a\":NaN}",
                                        "{\"a\":\"\\x\"}",
                                        "{\"a\":\"\\u12\"}",
                                        "{\"a\":\"\\ud800\"}",
                                        "{\"a\":\"\\udc00x\"}",
                                        "{\"a\":\"\t\"}",
                                        "{\"a\":\"\xff\"}",
                                        "{\"a\":\"\xc0\x80\"}",
                                        "{\"a\":1,\"a\":2}",
                                        "{\"a\\u0000\":1,\"a\\u0000\":2}",
                                        "{\"x\":{\"b\":1,\"b\":1}}",
                                        "{\"a\":1} {}",
                                        "{\"a\":[1,]}",
                                        "{\"a\":[1 2]}",
                                        "{1:2}",
                                        "{\"\":1,\"\":2}"};
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

// ---- issue 19 item 11: what an open needs of its files ---------------------------

bool Exists(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// An open that fails because P is not a database (garbage, too short, a directory, a
// FIFO) leaves no P-shm, P-wal or P-wal2 behind, read-only or not.
TEST(Open, FailedOpensLeaveNoFilesBehind) {
  TmpDir t("strayshm");
  std::string garbage(8192, 'x');
  for (int kind = 0; kind < 4; kind++) {
    std::string p = t.path(("db" + std::to_string(kind)).c_str());
    if (kind == 0 || kind == 1) {
      FILE *f = fopen(p.c_str(), "wb");
      ASSERT_NE(f, nullptr);
      fwrite(garbage.data(), 1, kind == 0 ? garbage.size() : 10, f);
      fclose(f);
    } else if (kind == 2) {
      ASSERT_EQ(mkdir(p.c_str(), 0755), 0);
    } else {
      ASSERT_EQ(mkfifo(p.c_str(), 0644), 0);
    }
    for (int ro = 0; ro < 2; ro++) {
      sx_open_options o = SX_OPEN_OPTIONS_INIT;
      o.read_only = ro;
      sx_db *db = nullptr;
      sx_error err = SX_ERROR_INIT;
      EXPECT_NE(sx_db_open(&db, p.c_str(), &o, &err), SX_OK) << "kind " << kind;
      sx_db_free(db);
      for (const char *suf : {"-shm", "-wal", "-wal2"})
        EXPECT_FALSE(Exists(p + suf)) << "kind " << kind << (ro ? " read-only" : "") << ": " << suf
                                      << " left behind (" << err.message << ")";
    }
  }
}

// Fills a database: 50 vectors committed; with `crash`, a child process commits 20
// more and exits without closing, so that they are only in the WAL.
void FillForReadOnly(const std::string &path, bool crash) {
  sx_db *db = Open(path);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  Create(w, "c", 4, SX_METRIC_L2, SX_INDEX_HNSW);
  std::vector<float> v = sxt::Gen(3, 70, 4);
  std::vector<std::string> ids;
  std::vector<const char *> ip;
  for (int i = 0; i < 70; i++) ids.push_back("v" + std::to_string(i));
  for (auto &x : ids) ip.push_back(x.c_str());
  ASSERT_EQ(sx_write_upsert(w, "c", 50, ip.data(), v.data(), 4, nullptr, &err), SX_OK);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  if (!crash) {
    sx_db_free(db);
    return;
  }
  sx_db_free(db);
  pid_t pid = fork();
  if (pid == 0) {
    sx_db *d2 = Open(path);
    sx_write *w2 = nullptr;
    if (!d2 || sx_write_begin(d2, 0, &w2, &err) ||
        sx_write_upsert(w2, "c", 20, ip.data() + 50, v.data() + 200, 4, nullptr, &err) ||
        sx_write_commit(w2, &err))
      _exit(1);
    _exit(0);  // no close: the commit stays in the WAL
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

// Opens path read-only and returns the count of "c" (-1 on failure, message in msg).
long ReadOnlyCount(const std::string &path, std::string *msg) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.read_only = 1;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  long n = -1;
  if (sx_db_open(&db, path.c_str(), &o, &err) == SX_OK) {
    sx_read *r = nullptr;
    sx_collection *c = nullptr;
    uint64_t cnt = 0;
    if (sx_read_begin(db, &r, &err) == SX_OK && sx_read_collection(r, "c", &c, &err) == SX_OK &&
        sx_collection_count(c, &cnt, &err) == SX_OK && sx_db_check(db, &err) == SX_OK) {
      std::vector<float> q(4, 0.1f);
      sx_results *res = nullptr;
      if (sx_collection_search(c, q.data(), 4, 100, nullptr, &res, &err) == SX_OK &&
          sx_results_count(res, 0) == cnt)
        n = (long)cnt;
      sx_results_free(res);
    }
    sx_collection_free(c);
    sx_read_free(r);
    // Writes are refused as on any read-only handle.
    sx_write *w = nullptr;
    if (n >= 0 && sx_write_begin(db, 0, &w, &err) != SX_READ_ONLY) n = -2;
    sx_write_free(w);
  }
  *msg = err.message;
  sx_db_free(db);
  return n;
}

// P-shm is never read from disk: an opener with no other process attached rebuilds it
// from P and the WAL, so whatever a leftover P-shm holds (garbage of any length, or
// a valid wal-index of another state at this path, where "c" is empty) never decides
// what is read. Read-only and read-write.
TEST(Open, LeftoverSharedIndexIsRebuiltByALoneOpener) {
  TmpDir t("oldshm");
  std::string db = t.path("d.sx");
  // The wal-index a process left when it died after its commit (an empty collection
  // "c"), at the same path, so nothing in it says it belongs to another file.
  pid_t pid = fork();
  if (pid == 0) {
    sx_db *h = Open(db);
    sx_error err = SX_ERROR_INIT;
    sx_write *w = nullptr;
    if (!h || sx_write_begin(h, 0, &w, &err)) _exit(1);
    sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
    co.dim = 4;
    co.index = SX_INDEX_HNSW;
    if (sx_write_create_collection(w, "c", &co, &err) || sx_write_commit(w, &err)) _exit(2);
    _exit(0);  // empty collection, in the WAL only
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  const std::vector<uint8_t> stale = sxt::ReadBytes(db + "-shm");
  ASSERT_GT(stale.size(), 0u);
  ASSERT_NO_FATAL_FAILURE(FillForReadOnly(t.path("e.sx"), true));  // 70 vectors, 20 in the WAL
  const std::vector<uint8_t> p = sxt::ReadBytes(t.path("e.sx")),
                             wal = sxt::ReadBytes(t.path("e.sx") + "-wal");
  std::vector<std::vector<uint8_t>> leftovers;
  leftovers.push_back({});
  leftovers.push_back(std::vector<uint8_t>(100, 0xa5));
  std::vector<uint8_t> big(1 << 20);
  uint64_t rng = 11;
  for (auto &b : big) b = (uint8_t)sx_test_splitmix64(&rng);
  leftovers.push_back(big);
  leftovers.push_back(stale);
  for (size_t k = 0; k < leftovers.size(); k++) {
    for (int ro = 0; ro < 2; ro++) {
      SCOPED_TRACE("leftover " + std::to_string(k) + (ro ? ", read-only" : ""));
      ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(db, p.data(), p.size()));
      ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(db + "-wal", wal.data(), wal.size()));
      unlink((db + "-wal2").c_str());
      ASSERT_NO_FATAL_FAILURE(
          sxt::WriteBytes(db + "-shm", leftovers[k].data(), leftovers[k].size()));
      std::string msg;
      long n = -1;
      if (ro) {
        n = ReadOnlyCount(db, &msg);
      } else {
        sx_db *h = Open(db);
        sx_error err = SX_ERROR_INIT;
        sx_read *r = nullptr;
        sx_collection *c = nullptr;
        uint64_t cnt = 0;
        if (h && sx_read_begin(h, &r, &err) == SX_OK &&
            sx_read_collection(r, "c", &c, &err) == SX_OK &&
            sx_collection_count(c, &cnt, &err) == SX_OK && sx_db_check(h, &err) == SX_OK)
          n = (long)cnt;
        msg = err.message;
        sx_collection_free(c);
        sx_read_free(r);
        sx_db_free(h);
      }
      EXPECT_EQ(n, 70) << msg;
    }
  }
}

// A database on a read-only file system opens read-only (a private wal-index in
// memory stands in for P-shm, which cannot be made or written), with what only its
// WAL holds; a read-write open fails with a clear error. As root the test mounts a
// tmpfs in a mount namespace of its own and remounts it read-only; otherwise it takes
// write permission away from the directory and the files.
TEST(Open, ReadOnlyFileSystemOpensReadOnly) {
  TmpDir t("rofs");
  std::string mnt = t.path("mnt");
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  pid_t pid = fork();
  if (pid == 0) {
    bool root = geteuid() == 0;
    if (root) {
      if (unshare(CLONE_NEWNS) != 0 ||
          mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m") != 0)
        _exit(77);
    }
    int bad = 0;
    for (int crash = 0; crash < 2; crash++) {
      std::string db = mnt + "/d" + std::to_string(crash) + ".sx";
      FillForReadOnly(db, crash);
      if (::testing::Test::HasFailure()) _exit(10);
    }
    if (root) {
      if (mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0) _exit(78);
    } else {
      for (const char *f : {"d0.sx", "d1.sx", "d1.sx-wal", "d1.sx-wal2", "d1.sx-shm", "d0.sx-shm",
                            "d0.sx-wal", "d0.sx-wal2"})
        chmod((mnt + "/" + f).c_str(), 0444);
      chmod(mnt.c_str(), 0555);
    }
    for (int crash = 0; crash < 2; crash++) {
      std::string db = mnt + "/d" + std::to_string(crash) + ".sx", msg;
      long n = ReadOnlyCount(db, &msg);
      long want = crash ? 70 : 50;
      if (n != want) {
        fprintf(stderr, "read-only open of %s: count %ld, want %ld: %s\n", db.c_str(), n, want,
                msg.c_str());
        bad = 1;
      }
      sx_db *d = nullptr;
      sx_error err = SX_ERROR_INIT;
      sx_open_options o = SX_OPEN_OPTIONS_INIT;
      int rc = sx_db_open(&d, db.c_str(), &o, &err);
      if (rc == SX_OK) {
        fprintf(stderr, "read-write open of %s on a read-only file system succeeded\n", db.c_str());
        bad = 1;
      } else if (!strstr(err.message, db.c_str())) {
        fprintf(stderr, "read-write open error does not name the file: %s\n", err.message);
        bad = 1;
      }
      sx_db_free(d);
    }
    if (!root) chmod(mnt.c_str(), 0755);
    _exit(bad);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  if (WEXITSTATUS(st) == 77 || WEXITSTATUS(st) == 78) GTEST_SKIP() << "cannot mount a tmpfs here";
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

}  // namespace
