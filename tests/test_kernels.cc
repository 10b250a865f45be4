/*
 * Tests for the distance kernels (index/index.h): every level the CPU supports,
 * every metric, against the double-precision reference, over dimensions that hit
 * every tail of every vector width; exact known values; the dispatch rules (best
 * level by default, unsupported levels refused). Levels the CPU lacks are skipped
 * with a printed note. Each vector lives in its own heap block, sized exactly (some
 * start one float off alignment), so a kernel reading past a vector shows under ASan.
 */
#include <gtest/gtest.h>

#include <math.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "index/kernels.h"
#include "sextant.h"

namespace {

const int kLevels[] = {SX__KERNEL_SCALAR, SX__KERNEL_PORTABLE, SX__KERNEL_AVX2, SX__KERNEL_AVX512};
const int kMetrics[] = {SX__L2, SX__IP, SX__COSINE};
const size_t kDims[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 128, 257, 768, 1000, 4096};
const size_t kNq[] = {1, 3, 4, 7, 64};
const size_t kN[] = {1, 5, 17, 100};

const char *MetricName(int m) {
  return m == SX__L2 ? "l2" : m == SX__IP ? "ip" : "cosine";
}

/* The best level the CPU supports, found independently of the library. */
int ExpectedBest() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return SX__KERNEL_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SX__KERNEL_AVX2;
#endif
  return SX__KERNEL_PORTABLE;
}

/* Forces a level for one test, or reports (visibly) that the CPU lacks it. */
bool UseLevel(int level) {
  if (!sx__kernel_supported(level)) {
    std::printf("[  NOTE    ] level %s not supported by this CPU: skipped\n",
                sx__kernel_name(level));
    EXPECT_EQ(SX_INVALID_ARGUMENT, sx__kernel_force(level));
    return false;
  }
  EXPECT_EQ(SX_OK, sx__kernel_force(level));
  EXPECT_EQ(level, sx__kernel_level());
  return true;
}

class Kernels : public ::testing::Test {
 protected:
  void TearDown() override {
    ASSERT_EQ(SX_OK, sx__kernel_force(ExpectedBest()));
  }
};

/* A set of vectors, each in its own exactly sized heap block; odd ones start one
 * float past an aligned boundary. */
struct VecSet {
  std::vector<std::unique_ptr<float[]>> blocks;
  std::vector<const float *> ptrs;
  std::vector<float *> mut;
  VecSet(size_t n, size_t dim) {
    for (size_t j = 0; j < n; j++) {
      size_t off = j % 2;
      blocks.emplace_back(new float[dim + off]);
      mut.push_back(blocks.back().get() + off);
      ptrs.push_back(mut.back());
    }
  }
};

double SumSq(const float *a, size_t dim) {
  double s = 0;
  for (size_t i = 0; i < dim; i++) s += (double)a[i] * a[i];
  return s;
}

/* A batch's data: nq x dim queries (one block) and n vectors (VecSet), component k
 * of query i being qf(i, k, x) and of vector j vf(j, k, x), where x is drawn from
 * U[-1, 1), the queries' first. */
struct BatchData {
  std::vector<float> qs;
  VecSet vs;
  template <class Q, class V>
  BatchData(size_t nq, size_t n, size_t dim, unsigned seed, Q qf, V vf) : qs(nq * dim), vs(n, dim) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1, 1);
    for (size_t i = 0; i < nq; i++)
      for (size_t k = 0; k < dim; k++) qs[i * dim + k] = qf(i, k, u(rng));
    for (size_t j = 0; j < n; j++)
      for (size_t k = 0; k < dim; k++) vs.mut[j][k] = vf(j, k, u(rng));
  }
};

/* The tolerance of a fast result: float rounding against the double reference,
 * 1e-4 relative plus 1e-4 of the natural scale of the sum (|q|^2 + |v|^2 for l2,
 * half that for ip, which bounds |q||v|; 1 for cosine). */
double Tolerance(int metric, double ref, const float *q, const float *v, size_t dim) {
  double scale = SumSq(q, dim) + SumSq(v, dim);
  double abs_part = metric == SX__L2 ? scale : metric == SX__IP ? scale / 2 : 1.0;
  return 1e-4 * fabs(ref) + 1e-4 * abs_part;
}

/* Random data for one dimension: 64 queries (contiguous, exact-size heap block) and
 * 100 vectors, U[-1, 1) plus `offset`; the reference matrix for each metric. */
struct Data {
  size_t dim;
  std::unique_ptr<float[]> qs;
  VecSet vs;
  std::vector<float> qn;
  std::vector<double> ref[3]; /* [metric][i * 100 + j] */
  Data(size_t d, unsigned seed, float offset, float spread = 1.0f)
      : dim(d), qs(new float[64 * d]), vs(100, d), qn(64) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-spread, spread);
    for (size_t i = 0; i < 64 * d; i++) qs[i] = offset + u(rng);
    for (size_t j = 0; j < 100; j++)
      for (size_t i = 0; i < d; i++) vs.mut[j][i] = offset + u(rng);
    for (size_t i = 0; i < 64; i++) qn[i] = (float)sqrt(SumSq(q(i), d));
    for (int m : kMetrics) {
      ref[m].resize(64 * 100);
      for (size_t i = 0; i < 64; i++)
        for (size_t j = 0; j < 100; j++)
          ref[m][i * 100 + j] = sx__distance_ref(m, q(i), vs.ptrs[j], d);
    }
  }
  const float *q(size_t i) const {
    return qs.get() + i * dim;
  }
};

