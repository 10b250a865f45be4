/*
 * Distance kernels (index.h): the double-accumulating reference, and one set of
 * kernels per level (scalar, portable, AVX2+FMA, AVX-512F), with run-time dispatch.
 *
 * This file owns one piece of state, the active level: an atomic int, -1 until the
 * first call detects the CPU (racing first calls detect the same answer; one CAS
 * wins). Everything else is pure: no allocation (the AVX-512 batch kernel keeps
 * ~27 KB of buffers on the stack), no locks, no pointer kept.
 *
 * The x86 kernels carry __attribute__((target(...))), so the file builds without
 * -mavx flags and each function is only called when the CPU has its features.
 *
 * Accuracy contract: every level differs from sx__distance_ref by float rounding
 * only. The one place that needs care is the AVX-512 batch kernel for l2, which
 * computes |q|^2 + |v|^2 - 2 q.v from a register-blocked dot product (the sgemm
 * trick, twice the speed of (q-v)^2). That formula cancels when the distance is
 * small against the norms (near duplicates, data with a large common offset): its
 * error is a few ulps of |q|^2 + |v|^2, not of d. So each result is checked: while
 * d >= (|q|^2 + |v|^2) / 8 that error is within 8x the direct formula's; below, the
 * pair is recomputed directly ((q-v)^2). Exact duplicates therefore come out as
 * exactly 0 at every level. Typical data (centred, or nearest neighbours a small
 * fraction of all pairs) rarely trips the check; data where most pairs do (all
 * components near one large offset) pays the direct cost on top.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "index/index.h"
#include "sextant.h"

#if defined(__x86_64__) || defined(__i386__)
#define SX_X86 1
#include <immintrin.h>
#else
#define SX_X86 0
#endif

#define NLEVELS 4

/* ------------------------------------------------------------------------------ */
/* Shared helpers                                                                  */
/* ------------------------------------------------------------------------------ */

static inline int metric_ok(int metric) {
  return metric == SX__L2 || metric == SX__IP || metric == SX__COSINE;
}

/* 1 - dot / (|q| |v|), 1 for a zero vector, clamped to [0, 2] (rounding can step
 * just outside; NaN passes through). */
static inline float cos_dist(float dot, float qn, float vn) {
  float den = qn * vn;
  if (den == 0.0f) return 1.0f;
  float d = 1.0f - dot / den;
  if (d < 0.0f) d = 0.0f;
  if (d > 2.0f) d = 2.0f;
  return d;
}

/* ------------------------------------------------------------------------------ */
/* Reference and scalar level: double accumulation                                 */
/* ------------------------------------------------------------------------------ */

double sx__distance_ref(int metric, const float *q, const float *v, size_t dim) {
  double s = 0, qq = 0, vv = 0;
  switch (metric) {
    case SX__L2:
      for (size_t i = 0; i < dim; i++) {
        double d = (double)q[i] - (double)v[i];
        s += d * d;
      }
      return s;
    case SX__IP:
      for (size_t i = 0; i < dim; i++) s += (double)q[i] * (double)v[i];
      return 1.0 - s;
    case SX__COSINE: {
      for (size_t i = 0; i < dim; i++) {
        s += (double)q[i] * (double)v[i];
        qq += (double)q[i] * (double)q[i];
        vv += (double)v[i] * (double)v[i];
      }
      if (qq == 0 || vv == 0) return 1.0;
      double d = 1.0 - s / (sqrt(qq) * sqrt(vv));
      return d < 0 ? 0 : d > 2 ? 2 : d;
    }
    default:
      return NAN;
  }
}

static float norm_scalar(const float *a, size_t dim) {
  double s = 0;
  for (size_t i = 0; i < dim; i++) s += (double)a[i] * (double)a[i];
  return (float)sqrt(s);
}

static float dist_scalar(int metric, const float *q, float qn, const float *v, size_t dim) {
  if (metric != SX__COSINE) return (float)sx__distance_ref(metric, q, v, dim);
  double s = 0, vv = 0;
  for (size_t i = 0; i < dim; i++) {
    s += (double)q[i] * (double)v[i];
    vv += (double)v[i] * (double)v[i];
  }
  double den = (double)qn * sqrt(vv);
  if (den == 0) return 1.0f;
  double d = 1.0 - s / den;
  return (float)(d < 0 ? 0 : d > 2 ? 2 : d);
}

static void many_scalar(int metric, const float *q, float qn, const float *const *vecs, size_t n,
                        size_t dim, float *out) {
  for (size_t j = 0; j < n; j++) out[j] = dist_scalar(metric, q, qn, vecs[j], dim);
}

static void batch_scalar(int metric, const float *qs, const float *qnorms, size_t nq,
                         const float *const *vecs, size_t n, size_t dim, float *out) {
  for (size_t i = 0; i < nq; i++) {
    const float *q = qs + i * dim;
    float qn = metric == SX__COSINE ? (qnorms ? qnorms[i] : norm_scalar(q, dim)) : 0.0f;
    many_scalar(metric, q, qn, vecs, n, dim, out + i * n);
  }
}

/* ------------------------------------------------------------------------------ */
/* Portable level: float, written for the auto-vectorizer. Sixteen independent    */
/* lanes per sum, so neither reassociation (-ffast-math) nor a wide target is       */
/* needed: at -O2 GCC turns each lane loop into SSE (or wider) vector code.        */
/* ------------------------------------------------------------------------------ */

#define PL 16

static inline float lanes_sum(float *acc) {
#pragma GCC unroll 4
  for (int w = PL / 2; w > 0; w /= 2)
#pragma GCC unroll 8
    for (int l = 0; l < w; l++) acc[l] += acc[l + w];
  return acc[0];
}

static float sumsq_portable(const float *a, size_t dim) {
  float acc[PL] = {0};
  size_t i = 0;
  for (; i + PL <= dim; i += PL)
#pragma GCC unroll 16
    for (int l = 0; l < PL; l++) acc[l] += a[i + l] * a[i + l];
  float t = 0;
  for (; i < dim; i++) t += a[i] * a[i];
  return lanes_sum(acc) + t;
}

