/*
 * parray.c: page views and page arrays (radix trees of pages addressed by byte
 * offset), the storage primitive of collections and indexes.
 *
 * A page array is two 32-bit words in its owner's page: root page number (0: empty)
 * and depth (number of interior levels; 0 means the root is leaf 0). Interior pages
 * hold ps/4 child page numbers (0: absent). Growing adds a level above the root.
 * Writers reach leaves through sx__txn_write, so every page on the path is copied on
 * write; readers see the snapshot's pages, immutable.
 */
#include <stdlib.h>
#include <string.h>

#include "pager/parray.h"

int sx__pv_page(const sx__pv *v, uint32_t pgno, const uint8_t **out, sx_error *err) {
  return v->t ? sx__txn_read(v->t, pgno, out, err)
              : sx__pager_snap_page(v->p, v->snap, pgno, out, err);
}

uint32_t sx__pv_npages(const sx__pv *v) {
  return v->t ? sx__txn_npages(v->t) : v->snap->npages;
}

void sx__walk_init(sx__walk *w, uint64_t limit) {
  memset(w, 0, sizeof *w);
  w->limit = limit;
  w->power = 1;
  w->mark = UINT32_MAX;
}

int sx__walk_step(sx__walk *w, uint32_t pg) {
  if (++w->steps > w->limit || pg == w->mark) return 1;
  if (++w->lam == w->power) { /* move the mark ahead, twice as far each time */
    w->mark = pg;
    w->power *= 2;
    w->lam = 0;
  }
  return 0;
}

static uint64_t fanout_pow(uint32_t fan, uint32_t d) {
  uint64_t r = 1;
  while (d--) r *= fan;
  return r;
}

/* ---- reading --------------------------------------------------------------- */

void sx__pa_cursor_init(sx__pa_cursor *cur, const sx__pv *v, const uint8_t *pa) {
  memset(cur, 0, sizeof *cur);
  cur->v = v;
  cur->root = sx__rd32(pa);
  cur->depth = sx__rd32(pa + 4);
  cur->ps = sx__pager_page_size(v->p);
  cur->fan = cur->ps / 4;
  cur->fshift = (uint32_t)__builtin_ctz(cur->fan); /* page sizes are powers of two */
  cur->leaf_key = UINT64_MAX;
}

int sx__pa_leaf(sx__pa_cursor *cur, uint64_t leaf, const uint8_t **out, sx_error *err) {
  /* Pointers are cached only over snapshots: in a write transaction a page may be
   * copied on write between two reads, leaving a cached pointer stale. */
  int cache = cur->v->t == NULL;
  if (cache && leaf == cur->leaf_key) {
    *out = cur->leaf;
    return SX_OK;
  }
  /* The fan-out is a power of two: the index at each level is a field of leaf's
   * bits (shifts, not divisions: a flat scan resolves a leaf every page). */
  const uint32_t fs = cur->fshift;
  if (cur->root == 0 || cur->depth > SX__PA_MAXDEPTH ||
      (fs * cur->depth < 64 && leaf >> (fs * cur->depth) != 0))
    return sx__err_set(err, SX_CORRUPT,
                       "page array leaf %llu is beyond its tree (root %u, depth %u)",
                       (unsigned long long)leaf, cur->root, cur->depth);
  uint32_t pg = cur->root;
  for (uint32_t lvl = 0; lvl < cur->depth; lvl++) {
    uint32_t at = (uint32_t)((leaf >> (fs * (cur->depth - lvl - 1))) & (cur->fan - 1));
    const uint8_t *ip;
    if (cache && cur->pgno[lvl] == pg && cur->page[lvl]) {
      ip = cur->page[lvl];
    } else {
      int rc = sx__pv_page(cur->v, pg, &ip, err);
      if (rc) return rc;
      cur->pgno[lvl] = pg;
      cur->page[lvl] = ip;
    }
    pg = sx__rd32(ip + 4 * (size_t)at);
    if (pg == 0)
      return sx__err_set(err, SX_CORRUPT, "page array leaf %llu is missing",
                         (unsigned long long)leaf);
  }
  int rc = sx__pv_page(cur->v, pg, out, err);
  if (rc) return rc;
  cur->leaf_pgno = pg;
  cur->leaf_key = leaf;
  cur->leaf = *out;
  return SX_OK;
}

int sx__pa_read(sx__pa_cursor *cur, uint64_t off, void *dst, size_t len, sx_error *err) {
  uint8_t *d = dst;
  while (len) {
    const uint8_t *lp;
    int rc = sx__pa_leaf(cur, off / cur->ps, &lp, err);
    if (rc) return rc;
    size_t in = off % cur->ps, n = cur->ps - in;
    if (n > len) n = len;
    memcpy(d, lp + in, n);
    d += n;
    off += n;
    len -= n;
  }
  return SX_OK;
}