/* Checks sx__distance, sx__distance_many and sx__distance_batch (every nq, n) at
 * the active level against the reference. tol(metric, ref, q, v) gives the bound. */
template <class Tol>
void CheckAll(const Data &d, Tol tol, const std::string &what) {
  size_t dim = d.dim;
  for (int m : kMetrics) {
    SCOPED_TRACE(what + " level " + sx__kernel_name(sx__kernel_level()) + " metric " +
                 MetricName(m) + " dim " + std::to_string(dim));
    int bad = 0;
    /* Single distances and norms. */
    for (size_t i = 0; i < 4; i++) {
      float n = sx__norm(d.q(i), dim);
      EXPECT_NEAR(d.qn[i], n, 1e-5 * d.qn[i] + 1e-30);
      for (size_t j = 0; j < 100 && bad < 5; j++) {
        double r = d.ref[m][i * 100 + j];
        float got = sx__distance(m, d.q(i), d.qn[i], d.vs.ptrs[j], dim);
        if (!(fabs(got - r) <= tol(m, r, d.q(i), d.vs.ptrs[j], dim))) {
          ADD_FAILURE() << "sx__distance q" << i << " v" << j << ": " << got << " vs ref " << r;
          bad++;
        }
      }
    }
    /* One query against many. */
    std::vector<float> out(100);
    for (size_t n : kN) {
      sx__distance_many(m, d.q(5), d.qn[5], d.vs.ptrs.data(), n, dim, out.data());
      for (size_t j = 0; j < n && bad < 5; j++) {
        double r = d.ref[m][5 * 100 + j];
        if (!(fabs(out[j] - r) <= tol(m, r, d.q(5), d.vs.ptrs[j], dim))) {
          ADD_FAILURE() << "sx__distance_many n " << n << " v" << j << ": " << out[j] << " vs ref "
                        << r;
          bad++;
        }
      }
    }
    /* Batches: out[i * n + j]. A guard value after the block catches overruns. */
    std::vector<float> bout(64 * 100 + 1);
    for (size_t nq : kNq)
      for (size_t n : kN) {
        std::fill(bout.begin(), bout.end(), -7.0f);
        const float *qnorms = m == SX__COSINE ? d.qn.data() : nullptr;
        sx__distance_batch(m, d.q(0), qnorms, nq, d.vs.ptrs.data(), n, dim, bout.data());
        EXPECT_EQ(-7.0f, bout[nq * n]) << "batch wrote past out, nq " << nq << " n " << n;
        for (size_t i = 0; i < nq; i++)
          for (size_t j = 0; j < n && bad < 5; j++) {
            double r = d.ref[m][i * 100 + j];
            float got = bout[i * n + j];
            if (!(fabs(got - r) <= tol(m, r, d.q(i), d.vs.ptrs[j], dim))) {
              ADD_FAILURE() << "sx__distance_batch nq " << nq << " n " << n << " q" << i << " v"
                            << j << ": " << got << " vs ref " << r;
              bad++;
            }
          }
      }
  }
}

/* The level the library picked on its own: read before any test forces one. */
const int kInitialLevel = sx__kernel_level();

TEST_F(Kernels, DefaultIsBestSupportedLevel) {
  int best = ExpectedBest();
  EXPECT_EQ(best, kInitialLevel) << "picked " << sx__kernel_name(kInitialLevel);
  for (int l : kLevels) {
    if (l > best) {
      EXPECT_FALSE(sx__kernel_supported(l)) << sx__kernel_name(l);
    } else if (l <= SX__KERNEL_PORTABLE || l == best) {
      EXPECT_TRUE(sx__kernel_supported(l)) << sx__kernel_name(l);
    }
  }
  std::printf("[  NOTE    ] default kernel level: %s\n", sx__kernel_name(kInitialLevel));
}

TEST_F(Kernels, ForcingUnsupportedLevelFails) {
  int before = sx__kernel_level();
  for (int bad : {-1, 4, 99}) {
    EXPECT_EQ(SX_INVALID_ARGUMENT, sx__kernel_force(bad)) << bad;
    EXPECT_EQ(before, sx__kernel_level());
  }
  int unsupported = 0;
  for (int l : kLevels)
    if (!sx__kernel_supported(l)) {
      unsupported++;
      EXPECT_EQ(SX_INVALID_ARGUMENT, sx__kernel_force(l)) << sx__kernel_name(l);
      EXPECT_EQ(before, sx__kernel_level());
    }
  if (!unsupported)
    std::printf("[  NOTE    ] this CPU supports every level: only invalid numbers tested\n");
}

TEST_F(Kernels, LevelNames) {
  std::vector<std::string> names;
  for (int l : kLevels) names.push_back(sx__kernel_name(l));
  EXPECT_EQ("scalar", names[0]);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names.end(), std::unique(names.begin(), names.end()));
}

