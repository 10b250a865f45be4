/*
 * Tests for the lock layer: mutual exclusion, shared readers and writer exclusion
 * of the reader-writer lock (writer-preferring), condition variable deadlines and
 * broadcast, and the debug rank checker. Concurrency claims are proved by atomics
 * and lock-state probes, never by sleeping and hoping. The death tests need the
 * checker (SX_LOCK_CHECK) and are skipped, with a reason, without it.
 */
#include <gtest/gtest.h>

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "lock/lock.h"
extern "C" {
#include "os/os.h"
}

namespace {

constexpr uint64_t kMs = 1000000;

/* Spins (yielding) until pred() holds or `seconds` pass; returns pred(). The
 * bound only turns a broken lock into a failure instead of a hang. */
template <class Pred>
bool WaitFor(Pred pred, int seconds = 20) {
  uint64_t deadline = sx__now_ns() + (uint64_t)seconds * 1000 * kMs;
  while (!pred()) {
    if (sx__now_ns() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

TEST(Lock, RankNames) {
  EXPECT_STREQ(sx__rank_name(SX__RANK_DB), "db");
  EXPECT_STREQ(sx__rank_name(SX__RANK_CATALOG), "catalog");
  EXPECT_STREQ(sx__rank_name(SX__RANK_PAGE), "pages");
  EXPECT_STREQ(sx__rank_name(SX__RANK_MAP), "map");
  EXPECT_STREQ(sx__rank_name(SX__RANK_COUNT), "unknown");
  EXPECT_STREQ(sx__rank_name(-1), "unknown");
  for (int r = 0; r < SX__RANK_COUNT; r++) EXPECT_NE(sx__rank_name(r), nullptr) << r;
}

TEST(Lock, MutexExcludesUnderContention) {
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  sx__mutex m;
  sx__mutex_init(&m, SX__RANK_COLLECTION, "collection");
  uint64_t counter = 0; /* plain: only the mutex protects it */
  std::atomic<int> inside{0}, overlaps{0}, ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      ready++;
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kIters; i++) {
        sx__mutex_lock(&m);
        sx__mutex_assert_held(&m);
        if (inside.fetch_add(1) != 0) overlaps++;
        counter = counter + 1;
        inside.fetch_sub(1);
        sx__mutex_unlock(&m);
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return ready.load() == kThreads; }));
  go = true;
  for (auto &t : threads) t.join();
  EXPECT_EQ(counter, (uint64_t)kThreads * kIters);
  EXPECT_EQ(overlaps.load(), 0);
  sx__mutex_destroy(&m);
}

TEST(Lock, RwlockReadersShare) {
  sx__rwlock l;
  sx__rwlock_init(&l, SX__RANK_INDEX, "hnsw entry");
  std::atomic<int> inside{0}, looked{0};
  bool saw_both[2] = {false, false};
  auto reader = [&](int i) {
    sx__rwlock_rdlock(&l, 0);
    /* inside counts threads between rdlock and unlock; reaching 2 while this
     * thread still holds its read lock proves both held it at once. */
    bool both = inside.fetch_add(1) + 1 == 2;
    if (!both) both = WaitFor([&] { return inside.load() == 2; });
    saw_both[i] = both;
    /* Leave only once the other reader has looked too (or given up). */
    looked++;
    WaitFor([&] { return looked.load() == 2; });
    inside.fetch_sub(1);
    sx__rwlock_unlock(&l, 0);
  };
  std::thread a(reader, 0), b(reader, 1);
  a.join();
  b.join();
  EXPECT_TRUE(saw_both[0]);
  EXPECT_TRUE(saw_both[1]);
  sx__rwlock_destroy(&l);
}

TEST(Lock, RwlockReadersExcludeWriterAndWriterIsPreferred) {
  sx__rwlock l;
  sx__rwlock_init(&l, SX__RANK_PAGE, "page image");
  std::atomic<int> readers{0};
  std::atomic<bool> writer_in{false};
  int readers_seen_by_writer = -1;

  sx__rwlock_rdlock(&l, 5);
  readers = 1;
  /* While read-locked, no other thread can get a write lock. */
  int try_wr = -1;
  std::thread([&] { try_wr = pthread_rwlock_trywrlock(&l.l); }).join();
  EXPECT_EQ(try_wr, EBUSY);

  std::thread writer([&] {
    sx__rwlock_wrlock(&l, 5);
    readers_seen_by_writer = readers.load();
    writer_in = true;
    sx__rwlock_unlock(&l, 5);
  });
  /* Writer preference: once the writer is queued, new readers are refused even
   * though the lock is only read-held. That is also how we know the writer is
   * waiting (not merely not started) before checking that it is not inside. */
  bool writer_queued = WaitFor([&] {
    int rc = pthread_rwlock_tryrdlock(&l.l);
    if (rc == 0) pthread_rwlock_unlock(&l.l);
    return rc == EBUSY;
  });
  EXPECT_TRUE(writer_queued) << "a waiting writer did not block new readers";
  EXPECT_FALSE(writer_in.load());
  readers = 0; /* before the unlock: a writer entering early would see 1 */
  sx__rwlock_unlock(&l, 5);
  writer.join();
  EXPECT_TRUE(writer_in.load());
  EXPECT_EQ(readers_seen_by_writer, 0);
  sx__rwlock_destroy(&l);
}

TEST(Lock, RwlockWriterExcludesReaders) {
  sx__rwlock l;
  sx__rwlock_init(&l, SX__RANK_PAGE, "page image");
  int value = 0; /* protected by l */
  std::atomic<bool> reader_in{false}, reader_started{false};
  int value_seen_by_reader = -1;

  sx__rwlock_wrlock(&l, 9);
  int try_rd = -1, try_wr = -1;
  std::thread([&] {
    try_rd = pthread_rwlock_tryrdlock(&l.l);
    try_wr = pthread_rwlock_trywrlock(&l.l);
  }).join();
  EXPECT_EQ(try_rd, EBUSY);
  EXPECT_EQ(try_wr, EBUSY);

  std::thread reader([&] {
    reader_started = true;
    sx__rwlock_rdlock(&l, 9);
    reader_in = true;
    value_seen_by_reader = value;
    sx__rwlock_unlock(&l, 9);
  });
  ASSERT_TRUE(WaitFor([&] { return reader_started.load(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20)); /* give it a chance to cheat */
  EXPECT_FALSE(reader_in.load());
  value = 42;
  sx__rwlock_unlock(&l, 9);
  reader.join();
  EXPECT_TRUE(reader_in.load());
  EXPECT_EQ(value_seen_by_reader, 42);
  sx__rwlock_destroy(&l);
}

TEST(Lock, CondWaitTimesOutAtDeadline) {
  sx__mutex m;
  sx__cond c;
  sx__mutex_init(&m, SX__RANK_SLOTS, "slots");
  sx__cond_init(&c);
  sx__mutex_lock(&m);

  uint64_t deadline = sx__now_ns() + 100 * kMs;
  int rc, early = 0;
  while ((rc = sx__cond_wait(&c, &m, deadline)) == 0) early++; /* spurious wakeups */
  uint64_t end = sx__now_ns();
  EXPECT_EQ(rc, ETIMEDOUT);
  /* A wait that keeps returning early (e.g. a deadline on the wrong clock) spins. */
  EXPECT_LE(early, 3);
  EXPECT_GE(end, deadline);
  EXPECT_LT(end - deadline, 1000 * kMs) << "woke " << (end - deadline) / kMs << " ms late";
  sx__mutex_assert_held(&m); /* got the mutex back, and the checker knows */

  /* A deadline already passed returns at once. */
  uint64_t t0 = sx__now_ns();
  EXPECT_EQ(sx__cond_wait(&c, &m, 1), ETIMEDOUT);
  EXPECT_EQ(sx__cond_wait(&c, &m, t0), ETIMEDOUT);
  EXPECT_LT(sx__now_ns() - t0, 1000 * kMs);

  sx__mutex_unlock(&m);
  sx__cond_destroy(&c);
  sx__mutex_destroy(&m);
}

TEST(Lock, CondBroadcastWakesAllWaiters) {
  constexpr int kWaiters = 4;
  sx__mutex m;
  sx__cond c;
  sx__mutex_init(&m, SX__RANK_DB, "db");
  sx__cond_init(&c);
  bool go = false; /* protected by m */
  int waiting = 0; /* protected by m */
  std::atomic<int> woken{0}, timed_out{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; i++) {
    threads.emplace_back([&, i] {
      /* Half wait with no deadline, half with a far one. */
      uint64_t deadline = i % 2 ? sx__now_ns() + 60000 * kMs : 0;
      sx__mutex_lock(&m);
      waiting++;
      while (!go) {
        if (sx__cond_wait(&c, &m, deadline) == ETIMEDOUT) {
          timed_out++;
          break;
        }
        sx__mutex_assert_held(&m);
      }
      if (go) woken++;
      sx__mutex_unlock(&m);
    });
  }
  /* Every waiter counted itself under m and released m only by waiting. */
  ASSERT_TRUE(WaitFor([&] {
    sx__mutex_lock(&m);
    bool all = waiting == kWaiters;
    sx__mutex_unlock(&m);
    return all;
  }));
  sx__mutex_lock(&m);
  go = true;
  sx__cond_broadcast(&c);
  sx__mutex_unlock(&m);
  EXPECT_TRUE(WaitFor([&] { return woken.load() == kWaiters; }, 10))
      << "one broadcast woke " << woken.load() << " of " << kWaiters << " waiters";
  while (woken.load() + timed_out.load() < kWaiters) { /* unstick a failed run */
    sx__mutex_lock(&m);
    sx__cond_broadcast(&c);
    sx__mutex_unlock(&m);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto &t : threads) t.join();
  EXPECT_EQ(woken.load(), kWaiters);
  EXPECT_EQ(timed_out.load(), 0);
  sx__cond_destroy(&c);
  sx__mutex_destroy(&m);
}

TEST(Lock, AscendingRanksAndPagesAreAllowed) {
  sx__mutex db, catalog, wal;
  sx__rwlock p3, p5, p7, pbig;
  sx__mutex_init(&db, SX__RANK_DB, "db");
  sx__mutex_init(&catalog, SX__RANK_CATALOG, "catalog");
  sx__mutex_init(&wal, SX__RANK_WAL, "wal");
  sx__rwlock_init(&p3, SX__RANK_PAGE, "page image");
  sx__rwlock_init(&p5, SX__RANK_PAGE, "page image");
  sx__rwlock_init(&p7, SX__RANK_PAGE, "page image");
  sx__rwlock_init(&pbig, SX__RANK_PAGE, "page image");

  sx__mutex_lock(&db);
  sx__rank_acquire(SX__RANK_WRITER, 0, "writer byte"); /* e.g. an OFD lock */
  sx__mutex_lock(&catalog);
  sx__rwlock_wrlock(&p3, 3);
  sx__rwlock_rdlock(&p7, 7);
  sx__rwlock_wrlock(&pbig, 1ull << 40);
  sx__mutex_lock(&wal);
  sx__mutex_assert_held(&db);
  sx__mutex_assert_held(&catalog);
  sx__mutex_assert_held(&wal);

  /* Release out of order; each release removes exactly its own entry. */
  sx__mutex_unlock(&catalog);
  sx__rank_release(SX__RANK_WRITER, 0, "writer byte");
  sx__mutex_unlock(&wal);
  sx__rwlock_unlock(&pbig, 1ull << 40);
  sx__rwlock_unlock(&p7, 7);
  /* Held now: db, page 3. Page 5 is above every held page. */
  sx__rwlock_wrlock(&p5, 5);
  sx__mutex_lock(&wal);
  sx__mutex_assert_held(&db);
  sx__rwlock_unlock(&p3, 3);
  sx__mutex_unlock(&db);
  sx__rwlock_unlock(&p5, 5);
  sx__mutex_unlock(&wal);

  /* Nothing held: the lowest rank is fine again. */
  sx__mutex_lock(&db);
  sx__mutex_lock(&catalog);
  sx__mutex_unlock(&catalog);
  sx__mutex_unlock(&db);

  sx__rwlock_destroy(&pbig);
  sx__rwlock_destroy(&p7);
  sx__rwlock_destroy(&p5);
  sx__rwlock_destroy(&p3);
  sx__mutex_destroy(&wal);
  sx__mutex_destroy(&catalog);
  sx__mutex_destroy(&db);
}

TEST(Lock, RanksArePerThread) {
  sx__mutex db, wal;
  sx__mutex_init(&db, SX__RANK_DB, "db");
  sx__mutex_init(&wal, SX__RANK_WAL, "wal");
  sx__mutex_lock(&wal);
  bool other_took_db = false;
  std::thread([&] {
    sx__mutex_lock(&db); /* this thread holds nothing: allowed */
    other_took_db = true;
    sx__mutex_unlock(&db);
  }).join();
  EXPECT_TRUE(other_took_db);
  sx__mutex_unlock(&wal);
  sx__mutex_destroy(&wal);
  sx__mutex_destroy(&db);
}

TEST(Lock, CheckerCompiledInMatchesBuild) {
#ifdef SX_LOCK_CHECK
  EXPECT_EQ(sx__rank_checking(), 1);
#else
  EXPECT_EQ(sx__rank_checking(), 0);
#endif
}

/* ------------------------------------------------------------------------- */
/* Death tests: the checker aborts, naming both locks.                        */
/* ------------------------------------------------------------------------- */

/* The message must be one whole line of stderr. */
#define SX_LINE(text) "(^|\n)sextant: " text "\n"

class LockDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::FLAGS_gtest_death_test_style = "threadsafe";
    if (!sx__rank_checking()) {
      GTEST_SKIP() << "lock-rank checker not compiled in (build with SX_LOCK_CHECK)";
    }
  }
};

TEST_F(LockDeathTest, LowerRankWhileHoldingHigher) {
  sx__mutex catalog;
  sx__rwlock page;
  sx__mutex_init(&catalog, SX__RANK_CATALOG, "catalog");
  sx__rwlock_init(&page, SX__RANK_PAGE, "pages");
  EXPECT_DEATH(
      {
        sx__rwlock_rdlock(&page, 12);
        sx__mutex_lock(&catalog);
      },
      SX_LINE("lock order violation: taking \"catalog\" \\(rank 4 catalog\\) while holding "
              "\"pages\" \\(rank 7 pages, page 12\\)"));
  sx__rwlock_destroy(&page);
  sx__mutex_destroy(&catalog);
}

TEST_F(LockDeathTest, PagesInDescendingOrder) {
  sx__rwlock p3, p7, p9;
  sx__rwlock_init(&p3, SX__RANK_PAGE, "page image");
  sx__rwlock_init(&p7, SX__RANK_PAGE, "page image");
  sx__rwlock_init(&p9, SX__RANK_PAGE, "page image");
  EXPECT_DEATH(
      {
        sx__rwlock_wrlock(&p7, 7);
        sx__rwlock_wrlock(&p3, 3);
      },
      SX_LINE("lock order violation: taking \"page image\" \\(rank 7 pages, page 3\\) while "
              "holding \"page image\" \\(rank 7 pages, page 7\\)"));
  /* The lock named is the highest page held, wherever it sits on the stack. */
  EXPECT_DEATH(
      {
        sx__rwlock_rdlock(&p3, 3);
        sx__rwlock_rdlock(&p9, 9);
        sx__rwlock_rdlock(&p7, 7);
      },
      SX_LINE("lock order violation: taking \"page image\" \\(rank 7 pages, page 7\\) while "
              "holding \"page image\" \\(rank 7 pages, page 9\\)"));
  /* The same page twice is not ascending either (and would self-deadlock). */
  EXPECT_DEATH(
      {
        sx__rwlock_rdlock(&p7, 7);
        sx__rwlock_rdlock(&p7, 7);
      },
      SX_LINE("lock order violation: taking \"page image\" \\(rank 7 pages, page 7\\) while "
              "holding \"page image\" \\(rank 7 pages, page 7\\)"));
  sx__rwlock_destroy(&p9);
  sx__rwlock_destroy(&p7);
  sx__rwlock_destroy(&p3);
}

TEST_F(LockDeathTest, SameRankTwice) {
  sx__mutex a, b;
  sx__mutex_init(&a, SX__RANK_COLLECTION, "collection docs");
  sx__mutex_init(&b, SX__RANK_COLLECTION, "collection images");
  EXPECT_DEATH(
      {
        sx__mutex_lock(&a);
        sx__mutex_lock(&b);
      },
      SX_LINE("lock order violation: taking \"collection images\" \\(rank 5 collection\\) while "
              "holding \"collection docs\" \\(rank 5 collection\\)"));
  sx__mutex_destroy(&b);
  sx__mutex_destroy(&a);
}

TEST_F(LockDeathTest, WouldBeDeadlockAbortsBeforeBlocking) {
  sx__mutex catalog;
  sx__rwlock page;
  sx__mutex_init(&catalog, SX__RANK_CATALOG, "catalog");
  sx__rwlock_init(&page, SX__RANK_PAGE, "pages");
  EXPECT_DEATH(
      {
        /* Another thread holds catalog for ever, so a check made after blocking
         * would hang; the alarm turns that into a death without the message. */
        alarm(30);
        std::atomic<bool> holding{false};
        std::thread([&] {
          sx__mutex_lock(&catalog);
          holding = true;
          for (;;) pause();
        }).detach();
        while (!holding.load()) std::this_thread::yield();
        sx__rwlock_wrlock(&page, 3);
        sx__mutex_lock(&catalog);
      },
      SX_LINE("lock order violation: taking \"catalog\" \\(rank 4 catalog\\) while holding "
              "\"pages\" \\(rank 7 pages, page 3\\)"));
  sx__rwlock_destroy(&page);
  sx__mutex_destroy(&catalog);
}

TEST_F(LockDeathTest, CondWaitKeepsMutexRecorded) {
  sx__mutex a, b;
  sx__cond c;
  sx__mutex_init(&a, SX__RANK_COLLECTION, "collection docs");
  sx__mutex_init(&b, SX__RANK_COLLECTION, "collection images");
  sx__cond_init(&c);
  EXPECT_DEATH(
      {
        sx__mutex_lock(&a);
        while (sx__cond_wait(&c, &a, sx__now_ns() + 5 * kMs) == 0) {
        }
        sx__mutex_lock(&b);
      },
      SX_LINE("lock order violation: taking \"collection images\" \\(rank 5 collection\\) while "
              "holding \"collection docs\" \\(rank 5 collection\\)"));
  sx__cond_destroy(&c);
  sx__mutex_destroy(&b);
  sx__mutex_destroy(&a);
}

TEST_F(LockDeathTest, HooksTakePartInTheOrder) {
  sx__mutex db;
  sx__mutex_init(&db, SX__RANK_DB, "db");
  EXPECT_DEATH(
      {
        sx__rank_acquire(SX__RANK_CHECKPOINT, 0, "checkpoint byte");
        sx__mutex_lock(&db);
      },
      SX_LINE("lock order violation: taking \"db\" \\(rank 1 db\\) while holding "
              "\"checkpoint byte\" \\(rank 3 checkpoint\\)"));
  EXPECT_DEATH(sx__rank_release(SX__RANK_WRITER, 0, "writer byte"),
               SX_LINE("lock checker: releasing \"writer byte\" \\(rank 2 writer\\) which this "
                       "thread does not hold"));
  sx__mutex_destroy(&db);
}

TEST_F(LockDeathTest, AssertHeldNeedsThisThreadToHold) {
  sx__mutex m;
  sx__mutex_init(&m, SX__RANK_DB, "db");
  EXPECT_DEATH(sx__mutex_assert_held(&m),
               SX_LINE("lock not held: \"db\" \\(rank 1 db\\) is not held by this thread"));
  /* Locked, but by another thread. */
  EXPECT_DEATH(
      {
        std::atomic<bool> holding{false};
        std::thread([&] {
          sx__mutex_lock(&m);
          holding = true;
          for (;;) pause();
        }).detach();
        while (!holding.load()) std::this_thread::yield();
        sx__mutex_assert_held(&m);
      },
      SX_LINE("lock not held: \"db\" \\(rank 1 db\\) is not held by this thread"));
  sx__mutex_destroy(&m);
}

}  // namespace
