/*
 * bench_hnsw: Sextant's HNSW index beside hnswlib on Fashion-MNIST, in one run.
 *
 *   bench_hnsw [--data DIR] [--base N] [--queries N] [--repeats R] [--dir DIR]
 *              [--efs 10,16,...] [--busy-ef EF] [--busy-queries N] [--full-n N]
 *              [--refresh N] [--build-repeats B] [--scale] [--keep] [--skip-busy]
 *              [--only-sweep] [--skip-par] [--writer-threads T]
 *
 * Data: the Fashion-MNIST idx files (Debian's dataset-fashion-mnist package):
 * train images (60,000 x 784 uint8) are the base vectors, test images (10,000) the
 * queries, converted to float32 with the raw 0..255 values (--scale: divided by
 * 255), the same arrays for both systems; metric l2 (squared Euclidean), k = 10,
 * M = 16, ef_construction = 200. Exact ground truth is computed once, in integers
 * (exact for uint8 pixels), on every core; recall@10 counts a returned id as a hit
 * when its exact distance is at most the exact 10th-nearest distance (ties at the
 * boundary are hits, as in ann-benchmarks); the plain id-overlap recall is printed too.
 *
 * Measurements (see bench/HNSW.md for the protocol and the goals):
 *  1. Build, one thread, each system in its own child process (so its memory can be
 *     measured from a clean start): Sextant upserts in batches of 1,000 per commit
 *     with sync=off, then a checkpoint; hnswlib addPoint one by one, then saveIndex.
 *     A second Sextant child builds the first --full-n vectors with sync=full.
 *  2. Memory: RSS growth (from /proc/self/status) in the build children and in a
 *     child per system that opens the built index and answers every query once.
 *     Files: P + P-wal + P-wal2 after the checkpoint, and hnswlib's saved index.
 *  3. Sweep of ef: single-query QPS (one query per call; Sextant through one read
 *     session and one collection view opened once) and recall, for each ef the two
 *     systems alternate, R repeats, median QPS.
 *  4. Extra: sx_collection_search_batch (all queries in one call, every core)
 *     beside hnswlib searched by as many threads.
 *  5. Reader QPS while a writer process commits 100 vectors every 100 ms (sync
 *     normal) into the same collection, against the quiet figure, R repeats.
 *
 * Times from clock_gettime(CLOCK_MONOTONIC); every single-thread pass also records
 * its thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a figure skewed by other work
 * on the machine shows as a CPU share below 100% and a ratio by CPU time is printed
 * beside the wall-clock one. Everything ends with RESULT lines and a PASS/FAIL line
 * per goal. Default run: about 7 minutes on 2 cores; --base, --queries, --repeats,
 * --efs shrink it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#if defined(__AVX2__) || defined(__AVX512BW__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <hnswlib/hnswlib.h>

#include "sextant.h"

/* Internal, from the static library: which distance kernel the dispatcher picked. */
extern "C" int sx__kernel_level(void);
extern "C" const char *sx__kernel_name(int level);

/* ---- options ------------------------------------------------------------------- */

struct Opts {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string dir;
  size_t base = 60000, queries = 10000;
  int repeats = 5, build_repeats = 1;
  size_t k = 10;
  uint32_t m = 16, efc = 200;
  std::vector<uint32_t> efs = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256};
  uint32_t busy_ef = 64;
  size_t busy_queries = 3000;
  size_t refresh = 100;      /* renewing reader: new session every this many queries */
  size_t full_n = 10000;     /* sync=full sample */
  size_t batch = 1000;       /* vectors per commit in the build */
  size_t w_per_commit = 100; /* busy writer */
  int w_period_ms = 100;
  bool scale = false, keep = false, skip_busy = false, only_sweep = false, skip_par = false;
  bool skip_deletes = false;
  size_t del_batch = 1000; /* ids per commit in the delete test */
  std::vector<uint32_t> del_efs = {16, 32, 64, 128};
  uint32_t writer_threads = 1; /* --writer-threads: sx_open_options.threads of the busy writer */
};
static Opts O;

#ifdef SX_FMNIST_DIR
static const char *default_data = SX_FMNIST_DIR;
#else
static const char *default_data = nullptr;
#endif

static void usage(void) {
  fprintf(stderr,
          "usage: bench_hnsw [--data DIR] [--base N] [--queries N] [--repeats R]\n"
          "                  [--build-repeats B] [--dir DIR] [--efs a,b,c] [--busy-ef EF]\n"
          "                  [--busy-queries N] [--refresh N] [--full-n N] [--scale] [--keep]\n"
          "                  [--skip-busy] [--only-sweep] [--skip-par] [--writer-threads T]\n"
          "                  [--skip-deletes] [--del-batch N] [--del-efs a,b,c]\n");
  exit(2);
}

/* ---- small helpers ------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: on a machine shared with other work, a pass whose
 * CPU time is well below its wall time lost the processor part of the time. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double last_cpu; /* CPU seconds of the last pass */

[[noreturn]] static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench_hnsw: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static void sx_check(int rc, const char *what, const sx_error &e) {
  if (rc) die("%s: %s: %s", what, sx_status_name(rc), e.message);
}

static double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Figures from /proc/self/status, in KiB. */
struct Mem {
  long rss = 0, anon = 0, file = 0, shmem = 0, hwm = 0;
};
static Mem mem_now(void) {
  Mem m;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return m;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    long v;
    if (sscanf(line, "VmRSS: %ld", &v) == 1)
      m.rss = v;
    else if (sscanf(line, "RssAnon: %ld", &v) == 1)
      m.anon = v;
    else if (sscanf(line, "RssFile: %ld", &v) == 1)
      m.file = v;
    else if (sscanf(line, "RssShmem: %ld", &v) == 1)
      m.shmem = v;
    else if (sscanf(line, "VmHWM: %ld", &v) == 1)
      m.hwm = v;
  }
  fclose(f);
  return m;
}

static std::string loadavg(void) {
  char b[64] = "?";
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (!fgets(b, sizeof b, f)) b[0] = 0;
    fclose(f);
  }
  std::string s(b);
  size_t sp = s.find(' ');
  sp = sp == std::string::npos ? sp : s.find(' ', sp + 1);
  sp = sp == std::string::npos ? sp : s.find(' ', sp + 1);
  return s.substr(0, sp);
}

static long long file_size(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 ? (long long)st.st_size : 0;
}

/* Memory shared with a child process (results come back through it). */
template <class T>
static T *shared_alloc(size_t n = 1) {
  void *p = mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap: %s", strerror(errno));
  memset(p, 0, sizeof(T) * n);
  return (T *)p;
}

static void wait_child(pid_t pid, const char *what) {
  int st;
  if (waitpid(pid, &st, 0) < 0) die("waitpid: %s", strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("%s child failed (status %d)", what, st);
}

/* Runs fill(result) in a forked child (so its memory is measured from a clean start)
 * and returns what it filled in. */
template <class T, class F>
static T in_child(const char *what, F fill) {
  T *r = shared_alloc<T>();
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    fill(*r);
    _exit(0);
  }
  wait_child(pid, what);
  T out = *r;
  munmap(r, sizeof *r);
  return out;
}

/* Removes a Sextant database and its companion files. */
static void remove_db(const std::string &path) {
  for (const char *suf : {"", "-wal", "-wal2", "-shm"}) unlink((path + suf).c_str());
}

/* ---- data ---------------------------------------------------------------------- */

static std::vector<uint8_t> read_idx(const std::string &dir, const char *name, size_t want,
                                     size_t *dim_out) {
  std::string p = dir + "/" + name + ".gz";
  if (access(p.c_str(), R_OK) != 0) p = dir + "/" + name;
  gzFile f = gzopen(p.c_str(), "rb"); /* reads plain files too */
  if (!f) die("cannot open %s (install dataset-fashion-mnist, or --data DIR)", p.c_str());
  unsigned char h[16];
  if (gzread(f, h, 16) != 16) die("%s: short header", p.c_str());
  auto be = [&](int i) {
    return (uint32_t)h[i] << 24 | (uint32_t)h[i + 1] << 16 | (uint32_t)h[i + 2] << 8 | h[i + 3];
  };
  if (be(0) != 0x803) die("%s: not an idx3-ubyte file (magic %08x)", p.c_str(), be(0));
  size_t n = be(4), dim = (size_t)be(8) * be(12);
  if (want > n) die("%s holds %zu images, %zu asked for", p.c_str(), n, want);
  std::vector<uint8_t> v(want * dim);
  size_t got = 0;
  while (got < v.size()) {
    int r = gzread(f, v.data() + got, (unsigned)std::min<size_t>(v.size() - got, 1u << 30));
    if (r <= 0) die("%s: short read", p.c_str());
    got += (size_t)r;
  }
  gzclose(f);
  *dim_out = dim;
  return v;
}

static size_t DIM = 0;

