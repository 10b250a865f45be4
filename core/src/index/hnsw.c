/*
 * hnsw.c: the HNSW graph (Malkov & Yashunin) stored in page arrays; layout in
 * index.h.
 *
 * Reads go through the view's pages: a snapshot's are immutable, so a search takes
 * no lock. Pointers to leaf pages are cached for the life of one call: over a
 * snapshot in a small direct-mapped table; in a write transaction in per-array
 * tables that remember the writable copy once a page is dirtied (a cached pointer to
 * a committed page would go stale when the page is copied on write, so every write
 * to graph pages goes through here and updates the table).
 *
 * Insertion follows the paper and hnswlib: a level drawn from -ln(U) / ln(m)
 * (deterministic per slot), greedy descent through the upper levels, an ef_construction
 * search on each level of the node, neighbours chosen by the heuristic that keeps a
 * candidate only if it is closer to the node than to every neighbour already kept,
 * and back links pruned by the same heuristic when a list is full. Level 0 holds up
 * to 2m links, upper levels m.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"

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

struct sx__hnsw {
  sx__pv v;
  sx__hnsw_layout L;
  uint32_t dim, m, m0, efc, ps, epp0, e0;
  int metric;
  double ml;
  leafcache vec, g0, live, norms;
  const uint8_t *owner_ro; /* the owner page, over a snapshot (immutable) */
  float *vbuf, *vbuf2; /* scratch vectors */
  uint64_t nslots;
  /* search scratch: a node is visited iff vtag[node] == tag */
  uint32_t *vtag;
  size_t vcap;
  uint32_t tag;
  sx__hit *cand, *res;
  size_t cap_heap, cap_cand;
  uint32_t *lbuf; /* link list scratch */
};

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

/* Distance from q (norm qn, used by cosine) to the vector of slot: by the exact-scan
 * kernel straight from its page, or, when it straddles two pages, by adding the raw
 * sums (sx__partial) of both parts without copying it. (Recovering partial dot
 * products as 1 - ip_distance lost them to rounding at small norms.) */
static int norm_of(sx__hnsw *g, uint64_t slot, float *out, sx_error *err) {
  const uint8_t *lp;
  int rc = lc_get(g, &g->norms, slot * 4 / g->ps, &lp, err);
  if (!rc) memcpy(out, lp + slot * 4 % g->ps, 4);
  return rc;
}

static int dist_to(sx__hnsw *g, const float *q, float qn, uint64_t slot, float *d, sx_error *err) {
  uint64_t off = slot * g->dim * 4;
  size_t in = off % g->ps;
  const float *v = g->vbuf;
  if (in + (uint64_t)g->dim * 4 <= g->ps) {
    const uint8_t *lp;
    int rc = lc_get(g, &g->vec, off / g->ps, &lp, err);
    if (rc) return rc;
    v = (const float *)(lp + in);
  } else {
    /* The vector straddles two pages: add the raw sums of both parts (l2 and dot
     * products add up) instead of copying it; cosine takes |v| from the stored norms. */
    float sum = 0;
    size_t done = 0;
    const int what = g->metric == SX__L2 ? SX__L2 : SX__IP;
    for (uint64_t end = off + (uint64_t)g->dim * 4; off < end;) {
      const uint8_t *lp;
      int rc = lc_get(g, &g->vec, off / g->ps, &lp, err);
      if (rc) return rc;
      size_t at = off % g->ps, n = (size_t)(g->ps - at < end - off ? g->ps - at : end - off);
      sum += sx__partial(what, q + done, (const float *)(lp + at), n / 4);
      done += n / 4;
      off += n;
    }
    if (g->metric == SX__L2) {
      *d = sum;
    } else if (g->metric == SX__IP) {
      *d = 1.0f - sum;
    } else {
      float vn = 0;
      int rc = norm_of(g, slot, &vn, err);
      if (rc) return rc;
      float den = qn * vn;
      *d = den > 0 ? 1.0f - sum / den : 1.0f;
      if (*d < 0) *d = 0;
      if (*d > 2) *d = 2;
    }
    return SX_OK;
  }
  *d = sx__distance(g->metric, q, qn, v, g->dim);
  return SX_OK;
}

/* ---- links -------------------------------------------------------------------- */

