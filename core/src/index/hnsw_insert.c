/*
 * hnsw_insert.c: linking nodes into the graph (the insertion of the paper and of
 * hnswlib, see hnsw.c): levels, neighbour selection, back links, link stamps.
 */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

/* ---- insert ---------------------------------------------------------------------- */

/* hnswlib's heuristic: keep a candidate (closest first) only if it is closer to the
 * base than to every one already kept; at most `max`. Distances between candidates
 * are measured from their stored vectors (the base's distances are c[i].d). */
int sx__hnsw_select_neighbors(sx__hnsw *g, sx__hit *c, size_t nc, size_t max, uint64_t prefer,
                              uint32_t *out, uint32_t *nout, sx_error *err) {
  qsort_r(c, nc, sizeof *c, sx__hnsw_cmp_sel, g);
  /* `prefer` (the node a back link is being added for) goes first among its ties.
   * Linked one by one, it is the newest node and sx__hnsw_cmp_sel already puts it there; in a
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
      int rc = sx__hnsw_dist_slots(g, c[i].slot, out[j], &d, err);
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
  /* The count, up to m0 links, and room for s beside a full list. */
  uint32_t ids[2 + 2 * SX__HNSW_M_MAX];
  assert(cap <= 2 * SX__HNSW_M_MAX);
  span sp;
  int rc;
  ids[0] = 0;
  if (g->par) {
    if ((rc = sx__hnsw_list_span(g, n, level, 1, &sp, err))) return rc;
    sx__hnsw_span_read(&sp, ids, (1 + (size_t)cap) * 4);
    if (ids[0] > cap) {
      sx__hnsw_span_put(&sp);
      return sx__err_set(err, SX_CORRUPT, "HNSW node %llu has %u links at level %u (at most %u)",
                         (unsigned long long)n, ids[0], level, cap);
    }
  } else {
    const uint32_t *l;
    if ((rc = sx__hnsw_links(g, n, level, &l, err))) return rc;
    memcpy(ids, l, (1 + (size_t)l[0]) * 4);
  }
  uint32_t cnt = ids[0], *list = ids + 1, sel[2 * SX__HNSW_M_MAX], ns = 0;
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
    rc = nv && c ? sx__hnsw_read_vec(g, n, nv, err) : sx__err_set(err, SX_NOMEM, "out of memory");
    float nn = g->metric == SX__COSINE && !rc ? sx__norm(nv, g->dim) : 0;
    list[cnt] = (uint32_t)s;
    for (uint32_t i = 0; i <= cnt && !rc; i++) {
      c[i].slot = list[i];
      rc = sx__hnsw_dist_to(g, nv, nn, list[i], &c[i].d, err);
    }
    if (!rc) rc = sx__hnsw_select_neighbors(g, c, cnt + 1, cap, s, sel, &ns, err);
    free(nv);
    free(c);
  }
  if (g->par) {
    if (!rc && ns != UINT32_MAX) {
      ids[0] = ns;
      memcpy(ids + 1, sel, (size_t)ns * 4);
      sx__hnsw_span_write(&sp, ids, (1 + (size_t)ns) * 4);
    }
    sx__hnsw_span_put(&sp);
    return rc;
  }
  return rc || ns == UINT32_MAX ? rc : sx__hnsw_set_links(g, n, level, sel, ns, err);
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

int sx__hnsw_set_entry(sx__hnsw *g, uint64_t slot, uint32_t level, sx_error *err) {
  uint8_t *ow;
  int rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
  if (!rc) {
    sx__wr32(ow + g->L.ep_off, (uint32_t)slot + 1);
    sx__wr32(ow + g->L.ep_off + 4, level);
  }
  return rc;
}

/* Reserves n stamps (see recency): *first and on. Serial contexts only. */
int sx__hnsw_take_stamps(sx__hnsw *g, uint64_t n, uint64_t *first, sx_error *err) {
  uint8_t *ow;
  int rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
  if (rc) return rc;
  uint64_t c = sx__rd64(ow + g->L.stamp_seq_off);
  if (c < g->nslots) c = g->nslots;
  *first = c;
  sx__wr64(ow + g->L.stamp_seq_off, c + n);
  return SX_OK;
}