static float norm_portable(const float *a, size_t dim) {
  return sqrtf(sumsq_portable(a, dim));
}

static float l2_portable(const float *q, const float *v, size_t dim) {
  float acc[PL] = {0};
  size_t i = 0;
  for (; i + PL <= dim; i += PL)
#pragma GCC unroll 16
    for (int l = 0; l < PL; l++) {
      float d = q[i + l] - v[i + l];
      acc[l] += d * d;
    }
  float t = 0;
  for (; i < dim; i++) {
    float d = q[i] - v[i];
    t += d * d;
  }
  return lanes_sum(acc) + t;
}

static float dot_portable(const float *q, const float *v, size_t dim) {
  float acc[PL] = {0};
  size_t i = 0;
  for (; i + PL <= dim; i += PL)
#pragma GCC unroll 16
    for (int l = 0; l < PL; l++) acc[l] += q[i + l] * v[i + l];
  float t = 0;
  for (; i < dim; i++) t += q[i] * v[i];
  return lanes_sum(acc) + t;
}

/* Cosine in one pass: q.v and v.v together, eight lanes each (sixteen would run out
 * of SSE registers and fall back to scalar code). */
static float cos_portable(const float *q, float qn, const float *v, size_t dim) {
  float acc[PL] = {0}, vacc[PL] = {0};
  size_t i = 0;
  for (; i + PL / 2 <= dim; i += PL / 2)
#pragma GCC unroll 8
    for (int l = 0; l < PL / 2; l++) {
      acc[l] += q[i + l] * v[i + l];
      vacc[l] += v[i + l] * v[i + l];
    }
  float t = 0, vt = 0;
  for (; i < dim; i++) {
    t += q[i] * v[i];
    vt += v[i] * v[i];
  }
  return cos_dist(lanes_sum(acc) + t, qn, sqrtf(lanes_sum(vacc) + vt));
}

static float dist_portable(int metric, const float *q, float qn, const float *v, size_t dim) {
  switch (metric) {
    case SX__L2:
      return l2_portable(q, v, dim);
    case SX__IP:
      return 1.0f - dot_portable(q, v, dim);
    case SX__COSINE:
      return cos_portable(q, qn, v, dim);
    default:
      return NAN;
  }
}

static void many_portable(int metric, const float *q, float qn, const float *const *vecs, size_t n,
                          size_t dim, float *out) {
  for (size_t j = 0; j < n; j++) {
    if (j + 1 < n) __builtin_prefetch(vecs[j + 1]);
    out[j] = dist_portable(metric, q, qn, vecs[j], dim);
  }
}

/* Blocks of four vectors: the block stays in L1 while every query passes over it. */
static void batch_portable(int metric, const float *qs, const float *qnorms, size_t nq,
                           const float *const *vecs, size_t n, size_t dim, float *out) {
  for (size_t j0 = 0; j0 < n; j0 += 4) {
    size_t nb = n - j0 < 4 ? n - j0 : 4;
    float vn[4] = {0};
    if (metric == SX__COSINE)
      for (size_t b = 0; b < nb; b++) vn[b] = norm_portable(vecs[j0 + b], dim);
    for (size_t i = 0; i < nq; i++) {
      const float *q = qs + i * dim;
      float *o = out + i * n + j0;
      for (size_t b = 0; b < nb; b++) {
        const float *v = vecs[j0 + b];
        switch (metric) {
          case SX__L2:
            o[b] = l2_portable(q, v, dim);
            break;
          case SX__IP:
            o[b] = 1.0f - dot_portable(q, v, dim);
            break;
          case SX__COSINE: {
            float qn = qnorms ? qnorms[i] : norm_portable(q, dim);
            o[b] = cos_dist(dot_portable(q, v, dim), qn, vn[b]);
            break;
          }
          default:
            o[b] = NAN;
        }
      }
    }
  }
}

#if SX_X86
/* ------------------------------------------------------------------------------ */
/* AVX2 + FMA level                                                                */
/* ------------------------------------------------------------------------------ */

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

AVX2_INLINE float hsum8(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* Four horizontal sums at once: {sum a, sum b, sum c, sum d}. */
AVX2_INLINE __m128 hsum8x4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 ab = _mm256_hadd_ps(a, b);
  __m256 cd = _mm256_hadd_ps(c, d);
  __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* Sums for one pair: l2 -> (q-v)^2; otherwise q.v, and v.v when want_vv. */
AVX2_INLINE void pair_avx2(int metric, const float *q, const float *v, size_t dim, float *s_out,
                           float *vv_out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  size_t i = 0;
  if (metric == SX__L2) {
    for (; i + 32 <= dim; i += 32) {
      __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i));
      __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(v + i + 8));
      __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 16), _mm256_loadu_ps(v + i + 16));
      __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 24), _mm256_loadu_ps(v + i + 24));
      a0 = _mm256_fmadd_ps(d0, d0, a0);
      a1 = _mm256_fmadd_ps(d1, d1, a1);
      a2 = _mm256_fmadd_ps(d2, d2, a2);
      a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; i + 8 <= dim; i += 8) {
      __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i));
      a0 = _mm256_fmadd_ps(d0, d0, a0);
    }
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < dim; i++) {
      float d = q[i] - v[i];
      s += d * d;
    }
    *s_out = s;
    return;
  }
  int want_vv = vv_out != NULL;
  for (; i + 32 <= dim; i += 32) {
    __m256 v0 = _mm256_loadu_ps(v + i), v1 = _mm256_loadu_ps(v + i + 8);
    __m256 v2 = _mm256_loadu_ps(v + i + 16), v3 = _mm256_loadu_ps(v + i + 24);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), v0, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), v1, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16), v2, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 24), v3, a3);
    if (want_vv) {
      b0 = _mm256_fmadd_ps(v0, v0, b0);
      b1 = _mm256_fmadd_ps(v1, v1, b1);
      b2 = _mm256_fmadd_ps(v2, v2, b2);
      b3 = _mm256_fmadd_ps(v3, v3, b3);
    }
  }
  for (; i + 8 <= dim; i += 8) {
    __m256 v0 = _mm256_loadu_ps(v + i);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), v0, a0);
    if (want_vv) b0 = _mm256_fmadd_ps(v0, v0, b0);
  }
  float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float vv = want_vv ? hsum8(_mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3))) : 0;
  for (; i < dim; i++) {
    s += q[i] * v[i];
    vv += v[i] * v[i];
  }
  *s_out = s;
  if (want_vv) *vv_out = vv;
}

