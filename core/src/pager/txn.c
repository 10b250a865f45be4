/*
 * txn.c: the write transaction. The writer lock (an in-process flag paired with the
 * OFD byte WRITER in P-shm); the page table of copy-on-write images; page allocation
 * and the free list (a chain through page 0's FREEHEAD); savepoints; and commit, which
 * turns the page table into WAL frames, indexes them and publishes the new header.
 */
#include "pager/pager_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

/* What this transaction did with a page (free-list damage shows up as a page handed
 * out, or freed, twice). */
enum { DP_KEPT = 0, DP_ALLOCATED, DP_FREED };

typedef struct sx__dpage {
  uint32_t pgno;
  uint8_t *buf;
  uint8_t *undo;             /* image at the savepoint, when dirtied before it */
  int sp_new;                /* first dirtied after the savepoint */
  uint8_t state, undo_state; /* DP_*, now and at the savepoint */
} dpage;

/* Clean pages a transaction has looked up in its view (a direct-mapped cache by page
 * number: a page's place in the WAL index is found once per transaction, not once
 * per read; the view's pages stay where they are while the writer lock is held). */
static void dpage_free(dpage *d);

#define SEEN 8u
typedef struct seen_page {
  uint32_t pgno; /* UINT32_MAX: empty */
  const uint8_t *page;
} seen_page;

struct sx__txn {
  sx__pager *p;
  sx__hdrc h;    /* the header as of begin (the writer is its only mutator) */
  sx__snap view; /* committed state the transaction builds on */
  sx__mutex mu;  /* SX__RANK_WAL: the page table and allocation */
  dpage **tab;   /* open addressing by pgno (linear probing) */
  size_t cap, n; /* n: pages in the table */
  size_t used;   /* slots taken, tombstones included */
  uint32_t npages;
  unsigned fork_gen;
  int sp_active;
  uint32_t sp_npages;
  /* The entries the active savepoint touched (new since it, or given an undo image),
   * so that releasing or rolling it back costs what it changed, not the whole table
   * (a transaction of many small upserts, one savepoint each, was quadratic). */
  dpage **sp_list;
  size_t sp_n, sp_cap;
  seen_page seen[SEEN];
};

/* Marks a page-table slot whose page a rollback removed. Its page number matches no
 * real page (the largest page number is UINT32_MAX - 1). */
static dpage TOMB = {.pgno = UINT32_MAX};

/* Longest slice of a wait between two looks at a cancel token. */
#define CANCEL_POLL_MS 10

static int cancelled_err(sx__pager *p, sx_error *err) {
  return sx__err_set(err, SX_CANCELLED, "wait for the writer lock of '%s' was cancelled", p->path);
}

/* Takes the writer lock: the in-process flag (threads of this handle), then the OFD
 * byte (other handles and processes), within timeout_ms (negative: for ever) and
 * until `cancel` is set. A wait for ever, without a token, by the thread that took
 * the lock (it may have handed its session to another thread, which may end it: a
 * bounded wait stays allowed) gets SX_BUSY at once instead of waiting for itself. */
