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
  for (size_t i = 0; i < nc && !rc; i++)
    rc = sx__hnsw_dist_to(g, r->v, r->qn, c[i].slot, &c[i].d, err);
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

/* ---- connectivity ------------------------------------------------------------------ */

/* Every live node reachable from the entry point at level 0 (issue 19 item 10).
 * Choosing lists by the heuristic may drop a node's last link in (a back link that
 * prunes a full list, a repair after deletes); at small m, under ip and in low
 * dimensions that left up to a third of a graph unreachable, which no ef can find
 * (searches seed level 0 with the entry point too, hnsw.c). So after a large insert
 * batch and after every unlink, a breadth-first walk marks what the entry point
 * reaches, and each live node it missed gets a link in from the closest reached
 * node (by a level-0 search from the entry point) whose list has room; appending
 * drops no link, so nothing reached is lost, and what the newcomer reaches is
 * reached too. A full graph (every reached list at capacity, m0 = 2m links each,
 * which the heuristic practically never leaves) is reported, not looped on. */

/* Marks in `reached` everything a walk of level 0 from `from` reaches that is not
 * marked yet; q is scratch for nslots entries. */
static int walk0(sx__hnsw *g, uint64_t from, uint8_t *reached, uint32_t *q, sx_error *err) {
  size_t qh = 0, qt = 0;
  if (sx__bit(reached, from)) return SX_OK;
  reached[from >> 3] |= (uint8_t)(1u << (from & 7));
  q[qt++] = (uint32_t)from;
  while (qh < qt) {
    const uint32_t *ln;
    int rc = sx__hnsw_links(g, q[qh++], 0, &ln, err);
    if (rc) return rc;
    for (uint32_t i = 0; i < ln[0]; i++) {
      uint32_t x = ln[1 + i];
      if (x >= g->nslots)
        return sx__err_set(err, SX_CORRUPT, "HNSW link to slot %u past the end", x);
      if (sx__bit(reached, x)) continue;
      reached[x >> 3] |= (uint8_t)(1u << (x & 7));
      q[qt++] = x;
    }
  }
  return SX_OK;
}

/* Appends u to the level-0 list of r if it has room; *done says whether it did. */
static int append0(sx__hnsw *g, uint64_t r, uint64_t u, int *done, sx_error *err) {
  const uint32_t *ln;
  *done = 0;
  int rc = sx__hnsw_links(g, r, 0, &ln, err);
  if (rc || ln[0] >= g->m0) return rc;
  uint32_t ids[2 * SX__HNSW_M_MAX + 1];
  memcpy(ids, ln + 1, ln[0] * 4);
  ids[ln[0]] = (uint32_t)u;
  rc = sx__hnsw_set_links(g, r, 0, ids, ln[0] + 1, err);
  *done = !rc;
  return rc;
}

int sx__hnsw_debt(sx__hnsw *g, uint64_t *out, sx_error *err) {
  const uint8_t *o = sx__hnsw_owner_page(g, err);
  if (!o) return err ? err->code : SX_IO;
  uint64_t d = sx__rd64(o + g->L.debt_off);
  *out = d ? d - 1 : UINT64_MAX;
  return SX_OK;
}

int sx__hnsw_set_debt(sx__hnsw *g, uint64_t debt, sx_error *err) {
  uint8_t *ow;
  int rc = sx__txn_write(g->v.t, g->L.owner, &ow, err);
  if (!rc) sx__wr64(ow + g->L.debt_off, debt >= UINT64_MAX - 1 ? UINT64_MAX : debt + 1);
  return rc;
}

