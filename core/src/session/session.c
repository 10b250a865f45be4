/*
 * session.c: handle lifecycles. See session.h for the model.
 *
 * Invariants
 * - db->mu (SX__RANK_DB) guards db->closed, db->pref, db->fork_gen and the session
 *   list; it is never held while waiting for the writer lock.
 * - A session holds one reference to the pager it began on (a pref) from begin until
 *   its cleanup; the handle holds one until close. The pager closes at zero.
 * - A session's state word: ENDED and CLEANED flags plus the count of calls in
 *   flight. Cleanup runs exactly once, by the CAS from "ENDED, nothing in flight".
 *   A write session also has a BUSY flag: one call at a time (its transaction is
 *   not for concurrent use, and commit/abort free it); a call that finds it set
 *   fails with SX_MISUSE instead of entering. Close and free do not enter, so a
 *   close while a call runs only marks the session ended and the call's leave
 *   cleans up.
 * - Every open handle is in a process-wide registry (reg_mu, a plain pthread mutex
 *   outside the rank order). fork() takes reg_mu and then every handle's db->mu
 *   (pthread_atfork, below), so the child never inherits a db->mu that a vanished
 *   thread held; every other lock of the parent's pager may be inherited held, so
 *   the child never takes one: it ends the parent's sessions without touching the
 *   pager (see lock.h: inherited locks are never destroyed) and opens its own.
 * - After fork(), the first call on a handle in the child ends the sessions the
 *   parent had (their locks and slots belong to the parent) and opens the files
 *   anew; those sessions answer SX_MISUSE in the child.
 */
#include "session/session.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST_ENDED 0x80000000u
#define ST_CLEANED 0x40000000u
#define ST_BUSY 0x20000000u /* write sessions: a call is in */
#define ST_COUNT 0x1fffffffu

typedef struct pref {
  atomic_int refs;
  sx__pager *p;
} pref;

static void pref_unref(pref *r) {
  if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
    sx__pager_close(r->p);
    free(r);
  }
}

struct sx_db {
  atomic_int refs;                   /* the caller's reference + one per session struct */
  struct sx_db *reg_prev, *reg_next; /* the registry of open handles (reg_mu) */
  sx__mutex mu;
  int closed;
  unsigned fork_gen;
  char *path;
  sx__pager_config cfg;
  int threads; /* for one call's parallel work */
  pref *pref;
  struct sx_read *reads;
  struct sx_write *writes;
};

struct sx_read {
  atomic_uint state;
  atomic_int refs; /* the caller's + one per collection view */
  sx_db *db;
  pref *pref;
  sx__snap snap;
  unsigned fork_gen;
  struct sx_read *prev, *next;
};

struct sx_write {
  atomic_uint state;
  atomic_int refs;
  sx_db *db;
  pref *pref;
  sx__txn *_Atomic txn;
  unsigned fork_gen;
  struct sx_write *prev, *next;
};

/* ---- the registry of handles, for fork() ------------------------------------ */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static sx_db *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

/* prepare runs in the reverse order of registration, so after os.c's own (which
 * closes descriptors in the child): the order below is reg_mu, every db->mu, then
 * os.c's file registry, as in a reattach (db->mu, then files opened). */
static void fork_prepare(void) {
  pthread_mutex_lock(&reg_mu);
  for (sx_db *d = reg_head; d; d = d->reg_next) pthread_mutex_lock(&d->mu.m);
}
static void fork_parent(void) {
  for (sx_db *d = reg_head; d; d = d->reg_next) pthread_mutex_unlock(&d->mu.m);
  pthread_mutex_unlock(&reg_mu);
}
/* In the child the thread has a new id, which an error-checking mutex (debug
 * builds) refuses to unlock (EPERM): such a db->mu is made anew (nothing else exists
 * in the child to hold it). The unlock comes first all the same, so that tools that
 * track locks (TSan) see it released. reg_mu is a plain mutex. */
