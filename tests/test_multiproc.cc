// Multi-process behaviour of the storage engine (DESIGN.md, Guarantees 1, 2 and 6;
// Concurrency): snapshot isolation between processes, the 1 writer + 8x4 readers
// stress run, readers and writers killed while holding their sessions (kernel-released
// OFD locks, reusable reader slots), two handles on one path in one process, and
// handles that cross fork(). Worker processes are tests/worker_mp.c (SX_WORKER_MP).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "session/session.h"
#include "testutil.h"
#include "workload.h"
}
#include "testutil.hh"

extern char **environ;

namespace {

using sxt::TmpDir;

sx_db *Open(const std::string &path, sx_open_options *o = nullptr) {
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  int rc = sx_db_open(&db, path.c_str(), o, &err);
  EXPECT_EQ(rc, SX_OK) << err.message;
  return db;
}

sx_db_stats Stats(sx_db *db) {
  sx_db_stats st = SX_DB_STATS_INIT;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_stats_get(db, &st, &err), SX_OK) << err.message;
  return st;
}

// Generation of the latest snapshot; -1 (and a test failure) if it is inconsistent.
long long LatestGen(sx_db *db) {
  uint64_t g = 0;
  char why[512];
  int bad = wl_verify_db(db, &g, why, sizeof why);
  EXPECT_EQ(bad, 0) << why;
  return bad ? -1 : (long long)g;
}

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// "k=v k=v word" -> {k: v, word: ""}.
std::map<std::string, std::string> Fields(const std::string &line) {
  std::map<std::string, std::string> m;
  std::istringstream in(line);
  std::string tok;
  while (in >> tok) {
    size_t eq = tok.find('=');
    if (eq == std::string::npos)
      m[tok] = "";
    else
      m[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return m;
}

uint64_t U64(const std::map<std::string, std::string> &m, const std::string &k) {
  auto it = m.find(k);
  if (it == m.end()) {
    ADD_FAILURE() << "missing field '" << k << "'";
    return 0;
  }
  return strtoull(it->second.c_str(), nullptr, 10);
}

std::string Str(const std::map<std::string, std::string> &m, const std::string &k) {
  auto it = m.find(k);
  return it == m.end() ? std::string("<missing " + k + ">") : it->second;
}

// A child process with its stdin and stdout on pipes. The destructor kills
// (SIGKILL) and reaps it if it is still there, so a failing test leaves nothing
// behind.
struct Proc {
  pid_t pid = -1;
  int in = -1;   // our end of the child's stdin
  int out = -1;  // our end of the child's stdout
  int status = -1;
  std::string buf;

  Proc() = default;
  Proc(const Proc &) = delete;
  Proc &operator=(const Proc &) = delete;
  ~Proc() {
    Kill();
    CloseIn();
    if (out >= 0) close(out);
  }
  void CloseIn() {
    if (in >= 0) close(in);
    in = -1;
  }
  void Reap() {
    if (pid <= 0) return;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    status = st;
    pid = -1;
  }
  void Kill() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    Reap();
  }
  // Waits for the child to exit; kills it after timeout_ms. True if it exited by itself.
  bool Wait(int timeout_ms) {
    auto t0 = std::chrono::steady_clock::now();
    while (pid > 0) {
      int st = 0;
      pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid) {
        status = st;
        pid = -1;
        return true;
      }
      if (r < 0 && errno != EINTR) return false;
      if (MsSince(t0) > timeout_ms) {
        Kill();
        return false;
      }
      usleep(5000);
    }
    return true;
  }
  // Reaps the child if it has exited; true once it has.
  bool Done() {
    if (pid <= 0) return true;
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      status = st;
      pid = -1;
    }
    return pid <= 0;
  }
  bool Exited(int code) const {
    return WIFEXITED(status) && WEXITSTATUS(status) == code;
  }
  // Next line of output, without its newline; false on timeout or end of output.
  bool ReadLine(std::string *line, int timeout_ms = 60000) {
    auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      size_t nl = buf.find('\n');
      if (nl != std::string::npos) {
        *line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return true;
      }
      int left = timeout_ms - (int)MsSince(t0);
      if (left <= 0 || out < 0) return false;
      struct pollfd p = {out, POLLIN, 0};
      int r = poll(&p, 1, left);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char tmp[4096];
      ssize_t n = read(out, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf.append(tmp, (size_t)n);
    }
  }
  // Sends one command line and returns the reply line (empty on failure).
  std::string Ask(const std::string &cmd, int timeout_ms = 60000) {
    std::string s = cmd + "\n";
    if (in < 0 || write(in, s.data(), s.size()) != (ssize_t)s.size()) return "";
    std::string line;
    return ReadLine(&line, timeout_ms) ? line : "";
  }
};

// Starts SX_WORKER_MP with args. Our pipe ends are close-on-exec, so no other
// child inherits them (a stray copy of a stdin pipe would hide its end).
std::unique_ptr<Proc> Spawn(const std::vector<std::string> &args) {
  signal(SIGPIPE, SIG_IGN);  // a dead child's stdin must not kill the test
  auto p = std::make_unique<Proc>();
  int ip[2], op[2];
  if (pipe2(ip, O_CLOEXEC) != 0) return p;
  if (pipe2(op, O_CLOEXEC) != 0) {
    close(ip[0]);
    close(ip[1]);
    return p;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, ip[0], 0);
  posix_spawn_file_actions_adddup2(&fa, op[1], 1);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> all;
  all.push_back(SX_WORKER_MP);
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &a : all) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, SX_WORKER_MP, &fa, &at, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(ip[0]);
  close(op[1]);
  if (rc != 0) {
    close(ip[1]);
    close(op[0]);
    ADD_FAILURE() << "posix_spawn " << SX_WORKER_MP << ": " << strerror(rc);
    return p;
  }
  p->pid = pid;
  p->in = ip[1];
  p->out = op[0];
  return p;
}