static AVX2 float norm_avx2(const float *a, size_t dim) {
  float s, vv;
  pair_avx2(SX__IP, a, a, dim, &s, &vv);
  return sqrtf(s);
}

AVX2_INLINE float dist_avx2_inl(int metric, const float *q, float qn, const float *v, size_t dim) {
  float s, vv;
  switch (metric) {
    case SX__L2:
      pair_avx2(SX__L2, q, v, dim, &s, NULL);
      return s;
    case SX__IP:
      pair_avx2(SX__IP, q, v, dim, &s, NULL);
      return 1.0f - s;
    case SX__COSINE:
      pair_avx2(SX__COSINE, q, v, dim, &s, &vv);
      return cos_dist(s, qn, sqrtf(vv));
    default:
      return NAN;
  }
}

static AVX2 float dist_avx2(int metric, const float *q, float qn, const float *v, size_t dim) {
  return dist_avx2_inl(metric, q, qn, v, dim);
}

/* Prefetch distance in vectors: far enough ahead to cover memory latency when the
 * vectors are scattered (contiguous ones are caught by the hardware prefetcher). */
#define PF_AHEAD 4

static inline void prefetch_vec(const float *v, size_t dim) {
  const char *p = (const char *)v;
  for (size_t b = 0; b < dim * sizeof(float); b += 64) __builtin_prefetch(p + b);
}

static AVX2 void many_avx2(int metric, const float *q, float qn, const float *const *vecs, size_t n,
                           size_t dim, float *out) {
#define MANY_AVX2_LOOP(M)                                        \
  for (size_t j = 0; j < n; j++) {                               \
    if (j + PF_AHEAD < n) prefetch_vec(vecs[j + PF_AHEAD], dim); \
    out[j] = dist_avx2_inl(M, q, qn, vecs[j], dim);              \
  }
  switch (metric) {
    case SX__L2:
      MANY_AVX2_LOOP(SX__L2) break;
    case SX__IP:
      MANY_AVX2_LOOP(SX__IP) break;
    case SX__COSINE:
      MANY_AVX2_LOOP(SX__COSINE) break;
    default:
      for (size_t j = 0; j < n; j++) out[j] = NAN;
  }
#undef MANY_AVX2_LOOP
}

/* Two queries x four vectors: eight independent accumulators, six loads per eight
 * FMAs. l2 is computed directly ((q-v)^2); otherwise dot products. */
AVX2_INLINE void block_avx2(int l2, const float *q0, const float *q1, const float *const *v,
                            size_t dim, float r0[4], float r1[4]) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
  __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  const float *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
  size_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    __m256 x0 = _mm256_loadu_ps(q0 + i), x1 = _mm256_loadu_ps(q1 + i);
#define STEP(A0, A1, VP)                \
  do {                                  \
    __m256 y = _mm256_loadu_ps(VP + i); \
    if (l2) {                           \
      __m256 d0 = _mm256_sub_ps(x0, y); \
      __m256 d1 = _mm256_sub_ps(x1, y); \
      A0 = _mm256_fmadd_ps(d0, d0, A0); \
      A1 = _mm256_fmadd_ps(d1, d1, A1); \
    } else {                            \
      A0 = _mm256_fmadd_ps(x0, y, A0);  \
      A1 = _mm256_fmadd_ps(x1, y, A1);  \
    }                                   \
  } while (0)
    STEP(a00, a10, v0);
    STEP(a01, a11, v1);
    STEP(a02, a12, v2);
    STEP(a03, a13, v3);
#undef STEP
  }
  _mm_storeu_ps(r0, hsum8x4(a00, a01, a02, a03));
  _mm_storeu_ps(r1, hsum8x4(a10, a11, a12, a13));
  for (; i < dim; i++) {
    for (int b = 0; b < 4; b++) {
      float y = v[b][i];
      if (l2) {
        float d0 = q0[i] - y, d1 = q1[i] - y;
        r0[b] += d0 * d0;
        r1[b] += d1 * d1;
      } else {
        r0[b] += q0[i] * y;
        r1[b] += q1[i] * y;
      }
    }
  }
}

static AVX2 void batch_avx2(int metric, const float *qs, const float *qnorms, size_t nq,
                            const float *const *vecs, size_t n, size_t dim, float *out) {
  if (!metric_ok(metric)) {
    for (size_t i = 0; i < nq * n; i++) out[i] = NAN;
    return;
  }
  int l2 = metric == SX__L2;
  for (size_t j0 = 0; j0 < n; j0 += 4) {
    size_t nb = n - j0 < 4 ? n - j0 : 4;
    /* A short block repeats its last vector; the extra results are dropped. */
    const float *v[4];
    for (size_t b = 0; b < 4; b++) v[b] = vecs[j0 + (b < nb ? b : nb - 1)];
    if (j0 + 4 < n)
      for (size_t b = j0 + 4; b < n && b < j0 + 8; b++) prefetch_vec(vecs[b], dim);
    float vn[4] = {0};
    if (metric == SX__COSINE)
      for (size_t b = 0; b < nb; b++) vn[b] = norm_avx2(v[b], dim);
    for (size_t i = 0; i < nq; i += 2) {
      size_t i1 = i + 1 < nq ? i + 1 : i;
      float r0[4], r1[4];
      block_avx2(l2, qs + i * dim, qs + i1 * dim, v, dim, r0, r1);
      for (size_t t = 0; t < 2 && i + t < nq; t++) {
        const float *r = t ? r1 : r0;
        float *o = out + (i + t) * n + j0;
        float qn = 0;
        if (metric == SX__COSINE) qn = qnorms ? qnorms[i + t] : norm_avx2(qs + (i + t) * dim, dim);
        for (size_t b = 0; b < nb; b++)
          o[b] = metric == SX__L2   ? r[b]
                 : metric == SX__IP ? 1.0f - r[b]
                                    : cos_dist(r[b], qn, vn[b]);
      }
    }
  }
}

