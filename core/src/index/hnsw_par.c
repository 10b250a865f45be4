/*
 * hnsw_par.c: linking (or repairing) many nodes with several threads in one
 * transaction. Each thread has its own context over the same view; they share the
 * entry point, the link stamps and the page locks of the graph arrays (spans).
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

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

static void work(worker *w) {
  sx__hnsw *g;
  w->rc = sx__hnsw_open(w->v, w->lay, w->dim, w->metric, w->m, w->efc, &g, &w->err);
  if (!w->rc &&
      (sx__hnsw_lc_seed(&g->vec, &w->seed->vec) || sx__hnsw_lc_seed(&g->meta, &w->seed->meta) ||
       sx__hnsw_lc_seed(&g->norms, &w->seed->norms)))
    w->rc = sx__err_set(&w->err, SX_NOMEM, "out of memory");
  if (!w->rc) g->par = w->p;
  while (!w->rc && !atomic_load(&w->p->stop)) {
    size_t i = atomic_fetch_add(&w->p->next, 1);
    if (i >= w->p->n) break;
    w->rc = w->p->dead ? sx__hnsw_repair_node(g, w->p->slots[i], w->p->dead, &w->err)
                       : sx__hnsw_link_node(g, w->p->slots[i], &w->err);
  }
  if (w->rc) atomic_store(&w->p->stop, 1);
  sx__hnsw_close(g);
}

static void work_part(void *arg, int i) {
  work(&((worker *)arg)[i]);
}

/* Most threads one parallel call runs (one worker each, on the stack). */
#define PAR_MAX_THREADS 64

/* The shared state of a parallel call over todo[0..nt): the entry point moved to
 * shared memory, the page entries of both graph arrays, the link stamps. *ulen: the
 * u32 words used in the upper-level array. */
static int par_prepare(sx__hnsw *g, const sx__pv *v, const sx__hnsw_layout *lay,
                       const uint64_t *todo, size_t nt, const uint8_t *dead, par *p,
                       sx_error *err) {
  p->dead = dead;
  p->slots = todo;
  p->n = nt;
  int rc = sx__hnsw_entry(g, &p->ep, &p->top, err);
  /* The last list of the upper stream may end on a page never written (older files
   * wrote only counts); spans read whole lists. */
  const uint8_t *o = rc ? NULL : sx__hnsw_owner_page(g, err);
  if (!rc && !o) rc = err ? err->code : SX_IO;
  uint64_t ulen = o ? sx__rd64(o + lay->upper_len_off) : 0;
  uint8_t *lp;
  if (!rc && ulen)
    rc = sx__pa_leaf_w(v->t, lay->owner, lay->upper_off, (ulen * 4 - 1) >> g->psh, &lp, err);
  /* The pages that threads only read, looked up once for all of them; no thread
   * writes them while linking, so the pointers hold. The serial context's caches
   * are filled over the transaction (g->par is unset), the meta one included. */
  uint64_t vleaves = (g->nslots * g->vbytes + g->ps - 1) >> g->psh;
  if (vleaves <= (uint64_t)nt * 64) { /* else a small batch: cheaper to look up what it meets */
    if (!rc) rc = sx__hnsw_lc_prefill(g, &g->vec, vleaves, err);
    if (!rc) rc = sx__hnsw_lc_prefill(g, &g->meta, (g->nslots * 8 + g->ps - 1) >> g->psh, err);
    if (!rc && g->metric == SX__COSINE)
      rc = sx__hnsw_lc_prefill(g, &g->norms, (g->nslots * 4 + g->ps - 1) >> g->psh, err);
  }
  p->base = dead ? g->nslots : todo[0]; /* repairs link no node: no stamps */
  p->stamp = rc ? NULL : malloc((g->nslots - p->base + 1) * sizeof *p->stamp);
  p->nent[0] = (g->nslots + g->epp0 - 1) / g->epp0;
  p->nent[1] = (ulen * 4 + g->ps - 1) >> g->psh;
  for (int a = 0; a < 2 && !rc; a++)
    p->ent[a] = calloc(p->nent[a] ? p->nent[a] : 1, sizeof *p->ent[a]);
  if (!rc && (!p->stamp || !p->ent[0] || !p->ent[1]))
    rc = sx__err_set(err, SX_NOMEM, "out of memory");
  /* Stamps for this batch's nodes come from the collection's counter, settled
   * by par_finish from what was used. */
  uint64_t first = 0;
  if (!rc && !dead) rc = sx__hnsw_take_stamps(g, 0, &first, err);
  if (rc) return rc;
  for (uint64_t i = 0; i < g->nslots - p->base; i++)
    atomic_init(&p->stamp[i], sx__hnsw_stored_recency(g, (uint32_t)(p->base + i)));
  atomic_init(&p->seq, first);
  atomic_init(&p->next, 0);
  atomic_init(&p->stop, 0);
  return SX_OK;
}

