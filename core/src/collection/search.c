/*
 * search.c: exact (flat) top-k search over a collection's live slots.
 *
 * The scan walks the live bitmap, gathers blocks of vector pointers (straight into
 * the pages; vectors that straddle a page boundary are copied into the block's
 * scratch), and hands each block to the distance kernels: one query at a time, or
 * all queries of a batch at once so every vector is read from memory once. Each
 * query keeps a max-heap of its k best (distance, id); ties at equal distance are
 * broken by id in ascending byte order, fetching ids only when distances tie. A
 * batch over a read snapshot is split across threads by slot range, then merged.
 * A read view resolves the leaf pages of its vectors once, at its first full scan
 * (vleaves). Over a snapshot of a quantized collection the scan reads the 8-bit codes
 * first and measures only the vectors whose bound from their code is within the k
 * best so far: one query at a time, or a batch's bounds all at once (AVX2).
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collection/collection.h"
#include "collection/results.h"

#define BLOCK 256
/* A single-query scan gathers at most this many bytes of vectors a block (at least
 * 16 vectors): gathering and ranking alternate finely enough that the memory stays
 * busy. Through Python on Fashion-MNIST (784-d, 188 MB), with the prefetch ahead
 * (kernels.h, SX__SCAN_AHEAD), blocks of 20 and 64 vectors ran 0.99-1.01x faiss
 * single-query, 256 vectors 0.94-0.96x in the same runs; over 100 MB in cache, 41
 * vectors ran as fast as 256 or up to 8% faster (784-d and 1536-d). */
#define SCAN_BLOCK_BYTES (128u << 10)

typedef struct hit {
  float d;
  uint32_t slot;
} hit;

typedef struct heap {
  hit *h;
  size_t n, k;
} heap;

typedef struct scan {
  const sx__coll *c;
  const uint8_t *hdr;
  sx_error *err;
  int rc;
} scan;

/* Compares two hits by (distance, id). Ids are fetched only on a tie. */
static int hit_cmp(scan *s, const hit *a, const hit *b) {
  if (a->d < b->d) return -1;
  if (a->d > b->d) return 1;
  if (a->slot == b->slot) return 0;
  char x[SX_ID_MAX + 1], y[SX_ID_MAX + 1];
  size_t lx = 0, ly = 0;
  if (sx__slot_id(s->c, s->hdr, a->slot, x, &lx, s->err) ||
      sx__slot_id(s->c, s->hdr, b->slot, y, &ly, s->err)) {
    s->rc = s->err ? s->err->code : SX_CORRUPT;
    return 0;
  }
  int r = memcmp(x, y, lx < ly ? lx : ly);
  if (r) return r;
  return lx < ly ? -1 : lx > ly;
}

static void sift_down(scan *s, heap *hp, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < hp->n && hit_cmp(s, &hp->h[l], &hp->h[m]) > 0) m = l;
    if (r < hp->n && hit_cmp(s, &hp->h[r], &hp->h[m]) > 0) m = r;
    if (m == i) return;
    hit t = hp->h[i];
    hp->h[i] = hp->h[m];
    hp->h[m] = t;
    i = m;
  }
}

static void heap_push(scan *s, heap *hp, float d, uint32_t slot) {
  hit x = {d, slot};
  if (hp->n < hp->k) {
    size_t i = hp->n++;
    hp->h[i] = x;
    while (i > 0) {
      size_t p = (i - 1) / 2;
      if (hit_cmp(s, &hp->h[p], &hp->h[i]) >= 0) break;
      hit t = hp->h[p];
      hp->h[p] = hp->h[i];
      hp->h[i] = t;
      i = p;
    }
    return;
  }
  /* Full: replace the worst if x is better (distance first, then id). */
  if (d > hp->h[0].d) return;
  if (hit_cmp(s, &x, &hp->h[0]) >= 0) return;
  hp->h[0] = x;
  sift_down(s, hp, 0);
}

/* Sorts the heap's hits best first (heap sort in place). */
static void heap_sort(scan *s, heap *hp) {
  size_t n = hp->n;
  while (hp->n > 1) {
    hit t = hp->h[0];
    hp->h[0] = hp->h[hp->n - 1];
    hp->h[hp->n - 1] = t;
    hp->n--;
    sift_down(s, hp, 0);
  }
  hp->n = n;
}

typedef struct job {
  const sx__coll *c;
  const uint8_t *hdr;
  const float *qs;
  const float *qn;
  size_t nq;
  uint64_t lo, hi;
  heap *heaps; /* nq heaps */
  const sx_search_options *o;
  const sx__filter *filter; /* or NULL */
  /* HNSW: this job answers queries [qlo, qhi) by the graph instead of scanning */
  int hnsw;
  size_t qlo, qhi, k;
  uint32_t ef;
  sx_error err;
  int rc;
} job;

struct sx__coll_pool {
  sx__mutex mu; /* SX__RANK_COLLECTION */
  sx__hnsw *free[16];
  int n;
  /* The leaf pages of the vectors' page array, vleaf[i] for leaf i (nvleaf of them):
   * resolved once by the view's first full scan (vleaves), so that later scans look
   * a page up in an array instead of the page array's tree and the snapshot's page
   * map (about a tenth of a single-query scan's samples at 784-d). A read view's
   * snapshot, so its pages, stay put for the view's life. */
  const uint8_t **vleaf;
  uint64_t nvleaf;
};

int sx__coll_pool_init(sx__coll *c, sx_error *err) {
  if (c->v.t) return SX_OK;
  c->pool = calloc(1, sizeof *c->pool);
  if (!c->pool) return sx__err_set(err, SX_NOMEM, "out of memory");
  sx__mutex_init(&c->pool->mu, SX__RANK_COLLECTION, "collection search contexts");
  return SX_OK;
}