/* ------------------------------------------------------------------------------ */
/* AVX-512F level                                                                  */
/* ------------------------------------------------------------------------------ */

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

AVX512_INLINE __mmask16 tail_mask(size_t rem) {
  return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
}

/* Sums for one pair: l2 -> (q-v)^2; otherwise q.v, and v.v when vv_out != NULL.
 * Four accumulators (64 floats a step) hide the FMA latency; the tail is a masked
 * load, which never touches memory past the end. */
AVX512_INLINE void pair_avx512(int metric, const float *q, const float *v, size_t dim, float *s_out,
                               float *vv_out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  size_t i = 0;
  if (metric == SX__L2) {
    for (; i + 64 <= dim; i += 64) {
      __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(v + i));
      __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(v + i + 16));
      __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 32), _mm512_loadu_ps(v + i + 32));
      __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 48), _mm512_loadu_ps(v + i + 48));
      a0 = _mm512_fmadd_ps(d0, d0, a0);
      a1 = _mm512_fmadd_ps(d1, d1, a1);
      a2 = _mm512_fmadd_ps(d2, d2, a2);
      a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    for (; i + 16 <= dim; i += 16) {
      __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(v + i));
      a1 = _mm512_fmadd_ps(d0, d0, a1);
    }
    if (i < dim) {
      __mmask16 m = tail_mask(dim - i);
      __m512 d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, v + i));
      a2 = _mm512_fmadd_ps(d0, d0, a2);
    }
    *s_out = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    return;
  }
  int want_vv = vv_out != NULL;
  for (; i + 64 <= dim; i += 64) {
    __m512 v0 = _mm512_loadu_ps(v + i), v1 = _mm512_loadu_ps(v + i + 16);
    __m512 v2 = _mm512_loadu_ps(v + i + 32), v3 = _mm512_loadu_ps(v + i + 48);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), v0, a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), v1, a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 32), v2, a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 48), v3, a3);
    if (want_vv) {
      b0 = _mm512_fmadd_ps(v0, v0, b0);
      b1 = _mm512_fmadd_ps(v1, v1, b1);
      b2 = _mm512_fmadd_ps(v2, v2, b2);
      b3 = _mm512_fmadd_ps(v3, v3, b3);
    }
  }
  for (; i + 16 <= dim; i += 16) {
    __m512 v0 = _mm512_loadu_ps(v + i);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), v0, a1);
    if (want_vv) b1 = _mm512_fmadd_ps(v0, v0, b1);
  }
  if (i < dim) {
    __mmask16 m = tail_mask(dim - i);
    __m512 v0 = _mm512_maskz_loadu_ps(m, v + i);
    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), v0, a2);
    if (want_vv) b2 = _mm512_fmadd_ps(v0, v0, b2);
  }
  *s_out = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  if (want_vv)
    *vv_out = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(b0, b1), _mm512_add_ps(b2, b3)));
}

static AVX512 float sumsq_avx512(const float *a, size_t dim) {
  float s;
  pair_avx512(SX__IP, a, a, dim, &s, NULL);
  return s;
}

static AVX512 float norm_avx512(const float *a, size_t dim) {
  return sqrtf(sumsq_avx512(a, dim));
}

AVX512_INLINE float dist_avx512_inl(int metric, const float *q, float qn, const float *v,
                                    size_t dim) {
  float s, vv;
  switch (metric) {
    case SX__L2:
      pair_avx512(SX__L2, q, v, dim, &s, NULL);
      return s;
    case SX__IP:
      pair_avx512(SX__IP, q, v, dim, &s, NULL);
      return 1.0f - s;
    case SX__COSINE:
      pair_avx512(SX__COSINE, q, v, dim, &s, &vv);
      return cos_dist(s, qn, sqrtf(vv));
    default:
      return NAN;
  }
}

static AVX512 float dist_avx512(int metric, const float *q, float qn, const float *v, size_t dim) {
  return dist_avx512_inl(metric, q, qn, v, dim);
}

static AVX512 float l2_avx512(const float *q, const float *v, size_t dim) {
  return dist_avx512_inl(SX__L2, q, 0, v, dim);
}

static AVX512 void many_avx512(int metric, const float *q, float qn, const float *const *vecs,
                               size_t n, size_t dim, float *out) {
#define MANY_AVX512_LOOP(M)                                      \
  for (size_t j = 0; j < n; j++) {                               \
    if (j + PF_AHEAD < n) prefetch_vec(vecs[j + PF_AHEAD], dim); \
    out[j] = dist_avx512_inl(M, q, qn, vecs[j], dim);            \
  }
  switch (metric) {
    case SX__L2:
      MANY_AVX512_LOOP(SX__L2) break;
    case SX__IP:
      MANY_AVX512_LOOP(SX__IP) break;
    case SX__COSINE:
      MANY_AVX512_LOOP(SX__COSINE) break;
    default:
      for (size_t j = 0; j < n; j++) out[j] = NAN;
  }
#undef MANY_AVX512_LOOP
}

/*
 * The batch kernel, laid out like an sgemm. A tile of TW = 32 vectors is packed
 * transposed into vt[k][32] (one 16x16 transpose per 16 vectors x 16 dimensions),
 * TK = 128 dimensions at a time, so that a register holds dimension k of 16
 * different vectors. The micro-kernel then keeps TR x 2 accumulators (TR = 12
 * queries x 32 vectors = 24 zmm) and, per dimension, loads two rows of vt and
 * broadcasts one float of each query: 24 FMAs per 14 loads, no horizontal sums, and
 * each accumulator is already a run of out[] (query-major, vector-contiguous), so
 * the distances are finished in registers and stored once. Every vector is read
 * from memory once per call (for up to QCH queries) while packing; the next tile is
 * prefetched meanwhile; queries and the packed tile stay in L1/L2. Dimensions beyond
 * TK accumulate through out[] (the tile's rows of out stay in cache). Packing costs
 * ~10% at 64 queries; below that the pack dominates, but it still beats reading
 * each vector once per query.
 */