/* Exact squared distance of two uint8 images, in integers. */
static inline int32_t l2_u8(const uint8_t *a, const uint8_t *b) {
  int32_t s = 0;
  for (size_t i = 0; i < DIM; i++) {
    int32_t d = (int32_t)a[i] - (int32_t)b[i];
    s += d * d;
  }
  return s;
}

struct Truth {
  std::vector<uint32_t> ids; /* nq * k, nearest first */
  std::vector<int32_t> kth;  /* exact distance of the k-th nearest */
};

/* Dot product of two int16 rows of n values (n a multiple of 32): pixel values, so
 * products and sums fit int32 exactly. Multiply-add instructions where built with them. */
static inline int32_t dot_i16(const int16_t *__restrict a, const int16_t *__restrict b, size_t n) {
#if defined(__AVX512BW__)
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 32)
    acc = _mm512_add_epi32(acc,
                           _mm512_madd_epi16(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i)));
  alignas(64) int32_t lane[16]; /* (GCC 12 warns on its own reduce/extract intrinsics) */
  _mm512_store_si512(lane, acc);
  int32_t s = 0;
  for (int i = 0; i < 16; i++) s += lane[i];
  return s;
#elif defined(__AVX2__)
  __m256i acc = _mm256_setzero_si256();
  for (size_t i = 0; i < n; i += 16)
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a + i)),
                                                  _mm256_loadu_si256((const __m256i *)(b + i))));
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
  return _mm_cvtsi128_si32(x);
#else
  int32_t s = 0;
  for (size_t i = 0; i < n; i++) s += (int32_t)a[i] * b[i];
  return s;
#endif
}

/* Exact k nearest by brute force: |q - b|^2 = |q|^2 + |b|^2 - 2 q.b, all in integers. */
static Truth ground_truth(const std::vector<uint8_t> &B, size_t nb, const std::vector<uint8_t> &Q,
                          size_t nq, size_t k) {
  Truth t;
  t.ids.resize(nq * k);
  t.kth.resize(nq);
  size_t pd = (DIM + 31) / 32 * 32;
  std::vector<int16_t> b16(nb * pd, 0), q16(nq * pd, 0);
  std::vector<int32_t> bn(nb), qn(nq);
  for (size_t i = 0; i < nb; i++) {
    for (size_t j = 0; j < DIM; j++) b16[i * pd + j] = B[i * DIM + j];
    bn[i] = dot_i16(&b16[i * pd], &b16[i * pd], pd);
  }
  for (size_t i = 0; i < nq; i++) {
    for (size_t j = 0; j < DIM; j++) q16[i * pd + j] = Q[i * DIM + j];
    qn[i] = dot_i16(&q16[i * pd], &q16[i * pd], pd);
  }
  /* Blocks of queries against blocks of base vectors that stay in cache: the base
   * set is read from memory once per query block, not once per query. */
  const size_t QB = 256, BB = 16;
  unsigned nt = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> th;
  for (unsigned w = 0; w < nt; w++) {
    th.emplace_back([&, w] {
      size_t q0 = nq * w / nt, q1 = nq * (w + 1) / nt;
      std::vector<std::vector<std::pair<int32_t, uint32_t>>> best(QB);
      for (size_t qa = q0; qa < q1; qa += QB) {
        size_t qe = std::min(q1, qa + QB);
        for (auto &b : best) b.clear();
        for (size_t ba = 0; ba < nb; ba += BB) {
          size_t be = std::min(nb, ba + BB);
          for (size_t q = qa; q < qe; q++) {
            auto &bq = best[q - qa];
            const int16_t *qv = &q16[q * pd];
            for (size_t i = ba; i < be; i++) {
              int32_t d = qn[q] + bn[i] - 2 * dot_i16(qv, &b16[i * pd], pd);
              if (bq.size() == k && d >= bq.back().first) continue;
              std::pair<int32_t, uint32_t> x(d, (uint32_t)i);
              if (bq.size() == k) bq.pop_back();
              bq.insert(std::upper_bound(bq.begin(), bq.end(), x), x);
            }
          }
        }
        for (size_t q = qa; q < qe; q++) {
          for (size_t j = 0; j < k; j++) t.ids[q * k + j] = best[q - qa][j].second;
          t.kth[q] = best[q - qa][k - 1].first;
        }
      }
    });
  }
  for (auto &x : th) x.join();
  return t;
}

/* Recall of results (nq * k ids, UINT32_MAX = none): tie-aware and by id overlap. */
static void recall_of(const std::vector<uint32_t> &res, const Truth &t,
                      const std::vector<uint8_t> &B, const std::vector<uint8_t> &Q, size_t nq,
                      size_t k, double *tie, double *ids) {
  size_t hit = 0, hit_id = 0;
  for (size_t q = 0; q < nq; q++) {
    const uint32_t *r = res.data() + q * k;
    for (size_t i = 0; i < k; i++) {
      if (r[i] == UINT32_MAX) continue;
      bool dup = false;
      for (size_t j = 0; j < i; j++) dup |= r[j] == r[i];
      if (dup) continue;
      if (l2_u8(Q.data() + q * DIM, B.data() + (size_t)r[i] * DIM) <= t.kth[q]) hit++;
      for (size_t j = 0; j < k; j++)
        if (t.ids[q * k + j] == r[i]) {
          hit_id++;
          break;
        }
    }
  }
  *tie = (double)hit / (double)(nq * k);
  *ids = (double)hit_id / (double)(nq * k);
}

/* ---- globals: the data ---------------------------------------------------------- */

static std::vector<uint8_t> Bu8, Qu8;
static std::vector<float> Bf, Qf;
static std::vector<std::string> idstr;
static std::vector<const char *> idptr;
static Truth GT;
static std::string dbpath, hnpath, fullpath;

static const char *coll_name = "fmnist";

/* ---- Sextant -------------------------------------------------------------------- */

/* Builds the first n base vectors into a new database at path, `batch` per commit.
 * cum[b] gets the elapsed time after batch b. Returns the build time. */
static double sx_build(const std::string &path, size_t n, sx_sync sync, double *cum,
                       double *ckpt_secs, Mem *built = nullptr, uint32_t threads = 1) {
  remove_db(path);
  sx_error e = SX_ERROR_INIT;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.sync = sync;
  oo.threads = threads; /* 1: every upsert links on its calling thread */
  sx_db *db;
  double t0 = now_s();
  sx_check(sx_db_open(&db, path.c_str(), &oo, &e), "open", e);
  sx_write *w;
  sx_check(sx_write_begin(db, -1, &w, &e), "write_begin", e);
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = (uint32_t)DIM;
  co.metric = SX_METRIC_L2;
  co.index = SX_INDEX_HNSW;
  co.hnsw_m = O.m;
  co.hnsw_ef_construction = O.efc;
  sx_check(sx_write_create_collection(w, coll_name, &co, &e), "create_collection", e);
  sx_check(sx_write_commit(w, &e), "commit", e);
  sx_write_free(w);
  size_t b = 0;
  for (size_t i = 0; i < n; i += O.batch, b++) {
    size_t cnt = std::min(O.batch, n - i);
    sx_check(sx_write_begin(db, -1, &w, &e), "write_begin", e);
    char what[64];
    snprintf(what, sizeof what, "upsert of vectors %zu..%zu", i, i + cnt - 1);
    sx_check(
        sx_write_upsert(w, coll_name, cnt, idptr.data() + i, Bf.data() + i * DIM, DIM, nullptr, &e),
        what, e);
    snprintf(what, sizeof what, "commit of vectors %zu..%zu", i, i + cnt - 1);
    sx_check(sx_write_commit(w, &e), what, e);
    sx_write_free(w);
    if (cum) cum[b] = now_s() - t0;
  }
  double t = now_s() - t0;
  if (built) *built = mem_now(); /* the database still open, before the checkpoint */
  double c0 = now_s();
  sx_check(sx_db_checkpoint(db, -1, &e), "checkpoint", e);
  if (ckpt_secs) *ckpt_secs = now_s() - c0;
  sx_db_free(db);
  return t;
}

/* One pass: every query once, one call per query. out: nq * k ids. */
static double sx_pass(sx_collection *c, size_t nq, uint32_t ef, std::vector<uint32_t> *out) {
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.ef = ef;
  sx_error e = SX_ERROR_INIT;
  size_t k = O.k;
  double t0 = now_s(), c0 = cpu_s();
  for (size_t q = 0; q < nq; q++) {
    sx_results *r;
    int rc = sx_collection_search(c, Qf.data() + (q % O.queries) * DIM, DIM, k, &so, &r, &e);
    if (rc) sx_check(rc, "search", e);
    if (out) {
      size_t n = sx_results_count(r, 0);
      uint32_t *o = out->data() + q * k;
      for (size_t i = 0; i < k; i++)
        o[i] = i < n ? (uint32_t)strtoul(sx_results_id(r, 0, i), nullptr, 10) : UINT32_MAX;
    }
    sx_results_free(r);
  }
  last_cpu = cpu_s() - c0;
  return now_s() - t0;
}

