// API-sequence fuzzer: input bytes decode to calls on two handles on one database
// file (create, drop, upsert, delete, get, count, search, begin, commit, abort, read
// sessions, checkpoint, compact, check, close and reopen), each checked against a
// small in-memory model after every step. Collections c0 and c1 are flat, c2 and c3
// HNSW (m 2 to 9), all l2 over small integer vectors, so distances are exact in
// float32 and ties break by id. Flat searches and exact searches of HNSW collections
// must equal the model's top k; an HNSW search must return live ids only, each with
// its exact distance, sorted, without duplicates, and the exact top k once its
// candidate list (ef) covers the collection. The write session (one at a time, over
// both handles) sees its own changes; a read session keeps the snapshot it began with
// whatever the other handle commits; a new read session on either handle sees every
// commit. A difference aborts (the finding), as does any crash or sanitizer report.
//
// Input: pairs of an operation byte (bit 7: which handle; the rest modulo the number
// of operations) and a collection byte, each followed by the bytes the operation
// reads. SX_FUZZ_SEEDS=<dir> writes the seed corpus there and exits; SX_FUZZ_TRACE=1
// prints each operation (to read a finding).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "fuzz_common.h"
}

namespace {

const size_t kDim = 3;
const int kColls = 4;  // "c0", "c1": flat; "c2", "c3": HNSW; all l2
const int kIds = 24;

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
  return std::string("id") + std::to_string(b % kIds);
}
std::string Name(int c) {
  return "c" + std::to_string(c);
}
bool Hnsw(int c) {
  return c >= 2;
}

