/* Small helpers shared by the core tests and their worker programs. */
#ifndef SX_TESTUTIL_H
#define SX_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Makes a fresh empty directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *sx_test_tmpdir(const char *tag);
/* Removes a directory tree (best effort). */
void sx_test_rmtree(const char *path);
/* Joins dir and name into a malloc'd path. */
char *sx_test_path(const char *dir, const char *name);
/* splitmix64 step, as in conformance/FORMAT.md. */
uint64_t sx_test_splitmix64(uint64_t *state);
/* One component of the conformance generator (conformance/FORMAT.md): the next
 * splitmix64 value z of state, as (z >> 40) / 2^24 * 2 - 1, in [-1, 1). */
float sx_test_component(uint64_t *state);
/* n components from seed: the conformance generator's vectors, one after another. */
void sx_test_gen(uint64_t seed, float *out, size_t n);
#ifdef __cplusplus
}
#endif
#endif
