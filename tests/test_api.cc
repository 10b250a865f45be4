// The public API as bindings use it: one write session hammered from several threads,
// the WAL cap never bounding recovery, a writer that would wait for itself, fork()
// while other threads work, cancel tokens, packed inputs, bulk results, versioned
// output structs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "sextant.h"
extern "C" {
#include "session/session.h"
#include "testutil.h"
}
#include "testutil.hh"

namespace {

using sxt::Count;
using sxt::TmpDir;

int StressSeconds() {
  const char *s = getenv("SX_STRESS_SECONDS");
  int v = s ? atoi(s) : 3;
  return v < 1 ? 1 : v > 5 ? 5 : v;
}

sx_db *Open(const std::string &path, uint32_t wal_max = 0, uint32_t autockpt = 0) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.wal_max_frames = wal_max;
  o.autocheckpoint_frames = autockpt;
  o.sync = SX_SYNC_OFF;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_open(&db, path.c_str(), &o, &err), SX_OK) << err.message;
  return db;
}

void Create(sx_db *db, const char *name, uint32_t dim, sx_index_type index) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK) << err.message;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = dim;
  co.index = index;
  ASSERT_EQ(sx_write_create_collection(w, name, &co, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
}

struct Batch {
  std::vector<std::string> ids;
  std::vector<const char *> ptrs;
  std::vector<float> vecs;
};

Batch MakeBatch(size_t n, uint32_t dim, uint64_t seed, const char *prefix) {
  Batch b;
  uint64_t st = seed;
  for (size_t i = 0; i < n; i++) {
    b.ids.push_back(std::string(prefix) + std::to_string(i));
    for (uint32_t d = 0; d < dim; d++)
      b.vecs.push_back((float)(sx_test_splitmix64(&st) % 2000) / 1000.0f - 1.0f);
  }
  for (auto &s : b.ids) b.ptrs.push_back(s.c_str());
  return b;
}

// ---- defect 1: calls racing on one write session --------------------------------

// Threads upsert, search through a write view and read the user version of one write
// session while the main thread commits, aborts or closes it. Every call either works
// or fails cleanly (MISUSE: another call is in; CLOSED: the session ended); under
// ASan/TSan any use of a freed transaction is reported.
TEST(Api, CallsRacingOnOneWriteSessionFailCleanly) {
  TmpDir t("race");
  sx_db *db = Open(t.db);
  Create(db, "c", 8, SX_INDEX_HNSW);
  Batch b = MakeBatch(32, 8, 7, "id");
  std::atomic<long> ok{0}, misuse{0}, closed{0}, other{0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(StressSeconds());
  int round = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    round++;
    sx_db *h = db;
    if (round % 7 == 0) h = Open(t.db);  // some rounds close a handle of their own
    sx_error err = SX_ERROR_INIT;
    sx_write *w = nullptr;
    ASSERT_EQ(sx_write_begin(h, 5000, &w, &err), SX_OK) << err.message;
    std::atomic<bool> go{false};
    auto worker = [&](int kind) {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 200; i++) {
        sx_error e = SX_ERROR_INIT;
        sx_status rc;
        if (kind == 0) {
          rc = sx_write_upsert(w, "c", b.ptrs.size(), b.ptrs.data(), b.vecs.data(), 8, nullptr, &e);
        } else if (kind == 1) {
          sx_collection *c = nullptr;
          rc = sx_write_collection(w, "c", &c, &e);
          if (rc == SX_OK) {
            sx_results *res = nullptr;
            rc = sx_collection_search(c, b.vecs.data(), 8, 5, nullptr, &res, &e);
            sx_results_free(res);
            sx_collection_free(c);
          }
        } else {
          uint64_t v;
          rc = sx_write_user_version(w, &v, &e);
        }
        if (rc == SX_OK)
          ok++;
        else if (rc == SX_MISUSE)
          misuse++;
        else if (rc == SX_CLOSED)
          closed++;
        else
          other++;
        if (rc == SX_CLOSED) break;
      }
    };
    std::thread t0(worker, 0), t1(worker, 1), t2(worker, 2);
    go = true;
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (round % 5)));
    sx_error e = SX_ERROR_INIT;
    sx_status rc;
    switch (round % 3) {
      case 0:
        rc = sx_write_commit(w, &e);
        break;
      case 1:
        rc = sx_write_abort(w);
        break;
      default:
        rc = h == db ? sx_write_abort(w) : sx_db_close(h);
        break;
    }
    // The end itself may meet a call in progress (MISUSE); then the session is still
    // open and is ended once the workers are done.
    EXPECT_TRUE(rc == SX_OK || rc == SX_MISUSE) << sx_status_name(rc) << " " << e.message;
    t0.join();
    t1.join();
    t2.join();
    if (rc == SX_MISUSE) {
      EXPECT_EQ(sx_write_abort(w), SX_OK);
    }
    sx_write_free(w);
    if (h != db) sx_db_free(h);
  }
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(misuse.load(), 0) << "no call ever overlapped another: the test proves nothing";
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}

