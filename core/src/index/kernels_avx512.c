/*
 * kernels_avx512.c: the AVX-512F level of the distance kernels (see kernels.c for
 * the accuracy contract and kernels.h for what each computes): single distances and
 * norms, one query against many vectors, the register-blocked batch kernel, and the
 * raw sums HNSW uses (four vectors side by side).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "index/kernels_int.h"
#include "sextant.h"

#if SX_X86

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

AVX512 float sx__norm_avx512(const float *a, size_t dim) {
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

AVX512 float sx__dist_avx512(int metric, const float *q, float qn, const float *v, size_t dim) {
  return dist_avx512_inl(metric, q, qn, v, dim);
}

static AVX512 float l2_avx512(const float *q, const float *v, size_t dim) {
  return dist_avx512_inl(SX__L2, q, 0, v, dim);
}

AVX512 void sx__many_avx512(int metric, const float *q, float qn, const float *const *vecs,
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
 * One query against many vectors that may lie in two parts (a vector that straddles
 * two pages that are not adjacent in memory): sx__distance_many_parts. A vector's
 * floats are read from where they lie, so nothing is copied; each 16-float load at
 * position i takes its lanes from the first part, the second, or both (two masked
 * loads), and feeds the same accumulator as in pair_avx512. The sums are therefore
 * bit for bit those of the contiguous kernel (sx__distance on a copy gives the same
 * float), which the batch scan's exact re-rank relies on.
 */
AVX512_INLINE __m512 ld_parts(const float *a, const float *bb, size_t n0, size_t i, __mmask16 m) {
  if (i + 16 <= n0) return _mm512_maskz_loadu_ps(m, a + i);
  if (i >= n0) return _mm512_maskz_loadu_ps(m, bb + i);
  __mmask16 lo = (__mmask16)((1u << (n0 - i)) - 1);
  __m512 first = _mm512_maskz_loadu_ps((__mmask16)(m & lo), a + i);
  return _mm512_mask_loadu_ps(first, (__mmask16)(m & ~lo), bb + i);
}

/* pair_avx512 over a vector in parts: floats [0, n0) at a, [n0, dim) at bb + n0
 * (n0 >= dim: all at a), stopping short of the horizontal sums: *s_out (and *vv_out)
 * receive the summed accumulators, (a0 + a1) + (a2 + a3) as pair_avx512 forms them
 * before _mm512_reduce_add_ps. */
AVX512_INLINE void pair_parts_vec(int metric, const float *q, const float *a, const float *bb,
                                  size_t n0, size_t dim, __m512 *s_out, __m512 *vv_out) {
  const __mmask16 all = (__mmask16)0xFFFF;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  size_t i = 0;
  if (metric == SX__L2) {
    for (; i + 64 <= dim; i += 64) {
      __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), ld_parts(a, bb, n0, i, all));
      __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 16), ld_parts(a, bb, n0, i + 16, all));
      __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 32), ld_parts(a, bb, n0, i + 32, all));
      __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 48), ld_parts(a, bb, n0, i + 48, all));
      a0 = _mm512_fmadd_ps(d0, d0, a0);
      a1 = _mm512_fmadd_ps(d1, d1, a1);
      a2 = _mm512_fmadd_ps(d2, d2, a2);
      a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    for (; i + 16 <= dim; i += 16) {
      __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), ld_parts(a, bb, n0, i, all));
      a1 = _mm512_fmadd_ps(d0, d0, a1);
    }
    if (i < dim) {
      __mmask16 m = tail_mask(dim - i);
      __m512 d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i), ld_parts(a, bb, n0, i, m));
      a2 = _mm512_fmadd_ps(d0, d0, a2);
    }
    *s_out = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    return;
  }
  int want_vv = vv_out != NULL;
  for (; i + 64 <= dim; i += 64) {
    __m512 v0 = ld_parts(a, bb, n0, i, all), v1 = ld_parts(a, bb, n0, i + 16, all);
    __m512 v2 = ld_parts(a, bb, n0, i + 32, all), v3 = ld_parts(a, bb, n0, i + 48, all);
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
    __m512 v0 = ld_parts(a, bb, n0, i, all);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), v0, a1);
    if (want_vv) b1 = _mm512_fmadd_ps(v0, v0, b1);
  }
  if (i < dim) {
    __mmask16 m = tail_mask(dim - i);
    __m512 v0 = ld_parts(a, bb, n0, i, m);
    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), v0, a2);
    if (want_vv) b2 = _mm512_fmadd_ps(v0, v0, b2);
  }
  *s_out = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
  if (want_vv) *vv_out = _mm512_add_ps(_mm512_add_ps(b0, b1), _mm512_add_ps(b2, b3));
}

