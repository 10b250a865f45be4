/*
 * hnsw_int.h: what the files of the HNSW index share (not for other layers: they use
 * hnsw.h).
 *   hnsw.c         the graph on pages (leaf caches, vectors, link lists), distances
 *                  between stored vectors, link order (stamps)
 *   hnsw_search.c  search: the layer walk, unfiltered and filtered, greedy descent;
 *                  what the walk calls per node is inline here, below, so that it
 *                  compiles into the walk as when it was one file with hnsw.c
 *   hnsw_span.c    spans: link lists under page locks while threads link in parallel
 *   hnsw_insert.c  choosing neighbours, linking a node, sx__hnsw_insert_batch
 *   hnsw_par.c     the parallel worker shared by insert and unlink
 *   hnsw_repair.c  sx__hnsw_unlink (repairing the lists that point to dead nodes)
 *                  and the structure check
 *   hnsw_quant.c   int8 codes: encoding, writing them, the query's side, checking
 */
#ifndef SX_HNSW_INT_H
#define SX_HNSW_INT_H

#include <float.h>
#include <stdatomic.h>
#include <string.h>

#include "index/hnsw.h"
#include "lock/lock.h"

#define MAX_LEVEL 16

/* Leaf page pointers by leaf number, grown on demand. Over a snapshot they stay
 * valid for its life, so a context may serve many searches (see the pool in the
 * collection layer); in a transaction, w holds the writable copies. */
typedef struct leafcache {
  unsigned pa_off;
  sx__pa_cursor cur; /* for misses over a snapshot (caches the path) */
  const uint8_t **r;
  uint8_t **w;
  size_t cap;
} leafcache;

/* A leaf page of a graph array while threads link in parallel (see spans below). */
typedef struct pent {
  sx__rwlock lock;        /* SX__RANK_PAGE, ordered by pgno; writers hold it exclusive */
  _Atomic uint32_t seq;   /* odd while a writer changes the page (a sequence lock for readers) */
  _Atomic(uint8_t *) img; /* NULL until looked up; changes only under the lock */
  _Atomic uint32_t pgno;
  int dirty; /* img is this transaction's copy (under the lock) */
} pent;

/* What the threads of one parallel insert share. */
typedef struct par {
  sx__mutex mu; /* SX__RANK_INDEX: ep and top while the threads link */
  uint64_t ep;
  uint32_t top;
  const uint64_t *slots; /* the nodes to link, or to repair */
  const uint8_t *dead;   /* repairs (sx__hnsw_unlink): bit per dead slot; NULL: links */
  size_t n;
  atomic_size_t next;
  atomic_int stop;
  /* Link order, for ties (see closer): slots from `base` on get a stamp past every
   * slot when they start to become reachable; older slots are their own stamp. */
  uint64_t base;
  _Atomic uint64_t *stamp;
  atomic_uint_fast64_t seq;
  /* The leaves of the level-0 array [0] and of the upper-level array [1]. */
  pent *ent[2];
  size_t nent[2];
} par;

/* A query's side of its codes' distances (hnsw_quant.c): q_i ~ qscale * qq_i. */
typedef struct sx__hnsw_qside {
  float qscale, qsum, qn2, qn; /* sum q_i, |q|^2, |q| */
  double qerr;                 /* max |qscale * qq_i - q_i| (the bounds) */
} sx__hnsw_qside;

struct sx__hnsw {
  sx__pv v;
  sx__hnsw_layout L;
  uint32_t dim, m, m0, efc, ps, epp0, e0;
  uint32_t psh;     /* ps == 1 << psh (page sizes are powers of two) */
  uint64_t epp0_m;  /* for dividing by epp0 with a multiplication (see leaf0) */
  uint64_t vbytes;  /* dim * 4 */
  sx__raw_fn raw;   /* the active kernel's raw sums: l2 for SX__L2, dot products otherwise */
  sx__raw4_fn raw4; /* the same, four vectors side by side; NULL where dist_to must serve */
  int metric;
  double ml;
  leafcache vec, g0, live, norms, up, meta, stamps;
  par *par;                /* set while this context is one of several linking in parallel */
  const uint8_t *owner_ro; /* the owner page, over a snapshot (immutable) */
  float *vbuf;             /* scratch vector */
  uint64_t nslots;
  int all_live; /* no dead slot is in the graph: searches skip the liveness test */
  /* search scratch: a node is visited iff vtag[node] == tag */
  uint32_t *vtag;
  size_t vcap;
  uint32_t tag;
  sx__hit *cand, *res;
  size_t cap_heap, cap_cand;
  uint32_t *lbuf;  /* link list scratch */
  uint32_t *l0buf; /* level-0 list copy (parallel inserts) */
  /* Quantization (hnsw_quant.c): quant is the collection's sx_quantization; codes
   * are cb-byte records, cpp to a page (cpp_m divides by it as epp0_m does). While
   * qon (set by a search for its walk only), distances are measured against codes,
   * for the query as qprep left it. */
  int quant, qon;
  uint32_t cb, cpp;
  uint64_t cpp_m;
  leafcache codes;
  sx__qdot_fn qdot;
  int16_t *qq;       /* the query scaled to int16, padded with zeros to 32 */
  sx__hnsw_qside qs; /* and its side (hnsw_quant.c) */
};

