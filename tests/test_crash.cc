// Crash safety of the storage engine (DESIGN.md, Guarantees 3, 4 and 6; Storage).
//
//  1. KillNineAtRandomInstants: a writer process (tests/worker_crash.c, sync=full,
//     autocheckpoint 32 frames) commits generations of the checkable workload
//     (tests/workload.h) and reports each acknowledged commit through a pipe; it is
//     SIGKILLed at random instants, >= 200 times (SX_CRASH_ITERATIONS; every 8th
//     kill is staged at a chosen point of a commit instead, see worker_crash.c).
//     After each kill the database must recover (sometimes through a read-only
//     open first, sometimes without its -shm) to one consistent generation between
//     the last acknowledged one and that plus the one in flight (exactly one of
//     the two for staged kills), and pass sx_db_check; the next worker continues
//     from there.
//  2. SurvivorCleansUpDeadWriter: the test process keeps the database open with a
//     pinned read session while the writer dies at chosen points of a commit (torn
//     WAL append, frames written but unsynced, frames indexed but unpublished,
//     inside the autocheckpoint after publishing) and at random instants; no
//     recovery runs. The survivor's snapshot must stay intact, the latest state
//     must be exactly the published one, and the survivor must be able to write
//     over the dead writer's leftovers, checkpoint, and find its commit after a
//     reopen.
//  3. WalDamage*: on copies of a multi-commit WAL, a truncation at many offsets
//     must recover exactly the last commit wholly before the cut (a torn tail), and
//     so must a cut followed by zeros, random bytes or an older generation's frames;
//     one flipped byte (WAL header, every frame header, every byte of each commit
//     frame's header, spread inside pages) must refuse the database with SX_CORRUPT
//     whenever whole frames up to a commit follow the damage, and roll back only
//     damage to the very last frame; frames an unpublished commit left behind a
//     shorter later one are never taken for damage; a restarted WAL must never
//     replay the frames left behind from before its restart.
// Seeds: SX_CRASH_SEED (default: from the clock), printed so a failure reproduces.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

constexpr uint32_t kWorkerPages = 200;  // data pages of worker_crash's workload
constexpr uint64_t kPageSize = 4096;    // the workload's (default) page size
constexpr uint64_t kWalHdr = 64;
constexpr uint64_t kFrameHdr = 32;
constexpr uint64_t kFrame = kFrameHdr + kPageSize;

using Clock = std::chrono::steady_clock;

uint64_t EnvU64(const char *name, uint64_t def) {
  const char *v = getenv(name);
  return v && *v ? strtoull(v, nullptr, 10) : def;
}

uint64_t BaseSeed() {
  static const uint64_t seed =
      EnvU64("SX_CRASH_SEED", (uint64_t)Clock::now().time_since_epoch().count() % 1000000007u);
  return seed;
}

using sxt::TmpDir;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

uint64_t FileSize(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (uint64_t)st.st_size : 0;
}

// A worker_crash process and the reports it sends through its pipe.
class Worker {
 public:
  Worker() = default;
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;
  ~Worker() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (rfd_ >= 0) close(rfd_);
  }

  void Start(const std::string &db, const char *mode, uint64_t after, uint64_t seed) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0) << strerror(errno);
    // Everything the child needs is prepared before fork().
    std::string after_s = std::to_string(after), seed_s = std::to_string(seed);
    char fd_s[16];
    snprintf(fd_s, sizeof fd_s, "%d", fds[1]);
    pid_t pid = fork();
    ASSERT_GE(pid, 0) << strerror(errno);
    if (pid == 0) {
      fcntl(fds[1], F_SETFD, 0);  // the write end survives exec; the read end does not
      execl(SX_WORKER_CRASH, SX_WORKER_CRASH, db.c_str(), fd_s, mode, after_s.c_str(),
            seed_s.c_str(), (char *)nullptr);
      _exit(127);
    }
    close(fds[1]);
    pid_ = pid;
    rfd_ = fds[0];
  }

  // Waits until a report with this tag arrives (true), the worker's pipe closes or
  // timeout_ms pass (false).
  bool WaitFor(char tag, int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!Seen(tag) && !eof_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      Pump((int)left.count());
    }
    return Seen(tag);
  }

  // SIGKILLs the worker, reaps it and reads every report it left.
  void Kill() {
    ASSERT_GT(pid_, 0);
    kill(pid_, SIGKILL);
    ASSERT_EQ(waitpid(pid_, &status_, 0), pid_);
    pid_ = -1;
    while (!eof_) Pump(-1);
  }

  // True when the worker died of our SIGKILL rather than on its own.
  bool Killed() const {
    return WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL;
  }
  std::string Status() const {
    char b[64];
    if (WIFEXITED(status_))
      snprintf(b, sizeof b, "exited with status %d", WEXITSTATUS(status_));
    else if (WIFSIGNALED(status_))
      snprintf(b, sizeof b, "died of signal %d", WTERMSIG(status_));
    else
      snprintf(b, sizeof b, "status 0x%x", status_);
    return b;
  }

  bool started = false;    // "S g" arrived
  uint64_t start_gen = 0;  // the generation the worker found on open
  uint64_t acked = 0;      // the last acknowledged generation (valid if nacks)
  uint64_t nacks = 0;      // acknowledged commits
  bool stalled = false;    // "X mode g" arrived
  std::string stall_mode;
  uint64_t stall_gen = 0;      // the generation in flight at the stall
  std::string protocol_error;  // reports out of order or malformed

 private:
  bool Seen(char tag) const {
    return (tag == 'S' && started) || (tag == 'A' && nacks > 0) || (tag == 'X' && stalled);
  }

  void Pump(int timeout_ms) {
    pollfd p = {rfd_, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) return;
    if (r <= 0) return;
    char b[4096];
    ssize_t n = read(rfd_, b, sizeof b);
    if (n < 0 && errno == EINTR) return;
    if (n <= 0) {
      eof_ = true;
      return;
    }
    buf_.append(b, (size_t)n);
    size_t nl;
    while ((nl = buf_.find('\n')) != std::string::npos) {
      Line(buf_.substr(0, nl));
      buf_.erase(0, nl + 1);
    }
  }

  void Line(const std::string &l) {
    char what[32] = {0};
    unsigned long long v = 0;
    if (l.size() > 2 && l[0] == 'S' && sscanf(l.c_str(), "S %llu", &v) == 1 && !started) {
      started = true;
      start_gen = v;
    } else if (l.size() > 2 && l[0] == 'A' && sscanf(l.c_str(), "A %llu", &v) == 1 && started &&
               v == (nacks ? acked : start_gen) + 1) {
      acked = v;
      nacks++;
    } else if (l.size() > 2 && l[0] == 'X' && sscanf(l.c_str(), "X %31s %llu", what, &v) == 2 &&
               !stalled) {
      stalled = true;
      stall_mode = what;
      stall_gen = v;
    } else if (protocol_error.empty()) {
      protocol_error = "unexpected report '" + l + "'";
    }
  }

  pid_t pid_ = -1;
  int rfd_ = -1;
  int status_ = 0;
  bool eof_ = false;
  std::string buf_;
};

