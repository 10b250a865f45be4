/*
 * snap.c: reader slots and snapshots. A read session pins its snapshot (the last
 * committed frame and the backfill at its start) in a slot of P-shm whose OFD lock
 * byte it holds, so the kernel frees it if the process dies; checkpoints and
 * generation switches scan the slots (see the reader protocol in pager_int.h).
 * Reading a page of a snapshot takes no lock.
 */
#include "pager/pager_int.h"

#include <stdlib.h>

int sx__view_locate(sx__pager *p, const sx__snap *s, uint32_t pgno, int *w, uint64_t *r,
                    sx_error *err) {
  *r = 0;
  if (pgno >= s->npages)
    return sx__err_set(err, SX_CORRUPT, "page %u of '%s' is beyond the database size of %u pages",
                       pgno, p->path, s->npages);
  /* Frames (floor, mx]: the current generation's part first (newer), then the
   * previous generation's, then P. */
  int cur = (int)(s->gen & 1), rc;
  *w = cur;
  if (s->mx > s->base && s->mx > s->floor) {
    uint64_t lo = s->floor > s->base ? s->floor - s->base : 0;
    rc = sx__index_find(p, cur, pgno, lo, s->mx - s->base, r, err);
    if (rc || *r) return rc;
  }
  if (s->floor < s->base && s->floor < s->mx) {
    *w = cur ^ 1;
    uint64_t hi = (s->mx < s->base ? s->mx : s->base) - s->pbase;
    return sx__index_find(p, cur ^ 1, pgno, s->floor - s->pbase, hi, r, err);
  }
  return SX_OK;
}

static uint16_t stamp_of(uint64_t epoch) {
  return (uint16_t)(epoch % 65535u + 1u);
}

/* The stamps of pages pgno / P_CHUNK_PAGES, made when missing (NULL: no memory). */
static uint16_t *stamps(sx__pager *p, uint32_t pgno) {
  size_t k = pgno / P_CHUNK_PAGES;
  uint16_t *st = __atomic_load_n(&p->vstamp[k], __ATOMIC_ACQUIRE);
  if (st) return st;
  sx__mutex_lock(&p->map_mu);
  st = __atomic_load_n(&p->vstamp[k], __ATOMIC_ACQUIRE);
  if (!st && (st = sx__os_table(P_CHUNK_PAGES * sizeof *st)) != NULL) {
    __atomic_store_n(&p->vstamp[k], st, __ATOMIC_RELEASE);
    if (k >= p->vstamp_hi) p->vstamp_hi = k + 1;
  }
  sx__mutex_unlock(&p->map_mu);
  return st;
}

void sx__stamps_carry(sx__pager *p, uint64_t epoch, uint32_t npages, const uint32_t *copied,
                      size_t n) {
  if (!p->cksum) return;
  uint16_t from = stamp_of(epoch), to = stamp_of(epoch + 1);
  for (uint64_t k = 0; k * P_CHUNK_PAGES < npages; k++) {
    uint16_t *st = __atomic_load_n(&p->vstamp[k], __ATOMIC_ACQUIRE);
    uint64_t end =
        npages - k * P_CHUNK_PAGES < P_CHUNK_PAGES ? npages - k * P_CHUNK_PAGES : P_CHUNK_PAGES;
    for (size_t i = 0; st && i < end; i++)
      if (__atomic_load_n(&st[i], __ATOMIC_RELAXED) == from)
        __atomic_store_n(&st[i], to, __ATOMIC_RELAXED);
  }
  for (size_t i = 0; i < n; i++) {
    uint16_t *st = stamps(p, copied[i]);
    if (st) __atomic_store_n(&st[copied[i] % P_CHUNK_PAGES], to, __ATOMIC_RELAXED);
  }
}

/* Page pgno from P for a snapshot of checkpoint epoch `epoch`: verified unless this
 * handle already did in that epoch (pager_int.h, "Page checksums"). */
static int db_page_checked(sx__pager *p, uint32_t pgno, uint64_t epoch, const uint8_t **out,
                           sx_error *err) {
  int rc = sx__db_page(p, pgno, out, err);
  if (rc || !p->cksum) return rc;
  uint16_t stamp = stamp_of(epoch);
  size_t i = pgno % P_CHUNK_PAGES;
  uint16_t *st = __atomic_load_n(&p->vstamp[pgno / P_CHUNK_PAGES], __ATOMIC_ACQUIRE);
  if (st && __atomic_load_n(&st[i], __ATOMIC_RELAXED) == stamp) return SX_OK;
  /* The page before verified in this epoch too: a scan going up the file, likely to
   * want the next page as well. Loading it while this one's checksum is computed
   * overlaps the two (a first exact search over 51 MB: about 10% faster). */
  if (st && i > 0 && __atomic_load_n(&st[i - 1], __ATOMIC_RELAXED) == stamp)
    sx__db_page_prefetch(p, pgno + 1);
  rc = sx__db_page_verify(p, pgno, *out, err);
  if (rc) return rc;
  if (!st) st = stamps(p, pgno);
  if (st) __atomic_store_n(&st[i], stamp, __ATOMIC_RELAXED); /* else: verified again next time */
  return SX_OK;
}