float Dist(const std::vector<float> &a, const float *b) {
  float s = 0;
  for (size_t i = 0; i < kDim; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

struct Handle {
  sx_db *db = nullptr;
  sx_read *r = nullptr;
  Model snap;  // what the read session sees
};

struct State {
  std::string path;
  Handle h[2];
  sx_write *w = nullptr;  // at most one write session, on handle wh
  int wh = -1;
  Model committed, pending;
  sx_error err = SX_ERROR_INIT;

  void Open(int k) {
    h[k].db = fz_open(path.c_str(), 0);
    if (!h[k].db) Fail("open", "cannot open the database");
  }
  void EndWrite(bool commit) {
    if (!w) return;
    int rc = commit ? sx_write_commit(w, &err) : sx_write_abort(w);
    if (commit && rc) Fail("commit", err.message);
    if (commit) committed = pending;
    pending = committed;
    sx_write_free(w);
    w = nullptr;
    wh = -1;
  }
  void EndRead(int k) {
    if (!h[k].r) return;
    sx_read_end(h[k].r);
    sx_read_free(h[k].r);
    h[k].r = nullptr;
  }
  void Close(int k) {
    if (wh == k) EndWrite(false);
    EndRead(k);
    sx_db_free(h[k].db);
    h[k].db = nullptr;
  }
};

typedef std::vector<std::pair<float, std::string>> Hits;

// The model's top k for q: by distance, then id.
Hits TopK(const Coll &mc, const float *q, size_t k) {
  Hits want;
  for (auto &e : mc) want.push_back({Dist(e.second, q), e.first});
  std::sort(want.begin(), want.end());
  if (want.size() > k) want.resize(k);
  return want;
}

void SameHits(const char *what, sx_results *res, size_t qq, const Hits &want) {
  if (sx_results_count(res, qq) != want.size())
    Fail(what, std::to_string(sx_results_count(res, qq)) + " hits vs model " +
                   std::to_string(want.size()));
  for (size_t i = 0; i < want.size(); i++) {
    if (want[i].second != sx_results_id(res, qq, i) ||
        want[i].first != sx_results_distance(res, qq, i))
      Fail(what, "hit " + std::to_string(i) + " is " + sx_results_id(res, qq, i) + " at " +
                     std::to_string(sx_results_distance(res, qq, i)) + " vs model " +
                     want[i].second + " at " + std::to_string(want[i].first));
  }
}

// What any search must give: live ids, each once, at its exact distance, sorted.
void ValidHits(const char *what, sx_results *res, size_t qq, const Coll &mc, const float *q,
               size_t k) {
  size_t n = sx_results_count(res, qq);
  if (n > k || n > mc.size())
    Fail(what, std::to_string(n) + " hits for k " + std::to_string(k) + " and " +
                   std::to_string(mc.size()) + " items");
  std::set<std::string> seen;
  float last = -1;
  for (size_t i = 0; i < n; i++) {
    std::string id = sx_results_id(res, qq, i);
    auto it = mc.find(id);
    if (it == mc.end()) Fail(what, "hit " + id + " is not live");
    if (!seen.insert(id).second) Fail(what, "hit " + id + " twice");
    float d = sx_results_distance(res, qq, i);
    if (d != Dist(it->second, q))
      Fail(what, "hit " + id + " at " + std::to_string(d) + " vs exact " +
                     std::to_string(Dist(it->second, q)));
    if (d < last) Fail(what, "hits out of order at " + id);
    last = d;
  }
}

// Checks a view against the model's collection.
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
  // search: exact top k by (distance, id); HNSW: valid hits, exact when asked or when
  // ef covers the collection
  float q[kDim];
  for (size_t i = 0; i < kDim; i++) q[i] = (float)((int)(in.byte() % 9) - 4);
  uint8_t b = in.byte();
  size_t k = 1 + b % 6;
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.threads = 1;
  so.exact = (b >> 3) & 1;
  so.ef = (uint32_t)(k + in.byte() % 32);
  Hits want = TopK(mc, q, k);
  bool exact = !Hnsw(coll) || so.exact || so.ef >= mc.size();
  sx_results *res = nullptr;
  rc = sx_collection_search(c, q, kDim, k, &so, &res, &s.err);
  if (rc) Fail("search", s.err.message);
  ValidHits("search", res, 0, mc, q, k);
  if (exact) SameHits("search", res, 0, want);
  sx_results_free(res);
  // a batch of two queries: the same hits for both (the first with 2 threads)
  float qs[2 * kDim];
  memcpy(qs, q, sizeof q);
  memcpy(qs + kDim, q, sizeof q);
  so.threads = (b >> 4) & 1 ? 2 : 1;
  res = nullptr;
  rc = sx_collection_search_batch(c, qs, 2, kDim, k, &so, &res, &s.err);
  if (rc) Fail("search_batch", s.err.message);
  for (size_t qq = 0; qq < 2; qq++) {
    ValidHits("search_batch", res, qq, mc, q, k);
    if (exact) SameHits("search_batch", res, qq, want);
  }
  sx_results_free(res);
}

void CheckList(State &s, sx_names *names, const Model &m) {
  (void)s;
  std::string got, want;
  for (size_t i = 0; i < sx_names_count(names); i++)
    got += std::string(sx_names_get(names, i)) + ",";
  for (auto &e : m) want += Name(e.first) + ",";
  if (got != want) Fail("list", got + " vs model " + want);
}

// Every id and an exact search of every collection, through a new read session.
void CheckAll(State &s, sx_db *db, const Model &m) {
  sx_read *r = nullptr;
  if (sx_read_begin(db, &r, &s.err)) Fail("begin_read", s.err.message);
  sx_names *names = nullptr;
  if (sx_read_list_collections(r, &names, &s.err)) Fail("list", s.err.message);
  CheckList(s, names, m);
  sx_names_free(names);
  for (auto &e : m) {
    sx_collection *c = nullptr;
    if (sx_read_collection(r, Name(e.first).c_str(), &c, &s.err)) Fail("final view", s.err.message);
    uint64_t n = 0;
    if (sx_collection_count(c, &n, &s.err) || n != e.second.size())
      Fail("final count", std::to_string(n));
    for (int i = 0; i < kIds; i++) {
      std::string id = Id((uint8_t)i);
      sx_record *rec = nullptr;
      int rc = sx_collection_get(c, id.c_str(), &rec, &s.err);
      auto mi = e.second.find(id);
      if (mi == e.second.end() ? rc != SX_NOT_FOUND : rc != SX_OK)
        Fail("final get", id + ": rc " + std::to_string(rc));
      size_t dim = 0;
      if (!rc && memcmp(sx_record_vector(rec, &dim), mi->second.data(), kDim * 4) != 0)
        Fail("final get", id + " vector differs");
      sx_record_free(rec);
    }
    const float q[kDim] = {1, -1, 0};
    sx_search_options so = SX_SEARCH_OPTIONS_INIT;
    so.threads = 1;
    so.ef = kIds;
    sx_results *res = nullptr;
    if (sx_collection_search(c, q, kDim, 8, &so, &res, &s.err)) Fail("final search", s.err.message);
    SameHits("final search", res, 0, TopK(e.second, q, 8));
    sx_results_free(res);
    sx_collection_free(c);
  }
  sx_read_end(r);
  sx_read_free(r);
}

enum {
  kBegin,
  kCommit,
  kAbort,
  kCreate,
  kDrop,
  kUpsert,
  kDelete,
  kWriteReads,
  kBeginRead,
  kReadReads,
  kEndRead,
  kCheckpoint,
  kReopen,
  kCheck,
  kCompact,
  kNops
};

const char *const kOpNames[kNops] = {"begin",      "commit",     "abort",    "create",
                                     "drop",       "upsert",     "delete",   "write_reads",
                                     "begin_read", "read_reads", "end_read", "checkpoint",
                                     "reopen",     "check",      "compact"};

void Step(State &s, In &in) {
  static const bool trace = getenv("SX_FUZZ_TRACE") != nullptr;
  uint8_t ob = in.byte();
  int hk = ob >> 7;
  Handle &hd = s.h[hk];
  int op = (ob & 0x7f) % kNops;
  int coll = in.byte() % kColls;
  const std::string name = Name(coll);
  if (trace) fprintf(stderr, "h%d %s %s\n", hk, kOpNames[op], name.c_str());
  switch (op) {
    case kBegin: {  // begin a write session; busy while either handle has one
      sx_write *w = nullptr;
      int rc = sx_write_begin(hd.db, 0, &w, &s.err);
      if (s.w) {
        if (rc != SX_BUSY) Fail("begin_write", "a second write session: rc " + std::to_string(rc));
        sx_write_free(w);
        break;
      }
      if (rc) Fail("begin_write", s.err.message);
      s.w = w;
      s.wh = hk;
      s.pending = s.committed;
      break;
    }
    case kCommit:
      s.EndWrite(true);
      break;
    case kAbort:
      s.EndWrite(false);
      break;
    case kCreate: {
      if (!s.w) break;
      sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
      co.dim = kDim;
      co.index = Hnsw(coll) ? SX_INDEX_HNSW : SX_INDEX_FLAT;
      uint8_t b = in.byte();
      if (Hnsw(coll)) {
        co.hnsw_m = 2 + b % 8;
        co.hnsw_ef_construction = 4 + (b >> 3) % 32;
      }
      int rc = sx_write_create_collection(s.w, name.c_str(), &co, &s.err);
      bool exists = s.pending.count(coll);
      if (exists ? rc != SX_EXISTS : rc != SX_OK) Fail("create", name + ": " + s.err.message);
      if (!exists) s.pending[coll] = Coll();
      break;
    }
    case kDrop: {
      if (!s.w) break;
      int rc = sx_write_drop_collection(s.w, name.c_str(), &s.err);
      bool exists = s.pending.count(coll);
      if (exists ? rc != SX_OK : rc != SX_NOT_FOUND) Fail("drop", name + ": " + s.err.message);
      s.pending.erase(coll);
      break;
    }
    case kUpsert: {  // 1-4 items; maybe one bad (a NaN), then nothing changes
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
        if (rc != SX_NOT_FOUND) Fail("upsert", "into a missing collection: " + std::to_string(rc));
      } else if (bad) {
        if (rc != SX_INVALID_ARGUMENT) Fail("upsert", "a NaN accepted");
      } else {
        if (rc) Fail("upsert", s.err.message);
        for (size_t i = 0; i < n; i++)
          it->second[ids[i]] = std::vector<float>(&v[i * kDim], &v[i * kDim + kDim]);
      }
      break;
    }
    case kDelete: {  // 1-3 ids
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
    case kWriteReads: {  // reads through the write session
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
    case kBeginRead: {  // a read session on this handle: a snapshot of what is committed
      s.EndRead(hk);
      if (sx_read_begin(hd.db, &hd.r, &s.err)) Fail("begin_read", s.err.message);
      hd.snap = s.committed;
      break;
    }
    case kReadReads: {  // reads through this handle's read session
      if (!hd.r) break;
      sx_names *names = nullptr;
      if (sx_read_list_collections(hd.r, &names, &s.err)) Fail("list", s.err.message);
      CheckList(s, names, hd.snap);
      sx_names_free(names);
      sx_collection *c = nullptr;
      int rc = sx_read_collection(hd.r, name.c_str(), &c, &s.err);
      if (!hd.snap.count(coll)) {
        if (rc != SX_NOT_FOUND) Fail("read view", "a missing collection opened");
      } else {
        if (rc) Fail("read view", s.err.message);
        CheckView(s, c, hd.snap, coll, in);
      }
      sx_collection_free(c);
      break;
    }
    case kEndRead:
      s.EndRead(hk);
      break;
    case kCheckpoint: {  // busy while a write session is open
      int rc = sx_db_checkpoint(hd.db, 0, &s.err);
      if (rc && (rc != SX_BUSY || !s.w)) Fail("checkpoint", s.err.message);
      break;
    }
    case kReopen:  // close and reopen this handle: its write session is aborted
      s.Close(hk);
      s.Open(hk);
      break;
    case kCheck: {
      int rc = sx_db_check(hd.db, &s.err);
      if (rc) Fail("check", s.err.message);
      break;
    }
    case kCompact: {  // rewrites every collection (HNSW graphs rebuilt); busy while writing
      int rc = sx_db_compact(hd.db, nullptr, &s.err);
      if (s.w ? rc != SX_BUSY : rc != SX_OK)
        Fail("compact", "rc " + std::to_string(rc) + ": " + s.err.message);
      break;
    }
  }
}

void MakeSeeds(const char *dir);

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *seeds = getenv("SX_FUZZ_SEEDS");
  if (seeds) {
    MakeSeeds(seeds);
    exit(0);
  }
  return 0;
}

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
  s.Open(0);
  s.Open(1);
  In in{data, size};
  for (int steps = 0; in.more() && steps < 200; steps++) Step(s, in);
  // Everything committed is there, through the other handle and after a reopen.
  s.Close(0);
  CheckAll(s, s.h[1].db, s.committed);
  s.Close(1);
  s.Open(0);
  CheckAll(s, s.h[0].db, s.committed);
  if (sx_db_check(s.h[0].db, &s.err)) Fail("final check", s.err.message);
  s.Close(0);
  return 0;
}

