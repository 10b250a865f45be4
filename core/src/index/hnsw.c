/*
 * hnsw.c: the HNSW graph (Malkov & Yashunin) stored in page arrays (layout in
 * hnsw.h): its pages, distances and search. The other hnsw_*.c files build on it
 * (see hnsw_int.h).
 *
 * Reads go through the view's pages: a snapshot's are immutable, so a search takes
 * no lock. Pointers to leaf pages are cached in per-array tables indexed by leaf
 * number (leafcache): over a snapshot for the life of the context (the collection
 * layer pools contexts per read session); in a write transaction for one call, where
 * the tables also remember the writable copy once a page is dirtied (a cached pointer
 * to a committed page would go stale when the page is copied on write, so every
 * serial write to graph pages goes through lc_getw, which updates both tables;
 * threads linking in parallel write through spans instead, see hnsw_span.c).
 *
 * Insertion follows the paper and hnswlib: a level drawn from -ln(U) / ln(m)
 * (deterministic per slot), greedy descent through the upper levels, an ef_construction
 * search on each level of the node, neighbours chosen by the heuristic that keeps a
 * candidate only if it is closer to the node than to every neighbour already kept,
 * and back links pruned by the same heuristic when a list is full. Level 0 holds up
 * to 2m links, upper levels m.
 */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

/* ---- pages ---------------------------------------------------------------------- */

static const uint8_t *owner_page(sx__hnsw *g, sx_error *err) {
  if (g->owner_ro) return g->owner_ro;
  const uint8_t *o;
  if (sx__pv_page(&g->v, g->L.owner, &o, err)) return NULL;
  if (!g->v.t) g->owner_ro = o;
  return o;
}

static int lc_init(sx__hnsw *g, leafcache *c, unsigned pa_off) {
  (void)g;
  memset(c, 0, sizeof *c);
  c->pa_off = pa_off;
  return SX_OK;
}

static void lc_free(leafcache *c) {
  free(c->r);
  free(c->w);
}

static int lc_grow(leafcache *c, uint64_t leaf) {
  if (leaf < c->cap) return SX_OK;
  size_t nc = c->cap ? c->cap : 256;
  while (nc <= leaf) nc *= 2;
  const uint8_t **r = realloc(c->r, nc * sizeof *r);
  if (!r) return SX_NOMEM;
  c->r = r;
  uint8_t **w = realloc(c->w, nc * sizeof *w);
  if (!w) return SX_NOMEM;
  c->w = w;
  memset(c->r + c->cap, 0, (nc - c->cap) * sizeof *r);
  memset(c->w + c->cap, 0, (nc - c->cap) * sizeof *w);
  c->cap = nc;
  return SX_OK;
}

static int lc_miss(sx__hnsw *g, leafcache *c, uint64_t leaf, const uint8_t **out, sx_error *err) {
  if (lc_grow(c, leaf)) return sx__err_set(err, SX_NOMEM, "out of memory");
  const uint8_t *o = owner_page(g, err);
  if (!o) return err ? err->code : SX_IO;
  int rc;
  if (!g->v.t) {
    if (c->cur.v == NULL) sx__pa_cursor_init(&c->cur, &g->v, o + c->pa_off);
    rc = sx__pa_leaf(&c->cur, leaf, out, err);
  } else {
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &g->v, o + c->pa_off);
    rc = sx__pa_leaf(&cur, leaf, out, err);
  }
  if (!rc) c->r[leaf] = *out;
  return rc;
}

static inline int lc_get(sx__hnsw *g, leafcache *c, uint64_t leaf, const uint8_t **out,
                         sx_error *err) {
  if (leaf < c->cap && c->r[leaf]) {
    *out = c->r[leaf];
    return SX_OK;
  }
  return lc_miss(g, c, leaf, out, err);
}

/* Fills the read cache with leaves [0, n) (parallel inserts: done once, serially,
 * then copied into every thread's context by lc_seed; each thread filling its own
 * met the others at the transaction's page table on every miss). */