#define TW 32    /* vectors per tile: two zmm of lanes */
#define TR 12    /* queries per micro-kernel call */
#define TK 128   /* dimensions per packed block (vt is TK x TW floats = 16 KB) */
#define QCH 1024 /* queries whose norms are kept at once (4 KB) */

/* In-register transpose of 16 rows of 16 floats. */
AVX512_INLINE void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  /* r[4i+e], 128-bit lane L, holds rows 4i..4i+3 of column 4L+e. */
#pragma GCC unroll 4
  for (int e = 0; e < 4; e++) {
    __m512 a = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88);
    __m512 b = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xDD);
    __m512 c = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88);
    __m512 d = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xDD);
    t[e] = _mm512_shuffle_f32x4(a, c, 0x88);
    t[8 + e] = _mm512_shuffle_f32x4(a, c, 0xDD);
    t[4 + e] = _mm512_shuffle_f32x4(b, d, 0x88);
    t[12 + e] = _mm512_shuffle_f32x4(b, d, 0xDD);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* Packs dimensions [k0, k0 + kc) of nv <= TW vectors into vt (rows rounded up to a
 * multiple of 16, missing vectors and dimensions as zeros) and adds their squares to
 * vsq[0..1] when want_sq. */
static AVX512 void pack_tile(const float *const *v, size_t nv, size_t k0, size_t kc, float *vt,
                             int want_sq, __m512 vsq[2]) {
  for (size_t g = 0; g < 2; g++) {
    size_t base = 16 * g;
    if (base >= nv) {
      for (size_t k = 0; k < kc; k += 16)
        for (size_t u = 0; u < 16; u++)
          _mm512_store_ps(vt + (k + u) * TW + base, _mm512_setzero_ps());
      continue;
    }
    size_t rows = nv - base < 16 ? nv - base : 16;
    __m512 sq[4] = {vsq[g], _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t k = 0; k < kc; k += 16) {
      __mmask16 m = tail_mask(kc - k);
      __m512 r[16];
#pragma GCC unroll 16
      for (size_t t = 0; t < 16; t++)
        r[t] = t < rows ? _mm512_maskz_loadu_ps(m, v[base + t] + k0 + k) : _mm512_setzero_ps();
      transpose16(r);
#pragma GCC unroll 16
      for (size_t u = 0; u < 16; u++) {
        _mm512_store_ps(vt + (k + u) * TW + base, r[u]);
        if (want_sq) sq[u % 4] = _mm512_fmadd_ps(r[u], r[u], sq[u % 4]);
      }
    }
    vsq[g] = _mm512_add_ps(_mm512_add_ps(sq[0], sq[1]), _mm512_add_ps(sq[2], sq[3]));
  }
}

/* One micro-kernel call: R queries x the packed tile. */
typedef struct {
  __m512 vx[2];    /* per vector lane: |v|^2 (l2) or 1/|v| (cosine, 0 for |v| = 0) */
  const float *vt; /* packed tile, kc rows of TW */
  size_t kc;
  const float *qb; /* first query row, offset to this dimension block */
  size_t ldq;
  float *ob; /* out row of the first query, at the tile's first vector */
  size_t ldo;
  __mmask16 m0, m1;      /* valid vector lanes */
  int first;             /* start from zero (else add to what out holds) */
  int metric;            /* -1: store raw sums (dimension blocks follow); else finish */
  const float *qx;       /* per query: |q|^2 (l2) or 1/|q| (cosine, 0 for |q| = 0) */
  uint32_t *redo;        /* l2: per query, lanes (bit 16 g + b) to recompute directly */
  const char *const *pf; /* lines of the next tile to prefetch meanwhile */
  size_t npf;
} mk_args;

/* Dot products (or, when direct, sums of (v-q)^2) of R queries with the packed tile
 * over kc dimensions, kept in 2R registers; then either stored raw or turned into
 * distances in registers and stored. Prefetches (into L2) spread over the k loop,
 * one per step, so the misses never queue up behind each other and stall the FMAs. */