/* A pass that renews its read session every O.refresh queries (sees new commits). */
static double sx_pass_refresh(sx_db *db, size_t nq, uint32_t ef) {
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.ef = ef;
  sx_error e = SX_ERROR_INIT;
  double t0 = now_s(), c0 = cpu_s();
  sx_read *r = nullptr;
  sx_collection *c = nullptr;
  for (size_t q = 0; q < nq; q++) {
    if (q % O.refresh == 0) {
      sx_collection_free(c);
      sx_read_free(r);
      sx_check(sx_read_begin(db, &r, &e), "read_begin", e);
      sx_check(sx_read_collection(r, coll_name, &c, &e), "read_collection", e);
    }
    sx_results *res;
    int rc = sx_collection_search(c, Qf.data() + (q % O.queries) * DIM, DIM, O.k, &so, &res, &e);
    if (rc) sx_check(rc, "search", e);
    sx_results_free(res);
  }
  sx_collection_free(c);
  sx_read_free(r);
  last_cpu = cpu_s() - c0;
  return now_s() - t0;
}

/* ---- hnswlib -------------------------------------------------------------------- */

typedef hnswlib::HierarchicalNSW<float> HIdx;

static double hn_pass(HIdx *h, size_t nq, uint32_t ef, std::vector<uint32_t> *out) {
  h->setEf(ef);
  size_t k = O.k;
  double t0 = now_s(), c0 = cpu_s();
  for (size_t q = 0; q < nq; q++) {
    auto pq = h->searchKnn(Qf.data() + (q % O.queries) * DIM, k);
    if (out) {
      uint32_t *o = out->data() + q * k;
      for (size_t i = 0; i < k; i++) o[i] = UINT32_MAX;
      size_t n = pq.size();
      while (!pq.empty()) {
        o[--n] = (uint32_t)pq.top().second; /* the queue pops farthest first */
        pq.pop();
      }
    } else {
      while (!pq.empty()) pq.pop();
    }
  }
  last_cpu = cpu_s() - c0;
  return now_s() - t0;
}

/* ---- child processes ------------------------------------------------------------ */

struct BuildRes {
  double secs, ckpt_secs, save_secs;
  Mem before, after;
  int ok;
};

static BuildRes run_sx_build(double *cum_shared, uint32_t threads, const std::string &path) {
  return in_child<BuildRes>("sextant build", [&](BuildRes &r) {
    r.before = mem_now();
    r.secs = sx_build(path, O.base, SX_SYNC_OFF, cum_shared, &r.ckpt_secs, &r.after, threads);
    r.ok = 1;
  });
}

/* threads > 1: addPoint from that many threads taking points from a shared counter
 * (hnswlib's own ParallelFor pattern); the index is not saved then. */
static BuildRes run_hn_build(unsigned threads = 1) {
  return in_child<BuildRes>("hnswlib build", [&](BuildRes &r) {
    r.before = mem_now();
    hnswlib::L2Space space(DIM);
    double t0 = now_s();
    HIdx *h = new HIdx(&space, O.base, O.m, O.efc, 100);
    if (threads <= 1) {
      for (size_t i = 0; i < O.base; i++) h->addPoint(Bf.data() + i * DIM, i);
    } else {
      std::atomic<size_t> next{0};
      std::vector<std::thread> ts;
      for (unsigned t = 0; t < threads; t++)
        ts.emplace_back([&] {
          for (size_t i; (i = next++) < O.base;) h->addPoint(Bf.data() + i * DIM, i);
        });
      for (auto &t : ts) t.join();
    }
    r.secs = now_s() - t0;
    r.after = mem_now();
    double s0 = now_s();
    if (threads <= 1) h->saveIndex(hnpath);
    r.save_secs = now_s() - s0;
    delete h;
    r.ok = 1;
  });
}

static double run_sx_full_sample(size_t n) {
  double out = in_child<double>("sextant sync=full build", [&](double &t) {
    t = sx_build(fullpath, n, SX_SYNC_FULL, nullptr, nullptr);
  });
  remove_db(fullpath);
  return out;
}

/* Memory of a process that opens the built index and answers every query once. */
struct SearchMem {
  Mem before, opened, after;
  double open_secs;
};

static SearchMem run_search_mem(int sys) {
  return in_child<SearchMem>(sys == 0 ? "sextant memory" : "hnswlib memory", [&](SearchMem &r) {
    r.before = mem_now();
    double t0 = now_s();
    if (sys == 0) {
      sx_error e = SX_ERROR_INIT;
      sx_db *db;
      sx_read *rd;
      sx_collection *c;
      sx_check(sx_db_open(&db, dbpath.c_str(), nullptr, &e), "open", e);
      sx_check(sx_read_begin(db, &rd, &e), "read_begin", e);
      sx_check(sx_read_collection(rd, coll_name, &c, &e), "read_collection", e);
      r.open_secs = now_s() - t0;
      r.opened = mem_now();
      sx_pass(c, O.queries, O.busy_ef, nullptr);
      r.after = mem_now();
      sx_collection_free(c);
      sx_read_free(rd);
      sx_db_free(db);
    } else {
      hnswlib::L2Space space(DIM);
      HIdx *h = new HIdx(&space, hnpath, false, O.base);
      r.open_secs = now_s() - t0;
      r.opened = mem_now();
      hn_pass(h, O.queries, O.busy_ef, nullptr);
      r.after = mem_now();
      delete h;
    }
  });
}

/* The busy writer: its own handle, sync=normal, w_per_commit new vectors (base
 * vectors under new ids "w<n>") every w_period_ms until the control pipe closes. */
struct WriterRes {
  uint64_t vectors, commits;
  double secs, max_commit, sum_commit;
  int ok;
};

struct Writer {
  pid_t pid;
  int ctl; /* write end: closing it stops the writer */
  WriterRes *res;
};

static Writer start_writer(uint64_t first_id) {
  int ctl[2], ready[2];
  if (pipe(ctl) || pipe(ready)) die("pipe: %s", strerror(errno));
  WriterRes *r = shared_alloc<WriterRes>();
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    close(ctl[1]);
    close(ready[0]);
    sx_error e = SX_ERROR_INIT;
    sx_open_options oo = SX_OPEN_OPTIONS_INIT;
    oo.sync = SX_SYNC_NORMAL;
    /* A background writer beside serving readers links on its own thread: with the
     * default (every core), its inserts would take the reader's core as well. */
    oo.threads = O.writer_threads;
    sx_db *db;
    sx_check(sx_db_open(&db, dbpath.c_str(), &oo, &e), "writer open", e);
    std::vector<std::string> ids(O.w_per_commit);
    std::vector<const char *> ip(O.w_per_commit);
    std::vector<float> vec(O.w_per_commit * DIM);
    char one = 1;
    if (write(ready[1], &one, 1) != 1) _exit(1);
    close(ready[1]);
    uint64_t next = first_id;
    double t0 = now_s(), due = t0;
    for (;;) {
      for (size_t i = 0; i < O.w_per_commit; i++, next++) {
        ids[i] = "w" + std::to_string(next);
        ip[i] = ids[i].c_str();
        memcpy(vec.data() + i * DIM, Bf.data() + (next % O.base) * DIM, DIM * sizeof(float));
      }
      double c0 = now_s();
      sx_write *w;
      sx_check(sx_write_begin(db, -1, &w, &e), "writer begin", e);
      sx_check(
          sx_write_upsert(w, coll_name, O.w_per_commit, ip.data(), vec.data(), DIM, nullptr, &e),
          "writer upsert", e);
      sx_check(sx_write_commit(w, &e), "writer commit", e);
      sx_write_free(w);
      double ct = now_s() - c0;
      r->commits++;
      r->vectors += O.w_per_commit;
      r->sum_commit += ct;
      r->max_commit = std::max(r->max_commit, ct);
      r->secs = now_s() - t0;
      due += O.w_period_ms / 1000.0;
      double wait = due - now_s();
      if (wait < 0) due = now_s(); /* behind: go on at once, do not burst to catch up */
      struct pollfd pf = {ctl[0], POLLIN, 0};
      int pr = poll(&pf, 1, wait > 0 ? (int)(wait * 1000) : 0);
      if (pr > 0) break; /* EOF: stop */
    }
    r->secs = now_s() - t0;
    r->ok = 1;
    sx_db_free(db);
    _exit(0);
  }
  close(ctl[0]);
  close(ready[1]);
  char one;
  if (read(ready[0], &one, 1) != 1) die("busy writer did not start");
  close(ready[0]);
  return Writer{pid, ctl[1], r};
}

