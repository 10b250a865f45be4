// Fault injection through the fault VFS (core/src/os/os.h), against the storage
// guarantees of DESIGN.md ("Atomic, durable commits", "Crash safety"):
//  - power loss at every sync of a short workload (creation, commits, automatic and
//    explicit checkpoints, WAL restarts), for sync=full and sync=normal, with the
//    disk dropping (DROP) or tearing (TEAR, several seeds) every unsynced write; and
//    the WAL restart (a new WAL header over an old generation) under power loss, with
//    torn writes (normal) and with sectors of one write reaching the disk out of
//    order (full);
//  - an I/O error at every I/O call of the workload (EIO and ENOSPC on the Nth call of
//    any kind, short writes on every write; once and persistent), the same with the
//    handle retrying after a transient error, and a commit that reports failure
//    never standing after a reopen;
//  - a failed sync poisons the handle: the failing call reports IO, later write
//    sessions and checkpoints are refused with a message naming the failed sync,
//    reads still work, and a fresh handle after reopen works.
// After every fault the handle is closed and the database reopened through the
// default VFS: it must open (never CORRUPT), pass sx_db_check, hold one consistent
// generation of the page workload (tests/workload.h) that keeps every acknowledged
// commit (per the sync level) and no commit that failed (but one whose own sync
// failed, which is in doubt), and accept a further commit that survives a reopen.
#include <gtest/gtest.h>

#include <dirent.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "faultvfs.h"
#include "os/os.h"
#include "pager/pager.h"
#include "session/session.h"
#include "testutil.h"
#include "workload.h"
}
#include "testutil.hh"

namespace {

// The workload: kCommits commits of kTouch pages (out of kPages) with a checkpoint
// every kAutoCkpt WAL frames (so automatic checkpoints and WAL restarts happen inside
// it), then an explicit checkpoint, kExtra more commits (the first restarts the WAL),
// an integrity check through the faulty handle, and close.
constexpr uint32_t kPages = 8;
constexpr uint32_t kTouch = 3;
constexpr uint64_t kCommits = 8;
constexpr uint64_t kExtra = 2;
constexpr uint64_t kLast = kCommits + kExtra;
constexpr uint32_t kAutoCkpt = 16;
constexpr uint64_t kSeed = 0x5eed;
constexpr int kMaxFailingCases = 3;  // stop a sweep after this many failing cases
constexpr uint64_t kTearSeeds = 8;   // TEAR power losses per crash point

// Failed assertions so far in the running test (to stop a sweep after a few failing cases).
using sxt::TmpDir;

int Failures() {
  const testing::TestResult *r = testing::UnitTest::GetInstance()->current_test_info()->result();
  int n = 0;
  for (int i = 0; i < r->total_part_count(); i++) n += r->GetTestPartResult(i).failed() ? 1 : 0;
  return n;
}

// RAII for a fault VFS.
struct FaultVfs {
  sx__faultvfs *fv = sx__faultvfs_new();
  FaultVfs() {}
  ~FaultVfs() {
    sx__faultvfs_free(fv);
  }
  FaultVfs(const FaultVfs &) = delete;
  FaultVfs &operator=(const FaultVfs &) = delete;
  sx__vfs *vfs() {
    return sx__faultvfs_vfs(fv);
  }
};

sx_open_options Opts(sx_sync sync) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = sync;
  o.autocheckpoint_frames = kAutoCkpt;
  return o;
}

const char *SyncName(sx_sync s) {
  return s == SX_SYNC_FULL ? "full" : s == SX_SYNC_NORMAL ? "normal" : "off";
}
const char *ModeName(int m) {
  return m == SX__FAULT_EIO ? "EIO" : m == SX__FAULT_ENOSPC ? "ENOSPC" : "SHORT";
}
const char *KindName(int k) {
  static const char *names[] = {"open",     "read", "write",  "sync",
                                "truncate", "mmap", "rename", "any"};
  return k >= 0 && k <= SX__IO_KINDS ? names[k] : "?";
}

bool Poisoned(sx_db *db) {
  sx__pager *p = sx__db_pager(db);
  return p && sx__pager_poisoned(p);
}

// A failure must be a clean status with a one-line, non-empty message.
void ExpectCleanError(int rc, const sx_error &err, const char *step) {
  EXPECT_TRUE(rc == SX_IO || rc == SX_FULL || rc == SX_NOMEM)
      << step << " failed with " << sx_status_name(rc) << ": " << err.message;
  EXPECT_EQ(err.code, rc) << step
                          << ": sx_error.code disagrees with the status; message: " << err.message;
  EXPECT_GT(strlen(err.message), 0u)
      << step << " failed with " << sx_status_name(rc) << " and no message";
  EXPECT_EQ(strchr(err.message, '\n'), nullptr)
      << step << ": message is not one line: " << err.message;
}