AVX512_INLINE void micro(const int R, const int direct, const mk_args *a) {
  __m512 acc[TR][2];
  const float *vt = a->vt;
  size_t kc = a->kc, ldo = a->ldo, npf = a->npf;
  float *ob = a->ob;
  __mmask16 m0 = a->m0, m1 = a->m1;
  const char *const *pf = a->pf;
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) {
    if (a->first) {
      acc[i][0] = _mm512_setzero_ps();
      acc[i][1] = _mm512_setzero_ps();
    } else {
      acc[i][0] = _mm512_maskz_loadu_ps(m0, ob + i * ldo);
      acc[i][1] = _mm512_maskz_loadu_ps(m1, ob + i * ldo + 16);
    }
  }
  const float *q[TR];
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) q[i] = a->qb + i * a->ldq;
  for (size_t k = 0; k < kc; k++) {
    if (k < npf) __builtin_prefetch(pf[k], 0, 2);
    __m512 v0 = _mm512_load_ps(vt + k * TW);
    __m512 v1 = _mm512_load_ps(vt + k * TW + 16);
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) {
      __m512 b = _mm512_set1_ps(q[i][k]);
      if (direct) {
        __m512 d0 = _mm512_sub_ps(v0, b), d1 = _mm512_sub_ps(v1, b);
        acc[i][0] = _mm512_fmadd_ps(d0, d0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(d1, d1, acc[i][1]);
      } else {
        acc[i][0] = _mm512_fmadd_ps(b, v0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(b, v1, acc[i][1]);
      }
    }
  }
  for (size_t k = kc; k < npf; k++) __builtin_prefetch(pf[k], 0, 2);
  __m512 one = _mm512_set1_ps(1.0f);
  switch (a->metric) {
    case SX__L2: {
      if (direct) {
        for (int i = 0; i < R; i++) a->redo[i] = 0;
        break;
      }
      /* d = |q|^2 + |v|^2 - 2 q.v, with the cancellation guard (top of file). */
      __m512 eighth = _mm512_set1_ps(0.125f), m2 = _mm512_set1_ps(-2.0f);
#pragma GCC unroll 12
      for (int i = 0; i < R; i++) {
        __m512 qq = _mm512_set1_ps(a->qx[i]);
        __m512 s0 = _mm512_add_ps(qq, a->vx[0]), s1 = _mm512_add_ps(qq, a->vx[1]);
        acc[i][0] = _mm512_fmadd_ps(m2, acc[i][0], s0);
        acc[i][1] = _mm512_fmadd_ps(m2, acc[i][1], s1);
        __mmask16 r0 =
            _mm512_mask_cmp_ps_mask(m0, acc[i][0], _mm512_mul_ps(s0, eighth), _CMP_LT_OQ);
        __mmask16 r1 =
            _mm512_mask_cmp_ps_mask(m1, acc[i][1], _mm512_mul_ps(s1, eighth), _CMP_LT_OQ);
        a->redo[i] = (uint32_t)r0 | (uint32_t)r1 << 16;
      }
      break;
    }
    case SX__IP:
#pragma GCC unroll 12
      for (int i = 0; i < R; i++) {
        acc[i][0] = _mm512_sub_ps(one, acc[i][0]);
        acc[i][1] = _mm512_sub_ps(one, acc[i][1]);
      }
      break;
    case SX__COSINE: {
      __m512 zero = _mm512_setzero_ps(), two = _mm512_set1_ps(2.0f);
#pragma GCC unroll 12
      for (int i = 0; i < R; i++) {
        __m512 qi = _mm512_set1_ps(a->qx[i]);
        __m512 r0 = _mm512_fnmadd_ps(acc[i][0], _mm512_mul_ps(qi, a->vx[0]), one);
        __m512 r1 = _mm512_fnmadd_ps(acc[i][1], _mm512_mul_ps(qi, a->vx[1]), one);
        acc[i][0] = _mm512_min_ps(_mm512_max_ps(r0, zero), two);
        acc[i][1] = _mm512_min_ps(_mm512_max_ps(r1, zero), two);
      }
      break;
    }
    default:
      break;
  }
#pragma GCC unroll 12
  for (int i = 0; i < R; i++) {
    _mm512_mask_storeu_ps(ob + i * ldo, m0, acc[i][0]);
    _mm512_mask_storeu_ps(ob + i * ldo + 16, m1, acc[i][1]);
  }
}

/* One function per query count (the register layout is fixed at compile time),
 * for each of the two accumulation forms. */
// clang-format off
#define MICRO(R)                                                        \
  static AVX512 void micro_##R(const mk_args *a) { micro(R, 0, a); }    \
  static AVX512 void micro_l2_##R(const mk_args *a) { micro(R, 1, a); }
MICRO(1) MICRO(2) MICRO(3) MICRO(4) MICRO(5) MICRO(6)
MICRO(7) MICRO(8) MICRO(9) MICRO(10) MICRO(11) MICRO(12)
#undef MICRO

/* [direct][R] */
static void (*const micro_table[2][TR + 1])(const mk_args *) = {
    {NULL, micro_1, micro_2, micro_3, micro_4, micro_5, micro_6, micro_7, micro_8, micro_9,
     micro_10, micro_11, micro_12},
    {NULL, micro_l2_1, micro_l2_2, micro_l2_3, micro_l2_4, micro_l2_5, micro_l2_6, micro_l2_7,
     micro_l2_8, micro_l2_9, micro_l2_10, micro_l2_11, micro_l2_12}};
// clang-format on

/* The cache lines holding dimensions [k0, k0 + kc) of nv vectors, into pf (room for
 * TW * (TK / 16 + 1)); returns their number. */
static size_t lines_of(const float *const *v, size_t nv, size_t k0, size_t kc, const char **pf) {
  size_t c = 0;
  if (kc == 0) return 0;
  for (size_t t = 0; t < nv; t++) {
    uintptr_t p = (uintptr_t)(v[t] + k0) & ~(uintptr_t)63;
    uintptr_t e = (uintptr_t)(v[t] + k0 + kc - 1);
    for (; p <= e; p += 64) pf[c++] = (const char *)p;
  }
  return c;
}