// A cancel hook that commits the session its search runs in: the commit is refused
// (MISUSE) instead of freeing the transaction under the search.
int commit_from_hook(void *ctx) {
  auto *p = static_cast<std::pair<sx_write *, sx_status> *>(ctx);
  sx_error e = SX_ERROR_INIT;
  p->second = sx_write_commit(p->first, &e);
  return 0;
}

TEST(Api, CommitFromInsideACallOnTheSameSessionIsMisuse) {
  TmpDir t("hook");
  sx_db *db = Open(t.db);
  Create(db, "c", 4, SX_INDEX_FLAT);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  Batch b = MakeBatch(10, 4, 1, "v");
  ASSERT_EQ(sx_write_upsert(w, "c", 10, b.ptrs.data(), b.vecs.data(), 4, nullptr, &err), SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_write_collection(w, "c", &c, &err), SX_OK);
  std::pair<sx_write *, sx_status> ctx{w, SX_OK};
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.cancel = commit_from_hook;
  so.cancel_ctx = &ctx;
  sx_results *res = nullptr;
  ASSERT_EQ(sx_collection_search(c, b.vecs.data(), 4, 3, &so, &res, &err), SX_OK) << err.message;
  EXPECT_EQ(ctx.second, SX_MISUSE);
  EXPECT_EQ(sx_results_count(res, 0), 3u);
  sx_results_free(res);
  sx_collection_free(c);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
  EXPECT_EQ(Count(db, "c"), 10u);
  sx_db_free(db);
}

// ---- defect 2: a smaller WAL cap never bounds recovery ----------------------------

TEST(Api, SmallerWalCapAfterACrashLosesNothing) {
  TmpDir t("walcap");
  {
    sx_db *db = Open(t.db);
    Create(db, "c", 16, SX_INDEX_FLAT);
    sx_db_free(db);
  }
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // 50 commits of 200 vectors, never checkpointed, then exit without closing.
    sx_db *db = nullptr;
    sx_open_options o = SX_OPEN_OPTIONS_INIT;
    o.autocheckpoint_frames = 1000000000u;
    o.wal_max_frames = 1000000;
    if (sx_db_open(&db, t.db.c_str(), &o, nullptr) != SX_OK) _exit(2);
    for (int k = 0; k < 50; k++) {
      Batch b = MakeBatch(200, 16, (uint64_t)k + 1, ("c" + std::to_string(k) + "-").c_str());
      sx_write *w = nullptr;
      if (sx_write_begin(db, 1000, &w, nullptr) != SX_OK) _exit(3);
      if (sx_write_upsert(w, "c", 200, b.ptrs.data(), b.vecs.data(), 16, nullptr, nullptr))
        _exit(4);
      if (sx_write_commit(w, nullptr) != SX_OK) _exit(5);
    }
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  sx_db *small = Open(t.db, 64);
  EXPECT_EQ(Count(small, "c"), 10000u);
  sx_db *smaller = Open(t.db, 16);  // a second handle, alongside
  EXPECT_EQ(Count(smaller, "c"), 10000u);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_check(smaller, &err), SX_OK) << err.message;
  sx_db_free(smaller);
  sx_db_free(small);
  // The cap has a ceiling, named in the error.
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.wal_max_frames = (1u << 26) + 1;
  sx_db *db = nullptr;
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "67108865"), nullptr) << err.message;
}

// ---- defect 3: a writer that would wait for itself --------------------------------