void sx__coll_pool_free(sx__coll *c) {
  if (!c->pool) return;
  for (int i = 0; i < c->pool->n; i++) sx__hnsw_close(c->pool->free[i]);
  sx__mutex_destroy(&c->pool->mu);
  free(c->pool->vleaf);
  free(c->pool);
  c->pool = NULL;
}

/* The view's leaf pages of its vectors (*n of them), resolved now if no scan has
 * yet; NULL when the view has no pool or a leaf cannot be resolved (the scan then
 * looks each up itself, and reports what is wrong). Threads racing here each resolve
 * them; the first to finish publishes its array. */
static const uint8_t *const *vleaves(const sx__coll *c, const uint8_t *hdr, uint64_t nslots,
                                     uint64_t *n) {
  *n = 0;
  if (!c->pool) return NULL;
  sx__mutex_lock(&c->pool->mu);
  const uint8_t **got = c->pool->vleaf;
  *n = c->pool->nvleaf;
  sx__mutex_unlock(&c->pool->mu);
  if (got) return got;
  uint64_t vbytes = (uint64_t)c->dim * 4, ps = sx__pager_page_size(c->v.p);
  if (nslots == 0 || nslots > UINT64_MAX / vbytes) return NULL;
  uint64_t nl = (nslots * vbytes + ps - 1) / ps;
  /* Each leaf is a page of its own: more leaves than pages is a damaged count. */
  if (nl > sx__pv_npages(&c->v) || nl > SIZE_MAX / sizeof *got) return NULL;
  const uint8_t **mine = malloc((size_t)nl * sizeof *mine);
  if (!mine) return NULL;
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, hdr + SX__H_PA_VEC);
  sx_error e = SX_ERROR_INIT;
  for (uint64_t i = 0; i < nl; i++)
    if (sx__pa_leaf(&cur, i, &mine[i], &e)) {
      free(mine);
      return NULL;
    }
  sx__mutex_lock(&c->pool->mu);
  if (!c->pool->vleaf) {
    c->pool->vleaf = mine;
    c->pool->nvleaf = nl;
    mine = NULL;
  }
  got = c->pool->vleaf;
  *n = c->pool->nvleaf;
  sx__mutex_unlock(&c->pool->mu);
  free(mine);
  return got;
}

/* A search context: from the pool when the view has one, else a fresh one. */
static int ctx_get(const sx__coll *c, sx__hnsw **g, sx_error *err) {
  *g = NULL;
  if (c->pool) {
    sx__mutex_lock(&c->pool->mu);
    if (c->pool->n) *g = c->pool->free[--c->pool->n];
    sx__mutex_unlock(&c->pool->mu);
    if (*g) return SX_OK;
  }
  sx__hnsw_layout lay;
  sx__coll_hnsw_layout(c->hdr, &lay);
  return sx__hnsw_open(&c->v, &lay, c->dim, c->metric, c->m, c->efc, g, err);
}

static void ctx_put(const sx__coll *c, sx__hnsw *g) {
  if (g && c->pool) {
    sx__mutex_lock(&c->pool->mu);
    if (c->pool->n < 16) {
      c->pool->free[c->pool->n++] = g;
      g = NULL;
    }
    sx__mutex_unlock(&c->pool->mu);
  }
  sx__hnsw_close(g);
}

/* The hook (called from this worker thread) or the token. Options reach here
 * normalized to the current version (api.c). */
static int job_cancelled(const job *j) {
  if (!j->o) return 0;
  if (sx__cancelled(j->o->cancel_token)) return 1;
  return j->o->cancel && j->o->cancel(j->o->cancel_ctx);
}

static int match_slot(void *ctx, uint64_t slot, sx_error *err) {
  return sx__filter_slot(ctx, slot, err);
}

static void run_hnsw(job *j) {
  const sx__coll *c = j->c;
  scan s = {c, j->hdr, &j->err, SX_OK};
  sx__hnsw *g = NULL;
  sx__fstate fs;
  sx__hnsw_filter hf = {match_slot, &fs};
  if (j->filter) sx__fstate_init(&fs, c, j->hdr, j->filter);
  sx__hit *hits = malloc((j->ef > j->k ? j->ef : j->k) * sizeof *hits);
  j->rc =
      hits ? ctx_get(c, &g, &j->err) : sx__err_set(&j->err, SX_NOMEM, "out of memory for search");
  for (size_t q = j->qlo; q < j->qhi && !j->rc; q++) {
    if (job_cancelled(j)) {
      j->rc = sx__err_set(&j->err, SX_CANCELLED, "search of '%s' was cancelled", c->name);
      break;
    }
    size_t n = 0;
    if (j->filter)
      j->rc = sx__hnsw_search_filtered(g, j->qs + q * c->dim, j->k, j->ef, &hf, hits, &n, &j->err);
    else
      j->rc = sx__hnsw_search(g, j->qs + q * c->dim, j->k, j->ef, hits, &n, &j->err);
    for (size_t i = 0; i < n && !j->rc; i++) heap_push(&s, &j->heaps[q], hits[i].d, hits[i].slot);
    if (s.rc) j->rc = s.rc;
  }
  ctx_put(c, j->rc ? NULL : g);
  if (j->rc) sx__hnsw_close(g);
  if (j->filter) sx__fstate_free(&fs);
  free(hits);
}

/* One block of a flat scan: up to BLOCK live vectors, read in place from their
 * pages. A single-query scan (parts) takes a vector that straddles two pages as its
 * two parts, or as one run when the pages lie next to each other in the map (as a
 * bulk load leaves them); a batch scan (ptrs) copies a straddling vector into
 * scratch unless its pages are adjacent. A vector spanning more than two pages, and
 * any vector of a write transaction's view, is copied. */