/* Runs the workers over the prepared state; the first error any of them met. */
static int par_run(sx__hnsw *g, const sx__pv *v, const sx__hnsw_layout *lay, par *p, int nthreads,
                   sx_error *err) {
  for (int a = 0; a < 2; a++)
    for (size_t i = 0; i < p->nent[a]; i++) {
      sx__rwlock_init(&p->ent[a][i].lock, SX__RANK_PAGE, "HNSW graph page");
      atomic_init(&p->ent[a][i].img, NULL);
      atomic_init(&p->ent[a][i].pgno, 0);
      atomic_init(&p->ent[a][i].seq, 0);
    }
  int nw = nthreads > PAR_MAX_THREADS ? PAR_MAX_THREADS : nthreads;
  worker ws[PAR_MAX_THREADS];
  assert(nw >= 1 && nw <= PAR_MAX_THREADS);
  for (int i = 0; i < nw; i++)
    ws[i] = (worker){v, lay, g, g->dim, g->m, g->efc, g->metric, p, SX_OK, SX_ERROR_INIT};
  /* A part whose thread could not start finds the work taken by the others. */
  sx__par_for(nw, work_part, ws);
  int rc = SX_OK;
  for (int i = 0; i < nw && !rc; i++) {
    if (!ws[i].rc) continue;
    rc = ws[i].rc;
    if (err) *err = ws[i].err;
  }
  for (int a = 0; a < 2; a++)
    for (size_t i = 0; i < p->nent[a]; i++) sx__rwlock_destroy(&p->ent[a][i].lock);
  return rc;
}

/* Back from shared memory: the entry point if it moved, and the stamps used. */
static int par_finish(sx__hnsw *g, const par *p, uint64_t ep0, uint32_t top0, sx_error *err) {
  int rc = SX_OK;
  if (p->ep != ep0 || p->top != top0) rc = sx__hnsw_set_entry(g, p->ep, p->top, err);
  if (rc || p->dead) return rc;
  for (size_t i = 0; i < p->n && !rc; i++)
    rc = sx__hnsw_put_stamp(g, p->slots[i], atomic_load(&p->stamp[p->slots[i] - p->base]), err);
  uint8_t *ow;
  if (!rc) rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
  if (!rc) sx__wr64(ow + g->L.stamp_seq_off, atomic_load(&p->seq));
  return rc;
}

/* Links nodes todo[0..nt) (ascending slots) with nthreads threads, g being the
 * serial context that prepared them; or, with dead set, repairs them (see
 * sx__hnsw_repair_node). */
int sx__hnsw_run_parallel(sx__hnsw *g, const sx__pv *v, const sx__hnsw_layout *lay,
                          const uint64_t *todo, size_t nt, const uint8_t *dead, int nthreads,
                          sx_error *err) {
  par p;
  memset(&p, 0, sizeof p);
  sx__mutex_init(&p.mu, SX__RANK_INDEX, "HNSW entry point");
  int rc = par_prepare(g, v, lay, todo, nt, dead, &p, err);
  uint64_t ep0 = p.ep;
  uint32_t top0 = p.top;
  if (!rc) rc = par_run(g, v, lay, &p, nthreads, err);
  if (!rc) rc = par_finish(g, &p, ep0, top0, err);
  sx__mutex_destroy(&p.mu);
  free(p.stamp);
  free(p.ent[0]);
  free(p.ent[1]);
  return rc;
}
