// The WAL gives its space back (sx_open_options.wal_size_limit): after a checkpoint
// has copied every frame into the database file, WAL files longer than the limit are
// cut to it while the database stays open; nothing is lost across a crash after the
// cut. Readers in other processes across the cut: test_multiproc.cc.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "sextant.h"
#include "testutil.h"
}
#include "testutil.hh"

namespace {

using sxt::TmpDir;

uint64_t FileSize(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (uint64_t)st.st_size : 0;
}

uint64_t WalBytes(const std::string &db) {
  return FileSize(db + "-wal") + FileSize(db + "-wal2");
}
uint64_t WalMax(const std::string &db) {
  return std::max(FileSize(db + "-wal"), FileSize(db + "-wal2"));
}

std::string Id(size_t i) {
  return "v" + std::to_string(i);
}

// Upserts vectors [from, from + n) of `all` (dim floats each) into flat collection
// "c" in one commit, creating it first when asked.
void Load(sx_db *db, const std::vector<float> &all, size_t dim, size_t from, size_t n,
          bool create) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 1000, &w, &err), SX_OK) << err.message;
  if (create) {
    sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
    co.dim = (uint32_t)dim;
    co.index = SX_INDEX_FLAT;
    ASSERT_EQ(sx_write_create_collection(w, "c", &co, &err), SX_OK) << err.message;
  }
  std::vector<std::string> ids;
  std::vector<const char *> idp;
  for (size_t i = 0; i < n; i++) ids.push_back(Id(from + i));
  for (auto &s : ids) idp.push_back(s.c_str());
  ASSERT_EQ(sx_write_upsert(w, "c", n, idp.data(), all.data() + from * dim, dim, nullptr, &err),
            SX_OK)
      << err.message;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
}

// Every one of the first n vectors is there, bit for bit.
void ExpectAll(sx_db *db, const std::vector<float> &all, size_t dim, size_t n) {
  sx_error err = SX_ERROR_INIT;
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK) << err.message;
  sx_collection *c = nullptr;
  ASSERT_EQ(sx_read_collection(r, "c", &c, &err), SX_OK) << err.message;
  uint64_t count = 0;
  ASSERT_EQ(sx_collection_count(c, &count, &err), SX_OK) << err.message;
  EXPECT_EQ(count, n);
  size_t bad = 0;
  for (size_t i = 0; i < n; i += 97) {
    sx_record *rec = nullptr;
    ASSERT_EQ(sx_collection_get(c, Id(i).c_str(), &rec, &err), SX_OK)
        << Id(i) << ": " << err.message;
    size_t d = 0;
    const float *v = sx_record_vector(rec, &d);
    if (d != dim || memcmp(v, all.data() + i * dim, dim * sizeof(float)) != 0) bad++;
    sx_record_free(rec);
  }
  EXPECT_EQ(bad, 0u) << "vectors differ from what was stored";
  sx_collection_free(c);
  sx_read_free(r);
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
}

sx_db *OpenLimit(const std::string &path, uint64_t limit, sx_sync sync = SX_SYNC_NORMAL) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = sync;
  o.wal_size_limit = limit;
  o.autocheckpoint_frames = 1u << 24;  // only explicit checkpoints
  o.wal_max_frames = 1u << 24;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_open(&db, path.c_str(), &o, &err), SX_OK) << err.message;
  return db;
}

TEST(WalSize, DefaultsAndOlderOptionVersions) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  EXPECT_EQ(o.version, 3u);
  EXPECT_EQ(o.wal_size_limit, 64ull << 20);
  sx_open_options o2;
  memset(&o2, 0xab, sizeof o2);
  ASSERT_EQ(sx_open_options_init(&o2, 2), SX_OK);
  EXPECT_EQ(o2.wal_size_limit, SX_WAL_SIZE_LIMIT_DEFAULT);
  // A version 2 struct ends at `threads`: the bytes after it are not read, and the
  // default limit applies (the load below leaves about 6 MB, under 64 MiB).
  TmpDir t("walsize-v2");
  sx_open_options *v2 =
      (sx_open_options *)malloc(offsetof(sx_open_options, threads) + sizeof(uint32_t));
  sx_open_options d = SX_OPEN_OPTIONS_INIT;
  memcpy(v2, &d, offsetof(sx_open_options, threads) + sizeof(uint32_t));
  v2->version = 2;
  v2->sync = SX_SYNC_OFF;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_open(&db, t.db.c_str(), v2, &err), SX_OK) << err.message;
  free(v2);
  const size_t dim = 128, n = 10000;
  auto all = sxt::Gen(7, n, dim);
  Load(db, all, dim, 0, n, true);
  uint64_t before = WalBytes(t.db);
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  EXPECT_EQ(WalBytes(t.db), before) << "a WAL under the default 64 MiB limit was cut";
  sx_db_free(db);
}

