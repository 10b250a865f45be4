// API-sequence fuzzer: input bytes decode to calls on one database handle (create,
// drop, upsert, delete, get, count, search, begin, commit, abort, read sessions,
// checkpoint, close and reopen) on flat collections, each checked against a small
// in-memory model after every step: exact results, since vectors are small integers
// (l2 distances are exact in float32) and ties break by id. A difference aborts
// (the finding), as does any crash or sanitizer report.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

extern "C" {
#include "fuzz_common.h"
}

namespace {

const size_t kDim = 3;
const int kColls = 2;  // collections "c0", "c1" (flat, l2)

typedef std::map<std::string, std::vector<float>> Coll;  // id -> vector
typedef std::map<int, Coll> Model;                       // collection -> contents

struct In {
  const uint8_t *d;
  size_t n, i = 0;
  bool more() const {
    return i < n;
  }
  uint8_t byte() {
    return i < n ? d[i++] : 0;
  }
};

[[noreturn]] void Fail(const char *what, const std::string &detail) {
  fprintf(stderr, "MODEL MISMATCH: %s: %s\n", what, detail.c_str());
  abort();
}

std::string Id(uint8_t b) {
  return std::string("id") + std::to_string(b % 12);
}
std::string Name(int c) {
  return "c" + std::to_string(c);
}

float Dist(const std::vector<float> &a, const float *b) {
  float s = 0;
  for (size_t i = 0; i < kDim; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

struct State {
  std::string path;
  sx_db *db = nullptr;
  sx_write *w = nullptr;
  sx_read *r = nullptr;
  Model committed, pending, snap;  // snap: what the read session sees
  sx_error err = SX_ERROR_INIT;

  void Open() {
    db = fz_open(path.c_str(), 0);
    if (!db) Fail("open", "cannot open the database");
  }
  void EndWrite(bool commit) {
    if (!w) return;
    int rc = commit ? sx_write_commit(w, &err) : sx_write_abort(w);
    if (commit && rc) Fail("commit", err.message);
    if (commit) committed = pending;
    pending = committed;
    sx_write_free(w);
    w = nullptr;
  }
  void EndRead() {
    if (!r) return;
    sx_read_end(r);
    sx_read_free(r);
    r = nullptr;
  }
  void Close() {
    EndWrite(false);
    EndRead();
    sx_db_free(db);
    db = nullptr;
  }
};

// Checks a view against the model's collection (or its absence).
void CheckView(State &s, sx_collection *c, const Model &m, int coll, In &in) {
  auto it = m.find(coll);
  if (it == m.end()) Fail("view", "collection exists in the database but not in the model");
  const Coll &mc = it->second;
  uint64_t n = 0;
  if (sx_collection_count(c, &n, &s.err)) Fail("count", s.err.message);
  if (n != mc.size()) Fail("count", std::to_string(n) + " vs model " + std::to_string(mc.size()));
  // get
  std::string id = Id(in.byte());
  sx_record *rec = nullptr;
  int rc = sx_collection_get(c, id.c_str(), &rec, &s.err);
  auto mi = mc.find(id);
  if (mi == mc.end()) {
    if (rc != SX_NOT_FOUND) Fail("get", id + " should be missing, rc " + std::to_string(rc));
  } else {
    if (rc) Fail("get", id + ": " + s.err.message);
    size_t dim = 0;
    const float *v = sx_record_vector(rec, &dim);
    if (dim != kDim || memcmp(v, mi->second.data(), kDim * 4) != 0)
      Fail("get", id + " vector differs");
  }
  sx_record_free(rec);
  // search: exact top k by (distance, id)
  float q[kDim];
  for (size_t i = 0; i < kDim; i++) q[i] = (float)((int)(in.byte() % 9) - 4);
  size_t k = 1 + in.byte() % 6;
  sx_results *res = nullptr;
  rc = sx_collection_search(c, q, kDim, k, nullptr, &res, &s.err);
  if (rc) Fail("search", s.err.message);
  std::vector<std::pair<float, std::string>> want;
  for (auto &e : mc) want.push_back({Dist(e.second, q), e.first});
  std::sort(want.begin(), want.end());
  if (want.size() > k) want.resize(k);
  if (sx_results_count(res, 0) != want.size())
    Fail("search", std::to_string(sx_results_count(res, 0)) + " hits vs model " +
                       std::to_string(want.size()));
  for (size_t i = 0; i < want.size(); i++) {
    if (want[i].second != sx_results_id(res, 0, i) ||
        want[i].first != sx_results_distance(res, 0, i))
      Fail("search", "hit " + std::to_string(i) + " is " + sx_results_id(res, 0, i) + " vs model " +
                         want[i].second);
  }
  sx_results_free(res);
  // batch search of two queries equals the single one for the first
  float qs[2 * kDim];
  memcpy(qs, q, sizeof q);
  memcpy(qs + kDim, q, sizeof q);
  res = nullptr;
  rc = sx_collection_search_batch(c, qs, 2, kDim, k, nullptr, &res, &s.err);
  if (rc) Fail("search_batch", s.err.message);
  for (size_t qq = 0; qq < 2; qq++) {
    if (sx_results_count(res, qq) != want.size()) Fail("search_batch", "hit count");
    for (size_t i = 0; i < want.size(); i++)
      if (want[i].second != sx_results_id(res, qq, i)) Fail("search_batch", "hit order");
  }
  sx_results_free(res);
}

void CheckList(State &s, sx_names *names, const Model &m) {
  std::string got, want;
  for (size_t i = 0; i < sx_names_count(names); i++)
    got += std::string(sx_names_get(names, i)) + ",";
  for (auto &e : m) want += Name(e.first) + ",";
  if (got != want) Fail("list", got + " vs model " + want);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool once;
  if (!once) {
    once = true;
    atexit([] {
      fz_remove_db("a.sx");
      rmdir(fz_dir());
    });
  }
  State s;
  char p[512];
  fz_path(p, sizeof p, "a.sx");
  s.path = p;
  fz_remove_db("a.sx");
  s.Open();
  In in{data, size};
  int steps = 0;
  while (in.more() && steps++ < 200) {
    uint8_t op = in.byte() % 14;
    int coll = in.byte() % kColls;
    const std::string name = Name(coll);
    switch (op) {
      case 0: {  // begin a write session
        if (s.w) break;
        if (sx_write_begin(s.db, 0, &s.w, &s.err)) Fail("begin_write", s.err.message);
        s.pending = s.committed;
        break;
      }
      case 1:
        s.EndWrite(true);
        break;
      case 2:
        s.EndWrite(false);
        break;
      case 3: {  // create
        if (!s.w) break;
        sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
        co.dim = kDim;
        co.index = SX_INDEX_FLAT;
        int rc = sx_write_create_collection(s.w, name.c_str(), &co, &s.err);
        bool exists = s.pending.count(coll);
        if (exists ? rc != SX_EXISTS : rc != SX_OK) Fail("create", name + ": " + s.err.message);
        if (!exists) s.pending[coll] = Coll();
        break;
      }
      case 4: {  // drop
        if (!s.w) break;
        int rc = sx_write_drop_collection(s.w, name.c_str(), &s.err);
        bool exists = s.pending.count(coll);
        if (exists ? rc != SX_OK : rc != SX_NOT_FOUND) Fail("drop", name + ": " + s.err.message);
        s.pending.erase(coll);
        break;
      }
      case 5: {  // upsert 1-4 items; maybe one bad (a NaN), then nothing changes
        if (!s.w) break;
        size_t n = 1 + in.byte() % 4;
        std::vector<std::string> ids;
        std::vector<const char *> ip;
        std::vector<float> v;
        bool bad = false;
        for (size_t i = 0; i < n; i++) {
          ids.push_back(Id(in.byte()));
          for (size_t d = 0; d < kDim; d++) {
            uint8_t b = in.byte();
            if (b == 0xff) bad = true;
            v.push_back(b == 0xff ? NAN : (float)((int)(b % 9) - 4));
          }
        }
        for (auto &x : ids) ip.push_back(x.c_str());
        int rc = sx_write_upsert(s.w, name.c_str(), n, ip.data(), v.data(), kDim, nullptr, &s.err);
        auto it = s.pending.find(coll);
        if (it == s.pending.end()) {
          if (rc != SX_NOT_FOUND)
            Fail("upsert", "into a missing collection: " + std::to_string(rc));
        } else if (bad) {
          if (rc != SX_INVALID_ARGUMENT) Fail("upsert", "a NaN accepted");
        } else {
          if (rc) Fail("upsert", s.err.message);
          for (size_t i = 0; i < n; i++)
            it->second[ids[i]] = std::vector<float>(&v[i * kDim], &v[i * kDim + kDim]);
        }
        break;
      }
      case 6: {  // delete 1-3 ids
        if (!s.w) break;
        size_t n = 1 + in.byte() % 3;
        std::vector<std::string> ids;
        std::vector<const char *> ip;
        for (size_t i = 0; i < n; i++) ids.push_back(Id(in.byte()));
        for (auto &x : ids) ip.push_back(x.c_str());
        size_t deleted = 99;
        int rc = sx_write_delete(s.w, name.c_str(), n, ip.data(), &deleted, &s.err);
        auto it = s.pending.find(coll);
        if (it == s.pending.end()) {
          if (rc != SX_NOT_FOUND) Fail("delete", "from a missing collection");
        } else {
          if (rc) Fail("delete", s.err.message);
          size_t want = 0;
          for (auto &x : ids) want += it->second.erase(x);
          if (deleted != want)
            Fail("delete", std::to_string(deleted) + " deleted vs model " + std::to_string(want));
        }
        break;
      }
      case 7: {  // reads through the write session
        if (!s.w) break;
        sx_names *names = nullptr;
        if (sx_write_list_collections(s.w, &names, &s.err)) Fail("list", s.err.message);
        CheckList(s, names, s.pending);
        sx_names_free(names);
        sx_collection *c = nullptr;
        int rc = sx_write_collection(s.w, name.c_str(), &c, &s.err);
        if (!s.pending.count(coll)) {
          if (rc != SX_NOT_FOUND) Fail("view", "a dropped collection opened");
        } else {
          if (rc) Fail("view", s.err.message);
          CheckView(s, c, s.pending, coll, in);
        }
        sx_collection_free(c);
        break;
      }
      case 8: {  // begin a read session (a snapshot of what is committed)
        s.EndRead();
        if (sx_read_begin(s.db, &s.r, &s.err)) Fail("begin_read", s.err.message);
        s.snap = s.committed;
        break;
      }
      case 9: {  // reads through the read session
        if (!s.r) break;
        sx_names *names = nullptr;
        if (sx_read_list_collections(s.r, &names, &s.err)) Fail("list", s.err.message);
        CheckList(s, names, s.snap);
        sx_names_free(names);
        sx_collection *c = nullptr;
        int rc = sx_read_collection(s.r, name.c_str(), &c, &s.err);
        if (!s.snap.count(coll)) {
          if (rc != SX_NOT_FOUND) Fail("read view", "a missing collection opened");
        } else {
          if (rc) Fail("read view", s.err.message);
          CheckView(s, c, s.snap, coll, in);
        }
        sx_collection_free(c);
        break;
      }
      case 10:
        s.EndRead();
        break;
      case 11: {  // checkpoint (busy while this handle writes)
        if (s.w) break;
        int rc = sx_db_checkpoint(s.db, 0, &s.err);
        if (rc && rc != SX_BUSY) Fail("checkpoint", s.err.message);
        break;
      }
      case 12: {  // close and reopen: an open write session is aborted
        s.Close();
        s.pending = s.committed;
        s.Open();
        break;
      }
      case 13: {  // integrity check
        int rc = sx_db_check(s.db, &s.err);
        if (rc) Fail("check", s.err.message);
        break;
      }
    }
  }
  s.Close();
  // Everything committed is there after a last reopen.
  s.Open();
  sx_read *r = nullptr;
  if (sx_read_begin(s.db, &r, &s.err)) Fail("begin_read", s.err.message);
  sx_names *names = nullptr;
  if (sx_read_list_collections(r, &names, &s.err)) Fail("list", s.err.message);
  CheckList(s, names, s.committed);
  sx_names_free(names);
  for (auto &e : s.committed) {
    sx_collection *c = nullptr;
    if (sx_read_collection(r, Name(e.first).c_str(), &c, &s.err)) Fail("final view", s.err.message);
    uint64_t n = 0;
    sx_collection_count(c, &n, &s.err);
    if (n != e.second.size()) Fail("final count", std::to_string(n));
    sx_collection_free(c);
  }
  sx_read_free(r);
  sx_db_free(s.db);
  return 0;
}
