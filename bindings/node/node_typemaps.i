/*
 * node_typemaps.i: the Node half of bindings/sextant.i (included from there), for
 *   swig -javascript -napi -c++
 *
 * The low-level module this produces (build/Release/sextant.node) is private: the
 * package's index.js is its only caller and checks types and shapes first. The
 * module is still safe on its own: every pointer and length it hands to C comes from
 * a value it checked here, so a bad call is a JavaScript exception, never a crash.
 *
 * Conventions
 * - C++ exceptions are on (NAPI_CPP_EXCEPTIONS): errors are thrown as Napi::Error,
 *   and what a typemap holds for the length of a call lives in RAII locals
 *   (std::string, std::vector), so nothing leaks when a later argument throws.
 * - A failed status throws an instance of the class registered by index.js through
 *   sx_node_register() (SextantError) with .code = sx_status_name(status) and the
 *   C sx_error message; before registration a plain Error with .code. Wrong JS types
 *   throw TypeError.
 * - Out-parameters become the return value: handles as owning wrapper objects (their
 *   destructor is the C free function, run by the garbage collector), names, records
 *   and the stats/info structs as plain JavaScript values copied out at once. Search
 *   results come packed (all ids as one string joined by NUL, distances in one typed
 *   array; a synchronous single search writes its distances to a scratch array given
 *   once by sx_node_register), so a call makes a constant number of JS values; index.js
 *   turns them into hits.
 * - 64-bit counters come back as a Number when <= Number.MAX_SAFE_INTEGER, else as a
 *   BigInt.
 * - Vectors are Float32Array only (index.js converts plain arrays); a synchronous call
 *   reads the caller's memory in place, without a copy.
 *
 * Hand-written additions (documented in bindings/node/README.md): sx_node_register,
 * the cancel token (sx_node_token_*), the Promise-returning calls that run on the
 * libuv thread pool (sx_node_*_async, napi_async_work through Napi::AsyncWorker) and
 * sx_node_bench_search for the overhead benchmark. They sit in this file so that the
 * one generated sextant_wrap.cxx holds the whole module and can unwrap SWIG handles.
 */

%{
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <time.h>

namespace sxn {

/* ---- per-environment data (worker_threads: one per thread running the addon) ---- */

/* SWIG keeps its own per-environment data in napi's instance-data slot, so ours is a
 * small map from env to data, cleared by the env's cleanup hook. */
struct EnvData {
  Napi::FunctionReference error_ctor;
  /* Where a synchronous search writes its distances (index.js reads them at once):
   * no typed array or number is allocated per hit. */
  Napi::Reference<Napi::Float64Array> scratch;
};
static std::mutex env_mu;
static std::unordered_map<napi_env, EnvData *> env_map;

static void env_cleanup(void *arg) {
  napi_env e = (napi_env)arg;
  std::lock_guard<std::mutex> g(env_mu);
  auto it = env_map.find(e);
  if (it != env_map.end()) {
    delete it->second;
    env_map.erase(it);
  }
}

static EnvData *env_data(Napi::Env env, bool create) {
  std::lock_guard<std::mutex> g(env_mu);
  auto it = env_map.find((napi_env)env);
  if (it != env_map.end()) return it->second;
  if (!create) return nullptr;
  EnvData *d = new EnvData();
  env_map[(napi_env)env] = d;
  napi_add_env_cleanup_hook(env, env_cleanup, (void *)(napi_env)env);
  return d;
}

/* ---- errors ----------------------------------------------------------------------- */

/* Plain-language messages for calls that have no sx_error (close, end, abort). */
static const char *default_message(int code) {
  switch (code) {
    case SX_CLOSED: return "the handle was closed or its session already ended";
    case SX_MISUSE: return "the call is not allowed on this handle (NULL, or begun before fork())";
    case SX_INVALID_ARGUMENT: return "invalid argument";
    case SX_CANCELLED: return "the call was cancelled";
    default: return sx_status_name(code);
  }
}

static Napi::Error make_error(Napi::Env env, int code, const char *msg) {
  if (!msg || !*msg) msg = default_message(code);
  EnvData *d = env_data(env, false);
  if (d && !d->error_ctor.IsEmpty()) {
    Napi::Object e = d->error_ctor.New({Napi::String::New(env, msg), Napi::String::New(env, sx_status_name(code))});
    return Napi::Error(env, e);
  }
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, sx_status_name(code)));
  return e;
}

[[noreturn]] static void raise(Napi::Env env, int code, const char *msg) {
  throw make_error(env, code, msg);
}

[[noreturn]] static void type_error(Napi::Env env, const std::string &msg) {
  throw Napi::TypeError::New(env, msg);
}

/* ---- values in -------------------------------------------------------------------- */

/* A JS string as UTF-8 (lone surrogates become U+FFFD); `nul_ok` false refuses a NUL
 * inside, which a C string cannot hold. */
static void utf8(Napi::Env env, Napi::Value v, const char *what, std::string *out, bool nul_ok = false) {
  if (!v.IsString()) type_error(env, std::string(what) + " must be a string");
  size_t n = 0;
  napi_status st = napi_get_value_string_utf8(env, v, nullptr, 0, &n);
  if (st != napi_ok) type_error(env, std::string(what) + " must be a string");
  out->resize(n);
  napi_get_value_string_utf8(env, v, &(*out)[0], n + 1, &n);
  if (!nul_ok && std::memchr(out->data(), 0, out->size()))
    raise(env, SX_INVALID_ARGUMENT, (std::string(what) + " contains a NUL character").c_str());
}