// What a run of the workload through a (fault) VFS did.
struct Outcome {
  int rc = SX_OK;                 // first error that stopped the run (SX_OK: ran to the end)
  sx_error err = SX_ERROR_INIT;   // its details
  std::string step;               // "open", "commit 3", "checkpoint", "check"
  uint64_t acked = 0;             // last generation whose commit returned SX_OK
  uint64_t durable = 0;           // last generation known to be on stable storage
  bool in_doubt = false;          // the failing commit's own sync failed: it may or may not stand
  bool crashed_in_close = false;  // the power was cut while the last handle closed (which
                                  // checkpoints and empties the WAL, reporting nothing)
  int retries = 0;                // failed steps retried (retry mode)
};

// Runs the workload on path through fv, stopping at the first error (or, with retry,
// retrying a failed step once while the handle is not poisoned), then frees the handle.
Outcome RunWorkload(const std::string &path, sx__faultvfs *fv, sx_sync sync, bool retry = false) {
  Outcome o;
  sx_open_options opts = Opts(sync);
  sx__vfs *vfs = sx__faultvfs_vfs(fv);
  sx_db *db = nullptr;
  auto fail = [&](int rc, const sx_error &err, std::string step) {
    o.rc = rc;
    o.err = err;
    o.step = std::move(step);
  };
  int attempts = retry ? 2 : 1;
  int rc = SX_OK;
  sx_error err = SX_ERROR_INIT;
  for (int a = 0; a < attempts; a++) {
    err = SX_ERROR_INIT;
    rc = sx__db_open_vfs(&db, path.c_str(), &opts, vfs, &err);
    if (rc == SX_OK) break;
    EXPECT_EQ(db, nullptr) << "a failed open must leave *out NULL";
    ExpectCleanError(rc, err, "open");
    if (a + 1 < attempts) o.retries++;
  }
  if (rc) {
    fail(rc, err, "open");
    return o;
  }
  // Whether everything committed is checkpointed into the database file, which a
  // checkpoint only records after syncing it (so it is durable at any sync level).
  auto all_checkpointed = [&](uint64_t *ckpts) {
    sx_db_stats st = SX_DB_STATS_INIT;
    sx_error e = SX_ERROR_INIT;
    if (sx_db_stats_get(db, &st, &e) != SX_OK) return false;
    bool moved = st.checkpoints > *ckpts;
    *ckpts = st.checkpoints;
    return moved && st.wal_backfilled == st.wal_frames;
  };
  uint64_t ckpts = 0;
  all_checkpointed(&ckpts);
  auto commit = [&](uint64_t g) -> bool {
    for (int a = 0; a < attempts; a++) {
      bool poisoned_before = Poisoned(db);
      err = SX_ERROR_INIT;
      rc = wl_commit(db, g, kPages, kTouch, kSeed, 1000, &err);
      bool poisoned_after = Poisoned(db);
      bool checkpointed = all_checkpointed(&ckpts);
      if (rc == SX_OK) {
        o.acked = g;
        // full: the commit's own sync made it durable. normal: it is durable once an
        // automatic checkpoint inside the commit completed.
        if (sync == SX_SYNC_FULL || checkpointed) o.durable = g;
        return true;
      }
      ExpectCleanError(rc, err, ("commit " + std::to_string(g)).c_str());
      o.in_doubt = !poisoned_before && poisoned_after;
      if (poisoned_after || a + 1 == attempts) break;
      o.retries++;
    }
    fail(rc, err, "commit " + std::to_string(g));
    return false;
  };
  auto other = [&](const char *step, sx_status (*fn)(sx_db *, sx_error *)) -> bool {
    for (int a = 0; a < attempts; a++) {
      err = SX_ERROR_INIT;
      rc = fn(db, &err);
      if (rc == SX_OK) {
        if (strcmp(step, "checkpoint") == 0) {
          all_checkpointed(&ckpts);
          sx_db_stats st = SX_DB_STATS_INIT;
          if (sx_db_stats_get(db, &st, nullptr) == SX_OK && st.wal_backfilled == st.wal_frames)
            o.durable = o.acked;
        }
        return true;
      }
      ExpectCleanError(rc, err, step);
      if (Poisoned(db) || a + 1 == attempts) break;
      o.retries++;
    }
    fail(rc, err, step);
    return false;
  };
  bool ok = true;
  for (uint64_t g = 1; ok && g <= kCommits; g++) ok = commit(g);
  if (ok)
    ok = other("checkpoint", [](sx_db *d, sx_error *e) { return sx_db_checkpoint(d, 1000, e); });
  for (uint64_t g = kCommits + 1; ok && g <= kLast; g++) ok = commit(g);
  if (ok) ok = other("check", [](sx_db *d, sx_error *e) { return wl_check(d, e); });
  bool crashed_before = sx__faultvfs_crashed(fv);
  sx_db_free(db);
  o.crashed_in_close = ok && !crashed_before && sx__faultvfs_crashed(fv);
  return o;
}