// Spawns a `hold` worker and waits for its "ready" line.
std::unique_ptr<Proc> Hold(const std::string &db, int sessions,
                           std::map<std::string, std::string> *ready) {
  auto p = Spawn({"hold", db, std::to_string(sessions)});
  std::string line;
  EXPECT_TRUE(p->ReadLine(&line)) << "hold worker did not report ready";
  *ready = Fields(line);
  EXPECT_TRUE(ready->count("ready")) << line;
  return p;
}

// Runs a short-lived worker to completion and returns its one line of output.
std::map<std::string, std::string> RunWorker(const std::vector<std::string> &args,
                                             int want_exit = 0) {
  auto p = Spawn(args);
  std::string line;
  EXPECT_TRUE(p->ReadLine(&line)) << "worker " << args[0] << " printed nothing";
  EXPECT_TRUE(p->Wait(60000)) << "worker " << args[0] << " did not exit";
  EXPECT_TRUE(p->Exited(want_exit))
      << "worker " << args[0] << " status " << p->status << ": " << line;
  return Fields(line);
}

int StressSeconds() {
  const char *s = getenv("SX_STRESS_SECONDS");
  int v = s && *s ? atoi(s) : 20;
  return v > 0 ? v : 20;
}

// ---------------------------------------------------------------------------------

