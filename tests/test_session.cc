// Sessions through the public API: lifecycles, errors, snapshot isolation in one
// process, persistence across reopen, checkpoints under pinned snapshots.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "session/session.h"
#include "testutil.h"
#include "workload.h"
}
#include "testutil.hh"

namespace {

using sxt::TmpDir;

sx_db *Open(const std::string &path, sx_open_options *o = nullptr) {
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  int rc = sx_db_open(&db, path.c_str(), o, &err);
  EXPECT_EQ(rc, SX_OK) << err.message;
  return db;
}

TEST(Session, StatusNamesAreTheConformanceNames) {
  const char *want[] = {
      "OK",        "NOT_FOUND", "EXISTS", "INVALID_ARGUMENT", "DIMENSION_MISMATCH",
      "READ_ONLY", "BUSY",      "CLOSED", "MISUSE",           "CORRUPT",
      "IO",        "FULL",      "NOMEM",  "VERSION",          "CANCELLED"};
  for (int i = 0; i < SX_STATUS_COUNT; i++) EXPECT_STREQ(sx_status_name(i), want[i]);
  EXPECT_STREQ(sx_status_name(-1), "UNKNOWN");
  EXPECT_STREQ(sx_status_name(SX_STATUS_COUNT), "UNKNOWN");
}

TEST(Session, CommitThenReadAcrossReopen) {
  TmpDir t("sess");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  for (uint64_t g = 1; g <= 30; g++)
    ASSERT_EQ(wl_commit(db, g, 40, 5, 7, 1000, &err), SX_OK) << err.message;
  uint64_t g = 0;
  char why[256];
  EXPECT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 30u);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
  db = Open(t.db);
  EXPECT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 30u);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}

TEST(Session, SnapshotIsStableAcrossCommitsAndCheckpoints) {
  TmpDir t("snap");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 8;  // checkpoint nearly every commit
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(db, 1, 20, 20, 1, 1000, &err), SX_OK);
  sx_read *old = nullptr;
  ASSERT_EQ(sx_read_begin(db, &old, &err), SX_OK);
  for (uint64_t g = 2; g <= 60; g++)
    ASSERT_EQ(wl_commit(db, g, 20, 6, 3, 1000, &err), SX_OK) << err.message;
  uint64_t g = 0;
  char why[256];
  EXPECT_EQ(wl_verify(old, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 1u);
  sx_db_stats st = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  EXPECT_EQ(st.readers, 1u);
  EXPECT_GT(st.wal_frames, st.wal_backfilled) << "checkpoint must stop at the pinned snapshot";
  sx_read_free(old);
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  EXPECT_EQ(st.wal_frames, st.wal_backfilled) << "unpinned: checkpoint copies everything";
  EXPECT_GE(st.checkpoints, 1u);
  // The WAL restarts at the next commit and everything is still there.
  ASSERT_EQ(wl_commit(db, 61, 20, 6, 3, 1000, &err), SX_OK);
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  EXPECT_LT(st.wal_frames, 10u);
  EXPECT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 61u);
  sx_db_free(db);
  db = Open(t.db);
  EXPECT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 61u);
  sx_db_free(db);
}

TEST(Session, ThreadsShareOneSnapshotWhileWriterCommits) {
  TmpDir t("thr");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 16;
  o.sync = SX_SYNC_NORMAL;
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(db, 1, 16, 16, 1, 1000, &err), SX_OK);
  sx_read *shared = nullptr;
  ASSERT_EQ(sx_read_begin(db, &shared, &err), SX_OK);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; i++)
    ts.emplace_back([&] {
      while (!stop) {
        uint64_t g;
        if (wl_verify(shared, &g, nullptr, 0) || g != 1) bad++;
        if (wl_verify_db(db, &g, nullptr, 0)) bad++;
      }
    });
  for (uint64_t g = 2; g <= 200; g++) ASSERT_EQ(wl_commit(db, g, 16, 4, 9, 1000, &err), SX_OK);
  stop = true;
  for (auto &th : ts) th.join();
  EXPECT_EQ(bad.load(), 0);
  sx_read_free(shared);
  sx_db_free(db);
}