typedef struct block {
  const float **ptrs;
  sx__vparts *parts;
  int use_parts; /* fill parts (single query) rather than ptrs (batch) */
  uint32_t *slots;
  float *scratch;
  size_t nb;
  sx__pa_cursor vc, lc; /* vectors, live bitmap */
  size_t vbytes, ps;
  unsigned pshift;
  uint64_t pmask;
  uint64_t vleaf; /* the leaf page vpage points at (UINT64_MAX: none) */
  const uint8_t *vpage;
  uint64_t nleaf; /* the leaf after vleaf, when npage is known (UINT64_MAX: none) */
  const uint8_t *npage;
  sx__fstate *fs;               /* the filter's evaluation state, or NULL: every live slot */
  size_t ahead;                 /* bytes the kernel prefetches ahead (sx__distance_many_parts) */
  size_t lim;                   /* vectors a block gathers, at most BLOCK */
  int slots_only;               /* block_gather takes the live slots only, not their vectors */
  int pf_next;                  /* prefetch the next page at each new leaf (block_add) */
  const uint8_t *const *leaves; /* the view's leaf pages of its vectors (vleaves) */
  uint64_t nleaves;
  sx__qbatch *qb; /* a batch's queries, prepared once for every block */
  float *bound;   /* per query: the worst distance its heap keeps once full, else inf */
} block;

static inline void block_put(block *b, const float *a, const float *rest, size_t n0, size_t dim) {
  if (b->use_parts) {
    b->parts[b->nb].a = a;
    b->parts[b->nb].b = rest;
    b->parts[b->nb].n0 = rest ? n0 : dim;
  } else {
    b->ptrs[b->nb] = a; /* rest is NULL here: straddling vectors were copied */
  }
}

/* Pointer(s) to the vector of slot sl, as the next entry of b. */
static inline int block_add(block *b, uint64_t sl, size_t dim, sx_error *err) {
  uint64_t off = sl * b->vbytes;
  uint64_t leaf = off >> b->pshift;
  size_t in = (size_t)(off & b->pmask);
  if (leaf != b->vleaf && b->vc.v->t == NULL) {
    /* Over a snapshot, leaf pages stay put for the view's life. */
    const uint8_t *pg;
    if (leaf == b->nleaf) {
      pg = b->npage;
    } else if (leaf < b->nleaves) {
      pg = b->leaves[leaf];
    } else {
      int rc = sx__pa_leaf(&b->vc, leaf, &pg, err);
      if (rc) return rc;
    }
    b->vleaf = leaf;
    b->vpage = pg;
    b->nleaf = UINT64_MAX;
    /* Start the next page, where the next leaf mostly lies, where the CPU gains by it
     * (sx__next_page_prefetch_preferred; a prefetch of any address is harmless). */
    if (b->pf_next)
      for (int k = 0; k < 8; k++) __builtin_prefetch(pg + b->ps + 64 * k);
  }
  if (leaf == b->vleaf) {
    const float *a = (const float *)(b->vpage + in);
    if (in + b->vbytes <= b->ps) {
      block_put(b, a, NULL, dim, dim);
      goto done;
    }
    if (in + b->vbytes <= 2 * b->ps) {
      if (b->nleaf != leaf + 1) {
        if (leaf + 1 < b->nleaves) {
          b->npage = b->leaves[leaf + 1];
        } else {
          int rc = sx__pa_leaf(&b->vc, leaf + 1, &b->npage, err);
          if (rc) return rc;
        }
        b->nleaf = leaf + 1;
      }
      if (b->npage == b->vpage + b->ps) { /* adjacent pages: one run */
        block_put(b, a, NULL, dim, dim);
        goto done;
      }
      if (b->use_parts) {
        block_put(b, a, (const float *)b->npage, (b->ps - in) / sizeof(float), dim);
        goto done;
      }
    }
  }
  const void *p;
  int rc = sx__pa_ptr(&b->vc, off, b->vbytes, b->scratch + b->nb * dim, &p, err);
  if (rc) return rc;
  block_put(b, p, NULL, dim, dim);
done:
  b->slots[b->nb++] = (uint32_t)sl;
  return SX_OK;
}

/* Gathers up to b->lim live vectors from slot *s0 on (below j->hi): the live bitmap a
 * 64-bit word at a time. Advances *s0 past what it took. */
static inline int block_gather(job *j, block *b, uint64_t *s0) {
  b->nb = 0;
  while (*s0 < j->hi && b->nb < b->lim) {
    uint64_t word = 0;
    uint64_t base = *s0 & ~(uint64_t)63;
    uint64_t wend = base + 64 < j->hi ? base + 64 : j->hi;
    size_t nbytes = (size_t)((wend - base + 7) / 8);
    int rc = sx__pa_read(&b->lc, base / 8, &word, nbytes, &j->err);
    if (rc) return rc;
    word &= *s0 - base < 64 ? ~0ull << (*s0 - base) : 0;
    if (wend - base < 64) word &= (1ull << (wend - base)) - 1;
    while (word && b->nb < b->lim) {
      uint64_t sl = base + (uint64_t)__builtin_ctzll(word);
      word &= word - 1;
      if (b->fs) {
        int m = sx__filter_slot(b->fs, sl, &j->err);
        if (m < 0) return -m;
        if (!m) {
          *s0 = sl + 1;
          continue;
        }
      }
      if (b->slots_only) {
        b->slots[b->nb++] = (uint32_t)sl;
      } else {
        rc = block_add(b, sl, j->c->dim, &j->err);
        if (rc) return rc;
      }
      *s0 = sl + 1;
    }
    if (!word) *s0 = wend;
  }
  return SX_OK;
}

