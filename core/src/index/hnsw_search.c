/*
 * hnsw_search.c: searching the HNSW graph (layout in hnsw.h, pages in hnsw.c): the
 * greedy descent through the upper levels, the best-first walk of one level that
 * both searches and inserts use, and the filtered walk.
 *
 * The unfiltered walk is the hot path of every approximate search: per node it
 * reads a link list straight from a cached leaf, prefetches the neighbours'
 * vectors, measures them four at a time and offers them to two heaps. The filtered
 * walk is a separate function, so that the unfiltered one carries no test for a
 * filter per node.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

/* Distance from q (norm qn, used by cosine) to the vector of slot, straight from its
 * page: l2 and ip by the kernel's raw sums (of each part, when the vector straddles
 * pages); cosine by the exact-scan kernel, or, when the vector straddles pages, from
 * the raw dot products of its parts and its stored norm. (Recovering partial dot
 * products as 1 - ip_distance lost them to rounding at small norms.) Summing l2 in
 * chunks so as to stop once past a bound did not pay: on Fashion-MNIST the sum passes
 * the bound only in the last third of the vector. */
static int dist_to(sx__hnsw *g, const float *q, float qn, uint64_t slot, float *d, sx_error *err) {
  uint64_t off = slot * g->vbytes;
  size_t in = off & (g->ps - 1);
  const uint8_t *lp;
  int rc = vec_leaf(g, off >> g->psh, &lp, err);
  if (rc) return rc;
  float sum;
  if (in + g->vbytes <= g->ps) {
    const float *v = (const float *)(lp + in);
    if (g->metric == SX__COSINE) {
      *d = sx__distance(g->metric, q, qn, v, g->dim);
      return SX_OK;
    }
    sum = g->raw(q, v, g->dim);
  } else {
    /* The vector straddles pages: add the raw sums of its parts (l2 and dot products
     * add up) instead of copying it; cosine takes |v| from the stored norms. */
    size_t done = 0;
    sum = 0;
    for (uint64_t end = off + g->vbytes;;) {
      size_t n = (size_t)(g->ps - in < end - off ? g->ps - in : end - off) / 4;
      sum += g->raw(q + done, (const float *)(lp + in), n);
      done += n;
      off += n * 4;
      if (off >= end) break;
      if ((rc = vec_leaf(g, off >> g->psh, &lp, err))) return rc;
      in = 0;
    }
  }
  if (g->metric == SX__L2) {
    *d = sum;
  } else if (g->metric == SX__IP) {
    *d = 1.0f - sum;
  } else {
    float vn = 0;
    if ((rc = norm_of(g, slot, &vn, err))) return rc;
    float den = qn * vn;
    *d = den > 0 ? 1.0f - sum / den : 1.0f;
    if (*d < 0) *d = 0;
    if (*d > 2) *d = 2;
  }
  return SX_OK;
}

/* Slot's vector as raw4 reads it: its first page's part, and the next page's
 * (vbytes <= ps, so there are at most two). */
static inline int vec_parts(sx__hnsw *g, uint64_t slot, sx__vparts *p, sx_error *err) {
  uint64_t off = slot * g->vbytes;
  size_t in = off & (g->ps - 1);
  const uint8_t *lp;
  int rc = vec_leaf(g, off >> g->psh, &lp, err);
  if (rc) return rc;
  p->a = (const float *)(lp + in);
  p->n0 = g->dim;
  p->b = NULL;
  if (in + g->vbytes > g->ps) {
    p->n0 = (g->ps - in) / 4;
    if ((rc = vec_leaf(g, (off >> g->psh) + 1, &lp, err))) return rc;
    p->b = (const float *)lp;
  }
  return SX_OK;
}

/* Distances from q to the nb <= 4 slots at ids, side by side with g->raw4 (set), so
 * that their cache misses overlap: dist_to's figures for L2 and IP, to float rounding
 * (a slot's figure is the same whichever slots share its call). */