static int lc_prefill(sx__hnsw *g, leafcache *c, uint64_t n, sx_error *err) {
  for (uint64_t leaf = 0; leaf < n; leaf++) {
    const uint8_t *lp;
    int rc = lc_get(g, c, leaf, &lp, err);
    if (rc) return rc;
  }
  return SX_OK;
}

static int lc_seed(leafcache *dst, const leafcache *src) {
  if (!src->cap || lc_grow(dst, src->cap - 1)) return src->cap ? SX_NOMEM : SX_OK;
  memcpy(dst->r, src->r, src->cap * sizeof *src->r);
  return SX_OK;
}

static int lc_getw(sx__hnsw *g, leafcache *c, uint64_t leaf, uint8_t **out, sx_error *err) {
  if (lc_grow(c, leaf)) return sx__err_set(err, SX_NOMEM, "out of memory");
  if (c->w[leaf]) {
    *out = c->w[leaf];
    return SX_OK;
  }
  int rc = sx__pa_leaf_w(g->v.t, g->L.owner, c->pa_off, leaf, out, err);
  if (!rc) c->w[leaf] = *out, c->r[leaf] = *out;
  return rc;
}

/* ---- distances -------------------------------------------------------------- */

static int read_vec(sx__hnsw *g, uint64_t slot, float *dst, sx_error *err) {
  uint64_t off = slot * g->dim * 4, end = off + (uint64_t)g->dim * 4;
  uint8_t *d = (uint8_t *)dst;
  while (off < end) {
    const uint8_t *lp;
    int rc = lc_get(g, &g->vec, off / g->ps, &lp, err);
    if (rc) return rc;
    size_t in = off % g->ps, n = (size_t)(g->ps - in < end - off ? g->ps - in : end - off);
    memcpy(d, lp + in, n);
    d += n;
    off += n;
  }
  return SX_OK;
}

static int norm_of(sx__hnsw *g, uint64_t slot, float *out, sx_error *err) {
  const uint8_t *lp;
  int rc = lc_get(g, &g->norms, slot * 4 / g->ps, &lp, err);
  if (!rc) memcpy(out, lp + slot * 4 % g->ps, 4);
  return rc;
}

/* Leaf page of vector bytes at off (the cache over the view, filled on a miss). */
static inline int vec_leaf(sx__hnsw *g, uint64_t leaf, const uint8_t **lp, sx_error *err) {
  if (leaf < g->vec.cap && (*lp = g->vec.r[leaf]) != NULL) return SX_OK;
  return lc_miss(g, &g->vec, leaf, lp, err);
}

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

/* Distance between two stored vectors, without copying either: raw sums over the
 * runs where both lie within a page (cosine with their stored norms). */