int sx__hnsw_connect(sx__hnsw *g, sx_error *err) {
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  int rc = sx__hnsw_entry(g, &ep, &top, err);
  if (!rc && ep == UINT64_MAX) rc = sx__hnsw_set_debt(g, 0, err); /* empty: connected */
  if (rc || ep == UINT64_MAX) return rc;
  uint8_t *reached = calloc(g->nslots / 8 + 1, 1);
  uint32_t *q = malloc((g->nslots ? g->nslots : 1) * sizeof *q);
  float *v = malloc((size_t)g->dim * 4);
  if (!reached || !q || !v) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  if (!rc) rc = walk0(g, ep, reached, q, err);
  uint64_t room = 0; /* where the scan for a list with room resumes */
  for (uint64_t u = 0; u < g->nslots && !rc; u++) {
    int live = 0;
    if (sx__bit(reached, u) || (rc = sx__hnsw_is_live(g, u, err, &live)) || !live) continue;
    /* The closest reached nodes to u, from a search of level 0 from the entry point
     * (which only walks reached nodes). */
    rc = sx__hnsw_read_vec(g, u, v, err);
    float qn = !rc && g->metric == SX__COSINE ? sx__norm(v, g->dim) : 0;
    float d = 0;
    if (!rc) rc = sx__hnsw_dist_to(g, v, qn, ep, &d, err);
    if (!rc && sx__hnsw_ensure_scratch(g, g->efc)) rc = sx__err_set(err, SX_NOMEM, "out of memory");
    size_t nr = 1;
    if (!rc) {
      g->res[0] = (sx__hit){d, ep};
      rc = sx__hnsw_search_layer(g, v, qn, 0, g->efc, 0, u, &nr, err);
    }
    if (!rc) qsort_r(g->res, nr, sizeof *g->res, sx__hnsw_cmp_sel, g);
    int done = 0;
    for (size_t i = 0; i < nr && !rc && !done; i++)
      if (sx__bit(reached, g->res[i].slot)) rc = append0(g, g->res[i].slot, u, &done, err);
    /* Every one of those lists full: any reached node with room. */
    for (uint64_t t = 0; t < g->nslots && !rc && !done; t++, room = (room + 1) % g->nslots)
      if (sx__bit(reached, room) && room != u) rc = append0(g, room, u, &done, err);
    if (!rc && !done)
      rc = sx__err_set(err, SX_FULL,
                       "HNSW node %llu cannot be linked in: every reachable list is full",
                       (unsigned long long)u);
    if (!rc) rc = walk0(g, u, reached, q, err);
  }
  if (!rc) rc = sx__hnsw_set_debt(g, 0, err);
  free(reached);
  free(q);
  free(v);
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
      rc = sx__err_set(err, SX_CORRUPT, "HNSW unlink of slot %llu past the end",
                       (unsigned long long)dead[i]);
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
  if (!rc) rc = sx__hnsw_connect(g, err);
  sx__hnsw_close(g);
  free(isdead);
  free(live);
  return rc;
}

/* ---- check ---------------------------------------------------------------------- */

typedef struct uext {
  uint64_t off, end; /* words [off, end) of the upper array */
  uint64_t slot;
} uext;

static int cmp_uext(const void *a, const void *b) {
  const uext *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* Level l's list of slot s: empty if s is free, else within the slots, not s itself,
 * no slot twice (seen: scratch bits, all zero before and after), no free slot, at
 * upper levels only nodes that reach l. */
static int check_list(sx__hnsw *g, uint64_t s, uint32_t l, int isfree, const uint8_t *freebits,
                      uint8_t *seen, sx_error *err) {
  const uint32_t *ln;
  int rc = sx__hnsw_links(g, s, l, &ln, err);
  if (!rc && isfree && ln[0])
    rc = sx__err_set(err, SX_CORRUPT, "HNSW free slot %llu has %u links at level %u",
                     (unsigned long long)s, ln[0], l);
  uint32_t i = 0;
  for (; !rc && i < ln[0]; i++) {
    uint32_t lvn = 0, x = ln[1 + i];
    if (x >= g->nslots || x == s)
      rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu has a bad link %u", (unsigned long long)s,
                       x);
    else if (sx__bit(seen, x))
      rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links to %u twice at level %u",
                       (unsigned long long)s, x, l);
    else if (freebits && sx__bit(freebits, x))
      rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links to free slot %u",
                       (unsigned long long)s, x);
    else if (l > 0 && (rc = sx__hnsw_meta_of(g, x, &lvn, NULL, err)) == SX_OK && lvn < l)
      rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu links at level %u to a node of level %u",
                       (unsigned long long)s, l, lvn);
    if (!rc) seen[x >> 3] |= (uint8_t)(1u << (x & 7));
  }
  for (uint32_t k = 0; k < i; k++) /* clear what this list set */
    if (ln[1 + k] < g->nslots) seen[ln[1 + k] >> 3] = 0;
  return rc;
}

/* Every live node reachable from the entry point ep at level 0, in graphs small
 * enough that every commit restores it (CONNECT_ALWAYS_SLOTS) or whose debt is zero
 * (the last commit that linked nodes walked it). reached: zeroed bits for nslots. */
