/*
 * hnsw_span.c: graph bytes under page locks while threads link in parallel.
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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

/* The page entry of leaf `leaf` of array `which` (0: level 0, 1: upper), looked up on
 * first use. */
static int pent_get(sx__hnsw *g, int which, uint64_t leaf, pent **out, sx_error *err) {
  par *p = g->par;
  if (leaf >= p->nent[which])
    return sx__err_set(err, SX_CORRUPT, "HNSW link list at leaf %llu is past the graph",
                       (unsigned long long)leaf);
  pent *e = &p->ent[which][leaf];
  if (!atomic_load_explicit(&e->img, memory_order_acquire)) {
    const uint8_t *o = sx__hnsw_owner_page(g, err), *img;
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
void sx__hnsw_span_put(span *s) {
  for (int i = s->n - 1; i >= 0; i--) {
    int j = span_ord(s, i);
    pent *e = s->e[j];
    atomic_store_explicit(&e->seq, atomic_load_explicit(&e->seq, memory_order_relaxed) + 1,
                          memory_order_release);
    sx__rwlock_unlock(&e->lock, s->pg[j]);
  }
}

int sx__hnsw_span_get(sx__hnsw *g, int which, uint64_t off, size_t len, int write, span *s,
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
  if (rc) sx__hnsw_span_put(s);
  return rc;
}

/* The first len bytes (a multiple of 4) of a span, a word at a time: writers may be
 * changing them (readers then retry, see span_read_stable). */
void sx__hnsw_span_read(const span *s, void *dst, size_t len) {
  uint32_t *d = dst;
  for (int i = 0; i < s->n && len; i++) {
    size_t n = s->len[i] < len ? s->len[i] : len;
    const _Atomic uint32_t *src =
        (const _Atomic uint32_t *)(atomic_load_explicit(&s->e[i]->img, memory_order_acquire) +
                                   s->at[i]);
    for (size_t k = 0; k < n / 4; k++) *d++ = atomic_load_explicit(&src[k], memory_order_relaxed);
    len -= n;
  }
}

/* Copies the first len bytes of a span taken to read, consistent: retried until no
 * writer changed its pages meanwhile. */
void sx__hnsw_span_read_stable(span *s, void *dst, size_t len) {
  for (unsigned spins = 0;; spins++) {
    uint32_t q[2] = {0, 0};
    int busy = 0;
    for (int i = 0; i < s->n; i++) {
      q[i] = atomic_load_explicit(&s->e[i]->seq, memory_order_acquire);
      busy |= q[i] & 1;
    }
    if (!busy) {
      sx__hnsw_span_read(s, dst, len);
      atomic_thread_fence(memory_order_acquire);
      int same = 1;
      for (int i = 0; i < s->n; i++)
        same &= atomic_load_explicit(&s->e[i]->seq, memory_order_relaxed) == q[i];
      if (same) return;
    }
    if (spins > 64) sched_yield(); /* a writer holds the page (pruning a list takes a while) */
  }
}

/* Word by word, atomically: readers may be copying the same words (and retry). */
void sx__hnsw_span_write(span *s, const void *src, size_t len) {
  const uint32_t *q = src;
  for (int i = 0; i < s->n && len; i++) {
    size_t n = s->len[i] < len ? s->len[i] : len;
    _Atomic uint32_t *dst =
        (_Atomic uint32_t *)(atomic_load_explicit(&s->e[i]->img, memory_order_relaxed) + s->at[i]);
    for (size_t k = 0; k < n / 4; k++) atomic_store_explicit(&dst[k], *q++, memory_order_relaxed);
    len -= n;
  }
}
