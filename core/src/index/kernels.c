/*
 * Distance kernels (kernels.h): the double-accumulating reference, and one set of
 * kernels per level (scalar, portable, AVX2+FMA here; AVX-512F in kernels_avx512.c),
 * with run-time dispatch.
 *
 * This file owns one piece of state, the active level: an atomic int, -1 until the
 * first call detects the CPU (racing first calls detect the same answer; one CAS
 * wins). Everything else is pure: no locks, no pointer kept, and no allocation but
 * the AVX2 batch's (it prepares its queries for the packed kernel of
 * kernels_qbatch.c, and runs the plain kernel if that memory cannot be had); the
 * AVX-512 batch kernel keeps ~27 KB of buffers on the stack.
 *
 * The x86 kernels carry __attribute__((target(...))), so the file builds without
 * -mavx flags and each function is only called when the CPU has its features.
 *
 * Accuracy contract: every level differs from sx__distance_ref by float rounding
 * only. The one place that needs care is the AVX-512 batch kernel for l2 (and the
 * AVX2 packed one, kernels_qbatch.c, which also shifts the data first), which
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
#include <string.h>

#include "index/kernels_int.h"
#include "sextant.h"

#define NLEVELS 4

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

/* The floats of a vector in parts laid end to end: in place when it is in one part,
 * else copied into scratch (dim floats). */
static inline const float *parts_joined(const sx__vparts *v, size_t dim, float *scratch) {
  if (v->n0 >= dim) return v->a;
  memcpy(scratch, v->a, v->n0 * sizeof(float));
  memcpy(scratch + v->n0, v->b, (dim - v->n0) * sizeof(float));
  return scratch;
}

/* sx__distance_many_parts at the AVX2 level: the distance inlined into the loop
 * (3-7% faster than through the kernel table on an AMD EPYC VM over Fashion-MNIST,
 * faster in 7 of 9 alternating pairs of runs). */
static AVX2 void many_parts_avx2(int metric, const float *q, float qn, const sx__vparts *v,
                                 size_t n, size_t dim, float *scratch, float *out) {
#define MANY_PARTS_AVX2_LOOP(M)                                               \
  for (size_t j = 0; j < n; j++) {                                            \
    if (j + 1 < n) __builtin_prefetch(v[j + 1].a);                            \
    out[j] = dist_avx2_inl(M, q, qn, parts_joined(&v[j], dim, scratch), dim); \
  }
  switch (metric) {
    case SX__L2:
      MANY_PARTS_AVX2_LOOP(SX__L2) break;
    case SX__IP:
      MANY_PARTS_AVX2_LOOP(SX__IP) break;
    case SX__COSINE:
      MANY_PARTS_AVX2_LOOP(SX__COSINE) break;
    default:
      for (size_t j = 0; j < n; j++) out[j] = NAN;
  }
#undef MANY_PARTS_AVX2_LOOP
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

/* The plain AVX2 batch (also what a prepared batch falls back to): out[i * ldo + j]. */
AVX2 void sx__batch_plain_avx2(int metric, const float *qs, const float *qnorms, size_t nq,
                               const float *const *vecs, size_t n, size_t dim, float *out,
                               size_t ldo) {
  if (!metric_ok(metric)) {
    for (size_t i = 0; i < nq; i++)
      for (size_t j = 0; j < n; j++) out[i * ldo + j] = NAN;
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
        float *o = out + (i + t) * ldo + j0;
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

/* The AVX2 level's batch: through a prepared batch (kernels_qbatch.c: the packed
 * kernel from SX__QBATCH_MINQ queries on), or the plain kernel when that cannot be
 * had. */
static AVX2 void batch_avx2(int metric, const float *qs, const float *qnorms, size_t nq,
                            const float *const *vecs, size_t n, size_t dim, float *out) {
  sx__qbatch *b =
      nq >= SX__QBATCH_MINQ && n > 0 ? sx__qbatch_new(metric, qs, qnorms, nq, dim) : NULL;
  if (!b) {
    sx__batch_plain_avx2(metric, qs, qnorms, nq, vecs, n, dim, out, n);
    return;
  }
  sx__distance_qbatch(b, vecs, n, out);
  sx__qbatch_free(b);
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
AVX2 float sx__raw_l2_avx2(const float *q, const float *v, size_t dim) {
  return partial_avx2(SX__L2, q, v, dim);
}
static AVX2 float raw_ip_avx2(const float *q, const float *v, size_t dim) {
  return partial_avx2(SX__IP, q, v, dim);
}
#endif
static float raw_l2_c(const float *q, const float *v, size_t dim) {
  return partial_c(SX__L2, q, v, dim);
}
static float raw_ip_c(const float *q, const float *v, size_t dim) {
  return partial_c(SX__IP, q, v, dim);
}

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
  raw4_by_parts(sx__raw_l2_avx2, q, v, n, dim, out);
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
    {"scalar", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_scalar, dist_scalar, many_scalar,
     batch_scalar},
    {"portable", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_portable, dist_portable,
     many_portable, batch_portable},
#if SX_X86
    {"avx2", sx__raw_l2_avx2, raw_ip_avx2, raw4_l2_avx2, raw4_ip_avx2, norm_avx2, dist_avx2,
     many_avx2, batch_avx2},
    {"avx512", sx__raw_l2_avx512, sx__raw_ip_avx512, sx__raw4_l2_avx512, sx__raw4_ip_avx512,
     sx__norm_avx512, sx__dist_avx512, sx__many_avx512, sx__batch_avx512},
#else
    {"avx2", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_portable, dist_portable, many_portable,
     batch_portable},
    {"avx512", raw_l2_c, raw_ip_c, raw4_l2_c, raw4_ip_c, norm_portable, dist_portable,
     many_portable, batch_portable},
#endif
};

/* ---- sx__qdot ------------------------------------------------------------------- */

static int32_t qdot_c(const int16_t *q, const uint8_t *c, size_t dim) {
  int32_t s = 0;
  for (size_t i = 0; i < dim; i++) s += (int32_t)q[i] * c[i];
  return s;
}

#if SX_X86
/* 16 codes widened to int16, multiplied in pairs with the query into int32 lanes
 * (vpmaddwd: a pair's sum fits, 2 * 255 * 32767 < 2^31); the tail in C. */
static AVX2 int32_t qdot_avx2(const int16_t *q, const uint8_t *c, size_t dim) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(c + i)));
    __m256i c1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(c + i + 16)));
    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, _mm256_loadu_si256((const __m256i *)(q + i))));
    a1 = _mm256_add_epi32(a1,
                          _mm256_madd_epi16(c1, _mm256_loadu_si256((const __m256i *)(q + i + 16))));
  }
  __m256i a = _mm256_add_epi32(a0, a1);
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
  int32_t s = _mm_cvtsi128_si32(h);
  for (; i < dim; i++) s += (int32_t)q[i] * c[i];
  return s;
}
#endif