int sx__writer_lock(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx_error *err) {
  if (sx__cancelled(cancel)) return cancelled_err(p, err);
  uint64_t deadline = timeout_ms > 0 ? sx__now_ns() + (uint64_t)timeout_ms * 1000000ull : 0;
  sx__mutex_lock(&p->wmu);
  if (p->wbusy && timeout_ms < 0 && !cancel && pthread_equal(p->wowner, pthread_self())) {
    sx__mutex_unlock(&p->wmu);
    return sx__err_set(err, SX_BUSY,
                       "this thread already holds the writer lock of '%s' (an open write session "
                       "or a checkpoint of this handle); end it first",
                       p->path);
  }
  while (p->wbusy && timeout_ms != 0 && !sx__cancelled(cancel)) {
    uint64_t until = deadline;
    if (cancel) {
      uint64_t slice = sx__now_ns() + CANCEL_POLL_MS * 1000000ull;
      if (!until || slice < until) until = slice;
    }
    if (sx__cond_wait(&p->wcond, &p->wmu, until) == ETIMEDOUT && until == deadline) break;
  }
  if (p->wbusy || sx__cancelled(cancel)) {
    int busy = p->wbusy;
    sx__mutex_unlock(&p->wmu);
    if (!busy) return cancelled_err(p, err);
    if (sx__cancelled(cancel)) return cancelled_err(p, err);
    return sx__err_set(err, SX_BUSY, "database '%s' has a write session open on this handle",
                       p->path);
  }
  p->wbusy = 1;
  p->wowner = pthread_self();
  sx__mutex_unlock(&p->wmu);
  /* The OFD byte: with a token, in slices, looking at it between them. */
  int rc;
  for (;;) {
    int left = timeout_ms;
    if (timeout_ms > 0) {
      uint64_t now = sx__now_ns();
      left = now >= deadline ? 0 : (int)((deadline - now) / 1000000ull);
      if (left == 0 && now < deadline) left = 1;
    }
    int slice = left;
    if (cancel && (left < 0 || left > CANCEL_POLL_MS)) slice = CANCEL_POLL_MS;
    rc = sx__file_lock(p->shm, LK_WRITER, 1, SX__WRLOCK, slice, NULL);
    if (rc != SX_BUSY || slice == left) break;
    if (sx__cancelled(cancel)) {
      rc = SX_CANCELLED;
      break;
    }
  }
  if (rc) {
    sx__mutex_lock(&p->wmu);
    p->wbusy = 0;
    sx__cond_broadcast(&p->wcond);
    sx__mutex_unlock(&p->wmu);
    if (rc == SX_CANCELLED) return cancelled_err(p, err);
    if (rc == SX_BUSY)
      return sx__err_set(err, SX_BUSY, "database '%s' is locked by another writer (waited %d ms)",
                         p->path, timeout_ms < 0 ? 0 : timeout_ms);
    return sx__err_set(err, rc, "cannot take the writer lock of '%s'", p->path);
  }
  return SX_OK;
}

void sx__writer_unlock(sx__pager *p) {
  sx__file_lock(p->shm, LK_WRITER, 1, SX__UNLOCK, 0, NULL);
  sx__mutex_lock(&p->wmu);
  p->wbusy = 0;
  sx__cond_broadcast(&p->wcond);
  sx__mutex_unlock(&p->wmu);
}

int sx__pager_write_begin(sx__pager *p, int timeout_ms, const sx_cancel *cancel, sx__txn **out,
                          sx_error *err) {
  *out = NULL;
  if (p->read_only)
    return sx__err_set(err, SX_READ_ONLY, "database '%s' is open read-only", p->path);
  if (sx__pager_poisoned(p))
    return sx__err_set(err, SX_IO, "database '%s' refuses writes after a failed sync; reopen it",
                       p->path);
  sx__txn *t = calloc(1, sizeof *t);
  if (!t) return sx__err_set(err, SX_NOMEM, "out of memory");
  int rc = sx__writer_lock(p, timeout_ms, cancel, err);
  if (rc) {
    free(t);
    return rc;
  }
  t->p = p;
  t->fork_gen = p->fork_gen;
  sx__hdr_current(p, &t->h);
  if (__atomic_load_n(&p->hdr->appending, __ATOMIC_ACQUIRE)) {
    rc = sx__index_truncate(p, (int)(t->h.gen & 1), t->h.mx - t->h.base, err);
    if (!rc) __atomic_store_n(&p->hdr->appending, 0, __ATOMIC_RELEASE);
  }
  if (rc) {
    sx__writer_unlock(p);
    free(t);
    return rc;
  }
  t->view.mx = t->h.mx;
  t->view.floor = t->h.backfill;
  t->view.base = t->h.base;
  t->view.pbase = t->h.pbase;
  t->view.gen = t->h.gen;
  t->view.npages = t->h.npages;
  t->view.slot = -1;
  t->view.epoch = t->h.checkpoints;
  t->npages = t->h.npages;
  for (unsigned i = 0; i < SEEN; i++) t->seen[i].pgno = UINT32_MAX;
  sx__mutex_init(&t->mu, SX__RANK_WAL, "page table");
  *out = t;
  return SX_OK;
}

static dpage *tab_find(sx__txn *t, uint32_t pgno) {
  if (!t->cap) return NULL;
  for (size_t i = (pgno * 2654435761u) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (!t->tab[i]) return NULL;
    if (t->tab[i]->pgno == pgno) return t->tab[i];
  }
}

