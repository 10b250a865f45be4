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
 * Searches are in hnsw_search.c; the helpers they call per node are inline in
 * hnsw_int.h.
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
  if (b[0] > MAX_LEVEL)
    return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has level %u", (unsigned long long)slot,
                       b[0]);
  return SX_OK;
}

/* The links of slot at level: a pointer to count then ids (level 0, in the page), or
 * a copy in g->lbuf (upper levels). */
/* Where the list of slot at level lies: a span of its array (parallel inserts). */
static int list_span(sx__hnsw *g, uint64_t slot, uint32_t level, int write, span *sp,
                     sx_error *err) {
  if (level == 0)
    return sx__hnsw_span_get(g, 0, slot / g->epp0 * g->ps + slot % g->epp0 * g->e0, g->e0, write,
                             sp, err);
  uint32_t lv = 0, uoff = 0;
  int rc = meta_of(g, slot, &lv, &uoff, err);
  if (rc) return rc;
  if (level > lv)
    return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has no level %u", (unsigned long long)slot,
                       level);
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
    if (level > lv)
      return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has no level %u",
                         (unsigned long long)slot, level);
    uint64_t at = ((uint64_t)uoff + (uint64_t)(level - 1) * (1 + g->m)) * 4;
    const uint8_t *lp;
    if (!g->v.t) {
      /* A snapshot: the node's lists lie within the words its graph has used (an
       * offset from a damaged page would size the leaf cache by itself). */
      const uint8_t *o = owner_page(g, err);
      if (!o) return err ? err->code : SX_IO;
      if ((uint64_t)uoff + (uint64_t)lv * (1 + g->m) > sx__rd64(o + g->L.upper_len_off))
        return sx__err_set(err, SX_CORRUPT,
                           "HNSW node %llu has upper-level links at word %u, past those in use",
                           (unsigned long long)slot, uoff);
    }
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
                      ((uint64_t)uoff + (uint64_t)(level - 1) * (1 + g->m)) * 4, buf, (1 + n) * 4,
                      err);
}

/* ---- link order ------------------------------------------------------------------ */

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

/* For choosing neighbours: by distance, ties putting the node linked last (the
 * higher recency, see recency) first, as hnswlib's heaps do. With ties by lower slot, identical
 * vectors all linked to the oldest few nodes, whose full lists then dropped every newcomer: all but
 * ~2m of them were unreachable. */
int sx__hnsw_cmp_sel(const void *a, const void *b, void *ctx) {
  const sx__hit *x = a, *y = b;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  uint64_t rx = recency(ctx, x->slot), ry = recency(ctx, y->slot);
  return rx > ry ? -1 : rx < ry;
}

/* ---- open / close -------------------------------------------------------------- */

int sx__hnsw_open(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric, uint32_t m,
                  uint32_t efc, sx__hnsw **out, sx_error *err) {
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
  g->raw4 =
      metric != SX__COSINE && g->vbytes <= g->ps && sx__raw4_preferred() ? sx__raw4(metric) : NULL;
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
  uint64_t count = sx__rd64(o + lay->count_off), nfree = sx__rd64(o + lay->nfree_off);
  /* The counters come from a page: once per call, before they size anything. */
  if (g->nslots > 0xfffffffeu || count > g->nslots || nfree > g->nslots - count) {
    sx__hnsw_close(g);
    return sx__err_set(err, SX_CORRUPT,
                       "HNSW graph of page %u counts %llu live and %llu free in %llu slots",
                       lay->owner, (unsigned long long)count, (unsigned long long)nfree,
                       (unsigned long long)g->nslots);
  }
  if ((rc = sx__hnsw_quant_open(g, o, err))) {
    sx__hnsw_close(g);
    return rc;
  }
  /* Free slots are in no list, so only dead ones waiting to be unlinked are met. */
  g->all_live = count + nfree == g->nslots;
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
  lc_free(&g->codes);
  free(g->qq);
  free(g->vbuf);
  free(g->lbuf);
  free(g->l0buf);
  free(g->vtag);
  free(g->cand);
  free(g->res);
  free(g);
}

/* ---- for the other files of the index (hnsw_int.h) ---------------------------- */

int sx__hnsw_dist_slots(sx__hnsw *g, uint64_t a, uint64_t b, float *d, sx_error *err) {
  return dist_slots(g, a, b, d, err);
}

int sx__hnsw_lc_miss(sx__hnsw *g, leafcache *c, uint64_t leaf, const uint8_t **out, sx_error *err) {
  return lc_miss(g, c, leaf, out, err);
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

int sx__hnsw_links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t **out,
                   sx_error *err) {
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

int sx__hnsw_set_links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t *ids, uint32_t n,
                       sx_error *err) {
  return set_links(g, slot, level, ids, n, err);
}

uint64_t sx__hnsw_stored_recency(const sx__hnsw *g, uint32_t slot) {
  return stored_recency(g, slot);
}