/*
 * The horizontal sums of four vectors at once, each lane exactly as
 * _mm512_reduce_add_ps sums one (GCC's order: the 256-bit halves, then the 128-bit
 * halves, then the 64-bit halves, then elements 0 and 1), so every result is bit for
 * bit the single kernel's; four chains of shuffles and adds become one.
 */
AVX512_INLINE __m128 reduce4(__m512 s0, __m512 s1, __m512 s2, __m512 s3) {
  /* 256-bit halves: [s0.lo + s0.hi, s1.lo + s1.hi] and likewise for s2, s3. */
  __m512 lo01 = _mm512_shuffle_f32x4(s0, s1, 0x44), hi01 = _mm512_shuffle_f32x4(s0, s1, 0xEE);
  __m512 lo23 = _mm512_shuffle_f32x4(s2, s3, 0x44), hi23 = _mm512_shuffle_f32x4(s2, s3, 0xEE);
  __m512 t01 = _mm512_add_ps(hi01, lo01), t23 = _mm512_add_ps(hi23, lo23);
  /* 128-bit halves: lane j of u = t_j.lo128 + t_j.hi128. */
  __m512 lo = _mm512_shuffle_f32x4(t01, t23, 0x88), hi = _mm512_shuffle_f32x4(t01, t23, 0xDD);
  __m512 u = _mm512_add_ps(hi, lo);
  /* 64-bit halves, then elements 0 and 1, within each 128-bit lane. */
  u = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4E));
  u = _mm512_add_ps(u, _mm512_permute_ps(u, 0xB1));
  /* Element 0 of each 128-bit lane. */
  __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(idx, u));
}

AVX512_INLINE const float *parts_bb(const sx__vparts *v) {
  /* bb + i is float i of the vector for i >= n0 (never dereferenced below n0). */
  return (const float *)((uintptr_t)v->b - v->n0 * sizeof(float));
}

AVX512_INLINE float finish(int metric, float s, float qn, float vv) {
  switch (metric) {
    case SX__L2:
      return s;
    case SX__IP:
      return 1.0f - s;
    case SX__COSINE:
      return cos_dist(s, qn, sqrtf(vv));
    default:
      return NAN;
  }
}

AVX512_INLINE float dist_parts_avx512_inl(int metric, const float *q, float qn, const sx__vparts *v,
                                          size_t dim) {
  if (v->n0 >= dim) return dist_avx512_inl(metric, q, qn, v->a, dim);
  __m512 s, vv = _mm512_setzero_ps();
  pair_parts_vec(metric == SX__L2 ? SX__L2 : SX__IP, q, v->a, parts_bb(v), v->n0, dim, &s,
                 metric == SX__COSINE ? &vv : NULL);
  return finish(metric, _mm512_reduce_add_ps(s), qn, _mm512_reduce_add_ps(vv));
}

/* Four vectors: their sums side by side, reduced together. */
AVX512_INLINE void dist4_parts_avx512(int metric, const float *q, float qn, const sx__vparts *v,
                                      size_t dim, float *out) {
  __m512 s[4], vv[4];
  const int pm = metric == SX__L2 ? SX__L2 : SX__IP;
  for (int j = 0; j < 4; j++) {
    vv[j] = _mm512_setzero_ps();
    const float *bb = v[j].n0 >= dim ? v[j].a : parts_bb(&v[j]);
    pair_parts_vec(pm, q, v[j].a, bb, v[j].n0 >= dim ? dim : v[j].n0, dim, &s[j],
                   metric == SX__COSINE ? &vv[j] : NULL);
  }
  float sr[4], vr[4] = {0, 0, 0, 0};
  _mm_storeu_ps(sr, reduce4(s[0], s[1], s[2], s[3]));
  if (metric == SX__COSINE) _mm_storeu_ps(vr, reduce4(vv[0], vv[1], vv[2], vv[3]));
  for (int j = 0; j < 4; j++) out[j] = finish(metric, sr[j], qn, vr[j]);
}

