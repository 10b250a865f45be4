/*
 * lock: in-process mutexes, condition variables and reader-writer locks, and the
 * debug lock-rank checker (see lock.h for the hierarchy).
 *
 * Invariants
 * - Every lock carries a rank in (SX__RANK_NONE, SX__RANK_COUNT). A thread acquires
 *   only ranks strictly above every rank it holds; SX__RANK_PAGE may be held several
 *   times, in strictly ascending `sub` (page number).
 * - With SX_LOCK_CHECK, the calling thread's held locks live in `held`, the only
 *   thread-local variable in the library. The order is checked BEFORE blocking, so
 *   a would-be deadlock aborts with both locks named instead of hanging. An entry
 *   is pushed only once the lock is actually held and popped before it is released,
 *   so the stack never claims less than the thread holds. sx__cond_wait leaves its
 *   mutex on the stack: the caller holds it again whenever it can look.
 * - Releases may come in any order; each removes its own entry (matched by lock
 *   address, or by rank, sub and name for the bare sx__rank_* hooks).
 * - A pthread call failing here is a bug in the caller or memory corruption, never
 *   a condition to report: it prints one line and aborts.
 * - Without SX_LOCK_CHECK nothing is recorded and the hooks are empty.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "lock/lock.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "os/os.h"

static const char *const rank_names[SX__RANK_COUNT] = {
    [SX__RANK_NONE] = "none",       [SX__RANK_DB] = "db",
    [SX__RANK_WRITER] = "writer",   [SX__RANK_CHECKPOINT] = "checkpoint",
    [SX__RANK_CATALOG] = "catalog", [SX__RANK_COLLECTION] = "collection",
    [SX__RANK_INDEX] = "index",     [SX__RANK_PAGE] = "pages",
    [SX__RANK_WAL] = "wal",         [SX__RANK_SLOTS] = "slots",
    [SX__RANK_MAP] = "map",
};

const char *sx__rank_name(int rank) {
  if (rank < 0 || rank >= SX__RANK_COUNT) return "unknown";
  return rank_names[rank];
}

static void die(const char *what, int rc) {
  fprintf(stderr, "sextant: %s failed: %s\n", what, strerror(rc));
  abort();
}

/* ------------------------------------------------------------------------- */
/* Rank checker                                                               */
/* ------------------------------------------------------------------------- */

#ifdef SX_LOCK_CHECK

/* Enough for a thread holding every non-page rank plus a few dozen page locks
 * (an HNSW insert locking a node's neighbour pages). Exceeding it aborts. */
#define SX_LOCK_MAX_HELD 64

struct held_lock {
  const void *lock; /* the sx__mutex / sx__rwlock, NULL for the bare hooks */
  const char *name;
  uint64_t sub;
  int rank;
};

/* The one piece of thread-local state in the library (debug builds only). */
static _Thread_local struct {
  int n;
  struct held_lock e[SX_LOCK_MAX_HELD];
} held;

static const char *name_or(const char *name) {
  return name ? name : "unnamed";
}

/* Formats `"NAME" (rank R RANKNAME[, page P])` into buf. */
static void describe(char *buf, size_t n, int rank, uint64_t sub, const char *name) {
  if (rank == SX__RANK_PAGE) {
    snprintf(buf, n, "\"%s\" (rank %d %s, page %" PRIu64 ")", name_or(name), rank,
             sx__rank_name(rank), sub);
  } else {
    snprintf(buf, n, "\"%s\" (rank %d %s)", name_or(name), rank, sx__rank_name(rank));
  }
}

/* Prints one line to stderr, then aborts. The line is built first so that it
 * reaches stderr in a single write and never interleaves with another thread's. */
static void fatal(const char *prefix, const char *a, const char *mid, const char *b) {
  char line[768];
  snprintf(line, sizeof line, "sextant: %s%s%s%s\n", prefix, a, mid, b);
  fputs(line, stderr);
  fflush(stderr);
  abort();
}

static int same_name(const char *a, const char *b) {
  if (a == b) return 1;
  return a && b && strcmp(a, b) == 0;
}

/* Aborts unless the calling thread may take (rank, sub) now. */
static void check_order(int rank, uint64_t sub, const char *name) {
  char want[320], have[320];
  if (rank <= SX__RANK_NONE || rank >= SX__RANK_COUNT) {
    describe(want, sizeof want, rank, sub, name);
    fatal("lock order violation: taking ", want, " which has no valid rank", "");
  }
  /* The held lock that bounds what may come next: highest rank, and among page
   * locks the highest page. */
  const struct held_lock *top = NULL;
  for (int i = 0; i < held.n; i++) {
    const struct held_lock *e = &held.e[i];
    if (!top || e->rank > top->rank ||
        (e->rank == top->rank && e->rank == SX__RANK_PAGE && e->sub > top->sub)) {
      top = e;
    }
  }
  if (!top) return;
  if (rank > top->rank || (rank == SX__RANK_PAGE && top->rank == SX__RANK_PAGE && sub > top->sub)) {
    return;
  }
  describe(want, sizeof want, rank, sub, name);
  describe(have, sizeof have, top->rank, top->sub, top->name);
  fatal("lock order violation: taking ", want, " while holding ", have);
}