// A process pins a snapshot; another process commits (and checkpoints) on top of
// it. The pinned snapshot must still read exactly its generation, page for page,
// while new sessions in either process read the latest one.
TEST(MultiProc, SnapshotIsolationAcrossProcesses) {
  TmpDir t("mp-iso");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 8;  // a checkpoint after every commit
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  const uint32_t N = 40;
  ASSERT_EQ(wl_commit(db, 1, N, N, 1, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  // Holder A pins generation 1, which lives entirely in the database file.
  std::map<std::string, std::string> ra, rb;
  auto a = Hold(t.db, 1, &ra);
  ASSERT_EQ(U64(ra, "gen"), 1u);
  ASSERT_EQ(U64(ra, "violations"), 0u);
  // Every commit rewrites every page: a checkpoint that ignored A's pin would
  // overwrite all of generation 1 in the database file.
  for (uint64_t g = 2; g <= 20; g++)
    ASSERT_EQ(wl_commit(db, g, N, N, 2, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  sx_db_stats st = Stats(db);
  EXPECT_EQ(st.readers, 1u);
  EXPECT_EQ(st.oldest_reader_pid, (int32_t)a->pid);
  EXPECT_GT(st.oldest_reader_lag, 0u);
  EXPECT_LT(st.wal_backfilled, st.wal_frames) << "a checkpoint went past a pinned snapshot";
  // Holder B pins generation 20, read from the WAL.
  auto b = Hold(t.db, 1, &rb);
  ASSERT_EQ(U64(rb, "gen"), 20u);
  ASSERT_EQ(U64(rb, "violations"), 0u);
  for (uint64_t g = 21; g <= 40; g++)
    ASSERT_EQ(wl_commit(db, g, N, N, 3, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  EXPECT_EQ(Stats(db).readers, 2u);

  auto pa = Fields(a->Ask("verify"));
  EXPECT_EQ(U64(pa, "gen"), 1u) << "pinned snapshot changed under its reader";
  EXPECT_EQ(U64(pa, "violations"), 0u);
  auto pb = Fields(b->Ask("verify"));
  EXPECT_EQ(U64(pb, "gen"), 20u);
  EXPECT_EQ(U64(pb, "violations"), 0u);
  auto fa = Fields(a->Ask("fresh"));
  EXPECT_EQ(U64(fa, "gen"), 40u)
      << "a new session in the reader process must see the latest commit";
  EXPECT_EQ(U64(fa, "violations"), 0u);
  EXPECT_EQ(LatestGen(db), 40);

  // A dies: the checkpoint may now go up to B's snapshot, not past it.
  a->Kill();
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  st = Stats(db);
  EXPECT_EQ(st.readers, 1u);
  EXPECT_EQ(st.oldest_reader_pid, (int32_t)b->pid);
  EXPECT_LT(st.wal_backfilled, st.wal_frames);
  pb = Fields(b->Ask("verify"));
  EXPECT_EQ(U64(pb, "gen"), 20u);
  EXPECT_EQ(U64(pb, "violations"), 0u);
  // B ends cleanly: everything can be copied back.
  b->Ask("quit", 1);
  EXPECT_TRUE(b->Wait(30000));
  EXPECT_TRUE(b->Exited(0)) << b->status;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  st = Stats(db);
  EXPECT_EQ(st.readers, 0u);
  EXPECT_EQ(st.wal_backfilled, st.wal_frames);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), 40);
  sx_db_free(db);
}

// A reader in another process that reads frames from one WAL file keeps that file
// from being reused: the writer moves on to the other file, and stays there while
// the reader lives, however many commits come.
TEST(MultiProc, WalReaderInAnotherProcessBlocksReuseOfItsFile) {
  TmpDir t("mp-reuse");
  const uint32_t N = 24;
  sx_error err = SX_ERROR_INIT;
  sx_open_options o0 = SX_OPEN_OPTIONS_INIT;
  o0.autocheckpoint_frames = 1000000;  // generations 1-5 stay in the WAL
  sx_db *db0 = Open(t.db, &o0);        // kept open: the last close would empty the WAL
  for (uint64_t g = 1; g <= 5; g++)
    ASSERT_EQ(wl_commit(db0, g, N, N, g, 1000, &err), SX_OK) << err.message;
  std::map<std::string, std::string> ready;
  auto h = Hold(t.db, 1, &ready);  // generation 5, read from P-wal
  ASSERT_EQ(U64(ready, "gen"), 5u);
  const std::string wal0 = sxt::ReadFile(t.db + "-wal");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 8;  // every commit checkpoints and may switch files
  sx_db *db = Open(t.db, &o);
  // Each commit rewrites every page; reusing P-wal would overwrite what the holder reads.
  for (uint64_t g = 6; g <= 30; g++)
    ASSERT_EQ(wl_commit(db, g, N, N, g, 1000, &err), SX_OK) << err.message;
  EXPECT_EQ(sxt::ReadFile(t.db + "-wal"), wal0)
      << "P-wal was reused under a reader that reads from it";
  sx_db_stats st = Stats(db);
  EXPECT_GT(st.wal_frames, 25u * N) << "the holder pins its generation, so the WAL keeps growing";
  auto pv = Fields(h->Ask("verify"));
  EXPECT_EQ(U64(pv, "gen"), 5u);
  EXPECT_EQ(U64(pv, "violations"), 0u);
  // Once the reader is gone, checkpoints catch up and P-wal is reused.
  h->Kill();
  for (uint64_t g = 31; g <= 34; g++)
    ASSERT_EQ(wl_commit(db, g, N, 2, g, 1000, &err), SX_OK) << err.message;
  EXPECT_NE(sxt::ReadFile(t.db + "-wal").substr(0, 64), wal0.substr(0, 64))
      << "P-wal was never reused";
  st = Stats(db);
  EXPECT_LE(st.wal_frames, 8u + 2 * 4u) << "the WAL did not shrink back";
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), 34);
  sx_db_free(db);
  sx_db_free(db0);
}

// Read sessions that each live across a single commit -- no reader ever lags by more
// than one commit -- must not keep the WAL from being reused: the WAL alternates
// between two files, and a file is reused once no reader needs the generation it
// holds. (With one WAL file, restarting needs a moment with no reader in the WAL,
// which overlapping readers never leave, and the WAL grew without bound.)
TEST(MultiProc, WalRestartsUnderOverlappingShortReaders) {
  TmpDir t("mp-starve");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 16;
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(db, 1, 8, 8, 1, 1000, &err), SX_OK) << err.message;
  sx_read *prev = nullptr;
  ASSERT_EQ(sx_read_begin(db, &prev, &err), SX_OK) << err.message;
  uint64_t max_wal = 0, max_lag = 0;
  for (uint64_t g = 2; g <= 401; g++) {
    ASSERT_EQ(wl_commit(db, g, 8, 2, g, 1000, &err), SX_OK) << err.message;  // 4 frames
    sx_db_stats st = Stats(db);
    max_wal = std::max(max_wal, st.wal_frames);
    max_lag = std::max(max_lag, st.oldest_reader_lag);
    sx_read *next = nullptr;
    ASSERT_EQ(sx_read_begin(db, &next, &err), SX_OK) << err.message;
    sx_read_free(prev);  // the old reader ends once a newer one has begun
    prev = next;
  }
  sx_read_free(prev);
  EXPECT_LE(max_lag, 4u) << "readers lag by one commit (4 frames) at most";
  EXPECT_LE(max_wal, 8u * o.autocheckpoint_frames)
      << "the WAL never restarted although no reader outlived one commit";
  EXPECT_EQ(LatestGen(db), 401);
  sx_db_free(db);
}

uint64_t FileLen(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (uint64_t)st.st_size : 0;
}
uint64_t WalLongest(const std::string &db) {
  return std::max(FileLen(db + "-wal"), FileLen(db + "-wal2"));
}

// The WAL gives its space back (sx_open_options.wal_size_limit) without ever
// pulling a mapped page from under a reader in another process: a holder that read
// frames from the WAL keeps the files whole (were they cut, its next read of a
// mapped frame would be SIGBUS); once it is gone, a checkpoint cuts them to the
// limit; a holder that began after the checkpoint reads only the database file.
TEST(MultiProc, WalCutWaitsForReadersInTheWal) {
  TmpDir t("mp-walcut");
  const uint64_t limit = 64 << 10;
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 1u << 20;
  o.sync = SX_SYNC_NORMAL;
  o.wal_size_limit = limit;
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  const uint32_t N = 500;  // 2 MB of data pages, all in the WAL (the manifest holds 510)
  ASSERT_EQ(wl_commit(db, 1, N, N, 1, 1000, &err), SX_OK) << err.message;
  std::map<std::string, std::string> ready;
  auto h = Hold(t.db, 1, &ready);  // has read (and mapped) every frame
  ASSERT_EQ(U64(ready, "gen"), 1u);
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  EXPECT_GT(WalLongest(t.db), 16 * limit) << "the WAL was cut under a reader that reads it";
  auto pv = Fields(h->Ask("verify"));
  EXPECT_EQ(U64(pv, "violations"), 0u);
  EXPECT_EQ(U64(pv, "gen"), 1u);
  ASSERT_EQ(wl_commit(db, 2, N, N, 2, 1000, &err), SX_OK) << err.message;
  pv = Fields(h->Ask("verify"));
  EXPECT_EQ(U64(pv, "violations"), 0u);
  h->Kill();
  EXPECT_TRUE(WIFSIGNALED(h->status) && WTERMSIG(h->status) == SIGKILL)
      << "the holder died before it was killed, status " << h->status;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  EXPECT_LE(WalLongest(t.db), limit) << "no reader in the WAL, yet the checkpoint did not cut it";
  auto h2 = Hold(t.db, 1, &ready);  // reads the database file only
  ASSERT_EQ(U64(ready, "gen"), 2u);
  for (uint64_t g = 3; g <= 4; g++)
    ASSERT_EQ(wl_commit(db, g, N, N, g, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  pv = Fields(h2->Ask("verify"));
  EXPECT_EQ(U64(pv, "violations"), 0u);
  EXPECT_EQ(U64(pv, "gen"), 2u);
  pv = Fields(h2->Ask("fresh"));
  EXPECT_EQ(U64(pv, "violations"), 0u);
  EXPECT_EQ(U64(pv, "gen"), 4u);
  h2->Kill();
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), 4);
  sx_db_free(db);
  db = Open(t.db);
  EXPECT_EQ(LatestGen(db), 4);
  sx_db_free(db);
}

// Readers in other processes run sessions back to back while this process commits
// large generations and cuts the WAL to nothing (limit 0) whenever a checkpoint
// finds no reader in it. No reader may fault (SIGBUS would end it by a signal) or
// see an inconsistent snapshot, and the cuts must actually happen.
TEST(MultiProc, WalCutsUnderReaderProcesses) {
  TmpDir t("mp-walcut-stress");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 600;
  o.sync = SX_SYNC_OFF;
  o.wal_size_limit = 0;
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  const uint32_t N = 256;
  ASSERT_EQ(wl_commit(db, 1, N, N, 1, 1000, &err), SX_OK) << err.message;
  const int secs = 6;
  std::vector<std::unique_ptr<Proc>> readers;
  // Two threads per process, each pausing 3 ms between sessions: the gaps let some
  // checkpoints find no reader in the WAL.
  for (int i = 0; i < 3; i++)
    readers.push_back(Spawn({"reader", t.db, std::to_string(secs), "2", "3000"}));
  uint64_t g = 1, cuts = 0, prev = WalLongest(t.db);
  auto t0 = std::chrono::steady_clock::now();
  while (MsSince(t0) < secs * 1000.0) {
    g++;
    ASSERT_EQ(wl_commit(db, g, N, g % 3 ? N / 4 : N, g, 1000, &err), SX_OK) << err.message;
    if (g % 2 == 0) {
      ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
    }
    uint64_t now = WalLongest(t.db);
    if (now < prev) cuts++;
    prev = now;
  }
  for (size_t i = 0; i < readers.size(); i++) {
    ASSERT_TRUE(readers[i]->Wait(120000)) << "reader " << i << " hung";
    std::string line;
    ASSERT_TRUE(readers[i]->ReadLine(&line, 1000))
        << "reader " << i << " printed nothing, status " << readers[i]->status;
    EXPECT_TRUE(readers[i]->Exited(0))
        << "reader " << i << " status " << readers[i]->status << ": " << line;
    auto r = Fields(line);
    EXPECT_EQ(U64(r, "violations"), 0u) << line;
    EXPECT_GT(U64(r, "sessions"), 10u) << line;
  }
  EXPECT_GT(cuts, 0u) << "the WAL was never cut while readers came and went (" << g << " commits)";
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), (long long)g);
  sx_db_free(db);
  db = Open(t.db);
  EXPECT_EQ(LatestGen(db), (long long)g);
  sx_db_free(db);
  std::cout << "[ walcut   ] " << g << " commits, " << cuts
            << " cuts of the WAL under 3 reader processes" << std::endl;
}