sx__qdot_fn sx__qdot(void) {
#if SX_X86
  int l = sx__kernel_level();
  if (l == SX__KERNEL_AVX512 && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    return sx__qdot_vnni;
  if (l >= SX__KERNEL_AVX2) return qdot_avx2;
#endif
  return qdot_c;
}

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

sx__raw_fn sx__raw(int what) {
  return what == SX__L2 ? active()->raw_l2 : active()->raw_ip;
}

sx__raw4_fn sx__raw4(int what) {
  return what == SX__L2 ? active()->raw4_l2 : active()->raw4_ip;
}

int sx__raw4_preferred(void) {
#if SX_X86
  __builtin_cpu_init();
  return __builtin_cpu_is("amd") != 0;
#else
  return 0;
#endif
}

int sx__next_page_prefetch_preferred(void) {
  return sx__kernel_level() == SX__KERNEL_AVX512;
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

void sx__distance_many_parts(int metric, const float *q, float qnorm, const sx__vparts *v, size_t n,
                             size_t dim, size_t ahead, float *scratch, float *out) {
#if SX_X86
  if (sx__kernel_level() == SX__KERNEL_AVX512) {
    sx__many_parts_avx512(metric, q, qnorm, v, n, dim, ahead, out);
    return;
  }
  /* The AVX-512 kernel above prefetches ahead; the others only the next vector (on
   * an AMD EPYC VM, Zen 3 with AVX2, Fashion-MNIST's scan ran 12.0 GB/s without the
   * stretch ahead, 11.1 GB/s with it: medians of six alternating runs). */
  if (sx__kernel_level() == SX__KERNEL_AVX2) {
    many_parts_avx2(metric, q, qnorm, v, n, dim, scratch, out);
    return;
  }
#endif
  const kernel_ops *k = active();
  (void)ahead;
  for (size_t j = 0; j < n; j++) {
    if (j + 1 < n) __builtin_prefetch(v[j + 1].a);
    out[j] = k->dist(metric, q, qnorm, parts_joined(&v[j], dim, scratch), dim);
  }
}

void sx__distance_batch(int metric, const float *qs, const float *qnorms, size_t nq,
                        const float *const *vecs, size_t n, size_t dim, float *out) {
  active()->batch(metric, qs, qnorms, nq, vecs, n, dim, out);
}

void sx__batch_level(int level, int metric, const float *qs, const float *qnorms, size_t nq,
                     const float *const *vecs, size_t n, size_t dim, float *out) {
  ops[level >= 0 && level < NLEVELS ? level : SX__KERNEL_SCALAR].batch(metric, qs, qnorms, nq, vecs,
                                                                       n, dim, out);
}