/* The table slot holding pgno (present). */
static size_t tab_slot(sx__txn *t, uint32_t pgno) {
  size_t i = (pgno * 2654435761u) & (t->cap - 1);
  while (t->tab[i]->pgno != pgno) i = (i + 1) & (t->cap - 1);
  return i;
}

/* Room for one more entry in the savepoint's list. */
static int sp_reserve(sx__txn *t) {
  if (t->sp_n < t->sp_cap) return SX_OK;
  size_t ncap = t->sp_cap ? t->sp_cap * 2 : 64;
  dpage **nl = realloc(t->sp_list, ncap * sizeof *nl);
  if (!nl) return SX_NOMEM;
  t->sp_list = nl;
  t->sp_cap = ncap;
  return SX_OK;
}

static int tab_insert(sx__txn *t, dpage *d) {
  if ((t->used + 1) * 2 > t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    dpage **nt = calloc(ncap, sizeof *nt);
    if (!nt) return SX_NOMEM;
    t->used = 0;
    for (size_t i = 0; i < t->cap; i++) {
      if (!t->tab[i] || t->tab[i] == &TOMB) continue;
      t->used++;
      size_t j = (t->tab[i]->pgno * 2654435761u) & (ncap - 1);
      while (nt[j]) j = (j + 1) & (ncap - 1);
      nt[j] = t->tab[i];
    }
    free(t->tab);
    t->tab = nt;
    t->cap = ncap;
  }
  size_t j = (d->pgno * 2654435761u) & (t->cap - 1);
  while (t->tab[j]) j = (j + 1) & (t->cap - 1);
  t->tab[j] = d;
  t->n++;
  t->used++;
  return SX_OK;
}

/* The view's image of pgno through the transaction's cache of looked-up pages. t->mu
 * held. */
static int view_page(sx__txn *t, uint32_t pgno, const uint8_t **out, sx_error *err) {
  seen_page *s = &t->seen[pgno % SEEN];
  if (s->pgno == pgno) {
    *out = s->page;
    return SX_OK;
  }
  int rc = sx__view_page(t->p, &t->view, pgno, out, err);
  if (!rc) {
    s->pgno = pgno;
    s->page = *out;
  }
  return rc;
}

/* A page-table entry with a page buffer: one the last transaction left, or new. */
static dpage *dpage_new(sx__txn *t) {
  sx__pager *p = t->p;
  if (p->nspare) return p->spare[--p->nspare];
  dpage *d = calloc(1, sizeof *d);
  uint8_t *buf = d ? aligned_alloc(64, p->ps) : NULL;
  if (!buf) {
    free(d);
    return NULL;
  }
  d->buf = buf;
  return d;
}

/* Dirty image of pgno, copied from the committed page on first touch; *dp its entry. */
static int write_dp(sx__txn *t, uint32_t pgno, dpage **dp, sx_error *err) {
  sx__mutex_assert_held(&t->mu);
  dpage *d = tab_find(t, pgno);
  if (d) {
    if (t->sp_active && !d->sp_new && !d->undo) {
      d->undo = sp_reserve(t) ? NULL : malloc(t->p->ps);
      if (!d->undo) return sx__err_set(err, SX_NOMEM, "out of memory for page %u", pgno);
      memcpy(d->undo, d->buf, t->p->ps);
      d->undo_state = d->state;
      t->sp_list[t->sp_n++] = d;
    }
    *dp = d;
    return SX_OK;
  }
  if (pgno >= t->npages)
    return sx__err_set(err, SX_CORRUPT, "page %u is beyond the database size of %u pages", pgno,
                       t->npages);
  if (t->sp_active && sp_reserve(t))
    return sx__err_set(err, SX_NOMEM, "out of memory for page %u", pgno);
  d = dpage_new(t);
  if (!d) return sx__err_set(err, SX_NOMEM, "out of memory for page %u", pgno);
  uint8_t *buf = d->buf;
  if (pgno < t->view.npages) {
    const uint8_t *src;
    int rc = view_page(t, pgno, &src, err);
    if (rc) {
      dpage_free(d);
      return rc;
    }
    memcpy(buf, src, t->p->ps);
  } else {
    memset(buf, 0, t->p->ps);
  }
  d->pgno = pgno;
  d->sp_new = t->sp_active;
  if (tab_insert(t, d)) {
    dpage_free(d);
    return sx__err_set(err, SX_NOMEM, "out of memory for page %u", pgno);
  }
  if (t->sp_active) t->sp_list[t->sp_n++] = d;
  *dp = d;
  return SX_OK;
}