static AVX512 void batch_avx512(int metric, const float *qs, const float *qnorms, size_t nq,
                                const float *const *vecs, size_t n, size_t dim, float *out) {
  if (!metric_ok(metric)) {
    for (size_t i = 0; i < nq * n; i++) out[i] = NAN;
    return;
  }
  if (nq == 1) {
    float qn = metric == SX__COSINE ? (qnorms ? qnorms[0] : norm_avx512(qs, dim)) : 0.0f;
    many_avx512(metric, qs, qn, vecs, n, dim, out);
    return;
  }
  if (n == 0 || nq == 0) return;
  float vt[TK * TW] __attribute__((aligned(64)));
  float qx[QCH];
  uint32_t redo[QCH];
  const char *pf[TW * (TK / 16 + 1)];
  mk_args a;
  a.vt = vt;
  a.ldq = dim;
  a.ldo = n;
  a.redo = redo;
  a.pf = pf;
  /* l2 switches to the direct micro-kernel, for the rest of the call, once a tile
   * sends more than a quarter of its pairs to the cancellation guard: then the
   * dot-product form costs more than it saves. */
  int direct = 0;
  for (size_t q0 = 0; q0 < nq; q0 += QCH) {
    size_t qc = nq - q0 < QCH ? nq - q0 : QCH;
    const float *qbase = qs + q0 * dim;
    for (size_t i = 0; i < qc; i++) {
      if (metric == SX__L2) {
        qx[i] = sumsq_avx512(qbase + i * dim, dim);
      } else if (metric == SX__COSINE) {
        float qn = qnorms ? qnorms[q0 + i] : norm_avx512(qbase + i * dim, dim);
        qx[i] = qn != 0.0f ? 1.0f / qn : 0.0f;
      }
    }
    for (size_t j0 = 0; j0 < n; j0 += TW) {
      size_t nv = n - j0 < TW ? n - j0 : TW;
      size_t nnext = n - j0 - nv < TW ? n - j0 - nv : TW;
      __m512 vsq[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
      int want_sq = metric == SX__COSINE || (metric == SX__L2 && !direct);
      a.m0 = tail_mask(nv);
      a.m1 = nv > 16 ? tail_mask(nv - 16) : 0;
      float *otile = out + q0 * n + j0;
      for (size_t k0 = 0;; k0 += TK) {
        size_t kc = dim - k0 < TK ? dim - k0 : TK;
        int last = k0 + TK >= dim;
        pack_tile(vecs + j0, nv, k0, kc, vt, want_sq, vsq);
        if (last) {
          if (metric == SX__L2) {
            a.vx[0] = vsq[0];
            a.vx[1] = vsq[1];
          } else if (metric == SX__COSINE) {
            for (int g = 0; g < 2; g++) {
              __mmask16 nz = _mm512_cmp_ps_mask(vsq[g], _mm512_setzero_ps(), _CMP_NEQ_UQ);
              a.vx[g] = _mm512_maskz_div_ps(nz, _mm512_set1_ps(1.0f), _mm512_sqrt_ps(vsq[g]));
            }
          }
        }
        /* While this block computes, the same span of the next tile comes in. */
        size_t npf = lines_of(vecs + j0 + nv, nnext, k0, kc, pf);
        size_t ncalls = (qc + TR - 1) / TR, per = (npf + ncalls - 1) / ncalls, at = 0;
        a.kc = kc;
        a.first = k0 == 0;
        a.metric = last ? metric : -1;
        for (size_t i0 = 0; i0 < qc; i0 += TR) {
          size_t r = qc - i0 < TR ? qc - i0 : TR;
          a.qb = qbase + i0 * dim + k0;
          a.ob = otile + i0 * n;
          a.qx = qx + i0;
          a.redo = redo + i0;
          a.pf = pf + at;
          a.npf = npf - at < per ? npf - at : per;
          at += a.npf;
          micro_table[direct][r](&a);
        }
        if (last) break;
      }
      if (metric == SX__L2 && !direct) {
        size_t count = 0;
        for (size_t i = 0; i < qc; i++)
          for (uint32_t m = redo[i]; m; m &= m - 1) {
            size_t j = (size_t)__builtin_ctz(m);
            otile[i * n + j] = l2_avx512(qbase + i * dim, vecs[j0 + j], dim);
            count++;
          }
        if (count * 4 > qc * nv) direct = 1;
      }
    }
  }
}
#endif /* SX_X86 */

/* ------------------------------------------------------------------------------ */
/* Dispatch                                                                        */
/* ------------------------------------------------------------------------------ */

static float partial_c(int what, const float *q, const float *v, size_t dim) {
  float acc[16] = {0};
  size_t i = 0;
  for (; i + 16 <= dim; i += 16)
    for (int j = 0; j < 16; j++) {
      float t = what == SX__L2 ? q[i + j] - v[i + j] : q[i + j];
      acc[j] += t * (what == SX__L2 ? t : v[i + j]);
    }
  float s = 0;
  for (; i < dim; i++) {
    float t = what == SX__L2 ? q[i] - v[i] : q[i];
    s += t * (what == SX__L2 ? t : v[i]);
  }
  for (int j = 0; j < 16; j++) s += acc[j];
  return s;
}

#if SX_X86
static AVX2 float partial_avx2(int what, const float *q, const float *v, size_t dim) {
  float s;
  pair_avx2(what == SX__L2 ? SX__L2 : SX__IP, q, v, dim, &s, NULL);
  return s;
}
static AVX512 float raw_l2_avx512(const float *q, const float *v, size_t dim) {
  float s;
  pair_avx512(SX__L2, q, v, dim, &s, NULL);
  return s;
}
static AVX512 float raw_ip_avx512(const float *q, const float *v, size_t dim) {
  float s;
  pair_avx512(SX__IP, q, v, dim, &s, NULL);
  return s;
}
/* One 16-float step of a vector in parts: floats [i, i + 16) (lanes in m), from a
 * while below n0, from b beyond it, and from both when the step spans the cut (the
 * masked-off lanes of each load are not read, so neither part is read past its end). */
AVX512_INLINE __m512 part16(const sx__vparts *v, size_t i, __mmask16 m) {
  if (i + 16 <= v->n0) return _mm512_maskz_loadu_ps(m, v->a + i);
  if (i >= v->n0) return _mm512_maskz_loadu_ps(m, v->b + (i - v->n0));
  size_t k = v->n0 - i; /* 1..15 floats still in a */
  __mmask16 lo = (__mmask16)((1u << k) - 1);
  __m512 x = _mm512_maskz_loadu_ps((__mmask16)(m & lo), v->a + i);
  const float *bk = (const float *)((uintptr_t)v->b - k * sizeof(float));
  return _mm512_mask_loadu_ps(x, (__mmask16)(m & ~lo), bk);
}

/* Raw sums of q against up to four vectors in parts, read side by side so that
 * their cache misses overlap. One accumulator per lane: the loads, not the FMAs,
 * set the pace. Missing lanes repeat lane 0 and are not stored. */
AVX512_INLINE void raw4_avx512_inl(int l2, const float *q, const sx__vparts *v, size_t n,
                                   size_t dim, float *out) {
  const sx__vparts *w[4] = {&v[0], &v[n > 1], &v[n > 2 ? 2 : 0], &v[n > 3 ? 3 : 0]};
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < dim; i += 16) {
    __mmask16 m = tail_mask(dim - i);
    __m512 x = _mm512_maskz_loadu_ps(m, q + i);
    __m512 v0 = part16(w[0], i, m), v1 = part16(w[1], i, m);
    __m512 v2 = part16(w[2], i, m), v3 = part16(w[3], i, m);
    if (l2) {
      v0 = _mm512_sub_ps(x, v0), v1 = _mm512_sub_ps(x, v1);
      v2 = _mm512_sub_ps(x, v2), v3 = _mm512_sub_ps(x, v3);
      a0 = _mm512_fmadd_ps(v0, v0, a0), a1 = _mm512_fmadd_ps(v1, v1, a1);
      a2 = _mm512_fmadd_ps(v2, v2, a2), a3 = _mm512_fmadd_ps(v3, v3, a3);
    } else {
      a0 = _mm512_fmadd_ps(x, v0, a0), a1 = _mm512_fmadd_ps(x, v1, a1);
      a2 = _mm512_fmadd_ps(x, v2, a2), a3 = _mm512_fmadd_ps(x, v3, a3);
    }
  }
  float s[4] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2),
                _mm512_reduce_add_ps(a3)};
  for (size_t j = 0; j < n; j++) out[j] = s[j];
}
static AVX512 void raw4_l2_avx512(const float *q, const sx__vparts *v, size_t n, size_t dim,
                                  float *out) {
  raw4_avx512_inl(1, q, v, n, dim, out);
}
static AVX512 void raw4_ip_avx512(const float *q, const sx__vparts *v, size_t n, size_t dim,
                                  float *out) {
  raw4_avx512_inl(0, q, v, n, dim, out);
}
static AVX2 float raw_l2_avx2(const float *q, const float *v, size_t dim) {
  return partial_avx2(SX__L2, q, v, dim);
}
static AVX2 float raw_ip_avx2(const float *q, const float *v, size_t dim) {
  return partial_avx2(SX__IP, q, v, dim);
}
#endif
static float raw_l2_c(const float *q, const float *v, size_t dim) { return partial_c(SX__L2, q, v, dim); }
static float raw_ip_c(const float *q, const float *v, size_t dim) { return partial_c(SX__IP, q, v, dim); }