static void push_held(const void *lock, int rank, uint64_t sub, const char *name) {
  if (held.n == SX_LOCK_MAX_HELD) {
    char want[320];
    describe(want, sizeof want, rank, sub, name);
    fatal("lock checker: taking ", want, " with too many locks held by this thread", "");
  }
  held.e[held.n++] = (struct held_lock){.lock = lock, .name = name, .sub = sub, .rank = rank};
}

/* Removes the most recent entry matching the lock (or, for lock == NULL, the rank,
 * sub and name); aborts if the thread does not hold it. */
static void pop_held(const void *lock, int rank, uint64_t sub, const char *name) {
  for (int i = held.n - 1; i >= 0; i--) {
    const struct held_lock *e = &held.e[i];
    int match = lock ? e->lock == lock && e->sub == sub
                     : !e->lock && e->rank == rank && e->sub == sub && same_name(e->name, name);
    if (match) {
      memmove(&held.e[i], &held.e[i + 1], (size_t)(held.n - i - 1) * sizeof held.e[0]);
      held.n--;
      return;
    }
  }
  char what[320];
  describe(what, sizeof what, rank, sub, name);
  fatal("lock checker: releasing ", what, " which this thread does not hold", "");
}

static int holds(const void *lock) {
  for (int i = 0; i < held.n; i++) {
    if (held.e[i].lock == lock) return 1;
  }
  return 0;
}

void sx__rank_acquire(int rank, uint64_t sub, const char *name) {
  check_order(rank, sub, name);
  push_held(NULL, rank, sub, name);
}

void sx__rank_release(int rank, uint64_t sub, const char *name) {
  pop_held(NULL, rank, sub, name);
}

int sx__rank_checking(void) {
  return 1;
}

#define CHECK_ORDER(rank, sub, name) check_order((rank), (sub), (name))
#define PUSH_HELD(lock, rank, sub, name) push_held((lock), (rank), (sub), (name))
#define POP_HELD(lock, rank, sub, name) pop_held((lock), (rank), (sub), (name))

#else /* !SX_LOCK_CHECK */

void sx__rank_acquire(int rank, uint64_t sub, const char *name) {
  (void)rank, (void)sub, (void)name;
}
void sx__rank_release(int rank, uint64_t sub, const char *name) {
  (void)rank, (void)sub, (void)name;
}
int sx__rank_checking(void) {
  return 0;
}

#define CHECK_ORDER(rank, sub, name) ((void)(sub))
#define PUSH_HELD(lock, rank, sub, name) ((void)0)
#define POP_HELD(lock, rank, sub, name) ((void)(sub))

#endif /* SX_LOCK_CHECK */

/* ------------------------------------------------------------------------- */
/* Mutex                                                                      */
/* ------------------------------------------------------------------------- */

void sx__mutex_init(sx__mutex *m, int rank, const char *name) {
  assert(rank > SX__RANK_NONE && rank < SX__RANK_COUNT);
  m->rank = rank;
  m->name = name;
  m->gen = sx__fork_generation();
#ifdef SX_LOCK_CHECK
  /* Error-checking: relocking or unlocking a mutex the thread does not own
   * fails instead of deadlocking or corrupting it. */
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc) die("pthread_mutexattr_init", rc);
  rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  if (rc) die("pthread_mutexattr_settype", rc);
  rc = pthread_mutex_init(&m->m, &attr);
  pthread_mutexattr_destroy(&attr);
#else
  int rc = pthread_mutex_init(&m->m, NULL);
#endif
  if (rc) die("pthread_mutex_init", rc);
}

void sx__mutex_destroy(sx__mutex *m) {
  if (m->gen != sx__fork_generation()) return; /* inherited across fork(): see lock.h */
  int rc = pthread_mutex_destroy(&m->m);
  if (rc) die("pthread_mutex_destroy", rc);
}

void sx__mutex_lock(sx__mutex *m) {
  CHECK_ORDER(m->rank, 0, m->name);
  int rc = pthread_mutex_lock(&m->m);
  if (rc) die("pthread_mutex_lock", rc);
  PUSH_HELD(m, m->rank, 0, m->name);
}

void sx__mutex_unlock(sx__mutex *m) {
  POP_HELD(m, m->rank, 0, m->name);
  int rc = pthread_mutex_unlock(&m->m);
  if (rc) die("pthread_mutex_unlock", rc);
}