// The spec's stress run: 1 writer process + 8 reader processes x 4 threads on the
// page workload, tiny autocheckpoint, for SX_STRESS_SECONDS (default 20).
TEST(MultiProc, StressOneWriterEightReaderProcesses) {
  const int secs = StressSeconds();
  const int kReaders = 8, kThreads = 4;
  TmpDir t("mp-stress");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 64;
  o.sync = SX_SYNC_NORMAL;
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(db, 1, 64, 64, 1, 1000, &err), SX_OK) << err.message;

  auto writer = Spawn({"writer", t.db, std::to_string(secs), "normal", "64", "64", "4"});
  std::vector<std::unique_ptr<Proc>> readers;
  for (int i = 0; i < kReaders; i++)
    readers.push_back(Spawn({"reader", t.db, std::to_string(secs), std::to_string(kThreads)}));

  // While they run, watch from this process too.
  uint32_t max_readers = 0;
  uint64_t max_wal = 0;
  const int limit_ms = secs * 1000 + 300000;  // generous: sanitizers, 2 noisy cores
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    bool running = !writer->Done();
    for (auto &r : readers) running |= !r->Done();
    if (!running) break;
    sx_db_stats st = Stats(db);
    max_readers = std::max(max_readers, st.readers);
    max_wal = std::max(max_wal, st.wal_frames);
    ASSERT_LT(MsSince(t0), limit_ms) << "workers still running long after their time";
    usleep(100000);
  }
  // All reaped; each wrote its one-line report before exiting.
  std::string line;
  ASSERT_TRUE(writer->ReadLine(&line, 1000)) << "writer printed nothing";
  EXPECT_TRUE(writer->Exited(0)) << "writer status " << writer->status << ": " << line;
  auto w = Fields(line);
  const uint64_t commits = U64(w, "commits"), last_gen = U64(w, "last_gen");
  EXPECT_EQ(U64(w, "violations"), 0u) << line;
  EXPECT_GT(commits, 20u) << line;
  EXPECT_EQ(last_gen, U64(w, "first_gen") + commits) << line;
  EXPECT_GT(U64(w, "checkpoints"), 0u) << line;

  uint64_t sessions = 0, max_begin_us = 0;
  for (int i = 0; i < kReaders; i++) {
    ASSERT_TRUE(readers[i]->ReadLine(&line, 1000)) << "reader " << i << " printed nothing";
    EXPECT_TRUE(readers[i]->Exited(0))
        << "reader " << i << " status " << readers[i]->status << ": " << line;
    auto r = Fields(line);
    EXPECT_EQ(U64(r, "violations"), 0u) << "reader " << i << ": " << line;
    EXPECT_GE(U64(r, "sessions"), 100u) << "reader " << i << ": " << line;
    EXPECT_GT(U64(r, "last_gen"), U64(r, "first_gen"))
        << "reader " << i << " never saw a new commit: " << line;
    EXPECT_LE(U64(r, "last_gen"), last_gen) << "reader " << i << ": " << line;
    sessions += U64(r, "sessions");
    max_begin_us = std::max(max_begin_us, U64(r, "max_begin_us"));
  }
  // Readers never wait for the writer: a begin is a few loads and stores, so even
  // with 33 busy threads on 2 cores anything near seconds means it blocked.
  EXPECT_LT(max_begin_us, 10u * 1000 * 1000);
  EXPECT_GT(max_readers, 0u);

  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), (long long)last_gen);
  sx_db_stats st = Stats(db);
  EXPECT_EQ(st.readers, 0u);
  sx_db_free(db);
  // And after the shared index is rebuilt from the files.
  db = Open(t.db);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), (long long)last_gen);
  sx_db_free(db);

  std::cout << "[ stress   ] " << secs << " s: commits=" << commits
            << " reader_sessions=" << sessions << " max_read_begin_us=" << max_begin_us
            << " checkpoints=" << Str(w, "checkpoints") << " wal_restarts=" << Str(w, "restarts")
            << " max_wal_frames=" << std::max<uint64_t>(max_wal, U64(w, "max_wal_frames"))
            << " max_readers_seen=" << max_readers << std::endl;
  RecordProperty("seconds", secs);
  RecordProperty("commits", std::to_string(commits));
  RecordProperty("reader_sessions", std::to_string(sessions));
  RecordProperty("max_read_begin_us", std::to_string(max_begin_us));
  RecordProperty("wal_restarts", Str(w, "restarts"));
}