TEST_F(Kernels, KnownValues) {
  for (int level : kLevels) {
    if (!UseLevel(level)) continue;
    SCOPED_TRACE(sx__kernel_name(level));
    const float o[2] = {0, 0}, p[2] = {3, 4};
    EXPECT_EQ(25.0, sx__distance_ref(SX__L2, o, p, 2));
    EXPECT_FLOAT_EQ(25.0f, sx__distance(SX__L2, o, 0, p, 2));
    EXPECT_FLOAT_EQ(5.0f, sx__norm(p, 2));
    EXPECT_FLOAT_EQ(0.0f, sx__distance(SX__L2, p, 5, p, 2));

    /* Unit vectors, in a dimension long enough for every vector path. */
    const size_t dim = 100;
    std::vector<float> e0(dim, 0), e1(dim, 0), u(dim), w(dim), negu(dim), twice(dim);
    e0[0] = 1;
    e1[dim - 1] = 1;
    for (size_t i = 0; i < dim; i++) {
      u[i] = (float)((i % 3) + 1);
      w[i] = (i % 2) ? 1.0f : -1.0f; /* orthogonal to e-constant pieces below */
      negu[i] = -u[i];
      twice[i] = 2 * u[i];
    }
    EXPECT_FLOAT_EQ(1.0f, sx__norm(e0.data(), dim));
    EXPECT_FLOAT_EQ(0.0f, sx__distance(SX__IP, e0.data(), 1, e0.data(), dim)); /* 1 - 1 */
    EXPECT_FLOAT_EQ(1.0f, sx__distance(SX__IP, e0.data(), 1, e1.data(), dim)); /* 1 - 0 */
    std::vector<float> neg_e0 = e0;
    neg_e0[0] = -1;
    EXPECT_FLOAT_EQ(2.0f, sx__distance(SX__IP, e0.data(), 1, neg_e0.data(), dim));
    EXPECT_FLOAT_EQ(2.0f, sx__distance(SX__L2, e0.data(), 1, e1.data(), dim));

    float un = sx__norm(u.data(), dim);
    EXPECT_NEAR(0.0f, sx__distance(SX__COSINE, u.data(), un, twice.data(), dim), 1e-6);
    EXPECT_NEAR(2.0f, sx__distance(SX__COSINE, u.data(), un, negu.data(), dim), 1e-6);
    EXPECT_NEAR(1.0f, sx__distance(SX__COSINE, e0.data(), 1, e1.data(), dim), 1e-6);
    /* (1, 1, ...) and (-1, 1, -1, 1, ...) over an even dimension are orthogonal. */
    std::vector<float> ones(dim, 1.0f);
    EXPECT_NEAR(1.0f, sx__distance(SX__COSINE, ones.data(), 10, w.data(), dim), 1e-6);
    /* A zero vector has no direction: cosine distance 1, never NaN. */
    std::vector<float> zero(dim, 0.0f);
    EXPECT_EQ(1.0f, sx__distance(SX__COSINE, u.data(), un, zero.data(), dim));
    EXPECT_EQ(1.0f, sx__distance(SX__COSINE, zero.data(), 0, u.data(), dim));
    EXPECT_EQ(1.0, sx__distance_ref(SX__COSINE, zero.data(), u.data(), dim));

    /* The same through many and batch. */
    const float *vecs[4] = {e0.data(), e1.data(), twice.data(), negu.data()};
    float out[8];
    sx__distance_many(SX__COSINE, u.data(), un, vecs + 2, 2, dim, out);
    EXPECT_NEAR(0.0f, out[0], 1e-6);
    EXPECT_NEAR(2.0f, out[1], 1e-6);
    std::vector<float> qs(2 * dim);
    std::copy(u.begin(), u.end(), qs.begin());
    std::copy(e0.begin(), e0.end(), qs.begin() + dim);
    float qn[2] = {un, 1.0f};
    sx__distance_batch(SX__COSINE, qs.data(), qn, 2, vecs, 4, dim, out);
    EXPECT_NEAR(0.0f, out[2], 1e-6);
    EXPECT_NEAR(2.0f, out[3], 1e-6);
    EXPECT_NEAR(0.0f, out[4], 1e-6);
    EXPECT_NEAR(1.0f, out[5], 1e-6);
    sx__distance_batch(SX__IP, qs.data(), nullptr, 2, vecs, 2, dim, out);
    EXPECT_FLOAT_EQ(0.0f, out[2]);
    EXPECT_FLOAT_EQ(1.0f, out[3]);
    sx__distance_batch(SX__L2, qs.data(), nullptr, 2, vecs, 2, dim, out);
    EXPECT_FLOAT_EQ(2.0f, out[3]);
  }
}

/* Random data in [-1, 1], every level, metric, dimension, nq and n. */
TEST_F(Kernels, MatchReferenceOnRandomData) {
  for (size_t dim : kDims) {
    Data d(dim, 1000 + (unsigned)dim, 0.0f);
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      CheckAll(d, Tolerance, "random");
    }
  }
}

/* The raw sums HNSW adds up over the parts of a vector that straddles pages: at
 * every level and split point, the parts sum to the reference l2 and dot product. */
TEST_F(Kernels, RawSumsOverPartsMatchReference) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (size_t dim : {1, 17, 100, 784}) {
    std::vector<float> q(dim), v(dim);
    for (size_t i = 0; i < dim; i++) q[i] = u(rng), v[i] = u(rng);
    double l2 = sx__distance_ref(SX__L2, q.data(), v.data(), dim);
    double dot = 1 - sx__distance_ref(SX__IP, q.data(), v.data(), dim);
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      sx__raw_fn rl2 = sx__raw(SX__L2), rip = sx__raw(SX__IP);
      for (size_t cut : {(size_t)0, dim / 3, dim}) {
        double s2 =
            (double)rl2(q.data(), v.data(), cut) + rl2(q.data() + cut, v.data() + cut, dim - cut);
        double sd =
            (double)rip(q.data(), v.data(), cut) + rip(q.data() + cut, v.data() + cut, dim - cut);
        EXPECT_NEAR(s2, l2, 1e-4 * (1 + l2))
            << sx__kernel_name(level) << " dim " << dim << " cut " << cut;
        EXPECT_NEAR(sd, dot, 1e-4 * (1 + std::fabs(dot)))
            << sx__kernel_name(level) << " dim " << dim << " cut " << cut;
      }
    }
  }
}