/* The data of a Float32Array (in place). */
static const float *floats(Napi::Env env, Napi::Value v, const char *what, size_t *n) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    type_error(env, std::string(what) + " must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  *n = a.ElementLength();
  static const float nothing = 0;
  return *n ? a.Data() : &nothing;
}

/* An array of strings packed into one buffer: string i is buf[off[i] .. off[i+1]),
 * each followed by a NUL (so that a char * array can point into it). */
struct Strings {
  std::string buf;
  std::vector<size_t> off;
  std::vector<const char *> ptrs; /* filled by pointers() */
  size_t size() const { return off.empty() ? 0 : off.size() - 1; }
  const char *const *pointers() {
    ptrs.resize(size());
    for (size_t i = 0; i < size(); i++) ptrs[i] = buf.data() + off[i];
    return ptrs.data();
  }
};

/* An Array of strings (entries may be null/undefined when `nulls` is given: they get
 * (*nulls)[i] = 1, and an empty item). `packed`: no NUL after each item, and a NUL
 * inside one is left for the core to refuse (the packed C calls take lengths). */
static void strings(Napi::Env env, Napi::Value v, const char *what, Strings *s, std::vector<char> *nulls = nullptr,
                    bool packed = false) {
  if (!v.IsArray()) type_error(env, std::string(what) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  uint32_t n = a.Length();
  s->off.assign(1, 0);
  s->off.reserve(n + 1);
  if (nulls) nulls->assign(n, 0);
  std::string tmp;
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value e = a.Get(i);
    std::string where = std::string(what) + "[" + std::to_string(i) + "]";
    if (nulls && (e.IsNull() || e.IsUndefined())) {
      (*nulls)[i] = 1;
    } else {
      utf8(env, e, where.c_str(), &tmp, packed);
      s->buf.append(tmp);
    }
    if (!packed) s->buf.push_back('\0');
    s->off.push_back(s->buf.size());
  }
}

/* ---- values out ------------------------------------------------------------------- */

static Napi::Value u64(Napi::Env env, uint64_t v) {
  if (v <= 9007199254740991ull) return Napi::Number::New(env, (double)v);
  return Napi::BigInt::New(env, v);
}

static Napi::Value str(Napi::Env env, const char *s) {
  return s ? Napi::String::New(env, s) : env.Null();
}

static Napi::Value names(Napi::Env env, sx_names *n) {
  size_t count = sx_names_count(n);
  Napi::Array a = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; i++) a.Set((uint32_t)i, str(env, sx_names_get(n, i)));
  return a;
}

static Napi::Value record(Napi::Env env, sx_record *r) {
  size_t dim = 0;
  const float *v = sx_record_vector(r, &dim);
  Napi::Float32Array vec = Napi::Float32Array::New(env, dim);
  if (dim) std::memcpy(vec.Data(), v, dim * sizeof(float));
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", str(env, sx_record_id(r)));
  o.Set("vector", vec);
  o.Set("metadata", str(env, sx_record_metadata(r)));
  return o;
}

/* Results in bulk: per hit its id (pointer, length) and distance. */
struct Bulk {
  size_t nq = 0, total = 0;
  const size_t *qoff = nullptr;    /* nq + 1 */
  const float *dist = nullptr;     /* total */
  const char *ids = nullptr;
  const size_t *idoff = nullptr;   /* total + 1 */
  std::vector<size_t> qoff_own;    /* without the bulk accessors */
  explicit Bulk(const sx_results *res) {
    nq = sx_results_queries(res);
#ifdef SX_WRITE_OPTIONS_VERSION
    total = sx_results_total(res);
    qoff = sx_results_offsets(res);
    dist = sx_results_distances(res);
    ids = sx_results_id_data(res, &idoff);
#else
    qoff_own.assign(1, 0);
    for (size_t q = 0; q < nq; q++) qoff_own.push_back(qoff_own.back() + sx_results_count(res, q));
    qoff = qoff_own.data();
    total = qoff_own.back();
#endif
  }
};

static float bulk_distance(const sx_results *res, const Bulk &b, size_t q, size_t h) {
#ifdef SX_WRITE_OPTIONS_VERSION
  (void)res;
  (void)q;
  return b.dist[h];
#else
  return sx_results_distance(res, q, h - b.qoff[q]);
#endif
}

/* All ids of the results in hit order, joined by NUL (an id never holds one), as
 * one JavaScript string: one string to make per call instead of one per hit. */
static Napi::Value joined_ids(Napi::Env env, const sx_results *res, const Bulk &b) {
  if (b.total == 0) return Napi::String::New(env, "");
#ifdef SX_WRITE_OPTIONS_VERSION
  (void)res;
  return Napi::String::New(env, b.ids + b.idoff[0], b.idoff[b.total] - b.idoff[0] - 1);
#else
  std::string s;
  for (size_t q = 0; q < b.nq; q++) {
    for (size_t i = 0; i < b.qoff[q + 1] - b.qoff[q]; i++) {
      s.append(sx_results_id(res, q, i));
      s.push_back('\0');
    }
  }
  s.pop_back();
  return Napi::String::New(env, s);
#endif
}

/* What the hits carry besides ids and distances (sx_search_options::include), in
 * bulk: `extra[0]` every hit's metadata as the text of one JSON array (null for a hit
 * without; JSON.parse once per call), or undefined when metadata was not included;
 * `extra[1]` every hit's vector in one Float32Array of total * dim (index.js gives each
 * hit a view), or undefined when vectors were not included; `extra[2]` dim. Returns
 * false (and sets nothing) when the results carry neither. */