/* Distances of every query to the block, offered to the queries' heaps. */
static inline void block_rank(job *j, const block *b, float *dist, scan *s) {
  const sx__coll *c = j->c;
  if (b->use_parts)
    sx__distance_many_parts(c->metric, j->qs, j->qn[0], b->parts, b->nb, c->dim, b->ahead,
                            b->scratch + BLOCK * c->dim, dist);
  else {
    /* A pair beyond its query's full heap may come back as +inf (rejected below as
     * its distance would be). */
    for (size_t q = 0; q < j->nq; q++) {
      const heap *hp = &j->heaps[q];
      b->bound[q] = hp->n == hp->k ? hp->h[0].d : INFINITY;
    }
    sx__distance_qbatch_within(b->qb, b->ptrs, b->nb, b->bound, dist);
  }
  for (size_t q = 0; q < j->nq; q++) {
    heap *hp = &j->heaps[q];
    const float *dq = dist + q * b->nb;
    for (size_t i0 = 0; i0 < b->nb; i0 += 8) {
      size_t e = i0 + 8 < b->nb ? i0 + 8 : b->nb;
      /* Eight at a time past distances that cannot enter the full heap (most of a
       * batch's): one branch for eight, not eight (6% of a 500-query batch). */
      if (hp->n == hp->k && e - i0 == 8) {
        float t = hp->h[0].d;
        int in = 0;
        for (size_t u = 0; u < 8; u++) in |= !(dq[i0 + u] > t);
        if (!in) continue;
      }
      for (size_t i = i0; i < e; i++) {
        if (hp->n == hp->k && dq[i] > hp->h[0].d) continue;
        heap_push(s, hp, dq[i], b->slots[i]);
      }
    }
  }
}

/* A block of a single-query scan over codes: the block's slots gathered, the
 * vectors measured are only those whose bound from their code is within the k best
 * so far (the heap's worst once it holds k). The same kernel then measures them as
 * a scan without codes would, so the hits and distances are the same. */
static int block_by_codes(job *j, block *b, sx__hnsw *g, float *lb, uint32_t *cand, scan *s,
                          float *dist) {
  int rc = sx__hnsw_bounds(g, NULL, b->slots, b->nb, lb, &j->err);
  if (rc) return rc;
  const heap *hp = &j->heaps[0];
  float t = hp->n == hp->k ? hp->h[0].d : INFINITY;
  if (!(t == t)) t = INFINITY;
  size_t nc = 0;
  for (size_t i = 0; i < b->nb; i++)
    if (lb[i] <= t) cand[nc++] = b->slots[i];
  b->nb = 0;
  for (size_t i = 0; i < nc; i++)
    if ((rc = block_add(b, cand[i], j->c->dim, &j->err))) return rc;
  if (b->nb) block_rank(j, b, dist, s);
  return s->rc;
}

/* Whether a scan of nq queries reads codes first: over a snapshot of a quantized
 * collection (a snapshot's codes are those of its vectors), a single query always, a
 * batch where the kernels prefer it (sx__qdot_batch_preferred). */
static int scan_by_codes(const sx__coll *c, size_t nq) {
  return c->quant && !c->v.t && (nq == 1 || sx__qdot_batch_preferred(c->dim));
}

/* A block of a batch's scan over codes: every query's bounds for the block's slots
 * at once (sx__hnsw_bounds_batch), then, query by query, the vectors whose bound is
 * within that query's k best so far measured by the single-query kernel, as
 * block_by_codes measures them: a batch returns what each query alone returns. */
static int block_by_codes_batch(job *j, block *b, sx__hnsw *g, sx__hnsw_cbatch *cb, float *lb,
                                scan *s) {
  const sx__coll *c = j->c;
  size_t n = b->nb, dim = c->dim;
  int rc = sx__hnsw_bounds_batch(g, cb, b->slots, n, lb, &j->err);
  if (rc) return rc;
  uint32_t *slots = b->slots + BLOCK; /* the block's slots, kept while b gathers */
  memcpy(slots, b->slots, n * sizeof *slots);
  for (size_t q = 0; q < j->nq; q++) {
    heap *hp = &j->heaps[q];
    const float *l = lb + q * n, *qv = j->qs + q * dim;
    float t = INFINITY;
    for (size_t i = 0; i < n; i++) {
      if (hp->n == hp->k && hp->h[0].d == hp->h[0].d) t = hp->h[0].d;
      /* Eight bounds at a time past those beyond the k best (most): one branch. */
      if ((i & 7) == 0 && i + 8 <= n) {
        int in = 0;
        for (size_t u = 0; u < 8; u++) in |= l[i + u] <= t;
        if (!in) {
          i += 7;
          continue;
        }
      }
      if (!(l[i] <= t)) continue;
      b->nb = 0;
      if ((rc = block_add(b, slots[i], dim, &j->err))) return rc;
      float d = sx__distance(c->metric, qv, j->qn[q], b->ptrs[0], dim);
      if (hp->n == hp->k && d > hp->h[0].d) continue;
      heap_push(s, hp, d, slots[i]);
      if (s->rc) return s->rc;
    }
  }
  b->nb = 0;
  return SX_OK;
}

/* A job's flat scan of slots [lo, hi), block by block. A scan over a snapshot of a
 * quantized collection reads the codes first (block_by_codes, block_by_codes_batch). */