/* The side-by-side raw sums HNSW's search takes four neighbours at a time with: at
 * every level, for 1 to 4 vectors each in two parts (cut anywhere: at 0, inside a
 * 16-float step, on a step, at or past the end), each lane matches the reference, is
 * bit-identical to the same vector computed alone (so a distance does not depend on
 * its neighbours in the batch), and nothing past out[n - 1] is written. Each part is
 * its own exactly sized heap block, so reading past a part shows under ASan. */
TEST_F(Kernels, Raw4OverPartsMatchesReferenceAndIsPerLane) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  for (size_t dim : {1, 2, 15, 16, 17, 33, 100, 784, 1000}) {
    std::vector<float> q(dim);
    for (float &x : q) x = u(rng);
    std::vector<std::vector<float>> full(4, std::vector<float>(dim));
    for (auto &v : full)
      for (float &x : v) x = u(rng);
    std::vector<size_t> cuts = {0, 1, dim / 3, dim / 2, dim - 1, dim, dim + 5};
    if (dim > 16) cuts.push_back(16);
    if (dim > 37) cuts.push_back(37);
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      for (int what : {SX__L2, SX__IP}) {
        sx__raw4_fn r4 = sx__raw4(what);
        ASSERT_NE(nullptr, r4);
        for (size_t cut : cuts) {
          /* Lane j cut at cut + j (clamped), so lanes differ in where they split. */
          std::unique_ptr<float[]> pa[4], pb[4];
          sx__vparts vp[4];
          for (size_t j = 0; j < 4; j++) {
            size_t c = std::min(cut + j, dim + 5), na = std::min(c, dim);
            pa[j].reset(new float[na]);
            std::copy(full[j].begin(), full[j].begin() + (ptrdiff_t)na, pa[j].get());
            pb[j].reset(new float[dim - na]);
            std::copy(full[j].begin() + (ptrdiff_t)na, full[j].end(), pb[j].get());
            vp[j] = {pa[j].get(), c >= dim ? nullptr : pb[j].get(), c};
          }
          for (size_t n = 1; n <= 4; n++) {
            float out[4] = {-7, -7, -7, -7};
            r4(q.data(), vp, n, dim, out);
            for (size_t j = 0; j < 4; j++) {
              std::string at = std::string(sx__kernel_name(level)) + " " + MetricName(what) +
                               " dim " + std::to_string(dim) + " cut " + std::to_string(cut) +
                               " n " + std::to_string(n) + " lane " + std::to_string(j);
              if (j >= n) {
                EXPECT_EQ(-7.0f, out[j]) << at << ": written past n";
                continue;
              }
              double ref = sx__distance_ref(what, q.data(), full[j].data(), dim);
              if (what == SX__IP) ref = 1 - ref;
              EXPECT_NEAR(out[j], ref, 1e-4 * (1 + std::fabs(ref))) << at;
              float alone = -7;
              r4(q.data(), &vp[j], 1, dim, &alone);
              EXPECT_EQ(alone, out[j]) << at << ": depends on the other lanes";
            }
          }
        }
      }
    }
  }
}

/* The flat scan's single-query kernel over vectors in two parts (a vector that
 * straddles two pages not adjacent in memory): at every level, metric, and cut (at
 * 0, inside a 16-float step, on one, at or past the end), each distance is bit for
 * bit sx__distance of the same floats laid end to end (the batch scan's exact
 * re-rank depends on it), and a vector whose n0 covers it is read from a alone. Each
 * part is its own exactly sized heap block, so a read past a part shows under ASan. */
TEST_F(Kernels, ManyOverPartsIsBitIdenticalToContiguous) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> u(-1, 1);
  for (size_t dim : {1, 2, 15, 16, 17, 33, 64, 100, 784, 1000, 1536}) {
    std::vector<float> q(dim);
    for (float &x : q) x = u(rng);
    std::vector<size_t> cuts = {0, 1, dim / 3, dim / 2, dim - 1, dim, dim + 5};
    for (size_t c : {16, 37, 63, 64, 65, 120, 256})
      if (c < dim) cuts.push_back(c);
    const size_t n = cuts.size();
    std::vector<std::vector<float>> full(n, std::vector<float>(dim));
    for (auto &v : full)
      for (float &x : v) x = u(rng);
    std::vector<std::unique_ptr<float[]>> pa(n), pb(n);
    std::vector<sx__vparts> vp(n);
    for (size_t j = 0; j < n; j++) {
      size_t na = std::min(cuts[j], dim);
      pa[j].reset(new float[na ? na : 1]);
      std::copy(full[j].begin(), full[j].begin() + (ptrdiff_t)na, pa[j].get());
      pb[j].reset(new float[dim - na ? dim - na : 1]);
      std::copy(full[j].begin() + (ptrdiff_t)na, full[j].end(), pb[j].get());
      vp[j] = {pa[j].get(), cuts[j] >= dim ? nullptr : pb[j].get(), cuts[j]};
    }
    std::vector<float> scratch(dim);
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      for (int metric : {0, 1, 2, 16, 17, 18}) {  // SX__L2, SX__IP, SX__COSINE
        // + 16: the same with the scan's prefetch ahead (no effect on the values)
        size_t ahead = metric >= 16 ? SX__SCAN_AHEAD : 0;
        metric %= 16;
        float qn = sx__norm(q.data(), dim);
        std::vector<float> out(n + 1, -7.0f);
        sx__distance_many_parts(metric, q.data(), qn, vp.data(), n, dim, ahead, scratch.data(),
                                out.data());
        EXPECT_EQ(-7.0f, out[n]) << "written past n";
        for (size_t j = 0; j < n; j++) {
          float want = sx__distance(metric, q.data(), qn, full[j].data(), dim);
          EXPECT_EQ(want, out[j]) << sx__kernel_name(level) << " " << MetricName(metric) << " dim "
                                  << dim << " cut " << cuts[j];
        }
      }
    }
  }
}