TEST(Api, WaitingForeverForOwnWriteSessionIsBusyAtOnce) {
  TmpDir t("self");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr, *w2 = nullptr;
  ASSERT_EQ(sx_write_begin(db, -1, &w, &err), SX_OK);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(sx_write_begin(db, -1, &w2, &err), SX_BUSY);
  EXPECT_NE(strstr(err.message, "this thread already holds"), nullptr) << err.message;
  EXPECT_EQ(sx_db_checkpoint(db, -1, &err), SX_BUSY);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  // Another thread waits for ever, and gets the lock once the session ends.
  std::atomic<int> got{-1};
  std::thread th([&] {
    sx_write *w3 = nullptr;
    sx_error e = SX_ERROR_INIT;
    got = sx_write_begin(db, -1, &w3, &e);
    sx_write_free(w3);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(got.load(), -1);
  EXPECT_EQ(sx_write_commit(w, &err), SX_OK);
  th.join();
  EXPECT_EQ(got.load(), SX_OK);
  sx_write_free(w);
  sx_db_free(db);
}

// ---- defect 4: fork() while other threads are inside the library -------------------

// Threads search and commit through one handle while the main thread forks again and
// again; each child uses the inherited handle at once (read, search, write, close).
// A child stuck on a lock a vanished thread held is killed by its alarm and fails.
TEST(Api, ForkWhileOtherThreadsSearchAndCommit) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers' own allocators are not fork-safe (a child can hang in malloc on
  // the runtime's lock held by a parent thread): the deterministic test below runs
  // under them; this one in the plain build.
  GTEST_SKIP() << "fork with busy threads hangs the sanitizer runtime's allocator";
#endif
  TmpDir t("fork");
  sx_db *db = Open(t.db);
  Create(db, "c", 8, SX_INDEX_HNSW);
  std::atomic<bool> stop{false};
  std::atomic<long> commits{0}, searches{0};
  auto writer = [&] {
    for (int k = 0; !stop.load(); k++) {
      Batch b = MakeBatch(20, 8, (uint64_t)k + 11, ("w" + std::to_string(k % 50) + "-").c_str());
      sx_write *w = nullptr;
      sx_error e = SX_ERROR_INIT;
      if (sx_write_begin(db, 1000, &w, &e) != SX_OK) continue;
      sx_write_upsert(w, "c", 20, b.ptrs.data(), b.vecs.data(), 8, nullptr, &e);
      if (sx_write_commit(w, &e) == SX_OK) commits++;
      sx_write_free(w);
      if (k % 10 == 0) sx_db_checkpoint(db, 0, &e);
      std::this_thread::sleep_for(std::chrono::microseconds(500));  // let children write too
    }
  };
  auto reader = [&] {
    std::vector<float> q(8, 0.25f);
    while (!stop.load()) {
      sx_read *r = nullptr;
      sx_error e = SX_ERROR_INIT;
      if (sx_read_begin(db, &r, &e) != SX_OK) continue;
      sx_collection *c = nullptr;
      if (sx_read_collection(r, "c", &c, &e) == SX_OK) {
        sx_results *res = nullptr;
        if (sx_collection_search(c, q.data(), 8, 5, nullptr, &res, &e) == SX_OK) searches++;
        sx_results_free(res);
        sx_collection_free(c);
      }
      sx_read_free(r);
    }
  };
  std::thread tw(writer), tr1(reader), tr2(reader);
  int forks = 0, failed = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(StressSeconds());
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(20);
      sx_error e = SX_ERROR_INIT;
      sx_read *r = nullptr;
      if (sx_read_begin(db, &r, &e) != SX_OK) _exit(10);
      sx_collection *c = nullptr;
      if (sx_read_collection(r, "c", &c, &e) != SX_OK) _exit(11);
      uint64_t n = 0;
      if (sx_collection_count(c, &n, &e) != SX_OK) _exit(12);
      std::vector<float> q(8, 0.5f);
      sx_results *res = nullptr;
      if (n && sx_collection_search(c, q.data(), 8, 3, nullptr, &res, &e) != SX_OK) _exit(13);
      sx_results_free(res);
      sx_collection_free(c);
      sx_read_free(r);
      sx_write *w = nullptr;
      if (sx_write_begin(db, 10000, &w, &e) != SX_OK) _exit(14);
      if (sx_write_set_user_version(w, 7, &e) != SX_OK) _exit(15);
      if (sx_write_commit(w, &e) != SX_OK) _exit(16);
      sx_write_free(w);
      sx_db_free(db);
      _exit(0);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    forks++;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      failed++;
      ADD_FAILURE() << "child " << forks << " ended with status " << st;
    }
  }
  stop = true;
  tw.join();
  tr1.join();
  tr2.join();
  EXPECT_EQ(failed, 0);
  EXPECT_GT(forks, 10);
  EXPECT_GT(commits.load(), 0);
  EXPECT_GT(searches.load(), 0);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}