static bool has_extras(const sx_results *res) {
#if SX_SEARCH_OPTIONS_VERSION >= 3
  const size_t *moff = nullptr;
  return sx_results_metadata_data(res, &moff) != nullptr || sx_results_vectors(res) != nullptr;
#else
  (void)res;
  return false;
#endif
}

static bool extras(Napi::Env env, const sx_results *res, const Bulk &b, Napi::Array out, uint32_t at) {
#if SX_SEARCH_OPTIONS_VERSION >= 3
  const size_t *moff = nullptr;
  const char *meta = sx_results_metadata_data(res, &moff);
  const float *vec = sx_results_vectors(res);
  size_t dim = sx_results_dim(res);
  if (!moff && !vec) return false;
  if (moff) {
    std::string s;
    s.reserve(moff[b.total] + b.total * 5 + 2);
    s.push_back('[');
    for (size_t h = 0; h < b.total; h++) {
      if (h) s.push_back(',');
      if (moff[h + 1] > moff[h]) s.append(meta + moff[h], moff[h + 1] - moff[h] - 1);
      else s.append("null");
    }
    s.push_back(']');
    out.Set(at, Napi::String::New(env, s));
  }
  if (vec) {
    Napi::Float32Array v = Napi::Float32Array::New(env, b.total * dim);
    if (b.total != 0 && dim != 0) std::memcpy(v.Data(), vec, b.total * dim * sizeof(float));
    out.Set(at + 1, v);
  }
  out.Set(at + 2, Napi::Number::New(env, (double)dim));
  return true;
#else
  (void)env, (void)res, (void)b, (void)out, (void)at;
  return false;
#endif
}

/* A synchronous single search: the ids joined by NUL; the distances go to the
 * registered scratch Float64Array (index.js makes it hold k, up to a cap). When the
 * hits carry metadata or vectors: [ids joined by NUL, metadata, vectors, dim] (see
 * extras). When there are more hits than the scratch holds, the distances come in a
 * Float64Array of their own: [ids joined by NUL, metadata?, vectors?, dim?, distances]. */
static Napi::Value hits_scratch(Napi::Env env, const sx_results *res) {
  Bulk b(res);
  EnvData *d = env_data(env, false);
  if (!d || d->scratch.IsEmpty()) raise(env, SX_MISUSE, "sx_node_register() has not given a scratch array");
  Napi::Float64Array a = d->scratch.Value();
  if (a.ElementLength() < b.total) {
    Napi::Float64Array own = Napi::Float64Array::New(env, b.total);
    for (size_t h = 0; h < b.total; h++) own.Data()[h] = (double)bulk_distance(res, b, 0, h);
    Napi::Array more = Napi::Array::New(env, 5);
    more.Set(0u, joined_ids(env, res, b));
    extras(env, res, b, more, 1);
    more.Set(4u, own);
    return more;
  }
  double *out = a.Data();
  for (size_t h = 0; h < b.total; h++) out[h] = (double)bulk_distance(res, b, 0, h);
  Napi::Value ids = joined_ids(env, res, b);
  if (!has_extras(res)) return ids; /* the common case: no array made */
  Napi::Array more = Napi::Array::New(env, 4);
  more.Set(0u, ids);
  extras(env, res, b, more, 1);
  return more;
}

/* Any results, packed: [ids joined by NUL, distances (Float32Array, every hit),
 * offsets (Uint32Array of nq + 1: query q's hits are [off[q], off[q + 1]))], and when
 * the hits carry metadata or vectors, [3..5] as in extras. */
static Napi::Value packed(Napi::Env env, const sx_results *res) {
  Bulk b(res);
  Napi::Float32Array dist = Napi::Float32Array::New(env, b.total);
  Napi::Uint32Array off = Napi::Uint32Array::New(env, b.nq + 1);
  float *dd = dist.Data();
  uint32_t *oo = off.Data();
  for (size_t q = 0; q < b.nq; q++) {
    oo[q] = (uint32_t)b.qoff[q];
    for (size_t h = b.qoff[q]; h < b.qoff[q + 1]; h++) dd[h] = bulk_distance(res, b, q, h);
  }
  oo[b.nq] = (uint32_t)b.total;
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, joined_ids(env, res, b));
  out.Set(1u, dist);
  out.Set(2u, off);
  extras(env, res, b, out, 3);
  return out;
}

/* The out-parameter structs as plain objects (camelCase, as JavaScript spells). */
static Napi::Value to_js(Napi::Env env, const sx_db_stats &s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("pageSize", Napi::Number::New(env, s.page_size));
  o.Set("pageCount", u64(env, s.page_count));
  o.Set("walFrames", u64(env, s.wal_frames));
  o.Set("walBackfilled", u64(env, s.wal_backfilled));
  o.Set("commits", u64(env, s.commits));
  o.Set("checkpoints", u64(env, s.checkpoints));
  o.Set("readers", Napi::Number::New(env, s.readers));
  o.Set("readerSlots", Napi::Number::New(env, s.reader_slots));
  o.Set("oldestReaderLag", u64(env, s.oldest_reader_lag));
  o.Set("oldestReaderPid", Napi::Number::New(env, s.oldest_reader_pid));
  return o;
}

static Napi::Value to_js(Napi::Env env, const sx_collection_info &s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, s.name));
  o.Set("dim", Napi::Number::New(env, s.dim));
  const char *m = sx_metric_name(s.metric);
  o.Set("metric", m ? Napi::String::New(env, m) : Napi::String::New(env, "unknown"));
  o.Set("index", Napi::Number::New(env, (int)s.index));
  o.Set("m", Napi::Number::New(env, s.hnsw_m));
  o.Set("efConstruction", Napi::Number::New(env, s.hnsw_ef_construction));
  const char *q = sx_quantization_name(s.quantization);
  o.Set("quantization", q ? Napi::String::New(env, q) : Napi::String::New(env, "unknown"));
  o.Set("count", u64(env, s.count));
  return o;
}