/* Components around 100: |q|^2 + |v|^2 dwarfs the distance, so the loose absolute
 * term would hide a cancelling l2; hold l2 to 1e-4 relative instead. */
TEST_F(Kernels, MatchReferenceWithLargeOffset) {
  auto tol = [](int m, double ref, const float *q, const float *v, size_t dim) {
    if (m == SX__L2) return 1e-4 * fabs(ref) + 1e-30;
    return Tolerance(m, ref, q, v, dim);
  };
  for (size_t dim : kDims) {
    Data d(dim, 2000 + (unsigned)dim, 100.0f);
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      CheckAll(d, tol, "offset 100");
    }
  }
}

/* Tighter bound on ordinary data: l2 within 1e-5 relative plus 1e-6 of the norms. */
TEST_F(Kernels, L2IsTightOnRandomData) {
  auto tol = [](int m, double ref, const float *q, const float *v, size_t dim) {
    if (m == SX__L2) return 1e-5 * fabs(ref) + 1e-6 * (SumSq(q, dim) + SumSq(v, dim));
    return Tolerance(m, ref, q, v, dim);
  };
  for (size_t dim : {16, 128, 1000, 4096}) {
    Data d(dim, 3000 + (unsigned)dim, 0.0f);
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      CheckAll(d, tol, "tight");
    }
  }
}

/* Near duplicates (vectors = queries + 1e-3 noise) and exact duplicates: l2 must
 * keep its relative accuracy, and a vector's distance to itself is exactly 0. */
TEST_F(Kernels, L2NearAndExactDuplicates) {
  for (size_t dim : {3, 16, 33, 128, 257, 1000}) {
    std::mt19937 rng(4000 + (unsigned)dim);
    std::uniform_real_distribution<float> u(-1, 1);
    const size_t nq = 13, n = 40;
    std::unique_ptr<float[]> qs(new float[nq * dim]);
    for (size_t i = 0; i < nq * dim; i++) qs[i] = 5.0f + u(rng);
    VecSet vs(n, dim);
    for (size_t j = 0; j < n; j++)
      for (size_t k = 0; k < dim; k++) {
        float base = qs[(j % nq) * dim + k];
        vs.mut[j][k] = j < nq ? base : base + 1e-3f * u(rng);
      }
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      SCOPED_TRACE(std::string(sx__kernel_name(level)) + " dim " + std::to_string(dim));
      std::vector<float> out(nq * n);
      sx__distance_batch(SX__L2, qs.get(), nullptr, nq, vs.ptrs.data(), n, dim, out.data());
      std::vector<float> many(n);
      sx__distance_many(SX__L2, qs.get(), 0, vs.ptrs.data(), n, dim, many.data());
      for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < n; j++) {
          const float *q = qs.get() + i * dim;
          double r = sx__distance_ref(SX__L2, q, vs.ptrs[j], dim);
          float got = out[i * n + j];
          if (j == i) {
            EXPECT_EQ(0.0f, got) << "self distance, q" << i;
          } else {
            ASSERT_NEAR(r, got, 1e-4 * r + 1e-30) << "q" << i << " v" << j;
          }
          if (i == 0) {
            ASSERT_NEAR(r, many[j], 1e-4 * r + 1e-30) << "many v" << j;
            EXPECT_NEAR(r, sx__distance(SX__L2, q, 0, vs.ptrs[j], dim), 1e-4 * r + 1e-30);
          }
        }
    }
  }
}

/* Queries beyond one block of query norms (1024) and many tiles of vectors. */
TEST_F(Kernels, LargeBatch) {
  const size_t dim = 24, nq = 1100, n = 70;
  auto same = [](size_t, size_t, float x) { return x; };
  BatchData d(nq, n, dim, 5, same, same);
  const std::vector<float> &qs = d.qs;
  const VecSet &vs = d.vs;
  std::vector<float> qn(nq);
  for (size_t i = 0; i < nq; i++) qn[i] = (float)sqrt(SumSq(&qs[i * dim], dim));
  for (int level : kLevels) {
    if (!UseLevel(level)) continue;
    for (int m : kMetrics) {
      SCOPED_TRACE(std::string(sx__kernel_name(level)) + " " + MetricName(m));
      std::vector<float> out(nq * n);
      sx__distance_batch(m, qs.data(), qn.data(), nq, vs.ptrs.data(), n, dim, out.data());
      for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < n; j++) {
          const float *q = &qs[i * dim];
          double r = sx__distance_ref(m, q, vs.ptrs[j], dim);
          ASSERT_LE(fabs(out[i * n + j] - r), Tolerance(m, r, q, vs.ptrs[j], dim))
              << "q" << i << " v" << j;
        }
    }
  }
}

/* The prepared batch (sx__qbatch; at AVX2 the packed kernel) over shapes that cross
 * each of its blocks: groups of six queries, tiles of 16 vectors, blocks of 256
 * vectors and of 256 dimensions. The data has an offset (what the l2 shift is for)
 * and exact duplicates (0, through the guard); l2 is held to 1e-4 of the distance
 * itself. Every level: elsewhere the batch runs the level's kernel. */