static WriterRes stop_writer(Writer &w) {
  close(w.ctl);
  wait_child(w.pid, "busy writer");
  WriterRes out = *w.res;
  munmap(w.res, sizeof *w.res);
  return out;
}

/* A control for the busy test: a process that only burns CPU, as the writer does, so
 * that the reader's loss of processor time (on a small machine) can be told apart
 * from interference by the writer's commits. */
struct Spinner {
  pid_t pid;
  volatile int *stop;
};

static Spinner start_spinner(void) {
  volatile int *stop = shared_alloc<int>();
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    volatile uint64_t x = 0;
    while (!*stop)
      for (int i = 0; i < 100000; i++) x = x + (uint64_t)i;
    _exit(0);
  }
  return Spinner{pid, stop};
}

static void stop_spinner(Spinner &sp) {
  *sp.stop = 1;
  wait_child(sp.pid, "cpu spinner");
  munmap((void *)sp.stop, sizeof(int));
}

/* ---- reporting ------------------------------------------------------------------ */

static int fails = 0, passes = 0;
static void goal(bool ok, const char *name, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  printf("%s  %-34s %s\n", ok ? "PASS" : "FAIL", name, buf);
  (ok ? passes : fails)++;
}

static std::vector<uint32_t> parse_list(const char *s) {
  std::vector<uint32_t> v;
  while (*s) {
    char *end;
    unsigned long x = strtoul(s, &end, 10);
    if (end == s || x == 0) usage();
    v.push_back((uint32_t)x);
    s = *end == ',' ? end + 1 : end;
  }
  return v;
}

/* ---- deletes ------------------------------------------------------------------- */

struct DelRes {
  bool ran = false;
  size_t deleted = 0, commits = 0, unlinks = 0, kept = 0;
  double sx_secs = 0, sx_unlink_secs = 0, hn_secs = 0, readd_secs = 0;
  uint64_t slots_after = 0, slots_readded = 0;
  std::vector<uint32_t> efs;
  std::vector<double> rec[2], qps[2], readd_rec; /* [0] sextant, [1] hnswlib */
};

/* Deletes a random half of the base vectors (and whatever the busy writer added) from
 * both indexes: Sextant in commits of O.del_batch ids, unlinking as it goes;
 * hnswlib by markDelete, which only hides them from results. Then a sweep of both,
 * recall against the exact nearest of the half that is left; then Sextant alone gets
 * the deleted half back under new ids (into the freed slots) and is swept again. */
static DelRes run_deletes(sx_db *db, HIdx *hn, uint64_t writer_ids) {
  DelRes d;
  d.ran = true;
  d.efs = O.del_efs;
  sx_error e = SX_ERROR_INIT;
  std::vector<uint32_t> order(O.base);
  for (size_t i = 0; i < O.base; i++) order[i] = (uint32_t)i;
  std::mt19937 rng(2024);
  std::shuffle(order.begin(), order.end(), rng);
  size_t nd = O.base / 2;
  std::vector<std::string> del;
  for (uint64_t i = 0; i < writer_ids; i++) del.push_back("w" + std::to_string(i));
  for (size_t i = 0; i < nd; i++) del.push_back(idstr[order[i]]);
  std::vector<const char *> dp;
  for (auto &x : del) dp.push_back(x.c_str());
  d.deleted = del.size();
  /* Sextant: commits of del_batch ids; a commit that unlinks shows as dead -> 0. */
  double t0 = now_s();
  for (size_t at = 0; at < dp.size(); at += O.del_batch) {
    size_t cnt = std::min(O.del_batch, dp.size() - at);
    double c0 = now_s();
    sx_write *w;
    sx_check(sx_write_begin(db, -1, &w, &e), "write_begin", e);
    size_t gone = 0;
    sx_check(sx_write_delete(w, coll_name, cnt, dp.data() + at, &gone, &e), "delete", e);
    sx_collection *c;
    sx_collection_stats st = SX_COLLECTION_STATS_INIT;
    sx_check(sx_write_collection(w, coll_name, &c, &e), "write_collection", e);
    sx_check(sx_collection_stats_get(c, &st, &e), "collection_stats", e);
    sx_collection_free(c);
    sx_check(sx_write_commit(w, &e), "commit", e);
    sx_write_free(w);
    d.commits++;
    if (st.dead == 0) d.unlinks++, d.sx_unlink_secs += now_s() - c0;
    d.slots_after = st.slots;
  }
  d.sx_secs = now_s() - t0;
  t0 = now_s();
  for (size_t i = 0; i < nd; i++) hn->markDelete(order[i]);
  d.hn_secs = now_s() - t0;
  /* The exact nearest among what is left, ids mapped back to base positions. */
  std::vector<uint32_t> keep(order.begin() + (long)nd, order.end());
  std::sort(keep.begin(), keep.end());
  d.kept = keep.size();
  std::vector<uint8_t> sub(keep.size() * DIM);
  for (size_t i = 0; i < keep.size(); i++) memcpy(&sub[i * DIM], &Bu8[(size_t)keep[i] * DIM], DIM);
  Truth gt = ground_truth(sub, keep.size(), Qu8, O.queries, O.k);
  for (auto &x : gt.ids) x = keep[x];
  sx_read *rd;
  sx_collection *col;
  std::vector<uint32_t> out(O.queries * O.k);
  auto sweep = [&](bool both, std::vector<double> *rec, std::vector<double> *qps) {
    sx_check(sx_read_begin(db, &rd, &e), "read_begin", e);
    sx_check(sx_read_collection(rd, coll_name, &col, &e), "read_collection", e);
    for (uint32_t ef : d.efs) {
      std::vector<double> t[2];
      double r[2] = {0, 0}, rid;
      for (int rep = 0; rep < O.repeats; rep++)
        for (int s2 = 0; s2 < (both ? 2 : 1); s2++) {
          int s = both ? s2 ^ (rep & 1) : 0;
          bool first = rep == 0;
          t[s].push_back(s == 0 ? sx_pass(col, O.queries, ef, first ? &out : nullptr)
                                : hn_pass(hn, O.queries, ef, first ? &out : nullptr));
          if (first) recall_of(out, gt, Bu8, Qu8, O.queries, O.k, &r[s], &rid);
        }
      for (int s = 0; s < (both ? 2 : 1); s++) {
        rec[s].push_back(r[s]);
        qps[s].push_back(O.queries / median(t[s]));
      }
      if (both)
        printf(
            "    after deleting half, ef %4u  sextant %7.0f QPS recall %.4f | hnswlib %7.0f QPS "
            "recall %.4f\n",
            ef, qps[0].back(), rec[0].back(), qps[1].back(), rec[1].back());
    }
    sx_collection_free(col);
    sx_read_free(rd);
  };
  sweep(true, d.rec, d.qps);
  /* The deleted half back, under new ids: the freed slots are reused. */
  std::vector<std::string> rid;
  std::vector<const char *> rp;
  std::vector<float> rv(nd * DIM);
  for (size_t i = 0; i < nd; i++) {
    rid.push_back("r" + std::to_string(order[i]));
    memcpy(&rv[i * DIM], &Bf[(size_t)order[i] * DIM], DIM * sizeof(float));
  }
  for (auto &x : rid) rp.push_back(x.c_str());
  t0 = now_s();
  for (size_t at = 0; at < nd; at += O.batch) {
    size_t cnt = std::min(O.batch, nd - at);
    sx_write *w;
    sx_check(sx_write_begin(db, -1, &w, &e), "write_begin", e);
    sx_check(
        sx_write_upsert(w, coll_name, cnt, rp.data() + at, rv.data() + at * DIM, DIM, nullptr, &e),
        "upsert", e);
    sx_check(sx_write_commit(w, &e), "commit", e);
    sx_write_free(w);
  }
  d.readd_secs = now_s() - t0;
  sx_check(sx_read_begin(db, &rd, &e), "read_begin", e);
  sx_check(sx_read_collection(rd, coll_name, &col, &e), "read_collection", e);
  sx_collection_stats st = SX_COLLECTION_STATS_INIT;
  sx_check(sx_collection_stats_get(col, &st, &e), "collection_stats", e);
  d.slots_readded = st.slots;
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  for (uint32_t ef : d.efs) { /* recall over all base vectors again, against the original truth */
    so.ef = ef;
    for (size_t q = 0; q < O.queries; q++) {
      sx_results *r;
      sx_check(sx_collection_search(col, Qf.data() + q * DIM, DIM, O.k, &so, &r, &e), "search", e);
      size_t n = sx_results_count(r, 0);
      for (size_t i = 0; i < O.k; i++) {
        const char *id = i < n ? sx_results_id(r, 0, i) : nullptr;
        out[q * O.k + i] =
            !id ? UINT32_MAX : (uint32_t)strtoul(id[0] == 'r' ? id + 1 : id, nullptr, 10);
      }
      sx_results_free(r);
    }
    double rt, ri;
    recall_of(out, GT, Bu8, Qu8, O.queries, O.k, &rt, &ri);
    d.readd_rec.push_back(rt);
  }
  sx_collection_free(col);
  sx_read_free(rd);
  return d;
}

