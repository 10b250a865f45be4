// Operating a database: batch get, cursors (order, resuming, snapshots, write
// sessions, lifetimes) and online backup (consistency under a concurrent writer,
// progress, cancellation, the destination rules, a backup killed at any instant).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sextant.h"
extern "C" {
#include "faultvfs.h"
#include "session/session.h"
#include "testutil.h"
}
#include "testutil.hh"

namespace {

using sxt::Count;
using sxt::TmpDir;
sx_db *Open(const std::string &path) {
  return sxt::OpenNoSync(path);
}

bool Exists(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

const uint32_t kDim = 8;

std::vector<float> Vec(uint64_t seed) {
  std::vector<float> v(kDim);
  uint64_t s = seed;
  for (auto &x : v) x = (float)((sx_test_splitmix64(&s) >> 40) / 16777216.0 * 2 - 1);
  return v;
}

std::string Id(int i) {
  return "id" + std::to_string(i);
}

// Creates `name` and upserts ids id0..id{n-1} (every third with metadata), one commit.
void Fill(sx_db *db, const char *name, int n, sx_index_type index) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK) << err.message;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = kDim;
  co.index = index;
  ASSERT_EQ(sx_write_create_collection(w, name, &co, &err), SX_OK) << err.message;
  std::vector<std::string> ids, metas;
  std::vector<const char *> idp, mp;
  std::vector<float> vecs;
  for (int i = 0; i < n; i++) {
    ids.push_back(Id(i));
    metas.push_back("{\"i\":" + std::to_string(i) + "}");
    auto v = Vec(i);
    vecs.insert(vecs.end(), v.begin(), v.end());
  }
  for (int i = 0; i < n; i++) {
    idp.push_back(ids[i].c_str());
    mp.push_back(i % 3 == 0 ? metas[i].c_str() : nullptr);
  }
  ASSERT_EQ(sx_write_upsert(w, name, n, idp.data(), vecs.data(), kDim, mp.data(), &err), SX_OK)
      << err.message;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
}

sx_collection *ReadView(sx_db *db, const char *name, sx_read **r) {
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_read_begin(db, r, &err), SX_OK) << err.message;
  sx_collection *c = nullptr;
  EXPECT_EQ(sx_read_collection(*r, name, &c, &err), SX_OK) << err.message;
  return c;
}

// Walks a cursor to its end in batches of `batch`; returns the ids in order and checks
// each record against what Fill stored.
std::vector<std::string> Walk(sx_collection *c, const char *after, size_t batch) {
  sx_error err = SX_ERROR_INIT;
  sx_cursor *cur = nullptr;
  EXPECT_EQ(sx_collection_cursor(c, after, &cur, &err), SX_OK) << err.message;
  std::vector<std::string> out;
  for (;;) {
    sx_records *recs = nullptr;
    EXPECT_EQ(sx_cursor_next(cur, batch, &recs, &err), SX_OK) << err.message;
    size_t n = sx_records_count(recs);
    EXPECT_LE(n, batch);
    for (size_t i = 0; i < n; i++) {
      EXPECT_TRUE(sx_records_found(recs, i));
      std::string id = sx_records_id(recs, i);
      int k = atoi(id.c_str() + 2);
      auto v = Vec(k);
      EXPECT_EQ(memcmp(sx_records_vector(recs, i), v.data(), kDim * 4), 0) << id;
      const char *m = sx_records_metadata(recs, i);
      if (k % 3 == 0) {
        EXPECT_NE(m, nullptr) << id;
        if (m) {
          EXPECT_EQ(std::string(m), "{\"i\":" + std::to_string(k) + "}");
        }
      } else {
        EXPECT_EQ(m, nullptr) << id;
      }
      out.push_back(id);
    }
    sx_records_free(recs);
    if (n == 0) break;
  }
  sx_records *again = nullptr;
  EXPECT_EQ(sx_cursor_next(cur, batch, &again, &err), SX_OK);
  EXPECT_EQ(sx_records_count(again), 0u);
  EXPECT_EQ(sx_cursor_remaining(cur), 0u);
  sx_records_free(again);
  sx_cursor_free(cur);
  return out;
}

class Both : public ::testing::TestWithParam<sx_index_type> {};