TEST_F(Kernels, PreparedBatchShapes) {
  const size_t kQ = 13, kV = 600;
  for (size_t dim : {1, 7, 8, 9, 255, 256, 257, 520}) {
    std::mt19937 rng(7000 + (unsigned)dim);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> qs(kQ * dim);
    for (float &x : qs) x = 3.0f + u(rng);
    VecSet vs(kV, dim);
    for (size_t j = 0; j < kV; j++)
      for (size_t k = 0; k < dim; k++) vs.mut[j][k] = j < kQ ? qs[j * dim + k] : 3.0f + u(rng);
    std::vector<float> qn(kQ);
    for (size_t i = 0; i < kQ; i++) qn[i] = (float)sqrt(SumSq(&qs[i * dim], dim));
    for (int level : kLevels) {
      if (!UseLevel(level)) continue;
      for (int m : kMetrics)
        for (size_t nq : {6, 7, 13})
          for (size_t n : {1, 15, 16, 17, 256, 257, 600}) {
            SCOPED_TRACE(std::string(sx__kernel_name(level)) + " " + MetricName(m) + " dim " +
                         std::to_string(dim) + " nq " + std::to_string(nq) + " n " +
                         std::to_string(n));
            sx__qbatch *b =
                sx__qbatch_new(m, qs.data(), m == SX__COSINE ? qn.data() : nullptr, nq, dim);
            ASSERT_NE(nullptr, b);
            if (level == SX__KERNEL_AVX2) {
              EXPECT_EQ(SX__QBATCH_PACKED, sx__qbatch_kernel(b));
            }
            std::vector<float> out(nq * n + 1, -7.0f);
            sx__distance_qbatch(b, vs.ptrs.data(), n, out.data());
            EXPECT_EQ(-7.0f, out[nq * n]) << "wrote past out";
            sx__qbatch_free(b);
            for (size_t i = 0; i < nq; i++)
              for (size_t j = 0; j < n; j++) {
                const float *q = &qs[i * dim];
                double r = sx__distance_ref(m, q, vs.ptrs[j], dim);
                float got = out[i * n + j];
                if (m == SX__L2 && j == i) {
                  ASSERT_EQ(0.0f, got) << "self distance q" << i;
                } else if (m == SX__L2) {
                  ASSERT_NEAR(r, got, 1e-4 * r) << "q" << i << " v" << j;
                } else {
                  ASSERT_LE(fabs(got - r), Tolerance(m, r, q, vs.ptrs[j], dim))
                      << "q" << i << " v" << j;
                }
              }
          }
    }
  }
}

/* Data with a large common offset (100 + U[-1, 1)): unshifted, nearly every pair
 * would fail the l2 cancellation guard; shifted by the queries' mean, the batch
 * stays on the packed kernel, within 1e-4 of each distance. */
TEST_F(Kernels, PreparedBatchShiftKeepsOffsetDataPacked) {
  if (!UseLevel(SX__KERNEL_AVX2)) return;
  const size_t dim = 300, nq = 12, n = 700;
  auto offset = [](size_t, size_t, float x) { return 100.0f + x; };
  BatchData d(nq, n, dim, 78, offset, offset);
  const std::vector<float> &qs = d.qs;
  const VecSet &vs = d.vs;
  sx__qbatch *b = sx__qbatch_new(SX__L2, qs.data(), nullptr, nq, dim);
  ASSERT_NE(nullptr, b);
  std::vector<float> out(nq * n);
  sx__distance_qbatch(b, vs.ptrs.data(), n, out.data());
  EXPECT_EQ(SX__QBATCH_PACKED, sx__qbatch_kernel(b));
  sx__qbatch_free(b);
  for (size_t i = 0; i < nq; i++)
    for (size_t j = 0; j < n; j++) {
      double r = sx__distance_ref(SX__L2, &qs[i * dim], vs.ptrs[j], dim);
      ASSERT_NEAR(r, out[i * n + j], 1e-4 * r) << "q" << i << " v" << j;
    }
}

/* Half the queries near one point, the other half far away, every vector near the
 * first point: the shift (the queries' mean) lies between the two, so the near
 * pairs fail the l2 cancellation guard. The first block's pairs are computed again
 * directly; more than a quarter failed, so the batch goes on with the plain kernel.
 * Every distance stays within 1e-4 of itself. */
TEST_F(Kernels, PreparedBatchLeavesThePackedKernelOnNearDuplicates) {
  if (!UseLevel(SX__KERNEL_AVX2)) return;
  const size_t dim = 300, nq = 12, n = 700;
  BatchData d(
      nq, n, dim, 77,
      [](size_t i, size_t, float x) { return (i < nq / 2 ? 10.0f : -10.0f) + 1e-3f * x; },
      [](size_t, size_t, float x) { return 10.0f + 1e-3f * x; });
  const std::vector<float> &qs = d.qs;
  const VecSet &vs = d.vs;
  sx__qbatch *b = sx__qbatch_new(SX__L2, qs.data(), nullptr, nq, dim);
  ASSERT_NE(nullptr, b);
  EXPECT_EQ(SX__QBATCH_PACKED, sx__qbatch_kernel(b));
  std::vector<float> out(nq * n);
  sx__distance_qbatch(b, vs.ptrs.data(), n, out.data());
  EXPECT_EQ(SX__QBATCH_PLAIN, sx__qbatch_kernel(b));
  /* A second call runs the plain kernel from its start. */
  std::vector<float> again(nq * n);
  sx__distance_qbatch(b, vs.ptrs.data(), n, again.data());
  sx__qbatch_free(b);
  for (size_t i = 0; i < nq; i++)
    for (size_t j = 0; j < n; j++) {
      double r = sx__distance_ref(SX__L2, &qs[i * dim], vs.ptrs[j], dim);
      ASSERT_NEAR(r, out[i * n + j], 1e-4 * r) << "q" << i << " v" << j;
      ASSERT_NEAR(r, again[i * n + j], 1e-4 * r) << "again: q" << i << " v" << j;
    }
}