static int write_locked(sx__txn *t, uint32_t pgno, uint8_t **out, sx_error *err) {
  dpage *d;
  int rc = write_dp(t, pgno, &d, err);
  if (!rc) *out = d->buf;
  return rc;
}

/* A free page holds the next page of the list in its first four bytes and zeros
 * after them (sx__txn_free_page wipes it): anything else is a page in use that a
 * damaged list leads to, and handing it out would wipe committed data. */
static int free_page_valid(const sx__pager *p, uint32_t pgno, const uint8_t *b, uint32_t npages,
                           sx_error *err) {
  static const uint8_t zeros[256];
  uint32_t next = sx__rd32(b);
  if (next >= npages || next == pgno)
    return sx__err_set(err, SX_CORRUPT, "free page %u of '%s' links to page %u (of %u)", pgno,
                       p->path, next, npages);
  for (uint32_t off = 4; off < p->ps; off += (uint32_t)sizeof zeros) {
    uint32_t n = p->ps - off < sizeof zeros ? p->ps - off : (uint32_t)sizeof zeros;
    if (memcmp(b + off, zeros, n) != 0)
      return sx__err_set(
          err, SX_CORRUPT,
          "free page %u of '%s' is not empty: the free list leads into a page in use", pgno,
          p->path);
  }
  return SX_OK;
}

int sx__pager_free_page_valid(const sx__pager *p, uint32_t pgno, const uint8_t *b, uint32_t npages,
                              sx_error *err) {
  return free_page_valid(p, pgno, b, npages, err);
}

int sx__txn_read(sx__txn *t, uint32_t pgno, const uint8_t **out, sx_error *err) {
  sx__mutex_lock(&t->mu);
  dpage *d = tab_find(t, pgno);
  int rc = SX_OK;
  if (d)
    *out = d->buf;
  else if (pgno >= t->npages)
    rc = sx__err_set(err, SX_CORRUPT, "page %u is beyond the database size of %u pages", pgno,
                     t->npages);
  else
    rc = view_page(t, pgno, out, err);
  sx__mutex_unlock(&t->mu);
  return rc;
}

int sx__txn_write(sx__txn *t, uint32_t pgno, uint8_t **out, sx_error *err) {
  sx__mutex_lock(&t->mu);
  int rc = write_locked(t, pgno, out, err);
  sx__mutex_unlock(&t->mu);
  return rc;
}

int sx__txn_alloc(sx__txn *t, uint32_t *pgno, uint8_t **out, sx_error *err) {
  sx__mutex_lock(&t->mu);
  uint8_t *p0;
  dpage *d = NULL;
  int rc = write_locked(t, 0, &p0, err);
  if (!rc) {
    uint32_t head = sx__rd32(p0 + P0_FREEHEAD), cnt = sx__rd32(p0 + P0_FREECOUNT);
    if (head) {
      /* Each page popped is checked: the list's count bounds the walk (a cycle runs
       * out of count), and a page in use never looks free. */
      dpage *hd = head < t->npages ? tab_find(t, head) : NULL;
      if (head >= t->npages || cnt == 0 || cnt >= t->npages)
        rc = sx__err_set(
            err, SX_CORRUPT,
            "free list of '%s' is damaged: head page %u, count %u, database of %u pages",
            t->p->path, head, cnt, t->npages);
      else if (hd && hd->state == DP_ALLOCATED)
        rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' hands out page %u twice", t->p->path,
                         head);
      else
        rc = write_dp(t, head, &d, err);
      if (!rc) rc = free_page_valid(t->p, head, d->buf, t->npages, err);
      if (!rc) {
        sx__wr32(p0 + P0_FREEHEAD, sx__rd32(d->buf));
        sx__wr32(p0 + P0_FREECOUNT, cnt - 1);
        memset(d->buf, 0, t->p->ps);
        d->state = DP_ALLOCATED;
        *pgno = head;
        *out = d->buf;
      }
    } else if (t->npages == (t->p->cksum ? SX__PAGES_MAX_V2 : UINT32_MAX)) {
      rc = sx__err_set(err, SX_FULL, "database '%s' has reached its maximum of %u pages",
                       t->p->path, t->npages);
    } else {
      uint32_t n = t->npages++;
      rc = write_dp(t, n, &d, err);
      if (rc) {
        t->npages--;
      } else {
        d->state = DP_ALLOCATED;
        *pgno = n;
        *out = d->buf;
      }
    }
  }
  sx__mutex_unlock(&t->mu);
  return rc;
}

