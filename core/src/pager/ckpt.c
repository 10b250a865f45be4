/*
 * ckpt.c: checkpoints copy WAL frames back into P, never past the oldest snapshot a
 * live reader pins, so P keeps exactly the pages such a reader may still take from it.
 * The writer lock is held throughout; the OFD byte CKPT marks one in progress.
 */
#include "pager/pager_int.h"

#include <stdlib.h>

typedef struct pf {
  uint32_t pgno;
  int w;        /* WAL file */
  uint64_t r;   /* frame in that file */
  uint64_t abs; /* absolute frame number (orders versions) */
} pf;

static int cmp_pf(const void *a, const void *b) {
  const pf *x = a, *y = b;
  if (x->pgno != y->pgno) return x->pgno < y->pgno ? -1 : 1;
  return x->abs > y->abs ? -1 : x->abs < y->abs; /* newest first */
}

/* Appends the frames (lo, hi] (relative) of WAL file w to v. */
static int collect(sx__pager *p, int w, uint64_t base, uint64_t lo, uint64_t hi, pf *v, size_t *n,
                   sx_error *err) {
  for (uint64_t r = lo + 1; r <= hi; r++) {
    sx__seg s = {NULL, NULL};
    int rc = sx__seg_get(p, w, (size_t)((r - 1) / SEG_FRAMES), &s, err);
    if (rc) return rc;
    v[*n].pgno = __atomic_load_n(&s.pgno[(r - 1) % SEG_FRAMES], __ATOMIC_RELAXED);
    v[*n].w = w;
    v[*n].r = r;
    v[*n].abs = base + r;
    (*n)++;
  }
  return SX_OK;
}

/* Once every frame is in P, P may be longer than the latest commit's database (a
 * compaction gave its tail back): cut it to that size. No reader can need the pages
 * past it: the checkpoint reached the latest commit, so no reader pins an older
 * snapshot, and later readers pin this one or a newer one. */
static int shrink_file(sx__pager *p, const sx__hdrc *h, sx_error *err) {
  uint64_t want = (p->cksum ? sx__pfile_pages(p->ps, h->npages) : h->npages) * p->ps, sz = 0;
  int rc = sx__file_size(p->db, &sz, err);
  if (rc || sz <= want || h->npages == 0) return rc;
  rc = sx__file_truncate(p->db, want, err);
  if (!rc && p->sync != SX_SYNC_OFF) {
    rc = sx__file_sync(p->db, 0, err);
    if (rc) sx__pager_poison(p);
  }
  if (!rc) atomic_store(&p->p_size, want);
  return rc;
}

/* Format 2: the checksum page of group g, being rewritten by a checkpoint. */
typedef struct ckgroup {
  uint64_t g; /* UINT64_MAX: none yet */
  uint8_t *b;
} ckgroup;

/* Writes the checksum page held (if any) into P. */
static int ck_flush(sx__pager *p, ckgroup *c, sx_error *err) {
  if (c->g == UINT64_MAX) return SX_OK;
  uint32_t k = p->ps / 4;
  uint64_t at = sx__pfile_cksum_page(p->ps, (uint32_t)(c->g * k)) * p->ps;
  c->g = UINT64_MAX;
  return sx__file_write(p->db, c->b, p->ps, at, err);
}

/* Records the checksum of page pgno (image b) in its group's checksum page, reading
 * that page from P first (zeros where P does not reach yet). Its other entries keep
 * their bytes: readers may be reading them. */
static int ck_note(sx__pager *p, ckgroup *c, uint32_t pgno, const uint8_t *b, sx_error *err) {
  uint32_t k = p->ps / 4;
  if (c->g != pgno / k) {
    int rc = ck_flush(p, c, err);
    if (rc) return rc;
    uint64_t at = sx__pfile_cksum_page(p->ps, pgno) * p->ps, sz = 0;
    rc = sx__file_size(p->db, &sz, err);
    if (rc) return rc;
    if (sz >= at + p->ps)
      rc = sx__file_read(p->db, c->b, p->ps, at, err);
    else
      memset(c->b, 0, p->ps);
    if (rc) return rc;
    c->g = pgno / k;
  }
  sx__wr32(c->b + (pgno % k) * 4, sx__page_cksum(pgno, b, p->ps));
  return SX_OK;
}

