/*
 * bench_util.h: what the C benchmarks share: a monotonic clock, the conformance
 * generator's vectors (splitmix64, so every program with the same seed sees the same
 * data) and the median of a run of timings.
 */
#ifndef SX_BENCH_UTIL_H
#define SX_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline uint64_t bench_splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* n floats in [-1, 1) from the generator state *s (advanced). */
static inline void bench_gen(float *v, size_t n, uint64_t *s) {
  for (size_t i = 0; i < n; i++) v[i] = (float)((bench_splitmix(s) >> 40) / 16777216.0 * 2 - 1);
}

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
