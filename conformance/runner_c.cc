// The C runner of the conformance suite: it reads every case file (*.json) in
// $CONFORMANCE_CASES (default: this project's conformance/cases), registers each test
// of each file as one GoogleTest test before RUN_ALL_TESTS (ctest shows it as
// conformance/<file stem>.<test name>), and interprets its steps against the public C
// API in sextant.h. The format is conformance/FORMAT.md; known gaps of this binding are
// listed, with reasons, in conformance/skip/c.json ($CONFORMANCE_SKIP overrides).
//
// What the C binding cannot express is decided here and documented in FORMAT.md's
// extension section: a handle of the wrong kind (a read session given to a write op)
// is MISUSE, since the C types make such a call impossible to compile; a batch whose
// vectors differ in length among themselves is DIMENSION_MISMATCH.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <jansson.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sextant.h"

#ifndef SX_CONFORMANCE_CASES
#error "SX_CONFORMANCE_CASES must name the default case directory"
#endif
#ifndef SX_CONFORMANCE_SKIP
#error "SX_CONFORMANCE_SKIP must name this binding's skip file"
#endif

namespace {

// ---- JSON helpers -------------------------------------------------------------------

struct JsonDel {
  void operator()(json_t *j) const {
    json_decref(j);
  }
};
using Json = std::unique_ptr<json_t, JsonDel>;

Json Incref(json_t *j) {
  return Json(json_incref(j));
}

std::string Dump(const json_t *j) {
  if (!j) return "(nothing)";
  char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
  if (!s) return "(unprintable)";
  std::string out(s);
  free(s);
  return out;
}

// A problem with the case itself (a missing argument, an unknown handle), as opposed
// to the library answering differently from what the case expects.
struct CaseError : std::runtime_error {
  explicit CaseError(const std::string &m) : std::runtime_error(m) {}
};

// A float32 from a JSON component: a number, or "NaN", "Infinity", "-Infinity".
float Component(const json_t *v, const std::string &where) {
  if (json_is_string(v)) {
    std::string s = json_string_value(v);
    if (s == "NaN") return NAN;
    if (s == "Infinity") return INFINITY;
    if (s == "-Infinity") return -INFINITY;
    throw CaseError(where + ": string component \"" + s +
                    "\" (only \"NaN\", \"Infinity\", \"-Infinity\" are allowed)");
  }
  if (!json_is_number(v)) throw CaseError(where + ": a vector component must be a number");
  double d = json_number_value(v);
  // From the midpoint between FLT_MAX and 2^128 up, a double rounds to infinity.
  if (std::fabs(d) >= 0x1.ffffffp+127) throw CaseError(where + ": component beyond float32 range");
  return static_cast<float>(d);
}

std::vector<float> Vector(const json_t *v, const std::string &where) {
  if (!json_is_array(v)) throw CaseError(where + " must be an array");
  std::vector<float> out;
  for (size_t i = 0; i < json_array_size(v); i++)
    out.push_back(Component(json_array_get(v, i), where + "[" + std::to_string(i) + "]"));
  return out;
}

json_t *NumberOrName(double d) {
  if (std::isnan(d)) return json_string("NaN");
  if (std::isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
  return json_real(d);
}

// Copy of j with every "$TMP" in its strings (values and keys) replaced by tmp.
std::string ReplaceTmp(std::string s, const std::string &tmp) {
  for (size_t at = s.find("$TMP"); at != std::string::npos; at = s.find("$TMP", at + tmp.size()))
    s.replace(at, 4, tmp);
  return s;
}

json_t *Substitute(const json_t *j, const std::string &tmp) {
  if (json_is_string(j)) {
    std::string s = ReplaceTmp(std::string(json_string_value(j), json_string_length(j)), tmp);
    return json_stringn(s.data(), s.size());
  }
  if (json_is_array(j)) {
    json_t *a = json_array();
    for (size_t i = 0; i < json_array_size(j); i++)
      json_array_append_new(a, Substitute(json_array_get(j, i), tmp));
    return a;
  }
  if (json_is_object(j)) {
    json_t *o = json_object();
    const char *key;
    json_t *val;
    json_object_foreach(const_cast<json_t *>(j), key, val) {
      json_object_set_new(o, ReplaceTmp(key, tmp).c_str(), Substitute(val, tmp));
    }
    return o;
  }
  return json_deep_copy(j);
}

// ---- comparing results ----------------------------------------------------------------

struct Tolerance {
  bool absolute_only = false;
  double abs = 1e-5, rel = 1e-5;
  bool Close(double expected, double actual) const {
    double lim = absolute_only ? abs : abs + rel * std::fabs(expected);
    return std::fabs(actual - expected) <= lim;
  }
};

// Compares expected with actual; on a difference fills *why (naming the path) and
// returns false. `subset` at a level: only the expected keys of objects are compared
// (describe_collection's top level and its "index").
bool Match(const json_t *e, const json_t *a, const Tolerance &tol, const std::string &path,
           std::string *why, int subset_depth = 0) {
  auto differ = [&](const std::string &what) {
    *why = "at " + (path.empty() ? std::string("(top)") : path) + ": " + what;
    return false;
  };
  if (json_is_number(e) && json_is_number(a)) {
    if (tol.Close(json_number_value(e), json_number_value(a))) return true;
    return differ("expected " + Dump(e) + ", got " + Dump(a));
  }
  if (json_typeof(e) != json_typeof(a) && !(json_is_boolean(e) && json_is_boolean(a)))
    return differ("expected " + Dump(e) + ", got " + Dump(a));
  if (json_is_object(e)) {
    const char *key;
    json_t *ev;
    json_object_foreach(const_cast<json_t *>(e), key, ev) {
      json_t *av = json_object_get(a, key);
      if (!av) return differ("missing key \"" + std::string(key) + "\"");
      if (!Match(ev, av, tol, path + "." + key, why, subset_depth > 0 ? subset_depth - 1 : 0))
        return false;
    }
    if (subset_depth == 0) {
      json_t *av;
      json_object_foreach(const_cast<json_t *>(a), key, av) {
        if (!json_object_get(e, key)) return differ("unexpected key \"" + std::string(key) + "\"");
      }
    }
    return true;
  }
  if (json_is_array(e)) {
    if (json_array_size(e) != json_array_size(a))
      return differ("expected " + std::to_string(json_array_size(e)) + " elements, got " +
                    std::to_string(json_array_size(a)));
    for (size_t i = 0; i < json_array_size(e); i++)
      if (!Match(json_array_get(e, i), json_array_get(a, i), tol,
                 path + "[" + std::to_string(i) + "]", why))
        return false;
    return true;
  }
  if (json_equal(const_cast<json_t *>(e), const_cast<json_t *>(a))) return true;
  return differ("expected " + Dump(e) + ", got " + Dump(a));
}

// ---- generated vectors ------------------------------------------------------------------

// splitmix64 and the component rule of FORMAT.md, "Generated vectors".
struct SplitMix64 {
  uint64_t state;
  uint64_t Next() {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float Component() {
    return static_cast<float>(static_cast<double>(Next() >> 40) / 16777216.0 * 2.0 - 1.0);
  }
};

std::vector<float> Generate(uint64_t seed, size_t count, size_t dim) {
  SplitMix64 g{seed};
  std::vector<float> out(count * dim);
  for (float &x : out) x = g.Component();
  return out;
}

// The data a session sees, kept by the runner so that search_generated can compute
// exact neighbours by brute force: collection -> (metric, id -> vector).
struct ModelCollection {
  std::string metric;
  std::map<std::string, std::vector<float>> vectors;
};
using Model = std::map<std::string, ModelCollection>;

double Distance(const std::string &metric, const float *a, const float *b, size_t dim) {
  double dot = 0, na = 0, nb = 0, l2 = 0;
  for (size_t i = 0; i < dim; i++) {
    double x = a[i], y = b[i];
    dot += x * y;
    na += x * x;
    nb += y * y;
    l2 += (x - y) * (x - y);
  }
  if (metric == "l2") return l2;
  if (metric == "ip") return 1 - dot;
  return 1 - dot / (std::sqrt(na) * std::sqrt(nb));
}

// ---- handles ----------------------------------------------------------------------------

enum class Kind { kDb, kRead, kWrite };

const char *KindName(Kind k) {
  return k == Kind::kDb ? "a database" : k == Kind::kRead ? "a read session" : "a write session";
}

struct Handle {
  Kind kind;
  std::string path;  // of the database
  sx_db *db = nullptr;
  sx_read *r = nullptr;
  sx_write *w = nullptr;
  Model model;  // sessions: what this session sees
};

// The outcome of one op: a status (and message), and the result value when it succeeded.
struct Outcome {
  int status = SX_OK;
  std::string message;
  Json value{json_null()};
  std::string problem;  // a fault the runner detected in a successful result
};

Outcome Fail(int status, const std::string &message) {
  Outcome o;
  o.status = status;
  o.message = message;
  return o;
}

Outcome FromError(int status, const sx_error &e) {
  return Fail(status, e.message);
}

Outcome Value(json_t *v) {
  Outcome o;
  o.value.reset(v);
  return o;
}

// The data of a vector, never NULL: an empty vector is a valid array of no floats, as a
// binding passing an empty buffer would give it.
const float *NonNull(const std::vector<float> &v) {
  static const float kNothing = 0;
  return v.empty() ? &kNothing : v.data();
}

struct CollectionView {
  sx_collection *c = nullptr;
  ~CollectionView() {
    sx_collection_free(c);
  }
};

// ---- the interpreter of one test's steps -------------------------------------------------

const std::set<std::string> kCommonKeys = {"op", "expect",    "expect_error",
                                           "as", "tolerance", "comment"};

const std::map<std::string, std::set<std::string>> kOpArgs = {
    {"open", {"path", "options"}},
    {"close", {"db"}},
    {"begin_write", {"db", "timeout_ms"}},
    {"commit", {"session"}},
    {"abort", {"session"}},
    {"begin_read", {"db"}},
    {"end", {"session"}},
    {"create_collection", {"session", "name", "dim", "metric", "index"}},
    {"drop_collection", {"session", "name"}},
    {"list_collections", {"session"}},
    {"describe_collection", {"session", "name"}},
    {"upsert", {"session", "collection", "items"}},
    {"upsert_generated",
     {"session", "collection", "count", "dim", "seed", "id_prefix", "metadata_mod"}},
    {"delete", {"session", "collection", "ids"}},
    {"get", {"session", "collection", "id"}},
    {"count", {"session", "collection"}},
    {"search", {"session", "collection", "vector", "k", "ef", "filter", "include", "exact"}},
    {"search_generated",
     {"session", "collection", "count", "dim", "seed", "k", "ef", "filter", "exact"}},
    {"write_file", {"path", "text", "hex", "pad_to"}},
    {"get_many", {"session", "collection", "ids"}},
    {"scan", {"session", "collection", "after", "batch"}},
};

// Ops whose result is a handle (and which may therefore carry "as").
const std::set<std::string> kHandleOps = {"open", "begin_write", "begin_read"};

class Interpreter {
 public:
  explicit Interpreter(std::string tmp) : tmp_(std::move(tmp)) {}
  ~Interpreter() {
    CloseAll();
  }

  // Frees every handle: sessions first, then databases (any order would do: the API
  // allows frees in any order).
  void CloseAll() {
    for (auto &h : handles_) {
      if (h->kind == Kind::kRead) sx_read_free(h->r);
      if (h->kind == Kind::kWrite) sx_write_free(h->w);
      h->r = nullptr;
      h->w = nullptr;
    }
    for (auto &h : handles_) {
      if (h->kind == Kind::kDb) sx_db_free(h->db);
      h->db = nullptr;
    }
    handles_.clear();
    names_.clear();
  }

  Outcome Run(const json_t *step) {
    op_ = Str(step, "op");
    auto spec = kOpArgs.find(op_);
    if (spec == kOpArgs.end()) throw CaseError("unknown op \"" + op_ + "\"");
    const char *key;
    json_t *val;
    json_object_foreach(const_cast<json_t *>(step), key, val) {
      if (!kCommonKeys.count(key) && !spec->second.count(key))
        throw CaseError("op \"" + op_ + "\" takes no argument \"" + key + "\"");
    }
    if (json_object_get(step, "as") && !kHandleOps.count(op_))
      throw CaseError("op \"" + op_ + "\" returns no handle, so \"as\" makes no sense");
    step_ = step;
    if (op_ == "open") return Open();
    if (op_ == "close") return Close();
    if (op_ == "begin_write") return BeginWrite();
    if (op_ == "commit") return Commit();
    if (op_ == "abort") return Abort();
    if (op_ == "begin_read") return BeginRead();
    if (op_ == "end") return End();
    if (op_ == "create_collection") return CreateCollection();
    if (op_ == "drop_collection") return DropCollection();
    if (op_ == "list_collections") return ListCollections();
    if (op_ == "describe_collection") return DescribeCollection();
    if (op_ == "upsert") return Upsert();
    if (op_ == "upsert_generated") return UpsertGenerated();
    if (op_ == "delete") return Delete();
    if (op_ == "get") return Get();
    if (op_ == "count") return Count();
    if (op_ == "get_many") return GetMany();
    if (op_ == "scan") return Scan();
    if (op_ == "search") return Search();
    if (op_ == "search_generated") return SearchGenerated();
    return WriteFile();
  }

 private:
  // -- arguments

  const json_t *Arg(const json_t *step, const char *key) {
    const json_t *v = json_object_get(step, key);
    if (!v) throw CaseError("op \"" + op_ + "\" needs argument \"" + key + "\"");
    return v;
  }
  const json_t *Arg(const char *key) {
    return Arg(step_, key);
  }
  const json_t *Opt(const char *key) {
    return json_object_get(step_, key);
  }

  std::string Str(const json_t *step, const char *key) {
    const json_t *v = Arg(step, key);
    if (!json_is_string(v))
      throw CaseError(std::string("argument \"") + key + "\" must be a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
      throw CaseError(std::string("argument \"") + key +
                      "\" holds a NUL character, which C strings cannot");
    return json_string_value(v);
  }
  std::string Str(const char *key) {
    return Str(step_, key);
  }

  long long Int(const json_t *v, const char *key) {
    if (!json_is_integer(v))
      throw CaseError(std::string("argument \"") + key + "\" must be an integer");
    return json_integer_value(v);
  }
  long long Int(const char *key) {
    return Int(Arg(key), key);
  }

  // An unsigned 32-bit argument; values outside the range become UINT32_MAX, which
  // the library rejects as it should reject the original.
  uint32_t U32(const json_t *v, const char *key) {
    long long x = Int(v, key);
    return x < 0 || x > 0xffffffffLL ? 0xffffffffu : static_cast<uint32_t>(x);
  }

  size_t Size(const char *key) {
    long long x = Int(key);
    if (x < 0) throw CaseError(std::string("argument \"") + key + "\" must not be negative");
    return static_cast<size_t>(x);
  }

  Handle &Named(const char *key) {
    std::string name = Str(key);
    auto it = names_.find(name);
    if (it == names_.end()) throw CaseError("no handle named \"" + name + "\" (see \"as\")");
    return *it->second;
  }

  // The handle under `key` if it is of kind `want`, else a MISUSE outcome in *misuse.
  Handle *Expect(const char *key, Kind want, Outcome *misuse) {
    Handle &h = Named(key);
    if (h.kind != want) {
      *misuse = Fail(SX_MISUSE, "runner: \"" + Str(key) + "\" is " + KindName(h.kind) + "; op \"" +
                                    op_ + "\" needs " + KindName(want));
      return nullptr;
    }
    return &h;
  }

  // A read or write session under `key`, else MISUSE.
  Handle *Session(Outcome *misuse) {
    Handle &h = Named("session");
    if (h.kind == Kind::kDb) {
      *misuse = Fail(SX_MISUSE, "runner: \"" + Str("session") + "\" is a database; op \"" + op_ +
                                    "\" needs a session");
      return nullptr;
    }
    return &h;
  }

  Handle &Bind(std::unique_ptr<Handle> h) {
    Handle &ref = *h;
    handles_.push_back(std::move(h));
    if (const json_t *as = Opt("as")) {
      if (!json_is_string(as)) throw CaseError("\"as\" must be a string");
      names_[json_string_value(as)] = &ref;
    }
    return ref;
  }

  int OpenView(Handle &s, const std::string &name, CollectionView *v, sx_error *e) {
    if (s.kind == Kind::kRead) return sx_read_collection(s.r, name.c_str(), &v->c, e);
    return sx_write_collection(s.w, name.c_str(), &v->c, e);
  }

  // -- databases and sessions

  Outcome Open() {
    std::string path = Str("path");
    sx_open_options o = SX_OPEN_OPTIONS_INIT;
    if (const json_t *opts = Opt("options")) {
      if (!json_is_object(opts)) throw CaseError("\"options\" must be an object");
      const char *key;
      json_t *v;
      json_object_foreach(const_cast<json_t *>(opts), key, v) {
        std::string k = key;
        if (k == "read_only") {
          if (!json_is_boolean(v)) throw CaseError("option read_only must be true or false");
          o.read_only = json_is_true(v);
        } else if (k == "sync") {
          if (!json_is_string(v)) throw CaseError("option sync must be a string");
          std::string s = json_string_value(v);
          // An unknown level reaches the library as a value it does not know.
          o.sync = s == "full"     ? SX_SYNC_FULL
                   : s == "normal" ? SX_SYNC_NORMAL
                   : s == "off"    ? SX_SYNC_OFF
                                   : static_cast<sx_sync>(99);
        } else {
          throw CaseError("unknown open option \"" + k + "\"");
        }
      }
    }
    sx_error e = SX_ERROR_INIT;
    sx_db *db = nullptr;
    int rc = sx_db_open(&db, path.c_str(), &o, &e);
    if (rc) return FromError(rc, e);
    auto h = std::make_unique<Handle>();
    h->kind = Kind::kDb;
    h->path = path;
    h->db = db;
    Bind(std::move(h));
    return Outcome();
  }

  Outcome Close() {
    Outcome m;
    Handle *h = Expect("db", Kind::kDb, &m);
    if (!h) return m;
    int rc = sx_db_close(h->db);
    return rc ? Fail(rc, "sx_db_close failed") : Outcome();
  }

  Outcome BeginWrite() {
    Outcome m;
    Handle *d = Expect("db", Kind::kDb, &m);
    if (!d) return m;
    int timeout = -1;
    if (const json_t *t = Opt("timeout_ms")) {
      long long x = Int(t, "timeout_ms");
      timeout = x < 0 ? -1 : x > 0x7fffffff ? 0x7fffffff : static_cast<int>(x);
    }
    sx_error e = SX_ERROR_INIT;
    sx_write *w = nullptr;
    int rc = sx_write_begin(d->db, timeout, &w, &e);
    if (rc) return FromError(rc, e);
    auto h = std::make_unique<Handle>();
    h->kind = Kind::kWrite;
    h->path = d->path;
    h->w = w;
    h->model = committed_[d->path];
    Bind(std::move(h));
    return Outcome();
  }

  Outcome BeginRead() {
    Outcome m;
    Handle *d = Expect("db", Kind::kDb, &m);
    if (!d) return m;
    sx_error e = SX_ERROR_INIT;
    sx_read *r = nullptr;
    int rc = sx_read_begin(d->db, &r, &e);
    if (rc) return FromError(rc, e);
    auto h = std::make_unique<Handle>();
    h->kind = Kind::kRead;
    h->path = d->path;
    h->r = r;
    h->model = committed_[d->path];
    Bind(std::move(h));
    return Outcome();
  }

  Outcome Commit() {
    Outcome m;
    Handle *w = Expect("session", Kind::kWrite, &m);
    if (!w) return m;
    sx_error e = SX_ERROR_INIT;
    int rc = sx_write_commit(w->w, &e);
    if (rc) return FromError(rc, e);
    committed_[w->path] = w->model;
    return Outcome();
  }

  Outcome Abort() {
    Outcome m;
    Handle *w = Expect("session", Kind::kWrite, &m);
    if (!w) return m;
    int rc = sx_write_abort(w->w);
    return rc ? Fail(rc, "sx_write_abort failed") : Outcome();
  }

  Outcome End() {
    Outcome m;
    Handle *r = Expect("session", Kind::kRead, &m);
    if (!r) return m;
    int rc = sx_read_end(r->r);
    return rc ? Fail(rc, "sx_read_end failed") : Outcome();
  }

  // -- collections

  Outcome CreateCollection() {
    Outcome m;
    Handle *w = Expect("session", Kind::kWrite, &m);
    if (!w) return m;
    std::string name = Str("name");
    sx_collection_options o = SX_COLLECTION_OPTIONS_INIT;
    o.dim = U32(Arg("dim"), "dim");
    std::string metric = Str("metric");
    sx_error e = SX_ERROR_INIT;
    int rc = sx_metric_parse(metric.c_str(), &o.metric, &e);
    if (rc) return FromError(rc, e);
    o.index = SX_INDEX_HNSW;  // the format's default
    if (const json_t *ix = Opt("index")) {
      if (!json_is_object(ix)) throw CaseError("\"index\" must be an object");
      std::string type = Str(ix, "type");
      // An unknown type reaches the library as a value it does not know.
      o.index = type == "flat"   ? SX_INDEX_FLAT
                : type == "hnsw" ? SX_INDEX_HNSW
                                 : static_cast<sx_index_type>(99);
      const char *key;
      json_t *v;
      json_object_foreach(const_cast<json_t *>(ix), key, v) {
        std::string k = key;
        if (k == "m")
          o.hnsw_m = U32(v, "m");
        else if (k == "ef_construction")
          o.hnsw_ef_construction = U32(v, "ef_construction");
        else if (k == "quantization") {
          if (!json_is_string(v)) throw CaseError("\"quantization\" must be a string");
          // An unknown name reaches the library as a value it does not know.
          if (sx_quantization_parse(json_string_value(v), &o.quantization, nullptr))
            o.quantization = static_cast<sx_quantization>(99);
        } else if (k != "type")
          throw CaseError("unknown index parameter \"" + k + "\"");
      }
    }
    rc = sx_write_create_collection(w->w, name.c_str(), &o, &e);
    if (rc) return FromError(rc, e);
    w->model[name] = ModelCollection{metric, {}};
    return Outcome();
  }

  Outcome DropCollection() {
    Outcome m;
    Handle *w = Expect("session", Kind::kWrite, &m);
    if (!w) return m;
    std::string name = Str("name");
    sx_error e = SX_ERROR_INIT;
    int rc = sx_write_drop_collection(w->w, name.c_str(), &e);
    if (rc) return FromError(rc, e);
    w->model.erase(name);
    return Outcome();
  }

  Outcome ListCollections() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    sx_error e = SX_ERROR_INIT;
    sx_names *names = nullptr;
    int rc = s->kind == Kind::kRead ? sx_read_list_collections(s->r, &names, &e)
                                    : sx_write_list_collections(s->w, &names, &e);
    if (rc) return FromError(rc, e);
    json_t *a = json_array();
    for (size_t i = 0; i < sx_names_count(names); i++)
      json_array_append_new(a, json_string(sx_names_get(names, i)));
    sx_names_free(names);
    return Value(a);
  }

  Outcome DescribeCollection() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    std::string name = Str("name");
    sx_error e = SX_ERROR_INIT;
    CollectionView v;
    int rc = OpenView(*s, name, &v, &e);
    sx_collection_info info = SX_COLLECTION_INFO_INIT;
    if (!rc) rc = sx_collection_describe(v.c, &info, &e);
    if (rc) return FromError(rc, e);
    const char *metric = sx_metric_name(info.metric);
    json_t *ix = json_object();
    if (info.index == SX_INDEX_FLAT) {
      json_object_set_new(ix, "type", json_string("flat"));
    } else if (info.index == SX_INDEX_HNSW) {
      json_object_set_new(ix, "type", json_string("hnsw"));
      json_object_set_new(ix, "m", json_integer(info.hnsw_m));
      json_object_set_new(ix, "ef_construction", json_integer(info.hnsw_ef_construction));
      json_object_set_new(ix, "quantization", json_string(sx_quantization_name(info.quantization)));
    } else {
      json_object_set_new(ix, "type",
                          json_string(("unknown " + std::to_string(info.index)).c_str()));
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(info.name));
    json_object_set_new(o, "dim", json_integer(info.dim));
    json_object_set_new(o, "metric", json_string(metric ? metric : "unknown"));
    json_object_set_new(o, "index", ix);
    json_object_set_new(o, "count", json_integer(static_cast<json_int_t>(info.count)));
    return Value(o);
  }

  // -- data

  // Upserts n vectors (one call, all or nothing) and, on success, records them in the
  // session's model.
  Outcome UpsertRows(Handle &w, const std::string &coll, const std::vector<std::string> &ids,
                     const std::vector<float> &flat, size_t dim,
                     const std::vector<std::string> *meta, const std::vector<bool> *has_meta) {
    std::vector<const char *> idp, metap;
    for (const auto &id : ids) idp.push_back(id.c_str());
    if (meta)
      for (size_t i = 0; i < meta->size(); i++)
        metap.push_back((*has_meta)[i] ? (*meta)[i].c_str() : nullptr);
    sx_error e = SX_ERROR_INIT;
    int rc = sx_write_upsert(w.w, coll.c_str(), ids.size(), idp.data(), NonNull(flat), dim,
                             meta ? metap.data() : nullptr, &e);
    if (rc) return FromError(rc, e);
    auto it = w.model.find(coll);
    if (it != w.model.end())
      for (size_t i = 0; i < ids.size(); i++)
        it->second.vectors[ids[i]] =
            std::vector<float>(flat.begin() + i * dim, flat.begin() + (i + 1) * dim);
    return Outcome();
  }

  Outcome Upsert() {
    Outcome m;
    Handle *w = Expect("session", Kind::kWrite, &m);
    if (!w) return m;
    std::string coll = Str("collection");
    const json_t *items = Arg("items");
    if (!json_is_array(items)) throw CaseError("\"items\" must be an array");
    std::vector<std::string> ids, meta;
    std::vector<bool> has_meta;
    std::vector<std::vector<float>> vecs;
    for (size_t i = 0; i < json_array_size(items); i++) {
      const json_t *it = json_array_get(items, i);
      std::string where = "items[" + std::to_string(i) + "]";
      if (!json_is_object(it)) throw CaseError(where + " must be an object");
      const char *key;
      json_t *v;
      json_object_foreach(const_cast<json_t *>(it), key, v) {
        std::string k = key;
        if (k != "id" && k != "vector" && k != "metadata")
          throw CaseError(where + " has unknown key \"" + k + "\"");
      }
      ids.push_back(Str(it, "id"));
      vecs.push_back(Vector(Arg(it, "vector"), where + ".vector"));
      const json_t *md = json_object_get(it, "metadata");
      if (md && !json_is_null(md)) {
        // Serialized as given: a non-object reaches the library, which must refuse it.
        char *s = json_dumps(md, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!s) throw CaseError(where + ".metadata cannot be serialized");
        meta.push_back(s);
        free(s);
        has_meta.push_back(true);
      } else {
        meta.push_back("");
        has_meta.push_back(false);
      }
    }
    size_t dim = vecs.empty() ? 0 : vecs[0].size();
    bool mixed = false;
    for (const auto &v : vecs) mixed = mixed || v.size() != dim;
    sx_error e = SX_ERROR_INIT;
    if (mixed || vecs.empty()) {
      // The C call takes one dimension for the batch: learn the collection's (which
      // also reports a missing collection or an ended session as the library does).
      CollectionView cv;
      sx_collection_info info = SX_COLLECTION_INFO_INIT;
      int rc = sx_write_collection(w->w, coll.c_str(), &cv.c, &e);
      if (!rc) rc = sx_collection_describe(cv.c, &info, &e);
      if (rc) return FromError(rc, e);
      if (mixed) {
        for (size_t i = 0; i < vecs.size(); i++)
          if (vecs[i].size() != info.dim)
            return Fail(SX_DIMENSION_MISMATCH,
                        "runner: item " + std::to_string(i) + " has dimension " +
                            std::to_string(vecs[i].size()) + ", collection '" + coll + "' has " +
                            std::to_string(info.dim));
      }
      dim = info.dim;
    }
    std::vector<float> flat;
    for (const auto &v : vecs) flat.insert(flat.end(), v.begin(), v.end());
    return UpsertRows(*w, coll, ids, flat, dim, &meta, &has_meta);
  }

  struct GenArgs {
    size_t count, dim;
    uint64_t seed;
  };
  GenArgs Gen() {
    GenArgs g;
    g.count = Size("count");
    g.dim = Size("dim");
    long long seed = Int("seed");
    if (seed < 0) throw CaseError("\"seed\" must not be negative");
    g.seed = static_cast<uint64_t>(seed);
    return g;
  }

  Outcome UpsertGenerated() {
    Outcome m;
    Handle *w = Expect("session", Kind::kWrite, &m);
    if (!w) return m;
    std::string coll = Str("collection");
    std::string prefix = Str("id_prefix");
    GenArgs g = Gen();
    std::vector<float> flat = Generate(g.seed, g.count, g.dim);
    std::vector<std::string> ids;
    for (size_t i = 0; i < g.count; i++) ids.push_back(prefix + std::to_string(i));
    // metadata_mod m (extension): item i gets {"i": i, "c": i % m}.
    if (const json_t *jm = Opt("metadata_mod")) {
      if (!json_is_integer(jm) || json_integer_value(jm) < 1)
        throw CaseError("\"metadata_mod\" must be an integer >= 1");
      size_t mod = static_cast<size_t>(json_integer_value(jm));
      std::vector<std::string> meta;
      std::vector<bool> has(g.count, true);
      for (size_t i = 0; i < g.count; i++)
        meta.push_back("{\"i\": " + std::to_string(i) + ", \"c\": " + std::to_string(i % mod) +
                       "}");
      return UpsertRows(*w, coll, ids, flat, g.dim, &meta, &has);
    }
    return UpsertRows(*w, coll, ids, flat, g.dim, nullptr, nullptr);
  }

  Outcome Delete() {
    Outcome m;
    Handle *w = Expect("session", Kind::kWrite, &m);
    if (!w) return m;
    std::string coll = Str("collection");
    const json_t *ids = Arg("ids");
    if (!json_is_array(ids)) throw CaseError("\"ids\" must be an array");
    std::vector<std::string> s;
    for (size_t i = 0; i < json_array_size(ids); i++) {
      const json_t *id = json_array_get(ids, i);
      if (!json_is_string(id) || strlen(json_string_value(id)) != json_string_length(id))
        throw CaseError("ids[" + std::to_string(i) + "] must be a string without NUL");
      s.push_back(json_string_value(id));
    }
    std::vector<const char *> p;
    for (const auto &id : s) p.push_back(id.c_str());
    sx_error e = SX_ERROR_INIT;
    size_t deleted = 0;
    int rc = sx_write_delete(w->w, coll.c_str(), p.size(), p.data(), &deleted, &e);
    if (rc) return FromError(rc, e);
    auto it = w->model.find(coll);
    if (it != w->model.end())
      for (const auto &id : s) it->second.vectors.erase(id);
    return Value(json_integer(static_cast<json_int_t>(deleted)));
  }

  Outcome Get() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    std::string coll = Str("collection");
    std::string id = Str("id");
    sx_error e = SX_ERROR_INIT;
    CollectionView v;
    sx_record *rec = nullptr;
    int rc = OpenView(*s, coll, &v, &e);
    if (!rc) rc = sx_collection_get(v.c, id.c_str(), &rec, &e);
    if (rc) return FromError(rc, e);
    size_t dim = 0;
    const float *vec = sx_record_vector(rec, &dim);
    json_t *a = json_array();
    for (size_t i = 0; i < dim; i++) json_array_append_new(a, NumberOrName(vec[i]));
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(sx_record_id(rec) ? sx_record_id(rec) : ""));
    json_object_set_new(o, "vector", a);
    Outcome out;
    const char *md = sx_record_metadata(rec);
    if (md) {
      json_error_t je;
      json_t *parsed = json_loads(md, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
      if (!parsed) {
        out.problem = std::string("returned metadata is not valid JSON (") + je.text + "): " + md;
        parsed = json_string(md);
      }
      json_object_set_new(o, "metadata", parsed);
    } else {
      json_object_set_new(o, "metadata", json_null());
    }
    sx_record_free(rec);
    out.value.reset(o);
    return out;
  }

  // Record i of a batch as {"id", "vector", "metadata"} (FORMAT.md, get).
  static json_t *RecordJson(const sx_records *r, size_t i, std::string *problem) {
    size_t dim = sx_records_dim(r);
    const float *vec = sx_records_vector(r, i);
    json_t *a = json_array();
    for (size_t j = 0; vec && j < dim; j++) json_array_append_new(a, NumberOrName(vec[j]));
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(sx_records_id(r, i)));
    json_object_set_new(o, "vector", a);
    const char *md = sx_records_metadata(r, i);
    json_t *parsed = json_null();
    if (md) {
      json_error_t je;
      parsed = json_loads(md, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
      if (!parsed) {
        *problem = std::string("returned metadata is not valid JSON (") + je.text + "): " + md;
        parsed = json_string(md);
      }
    }
    json_object_set_new(o, "metadata", parsed);
    return o;
  }

  // get_many (extension): the records of ids, in order; null for an id not there.
  Outcome GetMany() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    std::string coll = Str("collection");
    const json_t *ids = Arg("ids");
    if (!json_is_array(ids)) throw CaseError("\"ids\" must be an array");
    std::vector<std::string> v;
    for (size_t i = 0; i < json_array_size(ids); i++) {
      const json_t *id = json_array_get(ids, i);
      if (!json_is_string(id) || strlen(json_string_value(id)) != json_string_length(id))
        throw CaseError("ids[" + std::to_string(i) + "] must be a string without NUL");
      v.push_back(json_string_value(id));
    }
    std::vector<const char *> p;
    for (const auto &id : v) p.push_back(id.c_str());
    sx_error e = SX_ERROR_INIT;
    CollectionView cv;
    sx_records *r = nullptr;
    int rc = OpenView(*s, coll, &cv, &e);
    if (!rc) rc = sx_collection_get_batch(cv.c, p.size(), p.data(), &r, &e);
    if (rc) return FromError(rc, e);
    Outcome out;
    json_t *a = json_array();
    for (size_t i = 0; i < sx_records_count(r); i++)
      json_array_append_new(a,
                            sx_records_found(r, i) ? RecordJson(r, i, &out.problem) : json_null());
    sx_records_free(r);
    out.value.reset(a);
    return out;
  }