static Napi::Value to_js(Napi::Env env, const sx_collection_stats &s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("count", u64(env, s.count));
  o.Set("slots", u64(env, s.slots));
  o.Set("dead", u64(env, s.dead));
  o.Set("free", u64(env, s.free));
  return o;
}

static void init_out(sx_db_stats *s) {
  std::memset(s, 0, sizeof *s);
#ifdef SX_DB_STATS_VERSION
  s->version = SX_DB_STATS_VERSION;
#endif
}
static void init_out(sx_collection_info *s) {
  std::memset(s, 0, sizeof *s);
#ifdef SX_COLLECTION_INFO_VERSION
  s->version = SX_COLLECTION_INFO_VERSION;
#endif
}
static void init_out(sx_collection_stats *s) {
  std::memset(s, 0, sizeof *s);
#ifdef SX_COLLECTION_STATS_VERSION
  s->version = SX_COLLECTION_STATS_VERSION;
#endif
}

#ifdef SX_BACKUP_OPTIONS_VERSION
/* A batch of records (batch get, cursor), packed: [ids joined by NUL, vectors
 * (Float32Array of count * dim, a copy), dim, found (Uint8Array), metadata (an Array
 * of JSON text or null)]; index.js builds the records. */
static Napi::Value records(Napi::Env env, const sx_records *r) {
  size_t n = sx_records_count(r), dim = sx_records_dim(r);
  const size_t *ioff = nullptr, *moff = nullptr;
  const char *ids = sx_records_id_data(r, &ioff);
  const char *meta = sx_records_metadata_data(r, &moff);
  Napi::Float32Array vec = Napi::Float32Array::New(env, n * dim);
  const float *v = sx_records_vectors(r);
  if (n * dim != 0 && v) std::memcpy(vec.Data(), v, n * dim * sizeof(float));
  Napi::Uint8Array found = Napi::Uint8Array::New(env, n);
  const unsigned char *f = sx_records_found_data(r);
  if (n && f) std::memcpy(found.Data(), f, n);
  Napi::Array md = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++)
    md.Set((uint32_t)i, moff[i + 1] > moff[i] ? Napi::String::New(env, meta + moff[i], moff[i + 1] - moff[i] - 1)
                                              : env.Null());
  Napi::Array out = Napi::Array::New(env, 5);
  out.Set(0u, n ? Napi::String::New(env, ids + ioff[0], ioff[n] - ioff[0] - 1) : Napi::String::New(env, ""));
  out.Set(1u, vec);
  out.Set(2u, Napi::Number::New(env, (double)dim));
  out.Set(3u, found);
  out.Set(4u, md);
  return out;
}
#endif

/* ---- handles in ------------------------------------------------------------------- */

/* SWIG 4.5.1's Node-API runtime accepts any SWIG object for any pointer type (a wrapper
 * made by a class constructor carries no type), so a read session given where a
 * database belongs would reach the core as the wrong struct. Handles and option
 * structs are therefore checked against their own class first. */
static int convert(Napi::Env env, Napi::Value v, void **p, swig_type_info *ty) {
  *p = nullptr;
  if (v.IsNull()) return SWIG_OK; /* NULL: the core answers MISUSE */
  if (!v.IsObject()) return SWIG_TypeError;
  size_t *idx = ty ? (size_t *)ty->clientdata : nullptr;
  EnvInstanceData *d = env.GetInstanceData<EnvInstanceData>();
  if (!idx || !d || !d->ctor[*idx]) return SWIG_TypeError;
  Napi::Object o = v.As<Napi::Object>();
  if (!o.InstanceOf(d->ctor[*idx]->Value())) return SWIG_TypeError;
  /* An instance of the class (not an object made from its prototype) carries the pointer. */
  void *w = nullptr;
  if (napi_unwrap(env, o, &w) != napi_ok || !w) return SWIG_TypeError;
  /* As SWIG's own SWIG_NAPI_ConvertInstancePtr reads it (every wrapper class has the
   * layout of SWIG_NAPI_ObjectWrap_templ). */
  *p = static_cast<SWIG_NAPI_ObjectWrap_inst *>(w)->self;
  return SWIG_OK;
}

#ifdef SX_SPACE_STATS_VERSION
static void init_out(sx_space_stats *s) {
  std::memset(s, 0, sizeof *s);
  s->version = SX_SPACE_STATS_VERSION;
}
static Napi::Value to_js(Napi::Env env, const sx_space_stats &s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("pageSize", Napi::Number::New(env, s.page_size));
  o.Set("pageCount", u64(env, s.page_count));
  o.Set("freePages", u64(env, s.free_pages));
  o.Set("collectionPages", u64(env, s.collection_pages));
  o.Set("liveBytes", u64(env, s.live_bytes));
  o.Set("reclaimableBytes", u64(env, s.reclaimable_bytes));
  return o;
}
#endif

/* A timeout in milliseconds for the C API's int: a Number (negative or Infinity: for
 * ever). */
static int timeout_of(Napi::Env env, Napi::Value v) {
  if (!v.IsNumber()) type_error(env, "timeoutMs must be a number");
  double t = v.As<Napi::Number>().DoubleValue();
  if (t != t) raise(env, SX_INVALID_ARGUMENT, "timeoutMs is NaN");
  return t < 0 ? -1 : t > 2147483647.0 ? 2147483647 : (int)std::ceil(t);
}