// Opens path, checks it holds one consistent generation (returned in *g) and
// passes the integrity check, closes it.
void OpenVerifyCheck(const std::string &path, bool read_only, uint64_t *g) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.read_only = read_only ? 1 : 0;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_open(&db, path.c_str(), &o, &err), SX_OK)
      << (read_only ? "read-only " : "") << "open: " << err.message;
  char why[512];
  int bad = wl_verify_db(db, g, why, sizeof why);
  sx_error cerr = SX_ERROR_INIT;
  int crc = wl_check(db, &cerr);
  sx_db_free(db);
  ASSERT_EQ(bad, 0) << "inconsistent after recovery: " << why;
  ASSERT_EQ(crc, SX_OK) << "integrity check: " << cerr.message;
}

// ---------------------------------------------------------------------------
// 1. kill -9 at random instants
// ---------------------------------------------------------------------------

TEST(Crash, KillNineAtRandomInstants) {
  const uint64_t iterations = EnvU64("SX_CRASH_ITERATIONS", 200);
  const uint64_t seed = BaseSeed();
  printf("[ KillNine: %llu iterations, SX_CRASH_SEED=%llu ]\n", (unsigned long long)iterations,
         (unsigned long long)seed);
  TmpDir t("crash");
  const std::string shm = t.db + "-shm";
  uint64_t rng = seed;
  uint64_t gen = 0;  // the generation recovered after the previous kill
  static const char *const kStaged[] = {"wal-write", "wal-sync", "publish", "ckpt-write"};
  uint64_t after_commit = 0, inflight_survived = 0, before_ready = 0, readonly_first = 0,
           staged_kills = 0;
  uint64_t total_acked = 0;
  auto t0 = Clock::now();
  for (uint64_t it = 0; it < iterations; it++) {
    const unsigned delay_ms = 1 + (unsigned)(sx_test_splitmix64(&rng) % 40);
    const bool from_ready = it % 2 == 1;  // odd runs: the delay counts from the worker's open
    const uint64_t wseed = sx_test_splitmix64(&rng);
    // Every 8th kill is staged instead: it lands at a chosen point of a commit (a
    // torn append, unsynced frames, indexed but unpublished frames, inside the
    // checkpoint), where a random instant rarely falls (most land in fsync).
    const bool staged = it % 8 == 7;
    const char *mode = staged ? kStaged[(it / 8) % 4] : "run";
    const uint64_t after = staged ? sx_test_splitmix64(&rng) % 4 : 0;
    SCOPED_TRACE("iteration " + std::to_string(it) + ", " +
                 (staged ? std::string("staged ") + mode + " after " + std::to_string(after)
                         : "delay " + std::to_string(delay_ms) + " ms from " +
                               (from_ready ? "ready" : "spawn")) +
                 ", SX_CRASH_SEED=" + std::to_string(seed));
    Worker w;
    ASSERT_NO_FATAL_FAILURE(w.Start(t.db, mode, after, wseed));
    if (staged) {
      staged_kills++;
      ASSERT_TRUE(w.WaitFor('X', 30000)) << "the worker never reached its stall point";
    } else {
      if (from_ready) {
        ASSERT_TRUE(w.WaitFor('S', 30000)) << "worker never became ready";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    ASSERT_NO_FATAL_FAILURE(w.Kill());
    ASSERT_TRUE(w.Killed()) << "worker ended on its own: " << w.Status();
    ASSERT_EQ(w.protocol_error, "");
    if (w.started) {
      ASSERT_EQ(w.start_gen, gen) << "the worker found another generation than we recovered";
    } else {
      before_ready++;
    }
    const uint64_t ack = w.nacks ? w.acked : gen;
    if (w.nacks) after_commit++;
    total_acked += w.nacks;

    if (it % 5 == 4) unlink(shm.c_str());  // -shm is derived state: recovery must not need it
    uint64_t g_ro = 0, g = 0;
    const bool ro = it % 3 == 2;
    if (ro) {
      readonly_first++;
      ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(t.db, true, &g_ro));
    }
    ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(t.db, false, &g));
    if (ro) {
      ASSERT_EQ(g_ro, g) << "read-only and read-write recovery disagree";
    }
    ASSERT_GE(g, ack) << "an acknowledged commit was lost";
    ASSERT_LE(g, ack + 1) << "more than the one commit in flight appeared";
    if (staged) {
      ASSERT_EQ(w.stall_gen, ack + 1);
      if (strcmp(mode, "ckpt-write") != 0) {
        ASSERT_EQ(w.nacks, after);
      }
      // A torn append never holds its commit frame; once the frames are all
      // written (in the page cache, which a killed process does not lose) the
      // commit is complete and recovery must find it.
      ASSERT_EQ(g, strcmp(mode, "wal-write") == 0 ? ack : ack + 1);
    }
    if (g == ack + 1) inflight_survived++;
    gen = g;
  }
  double secs = Seconds(t0);
  printf(
      "[ KillNine: %llu kills in %.1f s (%llu staged); %llu landed after >= 1 acknowledged "
      "commit of their run, %llu before the worker was ready; %llu commits acknowledged in all; "
      "the in-flight commit survived %llu times; %llu recoveries read-only first; final "
      "generation %llu ]\n",
      (unsigned long long)iterations, secs, (unsigned long long)staged_kills,
      (unsigned long long)after_commit, (unsigned long long)before_ready,
      (unsigned long long)total_acked, (unsigned long long)inflight_survived,
      (unsigned long long)readonly_first, (unsigned long long)gen);
  RecordProperty("kills_after_commit", std::to_string(after_commit));
  // Not vacuous: workers did commit, and every staged kill reached its point
  // mid-commit (asserted above). How many random kills land after a commit depends
  // on the machine's fsync latency, so only its being nonzero is required.
  if (iterations >= 16) {
    EXPECT_GT(after_commit, 0u);
  }
  EXPECT_GT(gen, 0u);
}

// ---------------------------------------------------------------------------
// 2. A concurrently open survivor cleans up after a dead writer
// ---------------------------------------------------------------------------

