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

#include "pager/parray.h"
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
typedef void (*sx__raw4_fn)(const float *q, const sx__vparts *v, size_t n, size_t dim,
                            float *out);
sx__raw4_fn sx__raw4(int what);

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

/* ---- HNSW graph on pages (hnsw.c) ---------------------------------------------
 *
 * The graph of one collection lives in page arrays whose two-word heads, and a few
 * fields, sit in an owner page (the collection's header). Vectors and the live
 * bitmap belong to the collection; the graph reads them.
 *   graph0  level-0 links: per slot (1 + 2m) u32 (count, then neighbour slots),
 *           packed so that no slot's list straddles a page
 *   meta    per slot: u32 level, u32 offset of its upper links in `upper` (in u32)
 *   upper   links of levels 1..level: (1 + m) u32 per level
 *   norms   per slot float |v| (cosine only)
 *   stamps  per slot u64: link order, for ties in distance (hnsw.c, recency)
 * A deleted slot stays in the graph as a waypoint (walked through, never returned)
 * until sx__hnsw_unlink takes it out: each live node that links to a dead one chooses
 * its list again from its live links and the dead one's, the dead slots' lists are
 * emptied, and the slot may then be reused by a later insert. A replaced vector gets
 * a new slot (the collection layer moves its id), so every linked slot is a fresh node.
 */
typedef struct sx__hnsw_layout {
  uint32_t owner;     /* page holding the fields below */
  unsigned ep_off;    /* u32 entry slot + 1 (0: empty graph), u32 top level */
  unsigned graph0_off, meta_off, upper_off, norms_off; /* page arrays */
  unsigned upper_len_off; /* u64: u32 words used in `upper` */
  unsigned vec_off;   /* page array of vectors (dim floats per slot, a byte stream) */
  unsigned live_off;  /* page array: live bitmap */
  unsigned nslots_off;/* u64: slots in use */
  unsigned count_off; /* u64: live slots */
  unsigned nfree_off; /* u64: free slots (unlinked; none is in any list) */
  unsigned stamp_off; /* page array: u64 per slot, when it was last linked (0: never stamped) */
  unsigned stamp_seq_off; /* u64: the next stamp (at least the slots in use) */
} sx__hnsw_layout;

typedef struct sx__hnsw sx__hnsw;

typedef struct sx__hit {
  float d;
  uint32_t slot;
} sx__hit;

/* Opens the graph in a view for one call (one thread). */
int sx__hnsw_open(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric,
                  uint32_t m, uint32_t efc, sx__hnsw **out, sx_error *err);
void sx__hnsw_close(sx__hnsw *g);
/* Write views: links n distinct slots into the graph, in order; their vectors are
 * stored. reused[i] != 0: slots[i] was freed by sx__hnsw_unlink and keeps its level
 * and the room of its upper lists. With nthreads > 1 (and enough slots), that many
 * threads link nodes at once in the view's transaction, under page locks (hnsw.c
 * explains). On an error the transaction holds a partial graph: the caller rolls
 * back to its savepoint. */
int sx__hnsw_insert_batch(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric,
                          uint32_t m, uint32_t efc, const uint64_t *slots, const uint8_t *reused,
                          size_t n, int nthreads, sx_error *err);
/* Write views: takes the dead slots dead[0..nd) (not live, not free) out of the
 * graph. Every live node that links to one of them chooses its list again, by the
 * heuristic, from its live links and the live links of the dead ones it linked to;
 * the dead slots' lists are emptied; a live node becomes the entry point if the old
 * one died; and live nodes that no search from the entry point can reach any more
 * are linked in again. Afterwards no list holds a dead slot, so the caller may free
 * them. nthreads > 1 chooses the new lists with that many threads. On an error the
 * caller rolls back to its savepoint. */
int sx__hnsw_unlink(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric,
                    uint32_t m, uint32_t efc, const uint64_t *dead, size_t nd, int nthreads,
                    sx_error *err);
/* Live hits, closest first: up to k, plus any tied in distance with the k-th (the
 * caller breaks ties by id, so out must hold max(ef, k)). ef is raised to k. */
int sx__hnsw_search(sx__hnsw *g, const float *q, size_t k, uint32_t ef, sx__hit *out, size_t *n,
                    sx_error *err);
/* Structure check: links in range, counts within capacity, entry point valid; with
 * freebits (bit s set: slot s is free), free
 * slots have empty lists, no list links to one and none is the entry point. */
int sx__hnsw_check(sx__hnsw *g, const uint8_t *freebits, sx_error *err);

#ifdef __cplusplus
}
#endif
#endif