static int dist_slots(sx__hnsw *g, uint64_t a, uint64_t b, float *d, sx_error *err) {
  uint64_t oa = a * g->vbytes, ob = b * g->vbytes, end = oa + g->vbytes;
  float sum = 0;
  while (oa < end) {
    const uint8_t *pa, *pb;
    int rc = vec_leaf(g, oa >> g->psh, &pa, err);
    if (!rc) rc = vec_leaf(g, ob >> g->psh, &pb, err);
    if (rc) return rc;
    size_t ia = oa & (g->ps - 1), ib = ob & (g->ps - 1), n = end - oa;
    if (g->ps - ia < n) n = g->ps - ia;
    if (g->ps - ib < n) n = g->ps - ib;
    sum += g->raw((const float *)(pa + ia), (const float *)(pb + ib), n / 4);
    oa += n;
    ob += n;
  }
  if (g->metric == SX__L2) {
    *d = sum;
  } else if (g->metric == SX__IP) {
    *d = 1.0f - sum;
  } else {
    float na = 0, nb = 0;
    int rc = norm_of(g, a, &na, err);
    if (!rc) rc = norm_of(g, b, &nb, err);
    if (rc) return rc;
    float den = na * nb;
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
  g->raw4(q, vp, nb, g->dim, d);
  if (g->metric != SX__L2)
    for (uint32_t j = 0; j < nb; j++) d[j] = 1.0f - d[j];
  return SX_OK;
}

/* ---- links -------------------------------------------------------------------- */

static int meta_of(sx__hnsw *g, uint64_t slot, uint32_t *level, uint32_t *uoff, sx_error *err) {
  uint32_t b[2];
  int rc;
  if (!g->v.t || g->par) {
    /* A snapshot, or parallel linking (which never writes meta): cached leaf pointers
     * (entries never straddle pages). */
    const uint8_t *lp;
    if ((rc = lc_get(g, &g->meta, (slot * 8) >> g->psh, &lp, err))) return rc;
    memcpy(b, lp + ((slot * 8) & (g->ps - 1)), 8);
  } else {
    const uint8_t *o = owner_page(g, err);
    if (!o) return err ? err->code : SX_IO;
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &g->v, o + g->L.meta_off);
    if ((rc = sx__pa_read(&cur, slot * 8, b, 8, err))) return rc;
  }
  *level = b[0];
  if (uoff) *uoff = b[1];
  if (b[0] > MAX_LEVEL) return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has level %u", (unsigned long long)slot, b[0]);
  return SX_OK;
}

/* The links of slot at level: a pointer to count then ids (level 0, in the page), or
 * a copy in g->lbuf (upper levels). */
/* Where the list of slot at level lies: a span of its array (parallel inserts). */
static int list_span(sx__hnsw *g, uint64_t slot, uint32_t level, int write, span *sp,
                     sx_error *err) {
  if (level == 0)
    return sx__hnsw_span_get(g, 0, slot / g->epp0 * g->ps + slot % g->epp0 * g->e0, g->e0, write, sp, err);
  uint32_t lv = 0, uoff = 0;
  int rc = meta_of(g, slot, &lv, &uoff, err);
  if (rc) return rc;
  if (level > lv) return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has no level %u", (unsigned long long)slot, level);
  return sx__hnsw_span_get(g, 1, ((uint64_t)uoff + (uint64_t)(level - 1) * (1 + g->m)) * 4,
                  (1 + (size_t)g->m) * 4, write, sp, err);
}

static int links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t **out, sx_error *err) {
  if (g->par) {
    uint32_t *buf = level ? g->lbuf : g->l0buf;
    span sp;
    int rc = list_span(g, slot, level, 0, &sp, err);
    if (rc) return rc;
    sx__hnsw_span_read_stable(&sp, buf, (1 + (size_t)(level ? g->m : g->m0)) * 4);
    *out = buf;
  } else if (level == 0) {
    const uint8_t *lp;
    int rc = lc_get(g, &g->g0, slot / g->epp0, &lp, err);
    if (rc) return rc;
    *out = (const uint32_t *)(lp + (slot % g->epp0) * g->e0);
  } else {
    uint32_t lv = 0, uoff = 0;
    int rc = meta_of(g, slot, &lv, &uoff, err);
    if (rc) return rc;
    if (level > lv) return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has no level %u", (unsigned long long)slot, level);
    uint64_t at = ((uint64_t)uoff + (uint64_t)(level - 1) * (1 + g->m)) * 4;
    const uint8_t *lp;
    if (!g->v.t && (at & (g->ps - 1)) + (1 + (uint64_t)g->m) * 4 <= g->ps) {
      /* A snapshot, and the list within one page: read it in place. */
      if ((rc = lc_get(g, &g->up, at >> g->psh, &lp, err))) return rc;
      *out = (const uint32_t *)(lp + (at & (g->ps - 1)));
      if ((*out)[0] > g->m)
        return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has %u links at level %u (at most %u)",
                           (unsigned long long)slot, (*out)[0], level, g->m);
      return SX_OK;
    }
    const uint8_t *o = owner_page(g, err);
    if (!o) return err ? err->code : SX_IO;
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &g->v, o + g->L.upper_off);
    /* The count, then only the links in use: the rest of the (1 + m)-word list may lie
     * on a page of the array that was never written (older files wrote counts only). */
    rc = sx__pa_read(&cur, at, g->lbuf, 4, err);
    if (!rc && g->lbuf[0] > g->m)
      return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has %u links at level %u (at most %u)",
                         (unsigned long long)slot, g->lbuf[0], level, g->m);
    if (!rc && g->lbuf[0]) rc = sx__pa_read(&cur, at + 4, g->lbuf + 1, g->lbuf[0] * 4, err);
    if (rc) return rc;
    *out = g->lbuf;
  }
  uint32_t cap = level ? g->m : g->m0;
  if ((*out)[0] > cap)
    return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has %u links at level %u (at most %u)",
                       (unsigned long long)slot, (*out)[0], level, cap);
  return SX_OK;
}