TEST(Crash, SurvivorCleansUpDeadWriter) {
  const uint64_t seed = BaseSeed() ^ 0x5u;
  printf("[ Survivor: SX_CRASH_SEED=%llu ]\n", (unsigned long long)BaseSeed());
  TmpDir t("survivor");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 1000000;  // the survivor checkpoints only when told
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_OK) << err.message;
  uint64_t rng = seed;
  uint64_t gen = 1;
  ASSERT_EQ(wl_commit(db, gen, kWorkerPages, kWorkerPages, seed, 1000, &err), SX_OK) << err.message;

  struct Round {
    const char *mode;
    uint64_t after;  // commits the worker makes before the one it dies in
    bool restarted;  // survivor checkpoints fully first: the worker restarts the WAL
  };
  std::vector<Round> rounds = {
      {"wal-write", 0, false},  {"wal-write", 2, false}, {"wal-write", 0, true},
      {"wal-sync", 0, false},   {"wal-sync", 3, false},  {"wal-sync", 0, true},
      {"publish", 0, false},    {"publish", 2, false},   {"publish", 0, true},
      {"ckpt-write", 0, false},
  };
  for (int i = 0; i < 12; i++) rounds.push_back({"run", 0, i % 3 == 0});
  char why[512];
  int round_no = 0;
  for (const Round &rd : rounds) {
    round_no++;
    SCOPED_TRACE(std::string("round ") + std::to_string(round_no) + " (" + rd.mode + ", after " +
                 std::to_string(rd.after) + (rd.restarted ? ", restarted WAL" : "") + ")");
    // A commit of our own, so the snapshot we pin has frames not yet in P.
    ASSERT_EQ(wl_commit(db, gen + 1, kWorkerPages, 1 + (uint32_t)(sx_test_splitmix64(&rng) % 64),
                        seed + 1, 1000, &err),
              SX_OK)
        << err.message;
    gen++;
    if (rd.restarted) {
      ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
      sx_db_stats st = SX_DB_STATS_INIT;
      ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
      ASSERT_EQ(st.wal_backfilled, st.wal_frames) << "no reader: the checkpoint must be complete";
    }
    sx_read *pin = nullptr;
    ASSERT_EQ(sx_read_begin(db, &pin, &err), SX_OK) << err.message;
    const uint64_t pinned = gen;

    Worker w;
    ASSERT_NO_FATAL_FAILURE(w.Start(t.db, rd.mode, rd.after, sx_test_splitmix64(&rng)));
    const bool stall_mode = strcmp(rd.mode, "run") != 0;
    if (stall_mode) {
      ASSERT_TRUE(w.WaitFor('X', 30000)) << "the worker never reached its stall point";
    } else {
      ASSERT_TRUE(w.WaitFor('S', 30000)) << "worker never became ready";
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + sx_test_splitmix64(&rng) % 40));
    }
    ASSERT_NO_FATAL_FAILURE(w.Kill());
    ASSERT_TRUE(w.Killed()) << "worker ended on its own: " << w.Status();
    ASSERT_EQ(w.protocol_error, "");
    ASSERT_TRUE(w.started);
    ASSERT_EQ(w.start_gen, gen) << "the worker did not see the survivor's latest commit";
    // The stall comes in the commit after the first `after` ones (the checkpoint
    // stall: in the first commit from then on that checkpoints).
    if (strcmp(rd.mode, "ckpt-write") == 0) {
      ASSERT_GE(w.nacks, rd.after);
    } else if (stall_mode) {
      ASSERT_EQ(w.nacks, rd.after);
    }
    const uint64_t ack = w.nacks ? w.acked : gen;

    // The latest state, as the survivor sees it without any recovery. The
    // integrity check goes first: it reads the WAL with pread, so frames published
    // but missing from the file are an error here rather than a SIGBUS in the map.
    ASSERT_EQ(wl_check(db, &err), SX_OK) << err.message;
    uint64_t g = 0;
    ASSERT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
    if (stall_mode) {
      ASSERT_EQ(w.stall_mode, rd.mode);
      ASSERT_EQ(w.stall_gen, ack + 1);
      // Only the checkpoint stall comes after the commit was published.
      if (strcmp(rd.mode, "ckpt-write") == 0) {
        ASSERT_EQ(g, ack + 1) << "a published commit is missing";
      } else {
        ASSERT_EQ(g, ack) << "an unpublished commit became visible";
      }
    } else {
      ASSERT_GE(g, ack);
      ASSERT_LE(g, ack + 1);
    }
    uint64_t gp = 0;
    ASSERT_EQ(wl_verify(pin, &gp, why, sizeof why), 0) << "pinned snapshot damaged: " << why;
    ASSERT_EQ(gp, pinned);

    // The survivor takes over as the writer, over whatever the dead one left.
    ASSERT_EQ(wl_commit(db, g + 1, kWorkerPages, 1 + (uint32_t)(sx_test_splitmix64(&rng) % 64),
                        seed + 2, 1000, &err),
              SX_OK)
        << err.message;
    gen = g + 1;
    ASSERT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
    ASSERT_EQ(g, gen);
    ASSERT_EQ(wl_check(db, &err), SX_OK) << err.message;
    ASSERT_EQ(wl_verify(pin, &gp, why, sizeof why), 0) << "pinned snapshot damaged: " << why;
    ASSERT_EQ(gp, pinned);
    if (round_no % 2 == 0) {
      // A checkpoint limited by the pinned reader, then a complete one.
      ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
      ASSERT_EQ(wl_verify(pin, &gp, why, sizeof why), 0) << "pinned snapshot damaged: " << why;
      ASSERT_EQ(gp, pinned);
      sx_read_free(pin);
      pin = nullptr;
      ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
      sx_db_stats st = SX_DB_STATS_INIT;
      ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
      ASSERT_EQ(st.readers, 0u) << "the dead worker left a reader slot pinned";
      ASSERT_EQ(st.wal_backfilled, st.wal_frames);
      ASSERT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
      ASSERT_EQ(g, gen);
    }
    sx_read_free(pin);
  }
  sx_db_free(db);
  // A full recovery finds the survivor's last commit, and nothing of the dead.
  uint64_t g = 0;
  ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(t.db, false, &g));
  EXPECT_EQ(g, gen);
  unlink((t.db + "-shm").c_str());
  ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(t.db, true, &g));
  EXPECT_EQ(g, gen);
}

// ---------------------------------------------------------------------------
// 3. WAL damage
// ---------------------------------------------------------------------------

constexpr uint32_t kDmgPages = 40;
constexpr uint64_t kDmgCommits = 12;

// A database whose WAL holds kDmgCommits commits (never checkpointed), as images.
struct WalImage {
  std::vector<uint8_t> p, wal;
  std::vector<uint64_t> ends;  // ends[g]: WAL size once commit g was written; ends[0] = header
  // The last generation whose frames all end at or before byte `cut`.
  uint64_t LastBefore(uint64_t cut) const {
    uint64_t g = 0;
    for (uint64_t k = 1; k < ends.size(); k++)
      if (ends[k] <= cut) g = k;
    return g;
  }
};

void BuildWalImage(WalImage *img, sx_sync sync = SX_SYNC_FULL) {
  TmpDir t("walsrc");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 1000000;
  o.sync = sync;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_OK) << err.message;
  uint64_t rng = 42;
  img->ends.assign(1, kWalHdr);
  for (uint64_t g = 1; g <= kDmgCommits; g++) {
    uint32_t touch = 3 + (uint32_t)(sx_test_splitmix64(&rng) % 18);
    ASSERT_EQ(wl_commit(db, g, kDmgPages, touch, 11, 1000, &err), SX_OK) << err.message;
    // Where the commit ends: the WAL file itself is grown ahead in zero-filled
    // chunks, so its size does not tell.
    sx_db_stats st = SX_DB_STATS_INIT;
    ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
    uint64_t end = kWalHdr + st.wal_frames * kFrame;
    ASSERT_GT(end, img->ends.back());
    ASSERT_GE(FileSize(t.db + "-wal"), end);
    img->ends.push_back(end);
  }
  // Read while the handle is open: closing the last handle checkpoints and empties
  // the WAL. The image stops at the last commit (the zeros after it add nothing).
  img->p = sxt::ReadBytes(t.db);
  img->wal = sxt::ReadBytes(t.db + "-wal");
  img->wal.resize(img->ends.back());
  sx_db_free(db);
  // Never checkpointed: P is the header page alone (and its checksum page),
  // generation 0.
  ASSERT_EQ(img->p.size(), 2 * kPageSize);
  ASSERT_EQ(img->wal.size(), img->ends.back());
}

