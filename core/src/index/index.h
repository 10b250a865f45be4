/*
 * index: distance kernels and the search structures built on them.
 *
 * Kernels come in a scalar reference version (the oracle for tests, accumulating in
 * double) and fast versions (portable C written for auto-vectorization, AVX2+FMA,
 * AVX-512F) chosen once at run time from what the CPU supports. All of them compute
 *   l2:     sum (q_i - v_i)^2
 *   ip:     1 - sum q_i v_i
 *   cosine: 1 - (sum q_i v_i) / (|q| |v|)      (|q| passed in precomputed)
 * Fast versions may differ from the reference by float rounding only.
 * Nothing here allocates, locks or keeps a pointer.
 */
#ifndef SX_INDEX_H
#define SX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Metric numbers are those of sx_metric. */
enum { SX__L2 = 0, SX__IP = 1, SX__COSINE = 2 };

/* Kernel levels. */
enum { SX__KERNEL_SCALAR = 0, SX__KERNEL_PORTABLE = 1, SX__KERNEL_AVX2 = 2, SX__KERNEL_AVX512 = 3 };

/* The level in use (the best the CPU supports unless forced). Thread-safe. */
int sx__kernel_level(void);
const char *sx__kernel_name(int level);
/* Forces a level (tests, benchmarks). Returns SX_OK, or SX_INVALID_ARGUMENT if the
 * CPU lacks it. Not meant to race with searches. */
int sx__kernel_force(int level);
/* 1 if the CPU supports the level. */
int sx__kernel_supported(int level);

/* Reference (scalar, double accumulation): the oracle. */
double sx__distance_ref(int metric, const float *q, const float *v, size_t dim);

/* Euclidean norm |a| with the active kernel. */
float sx__norm(const float *a, size_t dim);
/* One distance with the active kernel; qnorm = sx__norm(q) (used only by cosine). */
float sx__distance(int metric, const float *q, float qnorm, const float *v, size_t dim);
/* Distances from one query to n vectors: out[j] = distance(q, vecs[j]). */
void sx__distance_many(int metric, const float *q, float qnorm, const float *const *vecs, size_t n,
                       size_t dim, float *out);
/* Distances from nq queries (row-major, nq x dim) to n vectors:
 * out[i * n + j] = distance(q_i, vecs[j]). Blocked so that each vector is read from
 * memory once for all queries. qnorms[i] = sx__norm(q_i) (cosine only; may be NULL
 * otherwise). */
void sx__distance_batch(int metric, const float *qs, const float *qnorms, size_t nq,
                        const float *const *vecs, size_t n, size_t dim, float *out);

#ifdef __cplusplus
}
#endif
#endif