/* ---- search options --------------------------------------------------------------- */

/* The cancel token behind an AbortSignal: index.js sets it from the signal's abort
 * event (main thread); the core polls it from whichever thread runs the call. */
struct Token {
  std::atomic<int> set{0};
#ifdef SX_WRITE_OPTIONS_VERSION
  sx_cancel *c = nullptr;
#endif
  ~Token() {
#ifdef SX_WRITE_OPTIONS_VERSION
    sx_cancel_free(c);
#endif
  }
};

#ifndef SX_WRITE_OPTIONS_VERSION
/* Without the core's token: the cancel hook of sx_search_options, polled from the
 * search's threads. */
static int token_hook(void *ctx) {
  return ((Token *)ctx)->set.load(std::memory_order_relaxed);
}
#endif

static Token *token_of(Napi::Env env, Napi::Value v) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsExternal()) type_error(env, "the cancel token must come from sx_node_token_new");
  return v.As<Napi::External<Token>>().Data();
}

static uint32_t u32_of(Napi::Env env, Napi::Value v, const char *what) {
  if (!v.IsNumber()) type_error(env, std::string(what) + " must be a number");
  double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= 0 && x <= 4294967295.0) || x != std::floor(x))
    raise(env, SX_INVALID_ARGUMENT,
          (std::string(what) + " " + v.ToString().Utf8Value() + " is not an integer from 0 to 4294967295").c_str());
  return (uint32_t)x;
}

/* Search options from undefined/null (defaults), a Number (ef) or an object {ef,
 * threads, filter, include, exact} (threads: most threads this call may use; 1 keeps
 * it on its thread; filter: JSON text, kept in *filter, which must outlive the call;
 * include: a mask of SX_INCLUDE_*; exact: a boolean), and the cancel token of an async
 * call. */
static void search_options(Napi::Env env, Napi::Value v, Token *tok, sx_search_options *o,
                           std::string *filter) {
  std::memset(o, 0, sizeof *o);
  o->version = SX_SEARCH_OPTIONS_VERSION;
  if (v.IsNumber()) {
    o->ef = u32_of(env, v, "ef");
  } else if (v.IsObject()) {
    Napi::Object obj = v.As<Napi::Object>();
    Napi::Value ef = obj.Get("ef"), th = obj.Get("threads");
    if (!ef.IsUndefined() && !ef.IsNull()) o->ef = u32_of(env, ef, "ef");
    Napi::Value fv = obj.Get("filter"), inc = obj.Get("include"), ex = obj.Get("exact");
#if SX_SEARCH_OPTIONS_VERSION >= 3
    if (!fv.IsUndefined() && !fv.IsNull()) {
      if (!fv.IsString()) type_error(env, "filter must be JSON text (index.js stringifies objects)");
      *filter = fv.As<Napi::String>().Utf8Value();
      if (std::memchr(filter->data(), 0, filter->size())) raise(env, SX_INVALID_ARGUMENT, "the filter holds a NUL character");
      o->filter = filter->c_str();
    }
    if (!inc.IsUndefined() && !inc.IsNull()) o->include = u32_of(env, inc, "include");
    if (!ex.IsUndefined() && !ex.IsNull()) {
      if (!ex.IsBoolean()) type_error(env, "exact must be a boolean");
      o->exact = ex.As<Napi::Boolean>().Value() ? 1 : 0;
    }
#else
    (void)filter;
    if (!fv.IsUndefined() || !inc.IsUndefined() || !ex.IsUndefined())
      raise(env, SX_INVALID_ARGUMENT, "this core has no filtered search");
#endif
    if (!th.IsUndefined() && !th.IsNull()) {
#ifdef SX_WRITE_OPTIONS_VERSION
      o->threads = u32_of(env, th, "threads");
#else
      raise(env, SX_INVALID_ARGUMENT, "this core has no per-search threads option");
#endif
    }
  } else if (!v.IsUndefined() && !v.IsNull()) {
    type_error(env, "search options must be a number (ef) or {ef, threads, filter, include, exact}");
  }
  if (tok) {
#ifdef SX_WRITE_OPTIONS_VERSION
    o->cancel_token = tok->c;
#else
    o->cancel = token_hook;
    o->cancel_ctx = tok;
#endif
  }
}

}  // namespace sxn
%}

/* ---- statuses and errors ------------------------------------------------------------ */

/* A status result: undefined on success. With an sx_error, its argout (the last
 * parameter, so after the other out-parameters) throws with the message; without
 * one, the `ret` typemap (which SWIG emits after every argout) throws with the
 * status's plain-language message. So no function needs to be listed by name: a new
 * function returning sx_status can never swallow its error. */
%typemap(out) sx_status, int SX_STATUS, int SX_STATUS_NOERR, sx_status SX_STATUS, sx_status SX_STATUS_NOERR {
  $result = env.Undefined();
}
%typemap(ret) sx_status, int SX_STATUS, int SX_STATUS_NOERR, sx_status SX_STATUS, sx_status SX_STATUS_NOERR {
  if ($1 != SX_OK) sxn::raise(env, $1, NULL);
}
%typemap(argout) sx_error *err {
  if (result != SX_OK) sxn::raise(env, result, $1->message);
}

/* ---- out-parameters ------------------------------------------------------------------ */