// The same, made certain: another thread holds the handle's mutex, or its pager's
// reader-slot mutex, at the moment of the fork. The child must neither wait for the
// vanished holder (its alarm fails it) nor abort destroying the held mutex.
TEST(Api, ForkWhileAnotherThreadHoldsAnInternalMutex) {
#if defined(__SANITIZE_THREAD__)
  // TSan reports the parent's threads as leaked by a child that exits: ASan and the
  // plain build run this one.
  GTEST_SKIP() << "TSan counts the parent's threads as leaked in a fork child";
#endif
  TmpDir t("forkheld");
  sx_db *db = Open(t.db);
  Create(db, "c", 4, SX_INDEX_FLAT);
  for (int which = 0; which < 2; which++) {
    std::atomic<bool> held{false};
    std::thread th([&] {
      if (which == 0)
        sx__db_mutex_for_test(db, 1);
      else
        sx__pager_slots_mutex_for_test(sx__db_pager(db), 1);
      held = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (which == 0)
        sx__db_mutex_for_test(db, 0);
      else
        sx__pager_slots_mutex_for_test(sx__db_pager(db), 0);
    });
    while (!held.load()) std::this_thread::yield();
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(10);
      sx_error e = SX_ERROR_INIT;
      sx_read *r = nullptr;
      if (sx_read_begin(db, &r, &e) != SX_OK) _exit(10);
      uint64_t v = 1;
      if (sx_read_user_version(r, &v, &e) != SX_OK || v != 0) _exit(11);
      sx_read_free(r);
      sx_db_free(db);  // frees the parent's pager, its held mutex included
      _exit(0);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    th.join();
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
        << (which ? "reader-slot mutex" : "handle mutex") << ": child status " << st;
  }
  sx_db_free(db);
}

// ---- cancel tokens ------------------------------------------------------------

TEST(Api, CancelTokenStopsALongSearch) {
  TmpDir t("cancel");
  sx_db *db = Open(t.db, 0, 1000000);
  const uint32_t dim = 64;
  Create(db, "c", dim, SX_INDEX_FLAT);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  Batch b = MakeBatch(20000, dim, 3, "x");
  ASSERT_EQ(
      sx_write_upsert(w, "c", b.ptrs.size(), b.ptrs.data(), b.vecs.data(), dim, nullptr, &err),
      SX_OK);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_read_collection(r, "c", &c, &err), SX_OK);
  sx_cancel *tok = nullptr;
  ASSERT_EQ(sx_cancel_new(&tok, &err), SX_OK);
  EXPECT_EQ(sx_cancel_is_set(tok), 0);
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.cancel_token = tok;
  // 2000 queries over 20000 vectors: far longer than the 30 ms before the cancel.
  std::vector<float> qs(b.vecs.begin(), b.vecs.begin() + 2000 * dim);
  std::thread th([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    sx_cancel_set(tok);
  });
  sx_results *res = nullptr;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(sx_collection_search_batch(c, qs.data(), 2000, dim, 10, &so, &res, &err), SX_CANCELLED);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  th.join();
  EXPECT_EQ(res, nullptr);
  EXPECT_NE(strstr(err.message, "cancelled"), nullptr) << err.message;
  // A set token refuses at once; reset, it serves again.
  EXPECT_EQ(sx_collection_search(c, qs.data(), dim, 5, &so, &res, &err), SX_CANCELLED);
  sx_cancel_reset(tok);
  ASSERT_EQ(sx_collection_search(c, qs.data(), dim, 5, &so, &res, &err), SX_OK) << err.message;
  sx_results_free(res);
  // The uncancelled batch takes much longer than the cancelled one did.
  so.threads = 1;
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ(sx_collection_search_batch(c, qs.data(), 400, dim, 10, &so, &res, &err), SX_OK);
  auto full_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t1);
  sx_results_free(res);
  EXPECT_LT(ms.count(), 5 * full_ms.count() + 500) << "cancel took " << ms.count() << " ms";
  sx_cancel_free(tok);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
}