TEST_P(Both, GetBatchInOrderWithMissingIds) {
  TmpDir t("ops_get");
  sx_db *db = Open(t.db);
  Fill(db, "c", 200, GetParam());
  sx_read *r;
  sx_collection *c = ReadView(db, "c", &r);
  const char *ids[] = {"id3", "nope", "id7", "id3", "id199"};
  sx_records *recs = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_collection_get_batch(c, 5, ids, &recs, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_records_count(recs), 5u);
  EXPECT_EQ(sx_records_dim(recs), kDim);
  const int want[] = {3, -1, 7, 3, 199};
  const size_t *ioff, *moff;
  const char *idata = sx_records_id_data(recs, &ioff);
  const char *mdata = sx_records_metadata_data(recs, &moff);
  const float *all = sx_records_vectors(recs);
  const unsigned char *found = sx_records_found_data(recs);
  for (int i = 0; i < 5; i++) {
    EXPECT_STREQ(sx_records_id(recs, i), ids[i]);
    EXPECT_EQ(std::string(idata + ioff[i], ioff[i + 1] - ioff[i] - 1), ids[i]);
    EXPECT_EQ(found[i], want[i] >= 0);
    EXPECT_EQ(sx_records_found(recs, i), want[i] >= 0);
    if (want[i] < 0) {
      EXPECT_EQ(sx_records_vector(recs, i), nullptr);
      EXPECT_EQ(sx_records_metadata(recs, i), nullptr);
      EXPECT_EQ(moff[i + 1], moff[i]);
      for (uint32_t j = 0; j < kDim; j++) EXPECT_EQ(all[i * kDim + j], 0.0f);
      continue;
    }
    auto v = Vec(want[i]);
    EXPECT_EQ(memcmp(sx_records_vector(recs, i), v.data(), kDim * 4), 0);
    EXPECT_EQ(memcmp(all + i * kDim, v.data(), kDim * 4), 0);
    bool has_meta = want[i] % 3 == 0;
    EXPECT_EQ(sx_records_metadata(recs, i) != nullptr, has_meta);
    if (has_meta) {
      EXPECT_STREQ(mdata + moff[i], sx_records_metadata(recs, i));
    }
  }
  EXPECT_EQ(sx_records_id(recs, 5), nullptr);
  EXPECT_EQ(sx_records_found(recs, 5), 0);
  sx_records_free(recs);

  // Packed ids, and errors naming the item.
  const char packed[] = "id1id22";
  size_t off[] = {0, 3, 7};
  ASSERT_EQ(sx_collection_get_packed(c, 2, packed, off, &recs, &err), SX_OK) << err.message;
  EXPECT_STREQ(sx_records_id(recs, 1), "id22");
  EXPECT_TRUE(sx_records_found(recs, 1));
  sx_records_free(recs);
  const char *bad[] = {"id1", ""};
  EXPECT_EQ(sx_collection_get_batch(c, 2, bad, &recs, &err), SX_INVALID_ARGUMENT);
  EXPECT_NE(strstr(err.message, "item 1"), nullptr) << err.message;
  EXPECT_EQ(recs, nullptr);
  EXPECT_EQ(sx_collection_get_batch(c, 0, nullptr, &recs, &err), SX_OK);
  EXPECT_EQ(sx_records_count(recs), 0u);
  sx_records_free(recs);
  sx_records_free(nullptr);
  EXPECT_EQ(sx_records_count(nullptr), 0u);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
}

TEST_P(Both, CursorVisitsEveryLiveRecordOnceInIdOrderAndResumes) {
  TmpDir t("ops_cursor");
  sx_db *db = Open(t.db);
  Fill(db, "c", 1000, GetParam());
  // Delete some and replace some, so that slots are reused and moved.
  sx_error err = SX_ERROR_INIT;
  sx_write *w;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK);
  std::set<std::string> gone;
  std::vector<const char *> del;
  static std::vector<std::string> keep;
  keep.clear();
  for (int i = 0; i < 1000; i += 7) keep.push_back(Id(i));
  for (auto &s : keep) {
    del.push_back(s.c_str());
    gone.insert(s);
  }
  ASSERT_EQ(sx_write_delete(w, "c", del.size(), del.data(), nullptr, &err), SX_OK);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);

  sx_read *r;
  sx_collection *c = ReadView(db, "c", &r);
  std::vector<std::string> all = Walk(c, nullptr, 37);
  std::vector<std::string> want;
  for (int i = 0; i < 1000; i++)
    if (!gone.count(Id(i))) want.push_back(Id(i));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(all, want);
  // Resume after any id, present or not.
  EXPECT_EQ(Walk(c, all[500].c_str(), 64), std::vector<std::string>(all.begin() + 501, all.end()));
  EXPECT_EQ(Walk(c, "id0", 1000), std::vector<std::string>(all.begin(), all.end()));
  EXPECT_EQ(Walk(c, "zzz", 10).size(), 0u);
  std::string longid(300, 'a');
  sx_cursor *cur = nullptr;
  EXPECT_EQ(sx_collection_cursor(c, longid.c_str(), &cur, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(cur, nullptr);

  // The snapshot holds while a writer commits; the cursor outlives its view.
  ASSERT_EQ(sx_collection_cursor(c, nullptr, &cur, &err), SX_OK);
  EXPECT_EQ(sx_cursor_remaining(cur), want.size());
  sx_collection_free(c);
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK);
  const char *d2[] = {"id1", "id2"};
  ASSERT_EQ(sx_write_delete(w, "c", 2, d2, nullptr, &err), SX_OK);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
  size_t seen = 0;
  sx_records *recs = nullptr;
  EXPECT_EQ(sx_cursor_next(cur, 0, &recs, &err), SX_INVALID_ARGUMENT);
  for (;;) {
    ASSERT_EQ(sx_cursor_next(cur, 100, &recs, &err), SX_OK) << err.message;
    size_t n = sx_records_count(recs);
    seen += n;
    sx_records_free(recs);
    if (!n) break;
  }
  EXPECT_EQ(seen, want.size());
  ASSERT_EQ(sx_read_end(r), SX_OK);
  EXPECT_EQ(sx_cursor_next(cur, 10, &recs, &err), SX_CLOSED);
  sx_cursor_free(cur);
  sx_read_free(r);
  sx_db_free(db);
}

// One cursor called from four threads at once: each call either serves a batch or
// fails with MISUSE (another call is running) and changes nothing, so every record
// comes out exactly once. Two calls at once once both advanced the cursor past its
// end and read out of bounds (SIGSEGV through Python's next_batch).
TEST_P(Both, CursorCalledFromThreadsAtOnceIsMisuseNeverACrash) {
  TmpDir t("ops_cursor_threads");
  sx_db *db = Open(t.db);
  Fill(db, "c", 3000, GetParam());
  sx_read *r;
  sx_collection *c = ReadView(db, "c", &r);
  for (int round = 0; round < 5; round++) {
    sx_cursor *cur = nullptr;
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_collection_cursor(c, nullptr, &cur, &err), SX_OK);
    std::mutex mu;
    std::vector<std::string> got;
    std::atomic<int> misuse{0}, other{0};
    std::vector<std::thread> ts;
    for (int k = 0; k < 4; k++)
      ts.emplace_back([&] {
        for (;;) {
          sx_records *recs = nullptr;
          sx_error e = SX_ERROR_INIT;
          sx_status st = sx_cursor_next(cur, 7, &recs, &e);
          if (st == SX_MISUSE) {
            misuse++;
            EXPECT_EQ(recs, nullptr);
            continue;
          }
          if (st != SX_OK) {
            other++;
            return;
          }
          size_t n = sx_records_count(recs);
          {
            std::lock_guard<std::mutex> g(mu);
            for (size_t i = 0; i < n; i++) got.push_back(sx_records_id(recs, i));
          }
          sx_records_free(recs);
          if (!n) return;
          (void)sx_cursor_remaining(cur);
        }
      });
    for (auto &th : ts) th.join();
    EXPECT_EQ(other.load(), 0);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got.size(), 3000u);
    EXPECT_EQ(std::unique(got.begin(), got.end()), got.end());  // none twice
    EXPECT_EQ(sx_cursor_remaining(cur), 0u);
    sx_cursor_free(cur);
  }
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
}

