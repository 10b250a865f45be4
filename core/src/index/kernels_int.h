/*
 * kernels_int.h: what kernels.c (dispatch, scalar, portable and AVX2 levels),
 * kernels_avx512.c (the AVX-512F level) and kernels_qbatch.c (prepared batches, the
 * AVX2 packed batch kernel) share.
 */
#ifndef SX_KERNELS_INT_H
#define SX_KERNELS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "index/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#define SX_X86 1
#include <immintrin.h>
#else
#define SX_X86 0
#endif

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

/* Prefetch distance in vectors: far enough ahead to cover memory latency when the
 * vectors are scattered (contiguous ones are caught by the hardware prefetcher). */
#define PF_AHEAD 4

static inline void prefetch_bytes(const void *p, size_t len) {
  for (size_t b = 0; b < len; b += 64) __builtin_prefetch((const char *)p + b);
}

static inline void prefetch_vec(const float *v, size_t dim) {
  prefetch_bytes(v, dim * sizeof(float));
}

#if SX_X86
/* The AVX-512F level (kernels_avx512.c); callers check the CPU first. */
float sx__norm_avx512(const float *a, size_t dim);
float sx__dist_avx512(int metric, const float *q, float qn, const float *v, size_t dim);
void sx__many_avx512(int metric, const float *q, float qn, const float *const *vecs, size_t n,
                     size_t dim, float *out);
void sx__many_parts_avx512(int metric, const float *q, float qn, const sx__vparts *v, size_t n,
                           size_t dim, size_t ahead, float *out);
void sx__batch_avx512(int metric, const float *qs, const float *qnorms, size_t nq,
                      const float *const *vecs, size_t n, size_t dim, float *out);
float sx__raw_l2_avx512(const float *q, const float *v, size_t dim);
float sx__raw_ip_avx512(const float *q, const float *v, size_t dim);
void sx__raw4_l2_avx512(const float *q, const sx__vparts *v, size_t n, size_t dim, float *out);
void sx__raw4_ip_avx512(const float *q, const sx__vparts *v, size_t n, size_t dim, float *out);
/* kernels.c's AVX2 level, for kernels_qbatch.c: the plain batch kernel (out[i * ldo +
 * j]) and one l2 distance computed directly (the level's raw l2 sum). */
void sx__batch_plain_avx2(int metric, const float *qs, const float *qnorms, size_t nq,
                          const float *const *vecs, size_t n, size_t dim, float *out, size_t ldo);
float sx__raw_l2_avx2(const float *q, const float *v, size_t dim);
/* AVX512-BW, -VL and -VNNI (checked separately from AVX-512F). */
int32_t sx__qdot_vnni(const int16_t *q, const uint8_t *c, size_t dim);
#endif

/* Fewer queries than this: a prepared batch runs the plain kernel (kernels_qbatch.c). */
#define SX__QBATCH_MINQ 6

/* sx__distance_batch at a given level: what a prepared batch runs at a level without
 * a packed kernel (it keeps the level it was made for). */
void sx__batch_level(int level, int metric, const float *qs, const float *qnorms, size_t nq,
                     const float *const *vecs, size_t n, size_t dim, float *out);

#endif