/* The shared `sx_metric *out` initializer assigns 0 to an enum, which C++ refuses. */
%typemap(in, numinputs=0) sx_metric *out (sx_metric sx_tmp) {
  sx_tmp = SX_METRIC_L2;
  $1 = &sx_tmp;
}
%typemap(in, numinputs=0) sx_quantization *out (sx_quantization sx_tmp) {
  sx_tmp = SX_QUANTIZATION_NONE;
  $1 = &sx_tmp;
}
%typemap(in, numinputs=0) sx_sync *out (sx_sync sx_tmp) {
  sx_tmp = SX_SYNC_FULL;
  $1 = &sx_tmp;
}
%typemap(in, numinputs=0) sx_index_type *out (sx_index_type sx_tmp) {
  sx_tmp = SX_INDEX_HNSW;
  $1 = &sx_tmp;
}

%typemap(argout) sx_db **out, sx_read **out, sx_write **out, sx_collection **out {
  $result = *$1 ? SWIG_NewPointerObj(*$1, $*1_descriptor, SWIG_POINTER_OWN) : env.Undefined();
}
%typemap(argout) sx_names **out {
  if (*$1) {
    try {
      $result = sxn::names(env, *$1);
    } catch (...) {
      sx_names_free(*$1);
      throw;
    }
    sx_names_free(*$1);
  }
}
%typemap(argout) sx_record **out {
  if (*$1) {
    try {
      $result = sxn::record(env, *$1);
    } catch (...) {
      sx_record_free(*$1);
      throw;
    }
    sx_record_free(*$1);
  }
}
/* sx_collection_search: the ids joined by NUL, the distances in the scratch array;
 * _batch: packed (see sxn::packed). index.js makes hits and {ids, distances}. */
%typemap(argout) sx_results **out {
  if (*$1) {
    try {
      $result = std::strcmp("$symname", "sx_collection_search") == 0 ? sxn::hits_scratch(env, *$1) : sxn::packed(env, *$1);
    } catch (...) {
      sx_results_free(*$1);
      throw;
    }
    sx_results_free(*$1);
  }
}
/* 64-bit results (sx_cursor_remaining): Number up to 2^53 - 1, else BigInt. */
%typemap(out) uint64_t {
  $result = sxn::u64(env, $1);
}
%typemap(argout) uint64_t *out {
  $result = sxn::u64(env, *$1);
}
%typemap(argout) size_t *deleted {
  $result = Napi::Number::New(env, (double)*$1);
}
%typemap(argout) sx_metric *out, sx_quantization *out, sx_sync *out, sx_index_type *out {
  $result = Napi::Number::New(env, (double)*$1);
}
/* Versioned output structs: the version this header describes is set before the call. */
%typemap(in, numinputs=0) sx_db_stats *out (sx_db_stats sx_tmp), sx_collection_info *out (sx_collection_info sx_tmp),
                          sx_collection_stats *out (sx_collection_stats sx_tmp),
                          sx_space_stats *out (sx_space_stats sx_tmp) {
  sxn::init_out(&sx_tmp);
  $1 = &sx_tmp;
}
%typemap(argout) sx_db_stats *out, sx_collection_info *out, sx_collection_stats *out, sx_space_stats *out {
  $result = sxn::to_js(env, *$1);
}

/* Batch get and cursors (sx_records, sx_cursor): records come back packed (see
 * sxn::records); a cursor is a handle whose destructor frees it. */
SX_HANDLE(sx_cursor, sx_cursor_free)
%ignore sx_cursor_free;
%typemap(in, numinputs=0) sx_records **out (sx_records *sx_tmp), sx_cursor **out (sx_cursor *sx_tmp) {
  sx_tmp = NULL;
  $1 = &sx_tmp;
}
%typemap(argout) sx_records **out {
  if (*$1) {
    try {
      $result = sxn::records(env, *$1);
    } catch (...) {
      sx_records_free(*$1);
      throw;
    }
    sx_records_free(*$1);
  }
}
%typemap(argout) sx_cursor **out {
  $result = *$1 ? SWIG_NewPointerObj(*$1, $*1_descriptor, SWIG_POINTER_OWN) : env.Undefined();
}
%ignore sx_records;
%ignore sx_records_count;
%ignore sx_records_dim;
%ignore sx_records_found;
%ignore sx_records_id;
%ignore sx_records_vector;
%ignore sx_records_metadata;
%ignore sx_records_vectors;
%ignore sx_records_found_data;
%ignore sx_records_id_data;
%ignore sx_records_metadata_data;
%ignore sx_records_free;

/* Backup options: undefined/null or {overwrite}. Progress and cancellation are for
 * sx_node_backup_async (node_async.i). */
%typemap(in) const sx_backup_options *opts (sx_backup_options sx_bo) {
  if ($input.IsUndefined() || $input.IsNull()) {
    $1 = NULL;
  } else {
    if (!$input.IsObject()) sxn::type_error(env, "backup options must be an object");
    sx_backup_options_init(&sx_bo, SX_BACKUP_OPTIONS_VERSION);
    Napi::Value sx_ow = $input.As<Napi::Object>().Get("overwrite");
    if (!sx_ow.IsUndefined() && !sx_ow.IsBoolean()) sxn::type_error(env, "overwrite must be true or false");
    sx_bo.overwrite = sx_ow.IsBoolean() && sx_ow.As<Napi::Boolean>().Value();
    $1 = &sx_bo;
  }
}
%ignore sx_backup_options;
%ignore sx_backup_options_init;

/* Compaction options: undefined/null (no wait) or {timeoutMs}. Cancellation is for
 * sx_node_compact_async (node_async.i). */