typedef struct span {
  int n;
  pent *e[2];
  uint32_t pg[2];
  size_t at[2]; /* offsets in the pages */
  size_t len[2];
} span;

/* Index of the i-th page of a span in ascending page order (the lock order). */
static inline int span_ord(const span *s, int i) {
  return s->n == 2 && s->pg[1] < s->pg[0] ? s->n - 1 - i : i;
}

/* Graphs of at most this many slots are walked for connectivity (sx__hnsw_connect)
 * after every insert batch; larger ones once the nodes linked since the last walk
 * reach 1/CONNECT_DEBT_SHARE of the slots (the walk reads every level-0 list, so
 * that costs a few list reads per insert). Every live node is reachable from the
 * entry point at level 0 in a committed state whose debt is zero (sx__hnsw_check
 * relies on it): always in small graphs, after every delete, large batch and every
 * nslots/32 single inserts in larger ones. The bound was 8,192 slots: a walk after
 * each one-vector commit then cost more than the insert itself (128-d, m 16, sync
 * normal: 850 us a commit at 5,000 nodes, 465 us with the walk amortized). */
#define CONNECT_ALWAYS_SLOTS 1024
#define CONNECT_DEBT_SHARE 32

/* Below this many nodes to link or repair, threads cost more than they save. */
#define PAR_MIN 16

static inline int sx__bit(const uint8_t *b, uint64_t s) {
  return b[s >> 3] >> (s & 7) & 1;
}

/* ---- hnsw.c --------------------------------------------------------------------- */

/* qsort_r order for choosing neighbours (ctx: the sx__hnsw). */
int sx__hnsw_cmp_sel(const void *a, const void *b, void *ctx);
int sx__hnsw_descend(sx__hnsw *g, const float *q, float qn, uint64_t ep, uint32_t top, uint32_t to,
                     sx__hit *best, sx_error *err);
int sx__hnsw_dist_slots(sx__hnsw *g, uint64_t a, uint64_t b, float *d, sx_error *err);
int sx__hnsw_dist_to(sx__hnsw *g, const float *q, float qn, uint64_t slot, float *d, sx_error *err);
int sx__hnsw_ensure_scratch(sx__hnsw *g, size_t ef);
int sx__hnsw_entry(sx__hnsw *g, uint64_t *ep, uint32_t *top, sx_error *err);
int sx__hnsw_is_live(sx__hnsw *g, uint64_t slot, sx_error *err, int *live);
int sx__hnsw_lc_miss(sx__hnsw *g, leafcache *c, uint64_t leaf, const uint8_t **out, sx_error *err);
int sx__hnsw_lc_getw(sx__hnsw *g, leafcache *c, uint64_t leaf, uint8_t **out, sx_error *err);
int sx__hnsw_lc_prefill(sx__hnsw *g, leafcache *c, uint64_t n, sx_error *err);
int sx__hnsw_lc_seed(leafcache *dst, const leafcache *src);
int sx__hnsw_links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t **out, sx_error *err);
int sx__hnsw_list_span(sx__hnsw *g, uint64_t slot, uint32_t level, int write, span *sp,
                       sx_error *err);
int sx__hnsw_meta_of(sx__hnsw *g, uint64_t slot, uint32_t *level, uint32_t *uoff, sx_error *err);
const uint8_t *sx__hnsw_owner_page(sx__hnsw *g, sx_error *err);
int sx__hnsw_read_vec(sx__hnsw *g, uint64_t slot, float *dst, sx_error *err);
int sx__hnsw_search_layer(sx__hnsw *g, const float *q, float qn, uint32_t level, size_t ef,
                          int only_live, uint64_t skip, size_t *nres, sx_error *err);
