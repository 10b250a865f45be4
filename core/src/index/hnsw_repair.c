/*
 * hnsw_repair.c: taking dead nodes out of the graph (sx__hnsw_unlink) and the
 * structure check.
 */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

/* ---- unlink ---------------------------------------------------------------------- */


/* Chooses again, at every level, the list of live node s if it links to a dead node
 * (bit set in `dead`): the candidates are its live links and the live links of the
 * dead ones it links to (as FreshDiskANN's delete consolidation does), the efc
 * closest kept, and the heuristic picks from them. It reads only the lists of s and
 * of dead nodes, which no repair changes, so the nodes may be repaired in any order
 * or at once, with the same result. */
/* A repair's scratch: the node's vector (read once) and the candidate list. */
typedef struct repair {
  float *v, qn;
  sx__hit *c;
  size_t nc, cap_c;
} repair;

/* The dead slots own[1..own[0]] links to, into deadl[0..*nd). */
static int dead_links(sx__hnsw *g, uint64_t s, const uint32_t *own, const uint8_t *dead,
                      uint32_t *deadl, uint32_t *nd, sx_error *err) {
  *nd = 0;
  for (uint32_t i = 0; i < own[0]; i++) {
    if (own[1 + i] >= g->nslots)
      return sx__err_set(err, SX_CORRUPT, "HNSW node %llu links to slot %u past the end",
                         (unsigned long long)s, own[1 + i]);
    if (sx__bit(dead, own[1 + i])) deadl[(*nd)++] = own[1 + i];
  }
  return SX_OK;
}

/* Adds the live, unvisited slots of list src (of node `from`) to the candidates. */
static int add_candidates(sx__hnsw *g, repair *r, const uint32_t *src, uint32_t from,
                          const uint8_t *dead, sx_error *err) {
  uint32_t cnt = src[0];
  if (r->cap_c < r->nc + cnt) {
    size_t ncap = (r->nc + cnt) * 2;
    sx__hit *cc = realloc(r->c, ncap * sizeof *cc);
    if (!cc) return sx__err_set(err, SX_NOMEM, "out of memory");
    r->c = cc, r->cap_c = ncap;
  }
  for (uint32_t i = 0; i < cnt; i++) {
    uint32_t n = src[1 + i];
    if (n >= g->nslots)
      return sx__err_set(err, SX_CORRUPT, "HNSW node %u links to slot %u past the end", from, n);
    if (g->vtag[n] == g->tag || sx__bit(dead, n)) continue;
    g->vtag[n] = g->tag;
    r->c[r->nc++].slot = n;
  }
  return SX_OK;
}

/* Chooses the level-l list of s again from its own links own (which include the
 * dead deadl[0..nd)) and the dead ones' links. */
static int repair_level(sx__hnsw *g, repair *r, uint64_t s, uint32_t l, const uint32_t *own,
                        const uint32_t *deadl, uint32_t nd, const uint8_t *dead, sx_error *err) {
  int rc = SX_OK;
  if (!r->v) {
    r->v = malloc((size_t)g->dim * 4);
    if (!r->v) return sx__err_set(err, SX_NOMEM, "out of memory");
    rc = sx__hnsw_read_vec(g, s, r->v, err);
    if (rc) return rc;
    if (g->metric == SX__COSINE) r->qn = sx__norm(r->v, g->dim);
  }
  if (sx__hnsw_ensure_scratch(g, 0)) return sx__err_set(err, SX_NOMEM, "out of memory");
  g->vtag[s] = g->tag;
  r->nc = 0;
  /* Own links first, then those of each dead one (a dead list is met again only
   * through another live node's repair, never changed). */
  for (uint32_t k = 0; k <= nd && !rc; k++) {
    const uint32_t *src = own;
    if (k > 0 && (rc = sx__hnsw_links(g, deadl[k - 1], l, &src, err))) break;
    rc = add_candidates(g, r, src, k ? deadl[k - 1] : (uint32_t)s, dead, err);
  }
  size_t nc = r->nc;
  sx__hit *c = r->c;
  for (size_t i = 0; i < nc && !rc; i++) rc = sx__hnsw_dist_to(g, r->v, r->qn, c[i].slot, &c[i].d, err);
  if (rc) return rc;
  if (nc > g->efc) {
    qsort_r(c, nc, sizeof *c, sx__hnsw_cmp_sel, g);
    nc = g->efc;
  }
  uint32_t sel[2 * SX__HNSW_M_MAX], ns;
  rc = sx__hnsw_select_neighbors(g, c, nc, l ? g->m : g->m0, UINT64_MAX, sel, &ns, err);
  if (!rc) rc = sx__hnsw_set_links(g, s, l, sel, ns, err);
  return rc;
}