static void fork_child(void) {
  for (sx_db *d = reg_head; d; d = d->reg_next)
    if (pthread_mutex_unlock(&d->mu.m) != 0) sx__mutex_init(&d->mu, SX__RANK_DB, "database");
  pthread_mutex_unlock(&reg_mu);
}
static void reg_atfork(void) {
  (void)sx__fork_generation(); /* os.c's handlers first */
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void reg_add(sx_db *db) {
  pthread_once(&reg_once, reg_atfork);
  pthread_mutex_lock(&reg_mu);
  db->reg_prev = NULL;
  db->reg_next = reg_head;
  if (reg_head) reg_head->reg_prev = db;
  reg_head = db;
  pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(sx_db *db) {
  pthread_mutex_lock(&reg_mu);
  if (db->reg_prev)
    db->reg_prev->reg_next = db->reg_next;
  else if (reg_head == db)
    reg_head = db->reg_next;
  if (db->reg_next) db->reg_next->reg_prev = db->reg_prev;
  db->reg_prev = db->reg_next = NULL;
  pthread_mutex_unlock(&reg_mu);
}

static void db_unref(sx_db *db) {
  if (atomic_fetch_sub(&db->refs, 1) == 1) {
    reg_remove(db);
    sx__mutex_destroy(&db->mu);
    free(db->path);
    free(db);
  }
}

/* ---- read sessions -------------------------------------------------------- */

static void read_cleanup(sx_read *r) {
  unsigned exp = ST_ENDED;
  if (!atomic_compare_exchange_strong(&r->state, &exp, ST_ENDED | ST_CLEANED)) return;
  sx__pager_snap_end(r->pref->p, &r->snap);
  pref_unref(r->pref);
  r->pref = NULL;
}

static void read_end_state(sx_read *r) {
  unsigned s = atomic_fetch_or(&r->state, ST_ENDED);
  if (!(s & ST_ENDED) && (s & ST_COUNT) == 0) read_cleanup(r);
}

int sx__read_enter(sx_read *r, sx_error *err) {
  if (!r) return sx__err_set(err, SX_MISUSE, "read session is NULL");
  if (r->fork_gen != sx__fork_generation())
    return sx__err_set(err, SX_MISUSE,
                       "read session was begun before fork() in the parent process");
  unsigned s = atomic_fetch_add(&r->state, 1);
  if (s & ST_ENDED) {
    sx__read_leave(r);
    return sx__err_set(err, SX_CLOSED, "read session has ended");
  }
  return SX_OK;
}

void sx__read_leave(sx_read *r) {
  if ((atomic_fetch_sub(&r->state, 1) - 1) == ST_ENDED) read_cleanup(r);
}

int sx__read_page(sx_read *r, uint32_t pgno, const uint8_t **out, sx_error *err) {
  return sx__pager_snap_page(r->pref->p, &r->snap, pgno, out, err);
}

/* ---- write sessions ------------------------------------------------------- */

static void write_cleanup(sx_write *w) {
  unsigned exp = ST_ENDED;
  if (!atomic_compare_exchange_strong(&w->state, &exp, ST_ENDED | ST_CLEANED)) return;
  sx__txn_abort(atomic_exchange(&w->txn, NULL));
  pref_unref(w->pref);
  w->pref = NULL;
}

static void write_end_state(sx_write *w) {
  unsigned s = atomic_fetch_or(&w->state, ST_ENDED);
  if (!(s & ST_ENDED) && (s & ST_COUNT) == 0) write_cleanup(w);
}

int sx__write_enter(sx_write *w, sx_error *err) {
  if (!w) return sx__err_set(err, SX_MISUSE, "write session is NULL");
  if (w->fork_gen != sx__fork_generation())
    return sx__err_set(err, SX_MISUSE,
                       "write session was begun before fork() in the parent process");
  unsigned s = atomic_load(&w->state);
  for (;;) {
    if (s & ST_ENDED) return sx__err_set(err, SX_CLOSED, "write session has ended");
    if (s & ST_BUSY)
      return sx__err_set(err, SX_MISUSE,
                         "write session is in use by another call (use a write session from one "
                         "thread at a time)");
    if (atomic_compare_exchange_weak(&w->state, &s, (s + 1) | ST_BUSY)) return SX_OK;
  }
}

void sx__write_leave(sx_write *w) {
  /* Clears BUSY and the one call; what is left is ENDED alone when the session was
   * ended meanwhile (by close) and this call was the last: it cleans up. */
  if ((atomic_fetch_sub(&w->state, 1u + ST_BUSY) - (1u + ST_BUSY)) == ST_ENDED) write_cleanup(w);
}

sx__txn *sx__write_txn(sx_write *w) {
  return atomic_load(&w->txn);
}

/* ---- database handles ----------------------------------------------------- */

/* db->mu held. Ends every session; used by close and after fork. */
static void end_all_locked(sx_db *db) {
  sx__mutex_assert_held(&db->mu);
  for (sx_read *r = db->reads; r; r = r->next) read_end_state(r);
  for (sx_write *w = db->writes; w; w = w->next) write_end_state(w);
}

/* db->mu held: the handle crossed fork(); give up the parent's pager and sessions
 * and open the files anew in this process. */
static int reattach_locked(sx_db *db, sx_error *err) {
  sx__mutex_assert_held(&db->mu);
  end_all_locked(db);
  pref_unref(db->pref);
  db->pref = NULL;
  db->fork_gen = sx__fork_generation();
  pref *r = calloc(1, sizeof *r);
  if (!r) return sx__err_set(err, SX_NOMEM, "out of memory reopening '%s' after fork()", db->path);
  sx__pager_config cfg = db->cfg;
  cfg.create = 0;
  int rc = sx__pager_open(db->path, &cfg, &r->p, err);
  if (rc) {
    free(r);
    db->closed = 1; /* nothing to use any more */
    return rc;
  }
  atomic_init(&r->refs, 1);
  db->pref = r;
  return SX_OK;
}

/* Takes a reference to the handle's current pager, for one call. */
static int db_acquire(sx_db *db, pref **out, sx_error *err) {
  if (!db) return sx__err_set(err, SX_MISUSE, "database handle is NULL");
  sx__mutex_lock(&db->mu);
  int rc = SX_OK;
  if (db->closed) {
    rc = sx__err_set(err, SX_CLOSED, "database '%s' is closed", db->path);
  } else if (db->fork_gen != sx__fork_generation()) {
    rc = reattach_locked(db, err);
  }
  if (!rc) {
    atomic_fetch_add(&db->pref->refs, 1);
    *out = db->pref;
  }
  sx__mutex_unlock(&db->mu);
  return rc;
}

int sx__db_open_vfs(sx_db **out, const char *path, const sx_open_options *opts, sx__vfs *vfs,
                    sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  if (!path || !*path) return sx__err_set(err, SX_INVALID_ARGUMENT, "database path is empty");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  if (opts) {
    if (opts->version < 1 || opts->version > SX_OPEN_OPTIONS_VERSION)
      return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown options version %u", opts->version);
    /* A version 1 struct ends before `threads`, a version 2 one with it (before the
     * padding and `wal_size_limit`, which keeps its default). */
    memcpy(&o, opts,
           opts->version == 1   ? offsetof(sx_open_options, threads)
           : opts->version == 2 ? offsetof(sx_open_options, threads) + sizeof o.threads
                                : sizeof o);
  }
  if (o.wal_max_frames > SX__WAL_FRAMES_MAX)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "wal_max_frames %u is more than %u",
                       o.wal_max_frames, SX__WAL_FRAMES_MAX);
  if (o.threads > 64)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "threads %u is more than 64", o.threads);
  if (o.sync != SX_SYNC_FULL && o.sync != SX_SYNC_NORMAL && o.sync != SX_SYNC_OFF)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown sync level %d", (int)o.sync);
  if (o.page_size &&
      (o.page_size < 4096 || o.page_size > 65536 || (o.page_size & (o.page_size - 1))))
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "page size %u is not a power of two from 4096 to 65536", o.page_size);
  sx_db *db = calloc(1, sizeof *db);
  pref *r = calloc(1, sizeof *r);
  char *p = strdup(path);
  if (!db || !r || !p) {
    free(db);
    free(r);
    free(p);
    return sx__err_set(err, SX_NOMEM, "out of memory opening '%s'", path);
  }
  db->cfg.vfs = vfs;
  db->cfg.read_only = o.read_only != 0;
  db->cfg.create = 1;
  db->cfg.sync = (int)o.sync;
  db->cfg.page_size = o.page_size;
  db->cfg.autocheckpoint = o.autocheckpoint_frames;
  db->cfg.wal_max_frames = o.wal_max_frames;
  db->cfg.wal_size_limit = o.wal_size_limit;
  if (o.threads) {
    db->threads = (int)o.threads;
  } else {
    long np = sysconf(_SC_NPROCESSORS_ONLN);
    db->threads = np < 1 ? 1 : np > 8 ? 8 : (int)np;
  }
  int rc = sx__pager_open(path, &db->cfg, &r->p, err);
  if (rc) {
    free(db);
    free(r);
    free(p);
    return rc;
  }
  atomic_init(&r->refs, 1);
  atomic_init(&db->refs, 1);
  sx__mutex_init(&db->mu, SX__RANK_DB, "database");
  db->path = p;
  db->pref = r;
  db->fork_gen = sx__fork_generation();
  reg_add(db);
  *out = db;
  return SX_OK;
}