int sx__hnsw_set_links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t *ids, uint32_t n,
                       sx_error *err);
uint64_t sx__hnsw_stored_recency(const sx__hnsw *g, uint32_t slot);

/* ---- hnsw_quant.c --------------------------------------------------------------- */

/* Sets up the codes of a graph whose owner page is o (sx__hnsw_open). */
int sx__hnsw_quant_open(sx__hnsw *g, const uint8_t *o, sx_error *err);
/* Write views: encodes the stored vectors of slots[0..n) into their code records. */
int sx__hnsw_quant_put(sx__hnsw *g, const uint64_t *slots, size_t n, sx_error *err);
/* Prepares the query q (dim floats) for measuring codes. */
void sx__hnsw_quant_query(sx__hnsw *g, const float *q);
/* SX_CORRUPT unless the code of slot s is the encoding of its vector. */
int sx__hnsw_quant_check(sx__hnsw *g, uint64_t s, sx_error *err);

/* ---- hnsw_repair.c -------------------------------------------------------------- */

/* Links in every live node that a walk of level 0 from the entry point misses
 * (hnsw_repair.c explains), and records a zero debt. Write views. */
int sx__hnsw_connect(sx__hnsw *g, sx_error *err);
/* Nodes linked since the last connectivity walk, from the owner page; UINT64_MAX
 * when unknown. */
int sx__hnsw_debt(sx__hnsw *g, uint64_t *out, sx_error *err);
/* Records debt (UINT64_MAX - 1 at most) in the owner page. Write views. */
int sx__hnsw_set_debt(sx__hnsw *g, uint64_t debt, sx_error *err);

/* ---- hnsw_span.c ---------------------------------------------------------------- */

int sx__hnsw_span_get(sx__hnsw *g, int which, uint64_t off, size_t len, int write, span *s,
                      sx_error *err);
void sx__hnsw_span_put(span *s);
void sx__hnsw_span_read(const span *s, void *dst, size_t len);
void sx__hnsw_span_read_stable(span *s, void *dst, size_t len);
void sx__hnsw_span_write(span *s, const void *src, size_t len);

/* ---- hnsw_insert.c, hnsw_par.c, hnsw_repair.c -------------------------------------- */

int sx__hnsw_link_node(sx__hnsw *g, uint64_t slot, sx_error *err);
int sx__hnsw_put_stamp(sx__hnsw *g, uint64_t slot, uint64_t stamp, sx_error *err);
int sx__hnsw_select_neighbors(sx__hnsw *g, sx__hit *c, size_t nc, size_t max, uint64_t prefer,
                              uint32_t *out, uint32_t *nout, sx_error *err);
int sx__hnsw_set_entry(sx__hnsw *g, uint64_t slot, uint32_t level, sx_error *err);
int sx__hnsw_take_stamps(sx__hnsw *g, uint64_t n, uint64_t *first, sx_error *err);
int sx__hnsw_run_parallel(sx__hnsw *g, const sx__pv *v, const sx__hnsw_layout *lay,
                          const uint64_t *todo, size_t nt, const uint8_t *dead, int nthreads,
                          sx_error *err);
int sx__hnsw_repair_node(sx__hnsw *g, uint64_t s, const uint8_t *dead, sx_error *err);

/* ---- inline: what the search walk calls per node (hnsw.c uses them too) ----------- */

static inline int lc_get(sx__hnsw *g, leafcache *c, uint64_t leaf, const uint8_t **out,
                         sx_error *err) {
  if (leaf < c->cap && c->r[leaf]) {
    *out = c->r[leaf];
    return SX_OK;
  }
  return sx__hnsw_lc_miss(g, c, leaf, out, err);
}

static inline int norm_of(sx__hnsw *g, uint64_t slot, float *out, sx_error *err) {
  const uint8_t *lp;
  int rc = lc_get(g, &g->norms, slot * 4 / g->ps, &lp, err);
  if (!rc) memcpy(out, lp + slot * 4 % g->ps, 4);
  return rc;
}

/* Leaf page of vector bytes at off (the cache over the view, filled on a miss). */
static inline int vec_leaf(sx__hnsw *g, uint64_t leaf, const uint8_t **lp, sx_error *err) {
  if (leaf < g->vec.cap && (*lp = g->vec.r[leaf]) != NULL) return SX_OK;
  return sx__hnsw_lc_miss(g, &g->vec, leaf, lp, err);
}