std::string Describe(const Outcome &o) {
  std::string s =
      o.rc ? "run stopped at '" + o.step + "' with " + sx_status_name(o.rc) + ": " + o.err.message
           : std::string("run completed");
  return s + " (acknowledged " + std::to_string(o.acked) + ", durable " +
         std::to_string(o.durable) + (o.in_doubt ? ", last commit in doubt)" : ")");
}

// Reopens path with the default VFS and checks it: opens, passes its integrity check,
// holds one consistent generation in [lo, hi]; then commits one more generation and
// checks that it survives a reopen. Returns the recovered generation in *got.
void CheckRecovered(const std::string &path, uint64_t lo, uint64_t hi, uint64_t *got) {
  *got = 0;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  int rc = sx_db_open(&db, path.c_str(), nullptr, &err);
  ASSERT_EQ(rc, SX_OK) << "reopen failed with " << sx_status_name(rc) << ": " << err.message;
  EXPECT_EQ(wl_check(db, &err), SX_OK) << "integrity check after recovery: " << err.message;
  uint64_t g = 0;
  char why[512];
  int bad = wl_verify_db(db, &g, why, sizeof why);
  EXPECT_EQ(bad, 0) << "recovered snapshot is inconsistent: " << why;
  *got = g;
  EXPECT_GE(g, lo) << "recovered generation lost a commit that was durable";
  EXPECT_LE(g, hi) << "recovered a commit that was neither acknowledged nor in doubt";
  if (bad) {
    sx_db_free(db);
    return;
  }
  // The recovered database takes a commit, and it survives a reopen.
  err = SX_ERROR_INIT;
  rc = wl_commit(db, g + 1, kPages, kTouch, kSeed ^ 1, 1000, &err);
  EXPECT_EQ(rc, SX_OK) << "commit after recovery: " << err.message;
  sx_db_free(db);
  if (rc) return;
  db = nullptr;
  rc = sx_db_open(&db, path.c_str(), nullptr, &err);
  ASSERT_EQ(rc, SX_OK) << "second reopen: " << err.message;
  uint64_t g2 = 0;
  EXPECT_EQ(wl_verify_db(db, &g2, why, sizeof why), 0)
      << "after a commit on the recovered database: " << why;
  EXPECT_EQ(g2, g + 1);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}

// Files in dir other than the database's three.
std::vector<std::string> StrayFiles(const char *dir) {
  std::vector<std::string> out;
  DIR *d = opendir(dir);
  if (!d) return out;
  static const std::set<std::string> known = {".",        "..",        "t.sx",
                                              "t.sx-wal", "t.sx-wal2", "t.sx-shm"};
  while (struct dirent *e = readdir(d))
    if (!known.count(e->d_name)) out.push_back(e->d_name);
  closedir(d);
  return out;
}