// A reader killed while holding its snapshot stops pinning it the moment it dies.
TEST(MultiProc, KilledReaderReleasesItsSnapshot) {
  TmpDir t("mp-kill");
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 1000000;  // checkpoints only when asked
  sx_db *db = Open(t.db, &o);
  sx_error err = SX_ERROR_INIT;
  for (uint64_t g = 1; g <= 5; g++)
    ASSERT_EQ(wl_commit(db, g, 20, 4, 1, 1000, &err), SX_OK) << err.message;
  std::map<std::string, std::string> ready;
  auto h = Hold(t.db, 1, &ready);
  ASSERT_EQ(U64(ready, "gen"), 5u);
  for (uint64_t g = 6; g <= 15; g++)
    ASSERT_EQ(wl_commit(db, g, 20, 4, 1, 1000, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  sx_db_stats st = Stats(db);
  EXPECT_EQ(st.readers, 1u);
  EXPECT_EQ(st.oldest_reader_pid, (int32_t)h->pid);
  EXPECT_EQ(st.oldest_reader_lag, st.wal_frames - st.wal_backfilled);
  EXPECT_GT(st.wal_backfilled, 0u) << "frames up to the pinned snapshot may be copied";
  EXPECT_LT(st.wal_backfilled, st.wal_frames) << "a checkpoint went past a pinned snapshot";
  const uint64_t frames = st.wal_frames;

  h->Kill();  // SIGKILL and waitpid: no chance to end its session
  st = Stats(db);
  EXPECT_EQ(st.readers, 0u) << "a dead reader still counts";
  EXPECT_EQ(st.oldest_reader_pid, 0);
  ASSERT_EQ(sx_db_checkpoint(db, 1000, &err), SX_OK) << err.message;
  st = Stats(db);
  EXPECT_EQ(st.wal_frames, frames);
  EXPECT_EQ(st.wal_backfilled, st.wal_frames) << "the dead reader's snapshot still pins the WAL";
  // Nothing uses the WAL any more: the next commit starts it over.
  ASSERT_EQ(wl_commit(db, 16, 20, 4, 1, 1000, &err), SX_OK) << err.message;
  st = Stats(db);
  EXPECT_LE(st.wal_frames, 6u) << "the WAL did not restart";
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), 16);
  sx_db_free(db);
}