  // scan (extension): every live record through a cursor, in id order, after `after`.
  Outcome Scan() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    std::string coll = Str("collection");
    std::string after;
    const json_t *ja = json_object_get(step_, "after");
    if (ja && !json_is_string(ja)) throw CaseError("\"after\" must be a string");
    if (ja) after = json_string_value(ja);
    size_t batch = 1000;
    const json_t *jb = json_object_get(step_, "batch");
    if (jb && (!json_is_integer(jb) || json_integer_value(jb) < 0))
      throw CaseError("\"batch\" must be an integer >= 0");
    if (jb) batch = static_cast<size_t>(json_integer_value(jb));
    sx_error e = SX_ERROR_INIT;
    CollectionView cv;
    sx_cursor *cur = nullptr;
    int rc = OpenView(*s, coll, &cv, &e);
    if (!rc) rc = sx_collection_cursor(cv.c, ja ? after.c_str() : nullptr, &cur, &e);
    if (rc) return FromError(rc, e);
    Outcome out;
    json_t *a = json_array();
    for (;;) {
      sx_records *r = nullptr;
      rc = sx_cursor_next(cur, batch, &r, &e);
      if (rc) break;
      size_t n = sx_records_count(r);
      for (size_t i = 0; i < n; i++) json_array_append_new(a, RecordJson(r, i, &out.problem));
      sx_records_free(r);
      if (n == 0) break;
    }
    sx_cursor_free(cur);
    if (rc) {
      json_decref(a);
      return FromError(rc, e);
    }
    out.value.reset(a);
    return out;
  }

  Outcome Count() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    std::string coll = Str("collection");
    sx_error e = SX_ERROR_INIT;
    CollectionView v;
    uint64_t n = 0;
    int rc = OpenView(*s, coll, &v, &e);
    if (!rc) rc = sx_collection_count(v.c, &n, &e);
    if (rc) return FromError(rc, e);
    return Value(json_integer(static_cast<json_int_t>(n)));
  }

  // The options of search and search_generated; the filter's text lives in filter_.
  sx_search_options SearchOptions() {
    sx_search_options o = SX_SEARCH_OPTIONS_INIT;
    if (const json_t *ef = Opt("ef")) o.ef = U32(ef, "ef");
    filter_.clear();
    if (const json_t *f = Opt("filter")) {
      // Passed on as its JSON text, whatever it is: the library judges it.
      char *t = json_dumps(f, JSON_ENCODE_ANY | JSON_COMPACT);
      if (!t) throw CaseError("\"filter\" cannot be serialized");
      filter_ = t;
      free(t);
      o.filter = filter_.c_str();
    }
    if (const json_t *inc = Opt("include")) {
      if (!json_is_array(inc)) throw CaseError("\"include\" must be an array");
      for (size_t i = 0; i < json_array_size(inc); i++) {
        const char *w = json_string_value(json_array_get(inc, i));
        if (w && !strcmp(w, "metadata"))
          o.include |= SX_INCLUDE_METADATA;
        else if (w && !strcmp(w, "vector"))
          o.include |= SX_INCLUDE_VECTOR;
        else
          throw CaseError("\"include\" holds \"metadata\" and \"vector\" only");
      }
    }
    if (const json_t *ex = Opt("exact")) {
      if (!json_is_boolean(ex)) throw CaseError("\"exact\" must be a boolean");
      o.exact = json_is_true(ex);
    }
    return o;
  }

  Outcome Search() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    std::string coll = Str("collection");
    std::vector<float> q = Vector(Arg("vector"), "vector");
    size_t k = Size("k");
    sx_search_options o = SearchOptions();
    sx_error e = SX_ERROR_INIT;
    CollectionView v;
    sx_results *res = nullptr;
    int rc = OpenView(*s, coll, &v, &e);
    if (!rc) rc = sx_collection_search(v.c, NonNull(q), q.size(), k, &o, &res, &e);
    if (rc) return FromError(rc, e);
    std::string problem;
    json_t *a = json_array();
    for (size_t i = 0; i < sx_results_count(res, 0); i++) {
      json_t *hit = json_object();
      const char *id = sx_results_id(res, 0, i);
      json_object_set_new(hit, "id", id ? json_string(id) : json_null());
      json_object_set_new(hit, "distance", NumberOrName(sx_results_distance(res, 0, i)));
      if (o.include & SX_INCLUDE_METADATA) {
        const char *md = sx_results_metadata(res, 0, i);
        json_t *parsed = json_null();
        if (md) {
          json_error_t je;
          parsed = json_loads(md, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
          if (!parsed) {
            problem = std::string("returned metadata is not valid JSON (") + je.text + "): " + md;
            parsed = json_string(md);
          }
        }
        json_object_set_new(hit, "metadata", parsed);
      }
      if (o.include & SX_INCLUDE_VECTOR) {
        const float *vec = sx_results_vector(res, 0, i);
        json_t *va = json_array();
        for (size_t j = 0; vec && j < sx_results_dim(res); j++)
          json_array_append_new(va, NumberOrName(vec[j]));
        json_object_set_new(hit, "vector", vec ? va : json_null());
        if (!vec) json_decref(va);
      }
      json_array_append_new(a, hit);
    }
    Outcome out;
    out.problem = problem;
    if (sx_results_queries(res) != 1)
      out.problem =
          "sx_results_queries gave " + std::to_string(sx_results_queries(res)) + " for one query";
    sx_results_free(res);
    out.value.reset(a);
    return out;
  }

  Outcome SearchGenerated() {
    Outcome m;
    Handle *s = Session(&m);
    if (!s) return m;
    std::string coll = Str("collection");
    GenArgs g = Gen();
    size_t k = Size("k");
    sx_search_options o = SearchOptions();
    std::vector<float> qs = Generate(g.seed, g.count, g.dim);
    sx_error e = SX_ERROR_INIT;
    CollectionView v;
    sx_results *res = nullptr;
    int rc = OpenView(*s, coll, &v, &e);
    if (!rc) rc = sx_collection_search_batch(v.c, NonNull(qs), g.count, g.dim, k, &o, &res, &e);
    if (rc) return FromError(rc, e);
    std::unique_ptr<sx_results, void (*)(sx_results *)> guard(res, sx_results_free);
    Outcome out;
    auto mc = s->model.find(coll);
    if (mc == s->model.end()) {
      out.problem =
          "runner: no record of collection '" + coll + "' in this session (create it in this test)";
      return out;
    }
    const ModelCollection &model = mc->second;
    if (sx_results_queries(res) != g.count) {
      out.problem = "search_batch answered " + std::to_string(sx_results_queries(res)) +
                    " queries of " + std::to_string(g.count);
      return out;
    }
    // With a filter (extension), the exact answer comes from the same API with
    // `exact` set: a scan of the matching items.
    sx_results *ex = nullptr;
    if (o.filter) {
      sx_search_options xo = o;
      xo.exact = 1;
      rc = sx_collection_search_batch(v.c, NonNull(qs), g.count, g.dim, k, &xo, &ex, &e);
      if (rc) return FromError(rc, e);
    }
    std::unique_ptr<sx_results, void (*)(sx_results *)> guard_ex(ex, sx_results_free);
    double total = 0;
    for (size_t q = 0; q < g.count; q++) {
      std::set<std::string> exact;
      size_t want = 0;
      if (ex) {
        for (size_t i = 0; i < sx_results_count(ex, q); i++) exact.insert(sx_results_id(ex, q, i));
        want = exact.size();
      } else {
        std::vector<std::pair<double, const std::string *>> all;
        all.reserve(model.vectors.size());
        for (const auto &kv : model.vectors) {
          if (kv.second.size() != g.dim) continue;
          all.emplace_back(Distance(model.metric, qs.data() + q * g.dim, kv.second.data(), g.dim),
                           &kv.first);
        }
        want = std::min(k, all.size());
        std::partial_sort(all.begin(), all.begin() + static_cast<long>(want), all.end(),
                          [](const auto &a, const auto &b) {
                            return a.first != b.first ? a.first < b.first : *a.second < *b.second;
                          });
        for (size_t i = 0; i < want; i++) exact.insert(*all[i].second);
      }
      size_t n = sx_results_count(res, q), found = 0;
      std::set<std::string> seen;
      if (n > k)
        out.problem = "query " + std::to_string(q) + " returned " + std::to_string(n) +
                      " hits for k " + std::to_string(k);
      for (size_t i = 0; i < n; i++) {
        const char *id = sx_results_id(res, q, i);
        std::string sid = id ? id : "";
        if (!model.vectors.count(sid) && out.problem.empty())
          out.problem =
              "query " + std::to_string(q) + " returned id \"" + sid + "\", which is not live";
        if (!seen.insert(sid).second && out.problem.empty())
          out.problem = "query " + std::to_string(q) + " returned id \"" + sid + "\" twice";
        if (exact.count(sid)) found++;
      }
      total += want ? static_cast<double>(found) / static_cast<double>(want) : (n == 0 ? 1.0 : 0.0);
    }
    double recall = g.count ? total / static_cast<double>(g.count) : 1.0;
    printf("search_generated on '%s' (%zu live vectors): mean recall@%zu over %zu queries = %.4f\n",
           coll.c_str(), model.vectors.size(), k, g.count, recall);
    out.value.reset(json_real(recall));
    return out;
  }

  // -- files

  Outcome WriteFile() {
    std::string path = Str("path");
    if (path.compare(0, tmp_.size() + 1, tmp_ + "/") != 0 ||
        path.find("/../") != std::string::npos || path.compare(path.size() - 3, 3, "/..") == 0)
      throw CaseError("write_file writes only inside $TMP, not to '" + path + "'");
    std::string bytes;
    const json_t *text = Opt("text"), *hex = Opt("hex");
    if ((text != nullptr) == (hex != nullptr))
      throw CaseError("write_file needs exactly one of \"text\", \"hex\"");
    if (text) {
      if (!json_is_string(text)) throw CaseError("\"text\" must be a string");
      bytes.assign(json_string_value(text), json_string_length(text));
    } else {
      std::string h = Str("hex");
      std::string digits;
      for (char ch : h)
        if (!isspace(static_cast<unsigned char>(ch))) digits += ch;
      if (digits.size() % 2) throw CaseError("\"hex\" has an odd number of digits");
      for (size_t i = 0; i < digits.size(); i += 2) {
        char pair[3] = {digits[i], digits[i + 1], 0};
        char *end;
        long b = strtol(pair, &end, 16);
        if (*end) throw CaseError("\"hex\" has a character that is not a hex digit");
        bytes += static_cast<char>(b);
      }
    }
    if (const json_t *pad = Opt("pad_to")) {
      long long n = Int(pad, "pad_to");
      if (n < 0 || n > (64 << 20)) throw CaseError("\"pad_to\" must be from 0 to 64 MiB");
      if (bytes.size() < static_cast<size_t>(n)) bytes.resize(static_cast<size_t>(n), '\0');
    }
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw CaseError("write_file cannot create '" + path + "': " + strerror(errno));
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = errno;
        close(fd);
        throw CaseError("write_file cannot write '" + path + "': " + strerror(err));
      }
      done += static_cast<size_t>(n);
    }
    close(fd);
    return Outcome();
  }

  std::string tmp_;  // this test's $TMP: write_file stays inside it
  std::vector<std::unique_ptr<Handle>> handles_;
  std::map<std::string, Handle *> names_;
  std::map<std::string, Model> committed_;  // by database path
  std::string op_;
  std::string filter_;  // the JSON text of the step's filter (SearchOptions)
  const json_t *step_ = nullptr;
};

