/*
 * kernels: the distance kernels (kernels.c).
 *
 * Kernels come in a scalar reference version (the oracle for tests, accumulating in
 * double) and fast versions (portable C written for auto-vectorization, AVX2+FMA,
 * AVX-512F) chosen once at run time from what the CPU supports. All of them compute
 *   l2:     sum (q_i - v_i)^2
 *   ip:     1 - sum q_i v_i
 *   cosine: 1 - (sum q_i v_i) / (|q| |v|)      (|q| passed in precomputed)
 * Fast versions may differ from the reference by float rounding only.
 * Nothing here locks. Nothing allocates or keeps a pointer but a prepared batch
 * (sx__qbatch below) and the AVX2 batch kernel, which prepares one per call.
 */
#ifndef SX_KERNELS_H
#define SX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "sextant.h"

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

/* Raw sums with the active kernel, to add up a distance over parts of a vector:
 * for SX__L2 sum (q_i - v_i)^2, for SX__IP sum q_i v_i (no "1 -"). A function to
 * fetch once for hot loops (one lookup instead of one per call); valid until
 * sx__kernel_force. */
typedef float (*sx__raw_fn)(const float *q, const float *v, size_t dim);
sx__raw_fn sx__raw(int what);

/* A vector as it lies in pages: its first n0 floats at a, the rest (dim - n0) at b;
 * b is not read when n0 >= dim. */
typedef struct {
  const float *a, *b;
  size_t n0;
} sx__vparts;
/* Raw sums (as sx__raw's) of q against n <= 4 vectors in parts, out[j] for v[j],
 * read side by side where the level has such a kernel (AVX-512), so that their cache
 * misses overlap. A lane's result does not depend on n or on the other lanes.
 * Fetched once, as sx__raw. */
typedef void (*sx__raw4_fn)(const float *q, const sx__vparts *v, size_t n, size_t dim, float *out);
sx__raw4_fn sx__raw4(int what);
/* Whether a graph walk on this CPU should measure neighbours with sx__raw4 rather
 * than one at a time. Measured with bench_hnsw (Fashion-MNIST, 784-d, one thread,
 * QPS against hnswlib's in the same run): 0.97-1.16x with it against 0.86-1.06x
 * without on an AMD EPYC VM; 0.84-0.93x with it against 0.99-1.23x without on an
 * Intel Xeon VM (AVX512-FP16, AMX). So AMD processors only. */
int sx__raw4_preferred(void);
/* Whether a scan that reaches a new page of vectors should prefetch the next page
 * too: the hardware prefetchers stop at a 4 KiB boundary, and the next leaf mostly
 * lies there. With the AVX-512 kernel (an Intel Xeon VM) a single-query scan of
 * 128-d and 784-d vectors ran 6 to 14% faster with it; at the AVX2 level (an AMD
 * EPYC VM) it ran slower (bench_flat --dim 784: 15.4-18.8 GB/s without against
 * 11.5-14.6 with, 128-d level), the prefetches stalling the gathering. So the
 * AVX-512 level only. */
int sx__next_page_prefetch_preferred(void);

/* Integer dot product of a query quantized to int16 and an 8-bit code:
 * sum q_i * c_i over dim components, exact in int32 as long as
 * dim * 255 * max |q_i| < 2^31 (the caller scales the query so). q holds dim
 * values rounded up to a multiple of 32, the padding zero; c is read only to dim.
 * The HNSW walk of quantized collections measures codes with it (hnsw_quant.c).
 * Fetched once, as sx__raw: VNNI (vpdpwssd) where the CPU has AVX512-VNNI at the
 * AVX-512 level, pairwise multiply-adds at AVX2, plain C otherwise. Every version
 * returns the same integer. */
typedef int32_t (*sx__qdot_fn)(const int16_t *q, const uint8_t *c, size_t dim);
sx__qdot_fn sx__qdot(void);

/* Euclidean norm |a| with the active kernel. */
float sx__norm(const float *a, size_t dim);
/* One distance with the active kernel; qnorm = sx__norm(q) (used only by cosine). */
float sx__distance(int metric, const float *q, float qnorm, const float *v, size_t dim);
/* A flat scan too large to stay in cache prefetches, for each vector it reads, the
 * bytes SX__SCAN_AHEAD further on: the stream's next stretch, one page ahead, which
 * the hardware prefetchers (they stop at 4 KiB boundaries) would start late. Where
 * the vectors come from memory that pays: through Python on Fashion-MNIST (60k x
 * 784, 188 MB, one thread, queries alternating with faiss's IndexFlatL2, 13-15 GB/s)
 * single-query search went from 0.94-0.97x faiss to 0.99-1.02x (2 KiB further:
 * about the same; 12 KiB: 0.98x). Where they come from cache it costs: 12-15% over
 * a 2 MB collection at 96 and 128 dimensions, and 10% at 784 over 100 MB that this
 * machine's 300 MB L3 held (30 GB/s). Hence SX__SCAN_AHEAD_MIN: below that many
 * bytes of vectors (which a server's last-level cache may hold) a scan does
 * without. Those figures are the AVX-512 kernel's (an Intel Xeon VM); the AVX2 kernel
 * ran 8% slower with it on an AMD EPYC VM and does without (kernels.c). */
#define SX__SCAN_AHEAD 4096
#define SX__SCAN_AHEAD_MIN (64u << 20)

