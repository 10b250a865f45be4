// A full device is SX_FULL, never SIGBUS (issue 19, item 1): commits fill a real,
// small file system (a 3 MB tmpfs mounted in a private mount namespace) until they
// fail with SX_FULL; then a read session in the same process, a handle opened after
// it, and a reopen all read the database, and it passes its check. P-shm grew by
// ftruncate alone, sparse, so the first touch of a new page of its mapping faulted
// with SIGBUS on the full device; it is now allocated before it is mapped. Once space
// returns (the tmpfs remounted larger), the database takes commits again and a reopen
// finds them all.
//
// Runs in a child process (the mount namespace and any signal stay there). Skipped,
// saying why, where the machine allows no private mount (not root, no unshare).
#include <errno.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sextant.h"
#include "testutil.hh"

namespace {

constexpr int kSkip = 77;

// In the child: returns 0 when every step behaved, else a step number.
int FillAndRead(const std::string &dir) {
  if (unshare(CLONE_NEWNS) != 0) return kSkip;
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return kSkip;
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=3m") != 0) return kSkip;
  const std::string db = dir + "/full.sx";
  sx_db *d = nullptr;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.threads = 1;
  if (sx_db_open(&d, db.c_str(), &oo, nullptr) != SX_OK) return 2;
  sx_write *w = nullptr;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = 64;
  co.index = SX_INDEX_FLAT;
  if (sx_write_begin(d, -1, &w, nullptr) != SX_OK) return 3;
  if (sx_write_create_collection(w, "c", &co, nullptr) != SX_OK) return 4;
  if (sx_write_commit(w, nullptr) != SX_OK) return 5;
  sx_write_free(w);
  uint64_t committed = 0;
  sx_status rc = SX_OK;
  for (int batch = 0; batch < 10000 && rc == SX_OK; batch++) {
    std::vector<float> v = sxt::Gen(batch + 1, 50, 64);
    std::vector<std::string> ids;
    std::vector<const char *> ip;
    for (int i = 0; i < 50; i++)
      ids.push_back("b" + std::to_string(batch) + "-" + std::to_string(i));
    for (auto &s : ids) ip.push_back(s.c_str());
    if (sx_write_begin(d, -1, &w, nullptr) != SX_OK) return 6;
    sx_error e = SX_ERROR_INIT;
    rc = sx_write_upsert(w, "c", 50, ip.data(), v.data(), 64, nullptr, &e);
    if (rc == SX_OK)
      rc = sx_write_commit(w, &e);
    else
      sx_write_abort(w);
    sx_write_free(w);
    if (rc == SX_OK)
      committed += 50;
    else if (rc != SX_FULL && rc != SX_IO) {
      fprintf(stderr, "commit failed with %s: %s\n", sx_status_name(rc), e.message);
      return 7;
    }
  }
  if (rc == SX_OK || committed == 0) return 8;  // never filled, or filled at once
  fprintf(stderr, "[ %llu vectors committed before %s ]\n", (unsigned long long)committed,
          sx_status_name(rc));
  auto count = [&](sx_db *h, uint64_t *n) -> int {
    sx_read *r = nullptr;
    sx_error e = SX_ERROR_INIT;
    if (sx_read_begin(h, &r, &e) != SX_OK) {
      fprintf(stderr, "read_begin: %s\n", e.message);
      return 1;
    }
    sx_collection *c = nullptr;
    int bad = sx_read_collection(r, "c", &c, &e) != SX_OK || sx_collection_count(c, n, &e) != SX_OK;
    if (bad) fprintf(stderr, "read: %s\n", e.message);
    sx_collection_free(c);
    sx_read_free(r);
    return bad;
  };
  uint64_t n = 0;
  if (count(d, &n) || n != committed) return 9;  // the same handle
  sx_db *d2 = nullptr;
  if (sx_db_open(&d2, db.c_str(), &oo, nullptr) != SX_OK) return 10;
  if (count(d2, &n) || n != committed) return 11;  // another handle, same process
  sx_db_free(d2);
  sx_db_free(d);
  if (sx_db_open(&d, db.c_str(), &oo, nullptr) != SX_OK) return 12;  // reopened
  if (count(d, &n) || n != committed) return 13;
  sx_error e = SX_ERROR_INIT;
  if (sx_db_check(d, &e) != SX_OK) {
    fprintf(stderr, "check: %s\n", e.message);
    return 14;
  }
  sx_db_free(d);
  // Space returns (the file system grown in place): the database takes commits again.
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT, "size=16m") != 0) return 15;
  if (sx_db_open(&d, db.c_str(), &oo, nullptr) != SX_OK) return 16;
  for (int batch = 0; batch < 20; batch++) {
    std::vector<float> v = sxt::Gen(100000 + batch, 50, 64);
    std::vector<std::string> ids;
    std::vector<const char *> ip;
    for (int i = 0; i < 50; i++)
      ids.push_back("after" + std::to_string(batch) + "-" + std::to_string(i));
    for (auto &s : ids) ip.push_back(s.c_str());
    if (sx_write_begin(d, -1, &w, &e) != SX_OK) return 17;
    rc = sx_write_upsert(w, "c", 50, ip.data(), v.data(), 64, nullptr, &e);
    if (rc == SX_OK) rc = sx_write_commit(w, &e);
    sx_write_free(w);
    if (rc != SX_OK) {
      fprintf(stderr, "commit after space returned: %s\n", e.message);
      return 18;
    }
  }
  sx_db_free(d);
  if (sx_db_open(&d, db.c_str(), &oo, nullptr) != SX_OK) return 19;
  if (count(d, &n) || n != committed + 20 * 50) return 20;
  if (sx_db_check(d, &e) != SX_OK) {
    fprintf(stderr, "check: %s\n", e.message);
    return 21;
  }
  sx_db_free(d);
  return 0;
}

TEST(DiskFull, ReadersSurviveAFullFileSystem) {
  sxt::TmpDir t("diskfull");
  const std::string dir = t.path("mnt");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << strerror(errno);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(FillAndRead(dir));
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  if (WIFEXITED(st) && WEXITSTATUS(st) == kSkip)
    GTEST_SKIP() << "no private mount namespace with a small tmpfs here (needs root and unshare)";
  ASSERT_FALSE(WIFSIGNALED(st)) << "the child died of signal " << WTERMSIG(st)
                                << (WTERMSIG(st) == SIGBUS
                                        ? " (SIGBUS: a mapping of an unallocated page)"
                                        : "");
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "failed at step " << WEXITSTATUS(st);
}

}  // namespace