TEST(Session, CloseEndsSessionsAndIsIdempotent) {
  TmpDir t("close");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_read *r = nullptr;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  ASSERT_EQ(sx_write_set_user_version(w, 5, &err), SX_OK);
  EXPECT_EQ(sx_db_close(db), SX_OK);
  EXPECT_EQ(sx_db_close(db), SX_OK);
  uint64_t v;
  EXPECT_EQ(sx_read_user_version(r, &v, &err), SX_CLOSED);
  EXPECT_STREQ(err.message, "read session has ended");
  EXPECT_EQ(sx_write_commit(w, &err), SX_CLOSED);
  EXPECT_EQ(sx_write_abort(w), SX_CLOSED);
  sx_read *r2 = nullptr;
  sx_write *w2 = nullptr;
  EXPECT_EQ(sx_read_begin(db, &r2, &err), SX_CLOSED);
  EXPECT_EQ(r2, nullptr);
  EXPECT_EQ(sx_write_begin(db, 0, &w2, &err), SX_CLOSED);
  EXPECT_EQ(w2, nullptr);
  // Frees in any order: the database before its sessions.
  sx_db_free(db);
  sx_write_free(w);
  sx_read_free(r);
  sx_read_free(nullptr);
  sx_db_free(nullptr);
  // The aborted write left no trace.
  db = Open(t.db);
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  ASSERT_EQ(sx_read_user_version(r, &v, &err), SX_OK);
  EXPECT_EQ(v, 0u);
  sx_read_free(r);
  sx_db_free(db);
}

TEST(Session, SessionsEndOnceAndReportClosed) {
  TmpDir t("end");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  ASSERT_EQ(sx_write_set_user_version(w, 9, &err), SX_OK);
  uint64_t v = 0;
  ASSERT_EQ(sx_write_user_version(w, &v, &err), SX_OK);
  EXPECT_EQ(v, 9u);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK);
  EXPECT_EQ(sx_write_commit(w, &err), SX_CLOSED);
  EXPECT_EQ(sx_write_abort(w), SX_CLOSED);
  sx_write_free(w);
  sx_read *r = nullptr;
  ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  EXPECT_EQ(sx_read_end(r), SX_OK);
  EXPECT_EQ(sx_read_end(r), SX_OK);
  EXPECT_EQ(sx_read_user_version(r, &v, &err), SX_CLOSED);
  sx_read_free(r);
  sx_db_free(db);
}

TEST(Session, WriterExclusionAndTimeout) {
  TmpDir t("busy");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr, *w2 = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK);
  EXPECT_EQ(sx_write_begin(db, 0, &w2, &err), SX_BUSY);
  EXPECT_EQ(sx_write_begin(db, 50, &w2, &err), SX_BUSY);
  // A waiter gets the lock once the holder commits.
  std::thread th([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    sx_error e2 = SX_ERROR_INIT;
    EXPECT_EQ(sx_write_commit(w, &e2), SX_OK);
  });
  EXPECT_EQ(sx_write_begin(db, 5000, &w2, &err), SX_OK) << err.message;
  th.join();
  sx_write_free(w);
  sx_write_free(w2);
  sx_db_free(db);
}

TEST(Session, ReadOnlyAndMissing) {
  TmpDir t("ro");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.read_only = 1;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_NOT_FOUND);
  EXPECT_NE(std::string(err.message).find(t.db), std::string::npos) << err.message;
  EXPECT_EQ(db, nullptr);
  sx_db_free(Open(t.db));
  db = Open(t.db, &o);
  sx_write *w = nullptr;
  EXPECT_EQ(sx_write_begin(db, 0, &w, &err), SX_READ_ONLY);
  EXPECT_EQ(sx_db_checkpoint(db, 0, &err), SX_READ_ONLY);
  sx_read *r = nullptr;
  EXPECT_EQ(sx_read_begin(db, &r, &err), SX_OK);
  sx_read_free(r);
  sx_db_free(db);
}

