/*
 * compact.c (session): compaction as one ordinary write session, and the space
 * figures of a snapshot.
 *
 * Compaction takes the writer lock first, then begins a read session: with the lock
 * held no commit can come between, so the snapshot is exactly the commit the write
 * transaction builds on. Each collection is rebuilt from that snapshot (see
 * collection/compact.c) and the whole is one commit: readers in any process keep
 * their snapshots, and a crash at any instant leaves the database as it was before
 * or after. The read session pins the old pages only until the end of the call.
 * The commit also gives back the free pages at the end of the database, so the file
 * shrinks at the next complete checkpoint.
 */
#include <stdlib.h>

#include "session/session.h"

typedef struct progress {
  const sx_compact_options *o;
  uint64_t done, total;
} progress;

static void step(void *ctx, uint64_t n) {
  progress *p = ctx;
  p->done += n;
  if (p->o->progress) p->o->progress(p->o->progress_ctx, p->done, p->total);
}

int sx__db_compact(sx_db *db, const sx_compact_options *o, sx_error *err) {
  if (sx__cancelled(o->cancel_token))
    return sx__err_set(err, SX_CANCELLED, "compaction was cancelled before it began");
  sx_write *w = NULL;
  sx_read *r = NULL;
  int rc = sx__write_begin(db, o->timeout_ms, o->cancel_token, &w, err);
  if (rc) return rc;
  rc = sx__read_begin(db, &r, err);
  int rin = 0, win = 0;
  if (!rc) rc = sx__read_enter(r, err);
  rin = !rc;
  if (!rc) rc = sx__write_enter(w, err);
  win = !rc && rin;
  sx__pv rv, wv;
  sx_names *names = NULL;
  if (!rc) {
    sx__read_pv(r, &rv);
    sx__write_pv(w, &wv);
    rc = sx__coll_list(&rv, &names, err);
  }
  progress pg = {o, 0, 0};
  /* The total first, so progress has something to count towards. */
  for (size_t i = 0; i < sx_names_count(names) && !rc; i++) {
    sx__coll c;
    uint64_t n = 0;
    rc = sx__coll_open(&rv, sx_names_get(names, i), &c, err);
    if (!rc) rc = sx__coll_count(&c, &n, err);
    pg.total += n;
  }
  /* Every collection's pages go to the free list first, which is then put in page
   * order: the new layout takes the lowest pages, and what is left free at the end of
   * the file is given back (sx__txn_shrink; the file is cut at the next complete
   * checkpoint). */
  for (size_t i = 0; i < sx_names_count(names) && !rc; i++) {
    sx__coll dst;
    rc = sx__coll_open(&wv, sx_names_get(names, i), &dst, err);
    if (!rc) rc = sx__coll_compact_reset(&dst, err);
  }
  if (!rc) rc = sx__txn_sort_free(sx__write_txn(w), err);
  /* The (now empty) headers move down too, so no header pins the tail; their old
   * pages went to the head of the free list, hence the second sort. */
  for (size_t i = 0; i < sx_names_count(names) && !rc; i++)
    rc = sx__coll_move_header(sx__write_txn(w), sx_names_get(names, i), err);
  if (!rc) rc = sx__txn_sort_free(sx__write_txn(w), err);
  for (size_t i = 0; i < sx_names_count(names) && !rc; i++) {
    sx__coll src, dst;
    rc = sx__coll_open(&rv, sx_names_get(names, i), &src, err);
    if (!rc) rc = sx__coll_open(&wv, sx_names_get(names, i), &dst, err);
    if (!rc)
      rc = sx__coll_compact_fill(&src, &dst, sx__write_threads(w), o->cancel_token, step, &pg, err);
  }
  if (!rc) rc = sx__txn_shrink(sx__write_txn(w), NULL, err);
  sx__names_free(names);
  /* A cancel that came during the last batch still wins: nothing is committed yet. */
  if (!rc && sx__cancelled(o->cancel_token))
    rc = sx__err_set(err, SX_CANCELLED, "compaction was cancelled");
  if (win) sx__write_leave(w);
  if (rin) sx__read_leave(r);
  if (!rc) rc = sx__write_commit(w, err);
  sx__write_free(w); /* aborts when not committed */
  sx__read_free(r);
  if (!rc && o->progress && pg.total == 0) o->progress(o->progress_ctx, 0, 0);
  return rc;
}

int sx__read_space(sx_read *r, sx_space_stats *out, sx_error *err) {
  int rc = sx__read_enter(r, err);
  if (rc) return rc;
  sx__pv v;
  sx__read_pv(r, &v);
  const uint8_t *p0;
  sx_names *names = NULL;
  rc = sx__pv_page(&v, 0, &p0, err);
  if (!rc) {
    out->page_size = sx__pager_page_size(v.p);
    out->page_count = v.snap->npages;
    out->free_pages = sx__page0_free_count(p0);
    out->collection_pages = out->live_bytes = out->reclaimable_bytes = 0;
    rc = sx__coll_list(&v, &names, err);
  }
  for (size_t i = 0; i < sx_names_count(names) && !rc; i++) {
    sx__coll c;
    sx__space s;
    rc = sx__coll_open(&v, sx_names_get(names, i), &c, err);
    if (!rc) rc = sx__coll_space(&c, &s, err);
    if (!rc) {
      out->collection_pages += s.pages;
      out->live_bytes += s.live_bytes;
      out->reclaimable_bytes += s.reclaimable_bytes;
    }
  }
  sx__names_free(names);
  sx__read_leave(r);
  return rc;
}