/* Copies frames into P up to the oldest pinned snapshot. Writer lock held. */
int sx__checkpoint_locked(sx__pager *p, sx__hdrc *h, sx_error *err) {
  /* All in P already (a reader in the WAL may have kept an earlier restart back). */
  if (h->backfill >= h->mx) return sx__wal_restart(p, h, err);
  int rc = sx__file_lock(p->shm, LK_CKPT, 1, SX__WRLOCK, 0, err);
  if (rc) return rc;
  h->target = h->mx;
  sx__hdr_publish(p, h);
  uint64_t minpin;
  int wu;
  sx__scan_slots(p, h->base, &minpin, &wu, NULL, NULL);
  uint64_t T = h->mx < minpin ? h->mx : minpin;
  if (T != h->target) {
    h->target = T;
    sx__hdr_publish(p, h);
  }
  pf *v = NULL;
  ckgroup ck = {UINT64_MAX, NULL};
  if (T <= h->backfill) goto out;
  if (p->sync == SX_SYNC_NORMAL) {
    /* (The previous generation's file was synced when the writer left it.) */
    rc = sx__file_sync(p->wal[h->gen & 1], 1, err);
    if (rc) {
      sx__pager_poison(p);
      goto out;
    }
    p->synced_gen = h->gen;
    p->synced_mx = h->mx;
  }
  /* Frames (backfill, T]: the previous generation's part, then the current's. */
  size_t n = 0;
  v = malloc((size_t)(T - h->backfill) * sizeof *v);
  ck.b = p->cksum ? malloc(p->ps) : NULL;
  if (!v || (p->cksum && !ck.b)) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory checkpointing '%s'", p->path);
    goto out;
  }
  if (h->backfill < h->base)
    rc = collect(p, (int)((h->gen + 1) & 1), h->pbase, h->backfill - h->pbase,
                 (T < h->base ? T : h->base) - h->pbase, v, &n, err);
  if (!rc && T > h->base)
    rc = collect(p, (int)(h->gen & 1), h->base, h->backfill > h->base ? h->backfill - h->base : 0,
                 T - h->base, v, &n, err);
  if (rc) goto out;
  qsort(v, n, sizeof *v, cmp_pf);
  uint64_t maxend = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (i > 0 && v[i].pgno == v[i - 1].pgno) continue;
    const uint8_t *f;
    uint64_t at = p->cksum ? sx__pfile_page(p->ps, v[i].pgno) : v[i].pgno;
    rc = sx__wal_frame(p, v[i].w, v[i].r, &f, err);
    if (!rc) rc = sx__file_write(p->db, f + FRAME_HDR, p->ps, at * p->ps, err);
    if (!rc && p->cksum) rc = ck_note(p, &ck, v[i].pgno, f + FRAME_HDR, err);
    if (rc) goto out;
    uint64_t end = (at + 1) * p->ps;
    if (end > maxend) maxend = end;
  }
  rc = ck_flush(p, &ck, err);
  if (rc) goto out;
  if (p->sync != SX_SYNC_OFF) {
    rc = sx__file_sync(p->db, 1, err);
    if (rc) {
      sx__pager_poison(p);
      goto out;
    }
  }
  uint64_t cur = atomic_load(&p->p_size);
  while (maxend > cur && !atomic_compare_exchange_weak(&p->p_size, &cur, maxend)) {
  }
  h->backfill = T;
  h->checkpoints++;
  sx__hdr_publish(p, h);
  /* This handle's verification stamps move to the new epoch (without memory for the
   * list, pages are just verified again). */
  uint32_t *copied = p->cksum ? malloc(n * sizeof *copied + 1) : NULL;
  if (copied) {
    size_t nc = 0;
    for (uint64_t i = 0; i < n; i++)
      if (i == 0 || v[i].pgno != v[i - 1].pgno) copied[nc++] = v[i].pgno;
    sx__stamps_carry(p, h->checkpoints - 1, h->npages, copied, nc);
    free(copied);
  }
  if (T == h->mx) rc = shrink_file(p, h, err);
  if (!rc && T == h->mx) rc = sx__wal_restart(p, h, err);
out:
  free(ck.b);
  free(v);
  sx__file_lock(p->shm, LK_CKPT, 1, SX__UNLOCK, 0, NULL);
  return rc;
}

int sx__pager_checkpoint(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx_error *err) {
  if (p->read_only)
    return sx__err_set(err, SX_READ_ONLY, "database '%s' is open read-only", p->path);
  if (sx__pager_poisoned(p))
    return sx__err_set(err, SX_IO, "database '%s' refuses writes after a failed sync; reopen it",
                       p->path);
  int rc = sx__writer_lock(p, timeout_ms, cancel, err);
  if (rc) return rc;
  sx__hdrc h;
  sx__hdr_current(p, &h);
  rc = sx__checkpoint_locked(p, &h, err);
  sx__writer_unlock(p);
  return rc;
}