static int dist4(sx__hnsw *g, const float *q, const uint32_t *ids, uint32_t nb, float *d,
                 sx_error *err) {
  sx__vparts vp[4];
  for (uint32_t j = 0; j < nb; j++) {
    int rc = vec_parts(g, ids[j], &vp[j], err);
    if (rc) return rc;
  }
  /* vp[0..nb) is filled; inlined into the filtered walk, GCC loses track of that. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
  g->raw4(q, vp, nb, g->dim, d);
#pragma GCC diagnostic pop
  if (g->metric != SX__L2)
    for (uint32_t j = 0; j < nb; j++) d[j] = 1.0f - d[j];
  return SX_OK;
}

/* slot / epp0 and slot % epp0, by Lemire's multiply-high division (exact for 32-bit
 * slots): a division instruction per expansion showed in profiles. */
static inline uint32_t leaf0(const sx__hnsw *g, uint32_t slot, uint32_t *rem) {
  uint32_t q = g->epp0 == 1 ? slot : (uint32_t)(((unsigned __int128)g->epp0_m * slot) >> 64);
  *rem = slot - q * g->epp0;
  return q;
}

/* The two heaps: candidates, a min-heap by distance (nearest on top), and results, a
 * max-heap (farthest on top). `max` is a constant at every call. In a heap, a above b
 * when a may sit above b. */
static inline int above(const sx__hnsw *g, sx__hit a, sx__hit b, int max) {
  return max ? closer(g, b, a) : closer(g, a, b);
}

/* Places x at hole i or above it, moving down the elements it belongs above. */
static inline void heap_up(const sx__hnsw *g, sx__hit *h, size_t i, sx__hit x, int max) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!above(g, x, h[p], max)) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}

/* Moves the hole at the root of h[0..n) down to a leaf, each step taking the child
 * that belongs above the other up (one comparison a level), and returns where it
 * ended. The element then placed there came from the bottom and seldom climbs far,
 * where the textbook sift-down compares it at every level too (the heaps were a
 * sixth of an insert's time). */
static inline size_t heap_hole_down(const sx__hnsw *g, sx__hit *h, size_t n, int max) {
  size_t i = 0;
  for (size_t l; (l = 2 * i + 1) < n; i = l) {
    if (l + 1 < n && above(g, h[l + 1], h[l], max)) l++;
    h[i] = h[l];
  }
  return i;
}

static void minh_push(const sx__hnsw *g, sx__hit *h, size_t *n, sx__hit x) {
  heap_up(g, h, (*n)++, x, 0);
}

/* Pops the nearest. */
static sx__hit minh_pop(const sx__hnsw *g, sx__hit *h, size_t *n) {
  sx__hit top = h[0], x = h[--(*n)];
  if (*n) heap_up(g, h, heap_hole_down(g, h, *n, 0), x, 0);
  return top;
}

static void maxh_push(const sx__hnsw *g, sx__hit *h, size_t *n, sx__hit x) {
  heap_up(g, h, (*n)++, x, 1);
}

/* Adds x to a max-heap of at most ef: in place of the farthest when full (the
 * caller has checked that x is nearer than it). */
static void maxh_offer(const sx__hnsw *g, sx__hit *h, size_t *n, size_t ef, sx__hit x) {
  if (*n < ef)
    maxh_push(g, h, n, x);
  else if (*n)
    heap_up(g, h, heap_hole_down(g, h, *n, 1), x, 1);
}

