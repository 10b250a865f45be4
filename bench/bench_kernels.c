/*
 * bench_kernels: the distance kernels against the machine's limits, on one core.
 *
 *   (a) single-core read bandwidth over a 1,000,000 x 128 float buffer (512 MB,
 *       contiguous): 64-bit words summed into 8 accumulators, and (where the CPU
 *       has it) AVX-512 loads summed; the better of the two, best of 5, is the
 *       bandwidth the scan kernels are measured against;
 *   (b) one query against every vector (sx__distance_many) at each level: GB/s of
 *       vector bytes and % of (a);
 *   (c) 64 queries against every vector (sx__distance_batch) at each level:
 *       queries/s and GFLOP/s, counting 2 * nq * n * dim (the sgemm convention, so
 *       the figure compares directly with a BLAS-based flat index). Run both as
 *       one call over all vectors (out = 64 x 1M floats) and in blocks of 4096
 *       vectors with a cache-resident out, which is how a flat index scans.
 *   (d) the single-core FMA peak (AVX-512, else AVX2), for scale;
 *   (e) the 64-query l2 batch at the best level on data offset by 100 (every pair
 *       trips the cancellation guard, so the kernel computes (q-v)^2 directly);
 *   (f) the 64-query batch at the best level over 4096 vectors that stay in cache:
 *       the compute ceiling without DRAM.
 *
 * The scalar and portable batches run over a tenth of the vectors (minutes
 * otherwise); their rates are per vector, so they compare as they are.
 * Standalone: links kernels.c only. Machine-readable lines start with RESULT.
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Icore/include -Icore/src \
 *       bench/bench_kernels.c core/src/index/kernels.c -o bench_kernels -lm
 *   ./bench_kernels [n] [dim]          (defaults 1000000 128)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/kernels.h"
#include "sextant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#else
#define BENCH_X86 0
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static float rng_unit(void) {
  return (float)(rng_next() >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* Keeps results alive so the compiler cannot drop the work. */
static volatile double sink;

static uint64_t read_u64(const void *buf, size_t bytes) {
  const uint64_t *p = buf;
  size_t n = bytes / 8;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
    s4 += p[i + 4];
    s5 += p[i + 5];
    s6 += p[i + 6];
    s7 += p[i + 7];
  }
  return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

#if BENCH_X86
__attribute__((target("avx512f"))) static double read_avx512(const void *buf, size_t bytes) {
  const float *p = buf;
  size_t n = bytes / 4;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* FMA throughput: 24 independent chains (enough for 2 ports x 4+ cycles latency). */
__attribute__((target("avx512f"))) static double fma_peak_avx512(long iters) {
  __m512 a[24];
  for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps((float)i * 1e-3f);
  __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
  }
  __m512 s = _mm512_setzero_ps();
  for (int i = 0; i < 24; i++) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double fma_peak_avx2(long iters) {
  __m256 a[12];
  for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i * 1e-3f);
  __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
  }
  float t[8];
  __m256 s = _mm256_setzero_ps();
  for (int i = 0; i < 12; i++) s = _mm256_add_ps(s, a[i]);
  _mm256_storeu_ps(t, s);
  return t[0] + t[7];
}
#endif