static int check_reachable(sx__hnsw *g, uint64_t ep, uint8_t *reached, sx_error *err) {
  uint64_t debt = UINT64_MAX;
  int rc = g->nslots > CONNECT_ALWAYS_SLOTS ? sx__hnsw_debt(g, &debt, err) : SX_OK;
  if (rc || (g->nslots > CONNECT_ALWAYS_SLOTS && debt != 0)) return rc;
  uint32_t *q = malloc((g->nslots ? g->nslots : 1) * sizeof *q);
  if (!q) return sx__err_set(err, SX_NOMEM, "out of memory");
  rc = walk0(g, ep, reached, q, err);
  for (uint64_t s = 0; s < g->nslots && !rc; s++) {
    int live = 0;
    if (sx__bit(reached, s) || (rc = sx__hnsw_is_live(g, s, err, &live)) || !live) continue;
    rc = sx__err_set(err, SX_CORRUPT,
                     "HNSW node %llu is live but not reachable from the entry point %llu",
                     (unsigned long long)s, (unsigned long long)ep);
  }
  free(q);
  return rc;
}

/*
 * The whole graph: the entry point (in range, of the top level, not free); per slot
 * its level (at most the top, unless free), its upper lists inside the upper array
 * and overlapping no other slot's, every list within its level's capacity, holding
 * no free slot, no slot past the end, itself or one slot twice, and at upper levels
 * only nodes that reach that level; a free slot's lists empty; and, in graphs small
 * enough that every commit restores it (CONNECT_ALWAYS_SLOTS) or whose debt is zero
 * (the last commit that linked nodes walked it), every live node reachable from the
 * entry point at level 0.
 */
int sx__hnsw_check(sx__hnsw *g, const uint8_t *freebits, sx_error *err) {
  uint64_t ep = UINT64_MAX;
  uint32_t top = 0;
  int rc = sx__hnsw_entry(g, &ep, &top, err);
  if (rc || ep == UINT64_MAX) return rc;
  uint32_t eplevel = 0;
  rc = sx__hnsw_meta_of(g, ep, &eplevel, NULL, err);
  if (!rc && eplevel != top)
    rc = sx__err_set(err, SX_CORRUPT, "HNSW entry point level %u differs from the top level %u",
                     eplevel, top);
  if (!rc && freebits && sx__bit(freebits, ep))
    rc = sx__err_set(err, SX_CORRUPT, "HNSW entry point %llu is a free slot",
                     (unsigned long long)ep);
  const uint8_t *o = rc ? NULL : sx__hnsw_owner_page(g, err);
  if (!rc && !o) rc = err ? err->code : SX_IO;
  const uint64_t ulen = rc ? 0 : sx__rd64(o + g->L.upper_len_off);
  uint8_t *seen = rc ? NULL : calloc(g->nslots / 8 + 1, 1);
  if (!rc && !seen) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  uext *ux = NULL;
  size_t nux = 0, capux = 0;
  for (uint64_t s = 0; s < g->nslots && !rc; s++) {
    uint32_t lv = 0, uoff = 0;
    int isfree = freebits && sx__bit(freebits, s);
    rc = sx__hnsw_meta_of(g, s, &lv, &uoff, err);
    if (!rc && g->quant && !isfree) rc = sx__hnsw_quant_check(g, s, err);
    /* A free slot keeps its level for reuse, and may be above the top. */
    if (!rc && lv > top && !isfree)
      rc = sx__err_set(err, SX_CORRUPT, "HNSW node %llu is above the top level",
                       (unsigned long long)s);
    if (!rc && lv > 0) {
      uint64_t end = (uint64_t)uoff + (uint64_t)lv * (1 + g->m);
      if (end > ulen)
        rc = sx__err_set(err, SX_CORRUPT,
                         "HNSW node %llu has upper lists to word %llu of an array of %llu",
                         (unsigned long long)s, (unsigned long long)end, (unsigned long long)ulen);
      if (!rc && nux == capux) {
        size_t ncap = capux ? 2 * capux : 64;
        uext *nx = realloc(ux, ncap * sizeof *nx);
        if (!nx)
          rc = sx__err_set(err, SX_NOMEM, "out of memory");
        else
          ux = nx, capux = ncap;
      }
      if (!rc) ux[nux++] = (uext){uoff, end, s};
    }
    for (uint32_t l = 0; l <= lv && !rc; l++) rc = check_list(g, s, l, isfree, freebits, seen, err);
  }
  if (!rc && nux > 1) {
    qsort(ux, nux, sizeof *ux, cmp_uext);
    for (size_t i = 1; i < nux && !rc; i++)
      if (ux[i].off < ux[i - 1].end)
        rc = sx__err_set(err, SX_CORRUPT, "HNSW nodes %llu and %llu share upper-list words at %llu",
                         (unsigned long long)ux[i - 1].slot, (unsigned long long)ux[i].slot,
                         (unsigned long long)ux[i].off);
  }
  free(ux);
  if (!rc) rc = check_reachable(g, ep, seen, err); /* seen is all zeros again */
  free(seen);
  return rc;
}
