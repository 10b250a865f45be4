/*
 * hnsw: the HNSW graph of a collection, stored on pages (hnsw*.c).
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
 *   codes   quantized collections: per slot an 8-bit code record (hnsw_quant.c),
 *           packed so that no record straddles a page
 * A deleted slot stays in the graph as a waypoint (walked through, never returned)
 * until sx__hnsw_unlink takes it out: each live node that links to a dead one chooses
 * its list again from its live links and the dead one's, the dead slots' lists are
 * emptied, and the slot may then be reused by a later insert. A replaced vector gets
 * a new slot (the collection layer moves its id), so every linked slot is a fresh node.
 */
#ifndef SX_HNSW_H
#define SX_HNSW_H

#include <stddef.h>
#include <stdint.h>

#include "index/kernels.h"
#include "pager/parray.h"
#include "sextant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sx__hnsw_layout {
  uint32_t owner;  /* page holding the fields below */
  unsigned ep_off; /* u32 entry slot + 1 (0: empty graph), u32 top level */
  unsigned graph0_off, meta_off, upper_off, norms_off; /* page arrays */
  unsigned upper_len_off;                              /* u64: u32 words used in `upper` */
  unsigned vec_off;       /* page array of vectors (dim floats per slot, a byte stream) */
  unsigned live_off;      /* page array: live bitmap */
  unsigned nslots_off;    /* u64: slots in use */
  unsigned count_off;     /* u64: live slots */
  unsigned nfree_off;     /* u64: free slots (unlinked; none is in any list) */
  unsigned stamp_off;     /* page array: u64 per slot, when it was last linked (0: never stamped) */
  unsigned stamp_seq_off; /* u64: the next stamp (at least the slots in use) */
  unsigned quant_off;     /* u32: sx_quantization (validated by the owner's reader) */
  unsigned codes_off;     /* page array: code records (SX_QUANTIZATION_INT8) */
  /* u64: nodes linked since the last connectivity walk (sx__hnsw_connect) plus one;
   * 0: unknown (files written before it, a new or compacted graph). */
  unsigned debt_off;
} sx__hnsw_layout;

/* 1 when int8 code records of vectors of dim fit in a page of ps bytes. */
int sx__hnsw_quant_fits(uint32_t dim, uint32_t ps);

typedef struct sx__hnsw sx__hnsw;

/* The largest m a collection may have (level-0 lists hold up to 2m links). */
#define SX__HNSW_M_MAX 256

typedef struct sx__hit {
  float d;
  uint32_t slot;
} sx__hit;

/* Opens the graph in a view for one call (one thread). */
int sx__hnsw_open(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric, uint32_t m,
                  uint32_t efc, sx__hnsw **out, sx_error *err);
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
 * caller breaks ties by id, so out must hold max(ef, k)). ef is raised to k. In a
 * quantized graph the walk measures codes and the ef it keeps are measured again
 * exactly, so the distances returned are float32 ones, as unquantized. */
int sx__hnsw_search(sx__hnsw *g, const float *q, size_t k, uint32_t ef, sx__hit *out, size_t *n,
                    sx_error *err);
/* A predicate over slots, for filtered searches: match returns 1 (the slot
 * matches), 0 (it does not) or a negated status (with err set), which fails the
 * search. Called from the searching thread only. */
typedef struct sx__hnsw_filter {
  int (*match)(void *ctx, uint64_t slot, sx_error *err);
  void *ctx;
} sx__hnsw_filter;
/* sx__hnsw_search keeping only the slots f matches: the walk goes through the slots
 * that do not match (they are never returned), so the ones that do are found
 * wherever they lie in the graph (hnsw_search.c). */
int sx__hnsw_search_filtered(sx__hnsw *g, const float *q, size_t k, uint32_t ef,
                             const sx__hnsw_filter *f, sx__hit *out, size_t *n, sx_error *err);
/* Exact searches of a quantized graph read codes first: lb[i] is a lower bound of
 * the float32 distance (as the scan's kernels measure it) from q to the vector of
 * slots[i], from its code alone, so that the scan measures only the vectors whose
 * bound is within its k best (hnsw_quant.c derives it). q prepares the query; NULL
 * keeps the one prepared by the previous call. Every bound is -INFINITY in a graph
 * without codes, or where a code gives none. A code whose header no encoding writes
 * is SX_CORRUPT. */
int sx__hnsw_bounds(sx__hnsw *g, const float *q, const uint32_t *slots, size_t n, float *lb,
                    sx_error *err);
/* sx__hnsw_bounds for a batch of queries (an exact batch search of a quantized
 * graph): the queries prepared once, their integer dot products with each block's
 * codes computed all at once (sx__qdot_batch). Scratch for blocks of up to cap
 * codes: one thread at a time. NULL: out of memory, or a graph without codes. */
typedef struct sx__hnsw_cbatch sx__hnsw_cbatch;
sx__hnsw_cbatch *sx__hnsw_cbatch_new(const sx__hnsw *g, const float *qs, size_t nq, size_t cap);
void sx__hnsw_cbatch_free(sx__hnsw_cbatch *b);
/* lb[i * n + j]: the lower bound sx__hnsw_bounds gives for query i and slots[j]
 * (n <= cap). */
int sx__hnsw_bounds_batch(sx__hnsw *g, sx__hnsw_cbatch *b, const uint32_t *slots, size_t n,
                          float *lb, sx_error *err);
/* Structure check: links in range, counts within capacity, entry point valid; with
 * freebits (bit s set: slot s is free), free
 * slots have empty lists, no list links to one and none is the entry point. */
int sx__hnsw_check(sx__hnsw *g, const uint8_t *freebits, sx_error *err);

#ifdef __cplusplus
}
#endif
#endif