int sx__txn_free_page(sx__txn *t, uint32_t pgno, sx_error *err) {
  if (pgno == 0)
    return sx__err_set(err, SX_CORRUPT, "page 0 is the header page and cannot be freed");
  sx__mutex_lock(&t->mu);
  uint8_t *p0;
  dpage *d = NULL;
  int rc = write_locked(t, 0, &p0, err);
  if (!rc) rc = write_dp(t, pgno, &d, err);
  if (!rc && d->state == DP_FREED)
    rc = sx__err_set(err, SX_CORRUPT,
                     "page %u of '%s' is freed twice: two structures of the file claim it", pgno,
                     t->p->path);
  if (!rc) {
    memset(d->buf, 0, t->p->ps);
    sx__wr32(d->buf, sx__rd32(p0 + P0_FREEHEAD));
    sx__wr32(p0 + P0_FREEHEAD, pgno);
    sx__wr32(p0 + P0_FREECOUNT, sx__rd32(p0 + P0_FREECOUNT) + 1);
    d->state = DP_FREED;
  }
  sx__mutex_unlock(&t->mu);
  return rc;
}

sx__pager *sx__txn_pager(sx__txn *t) {
  return t->p;
}

uint32_t sx__txn_npages(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  uint32_t n = t->npages;
  sx__mutex_unlock(&t->mu);
  return n;
}

static void dpage_free(dpage *d) {
  free(d->undo);
  free(d->buf);
  free(d);
}

void sx__txn_savepoint(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  t->sp_active = 1;
  t->sp_npages = t->npages;
  t->sp_n = 0;
  sx__mutex_unlock(&t->mu);
}

void sx__txn_release(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  for (size_t i = 0; i < t->sp_n; i++) {
    dpage *d = t->sp_list[i];
    free(d->undo);
    d->undo = NULL;
    d->sp_new = 0;
  }
  t->sp_n = 0;
  t->sp_active = 0;
  sx__mutex_unlock(&t->mu);
}

void sx__txn_rollback(sx__txn *t) {
  sx__mutex_lock(&t->mu);
  for (size_t i = 0; i < t->sp_n; i++) {
    dpage *d = t->sp_list[i];
    if (d->sp_new) {
      t->tab[tab_slot(t, d->pgno)] = &TOMB; /* keeps probe chains through it intact */
      dpage_free(d);
      t->n--;
    } else {
      memcpy(d->buf, d->undo, t->p->ps);
      free(d->undo);
      d->undo = NULL;
      d->state = d->undo_state;
    }
  }
  t->sp_n = 0;
  t->npages = t->sp_npages;
  t->sp_active = 0;
  sx__mutex_unlock(&t->mu);
}

static void txn_free(sx__txn *t) {
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i] && t->tab[i] != &TOMB) dpage_free(t->tab[i]);
  free(t->tab);
  free(t->sp_list);
  sx__mutex_destroy(&t->mu);
  free(t);
}

/* Leaves up to SX__SPARE_PAGES page-table entries to the next transaction. Writer lock
 * held. */
static void txn_keep_pages(sx__txn *t) {
  sx__pager *p = t->p;
  for (size_t i = 0; i < t->cap && p->nspare < SX__SPARE_PAGES; i++) {
    dpage *d = t->tab[i];
    if (!d || d == &TOMB) continue;
    free(d->undo);
    uint8_t *buf = d->buf;
    memset(d, 0, sizeof *d);
    d->buf = buf;
    p->spare[p->nspare++] = d;
    t->tab[i] = NULL;
  }
}

void sx__txn_abort(sx__txn *t) {
  if (!t) return;
  /* A transaction inherited across fork() holds nothing of the child's. */
  if (t->fork_gen == sx__fork_generation()) {
    txn_keep_pages(t);
    sx__writer_unlock(t->p);
  }
  txn_free(t);
}

