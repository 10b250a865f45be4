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
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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

/* A leaf page of a graph array while threads link in parallel (see spans below). */
typedef struct pent {
  sx__rwlock lock;          /* SX_RANK_PAGE, ordered by pgno; writers hold it exclusive */
  _Atomic uint32_t seq;     /* odd while a writer changes the page (a sequence lock for readers) */
  _Atomic(uint8_t *) img;   /* NULL until looked up; changes only under the lock */
  _Atomic uint32_t pgno;
  int dirty;                /* img is this transaction's copy (under the lock) */
} pent;

/* What the threads of one parallel insert share. */
typedef struct par {
  sx__mutex mu; /* SX_RANK_INDEX: ep and top while the threads link */
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

struct sx__hnsw {
  sx__pv v;
  sx__hnsw_layout L;
  uint32_t dim, m, m0, efc, ps, epp0, e0;
  uint32_t psh;      /* ps == 1 << psh (page sizes are powers of two) */
  uint64_t epp0_m;   /* for dividing by epp0 with a multiplication (see leaf0) */
  uint64_t vbytes;   /* dim * 4 */
  sx__raw_fn raw;    /* the active kernel's raw sums: l2 for SX__L2, dot products otherwise */
  sx__raw4_fn raw4;  /* the same, four vectors side by side; NULL where dist_to must serve */
  int metric;
  double ml;
  leafcache vec, g0, live, norms, up, meta, stamps;
  par *par; /* set while this context is one of several linking in parallel */
  const uint8_t *owner_ro; /* the owner page, over a snapshot (immutable) */
  float *vbuf; /* scratch vector */
  uint64_t nslots;
  int all_live; /* no dead slot is in the graph: searches skip the liveness test */
  /* search scratch: a node is visited iff vtag[node] == tag */
  uint32_t *vtag;
  size_t vcap;
  uint32_t tag;
  sx__hit *cand, *res;
  size_t cap_heap, cap_cand;
  uint32_t *lbuf; /* link list scratch */
  uint32_t *l0buf; /* level-0 list copy (parallel inserts) */
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

/* ---- spans: graph bytes under page locks (parallel inserts) ---------------------
 *
 * While several threads link nodes in one transaction, a link list is read or written
 * only through a span: the one or two leaf pages of its array holding it, each with
 * a page lock (a pent, shared by the threads). Writers take the pages' reader-writer
 * locks exclusive, in ascending page order, and bump each page's sequence number to
 * odd while they change it and back to even after. Readers take no lock: they copy
 * the list and keep the copy only if no sequence number moved meanwhile (a sequence
 * lock), so threads that only read a page never write to shared memory; with the
 * locks taken shared, the cache line of every popular page's lock went back and forth
 * between the cores on each read. Lists are read and written a 32-bit word at a time
 * with atomic accesses. A page's image starts as whatever the transaction
 * had (committed, or dirtied before this batch); the first writer, holding the lock
 * exclusive, makes the transaction's copy through sx__txn_write (which also keeps the
 * savepoint's undo image) and switches the image to it, so a reader always sees the
 * latest lists without asking the transaction's page table (its mutex was the one
 * point all threads met). The arrays do not grow while threads link
 * (sx__hnsw_insert_batch prepares every page first).
 */
typedef struct span {
  int n;
  pent *e[2];
  uint32_t pg[2];
  size_t at[2];  /* offsets in the pages */
  size_t len[2];
} span;

/* Index of the i-th page of a span in ascending page order (the lock order). */
static inline int span_ord(const span *s, int i) {
  return s->n == 2 && s->pg[1] < s->pg[0] ? s->n - 1 - i : i;
}

/* The page entry of leaf `leaf` of array `which` (0: level 0, 1: upper), looked up on
 * first use. */
static int pent_get(sx__hnsw *g, int which, uint64_t leaf, pent **out, sx_error *err) {
  par *p = g->par;
  if (leaf >= p->nent[which])
    return sx__err_set(err, SX_CORRUPT, "HNSW link list at leaf %llu is past the graph",
                       (unsigned long long)leaf);
  pent *e = &p->ent[which][leaf];
  if (!atomic_load_explicit(&e->img, memory_order_acquire)) {
    const uint8_t *o = owner_page(g, err), *img;
    if (!o) return err ? err->code : SX_IO;
    sx__pa_cursor cur; /* over the transaction: the leaf's current image */
    sx__pa_cursor_init(&cur, &g->v, o + (which ? g->L.upper_off : g->L.graph0_off));
    int rc = sx__pa_leaf(&cur, leaf, &img, err);
    if (rc) return rc;
    atomic_store_explicit(&e->pgno, cur.leaf_pgno, memory_order_relaxed);
    uint8_t *expect = NULL; /* another thread may have set it first: the same image */
    atomic_compare_exchange_strong_explicit(&e->img, &expect, (uint8_t *)img, memory_order_release,
                                            memory_order_acquire);
  }
  *out = e;
  return SX_OK;
}

/* Ends a span taken to write. */
static void span_put(span *s) {
  for (int i = s->n - 1; i >= 0; i--) {
    int j = span_ord(s, i);
    pent *e = s->e[j];
    atomic_store_explicit(&e->seq, atomic_load_explicit(&e->seq, memory_order_relaxed) + 1,
                          memory_order_release);
    sx__rwlock_unlock(&e->lock, s->pg[j]);
  }
}

static int span_get(sx__hnsw *g, int which, uint64_t off, size_t len, int write, span *s,
                    sx_error *err) {
  s->n = 0;
  while (len) {
    if (s->n == 2) return sx__err_set(err, SX_CORRUPT, "HNSW link list spans more than two pages");
    size_t in = off & (g->ps - 1), n = g->ps - in < len ? g->ps - in : len;
    int rc = pent_get(g, which, off >> g->psh, &s->e[s->n], err);
    if (rc) return rc;
    s->pg[s->n] = atomic_load_explicit(&s->e[s->n]->pgno, memory_order_relaxed);
    s->at[s->n] = in;
    s->len[s->n++] = n;
    off += n;
    len -= n;
  }
  if (!write) return SX_OK; /* readers: span_read_stable */
  int rc = SX_OK;
  for (int i = 0; i < s->n; i++) {
    int j = span_ord(s, i);
    pent *e = s->e[j];
    sx__rwlock_wrlock(&e->lock, s->pg[j]);
    atomic_store_explicit(&e->seq, atomic_load_explicit(&e->seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (!e->dirty && !rc) {
      uint8_t *buf;
      rc = sx__txn_write(g->v.t, s->pg[j], &buf, err);
      if (!rc) {
        atomic_store_explicit(&e->img, buf, memory_order_release);
        e->dirty = 1;
      }
    }
  }
  if (rc) span_put(s);
  return rc;
}

/* The first len bytes (a multiple of 4) of a span, a word at a time: writers may be
 * changing them (readers then retry, see span_read_stable). */
static void span_read(const span *s, void *dst, size_t len) {
  uint32_t *d = dst;
  for (int i = 0; i < s->n && len; i++) {
    size_t n = s->len[i] < len ? s->len[i] : len;
    const _Atomic uint32_t *src =
        (const _Atomic uint32_t *)(atomic_load_explicit(&s->e[i]->img, memory_order_acquire) + s->at[i]);
    for (size_t k = 0; k < n / 4; k++) *d++ = atomic_load_explicit(&src[k], memory_order_relaxed);
    len -= n;
  }
}

/* Copies the first len bytes of a span taken to read, consistent: retried until no
 * writer changed its pages meanwhile. */
static void span_read_stable(span *s, void *dst, size_t len) {
  for (unsigned spins = 0;; spins++) {
    uint32_t q[2] = {0, 0};
    int busy = 0;
    for (int i = 0; i < s->n; i++) {
      q[i] = atomic_load_explicit(&s->e[i]->seq, memory_order_acquire);
      busy |= q[i] & 1;
    }
    if (!busy) {
      span_read(s, dst, len);
      atomic_thread_fence(memory_order_acquire);
      int same = 1;
      for (int i = 0; i < s->n; i++) same &= atomic_load_explicit(&s->e[i]->seq, memory_order_relaxed) == q[i];
      if (same) return;
    }
    if (spins > 64) sched_yield(); /* a writer holds the page (pruning a list takes a while) */
  }
}

/* Word by word, atomically: readers may be copying the same words (and retry). */
static void span_write(span *s, const void *src, size_t len) {
  const uint32_t *q = src;
  for (int i = 0; i < s->n && len; i++) {
    size_t n = s->len[i] < len ? s->len[i] : len;
    _Atomic uint32_t *dst =
        (_Atomic uint32_t *)(atomic_load_explicit(&s->e[i]->img, memory_order_relaxed) + s->at[i]);
    for (size_t k = 0; k < n / 4; k++) atomic_store_explicit(&dst[k], *q++, memory_order_relaxed);
    len -= n;
  }
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
    return span_get(g, 0, slot / g->epp0 * g->ps + slot % g->epp0 * g->e0, g->e0, write, sp, err);
  uint32_t lv = 0, uoff = 0;
  int rc = meta_of(g, slot, &lv, &uoff, err);
  if (rc) return rc;
  if (level > lv) return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has no level %u", (unsigned long long)slot, level);
  return span_get(g, 1, ((uint64_t)uoff + (uint64_t)(level - 1) * (1 + g->m)) * 4,
                  (1 + (size_t)g->m) * 4, write, sp, err);
}

static int links(sx__hnsw *g, uint64_t slot, uint32_t level, const uint32_t **out, sx_error *err) {
  if (g->par) {
    uint32_t *buf = level ? g->lbuf : g->l0buf;
    span sp;
    int rc = list_span(g, slot, level, 0, &sp, err);
    if (rc) return rc;
    span_read_stable(&sp, buf, (1 + (size_t)(level ? g->m : g->m0)) * 4);
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
    span_write(&sp, buf, (1 + (size_t)n) * 4);
    span_put(&sp);
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
 * keep the nodes linked last (see cmp_sel), so the graph of duplicates is a chain in
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

/* For choosing neighbours: by distance, ties putting the newer node (higher slot)
 * first, as hnswlib's heaps do. With ties by lower slot, identical vectors all
 * linked to the oldest few nodes, whose full lists then dropped every newcomer: all
 * but ~2m of them were unreachable. */
static int cmp_sel(const void *a, const void *b, void *ctx) {
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
 * and stalled on the prefetches themselves (2 lines per page: QPS 1.04-1.06x of
 * hnswlib at ef 16-64 on Fashion-MNIST 60k; 1 line: 1.00-1.04x; 4: 0.99-1.07x;
 * every line: 0.97-0.99x; bench/HNSW.md). */
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
  while (nc) {
    sx__hit c = minh_pop(g, g->cand, &nc);
    if (nr >= ef && closer(g, res[0], c)) break;
    if (level == 0 && nc) { /* the list of the likely next node, while this one's run */
      uint32_t rt, qt = leaf0(g, g->cand[0].slot, &rt);
      if (qt < g->g0.cap && g->g0.r[qt]) __builtin_prefetch(g->g0.r[qt] + rt * g->e0);
    }
    const uint32_t *l;
    const uint8_t *lp;
    uint32_t r0, q0 = leaf0(g, c.slot, &r0);
    if (level == 0 && !g->par && q0 < g->g0.cap && (lp = g->g0.r[q0]) != NULL &&
        ((const uint32_t *)(lp + r0 * g->e0))[0] <= g->m0) {
      l = (const uint32_t *)(lp + r0 * g->e0); /* the common case, inline */
    } else if ((rc = links(g, c.slot, level, &l, err))) {
      return rc;
    }
    /* l stays valid below: nothing in this loop reads another list. */
    uint32_t cnt = l[0];
    uint32_t ids[512];
    /* The unvisited neighbours, their vectors prefetched before any is measured. */
    uint32_t todo = 0;
    for (uint32_t i = 0; i < cnt; i++) {
      uint64_t n = l[1 + i];
      if (n >= g->nslots)
        return sx__err_set(err, SX_CORRUPT, "HNSW node %u links to slot %llu past the end", c.slot,
                           (unsigned long long)n);
      if (g->vtag[n] == g->tag) continue;
      g->vtag[n] = g->tag;
      ids[todo++] = (uint32_t)n;
      uint64_t off = n * g->vbytes;
      uint64_t leaf = off >> g->psh;
      if (leaf < g->vec.cap && g->vec.r[leaf]) {
        const uint8_t *a = g->vec.r[leaf] + (off & (g->ps - 1));
        __builtin_prefetch(a);
        __builtin_prefetch(a + 64);
      }
    }
    float ds[4];
    for (uint32_t i = 0; i < todo; i++) {
      uint64_t n = ids[i];
      float d;
      if (g->raw4) {
        /* Four at a time, side by side; the next four prefetched meanwhile. */
        if (i % 4 == 0) {
          uint32_t nb = todo - i < 4 ? todo - i : 4;
          for (uint32_t j = i + 4; j < todo && j < i + 8; j++) prefetch_vector(g, ids[j]);
          if ((rc = dist4(g, q, ids + i, nb, ds, err))) return rc;
        }
        d = ds[i % 4];
      } else {
        if (i + PF_NEXT < todo) prefetch_vector(g, ids[i + PF_NEXT]);
        if ((rc = dist_to(g, q, qn, n, &d, err))) return rc;
      }
      if (nr < ef || closer(g, (sx__hit){d, (uint32_t)n}, res[0])) {
        if ((rc = cand_room(g, nc, err))) return rc;
        minh_push(g, g->cand, &nc, (sx__hit){d, (uint32_t)n});
        if (level == 0) { /* the list of the next node to expand */
          uint32_t t = g->cand[0].slot;
          uint32_t rt, qt = leaf0(g, t, &rt);
          if (qt < g->g0.cap && g->g0.r[qt]) __builtin_prefetch(g->g0.r[qt] + rt * g->e0);
        }
        int live = 1;
        if (only_live && (rc = is_live(g, n, err, &live))) return rc;
        if (live && n != skip) {
          maxh_push(g, res, &nr, (sx__hit){d, (uint32_t)n});
          if (nr > ef) maxh_pop(g, res, &nr);
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

/* ---- insert ---------------------------------------------------------------------- */

/* hnswlib's heuristic: keep a candidate (closest first) only if it is closer to the
 * base than to every one already kept; at most `max`. base_vec is the base's vector. */
static int select_neighbors(sx__hnsw *g, sx__hit *c, size_t nc, size_t max, uint64_t prefer,
                            uint32_t *out, uint32_t *nout, sx_error *err) {
  qsort_r(c, nc, sizeof *c, cmp_sel, g);
  /* `prefer` (the node a back link is being added for) goes first among its ties.
   * Linked one by one, it is the newest node and cmp_sel already puts it there; in a
   * parallel insert nodes are linked out of slot order, and among identical vectors
   * it would otherwise be pruned from every list it joins and become unreachable. */
  for (size_t i = 0; i < nc; i++) {
    if (c[i].slot != prefer) continue;
    for (; i > 0 && c[i - 1].d == c[i].d; i--) {
      sx__hit t = c[i - 1];
      c[i - 1] = c[i];
      c[i] = t;
    }
    break;
  }
  uint32_t n = 0;
  for (size_t i = 0; i < nc && n < max; i++) {
    int good = 1;
    for (uint32_t j = 0; j < n && good; j++) {
      float d;
      int rc = dist_slots(g, c[i].slot, out[j], &d, err);
      if (rc) return rc;
      if (d < c[i].d) good = 0;
    }
    if (good) out[n++] = c[i].slot;
  }
  *nout = n;
  return SX_OK;
}

/* Adds back link s to node n at level, pruning by the heuristic when full. In a
 * parallel insert the list stays locked (exclusive) from its read to its write. */
static int add_link(sx__hnsw *g, uint64_t n, uint32_t level, uint64_t s, sx_error *err) {
  uint32_t cap = level ? g->m : g->m0;
  uint32_t ids[1 + 512];
  span sp;
  int rc;
  ids[0] = 0;
  if (g->par) {
    if ((rc = list_span(g, n, level, 1, &sp, err))) return rc;
    span_read(&sp, ids, (1 + (size_t)cap) * 4);
    if (ids[0] > cap) {
      span_put(&sp);
      return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has %u links at level %u (at most %u)",
                         (unsigned long long)n, ids[0], level, cap);
    }
  } else {
    const uint32_t *l;
    if ((rc = links(g, n, level, &l, err))) return rc;
    memcpy(ids, l, (1 + (size_t)l[0]) * 4);
  }
  uint32_t cnt = ids[0], *list = ids + 1, sel[512], ns = 0;
  int found = 0;
  for (uint32_t i = 0; i < cnt; i++) found |= list[i] == s;
  if (found) {
    ns = UINT32_MAX; /* nothing to write */
  } else if (cnt < cap) {
    list[cnt++] = (uint32_t)s;
    memcpy(sel, list, cnt * 4);
    ns = cnt;
  } else {
    /* Full: choose among the old links and s, by distance to n. */
    float *nv = malloc((size_t)g->dim * 4);
    sx__hit *c = malloc((cnt + 1) * sizeof *c);
    rc = nv && c ? read_vec(g, n, nv, err) : sx__err_set(err, SX_NOMEM, "out of memory");
    float nn = g->metric == SX__COSINE && !rc ? sx__norm(nv, g->dim) : 0;
    list[cnt] = (uint32_t)s;
    for (uint32_t i = 0; i <= cnt && !rc; i++) {
      c[i].slot = list[i];
      rc = dist_to(g, nv, nn, list[i], &c[i].d, err);
    }
    if (!rc) rc = select_neighbors(g, c, cnt + 1, cap, s, sel, &ns, err);
    free(nv);
    free(c);
  }
  if (g->par) {
    if (!rc && ns != UINT32_MAX) {
      ids[0] = ns;
      memcpy(ids + 1, sel, (size_t)ns * 4);
      span_write(&sp, ids, (1 + (size_t)ns) * 4);
    }
    span_put(&sp);
    return rc;
  }
  return rc || ns == UINT32_MAX ? rc : set_links(g, n, level, sel, ns, err);
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

static int set_entry(sx__hnsw *g, uint64_t slot, uint32_t level, sx_error *err) {
  uint8_t *ow;
  int rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
  if (!rc) {
    sx__wr32(ow + g->L.ep_off, (uint32_t)slot + 1);
    sx__wr32(ow + g->L.ep_off + 4, level);
  }
  return rc;
}

/* Reserves n stamps (see recency): *first and on. Serial contexts only. */
static int take_stamps(sx__hnsw *g, uint64_t n, uint64_t *first, sx_error *err) {
  uint8_t *ow;
  int rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
  if (rc) return rc;
  uint64_t c = sx__rd64(ow + g->L.stamp_seq_off);
  if (c < g->nslots) c = g->nslots;
  *first = c;
  sx__wr64(ow + g->L.stamp_seq_off, c + n);
  return SX_OK;
}

static int put_stamp(sx__hnsw *g, uint64_t slot, uint64_t stamp, sx_error *err) {
  uint8_t *lp;
  int rc = lc_getw(g, &g->stamps, slot * 8 >> g->psh, &lp, err);
  if (!rc) memcpy(lp + (slot * 8 & (g->ps - 1)), &stamp, 8);
  return rc;
}

/* Stamps slot as linked last. Serial contexts only. */
static int stamp_now(sx__hnsw *g, uint64_t slot, sx_error *err) {
  uint64_t st;
  int rc = take_stamps(g, 1, &st, err);
  return rc ? rc : put_stamp(g, slot, st, err);
}

/* The serial part of an insert: the node's norm (cosine), its level and the room for
 * its upper links (a reused slot keeps both: its level is drawn from the slot), empty
 * lists, and the entry point when the graph was empty. *link = 0 when that is all
 * there is. */
static int prepare(sx__hnsw *g, uint64_t slot, int reused, int *link, sx_error *err) {
  sx__txn *t = g->v.t;
  *link = 1;
  if (slot >= g->nslots) return sx__err_set(err, SX_CORRUPT, "HNSW insert of slot %llu past the end", (unsigned long long)slot);
  int rc = SX_OK;
  if (g->metric == SX__COSINE) {
    rc = read_vec(g, slot, g->vbuf, err);
    float qn = rc ? 0 : sx__norm(g->vbuf, g->dim);
    uint8_t *lp;
    if (!rc) rc = lc_getw(g, &g->norms, slot * 4 / g->ps, &lp, err);
    if (!rc) memcpy(lp + slot * 4 % g->ps, &qn, 4);
  }
  uint32_t level = 0;
  if (!rc && reused) {
    rc = meta_of(g, slot, &level, NULL, err);
    for (uint32_t l = 0; l <= level && !rc; l++) rc = set_links(g, slot, l, NULL, 0, err);
  } else if (!rc) {
    level = draw_level(g, slot);
    uint8_t *ow;
    rc = sx__txn_write(t, g->L.owner, &ow, err);
    uint64_t uoff = rc ? 0 : sx__rd64(ow + g->L.upper_len_off), words = (uint64_t)level * (1 + g->m);
    if (!rc && uoff + words > UINT32_MAX)
      rc = sx__err_set(err, SX_FULL, "HNSW upper-level links are full");
    if (!rc) {
      sx__wr64(ow + g->L.upper_len_off, uoff + words);
      uint32_t meta[2] = {level, (uint32_t)uoff};
      rc = sx__pa_write(t, g->L.owner, g->L.meta_off, slot * 8, meta, 8, err);
    }
    if (!rc) rc = set_links(g, slot, 0, NULL, 0, err);
    if (!rc && words) {
      /* All of the room, so that every page of it exists for parallel linking. */
      uint32_t *zero = calloc(words, 4);
      rc = zero ? sx__pa_write(t, g->L.owner, g->L.upper_off, uoff * 4, zero, words * 4, err)
                : sx__err_set(err, SX_NOMEM, "out of memory");
      free(zero);
    }
  }
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  if (!rc) rc = entry(g, &ep, &top, err);
  if (!rc && ep == UINT64_MAX) {
    *link = 0;
    rc = set_entry(g, slot, level, err);
    if (!rc) rc = stamp_now(g, slot, err);
  }
  return rc;
}

/* Links a prepared node into the graph: greedy descent to its level, an
 * ef_construction search on each of its levels, its neighbours by the heuristic, and
 * back links from them. */
static int link_node(sx__hnsw *g, uint64_t slot, sx_error *err) {
  uint32_t level = 0;
  int rc = meta_of(g, slot, &level, NULL, err);
  if (rc) return rc;
  float *v = malloc((size_t)g->dim * 4);
  if (!v) return sx__err_set(err, SX_NOMEM, "out of memory");
  rc = read_vec(g, slot, v, err);
  float qn = !rc && g->metric == SX__COSINE ? sx__norm(v, g->dim) : 0;
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  if (!rc) rc = entry(g, &ep, &top, err);
  if (!rc && ep == UINT64_MAX) rc = sx__err_set(err, SX_CORRUPT, "HNSW graph has no entry point");
  sx__hit best = {0, 0};
  uint32_t lmax = level < top ? level : top;
  if (!rc) rc = descend(g, v, qn, ep, top, lmax, &best, err);
  /* The node's own lists are all written before any back link makes it reachable:
   * once reachable, other threads may add links to its lists, which writing them
   * afterwards would drop (and with them the only way to those nodes). */
  uint32_t *sel = malloc((size_t)(lmax + 1) * g->m * 4), nsel[MAX_LEVEL + 1] = {0};
  if (!sel && !rc) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  for (int64_t l = lmax; l >= 0 && !rc; l--) {
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
    qsort_r(c, nr, sizeof *c, cmp_sel, g);
    best = c[0];
    uint32_t *ls = sel + (size_t)l * g->m;
    rc = select_neighbors(g, c, nr, g->m, UINT64_MAX, ls, &nsel[l], err);
    free(c);
    if (!rc) rc = set_links(g, slot, (uint32_t)l, ls, nsel[l], err);
  }
  /* It becomes reachable now. */
  if (g->par && slot >= g->par->base)
    atomic_store_explicit(&g->par->stamp[slot - g->par->base], atomic_fetch_add(&g->par->seq, 1),
                          memory_order_relaxed);
  else if (!g->par && !rc)
    rc = stamp_now(g, slot, err);
  for (int64_t l = lmax; l >= 0 && !rc; l--)
    for (uint32_t i = 0; i < nsel[l] && !rc; i++)
      rc = add_link(g, sel[(size_t)l * g->m + i], (uint32_t)l, slot, err);
  free(sel);
  free(v);
  if (rc || level <= top) return rc;
  if (!g->par) return set_entry(g, slot, level, err);
  /* Another thread may have raised the top meanwhile: the higher node stays the entry. */
  sx__mutex_lock(&g->par->mu);
  if (level > g->par->top) g->par->ep = slot, g->par->top = level;
  sx__mutex_unlock(&g->par->mu);
  return SX_OK;
}

/* ---- unlink ---------------------------------------------------------------------- */

static inline int bit(const uint8_t *b, uint64_t s) { return b[s >> 3] >> (s & 7) & 1; }

/* Chooses again, at every level, the list of live node s if it links to a dead node
 * (bit set in `dead`): the candidates are its live links and the live links of the
 * dead ones it links to (as FreshDiskANN's delete consolidation does), the efc
 * closest kept, and the heuristic picks from them. It reads only the lists of s and
 * of dead nodes, which no repair changes, so the nodes may be repaired in any order
 * or at once, with the same result. */
static int repair_node(sx__hnsw *g, uint64_t s, const uint8_t *dead, sx_error *err) {
  uint32_t level = 0;
  int rc = meta_of(g, s, &level, NULL, err);
  uint32_t own[1 + 512], deadl[512], sel[512], ns;
  float *v = NULL, qn = 0;
  sx__hit *c = NULL;
  size_t cap_c = 0;
  for (uint32_t l = 0; l <= level && !rc; l++) {
    const uint32_t *ln;
    if ((rc = links(g, s, l, &ln, err))) break;
    memcpy(own, ln, (1 + (size_t)ln[0]) * 4);
    uint32_t nd = 0;
    for (uint32_t i = 0; i < own[0]; i++) {
      if (own[1 + i] >= g->nslots) {
        rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links to slot %u past the end",
                         (unsigned long long)s, own[1 + i]);
        break;
      }
      if (bit(dead, own[1 + i])) deadl[nd++] = own[1 + i];
    }
    if (rc || nd == 0) continue;
    if (!v) {
      v = malloc((size_t)g->dim * 4);
      if (!v) rc = sx__err_set(err, SX_NOMEM, "out of memory");
      if (!rc) rc = read_vec(g, s, v, err);
      if (!rc && g->metric == SX__COSINE) qn = sx__norm(v, g->dim);
      if (rc) break;
    }
    if (ensure_scratch(g, 0)) {
      rc = sx__err_set(err, SX_NOMEM, "out of memory");
      break;
    }
    g->vtag[s] = g->tag;
    size_t nc = 0;
    /* Own links first, then those of each dead one (a dead list is met again only
     * through another live node's repair, never changed). */
    for (uint32_t k = 0; k <= nd && !rc; k++) {
      const uint32_t *src = own;
      if (k > 0 && (rc = links(g, deadl[k - 1], l, &src, err))) break;
      uint32_t cnt = src[0];
      if (cap_c < nc + cnt) {
        size_t ncap = (nc + cnt) * 2;
        sx__hit *cc = realloc(c, ncap * sizeof *cc);
        if (!cc) {
          rc = sx__err_set(err, SX_NOMEM, "out of memory");
          break;
        }
        c = cc, cap_c = ncap;
      }
      for (uint32_t i = 0; i < cnt; i++) {
        uint32_t n = src[1 + i];
        if (n >= g->nslots) {
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %u links to slot %u past the end",
                           k ? deadl[k - 1] : (uint32_t)s, n);
          break;
        }
        if (g->vtag[n] == g->tag || bit(dead, n)) continue;
        g->vtag[n] = g->tag;
        c[nc++].slot = n;
      }
    }
    for (size_t i = 0; i < nc && !rc; i++) rc = dist_to(g, v, qn, c[i].slot, &c[i].d, err);
    if (rc) break;
    if (nc > g->efc) {
      qsort_r(c, nc, sizeof *c, cmp_sel, g);
      nc = g->efc;
    }
    rc = select_neighbors(g, c, nc, l ? g->m : g->m0, UINT64_MAX, sel, &ns, err);
    if (!rc) rc = set_links(g, s, l, sel, ns, err);
  }
  free(v);
  free(c);
  return rc;
}

typedef struct worker {
  const sx__pv *v;
  const sx__hnsw_layout *lay;
  const sx__hnsw *seed; /* read caches to start from */
  uint32_t dim, m, efc;
  int metric;
  par *p;
  int rc;
  sx_error err;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  sx__hnsw *g;
  w->rc = sx__hnsw_open(w->v, w->lay, w->dim, w->metric, w->m, w->efc, &g, &w->err);
  if (!w->rc && (lc_seed(&g->vec, &w->seed->vec) || lc_seed(&g->meta, &w->seed->meta) ||
                 lc_seed(&g->norms, &w->seed->norms)))
    w->rc = sx__err_set(&w->err, SX_NOMEM, "out of memory");
  if (!w->rc) g->par = w->p;
  while (!w->rc && !atomic_load(&w->p->stop)) {
    size_t i = atomic_fetch_add(&w->p->next, 1);
    if (i >= w->p->n) break;
    w->rc = w->p->dead ? repair_node(g, w->p->slots[i], w->p->dead, &w->err)
                       : link_node(g, w->p->slots[i], &w->err);
  }
  if (w->rc) atomic_store(&w->p->stop, 1);
  sx__hnsw_close(g);
  return NULL;
}

/* Links nodes todo[0..nt) (ascending slots) with nthreads threads, g being the
 * serial context that prepared them; or, with dead set, repairs them (see
 * repair_node). */
static int run_parallel(sx__hnsw *g, const sx__pv *v, const sx__hnsw_layout *lay,
                        const uint64_t *todo, size_t nt, const uint8_t *dead, int nthreads,
                        sx_error *err) {
  par p;
  memset(&p, 0, sizeof p);
  p.dead = dead;
  sx__mutex_init(&p.mu, SX_RANK_INDEX, "HNSW entry point");
  /* The entry point moves to shared memory while threads link. */
  int rc = entry(g, &p.ep, &p.top, err);
  uint64_t ep0 = p.ep;
  uint32_t top0 = p.top;
  /* The last list of the upper stream may end on a page never written (older files
   * wrote only counts); spans read whole lists. */
  const uint8_t *o = rc ? NULL : owner_page(g, err);
  if (!rc && !o) rc = err ? err->code : SX_IO;
  uint64_t ulen = o ? sx__rd64(o + lay->upper_len_off) : 0;
  uint8_t *lp;
  if (!rc && ulen) rc = sx__pa_leaf_w(v->t, lay->owner, lay->upper_off, (ulen * 4 - 1) >> g->psh, &lp, err);
  /* The pages that threads only read, looked up once for all of them; no thread
   * writes them while linking, so the pointers hold. The serial context's caches
   * are filled over the transaction (g->par is unset), the meta one included. */
  uint64_t vleaves = (g->nslots * g->vbytes + g->ps - 1) >> g->psh;
  if (vleaves <= (uint64_t)nt * 64) { /* else a small batch: cheaper to look up what it meets */
    if (!rc) rc = lc_prefill(g, &g->vec, vleaves, err);
    if (!rc) rc = lc_prefill(g, &g->meta, (g->nslots * 8 + g->ps - 1) >> g->psh, err);
    if (!rc && g->metric == SX__COSINE)
      rc = lc_prefill(g, &g->norms, (g->nslots * 4 + g->ps - 1) >> g->psh, err);
  }
  p.slots = todo;
  p.n = nt;
  p.base = dead ? g->nslots : todo[0]; /* repairs link no node: no stamps */
  p.stamp = rc ? NULL : malloc((g->nslots - p.base + 1) * sizeof *p.stamp);
  p.nent[0] = (g->nslots + g->epp0 - 1) / g->epp0;
  p.nent[1] = (ulen * 4 + g->ps - 1) >> g->psh;
  for (int a = 0; a < 2 && !rc; a++) p.ent[a] = calloc(p.nent[a] ? p.nent[a] : 1, sizeof *p.ent[a]);
  if (!rc && (!p.stamp || !p.ent[0] || !p.ent[1])) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  /* Stamps for this batch's nodes come from the collection's counter, settled
   * below from what was used. */
  uint64_t first = 0;
  if (!rc && !dead) rc = take_stamps(g, 0, &first, err);
  if (!rc) {
    for (uint64_t i = 0; i < g->nslots - p.base; i++)
      atomic_init(&p.stamp[i], stored_recency(g, (uint32_t)(p.base + i)));
    atomic_init(&p.seq, first);
    for (int a = 0; a < 2; a++)
      for (size_t i = 0; i < p.nent[a]; i++) {
        sx__rwlock_init(&p.ent[a][i].lock, SX_RANK_PAGE, "HNSW graph page");
        atomic_init(&p.ent[a][i].img, NULL);
        atomic_init(&p.ent[a][i].pgno, 0);
        atomic_init(&p.ent[a][i].seq, 0);
      }
    atomic_init(&p.next, 0);
    atomic_init(&p.stop, 0);
    int nw = nthreads > 64 ? 64 : nthreads;
    worker ws[64];
    pthread_t tids[64];
    int started[64] = {0};
    for (int i = 0; i < nw; i++) {
      ws[i] = (worker){v, lay, g, g->dim, g->m, g->efc, g->metric, &p, SX_OK, SX_ERROR_INIT};
      if (i > 0) started[i] = pthread_create(&tids[i], NULL, work, &ws[i]) == 0;
    }
    work(&ws[0]); /* threads that could not start leave their share to the others */
    for (int i = 1; i < nw; i++)
      if (started[i]) pthread_join(tids[i], NULL);
    for (int i = 0; i < nw && !rc; i++) {
      if (!ws[i].rc) continue;
      rc = ws[i].rc;
      if (err) *err = ws[i].err;
    }
    for (int a = 0; a < 2; a++)
      for (size_t i = 0; i < p.nent[a]; i++) sx__rwlock_destroy(&p.ent[a][i].lock);
  }
  if (!rc && (p.ep != ep0 || p.top != top0)) rc = set_entry(g, p.ep, p.top, err);
  if (!rc && !dead) {
    for (size_t i = 0; i < nt && !rc; i++)
      rc = put_stamp(g, todo[i], atomic_load(&p.stamp[todo[i] - p.base]), err);
    uint8_t *ow;
    if (!rc) rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
    if (!rc) sx__wr64(ow + g->L.stamp_seq_off, atomic_load(&p.seq));
  }
  sx__mutex_destroy(&p.mu);
  free(p.stamp);
  free(p.ent[0]);
  free(p.ent[1]);
  return rc;
}

/* Below this many nodes to link, threads cost more than they save. */
#define PAR_MIN 16

int sx__hnsw_insert_batch(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric,
                          uint32_t m, uint32_t efc, const uint64_t *slots, const uint8_t *reused,
                          size_t n, int nthreads, sx_error *err) {
  sx__hnsw *g;
  int rc = sx__hnsw_open(v, lay, dim, metric, m, efc, &g, err);
  if (rc) return rc;
  uint64_t *todo = malloc((n ? n : 1) * sizeof *todo);
  if (!todo) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  size_t nt = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    int need = 0;
    rc = prepare(g, slots[i], reused[i], &need, err);
    if (need) todo[nt++] = slots[i];
  }
  if (!rc && nthreads > 1 && nt >= PAR_MIN)
    rc = run_parallel(g, v, lay, todo, nt, NULL, nthreads, err);
  else
    for (size_t i = 0; i < nt && !rc; i++) rc = link_node(g, todo[i], err);
  sx__hnsw_close(g);
  free(todo);
  return rc;
}

/* Links again the live nodes live[0..n) that a breadth-first walk of level 0 from ep
 * does not reach: repairs choose lists by the heuristic, which may drop a node's
 * last link in. A relink may in turn prune another's; a few rounds, as inserts do
 * not guarantee more. */
static int relink_unreached(sx__hnsw *g, const uint64_t *live, size_t n, uint64_t ep,
                            sx_error *err) {
  uint32_t *q = malloc((n ? n : 1) * sizeof *q);
  uint64_t *lost = malloc((n ? n : 1) * sizeof *lost);
  int rc = q && lost ? SX_OK : sx__err_set(err, SX_NOMEM, "out of memory");
  for (int round = 0; round < 4 && !rc; round++) {
    if (ensure_scratch(g, 0)) {
      rc = sx__err_set(err, SX_NOMEM, "out of memory");
      break;
    }
    size_t qh = 0, qt = 0, nl = 0;
    q[qt++] = (uint32_t)ep;
    g->vtag[ep] = g->tag;
    while (qh < qt && !rc) {
      const uint32_t *ln;
      if ((rc = links(g, q[qh++], 0, &ln, err))) break;
      for (uint32_t i = 0; i < ln[0]; i++) {
        uint32_t x = ln[1 + i];
        if (x >= g->nslots) {
          rc = sx__err_set(err, SX_CORRUPT, "HNSW link to slot %u past the end", x);
          break;
        }
        if (g->vtag[x] == g->tag) continue;
        if (qt == n) {
          rc = sx__err_set(err, SX_CORRUPT, "HNSW graph links to a slot that is not live");
          break;
        }
        g->vtag[x] = g->tag;
        q[qt++] = x;
      }
    }
    if (rc || qt == n) break;
    for (size_t i = 0; i < n; i++)
      if (g->vtag[live[i]] != g->tag) lost[nl++] = live[i];
    for (size_t i = 0; i < nl && !rc; i++) rc = link_node(g, lost[i], err);
  }
  free(q);
  free(lost);
  return rc;
}

int sx__hnsw_unlink(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric,
                    uint32_t m, uint32_t efc, const uint64_t *dead, size_t nd, int nthreads,
                    sx_error *err) {
  if (nd == 0) return SX_OK;
  sx__hnsw *g;
  int rc = sx__hnsw_open(v, lay, dim, metric, m, efc, &g, err);
  if (rc) return rc;
  uint8_t *isdead = calloc(g->nslots / 8 + 1, 1);
  uint64_t *live = malloc((g->nslots ? g->nslots : 1) * sizeof *live);
  if (!isdead || !live) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  for (size_t i = 0; i < nd && !rc; i++) {
    if (dead[i] >= g->nslots)
      rc = sx__err_set(err, SX_CORRUPT, "HNSW unlink of slot %llu past the end", (unsigned long long)dead[i]);
    else
      isdead[dead[i] >> 3] |= (uint8_t)(1u << (dead[i] & 7));
  }
  size_t nl = 0;
  for (uint64_t s = 0; s < g->nslots && !rc; s++) {
    int on = 0;
    rc = is_live(g, s, err, &on);
    if (on && !bit(isdead, s)) live[nl++] = s;
  }
  /* The live nodes' new lists, then the dead ones' emptied. */
  if (!rc && nthreads > 1 && nl >= PAR_MIN)
    rc = run_parallel(g, v, lay, live, nl, isdead, nthreads, err);
  else
    for (size_t i = 0; i < nl && !rc; i++) rc = repair_node(g, live[i], isdead, err);
  for (size_t i = 0; i < nd && !rc; i++) {
    uint32_t lv = 0;
    rc = meta_of(g, dead[i], &lv, NULL, err);
    for (uint32_t l = 0; l <= lv && !rc; l++) rc = set_links(g, dead[i], l, NULL, 0, err);
  }
  /* A dead entry point gives way to a live node of the highest level (the first). */
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  if (!rc) rc = entry(g, &ep, &top, err);
  if (!rc && ep != UINT64_MAX && bit(isdead, ep)) {
    uint64_t best = UINT64_MAX;
    uint32_t bl = 0;
    for (size_t i = 0; i < nl && !rc; i++) {
      uint32_t lv = 0;
      rc = meta_of(g, live[i], &lv, NULL, err);
      if (!rc && (best == UINT64_MAX || lv > bl)) best = live[i], bl = lv;
    }
    uint8_t *ow;
    if (!rc) rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
    if (!rc) {
      sx__wr32(ow + g->L.ep_off, best == UINT64_MAX ? 0 : (uint32_t)best + 1);
      sx__wr32(ow + g->L.ep_off + 4, bl);
    }
    ep = best;
  }
  if (!rc && ep != UINT64_MAX) rc = relink_unreached(g, live, nl, ep, err);
  sx__hnsw_close(g);
  free(isdead);
  free(live);
  return rc;
}

/* ---- check ---------------------------------------------------------------------- */

int sx__hnsw_check(sx__hnsw *g, const uint8_t *freebits, sx_error *err) {
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  int rc = entry(g, &ep, &top, err);
  if (rc || ep == UINT64_MAX) return rc;
  uint32_t eplevel = 0;
  rc = meta_of(g, ep, &eplevel, NULL, err);
  if (!rc && eplevel != top)
    rc = sx__err_set(err, SX_CORRUPT, "HNSW entry point level %u differs from the top level %u", eplevel, top);
  if (!rc && freebits && bit(freebits, ep))
    rc = sx__err_set(err, SX_CORRUPT, "HNSW entry point %llu is a free slot", (unsigned long long)ep);
  for (uint64_t s = 0; s < g->nslots && !rc; s++) {
    uint32_t lv = 0;
    int isfree = freebits && bit(freebits, s);
    rc = meta_of(g, s, &lv, NULL, err);
    /* A free slot keeps its level for reuse, and may be above the top. */
    if (!rc && lv > top && !isfree)
      rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu is above the top level", (unsigned long long)s);
    for (uint32_t l = 0; l <= lv && !rc; l++) {
      const uint32_t *ln;
      rc = links(g, s, l, &ln, err);
      if (!rc && isfree && ln[0])
        rc = sx__err_set(err, SX_CORRUPT, "HNSW free slot %llu has %u links at level %u",
                         (unsigned long long)s, ln[0], l);
      for (uint32_t i = 0; !rc && i < ln[0]; i++) {
        uint32_t lvn = 0, x = ln[1 + i];
        if (x >= g->nslots || x == s)
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu has a bad link %u", (unsigned long long)s, x);
        else if (freebits && bit(freebits, x))
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links to free slot %u", (unsigned long long)s, x);
        else if (l > 0 && (rc = meta_of(g, x, &lvn, NULL, err)) == SX_OK && lvn < l)
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links at level %u to a node of level %u", (unsigned long long)s, l, lvn);
      }
    }
  }
  return rc;
}
