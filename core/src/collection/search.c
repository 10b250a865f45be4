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
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collection/collection.h"

#define BLOCK 256

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
  /* HNSW: this job answers queries [qlo, qhi) by the graph instead of scanning */
  int hnsw;
  size_t qlo, qhi, k;
  uint32_t ef;
  sx_error err;
  int rc;
} job;

struct sx__hnsw_pool {
  sx__mutex mu; /* SX_RANK_COLLECTION */
  sx__hnsw *free[16];
  int n;
};

int sx__coll_pool_init(sx__coll *c, sx_error *err) {
  if (c->v.t || c->index != SX_INDEX_HNSW) return SX_OK;
  c->pool = calloc(1, sizeof *c->pool);
  if (!c->pool) return sx__err_set(err, SX_NOMEM, "out of memory");
  sx__mutex_init(&c->pool->mu, SX_RANK_COLLECTION, "collection search contexts");
  return SX_OK;
}

void sx__coll_pool_free(sx__coll *c) {
  if (!c->pool) return;
  for (int i = 0; i < c->pool->n; i++) sx__hnsw_close(c->pool->free[i]);
  sx__mutex_destroy(&c->pool->mu);
  free(c->pool);
  c->pool = NULL;
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

static void run_hnsw(job *j) {
  const sx__coll *c = j->c;
  scan s = {c, j->hdr, &j->err, SX_OK};
  sx__hnsw *g = NULL;
  sx__hit *hits = malloc((j->ef > j->k ? j->ef : j->k) * sizeof *hits);
  j->rc = hits ? ctx_get(c, &g, &j->err) : sx__err_set(&j->err, SX_NOMEM, "out of memory for search");
  for (size_t q = j->qlo; q < j->qhi && !j->rc; q++) {
    if (job_cancelled(j)) {
      j->rc = sx__err_set(&j->err, SX_CANCELLED, "search of '%s' was cancelled", c->name);
      break;
    }
    size_t n = 0;
    j->rc = sx__hnsw_search(g, j->qs + q * c->dim, j->k, j->ef, hits, &n, &j->err);
    for (size_t i = 0; i < n && !j->rc; i++) heap_push(&s, &j->heaps[q], hits[i].d, hits[i].slot);
    if (s.rc) j->rc = s.rc;
  }
  ctx_put(c, j->rc ? NULL : g);
  if (j->rc) sx__hnsw_close(g);
  free(hits);
}

static void *run_job(void *arg) {
  job *j = arg;
  if (j->hnsw) {
    run_hnsw(j);
    return NULL;
  }
  const sx__coll *c = j->c;
  size_t dim = c->dim;
  scan s = {c, j->hdr, &j->err, SX_OK};
  sx__pa_cursor vc, lc;
  sx__pa_cursor_init(&vc, &c->v, j->hdr + H_PA_VEC);
  sx__pa_cursor_init(&lc, &c->v, j->hdr + H_PA_LIVE);
  const float **ptrs = malloc(BLOCK * sizeof *ptrs);
  uint32_t *slots = malloc(BLOCK * sizeof *slots);
  float *scratch = malloc(BLOCK * dim * sizeof(float));
  float *dist = malloc(BLOCK * j->nq * sizeof(float));
  if (!ptrs || !slots || !scratch || !dist) {
    j->rc = sx__err_set(&j->err, SX_NOMEM, "out of memory for search");
    goto out;
  }
  const size_t vbytes = dim * 4, ps = vc.ps;
  const unsigned pshift = (unsigned)__builtin_ctz(vc.ps);
  const uint64_t pmask = ps - 1;
  uint64_t vleaf = UINT64_MAX;
  const uint8_t *vpage = NULL;
  uint64_t s0 = j->lo;
  while (s0 < j->hi && !j->rc) {
    if (job_cancelled(j)) {
      j->rc = sx__err_set(&j->err, SX_CANCELLED, "search of '%s' was cancelled", c->name);
      break;
    }
    /* Gather up to BLOCK live vectors: the live bitmap a 64-bit word at a time, and
     * vector pointers straight into the current leaf page while they fit in it. */
    size_t nb = 0;
    while (s0 < j->hi && nb < BLOCK) {
      uint64_t word = 0;
      uint64_t base = s0 & ~(uint64_t)63;
      uint64_t wend = base + 64 < j->hi ? base + 64 : j->hi;
      size_t nbytes = (size_t)((wend - base + 7) / 8);
      j->rc = sx__pa_read(&lc, base / 8, &word, nbytes, &j->err);
      if (j->rc) break;
      word &= s0 - base < 64 ? ~0ull << (s0 - base) : 0;
      if (wend - base < 64) word &= (1ull << (wend - base)) - 1;
      while (word && nb < BLOCK) {
        uint64_t sl = base + (uint64_t)__builtin_ctzll(word);
        word &= word - 1;
        uint64_t off = sl * vbytes;
        uint64_t leaf = off >> pshift;
        size_t in = (size_t)(off & pmask);
        if (leaf == vleaf && in + vbytes <= ps) {
          ptrs[nb] = (const float *)(vpage + in);
        } else {
          const void *p;
          j->rc = sx__pa_ptr(&vc, off, vbytes, scratch + nb * dim, &p, &j->err);
          if (j->rc) break;
          ptrs[nb] = p;
          if (vc.leaf_key == leaf && vc.v->t == NULL) {
            vleaf = leaf;
            vpage = vc.leaf;
          }
        }
        slots[nb] = (uint32_t)sl;
        nb++;
        s0 = sl + 1;
      }
      if (j->rc) break;
      if (!word) s0 = wend;
    }
    if (j->rc || nb == 0) break;
    if (j->nq == 1)
      sx__distance_many(c->metric, j->qs, j->qn[0], ptrs, nb, dim, dist);
    else
      sx__distance_batch(c->metric, j->qs, j->qn, j->nq, ptrs, nb, dim, dist);
    for (size_t q = 0; q < j->nq; q++) {
      heap *hp = &j->heaps[q];
      const float *dq = dist + q * nb;
      for (size_t i = 0; i < nb; i++) {
        if (hp->n == hp->k && dq[i] > hp->h[0].d) continue;
        heap_push(&s, hp, dq[i], slots[i]);
      }
    }
    if (s.rc) j->rc = s.rc;
  }
out:
  free(ptrs);
  free(slots);
  free(scratch);
  free(dist);
  return NULL;
}

void sx__results_free(sx_results *r) {
  if (!r) return;
  free(r->blob);
  free(r->id_off);
  free(r->ids);
  free(r->off);
  free(r->dist);
  free(r);
}

int sx__coll_search(const sx__coll *c, const float *qs, size_t nq, size_t dim, size_t k,
                    const sx_search_options *o, int nthreads, sx_results **out, sx_error *err) {
  *out = NULL;
  if (dim != c->dim)
    return sx__err_set(err, SX_DIMENSION_MISMATCH,
                       "dimension %zu does not match collection '%s' (dimension %u)", dim, c->name,
                       c->dim);
  if (!qs && nq) return sx__err_set(err, SX_INVALID_ARGUMENT, "query is NULL");
  if (k == 0) return sx__err_set(err, SX_INVALID_ARGUMENT, "k must be at least 1 (got 0)");
  if (o && (o->version < 1 || o->version > SX_SEARCH_OPTIONS_VERSION))
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown search options version %u", o->version);
  for (size_t q = 0; q < nq; q++) {
    int rc = sx__check_vector(qs + q * dim, dim, c->metric, "query", q, err);
    if (rc) return rc;
  }
  int rc = sx__coll_revalidate((sx__coll *)c, err);
  if (rc) return rc;
  const uint8_t *h;
  rc = sx__pv_page(&c->v, c->hdr, &h, err);
  if (rc) return rc;
  uint64_t nslots = sx__rd64(h + H_NSLOTS);
  if (k > nslots) k = nslots ? nslots : 1;
  const int hnsw = c->index == SX_INDEX_HNSW;
  const size_t want = k;
  /* A batch scan ranks by the batch kernel, whose distances may differ from the
   * single-query kernel's in the last bits; it keeps a margin of candidates and
   * re-ranks them with the single-query kernel, so a batch answers exactly as the
   * same queries one by one. */
  const int rerank = !hnsw && nq > 1;
  if (rerank) k = k + 16 < nslots ? k + 16 : (nslots ? nslots : 1);

  size_t total = 0, at = 0;
  float *qn = malloc((nq ? nq : 1) * sizeof *qn);
  sx_results *res = calloc(1, sizeof *res);
  if (!qn || !res) {
    free(qn);
    free(res);
    return sx__err_set(err, SX_NOMEM, "out of memory for search");
  }
  for (size_t q = 0; q < nq; q++) qn[q] = c->metric == SX_METRIC_COSINE ? sx__norm(qs + q * dim, dim) : 0;

  /* Threads only over snapshots (a write transaction is used by one thread), and
   * only when there is enough to scan. */
  int nt = c->v.t ? 1 : nthreads;
  if (nt < 1) nt = 1;
  if (hnsw ? (size_t)nt > nq : (uint64_t)nt * BLOCK * 4 > nslots) nt = hnsw ? (int)(nq ? nq : 1) : 1;
  job *jobs = calloc((size_t)nt, sizeof *jobs);
  hit *hits = malloc((size_t)nt * nq * k * sizeof *hits + 1);
  heap *heaps = calloc((size_t)nt * nq + 1, sizeof *heaps);
  if (!jobs || !hits || !heaps) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory for search");
    goto done;
  }
  for (int t = 0; t < nt; t++) {
    job *j = &jobs[t];
    j->c = c;
    j->hdr = h;
    j->qs = qs;
    j->qn = qn;
    j->nq = nq;
    j->o = o;
    /* Split on multiples of 8 so threads never share a live-bitmap byte. */
    j->lo = nslots * (uint64_t)t / (uint64_t)nt / 8 * 8;
    j->hi = t + 1 == nt ? nslots : nslots * (uint64_t)(t + 1) / (uint64_t)nt / 8 * 8;
    j->heaps = heaps + (size_t)t * nq;
    if (hnsw) {
      j->hnsw = 1;
      j->k = k;
      j->ef = o && o->ef ? o->ef : (k > 64 ? (uint32_t)k : 64);
      j->qlo = nq * (size_t)t / (size_t)nt;
      j->qhi = nq * (size_t)(t + 1) / (size_t)nt;
    }
    for (size_t q = 0; q < nq; q++) {
      j->heaps[q].h = hits + ((size_t)t * nq + q) * k;
      j->heaps[q].k = k;
    }
  }
  pthread_t *tids = nt > 1 ? calloc((size_t)nt, sizeof *tids) : NULL;
  int started = 0;
  if (tids) {
    for (int t = 1; t < nt; t++) {
      if (pthread_create(&tids[t], NULL, run_job, &jobs[t]) != 0) break;
      started = t;
    }
  }
  run_job(&jobs[0]);
  for (int t = 1; t <= started; t++) pthread_join(tids[t], NULL);
  for (int t = started + 1; t < nt; t++) run_job(&jobs[t]); /* could not start a thread */
  free(tids);
  for (int t = 0; t < nt && !rc; t++) {
    if (jobs[t].rc) {
      rc = jobs[t].rc;
      if (err) *err = jobs[t].err;
    }
  }
  if (rc) goto done;

  /* Merge the threads' heaps into the first, then sort and name the hits. */
  scan s = {c, h, err, SX_OK};
  res->nq = nq;
  res->off = calloc(nq + 1, sizeof *res->off);
  for (size_t q = 0; q < nq; q++) {
    heap *hp = &heaps[q];
    for (int t = 1; t < nt; t++) {
      heap *o2 = &heaps[(size_t)t * nq + q];
      for (size_t i = 0; i < o2->n; i++) heap_push(&s, hp, o2->h[i].d, o2->h[i].slot);
    }
    heap_sort(&s, hp);
    if (rerank && hp->n > want) {
      /* Candidates kept past the k-th must be clearly farther by the batch kernel,
       * or some vector left out could be a near-tie the single-query kernel puts
       * inside: then this query is answered by the single-query scan itself. */
      float bk = hp->h[want - 1].d, bmax = hp->h[hp->n - 1].d;
      float tol = 1e-4f * (fabsf(bk) > fabsf(bmax) ? fabsf(bk) : fabsf(bmax)) + 1e-6f;
      if (bmax - bk <= tol) {
        heap one = {hp->h, 0, want};
        job j1 = jobs[0];
        j1.qs = qs + q * dim;
        j1.qn = qn + q;
        j1.nq = 1;
        j1.lo = 0;
        j1.hi = nslots;
        j1.heaps = &one;
        j1.rc = SX_OK;
        run_job(&j1);
        if (j1.rc) {
          rc = j1.rc;
          if (err) *err = j1.err;
          goto done;
        }
        heap_sort(&s, &one);
        hp->n = one.n;
        total += hp->n;
        continue;
      }
    }
    if (rerank) {
      sx__pa_cursor vc;
      sx__pa_cursor_init(&vc, &c->v, h + H_PA_VEC);
      float *tmp = malloc(dim * sizeof(float));
      const float *qv = qs + q * dim;
      float qn1 = sx__norm(qv, dim);
      for (size_t i = 0; i < hp->n && !rc; i++) {
        const void *vp;
        rc = tmp ? sx__pa_ptr(&vc, (uint64_t)hp->h[i].slot * dim * 4, dim * 4, tmp, &vp, err)
                 : sx__err_set(err, SX_NOMEM, "out of memory");
        if (!rc) hp->h[i].d = sx__distance(c->metric, qv, qn1, vp, dim);
      }
      free(tmp);
      if (rc) goto done;
      /* Re-sort by (distance, id): insertion sort, the list is nearly sorted. */
      for (size_t i = 1; i < hp->n; i++) {
        hit x = hp->h[i];
        size_t m = i;
        while (m > 0 && hit_cmp(&s, &x, &hp->h[m - 1]) < 0) {
          hp->h[m] = hp->h[m - 1];
          m--;
        }
        hp->h[m] = x;
      }
      if (hp->n > want) hp->n = want;
    }
    total += hp->n;
  }
  res->dist = malloc((total ? total : 1) * sizeof *res->dist);
  res->ids = calloc(total ? total : 1, sizeof *res->ids);
  res->id_off = calloc(total + 1, sizeof *res->id_off);
  if (!res->off || !res->dist || !res->ids || !res->id_off) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory for search results");
    goto done;
  }
  uint32_t *sl = malloc((total ? total : 1) * sizeof *sl);
  size_t *offs = malloc((total ? total : 1) * sizeof *offs);
  if (!sl || !offs) rc = sx__err_set(err, SX_NOMEM, "out of memory for search results");
  for (size_t q = 0; q < nq && !rc; q++) {
    heap *hp = &heaps[q];
    res->off[q] = at;
    for (size_t i = 0; i < hp->n; i++, at++) {
      sl[at] = hp->h[i].slot;
      res->dist[at] = hp->h[i].d;
    }
    res->off[q + 1] = at;
  }
  if (!rc) rc = sx__slot_ids(c, h, sl, at, &res->blob, offs, err);
  if (!rc) {
    for (size_t i = 0; i < at; i++) {
      res->ids[i] = res->blob + offs[i];
      res->id_off[i] = offs[i];
    }
    res->id_off[at] = at ? offs[at - 1] + strlen(res->ids[at - 1]) + 1 : 0;
  }
  free(sl);
  free(offs);
  if (!rc) rc = s.rc;
done:
  free(jobs);
  free(hits);
  free(heaps);
  free(qn);
  if (rc) {
    sx__results_free(res);
    return rc;
  }
  *out = res;
  return SX_OK;
}