void sx__pager_free_spares(sx__pager *p) {
  while (p->nspare) dpage_free(p->spare[--p->nspare]);
  free(p->cbuf);
  p->cbuf = NULL;
  p->cbuf_cap = 0;
}

static int cmp_dpage(const void *a, const void *b) {
  uint32_t x = (*(dpage *const *)a)->pgno, y = (*(dpage *const *)b)->pgno;
  return x < y ? -1 : x > y;
}

/* Room in the WAL for nfr more frames: switch generations or checkpoint when that
 * frees some; SX_BUSY when a pinned reader keeps the WAL at its cap. */
static int commit_make_room(sx__pager *p, sx__hdrc *h, uint64_t nfr, sx_error *err) {
  int rc = sx__wal_try_switch(p, h, err);
  if (rc || h->mx - h->base + nfr <= p->wal_max) return rc;
  rc = sx__checkpoint_locked(p, h, err);
  if (!rc) rc = sx__wal_try_switch(p, h, err);
  if (rc || h->mx - h->base + nfr <= p->wal_max) return rc;
  uint64_t minpin;
  int wu, nr;
  int32_t pid;
  sx__scan_slots(p, h->base, &minpin, &wu, &nr, &pid);
  if (minpin == UINT64_MAX || h->mx == h->base)
    /* No reader holds the WAL back: this commit alone is larger than the cap. */
    return sx__err_set(err, SX_BUSY,
                       "a commit of %llu pages does not fit the WAL cap of %u frames "
                       "(wal_max_frames of this handle); raise it or commit in smaller parts",
                       (unsigned long long)nfr, p->wal_max);
  return sx__err_set(
      err, SX_BUSY,
      "WAL '%s' would grow to %llu frames, past its cap of %u, because a read "
      "session (process %d) pins a snapshot %llu commits-old frames behind; end long "
      "read sessions",
      p->wal_path[h->gen & 1], (unsigned long long)(h->mx - h->base + nfr), p->wal_max, (int)pid,
      (unsigned long long)(minpin == UINT64_MAX ? 0 : h->mx - minpin));
}

/* The frames of one commit, assembled in memory: the dirty pages in page order, each
 * a frame, preceded by the WAL header when the commit starts a generation, and
 * followed by a zeroed frame header. That last one overwrites whatever header the
 * next frame position held: frames an unpublished commit (a writer that died before
 * publishing, or failed) left there chain on from that commit's own frames, and were
 * they left after this commit, recovery would take them for whole frames following
 * damage (wal.c, chain_check). The next commit overwrites it. */
typedef struct commit_batch {
  dpage **list;      /* nfr dirty pages, ascending page numbers */
  uint64_t nfr;      /* frames */
  int w;             /* WAL file */
  uint64_t rel;      /* frames already in this generation */
  size_t hdr_bytes;  /* WAL_HDR when the commit starts the generation, else 0 */
  uint8_t *buf;      /* hdr_bytes + nfr frames */
  uint64_t ck0, ck1; /* running checksum after the last frame */
} commit_batch;

static int commit_assemble(sx__txn *t, const sx__hdrc *h, commit_batch *b, sx_error *err) {
  sx__pager *p = t->p;
  b->nfr = t->n;
  b->w = (int)(h->gen & 1);
  b->rel = h->mx - h->base;
  b->hdr_bytes = b->rel == 0 ? WAL_HDR : 0;
  b->list = malloc(b->nfr * sizeof *b->list);
  size_t len = (b->hdr_bytes + b->nfr * p->fsz + FRAME_HDR + 63) / 64 * 64;
  if (len <= p->cbuf_cap) {
    b->buf = p->cbuf;
  } else if (len <= SX__CBUF_KEEP) {
    /* Kept for later commits (freed with the pager). */
    free(p->cbuf);
    p->cbuf_cap = 0;
    p->cbuf = aligned_alloc(64, len);
    if (p->cbuf) p->cbuf_cap = len;
    b->buf = p->cbuf;
  } else {
    b->buf = aligned_alloc(64, len);
  }
  if (!b->list || !b->buf)
    return sx__err_set(err, SX_NOMEM, "out of memory committing %llu pages",
                       (unsigned long long)b->nfr);
  size_t m = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i] && t->tab[i] != &TOMB) b->list[m++] = t->tab[i];
  assert(m == b->nfr);
  qsort(b->list, b->nfr, sizeof *b->list, cmp_dpage);
  b->ck0 = h->ck0;
  b->ck1 = h->ck1;
  if (b->hdr_bytes) sx__wal_header_make(p, b->buf, h, &b->ck0, &b->ck1);
  /* This handle synced every frame before this commit (the published mx) itself. */
  uint32_t durable =
      p->cksum && p->synced_gen == h->gen && p->synced_mx == h->mx ? FRAME_DURABLE : 0;
  for (size_t i = 0; i < b->nfr; i++)
    sx__wal_frame_make(p, h, b->buf + b->hdr_bytes + i * p->fsz, b->list[i]->pgno,
                       (i + 1 == b->nfr ? t->npages : 0) | (i == 0 ? durable : 0), b->list[i]->buf,
                       &b->ck0, &b->ck1);
  memset(b->buf + b->hdr_bytes + b->nfr * p->fsz, 0, FRAME_HDR);
  return SX_OK;
}