TEST_P(Both, CursorOnWriteSessionSkipsDeletesAndSeesUpdates) {
  TmpDir t("ops_wcursor");
  sx_db *db = Open(t.db);
  Fill(db, "c", 300, GetParam());
  sx_error err = SX_ERROR_INIT;
  sx_write *w;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK);
  sx_collection *c;
  ASSERT_EQ(sx_write_collection(w, "c", &c, &err), SX_OK);
  sx_cursor *cur;
  ASSERT_EQ(sx_collection_cursor(c, nullptr, &cur, &err), SX_OK);
  // Delete a whole batch's worth at the front (id0..id1xx sort first) and update one.
  std::vector<std::string> ids;
  for (int i = 0; i < 300; i++) ids.push_back(Id(i));
  std::sort(ids.begin(), ids.end());
  std::vector<const char *> del;
  for (int i = 0; i < 50; i++) del.push_back(ids[i].c_str());
  ASSERT_EQ(sx_write_delete(w, "c", del.size(), del.data(), nullptr, &err), SX_OK);
  std::vector<float> nv(kDim, 0.5f);
  const char *up[] = {ids[100].c_str()};
  const char *meta[] = {"{\"new\":true}"};
  ASSERT_EQ(sx_write_upsert(w, "c", 1, up, nv.data(), kDim, meta, &err), SX_OK) << err.message;
  const char *fresh[] = {"a-new-id"};
  ASSERT_EQ(sx_write_upsert(w, "c", 1, fresh, nv.data(), kDim, nullptr, &err), SX_OK);
  size_t seen = 0;
  bool first = true, updated = false;
  for (;;) {
    sx_records *recs;
    ASSERT_EQ(sx_cursor_next(cur, 20, &recs, &err), SX_OK) << err.message;
    size_t n = sx_records_count(recs);
    if (first && n) {
      EXPECT_EQ(std::string(sx_records_id(recs, 0)), ids[50]);  // the deleted batch skipped
      first = false;
    }
    for (size_t i = 0; i < n; i++) {
      if (ids[100] == sx_records_id(recs, i)) {
        updated = true;
        EXPECT_EQ(sx_records_vector(recs, i)[0], 0.5f);
        EXPECT_STREQ(sx_records_metadata(recs, i), "{\"new\":true}");
      }
    }
    seen += n;
    sx_records_free(recs);
    if (!n) break;
  }
  EXPECT_EQ(seen, 250u);
  EXPECT_TRUE(updated);
  ASSERT_EQ(sx_write_abort(w), SX_OK);
  sx_records *recs = nullptr;
  EXPECT_EQ(sx_cursor_next(cur, 20, &recs, &err), SX_CLOSED);
  sx_cursor_free(cur);
  sx_collection_free(c);
  sx_write_free(w);
  sx_db_free(db);
}

INSTANTIATE_TEST_SUITE_P(Index, Both, ::testing::Values(SX_INDEX_FLAT, SX_INDEX_HNSW));

struct Progress {
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  sx_cancel *cancel_at_first = nullptr;
  static void Fn(void *ctx, uint64_t done, uint64_t total) {
    auto *p = static_cast<Progress *>(ctx);
    p->calls.push_back({done, total});
    if (p->cancel_at_first) sx_cancel_set(p->cancel_at_first);
  }
};

TEST(Backup, ConsistentWhileAWriterCommits) {
  TmpDir t("ops_backup");
  sx_db *db = Open(t.db);
  Fill(db, "c", 3000, SX_INDEX_HNSW);
  Fill(db, "f", 500, SX_INDEX_FLAT);
  // A writer adds batches of 10 (so every committed count is a multiple of 10) while
  // backups run; each backup must hold exactly some committed state.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    sx_error err = SX_ERROR_INIT;
    for (int b = 0; !stop; b++) {
      sx_write *w;
      if (sx_write_begin(db, 1000, &w, &err) != SX_OK) continue;
      std::vector<std::string> ids;
      std::vector<const char *> idp;
      std::vector<float> vecs;
      for (int i = 0; i < 10; i++) {
        ids.push_back("w" + std::to_string(b) + "-" + std::to_string(i));
        auto v = Vec(b * 10 + i);
        vecs.insert(vecs.end(), v.begin(), v.end());
      }
      for (auto &s : ids) idp.push_back(s.c_str());
      EXPECT_EQ(sx_write_upsert(w, "f", 10, idp.data(), vecs.data(), kDim, nullptr, &err), SX_OK);
      EXPECT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
      sx_write_free(w);
    }
  });
  for (int i = 0; i < 5; i++) {
    std::string dest = t.path(("b" + std::to_string(i) + ".sx").c_str());
    Progress prog;
    sx_backup_options bo = SX_BACKUP_OPTIONS_INIT;
    bo.progress = Progress::Fn;
    bo.progress_ctx = &prog;
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_backup(db, dest.c_str(), &bo, &err), SX_OK) << err.message;
    ASSERT_FALSE(prog.calls.empty());
    EXPECT_EQ(prog.calls.back().first, prog.calls.back().second);
    for (size_t k = 1; k < prog.calls.size(); k++)
      EXPECT_GT(prog.calls[k].first, prog.calls[k - 1].first);
    EXPECT_FALSE(Exists(dest + "-wal"));
    sx_db *b = Open(dest);
    EXPECT_EQ(sx_db_check(b, &err), SX_OK) << err.message;
    EXPECT_EQ(Count(b, "c"), 3000u);
    uint64_t nf = Count(b, "f");
    EXPECT_EQ(nf % 10, 0u) << nf;
    EXPECT_GE(nf, 500u);
    sx_read *r;
    sx_collection *c = ReadView(b, "c", &r);
    EXPECT_EQ(Walk(c, nullptr, 500).size(), 3000u);
    sx_collection_free(c);
    sx_read_free(r);
    sx_db_free(b);
  }
  stop = true;
  writer.join();
  sx_db_free(db);
}