/* Distances from one query to n vectors: out[j] = distance(q, vecs[j]). */
void sx__distance_many(int metric, const float *q, float qnorm, const float *const *vecs, size_t n,
                       size_t dim, float *out);
/* As sx__distance_many, for vectors that may lie in two parts (sx__vparts), without
 * copying them where the level reads parts in place (AVX-512); other levels copy a
 * vector in parts into scratch (dim floats) first. Each distance is the float
 * sx__distance gives for the vector's floats laid end to end. ahead: 0, or a number
 * of bytes to prefetch ahead of each vector read (a scan of vectors laid out one
 * after another in memory, too many to stay in cache: SX__SCAN_AHEAD above); the
 * AVX-512 level uses it, the others prefetch the next vector only. */
void sx__distance_many_parts(int metric, const float *q, float qnorm, const sx__vparts *v, size_t n,
                             size_t dim, size_t ahead, float *scratch, float *out);
/* Distances from nq queries (row-major, nq x dim) to n vectors:
 * out[i * n + j] = distance(q_i, vecs[j]). Blocked so that each vector is read from
 * memory once for all queries. qnorms[i] = sx__norm(q_i) (cosine only; may be NULL
 * otherwise). */
void sx__distance_batch(int metric, const float *qs, const float *qnorms, size_t nq,
                        const float *const *vecs, size_t n, size_t dim, float *out);

/* A batch of queries prepared once for many sx__distance_qbatch calls (a scan's
 * blocks): at the AVX2 level, from six queries on, the queries are laid out for the
 * packed kernel (kernels_qbatch.c); elsewhere it holds the arguments of
 * sx__distance_batch. It keeps qs and qnorms (as sx__distance_batch takes them),
 * which must outlive it, and scratch: one thread at a time. NULL: out of memory. */
typedef struct sx__qbatch sx__qbatch;
sx__qbatch *sx__qbatch_new(int metric, const float *qs, const float *qnorms, size_t nq, size_t dim);
void sx__qbatch_free(sx__qbatch *b);
/* sx__distance_batch of the prepared queries against n vectors: out[i * n + j]. The
 * packed kernel allocates nothing; it differs from the plain one by float rounding. */
void sx__distance_qbatch(sx__qbatch *b, const float *const *vecs, size_t n, float *out);
/* As sx__distance_qbatch, for a scan keeping the k best of each query: bound[i] is
 * the worst distance query i keeps (+inf while it keeps fewer than k; NULL: no
 * bounds). A pair may then get +inf instead of its distance, but only when the
 * distance it would get is proven greater than its query's bound; every other pair
 * gets exactly what sx__distance_qbatch gives. The packed kernel proves it for l2
 * from the sums over a prefix of the dimensions (a group of six queries and 16
 * vectors at a time), and skips the dimensions left. */
void sx__distance_qbatch_within(sx__qbatch *b, const float *const *vecs, size_t n,
                                const float *bound, float *out);
/* Which kernel a prepared batch runs now (tests): the packed one; the plain AVX2
 * one, once too many l2 pairs failed the cancellation guard (kernels.c); or the
 * level's sx__distance_batch. */
enum { SX__QBATCH_LEVEL = 0, SX__QBATCH_PLAIN = 1, SX__QBATCH_PACKED = 2 };
int sx__qbatch_kernel(const sx__qbatch *b);

/* Integer dot products of a batch of queries scaled to int16 with 8-bit codes, the
 * codes side of an exact batch search over a quantized collection (hnsw_quant.c):
 * sx__qdot for every pair, the queries prepared once (kernels_qdot.c). The caller
 * scales the queries as for sx__qdot (dim * 255 * max |q_i| < 2^31), so every sum is
 * exact and every level gives the same integers. A batch copies the queries and
 * keeps scratch: one thread at a time. NULL: out of memory. */
typedef struct sx__qdbatch sx__qdbatch;
/* nq queries of dim values, query i at qq + i * stride. */
sx__qdbatch *sx__qdbatch_new(const int16_t *qq, size_t stride, size_t nq, size_t dim);
void sx__qdbatch_free(sx__qdbatch *b);
/* dots[i * n + j] = sum_d qq_i[d] * codes[j][d], codes[j] holding dim bytes. */
void sx__qdot_batch(sx__qdbatch *b, const uint8_t *const *codes, size_t n, int32_t *dots);
/* Whether an exact batch search of a quantized collection of dimension dim should
 * bound its distances from the codes (sx__qdot_batch) rather than measure every
 * vector with the float32 batch kernel: at the AVX2 level, from
 * SX__QDOT_BATCH_MIN_DIM dimensions. There, on an AMD EPYC VM (Zen 3), the integer
 * micro-kernel ran 52-57 G multiply-adds a second against the float32 packed
 * kernel's 36-42; through Python (500 queries, random data) the codes gave 0.70x
 * the float32 batch's queries a second at 96-d, 0.89x at 128, 1.01x at 192, 1.13x
 * at 256 and 1.21-1.35x from 384 on, where the per-pair bounds weigh less against
 * the products (bench/README.md). At the AVX-512 level the float32 kernel has twice
 * the lanes and this one would run the AVX2 code. */
#define SX__QDOT_BATCH_MIN_DIM 192
int sx__qdot_batch_preferred(size_t dim);
/* Sets the dimension from which sx__qdot_batch_preferred says yes (tests, to take
 * that path at small dimensions); returns the one before. */
size_t sx__qdot_batch_min_dim(size_t dim);

#ifdef __cplusplus
}
#endif
#endif