static int meta_of(sx__hnsw *g, uint64_t slot, uint32_t *level, uint32_t *uoff, sx_error *err) {
  const uint8_t *o = owner_page(g, err);
  if (!o) return err ? err->code : SX_IO;
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &g->v, o + g->L.meta_off);
  uint32_t b[2];
  int rc = sx__pa_read(&cur, slot * 8, b, 8, err);
  if (rc) return rc;
  *level = b[0];
  if (uoff) *uoff = b[1];
  if (b[0] > MAX_LEVEL) return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has level %u", (unsigned long long)slot, b[0]);
  return SX_OK;
}

/* The links of slot at level: a pointer to count then ids (level 0, in the page), or
 * a copy in g->lbuf (upper levels). */
static int links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t **out, sx_error *err) {
  if (level == 0) {
    const uint8_t *lp;
    int rc = lc_get(g, &g->g0, slot / g->epp0, &lp, err);
    if (rc) return rc;
    *out = (const uint32_t *)(lp + (slot % g->epp0) * g->e0);
  } else {
    uint32_t lv = 0, uoff = 0;
    int rc = meta_of(g, slot, &lv, &uoff, err);
    if (rc) return rc;
    if (level > lv) return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has no level %u", (unsigned long long)slot, level);
    const uint8_t *o = owner_page(g, err);
    if (!o) return err ? err->code : SX_IO;
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &g->v, o + g->L.upper_off);
    /* The count, then only the links in use: the rest of the (1 + m)-word list may lie
     * on a page of the array that was never written (lists straddle pages). */
    uint64_t at = ((uint64_t)uoff + (uint64_t)(level - 1) * (1 + g->m)) * 4;
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

/* ---- heaps -------------------------------------------------------------------- */

/* min-heap by d (candidates) */
static void minh_push(sx__hit *h, size_t *n, sx__hit x) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p].d <= x.d) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}
static sx__hit minh_pop(sx__hit *h, size_t *n) {
  sx__hit top = h[0], x = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    float md = x.d;
    if (l < *n && h[l].d < md) m = l, md = h[l].d;
    if (r < *n && h[r].d < md) m = r;
    if (m == i) break;
    h[i] = h[m];
    i = m;
  }
  if (*n) h[i] = x;
  return top;
}
/* max-heap by d (results) */
static void maxh_push(sx__hit *h, size_t *n, sx__hit x) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p].d >= x.d) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}
static void maxh_pop(sx__hit *h, size_t *n) {
  sx__hit x = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    float md = x.d;
    if (l < *n && h[l].d > md) m = l, md = h[l].d;
    if (r < *n && h[r].d > md) m = r;
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

/* For choosing neighbours: by distance, ties putting the newer node (higher slot)
 * first, as hnswlib's heaps do. With ties by lower slot, identical vectors all
 * linked to the oldest few nodes, whose full lists then dropped every newcomer: all
 * but ~2m of them were unreachable. */
static int cmp_sel(const void *a, const void *b) {
  const sx__hit *x = a, *y = b;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  return x->slot > y->slot ? -1 : x->slot < y->slot;
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
  int rc = lc_get(g, &g->live, slot / 8 / g->ps, &lp, err);
  *live = !rc && (lp[slot / 8 % g->ps] & (1u << (slot % 8)));
  return rc;
}

/*
 * The ef nearest nodes to q at `level`, found from the entry points in res[0..*nres)
 * (distances filled). Results replace them in res, as a max-heap. With only_live,
 * dead nodes are walked through but not kept. `skip` (or UINT64_MAX) is never kept.
 */
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
    minh_push(g->cand, &nc, entries[i]);
    int live = 1;
    if (only_live && (rc = is_live(g, s, err, &live))) return rc;
    if (live && s != skip) maxh_push(res, &nr, entries[i]);
  }
  while (nc) {
    sx__hit c = minh_pop(g->cand, &nc);
    if (nr >= ef && c.d > res[0].d) break;
    const uint32_t *l;
    rc = links(g, c.slot, level, &l, err);
    if (rc) return rc;
    uint32_t cnt = l[0];
    uint32_t ids[1 + 512];
    memcpy(ids, l + 1, cnt * 4); /* upper-level lists live in g->lbuf, reused below */
    /* The unvisited neighbours, their vectors prefetched before any is measured. */
    uint32_t todo = 0;
    for (uint32_t i = 0; i < cnt; i++) {
      uint64_t n = ids[i];
      if (n >= g->nslots)
        return sx__err_set(err, SX_CORRUPT, "HNSW node %u links to slot %llu past the end", c.slot,
                           (unsigned long long)n);
      if (g->vtag[n] == g->tag) continue;
      g->vtag[n] = g->tag;
      ids[todo++] = (uint32_t)n;
      uint64_t off = n * g->dim * 4;
      uint64_t leaf = off / g->ps;
      if (leaf < g->vec.cap && g->vec.r[leaf]) {
        const uint8_t *a = g->vec.r[leaf] + off % g->ps;
        __builtin_prefetch(a);
        __builtin_prefetch(a + 64);
      }
    }
    for (uint32_t i = 0; i < todo; i++) {
      uint64_t n = ids[i];
      float d;
      rc = dist_to(g, q, qn, n, &d, err);
      if (rc) return rc;
      if (nr < ef || d < res[0].d) {
        if ((rc = cand_room(g, nc, err))) return rc;
        minh_push(g->cand, &nc, (sx__hit){d, (uint32_t)n});
        int live = 1;
        if (only_live && (rc = is_live(g, n, err, &live))) return rc;
        if (live && n != skip) {
          maxh_push(res, &nr, (sx__hit){d, (uint32_t)n});
          if (nr > ef) maxh_pop(res, &nr);
        }
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
  g->e0 = (1 + g->m0) * 4;
  g->epp0 = g->ps / g->e0;
  g->ml = 1.0 / log((double)(m < 2 ? 2 : m));
  int rc = lc_init(g, &g->vec, lay->vec_off);
  if (!rc) rc = lc_init(g, &g->g0, lay->graph0_off);
  if (!rc) rc = lc_init(g, &g->live, lay->live_off);
  if (!rc) rc = lc_init(g, &g->norms, lay->norms_off);
  g->vbuf = malloc((size_t)dim * 4);
  g->vbuf2 = malloc((size_t)dim * 4);
  g->lbuf = malloc((1 + (size_t)m) * 4);
  const uint8_t *o = owner_page(g, err);
  if (rc || !g->vbuf || !g->vbuf2 || !g->lbuf || !o) {
    sx__hnsw_close(g);
    return o ? sx__err_set(err, SX_NOMEM, "out of memory") : (err ? err->code : SX_IO);
  }
  g->nslots = sx__rd64(o + lay->nslots_off);
  *out = g;
  return SX_OK;
}

void sx__hnsw_close(sx__hnsw *g) {
  if (!g) return;
  lc_free(&g->vec);
  lc_free(&g->g0);
  lc_free(&g->live);
  lc_free(&g->norms);
  free(g->vbuf);
  free(g->vbuf2);
  free(g->lbuf);
  free(g->vtag);
  free(g->cand);
  free(g->res);
  free(g);
}

void sx__hnsw_vector_written(sx__hnsw *g, uint64_t slot) {
  if (!g->v.t) return;
  uint64_t a = slot * g->dim * 4 / g->ps, b = (slot * g->dim * 4 + g->dim * 4 - 1) / g->ps;
  for (uint64_t l = a; l <= b && l < g->vec.cap; l++) g->vec.r[l] = g->vec.w[l] = NULL;
}

/* ---- search --------------------------------------------------------------------- */

static int entry(sx__hnsw *g, uint64_t *ep, uint32_t *top, sx_error *err) {
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
      uint32_t cnt = ln[0], ids[1 + 256];
      memcpy(ids, ln + 1, cnt * 4);
      for (uint32_t i = 0; i < cnt; i++) {
        if (ids[i] >= g->nslots) return sx__err_set(err, SX_CORRUPT, "HNSW link past the end");
        rc = dist_to(g, q, qn, ids[i], &d, err);
        if (rc) return rc;
        if (d < best->d) {
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
  rc = search_layer(g, q, qn, 0, efs, 1, UINT64_MAX, &nr, err);
  if (rc) return rc;
  qsort(g->res, nr, sizeof *g->res, cmp_hit);
  *n = nr < k ? nr : k;
  /* Hits tied with the k-th go too: the caller breaks distance ties by id. */
  while (*n > 0 && *n < nr && g->res[*n].d == g->res[*n - 1].d) (*n)++;
  memcpy(out, g->res, *n * sizeof *out);
  return SX_OK;
}

/* ---- insert ---------------------------------------------------------------------- */

/* hnswlib's heuristic: keep a candidate (closest first) only if it is closer to the
 * base than to every one already kept; at most `max`. base_vec is the base's vector. */
static int select_neighbors(sx__hnsw *g, sx__hit *c, size_t nc, size_t max, uint32_t *out,
                            uint32_t *nout, sx_error *err) {
  qsort(c, nc, sizeof *c, cmp_sel);
  uint32_t n = 0;
  for (size_t i = 0; i < nc && n < max; i++) {
    int rc = read_vec(g, c[i].slot, g->vbuf2, err);
    if (rc) return rc;
    float cn = g->metric == SX__COSINE ? sx__norm(g->vbuf2, g->dim) : 0;
    int good = 1;
    for (uint32_t j = 0; j < n && good; j++) {
      float d;
      rc = dist_to(g, g->vbuf2, cn, out[j], &d, err);
      if (rc) return rc;
      if (d < c[i].d) good = 0;
    }
    if (good) out[n++] = c[i].slot;
  }
  *nout = n;
  return SX_OK;
}

/* Adds back link s to node n at level, pruning by the heuristic when full. */
static int add_link(sx__hnsw *g, uint64_t n, uint32_t level, uint64_t s, sx_error *err) {
  const uint32_t *l;
  int rc = links(g, n, level, &l, err);
  if (rc) return rc;
  uint32_t cnt = l[0], cap = level ? g->m : g->m0;
  uint32_t ids[1 + 512];
  memcpy(ids, l + 1, cnt * 4);
  for (uint32_t i = 0; i < cnt; i++)
    if (ids[i] == s) return SX_OK;
  if (cnt < cap) {
    ids[cnt++] = (uint32_t)s;
    return set_links(g, n, level, ids, cnt, err);
  }
  /* Full: choose among the old links and s, by distance to n. */
  float *nv = malloc((size_t)g->dim * 4);
  sx__hit *c = malloc((cnt + 1) * sizeof *c);
  if (!nv || !c) {
    free(nv);
    free(c);
    return sx__err_set(err, SX_NOMEM, "out of memory");
  }
  rc = read_vec(g, n, nv, err);
  float nn = g->metric == SX__COSINE && !rc ? sx__norm(nv, g->dim) : 0;
  ids[cnt] = (uint32_t)s;
  for (uint32_t i = 0; i <= cnt && !rc; i++) {
    c[i].slot = ids[i];
    rc = dist_to(g, nv, nn, ids[i], &c[i].d, err);
  }
  uint32_t sel[512], ns = 0;
  if (!rc) rc = select_neighbors(g, c, cnt + 1, cap, sel, &ns, err);
  if (!rc) rc = set_links(g, n, level, sel, ns, err);
  free(nv);
  free(c);
  return rc;
}

static uint32_t draw_level(sx__hnsw *g, uint64_t slot) {
  uint64_t z = slot * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  double u = ((z >> 11) + 1) * (1.0 / 9007199254740993.0); /* (0, 1] */
  double lv = -log(u) * g->ml;
  return lv >= MAX_LEVEL ? MAX_LEVEL : (uint32_t)lv;
}

int sx__hnsw_insert(sx__hnsw *g, uint64_t slot, int relink, sx_error *err) {
  sx__txn *t = g->v.t;
  const uint8_t *o = owner_page(g, err);
  if (!o) return err ? err->code : SX_IO;
  g->nslots = sx__rd64(o + g->L.nslots_off);
  if (slot >= g->nslots) return sx__err_set(err, SX_CORRUPT, "HNSW insert of slot %llu past the end", (unsigned long long)slot);
  float *v = malloc((size_t)g->dim * 4);
  if (!v) return sx__err_set(err, SX_NOMEM, "out of memory");
  int rc = read_vec(g, slot, v, err);
  float qn = 0;
  if (!rc && g->metric == SX__COSINE) {
    qn = sx__norm(v, g->dim);
    uint8_t *lp;
    rc = lc_getw(g, &g->norms, slot * 4 / g->ps, &lp, err);
    if (!rc) memcpy(lp + slot * 4 % g->ps, &qn, 4);
  }
  uint32_t level = 0;
  if (!rc && relink) {
    rc = meta_of(g, slot, &level, NULL, err);
  } else if (!rc) {
    /* A new node: its level and room for its upper links. */
    level = draw_level(g, slot);
    uint8_t *ow;
    rc = sx__txn_write(t, g->L.owner, &ow, err);
    uint64_t uoff = rc ? 0 : sx__rd64(ow + g->L.upper_len_off);
    if (!rc && uoff + (uint64_t)level * (1 + g->m) > UINT32_MAX)
      rc = sx__err_set(err, SX_FULL, "HNSW upper-level links are full");
    if (!rc) {
      sx__wr64(ow + g->L.upper_len_off, uoff + (uint64_t)level * (1 + g->m));
      uint32_t meta[2] = {level, (uint32_t)uoff};
      rc = sx__pa_write(t, g->L.owner, g->L.meta_off, slot * 8, meta, 8, err);
    }
  }
  /* A new node starts with empty link lists. A relinked node keeps its old ones
   * while the searches below run: they are the way on from it when it is the entry
   * point (emptied, they left the entry point with no links at all and the whole
   * graph unreachable); each level's list is overwritten once chosen. */
  for (uint32_t l = 0; l <= level && !rc && !relink; l++) rc = set_links(g, slot, l, NULL, 0, err);
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  if (!rc) rc = entry(g, &ep, &top, err);
  if (!rc && (ep == UINT64_MAX || (relink && ep == slot && g->nslots == 1))) {
    uint8_t *ow;
    rc = sx__txn_write(t, g->L.owner, &ow, err);
    if (!rc) {
      sx__wr32(ow + g->L.ep_off, (uint32_t)slot + 1);
      sx__wr32(ow + g->L.ep_off + 4, level);
    }
    free(v);
    return rc;
  }
  sx__hit best = {0, 0};
  if (!rc) rc = descend(g, v, qn, ep, top, level < top ? level : top, &best, err);
  uint32_t sel[512];
  for (int64_t l = level < top ? level : top; l >= 0 && !rc; l--) {
    size_t nr = 1;
    rc = ensure_scratch(g, g->efc) ? sx__err_set(err, SX_NOMEM, "out of memory") : SX_OK;
    if (!rc) {
      g->res[0] = best;
      rc = search_layer(g, v, qn, (uint32_t)l, g->efc, 0, slot, &nr, err);
    }
    if (rc) break;
    if (nr == 0) continue; /* only the node itself was found */
    sx__hit *c = malloc(nr * sizeof *c);
    if (!c) {
      rc = sx__err_set(err, SX_NOMEM, "out of memory");
      break;
    }
    memcpy(c, g->res, nr * sizeof *c);
    qsort(c, nr, sizeof *c, cmp_sel);
    best = c[0];
    uint32_t ns = 0;
    rc = select_neighbors(g, c, nr, g->m, sel, &ns, err);
    free(c);
    if (!rc) rc = set_links(g, slot, (uint32_t)l, sel, ns, err);
    for (uint32_t i = 0; i < ns && !rc; i++) rc = add_link(g, sel[i], (uint32_t)l, slot, err);
  }
  if (!rc && level > top) {
    uint8_t *ow;
    rc = sx__txn_write(t, g->L.owner, &ow, err);
    if (!rc) {
      sx__wr32(ow + g->L.ep_off, (uint32_t)slot + 1);
      sx__wr32(ow + g->L.ep_off + 4, level);
    }
  }
  free(v);
  return rc;
}

/* ---- check ---------------------------------------------------------------------- */

int sx__hnsw_check(sx__hnsw *g, sx_error *err) {
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  int rc = entry(g, &ep, &top, err);
  if (rc || ep == UINT64_MAX) return rc;
  uint32_t eplevel = 0;
  rc = meta_of(g, ep, &eplevel, NULL, err);
  if (!rc && eplevel != top)
    rc = sx__err_set(err, SX_CORRUPT, "HNSW entry point level %u differs from the top level %u", eplevel, top);
  for (uint64_t s = 0; s < g->nslots && !rc; s++) {
    uint32_t lv = 0;
    rc = meta_of(g, s, &lv, NULL, err);
    if (!rc && lv > top) rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu is above the top level", (unsigned long long)s);
    for (uint32_t l = 0; l <= lv && !rc; l++) {
      const uint32_t *ln;
      rc = links(g, s, l, &ln, err);
      for (uint32_t i = 0; !rc && i < ln[0]; i++) {
        uint32_t lvn = 0;
        if (ln[1 + i] >= g->nslots || ln[1 + i] == s)
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu has a bad link %u", (unsigned long long)s, ln[1 + i]);
        else if (l > 0 && (rc = meta_of(g, ln[1 + i], &lvn, NULL, err)) == SX_OK && lvn < l)
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links at level %u to a node of level %u", (unsigned long long)s, l, lvn);
        if (l > 0 && !rc) rc = links(g, s, l, &ln, err); /* lbuf was reused by meta reads? no: reload */
      }
    }
  }
  return rc;
}