static void scan_flat_part(job *j) {
  const sx__coll *c = j->c;
  size_t dim = c->dim;
  scan s = {c, j->hdr, &j->err, SX_OK};
  block b = {.nb = 0};
  sx__fstate fs;
  if (j->filter) {
    sx__fstate_init(&fs, c, j->hdr, j->filter);
    b.fs = &fs;
  }
  sx__pa_cursor_init(&b.vc, &c->v, j->hdr + SX__H_PA_VEC);
  sx__pa_cursor_init(&b.lc, &c->v, j->hdr + SX__H_PA_LIVE);
  b.ptrs = malloc(BLOCK * sizeof *b.ptrs);
  b.parts = malloc(BLOCK * sizeof *b.parts);
  b.use_parts = j->nq == 1;
  b.slots = malloc(2 * BLOCK * sizeof *b.slots); /* the second half: block_by_codes_batch's */
  b.scratch = malloc((BLOCK + 1) * dim * sizeof(float)); /* the last dim: the kernel's */
  sx__hnsw *g = NULL;
  sx__hnsw_cbatch *cb = NULL;
  float *lb = NULL;
  uint32_t *cand = NULL;
  int codes = scan_by_codes(c, j->nq);
  /* Distances of every query to a block, but in a batch over codes (its bounds). */
  float *dist = malloc((codes && j->nq > 1 ? 1 : BLOCK * j->nq) * sizeof(float));
  if (!b.use_parts && !codes) {
    b.qb = sx__qbatch_new(c->metric, j->qs, j->qn, j->nq, dim);
    b.bound = malloc(j->nq * sizeof *b.bound);
  }
  if (!b.ptrs || !b.parts || !b.slots || !b.scratch || !dist ||
      (!b.use_parts && !codes && (!b.qb || !b.bound))) {
    j->rc = sx__err_set(&j->err, SX_NOMEM, "out of memory for search");
    goto out;
  }
  if (codes) {
    lb = malloc(BLOCK * j->nq * sizeof *lb);
    if (j->nq == 1) cand = malloc(BLOCK * sizeof *cand); /* a batch keeps its own (cb) */
    j->rc = lb && (cand || j->nq > 1) ? ctx_get(c, &g, &j->err)
                                      : sx__err_set(&j->err, SX_NOMEM, "out of memory for search");
    if (!j->rc && j->nq == 1) j->rc = sx__hnsw_bounds(g, j->qs, NULL, 0, lb, &j->err);
    if (!j->rc && j->nq > 1 && !(cb = sx__hnsw_cbatch_new(g, j->qs, j->nq, BLOCK)))
      j->rc = sx__err_set(&j->err, SX_NOMEM, "out of memory for search");
    if (j->rc) goto out;
    b.slots_only = 1;
  }
  /* A full scan of a read view reads every leaf: resolve them once for the view. */
  if (!c->v.t && !j->filter && !b.slots_only) {
    uint64_t nslots = sx__rd64(j->hdr + SX__H_NSLOTS);
    b.leaves = vleaves(c, j->hdr, nslots, &b.nleaves);
  }
  b.pf_next = sx__next_page_prefetch_preferred();
  b.vbytes = dim * 4;
  b.ps = b.vc.ps;
  b.pshift = (unsigned)__builtin_ctz(b.vc.ps);
  b.pmask = b.ps - 1;
  b.vleaf = b.nleaf = UINT64_MAX;
  /* Prefetch ahead only over the whole stream: a filter's matches lie apart, and
   * the bytes after each would mostly go unread. */
  b.ahead =
      !j->filter && !g && (j->hi - j->lo) * b.vbytes >= SX__SCAN_AHEAD_MIN ? SX__SCAN_AHEAD : 0;
  b.lim = BLOCK;
  if (b.use_parts && !g && SCAN_BLOCK_BYTES / b.vbytes < BLOCK)
    b.lim = SCAN_BLOCK_BYTES / b.vbytes > 16 ? SCAN_BLOCK_BYTES / b.vbytes : 16;
  uint64_t s0 = j->lo;
  while (s0 < j->hi && !j->rc) {
    if (job_cancelled(j)) {
      j->rc = sx__err_set(&j->err, SX_CANCELLED, "search of '%s' was cancelled", c->name);
      break;
    }
    j->rc = block_gather(j, &b, &s0);
    if (j->rc || b.nb == 0) break;
    if (cb) {
      j->rc = block_by_codes_batch(j, &b, g, cb, lb, &s);
      continue;
    }
    if (g) {
      j->rc = block_by_codes(j, &b, g, lb, cand, &s, dist);
      continue;
    }
    block_rank(j, &b, dist, &s);
    if (s.rc) j->rc = s.rc;
  }
out:
  ctx_put(c, j->rc ? NULL : g);
  if (j->rc) sx__hnsw_close(g);
  sx__hnsw_cbatch_free(cb);
  free(lb);
  free(cand);
  if (b.fs) sx__fstate_free(b.fs);
  sx__qbatch_free(b.qb);
  free(b.bound);
  free(b.ptrs);
  free(b.parts);
  free(b.slots);
  free(b.scratch);
  free(dist);
}

/* A batch over codes at most this many queries at a time: its prepared queries, bounds
 * and products take about 5 KB a query (784-d), so a large batch costs a scan of the
 * codes per chunk (47 MB on Fashion-MNIST, against about a second of arithmetic)
 * rather than its size again in every thread. */
#define CODES_QC 1020

/* A job's flat scan; a batch over codes, chunk by chunk of its queries. */
static void scan_flat(job *j) {
  if (j->nq <= CODES_QC || !scan_by_codes(j->c, j->nq)) {
    scan_flat_part(j);
    return;
  }
  for (size_t q0 = 0; q0 < j->nq && !j->rc; q0 += CODES_QC) {
    job part = *j;
    part.qs += q0 * j->c->dim;
    part.qn += q0;
    part.heaps += q0;
    part.nq = j->nq - q0 < CODES_QC ? j->nq - q0 : CODES_QC;
    scan_flat_part(&part);
    if (part.rc) {
      j->rc = part.rc;
      j->err = part.err;
    }
  }
}

static void run_job(job *j) {
  if (j->hnsw)
    run_hnsw(j);
  else
    scan_flat(j);
}

static void run_job_part(void *jobs, int i) {
  run_job(&((job *)jobs)[i]);
}

void sx__results_free(sx_results *r) {
  if (!r) return;
  free(r->blob);
  free(r->id_off);
  free(r->ids);
  free(r->off);
  free(r->dist);
  free(r->meta);
  free(r->meta_off);
  free(r->vecs);
  free(r);
}

/* One search call: its queries, the plan (how many candidates, threads), and the
 * per-thread, per-query heaps the jobs fill. */
typedef struct search {
  const sx__coll *c;
  const uint8_t *h; /* the collection's header page */
  const float *qs;
  float *qn;               /* query norms (cosine) */
  size_t nq, dim, k, want; /* k: candidates kept per query; want: hits returned */
  size_t ef;               /* HNSW: the candidate list (search_ef) */
  uint64_t nslots;
  int rerank, nt;
  int graph; /* an HNSW collection searched through its graph (else scanned) */
  uint32_t include;
  const sx__filter *filter;
  job *jobs;
  hit *hits;
  heap *heaps; /* nt * nq: thread t's heap of query q at t * nq + q */
} search;