int sx__view_page(sx__pager *p, const sx__snap *s, uint32_t pgno, const uint8_t **out,
                  sx_error *err) {
  int w = 0;
  uint64_t r;
  int rc = sx__view_locate(p, s, pgno, &w, &r, err);
  if (rc) return rc;
  if (!r) return db_page_checked(p, pgno, s->epoch, out, err);
  const uint8_t *f;
  rc = sx__wal_frame(p, w, r, &f, err);
  if (rc) return rc;
  *out = f + FRAME_HDR;
  return SX_OK;
}

int sx__pager_snap_page(sx__pager *p, const sx__snap *s, uint32_t pgno, const uint8_t **out,
                        sx_error *err) {
  return sx__view_page(p, s, pgno, out, err);
}

/* ---- reader slots ----------------------------------------------------------- */

static int slot_acquire(sx__pager *p, int *out, sx_error *err) {
  int rc = SX_OK;
  sx__mutex_lock(&p->slot_mu);
  if (p->nidle > 0) {
    *out = p->idle[--p->nidle];
  } else {
    rc = SX_BUSY;
    for (int n = 0; n < SX__NSLOTS; n++) {
      int i = (p->slot_hint + n) % SX__NSLOTS;
      if (p->owned[i]) continue;
      if (sx__file_lock(p->shm, LK_SLOT(i), 1, SX__WRLOCK, 0, NULL) == SX_OK) {
        p->owned[i] = 1;
        p->slot_hint = (i + 1) % SX__NSLOTS;
        *out = i;
        rc = SX_OK;
        break;
      }
    }
  }
  sx__mutex_unlock(&p->slot_mu);
  if (rc)
    sx__err_set(err, SX_BUSY, "all %d reader slots of '%s' are in use", SX__NSLOTS, p->shm_path);
  return rc;
}

/* A handle keeps a few idle slots locked so that beginning a read session costs no
 * system call; few enough that many processes cannot exhaust the table. */
#define IDLE_SLOTS_KEPT 4

static void slot_release(sx__pager *p, int i) {
  __atomic_store_n(&p->slots[i], SLOT_IDLE, __ATOMIC_RELEASE);
  sx__mutex_lock(&p->slot_mu);
  if (p->nidle < IDLE_SLOTS_KEPT) {
    p->idle[p->nidle++] = i;
  } else {
    p->owned[i] = 0;
    sx__file_lock(p->shm, LK_SLOT(i), 1, SX__UNLOCK, 0, NULL);
  }
  sx__mutex_unlock(&p->slot_mu);
}

/* Value of slot i if a live reader pins it, else SLOT_IDLE. */
static uint64_t slot_live(sx__pager *p, int i) {
  uint64_t v = __atomic_load_n(&p->slots[i], __ATOMIC_SEQ_CST);
  if (v == SLOT_IDLE) return SLOT_IDLE;
  sx__mutex_lock(&p->slot_mu);
  int mine = p->owned[i];
  sx__mutex_unlock(&p->slot_mu);
  if (mine) return v;
  /* A value left by a dead process stays behind; its lock byte tells. */
  return sx__file_lock_held(p->shm, LK_SLOT(i), 1, SX__WRLOCK) == 1 ? v : SLOT_IDLE;
}

int sx__pager_snap_begin(sx__pager *p, sx__snap *s, sx_error *err) {
  int slot;
  int rc = slot_acquire(p, &slot, err);
  if (rc) return rc;
  sx__hdrc h;
  for (;;) {
    uint64_t v1 = sx__hdr_read(p, &h);
    /* The floor first: a writer that sees the slot's new value sees its floor. */
    __atomic_store_n(&p->floors[slot], h.backfill, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->slots[slot], h.mx, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->slot_pids[slot], p->pid, __ATOMIC_RELAXED);
    if (__atomic_load_n(&p->hdr->ver, __ATOMIC_SEQ_CST) == v1) break;
  }
  s->mx = h.mx;
  s->floor = h.backfill;
  s->base = h.base;
  s->pbase = h.pbase;
  s->gen = h.gen;
  s->npages = h.npages;
  s->slot = slot;
  s->epoch = h.checkpoints;
  return SX_OK;
}

void sx__pager_snap_end(sx__pager *p, sx__snap *s) {
  if (s->slot < 0) return;
  /* In a fork child the slot belongs to the parent: leave it alone. */
  if (!sx__pager_forked(p)) slot_release(p, s->slot);
  s->slot = -1;
}

/* Smallest snapshot pinned by a live reader (lower bound for checkpoints), and
 * whether a pinned reader reads WAL frames at or below `below` (those of the
 * previous generation, when below is the current base). */
void sx__scan_slots(sx__pager *p, uint64_t below, uint64_t *minpin, int *prev_users, int *nreaders,
                    int32_t *pid) {
  *minpin = UINT64_MAX;
  *prev_users = 0;
  if (nreaders) *nreaders = 0;
  if (pid) *pid = 0;
  for (int i = 0; i < SX__NSLOTS; i++) {
    uint64_t m = slot_live(p, i);
    if (m == SLOT_IDLE) continue;
    uint64_t fl = __atomic_load_n(&p->floors[i], __ATOMIC_SEQ_CST);
    if (fl < m && fl < below) *prev_users = 1;
    if (nreaders) (*nreaders)++;
    if (m < *minpin) {
      *minpin = m;
      if (pid) *pid = __atomic_load_n(&p->slot_pids[i], __ATOMIC_RELAXED);
    }
  }
}

void sx__pager_slots_mutex_for_test(sx__pager *p, int lock) {
  if (lock)
    sx__mutex_lock(&p->slot_mu);
  else
    sx__mutex_unlock(&p->slot_mu);
}
