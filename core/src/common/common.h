/*
 * common: what every layer uses and none owns: error capture into an sx_error, and
 * little-endian-agnostic byte access to page images (fields are stored in the host's
 * byte order and read through memcpy, so unaligned fields are safe).
 * Depends on nothing but the public header.
 */
#ifndef SX_COMMON_H
#define SX_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sextant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a definition as part of the exported ABI (the library is built with
 * -fvisibility=hidden, so only these symbols leave the shared object). Public
 * functions live in the api layer, except the accessors of result objects, which live
 * with their layouts (collection/results.c). */
#define SX_EXPORT __attribute__((visibility("default")))

/* Sets err (may be NULL) to code and a one-line printf-style message; returns code. */
int sx__err_set(sx_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Allocations sized by values read from disk (or otherwise untrusted): n elements of
 * `size` bytes, NULL when n * size would pass SX__ALLOC_MAX (2^47 bytes: past any
 * real machine's memory, and far from wrapping), as when memory runs out, so a
 * damaged count becomes SX_NOMEM at worst (it should have been range-checked
 * before). n == 0 allocates one byte (never NULL for an empty array). Freed with
 * free(). */
#define SX__ALLOC_MAX (1ull << 47)
static inline void *sx__mallocn(uint64_t n, size_t size) {
  if (size && n > SX__ALLOC_MAX / size) return NULL;
  return malloc(n && size ? (size_t)(n * size) : 1);
}
static inline void *sx__callocn(uint64_t n, size_t size) {
  if (size && n > SX__ALLOC_MAX / size) return NULL;
  return calloc(n && size ? (size_t)(n * size) : 1, 1);
}

static inline uint32_t sx__rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline void sx__wr32(uint8_t *p, uint32_t v) {
  memcpy(p, &v, 4);
}
static inline uint64_t sx__rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static inline void sx__wr64(uint8_t *p, uint64_t v) {
  memcpy(p, &v, 8);
}

#ifdef __cplusplus
}
#endif

#endif