/* Bounds (sx__distance_qbatch_within): queries and 208 vectors around 0 (13 tiles),
 * 392 more vectors around 50. Each query's bound is its largest distance to the near group,
 * but query 0's is exactly its distance to vector 400 (a tie, which must not be
 * dropped). Every pair comes back either exactly as without bounds, or as +inf
 * where that distance is above the bound; at AVX2 the far tiles of the second group
 * of six queries are all dropped. Every level; elsewhere nothing is dropped. */
TEST_F(Kernels, PreparedBatchWithinBounds) {
  const size_t dim = 300, nq = 12, n = 600;
  BatchData d(
      nq, n, dim, 79, [](size_t, size_t, float x) { return x; },
      [](size_t j, size_t, float x) { return (j < 208 ? 0.0f : 50.0f) + x; });
  const std::vector<float> &qs = d.qs;
  const VecSet &vs = d.vs;
  for (int level : kLevels) {
    if (!UseLevel(level)) continue;
    SCOPED_TRACE(sx__kernel_name(level));
    for (int m : kMetrics) {
      sx__qbatch *b = sx__qbatch_new(m, qs.data(), nullptr, nq, dim);
      ASSERT_NE(nullptr, b);
      std::vector<float> all(nq * n), out(nq * n);
      sx__distance_qbatch(b, vs.ptrs.data(), n, all.data());
      std::vector<float> bound(nq, 0.0f);
      for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < 208; j++) bound[i] = std::max(bound[i], all[i * n + j]);
      bound[0] = all[0 * n + 400];
      sx__distance_qbatch_within(b, vs.ptrs.data(), n, bound.data(), out.data());
      sx__qbatch_free(b);
      size_t dropped = 0, far_second = 0;
      for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < n; j++) {
          float got = out[i * n + j], want = all[i * n + j];
          if (std::isinf(got) && !std::isinf(want)) {
            ASSERT_GT(want, bound[i]) << MetricName(m) << " q" << i << " v" << j;
            dropped++;
            if (i >= 6 && j >= 208) far_second++;
          } else {
            ASSERT_EQ(want, got) << MetricName(m) << " q" << i << " v" << j;
          }
        }
      EXPECT_EQ(all[400], out[400]) << "the tie was dropped";
      if (level == SX__KERNEL_AVX2 && m == SX__L2) {
        EXPECT_EQ(6u * 392u, far_second) << "far tiles of queries 6-11 not all dropped";
      } else {
        EXPECT_EQ(0u, dropped) << MetricName(m) << ": only l2 at AVX2 drops pairs";
      }
    }
  }
}

/* A batch too large to pack once (16,200 queries of 260 dimensions, 16.8 MB): the
 * packed kernel packs it again in chunks of queries, one block of dimensions at a
 * time, and every distance still matches the reference. */
TEST_F(Kernels, PreparedBatchBeyondThePackLimit) {
  if (!UseLevel(SX__KERNEL_AVX2)) return;
  const size_t dim = 260, nq = 16200, n = 20;
  auto same = [](size_t, size_t, float x) { return x; };
  BatchData d(nq, n, dim, 80, same, same);
  std::vector<double> qq(nq), vv(n);
  for (size_t i = 0; i < nq; i++) qq[i] = SumSq(&d.qs[i * dim], dim);
  for (size_t j = 0; j < n; j++) vv[j] = SumSq(d.vs.ptrs[j], dim);
  for (int m : kMetrics) {
    SCOPED_TRACE(MetricName(m));
    sx__qbatch *b = sx__qbatch_new(m, d.qs.data(), nullptr, nq, dim);
    ASSERT_NE(nullptr, b);
    std::vector<float> out(nq * n);
    sx__distance_qbatch(b, d.vs.ptrs.data(), n, out.data());
    EXPECT_EQ(SX__QBATCH_PACKED, sx__qbatch_kernel(b));
    sx__qbatch_free(b);
    for (size_t i = 0; i < nq; i++)
      for (size_t j = 0; j < n; j++) {
        double r = sx__distance_ref(m, &d.qs[i * dim], d.vs.ptrs[j], dim);
        /* As Tolerance(), from the norms computed once. */
        double tol = m == SX__L2   ? 1e-4 * r
                     : m == SX__IP ? 1e-4 * fabs(r) + 1e-4 * (qq[i] + vv[j]) / 2
                                   : 1e-4 * fabs(r) + 1e-4;
        ASSERT_LE(fabs(out[i * n + j] - r), tol) << "q" << i << " v" << j;
      }
  }
}

/* Cosine without query norms (NULL): the kernels compute them. */
TEST_F(Kernels, CosineBatchWithoutNorms) {
  Data d(37, 6, 0.0f);
  for (int level : kLevels) {
    if (!UseLevel(level)) continue;
    std::vector<float> out(64 * 100);
    sx__distance_batch(SX__COSINE, d.q(0), nullptr, 64, d.vs.ptrs.data(), 100, 37, out.data());
    for (size_t i = 0; i < 64; i++)
      for (size_t j = 0; j < 100; j++)
        ASSERT_NEAR(d.ref[SX__COSINE][i * 100 + j], out[i * 100 + j], 2e-4)
            << sx__kernel_name(level) << " q" << i << " v" << j;
  }
}