static int set_links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t *ids, uint32_t n,
                     sx_error *err) {
  if (g->par) {
    span sp;
    int rc = list_span(g, slot, level, 1, &sp, err);
    if (rc) return rc;
    uint32_t buf[1 + 512];
    buf[0] = n;
    if (n) memcpy(buf + 1, ids, n * 4);
    sx__hnsw_span_write(&sp, buf, (1 + (size_t)n) * 4);
    sx__hnsw_span_put(&sp);
    return SX_OK;
  }
  if (level == 0) {
    uint8_t *lp;
    int rc = lc_getw(g, &g->g0, slot / g->epp0, &lp, err);
    if (rc) return rc;
    uint32_t *l = (uint32_t *)(lp + (slot % g->epp0) * g->e0);
    l[0] = n;
    if (n) memcpy(l + 1, ids, n * 4);
    return SX_OK;
  }
  uint32_t lv = 0, uoff = 0;
  int rc = meta_of(g, slot, &lv, &uoff, err);
  if (rc) return rc;
  uint32_t buf[1 + 256];
  buf[0] = n;
  if (n) memcpy(buf + 1, ids, n * 4);
  return sx__pa_write(g->v.t, g->L.owner, g->L.upper_off,
                      ((uint64_t)uoff + (uint64_t)(level - 1) * (1 + g->m)) * 4, buf, (1 + n) * 4, err);
}

/* slot / epp0 and slot % epp0, by Lemire's multiply-high division (exact for 32-bit
 * slots): a division instruction per expansion showed in profiles. */
static inline uint32_t leaf0(const sx__hnsw *g, uint32_t slot, uint32_t *rem) {
  uint32_t q = g->epp0 == 1 ? slot : (uint32_t)(((unsigned __int128)g->epp0_m * slot) >> 64);
  *rem = slot - q * g->epp0;
  return q;
}

/* ---- heaps -------------------------------------------------------------------- */

/* Order of hits while searching: by distance, ties to the node linked last. Each
 * linked node gets a stamp from a counter of the collection, stored per slot: with
 * slots reused after deletes, a node linked last may have any slot. (Nodes linked
 * before stamps existed have none; their slot serves, and every stamp is at least
 * the number of slots there were when it was given, so it is newer than all of
 * them.) In a parallel insert, nodes are linked out of slot order, and a node takes
 * its stamp when it starts to become reachable. Among identical vectors the lists
 * keep the nodes linked last (see sx__hnsw_cmp_sel), so the graph of duplicates is a chain in
 * link order, and searches must follow it to its newest end: with ties left to heap
 * order, or to slot order after slots were reused, the nodes a search linked to
 * wandered off it and whole stretches of duplicates lost every link in. Only ties
 * read stamps. */