// Reader slots held by dead processes are reused: three times over, dead
// processes hold every slot of the shared index, and each time, once they are
// gone, one handle can open a session in every slot again.
TEST(MultiProc, SlotsOfDeadReadersAreReused) {
  TmpDir t("mp-slots");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(db, 1, 8, 8, 1, 1000, &err), SX_OK) << err.message;
  const int nslots = (int)Stats(db).reader_slots;
  ASSERT_GT(nslots, 0);
  const int holders_per_round[] = {1, 8, 32};
  for (int holders : holders_per_round) {
    SCOPED_TRACE("holders per round: " + std::to_string(holders));
    std::vector<std::unique_ptr<Proc>> hs;
    int held = 0;
    for (int i = 0; i < holders; i++) {
      std::map<std::string, std::string> ready;
      hs.push_back(Hold(t.db, nslots / holders, &ready));
      EXPECT_EQ(U64(ready, "gen"), 1u);
      held += (int)U64(ready, "sessions");
    }
    ASSERT_EQ(held, nslots);
    EXPECT_EQ(Stats(db).readers, (uint32_t)nslots);
    sx_read *r = nullptr;
    EXPECT_EQ(sx_read_begin(db, &r, &err), SX_BUSY) << "every slot should be taken";
    EXPECT_EQ(r, nullptr);
    for (auto &h : hs) h->Kill();
    EXPECT_EQ(Stats(db).readers, 0u);
    // A fresh handle (so no slot is cached from an earlier round) takes them all.
    sx_db *d2 = Open(t.db);
    std::vector<sx_read *> rs;
    for (int i = 0; i < nslots; i++) {
      sx_read *s = nullptr;
      int rc = sx_read_begin(d2, &s, &err);
      if (rc != SX_OK) {
        ADD_FAILURE() << "session " << i << " of " << nslots << ": " << sx_status_name(rc) << ": "
                      << err.message;
        break;
      }
      rs.push_back(s);
    }
    EXPECT_EQ((int)rs.size(), nslots);
    EXPECT_EQ(Stats(db).readers, (uint32_t)rs.size());
    uint64_t g = 0;
    char why[256];
    if (!rs.empty()) {
      EXPECT_EQ(wl_verify(rs.back(), &g, why, sizeof why), 0) << why;
      EXPECT_EQ(g, 1u);
    }
    for (sx_read *s : rs) sx_read_free(s);
    sx_db_free(d2);
    EXPECT_EQ(Stats(db).readers, 0u);
  }
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}

