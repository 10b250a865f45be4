// Real resource limits, not the fault VFS (issue 19): a process whose file-size limit
// (RLIMIT_FSIZE, SIGXFSZ ignored) stops a commit gets SX_FULL naming the file, keeps
// every earlier commit, and the database, reopened in a process without the limit,
// passes its check and takes new commits; a process with few file descriptors
// (RLIMIT_NOFILE) opening database after database gets a clear SX_IO naming the
// file, never a crash; the open that failed leaves no file of the database without
// the database itself, its handles already open work on, and with the limit raised
// the database opens and passes its check. Each
// limit is set in a child process (fork), so the test process keeps its own.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "sextant.h"
#include "testutil.hh"

namespace {

constexpr uint32_t kDim = 64, kBatch = 50;

// Commits batch number b (kBatch vectors "b<b>-<i>") into collection "c".
sx_status CommitBatch(sx_db *d, int b, sx_error *e) {
  std::vector<float> v = sxt::Gen((uint64_t)b + 1, kBatch, kDim);
  std::vector<std::string> ids;
  std::vector<const char *> ip;
  for (uint32_t i = 0; i < kBatch; i++)
    ids.push_back("b" + std::to_string(b) + "-" + std::to_string(i));
  for (auto &s : ids) ip.push_back(s.c_str());
  sx_write *w = nullptr;
  sx_status rc = sx_write_begin(d, -1, &w, e);
  if (rc) return rc;
  rc = sx_write_upsert(w, "c", kBatch, ip.data(), v.data(), kDim, nullptr, e);
  rc = rc == SX_OK ? sx_write_commit(w, e) : (sx_write_abort(w), rc);
  sx_write_free(w);
  return rc;
}

sx_status Count(sx_db *d, uint64_t *n, sx_error *e) {
  sx_read *r = nullptr;
  sx_status rc = sx_read_begin(d, &r, e);
  sx_collection *c = nullptr;
  if (!rc) rc = sx_read_collection(r, "c", &c, e);
  if (!rc) rc = sx_collection_count(c, n, e);
  sx_collection_free(c);
  sx_read_free(r);
  return rc;
}

sx_status Create(sx_db *d, sx_error *e) {
  sx_write *w = nullptr;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = kDim;
  co.index = SX_INDEX_FLAT;
  sx_status rc = sx_write_begin(d, -1, &w, e);
  if (!rc) rc = sx_write_create_collection(w, "c", &co, e);
  if (!rc) rc = sx_write_commit(w, e);
  sx_write_free(w);
  return rc;
}

// What a child reports through its pipe: the batches it committed, and the error.
struct Report {
  int batches = -1;
  int status = 0;
  char stray[64] = {0}; /* a file the failed open left behind */
  char message[sizeof(((sx_error *)nullptr)->message)] = {0};
};

// In the child: commits batches under a file-size limit of `limit` bytes until a
// commit fails; reports, then checks that the same handle still reads every committed
// batch. Exit status: 0, or the failing step.
int FillUnderFsize(const std::string &db, rlim_t limit, uint32_t ckpt, int pipefd) {
  signal(SIGXFSZ, SIG_IGN);
  sx_db *d = nullptr;
  sx_error e = SX_ERROR_INIT;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.threads = 1;
  oo.autocheckpoint_frames = ckpt;
  oo.sync = SX_SYNC_OFF;  // a process limit, not durability, is under test
  if (sx_db_open(&d, db.c_str(), &oo, &e) != SX_OK) return 2;
  uint64_t before = 0;
  if (Count(d, &before, &e) != SX_OK) return 6;
  struct rlimit rl = {limit, limit};
  if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 3;
  Report r;
  int b = 0;
  sx_status rc = SX_OK;
  // Batch numbers of this run only (ids are upserted: one seen before adds nothing).
  const int first = (int)(limit >> 10) * 1000;
  for (; b < 100000 && rc == SX_OK; b++) rc = CommitBatch(d, first + b, &e);
  r.batches = b - 1;
  r.status = rc;
  snprintf(r.message, sizeof r.message, "%s", e.message);
  if (write(pipefd, &r, sizeof r) != (ssize_t)sizeof r) return 4;
  uint64_t n = 0;
  if (Count(d, &n, &e) != SX_OK || n != before + (uint64_t)r.batches * kBatch) return 5;
  sx_db_free(d);  // its checkpoint may fail too: never a crash
  return 0;
}

TEST(Limits, FileSizeLimitStopsACommitCleanly) {
  sxt::TmpDir t("fsize");
  {
    sx_db *d = nullptr;
    sx_error e = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_open(&d, t.db.c_str(), nullptr, &e), SX_OK) << e.message;
    ASSERT_EQ(Create(d, &e), SX_OK) << e.message;
    sx_db_free(d);
  }
  // Limits below and above the WAL's first megabyte (it grows a megabyte at a time),
  // then with checkpoints every 64 frames, so that checkpoints into P fail first.
  const std::pair<rlim_t, uint32_t> runs[] = {
      {(rlim_t)600 << 10, 0}, {(rlim_t)1536 << 10, 0}, {(rlim_t)3 << 20, 0}, {(rlim_t)4 << 20, 64}};
  for (auto [limit, ckpt] : runs) {
    SCOPED_TRACE("RLIMIT_FSIZE " + std::to_string(limit) + ", autocheckpoint " +
                 std::to_string(ckpt));
    uint64_t before = 0;
    {
      sx_db *d = nullptr;
      sx_error e = SX_ERROR_INIT;
      ASSERT_EQ(sx_db_open(&d, t.db.c_str(), nullptr, &e), SX_OK) << e.message;
      ASSERT_EQ(Count(d, &before, &e), SX_OK) << e.message;
      sx_db_free(d);
    }
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      _exit(FillUnderFsize(t.db, limit, ckpt, fds[1]));
    }
    close(fds[1]);
    Report r;
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_FALSE(WIFSIGNALED(st)) << "the child died of signal " << WTERMSIG(st);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0) << "the child failed at step " << WEXITSTATUS(st);
    ASSERT_EQ(got, (ssize_t)sizeof r);
    printf("[ limit %llu: %d batches committed, then %s: %s; P %llu bytes ]\n",
           (unsigned long long)limit, r.batches, sx_status_name((sx_status)r.status), r.message,
           (unsigned long long)sxt::ReadBytes(t.db).size());
    EXPECT_EQ(r.status, SX_FULL) << r.message;
    EXPECT_NE(strstr(r.message, t.db.c_str()), nullptr)
        << "the message names no file: " << r.message;
    EXPECT_NE(strstr(r.message, "too large"), nullptr) << r.message;
    // A fresh process without the limit: everything committed, a passing check, and
    // new commits.
    sx_db *d = nullptr;
    sx_error e = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_open(&d, t.db.c_str(), nullptr, &e), SX_OK) << e.message;
    ASSERT_EQ(sx_db_check(d, &e), SX_OK) << e.message;
    uint64_t n = 0;
    ASSERT_EQ(Count(d, &n, &e), SX_OK) << e.message;
    EXPECT_EQ(n, before + (uint64_t)r.batches * kBatch)
        << "a commit acknowledged under the limit is lost";
    ASSERT_EQ(CommitBatch(d, (int)(limit >> 10) * 1000 + 999, &e), SX_OK) << e.message;
    sx_db_free(d);
    ASSERT_EQ(sx_db_open(&d, t.db.c_str(), nullptr, &e), SX_OK) << e.message;
    ASSERT_EQ(Count(d, &n, &e), SX_OK) << e.message;
    EXPECT_EQ(n, before + (uint64_t)(r.batches + 1) * kBatch);
    ASSERT_EQ(sx_db_check(d, &e), SX_OK) << e.message;
    sx_db_free(d);
  }
}

