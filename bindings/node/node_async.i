/*
 * node_async.i: the hand-written part of the Node module (included by node_typemaps.i).
 *
 * SWIG generates synchronous wrappers only. What Node needs besides them is here,
 * as plain Node-API C++ registered with %native, so that the one generated
 * sextant_wrap.cxx holds the whole module and can unwrap SWIG handles:
 *
 * - sx_node_register(SextantError, scratch): the class every failed status is thrown
 *   as, and the Float64Array a synchronous search writes its distances to.
 * - sx_node_token_new() / sx_node_token_set(token): the cancel token behind an
 *   AbortSignal (an atomic flag; the core's sx_cancel when sextant.h has it).
 * - sx_node_*_async(...): Promise-returning calls run on the libuv thread pool with
 *   napi_async_work (Napi::AsyncWorker). Each keeps the JS wrapper of the handle it
 *   uses referenced until it completes, so a garbage-collected wrapper can never free
 *   the handle under the pool thread, and copies its vectors in (a detached or
 *   resized ArrayBuffer cannot reach the core). Results are converted back on the
 *   main thread.
 * - sx_node_backup_async(...), sx_node_compact_async(...): sx_db_backup and
 *   sx_db_compact on the pool, cancellable.
 * - sx_node_bench_search(...): a C loop of searches, the floor for the benchmark.
 *
 * Only the call into the core runs off the main thread; no JavaScript value is
 * touched there. Logic stays in the core: these functions only move arguments.
 */