// Writes P, P-wal and P-wal2 (removed when wal2 is NULL) from images.
void PlaceImages(const std::string &db, const std::vector<uint8_t> &p,
                 const std::vector<uint8_t> &wal, const std::vector<uint8_t> *wal2) {
  ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(db, p.data(), p.size()));
  ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(db + "-wal", wal.data(), wal.size()));
  if (wal2) {
    ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(db + "-wal2", wal2->data(), wal2->size()));
  } else {
    unlink((db + "-wal2").c_str());
  }
}

// Puts the images in place as a database whose -shm is gone (so opening recovers
// from the files alone), opens it and returns the generation it holds, checking
// consistency and integrity. With then_commit, commits one more small generation,
// closes, deletes the -shm, reopens and checks that exactly that generation is
// found: the stale tail behind it must stay dead.
// wal2 is the second WAL file (odd generations); absent unless given.
void RecoverImage(const std::string &db, const std::vector<uint8_t> &p,
                  const std::vector<uint8_t> &wal, bool then_commit, uint64_t *g,
                  const std::vector<uint8_t> *wal2 = nullptr) {
  ASSERT_NO_FATAL_FAILURE(PlaceImages(db, p, wal, wal2));
  unlink((db + "-shm").c_str());
  ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(db, false, g));
  if (!then_commit) return;
  sx_db *h = nullptr;
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_open(&h, db.c_str(), nullptr, &err), SX_OK) << err.message;
  int rc = wl_commit(h, *g + 1, kDmgPages, 1, 977, 1000, &err);
  sx_db_free(h);
  ASSERT_EQ(rc, SX_OK) << err.message;
  unlink((db + "-shm").c_str());
  uint64_t g2 = 0;
  ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(db, false, &g2));
  ASSERT_EQ(g2, *g + 1) << "the commit made after recovery is not exactly what a reopen finds";
}

// Puts the images in place as in RecoverImage and expects every open, read-write and
// read-only, to refuse them with SX_CORRUPT (damage, not a torn tail).
void ExpectCorruptImage(const std::string &db, const std::vector<uint8_t> &p,
                        const std::vector<uint8_t> &wal,
                        const std::vector<uint8_t> *wal2 = nullptr) {
  ASSERT_NO_FATAL_FAILURE(PlaceImages(db, p, wal, wal2));
  for (int ro = 0; ro < 2; ro++) {
    unlink((db + "-shm").c_str());
    sx_open_options o = SX_OPEN_OPTIONS_INIT;
    o.read_only = ro;
    sx_db *h = nullptr;
    sx_error err = SX_ERROR_INIT;
    sx_status rc = sx_db_open(&h, db.c_str(), &o, &err);
    sx_db_free(h);
    ASSERT_EQ(rc, SX_CORRUPT) << (ro ? "read-only " : "") << "open: " << err.message;
  }
}

uint64_t Salts(const std::vector<uint8_t> &wal, uint64_t off) {
  uint64_t s = 0;
  memcpy(&s, wal.data() + off, 8);
  return s;
}

uint32_t Gen(const std::vector<uint8_t> &wal) {
  uint32_t g = 0;
  memcpy(&g, wal.data() + 12, 4);
  return g;
}

// Expected outcome of a damaged WAL besides a generation.
constexpr uint64_t kCorrupt = UINT64_MAX;

// One flipped byte. A bad frame followed by whole frames up to a commit frame is
// damage, not a tear, and gives SX_CORRUPT, never a silent rollback of acknowledged
// commits (the last one included), whatever field of the frame's header the byte is
// in: page number, commit field, salts, stored checksum, in a commit frame as in any
// other; in a page image too, a commit frame's included when the commits were made at
// sync=full (each commit's frames are synced before the next commit says so in its
// commit frame, so no power cut can tear them). Only the file's very last frame
// (nothing follows it) rolls back to the commit before. Without syncs between
// commits (sync_commits false) a commit frame's page image rolls back too: a power
// cut can tear it and keep the next commit whole (wal.c), and nothing tells that from
// damage. A damaged WAL header over committed frames, with no other WAL file, is
// SX_CORRUPT too (a header is written and synced before its generation's frames, so
// it is never torn over them).
void FlipEveryFrame(bool sync_commits) {
  WalImage img;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img, sync_commits ? SX_SYNC_FULL : SX_SYNC_NORMAL));
  TmpDir t("walflip");
  const uint64_t nframes = (img.wal.size() - kWalHdr) / kFrame;
  uint64_t rng = 7;
  // (offset, expected generation or kCorrupt) pairs.
  std::vector<std::pair<uint64_t, uint64_t>> cases;
  for (uint64_t off = 0; off < kWalHdr; off++) cases.push_back({off, kCorrupt});
  for (uint64_t f = 0; f < nframes; f++) {
    const uint64_t start = kWalHdr + f * kFrame;
    const bool last = f + 1 == nframes;
    const uint64_t want = last ? img.LastBefore(start) : kCorrupt;
    bool commit_frame = false;
    for (uint64_t e : img.ends) commit_frame |= e == start + kFrame;
    const uint64_t before = img.LastBefore(start);
    if (commit_frame) {
      // Every byte of a commit frame's header: page number, commit field, salts,
      // stored checksum.
      for (uint64_t h = 0; h < kFrameHdr; h++) cases.push_back({start + h, want});
      const uint64_t image = sync_commits ? want : before;
      cases.push_back({start + kFrame - 1, image});  // the commit's last byte
      cases.push_back({start + kFrameHdr + sx_test_splitmix64(&rng) % kPageSize, image});
    } else {
      cases.push_back({start + f % kFrameHdr, want});  // one header byte, field by field
      cases.push_back({start + kFrameHdr + sx_test_splitmix64(&rng) % kPageSize, want});
    }
  }
  auto t0 = Clock::now();
  size_t n = 0, corrupt = 0;
  for (const auto &c : cases) {
    SCOPED_TRACE("flip at WAL offset " + std::to_string(c.first));
    std::vector<uint8_t> wal = img.wal;
    wal[c.first] ^= (uint8_t)(1 + sx_test_splitmix64(&rng) % 255);
    if (c.second == kCorrupt) {
      ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(t.db, img.p, wal));
      corrupt++;
      continue;
    }
    uint64_t g = 0;
    ASSERT_NO_FATAL_FAILURE(RecoverImage(t.db, img.p, wal, n++ % 6 == 0, &g));
    ASSERT_EQ(g, c.second);
  }
  // Rolled back: the last frame's bytes, and without syncs every commit frame's image.
  EXPECT_EQ(corrupt, cases.size() - kFrameHdr - (sync_commits ? 2 : 2 * kDmgCommits));
  printf("[ flipped bytes: %zu cases over %llu frames (%zu corrupt), %.1f s ]\n", cases.size(),
         (unsigned long long)nframes, corrupt, Seconds(t0));
}

TEST(Crash, WalDamageFlippedByte) {
  FlipEveryFrame(true);
}
TEST(Crash, WalDamageFlippedByteWithoutSyncs) {
  FlipEveryFrame(false);
}

