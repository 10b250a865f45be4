/*
 * lock: the fixed lock hierarchy, in-process mutexes and reader-writer locks, and
 * the debug rank checker.
 *
 * Every in-process lock has a rank. A thread may take a lock only if its rank is
 * greater than the rank of every lock it already holds; page locks (SX__RANK_PAGE)
 * may be stacked, but only in ascending page number. The order is written once,
 * below, and is the one in DESIGN.md.
 *
 * With SX_LOCK_CHECK defined (debug builds), each lock/unlock records the ranks the
 * calling OS thread holds (a small per-thread stack: the one piece of thread-local
 * state in the library, and only in debug builds, because mutexes themselves are
 * owned by OS threads) and an out-of-order acquisition aborts the process after
 * printing both locks to stderr, e.g.
 *   sextant: lock order violation: taking "catalog" (rank 4) while holding
 *   "pages" (rank 7, page 12)
 * Without SX_LOCK_CHECK the checks compile to nothing.
 *
 * Locks are never held across a public API call's return: sessions may move
 * between threads (Go goroutines, the Node thread pool).
 */
#ifndef SX_LOCK_H
#define SX_LOCK_H

#include <pthread.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sx__rank {
  SX__RANK_NONE = 0,
  SX__RANK_DB = 1,         /* database handle state: session list, open/closed */
  SX__RANK_WRITER = 2,     /* in-process writer exclusion (the OFD writer byte pairs with it) */
  SX__RANK_CHECKPOINT = 3, /* checkpoint */
  SX__RANK_CATALOG = 4,    /* collection catalog of a session */
  SX__RANK_COLLECTION = 5, /* one collection's state */
  SX__RANK_INDEX = 6,      /* index structure, e.g. the HNSW entry point */
  SX__RANK_PAGE = 7,       /* page images, in ascending page number */
  SX__RANK_WAL = 8,        /* WAL append and the write session's page table */
  SX__RANK_SLOTS = 9,      /* reader-slot table of a database handle */
  SX__RANK_MAP = 10,       /* growing a memory map */
  SX__RANK_COUNT
};

/* Name of a rank for messages ("catalog", "pages", ...). */
const char *sx__rank_name(int rank);

/* Every lock remembers the fork generation it was made in (sx__fork_generation()).
 * One inherited across fork() may have been held by a thread that does not exist in
 * the child: the child may free the memory around it but never destroys it (which
 * could fail with EBUSY) nor takes it. */
typedef struct sx__mutex {
  pthread_mutex_t m;
  int rank;
  unsigned gen;
  const char *name;
} sx__mutex;

typedef struct sx__rwlock {
  pthread_rwlock_t l;
  int rank;
  unsigned gen;
  const char *name;
} sx__rwlock;

void sx__mutex_init(sx__mutex *m, int rank, const char *name);
void sx__mutex_destroy(sx__mutex *m);
void sx__mutex_lock(sx__mutex *m);
void sx__mutex_unlock(sx__mutex *m);
/* Asserts (debug) that the calling thread holds m. */
void sx__mutex_assert_held(const sx__mutex *m);

/* Condition variable paired with an sx__mutex (CLOCK_MONOTONIC). */
typedef struct sx__cond {
  pthread_cond_t c;
  unsigned gen;
} sx__cond;
void sx__cond_init(sx__cond *c);
void sx__cond_destroy(sx__cond *c);
/* Waits; deadline_ns is sx__now_ns()-based, 0 = no deadline. Returns 0, or
 * ETIMEDOUT once the deadline passes. The checker keeps m recorded as held. */
int sx__cond_wait(sx__cond *c, sx__mutex *m, uint64_t deadline_ns);
void sx__cond_broadcast(sx__cond *c);

/* Reader-writer lock. `sub` orders locks of one rank (the page number for
 * SX__RANK_PAGE); pass 0 for other ranks. */
void sx__rwlock_init(sx__rwlock *l, int rank, const char *name);
void sx__rwlock_destroy(sx__rwlock *l);
void sx__rwlock_rdlock(sx__rwlock *l, uint64_t sub);
void sx__rwlock_wrlock(sx__rwlock *l, uint64_t sub);
void sx__rwlock_unlock(sx__rwlock *l, uint64_t sub);

/* Page-level reader-writer locks are sx__rwlocks of rank SX__RANK_PAGE, one per page
 * image that several threads can change at once (the pages of an HNSW graph while
 * threads link nodes into it, hnsw.c), with the page number as `sub`, so the checker
 * enforces ascending page order. */

/* Debug-only hooks the checker uses; callable directly by code that guards state
 * with something other than an sx__mutex (e.g. an OFD lock paired with a flag). */
void sx__rank_acquire(int rank, uint64_t sub, const char *name);
void sx__rank_release(int rank, uint64_t sub, const char *name);
/* 1 if the checker is compiled in. */
int sx__rank_checking(void);

#ifdef __cplusplus
}
#endif

#endif