TEST(Session, BadFilesAreCorruptOrVersion) {
  TmpDir t("bad");
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  FILE *f = fopen(t.db.c_str(), "wb");
  fputs("this is not a database, just some text that is long enough to have a header........", f);
  fclose(f);
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), nullptr, &err), SX_CORRUPT);
  EXPECT_NE(std::string(err.message).find("bad magic"), std::string::npos) << err.message;
  remove(t.db.c_str());
  sx_db_free(Open(t.db));
  // Bump the format version field (offset 16).
  f = fopen(t.db.c_str(), "r+b");
  fseek(f, 16, SEEK_SET);
  uint32_t v = 7;
  fwrite(&v, 4, 1, f);
  fclose(f);
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), nullptr, &err), SX_VERSION);
  EXPECT_NE(std::string(err.message).find("format version 7"), std::string::npos) << err.message;
  // Truncated header.
  f = fopen(t.db.c_str(), "wb");
  fputs("Sextant", f);
  fclose(f);
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), nullptr, &err), SX_CORRUPT);
  // An empty file becomes a new database (unless opened read-only).
  f = fopen(t.db.c_str(), "wb");
  fclose(f);
  sx_open_options ro = SX_OPEN_OPTIONS_INIT;
  ro.read_only = 1;
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), &ro, &err), SX_CORRUPT);
  ASSERT_EQ(sx_db_open(&db, t.db.c_str(), nullptr, &err), SX_OK) << err.message;
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
  // A database in a directory that does not exist cannot be created.
  EXPECT_EQ(sx_db_open(&db, (std::string(t.dir) + "/no/such/dir/x.sx").c_str(), nullptr, &err),
            SX_IO);
  EXPECT_NE(std::string(err.message).find("directory does not exist"), std::string::npos)
      << err.message;
}

TEST(Session, OptionsAreChecked) {
  TmpDir t("opt");
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  sx_open_options o;
  EXPECT_EQ(sx_open_options_init(&o, 99), SX_INVALID_ARGUMENT);
  ASSERT_EQ(sx_open_options_init(&o, SX_OPEN_OPTIONS_VERSION), SX_OK);
  o.page_size = 5000;
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("5000"), std::string::npos);
  o.page_size = 0;
  o.sync = (sx_sync)9;
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_db_open(&db, "", nullptr, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(sx_db_open(nullptr, t.db.c_str(), nullptr, &err), SX_INVALID_ARGUMENT);
  o.sync = SX_SYNC_FULL;
  o.threads = 65;
  EXPECT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("65"), std::string::npos) << err.message;
  EXPECT_EQ(db, nullptr);
}

// A caller compiled against version 1 of sx_open_options passes a struct that ends
// before `threads`: it is read only that far (whatever lies past it is not a field).
TEST(Session, VersionOneOpenOptionsStillOpen) {
  TmpDir t("opt1");
  struct {
    sx_open_options v1; /* only its version-1 fields are set */
  } o;
  memset(&o, 0, sizeof o);
  ASSERT_EQ(sx_open_options_init(&o.v1, 1), SX_OK);
  EXPECT_EQ(o.v1.version, 1u);
  o.v1.page_size = 8192;
  o.v1.threads = 999; /* past a version-1 struct: must be ignored */
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_open(&db, t.db.c_str(), &o.v1, &err), SX_OK) << err.message;
  sx_db_stats st = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK) << err.message;
  EXPECT_EQ(st.page_size, 8192u);
  sx_db_free(db);
}

}  // namespace