static int search_check_args(const sx__coll *c, const float *qs, size_t nq, size_t dim, size_t k,
                             const sx_search_options *o, sx_error *err) {
  if (dim != c->dim)
    return sx__err_set(err, SX_DIMENSION_MISMATCH,
                       "dimension %zu does not match collection '%s' (dimension %u)", dim, c->name,
                       c->dim);
  if (!qs && nq) return sx__err_set(err, SX_INVALID_ARGUMENT, "query is NULL");
  if (k == 0) return sx__err_set(err, SX_INVALID_ARGUMENT, "k must be at least 1 (got 0)");
  /* The api layer checked the options and brought them to this header's version. */
  assert(!o || o->version == SX_SEARCH_OPTIONS_VERSION);
  for (size_t q = 0; q < nq; q++) {
    int rc = sx__check_vector(qs + q * dim, dim, c->metric, "query", q, err);
    if (rc) return rc;
  }
  return SX_OK;
}

/* The jobs: threads only over snapshots (a write transaction is used by one thread),
 * and only when there is enough to scan; a flat scan splits the slots, an HNSW
 * search the queries. */
static int search_plan(search *S, const sx_search_options *o, int nthreads, sx_error *err) {
  const sx__coll *c = S->c;
  const int hnsw = S->graph;
  int nt = c->v.t ? 1 : nthreads;
  if (nt < 1) nt = 1;
  if (hnsw ? (size_t)nt > S->nq : (uint64_t)nt * BLOCK * 4 > S->nslots)
    nt = hnsw ? (int)(S->nq ? S->nq : 1) : 1;
  S->nt = nt;
  size_t nq = S->nq, k = S->k;
  S->jobs = calloc((size_t)nt, sizeof *S->jobs);
  S->hits = malloc((size_t)nt * nq * k * sizeof *S->hits + 1);
  S->heaps = calloc((size_t)nt * nq + 1, sizeof *S->heaps);
  if (!S->jobs || !S->hits || !S->heaps)
    return sx__err_set(err, SX_NOMEM, "out of memory for search");
  for (int t = 0; t < nt; t++) {
    job *j = &S->jobs[t];
    j->c = c;
    j->hdr = S->h;
    j->qs = S->qs;
    j->qn = S->qn;
    j->nq = nq;
    j->o = o;
    j->filter = S->filter;
    /* Split on multiples of 8 so threads never share a live-bitmap byte. */
    j->lo = S->nslots * (uint64_t)t / (uint64_t)nt / 8 * 8;
    j->hi = t + 1 == nt ? S->nslots : S->nslots * (uint64_t)(t + 1) / (uint64_t)nt / 8 * 8;
    j->heaps = S->heaps + (size_t)t * nq;
    if (hnsw) {
      j->hnsw = 1;
      j->k = k;
      j->ef = S->ef > UINT32_MAX ? UINT32_MAX : (uint32_t)S->ef; /* the walk keeps max(ef, k) */
      j->qlo = nq * (size_t)t / (size_t)nt;
      j->qhi = nq * (size_t)(t + 1) / (size_t)nt;
    }
    for (size_t q = 0; q < nq; q++) {
      j->heaps[q].h = S->hits + ((size_t)t * nq + q) * k;
      j->heaps[q].k = k;
    }
  }
  return SX_OK;
}

/* Runs the jobs, one per thread; the first error any met. */
static int search_run(search *S, sx_error *err) {
  sx__par_for(S->nt, run_job_part, S->jobs);
  for (int t = 0; t < S->nt; t++) {
    if (S->jobs[t].rc) {
      if (err) *err = S->jobs[t].err;
      return S->jobs[t].rc;
    }
  }
  return SX_OK;
}

/* Query q answered by the single-query scan itself, into hp (its want best). */
static int rescan_one(search *S, size_t q, heap *hp, scan *s, sx_error *err) {
  heap one = {hp->h, 0, S->want};
  job j1 = S->jobs[0];
  j1.qs = S->qs + q * S->dim;
  j1.qn = S->qn + q;
  j1.nq = 1;
  j1.lo = 0;
  j1.hi = S->nslots;
  j1.heaps = &one;
  j1.rc = SX_OK;
  run_job(&j1);
  if (j1.rc) {
    if (err) *err = j1.err;
    return j1.rc;
  }
  heap_sort(s, &one);
  hp->n = one.n;
  return SX_OK;
}

/* Ranks the candidates of query q again with the single-query kernel, by (distance,
 * id), and keeps the want best. */
static int rerank_exact(search *S, size_t q, heap *hp, scan *s, sx_error *err) {
  const sx__coll *c = S->c;
  size_t dim = S->dim;
  sx__pa_cursor vc;
  sx__pa_cursor_init(&vc, &c->v, S->h + SX__H_PA_VEC);
  float *tmp = malloc(dim * sizeof(float));
  const float *qv = S->qs + q * dim;
  float qn1 = sx__norm(qv, dim);
  int rc = SX_OK;
  for (size_t i = 0; i < hp->n && !rc; i++) {
    const void *vp;
    rc = tmp ? sx__pa_ptr(&vc, (uint64_t)hp->h[i].slot * dim * 4, dim * 4, tmp, &vp, err)
             : sx__err_set(err, SX_NOMEM, "out of memory");
    if (!rc) hp->h[i].d = sx__distance(c->metric, qv, qn1, vp, dim);
  }
  free(tmp);
  if (rc) return rc;
  /* Re-sort by (distance, id): insertion sort, the list is nearly sorted. */
  for (size_t i = 1; i < hp->n; i++) {
    hit x = hp->h[i];
    size_t m = i;
    while (m > 0 && hit_cmp(s, &x, &hp->h[m - 1]) < 0) {
      hp->h[m] = hp->h[m - 1];
      m--;
    }
    hp->h[m] = x;
  }
  if (hp->n > S->want) hp->n = S->want;
  return SX_OK;
}