// Damage that leaves nothing to chain from: a whole frame zeroed, two frames swapped,
// a byte flipped in each of two neighbouring frames. At sync=full each commit's first
// frame says that every frame before it was synced first (FRAME_DURABLE), so one
// after the damage proves it is not a tear: SX_CORRUPT, unless the damage reaches the
// last commit's first frame (then the commits from the damaged one on roll back, as a
// tear would). Without syncs between commits the same damage rolls back to the last
// commit before it: a power cut can lose any frames the system had not written back.
void DamageWholeFrames(bool sync_commits) {
  WalImage img;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img, sync_commits ? SX_SYNC_FULL : SX_SYNC_NORMAL));
  TmpDir t("walwhole");
  const uint64_t nframes = (img.wal.size() - kWalHdr) / kFrame;
  uint64_t rng = 29;
  auto frame = [](uint64_t f) { return kWalHdr + f * kFrame; };
  size_t corrupt = 0, rolled = 0, n = 0;
  for (uint64_t f = 0; f + 1 < nframes; f++) {
    for (int how = 0; how < 3; how++) {
      std::vector<uint8_t> wal = img.wal;
      // The proof: a commit's first frame, its header whole, somewhere after the
      // damaged frame (the commits start at ends[0..]).
      auto first = [&](uint64_t off) {
        return std::find(img.ends.begin(), img.ends.end() - 1, off) != img.ends.end() - 1;
      };
      bool proof = false;
      for (uint64_t j = f + 1; j < nframes; j++) proof |= first(frame(j));
      if (how == 0) {
        memset(wal.data() + frame(f), 0, kFrame);
      } else if (how == 1) {
        const uint64_t g = f + 1 + sx_test_splitmix64(&rng) % (nframes - f - 1);
        std::swap_ranges(wal.begin() + (long)frame(f), wal.begin() + (long)frame(f + 1),
                         wal.begin() + (long)frame(g));
        // Frame g's header now stands where the break is; frame f's after it.
        proof = first(frame(f));
        for (uint64_t j = f + 1; j < nframes; j++) proof |= j != g && first(frame(j));
      } else {
        // Page images only: every header stays whole.
        wal[frame(f) + kFrameHdr + sx_test_splitmix64(&rng) % kPageSize] ^= 0x10;
        wal[frame(f + 1) + kFrameHdr + sx_test_splitmix64(&rng) % kPageSize] ^= 0x10;
      }
      SCOPED_TRACE("frame " + std::to_string(f) + ", damage " + std::to_string(how));
      if (sync_commits && proof) {
        ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(t.db, img.p, wal));
        corrupt++;
      } else {
        uint64_t g = 0;
        ASSERT_NO_FATAL_FAILURE(RecoverImage(t.db, img.p, wal, n++ % 8 == 0, &g));
        ASSERT_EQ(g, img.LastBefore(frame(f)));
        rolled++;
      }
    }
  }
  EXPECT_EQ(corrupt > 0, sync_commits);
  printf("[ whole frames: %zu corrupt, %zu rolled back ]\n", corrupt, rolled);
}

TEST(Crash, WalDamageWholeFrames) {
  DamageWholeFrames(true);
}
TEST(Crash, WalDamageWholeFramesWithoutSyncs) {
  DamageWholeFrames(false);
}

// The WAL header and frame 1 both damaged (the salts of each, say), so nothing
// chains from the start: the frames behind still chain among themselves up to their
// commits, so the file is refused, never read as an empty WAL. The header and frame
// 1's header cleared to zeros, as sx__wal_restart leaves a file, is no WAL at all.
TEST(Crash, WalHeaderAndFirstFrameDamaged) {
  WalImage img;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img));
  TmpDir t("walhdrf1");
  for (uint64_t at : {(uint64_t)16, (uint64_t)4, (uint64_t)40}) {
    SCOPED_TRACE("header byte " + std::to_string(at));
    std::vector<uint8_t> wal = img.wal;
    wal[at] ^= 0x21;
    wal[kWalHdr + 8] ^= 0x02;  // frame 1's first salt
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(t.db, img.p, wal));
    memset(wal.data() + kWalHdr + kFrameHdr, 0, kPageSize);  // frame 1 zeroed whole
    memset(wal.data() + kWalHdr, 0, kFrameHdr);
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(t.db, img.p, wal));
  }
  std::vector<uint8_t> wal = img.wal;
  memset(wal.data(), 0, kWalHdr + kFrameHdr);
  uint64_t g = 0;
  ASSERT_NO_FATAL_FAILURE(RecoverImage(t.db, img.p, wal, true, &g));
  EXPECT_EQ(g, 0u);
}

// P truncated to nothing beside a WAL that holds its commits: refused, never taken for
// a new database (which would drop the WAL as another database's). An empty P beside
// no WAL, or beside a WAL cleared as sx__wal_restart clears one, is a new database.
TEST(Crash, EmptyDatabaseFileBesideItsWal) {
  WalImage img;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img));
  TmpDir t("walemptyp");
  const std::vector<uint8_t> none;
  for (int ro = 0; ro < 2; ro++) {
    ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(t.db, none.data(), 0));
    ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(t.db + "-wal", img.wal.data(), img.wal.size()));
    unlink((t.db + "-shm").c_str());
    sx_open_options o = SX_OPEN_OPTIONS_INIT;
    o.read_only = ro;
    sx_db *db = nullptr;
    sx_error err = SX_ERROR_INIT;
    EXPECT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_CORRUPT) << "read_only " << ro;
    sx_db_free(db);
    EXPECT_EQ(sxt::ReadBytes(t.db + "-wal"), img.wal) << "the WAL is left as it was";
  }
  std::vector<uint8_t> cleared = img.wal;
  memset(cleared.data(), 0, kWalHdr + kFrameHdr);
  for (const std::vector<uint8_t> *wal :
       std::vector<const std::vector<uint8_t> *>{&none, &cleared}) {
    ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(t.db, none.data(), 0));
    ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(t.db + "-wal", wal->data(), wal->size()));
    unlink((t.db + "-shm").c_str());
    sx_db *db = nullptr;
    sx_error err = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_open(&db, t.db.c_str(), nullptr, &err), SX_OK) << err.message;
    sx_read *r = nullptr;
    sx_names *names = nullptr;
    ASSERT_EQ(sx_read_begin(db, &r, &err), SX_OK);
    ASSERT_EQ(sx_read_list_collections(r, &names, &err), SX_OK);
    EXPECT_EQ(sx_names_count(names), 0u) << "a new, empty database";
    sx_names_free(names);
    sx_read_free(r);
    sx_db_free(db);
  }
}