// The case: a bulk load leaves a WAL far past the limit; a checkpoint with
// no reader brings every WAL file to the limit or under it while the handle stays
// open, and the database goes on working (more commits, more checkpoints, a reopen).
TEST(WalSize, BulkLoadThenCheckpointCutsWalToLimit) {
  for (uint64_t limit : {uint64_t(4) << 20, uint64_t(0)}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    TmpDir t("walsize-bulk");
    sx_db *db = OpenLimit(t.db, limit);
    const size_t dim = 784, n = 12000;  // 37.6 MB of vectors, in one commit
    auto all = sxt::Gen(11, n, dim);
    Load(db, all, dim, 0, n / 2, true);
    Load(db, all, dim, n / 2, n / 2, false);
    ASSERT_GT(WalBytes(t.db), 30u << 20) << "the load should sit in the WAL";
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
    EXPECT_LE(FileSize(t.db + "-wal"), limit);
    EXPECT_LE(FileSize(t.db + "-wal2"), limit);
    sx_db_stats st = SX_DB_STATS_INIT;
    ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK) << err.message;
    EXPECT_EQ(st.wal_frames, 0u);
    ExpectAll(db, all, dim, n);
    // Commits after the cut start a new generation at the start of a file.
    auto more = sxt::Gen(12, 100, dim);
    std::vector<float> all2 = all;
    all2.insert(all2.end(), more.begin(), more.end());
    Load(db, all2, dim, n, 100, false);
    ExpectAll(db, all2, dim, n + 100);
    sx_db_free(db);
    db = OpenLimit(t.db, limit);
    ExpectAll(db, all2, dim, n + 100);
    sx_db_free(db);
  }
}

// A read session that reads WAL frames holds the cut back (its pages must stay
// mapped); once it ends, the next checkpoint cuts. A session that began after the
// checkpoint reads only the database file and does not hold it back.
TEST(WalSize, ReaderInTheWalHoldsTheCutBack) {
  TmpDir t("walsize-reader");
  const uint64_t limit = 1 << 20;
  sx_db *db = OpenLimit(t.db, limit);
  const size_t dim = 256, n = 8000;
  auto all = sxt::Gen(5, n, dim);
  Load(db, all, dim, 0, n, true);
  sx_error err = SX_ERROR_INIT;
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK) << err.message;  // reads the WAL
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  EXPECT_GT(WalMax(t.db), limit) << "cut under a read session that reads WAL frames";
  ExpectAll(db, all, dim, n);
  sx_read *later = nullptr;
  ASSERT_EQ(sx_read_begin(db, &later, &err), SX_OK) << err.message;  // reads P only
  sx_read_free(r);
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  EXPECT_LE(WalMax(t.db), limit) << "no reader in the WAL, yet not cut";
  sx_read_free(later);
  ExpectAll(db, all, dim, n);
  sx_db_free(db);
}

// A process that dies right after the cut, and after more commits behind it, loses
// nothing: recovery reads the database file and the new generation. Every sync level
// (a process crash keeps the page cache, so even sync=off must hold).
TEST(WalSize, CrashAfterCutLosesNothing) {
  for (sx_sync sync : {SX_SYNC_FULL, SX_SYNC_NORMAL, SX_SYNC_OFF}) {
    SCOPED_TRACE("sync " + std::to_string((int)sync));
    for (int more : {0, 1})
      for (uint64_t limit : {uint64_t(0), uint64_t(1) << 20}) {
        SCOPED_TRACE("more " + std::to_string(more) + " limit " + std::to_string(limit));
        TmpDir t("walsize-crash");
        const size_t dim = 200, n = 6000;
        auto all = sxt::Gen(21 + more, n + 50, dim);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
          sx_db *db = OpenLimit(t.db, limit, sync);
          sx_error err = SX_ERROR_INIT;
          Load(db, all, dim, 0, n, true);
          if (WalMax(t.db) <= limit) _exit(6);
          if (sx_db_checkpoint(db, 1000, &err) != SX_OK) _exit(3);
          if (WalMax(t.db) > limit) _exit(4);
          if (more) Load(db, all, dim, n, 50, false);
          _exit(::testing::Test::HasFailure() ? 5 : 0);  // no close: the process dies
        }
        int st = 0;
        ASSERT_EQ(waitpid(pid, &st, 0), pid);
        ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
        sx_db *db = OpenLimit(t.db, limit, sync);
        ExpectAll(db, all, dim, more ? n + 50 : n);
        sx_db_free(db);
      }
  }
}

}  // namespace