std::set<std::string> Names(const std::string &dir) {
  std::set<std::string> out;
  DIR *d = opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent *de = readdir(d))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) out.insert(de->d_name);
  closedir(d);
  return out;
}

// In the child: with RLIMIT_NOFILE at `nofile`, opens databases db0, db1, ... (each
// creating its files, and one extra handle on db0) until an open fails; reports it.
// Then the handles it holds still read and write, and with the limit raised again
// the database whose open failed opens. Exit status: 0, or the failing step.
int OpenUnderNofile(const std::string &dir, rlim_t nofile, int pipefd) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
  const rlim_t old = rl.rlim_cur;
  rl.rlim_cur = nofile;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 3;
  std::vector<sx_db *> open;
  Report r;
  sx_error e = SX_ERROR_INIT;
  sx_status rc = SX_OK;
  int i = 0;
  for (; i < 1000 && rc == SX_OK; i++) {
    std::string db = dir + "/db" + std::to_string(i);
    sx_db *d = nullptr;
    rc = sx_db_open(&d, db.c_str(), nullptr, &e);
    if (rc == SX_OK) open.push_back(d);
    if (rc == SX_OK && i == 0) rc = Create(d, &e);
  }
  r.batches = i - 1;  // the index of the database whose open failed
  r.status = rc;
  {
    // What the failed open of a new database may leave: nothing, or the whole new
    // database (P is made whole by a rename, and opens below); never a file of it
    // beside no P.
    const std::string failed = "db" + std::to_string(r.batches);
    std::set<std::string> names = Names(dir);
    if (!names.count(failed))
      for (const std::string &n : names)
        if (n.rfind(failed + "-", 0) == 0) snprintf(r.stray, sizeof r.stray, "%s", n.c_str());
  }
  snprintf(r.message, sizeof r.message, "%s", e.message);
  if (write(pipefd, &r, sizeof r) != (ssize_t)sizeof r) return 4;
  if (open.empty()) return 5;
  // The handles already open work on (a commit needs no new descriptor).
  if (CommitBatch(open[0], 1, &e) != SX_OK) return 6;
  uint64_t n = 0;
  if (Count(open[0], &n, &e) != SX_OK || n != kBatch) return 7;
  for (sx_db *d : open) sx_db_free(d);
  rl.rlim_cur = old;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 8;
  sx_db *d = nullptr;
  std::string failed = dir + "/db" + std::to_string(r.batches);
  if (sx_db_open(&d, failed.c_str(), nullptr, &e) != SX_OK) return 9;
  if (sx_db_check(d, &e) != SX_OK) return 10;
  sx_db_free(d);
  return 0;
}