// CRC32C (pager/cksum.c): the standard check value, and the table and the CPU
// instruction agree for every length, alignment and starting value, and on the page
// checksum.
TEST(Session, Crc32cKnownValueAndEveryImplementationAgrees) {
  // 0: the fastest the CPU has (VPCLMULQDQ folding for pages), 1: the crc32
  // instruction, 2: the table. Where the CPU lacks one, its mode runs the next.
  auto mode = [](int m) { sx__crc32c_mode_for_test(m); };
  for (int m : {0, 1, 2}) {
    mode(m);
    EXPECT_EQ(sx__crc32c(0, "123456789", 9), 0xe3069283u) << m;
    EXPECT_EQ(sx__crc32c(sx__crc32c(0, "1234", 4), "56789", 5), 0xe3069283u) << m;
  }
  std::vector<uint8_t> page(65536 + 64);
  uint64_t st = 5;
  for (auto &b : page) b = (uint8_t)sx_test_splitmix64(&st);
  for (int t = 0; t < 400; t++) {
    size_t n = (size_t)(t < 40 ? 240 + t : sx_test_splitmix64(&st) % 8192);
    size_t at = (size_t)(sx_test_splitmix64(&st) % 64);
    uint32_t c0 = (uint32_t)sx_test_splitmix64(&st), want = 0;
    for (int m : {2, 1, 0}) {
      mode(m);
      uint32_t got = sx__crc32c(c0, page.data() + at, n);
      if (m == 2) want = got;
      EXPECT_EQ(got, want) << "length " << n << " at " << at << " mode " << m;
    }
  }
  // Page checksums at every page size, over random pages and pages of one repeated
  // byte (zeros and ones fold to special values), from aligned and unaligned buffers.
  for (uint32_t ps : {4096u, 8192u, 16384u, 32768u, 65536u}) {
    for (int kind = 0; kind < 4; kind++) {
      std::vector<uint8_t> pg(ps + 1);
      if (kind < 2) {
        for (auto &b : pg) b = (uint8_t)sx_test_splitmix64(&st);
      } else {
        std::fill(pg.begin(), pg.end(), kind == 2 ? 0x00 : 0xff);
      }
      const uint8_t *at = pg.data() + (kind == 1 ? 1 : 0);
      uint32_t want = 0;
      for (int m : {2, 1, 0}) {
        mode(m);
        uint32_t got = sx__page_cksum(7, at, ps);
        if (m == 2) want = got;
        EXPECT_EQ(got, want) << ps << " kind " << kind << " mode " << m;
      }
    }
    mode(0);
    uint32_t want = sx__page_cksum(7, page.data(), ps);
    EXPECT_NE(sx__page_cksum(8, page.data(), ps), want) << "the page number counts";
    for (uint32_t off : {0u, 3u, ps / 4 - 1, ps / 4, ps / 2 + 17, ps - 16, ps - 1}) {
      page[off] ^= 1;
      EXPECT_NE(sx__page_cksum(7, page.data(), ps), want) << "byte " << off << " counts";
      page[off] ^= 1;
    }
  }
  mode(0);
}