int sx__pa_ptr(sx__pa_cursor *cur, uint64_t off, size_t len, void *tmp, const void **out,
               sx_error *err) {
  size_t in = off % cur->ps;
  if (in + len <= cur->ps) {
    const uint8_t *lp;
    int rc = sx__pa_leaf(cur, off / cur->ps, &lp, err);
    if (rc) return rc;
    *out = lp + in;
    return SX_OK;
  }
  *out = tmp;
  return sx__pa_read(cur, off, tmp, len, err);
}

/* ---- writing --------------------------------------------------------------- */

/* Writable leaf `leaf` of the array whose two words sit at byte pa_off of page
 * owner; allocates the path (and new levels) as needed. The owner and the interior
 * pages are only read unless a pointer in them changes: a write would copy them into
 * the transaction and log them in the commit for nothing (most of a small commit's
 * frames were such unchanged pages). */
int sx__pa_leaf_w(sx__txn *t, uint32_t owner, unsigned pa_off, uint64_t leaf, uint8_t **out,
                  sx_error *err) {
  const uint8_t *orp;
  int rc = sx__txn_read(t, owner, &orp, err);
  if (rc) return rc;
  uint32_t ps = sx__pager_page_size(sx__txn_pager(t)), fan = ps / 4;
  uint32_t root = sx__rd32(orp + pa_off), depth = sx__rd32(orp + pa_off + 4);
  if (depth > SX__PA_MAXDEPTH || root == owner)
    return sx__err_set(err, SX_CORRUPT, "page array at byte %u of page %u has root %u, depth %u",
                       pa_off, owner, root, depth);
  if (root == 0 || leaf >= fanout_pow(fan, depth)) {
    uint8_t *op;
    rc = sx__txn_write(t, owner, &op, err);
    if (rc) return rc;
    if (root == 0) {
      uint8_t *np;
      rc = sx__txn_alloc(t, &root, &np, err);
      if (rc) return rc;
      depth = 0;
      sx__wr32(op + pa_off, root);
      sx__wr32(op + pa_off + 4, 0);
    }
    while (leaf >= fanout_pow(fan, depth)) {
      if (depth + 1 > SX__PA_MAXDEPTH)
        return sx__err_set(err, SX_FULL, "page array is full at depth %u", depth);
      uint32_t nr;
      uint8_t *np;
      rc = sx__txn_alloc(t, &nr, &np, err);
      if (rc) return rc;
      sx__wr32(np, root);
      root = nr;
      depth++;
      sx__wr32(op + pa_off, root);
      sx__wr32(op + pa_off + 4, depth);
    }
  }
  uint32_t pg = root;
  for (uint32_t lvl = 0; lvl < depth; lvl++) {
    uint64_t span = fanout_pow(fan, depth - lvl - 1);
    size_t at = 4 * (size_t)((leaf / span) % fan);
    const uint8_t *irp;
    rc = sx__txn_read(t, pg, &irp, err);
    if (rc) return rc;
    uint32_t child = sx__rd32(irp + at);
    /* A node naming its owner or a node above it would have a leaf written over
     * an interior page (deeper cycles are bounded by the depth). */
    if (child == owner || child == pg || child == root)
      return sx__err_set(err, SX_CORRUPT, "page array node %u (of page %u) links to page %u", pg,
                         owner, child);
    if (child == 0) {
      uint8_t *ip, *np;
      rc = sx__txn_write(t, pg, &ip, err);
      if (!rc) rc = sx__txn_alloc(t, &child, &np, err);
      if (rc) return rc;
      sx__wr32(ip + at, child);
    }
    pg = child;
  }
  return sx__txn_write(t, pg, out, err);
}

int sx__pa_write(sx__txn *t, uint32_t owner, unsigned pa_off, uint64_t off, const void *src,
                 size_t len, sx_error *err) {
  uint32_t ps = sx__pager_page_size(sx__txn_pager(t));
  const uint8_t *s = src;
  while (len) {
    uint8_t *lp;
    int rc = sx__pa_leaf_w(t, owner, pa_off, off / ps, &lp, err);
    if (rc) return rc;
    size_t in = off % ps, n = ps - in;
    if (n > len) n = len;
    memcpy(lp + in, s, n);
    s += n;
    off += n;
    len -= n;
  }
  return SX_OK;
}