TEST(Limits, FewFileDescriptors) {
  for (rlim_t nofile : {(rlim_t)12, (rlim_t)15, (rlim_t)19, (rlim_t)26}) {
    SCOPED_TRACE("RLIMIT_NOFILE " + std::to_string(nofile));
    sxt::TmpDir t("nofile");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      // Only the standard streams and the pipe stay open below the limit.
      for (int fd = 3; fd < 1024; fd++)
        if (fd != fds[1]) close(fd);
      int w = fds[1];
      if (w != 3) {
        if (dup2(w, 3) < 0) _exit(11);
        close(w);
        w = 3;
      }
      _exit(OpenUnderNofile(t.dir, nofile, w));
    }
    close(fds[1]);
    Report r;
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_FALSE(WIFSIGNALED(st)) << "the child died of signal " << WTERMSIG(st);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(got, (ssize_t)sizeof r);
    printf("[ nofile %llu: %d databases opened, then %s: %s ]\n", (unsigned long long)nofile,
           r.batches, sx_status_name((sx_status)r.status), r.message);
    ASSERT_EQ(WEXITSTATUS(st), 0) << "the child failed at step " << WEXITSTATUS(st);
    EXPECT_EQ(r.status, SX_IO) << r.message;
    EXPECT_NE(strstr(r.message, "Too many open files"), nullptr) << r.message;
    EXPECT_NE(strstr(r.message, t.dir), nullptr) << "the message names no file: " << r.message;
    EXPECT_STREQ(r.stray, "") << "the failed open left a file of the database without it";
  }
}

}  // namespace