// A torn tail is never taken for damage: after the last commit (whole, or cut at a
// frame boundary or inside a frame) come zeros, random bytes, or the frames of an
// older generation (another generation's salts, chaining among themselves, as a
// reused WAL file holds them); recovery rolls back to the last whole commit.
TEST(Crash, WalTornTailIsNotDamage) {
  WalImage img, old;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img));
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&old));  // another database: other salts
  ASSERT_NE(Salts(img.wal, 16), Salts(old.wal, 16));
  TmpDir t("waltorn");
  uint64_t rng = 11;
  std::vector<uint64_t> cuts;
  for (uint64_t k = img.ends.size() - 3; k < img.ends.size(); k++) {
    const uint64_t e = img.ends[k];
    for (uint64_t d : {(uint64_t)0, kFrameHdr / 2, kFrameHdr, kFrame / 2}) cuts.push_back(e - d);
    cuts.push_back(e - kFrame);  // the commit frame gone
  }
  auto t0 = Clock::now();
  size_t n = 0;
  for (uint64_t cut : cuts) {
    for (int tail = 0; tail < 3; tail++) {
      SCOPED_TRACE("cut at " + std::to_string(cut) + ", tail " + std::to_string(tail));
      std::vector<uint8_t> wal(img.wal.begin(), img.wal.begin() + (long)cut);
      if (tail == 0) {
        wal.resize(cut + 8 * kFrame, 0);
      } else if (tail == 1) {
        for (uint64_t i = 0; i < 8 * kFrame; i++) wal.push_back((uint8_t)sx_test_splitmix64(&rng));
      } else {
        // The older generation's frames from the next frame boundary on (the file as
        // reused; the same workload wrote them, so only their salts and checksums
        // differ), zeros up to it.
        const uint64_t b = kWalHdr + (cut - kWalHdr + kFrame - 1) / kFrame * kFrame;
        wal.resize(b, 0);
        wal.insert(wal.end(), old.wal.begin() + (long)b, old.wal.end());
      }
      uint64_t g = 0;
      ASSERT_NO_FATAL_FAILURE(RecoverImage(t.db, img.p, wal, n++ % 4 == 0, &g));
      ASSERT_EQ(g, img.LastBefore(cut));
    }
  }
  printf("[ WalTornTailIsNotDamage: %zu cases, %.1f s ]\n", n, Seconds(t0));
}

// A commit that was written but never published (its writer died between the WAL
// write and the publish while another process kept the database open) leaves whole
// frames of this generation, its commit frame included, behind the next commit when
// that one is shorter. They chain from their own commit's frames, not from the
// survivor's, and must never read as damage at the next recovery: the survivor's
// commit zeroes the frame header that follows it.
TEST(Crash, UnpublishedLeftoversAreNotDamage) {
  WalImage img;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img));
  const uint64_t k = img.ends.size() - 1;  // the last commit plays the dead writer's
  TmpDir t("walleft");
  // The survivor: the state before commit k, and one small commit k written there.
  // (Opened in place: a close would checkpoint and restart the WAL.)
  ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(t.db, img.p.data(), img.p.size()));
  ASSERT_NO_FATAL_FAILURE(sxt::WriteBytes(t.db + "-wal", img.wal.data(), img.ends[k - 1]));
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 1000000;
  sx_db *h = nullptr;
  sx_error err = SX_ERROR_INIT;
  char why[512];
  ASSERT_EQ(sx_db_open(&h, t.db.c_str(), &o, &err), SX_OK) << err.message;
  uint64_t g = 0;
  ASSERT_EQ(wl_verify_db(h, &g, why, sizeof why), 0) << why;
  ASSERT_EQ(g, k - 1);
  // The dead writer's commit k, written into the WAL but never published.
  {
    int fd = open((t.db + "-wal").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const uint64_t off = img.ends[k - 1], len = img.ends[k] - off;
    ASSERT_EQ(pwrite(fd, img.wal.data() + off, len, (off_t)off), (ssize_t)len);
    close(fd);
  }
  ASSERT_EQ(wl_commit(h, k, kDmgPages, 1, 977, 1000, &err), SX_OK) << err.message;
  sx_db_stats st = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(h, &st, &err), SX_OK);
  const uint64_t end = kWalHdr + st.wal_frames * kFrame;
  ASSERT_LT(end + 2 * kFrame, img.ends[k]) << "the leftover commit must be longer";
  // The files as a crash of the survivor leaves them.
  const std::vector<uint8_t> wal = sxt::ReadBytes(t.db + "-wal");
  sx_db_free(h);
  TmpDir c("walleftc");
  ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, img.p, wal, true, &g));
  EXPECT_EQ(g, k);
}

// The same through a real process: a child commits several generations and exits
// without a checkpoint (its -wal and -shm stay behind, as after a crash). A byte
// flipped in a middle frame makes the next open refuse the database with SX_CORRUPT
// naming the frame; the WAL cut inside its last commit instead (a torn tail) keeps
// every earlier commit, opens and passes the integrity check.
TEST(Crash, WalDamageInAChildsWal) {
  TmpDir t("walchild");
  constexpr uint64_t kGens = 6;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sx_open_options o = SX_OPEN_OPTIONS_INIT;
    o.autocheckpoint_frames = 1000000;
    sx_db *db = nullptr;
    if (sx_db_open(&db, t.db.c_str(), &o, nullptr) != SX_OK) _exit(2);
    for (uint64_t g = 1; g <= kGens; g++)
      if (wl_commit(db, g, kDmgPages, 8, 3, 1000, nullptr) != SX_OK) _exit(3);
    _exit(0);  // no close: the WAL is never checkpointed
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
  const std::vector<uint8_t> p = sxt::ReadBytes(t.db), wal = sxt::ReadBytes(t.db + "-wal");
  ASSERT_EQ(p.size(), 2 * kPageSize) << "never checkpointed (page 0 and its checksum page)";
  // Where the commits end: commit frames carry the database size (the low 31 bits).
  std::vector<uint64_t> ends;
  for (uint64_t off = kWalHdr; off + kFrame <= wal.size(); off += kFrame) {
    uint32_t salt0, s0, commit;
    memcpy(&salt0, wal.data() + 16, 4);
    memcpy(&s0, wal.data() + off + 8, 4);
    memcpy(&commit, wal.data() + off + 4, 4);
    if (s0 != salt0) break;
    if (commit & 0x7fffffffu) ends.push_back(off + kFrame);  // less FRAME_DURABLE
  }
  ASSERT_EQ(ends.size(), kGens);
  TmpDir c("walchildc");
  {
    // A page byte of the first frame of commit 3.
    std::vector<uint8_t> w = wal;
    w[ends[1] + kFrameHdr + 100] ^= 0x40;
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(c.db, p, w));
    sx_db *h = nullptr;
    sx_error err = SX_ERROR_INIT;
    unlink((c.db + "-shm").c_str());
    ASSERT_EQ(sx_db_open(&h, c.db.c_str(), nullptr, &err), SX_CORRUPT);
    const uint64_t frame = (ends[1] - kWalHdr) / kFrame + 1;
    EXPECT_NE(strstr(err.message, ("frame " + std::to_string(frame)).c_str()), nullptr)
        << err.message;
  }
  {
    // The tail cut inside the last commit: commits 1..kGens-1 stay.
    std::vector<uint8_t> w(wal.begin(), wal.begin() + (long)(ends[kGens - 1] - kFrame / 2));
    uint64_t g = 0;
    ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, p, w, true, &g));
    EXPECT_EQ(g, kGens - 1);
  }
  {
    // The child's files as it left them: everything.
    uint64_t g = 0;
    ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(t.db, false, &g));
    EXPECT_EQ(g, kGens);
  }
}