int sx__db_close(sx_db *db) {
  if (!db) return SX_MISUSE;
  sx__mutex_lock(&db->mu);
  if (!db->closed) {
    db->closed = 1;
    end_all_locked(db);
    pref_unref(db->pref);
    db->pref = NULL;
  }
  sx__mutex_unlock(&db->mu);
  return SX_OK;
}

void sx__db_free(sx_db *db) {
  if (!db) return;
  sx__db_close(db);
  db_unref(db);
}

const char *sx__db_path(const sx_db *db) {
  return db ? db->path : NULL;
}

void sx__db_mutex_for_test(sx_db *db, int lock) {
  if (lock)
    sx__mutex_lock(&db->mu);
  else
    sx__mutex_unlock(&db->mu);
}

sx__pager *sx__db_pager(sx_db *db) {
  return db && db->pref ? db->pref->p : NULL;
}
int sx__read_threads(const sx_read *r) {
  return r->db->threads;
}
int sx__write_threads(const sx_write *w) {
  return w->db->threads;
}

int sx__db_checkpoint(sx_db *db, int timeout_ms, const sx_cancel *cancel, sx_error *err) {
  pref *r;
  int rc = db_acquire(db, &r, err);
  if (rc) return rc;
  rc = sx__pager_checkpoint(r->p, timeout_ms, cancel, err);
  pref_unref(r);
  return rc;
}