AVX512 void sx__many_parts_avx512(int metric, const float *q, float qn, const sx__vparts *v,
                                  size_t n, size_t dim, size_t ahead, float *out) {
  if (!metric_ok(metric)) {
    for (size_t j = 0; j < n; j++) out[j] = NAN;
    return;
  }
  const size_t vbytes = dim * sizeof(float);
#define MANY_PARTS_LOOP(M)                                                       \
  {                                                                              \
    size_t j = 0;                                                                \
    for (; j + 4 <= n; j += 4) {                                                 \
      if (ahead)                                                                 \
        for (size_t p = 0; p < 4; p++)                                           \
          prefetch_bytes((const void *)((uintptr_t)v[j + p].a + ahead), vbytes); \
      dist4_parts_avx512(M, q, qn, &v[j], dim, out + j);                         \
    }                                                                            \
    for (; j < n; j++) out[j] = dist_parts_avx512_inl(M, q, qn, &v[j], dim);     \
  }
  switch (metric) {
    case SX__L2:
      MANY_PARTS_LOOP(SX__L2) break;
    case SX__IP:
      MANY_PARTS_LOOP(SX__IP) break;
    default:
      MANY_PARTS_LOOP(SX__COSINE) break;
  }
#undef MANY_PARTS_LOOP
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
 * TK accumulate through out[] (the tile's rows of out stay in cache). Packing is a
 * small part of a 64-query call; with fewer queries it dominates, but it still beats
 * reading each vector once per query.
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

AVX512 void sx__batch_avx512(int metric, const float *qs, const float *qnorms, size_t nq,
                             const float *const *vecs, size_t n, size_t dim, float *out) {
  if (!metric_ok(metric)) {
    for (size_t i = 0; i < nq * n; i++) out[i] = NAN;
    return;
  }
  if (nq == 1) {
    float qn = metric == SX__COSINE ? (qnorms ? qnorms[0] : sx__norm_avx512(qs, dim)) : 0.0f;
    sx__many_avx512(metric, qs, qn, vecs, n, dim, out);
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
        float qn = qnorms ? qnorms[q0 + i] : sx__norm_avx512(qbase + i * dim, dim);
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

AVX512 float sx__raw_l2_avx512(const float *q, const float *v, size_t dim) {
  float s;
  pair_avx512(SX__L2, q, v, dim, &s, NULL);
  return s;
}
AVX512 float sx__raw_ip_avx512(const float *q, const float *v, size_t dim) {
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
AVX512 void sx__raw4_l2_avx512(const float *q, const sx__vparts *v, size_t n, size_t dim,
                               float *out) {
  raw4_avx512_inl(1, q, v, n, dim, out);
}
AVX512 void sx__raw4_ip_avx512(const float *q, const sx__vparts *v, size_t n, size_t dim,
                               float *out) {
  raw4_avx512_inl(0, q, v, n, dim, out);
}

/* sx__qdot at the AVX-512 level: 32 codes widened to int16 and multiplied in pairs
 * with the query into int32 lanes (vpdpwssd, no saturation: the caller's scaling keeps
 * every partial sum in range), two accumulators to cover its latency; the tail is a
 * masked load, never past the code's end (the query is padded with zeros). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) int32_t sx__qdot_vnni(
    const int16_t *q, const uint8_t *c, size_t dim) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0;
  size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    __m512i c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + i)));
    __m512i c1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + i + 32)));
    a0 = _mm512_dpwssd_epi32(a0, c0, _mm512_loadu_si512(q + i));
    a1 = _mm512_dpwssd_epi32(a1, c1, _mm512_loadu_si512(q + i + 32));
  }
  for (; i < dim; i += 32) {
    size_t rem = dim - i;
    __mmask32 m = rem >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << rem) - 1);
    __m512i c0 = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, c + i));
    a0 = _mm512_dpwssd_epi32(a0, c0, _mm512_loadu_si512(q + i));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
}

#endif /* SX_X86 */
