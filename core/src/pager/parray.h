/*
 * parray: page views and page arrays, the storage primitive of collections and
 * indexes. A view (sx__pv) reads pages of a snapshot or of a write transaction; a page
 * array is a radix tree of pages addressed by byte offset (see parray.c).
 */
#ifndef SX_PARRAY_H
#define SX_PARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "pager/pager.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A view of pages: a snapshot (t == NULL) or a write transaction. */
typedef struct sx__pv {
  sx__pager *p;
  const sx__snap *snap;
  sx__txn *t;
} sx__pv;

int sx__pv_page(const sx__pv *v, uint32_t pgno, const uint8_t **out, sx_error *err);
/* Pages in the view: every page number read from disk is below it. */
uint32_t sx__pv_npages(const sx__pv *v);

/* A bound for walks over linked pages (catalog chains, lists): a walk takes at most
 * `limit` steps (derived from the file size: a chain visits each page at most once)
 * and a cycle is caught within twice its length (Brent's algorithm), so that a
 * damaged chain costs O(its length) before SX_CORRUPT, never a loop. */
typedef struct sx__walk {
  uint64_t steps, limit, power, lam;
  uint32_t mark;
} sx__walk;
void sx__walk_init(sx__walk *w, uint64_t limit);
/* Records a step onto page pg; nonzero when the walk has gone round a cycle or past
 * its limit. */
int sx__walk_step(sx__walk *w, uint32_t pg);

/* Page arrays: radix trees of pages addressed by byte offset; interior pages hold
 * 32-bit page numbers. An array is two words (root page, depth) in its owner page.
 * A cursor reads one array of one view, caching the path to the last leaf (over
 * snapshots only). */
#define SX__PA_MAXDEPTH 4
typedef struct sx__pa_cursor {
  const sx__pv *v;
  uint32_t root, depth, ps, fan, fshift; /* fan = 1 << fshift */
  uint32_t pgno[SX__PA_MAXDEPTH];
  const uint8_t *page[SX__PA_MAXDEPTH];
  uint64_t leaf_key;
  const uint8_t *leaf;
  uint32_t leaf_pgno; /* page number of the leaf last returned by sx__pa_leaf */
} sx__pa_cursor;
/* pa points at the array's two words (root, depth) in its owner page. */
void sx__pa_cursor_init(sx__pa_cursor *cur, const sx__pv *v, const uint8_t *pa);
int sx__pa_leaf(sx__pa_cursor *cur, uint64_t leaf, const uint8_t **out, sx_error *err);
int sx__pa_read(sx__pa_cursor *cur, uint64_t off, void *dst, size_t len, sx_error *err);
/* Pointer to len bytes at off: into the page when they do not straddle one, else
 * copied into tmp. Valid while the view is. */
int sx__pa_ptr(sx__pa_cursor *cur, uint64_t off, size_t len, void *tmp, const void **out,
               sx_error *err);
int sx__pa_write(sx__txn *t, uint32_t owner, unsigned pa_off, uint64_t off, const void *src,
                 size_t len, sx_error *err);
int sx__pa_free(sx__txn *t, uint32_t owner, unsigned pa_off, sx_error *err);
int sx__pa_pages(const sx__pv *v, const uint8_t *pa, uint64_t *n, sx_error *err);
/* sx_db_check: sets the bit of every page of the array in used (npages bits);
 * SX_CORRUPT naming a page that is out of range or already set (in two places). */
int sx__pa_mark(const sx__pv *v, const uint8_t *pa, uint8_t *used, sx_error *err);
/* Sets page pg's bit in used; SX_CORRUPT when it is out of range or already set.
 * what names the structure in the message. */
int sx__page_mark(const sx__pv *v, uint32_t pg, uint8_t *used, const char *what, sx_error *err);

/* Writable leaf `leaf` of the array at pa_off of page owner, allocating the path. */
int sx__pa_leaf_w(sx__txn *t, uint32_t owner, unsigned pa_off, uint64_t leaf, uint8_t **out,
                  sx_error *err);

#ifdef __cplusplus
}
#endif
#endif