/* Empty inputs write nothing. */
TEST_F(Kernels, EmptyInputs) {
  float q[4] = {1, 2, 3, 4};
  const float *vecs[1] = {q};
  for (int level : kLevels) {
    if (!UseLevel(level)) continue;
    float out[2] = {-7, -7};
    sx__distance_many(SX__L2, q, 0, vecs, 0, 4, out);
    sx__distance_batch(SX__L2, q, nullptr, 0, vecs, 1, 4, out);
    sx__distance_batch(SX__L2, q, nullptr, 1, vecs, 0, 4, out);
    sx__distance_batch(SX__IP, q, nullptr, 2, vecs, 0, 4, out);
    EXPECT_EQ(-7, out[0]);
    EXPECT_EQ(-7, out[1]);
  }
}

}  // namespace

/* sx__qdot (the int8 codes' dot product) gives the exact integer at every level, for
 * every length (tails of each width) and at the extremes the callers allow
 * (dim * 255 * max |q_i| < 2^31); codes are read to dim only (each in a block of
 * exactly dim bytes, so ASan sees a read past it). */
TEST_F(Kernels, QdotExactAtEveryLevel) {
  std::mt19937 rng(42);
  for (int level = SX__KERNEL_SCALAR; level <= SX__KERNEL_AVX512; level++) {
    if (!UseLevel(level)) continue;
    sx__qdot_fn f = sx__qdot();
    for (size_t dim : {1u, 7u, 16u, 31u, 32u, 33u, 63u, 64u, 65u, 100u, 784u, 1000u, 4080u}) {
      int32_t qmax = (int32_t)std::min(32767.0, 2147483647.0 / (255.0 * dim));
      std::vector<int16_t> q((dim + 31) & ~size_t(31), 0);
      std::unique_ptr<uint8_t[]> c(new uint8_t[dim]);
      for (int round = 0; round < 3; round++) {
        int64_t want = 0;
        for (size_t i = 0; i < dim; i++) {
          q[i] = round == 0   ? (int16_t)qmax
                 : round == 1 ? (int16_t)-qmax
                              : (int16_t)((int32_t)(rng() % (2 * (uint32_t)qmax + 1)) - qmax);
          c[i] = round < 2 ? 255 : (uint8_t)(rng() & 255);
          want += (int64_t)q[i] * c[i];
        }
        EXPECT_EQ((int64_t)f(q.data(), c.get(), dim), want)
            << sx__kernel_name(level) << " dim " << dim << " round " << round;
      }
    }
  }
}

/* The batch of integer dot products (sx__qdot_batch) gives, at every level, exactly
 * the sums computed in int64: shapes across the micro-kernel's six queries and 16
 * codes, the 16-dimension pack and its tail; the extreme values (every code 255, the
 * queries at +-qmax); codes that each sit in their own exactly sized block. */
TEST_F(Kernels, QdotBatchExactAtEveryLevel) {
  std::mt19937 rng(43);
  for (int level = SX__KERNEL_SCALAR; level <= SX__KERNEL_AVX512; level++) {
    if (!UseLevel(level)) continue;
    for (size_t dim : {1u, 2u, 3u, 15u, 16u, 17u, 31u, 33u, 48u, 100u, 784u}) {
      int32_t qmax = (int32_t)std::min(32767.0, 2147483647.0 / (255.0 * dim));
      for (size_t nq : {1u, 5u, 6u, 7u, 13u}) {
        for (size_t n : {1u, 15u, 16u, 17u, 40u}) {
          for (int round = 0; round < 2; round++) {
            const size_t stride = dim + 3;  // rows apart, not packed
            std::vector<int16_t> q(nq * stride, 7);
            std::vector<std::unique_ptr<uint8_t[]>> blocks;
            std::vector<const uint8_t *> codes;
            for (size_t i = 0; i < nq; i++)
              for (size_t d = 0; d < dim; d++)
                q[i * stride + d] =
                    round == 0 ? (int16_t)(i % 2 ? -qmax : qmax)
                               : (int16_t)((int32_t)(rng() % (2 * (uint32_t)qmax + 1)) - qmax);
            for (size_t j = 0; j < n; j++) {
              blocks.emplace_back(new uint8_t[dim]);
              for (size_t d = 0; d < dim; d++)
                blocks.back()[d] = round == 0 ? 255 : (uint8_t)(rng() & 255);
              codes.push_back(blocks.back().get());
            }
            sx__qdbatch *b = sx__qdbatch_new(q.data(), stride, nq, dim);
            ASSERT_NE(b, nullptr);
            std::vector<int32_t> got(nq * n, -1);
            sx__qdot_batch(b, codes.data(), n, got.data());
            sx__qdbatch_free(b);
            for (size_t i = 0; i < nq; i++)
              for (size_t j = 0; j < n; j++) {
                int64_t want = 0;
                for (size_t d = 0; d < dim; d++) want += (int64_t)q[i * stride + d] * codes[j][d];
                ASSERT_EQ((int64_t)got[i * n + j], want)
                    << sx__kernel_name(level) << " dim " << dim << " nq " << nq << " n " << n
                    << " round " << round << " query " << i << " code " << j;
              }
          }
        }
      }
    }
  }
}