int sx__db_stats(sx_db *db, sx_db_stats *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "stats output is NULL");
  pref *r;
  int rc = db_acquire(db, &r, err);
  if (rc) return rc;
  sx__pager_stats s;
  rc = sx__pager_stats_get(r->p, &s, err);
  if (!rc) {
    unsigned version = out->version;
    memset(out, 0, sizeof *out);
    out->version = version;
    out->page_size = sx__pager_page_size(r->p);
    out->page_count = s.npages;
    out->wal_frames = s.wal_frames;
    out->wal_backfilled = s.wal_backfilled;
    out->commits = s.commits;
    out->checkpoints = s.checkpoints;
    out->readers = s.readers;
    out->reader_slots = SX__NSLOTS;
    out->oldest_reader_lag = s.oldest_lag;
    out->oldest_reader_pid = s.oldest_pid;
  }
  pref_unref(r);
  return rc;
}

int sx__db_check(sx_db *db, sx_error *err) {
  pref *r;
  int rc = db_acquire(db, &r, err);
  if (rc) return rc;
  rc = sx__pager_check(r->p, err);
  if (!rc) {
    /* Then the structure of every collection, on a snapshot of its own. */
    /* Then the structure of every collection, on a snapshot of its own, and every
     * page in exactly one place: page 0, the catalog, a collection, or the free list. */
    sx__snap snap;
    rc = sx__pager_snap_begin(r->p, &snap, err);
    if (!rc) {
      sx__pv v = {r->p, &snap, NULL};
      uint8_t *used = sx__callocn((uint64_t)snap.npages / 8 + 1, 1);
      if (!used) rc = sx__err_set(err, SX_NOMEM, "out of memory checking %u pages", snap.npages);
      if (!rc) {
        used[0] = 1; /* page 0 */
        rc = sx__coll_check_all(&v, used, err);
      }
      if (!rc) rc = sx__pager_check_pages(r->p, &snap, used, err);
      free(used);
      sx__pager_snap_end(r->p, &snap);
    }
  }
  pref_unref(r);
  return rc;
}

int sx__read_begin(sx_db *db, sx_read **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  pref *pr;
  int rc = db_acquire(db, &pr, err);
  if (rc) return rc;
  sx_read *r = calloc(1, sizeof *r);
  if (!r) {
    pref_unref(pr);
    return sx__err_set(err, SX_NOMEM, "out of memory");
  }
  rc = sx__pager_snap_begin(pr->p, &r->snap, err);
  if (rc) {
    pref_unref(pr);
    free(r);
    return rc;
  }
  r->pref = pr;
  r->fork_gen = sx__fork_generation();
  atomic_init(&r->state, 0);
  atomic_init(&r->refs, 1);
  sx__mutex_lock(&db->mu);
  if (db->closed || db->pref != pr) {
    sx__mutex_unlock(&db->mu);
    sx__pager_snap_end(pr->p, &r->snap);
    pref_unref(pr);
    free(r);
    return sx__err_set(err, SX_CLOSED, "database '%s' was closed", db->path);
  }
  r->db = db;
  atomic_fetch_add(&db->refs, 1);
  r->next = db->reads;
  if (db->reads) db->reads->prev = r;
  db->reads = r;
  sx__mutex_unlock(&db->mu);
  *out = r;
  return SX_OK;
}