// Savepoints (pager/txn.c) over a transaction that already holds many dirty pages:
// a rollback returns exactly the pages the savepoint touched (rewritten ones to
// their image at the savepoint, new ones gone, the page count back), even when the
// page table grew and was rehashed meanwhile; a release keeps everything; and a
// long run of savepoints, one per small change as upserts make them, each touching a
// few pages, commits the right bytes.
TEST(Session, SavepointsRollBackAndReleaseOnlyWhatTheyTouched) {
  TmpDir t("savepoint");
  sx__pager_config cfg = {};
  cfg.create = 1;
  cfg.sync = SX_SYNC_OFF;
  sx__pager *p = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__pager_open(t.db.c_str(), &cfg, &p, &err), SX_OK) << err.message;
  sx__txn *tx = nullptr;
  ASSERT_EQ(sx__pager_write_begin(p, -1, nullptr, &tx, &err), SX_OK) << err.message;
  const uint32_t ps = sx__pager_page_size(p);
  std::vector<uint32_t> pages;
  std::vector<uint8_t> want;  // the byte each page is filled with
  auto fill = [&](uint32_t pg, uint8_t b) {
    uint8_t *w = nullptr;
    ASSERT_EQ(sx__txn_write(tx, pg, &w, &err), SX_OK) << err.message;
    memset(w, b, ps);
  };
  auto expect_pages = [&](const char *where) {
    for (size_t i = 0; i < pages.size(); i++) {
      const uint8_t *r = nullptr;
      ASSERT_EQ(sx__txn_read(tx, pages[i], &r, &err), SX_OK) << err.message;
      ASSERT_EQ(r[0], want[i]) << where << ": page " << pages[i];
      ASSERT_EQ(r[ps - 1], want[i]) << where << ": page " << pages[i];
    }
  };
  for (int i = 0; i < 300; i++) {  // dirty pages before any savepoint
    uint32_t pg;
    uint8_t *w;
    ASSERT_EQ(sx__txn_alloc(tx, &pg, &w, &err), SX_OK) << err.message;
    memset(w, i % 251 + 1, ps);
    pages.push_back(pg);
    want.push_back((uint8_t)(i % 251 + 1));
  }
  const uint32_t n0 = sx__txn_npages(tx);
  // Rolled back: 40 rewritten pages and 700 new ones (the table rehashes twice).
  sx__txn_savepoint(tx);
  for (int i = 0; i < 40; i++) fill(pages[(size_t)i * 7], 0xEE);
  for (int i = 0; i < 700; i++) {
    uint32_t pg;
    uint8_t *w;
    ASSERT_EQ(sx__txn_alloc(tx, &pg, &w, &err), SX_OK) << err.message;
    memset(w, 0xDD, ps);
  }
  sx__txn_rollback(tx);
  EXPECT_EQ(sx__txn_npages(tx), n0);
  ASSERT_NO_FATAL_FAILURE(expect_pages("after the rollback"));
  // Released, one small change at a time (as single upserts make them), some rolled
  // back in between.
  uint64_t rng = 3;
  for (int round = 0; round < 2000; round++) {
    sx__txn_savepoint(tx);
    size_t i = (size_t)(sx_test_splitmix64(&rng) % pages.size());
    uint8_t b = (uint8_t)(round % 200 + 20);
    fill(pages[i], b);
    uint32_t pg = 0;
    uint8_t *w;
    ASSERT_EQ(sx__txn_alloc(tx, &pg, &w, &err), SX_OK) << err.message;
    memset(w, b, ps);
    if (round % 5 == 4) {
      sx__txn_rollback(tx);
    } else {
      sx__txn_release(tx);
      want[i] = b;
      pages.push_back(pg);
      want.push_back(b);
    }
  }
  ASSERT_NO_FATAL_FAILURE(expect_pages("after the run of savepoints"));
  ASSERT_EQ(sx__txn_commit(tx, &err), SX_OK) << err.message;
  sx__snap snap;
  ASSERT_EQ(sx__pager_snap_begin(p, &snap, &err), SX_OK) << err.message;
  for (size_t i = 0; i < pages.size(); i++) {
    const uint8_t *r = nullptr;
    ASSERT_EQ(sx__pager_snap_page(p, &snap, pages[i], &r, &err), SX_OK) << err.message;
    ASSERT_EQ(r[ps / 2], want[i]) << "committed page " << pages[i];
  }
  sx__pager_snap_end(p, &snap);
  sx__pager_close(p);
}

// The WAL's running checksum over page images (pager/cksum.c): the SIMD form (each
// word times a constant weight) gives the values of the defining recurrence, for
// every length and starting state, and so does the portable loop.
TEST(Session, WalChecksumOfLongRunsMatchesTheRecurrence) {
  std::vector<uint8_t> buf(65536 + 64);
  uint64_t st = 9;
  for (auto &b : buf) b = (uint8_t)sx_test_splitmix64(&st);
  for (size_t n : {16u, 48u, 64u, 112u, 1024u, 4096u, 4112u, 4160u, 8192u, 12288u, 65536u}) {
    for (size_t at : {0u, 8u, 16u}) {  // aligned or not
      uint64_t a0 = sx_test_splitmix64(&st), b0 = sx_test_splitmix64(&st);
      uint64_t a = a0, b = b0;
      for (size_t i = 0; i < n; i += 16) {
        uint64_t x, y;
        memcpy(&x, &buf[at + i], 8);
        memcpy(&y, &buf[at + i + 8], 8);
        a += x + b;
        b += y + a;
      }
      for (int portable : {0, 1}) {
        sx__cksum_portable_for_test(portable);
        uint64_t c0 = a0, c1 = b0;
        sx__cksum_long(&buf[at], n, &c0, &c1);
        EXPECT_EQ(c0, a) << "n " << n << " at " << at << " portable " << portable;
        EXPECT_EQ(c1, b) << "n " << n << " at " << at << " portable " << portable;
      }
    }
  }
  sx__cksum_portable_for_test(0);
}