%typemap(in) const sx_compact_options *opts (sx_compact_options sx_co) {
  if ($input.IsUndefined() || $input.IsNull()) {
    $1 = NULL;
  } else {
    if (!$input.IsObject()) sxn::type_error(env, "compact options must be an object");
    sx_compact_options_init(&sx_co, SX_COMPACT_OPTIONS_VERSION);
    Napi::Value sx_t = $input.As<Napi::Object>().Get("timeoutMs");
    if (!sx_t.IsUndefined()) sx_co.timeout_ms = sxn::timeout_of(env, sx_t);
    $1 = &sx_co;
  }
}
%ignore sx_compact_options;
%ignore sx_compact_options_init;

/* ---- handles and option structs in -------------------------------------------------- */

%typemap(in) sx_db *, const sx_db *, sx_read *, sx_write *, sx_collection *, sx_cursor *, const sx_cursor *,
             sx_open_options *, const sx_open_options *, sx_collection_options *,
             const sx_collection_options * {
  void *sx_p = 0;
  if (!SWIG_IsOK(sxn::convert(env, $input, &sx_p, $descriptor)))
    sxn::type_error(env, "$symname: argument $argnum must be a $*1_ltype handle or null");
  $1 = ($1_ltype)sx_p;
}

/* ---- inputs ---------------------------------------------------------------------------- */

/* Strings: a JS string (UTF-8, no NUL inside); null and undefined are NULL (the core
 * refuses it). */
%typemap(in) const char * (std::string sx_str) {
  if ($input.IsNull() || $input.IsUndefined()) {
    $1 = NULL;
  } else {
    sxn::utf8(env, $input, "$1_name", &sx_str);
    $1 = ($1_ltype)sx_str.c_str();
  }
}
%typemap(freearg) const char * "";

/* 64-bit unsigned: a Number (a non-negative safe integer) or a BigInt. */
%typemap(in) uint64_t value {
  if ($input.IsBigInt()) {
    bool lossless = false;
    uint64_t v = $input.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) sxn::raise(env, SX_INVALID_ARGUMENT, "value must be from 0 to 2^64-1");
    $1 = v;
  } else if ($input.IsNumber()) {
    double x = $input.As<Napi::Number>().DoubleValue();
    if (!(x >= 0 && x <= 9007199254740991.0) || x != std::floor(x))
      sxn::raise(env, SX_INVALID_ARGUMENT, "value must be a safe integer >= 0, or a BigInt");
    $1 = (uint64_t)x;
  } else {
    sxn::type_error(env, "value must be a number or a bigint");
  }
}

/* Ids to delete: an Array of strings. */
%typemap(in) (size_t n, const char *const *ids) (sxn::Strings sx_ids) {
  sxn::strings(env, $input, "ids", &sx_ids);
  $1 = sx_ids.size();
  $2 = ($2_ltype)sx_ids.pointers();
}

/* One query: a Float32Array. */
%typemap(in) (const float *query, size_t dim) {
  $1 = ($1_ltype)sxn::floats(env, $input, "query", &$2);
}

/* A batch of queries: [Float32Array of nq * dim values, dim]. */
%typemap(in) (const float *queries, size_t nq, size_t dim) {
  if (!$input.IsArray() || $input.As<Napi::Array>().Length() != 2)
    sxn::type_error(env, "queries must be [Float32Array, dim]");
  size_t len = 0;
  $1 = ($1_ltype)sxn::floats(env, $input.As<Napi::Array>().Get(0u), "queries", &len);
  Napi::Value d = $input.As<Napi::Array>().Get(1u);
  if (!d.IsNumber()) sxn::type_error(env, "dim must be a number");
  double dd = d.As<Napi::Number>().DoubleValue();
  if (!(dd >= 1 && dd <= 4294967295.0) || dd != std::floor(dd) || len % (size_t)dd)
    sxn::raise(env, SX_INVALID_ARGUMENT, "the queries' length is not a multiple of dim");
  $3 = (size_t)dd;
  $2 = len / $3;
}

/* The upsert batch: [ids (n strings), vectors (Float32Array of n * dim), dim,
 * metadata (null, or n entries of JSON text or null)]. */
%typemap(in) (size_t n, const char *const *ids, const float *vectors, size_t dim,
              const char *const *metadata)
    (sxn::Strings sx_ids, sxn::Strings sx_meta, std::vector<char> sx_nometa, std::vector<const char *> sx_metap) {
  if (!$input.IsArray() || $input.As<Napi::Array>().Length() != 4)
    sxn::type_error(env, "the upsert batch must be [ids, vectors, dim, metadata]");
  Napi::Array sx_b = $input.As<Napi::Array>();
  sxn::strings(env, sx_b.Get(0u), "ids", &sx_ids);
  size_t sx_len = 0;
  $3 = ($3_ltype)sxn::floats(env, sx_b.Get(1u), "vectors", &sx_len);
  Napi::Value sx_d = sx_b.Get(2u);
  if (!sx_d.IsNumber()) sxn::type_error(env, "dim must be a number");
  double sx_dd = sx_d.As<Napi::Number>().DoubleValue();
  if (!(sx_dd >= 0 && sx_dd <= 4294967295.0) || sx_dd != std::floor(sx_dd))
    sxn::raise(env, SX_INVALID_ARGUMENT, "dim must be an integer from 0 to 4294967295");
  $1 = sx_ids.size();
  $4 = (size_t)sx_dd;
  if (sx_len != $1 * $4) {
    char msg[160];
    snprintf(msg, sizeof msg, "%zu ids but %zu floats for dimension %zu", $1, sx_len, $4);
    sxn::raise(env, SX_INVALID_ARGUMENT, msg);
  }
  $2 = ($2_ltype)sx_ids.pointers();
  $5 = NULL;
  Napi::Value sx_m = sx_b.Get(3u);
  if (!sx_m.IsNull() && !sx_m.IsUndefined()) {
    sxn::strings(env, sx_m, "metadata", &sx_meta, &sx_nometa);
    if (sx_meta.size() != $1) {
      char msg[128];
      snprintf(msg, sizeof msg, "%zu ids but %zu metadata entries", $1, sx_meta.size());
      sxn::raise(env, SX_INVALID_ARGUMENT, msg);
    }
    sx_meta.pointers();
    sx_metap.assign(sx_meta.ptrs.begin(), sx_meta.ptrs.end());
    for (size_t i = 0; i < $1; i++)
      if (sx_nometa[i]) sx_metap[i] = NULL;
    $5 = ($5_ltype)sx_metap.data();
  }
}