static inline uint64_t recency(const sx__hnsw *g, uint32_t slot) {
  if (!g->par || slot < g->par->base) return sx__hnsw_stored_recency(g, slot);
  return atomic_load_explicit(&g->par->stamp[slot - g->par->base], memory_order_relaxed);
}

static inline int closer(const sx__hnsw *g, sx__hit a, sx__hit b) {
  return a.d < b.d || (a.d == b.d && recency(g, a.slot) > recency(g, b.slot));
}

static inline int is_live(sx__hnsw *g, uint64_t slot, sx_error *err, int *live) {
  const uint8_t *lp;
  int rc = lc_get(g, &g->live, slot >> (3 + g->psh), &lp, err);
  *live = !rc && (lp[(slot >> 3) & (g->ps - 1)] & (1u << (slot % 8)));
  return rc;
}

/* The code record of slot: leaf slot / cpp, record slot % cpp (by multiply-high, as
 * leaf0 in hnsw_search.c). */
static inline uint32_t code_leaf(const sx__hnsw *g, uint32_t slot, uint32_t *rem) {
  uint32_t q = g->cpp == 1 ? slot : (uint32_t)(((unsigned __int128)g->cpp_m * slot) >> 64);
  *rem = slot - q * g->cpp;
  return q;
}

static inline int code_of(sx__hnsw *g, uint32_t slot, const uint8_t **rec, sx_error *err) {
  uint32_t r, leaf = code_leaf(g, slot, &r);
  const uint8_t *lp;
  int rc = lc_get(g, &g->codes, leaf, &lp, err);
  if (!rc) *rec = lp + (size_t)r * g->cb;
  return rc;
}

/* Prefetches the first lines of slot's code record when its leaf is cached (the
 * hardware prefetcher follows the rest: records never straddle a page). */
static inline void prefetch_code(const sx__hnsw *g, uint32_t slot) {
  uint32_t r, leaf = code_leaf(g, slot, &r);
  if (leaf < g->codes.cap && g->codes.r[leaf]) {
    const uint8_t *p = g->codes.r[leaf] + (size_t)r * g->cb;
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
  }
}

/* Prefetches every line of slot's code record when its leaf is cached. */
static inline void prefetch_code_all(const sx__hnsw *g, uint32_t slot) {
  uint32_t r, leaf = code_leaf(g, slot, &r);
  if (leaf < g->codes.cap && g->codes.r[leaf]) {
    const uint8_t *p = g->codes.r[leaf] + (size_t)r * g->cb;
    for (uint32_t o = 0; o < g->cb; o += 64) __builtin_prefetch(p + o);
  }
}

/* Whether a code record's header (offset lo, scale s, |v|^2, |v|) is one an encoding
 * writes: finite, the scale and norms not negative. */
static inline int code_header_ok(const float h[4]) {
  return h[0] >= -FLT_MAX && h[0] <= FLT_MAX && h[1] >= 0 && h[1] <= FLT_MAX && h[2] >= 0 &&
         h[2] <= FLT_MAX && h[3] >= 0 && h[3] <= FLT_MAX;
}

/* Distance from the prepared query to slot's code: its header (offset lo, scale s,
 * |v|^2, |v|) then dim 8-bit codes, v_i ~ lo + s c_i, so that
 * q.v ~ lo sum q_i + s qscale sum qq_i c_i; l2 adds the exact norms. A header that
 * no encoding writes (not finite, negative scale or norm) is SX_CORRUPT. */
static inline int qdist(sx__hnsw *g, uint32_t slot, float *d, sx_error *err) {
  const uint8_t *rec;
  int rc = code_of(g, slot, &rec, err);
  if (rc) return rc;
  float h[4];
  memcpy(h, rec, sizeof h);
  if (!code_header_ok(h))
    return sx__err_set(err, SX_CORRUPT, "HNSW code of slot %u has a bad header", slot);
  float ip = h[0] * g->qs.qsum + h[1] * g->qs.qscale * (float)g->qdot(g->qq, rec + 16, g->dim);
  if (g->metric == SX__L2) {
    *d = g->qs.qn2 + h[2] - 2 * ip;
  } else if (g->metric == SX__IP) {
    *d = 1.0f - ip;
  } else {
    float den = g->qs.qn * h[3];
    *d = den > 0 ? 1.0f - ip / den : 1.0f;
  }
  return SX_OK;
}

#endif