// Format 1 files (from before page checksums: no checksum pages) are still read and
// written as they are, and stay format 1; a backup of one is format 1 too.
TEST(Session, FormatOneFilesStillOpenAndStayFormatOne) {
  TmpDir t("v1");
  constexpr uint32_t kPs = 4096, kDim = 8, kN = 200;
  std::vector<float> v = sxt::Gen(3, kN, kDim);
  std::vector<std::string> ids;
  std::vector<const char *> ip;
  for (uint32_t i = 0; i < kN; i++) ids.push_back("id" + std::to_string(i));
  for (auto &s : ids) ip.push_back(s.c_str());
  sx_error err = SX_ERROR_INIT;
  auto upsert = [&](sx_db *db, size_t from, size_t n) {
    sx_write *w = nullptr;
    ASSERT_EQ(sx_write_begin(db, -1, &w, &err), SX_OK) << err.message;
    sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
    co.dim = kDim;
    for (sx_index_type ix : {SX_INDEX_FLAT, SX_INDEX_HNSW}) {
      const char *name = ix == SX_INDEX_FLAT ? "flat" : "hnsw";
      co.index = ix;
      if (from == 0) {
        ASSERT_EQ(sx_write_create_collection(w, name, &co, &err), SX_OK);
      }
      ASSERT_EQ(sx_write_upsert(w, name, n, ip.data() + from, v.data() + from * kDim, kDim, nullptr,
                                &err),
                SX_OK)
          << err.message;
    }
    ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
    sx_write_free(w);
  };
  auto count = [&](sx_db *db, const char *name) {
    sx_read *r = nullptr;
    sx_collection *c = nullptr;
    uint64_t n = 0;
    EXPECT_EQ(sx_read_begin(db, &r, &err), SX_OK);
    EXPECT_EQ(sx_read_collection(r, name, &c, &err), SX_OK) << err.message;
    EXPECT_EQ(sx_collection_count(c, &n, &err), SX_OK) << err.message;
    sx_record *rec = nullptr;
    EXPECT_EQ(sx_collection_get(c, "id1", &rec, &err), SX_OK) << err.message;
    size_t dim = 0;
    const float *got = rec ? sx_record_vector(rec, &dim) : nullptr;
    EXPECT_TRUE(got && dim == kDim && memcmp(got, v.data() + kDim, sizeof(float) * kDim) == 0);
    sx_record_free(rec);
    sx_collection_free(c);
    sx_read_free(r);
    return n;
  };
  sx_db *db = Open(t.db);
  ASSERT_NO_FATAL_FAILURE(upsert(db, 0, 150));
  sx_db_stats st = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  sx_db_free(db);
  // The same database in format 1: each page at its number, version 1.
  std::vector<uint8_t> p2 = sxt::ReadBytes(t.db), p1((size_t)st.page_count * kPs);
  ASSERT_EQ(p2.size(), sx__pfile_pages(kPs, (uint32_t)st.page_count) * kPs);
  for (uint32_t pg = 0; pg < st.page_count; pg++)
    memcpy(p1.data() + (size_t)pg * kPs, p2.data() + sx__pfile_page(kPs, pg) * kPs, kPs);
  uint32_t one = 1;
  memcpy(p1.data() + 16, &one, 4);
  FILE *f = fopen(t.db.c_str(), "wb");
  ASSERT_EQ(fwrite(p1.data(), 1, p1.size(), f), p1.size());
  fclose(f);

  db = Open(t.db);
  EXPECT_EQ(count(db, "flat"), 150u);
  EXPECT_EQ(count(db, "hnsw"), 150u);
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  ASSERT_NO_FATAL_FAILURE(upsert(db, 150, 50));
  ASSERT_EQ(sx_db_checkpoint(db, -1, &err), SX_OK) << err.message;
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  std::string bk = std::string(t.dir) + "/backup.sx";
  sx_backup_options bo;
  sx_backup_options_init(&bo, SX_BACKUP_OPTIONS_VERSION);
  ASSERT_EQ(sx_db_backup(db, bk.c_str(), &bo, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  sx_db_free(db);
  for (const std::string &path : {t.db, bk}) {
    SCOPED_TRACE(path);
    std::vector<uint8_t> b = sxt::ReadBytes(path);
    uint32_t ver = 0;
    memcpy(&ver, b.data() + 16, 4);
    EXPECT_EQ(ver, 1u) << "stays format 1";
    EXPECT_EQ(b.size(), (size_t)st.page_count * kPs) << "no checksum pages";
    db = Open(path);
    EXPECT_EQ(count(db, "flat"), 200u);
    EXPECT_EQ(count(db, "hnsw"), 200u);
    EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
    sx_db_free(db);
  }
}

// Page checksums under concurrency: reader threads search and get from collections
// while a writer commits and checkpoints (automatically, every few frames, and
// explicitly), so readers keep taking freshly copied pages from P. No read ever
// sees a checksum mismatch, and the check passes at the end. (Reader processes:
// MultiProc.StressOneWriterEightReaderProcesses.)
TEST(Session, ChecksumsHoldUnderReadersWriterAndCheckpoints) {
  TmpDir t("ckconc");
  constexpr uint32_t kDim = 16;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.autocheckpoint_frames = 8;
  sx_db *db = Open(t.db, &oo);
  sx_error err = SX_ERROR_INIT;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, -1, &w, &err), SX_OK);
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = kDim;
  co.index = SX_INDEX_FLAT;
  ASSERT_EQ(sx_write_create_collection(w, "flat", &co, &err), SX_OK);
  co.index = SX_INDEX_HNSW;
  ASSERT_EQ(sx_write_create_collection(w, "hnsw", &co, &err), SX_OK);
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::string first_bad;
  std::mutex mu;
  std::vector<std::thread> readers;
  for (int k = 0; k < 4; k++)
    readers.emplace_back([&, k] {
      std::vector<float> q = sxt::Gen(100 + k, 1, kDim);
      while (!stop.load()) {
        sx_error e = SX_ERROR_INIT;
        sx_read *r = nullptr;
        sx_status rc = sx_read_begin(db, &r, &e);
        for (const char *name : {"flat", "hnsw"}) {
          sx_collection *c = nullptr;
          if (rc == SX_OK) rc = sx_read_collection(r, name, &c, &e);
          sx_search_options so = SX_SEARCH_OPTIONS_INIT;
          so.threads = 1;
          sx_results *res = nullptr;
          if (rc == SX_OK) rc = sx_collection_search(c, q.data(), kDim, 10, &so, &res, &e);
          sx_results_free(res);
          sx_record *rec = nullptr;
          if (rc == SX_OK) {
            rc = sx_collection_get(c, "v7", &rec, &e);
            if (rc == SX_NOT_FOUND) rc = SX_OK;
          }
          sx_record_free(rec);
          sx_collection_free(c);
        }
        sx_read_free(r);
        reads++;
        if (rc != SX_OK && bad++ == 0) {
          std::lock_guard<std::mutex> g(mu);
          first_bad = e.message;
        }
      }
    });
  std::vector<float> v = sxt::Gen(9, 3000, kDim);
  std::vector<std::string> ids;
  for (int i = 0; i < 3000; i++) ids.push_back("v" + std::to_string(i % 1000));
  std::vector<const char *> ip;
  for (auto &s : ids) ip.push_back(s.c_str());
  // (No ASSERT before the readers are joined: a failure stops the writer instead.)
  sx_status wrc = SX_OK;
  for (int b = 0; b < 30 && wrc == SX_OK; b++) {
    wrc = sx_write_begin(db, -1, &w, &err);
    for (const char *name : {"flat", "hnsw"})
      if (wrc == SX_OK)
        wrc = sx_write_upsert(w, name, 100, ip.data() + b * 100, v.data() + b * 100 * kDim, kDim,
                              nullptr, &err);
    if (wrc == SX_OK) wrc = sx_write_commit(w, &err);
    sx_write_free(w);
    if (wrc == SX_OK && b % 5 == 4) wrc = sx_db_checkpoint(db, -1, &err);
  }
  EXPECT_EQ(wrc, SX_OK) << err.message;
  stop = true;
  for (auto &th : readers) th.join();
  EXPECT_EQ(bad.load(), 0) << first_bad;
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(sx_db_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}