static uint64_t stored_recency(const sx__hnsw *g, uint32_t slot) {
  uint64_t off = (uint64_t)slot * 8, leaf = off >> g->psh, st = 0;
  const uint8_t *lp;
  if (leaf >= g->stamps.cap || !(lp = g->stamps.r[leaf])) {
    /* The caches are the context's own scratch, as for searches. */
    sx__hnsw *mg = (sx__hnsw *)(uintptr_t)g;
    if (lc_miss(mg, &mg->stamps, leaf, &lp, NULL)) return slot;
  }
  memcpy(&st, lp + (off & (g->ps - 1)), 8);
  return st ? st : slot;
}
static inline uint64_t recency(const sx__hnsw *g, uint32_t slot) {
  if (!g->par || slot < g->par->base) return stored_recency(g, slot);
  return atomic_load_explicit(&g->par->stamp[slot - g->par->base], memory_order_relaxed);
}
static inline int closer(const sx__hnsw *g, sx__hit a, sx__hit b) {
  return a.d < b.d || (a.d == b.d && recency(g, a.slot) > recency(g, b.slot));
}

/* min-heap by d (candidates) */
static void minh_push(const sx__hnsw *g, sx__hit *h, size_t *n, sx__hit x) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!closer(g, x, h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}
static sx__hit minh_pop(const sx__hnsw *g, sx__hit *h, size_t *n) {
  sx__hit top = h[0], x = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    sx__hit mx = x;
    if (l < *n && closer(g, h[l], mx)) m = l, mx = h[l];
    if (r < *n && closer(g, h[r], mx)) m = r;
    if (m == i) break;
    h[i] = h[m];
    i = m;
  }
  if (*n) h[i] = x;
  return top;
}
/* max-heap by d (results) */
static void maxh_push(const sx__hnsw *g, sx__hit *h, size_t *n, sx__hit x) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!closer(g, h[p], x)) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}
static void maxh_pop(const sx__hnsw *g, sx__hit *h, size_t *n) {
  sx__hit x = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    sx__hit mx = x;
    if (l < *n && closer(g, mx, h[l])) m = l, mx = h[l];
    if (r < *n && closer(g, mx, h[r])) m = r;
    if (m == i) break;
    h[i] = h[m];
    i = m;
  }
  if (*n) h[i] = x;
}