// ---- checking a step's expectation ---------------------------------------------------------

// "" when the outcome meets the step's expectation, else what differed.
std::string Check(const std::string &op, const json_t *step, const Outcome &o) {
  const json_t *expect = json_object_get(step, "expect");
  const json_t *expect_error = json_object_get(step, "expect_error");
  if (expect && expect_error)
    throw CaseError("a step has at most one of \"expect\", \"expect_error\"");
  if (expect_error) {
    if (!json_is_string(expect_error)) throw CaseError("\"expect_error\" must be a string");
    std::string want = json_string_value(expect_error);
    if (o.status == SX_OK)
      return "expected error " + want + ", but the op succeeded (result: " + Dump(o.value.get()) +
             ")";
    std::string got = sx_status_name(o.status);
    if (got != want) return "expected error " + want + ", got " + got + ": " + o.message;
    return "";
  }
  if (o.status != SX_OK)
    return std::string("the op failed with ") + sx_status_name(o.status) + ": " + o.message;
  if (!o.problem.empty()) return o.problem;
  if (!expect) return "";
  Tolerance tol;
  if (const json_t *t = json_object_get(step, "tolerance")) {
    if (!json_is_number(t)) throw CaseError("\"tolerance\" must be a number");
    tol.absolute_only = true;
    tol.abs = json_number_value(t);
  }
  const json_t *actual = o.value.get();
  std::string why;
  auto differ = [&](const std::string &detail) {
    return "expected: " + Dump(expect) + "\n  actual:   " + Dump(actual) + "\n  difference " +
           detail;
  };
  if (op == "search_generated") {
    const json_t *r = json_object_get(expect, "recall_at_least");
    if (!json_is_object(expect) || !json_is_number(r) || json_object_size(expect) != 1)
      throw CaseError("search_generated expects {\"recall_at_least\": R}");
    double got = json_number_value(actual);
    if (got + 1e-12 >= json_number_value(r)) return "";
    char buf[128];
    snprintf(buf, sizeof buf, "mean recall %.6f is below %.6f", got, json_number_value(r));
    return buf;
  }
  if (op == "search" && json_is_object(expect)) {
    const json_t *ids = json_object_get(expect, "ids");
    const json_t *set = json_object_get(expect, "id_set");
    if (json_object_size(expect) != 1 || !(json_is_array(ids) || json_is_array(set)))
      throw CaseError("search expects a hit array, {\"ids\": [...]} or {\"id_set\": [...]}");
    json_t *got = json_array();
    Json guard(got);
    for (size_t i = 0; i < json_array_size(actual); i++)
      json_array_append(got, json_object_get(json_array_get(actual, i), "id"));
    if (ids) {
      if (!Match(ids, got, tol, "ids", &why)) return differ(why);
      return "";
    }
    std::vector<std::string> a, b;
    for (size_t i = 0; i < json_array_size(set); i++) a.push_back(Dump(json_array_get(set, i)));
    for (size_t i = 0; i < json_array_size(got); i++) b.push_back(Dump(json_array_get(got, i)));
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) return differ("in the set of ids (order ignored)");
    return "";
  }
  // describe_collection: only the expected keys, at the top and inside "index".
  int subset = op == "describe_collection" ? 2 : 0;
  if (!Match(expect, actual, tol, "", &why, subset)) return differ(why);
  return "";
}