int sx__hnsw_repair_node(sx__hnsw *g, uint64_t s, const uint8_t *dead, sx_error *err) {
  uint32_t level = 0;
  int rc = sx__hnsw_meta_of(g, s, &level, NULL, err);
  uint32_t own[1 + 2 * SX__HNSW_M_MAX], deadl[2 * SX__HNSW_M_MAX], nd;
  repair r = {0};
  for (uint32_t l = 0; l <= level && !rc; l++) {
    const uint32_t *ln;
    if ((rc = sx__hnsw_links(g, s, l, &ln, err))) break;
    assert(ln[0] <= 2 * SX__HNSW_M_MAX); /* links() bounds counts by m0 */
    memcpy(own, ln, (1 + (size_t)ln[0]) * 4);
    rc = dead_links(g, s, own, dead, deadl, &nd, err);
    if (!rc && nd > 0) rc = repair_level(g, &r, s, l, own, deadl, nd, dead, err);
  }
  free(r.v);
  free(r.c);
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
    if (sx__hnsw_ensure_scratch(g, 0)) {
      rc = sx__err_set(err, SX_NOMEM, "out of memory");
      break;
    }
    size_t qh = 0, qt = 0, nl = 0;
    q[qt++] = (uint32_t)ep;
    g->vtag[ep] = g->tag;
    while (qh < qt && !rc) {
      const uint32_t *ln;
      if ((rc = sx__hnsw_links(g, q[qh++], 0, &ln, err))) break;
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
    for (size_t i = 0; i < nl && !rc; i++) rc = sx__hnsw_link_node(g, lost[i], err);
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
    rc = sx__hnsw_is_live(g, s, err, &on);
    if (on && !sx__bit(isdead, s)) live[nl++] = s;
  }
  /* The live nodes' new lists, then the dead ones' emptied. */
  if (!rc && nthreads > 1 && nl >= PAR_MIN)
    rc = sx__hnsw_run_parallel(g, v, lay, live, nl, isdead, nthreads, err);
  else
    for (size_t i = 0; i < nl && !rc; i++) rc = sx__hnsw_repair_node(g, live[i], isdead, err);
  for (size_t i = 0; i < nd && !rc; i++) {
    uint32_t lv = 0;
    rc = sx__hnsw_meta_of(g, dead[i], &lv, NULL, err);
    for (uint32_t l = 0; l <= lv && !rc; l++) rc = sx__hnsw_set_links(g, dead[i], l, NULL, 0, err);
  }
  /* A dead entry point gives way to a live node of the highest level (the first). */
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  if (!rc) rc = sx__hnsw_entry(g, &ep, &top, err);
  if (!rc && ep != UINT64_MAX && sx__bit(isdead, ep)) {
    uint64_t best = UINT64_MAX;
    uint32_t bl = 0;
    for (size_t i = 0; i < nl && !rc; i++) {
      uint32_t lv = 0;
      rc = sx__hnsw_meta_of(g, live[i], &lv, NULL, err);
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
  int rc = sx__hnsw_entry(g, &ep, &top, err);
  if (rc || ep == UINT64_MAX) return rc;
  uint32_t eplevel = 0;
  rc = sx__hnsw_meta_of(g, ep, &eplevel, NULL, err);
  if (!rc && eplevel != top)
    rc = sx__err_set(err, SX_CORRUPT, "HNSW entry point level %u differs from the top level %u", eplevel, top);
  if (!rc && freebits && sx__bit(freebits, ep))
    rc = sx__err_set(err, SX_CORRUPT, "HNSW entry point %llu is a free slot", (unsigned long long)ep);
  for (uint64_t s = 0; s < g->nslots && !rc; s++) {
    uint32_t lv = 0;
    int isfree = freebits && sx__bit(freebits, s);
    rc = sx__hnsw_meta_of(g, s, &lv, NULL, err);
    /* A free slot keeps its level for reuse, and may be above the top. */
    if (!rc && lv > top && !isfree)
      rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu is above the top level", (unsigned long long)s);
    for (uint32_t l = 0; l <= lv && !rc; l++) {
      const uint32_t *ln;
      rc = sx__hnsw_links(g, s, l, &ln, err);
      if (!rc && isfree && ln[0])
        rc = sx__err_set(err, SX_CORRUPT, "HNSW free slot %llu has %u links at level %u",
                         (unsigned long long)s, ln[0], l);
      for (uint32_t i = 0; !rc && i < ln[0]; i++) {
        uint32_t lvn = 0, x = ln[1 + i];
        if (x >= g->nslots || x == s)
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu has a bad link %u", (unsigned long long)s, x);
        else if (freebits && sx__bit(freebits, x))
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links to free slot %u", (unsigned long long)s, x);
        else if (l > 0 && (rc = sx__hnsw_meta_of(g, x, &lvn, NULL, err)) == SX_OK && lvn < l)
          rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links at level %u to a node of level %u", (unsigned long long)s, l, lvn);
      }
    }
  }
  return rc;
}