TEST(Backup, DestinationRulesAndCancel) {
  TmpDir t("ops_backup_rules");
  sx_db *db = Open(t.db);
  Fill(db, "c", 30000, SX_INDEX_FLAT);  // several batches of pages
  sx_error err = SX_ERROR_INIT;
  std::string dest = t.path("b.sx");
  EXPECT_EQ(sx_db_backup(db, t.db.c_str(), nullptr, &err), SX_INVALID_ARGUMENT) << err.message;
  EXPECT_EQ(sx_db_backup(db, "", nullptr, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_db_backup(db, nullptr, nullptr, &err), SX_INVALID_ARGUMENT);
  sx_backup_options bad = SX_BACKUP_OPTIONS_INIT;
  bad.version = 99;
  EXPECT_EQ(sx_db_backup(db, dest.c_str(), &bad, &err), SX_INVALID_ARGUMENT);

  // Cancelled between pages: nothing at the destination, no temporary file left.
  sx_cancel *cancel;
  ASSERT_EQ(sx_cancel_new(&cancel, &err), SX_OK);
  Progress prog;
  prog.cancel_at_first = cancel;
  sx_backup_options bo = SX_BACKUP_OPTIONS_INIT;
  bo.progress = Progress::Fn;
  bo.progress_ctx = &prog;
  bo.cancel_token = cancel;
  // Enough pages for two batches.
  EXPECT_EQ(sx_db_backup(db, dest.c_str(), &bo, &err), SX_CANCELLED) << err.message;
  EXPECT_EQ(prog.calls.size(), 1u);
  EXPECT_FALSE(Exists(dest));
  EXPECT_EQ(sx_db_backup(db, dest.c_str(), &bo, &err), SX_CANCELLED);  // still set
  sx_cancel_reset(cancel);
  bo.progress = nullptr;
  ASSERT_EQ(sx_db_backup(db, dest.c_str(), &bo, &err), SX_OK) << err.message;
  bo.cancel_token = nullptr;
  sx_cancel_free(cancel);
  // Only the backup and the database's own files are in the directory.
  std::string ls = "ls " + std::string(t.dir) + " | grep -q tmp";
  EXPECT_NE(system(ls.c_str()), 0);

  EXPECT_EQ(sx_db_backup(db, dest.c_str(), nullptr, &err), SX_EXISTS);
  // A stale WAL beside the destination is refused, and removed when overwriting.
  sx_db *b = Open(dest);
  Fill(b, "extra", 10, SX_INDEX_FLAT);  // its WAL now holds this commit
  sx_db_free(b);
  if (!Exists(dest + "-wal")) GTEST_SKIP() << "close checkpointed the WAL away";
  bo.overwrite = 1;
  ASSERT_EQ(sx_db_backup(db, dest.c_str(), &bo, &err), SX_OK) << err.message;
  EXPECT_FALSE(Exists(dest + "-wal"));
  b = Open(dest);
  sx_read *r;
  ASSERT_EQ(sx_read_begin(b, &r, &err), SX_OK);
  sx_collection *c = nullptr;
  EXPECT_EQ(sx_read_collection(r, "extra", &c, &err), SX_NOT_FOUND);
  sx_read_free(r);
  sx_db_free(b);
  sx_db_free(db);
}

// A destination that is not a regular file is refused, even when overwriting (a rename
// over it once replaced the device node, the FIFO, or the symlink itself); a symlink to
// a file has the file replaced and stays a link.
TEST(Backup, DestinationKinds) {
  TmpDir t("ops_backup_kinds");
  sx_db *db = Open(t.db);
  Fill(db, "c", 100, SX_INDEX_FLAT);
  sx_error err = SX_ERROR_INIT;
  sx_backup_options bo = SX_BACKUP_OPTIONS_INIT;
  bo.overwrite = 1;
  std::string fifo = t.path("fifo"), dir = t.path("dir"), dev = t.path("null");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  std::vector<std::string> dests = {fifo, dir};
  // A character device of our own (as /dev/null is), where the machine lets us make one.
  if (mknod(dev.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0) dests.push_back(dev);
  for (const std::string &d : dests) {
    EXPECT_EQ(sx_db_backup(db, d.c_str(), &bo, &err), SX_INVALID_ARGUMENT) << d;
    EXPECT_NE(strstr(err.message, "is not a regular file"), nullptr) << err.message;
    EXPECT_EQ(sx_db_backup(db, d.c_str(), nullptr, &err), SX_INVALID_ARGUMENT) << d;
  }
  struct stat st;
  ASSERT_EQ(stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  if (dests.size() == 3) {
    ASSERT_EQ(stat(dev.c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
  // Through a symlink: the file it names is replaced, the link stays.
  std::string real = t.path("real.sx"), link = t.path("link.sx");
  ASSERT_EQ(sx_db_backup(db, real.c_str(), nullptr, &err), SX_OK) << err.message;
  ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
  Fill(db, "d", 10, SX_INDEX_FLAT);
  ASSERT_EQ(sx_db_backup(db, link.c_str(), &bo, &err), SX_OK) << err.message;
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  sx_db *b = Open(real);
  sx_read *r;
  ASSERT_EQ(sx_read_begin(b, &r, &err), SX_OK);
  sx_collection *c = nullptr;
  EXPECT_EQ(sx_read_collection(r, "d", &c, &err), SX_OK) << err.message;  // the new backup
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(b);
  sx_db_free(db);
}

// Overwriting a database that a handle has open (in this process or another, by its
// path or through a symlink) is BUSY and changes nothing: removing its WAL under it
// once lost the commits in that WAL. Once every handle is gone, the overwrite goes on.
TEST(Backup, OverwritingADatabaseAHandleHasOpenIsBusy) {
  TmpDir t("ops_backup_open");
  sx_db *db = Open(t.db);
  Fill(db, "c", 100, SX_INDEX_FLAT);
  sx_error err = SX_ERROR_INIT;
  std::string dest = t.path("b.sx"), link = t.path("link.sx");
  ASSERT_EQ(sx_db_backup(db, dest.c_str(), nullptr, &err), SX_OK) << err.message;
  ASSERT_EQ(symlink(dest.c_str(), link.c_str()), 0);
  sx_backup_options bo = SX_BACKUP_OPTIONS_INIT;
  bo.overwrite = 1;
  auto has_extra = [&](sx_db *h) {
    sx_read *r = nullptr;
    sx_collection *c = nullptr;
    EXPECT_EQ(sx_read_begin(h, &r, &err), SX_OK) << err.message;
    int st = sx_read_collection(r, "extra", &c, &err);
    sx_collection_free(c);
    sx_read_free(r);
    return st == SX_OK;
  };

  // A handle in this process, with a commit in its WAL.
  sx_db *b = Open(dest);
  Fill(b, "extra", 10, SX_INDEX_FLAT);
  for (const std::string &d : {dest, link}) {
    EXPECT_EQ(sx_db_backup(db, d.c_str(), &bo, &err), SX_BUSY) << d;
    EXPECT_NE(strstr(err.message, "is a database open in another handle"), nullptr) << err.message;
    EXPECT_NE(strstr(err.message, "b.sx"), nullptr) << err.message;
  }
  EXPECT_TRUE(Exists(dest + "-shm"));
  EXPECT_TRUE(has_extra(b));
  sx_db_free(b);

  // A handle in another process, which holds it until it is killed.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sx_db *h = nullptr;
    sx_error e = SX_ERROR_INIT;
    char ok = sx_db_open(&h, dest.c_str(), nullptr, &e) == SX_OK ? 'y' : 'n';
    if (write(ready[1], &ok, 1) != 1) _exit(2);
    for (;;) pause();
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  EXPECT_EQ(ok, 'y');
  EXPECT_EQ(sx_db_backup(db, dest.c_str(), &bo, &err), SX_BUSY) << err.message;
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);

  // Nobody has it open: the backup replaces it, the old commit goes with its WAL.
  ASSERT_EQ(sx_db_backup(db, dest.c_str(), &bo, &err), SX_OK) << err.message;
  b = Open(dest);
  EXPECT_FALSE(has_extra(b));
  sx_db_free(b);
  sx_db_free(db);
}

// A handle that opens the destination while a backup overwrites it is never lost:
// either the backup sees it (BUSY) or the handle opens the new file. Once the backup
// removed the WAL and wal-index under a handle that was half open (holding the old
// file, or a wal-index no later opener would find), and that handle's commits
// vanished. A child opens the destination, commits, and checks that a second handle,
// opened while the first is still open, sees the commit; the parent overwrites it
// with backups all the while.
TEST(Backup, AHandleOpeningTheDestinationMeanwhileIsNeverLost) {
  TmpDir t("ops_backup_race");
  sx_db *db = Open(t.db);
  Fill(db, "c", 20, SX_INDEX_FLAT);
  sx_error err = SX_ERROR_INIT;
  std::string dest = t.path("b.sx");
  ASSERT_EQ(sx_db_backup(db, dest.c_str(), nullptr, &err), SX_OK) << err.message;
  const int kIters = 400;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Exit status: 0, or 10 + the step that failed (the message on stderr).
    for (int it = 0; it < kIters; it++) {
      sx_db *h = nullptr, *h2 = nullptr;
      sx_error e = SX_ERROR_INIT;
      std::string name = "m" + std::to_string(it);
      sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
      co.dim = kDim;
      sx_write *w = nullptr;
      sx_read *r = nullptr;
      sx_collection *c = nullptr;
      int step = 0;
      if (sx_db_open(&h, dest.c_str(), nullptr, &e) != SX_OK) step = 1;
      if (!step && sx_write_begin(h, 30000, &w, &e) != SX_OK) step = 2;
      if (!step && sx_write_create_collection(w, name.c_str(), &co, &e) != SX_OK) step = 3;
      if (!step && sx_write_commit(w, &e) != SX_OK) step = 4;
      sx_write_free(w);
      if (!step && sx_db_open(&h2, dest.c_str(), nullptr, &e) != SX_OK) step = 5;
      if (!step && sx_read_begin(h2, &r, &e) != SX_OK) step = 6;
      if (!step && sx_read_collection(r, name.c_str(), &c, &e) != SX_OK) step = 7;
      sx_collection_free(c);
      sx_read_free(r);
      sx_db_free(h2);
      sx_db_free(h);
      if (step) {
        fprintf(stderr, "iteration %d, step %d: %s\n", it, step, e.message);
        _exit(10 + step);
      }
      usleep(200 + (unsigned)(it % 7) * 300);
    }
    _exit(0);
  }
  sx_backup_options bo = SX_BACKUP_OPTIONS_INIT;
  bo.overwrite = 1;
  int ok = 0, busy = 0, status = 0;
  while (waitpid(child, &status, WNOHANG) == 0) {
    int rc = sx_db_backup(db, dest.c_str(), &bo, &err);
    if (rc == SX_OK)
      ok++;
    else if (rc == SX_BUSY)
      busy++, usleep(50);
    else
      ADD_FAILURE() << "backup: " << sx_status_name(rc) << " " << err.message;
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  printf("backups over a destination opened %d times: %d replaced it, %d were refused\n", kIters,
         ok, busy);
  EXPECT_GT(ok, 0);
  sx_db *b = Open(dest);
  EXPECT_EQ(sx_db_check(b, &err), SX_OK) << err.message;
  sx_db_free(b);
  sx_db_free(db);
}

// A backup killed at any instant leaves either nothing or a whole backup at the
// destination.
TEST(Backup, KilledAtAnyInstantLeavesNothingOrAWholeBackup) {
  TmpDir t("ops_backup_kill");
  {
    sx_db *db = Open(t.db);
    Fill(db, "c", 20000, SX_INDEX_FLAT);
    sx_db_free(db);
  }
  int whole = 0, none = 0;
  for (int it = 0; it < 12; it++) {
    std::string dest = t.path(("k" + std::to_string(it) + ".sx").c_str());
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      sx_db *db = nullptr;
      sx_open_options o = SX_OPEN_OPTIONS_INIT;
      if (sx_db_open(&db, t.db.c_str(), &o, nullptr) != SX_OK) _exit(2);
      _exit(sx_db_backup(db, dest.c_str(), nullptr, nullptr) == SX_OK ? 0 : 1);
    }
    usleep(1000 * (it * 3));
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    if (!Exists(dest)) {
      none++;
      continue;
    }
    whole++;
    sx_db *b = Open(dest);
    sx_error err = SX_ERROR_INIT;
    EXPECT_EQ(sx_db_check(b, &err), SX_OK) << err.message;
    EXPECT_EQ(Count(b, "c"), 20000u);
    sx_db_free(b);
  }
  // Both outcomes are expected over the range of delays (not guaranteed on every
  // machine, so only reported).
  printf("killed backups: %d left nothing, %d whole\n", none, whole);
}

// ---- space accounting and compaction ------------------------------------------------

sx_space_stats Space(sx_db *db) {
  sx_read *r;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  sx_space_stats s = SX_SPACE_STATS_INIT;
  EXPECT_EQ(sx_read_space_get(r, &s, &err), SX_OK) << err.message;
  sx_read_free(r);
  return s;
}

// Deletes every id whose number is not a multiple of `keep_every`.
void DeleteMost(sx_db *db, const char *name, int n, int keep_every) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK);
  std::vector<std::string> ids;
  for (int i = 0; i < n; i++)
    if (i % keep_every) ids.push_back(Id(i));
  std::vector<const char *> p;
  for (auto &s : ids) p.push_back(s.c_str());
  ASSERT_EQ(sx_write_delete(w, name, p.size(), p.data(), nullptr, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  sx_write_free(w);
}

// Every survivor is there with its vector and metadata, and nothing else.
void ExpectSurvivors(sx_db *db, const char *name, int n, int keep_every) {
  sx_read *r;
  sx_collection *c = ReadView(db, name, &r);
  std::vector<std::string> want;
  for (int i = 0; i < n; i += keep_every) want.push_back(Id(i));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(Walk(c, nullptr, 333), want);
  sx_collection_free(c);
  sx_read_free(r);
}

TEST(Compact, ReclaimsDeletedSpaceAndKeepsEverySurvivor) {
  TmpDir t("ops_compact");
  const int n = 10000;
  sx_db *db = Open(t.db);
  Fill(db, "h", n, SX_INDEX_HNSW);
  Fill(db, "f", 3000, SX_INDEX_FLAT);
  DeleteMost(db, "h", n, 10);
  sx_space_stats before = Space(db);
  EXPECT_GT(before.reclaimable_bytes, before.live_bytes);
  // A reader from before the compaction keeps its snapshot.
  sx_read *old;
  sx_collection *oldc = ReadView(db, "h", &old);
  Progress prog;
  sx_compact_options co = SX_COMPACT_OPTIONS_INIT;
  co.timeout_ms = 1000;
  co.progress = Progress::Fn;
  co.progress_ctx = &prog;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_compact(db, &co, &err), SX_OK) << err.message;
  ASSERT_FALSE(prog.calls.empty());
  EXPECT_EQ(prog.calls.back().first, (uint64_t)(n / 10 + 3000));
  EXPECT_EQ(prog.calls.back().second, (uint64_t)(n / 10 + 3000));
  sx_space_stats after = Space(db);
  EXPECT_EQ(after.live_bytes, before.live_bytes);
  EXPECT_LT(after.reclaimable_bytes, before.reclaimable_bytes / 20);
  EXPECT_LT(after.collection_pages, before.collection_pages / 3);
  // The tail the old layout used is given back: fewer pages, and the file is cut at
  // the checkpoint (the old reader below still pins the snapshot before it).
  EXPECT_LT(after.page_count, before.page_count / 3);
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  ExpectSurvivors(db, "h", n, 10);
  ExpectSurvivors(db, "f", 3000, 1);
  uint64_t oldn = 0;
  EXPECT_EQ(sx_collection_count(oldc, &oldn, &err), SX_OK);
  EXPECT_EQ(oldn, (uint64_t)(n / 10));
  EXPECT_EQ(Walk(oldc, nullptr, 1000).size(), (size_t)(n / 10));
  sx_collection_free(oldc);
  sx_read_free(old);

  // The compacted collection's pages are those of a fresh database holding only the
  // survivors (within 1.2x), and its searches find the same neighbours.
  sx_db *fresh = Open(t.path("fresh.sx"));
  {
    sx_write *w;
    ASSERT_EQ(sx_write_begin(fresh, 1000, &w, &err), SX_OK);
    sx_collection_options o = SX_COLLECTION_OPTIONS_INIT;
    o.dim = kDim;
    ASSERT_EQ(sx_write_create_collection(w, "h", &o, &err), SX_OK);
    std::vector<std::string> ids;
    std::vector<const char *> idp, mp;
    std::vector<std::string> metas;
    std::vector<float> vecs;
    for (int i = 0; i < n; i += 10) {
      ids.push_back(Id(i));
      metas.push_back("{\"i\":" + std::to_string(i) + "}");
      auto v = Vec(i);
      vecs.insert(vecs.end(), v.begin(), v.end());
    }
    for (size_t i = 0; i < ids.size(); i++) {
      idp.push_back(ids[i].c_str());
      mp.push_back((i * 10) % 3 == 0 ? metas[i].c_str() : nullptr);
    }
    ASSERT_EQ(sx_write_upsert(w, "h", idp.size(), idp.data(), vecs.data(), kDim, mp.data(), &err),
              SX_OK);
    ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
    sx_write_free(w);
  }
  Fill(fresh, "f", 3000, SX_INDEX_FLAT);
  ASSERT_EQ(sx_db_checkpoint(fresh, 1000, &err), SX_OK);
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK);
  sx_space_stats fs = Space(fresh);
  struct stat st1, st2;
  ASSERT_EQ(stat(t.db.c_str(), &st1), 0);
  ASSERT_EQ(stat(t.path("fresh.sx").c_str(), &st2), 0);
  EXPECT_LE(st1.st_size * 10, st2.st_size * 12)
      << "compacted " << st1.st_size << " fresh " << st2.st_size;
  EXPECT_LE(Space(db).page_count * 10, fs.page_count * 12);
  sx_read *r1, *r2;
  sx_collection *c1 = ReadView(db, "h", &r1), *c2 = ReadView(fresh, "h", &r2);
  int same = 0, total = 0;
  for (int q = 0; q < 50; q++) {
    auto v = Vec(1000000 + q);
    sx_results *a, *b;
    ASSERT_EQ(sx_collection_search(c1, v.data(), kDim, 10, nullptr, &a, &err), SX_OK);
    ASSERT_EQ(sx_collection_search(c2, v.data(), kDim, 10, nullptr, &b, &err), SX_OK);
    std::set<std::string> sa, sb;
    for (size_t i = 0; i < sx_results_count(a, 0); i++) sa.insert(sx_results_id(a, 0, i));
    for (size_t i = 0; i < sx_results_count(b, 0); i++) sb.insert(sx_results_id(b, 0, i));
    for (auto &id : sb) same += (int)sa.count(id);
    total += (int)sb.size();
    sx_results_free(a);
    sx_results_free(b);
  }
  EXPECT_GE(same, total * 95 / 100);
  sx_collection_free(c1);
  sx_collection_free(c2);
  sx_read_free(r1);
  sx_read_free(r2);
  // The flat collection "f" is in db only: compare the HNSW collection's own pages.
  sx_collection *hc;
  sx_read *hr;
  hc = ReadView(db, "h", &hr);
  sx_collection_free(hc);
  sx_read_free(hr);
  printf(
      "pages: before %llu, after compaction %llu, a fresh database of the survivors %llu; "
      "file bytes after %lld, fresh %lld\n",
      (unsigned long long)before.page_count, (unsigned long long)after.page_count,
      (unsigned long long)fs.page_count, (long long)st1.st_size, (long long)st2.st_size);
  sx_db_free(fresh);
  sx_db_free(db);
}

// A database of page 0 alone (nothing ever created, or everything dropped and
// compacted) is two file pages: page 0 and the checksum page of its group. A
// checkpoint that cuts P to the latest commit's size keeps both; another handle and a
// reopen still read and check it.
TEST(Compact, ADatabaseOfPageZeroAloneStaysReadable) {
  TmpDir t("ops_page0_alone");
  sx_db *db = Open(t.db);
  sx_db *other = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_write_set_user_version(w, 7, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_compact(db, nullptr, &err), SX_OK) << err.message;
  struct stat st;
  ASSERT_EQ(stat(t.db.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 2 * 4096);
  for (sx_db *h : {db, other}) {
    EXPECT_EQ(sx_db_check(h, &err), SX_OK) << err.message;
    sx_read *r = nullptr;
    ASSERT_EQ(sx_read_begin(h, &r, &err), SX_OK) << err.message;
    sx_names *names = nullptr;
    ASSERT_EQ(sx_read_list_collections(r, &names, &err), SX_OK) << err.message;
    EXPECT_EQ(sx_names_count(names), 0u);
    sx_names_free(names);
    sx_read_free(r);
  }
  ASSERT_EQ(sx_db_close(other), SX_OK);
  ASSERT_EQ(sx_db_close(db), SX_OK);
  db = Open(t.db);
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  Fill(db, "g", 10, SX_INDEX_FLAT);
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_close(db), SX_OK);
}

TEST(Compact, CancelledOrBusyChangesNothing) {
  TmpDir t("ops_compact_cancel");
  sx_db *db = Open(t.db);
  Fill(db, "h", 5000, SX_INDEX_HNSW);
  DeleteMost(db, "h", 5000, 2);
  sx_space_stats before = Space(db);
  sx_cancel *cancel;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_cancel_new(&cancel, &err), SX_OK);
  Progress prog;
  prog.cancel_at_first = cancel;
  sx_compact_options co = SX_COMPACT_OPTIONS_INIT;
  co.cancel_token = cancel;
  co.progress = Progress::Fn;
  co.progress_ctx = &prog;
  EXPECT_EQ(sx_db_compact(db, &co, &err), SX_CANCELLED) << err.message;
  sx_space_stats mid = Space(db);
  EXPECT_EQ(mid.collection_pages, before.collection_pages);
  EXPECT_EQ(mid.reclaimable_bytes, before.reclaimable_bytes);
  ExpectSurvivors(db, "h", 5000, 2);
  sx_cancel_free(cancel);
  sx_write *w;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK);
  EXPECT_EQ(sx_db_compact(db, nullptr, &err), SX_BUSY);
  sx_write_free(w);
  sx_compact_options bad = SX_COMPACT_OPTIONS_INIT;
  bad.version = 7;
  EXPECT_EQ(sx_db_compact(db, &bad, &err), SX_INVALID_ARGUMENT);
  sx_space_stats sbad = SX_SPACE_STATS_INIT;
  sbad.version = 9;
  sx_read *r;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  EXPECT_EQ(sx_read_space_get(r, &sbad, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_read_space_get(r, nullptr, &err), SX_INVALID_ARGUMENT);
  sx_read_free(r);
  sx_db_free(db);
}

// A compaction killed at any instant leaves the database as it was before or after:
// it opens, passes its check and holds every survivor.
TEST(Compact, KilledAtAnyInstantLosesNothing) {
  TmpDir t("ops_compact_kill");
  const int n = 6000;
  {
    sx_db *db = Open(t.db);
    Fill(db, "h", n, SX_INDEX_HNSW);
    DeleteMost(db, "h", n, 3);
    sx_db_free(db);
  }
  int done = 0, killed = 0;
  for (int it = 0; it < 8; it++) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      sx_db *db = nullptr;
      sx_open_options o = SX_OPEN_OPTIONS_INIT;  // sync full
      if (sx_db_open(&db, t.db.c_str(), &o, nullptr) != SX_OK) _exit(2);
      _exit(sx_db_compact(db, nullptr, nullptr) == SX_OK ? 0 : 1);
    }
    usleep(useconds_t(150000 * it * it / 4));  // 0 to ~1.8 s: before, during and after
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) {
      EXPECT_EQ(WEXITSTATUS(st), 0);
      done++;
    } else {
      killed++;
    }
    sx_db *db = Open(t.db);
    sx_error err = SX_ERROR_INIT;
    EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
    ExpectSurvivors(db, "h", n, 3);
    sx_db_free(db);
  }
  printf("compactions: %d killed, %d finished\n", killed, done);
}

