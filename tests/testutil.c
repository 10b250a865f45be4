/* Small helpers shared by the core tests and their worker programs. */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *sx_test_tmpdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  size_t n = strlen(base) + strlen(tag) + 32;
  char *p = (char *)malloc(n);
  snprintf(p, n, "%s/sx-%s-XXXXXX", base, tag);
  if (!mkdtemp(p)) {
    perror("mkdtemp");
    abort();
  }
  return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void sx_test_rmtree(const char *path) {
  if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *sx_test_path(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = (char *)malloc(n);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

uint64_t sx_test_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float sx_test_component(uint64_t *state) {
  return (float)((sx_test_splitmix64(state) >> 40) / 16777216.0 * 2 - 1);
}

void sx_test_gen(uint64_t seed, float *out, size_t n) {
  uint64_t st = seed;
  for (size_t i = 0; i < n; i++) out[i] = sx_test_component(&st);
}