// Two handles on one path in one process exclude each other like two processes,
// and closing one never drops the other's locks (OFD locks, not POSIX locks).
TEST(MultiProc, TwoHandlesOnOnePathInOneProcess) {
  TmpDir t("mp-two");
  sx_db *a = Open(t.db);
  sx_db *b = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(a, 1, 16, 16, 1, 1000, &err), SX_OK) << err.message;
  sx_read *ra = nullptr;
  ASSERT_EQ(sx_read_begin(a, &ra, &err), SX_OK) << err.message;
  sx_write *wa = nullptr, *wb = nullptr;
  ASSERT_EQ(sx_write_begin(a, 0, &wa, &err), SX_OK) << err.message;
  EXPECT_EQ(sx_write_begin(b, 0, &wb, &err), SX_BUSY);
  EXPECT_EQ(wb, nullptr);
  EXPECT_EQ(sx_write_begin(b, 100, &wb, &err), SX_BUSY);
  EXPECT_EQ(sx_db_checkpoint(b, 0, &err), SX_BUSY);

  // Closing B keeps A's write lock and A's reader slot.
  sx_db_free(b);
  auto tw = RunWorker({"try-write", t.db, "0"});
  EXPECT_EQ(Str(tw, "status"), "BUSY") << "closing handle B released handle A's write lock";
  ASSERT_EQ(wl_apply(wa, 2, 0, 16, 2, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_write_commit(wa, &err), SX_OK) << err.message;
  sx_write_free(wa);
  ASSERT_EQ(sx_db_checkpoint(a, 1000, &err), SX_OK) << err.message;
  sx_db *c = Open(t.db);
  sx_db_stats st = Stats(c);
  EXPECT_EQ(st.readers, 1u) << "closing handle B released handle A's reader slot";
  EXPECT_LT(st.wal_backfilled, st.wal_frames) << "A's snapshot no longer pins the WAL";
  sx_db_free(c);
  uint64_t g = 0;
  char why[256];
  EXPECT_EQ(wl_verify(ra, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 1u);

  // A writes again; closing A (aborting its session) is what releases the lock.
  ASSERT_EQ(sx_write_begin(a, 0, &wa, &err), SX_OK) << err.message;
  ASSERT_EQ(wl_apply(wa, 3, 0, 4, 3, &err), SX_OK) << err.message;
  sx_db *b2 = Open(t.db);
  EXPECT_EQ(sx_write_begin(b2, 0, &wb, &err), SX_BUSY);
  tw = RunWorker({"try-write", t.db, "0"});
  EXPECT_EQ(Str(tw, "status"), "BUSY");
  sx_db_free(a);
  EXPECT_EQ(wl_verify(ra, &g, why, sizeof why), 1)
      << "a session of a closed handle must report CLOSED";
  sx_read_free(ra);
  sx_write_free(wa);
  tw = RunWorker({"try-write", t.db, "0"});
  EXPECT_EQ(Str(tw, "status"), "OK") << "closing handle A did not release its write lock";
  EXPECT_EQ(U64(tw, "gen"), 3u) << "A's aborted generation 3 must not be there";
  ASSERT_EQ(sx_write_begin(b2, 0, &wb, &err), SX_OK) << err.message;
  ASSERT_EQ(wl_apply(wb, 4, 0, 4, 4, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_write_commit(wb, &err), SX_OK) << err.message;
  sx_write_free(wb);
  EXPECT_EQ(wl_check(b2, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(b2), 4);
  sx_db_free(b2);
}

// One writer across processes: a process holding the write session makes others
// wait out their timeout; killing it hands the lock over, and nothing it had not
// committed is visible.
TEST(MultiProc, WriterExclusionAcrossProcesses) {
  TmpDir t("mp-writer");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  for (uint64_t g = 1; g <= 3; g++)
    ASSERT_EQ(wl_commit(db, g, 16, 4, 1, 1000, &err), SX_OK) << err.message;
  auto child = Spawn({"write-hold", t.db});
  std::string line;
  ASSERT_TRUE(child->ReadLine(&line)) << "write-hold did not start";
  auto ready = Fields(line);
  ASSERT_TRUE(ready.count("ready")) << line;
  ASSERT_EQ(U64(ready, "gen"), 3u);

  sx_write *w = nullptr;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(sx_write_begin(db, 200, &w, &err), SX_BUSY);
  double waited = MsSince(t0);
  EXPECT_EQ(w, nullptr);
  EXPECT_GE(waited, 180.0) << "gave up before its timeout";
  EXPECT_LT(waited, 10000.0) << "waited far past its timeout";
  EXPECT_EQ(sx_write_begin(db, 0, &w, &err), SX_BUSY);
  EXPECT_EQ(sx_db_checkpoint(db, 0, &err), SX_BUSY);
  auto tw = RunWorker({"try-write", t.db, "50"});
  EXPECT_EQ(Str(tw, "status"), "BUSY");
  // Readers are not blocked by the writer.
  EXPECT_EQ(LatestGen(db), 3);

  child->Kill();
  t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(sx_write_begin(db, 10000, &w, &err), SX_OK) << err.message;
  EXPECT_LT(MsSince(t0), 5000.0);
  EXPECT_EQ(LatestGen(db), 3) << "the dead writer's uncommitted changes are visible";
  ASSERT_EQ(wl_apply(w, 4, 0, 4, 4, &err), SX_OK) << err.message;
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), 4);
  auto ck = RunWorker({"check", t.db});
  EXPECT_EQ(Str(ck, "check"), "OK");
  EXPECT_EQ(U64(ck, "gen"), 4u);
  sx_db_free(db);
}

// A child of fork() keeps using an inherited handle on its own files and locks;
// the sessions it inherited are the parent's and answer MISUSE.
TEST(MultiProc, ForkChildUsesInheritedHandle) {
  TmpDir t("mp-fork");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  for (uint64_t g = 1; g <= 3; g++)
    ASSERT_EQ(wl_commit(db, g, 16, 4, 1, 1000, &err), SX_OK) << err.message;
  sx_read *pre = nullptr;
  ASSERT_EQ(sx_read_begin(db, &pre, &err), SX_OK) << err.message;
  fflush(nullptr);
  Proc child;
  child.pid = fork();
  ASSERT_GE(child.pid, 0) << strerror(errno);
  if (child.pid == 0) {
    // The child: no gtest here; every failed check sets a bit of the exit code.
    int code = 0;
    sx_error e = SX_ERROR_INIT;
    uint64_t v = 0, g = 0;
    char why[256];
    if (sx_read_user_version(pre, &v, &e) != SX_MISUSE) code |= 1;
    sx_read *r = nullptr;
    if (sx_read_begin(db, &r, &e) != SX_OK) {
      fprintf(stderr, "fork child: read_begin: %s\n", e.message);
      code |= 2;
    } else {
      if (wl_verify(r, &g, why, sizeof why) || g != 3) {
        fprintf(stderr, "fork child: sees generation %llu: %s\n", (unsigned long long)g, why);
        code |= 4;
      }
      sx_read_free(r);
    }
    if (wl_commit(db, 4, 0, 4, 4, 5000, &e) != SX_OK) {
      fprintf(stderr, "fork child: commit: %s\n", e.message);
      code |= 8;
    }
    if (wl_verify_db(db, &g, why, sizeof why) || g != 4) code |= 16;
    if (wl_check(db, &e) != SX_OK) code |= 32;
    if (sx_read_user_version(pre, &v, &e) != SX_MISUSE) code |= 64;
    // Die holding a read session of its own: its slot must go with this process,
    // so it must not have been taken through the parent's locks.
    sx_read *left = nullptr;
    if (sx_read_begin(db, &left, &e) != SX_OK) code |= 128;
    _exit(code);
  }
  ASSERT_TRUE(child.Wait(60000)) << "fork child hung";
  EXPECT_TRUE(child.Exited(0)) << "fork child failed checks, status " << child.status
                               << (WIFEXITED(child.status)
                                       ? " exit bits " + std::to_string(WEXITSTATUS(child.status))
                                       : "");
  // The parent's session still reads its snapshot; new ones see the child's commit.
  uint64_t g = 0;
  char why[256];
  EXPECT_EQ(wl_verify(pre, &g, why, sizeof why), 0) << why;
  EXPECT_EQ(g, 3u);
  // Seen from another handle, only the parent's session pins a snapshot.
  sx_db *other = Open(t.db);
  EXPECT_EQ(Stats(other).readers, 1u) << "the dead child's session still pins a slot";
  sx_read_free(pre);
  EXPECT_EQ(Stats(other).readers, 0u);
  sx_db_free(other);
  EXPECT_EQ(LatestGen(db), 4);
  ASSERT_EQ(wl_commit(db, 5, 0, 4, 5, 1000, &err), SX_OK) << err.message;
  EXPECT_EQ(LatestGen(db), 5);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}

// fork() while the parent holds the write session: the child cannot use that
// session, and cannot take the writer lock while the parent holds it; the parent's
// commit is unaffected.
TEST(MultiProc, ForkWhileWriting) {
  TmpDir t("mp-forkw");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(db, 1, 16, 16, 1, 1000, &err), SX_OK) << err.message;
  sx_write *w = nullptr;
  ASSERT_EQ(sx_write_begin(db, 0, &w, &err), SX_OK) << err.message;
  ASSERT_EQ(wl_apply(w, 2, 0, 4, 2, &err), SX_OK) << err.message;
  fflush(nullptr);
  Proc child;
  child.pid = fork();
  ASSERT_GE(child.pid, 0) << strerror(errno);
  if (child.pid == 0) {
    int code = 0;
    sx_error e = SX_ERROR_INIT;
    uint64_t v = 0, g = 0;
    if (sx_write_user_version(w, &v, &e) != SX_MISUSE) code |= 1;
    if (sx_write_commit(w, &e) != SX_MISUSE) code |= 2;
    sx_write *w2 = nullptr;
    if (sx_write_begin(db, 0, &w2, &e) != SX_BUSY) code |= 4;  // the parent is writing
    if (wl_verify_db(db, &g, nullptr, 0) || g != 1) code |= 8;
    sx_write_free(w);
    sx_db_free(db);
    _exit(code);
  }
  ASSERT_TRUE(child.Wait(60000)) << "fork child hung";
  EXPECT_TRUE(child.Exited(0)) << "fork child failed checks, status " << child.status
                               << (WIFEXITED(child.status)
                                       ? " exit bits " + std::to_string(WEXITSTATUS(child.status))
                                       : "");
  ASSERT_EQ(sx_write_commit(w, &err), SX_OK) << err.message;
  sx_write_free(w);
  EXPECT_EQ(LatestGen(db), 2);
  auto tw = RunWorker({"try-write", t.db, "0"});
  EXPECT_EQ(Str(tw, "status"), "OK") << "the writer lock outlived the parent's session";
  EXPECT_EQ(U64(tw, "gen"), 3u);
  EXPECT_EQ(wl_check(db, &err), SX_OK) << err.message;
  sx_db_free(db);
}