TEST(Api, CancelTokenStopsAWaitForTheWriterLock) {
  TmpDir t("cancelw");
  sx_db *a = Open(t.db), *b = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr, *w2 = nullptr;
  ASSERT_EQ(sx_write_begin(a, 0, &w, &err), SX_OK);
  sx_cancel *tok = nullptr;
  ASSERT_EQ(sx_cancel_new(&tok, &err), SX_OK);
  sx_write_options wo = SX_WRITE_OPTIONS_INIT;
  wo.timeout_ms = -1;
  wo.cancel_token = tok;
  for (sx_db *h : {a, b}) {  // waiting in this handle's queue, and on the file lock
    sx_cancel_reset(tok);
    std::thread th([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
      sx_cancel_set(tok);
    });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(sx_write_begin_opts(h, &wo, &w2, &err), SX_CANCELLED) << err.message;
    EXPECT_EQ(sx_db_checkpoint_opts(h, &wo, &err), SX_CANCELLED) << err.message;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    th.join();
    EXPECT_EQ(w2, nullptr);
    EXPECT_GE(ms.count(), 35);
    EXPECT_LT(ms.count(), 2000);
  }
  // Bounded waits still end in BUSY; once the lock is free the token is not in the way.
  sx_cancel_reset(tok);
  wo.timeout_ms = 30;
  EXPECT_EQ(sx_write_begin_opts(b, &wo, &w2, &err), SX_BUSY);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  ASSERT_EQ(sx_write_begin_opts(b, &wo, &w2, &err), SX_OK) << err.message;
  sx_write_free(w2);
  sx_write_options bad = SX_WRITE_OPTIONS_INIT;
  bad.version = 9;
  EXPECT_EQ(sx_write_begin_opts(b, &bad, &w2, &err), SX_INVALID_ARGUMENT);
  sx_cancel_free(tok);
  sx_write_free(w);
  sx_db_free(a);
  sx_db_free(b);
}

// ---- packed inputs and bulk results ---------------------------------------------

void Pack(const std::vector<std::string> &items, std::string *buf, std::vector<size_t> *off) {
  buf->clear();
  off->assign(1, 0);
  for (auto &s : items) {
    *buf += s;
    off->push_back(buf->size());
  }
}

TEST(Api, PackedUpsertAndDeleteMatchTheArrayForms) {
  TmpDir t("packed");
  sx_db *db = Open(t.db);
  Create(db, "p", 4, SX_INDEX_FLAT);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  std::vector<std::string> ids = {"a", "ünï", "c-3", "dd"};
  std::vector<std::string> meta = {"{\"k\":1}", "", "{\"nested\":{\"x\":[1,2]}}", ""};
  std::vector<float> v = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  std::string ib, mb;
  std::vector<size_t> io, mo;
  Pack(ids, &ib, &io);
  Pack(meta, &mb, &mo);
  ASSERT_EQ(sx_write_upsert_packed(w, "p", 4, ib.data(), io.data(), v.data(), 4, mb.data(),
                                   mo.data(), &err),
            SX_OK)
      << err.message;
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_write_collection(w, "p", &c, &err), SX_OK);
  for (size_t i = 0; i < ids.size(); i++) {
    sx_record *rec = nullptr;
    ASSERT_EQ(sx_collection_get(c, ids[i].c_str(), &rec, &err), SX_OK) << ids[i];
    size_t dim = 0;
    const float *vec = sx_record_vector(rec, &dim);
    ASSERT_EQ(dim, 4u);
    EXPECT_EQ(memcmp(vec, &v[i * 4], 16), 0);
    if (meta[i].empty())
      EXPECT_EQ(sx_record_metadata(rec), nullptr);
    else
      EXPECT_STREQ(sx_record_metadata(rec), meta[i].c_str());
    sx_record_free(rec);
  }
  sx_collection_free(c);
  // Bad packing: decreasing offsets, a NUL inside an id; nothing stored.
  std::vector<size_t> dec = {0, 2, 1};
  EXPECT_EQ(
      sx_write_upsert_packed(w, "p", 2, "xyz", dec.data(), v.data(), 4, nullptr, nullptr, &err),
      SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "decrease at item 1"), nullptr) << err.message;
  std::string nul("q\0r", 3);
  std::vector<size_t> no = {0, 3};
  EXPECT_EQ(
      sx_write_upsert_packed(w, "p", 1, nul.data(), no.data(), v.data(), 4, nullptr, nullptr, &err),
      SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "NUL"), nullptr) << err.message;
  std::vector<size_t> empty = {0, 0};
  EXPECT_EQ(
      sx_write_upsert_packed(w, "p", 1, "", empty.data(), v.data(), 4, nullptr, nullptr, &err),
      SX_INVALID_ARGUMENT);
  // Delete: two that exist, one that does not.
  std::vector<std::string> del = {"a", "nope", "dd"};
  Pack(del, &ib, &io);
  size_t deleted = 99;
  ASSERT_EQ(sx_write_delete_packed(w, "p", 3, ib.data(), io.data(), &deleted, &err), SX_OK);
  EXPECT_EQ(deleted, 2u);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  EXPECT_EQ(Count(db, "p"), 2u);
  sx_db_free(db);
}