static int cmp_hit(const void *a, const void *b) {
  const sx__hit *x = a, *y = b;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* For choosing neighbours: by distance, ties putting the node linked last (the
 * higher recency, see recency) first, as hnswlib's heaps do. With ties by lower slot, identical vectors all
 * linked to the oldest few nodes, whose full lists then dropped every newcomer: all
 * but ~2m of them were unreachable. */
int sx__hnsw_cmp_sel(const void *a, const void *b, void *ctx) {
  const sx__hit *x = a, *y = b;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  uint64_t rx = recency(ctx, x->slot), ry = recency(ctx, y->slot);
  return rx > ry ? -1 : rx < ry;
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

static int is_live(sx__hnsw *g, uint64_t slot, sx_error *err, int *live) {
  const uint8_t *lp;
  int rc = lc_get(g, &g->live, slot >> (3 + g->psh), &lp, err);
  *live = !rc && (lp[(slot >> 3) & (g->ps - 1)] & (1u << (slot % 8)));
  return rc;
}

/* Prefetches a vector a few distances ahead: the first lines of each page it lies
 * in. Within a page the hardware prefetcher follows the stream once started, but it
 * stops at a 4 KiB boundary, and most vectors of a few hundred dimensions straddle
 * one. Prefetching every line of the vector instead filled the core's miss buffers
 * and stalled on the prefetches themselves; two lines per page measured best (the
 * figures are in bench/HNSW.md). */
#define PF_NEXT 2  /* vectors ahead */
#define PF_LINES 2 /* lines per page */
static inline void prefetch_vector(const sx__hnsw *g, uint64_t slot) {
  uint64_t off = slot * g->vbytes, end = off + g->vbytes;
  while (off < end) {
    uint64_t leaf = off >> g->psh;
    if (leaf >= g->vec.cap || !g->vec.r[leaf]) return;
    const uint8_t *p = g->vec.r[leaf] + (off & (g->ps - 1));
    uint64_t stop = (leaf + 1) << g->psh;
    if (stop > end) stop = end;
    for (uint64_t o = off; o < stop && o < off + PF_LINES * 64; o += 64, p += 64) __builtin_prefetch(p);
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
  return links(g, s, level, l, err);
}

/* The neighbours in list l (of slot from) not visited yet, marked visited, into
 * ids[0..*todo); their vectors are prefetched before any is measured. */
static inline int take_unvisited(sx__hnsw *g, uint32_t from, const uint32_t *l, uint32_t *ids,
                                 size_t cap, uint32_t *todo, sx_error *err) {
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
static inline int measure(sx__hnsw *g, const float *q, float qn, const uint32_t *ids,
                          uint32_t todo, uint32_t i, float ds[4], float *d, sx_error *err) {
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
    maxh_push(g, g->res, nr, x);
    if (*nr > ef) maxh_pop(g, g->res, nr);
  }
  return SX_OK;
}

static int search_layer(sx__hnsw *g, const float *q, float qn, uint32_t level, size_t ef,
                        int only_live, uint64_t skip, size_t *nres, sx_error *err) {
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
    if (live && s != skip) maxh_push(g, res, &nr, entries[i]);
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
    if ((rc = take_unvisited(g, c.slot, l, ids, sizeof ids / sizeof *ids, &todo, err))) return rc;
    for (uint32_t i = 0; i < todo; i++) {
      float d;
      if ((rc = measure(g, q, qn, ids, todo, i, ds, &d, err))) return rc;
      sx__hit x = {d, ids[i]};
      if (nr < ef || closer(g, x, res[0])) {
        if ((rc = offer(g, x, level, ef, only_live, skip, &nc, &nr, err))) return rc;
      }
    }
  }
  *nres = nr;
  return SX_OK;
}

/* ---- open / close -------------------------------------------------------------- */

int sx__hnsw_open(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric,
                  uint32_t m, uint32_t efc, sx__hnsw **out, sx_error *err) {
  *out = NULL;
  /* m comes from a page: search_layer's stack list holds 2 * SX__HNSW_M_MAX links. */
  if (m < 1 || m > SX__HNSW_M_MAX)
    return sx__err_set(err, SX_CORRUPT, "HNSW graph has m = %u (at most %d)", m, SX__HNSW_M_MAX);
  sx__hnsw *g = calloc(1, sizeof *g);
  if (!g) return sx__err_set(err, SX_NOMEM, "out of memory");
  g->v = *v;
  g->L = *lay;
  g->dim = dim;
  g->metric = metric;
  g->m = m;
  g->m0 = 2 * m;
  g->efc = efc;
  g->ps = sx__pager_page_size(v->p);
  while ((1u << g->psh) < g->ps) g->psh++;
  g->vbytes = (uint64_t)dim * 4;
  g->raw = sx__raw(metric == SX__L2 ? SX__L2 : SX__IP);
  /* Cosine keeps dist_to (its exact-scan kernel for whole vectors); a vector longer
   * than a page may span three. */
  g->raw4 = metric != SX__COSINE && g->vbytes <= g->ps ? sx__raw4(metric) : NULL;
  g->e0 = (1 + g->m0) * 4;
  g->epp0 = g->ps / g->e0;
  g->epp0_m = g->epp0 > 1 ? UINT64_MAX / g->epp0 + 1 : 0;
  g->ml = 1.0 / log((double)(m < 2 ? 2 : m));
  int rc = lc_init(g, &g->vec, lay->vec_off);
  if (!rc) rc = lc_init(g, &g->g0, lay->graph0_off);
  if (!rc) rc = lc_init(g, &g->live, lay->live_off);
  if (!rc) rc = lc_init(g, &g->norms, lay->norms_off);
  if (!rc) rc = lc_init(g, &g->up, lay->upper_off);
  if (!rc) rc = lc_init(g, &g->meta, lay->meta_off);
  if (!rc) rc = lc_init(g, &g->stamps, lay->stamp_off);
  g->vbuf = malloc((size_t)dim * 4);
  g->lbuf = malloc((1 + (size_t)m) * 4);
  g->l0buf = malloc((1 + (size_t)g->m0) * 4);
  const uint8_t *o = owner_page(g, err);
  if (rc || !g->vbuf || !g->lbuf || !g->l0buf || !o) {
    sx__hnsw_close(g);
    return o ? sx__err_set(err, SX_NOMEM, "out of memory") : (err ? err->code : SX_IO);
  }
  g->nslots = sx__rd64(o + lay->nslots_off);
  /* Free slots are in no list, so only dead ones waiting to be unlinked are met. */
  g->all_live = sx__rd64(o + lay->count_off) + sx__rd64(o + lay->nfree_off) == g->nslots;
  *out = g;
  return SX_OK;
}

void sx__hnsw_close(sx__hnsw *g) {
  if (!g) return;
  lc_free(&g->vec);
  lc_free(&g->g0);
  lc_free(&g->live);
  lc_free(&g->norms);
  lc_free(&g->up);
  lc_free(&g->meta);
  lc_free(&g->stamps);
  free(g->vbuf);
  free(g->lbuf);
  free(g->l0buf);
  free(g->vtag);
  free(g->cand);
  free(g->res);
  free(g);
}

/* ---- search --------------------------------------------------------------------- */

static int entry(sx__hnsw *g, uint64_t *ep, uint32_t *top, sx_error *err) {
  if (g->par) {
    sx__mutex_lock(&g->par->mu);
    *ep = g->par->ep;
    *top = g->par->top;
    sx__mutex_unlock(&g->par->mu);
    return SX_OK;
  }
  const uint8_t *o = owner_page(g, err);
  if (!o) return err ? err->code : SX_IO;
  uint32_t e = sx__rd32(o + g->L.ep_off);
  *top = sx__rd32(o + g->L.ep_off + 4);
  *ep = e ? e - 1 : UINT64_MAX;
  if (e && (*ep >= g->nslots || *top > MAX_LEVEL))
    return sx__err_set(err, SX_CORRUPT, "HNSW entry point %u (level %u) is out of range", e - 1, *top);
  return SX_OK;
}

/* Greedy descent from the entry point down to level `to` (exclusive). */
static int descend(sx__hnsw *g, const float *q, float qn, uint64_t ep, uint32_t top, uint32_t to,
                   sx__hit *best, sx_error *err) {
  float d;
  int rc = dist_to(g, q, qn, ep, &d, err);
  if (rc) return rc;
  best->d = d;
  best->slot = (uint32_t)ep;
  for (uint32_t l = top; l > to; l--) {
    for (int changed = 1; changed;) {
      changed = 0;
      const uint32_t *ln;
      rc = links(g, best->slot, l, &ln, err);
      if (rc) return rc;
      /* ln stays valid: nothing below reads another list. */
      uint32_t cnt = ln[0];
      const uint32_t *ids = ln + 1;
      for (uint32_t i = 0; i < cnt; i++) {
        if (ids[i] >= g->nslots) return sx__err_set(err, SX_CORRUPT, "HNSW link past the end");
        rc = dist_to(g, q, qn, ids[i], &d, err);
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

int sx__hnsw_search(sx__hnsw *g, const float *q, size_t k, uint32_t ef, sx__hit *out, size_t *n,
                    sx_error *err) {
  *n = 0;
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  int rc = entry(g, &ep, &top, err);
  if (rc || ep == UINT64_MAX) return rc;
  float qn = g->metric == SX__COSINE ? sx__norm(q, g->dim) : 0;
  size_t efs = ef < k ? k : ef;
  if (ensure_scratch(g, efs)) return sx__err_set(err, SX_NOMEM, "out of memory for HNSW search");
  sx__hit best;
  rc = descend(g, q, qn, ep, top, 0, &best, err);
  if (rc) return rc;
  g->res[0] = best;
  size_t nr = 1;
  /* As hnswlib: no liveness test per hit while nothing is deleted. */
  rc = search_layer(g, q, qn, 0, efs, !g->all_live, UINT64_MAX, &nr, err);
  if (rc) return rc;
  qsort(g->res, nr, sizeof *g->res, cmp_hit);
  *n = nr < k ? nr : k;
  /* Hits tied with the k-th go too: the caller breaks distance ties by id. */
  while (*n > 0 && *n < nr && g->res[*n].d == g->res[*n - 1].d) (*n)++;
  memcpy(out, g->res, *n * sizeof *out);
  return SX_OK;
}


/* ---- for the other files of the index (hnsw_int.h) ---------------------------- */

int sx__hnsw_descend(sx__hnsw *g, const float *q, float qn, uint64_t ep, uint32_t top, uint32_t to,
                   sx__hit *best, sx_error *err) {
  return descend(g, q, qn, ep, top, to, best, err);
}

int sx__hnsw_dist_slots(sx__hnsw *g, uint64_t a, uint64_t b, float *d, sx_error *err) {
  return dist_slots(g, a, b, d, err);
}

int sx__hnsw_dist_to(sx__hnsw *g, const float *q, float qn, uint64_t slot, float *d, sx_error *err) {
  return dist_to(g, q, qn, slot, d, err);
}

int sx__hnsw_ensure_scratch(sx__hnsw *g, size_t ef) {
  return ensure_scratch(g, ef);
}

int sx__hnsw_entry(sx__hnsw *g, uint64_t *ep, uint32_t *top, sx_error *err) {
  return entry(g, ep, top, err);
}

int sx__hnsw_is_live(sx__hnsw *g, uint64_t slot, sx_error *err, int *live) {
  return is_live(g, slot, err, live);
}

int sx__hnsw_lc_getw(sx__hnsw *g, leafcache *c, uint64_t leaf, uint8_t **out, sx_error *err) {
  return lc_getw(g, c, leaf, out, err);
}

int sx__hnsw_lc_prefill(sx__hnsw *g, leafcache *c, uint64_t n, sx_error *err) {
  return lc_prefill(g, c, n, err);
}

int sx__hnsw_lc_seed(leafcache *dst, const leafcache *src) {
  return lc_seed(dst, src);
}

int sx__hnsw_links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t **out, sx_error *err) {
  return links(g, slot, level, out, err);
}

int sx__hnsw_list_span(sx__hnsw *g, uint64_t slot, uint32_t level, int write, span *sp,
                     sx_error *err) {
  return list_span(g, slot, level, write, sp, err);
}

int sx__hnsw_meta_of(sx__hnsw *g, uint64_t slot, uint32_t *level, uint32_t *uoff, sx_error *err) {
  return meta_of(g, slot, level, uoff, err);
}

const uint8_t *sx__hnsw_owner_page(sx__hnsw *g, sx_error *err) {
  return owner_page(g, err);
}

int sx__hnsw_read_vec(sx__hnsw *g, uint64_t slot, float *dst, sx_error *err) {
  return read_vec(g, slot, dst, err);
}

int sx__hnsw_search_layer(sx__hnsw *g, const float *q, float qn, uint32_t level, size_t ef,
                        int only_live, uint64_t skip, size_t *nres, sx_error *err) {
  return search_layer(g, q, qn, level, ef, only_live, skip, nres, err);
}

int sx__hnsw_set_links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t *ids, uint32_t n,
                     sx_error *err) {
  return set_links(g, slot, level, ids, n, err);
}

uint64_t sx__hnsw_stored_recency(const sx__hnsw *g, uint32_t slot) {
  return stored_recency(g, slot);
}