// ---- case files and registration -------------------------------------------------------------

const std::set<std::string> kCapabilities = {
    "index:flat", "index:hnsw", "metric:l2", "metric:ip", "metric:cosine", "metadata", "filter"};
const std::set<std::string> kKnownTags = {"index:flat",    "index:hnsw", "metric:l2", "metric:ip",
                                          "metric:cosine", "metadata",   "filter"};

struct SkipEntry {
  std::string file, test, reason;
  bool matched = false;
};

struct CaseDef {
  std::string path, file, stem, name, gname;
  int line = 1;
  Json test;
  Json file_requires;
  std::string load_error;  // the file or the test is malformed
  const SkipEntry *skip = nullptr;
};

std::string SafeName(const std::string &s) {
  std::string out;
  for (char ch : s) out += isalnum(static_cast<unsigned char>(ch)) || ch == '_' ? ch : '_';
  return out.empty() ? "_" : out;
}

// A fresh directory per test: $TMP is <dir>/tmp, so files a case makes next to $TMP
// itself (such as "$TMP-shm" when $TMP is opened as a database) go away with <dir>.
class TmpDir {
 public:
  TmpDir() {
    const char *base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/sx-conformance-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back(0);
    if (!mkdtemp(buf.data()))
      throw CaseError(std::string("cannot make a temporary directory: ") + strerror(errno));
    outer_ = buf.data();
    tmp_ = outer_ + "/tmp";
    if (mkdir(tmp_.c_str(), 0700) != 0)
      throw CaseError("cannot make " + tmp_ + ": " + strerror(errno));
  }
  ~TmpDir() {
    nftw(
        outer_.c_str(),
        [](const char *p, const struct stat *, int, struct FTW *) { return remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  const std::string &path() const {
    return tmp_;
  }

 private:
  std::string outer_, tmp_;
};

// Runs one test; "" when it passed, else a report naming the file, test, step and op.
std::string RunCase(const CaseDef &d) {
  if (!d.load_error.empty()) return d.load_error;
  std::string head = "conformance case failed\n  file: " + d.file + "\n  test: " + d.name + "\n";
  // Capabilities: the file's and the test's.
  for (const json_t *req : {d.file_requires.get(), json_object_get(d.test.get(), "requires")}) {
    if (!req) continue;
    for (size_t i = 0; i < json_array_size(req); i++) {
      const char *tag = json_string_value(json_array_get(req, i));
      std::string t = tag ? tag : "(not a string)";
      if (!kKnownTags.count(t)) return head + "  requires unknown capability \"" + t + "\"\n";
      if (!kCapabilities.count(t))
        return head + "  requires \"" + t + "\", which the C binding does not support\n";
    }
  }
  const json_t *steps = json_object_get(d.test.get(), "steps");
  std::string failure;
  try {
    TmpDir tmp;
    Interpreter in(tmp.path());
    for (size_t i = 0; i < json_array_size(steps) && failure.empty(); i++) {
      Json step(Substitute(json_array_get(steps, i), tmp.path()));
      const char *op = json_string_value(json_object_get(step.get(), "op"));
      std::string where = head + "  step: " + std::to_string(i) + " (steps[" + std::to_string(i) +
                          "], op \"" + (op ? op : "?") +
                          "\")\n  step json: " + Dump(json_array_get(steps, i)) + "\n";
      try {
        if (!json_is_object(step.get())) throw CaseError("a step must be an object");
        Outcome o = in.Run(step.get());
        std::string why = Check(op, step.get(), o);
        if (!why.empty()) failure = where + "  " + why + "\n";
      } catch (const CaseError &e) {
        failure = where + "  case error: " + e.what() + "\n";
      }
    }
    in.CloseAll();  // handles left open, after the steps were checked; then $TMP goes
  } catch (const CaseError &e) {
    failure = head + "  runner error: " + e.what() + "\n";
  }
  return failure;
}

std::string SkipFilePath() {
  const char *p = getenv("CONFORMANCE_SKIP");
  return p && *p ? p : SX_CONFORMANCE_SKIP;
}

void LoudNote(const CaseDef &d) {
  const char *bar = "**********************************************************************";
  std::string msg = std::string(bar) + "\nNOTE: " + d.file + " / " + d.name + " is listed in " +
                    SkipFilePath() + " (reason: " + d.skip->reason +
                    ")\nbut it PASSED: remove it from the skip list.\n" + bar + "\n";
  fputs(msg.c_str(), stdout);
  fputs(msg.c_str(), stderr);
  fflush(stdout);
}

// Outcomes for $SEXTANT_CONFORMANCE_REPORT (the cross-language matrix,
// tools/conformance.sh): {"runner": "c", "results": [{"file", "test", "outcome"}]},
// outcome "passed", "expected_failure" (listed in the skip file and failing) or
// "failed" (including a listed test that passed).
struct ReportRow {
  std::string file, test, outcome;
};
std::vector<ReportRow> g_outcomes;

void WriteReport() {
  const char *path = getenv("SEXTANT_CONFORMANCE_REPORT");
  if (!path || !*path) return;
  json_t *results = json_array();
  for (const auto &o : g_outcomes)
    json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "file", o.file.c_str(), "test",
                                             o.test.c_str(), "outcome", o.outcome.c_str()));
  json_t *root = json_pack("{s:s, s:o}", "runner", "c", "results", results);
  if (json_dump_file(root, path, JSON_INDENT(1)) != 0)
    fprintf(stderr, "runner_c: cannot write the report %s\n", path);
  json_decref(root);
}

class CaseTest : public testing::Test {
 public:
  explicit CaseTest(const CaseDef *d) : d_(d) {}
  void TestBody() override {
    std::string failure = RunCase(*d_);
    g_outcomes.push_back({d_->file, d_->name,
                          d_->skip ? (failure.empty() ? "failed" : "expected_failure")
                                   : (failure.empty() ? "passed" : "failed")});
    if (d_->skip) {
      if (failure.empty()) {
        LoudNote(*d_);
        GTEST_SKIP() << "listed in the skip file: " << d_->skip->reason
                     << " -- BUT IT PASSED: remove it from " << SkipFilePath();
      }
      printf("failure of a test listed in the skip file (reason: %s):\n%s",
             d_->skip->reason.c_str(), failure.c_str());
      GTEST_SKIP() << d_->skip->reason;
    }
    if (!failure.empty()) ADD_FAILURE_AT(d_->path.c_str(), d_->line) << failure;
  }