%{
namespace sxn {

template <class T>
static T *unwrap(Napi::Env env, Napi::Value v, swig_type_info *ty, const char *what) {
  void *p = nullptr;
  if (!v.IsObject() || !SWIG_IsOK(convert(env, v, &p, ty)))
    type_error(env, std::string(what) + " is not a Sextant handle of the right kind");
  return (T *)p;
}

static double number(Napi::Env env, Napi::Value v, const char *what) {
  if (!v.IsNumber()) type_error(env, std::string(what) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

static size_t size_arg(Napi::Env env, Napi::Value v, const char *what) {
  double x = number(env, v, what);
  if (!(x >= 0 && x <= 9007199254740991.0) || x != std::floor(x))
    raise(env, SX_INVALID_ARGUMENT, (std::string(what) + " must be a non-negative integer").c_str());
  return (size_t)x;
}

/* Progress of a long call (backup, compaction), reported by the core on the pool
 * thread and delivered to a JS callback on the main thread through a thread-safe
 * function; an exception the callback throws is an uncaught exception, as from any
 * event callback. */
struct Progress {
  Napi::ThreadSafeFunction tsfn;
  bool active = false;
  void start(Napi::Env env, Napi::Value fn) {
    if (fn.IsUndefined() || fn.IsNull()) return;
    if (!fn.IsFunction()) type_error(env, "onProgress must be a function");
    tsfn = Napi::ThreadSafeFunction::New(env, fn.As<Napi::Function>(), "sextant.progress", 0, 1);
    active = true;
  }
  void stop() {
    if (active) {
      tsfn.Release();
      active = false;
    }
  }
  static void report(void *ctx, uint64_t done, uint64_t total) {
    Progress *p = (Progress *)ctx;
    auto *d = new std::pair<uint64_t, uint64_t>(done, total);
    napi_status st = p->tsfn.NonBlockingCall(d, [](Napi::Env env, Napi::Function f, std::pair<uint64_t, uint64_t> *x) {
      std::pair<uint64_t, uint64_t> v = *x;
      delete x;
      if ((napi_env)env == nullptr || f.IsEmpty()) return; /* torn down */
      f.Call({u64(env, v.first), u64(env, v.second)});
    });
    if (st != napi_ok) delete d;
  }
};

/* What every async call shares: the Promise, the references that keep its handle
 * and token alive, and the status and error of the core call. */
class Work : public Napi::AsyncWorker {
 public:
  Work(Napi::Env env, const char *name, Napi::Value handle, Napi::Value token, Napi::Value keep = Napi::Value())
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {
    handle_ = Napi::Persistent(handle.As<Napi::Object>());
    if (token.IsExternal()) token_ = Napi::Persistent(token.As<Napi::Object>());
    /* The JS session the handle belongs to (index.js passes it): a collection view or a
     * write session is only usable while its session and database are open, and the
     * collector would close them if nothing else referred to them. */
    if (!keep.IsEmpty() && keep.IsObject()) keep_ = Napi::Persistent(keep.As<Napi::Object>());
    err_.code = 0;
    err_.message[0] = 0;
  }
  Napi::Promise Start() {
    Queue();
    return deferred_.Promise();
  }

 protected:
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  void OnOK() override {
    Napi::Env env = Env();
    progress_.stop();
    if (rc_ != SX_OK) {
      deferred_.Reject(make_error(env, rc_, err_.message).Value());
      return;
    }
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error &e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error &e) override {
    progress_.stop();
    deferred_.Reject(e.Value());
  }

 public:
  ~Work() override { progress_.stop(); }
  Progress progress_;

 protected:

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference handle_, token_, keep_;
  int rc_ = SX_OK;
  sx_error err_;
};

class SearchWork : public Work {
 public:
  SearchWork(Napi::Env env, Napi::Value coll, Napi::Value token, Napi::Value keep, bool batch)
      : Work(env, batch ? "sextant.searchBatch" : "sextant.search", coll, token, keep), batch_(batch) {}
  sx_collection *c_ = nullptr;
  std::vector<float> q_;
  size_t nq_ = 1, dim_ = 0, k_ = 0;
  sx_search_options opts_;
  std::string filter_;  /* opts_.filter points into it */

 private:
  void Execute() override {
    const float *q = q_.empty() ? nullptr : q_.data();
    static const float nothing = 0;
    if (!q) q = &nothing;
    if (batch_) rc_ = sx_collection_search_batch(c_, q, nq_, dim_, k_, &opts_, &res_, &err_);
    else rc_ = sx_collection_search(c_, q, dim_, k_, &opts_, &res_, &err_);
  }
  Napi::Value Result(Napi::Env env) override { return packed(env, res_); }
 public:
  ~SearchWork() override { sx_results_free(res_); }
  bool batch_;
  sx_results *res_ = nullptr;
};

/* sx_node_search_async(coll, query: Float32Array, k, opts, token, keep)
 * sx_node_search_batch_async(coll, queries: Float32Array, dim, k, opts, token, keep)
 *   -> Promise of the packed results (see sxn::packed); keep: the JS session. */
static Napi::Value search_async(const Napi::CallbackInfo &info, bool batch) {
  Napi::Env env = info.Env();
  size_t a = 0;
  Napi::Value coll = info[a++];
  sx_collection *c = unwrap<sx_collection>(env, coll, SWIGTYPE_p_sx_collection, "collection");
  size_t len = 0;
  const float *q = floats(env, info[a++], batch ? "queries" : "query", &len);
  size_t dim = len;
  if (batch) {
    dim = size_arg(env, info[a++], "dim");
    if (dim == 0 || len % dim) raise(env, SX_INVALID_ARGUMENT, "the queries' length is not a multiple of dim");
  }
  size_t k = size_arg(env, info[a++], "k");
  Napi::Value ef = info[a++];
  Napi::Value tokv = info[a++];
  Napi::Value keep = info[a++];
  Token *tok = token_of(env, tokv);
  SearchWork *w = new SearchWork(env, coll, tokv, keep, batch);
  try {
    search_options(env, ef, tok, &w->opts_, &w->filter_);
  } catch (...) {
    delete w;
    throw;
  }
  w->c_ = c;
  w->q_.assign(q, q + len);
  w->dim_ = dim;
  w->nq_ = batch ? len / dim : 1;
  w->k_ = k;
  return w->Start();
}

static Napi::Value search_async_one(const Napi::CallbackInfo &info) { return search_async(info, false); }
static Napi::Value search_async_batch(const Napi::CallbackInfo &info) { return search_async(info, true); }

/* sx_node_write_begin_async(db, timeout_ms, token) -> Promise<sx_write>: waits for the
 * writer lock on a pool thread. */
class BeginWork : public Work {
 public:
  BeginWork(Napi::Env env, Napi::Value db, Napi::Value token) : Work(env, "sextant.beginWrite", db, token) {}
  sx_db *db_ = nullptr;
  int timeout_ms_ = -1;
  Token *tok_ = nullptr;

 private:
  void Execute() override {
#ifdef SX_WRITE_OPTIONS_VERSION
    sx_write_options o;
    sx_write_options_init(&o, SX_WRITE_OPTIONS_VERSION);
    o.timeout_ms = timeout_ms_;
    o.cancel_token = tok_ ? tok_->c : nullptr;
    rc_ = sx_write_begin_opts(db_, &o, &w_, &err_);
#else
    /* Without a cancel token in the core: wait in slices, looking at ours between. */
    auto start = std::chrono::steady_clock::now();
    for (;;) {
      if (tok_ && tok_->set.load()) {
        rc_ = SX_CANCELLED;
        snprintf(err_.message, sizeof err_.message, "waiting for the writer lock was cancelled");
        return;
      }
      int slice = 50;
      if (timeout_ms_ >= 0) {
        long long spent = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start).count();
        long long left = timeout_ms_ - spent;
        if (left < slice) slice = left < 0 ? 0 : (int)left;
      }
      err_.message[0] = 0;
      rc_ = sx_write_begin(db_, slice, &w_, &err_);
      if (rc_ != SX_BUSY || slice == 0 || (tok_ && tok_->set.load())) {
        if (rc_ == SX_BUSY && tok_ && tok_->set.load()) {
          rc_ = SX_CANCELLED;
          snprintf(err_.message, sizeof err_.message, "waiting for the writer lock was cancelled");
        }
        return;
      }
      if (timeout_ms_ >= 0 && slice < 50) return; /* the last slice ran out */
    }
#endif
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Value v = SWIG_NewPointerObj(w_, SWIGTYPE_p_sx_write, SWIG_POINTER_OWN);
    w_ = nullptr; /* the wrapper owns it now */
    return v;
  }
 public:
  ~BeginWork() override { sx_write_free(w_); }
  sx_write *w_ = nullptr;
};

static Napi::Value write_begin_async(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sx_db *db = unwrap<sx_db>(env, info[0], SWIGTYPE_p_sx_db, "db");
  double t = number(env, info[1], "timeoutMs");
  Token *tok = token_of(env, info[2]);
  BeginWork *w = new BeginWork(env, info[0], info[2]);
  w->db_ = db;
  w->timeout_ms_ = t < 0 ? -1 : t > 2147483647.0 ? 2147483647 : (int)t;
  w->tok_ = tok;
  return w->Start();
}

/* sx_node_checkpoint_async(db, timeout_ms) -> Promise<void> */
class CheckpointWork : public Work {
 public:
  CheckpointWork(Napi::Env env, Napi::Value db) : Work(env, "sextant.checkpoint", db, env.Undefined()) {}
  sx_db *db_ = nullptr;
  int timeout_ms_ = -1;

 private:
  void Execute() override { rc_ = sx_db_checkpoint(db_, timeout_ms_, &err_); }
};

static Napi::Value checkpoint_async(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sx_db *db = unwrap<sx_db>(env, info[0], SWIGTYPE_p_sx_db, "db");
  double t = number(env, info[1], "timeoutMs");
  CheckpointWork *w = new CheckpointWork(env, info[0]);
  w->db_ = db;
  w->timeout_ms_ = t < 0 ? -1 : t > 2147483647.0 ? 2147483647 : (int)t;
  return w->Start();
}

/* sx_node_upsert_async(w, collection, ids, vectors: Float32Array, dim, metadata|null,
 * keep) -> Promise<void>; sx_node_commit_async(w, keep) -> Promise<void>. keep: the JS
 * session. index.js runs one call at a time per write session (the C API's rule). */
class UpsertWork : public Work {
 public:
  UpsertWork(Napi::Env env, Napi::Value w, Napi::Value keep) : Work(env, "sextant.upsert", w, env.Undefined(), keep) {}
  sx_write *w_ = nullptr;
  std::string coll_;
  Strings ids_, meta_;
  std::vector<char> nometa_;
  bool has_meta_ = false;
  std::vector<float> v_;
  size_t dim_ = 0;

 private:
  void Execute() override {
    std::vector<const char *> metap;
    if (has_meta_) {
      meta_.pointers();
      metap.assign(meta_.ptrs.begin(), meta_.ptrs.end());
      for (size_t i = 0; i < metap.size(); i++)
        if (nometa_[i]) metap[i] = nullptr;
    }
    static const float nothing = 0;
    rc_ = sx_write_upsert(w_, coll_.c_str(), ids_.size(), ids_.pointers(), v_.empty() ? &nothing : v_.data(), dim_,
                          has_meta_ ? metap.data() : nullptr, &err_);
  }
};

static Napi::Value upsert_async(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sx_write *ws = unwrap<sx_write>(env, info[0], SWIGTYPE_p_sx_write, "session");
  UpsertWork *w = new UpsertWork(env, info[0], info[6]);
  try {
    w->w_ = ws;
    utf8(env, info[1], "collection", &w->coll_);
    strings(env, info[2], "ids", &w->ids_);
    size_t len = 0;
    const float *v = floats(env, info[3], "vectors", &len);
    w->dim_ = size_arg(env, info[4], "dim");
    if (len != w->ids_.size() * w->dim_) {
      char msg[160];
      snprintf(msg, sizeof msg, "%zu ids but %zu floats for dimension %zu", w->ids_.size(), len, w->dim_);
      raise(env, SX_INVALID_ARGUMENT, msg);
    }
    w->v_.assign(v, v + len);
    if (!info[5].IsNull() && !info[5].IsUndefined()) {
      strings(env, info[5], "metadata", &w->meta_, &w->nometa_);
      if (w->meta_.size() != w->ids_.size()) raise(env, SX_INVALID_ARGUMENT, "metadata must have one entry per id");
      w->has_meta_ = true;
    }
  } catch (...) {
    delete w;
    throw;
  }
  return w->Start();
}

class CommitWork : public Work {
 public:
  CommitWork(Napi::Env env, Napi::Value w, Napi::Value keep) : Work(env, "sextant.commit", w, env.Undefined(), keep) {}
  sx_write *w_ = nullptr;

 private:
  void Execute() override { rc_ = sx_write_commit(w_, &err_); }
};

static Napi::Value commit_async(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sx_write *ws = unwrap<sx_write>(env, info[0], SWIGTYPE_p_sx_write, "session");
  CommitWork *w = new CommitWork(env, info[0], info[1]);
  w->w_ = ws;
  return w->Start();
}

#ifdef SX_BACKUP_OPTIONS_VERSION
/* sx_node_backup_async(db, dest, overwrite, token, onProgress) -> Promise<void>: the
 * copy on a pool thread, cancellable between pages; onProgress(donePages, totalPages). */
class BackupWork : public Work {
 public:
  BackupWork(Napi::Env env, Napi::Value db, Napi::Value token) : Work(env, "sextant.backup", db, token) {}
  sx_db *db_ = nullptr;
  std::string dest_;
  sx_backup_options o_;

 private:
  void Execute() override { rc_ = sx_db_backup(db_, dest_.c_str(), &o_, &err_); }
};

static Napi::Value backup_async(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sx_db *db = unwrap<sx_db>(env, info[0], SWIGTYPE_p_sx_db, "db");
  Token *tok = token_of(env, info[3]);
  BackupWork *w = new BackupWork(env, info[0], info[3]);
  try {
    utf8(env, info[1], "dest", &w->dest_);
    if (!info[2].IsBoolean()) type_error(env, "overwrite must be true or false");
    sx_backup_options_init(&w->o_, SX_BACKUP_OPTIONS_VERSION);
    w->o_.overwrite = info[2].As<Napi::Boolean>().Value();
    w->o_.cancel_token = tok ? tok->c : nullptr;
    w->progress_.start(env, info[4]);
    if (w->progress_.active) {
      w->o_.progress = Progress::report;
      w->o_.progress_ctx = &w->progress_;
    }
    w->db_ = db;
  } catch (...) {
    delete w;
    throw;
  }
  return w->Start();
}
#endif

/* sx_node_compact_async(db, timeout_ms, token, onProgress) -> Promise<void>: compaction
 * on a pool thread (waiting for the writer lock there too), cancellable between
 * batches; onProgress(recordsRewritten, liveRecords). */
#ifdef SX_COMPACT_OPTIONS_VERSION
class CompactWork : public Work {
 public:
  CompactWork(Napi::Env env, Napi::Value db, Napi::Value token) : Work(env, "sextant.compact", db, token) {}
  sx_db *db_ = nullptr;
  sx_compact_options o_;

 private:
  void Execute() override { rc_ = sx_db_compact(db_, &o_, &err_); }
};
#endif

static Napi::Value compact_async(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
#ifdef SX_COMPACT_OPTIONS_VERSION
  sx_db *db = unwrap<sx_db>(env, info[0], SWIGTYPE_p_sx_db, "db");
  int t = timeout_of(env, info[1]);
  Token *tok = token_of(env, info[2]);
  CompactWork *w = new CompactWork(env, info[0], info[2]);
  sx_compact_options_init(&w->o_, SX_COMPACT_OPTIONS_VERSION);
  w->o_.timeout_ms = t;
  w->o_.cancel_token = tok ? tok->c : nullptr;
  try {
    w->progress_.start(env, info[3]);
  } catch (...) {
    delete w;
    throw;
  }
  if (w->progress_.active) {
    w->o_.progress = Progress::report;
    w->o_.progress_ctx = &w->progress_;
  }
  w->db_ = db;
  return w->Start();
#else
  raise(env, SX_MISUSE, "this core has no compaction (sx_db_compact)");
#endif
}

/* ---- the cancel token ---------------------------------------------------------------- */

static Napi::Value token_new(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Token *t = new Token();
#ifdef SX_WRITE_OPTIONS_VERSION
  sx_error e;
  int rc = sx_cancel_new(&t->c, &e);
  if (rc != SX_OK) {
    delete t;
    raise(env, rc, e.message);
  }
#endif
  return Napi::External<Token>::New(env, t, [](Napi::Env, Token *p) { delete p; });
}

static Napi::Value token_set(const Napi::CallbackInfo &info) {
  Token *t = token_of(info.Env(), info[0]);
  if (t) {
    t->set.store(1);
#ifdef SX_WRITE_OPTIONS_VERSION
    sx_cancel_set(t->c);
#endif
  }
  return info.Env().Undefined();
}

/* ---- registration and the benchmark floor ----------------------------------------------- */

/* sx_node_register(SextantError, scratch: Float64Array): called by index.js at load
 * (and again with a longer scratch array when a search asks for more hits). */
static Napi::Value register_classes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) type_error(env, "sx_node_register needs the error class");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    type_error(env, "sx_node_register needs a Float64Array scratch array");
  EnvData *d = env_data(env, true);
  d->error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  d->scratch = Napi::Persistent(info[1].As<Napi::Float64Array>());
  return env.Undefined();
}

/* sx_node_bench_search(coll, query, k, iterations): mean seconds per
 * sx_collection_search in a C loop (results freed), or -1 when a call fails. */
static Napi::Value bench_search(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sx_collection *c = unwrap<sx_collection>(env, info[0], SWIGTYPE_p_sx_collection, "collection");
  size_t dim = 0;
  const float *q = floats(env, info[1], "query", &dim);
  size_t k = size_arg(env, info[2], "k");
  size_t it = size_arg(env, info[3], "iterations");
  struct timespec t0, t1;
  int rc = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t i = 0; i < it && !rc; i++) {
    sx_results *res = nullptr;
    rc = sx_collection_search(c, q, dim, k, nullptr, &res, nullptr);
    sx_results_free(res);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc || it == 0) return Napi::Number::New(env, -1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  return Napi::Number::New(env, s / (double)it);
}

}  // namespace sxn
%}