void Overwrite(const std::string &path, const std::string &bytes, uint64_t off) {
  FILE *f = fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(fseeko(f, (off_t)off, SEEK_SET), 0);
  ASSERT_EQ(fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  ASSERT_EQ(fclose(f), 0);
}

// Calls of `kind` (SX__IO_KINDS: all) one clean run of the workload makes.
uint64_t CountCalls(sx_sync sync, int kind) {
  TmpDir t("fcount");
  FaultVfs fv;
  Outcome o = RunWorkload(t.db, fv.fv, sync);
  EXPECT_EQ(o.rc, SX_OK) << "clean run failed at " << o.step << ": " << o.err.message;
  EXPECT_EQ(o.acked, kLast);
  return sx__faultvfs_count(fv.fv, kind);
}

// ---------------------------------------------------------------------------
// Power loss

struct LossStats {
  int crash_points = 0, cases = 0, in_doubt_kept = 0, lost_unsynced = 0;
};

// Power loss at sync n of the workload, for every n.
void PowerLossSweep(sx_sync sync, LossStats *st) {
  uint64_t nsync = CountCalls(sync, SX__IO_SYNC);
  ASSERT_GT(nsync, 4u) << "the workload should sync during creation, commits and checkpoints";
  st->crash_points += (int)nsync;
  struct Loss {
    int how;
    uint64_t seed;
  };
  std::vector<Loss> losses = {{SX__LOSS_DROP, 0}};
  for (uint64_t seed = 1; seed <= kTearSeeds; seed++) losses.push_back({SX__LOSS_TEAR, seed});
  int failing = 0;
  for (uint64_t n = 1; n <= nsync && failing < kMaxFailingCases; n++) {
    for (const Loss &l : losses) {
      SCOPED_TRACE(testing::Message()
                   << "sync=" << SyncName(sync) << " power loss at sync " << n << " of " << nsync
                   << ", " << (l.how == SX__LOSS_DROP ? "DROP" : "TEAR") << " seed " << l.seed);
      int had = Failures();
      TmpDir t("floss");
      FaultVfs fv;
      sx__faultvfs_crash_at_sync(fv.fv, n);
      Outcome o = RunWorkload(t.db, fv.fv, sync);
      EXPECT_TRUE(sx__faultvfs_crashed(fv.fv))
          << "the crash point was not reached (run ended at '" << o.step << "')";
      if (!o.crashed_in_close) {
        EXPECT_NE(o.rc, SX_OK) << "the run went on after the power was cut";
      }
      ASSERT_EQ(sx__faultvfs_power_loss(fv.fv, l.how, l.seed), SX_OK);
      st->cases++;
      SCOPED_TRACE(Describe(o));
      // full: every acknowledged commit is durable; the one whose sync was cut may
      // or may not stand. normal: a suffix of acknowledged commits may be lost, never
      // one a completed checkpoint synced.
      uint64_t lo = sync == SX_SYNC_FULL ? o.acked : o.durable;
      uint64_t hi = o.acked + (o.step.rfind("commit", 0) == 0 ? 1 : 0);
      if (sync == SX_SYNC_FULL) {
        EXPECT_EQ(o.durable, o.acked);
      }
      uint64_t g = 0;
      CheckRecovered(t.db, lo, hi, &g);
      if (l.how == SX__LOSS_DROP) {
        // Dropping every unsynced write keeps exactly what the syncs made durable.
        if (sync == SX_SYNC_FULL) {
          EXPECT_EQ(g, o.acked) << "DROP kept a commit whose sync was cut";
        }
      }
      if (g > o.acked) st->in_doubt_kept++;
      if (g < o.acked) st->lost_unsynced++;
      if (Failures() > had) failing++;
    }
  }
}

TEST(FaultsPowerLoss, EverySyncFull) {
  LossStats st;
  PowerLossSweep(SX_SYNC_FULL, &st);
  RecordProperty("crash_points", st.crash_points);
  std::printf("sync=full: %d crash points, %d power-loss cases (%d kept the in-doubt commit)\n",
              st.crash_points, st.cases, st.in_doubt_kept);
  EXPECT_EQ(st.lost_unsynced, 0);
}

TEST(FaultsPowerLoss, EverySyncNormal) {
  LossStats st;
  PowerLossSweep(SX_SYNC_NORMAL, &st);
  RecordProperty("crash_points", st.crash_points);
  std::printf("sync=normal: %d crash points, %d power-loss cases (%d lost unsynced commits)\n",
              st.crash_points, st.cases, st.lost_unsynced);
}

// Creating the database is crash safe: a power cut at any sync inside creation leaves
// either no database (the next open creates a fresh one) or a valid empty one.
TEST(FaultsPowerLoss, CreationIsCrashSafe) {
  uint64_t nsync;
  {
    TmpDir t("fcreate");
    FaultVfs fv;
    sx_db *db = nullptr;
    sx_error err = SX_ERROR_INIT;
    sx_open_options o = Opts(SX_SYNC_FULL);
    ASSERT_EQ(sx__db_open_vfs(&db, t.db.c_str(), &o, fv.vfs(), &err), SX_OK) << err.message;
    nsync = sx__faultvfs_count(fv.fv, SX__IO_SYNC); /* creation's syncs, not close's */
    sx_db_free(db);
  }
  ASSERT_GE(nsync, 2u) << "creation syncs the new file and the directory";
  for (uint64_t n = 1; n <= nsync; n++) {
    for (int how : {SX__LOSS_DROP, SX__LOSS_TEAR}) {
      SCOPED_TRACE(testing::Message() << "power loss at sync " << n << " of creation, "
                                      << (how == SX__LOSS_DROP ? "DROP" : "TEAR"));
      TmpDir t("fcreate");
      FaultVfs fv;
      sx__faultvfs_crash_at_sync(fv.fv, n);
      sx_db *db = nullptr;
      sx_error err = SX_ERROR_INIT;
      sx_open_options o = Opts(SX_SYNC_FULL);
      int rc = sx__db_open_vfs(&db, t.db.c_str(), &o, fv.vfs(), &err);
      EXPECT_TRUE(sx__faultvfs_crashed(fv.fv));
      EXPECT_NE(rc, SX_OK) << "open succeeded although a sync of creation failed";
      if (rc) ExpectCleanError(rc, err, "open");
      sx_db_free(db);
      ASSERT_EQ(sx__faultvfs_power_loss(fv.fv, how, n), SX_OK);
      uint64_t g = 0;
      CheckRecovered(t.db, 0, 0, &g);
      EXPECT_EQ(StrayFiles(t.dir), std::vector<std::string>{}) << "leftover temporary files";
    }
  }
}

// sync=normal: a checkpoint synced the WAL and the database file, so commits 1..3 are
// durable; commits 4 and 5 then start a new WAL generation (4 writes the new WAL header
// over the old one) and are not synced. Power loss may lose 4 and 5, never 1..3, and
// must leave one consistent generation whichever of the two unsynced WAL writes the
// disk kept.
TEST(FaultsPowerLoss, NormalWalRestartKeepsCheckpointedCommits) {
  int failing = 0;
  for (uint64_t seed = 1; seed <= 32 && failing < kMaxFailingCases; seed++) {
    SCOPED_TRACE(testing::Message() << "TEAR seed " << seed);
    int had = Failures();
    TmpDir t("frestart");
    FaultVfs fv;
    sx_open_options o = Opts(SX_SYNC_NORMAL);
    o.autocheckpoint_frames = 1000;
    sx_db *db = nullptr;
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx__db_open_vfs(&db, t.db.c_str(), &o, fv.vfs(), &err), SX_OK) << err.message;
    ASSERT_EQ(wl_commit(db, 1, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
    ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
    ASSERT_EQ(wl_commit(db, 2, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
    ASSERT_EQ(wl_commit(db, 3, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
    ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
    ASSERT_EQ(wl_commit(db, 4, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
    ASSERT_EQ(wl_commit(db, 5, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
    sx_db_free(db);
    ASSERT_EQ(sx__faultvfs_power_loss(fv.fv, SX__LOSS_TEAR, seed), SX_OK);
    uint64_t g = 0;
    CheckRecovered(t.db, 3, 5, &g);
    if (Failures() > had) failing++;
  }
}

// The same hazard with sync=full, where each commit is synced: while the commit that
// starts a new WAL generation is being synced, the disk may write its sectors in any
// order. Here the power is cut during that sync and the disk had written every
// unsynced sector past the frames of the old generation's first commit, and none
// before (so not the new WAL header). Commit 3 was acknowledged and checkpointed.
TEST(FaultsPowerLoss, FullWalRestartSurvivesReorderedSectors) {
  TmpDir t("freorder");
  FaultVfs fv;
  sx_open_options o = Opts(SX_SYNC_FULL);
  o.autocheckpoint_frames = 1000;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__db_open_vfs(&db, t.db.c_str(), &o, fv.vfs(), &err), SX_OK) << err.message;
  ASSERT_EQ(wl_commit(db, 1, kPages, kPages, kSeed, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(wl_commit(db, 2, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
  sx_db_stats st = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  uint64_t n2 = st.wal_frames;  // commit 2 started the WAL generation: its frames
  ASSERT_LT(n2, uint64_t{kPages} + 2);
  ASSERT_EQ(wl_commit(db, 3, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  // Commit 4 rewrites every page (more frames than commit 2) and starts a new WAL
  // generation; the power goes at its first sync.
  sx__faultvfs_crash_at_sync(fv.fv, 1);
  EXPECT_NE(wl_commit(db, 4, kPages, kPages, kSeed, 1000, &err), SX_OK);
  ASSERT_TRUE(sx__faultvfs_crashed(fv.fv));
  sx_db_free(db);
  std::string wal = t.db + "-wal";
  std::string written = sxt::ReadFile(wal);  // every write the OS took, synced or not
  ASSERT_EQ(sx__faultvfs_power_loss(fv.fv, SX__LOSS_DROP, 0), SX_OK);
  // The WAL format (pager.c): a 64-byte header, then frames of a 32-byte header and a
  // page. Keep every unsynced sector from the first one past commit 2's frames.
  uint64_t from = (64 + n2 * (32 + 4096) + 511) / 512 * 512;
  if (written.size() > from) Overwrite(wal, written.substr(from), from);
  uint64_t g = 0;
  CheckRecovered(t.db, 3, 4, &g);
}

// ---------------------------------------------------------------------------
// I/O errors

struct IoStats {
  int cases = 0, failed = 0, in_doubt = 0;
};

// One injected fault: arm it after creating fresh files, run, check, reopen, check.
void IoCase(sx_sync sync, int kind, uint64_t nth, int mode, bool persistent, bool retry,
            IoStats *st) {
  TmpDir t("fio");
  FaultVfs fv;
  sx__faultvfs_arm(fv.fv, kind, nth, mode, persistent ? 1 : 0);
  Outcome o = RunWorkload(t.db, fv.fv, sync, retry);
  EXPECT_TRUE(sx__faultvfs_fired(fv.fv)) << "the fault never fired";
  st->cases++;
  if (o.rc) st->failed++;
  if (o.in_doubt) st->in_doubt++;
  if (retry && !persistent && o.rc != SX_OK) {
    // A transient error is retried; only a failed sync (which poisons the handle)
    // may still stop the run.
    EXPECT_NE(strstr(o.err.message, "sync"), nullptr)
        << "a retried step failed again at " << o.step << ": " << o.err.message;
  }
  if (!o.rc) {
    EXPECT_EQ(o.acked, kLast);
  }
  // Nothing is power-lost here: the reopened database holds exactly the acknowledged
  // commits, plus the failing one only when its own sync failed (it is in doubt).
  SCOPED_TRACE(Describe(o));
  uint64_t g = 0;
  CheckRecovered(t.db, o.acked, o.acked + (o.in_doubt ? 1 : 0), &g);
  EXPECT_EQ(StrayFiles(t.dir), std::vector<std::string>{}) << "leftover temporary files";
}

TEST(FaultsIo, EveryCallFailsOnce) {
  IoStats st;
  for (sx_sync sync : {SX_SYNC_FULL, SX_SYNC_NORMAL}) {
    uint64_t n = CountCalls(sync, SX__IO_KINDS);
    ASSERT_GT(n, 20u);
    int failing = 0;
    for (int mode : {SX__FAULT_EIO, SX__FAULT_ENOSPC}) {
      // ENOSPC is the same failure at every call but a write's; once is enough for normal.
      if (sync == SX_SYNC_NORMAL && mode == SX__FAULT_ENOSPC) continue;
      for (uint64_t nth = 1; nth <= n && failing < kMaxFailingCases; nth++) {
        SCOPED_TRACE(testing::Message() << "sync=" << SyncName(sync) << ", " << ModeName(mode)
                                        << " at I/O call " << nth << " of " << n);
        int had = Failures();
        IoCase(sync, SX__IO_KINDS, nth, mode, false, false, &st);
        if (Failures() > had) failing++;
      }
    }
    std::printf("sync=%s: %llu I/O calls in the workload\n", SyncName(sync), (unsigned long long)n);
  }
  std::printf("%d injected faults, %d stopped the workload, %d left the failing commit in doubt\n",
              st.cases, st.failed, st.in_doubt);
}

TEST(FaultsIo, EveryWriteIsShort) {
  IoStats st;
  for (sx_sync sync : {SX_SYNC_FULL, SX_SYNC_NORMAL}) {
    uint64_t n = CountCalls(sync, SX__IO_WRITE);
    ASSERT_GT(n, 10u);
    int failing = 0;
    for (uint64_t nth = 1; nth <= n && failing < kMaxFailingCases; nth++) {
      SCOPED_TRACE(testing::Message()
                   << "sync=" << SyncName(sync) << ", short write at write " << nth << " of " << n);
      int had = Failures();
      IoCase(sync, SX__IO_WRITE, nth, SX__FAULT_SHORT, false, false, &st);
      if (Failures() > had) failing++;
    }
  }
  std::printf("%d short writes injected, %d stopped the workload\n", st.cases, st.failed);
}

// A commit that reports failure changed nothing: it must not reappear after a
// reopen. Here the first commit's frames are written and synced, and then growing
// the shared index (a truncate of the -shm file) fails.
TEST(FaultsIo, FailedCommitDoesNotStandAfterReopen) {
  TmpDir t("fidx");
  FaultVfs fv;
  sx_open_options o = Opts(SX_SYNC_FULL);
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__db_open_vfs(&db, t.db.c_str(), &o, fv.vfs(), &err), SX_OK) << err.message;
  sx__faultvfs_arm(fv.fv, SX__IO_TRUNCATE, 1, SX__FAULT_EIO, 0);
  int rc = wl_commit(db, 1, kPages, kTouch, kSeed, 1000, &err);
  EXPECT_TRUE(sx__faultvfs_fired(fv.fv));
  EXPECT_EQ(rc, SX_IO) << err.message;
  EXPECT_FALSE(Poisoned(db)) << "no sync failed";
  uint64_t g = 1;
  char why[512];
  EXPECT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 0u) << "the failed commit is visible on its own handle";
  sx_db_free(db);
  CheckRecovered(t.db, 0, 0, &g);
  EXPECT_EQ(g, 0u) << "the commit that failed with " << sx_status_name(rc) << " (" << err.message
                   << ") is in the database after a reopen";
}

// The handle survives a transient error: the failed step is retried on the same
// handle and the workload completes (unless a sync failed, which is final).
TEST(FaultsIo, RetryAfterTransientError) {
  IoStats st;
  uint64_t n = CountCalls(SX_SYNC_FULL, SX__IO_KINDS);
  int failing = 0;
  for (uint64_t nth = 1; nth <= n && failing < kMaxFailingCases; nth++) {
    SCOPED_TRACE(testing::Message() << "EIO at I/O call " << nth << " of " << n << ", retried");
    int had = Failures();
    IoCase(SX_SYNC_FULL, SX__IO_KINDS, nth, SX__FAULT_EIO, false, true, &st);
    if (Failures() > had) failing++;
  }
}

// A fault that persists from the Nth call on (a dead disk, a full disk).
TEST(FaultsIo, PersistentFaults) {
  IoStats st;
  uint64_t n = CountCalls(SX_SYNC_FULL, SX__IO_KINDS);
  for (uint64_t nth : {uint64_t{1}, n / 4, n / 2, 3 * n / 4, n}) {
    for (int mode : {SX__FAULT_EIO, SX__FAULT_ENOSPC}) {
      SCOPED_TRACE(testing::Message()
                   << "persistent " << ModeName(mode) << " from I/O call " << nth << " of " << n);
      IoCase(SX_SYNC_FULL, SX__IO_KINDS, nth, mode, true, false, &st);
    }
  }
  for (int kind : {SX__IO_WRITE, SX__IO_SYNC, SX__IO_READ, SX__IO_MMAP}) {
    uint64_t k = CountCalls(SX_SYNC_FULL, kind);
    for (uint64_t nth : {uint64_t{1}, (k + 1) / 2, k}) {
      if (nth == 0) continue;
      int mode = kind == SX__IO_WRITE ? SX__FAULT_ENOSPC : SX__FAULT_EIO;
      SCOPED_TRACE(testing::Message() << "persistent " << ModeName(mode) << " from "
                                      << KindName(kind) << " " << nth << " of " << k);
      IoCase(SX_SYNC_FULL, kind, nth, mode, true, false, &st);
    }
  }
}

// ---------------------------------------------------------------------------
// A failed sync is final for the handle

class FaultsSync : public testing::Test {
 protected:
  void SetUp() override {
    sx_open_options o = Opts(SX_SYNC_FULL);
    o.autocheckpoint_frames = 1000;  // no automatic checkpoint unless a test wants one
    opts_ = o;
    ASSERT_EQ(sx__db_open_vfs(&db_, t_.db.c_str(), &opts_, fv_.vfs(), &err_), SX_OK)
        << err_.message;
    for (uint64_t g = 1; g <= 2; g++)
      ASSERT_EQ(wl_commit(db_, g, kPages, kTouch, kSeed, 1000, &err_), SX_OK);
  }
  void TearDown() override {
    sx_db_free(db_);
  }

  // The handle refuses writes and checkpoints with IO naming the failed sync, but
  // still serves reads of generation `g`.
  void ExpectPoisoned(uint64_t g) {
    EXPECT_TRUE(Poisoned(db_));
    sx__faultvfs_disarm(fv_.fv);  // the fault is gone; the handle must still refuse
    sx_write *w = reinterpret_cast<sx_write *>(this);
    sx_error err = SX_ERROR_INIT;
    EXPECT_EQ(sx_write_begin(db_, 0, &w, &err), SX_IO) << err.message;
    EXPECT_EQ(w, nullptr);
    EXPECT_EQ(err.code, SX_IO);
    EXPECT_NE(strstr(err.message, "sync"), nullptr)
        << "message does not mention the failed sync: " << err.message;
    EXPECT_EQ(strchr(err.message, '\n'), nullptr);
    sx_write_free(w);
    err = SX_ERROR_INIT;
    EXPECT_EQ(wl_commit(db_, g + 1, kPages, kTouch, kSeed, 1000, &err), SX_IO) << err.message;
    err = SX_ERROR_INIT;
    EXPECT_EQ(sx_db_checkpoint(db_, 1000, &err), SX_IO) << err.message;
    EXPECT_NE(strstr(err.message, "sync"), nullptr) << err.message;
    // Reads go on, on the last published commit.
    uint64_t got = 0;
    char why[512];
    EXPECT_EQ(wl_verify_db(db_, &got, why, sizeof why), 0) << why;
    EXPECT_EQ(got, g);
    err = SX_ERROR_INIT;
    EXPECT_EQ(wl_check(db_, &err), SX_OK) << err.message;
  }

  // Closes the poisoned handle; after a power loss (or none) a fresh handle works.
  void ReopenAndContinue(int how, uint64_t lo, uint64_t hi) {
    sx_db_free(db_);
    db_ = nullptr;
    if (how) {
      ASSERT_EQ(sx__faultvfs_power_loss(fv_.fv, how, 7), SX_OK);
    }
    uint64_t g = 0;
    CheckRecovered(t_.db, lo, hi, &g);
  }

  TmpDir t_{"fsync"};
  FaultVfs fv_;
  sx_open_options opts_;
  sx_db *db_ = nullptr;
  sx_error err_ = SX_ERROR_INIT;
};

TEST_F(FaultsSync, FailedCommitSyncPoisonsTheHandle) {
  sx__faultvfs_arm(fv_.fv, SX__IO_SYNC, 1, SX__FAULT_EIO, 0);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(wl_commit(db_, 3, kPages, kTouch, kSeed, 1000, &err), SX_IO);
  EXPECT_TRUE(sx__faultvfs_fired(fv_.fv));
  ExpectCleanError(SX_IO, err, "commit 3");
  ExpectPoisoned(2);
  // The failed commit's frames never became durable: DROP loses them.
  ReopenAndContinue(SX__LOSS_DROP, 2, 2);
}

TEST_F(FaultsSync, FailedCommitSyncIsInDoubtWithoutPowerLoss) {
  sx__faultvfs_arm(fv_.fv, SX__IO_SYNC, 1, SX__FAULT_EIO, 0);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(wl_commit(db_, 3, kPages, kTouch, kSeed, 1000, &err), SX_IO);
  ExpectPoisoned(2);
  // Still running, the OS may have kept the bytes: either answer is consistent.
  ReopenAndContinue(0, 2, 3);
}

TEST_F(FaultsSync, FailedCheckpointSyncPoisonsTheHandle) {
  sx__faultvfs_arm(fv_.fv, SX__IO_SYNC, 1, SX__FAULT_EIO, 0);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_checkpoint(db_, 1000, &err), SX_IO);
  EXPECT_TRUE(sx__faultvfs_fired(fv_.fv));
  ExpectCleanError(SX_IO, err, "checkpoint");
  ExpectPoisoned(2);
  ReopenAndContinue(SX__LOSS_TEAR, 2, 2);
}

// A sync failing inside the automatic checkpoint of a commit: the commit itself
// stands (it was synced and published), but the handle is poisoned from then on.
TEST_F(FaultsSync, FailedAutocheckpointSyncPoisonsTheNextWrite) {
  sx_db_free(db_);
  db_ = nullptr;
  opts_.autocheckpoint_frames = 4;  // every commit checkpoints
  ASSERT_EQ(sx__db_open_vfs(&db_, t_.db.c_str(), &opts_, fv_.vfs(), &err_), SX_OK) << err_.message;
  // Count the syncs of one such commit (a new WAL generation's header, the frames,
  // then the checkpoint's sync of the database file, last); the next commit has the
  // same shape. Its own syncs succeed; the checkpoint's sync of the database fails.
  sx_error err = SX_ERROR_INIT;
  uint64_t s0 = sx__faultvfs_count(fv_.fv, SX__IO_SYNC);
  ASSERT_EQ(wl_commit(db_, 3, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
  uint64_t per_commit = sx__faultvfs_count(fv_.fv, SX__IO_SYNC) - s0;
  ASSERT_GE(per_commit, 2u);
  sx__faultvfs_arm(fv_.fv, SX__IO_SYNC, per_commit, SX__FAULT_EIO, 0);
  EXPECT_EQ(wl_commit(db_, 4, kPages, kTouch, kSeed, 1000, &err), SX_OK) << err.message;
  EXPECT_TRUE(sx__faultvfs_fired(fv_.fv));
  ExpectPoisoned(4);
  ReopenAndContinue(SX__LOSS_DROP, 4, 4);
}

TEST_F(FaultsSync, PowerCutAtCommitSyncPoisonsTheHandle) {
  sx__faultvfs_crash_at_sync(fv_.fv, 1);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(wl_commit(db_, 3, kPages, kTouch, kSeed, 1000, &err), SX_IO);
  EXPECT_TRUE(sx__faultvfs_crashed(fv_.fv));
  ExpectPoisoned(2);
  ReopenAndContinue(SX__LOSS_TEAR, 2, 3);
}

}  // namespace