/* The packed forms (what index.js uses when the core has them). Ids to delete: */
%typemap(in) (size_t n, const char *ids, const size_t *id_offsets) (sxn::Strings sx_ids) {
  sxn::strings(env, $input, "ids", &sx_ids, nullptr, true);
  $1 = sx_ids.size();
  $2 = ($2_ltype)sx_ids.buf.data();
  $3 = ($3_ltype)sx_ids.off.data();
}
/* ... and the upsert batch, as for sx_write_upsert: [ids, vectors, dim, metadata]. */
%typemap(in) (size_t n, const char *ids, const size_t *id_offsets, const float *vectors, size_t dim,
              const char *metadata, const size_t *metadata_offsets)
    (sxn::Strings sx_ids, sxn::Strings sx_meta, std::vector<char> sx_nometa) {
  if (!$input.IsArray() || $input.As<Napi::Array>().Length() != 4)
    sxn::type_error(env, "the upsert batch must be [ids, vectors, dim, metadata]");
  Napi::Array sx_b = $input.As<Napi::Array>();
  sxn::strings(env, sx_b.Get(0u), "ids", &sx_ids, nullptr, true);
  size_t sx_len = 0;
  $4 = ($4_ltype)sxn::floats(env, sx_b.Get(1u), "vectors", &sx_len);
  Napi::Value sx_d = sx_b.Get(2u);
  if (!sx_d.IsNumber()) sxn::type_error(env, "dim must be a number");
  double sx_dd = sx_d.As<Napi::Number>().DoubleValue();
  if (!(sx_dd >= 0 && sx_dd <= 4294967295.0) || sx_dd != std::floor(sx_dd))
    sxn::raise(env, SX_INVALID_ARGUMENT, "dim must be an integer from 0 to 4294967295");
  $1 = sx_ids.size();
  $5 = (size_t)sx_dd;
  if (sx_len != $1 * $5) {
    char msg[160];
    snprintf(msg, sizeof msg, "%zu ids but %zu floats for dimension %zu", $1, sx_len, $5);
    sxn::raise(env, SX_INVALID_ARGUMENT, msg);
  }
  $2 = ($2_ltype)sx_ids.buf.data();
  $3 = ($3_ltype)sx_ids.off.data();
  $6 = NULL;
  $7 = NULL;
  Napi::Value sx_m = sx_b.Get(3u);
  if (!sx_m.IsNull() && !sx_m.IsUndefined()) {
    sxn::strings(env, sx_m, "metadata", &sx_meta, &sx_nometa, true);
    if (sx_meta.size() != $1) {
      char msg[128];
      snprintf(msg, sizeof msg, "%zu ids but %zu metadata entries", $1, sx_meta.size());
      sxn::raise(env, SX_INVALID_ARGUMENT, msg);
    }
    $6 = ($6_ltype)sx_meta.buf.data();
    $7 = ($7_ltype)sx_meta.off.data();
  }
}

/* Search options: undefined/null (defaults), a Number (ef) or {ef, threads, filter,
 * include, exact}. Cancellation is for the async calls (node_async.i). */
%typemap(in) const sx_search_options *opts (sx_search_options sx_opts, std::string sx_filter) {
  if ($input.IsUndefined() || $input.IsNull()) {
    $1 = NULL;
  } else {
    sxn::search_options(env, $input, nullptr, &sx_opts, &sx_filter);
    $1 = &sx_opts;
  }
}
%ignore sx_search_options;
%ignore sx_search_options_init;

/* ---- what Node does not need --------------------------------------------------------- */

/* Copied out by the argouts above. */
%ignore sx_names_count;
%ignore sx_names_get;
%ignore sx_record_id;
%ignore sx_record_vector;
%ignore sx_record_metadata;
%ignore sx_results_queries;
%ignore sx_results_count;
%ignore sx_results_id;
%ignore sx_results_distance;
%ignore sx_results_total;
%ignore sx_results_offsets;
%ignore sx_results_distances;
%ignore sx_results_id_data;
%ignore sx_results_metadata;
%ignore sx_results_vector;
%ignore sx_results_dim;
%ignore sx_results_metadata_data;
%ignore sx_results_vectors;
/* Cancellation is the AbortSignal of the async calls (node_async.i's token); waits
 * with a token are sx_node_write_begin_async. */
%ignore sx_cancel;
%ignore sx_cancel_new;
%ignore sx_cancel_set;
%ignore sx_cancel_reset;
%ignore sx_cancel_is_set;
%ignore sx_cancel_free;
%ignore sx_write_options;
%ignore sx_write_options_init;
%ignore sx_write_begin_opts;
%ignore sx_db_checkpoint_opts;
/* Structs returned as plain objects. */
%ignore sx_db_stats;
%ignore sx_collection_info;
%ignore sx_collection_stats;
%ignore sx_space_stats;

%include "node/node_async.i"