static const char *metric_name(int m) {
  return m == SX__L2 ? "l2" : m == SX__IP ? "ip" : "cosine";
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  size_t dim = argc > 2 ? strtoull(argv[2], NULL, 10) : 128;
  size_t bytes = n * dim * sizeof(float);
  float *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
  const float **vecs = malloc(n * sizeof *vecs);
  if (!data || !vecs) {
    fprintf(stderr, "out of memory for %zu x %zu\n", n, dim);
    return 1;
  }
  for (size_t i = 0; i < n * dim; i++) data[i] = rng_unit();
  for (size_t j = 0; j < n; j++) vecs[j] = data + j * dim;
  printf("bench_kernels: %zu vectors x %zu dims = %.1f MB, default level %s\n", n, dim,
         (double)bytes / 1e6, sx__kernel_name(sx__kernel_level()));
  int best = sx__kernel_level();

  /* (d) FMA peak. */
  double peak = 0;
#if BENCH_X86
  {
    long iters = 20000000;
    double t0 = now();
    if (sx__kernel_supported(SX__KERNEL_AVX512)) {
      sink = fma_peak_avx512(iters);
      peak = 24.0 * 16 * 2 * (double)iters / (now() - t0) / 1e9;
    } else if (sx__kernel_supported(SX__KERNEL_AVX2)) {
      sink = fma_peak_avx2(iters);
      peak = 12.0 * 8 * 2 * (double)iters / (now() - t0) / 1e9;
    }
    if (peak > 0) printf("RESULT fma_peak %.1f GFLOP/s\n", peak);
  }
#endif

  /* (a) Read bandwidth, and (b) one query against every vector. The machine may be
   * shared, so they run in interleaved rounds and each keeps its best: the ratio
   * then compares figures from the same conditions. */
  float *out = malloc(n * 64 * sizeof(float));
  float *q = malloc(64 * dim * sizeof(float));
  float qn[64];
  if (!out || !q) {
    fprintf(stderr, "out of memory for results\n");
    return 1;
  }
  for (size_t i = 0; i < 64 * dim; i++) q[i] = rng_unit();
  for (int i = 0; i < 64; i++) qn[i] = sx__norm(q + (size_t)i * dim, dim);
  double bw_u64 = 0, bw_simd = 0, many_t[4][3];
  for (int l = 0; l < 4; l++)
    for (int m = 0; m < 3; m++) many_t[l][m] = 1e30;
  for (int round = 0; round < 5; round++) {
    double t0 = now();
    sink = (double)read_u64(data, bytes);
    double t = now() - t0;
    if (bytes / t / 1e9 > bw_u64) bw_u64 = (double)bytes / t / 1e9;
#if BENCH_X86
    if (sx__kernel_supported(SX__KERNEL_AVX512)) {
      t0 = now();
      sink = read_avx512(data, bytes);
      t = now() - t0;
      if (bytes / t / 1e9 > bw_simd) bw_simd = (double)bytes / t / 1e9;
    }
#endif
    for (int level = 0; level < 4; level++) {
      if (sx__kernel_force(level) != SX_OK) continue;
      if (level < SX__KERNEL_AVX2 && round >= 2) continue; /* slow; two rounds do */
      for (int m = 0; m < 3; m++) {
        t0 = now();
        sx__distance_many(m, q, qn[0], vecs, n, dim, out);
        t = now() - t0;
        if (t < many_t[level][m]) many_t[level][m] = t;
        sink = out[n / 2];
      }
    }
  }
  printf("RESULT bandwidth_u64 %.1f GB/s\n", bw_u64);
  if (bw_simd > 0) printf("RESULT bandwidth_avx512 %.1f GB/s\n", bw_simd);
  double bw = bw_u64 > bw_simd ? bw_u64 : bw_simd;
  printf("RESULT bandwidth %.1f GB/s\n", bw);
  for (int level = 0; level < 4; level++) {
    if (!sx__kernel_supported(level)) {
      printf("note: level %s not supported here, skipped\n", sx__kernel_name(level));
      continue;
    }
    for (int m = 0; m < 3; m++) {
      double gbs = (double)bytes / many_t[level][m] / 1e9;
      printf("RESULT many %s %s %.1f GB/s %.0f%% of bandwidth (%.1f ms)\n", sx__kernel_name(level),
             metric_name(m), gbs, 100.0 * gbs / bw, many_t[level][m] * 1e3);
    }
  }

  /* (c) 64 queries against every vector (a tenth of them at the slow levels). */
  const size_t nq = 64, blk = 4096;
  for (int level = 0; level < 4; level++) {
    if (sx__kernel_force(level) != SX_OK) continue;
    int slow = level < SX__KERNEL_AVX2;
    size_t nv = slow ? n / 10 : n;
    double flops = 2.0 * (double)nq * (double)nv * (double)dim;
    for (int m = 0; m < 3; m++) {
      int reps = slow ? 1 : 3;
      double t_one = 1e30, t_blk = 1e30;
      for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        for (size_t j = 0; j < nv; j += blk) {
          size_t nb = nv - j < blk ? nv - j : blk;
          sx__distance_batch(m, q, qn, nq, vecs + j, nb, dim, out);
        }
        double t = now() - t0;
        if (t < t_blk) t_blk = t;
        sink = out[1];
        if (slow) continue;
        t0 = now();
        sx__distance_batch(m, q, qn, nq, vecs, nv, dim, out);
        t = now() - t0;
        if (t < t_one) t_one = t;
        sink = out[n + 1];
      }
      printf("RESULT batch %s %s blocks %.0f queries/s %.1f GFLOP/s (%.1f ms for %zu vectors)\n",
             sx__kernel_name(level), metric_name(m), (double)nq * (double)nv / (double)n / t_blk,
             flops / t_blk / 1e9, t_blk * 1e3, nv);
      if (!slow)
        printf("RESULT batch %s %s onecall %.0f queries/s %.1f GFLOP/s (%.1f ms)\n",
               sx__kernel_name(level), metric_name(m), (double)nq / t_one, flops / t_one / 1e9,
               t_one * 1e3);
      if (peak > 0 && level == best)
        printf("  (%s %s: %.0f%% of the FMA peak in blocks)\n", sx__kernel_name(level),
               metric_name(m), 100.0 * flops / t_blk / 1e9 / peak);
    }
  }

  /* (f) The same 64-query batch over 4096 vectors (2 MB) again and again: the data
   * stays in L2/L3, so this is the kernel's compute ceiling without DRAM in the way. */
  sx__kernel_force(best);
  for (int m = 0; m < 3; m++) {
    size_t nv = n < blk ? n : blk;
    double flops = 2.0 * (double)nq * (double)nv * (double)dim, t_best = 1e30;
    for (int rep = 0; rep < 200; rep++) {
      double t0 = now();
      sx__distance_batch(m, q, qn, nq, vecs, nv, dim, out);
      double t = now() - t0;
      if (t < t_best) t_best = t;
    }
    printf("RESULT batch %s %s incache %.1f GFLOP/s", sx__kernel_name(best), metric_name(m),
           flops / t_best / 1e9);
    if (peak > 0) printf(" %.0f%% of the FMA peak", 100.0 * flops / t_best / 1e9 / peak);
    printf("\n");
  }

  /* (e) l2 on data with a large common offset (every component near 100): the
   * AVX-512 batch kernel falls back to (q-v)^2 there; this shows what that costs. */
  for (size_t i = 0; i < n * dim; i++) data[i] += 100.0f;
  for (size_t i = 0; i < nq * dim; i++) q[i] += 100.0f;
  sx__kernel_force(best);
  {
    double flops = 2.0 * (double)nq * (double)n * (double)dim, t_blk = 1e30;
    for (int rep = 0; rep < 3; rep++) {
      double t0 = now();
      for (size_t j = 0; j < n; j += blk) {
        size_t nb = n - j < blk ? n - j : blk;
        sx__distance_batch(SX__L2, q, NULL, nq, vecs + j, nb, dim, out);
      }
      double t = now() - t0;
      if (t < t_blk) t_blk = t;
    }
    printf("RESULT batch %s l2 offset100 blocks %.0f queries/s %.1f GFLOP/s (%.1f ms)\n",
           sx__kernel_name(best), (double)nq / t_blk, flops / t_blk / 1e9, t_blk * 1e3);
  }
  sx__kernel_force(best);
  free(out);
  free(q);
  free(vecs);
  free(data);
  return 0;
}