TEST(Api, BulkResultsMatchTheOneHitAccessors) {
  TmpDir t("bulk");
  sx_db *db = Open(t.db);
  Create(db, "b", 8, SX_INDEX_HNSW);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  Batch b = MakeBatch(500, 8, 5, "item-");
  ASSERT_EQ(sx_write_upsert(w, "b", 500, b.ptrs.data(), b.vecs.data(), 8, nullptr, &err), SX_OK);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_read_collection(r, "b", &c, &err), SX_OK);
  sx_results *res = nullptr;
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.threads = 1;
  ASSERT_EQ(sx_collection_search_batch(c, b.vecs.data(), 7, 8, 9, &so, &res, &err), SX_OK);
  size_t total = sx_results_total(res);
  EXPECT_EQ(total, 63u);
  const size_t *off = sx_results_offsets(res);
  const float *dist = sx_results_distances(res);
  const size_t *idoff = nullptr;
  const char *ids = sx_results_id_data(res, &idoff);
  ASSERT_NE(idoff, nullptr);
  EXPECT_EQ(off[0], 0u);
  EXPECT_EQ(off[7], total);
  for (size_t q = 0; q < 7; q++) {
    ASSERT_EQ(off[q + 1] - off[q], sx_results_count(res, q));
    for (size_t i = 0; i < sx_results_count(res, q); i++) {
      size_t h = off[q] + i;
      EXPECT_EQ(dist[h], sx_results_distance(res, q, i));
      std::string one(ids + idoff[h], idoff[h + 1] - idoff[h] - 1);
      EXPECT_EQ(one, sx_results_id(res, q, i));
      EXPECT_EQ(ids[idoff[h + 1] - 1], '\0');
    }
  }
  EXPECT_EQ(std::string(ids + idoff[0]), "item-0");  // the first query finds itself
  sx_results_free(res);
  // Version 1 search options still work; threads are bounded.
  sx_search_options v1 = SX_SEARCH_OPTIONS_INIT;
  v1.version = 1;
  ASSERT_EQ(sx_collection_search(c, b.vecs.data(), 8, 3, &v1, &res, &err), SX_OK) << err.message;
  sx_results_free(res);
  so.threads = 65;
  EXPECT_EQ(sx_collection_search(c, b.vecs.data(), 8, 3, &so, &res, &err), SX_INVALID_ARGUMENT);
  sx_search_options init;
  EXPECT_EQ(sx_search_options_init(&init, SX_SEARCH_OPTIONS_VERSION), SX_OK);
  EXPECT_EQ(init.threads, 0u);
  EXPECT_EQ(init.cancel_token, nullptr);
  EXPECT_EQ(sx_results_id_data(nullptr, &idoff), nullptr);
  EXPECT_EQ(idoff, nullptr);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
}