/* Vectors in parts, one at a time, with a level's raw sums (the levels without a
 * side-by-side kernel). */
static inline void raw4_by_parts(sx__raw_fn raw, const float *q, const sx__vparts *v, size_t n,
                                 size_t dim, float *out) {
  for (size_t j = 0; j < n; j++) {
    size_t n0 = v[j].n0 < dim ? v[j].n0 : dim;
    out[j] = raw(q, v[j].a, n0) + (n0 < dim ? raw(q + n0, v[j].b, dim - n0) : 0.0f);
  }
}
static void raw4_l2_c(const float *q, const sx__vparts *v, size_t n, size_t dim, float *out) {
  raw4_by_parts(raw_l2_c, q, v, n, dim, out);
}
static void raw4_ip_c(const float *q, const sx__vparts *v, size_t n, size_t dim, float *out) {
  raw4_by_parts(raw_ip_c, q, v, n, dim, out);
}
#if SX_X86
static void raw4_l2_avx2(const float *q, const sx__vparts *v, size_t n, size_t dim, float *out) {
  raw4_by_parts(raw_l2_avx2, q, v, n, dim, out);
}
static void raw4_ip_avx2(const float *q, const sx__vparts *v, size_t n, size_t dim, float *out) {
  raw4_by_parts(raw_ip_avx2, q, v, n, dim, out);
}
#endif

typedef struct {
  const char *name;
  sx__raw_fn raw_l2, raw_ip;
  sx__raw4_fn raw4_l2, raw4_ip;
  float (*norm)(const float *, size_t);
  float (*dist)(int, const float *, float, const float *, size_t);
  void (*many)(int, const float *, float, const float *const *, size_t, size_t, float *);
  void (*batch)(int, const float *, const float *, size_t, const float *const *, size_t, size_t,
                float *);
} kernel_ops;

static const kernel_ops ops[NLEVELS] = {
    {"scalar", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_scalar, dist_scalar, many_scalar, batch_scalar},
    {"portable", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_portable, dist_portable, many_portable, batch_portable},
#if SX_X86
    {"avx2", raw_l2_avx2, raw_ip_avx2, raw4_l2_avx2, raw4_ip_avx2, norm_avx2, dist_avx2, many_avx2, batch_avx2},
    {"avx512", raw_l2_avx512, raw_ip_avx512, raw4_l2_avx512, raw4_ip_avx512, norm_avx512, dist_avx512, many_avx512, batch_avx512},
#else
    {"avx2", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_portable, dist_portable, many_portable, batch_portable},
    {"avx512", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_portable, dist_portable, many_portable, batch_portable},
#endif
};

/* -1 until the first use picks the best level. */
static atomic_int active_level = -1;

int sx__kernel_supported(int level) {
  switch (level) {
    case SX__KERNEL_SCALAR:
    case SX__KERNEL_PORTABLE:
      return 1;
#if SX_X86
    case SX__KERNEL_AVX2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SX__KERNEL_AVX512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") != 0;
#endif
    default:
      return 0;
  }
}

static int best_level(void) {
  for (int l = NLEVELS - 1; l > 0; l--)
    if (sx__kernel_supported(l)) return l;
  return SX__KERNEL_SCALAR;
}

int sx__kernel_level(void) {
  int l = atomic_load_explicit(&active_level, memory_order_relaxed);
  if (l >= 0) return l;
  int expect = -1;
  int best = best_level();
  if (atomic_compare_exchange_strong(&active_level, &expect, best)) return best;
  return expect;
}

const char *sx__kernel_name(int level) {
  return level >= 0 && level < NLEVELS ? ops[level].name : "unknown";
}

int sx__kernel_force(int level) {
  if (!sx__kernel_supported(level)) return SX_INVALID_ARGUMENT;
  atomic_store(&active_level, level);
  return SX_OK;
}

static const kernel_ops *active(void) {
  return &ops[sx__kernel_level()];
}

sx__raw_fn sx__raw(int what) { return what == SX__L2 ? active()->raw_l2 : active()->raw_ip; }

sx__raw4_fn sx__raw4(int what) {
  return what == SX__L2 ? active()->raw4_l2 : active()->raw4_ip;
}

float sx__norm(const float *a, size_t dim) {
  return active()->norm(a, dim);
}


float sx__distance(int metric, const float *q, float qnorm, const float *v, size_t dim) {
  return active()->dist(metric, q, qnorm, v, dim);
}

void sx__distance_many(int metric, const float *q, float qnorm, const float *const *vecs, size_t n,
                       size_t dim, float *out) {
  active()->many(metric, q, qnorm, vecs, n, dim, out);
}

void sx__distance_batch(int metric, const float *qs, const float *qnorms, size_t nq,
                        const float *const *vecs, size_t n, size_t dim, float *out) {
  active()->batch(metric, qs, qnorms, nq, vecs, n, dim, out);
}