// Power cut at every sync of a compaction and the checkpoint that shrinks the file
// (sync=full), the unsynced writes then dropped or torn: the database opens, passes
// its check and holds every survivor, whether the compaction stood or not.
TEST(Compact, PowerLossAtEverySync) {
  TmpDir t("ops_compact_power");
  const int n = 1500;
  std::string base = t.path("base.sx");
  {
    sx_db *db = Open(base);
    Fill(db, "h", n, SX_INDEX_HNSW);
    Fill(db, "f", 300, SX_INDEX_FLAT);
    DeleteMost(db, "h", n, 3);
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK);
    sx_db_free(db);
  }
  auto run = [&](const std::string &path, sx__faultvfs *fv) {
    sx_open_options o = SX_OPEN_OPTIONS_INIT;  // sync full
    sx_db *db = nullptr;
    if (sx__db_open_vfs(&db, path.c_str(), &o, sx__faultvfs_vfs(fv), nullptr) != SX_OK) return;
    if (sx_db_compact(db, nullptr, nullptr) == SX_OK) sx_db_checkpoint(db, 1000, nullptr);
    sx_db_free(db);
  };
  auto copy = [&](const std::string &to) {
    std::string cmd = "cp " + base + " " + to;
    ASSERT_EQ(system(cmd.c_str()), 0);
  };
  uint64_t nsync;
  {
    std::string p = t.path("count.sx");
    copy(p);
    sx__faultvfs *fv = sx__faultvfs_new();
    run(p, fv);
    nsync = sx__faultvfs_count(fv, SX__IO_SYNC);
    sx__faultvfs_free(fv);
    struct stat a, b;
    ASSERT_EQ(stat(p.c_str(), &a), 0);
    ASSERT_EQ(stat(base.c_str(), &b), 0);
    EXPECT_LT(a.st_size, b.st_size / 2) << "the compaction run should shrink the file";
  }
  ASSERT_GT(nsync, 2u);
  int stood = 0, cases = 0;
  for (uint64_t k = 1; k <= nsync; k++) {
    for (int how : {SX__LOSS_DROP, SX__LOSS_TEAR}) {
      SCOPED_TRACE(testing::Message() << "power cut at sync " << k << " of " << nsync
                                      << (how == SX__LOSS_DROP ? " DROP" : " TEAR"));
      std::string p = t.path(("p" + std::to_string(k) + "-" + std::to_string(how) + ".sx").c_str());
      copy(p);
      sx__faultvfs *fv = sx__faultvfs_new();
      sx__faultvfs_crash_at_sync(fv, k);
      run(p, fv);
      ASSERT_EQ(sx__faultvfs_power_loss(fv, how, k), SX_OK);
      sx__faultvfs_free(fv);
      sx_db *db = Open(p);
      sx_error err = SX_ERROR_INIT;
      EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
      ExpectSurvivors(db, "h", n, 3);
      ExpectSurvivors(db, "f", 300, 1);
      stood += Space(db).reclaimable_bytes == 0;
      cases++;
      sx_db_free(db);
    }
  }
  printf(
      "power loss during compaction: %d cases over %llu syncs, %d with the compaction standing\n",
      cases, (unsigned long long)nsync, stood);
}

}  // namespace