TEST(Api, OutputStructsCarryTheirVersion) {
  TmpDir t("outv");
  sx_db *db = Open(t.db);
  Create(db, "o", 3, SX_INDEX_FLAT);
  sx_error err = SX_ERROR_INIT;
  sx_db_stats st = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK) << err.message;
  EXPECT_EQ(st.version, (unsigned)SX_DB_STATS_VERSION);
  EXPECT_EQ(st.page_size, 4096u);
  sx_db_stats zero;
  memset(&zero, 0, sizeof zero);
  EXPECT_EQ(sx_db_stats_get(db, &zero, &err), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "sx_db_stats version 0"), nullptr) << err.message;
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_read_collection(r, "o", &c, &err), SX_OK);
  sx_collection_info info = SX_COLLECTION_INFO_INIT;
  ASSERT_EQ(sx_collection_describe(c, &info, &err), SX_OK);
  EXPECT_EQ(info.version, 2u);
  EXPECT_STREQ(info.name, "o");
  EXPECT_EQ(info.dim, 3u);
  EXPECT_EQ(info.quantization, SX_QUANTIZATION_NONE);
  info.version = 1; /* version 1 (no quantization) is still served; test_quant.cc */
  EXPECT_EQ(sx_collection_describe(c, &info, &err), SX_OK);
  EXPECT_EQ(info.version, 1u);
  info.version = 3;
  EXPECT_EQ(sx_collection_describe(c, &info, &err), SX_INVALID_ARGUMENT);
  sx_collection_stats cs = SX_COLLECTION_STATS_INIT;
  ASSERT_EQ(sx_collection_stats_get(c, &cs, &err), SX_OK);
  EXPECT_EQ(cs.version, 1u);
  cs.version = 0;
  EXPECT_EQ(sx_collection_stats_get(c, &cs, &err), SX_INVALID_ARGUMENT);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
}

// ---- files that are not databases ---------------------------------------------

// A FIFO (or a directory) in place of the database or one of its files is an error at
// once: opening a FIFO read-only used to wait for ever for a writer.
TEST(Api, AFifoOrDirectoryIsRefusedAtOnce) {
  TmpDir t("fifo");
  ASSERT_EQ(mkfifo(t.db.c_str(), 0644), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(10);
    for (int ro = 0; ro < 2; ro++) {
      sx_open_options o = SX_OPEN_OPTIONS_INIT;
      o.read_only = ro;
      sx_db *db = nullptr;
      sx_error e = SX_ERROR_INIT;
      if (sx_db_open(&db, t.db.c_str(), &o, &e) != SX_IO) _exit(10 + ro);
      if (!strstr(e.message, "not a regular file")) _exit(20 + ro);
    }
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
  std::string dir = std::string(t.dir) + "/d.sx";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  EXPECT_NE(sx_db_open(&db, dir.c_str(), nullptr, &err), SX_OK);
  EXPECT_EQ(db, nullptr);
}

// One database through two names: a symbolic link shares the file's WAL and writer
// lock (two writers at once lost commits); a second hard link is refused.
TEST(Api, ASymlinkSharesTheWriterLockAndAHardLinkIsRefused) {
  TmpDir t("links");
  sx_db *a = Open(t.db);
  Create(a, "c", 2, SX_INDEX_FLAT);
  std::string sym = std::string(t.dir) + "/sym.sx";
  ASSERT_EQ(symlink(t.db.c_str(), sym.c_str()), 0);
  sx_db *b = Open(sym);
  ASSERT_NE(b, nullptr);
  sx_error err = SX_ERROR_INIT;
  sx_write *wa = nullptr, *wb = nullptr;
  ASSERT_EQ(sx_write_begin(a, 0, &wa, &err), SX_OK);
  EXPECT_EQ(sx_write_begin(b, 0, &wb, &err), SX_BUSY) << "two writers through two names";
  Batch one = MakeBatch(1, 2, 9, "via-a");
  ASSERT_EQ(sx_write_upsert(wa, "c", 1, one.ptrs.data(), one.vecs.data(), 2, nullptr, &err), SX_OK);
  ASSERT_EQ(sx_write_commit(wa, &err), SX_OK);
  sx_write_free(wa);
  EXPECT_EQ(Count(b, "c"), 1u);  // the other name sees the commit
  EXPECT_EQ(access((sym + "-wal").c_str(), F_OK), -1) << "the link got a WAL of its own";
  sx_db_free(b);
  sx_db_free(a);
  std::string hard = std::string(t.dir) + "/hard.sx";
  ASSERT_EQ(link(t.db.c_str(), hard.c_str()), 0);
  for (const std::string &name : {t.db, hard}) {
    sx_db *db = nullptr;
    EXPECT_EQ(sx_db_open(&db, name.c_str(), nullptr, &err), SX_IO) << name;
    EXPECT_NE(strstr(err.message, "2 hard links"), nullptr) << err.message;
  }
}

// A commit larger than the handle's WAL cap, with no reader anywhere: BUSY that says
// so, not one that blames a read session that does not exist.
TEST(Api, ACommitLargerThanTheWalCapSaysSo) {
  TmpDir t("tinycap");
  sx_db *db = Open(t.db, 2);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = 4;
  ASSERT_EQ(sx_write_create_collection(w, "c", &co, &err), SX_OK);
  EXPECT_EQ(sx_write_commit(w, &err), SX_BUSY);
  EXPECT_NE(strstr(err.message, "does not fit the WAL cap of 2 frames"), nullptr) << err.message;
  EXPECT_EQ(strstr(err.message, "read session"), nullptr) << err.message;
  sx_write_free(w);
  sx_db_free(db);
}

}  // namespace

