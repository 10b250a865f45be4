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
#ifdef __cplusplus
}
#endif
#endif