TEST(Crash, WalDamageTruncated) {
  WalImage img;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img));
  TmpDir t("waltrunc");
  const uint64_t size = img.wal.size();
  const uint64_t nframes = (size - kWalHdr) / kFrame;
  std::vector<uint64_t> cuts = {0, 1, 16, 32, 47, 48, 63, kWalHdr};
  for (uint64_t f = 0; f < nframes; f++) {
    const uint64_t start = kWalHdr + f * kFrame;
    for (uint64_t d : {(uint64_t)1, kFrameHdr, kFrameHdr + kPageSize / 2, kFrame - 1})
      cuts.push_back(start + d);
  }
  for (uint64_t e : img.ends) {
    cuts.push_back(e);  // exactly at a commit's end: that commit survives whole
    if (e > kWalHdr) cuts.push_back(e - kFrame);  // its commit frame cut off
  }
  auto t0 = Clock::now();
  size_t n = 0;
  for (uint64_t cut : cuts) {
    if (cut > size) continue;
    SCOPED_TRACE("WAL cut at " + std::to_string(cut) + " of " + std::to_string(size));
    std::vector<uint8_t> wal(img.wal.begin(), img.wal.begin() + (long)cut);
    uint64_t g = 0;
    ASSERT_NO_FATAL_FAILURE(RecoverImage(t.db, img.p, wal, n++ % 6 == 0, &g));
    // A WAL shorter than its header is no WAL: P alone.
    ASSERT_EQ(g, cut < kWalHdr ? 0 : img.LastBefore(cut));
  }
  printf("[ WalDamageTruncated: %zu cuts, %.1f s ]\n", cuts.size(), Seconds(t0));
}

// The WAL alternates between two files, P-wal (even generations) and P-wal2 (odd).
// A file is reused only after the generation it holds is wholly in P; reusing it
// overwrites its header (new salts) and its first frames, and the older frames
// behind them must never be replayed.
TEST(Crash, WalReuseNeverReplaysOlderFrames) {
  TmpDir t("walreuse");
  const std::string walp = t.db + "-wal", wal2p = t.db + "-wal2";
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 1000000;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  char why[512];
  ASSERT_EQ(sx_db_open(&db, t.db.c_str(), &o, &err), SX_OK) << err.message;
  uint64_t rng = 99;
  for (uint64_t g = 1; g <= kDmgCommits; g++)
    ASSERT_EQ(
        wl_commit(db, g, kDmgPages, 3 + (uint32_t)(sx_test_splitmix64(&rng) % 18), 5, 1000, &err),
        SX_OK)
        << err.message;
  std::vector<uint8_t> before = sxt::ReadBytes(walp);
  ASSERT_GT(before.size(), kWalHdr + 50 * kFrame);
  // Checkpoint everything (no readers), then one small commit: it moves to P-wal2.
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  sx_db_stats st = SX_DB_STATS_INIT;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  ASSERT_EQ(st.wal_backfilled, st.wal_frames);
  ASSERT_EQ(wl_commit(db, kDmgCommits + 1, kDmgPages, 1, 6, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  ASSERT_EQ(st.wal_frames, 3u)
      << "the small commit (page 0, manifest, one data page) starts a generation";
  ASSERT_EQ(sxt::ReadBytes(walp), before) << "P-wal is left alone";
  // Again: the next generation reuses P-wal, over its first frames.
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(wl_commit(db, kDmgCommits + 2, kDmgPages, 1, 7, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_stats_get(db, &st, &err), SX_OK);
  ASSERT_EQ(st.wal_frames, 3u);
  uint64_t g = 0;
  ASSERT_EQ(wl_verify_db(db, &g, why, sizeof why), 0) << why;
  ASSERT_EQ(g, kDmgCommits + 2);
  // Read while the handle is open (the last close empties the WAL).
  const std::vector<uint8_t> p = sxt::ReadBytes(t.db);
  const std::vector<uint8_t> after = sxt::ReadBytes(walp), after2 = sxt::ReadBytes(wal2p);
  sx_db_free(db);

  ASSERT_EQ(after.size(), before.size()) << "the stale frames must still be there for this test";
  ASSERT_EQ(Gen(after), Gen(before) + 2);
  ASSERT_EQ(Gen(after2), Gen(before) + 1);
  ASSERT_NE(Salts(after, 16), Salts(before, 16)) << "a reused WAL file must change its salts";
  const uint64_t new_end = kWalHdr + 3 * kFrame;
  ASSERT_EQ(Salts(after, kWalHdr + 8), Salts(after, 16)) << "new frames carry the new salts";
  // The frame header right after the last commit is zeroed (txn.c); the old frames
  // behind it are left as they were.
  ASSERT_EQ(Salts(after, new_end + 8), 0u) << "the header after the commit is zeroed";
  ASSERT_EQ(Salts(after, new_end + kFrame + 8), Salts(before, 16))
      << "old frames carry the old salts";
  ASSERT_EQ(memcmp(after.data() + new_end + kFrameHdr, before.data() + new_end + kFrameHdr,
                   after.size() - new_end - kFrameHdr),
            0);
  ASSERT_GE(p.size(), (kDmgPages + 2) * kPageSize);

  TmpDir c("walreusec");
  // As left: exactly the latest generation.
  ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, p, after, false, &g, &after2));
  EXPECT_EQ(g, kDmgCommits + 2);
  unlink((c.db + "-shm").c_str());
  ASSERT_NO_FATAL_FAILURE(OpenVerifyCheck(c.db, true, &g));
  EXPECT_EQ(g, kDmgCommits + 2);
  // The newest generation's first frame destroyed: the one before it, never the
  // stale frames behind.
  {
    std::vector<uint8_t> wal = after;
    for (uint64_t i = 0; i < kFrameHdr; i++) wal[kWalHdr + i] = (uint8_t)(0xA5 ^ (i * 37));
    ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, p, wal, false, &g, &after2));
    EXPECT_EQ(g, kDmgCommits + 1);
    ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, p, wal, true, &g, &after2));
    EXPECT_EQ(g, kDmgCommits + 1);
  }
  // The newest header destroyed, or zeroed: its committed frames are not the
  // generation P-wal2 builds on (a header is torn only over that one), so they are
  // newer: refused, never dropped. The header cleared with frame 1's header, as
  // sx__wal_restart clears a file, is no WAL at all.
  {
    std::vector<uint8_t> wal = after;
    for (uint64_t i = 0; i < kWalHdr; i++) wal[i] ^= 0x5A;
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(c.db, p, wal, &after2));
    // A frame before the commit frame damaged too: the commit frame behind it tells.
    std::vector<uint8_t> both = wal;
    both[kWalHdr + kFrame + kFrameHdr + 9] ^= 0x01;
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(c.db, p, both, &after2));
    for (uint64_t i = 0; i < kWalHdr; i++) wal[i] = 0;
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(c.db, p, wal, &after2));
    for (uint64_t i = 0; i < kWalHdr + kFrameHdr; i++) wal[i] = 0;
    ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, p, wal, false, &g, &after2));
    EXPECT_EQ(g, kDmgCommits + 1);
  }
  // The old header put back: its salts match the stale frames, but the frames now at
  // its start do not, and P-wal2's generation, which builds on it, holds commits:
  // nothing stale may be replayed, and the older generation is damaged under a newer
  // one's commits (a synced generation cannot be torn): refused.
  {
    std::vector<uint8_t> wal = after;
    memcpy(wal.data(), before.data(), kWalHdr);
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(c.db, p, wal, &after2));
  }
  // P-wal2 (the previous generation, which P-wal's builds on) damaged. Its header:
  // recovered without it (its frames end exactly where P-wal's header says),
  // everything readable. A byte of a page: refused at open, never a silent return to
  // an older state.
  {
    std::vector<uint8_t> w2 = after2;
    w2[20] ^= 0x11;
    ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, p, after, false, &g, &w2));
    EXPECT_EQ(g, kDmgCommits + 2);
    w2 = after2;
    w2[kWalHdr + kFrame + kFrameHdr + 7] ^= 0x11;
    ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(c.db, p, after, &w2));
  }
  // The newest generation cut at the end of its commit: the latest.
  {
    std::vector<uint8_t> wal(after.begin(), after.begin() + (long)new_end);
    ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, p, wal, false, &g, &after2));
    EXPECT_EQ(g, kDmgCommits + 2);
  }
}