void sx__mutex_assert_held(const sx__mutex *m) {
#ifdef SX_LOCK_CHECK
  if (!holds(m)) {
    char what[320];
    describe(what, sizeof what, m->rank, 0, m->name);
    fatal("lock not held: ", what, " is not held by this thread", "");
  }
#else
  (void)m;
#endif
}

/* ------------------------------------------------------------------------- */
/* Condition variable                                                         */
/* ------------------------------------------------------------------------- */

void sx__cond_init(sx__cond *c) {
  pthread_condattr_t attr;
  int rc = pthread_condattr_init(&attr);
  if (rc) die("pthread_condattr_init", rc);
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc) die("pthread_condattr_setclock", rc);
  c->gen = sx__fork_generation();
  rc = pthread_cond_init(&c->c, &attr);
  pthread_condattr_destroy(&attr);
  if (rc) die("pthread_cond_init", rc);
}

void sx__cond_destroy(sx__cond *c) {
  if (c->gen != sx__fork_generation()) return;
  int rc = pthread_cond_destroy(&c->c);
  if (rc) die("pthread_cond_destroy", rc);
}

int sx__cond_wait(sx__cond *c, sx__mutex *m, uint64_t deadline_ns) {
  sx__mutex_assert_held(m);
  /* m stays on the checker's stack: pthread gives it back before returning. */
  if (deadline_ns == 0) {
    int rc = pthread_cond_wait(&c->c, &m->m);
    if (rc) die("pthread_cond_wait", rc);
    return 0;
  }
  /* The deadline is on sx__now_ns()'s clock; translate the time left into an
   * absolute CLOCK_MONOTONIC time so the two clocks need not share an origin. */
  uint64_t now = sx__now_ns();
  if (now >= deadline_ns) return ETIMEDOUT;
  uint64_t left = deadline_ns - now;
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime", errno);
  uint64_t nsec = (uint64_t)ts.tv_nsec + left % 1000000000u;
  ts.tv_sec += (time_t)(left / 1000000000u + nsec / 1000000000u);
  ts.tv_nsec = (long)(nsec % 1000000000u);
  int rc = pthread_cond_timedwait(&c->c, &m->m, &ts);
  if (rc == ETIMEDOUT) {
    /* Report a timeout only once the caller's clock agrees; an early return is
     * just a spurious wakeup, which callers already loop on. */
    return sx__now_ns() >= deadline_ns ? ETIMEDOUT : 0;
  }
  if (rc) die("pthread_cond_timedwait", rc);
  return 0;
}

void sx__cond_broadcast(sx__cond *c) {
  int rc = pthread_cond_broadcast(&c->c);
  if (rc) die("pthread_cond_broadcast", rc);
}

/* ------------------------------------------------------------------------- */
/* Reader-writer lock                                                         */
/* ------------------------------------------------------------------------- */

void sx__rwlock_init(sx__rwlock *l, int rank, const char *name) {
  assert(rank > SX__RANK_NONE && rank < SX__RANK_COUNT);
  l->rank = rank;
  l->name = name;
  l->gen = sx__fork_generation();
  /* Writer-preferring: a steady stream of readers (parallel HNSW searches) must
   * not starve the inserting writer. NONRECURSIVE is safe because a thread never
   * takes the same rwlock twice (the checker rejects equal rank and page). */
  pthread_rwlockattr_t attr;
  int rc = pthread_rwlockattr_init(&attr);
  if (rc) die("pthread_rwlockattr_init", rc);
  rc = pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  if (rc) die("pthread_rwlockattr_setkind_np", rc);
  rc = pthread_rwlock_init(&l->l, &attr);
  pthread_rwlockattr_destroy(&attr);
  if (rc) die("pthread_rwlock_init", rc);
}

void sx__rwlock_destroy(sx__rwlock *l) {
  if (l->gen != sx__fork_generation()) return;
  int rc = pthread_rwlock_destroy(&l->l);
  if (rc) die("pthread_rwlock_destroy", rc);
}

void sx__rwlock_rdlock(sx__rwlock *l, uint64_t sub) {
  CHECK_ORDER(l->rank, sub, l->name);
  int rc = pthread_rwlock_rdlock(&l->l);
  if (rc) die("pthread_rwlock_rdlock", rc);
  PUSH_HELD(l, l->rank, sub, l->name);
}

void sx__rwlock_wrlock(sx__rwlock *l, uint64_t sub) {
  CHECK_ORDER(l->rank, sub, l->name);
  int rc = pthread_rwlock_wrlock(&l->l);
  if (rc) die("pthread_rwlock_wrlock", rc);
  PUSH_HELD(l, l->rank, sub, l->name);
}

void sx__rwlock_unlock(sx__rwlock *l, uint64_t sub) {
  POP_HELD(l, l->rank, sub, l->name);
  int rc = pthread_rwlock_unlock(&l->l);
  if (rc) die("pthread_rwlock_unlock", rc);
}