/* Merges the threads' heaps of query q into the first and sorts it; a batch scan's
 * candidates are ranked again (see sx__coll_search). */
static int search_merge(search *S, size_t q, scan *s, sx_error *err) {
  heap *hp = &S->heaps[q];
  for (int t = 1; t < S->nt; t++) {
    heap *o2 = &S->heaps[(size_t)t * S->nq + q];
    for (size_t i = 0; i < o2->n; i++) heap_push(s, hp, o2->h[i].d, o2->h[i].slot);
  }
  heap_sort(s, hp);
  if (!S->rerank) return SX_OK;
  if (hp->n > S->want) {
    /* Candidates kept past the k-th must be clearly farther by the batch kernel,
     * or some vector left out could be a near-tie the single-query kernel puts
     * inside: then this query is answered by the single-query scan itself. */
    float bk = hp->h[S->want - 1].d, bmax = hp->h[hp->n - 1].d;
    float tol = 1e-4f * (fabsf(bk) > fabsf(bmax) ? fabsf(bk) : fabsf(bmax)) + 1e-6f;
    if (bmax - bk <= tol) return rescan_one(S, q, hp, s, err);
  }
  return rerank_exact(S, q, hp, s, err);
}

/* Copies the metadata texts and/or vectors of the n hits (slots sl) into res. */
static int search_include(search *S, sx_results *res, const uint32_t *sl, size_t n, sx_error *err) {
  const sx__coll *c = S->c;
  int rc = SX_OK;
  if (S->include & SX_INCLUDE_VECTOR) {
    res->vdim = c->dim;
    res->vecs = malloc((n ? n : 1) * (size_t)c->dim * sizeof(float));
    if (!res->vecs) return sx__err_set(err, SX_NOMEM, "out of memory for search results");
    sx__pa_cursor vc;
    sx__pa_cursor_init(&vc, &c->v, S->h + SX__H_PA_VEC);
    for (size_t i = 0; i < n && !rc; i++)
      rc = sx__pa_read(&vc, (uint64_t)sl[i] * c->dim * 4, res->vecs + i * c->dim,
                       (size_t)c->dim * 4, err);
    if (rc) return rc;
  }
  if (S->include & SX_INCLUDE_METADATA) {
    res->meta_off = calloc(n + 1, sizeof *res->meta_off);
    if (!res->meta_off) return sx__err_set(err, SX_NOMEM, "out of memory for search results");
    uint64_t heaplen = sx__rd64(S->h + SX__H_HEAPLEN);
    sx__pa_cursor hc;
    sx__pa_cursor_init(&hc, &c->v, S->h + SX__H_PA_HEAP);
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < n && !rc; i++) {
      sx__slotrec r;
      res->meta_off[i] = len;
      rc = sx__slot_read(c, S->h, sl[i], &r, err);
      if (rc || r.meta_len == SX__NO_META) continue;
      if (r.meta_off > heaplen || r.meta_len > heaplen - r.meta_off) {
        rc = sx__err_set(err, SX_CORRUPT, "slot %u of collection '%s' has bad metadata bounds",
                         sl[i], c->name);
        break;
      }
      if (len + r.meta_len + 1 > cap) {
        size_t nc = cap ? cap * 2 : 1024;
        while (nc < len + r.meta_len + 1) nc *= 2;
        char *nb = realloc(res->meta, nc);
        if (!nb) {
          rc = sx__err_set(err, SX_NOMEM, "out of memory for search results");
          break;
        }
        res->meta = nb;
        cap = nc;
      }
      rc = sx__pa_read(&hc, r.meta_off, res->meta + len, r.meta_len, err);
      len += r.meta_len;
      res->meta[len++] = 0;
    }
    res->meta_off[n] = len;
  }
  return rc;
}

/* The results: per query its hits (in S->heaps[q]), named. */
static int search_results(search *S, sx_results *res, size_t total, sx_error *err) {
  size_t nq = S->nq, at = 0;
  res->dist = malloc((total ? total : 1) * sizeof *res->dist);
  res->ids = calloc(total ? total : 1, sizeof *res->ids);
  res->id_off = calloc(total + 1, sizeof *res->id_off);
  if (!res->off || !res->dist || !res->ids || !res->id_off)
    return sx__err_set(err, SX_NOMEM, "out of memory for search results");
  uint32_t *sl = malloc((total ? total : 1) * sizeof *sl);
  size_t *offs = malloc((total ? total : 1) * sizeof *offs);
  int rc = SX_OK;
  if (!sl || !offs) rc = sx__err_set(err, SX_NOMEM, "out of memory for search results");
  for (size_t q = 0; q < nq && !rc; q++) {
    heap *hp = &S->heaps[q];
    res->off[q] = at;
    for (size_t i = 0; i < hp->n; i++, at++) {
      sl[at] = hp->h[i].slot;
      res->dist[at] = hp->h[i].d;
    }
    res->off[q + 1] = at;
  }
  if (!rc) rc = sx__slot_ids(S->c, S->h, sl, at, &res->blob, offs, err);
  if (!rc) {
    for (size_t i = 0; i < at; i++) {
      res->ids[i] = res->blob + offs[i];
      res->id_off[i] = offs[i];
    }
    res->id_off[at] = at ? offs[at - 1] + strlen(res->ids[at - 1]) + 1 : 0;
  }
  if (!rc && S->include) rc = search_include(S, res, sl, at, err);
  free(sl);
  free(offs);
  return rc;
}

/* The HNSW candidate list of a search for k hits (k at most the slots already): the
 * options' ef (0: 64), at least k, and at most the collection's slots. The list never
 * holds more nodes than the graph has, so the cap changes no answer; without it an ef
 * from 2^31 up sized gigabytes of scratch and failed with NOMEM. */