int main(int argc, char **argv) {
  if (default_data) O.data = default_data;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char * {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--data")
      O.data = val();
    else if (a == "--dir")
      O.dir = val();
    else if (a == "--base")
      O.base = strtoul(val(), nullptr, 10);
    else if (a == "--queries")
      O.queries = strtoul(val(), nullptr, 10);
    else if (a == "--repeats")
      O.repeats = atoi(val());
    else if (a == "--build-repeats")
      O.build_repeats = atoi(val());
    else if (a == "--efs")
      O.efs = parse_list(val());
    else if (a == "--busy-ef")
      O.busy_ef = (uint32_t)strtoul(val(), nullptr, 10);
    else if (a == "--busy-queries")
      O.busy_queries = strtoul(val(), nullptr, 10);
    else if (a == "--refresh")
      O.refresh = strtoul(val(), nullptr, 10);
    else if (a == "--full-n")
      O.full_n = strtoul(val(), nullptr, 10);
    else if (a == "--scale")
      O.scale = true;
    else if (a == "--keep")
      O.keep = true;
    else if (a == "--skip-busy")
      O.skip_busy = true;
    else if (a == "--skip-par")
      O.skip_par = true;
    else if (a == "--writer-threads")
      O.writer_threads = (uint32_t)strtoul(val(), nullptr, 10);
    else if (a == "--only-sweep")
      O.only_sweep = true;
    else if (a == "--skip-deletes")
      O.skip_deletes = true;
    else if (a == "--del-batch")
      O.del_batch = strtoul(val(), nullptr, 10);
    else if (a == "--del-efs")
      O.del_efs = parse_list(val());
    else
      usage();
  }
  if (O.base < 100 || O.queries < 1 || O.repeats < 1 || O.build_repeats < 1 || O.refresh < 1 ||
      O.busy_ef < O.k)
    usage();
  std::sort(O.efs.begin(), O.efs.end());
  O.full_n = std::min(O.full_n, O.base);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  double T0 = now_s();

  /* Work directory. */
  bool made_dir = false;
  if (O.dir.empty()) {
    char tmpl[] = "/tmp/bench_hnsw.XXXXXX";
    if (!mkdtemp(tmpl)) die("mkdtemp: %s", strerror(errno));
    O.dir = tmpl;
    made_dir = true;
  } else {
    mkdir(O.dir.c_str(), 0755);
  }
  dbpath = O.dir + "/fmnist.sx";
  hnpath = O.dir + "/fmnist.hnswlib";
  fullpath = O.dir + "/fmnist-full.sx";

  /* Data. */
  size_t dq;
  Bu8 = read_idx(O.data, "train-images-idx3-ubyte", O.base, &DIM);
  Qu8 = read_idx(O.data, "t10k-images-idx3-ubyte", O.queries, &dq);
  if (dq != DIM) die("train and test images differ in size");
  float sc = O.scale ? 1.0f / 255.0f : 1.0f;
  Bf.resize(Bu8.size());
  Qf.resize(Qu8.size());
  for (size_t i = 0; i < Bu8.size(); i++) Bf[i] = Bu8[i] * sc;
  for (size_t i = 0; i < Qu8.size(); i++) Qf[i] = Qu8[i] * sc;
  idstr.resize(O.base);
  idptr.resize(O.base);
  for (size_t i = 0; i < O.base; i++) idstr[i] = std::to_string(i), idptr[i] = idstr[i].c_str();

  const char *hn_simd =
#if defined(USE_AVX512)
      AVX512Capable() ? "AVX-512 (USE_AVX512, L2SqrSIMD16ExtAVX512)"
                      : "AVX (USE_AVX512 built, CPU lacks it)";
#elif defined(USE_AVX)
      "AVX (USE_AVX, L2SqrSIMD16ExtAVX)";
#elif defined(USE_SSE)
      "SSE (USE_SSE)";
#else
      "scalar (no SIMD macros)";
#endif
  printf("bench_hnsw: Fashion-MNIST from %s: %zu base, %zu queries, dim %zu, values %s\n",
         O.data.c_str(), O.base, O.queries, DIM, O.scale ? "/255 (0..1)" : "raw 0..255");
  printf(
      "  k=%zu M=%u ef_construction=%u, one thread per system unless stated; repeats=%d; dir %s\n",
      O.k, O.m, O.efc, O.repeats, O.dir.c_str());
  printf("  %u cores; load average at start: %s\n",
         std::max(1u, std::thread::hardware_concurrency()), loadavg().c_str());
  printf("  Sextant %s, distance kernel: %s (run-time dispatch)\n", sx_version(),
         sx__kernel_name(sx__kernel_level()));
  printf("  hnswlib SIMD path: %s (compile-time macros; this file built with %s)\n", hn_simd,
#ifdef __AVX512F__
         "AVX-512F enabled"
#elif defined(__AVX2__)
         "AVX2 enabled"
#else
         "no AVX-512/AVX2"
#endif
  );
  printf(
      "RESULT config base=%zu queries=%zu dim=%zu k=%zu m=%u efc=%u repeats=%d scale=%d "
      "sx_kernel=%s hnswlib_simd=%s\n",
      O.base, O.queries, DIM, O.k, O.m, O.efc, O.repeats, O.scale ? 1 : 0,
      sx__kernel_name(sx__kernel_level()),
#if defined(USE_AVX512)
      AVX512Capable() ? "avx512" : "avx"
#elif defined(USE_AVX)
      "avx"
#elif defined(USE_SSE)
      "sse"
#else
      "scalar"
#endif
  );

  double g0 = now_s();
  GT = ground_truth(Bu8, O.base, Qu8, O.queries, O.k);
  printf("  exact ground truth (integers, %u threads): %.1f s\n\n",
         std::max(1u, std::thread::hardware_concurrency()), now_s() - g0);

  /* ---- 1. build ---------------------------------------------------------------- */
  size_t nbatches = (O.base + O.batch - 1) / O.batch;
  double *cum = shared_alloc<double>(nbatches);
  std::vector<double> sx_b, hn_b;
  BuildRes sxb{}, hnb{};
  for (int r = 0; r < O.build_repeats; r++) {
    /* alternate which goes first */
    for (int s = 0; s < 2; s++) {
      if ((s ^ (r & 1)) == 0) {
        sxb = run_sx_build(cum, 1, dbpath);
        sx_b.push_back(sxb.secs);
        printf("  build sextant (repeat %d): %.1f s\n", r + 1, sxb.secs);
      } else {
        hnb = run_hn_build();
        hn_b.push_back(hnb.secs);
        printf("  build hnswlib (repeat %d): %.1f s\n", r + 1, hnb.secs);
      }
    }
  }
  double sx_build_s = median(sx_b), hn_build_s = median(hn_b);
  /* Two threads: Sextant links each batch of upserts with two threads (threads = 2
   * in sx_open_options), into a database of its own; hnswlib beside it. */
  double sx2_s = 0, hn2_s = 0;
  if (!O.skip_par) {
    std::string par = dbpath + "-par";
    for (int s = 0; s < 2; s++) {
      if (s == 0) {
        sx2_s = run_sx_build(nullptr, 2, par).secs;
        printf("  build sextant, 2 threads: %.1f s\n", sx2_s);
      } else {
        hn2_s = run_hn_build(2).secs;
        printf("  build hnswlib, 2 threads: %.1f s\n", hn2_s);
      }
    }
    remove_db(par);
  }
  size_t nfb = (O.full_n + O.batch - 1) / O.batch;
  double full_s = run_sx_full_sample(O.full_n);
  double off_same = cum[nfb - 1];
  printf("  build sextant sync=full, first %zu vectors: %.1f s (sync=off: %.1f s)\n", O.full_n,
         full_s, off_same);

  long long f_db = file_size(dbpath), f_wal = file_size(dbpath + "-wal"),
            f_wal2 = file_size(dbpath + "-wal2"), f_shm = file_size(dbpath + "-shm");
  long long f_sx = f_db + f_wal + f_wal2, f_hn = file_size(hnpath);

  /* ---- 2. memory of a searching process ------------------------------------------ */
  SearchMem sm[2];
  sm[0] = run_search_mem(0);
  sm[1] = run_search_mem(1);

  /* ---- 3. sweep ------------------------------------------------------------------ */
  sx_error e = SX_ERROR_INIT;
  sx_db *db;
  sx_check(sx_db_open(&db, dbpath.c_str(), nullptr, &e), "open", e);
  sx_read *rd;
  sx_collection *col;
  sx_check(sx_read_begin(db, &rd, &e), "read_begin", e);
  sx_check(sx_read_collection(rd, coll_name, &col, &e), "read_collection", e);
  uint64_t count;
  sx_check(sx_collection_count(col, &count, &e), "count", e);
  if (count != O.base)
    die("collection holds %llu vectors, %zu expected", (unsigned long long)count, O.base);
  hnswlib::L2Space space(DIM);
  HIdx *hn = new HIdx(&space, hnpath, false, O.base);

  size_t ne = O.efs.size();
  std::vector<double> qps[2], cqps[2], share[2], rec[2], recid[2];
  for (int s = 0; s < 2; s++)
    qps[s].resize(ne), cqps[s].resize(ne), share[s].resize(ne), rec[s].resize(ne),
        recid[s].resize(ne);
  std::vector<uint32_t> out(O.queries * O.k);
  printf("\n  sweep (single-query calls, one thread):\n");
  for (size_t x = 0; x < ne; x++) {
    uint32_t ef = O.efs[x];
    std::vector<double> t[2], ct[2], sh[2];
    for (int r = 0; r < O.repeats; r++) {
      for (int s2 = 0; s2 < 2; s2++) {
        int s = s2 ^ (r & 1);
        bool first = r == 0; /* each system's first pass also collects results */
        double tt = s == 0 ? sx_pass(col, O.queries, ef, first ? &out : nullptr)
                           : hn_pass(hn, O.queries, ef, first ? &out : nullptr);
        t[s].push_back(tt);
        ct[s].push_back(last_cpu);
        sh[s].push_back(last_cpu / tt);
        if (first) recall_of(out, GT, Bu8, Qu8, O.queries, O.k, &rec[s][x], &recid[s][x]);
      }
    }
    for (int s = 0; s < 2; s++) {
      qps[s][x] = O.queries / median(t[s]);
      cqps[s][x] = O.queries / median(ct[s]);
      share[s][x] = median(sh[s]);
    }
    printf(
        "    ef %4u  sextant %7.0f QPS recall %.4f (cpu %3.0f%%) | hnswlib %7.0f QPS recall %.4f "
        "(cpu %3.0f%%)\n",
        ef, qps[0][x], rec[0][x], 100 * share[0][x], qps[1][x], rec[1][x], 100 * share[1][x]);
  }

  /* ---- 4. batch API (extra) ------------------------------------------------------ */
  unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
  std::vector<double> bt[2];
  double brec = 0, brecid = 0;
  if (!O.only_sweep) {
    sx_search_options so = SX_SEARCH_OPTIONS_INIT;
    so.ef = O.busy_ef;
    hn->setEf(O.busy_ef);
    for (int r = 0; r < O.repeats; r++) {
      for (int s2 = 0; s2 < 2; s2++) {
        int s = s2 ^ (r & 1);
        double t0 = now_s();
        if (s == 0) {
          sx_results *res;
          sx_check(sx_collection_search_batch(col, Qf.data(), O.queries, DIM, O.k, &so, &res, &e),
                   "search_batch", e);
          bt[0].push_back(now_s() - t0);
          if (r == 0) {
            for (size_t q = 0; q < O.queries; q++) {
              size_t n = sx_results_count(res, q);
              for (size_t i = 0; i < O.k; i++)
                out[q * O.k + i] =
                    i < n ? (uint32_t)strtoul(sx_results_id(res, q, i), nullptr, 10) : UINT32_MAX;
            }
            recall_of(out, GT, Bu8, Qu8, O.queries, O.k, &brec, &brecid);
          }
          sx_results_free(res);
        } else {
          std::vector<std::thread> th;
          for (unsigned w = 0; w < ncpu; w++)
            th.emplace_back([&, w] {
              for (size_t q = w; q < O.queries; q += ncpu) {
                auto pq = hn->searchKnn(Qf.data() + q * DIM, O.k);
                (void)pq;
              }
            });
          for (auto &x : th) x.join();
          bt[1].push_back(now_s() - t0);
        }
      }
    }
  }
  sx_collection_free(col);
  sx_read_free(rd);

  /* ---- 5. reader under a writer process ------------------------------------------ */
  /* qf/bf: quiet/busy QPS by wall time, qc/bc by CPU time; [0] session reused for the
   * pass, [1] renewed every O.refresh queries. Quiet and busy alternate which runs
   * first, so the growth of the collection between them evens out. */
  std::vector<double> qf[2], bf[2], qc[2], bc[2], sf[2],
      scpu[2]; /* sf/scpu: quiet beside a CPU spinner */
  WriterRes wsum{};
  uint64_t wnext = 0;
  double busy_s = 0;
  auto reader_passes = [&](std::vector<double> *wall, std::vector<double> *cpu) {
    sx_check(sx_read_begin(db, &rd, &e), "read_begin", e);
    sx_check(sx_read_collection(rd, coll_name, &col, &e), "read_collection", e);
    wall[0].push_back(O.busy_queries / sx_pass(col, O.busy_queries, O.busy_ef, nullptr));
    cpu[0].push_back(O.busy_queries / last_cpu);
    sx_collection_free(col);
    sx_read_free(rd);
    wall[1].push_back(O.busy_queries / sx_pass_refresh(db, O.busy_queries, O.busy_ef));
    cpu[1].push_back(O.busy_queries / last_cpu);
  };
  if (!O.skip_busy && !O.only_sweep) {
    for (int r = 0; r < O.repeats; r++) {
      if (r % 2 == 0) reader_passes(qf, qc);
      Spinner sp = start_spinner();
      usleep(100 * 1000);
      reader_passes(sf, scpu);
      stop_spinner(sp);
      Writer w = start_writer(wnext);
      usleep(300 * 1000); /* let it commit a few batches first */
      double b0 = now_s();
      reader_passes(bf, bc);
      busy_s += now_s() - b0;
      WriterRes wr = stop_writer(w);
      wnext += wr.vectors;
      wsum.vectors += wr.vectors;
      wsum.commits += wr.commits;
      wsum.secs += wr.secs;
      wsum.sum_commit += wr.sum_commit;
      wsum.max_commit = std::max(wsum.max_commit, wr.max_commit);
      if (r % 2 == 1) reader_passes(qf, qc);
      printf(
          "  busy repeat %d: reused %.0f -> %.0f QPS, renewed %.0f -> %.0f QPS; writer %llu "
          "vectors in %.1f s\n",
          r + 1, qf[0].back(), bf[0].back(), qf[1].back(), bf[1].back(),
          (unsigned long long)wr.vectors, wr.secs);
    }
  }
  sx_db_stats st = SX_DB_STATS_INIT;
  sx_check(sx_db_stats_get(db, &st, &e), "stats", e);

  /* ---- 6. deletes ---------------------------------------------------------------- */
  DelRes dr;
  if (!O.skip_deletes && !O.only_sweep) {
    printf("\n  deletes:\n");
    dr = run_deletes(db, hn, wnext);
  }
  sx_db_free(db);
  delete hn;

  /* ---- report -------------------------------------------------------------------- */
  printf(
      "\n==== Sextant HNSW vs hnswlib, Fashion-MNIST %zu x %zu, %zu queries, k=%zu, M=%u, efc=%u "
      "====\n\n",
      O.base, DIM, O.queries, O.k, O.m, O.efc);
  printf(
      "Sweep: single-query QPS (median of %d; wall clock) and recall@%zu (tie-aware; id-overlap in "
      "brackets)\n",
      O.repeats, O.k);
  printf(
      "  cpu%%: the pass's thread CPU time over its wall time (below ~95%%: the machine was "
      "busy);\n"
      "  cpu ratio: the QPS ratio by thread CPU time, which such contention does not skew\n");
  printf("  %5s | %8s %7s %8s %4s | %8s %7s %8s %4s | %6s %9s %8s\n", "ef", "sx QPS", "recall",
         "[ids]", "cpu%", "hn QPS", "recall", "[ids]", "cpu%", "ratio", "cpu ratio", "rec diff");
  for (size_t x = 0; x < ne; x++) {
    printf("  %5u | %8.0f %7.4f %8.4f %4.0f | %8.0f %7.4f %8.4f %4.0f | %5.2fx %8.2fx %+8.4f\n",
           O.efs[x], qps[0][x], rec[0][x], recid[0][x], 100 * share[0][x], qps[1][x], rec[1][x],
           recid[1][x], 100 * share[1][x], qps[0][x] / qps[1][x], cqps[0][x] / cqps[1][x],
           rec[0][x] - rec[1][x]);
  }
  for (size_t x = 0; x < ne; x++)
    printf(
        "RESULT sweep ef=%u sextant_qps=%.1f sextant_cpu_qps=%.1f sextant_recall=%.5f "
        "sextant_recall_ids=%.5f "
        "hnswlib_qps=%.1f hnswlib_cpu_qps=%.1f hnswlib_recall=%.5f hnswlib_recall_ids=%.5f "
        "qps_ratio=%.3f "
        "cpu_qps_ratio=%.3f recall_diff=%+.5f\n",
        O.efs[x], qps[0][x], cqps[0][x], rec[0][x], recid[0][x], qps[1][x], cqps[1][x], rec[1][x],
        recid[1][x], qps[0][x] / qps[1][x], cqps[0][x] / cqps[1][x], rec[0][x] - rec[1][x]);
  double ratio_at[2] = {NAN, NAN}, cratio_at[2] = {NAN, NAN};
  const double targets[2] = {0.95, 0.99};
  printf("\nQPS at the smallest swept ef reaching the recall target\n");
  for (int ti = 0; ti < 2; ti++) {
    int at[2] = {-1, -1};
    for (int s = 0; s < 2; s++)
      for (size_t x = 0; x < ne && at[s] < 0; x++)
        if (rec[s][x] >= targets[ti]) at[s] = (int)x;
    char a[64] = "not reached", b[64] = "not reached";
    if (at[0] >= 0) snprintf(a, sizeof a, "ef %u: %.0f QPS", O.efs[at[0]], qps[0][at[0]]);
    if (at[1] >= 0) snprintf(b, sizeof b, "ef %u: %.0f QPS", O.efs[at[1]], qps[1][at[1]]);
    if (at[0] >= 0 && at[1] >= 0) {
      ratio_at[ti] = qps[0][at[0]] / qps[1][at[1]];
      cratio_at[ti] = cqps[0][at[0]] / cqps[1][at[1]];
    }
    printf("  recall >= %.2f: sextant %-22s hnswlib %-22s ratio %.2fx (by CPU time %.2fx)\n",
           targets[ti], a, b, ratio_at[ti], cratio_at[ti]);
    printf(
        "RESULT qps_at_recall target=%.2f sextant_ef=%d sextant_qps=%.1f hnswlib_ef=%d "
        "hnswlib_qps=%.1f ratio=%.3f "
        "cpu_ratio=%.3f\n",
        targets[ti], at[0] >= 0 ? (int)O.efs[at[0]] : -1, at[0] >= 0 ? qps[0][at[0]] : 0.0,
        at[1] >= 0 ? (int)O.efs[at[1]] : -1, at[1] >= 0 ? qps[1][at[1]] : 0.0, ratio_at[ti],
        cratio_at[ti]);
  }

  double sx_vps = O.base / sx_build_s, hn_vps = O.base / hn_build_s;
  double full_vps = O.full_n / full_s, off_vps_same = O.full_n / off_same;
  printf("\nBuild, one thread (median of %d)\n", O.build_repeats);
  printf(
      "  sextant: %.0f vectors/s (%.1f s; upserts of %zu per commit, sync=off; then checkpoint "
      "%.2f s)\n",
      sx_vps, sx_build_s, O.batch, sxb.ckpt_secs);
  printf("  hnswlib: %.0f vectors/s (%.1f s; addPoint one by one; saveIndex %.2f s)\n", hn_vps,
         hn_build_s, hnb.save_secs);
  printf("  ratio sextant/hnswlib: %.2fx\n", sx_vps / hn_vps);
  printf(
      "  sextant sync=full, first %zu vectors in commits of %zu: %.0f vectors/s (sync=off, same "
      "vectors: %.0f)\n",
      O.full_n, O.batch, full_vps, off_vps_same);
  double sx_par = sx2_s > 0 ? sx_build_s / sx2_s : 0, hn_par = hn2_s > 0 ? hn_build_s / hn2_s : 0;
  if (!O.skip_par)
    printf("  2 threads vs 1: sextant %.2fx (%.0f vectors/s), hnswlib %.2fx (%.0f vectors/s)\n",
           sx_par, O.base / sx2_s, hn_par, O.base / hn2_s);
  printf(
      "RESULT build sextant_vps=%.1f hnswlib_vps=%.1f ratio=%.3f sextant_mode=batch%zu_sync_off "
      "sextant_secs=%.2f "
      "hnswlib_secs=%.2f sextant_full_sample_n=%zu sextant_full_vps=%.1f sextant_off_same_vps=%.1f "
      "sextant_2threads_secs=%.2f sextant_2threads_speedup=%.3f hnswlib_2threads_secs=%.2f "
      "hnswlib_2threads_speedup=%.3f\n",
      sx_vps, hn_vps, sx_vps / hn_vps, O.batch, sx_build_s, hn_build_s, O.full_n, full_vps,
      off_vps_same, sx2_s, sx_par, hn2_s, hn_par);

  double nb = (double)O.base;
  printf("\nBytes per vector (raw vector: %zu bytes)\n", DIM * 4);
  printf(
      "  files: sextant %.0f (P %lld + P-wal %lld + P-wal2 %lld; P-shm %lld not counted), hnswlib "
      "%.0f (saveIndex) -> %.2fx\n",
      f_sx / nb, f_db, f_wal, f_wal2, f_shm, f_hn / nb, (double)f_sx / f_hn);
  auto kb2b = [&](long kb) { return kb * 1024.0 / nb; };
  printf(
      "  build process RSS growth at the end of the build (sextant: database still open, before "
      "its checkpoint):\n"
      "    sextant %.0f (peak %.0f; anon %.0f, file-backed %.0f), hnswlib %.0f (peak %.0f)\n",
      kb2b(sxb.after.rss - sxb.before.rss), kb2b(sxb.after.hwm - sxb.before.rss),
      kb2b(sxb.after.anon - sxb.before.anon), kb2b(sxb.after.file - sxb.before.file),
      kb2b(hnb.after.rss - hnb.before.rss), kb2b(hnb.after.hwm - hnb.before.rss));
  double sm_sx = kb2b(sm[0].after.rss - sm[0].before.rss),
         sm_hn = kb2b(sm[1].after.rss - sm[1].before.rss);
  printf(
      "  search process RSS growth (open + all queries at ef %u): sextant %.0f (anon %.0f, "
      "file-backed %.0f, shm %.0f), "
      "hnswlib %.0f (anon %.0f) -> %.2fx\n",
      O.busy_ef, sm_sx, kb2b(sm[0].after.anon - sm[0].before.anon),
      kb2b(sm[0].after.file - sm[0].before.file), kb2b(sm[0].after.shmem - sm[0].before.shmem),
      sm_hn, kb2b(sm[1].after.anon - sm[1].before.anon), sm_sx / sm_hn);
  printf("  open time: sextant %.3f s (maps the file), hnswlib %.3f s (loadIndex reads it all)\n",
         sm[0].open_secs, sm[1].open_secs);
  printf(
      "RESULT bytes_per_vector sextant_file=%.1f hnswlib_file=%.1f file_ratio=%.3f "
      "sextant_search_rss=%.1f "
      "hnswlib_search_rss=%.1f rss_ratio=%.3f sextant_build_rss=%.1f hnswlib_build_rss=%.1f "
      "sextant_build_peak=%.1f hnswlib_build_peak=%.1f\n",
      f_sx / nb, f_hn / nb, (double)f_sx / f_hn, sm_sx, sm_hn, sm_sx / sm_hn,
      kb2b(sxb.after.rss - sxb.before.rss), kb2b(hnb.after.rss - hnb.before.rss),
      kb2b(sxb.after.hwm - sxb.before.rss), kb2b(hnb.after.hwm - hnb.before.rss));

  double bq_sx = NAN, bq_hn = NAN;
  if (!O.only_sweep) {
    bq_sx = O.queries / median(bt[0]);
    bq_hn = O.queries / median(bt[1]);
    printf("\nExtra: batch search at ef %u, all %zu queries per call, %u cores\n", O.busy_ef,
           O.queries, ncpu);
    printf(
        "  sextant sx_collection_search_batch: %.0f QPS (recall %.4f); hnswlib, %u threads: %.0f "
        "QPS -> %.2fx\n",
        bq_sx, brec, ncpu, bq_hn, bq_sx / bq_hn);
    printf(
        "RESULT batch ef=%u threads=%u sextant_qps=%.1f sextant_recall=%.5f hnswlib_qps=%.1f "
        "ratio=%.3f\n",
        O.busy_ef, ncpu, bq_sx, brec, bq_hn, bq_sx / bq_hn);
  }

  double busy_ratio[2] = {NAN, NAN};
  if (!O.skip_busy && !O.only_sweep) {
    printf(
        "\nReader (one thread, ef %u, %zu queries per pass) while a writer process commits %zu "
        "vectors every %d ms "
        "(sync=normal), median of %d\n",
        O.busy_ef, O.busy_queries, O.w_per_commit, O.w_period_ms, O.repeats);
    const char *mode[2] = {"session reused for the pass", "session renewed every N queries"};
    for (int s = 0; s < 2; s++) {
      double q = median(qf[s]), b = median(bf[s]), cq = median(qc[s]), cb = median(bc[s]);
      busy_ratio[s] = b / q;
      printf("  %-32s quiet %.0f QPS, busy %.0f QPS -> %.2fx (by CPU time: %.0f -> %.0f, %.2fx)\n",
             mode[s], q, b, busy_ratio[s], cq, cb, cb / cq);
      printf(
          "RESULT busy mode=%s ef=%u quiet_qps=%.1f busy_qps=%.1f ratio=%.3f quiet_cpu_qps=%.1f "
          "busy_cpu_qps=%.1f "
          "cpu_ratio=%.3f\n",
          s ? "renewed" : "reused", O.busy_ef, q, b, busy_ratio[s], cq, cb, cb / cq);
    }
    printf("  (renewed = every %zu queries)\n", O.refresh);
    for (int s = 0; s < 2; s++) {
      double q = median(qf[s]), sp = median(sf[s]), b = median(bf[s]);
      printf(
          "  control, %s: quiet but beside a process that only burns CPU: %.0f QPS (%.2fx quiet); "
          "busy/control %.2fx\n",
          s ? "renewed" : "reused", sp, sp / q, b / sp);
      printf(
          "RESULT busy_control mode=%s spinner_qps=%.1f spinner_over_quiet=%.3f "
          "busy_over_spinner=%.3f spinner_cpu_qps=%.1f\n",
          s ? "renewed" : "reused", sp, sp / q, b / sp, median(scpu[s]));
    }
    double wrate = wsum.vectors / wsum.secs;
    printf(
        "  writer (threads=%u) achieved %.0f vectors/s (goal 1000), %llu commits, mean commit %.1f "
        "ms, max %.1f ms\n",
        O.writer_threads, wrate, (unsigned long long)wsum.commits,
        1e3 * wsum.sum_commit / std::max<uint64_t>(1, wsum.commits), 1e3 * wsum.max_commit);
    printf("  WAL after the test: %llu frames, %llu backfilled; %llu vectors added in all\n",
           (unsigned long long)st.wal_frames, (unsigned long long)st.wal_backfilled,
           (unsigned long long)wsum.vectors);
    printf("RESULT writer vectors_per_s=%.1f commits=%llu mean_commit_ms=%.2f max_commit_ms=%.2f\n",
           wrate, (unsigned long long)wsum.commits,
           1e3 * wsum.sum_commit / std::max<uint64_t>(1, wsum.commits), 1e3 * wsum.max_commit);
  }

  /* Recall before deleting at ef, from the main sweep (-1 when ef was not swept). */
  auto rec_before = [&](int sys, uint32_t ef) {
    for (size_t x = 0; x < ne; x++)
      if (O.efs[x] == ef) return rec[sys][x];
    return -1.0;
  };
  double worst_del = 1e9;
  uint32_t worst_del_ef = 0;
  if (dr.ran) {
    printf(
        "\nDeletes: %zu of %zu vectors (a random half of the base, and the busy writer's), %zu ids "
        "per commit\n",
        dr.deleted, dr.deleted + dr.kept, O.del_batch);
    printf(
        "  sextant: %.1f s (%.0f deletes/s), %zu commits, %zu of them unlinked the dead nodes "
        "(%.1f s in those); "
        "slots %llu\n",
        dr.sx_secs, dr.deleted / dr.sx_secs, dr.commits, dr.unlinks, dr.sx_unlink_secs,
        (unsigned long long)dr.slots_after);
    printf("  hnswlib: markDelete of the base half, %.3f s (marks only: no list is repaired)\n",
           dr.hn_secs);
    printf("  %5s | %8s %7s %7s %6s | %8s %7s %7s %6s | %7s\n", "ef", "sx QPS", "before", "after",
           "ratio", "hn QPS", "before", "after", "ratio", "re-add");
    for (size_t x = 0; x < dr.efs.size(); x++) {
      double b0 = rec_before(0, dr.efs[x]), b1 = rec_before(1, dr.efs[x]);
      printf("  %5u | %8.0f %7.4f %7.4f %6.3f | %8.0f %7.4f %7.4f %6.3f | %7.4f\n", dr.efs[x],
             dr.qps[0][x], b0, dr.rec[0][x], b0 > 0 ? dr.rec[0][x] / b0 : 0, dr.qps[1][x], b1,
             dr.rec[1][x], b1 > 0 ? dr.rec[1][x] / b1 : 0, dr.readd_rec[x]);
      printf(
          "RESULT deletes ef=%u sextant_qps=%.1f sextant_recall_before=%.5f sextant_recall=%.5f "
          "hnswlib_qps=%.1f "
          "hnswlib_recall_before=%.5f hnswlib_recall=%.5f qps_ratio=%.3f "
          "sextant_readded_recall=%.5f\n",
          dr.efs[x], dr.qps[0][x], b0, dr.rec[0][x], dr.qps[1][x], b1, dr.rec[1][x],
          dr.qps[0][x] / dr.qps[1][x], dr.readd_rec[x]);
      if (b0 > 0 && dr.rec[0][x] / b0 < worst_del)
        worst_del = dr.rec[0][x] / b0, worst_del_ef = dr.efs[x];
    }
    printf(
        "  re-add: the deleted half under new ids in %.1f s (%.0f vectors/s); slots %llu -> %llu "
        "(re-add: recall over all %zu again, against the first truth)\n",
        dr.readd_secs, dr.kept / dr.readd_secs, (unsigned long long)dr.slots_after,
        (unsigned long long)dr.slots_readded, O.base);
    printf(
        "RESULT delete_time sextant_secs=%.2f sextant_deletes_per_s=%.1f commits=%zu unlinks=%zu "
        "unlink_secs=%.2f "
        "hnswlib_secs=%.3f readd_secs=%.2f slots_after=%llu slots_readded=%llu\n",
        dr.sx_secs, dr.deleted / dr.sx_secs, dr.commits, dr.unlinks, dr.sx_unlink_secs, dr.hn_secs,
        dr.readd_secs, (unsigned long long)dr.slots_after, (unsigned long long)dr.slots_readded);
  }

  /* ---- goals --------------------------------------------------------------------- */
  printf("\nGoals\n");
  goal(ratio_at[0] >= 1.0, "qps@recall>=0.95 >= 1.0x", "%.2fx%s (by CPU time %.2fx)", ratio_at[0],
       ratio_at[0] >= 1.2 ? " (stretch 1.2x met)" : "", cratio_at[0]);
  goal(ratio_at[1] >= 1.0, "qps@recall>=0.99 >= 1.0x", "%.2fx%s (by CPU time %.2fx)", ratio_at[1],
       ratio_at[1] >= 1.2 ? " (stretch 1.2x met)" : "", cratio_at[1]);
  double worst = 0, best = 0;
  uint32_t worst_ef = 0, best_ef = 0;
  for (size_t x = 0; x < ne; x++) {
    double d = rec[0][x] - rec[1][x];
    if (-d > worst) worst = -d, worst_ef = O.efs[x];
    if (d > best) best = d, best_ef = O.efs[x];
  }
  if (worst > 0)
    goal(worst <= 0.005, "recall at equal ef >= hnswlib-0.005", "largest shortfall %.4f at ef %u",
         worst, worst_ef);
  else
    goal(true, "recall at equal ef >= hnswlib-0.005",
         "never below hnswlib's (largest excess %+.4f at ef %u)", best, best_ef);
  goal(sx_vps / hn_vps >= 1.0, "build vectors/s >= 1.0x hnswlib", "%.2fx", sx_vps / hn_vps);
  if (!O.skip_par)
    goal(sx_par >= 1.8, "build 2 threads >= 1.8x 1 thread", "%.2fx (hnswlib %.2fx)", sx_par,
         hn_par);
  goal((double)f_sx / f_hn <= 1.1, "file bytes/vector <= 1.1x", "%.2fx", (double)f_sx / f_hn);
  goal(sm_sx / sm_hn <= 1.1, "search RSS bytes/vector <= 1.1x", "%.2fx", sm_sx / sm_hn);
  if (!O.skip_busy && !O.only_sweep) {
    goal(busy_ratio[0] >= 0.9, "busy/quiet QPS (session reused) >= 0.9", "%.2fx", busy_ratio[0]);
    goal(busy_ratio[1] >= 0.9, "busy/quiet QPS (renewed) >= 0.9", "%.2fx", busy_ratio[1]);
  }
  if (dr.ran && worst_del_ef)
    goal(worst_del >= 0.9, "recall after deleting half >= 0.9x before", "%.3fx at worst (ef %u)",
         worst_del, worst_del_ef);
  printf("RESULT goals pass=%d fail=%d total_secs=%.1f load_avg_end=\"%s\"\n", passes, fails,
         now_s() - T0, loadavg().c_str());

  if (!O.keep) {
    remove_db(dbpath);
    unlink(hnpath.c_str());
    if (made_dir) rmdir(O.dir.c_str());
  }
  return 0;
}