/* Reserves the index segments the frames will need: once the frames are in the WAL
 * nothing may fail, or a commit reported as failed would stand after a reopen. */
static int commit_reserve_index(sx__pager *p, const commit_batch *b, sx_error *err) {
  for (uint64_t k = b->rel / SEG_FRAMES; k <= (b->rel + b->nfr - 1) / SEG_FRAMES; k++) {
    sx__seg sg = {NULL, NULL};
    int rc = sx__shm_cover_seg(p, (size_t)k, err);
    if (!rc) rc = sx__seg_get(p, b->w, (size_t)k, &sg, err);
    if (rc) return rc;
  }
  return SX_OK;
}

/* Indexes the frames written and publishes the header that makes them committed. */
static int commit_publish(sx__txn *t, sx__hdrc *h, const commit_batch *b, sx_error *err) {
  sx__pager *p = t->p;
  __atomic_store_n(&p->hdr->appending, 1, __ATOMIC_RELEASE);
  for (size_t i = 0; i < b->nfr; i++) {
    int rc = sx__index_append(p, b->w, b->rel + 1 + i, b->list[i]->pgno, err);
    if (rc) return rc;
  }
  h->mx += b->nfr;
  h->npages = t->npages;
  h->ck0 = b->ck0;
  h->ck1 = b->ck1;
  h->commits++;
  sx__hdr_publish(p, h);
  __atomic_store_n(&p->hdr->appending, 0, __ATOMIC_RELEASE);
  return SX_OK;
}

/* Appends the page table to the WAL as one commit: room, frames, index, publish. */
static int commit_frames(sx__txn *t, sx_error *err) {
  sx__pager *p = t->p;
  if (sx__pager_poisoned(p))
    return sx__err_set(err, SX_IO, "database '%s' refuses writes after a failed sync; reopen it",
                       p->path);
  sx__hdrc h = t->h;
  commit_batch b = {0};
  int rc = commit_make_room(p, &h, t->n, err);
  if (!rc) rc = commit_assemble(t, &h, &b, err);
  if (!rc) rc = commit_reserve_index(p, &b, err);
  if (!rc) {
    uint64_t off = b.rel == 0 ? 0 : WAL_HDR + b.rel * p->fsz;
    rc = sx__wal_write(p, b.w, b.buf, b.hdr_bytes + b.nfr * p->fsz + FRAME_HDR, off, b.hdr_bytes,
                       err);
  }
  if (!rc) rc = commit_publish(t, &h, &b, err);
  if (!rc && p->sync == SX_SYNC_FULL) { /* sx__wal_write synced the frames */
    p->synced_gen = h.gen;
    p->synced_mx = h.mx;
  }
  /* The commit stands whatever the checkpoint does; a failed sync still poisons. */
  if (!rc && h.mx - h.backfill >= p->autockpt) sx__checkpoint_locked(p, &h, NULL);
  if (b.buf != p->cbuf) free(b.buf);
  free(b.list);
  return rc;
}

int sx__txn_commit(sx__txn *t, sx_error *err) {
  if (t->fork_gen != sx__fork_generation()) {
    txn_free(t);
    return sx__err_set(err, SX_MISUSE,
                       "write session was begun in the parent process before fork()");
  }
  int rc = t->n == 0 ? SX_OK : commit_frames(t, err);
  sx__txn_abort(t);
  return rc;
}