// OFD locks belong to the open file description, and fork() shares descriptions:
// a child that inherits a handle and never uses it (a pool worker forked for other
// work, a helper) keeps every lock of its parent alive. When the parent dies
// holding a read session, its snapshot stays pinned; holding the write session,
// the writer lock stays taken -- for as long as the child lives. That breaks
// Guarantee 6 (process death releases everything it held) and "fork() must never
// share locks silently with its parent".
TEST(MultiProc, DeadParentLocksDoNotLiveOnInForkChild) {
  TmpDir t("mp-forkleak");
  sx_db *db = Open(t.db);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(wl_commit(db, 1, 8, 8, 1, 1000, &err), SX_OK) << err.message;
  // Orphans are reparented to us, so the grandchild can be reaped (and killed by
  // its guard on failure) like a child.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0) << strerror(errno);
  for (const char *kind : {"read", "write"}) {
    SCOPED_TRACE(kind);
    auto p = Spawn({"fork-hold", t.db, kind});
    std::string line;
    ASSERT_TRUE(p->ReadLine(&line)) << "fork-hold did not start";
    auto f = Fields(line);
    Proc grandchild;
    grandchild.pid = (pid_t)U64(f, "child");
    ASSERT_GT(grandchild.pid, 0) << line;
    sx_write *w = nullptr;
    if (strcmp(kind, "read") == 0)
      EXPECT_EQ(Stats(db).readers, 1u);
    else
      EXPECT_EQ(sx_write_begin(db, 0, &w, &err), SX_BUSY);
    p->Kill();  // the process that began the session is dead; its child lives on
    sx_db_stats st = Stats(db);
    EXPECT_EQ(st.readers, 0u) << "a dead process's snapshot is still pinned (by its fork child)";
    int rc = sx_write_begin(db, 0, &w, &err);
    EXPECT_EQ(rc, SX_OK) << "a dead process's writer lock is still held (by its fork child): "
                         << err.message;
    if (rc == SX_OK) sx_write_abort(w);
    sx_write_free(w);
    w = nullptr;
    // End the grandchild (its stdin is the pipe we hold) and see everything released.
    p->CloseIn();
    EXPECT_TRUE(grandchild.Wait(10000));
    EXPECT_EQ(Stats(db).readers, 0u);
    rc = sx_write_begin(db, 0, &w, &err);
    EXPECT_EQ(rc, SX_OK) << err.message;
    if (rc == SX_OK) sx_write_abort(w);
    sx_write_free(w);
  }
  sx_db_free(db);
}

}  // namespace