static int cmp_hit(const void *a, const void *b) {
  const sx__hit *x = a, *y = b;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static int ensure_scratch(sx__hnsw *g, size_t ef) {
  size_t need = ef + 1 + g->m0;
  if (g->cap_heap < need) {
    size_t nc = need * 2;
    if (g->cap_cand < nc * 16) {
      sx__hit *c = realloc(g->cand, nc * 16 * sizeof *c);
      if (!c) return SX_NOMEM;
      g->cand = c;
      g->cap_cand = nc * 16;
    }
    sx__hit *r = realloc(g->res, nc * sizeof *r);
    if (!r) return SX_NOMEM;
    g->res = r;
    g->cap_heap = nc;
  }
  if (g->vcap < g->nslots) {
    /* nslots <= 2^32 - 2 (sx__hnsw_open), so this cannot wrap. */
    size_t nc = (size_t)g->nslots + g->nslots / 4 + 64;
    uint32_t *v = realloc(g->vtag, nc * sizeof *v);
    if (!v) return SX_NOMEM;
    memset(v + g->vcap, 0, (nc - g->vcap) * sizeof *v);
    g->vtag = v;
    g->vcap = nc;
  }
  if (++g->tag == 0) { /* wrapped: start the marks over */
    memset(g->vtag, 0, g->vcap * sizeof *g->vtag);
    g->tag = 1;
  }
  return SX_OK;
}

/* Room for one more candidate. The candidate heap has no bound of its own: a search
 * through many dead nodes, say, keeps every one it meets. */
static int cand_room(sx__hnsw *g, size_t nc, sx_error *err) {
  if (nc < g->cap_cand) return SX_OK;
  sx__hit *c = realloc(g->cand, g->cap_cand * 2 * sizeof *c);
  if (!c) return sx__err_set(err, SX_NOMEM, "out of memory for HNSW search");
  g->cand = c;
  g->cap_cand *= 2;
  return SX_OK;
}

/* Prefetches a vector a few distances ahead: the first lines of each page it lies
 * in. Within a page the hardware prefetcher follows the stream once started, but it
 * stops at a 4 KiB boundary, and most vectors of a few hundred dimensions straddle
 * one. Prefetching every line of the vector instead filled the core's miss buffers
 * and stalled on the prefetches themselves; two lines per page measured best (the
 * figures are in bench/HNSW.md). */
#define PF_NEXT 2  /* vectors ahead */
#define PF_LINES 2 /* lines per page */
/* Codes ahead: every line of the code QPF_NEXT ahead is prefetched while one is
 * measured (take_unvisited has prefetched the first two lines of every code of the
 * list). A code is measured in a few dozen cycles, far less than a miss takes, and
 * without this the walk waited on the first line of nearly every code; 1, 2 and 4
 * ahead measured 10-15% faster than none on Fashion-MNIST, 2 best by a little. */
#define QPF_NEXT 2
static inline void prefetch_vector(const sx__hnsw *g, uint64_t slot) {
  uint64_t off = slot * g->vbytes, end = off + g->vbytes;
  while (off < end) {
    uint64_t leaf = off >> g->psh;
    if (leaf >= g->vec.cap || !g->vec.r[leaf]) return;
    const uint8_t *p = g->vec.r[leaf] + (off & (g->ps - 1));
    uint64_t stop = (leaf + 1) << g->psh;
    if (stop > end) stop = end;
    for (uint64_t o = off; o < stop && o < off + PF_LINES * 64; o += 64, p += 64)
      __builtin_prefetch(p);
    off = stop;
  }
}

/*
 * The ef nearest nodes to q at `level`, found from the entry points in res[0..*nres)
 * (distances filled). Results replace them in res, as a max-heap. With only_live,
 * dead nodes are walked through but not kept. `skip` (or UINT64_MAX) is never kept.
 */
/* Prefetches the level-0 list of slot s when its leaf is cached. */
static inline void prefetch_list0(const sx__hnsw *g, uint32_t s) {
  uint32_t rt, qt = leaf0(g, s, &rt);
  if (qt < g->g0.cap && g->g0.r[qt]) __builtin_prefetch(g->g0.r[qt] + rt * g->e0);
}

/* The list of slot s at level: straight from the cached leaf in the common case
 * (level 0, no parallel linking), else through links(). */
static inline int node_list(sx__hnsw *g, uint32_t s, uint32_t level, const uint32_t **l,
                            sx_error *err) {
  const uint8_t *lp;
  uint32_t r0, q0 = leaf0(g, s, &r0);
  if (level == 0 && !g->par && q0 < g->g0.cap && (lp = g->g0.r[q0]) != NULL &&
      ((const uint32_t *)(lp + r0 * g->e0))[0] <= g->m0) {
    *l = (const uint32_t *)(lp + r0 * g->e0);
    return SX_OK;
  }
  return sx__hnsw_links(g, s, level, l, err);
}

/* The neighbours in list l (of slot from) not visited yet, marked visited, into
 * ids[0..*todo); their vectors are prefetched before any is measured. */
static inline int take_unvisited(sx__hnsw *g, int qon, uint32_t from, const uint32_t *l,
                                 uint32_t *ids, size_t cap, uint32_t *todo, sx_error *err) {
  uint32_t cnt = l[0];
  assert(cnt <= cap); /* links() and node_list() bound counts by m0 */
  (void)cap;
  *todo = 0;
  for (uint32_t i = 0; i < cnt; i++) {
    uint64_t n = l[1 + i];
    if (n >= g->nslots)
      return sx__err_set(err, SX_CORRUPT, "HNSW node %u links to slot %llu past the end", from,
                         (unsigned long long)n);
    if (g->vtag[n] == g->tag) continue;
    g->vtag[n] = g->tag;
    ids[(*todo)++] = (uint32_t)n;
    if (qon) {
      prefetch_code(g, (uint32_t)n);
      continue;
    }
    uint64_t off = n * g->vbytes;
    uint64_t leaf = off >> g->psh;
    if (leaf < g->vec.cap && g->vec.r[leaf]) {
      const uint8_t *a = g->vec.r[leaf] + (off & (g->ps - 1));
      __builtin_prefetch(a);
      __builtin_prefetch(a + 64);
    }
  }
  return SX_OK;
}

/* Distance *d from q to ids[i] of ids[0..todo): four at a time where the kernel
 * allows (ds keeps the four between calls), the next ones prefetched meanwhile. */
static inline int measure(sx__hnsw *g, int qon, const float *q, float qn, const uint32_t *ids,
                          uint32_t todo, uint32_t i, float ds[4], float *d, sx_error *err) {
  if (qon) {
    if (i == 0)
      for (uint32_t j = 0; j < QPF_NEXT && j < todo; j++) prefetch_code_all(g, ids[j]);
    if (i + QPF_NEXT < todo) prefetch_code_all(g, ids[i + QPF_NEXT]);
    return qdist(g, ids[i], d, err);
  }
  if (g->raw4) {
    if (i % 4 == 0) {
      uint32_t nb = todo - i < 4 ? todo - i : 4;
      for (uint32_t j = i + 4; j < todo && j < i + 8; j++) prefetch_vector(g, ids[j]);
      int rc = dist4(g, q, ids + i, nb, ds, err);
      if (rc) return rc;
    }
    *d = ds[i % 4];
    return SX_OK;
  }
  if (i + PF_NEXT < todo) prefetch_vector(g, ids[i + PF_NEXT]);
  return dist_to(g, q, qn, ids[i], d, err);
}

/* Adds x to the candidates and, when live and not `skip`, to the results (a max-heap
 * of at most ef). */
static inline int offer(sx__hnsw *g, sx__hit x, uint32_t level, size_t ef, int only_live,
                        uint64_t skip, size_t *nc, size_t *nr, sx_error *err) {
  int rc = cand_room(g, *nc, err);
  if (rc) return rc;
  minh_push(g, g->cand, nc, x);
  if (level == 0) prefetch_list0(g, g->cand[0].slot); /* the next node to expand */
  int live = 1;
  if (only_live && (rc = is_live(g, x.slot, err, &live))) return rc;
  if (live && x.slot != skip) {
    maxh_offer(g, g->res, nr, ef, x);
  }
  return SX_OK;
}

/* One level's walk; qon is g->qon, a constant in each of search_layer's two calls so
 * that the float32 walk carries no test for codes per neighbour. */
static inline __attribute__((always_inline)) int walk_layer(sx__hnsw *g, const int qon,
                                                            const float *q, float qn,
                                                            uint32_t level, size_t ef,
                                                            int only_live, uint64_t skip,
                                                            size_t *nres, sx_error *err) {
  int rc = ensure_scratch(g, ef);
  if (rc) return sx__err_set(err, SX_NOMEM, "out of memory for HNSW search");
  sx__hit *res = g->res;
  size_t nc = 0, nr = 0;
  sx__hit entries[4];
  size_t ne = *nres < 4 ? *nres : 4;
  memcpy(entries, res, ne * sizeof *entries);
  for (size_t i = 0; i < ne; i++) {
    uint64_t s = entries[i].slot;
    g->vtag[s] = g->tag;
    if ((rc = cand_room(g, nc, err))) return rc;
    minh_push(g, g->cand, &nc, entries[i]);
    int live = 1;
    if (only_live && (rc = is_live(g, s, err, &live))) return rc;
    if (live && s != skip && (nr < ef || (nr && closer(g, entries[i], res[0])))) /* ef below 4 */
      maxh_offer(g, res, &nr, ef, entries[i]);
  }
  uint32_t ids[2 * SX__HNSW_M_MAX];
  float ds[4];
  while (nc) {
    sx__hit c = minh_pop(g, g->cand, &nc);
    if (nr >= ef && closer(g, res[0], c)) break;
    if (level == 0 && nc) prefetch_list0(g, g->cand[0].slot); /* while this one's run */
    const uint32_t *l;
    if ((rc = node_list(g, c.slot, level, &l, err))) return rc;
    /* l stays valid below: nothing in this loop reads another list. */
    uint32_t todo;
    if ((rc = take_unvisited(g, qon, c.slot, l, ids, sizeof ids / sizeof *ids, &todo, err)))
      return rc;
    for (uint32_t i = 0; i < todo; i++) {
      float d = 0; /* set by measure (gcc cannot tell once qon is a constant) */
      if ((rc = measure(g, qon, q, qn, ids, todo, i, ds, &d, err))) return rc;
      sx__hit x = {d, ids[i]};
      if (nr < ef || closer(g, x, res[0])) {
        if ((rc = offer(g, x, level, ef, only_live, skip, &nc, &nr, err))) return rc;
      }
    }
  }
  *nres = nr;
  return SX_OK;
}

static int search_layer(sx__hnsw *g, const float *q, float qn, uint32_t level, size_t ef,
                        int only_live, uint64_t skip, size_t *nres, sx_error *err) {
  return g->qon ? walk_layer(g, 1, q, qn, level, ef, only_live, skip, nres, err)
                : walk_layer(g, 0, q, qn, level, ef, only_live, skip, nres, err);
}

static int entry(sx__hnsw *g, uint64_t *ep, uint32_t *top, sx_error *err) {
  if (g->par) {
    sx__mutex_lock(&g->par->mu);
    *ep = g->par->ep;
    *top = g->par->top;
    sx__mutex_unlock(&g->par->mu);
    return SX_OK;
  }
  const uint8_t *o = sx__hnsw_owner_page(g, err);
  if (!o) return err ? err->code : SX_IO;
  uint32_t e = sx__rd32(o + g->L.ep_off);
  *top = sx__rd32(o + g->L.ep_off + 4);
  *ep = e ? e - 1 : UINT64_MAX;
  if (e && (*ep >= g->nslots || *top > MAX_LEVEL))
    return sx__err_set(err, SX_CORRUPT, "HNSW entry point %u (level %u) is out of range", e - 1,
                       *top);
  return SX_OK;
}

/* The distance the walk orders by: to the code while a search measures codes. */
static inline int walk_dist(sx__hnsw *g, const float *q, float qn, uint64_t slot, float *d,
                            sx_error *err) {
  return g->qon ? qdist(g, (uint32_t)slot, d, err) : dist_to(g, q, qn, slot, d, err);
}

/* Greedy descent from the entry point down to level `to` (exclusive). */
static int descend(sx__hnsw *g, const float *q, float qn, uint64_t ep, uint32_t top, uint32_t to,
                   sx__hit *best, sx_error *err) {
  float d;
  int rc = walk_dist(g, q, qn, ep, &d, err);
  if (rc) return rc;
  best->d = d;
  best->slot = (uint32_t)ep;
  for (uint32_t l = top; l > to; l--) {
    for (int changed = 1; changed;) {
      changed = 0;
      const uint32_t *ln;
      rc = sx__hnsw_links(g, best->slot, l, &ln, err);
      if (rc) return rc;
      /* ln stays valid: nothing below reads another list. */
      uint32_t cnt = ln[0];
      const uint32_t *ids = ln + 1;
      for (uint32_t i = 0; i < cnt; i++) {
        if (ids[i] >= g->nslots) return sx__err_set(err, SX_CORRUPT, "HNSW link past the end");
        rc = walk_dist(g, q, qn, ids[i], &d, err);
        if (rc) return rc;
        if (closer(g, (sx__hit){d, ids[i]}, *best)) {
          best->d = d;
          best->slot = ids[i];
          changed = 1;
        }
      }
    }
  }
  return SX_OK;
}

/* The part every search shares before level 0: the entry point (*ep UINT64_MAX: the
 * graph is empty, nothing more to do), the query's norm, scratch for efs candidates,
 * and the greedy descent to level 0, whose closest node lands in *best. */
static int search_start(sx__hnsw *g, const float *q, size_t efs, uint64_t *ep, float *qn,
                        sx__hit *best, sx_error *err) {
  *ep = UINT64_MAX;
  uint32_t top = 0;
  int rc = entry(g, ep, &top, err);
  if (rc || *ep == UINT64_MAX) return rc;
  *qn = g->metric == SX__COSINE ? sx__norm(q, g->dim) : 0;
  if (ensure_scratch(g, efs)) return sx__err_set(err, SX_NOMEM, "out of memory for HNSW search");
  /* A quantized graph: the walk measures codes (qon until search_finish). */
  if (g->quant) {
    sx__hnsw_quant_query(g, q);
    g->qon = 1;
  }
  return descend(g, q, *qn, *ep, top, 0, best, err);
}

/* The part every search shares after level 0: in a quantized graph the nr results
 * measured again exactly (the walk's code distances steer it only; hnsw_quant.c),
 * then sorted, the first k into out, and hits tied with the k-th too (the caller
 * breaks distance ties by id). */
static int search_finish(sx__hnsw *g, const float *q, float qn, size_t nr, size_t k, sx__hit *out,
                         size_t *n, sx_error *err) {
  if (g->qon) {
    g->qon = 0;
    for (size_t i = 0; i < nr && i < PF_NEXT; i++) prefetch_vector(g, g->res[i].slot);
    for (size_t i = 0; i < nr; i++) {
      if (i + PF_NEXT < nr) prefetch_vector(g, g->res[i + PF_NEXT].slot);
      int rc = dist_to(g, q, qn, g->res[i].slot, &g->res[i].d, err);
      if (rc) return rc;
    }
  }
  qsort(g->res, nr, sizeof *g->res, cmp_hit);
  *n = nr < k ? nr : k;
  while (*n > 0 && *n < nr && g->res[*n].d == g->res[*n - 1].d) (*n)++;
  memcpy(out, g->res, *n * sizeof *out);
  return SX_OK;
}

int sx__hnsw_search(sx__hnsw *g, const float *q, size_t k, uint32_t ef, sx__hit *out, size_t *n,
                    sx_error *err) {
  *n = 0;
  size_t efs = ef < k ? k : ef;
  uint64_t ep;
  float qn = 0;
  sx__hit best;
  int rc = search_start(g, q, efs, &ep, &qn, &best, err);
  if (rc || ep == UINT64_MAX) {
    g->qon = 0;
    return rc;
  }
  g->res[0] = best;
  size_t nr = 1;
  /* The entry point seeds level 0 too: every live node is reachable from it there
   * (sx__hnsw_connect), not always from where the descent ended. Far from the query,
   * it is expanded only when ef reaches that far. */
  if (best.slot != ep) {
    rc = walk_dist(g, q, qn, ep, &g->res[1].d, err);
    g->res[1].slot = ep;
    nr = 2;
  }
  /* As hnswlib: no liveness test per hit while nothing is deleted. */
  if (!rc) rc = search_layer(g, q, qn, 0, efs, !g->all_live, UINT64_MAX, &nr, err);
  if (!rc) return search_finish(g, q, qn, nr, k, out, n, err);
  g->qon = 0;
  return rc;
}

/* ---- filtered search ------------------------------------------------------------ */

/*
 * The walk of level 0 under a filter. A filter cuts the graph: the nodes that match
 * may form islands that links between matching nodes alone never join. So the walk
 * goes through every node as usual (each one that is close enough becomes a
 * candidate and is expanded, matching or not: the neighbours of a node that does not
 * match are reached through it, as ACORN's expansion reaches them) but only live
 * nodes that match enter the results, and the walk stops, as the unfiltered one
 * does, once the closest unexpanded candidate is farther than the ef-th result.
 * While fewer than ef nodes match, every node reached is expanded: the walk then
 * costs about ef / (share of nodes matching) expansions, which is why the
 * collection layer scans the matching items instead when they are few. The filter is
 * asked once per node at most, and only for nodes close enough to enter the results.
 */
static int search_layer_filtered(sx__hnsw *g, const float *q, float qn, size_t ef,
                                 const sx__hnsw_filter *f, size_t *nres, sx_error *err) {
  sx__hit *res = g->res;
  size_t nc = 0, nr = 0;
  int rc, live = 1, m;
  sx__hit e = res[0];
  g->vtag[e.slot] = g->tag;
  if ((rc = cand_room(g, nc, err))) return rc;
  minh_push(g, g->cand, &nc, e);
  if (!g->all_live && (rc = is_live(g, e.slot, err, &live))) return rc;
  if (live) {
    if ((m = f->match(f->ctx, e.slot, err)) < 0) return -m;
    if (m) maxh_push(g, res, &nr, e);
  }
  uint32_t ids[2 * SX__HNSW_M_MAX];
  float ds[4];
  while (nc) {
    sx__hit c = minh_pop(g, g->cand, &nc);
    if (nr >= ef && closer(g, res[0], c)) break;
    if (nc) prefetch_list0(g, g->cand[0].slot);
    const uint32_t *l;
    if ((rc = node_list(g, c.slot, 0, &l, err))) return rc;
    uint32_t todo;
    if ((rc = take_unvisited(g, g->qon, c.slot, l, ids, sizeof ids / sizeof *ids, &todo, err)))
      return rc;
    for (uint32_t i = 0; i < todo; i++) {
      float d;
      if ((rc = measure(g, g->qon, q, qn, ids, todo, i, ds, &d, err))) return rc;
      sx__hit x = {d, ids[i]};
      if (nr >= ef && !closer(g, x, res[0])) continue;
      if ((rc = cand_room(g, nc, err))) return rc;
      minh_push(g, g->cand, &nc, x);
      live = 1;
      if (!g->all_live && (rc = is_live(g, x.slot, err, &live))) return rc;
      if (!live) continue;
      if ((m = f->match(f->ctx, x.slot, err)) < 0) return -m;
      if (!m) continue;
      maxh_offer(g, res, &nr, ef, x);
    }
  }
  *nres = nr;
  return SX_OK;
}

int sx__hnsw_search_filtered(sx__hnsw *g, const float *q, size_t k, uint32_t ef,
                             const sx__hnsw_filter *f, sx__hit *out, size_t *n, sx_error *err) {
  *n = 0;
  size_t efs = ef < k ? k : ef;
  uint64_t ep;
  float qn = 0;
  sx__hit best;
  int rc = search_start(g, q, efs, &ep, &qn, &best, err);
  if (rc || ep == UINT64_MAX) {
    g->qon = 0;
    return rc;
  }
  g->res[0] = best;
  size_t nr = 0;
  rc = search_layer_filtered(g, q, qn, efs, f, &nr, err);
  if (!rc) return search_finish(g, q, qn, nr, k, out, n, err);
  g->qon = 0;
  return rc;
}

/* ---- for the other files of the index (hnsw_int.h) ---------------------------- */

int sx__hnsw_descend(sx__hnsw *g, const float *q, float qn, uint64_t ep, uint32_t top, uint32_t to,
                     sx__hit *best, sx_error *err) {
  return descend(g, q, qn, ep, top, to, best, err);
}

int sx__hnsw_dist_to(sx__hnsw *g, const float *q, float qn, uint64_t slot, float *d,
                     sx_error *err) {
  return dist_to(g, q, qn, slot, d, err);
}

int sx__hnsw_ensure_scratch(sx__hnsw *g, size_t ef) {
  return ensure_scratch(g, ef);
}

int sx__hnsw_entry(sx__hnsw *g, uint64_t *ep, uint32_t *top, sx_error *err) {
  return entry(g, ep, top, err);
}

int sx__hnsw_search_layer(sx__hnsw *g, const float *q, float qn, uint32_t level, size_t ef,
                          int only_live, uint64_t skip, size_t *nres, sx_error *err) {
  return search_layer(g, q, qn, level, ef, only_live, skip, nres, err);
}