int sx__hnsw_put_stamp(sx__hnsw *g, uint64_t slot, uint64_t stamp, sx_error *err) {
  uint8_t *lp;
  int rc = sx__hnsw_lc_getw(g, &g->stamps, slot * 8 >> g->psh, &lp, err);
  if (!rc) memcpy(lp + (slot * 8 & (g->ps - 1)), &stamp, 8);
  return rc;
}

/* Stamps slot as linked last. Serial contexts only. */
static int stamp_now(sx__hnsw *g, uint64_t slot, sx_error *err) {
  uint64_t st;
  int rc = sx__hnsw_take_stamps(g, 1, &st, err);
  return rc ? rc : sx__hnsw_put_stamp(g, slot, st, err);
}

/* The serial part of an insert: the node's norm (cosine), its level and the room for
 * its upper links (a reused slot keeps both: its level is drawn from the slot), empty
 * lists, and the entry point when the graph was empty. *link = 0 when that is all
 * there is. */
static int prepare(sx__hnsw *g, uint64_t slot, int reused, int *link, sx_error *err) {
  sx__txn *t = g->v.t;
  *link = 1;
  if (slot >= g->nslots)
    return sx__err_set(err, SX_CORRUPT, "HNSW insert of slot %llu past the end",
                       (unsigned long long)slot);
  int rc = SX_OK;
  if (g->metric == SX__COSINE) {
    rc = sx__hnsw_read_vec(g, slot, g->vbuf, err);
    float qn = rc ? 0 : sx__norm(g->vbuf, g->dim);
    uint8_t *lp;
    if (!rc) rc = sx__hnsw_lc_getw(g, &g->norms, slot * 4 / g->ps, &lp, err);
    if (!rc) memcpy(lp + slot * 4 % g->ps, &qn, 4);
  }
  uint32_t level = 0;
  if (!rc && reused) {
    rc = sx__hnsw_meta_of(g, slot, &level, NULL, err);
    for (uint32_t l = 0; l <= level && !rc; l++) rc = sx__hnsw_set_links(g, slot, l, NULL, 0, err);
  } else if (!rc) {
    level = draw_level(g, slot);
    uint8_t *ow;
    rc = sx__txn_write(t, g->L.owner, &ow, err);
    uint64_t uoff = rc ? 0 : sx__rd64(ow + g->L.upper_len_off),
             words = (uint64_t)level * (1 + g->m);
    if (!rc && uoff + words > UINT32_MAX)
      rc = sx__err_set(err, SX_FULL, "HNSW upper-level links are full");
    if (!rc) {
      sx__wr64(ow + g->L.upper_len_off, uoff + words);
      uint32_t meta[2] = {level, (uint32_t)uoff};
      rc = sx__pa_write(t, g->L.owner, g->L.meta_off, slot * 8, meta, 8, err);
    }
    if (!rc) rc = sx__hnsw_set_links(g, slot, 0, NULL, 0, err);
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
  if (!rc) rc = sx__hnsw_entry(g, &ep, &top, err);
  if (!rc && ep == UINT64_MAX) {
    *link = 0;
    rc = sx__hnsw_set_entry(g, slot, level, err);
    if (!rc) rc = stamp_now(g, slot, err);
  }
  return rc;
}

/* Links a prepared node into the graph: greedy descent to its level, an
 * ef_construction search on each of its levels, its neighbours by the heuristic, and
 * back links from them. */
int sx__hnsw_link_node(sx__hnsw *g, uint64_t slot, sx_error *err) {
  uint32_t level = 0;
  int rc = sx__hnsw_meta_of(g, slot, &level, NULL, err);
  if (rc) return rc;
  float *v = malloc((size_t)g->dim * 4);
  if (!v) return sx__err_set(err, SX_NOMEM, "out of memory");
  rc = sx__hnsw_read_vec(g, slot, v, err);
  float qn = !rc && g->metric == SX__COSINE ? sx__norm(v, g->dim) : 0;
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  if (!rc) rc = sx__hnsw_entry(g, &ep, &top, err);
  if (!rc && ep == UINT64_MAX) rc = sx__err_set(err, SX_CORRUPT, "HNSW graph has no entry point");
  sx__hit best = {0, 0};
  uint32_t lmax = level < top ? level : top;
  if (!rc) rc = sx__hnsw_descend(g, v, qn, ep, top, lmax, &best, err);
  /* The node's own lists are all written before any back link makes it reachable:
   * once reachable, other threads may add links to its lists, which writing them
   * afterwards would drop (and with them the only way to those nodes). */
  uint32_t *sel = malloc((size_t)(lmax + 1) * g->m * 4), nsel[MAX_LEVEL + 1] = {0};
  if (!sel && !rc) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  for (int64_t l = lmax; l >= 0 && !rc; l--) {
    size_t nr = 1;
    rc = sx__hnsw_ensure_scratch(g, g->efc) ? sx__err_set(err, SX_NOMEM, "out of memory") : SX_OK;
    if (!rc) {
      g->res[0] = best;
      rc = sx__hnsw_search_layer(g, v, qn, (uint32_t)l, g->efc, 0, slot, &nr, err);
    }
    if (rc) break;
    if (nr == 0) continue; /* only the node itself was found */
    sx__hit *c = malloc(nr * sizeof *c);
    if (!c) {
      rc = sx__err_set(err, SX_NOMEM, "out of memory");
      break;
    }
    memcpy(c, g->res, nr * sizeof *c);
    qsort_r(c, nr, sizeof *c, sx__hnsw_cmp_sel, g);
    best = c[0];
    uint32_t *ls = sel + (size_t)l * g->m;
    rc = sx__hnsw_select_neighbors(g, c, nr, g->m, UINT64_MAX, ls, &nsel[l], err);
    free(c);
    if (!rc) rc = sx__hnsw_set_links(g, slot, (uint32_t)l, ls, nsel[l], err);
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
  if (!g->par) return sx__hnsw_set_entry(g, slot, level, err);
  /* Another thread may have raised the top meanwhile: the higher node stays the entry. */
  sx__mutex_lock(&g->par->mu);
  if (level > g->par->top) g->par->ep = slot, g->par->top = level;
  sx__mutex_unlock(&g->par->mu);
  return SX_OK;
}

/* Below this many nodes to link, threads cost more than they save. */
#define PAR_MIN 16

int sx__hnsw_insert_batch(const sx__pv *v, const sx__hnsw_layout *lay, uint32_t dim, int metric,
                          uint32_t m, uint32_t efc, const uint64_t *slots, const uint8_t *reused,
                          size_t n, int nthreads, sx_error *err) {
  sx__hnsw *g;
  int rc = sx__hnsw_open(v, lay, dim, metric, m, efc, &g, err);
  /* The codes first, in the commit that stored the vectors. */
  if (!rc && g->quant) rc = sx__hnsw_quant_put(g, slots, n, err);
  if (rc) {
    sx__hnsw_close(g);
    return rc;
  }
  uint64_t *todo = malloc((n ? n : 1) * sizeof *todo);
  if (!todo) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  size_t nt = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    int need = 0;
    rc = prepare(g, slots[i], reused[i], &need, err);
    if (need) todo[nt++] = slots[i];
  }
  if (!rc && nthreads > 1 && nt >= PAR_MIN)
    rc = sx__hnsw_run_parallel(g, v, lay, todo, nt, NULL, nthreads, err);
  else
    for (size_t i = 0; i < nt && !rc; i++) rc = sx__hnsw_link_node(g, todo[i], err);
  /* Back links may have pruned some node's last link in. The walk reads every level-0
   * list, so it runs when the graph is small, or the nodes linked since the last walk
   * (this batch included) reach a share of the graph: 1/32, as for deletes (every
   * build from empty; every 1/32 of a trickle of single inserts). */
  uint64_t debt = 0;
  if (!rc && nt > 0) rc = sx__hnsw_debt(g, &debt, err);
  if (!rc && nt > 0) {
    debt = debt > UINT64_MAX - nt ? UINT64_MAX : debt + nt;
    if (g->nslots <= CONNECT_ALWAYS_SLOTS || debt >= g->nslots / CONNECT_DEBT_SHARE)
      rc = sx__hnsw_connect(g, err);
    else
      rc = sx__hnsw_set_debt(g, debt, err);
  }
  sx__hnsw_close(g);
  free(todo);
  return rc;
}