// An enum's parser with its output as an int: the output starts as *out, so that a
// parser that wrote it on failure would show.
template <typename E, sx_status (*Parse)(const char *, E *, sx_error *)>
static sx_status ParseAsInt(const char *name, int *out, sx_error *err) {
  E v = (E)*out;
  sx_status st = Parse(name, &v, err);
  *out = v;
  return st;
}

// Every enum a binding or the CLI takes by name parses its names through the core, which
// names an unknown one in its message and lists the known ones; *_name() maps back,
// NULL for a value the core does not know.
TEST(Api, EnumNamesParseAndUnknownOnesAreNamed) {
  struct Enum {
    const char *(*name)(int);
    sx_status (*parse)(const char *, int *, sx_error *);
    std::vector<std::string> names;
    std::string unknown_message;
  };
  const Enum enums[] = {
      {sx_metric_name,
       ParseAsInt<sx_metric, sx_metric_parse>,
       {"l2", "ip", "cosine"},
       "unknown metric 'x-y' (l2, ip, cosine)"},
      {sx_quantization_name,
       ParseAsInt<sx_quantization, sx_quantization_parse>,
       {"none", "int8"},
       "unknown quantization 'x-y' (none, int8)"},
      {sx_sync_name,
       ParseAsInt<sx_sync, sx_sync_parse>,
       {"full", "normal", "off"},
       "unknown sync level 'x-y' (full, normal, off)"},
      {sx_index_type_name,
       ParseAsInt<sx_index_type, sx_index_type_parse>,
       {"hnsw", "flat"},
       "unknown index type 'x-y' (flat, hnsw)"},
  };
  for (const Enum &en : enums) {
    for (size_t i = 0; i < en.names.size(); i++) {
      int v = i ? 0 : 1;
      sx_error err = SX_ERROR_INIT;
      EXPECT_EQ(en.parse(en.names[i].c_str(), &v, &err), SX_OK) << en.names[i];
      EXPECT_EQ(v, (int)i) << en.names[i];
      EXPECT_STREQ(en.name(v), en.names[i].c_str());
    }
    EXPECT_EQ(en.name(-1), nullptr);
    EXPECT_EQ(en.name((int)en.names.size()), nullptr);
    sx_error err = SX_ERROR_INIT;
    int v = 1;  // a value of every enum, left alone by every refusal below
    EXPECT_EQ(en.parse("x-y", &v, &err), SX_INVALID_ARGUMENT);
    EXPECT_EQ(err.message, en.unknown_message);
    // Names are exact: no empty name, no trailing space, no case folding.
    EXPECT_EQ(en.parse("", &v, &err), SX_INVALID_ARGUMENT);
    EXPECT_EQ(en.parse((en.names[0] + " ").c_str(), &v, &err), SX_INVALID_ARGUMENT);
    EXPECT_EQ(en.parse(nullptr, &v, &err), SX_INVALID_ARGUMENT);
    std::string upper = en.names[0];
    for (char &c : upper) c = (char)toupper((unsigned char)c);
    EXPECT_EQ(en.parse(upper.c_str(), &v, &err), SX_INVALID_ARGUMENT);
    EXPECT_EQ(v, 1);
  }
  // A NULL output is refused, not written through; a refused name leaves the output alone.
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_sync_parse("full", nullptr, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_index_type_parse("flat", nullptr, &err), SX_INVALID_ARGUMENT);
  // A long name is cut in the message, which stays one line of the buffer.
  std::string longname(500, 'z');
  sx_sync s = SX_SYNC_OFF;
  EXPECT_EQ(sx_sync_parse(longname.c_str(), &s, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(s, SX_SYNC_OFF);
  EXPECT_NE(strstr(err.message, std::string(40, 'z').c_str()), nullptr) << err.message;
  EXPECT_EQ(strstr(err.message, std::string(41, 'z').c_str()), nullptr) << err.message;
}