// A commit frame's database size is a count read from disk that sizes what readers
// allocate (a graph's nslots is bounded by it): a page beyond P exists only if a
// frame wrote it, so a commit counting more pages than P's and the frames up to it
// is damage even under a valid checksum: SX_CORRUPT at open, never a database that
// claims gigabytes it does not hold. The largest size that can be true still opens.
TEST(Crash, WalCommitCountingPagesNoFrameWroteIsCorrupt) {
  WalImage img;
  ASSERT_NO_FATAL_FAILURE(BuildWalImage(&img));
  TmpDir t("walnpages");
  const uint64_t nframes = (img.wal.size() - kWalHdr) / kFrame;
  const uint64_t p_pages = 1;  // the header page (its checksum page is not counted)
  // Each commit's frame: the last of its frames (ends[g] is where commit g ended).
  for (uint64_t g : {(uint64_t)1, (uint64_t)kDmgCommits / 2, (uint64_t)kDmgCommits}) {
    const uint64_t f = (img.ends[g] - kWalHdr) / kFrame - 1;
    ASSERT_LT(f, nframes);
    for (uint32_t claim : {(uint32_t)(p_pages + f + 2), 0x00ffffffu, 0x7fffffffu}) {
      SCOPED_TRACE("commit " + std::to_string(g) + " claims " + std::to_string(claim));
      std::vector<uint8_t> wal = img.wal;
      uint8_t *fr = wal.data() + kWalHdr + f * kFrame;
      uint32_t field;
      memcpy(&field, fr + 4, 4);
      ASSERT_NE(field & 0x7fffffffu, 0u) << "not a commit frame";
      field = (field & 0x80000000u) | claim;
      memcpy(fr + 4, &field, 4);
      sx__wal_seal(wal.data(), wal.size(), f);  // as a writer meaning these bytes
      ASSERT_NO_FATAL_FAILURE(ExpectCorruptImage(t.db, img.p, wal));
    }
    // P's page and one per frame up to this one: as many as can exist. The last
    // commit opens at that size (its pages past the real end read as damage).
    if (g == kDmgCommits) {
      std::vector<uint8_t> wal = img.wal;
      uint8_t *fr = wal.data() + kWalHdr + f * kFrame;
      uint32_t field;
      memcpy(&field, fr + 4, 4);
      field = (field & 0x80000000u) | (uint32_t)(p_pages + f + 1);
      memcpy(fr + 4, &field, 4);
      sx__wal_seal(wal.data(), wal.size(), f);  // as a writer meaning these bytes
      ASSERT_NO_FATAL_FAILURE(PlaceImages(t.db, img.p, wal, nullptr));
      unlink((t.db + "-shm").c_str());
      sx_db *h = nullptr;
      sx_error err = SX_ERROR_INIT;
      EXPECT_EQ(sx_db_open(&h, t.db.c_str(), nullptr, &err), SX_OK) << err.message;
      sx_db_free(h);
    }
  }
}

// A WAL belongs to its database: the id in page 0 (random at create) is in every WAL
// header, under the checksum that seeds the frames'. Another database's WAL, copied
// beside this one while both hold uncheckpointed commits, is ignored as if absent:
// the database opens with its own checkpointed state and passes its check, and its
// next commit survives a reopen. A database from before the id (id 0) still replays
// its own WAL, and gets an id when its last handle closes.
TEST(Crash, ForeignWalIsNeverReplayed) {
  TmpDir a("foreigna"), b("foreignb"), c("foreignc");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 1000000;
  sx_error err = SX_ERROR_INIT;
  // A: generations 1..3 checkpointed, 4..6 only in its WAL.
  sx_db *da = nullptr, *db = nullptr;
  ASSERT_EQ(sx_db_open(&da, a.db.c_str(), &o, &err), SX_OK) << err.message;
  for (uint64_t g = 1; g <= 6; g++) {
    ASSERT_EQ(wl_commit(da, g, kDmgPages, 6, 21, 1000, &err), SX_OK) << err.message;
    if (g == 3) {
      ASSERT_EQ(sx_db_checkpoint(da, 1000, &err), SX_OK) << err.message;
    }
  }
  // B: generations 1..10 checkpointed, 11..12 only in its WAL.
  ASSERT_EQ(sx_db_open(&db, b.db.c_str(), &o, &err), SX_OK) << err.message;
  for (uint64_t g = 1; g <= 12; g++) {
    ASSERT_EQ(wl_commit(db, g, kDmgPages, 6, 22, 1000, &err), SX_OK) << err.message;
    if (g == 10) {
      ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
    }
  }
  const std::vector<uint8_t> pa = sxt::ReadBytes(a.db), wala = sxt::ReadBytes(a.db + "-wal"),
                             wal2a = sxt::ReadBytes(a.db + "-wal2");
  const std::vector<uint8_t> pb = sxt::ReadBytes(b.db), walb = sxt::ReadBytes(b.db + "-wal"),
                             wal2b = sxt::ReadBytes(b.db + "-wal2");
  sx_db_free(da);
  sx_db_free(db);
  uint32_t ida, idb;
  memcpy(&ida, pa.data() + 48, 4);
  memcpy(&idb, pb.data() + 48, 4);
  ASSERT_NE(ida, 0u);
  ASSERT_NE(idb, 0u);
  ASSERT_NE(ida, idb);
  // Each with its own WAL: everything.
  uint64_t g = 0;
  ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, pb, walb, false, &g, &wal2b));
  ASSERT_EQ(g, 12u);
  // B's file with A's WAL files: B as checkpointed, A's frames never replayed.
  ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, pb, wala, true, &g, &wal2a));
  EXPECT_EQ(g, 10u);
  ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, pa, walb, false, &g, &wal2b));
  EXPECT_EQ(g, 3u);
  // A file from before the id (0) replays its own WAL, and is tied at its last close.
  std::vector<uint8_t> old = pa;
  memset(old.data() + 48, 0, 4);
  ASSERT_NO_FATAL_FAILURE(RecoverImage(c.db, old, wala, false, &g, &wal2a));
  EXPECT_EQ(g, 6u);
  std::vector<uint8_t> now = sxt::ReadBytes(c.db);
  uint32_t idc;
  memcpy(&idc, now.data() + 48, 4);
  EXPECT_NE(idc, 0u) << "an untied database gets an id at its last close";
  EXPECT_EQ(FileSize(c.db + "-wal"), 0u);
}

}  // namespace