 private:
  const CaseDef *d_;
};

// Fails with a fixed message: a case file, the case directory or the skip file is
// unusable. Registered as a test so that ctest shows it.
class BrokenTest : public testing::Test {
 public:
  explicit BrokenTest(std::string m) : m_(std::move(m)) {}
  void TestBody() override {
    ADD_FAILURE() << m_;
  }

 private:
  std::string m_;
};

std::vector<std::unique_ptr<CaseDef>> g_cases;
std::vector<std::unique_ptr<SkipEntry>> g_skips;

void RegisterBroken(const std::string &suite, const std::string &name, const std::string &message) {
  testing::RegisterTest(suite.c_str(), name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                        [message]() -> testing::Test * { return new BrokenTest(message); });
}

int LineOf(const std::string &text, const std::string &name) {
  Json js(json_string(name.c_str()));
  char *quoted = js ? json_dumps(js.get(), JSON_ENCODE_ANY) : nullptr;
  std::string q = quoted ? quoted : "";
  free(quoted);
  for (size_t at = text.find(q); at != std::string::npos; at = text.find(q, at + 1)) {
    size_t colon = text.find_last_not_of(" \t\n", at - 1);
    if (colon == std::string::npos || text[colon] != ':') continue;
    size_t key_end = text.find_last_not_of(" \t\n", colon - 1);
    if (key_end != std::string::npos && key_end >= 6 &&
        text.compare(key_end - 5, 6, "\"name\"") == 0)
      return 1 +
             static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
  }
  return 1;
}

void LoadFile(const std::string &dir, const std::string &file) {
  std::string path = dir + "/" + file;
  std::string stem = SafeName(file.substr(0, file.size() - 5));
  json_error_t je;
  // Any valid JSON: "\u0000" may appear in strings (metadata), as every other
  // language's parser allows.
  Json root(json_load_file(path.c_str(), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je));
  auto broken = [&](const std::string &why) { RegisterBroken(stem, "_file", path + ": " + why); };
  if (!root) {
    broken(std::string("not valid JSON: ") + je.text + " at line " + std::to_string(je.line));
    return;
  }
  const json_t *format = json_object_get(root.get(), "format");
  if (!json_is_integer(format) || json_integer_value(format) != 1) {
    broken("\"format\" must be 1 (the version this runner reads)");
    return;
  }
  const json_t *tests = json_object_get(root.get(), "tests");
  const json_t *req = json_object_get(root.get(), "requires");
  if (!json_is_array(tests) || (req && !json_is_array(req))) {
    broken("\"tests\" (and \"requires\" if present) must be arrays");
    return;
  }
  FILE *f = fopen(path.c_str(), "rb");
  std::string text;
  if (f) {
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    fclose(f);
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < json_array_size(tests); i++) {
    json_t *t = json_array_get(tests, i);
    auto d = std::make_unique<CaseDef>();
    d->path = path;
    d->file = file;
    d->stem = stem;
    const char *name = json_string_value(json_object_get(t, "name"));
    d->name = name ? name : "tests[" + std::to_string(i) + "]";
    d->gname = SafeName(d->name);
    d->line = LineOf(text, d->name);
    d->test = Incref(t);
    if (req) d->file_requires = Incref(const_cast<json_t *>(req));
    if (!name || !json_is_array(json_object_get(t, "steps")))
      d->load_error =
          path + ": tests[" + std::to_string(i) + "] needs a string \"name\" and a \"steps\" array";
    if (!seen.insert(d->gname).second) {
      RegisterBroken(stem, "_duplicate_" + d->gname,
                     path + ": two tests are named \"" + d->name +
                         "\" (names are unique within a file, also "
                         "after characters other than A-Z a-z 0-9 _ become _)");
      continue;
    }
    for (auto &s : g_skips) {
      if (s->file == file && s->test == d->name) {
        d->skip = s.get();
        s->matched = true;
      }
    }
    const CaseDef *def = d.get();
    g_cases.push_back(std::move(d));
    testing::RegisterTest(def->stem.c_str(), def->gname.c_str(), nullptr, nullptr,
                          def->path.c_str(), def->line,
                          [def]() -> testing::Test * { return new CaseTest(def); });
  }
}

// Reads the skip file; problems with it are returned (and make the skip-file test fail).
std::vector<std::string> LoadSkips() {
  std::vector<std::string> problems;
  std::string path = SkipFilePath();
  json_error_t je;
  Json root(json_load_file(path.c_str(), JSON_REJECT_DUPLICATES, &je));
  if (!root) return {path + ": " + je.text};
  const json_t *skips = json_object_get(root.get(), "skips");
  const json_t *comment = json_object_get(root.get(), "comment");
  if (!json_is_array(skips) || json_object_size(root.get()) != (comment ? 2u : 1u) ||
      (comment && !json_is_string(comment)))
    return {path +
            ": must be {\"comment\"?: \"...\", \"skips\": [{\"file\": ..., \"test\": ..., "
            "\"reason\": ...}, ...]}"};
  for (size_t i = 0; i < json_array_size(skips); i++) {
    const json_t *s = json_array_get(skips, i);
    std::string where = path + ": skips[" + std::to_string(i) + "]";
    const char *file = json_string_value(json_object_get(s, "file"));
    const char *test = json_string_value(json_object_get(s, "test"));
    const char *reason = json_string_value(json_object_get(s, "reason"));
    if (!file || !test) {
      problems.push_back(where + " needs string \"file\" and \"test\"");
      continue;
    }
    if (!reason || !*reason) {
      problems.push_back(where + " (" + file + " / " + test +
                         ") has no \"reason\": every skip needs one");
      continue;
    }
    if (json_object_size(s) != 3)
      problems.push_back(where + " has keys other than file, test, reason");
    auto e = std::make_unique<SkipEntry>();
    e->file = file;
    e->test = test;
    e->reason = reason;
    g_skips.push_back(std::move(e));
  }
  return problems;
}

// The skip file's own test: the file is well formed, every entry names an existing
// test, and no listed test passes (a passing one must leave the list). It runs the
// listed tests itself, so ctest shows a stale entry as a failure of this test.
class SkipFileTest : public testing::Test {
 public:
  explicit SkipFileTest(std::vector<std::string> p) : problems_(std::move(p)) {}
  void TestBody() override {
    std::vector<std::string> p = problems_;
    for (const auto &s : g_skips)
      if (!s->matched)
        p.push_back(SkipFilePath() + ": no test \"" + s->test + "\" in file \"" + s->file + "\"");
    for (const auto &d : g_cases) {
      if (d->skip && RunCase(*d).empty()) {
        LoudNote(*d);
        p.push_back(d->file + " / " + d->name + " passes: remove it from " + SkipFilePath());
      }
    }
    for (const auto &m : p) ADD_FAILURE() << m;
  }

 private:
  std::vector<std::string> problems_;
};

void RegisterAll() {
  std::vector<std::string> skip_problems = LoadSkips();
  const char *env = getenv("CONFORMANCE_CASES");
  std::string dir = env && *env ? env : SX_CONFORMANCE_CASES;
  DIR *dp = opendir(dir.c_str());
  if (!dp) {
    RegisterBroken("_cases", "directory",
                   "cannot read the case directory " + dir + ": " + strerror(errno));
  } else {
    std::vector<std::string> files;
    while (struct dirent *de = readdir(dp)) {
      std::string n = de->d_name;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0) files.push_back(n);
    }
    closedir(dp);
    std::sort(files.begin(), files.end());
    if (files.empty()) RegisterBroken("_cases", "directory", "no *.json case files in " + dir);
    for (const auto &f : files) LoadFile(dir, f);
  }
  testing::RegisterTest(
      "skip", "c_json", nullptr, nullptr, __FILE__, __LINE__,
      [skip_problems]() -> testing::Test * { return new SkipFileTest(skip_problems); });
}

}  // namespace

int main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  RegisterAll();
  int rc = RUN_ALL_TESTS();
  WriteReport();
  return rc;
}