static int free_tree(sx__txn *t, uint32_t pg, uint32_t depth, sx_error *err) {
  if (depth > 0) {
    const uint8_t *ip;
    int rc = sx__txn_read(t, pg, &ip, err);
    if (rc) return rc;
    uint32_t fan = sx__pager_page_size(sx__txn_pager(t)) / 4;
    /* Copy the children first: freeing pages rewrites them. The depth bounds the
     * recursion; a page listed twice is caught when it is freed twice. */
    uint32_t *kids = malloc(fan * sizeof *kids);
    if (!kids) return sx__err_set(err, SX_NOMEM, "out of memory");
    memcpy(kids, ip, fan * 4);
    for (uint32_t i = 0; i < fan && !rc; i++) {
      if (kids[i] == pg)
        rc = sx__err_set(err, SX_CORRUPT, "page array node %u links to itself", pg);
      else if (kids[i])
        rc = free_tree(t, kids[i], depth - 1, err);
    }
    free(kids);
    if (rc) return rc;
  }
  return sx__txn_free_page(t, pg, err);
}

int sx__pa_free(sx__txn *t, uint32_t owner, unsigned pa_off, sx_error *err) {
  const uint8_t *op;
  int rc = sx__txn_read(t, owner, &op, err);
  if (rc) return rc;
  uint32_t root = sx__rd32(op + pa_off), depth = sx__rd32(op + pa_off + 4);
  if (root && (depth > SX__PA_MAXDEPTH || root == owner))
    return sx__err_set(err, SX_CORRUPT, "page array at byte %u of page %u has root %u, depth %u",
                       pa_off, owner, root, depth);
  if (root) rc = free_tree(t, root, depth, err);
  if (rc) return rc;
  uint8_t *w;
  rc = sx__txn_write(t, owner, &w, err);
  if (rc) return rc;
  sx__wr32(w + pa_off, 0);
  sx__wr32(w + pa_off + 4, 0);
  return SX_OK;
}

/* Counts the pages of an array (integrity checks and statistics). */
static int count_tree(const sx__pv *v, uint32_t pg, uint32_t depth, uint64_t *n, sx_error *err) {
  (*n)++;
  if (depth == 0) return SX_OK;
  const uint8_t *ip;
  int rc = sx__pv_page(v, pg, &ip, err);
  if (rc) return rc;
  uint32_t fan = sx__pager_page_size(v->p) / 4;
  for (uint32_t i = 0; i < fan && !rc; i++) {
    uint32_t c = sx__rd32(ip + 4 * i);
    if (c) rc = count_tree(v, c, depth - 1, n, err);
  }
  return rc;
}

int sx__pa_pages(const sx__pv *v, const uint8_t *pa, uint64_t *n, sx_error *err) {
  *n = 0;
  uint32_t root = sx__rd32(pa), depth = sx__rd32(pa + 4);
  if (!root) return SX_OK;
  if (depth > SX__PA_MAXDEPTH) return sx__err_set(err, SX_CORRUPT, "page array depth %u", depth);
  return count_tree(v, root, depth, n, err);
}

int sx__page_mark(const sx__pv *v, uint32_t pg, uint8_t *used, const char *what, sx_error *err) {
  if (pg == 0 || pg >= sx__pv_npages(v))
    return sx__err_set(err, SX_CORRUPT, "%s names page %u, past the end (%u pages) or the header",
                       what, pg, sx__pv_npages(v));
  if (used[pg / 8] >> (pg % 8) & 1)
    return sx__err_set(err, SX_CORRUPT, "page %u of %s is in two places", pg, what);
  used[pg / 8] |= (uint8_t)(1u << (pg % 8));
  return SX_OK;
}

static int mark_tree(const sx__pv *v, uint32_t pg, uint32_t depth, uint8_t *used, sx_error *err) {
  int rc = sx__page_mark(v, pg, used, "a page array", err);
  if (rc || depth == 0) return rc;
  const uint8_t *ip;
  rc = sx__pv_page(v, pg, &ip, err);
  uint32_t fan = sx__pager_page_size(v->p) / 4;
  for (uint32_t i = 0; i < fan && !rc; i++) {
    uint32_t c = sx__rd32(ip + 4 * i);
    if (c) rc = mark_tree(v, c, depth - 1, used, err);
  }
  return rc;
}

int sx__pa_mark(const sx__pv *v, const uint8_t *pa, uint8_t *used, sx_error *err) {
  uint32_t root = sx__rd32(pa), depth = sx__rd32(pa + 4);
  if (!root) return SX_OK;
  if (depth > SX__PA_MAXDEPTH)
    return sx__err_set(err, SX_CORRUPT, "page array rooted at page %u has depth %u", root, depth);
  return mark_tree(v, root, depth, used, err);
}