%native(sx_node_register) Napi::Value sxn::register_classes(const Napi::CallbackInfo &info);
%native(sx_node_token_new) Napi::Value sxn::token_new(const Napi::CallbackInfo &info);
%native(sx_node_token_set) Napi::Value sxn::token_set(const Napi::CallbackInfo &info);
%native(sx_node_search_async) Napi::Value sxn::search_async_one(const Napi::CallbackInfo &info);
%native(sx_node_search_batch_async) Napi::Value sxn::search_async_batch(const Napi::CallbackInfo &info);
%native(sx_node_write_begin_async) Napi::Value sxn::write_begin_async(const Napi::CallbackInfo &info);
%native(sx_node_checkpoint_async) Napi::Value sxn::checkpoint_async(const Napi::CallbackInfo &info);
%native(sx_node_upsert_async) Napi::Value sxn::upsert_async(const Napi::CallbackInfo &info);
%native(sx_node_commit_async) Napi::Value sxn::commit_async(const Napi::CallbackInfo &info);
%native(sx_node_bench_search) Napi::Value sxn::bench_search(const Napi::CallbackInfo &info);
%native(sx_node_backup_async) Napi::Value sxn::backup_async(const Napi::CallbackInfo &info);
%native(sx_node_compact_async) Napi::Value sxn::compact_async(const Napi::CallbackInfo &info);