static size_t search_ef(const sx_search_options *o, size_t k, uint64_t nslots) {
  size_t ef = o && o->ef ? o->ef : 64;
  if (ef < k) ef = k;
  uint64_t most = nslots > k ? nslots : k; /* k is 1 over an empty collection */
  if (ef > most) ef = (size_t)most;
  return ef;
}

/* With a filter, whether an HNSW collection walks its graph or scans the matching
 * items: the filter is evaluated on a fixed sample of slots spread evenly over the
 * collection, and when the matching items are estimated few, scanning them is
 * cheaper than a walk that has to pass through many that do not match (and recall
 * is then exact). */
static int search_choose(search *S, sx_error *err) {
  const sx__coll *c = S->c;
  uint64_t live = sx__rd64(S->h + SX__H_COUNT), n = S->nslots;
  /* The walk costs about ef / share expansions (hnsw_search.c), a scan one filter
   * test per item: scan when fewer than SCAN_MATCHES * ef items match. */
  enum { SCAN_MATCHES = 40, ENOUGH = 32 };
  uint64_t limit = S->ef > UINT64_MAX / SCAN_MATCHES ? UINT64_MAX : (uint64_t)SCAN_MATCHES * S->ef;
  if (live <= limit || n == 0) { /* n == 0 < live: a damaged count, nothing to sample */
    S->graph = 0;
    return SX_OK;
  }
  /* Sample until ENOUGH match (the share is then known within about 20%), or until
   * the sample is large enough to tell a share at the limit (8 matches expected). */
  uint64_t cap = 8 * live / limit + 64, ns = 0, nm = 0, st = 0x5eed;
  sx__pa_cursor lc;
  sx__pa_cursor_init(&lc, &c->v, S->h + SX__H_PA_LIVE);
  sx__fstate fs;
  sx__fstate_init(&fs, c, S->h, S->filter);
  int rc = SX_OK;
  for (uint64_t tries = 0; tries < 4 * cap && ns < cap && nm < ENOUGH && !rc; tries++) {
    /* splitmix64: slots drawn at random, so no stride aliases a pattern of the data */
    uint64_t z = (st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    uint64_t sl = z % n;
    uint8_t b;
    rc = sx__pa_read(&lc, sl / 8, &b, 1, err);
    if (rc || !(b >> (sl % 8) & 1)) continue;
    int m = sx__filter_slot(&fs, sl, err);
    if (m < 0) rc = -m;
    ns++;
    nm += m > 0;
  }
  sx__fstate_free(&fs);
  if (rc) return rc;
  /* est = nm / ns * live matching items */
  S->graph = ns > 0 && (double)nm * (double)live >= (double)limit * (double)ns;
  return SX_OK;
}

/* Checks, plans, runs the jobs, merges per query, names the hits. */
int sx__coll_search(const sx__coll *c, const float *qs, size_t nq, size_t dim, size_t k,
                    const sx_search_options *o, int nthreads, sx_results **out, sx_error *err) {
  *out = NULL;
  int rc = search_check_args(c, qs, nq, dim, k, o, err);
  sx__filter *filter = NULL;
  if (!rc && o && o->filter) rc = sx__filter_compile(o->filter, &filter, err);
  if (!rc && filter && sx__filter_always(filter)) {
    sx__filter_free(filter);
    filter = NULL;
  }
  if (!rc) rc = sx__coll_revalidate((sx__coll *)c, err);
  search S = {.c = c, .qs = qs, .nq = nq, .dim = dim, .filter = filter};
  if (!rc) rc = sx__coll_header(c, &S.h, err);
  if (rc) {
    sx__filter_free(filter);
    return rc;
  }
  S.include = o ? o->include : 0;
  S.nslots = sx__rd64(S.h + SX__H_NSLOTS);
  S.graph = c->index == SX_INDEX_HNSW && !(o && o->exact);
  /* No search returns more hits than the collection has slots, whatever k asks. */
  if (k > S.nslots) k = S.nslots ? S.nslots : 1;
  S.want = k;
  S.ef = search_ef(o, k, S.nslots);
  if (S.graph && filter) {
    rc = search_choose(&S, err);
    if (rc) {
      sx__filter_free(filter);
      return rc;
    }
  }
  /* A batch scan ranks by the batch kernel, whose distances may differ from the
   * single-query kernel's in the last bits; it keeps a margin of candidates and
   * re-ranks them with the single-query kernel, so a batch answers exactly as the
   * same queries one by one. A scan over codes measures with the single-query
   * kernel already. */
  S.rerank = !S.graph && nq > 1 && !scan_by_codes(c, nq);
  if (S.rerank) k = k + 16 < S.nslots ? k + 16 : (S.nslots ? S.nslots : 1);
  S.k = k;

  S.qn = malloc((nq ? nq : 1) * sizeof *S.qn);
  sx_results *res = calloc(1, sizeof *res);
  if (!S.qn || !res) {
    free(S.qn);
    free(res);
    sx__filter_free(filter);
    return sx__err_set(err, SX_NOMEM, "out of memory for search");
  }
  for (size_t q = 0; q < nq; q++)
    S.qn[q] = c->metric == SX_METRIC_COSINE ? sx__norm(qs + q * dim, dim) : 0;
  rc = search_plan(&S, o, nthreads, err);
  if (!rc) rc = search_run(&S, err);
  scan s = {c, S.h, err, SX_OK};
  size_t total = 0;
  if (!rc) {
    res->nq = nq;
    res->off = calloc(nq + 1, sizeof *res->off);
  }
  for (size_t q = 0; q < nq && !rc; q++) {
    rc = search_merge(&S, q, &s, err);
    total += S.heaps[q].n;
  }
  if (!rc) rc = search_results(&S, res, total, err);
  if (!rc) rc = s.rc;
  free(S.jobs);
  free(S.hits);
  free(S.heaps);
  free(S.qn);
  sx__filter_free(filter);
  if (rc) {
    sx__results_free(res);
    return rc;
  }
  *out = res;
  return SX_OK;
}