int sx__read_end(sx_read *r) {
  if (!r) return SX_MISUSE;
  read_end_state(r);
  return SX_OK;
}

void sx__read_ref(sx_read *r) {
  atomic_fetch_add(&r->refs, 1);
}

void sx__read_unref(sx_read *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  sx_db *db = r->db;
  sx__mutex_lock(&db->mu);
  if (r->prev)
    r->prev->next = r->next;
  else
    db->reads = r->next;
  if (r->next) r->next->prev = r->prev;
  sx__mutex_unlock(&db->mu);
  read_end_state(r);
  free(r);
  db_unref(db);
}

void sx__read_free(sx_read *r) {
  if (!r) return;
  read_end_state(r);
  sx__read_unref(r);
}

void sx__read_pv(sx_read *r, sx__pv *out) {
  out->p = r->pref->p;
  out->snap = &r->snap;
  out->t = NULL;
}

int sx__write_begin(sx_db *db, int timeout_ms, const sx_cancel *cancel, sx_write **out,
                    sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  pref *pr;
  int rc = db_acquire(db, &pr, err);
  if (rc) return rc;
  sx_write *w = calloc(1, sizeof *w);
  if (!w) {
    pref_unref(pr);
    return sx__err_set(err, SX_NOMEM, "out of memory");
  }
  sx__txn *t = NULL;
  rc = sx__pager_write_begin(pr->p, timeout_ms, cancel, &t, err);
  if (rc) {
    pref_unref(pr);
    free(w);
    return rc;
  }
  w->pref = pr;
  atomic_init(&w->txn, t);
  w->fork_gen = sx__fork_generation();
  atomic_init(&w->state, 0);
  atomic_init(&w->refs, 1);
  sx__mutex_lock(&db->mu);
  if (db->closed || db->pref != pr) {
    sx__mutex_unlock(&db->mu);
    sx__txn_abort(t);
    pref_unref(pr);
    free(w);
    return sx__err_set(err, SX_CLOSED, "database '%s' was closed", db->path);
  }
  w->db = db;
  atomic_fetch_add(&db->refs, 1);
  w->next = db->writes;
  if (db->writes) db->writes->prev = w;
  db->writes = w;
  sx__mutex_unlock(&db->mu);
  *out = w;
  return SX_OK;
}

int sx__write_commit(sx_write *w, sx_error *err) {
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  sx__txn *t = atomic_exchange(&w->txn, NULL);
  if (!t)
    rc = sx__err_set(err, SX_CLOSED, "write session has ended");
  else
    rc = sx__txn_commit(t, err);
  write_end_state(w);
  sx__write_leave(w);
  return rc;
}

int sx__write_abort(sx_write *w) {
  int rc = sx__write_enter(w, NULL);
  if (rc) return rc;
  sx__txn *t = atomic_exchange(&w->txn, NULL);
  if (!t) rc = SX_CLOSED;
  sx__txn_abort(t);
  write_end_state(w);
  sx__write_leave(w);
  return rc;
}

void sx__write_ref(sx_write *w) {
  atomic_fetch_add(&w->refs, 1);
}

void sx__write_unref(sx_write *w) {
  if (atomic_fetch_sub(&w->refs, 1) != 1) return;
  sx_db *db = w->db;
  sx__mutex_lock(&db->mu);
  if (w->prev)
    w->prev->next = w->next;
  else
    db->writes = w->next;
  if (w->next) w->next->prev = w->prev;
  sx__mutex_unlock(&db->mu);
  write_end_state(w);
  free(w);
  db_unref(db);
}

void sx__write_free(sx_write *w) {
  if (!w) return;
  write_end_state(w);
  sx__write_unref(w);
}

void sx__write_pv(sx_write *w, sx__pv *out) {
  sx__txn *t = atomic_load(&w->txn);
  out->p = w->pref->p;
  out->snap = NULL;
  out->t = t;
}