/* ---- compaction: the free list in page order, and the file's tail given back ------ */

/* The free list's pages, in chain order. t->mu held. Bounded by FREECOUNT and the
 * database size; a page seen twice is a cycle. */
static int free_list_read(sx__txn *t, uint32_t **out, uint32_t *n, sx_error *err) {
  *out = NULL;
  *n = 0;
  uint8_t *p0;
  int rc = write_locked(t, 0, &p0, err);
  if (rc) return rc;
  uint32_t want = sx__rd32(p0 + P0_FREECOUNT);
  if (want >= t->npages)
    return sx__err_set(err, SX_CORRUPT, "free list of '%s' counts %u pages of %u", t->p->path, want,
                       t->npages);
  uint32_t *a = malloc(((size_t)want + 1) * sizeof *a);
  uint8_t *seen = calloc((size_t)t->npages / 8 + 1, 1);
  if (!a || !seen) rc = sx__err_set(err, SX_NOMEM, "out of memory reading the free list");
  uint32_t k = 0;
  for (uint32_t pg = rc ? 0 : sx__rd32(p0 + P0_FREEHEAD); pg && !rc;) {
    if (pg >= t->npages || k == want || (seen[pg / 8] >> (pg % 8) & 1)) {
      rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' is damaged at page %u", t->p->path, pg);
      break;
    }
    seen[pg / 8] |= (uint8_t)(1u << (pg % 8));
    a[k++] = pg;
    dpage *d = tab_find(t, pg);
    const uint8_t *b = d ? d->buf : NULL;
    if (!d) rc = sx__view_page(t->p, &t->view, pg, &b, err);
    if (!rc) pg = sx__rd32(b);
  }
  if (!rc && k != want)
    rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' has %u pages, header says %u", t->p->path,
                     k, want);
  free(seen);
  if (rc) {
    free(a);
    return rc;
  }
  *out = a;
  *n = k;
  return SX_OK;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Chains a[0..n) (ascending) as the free list. t->mu held. */
static int free_list_write(sx__txn *t, const uint32_t *a, uint32_t n, sx_error *err) {
  uint8_t *p0, *b;
  int rc = write_locked(t, 0, &p0, err);
  for (uint32_t i = 0; i < n && !rc; i++) {
    rc = write_locked(t, a[i], &b, err);
    if (!rc) sx__wr32(b, i + 1 < n ? a[i + 1] : 0);
  }
  if (!rc) {
    sx__wr32(p0 + P0_FREEHEAD, n ? a[0] : 0);
    sx__wr32(p0 + P0_FREECOUNT, n);
  }
  return rc;
}

int sx__txn_sort_free(sx__txn *t, sx_error *err) {
  sx__mutex_lock(&t->mu);
  uint32_t *a, n;
  int rc = free_list_read(t, &a, &n, err);
  if (!rc) {
    qsort(a, n, sizeof *a, cmp_u32);
    rc = free_list_write(t, a, n, err);
    free(a);
  }
  sx__mutex_unlock(&t->mu);
  return rc;
}

int sx__txn_shrink(sx__txn *t, uint32_t *released, sx_error *err) {
  if (released) *released = 0;
  sx__mutex_lock(&t->mu);
  uint32_t *a = NULL, n = 0;
  int rc = t->sp_active ? sx__err_set(err, SX_MISUSE, "shrink inside a savepoint") : SX_OK;
  if (!rc) rc = free_list_read(t, &a, &n, err);
  if (!rc) {
    qsort(a, n, sizeof *a, cmp_u32);
    uint32_t end = t->npages, k = n;
    while (k > 0 && a[k - 1] == end - 1) {
      end--;
      k--;
    }
    if (end < t->npages) {
      /* The tail is all free pages: their images need not be written at all. */
      for (size_t i = 0; i < t->cap; i++) {
        dpage *d = t->tab[i];
        if (!d || d == &TOMB || d->pgno < end) continue;
        dpage_free(d);
        t->tab[i] = &TOMB;
        t->n--;
      }
      if (released) *released = t->npages - end;
      t->npages = end;
      rc = free_list_write(t, a, k, err);
    }
  }
  free(a);
  sx__mutex_unlock(&t->mu);
  return rc;
}
