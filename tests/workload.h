/*
 * A checkable page workload for storage tests.
 *
 * Page 1 is a manifest: word 0 is the generation g of the last commit, word 1 the
 * number of data pages N, then for each data page i (pages 2..N+1) the generation
 * that last wrote it. Commit g rewrites a subset of data pages, filling every 64-bit
 * word of each with g (word 1 holds the page number), updates the manifest and sets
 * the user version to g. A snapshot is consistent iff every data page is filled with
 * exactly the generation its manifest entry names, no entry exceeds g, and the user
 * version equals g: a torn page, a mix of two commits or a lost page all break it.
 */
#ifndef SX_WORKLOAD_H
#define SX_WORKLOAD_H
#include <stdint.h>

#include "sextant.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Commit generation g (g >= 1, one more than the current), rewriting `touch` data
 * pages chosen from seed (all of them when touch >= npages). The first commit
 * creates the manifest and npages data pages. Returns an SX_* status. */
int wl_commit(sx_db *db, uint64_t g, uint32_t npages, uint32_t touch, uint64_t seed, int timeout_ms,
              sx_error *err);
/* Same, inside an existing write session (not committed). */
int wl_apply(sx_write *w, uint64_t g, uint32_t npages, uint32_t touch, uint64_t seed,
             sx_error *err);
/* Checks a snapshot. Returns 0 and sets *g (0 for an empty database) when
 * consistent; otherwise returns the number of violations and describes the first
 * in why (may be NULL, size why_len). SX errors reading pages count as violations. */
int wl_verify(sx_read *r, uint64_t *g, char *why, int why_len);
/* sx_db_check for a database the workload wrote: its pages (the manifest, page 1, and
 * the data pages after it) belong to no structure of the database, so the check finds
 * them lost (neither in use nor free); that finding, when it names exactly as many
 * pages as the workload has, from page 1, is SX_OK here. Any other finding stands. */
sx_status wl_check(sx_db *db, sx_error *err);
/* Opens a read session, verifies, ends it. */
int wl_verify_db(sx_db *db, uint64_t *g, char *why, int why_len);

#ifdef __cplusplus
}
#endif
#endif