namespace {

// Seeds: each a short script of operations with their argument bytes.
struct Script {
  std::vector<uint8_t> v;
  Script &Op(int o, int c = 0, int h = 0, std::vector<uint8_t> args = {}) {
    v.push_back((uint8_t)(o | (h << 7)));
    v.push_back((uint8_t)c);
    v.insert(v.end(), args.begin(), args.end());
    return *this;
  }
  // get id, query (byte 4 is 0), k - 1 (bit 3: exact, bit 4: two threads), ef - k
  Script &Reads(int o, int c, int h, uint8_t id, uint8_t kb, uint8_t ef) {
    return Op(o, c, h, {id, 5, 3, 4, kb, ef});
  }
  Script &Fill(int c, int base) {  // 12 items, 4 per upsert
    for (int i = 0; i < 3; i++) {
      std::vector<uint8_t> a = {3};
      for (int j = 0; j < 4; j++) {
        int x = base + 4 * i + j;
        a.insert(a.end(),
                 {(uint8_t)x, (uint8_t)(x * 5 % 9), (uint8_t)(x * 7 % 9), (uint8_t)(x % 4)});
      }
      Op(kUpsert, c, 0, a);
    }
    return *this;
  }
};

void MakeSeeds(const char *dir) {
  std::vector<Script> seeds(5);
  // Two flat and two HNSW collections filled and committed, read from both handles.
  Script &a = seeds[0];
  a.Op(kBegin);
  for (int c = 0; c < kColls; c++) a.Op(kCreate, c, 0, {(uint8_t)(c * 9 + 2)});
  for (int c = 0; c < kColls; c++) a.Fill(c, c * 3);
  a.Reads(kWriteReads, 2, 0, 5, 4, 0).Op(kCommit).Op(kBeginRead, 0, 1);
  a.Reads(kReadReads, 2, 1, 1, 5, 2).Reads(kReadReads, 3, 1, 7, 0x0d, 0);
  a.Reads(kReadReads, 0, 1, 9, 0x15, 1).Reads(kReadReads, 1, 1, 30, 2, 0);
  // The same, then deletes and upserts through handle 1 while both handles read their
  // snapshots; a checkpoint, a compaction, a check, a reopen, reads again.
  seeds[1] = a;
  Script &b = seeds[1];
  b.Op(kBeginRead).Op(kBegin, 0, 1).Op(kDelete, 2, 1, {2, 4, 5, 6}).Op(kDelete, 0, 1, {1, 2, 3});
  b.Op(kUpsert, 3, 1, {1, 7, 0, 0, 0, 8, 1, 1, 1}).Reads(kWriteReads, 2, 1, 4, 5, 0);
  b.Op(kCommit, 0, 1).Reads(kReadReads, 2, 0, 4, 5, 0).Reads(kReadReads, 2, 1, 4, 5, 0);
  b.Op(kCheckpoint).Op(kEndRead, 0, 1).Op(kCompact).Reads(kReadReads, 3, 0, 7, 3, 30);
  b.Op(kCheck, 0, 1).Op(kReopen).Op(kBeginRead).Reads(kReadReads, 2, 0, 9, 5, 1);
  b.Op(kBeginRead, 0, 1).Reads(kReadReads, 3, 1, 8, 0x0d, 0).Op(kCheckpoint, 0, 1);
  // Busy: a second write session, a compaction and a checkpoint while writing; a
  // reopen aborts the session.
  seeds[2].Op(kBegin).Op(kBegin, 0, 1).Op(kCompact, 0, 1).Op(kCheckpoint).Op(kCreate, 2, 0, {7});
  seeds[2]
      .Op(kUpsert, 2, 0, {0, 1, 2, 3, 4})
      .Op(kReopen)
      .Op(kBegin, 0, 1)
      .Op(kCreate, 3, 1, {0xff});
  seeds[2].Fill(3, 0).Op(kDrop, 3).Op(kAbort).Op(kCheck, 0, 1);
  // A NaN refused; a drop and a re-create in one session.
  seeds[3]
      .Op(kBegin, 0, 1)
      .Op(kCreate, 1, 0, {0})
      .Op(kUpsert, 1, 0, {1, 3, 0xff, 0, 0, 4, 1, 1, 1});
  seeds[3].Op(kUpsert, 1, 0, {0, 3, 1, 2, 3}).Op(kDrop, 1).Op(kCreate, 1, 0, {0}).Op(kCommit);
  seeds[3].Reads(kReadReads, 1, 0, 3, 0, 0).Op(kBeginRead).Reads(kReadReads, 1, 0, 3, 0, 0);
  // An HNSW collection with m = 2 through many upserts and deletes.
  Script &e = seeds[4];
  e.Op(kBegin).Op(kCreate, 2, 0, {0}).Fill(2, 0).Fill(2, 12).Op(kCommit).Op(kBegin, 0, 1);
  e.Op(kDelete, 2, 1, {2, 0, 5, 10}).Op(kDelete, 2, 1, {2, 13, 17, 20}).Fill(2, 4).Op(kCommit);
  e.Op(kBeginRead, 0, 1).Reads(kReadReads, 2, 1, 1, 5, 31).Reads(kReadReads, 2, 1, 2, 2, 0);
  for (size_t i = 0; i < seeds.size(); i++)
    fz_seed(dir, ("seed-" + std::to_string(i)).c_str(), seeds[i].v.data(), seeds[i].v.size());
}

}  // namespace
