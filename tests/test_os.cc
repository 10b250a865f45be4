// Tests of the os layer: the default VFS, OFD locks, the poison rule, and the
// fault-injecting VFS (injected errors, power loss, torn writes, crashes).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "faultvfs.h"
#include "os/os.h"
#include "os/os_internal.h"
#include "testutil.h"
#include "testutil.hh"

namespace {

class OsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = sx_test_tmpdir("os");
  }
  void TearDown() override {
    sx_test_rmtree(dir_);
    free(dir_);
  }
  std::string P(const char *name) {
    char *p = sx_test_path(dir_, name);
    std::string s(p);
    free(p);
    return s;
  }
  char *dir_ = nullptr;
};

bool Exists(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

sx__file *Open(sx__vfs *vfs, const std::string &path, int flags) {
  sx__file *f = nullptr;
  sx_error err = SX_ERROR_INIT;
  int rc = vfs->open(vfs, path.c_str(), flags, &f, &err);
  EXPECT_EQ(rc, SX_OK) << err.message;
  return f;
}

const int RW = SX__OPEN_WRITE | SX__OPEN_CREATE;

void Write(sx__file *f, const std::string &s, uint64_t off) {
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__file_write(f, s.data(), s.size(), off, &err), SX_OK) << err.message;
}

void Sync(sx__file *f) {
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__file_sync(f, 0, &err), SX_OK) << err.message;
}

// ---------------------------------------------------------------------------
// Errors and helpers

TEST(OsErr, SetAndMap) {
  EXPECT_EQ(sx__err_set(nullptr, SX_IO, "x %d", 1), SX_IO);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx__err_set(&err, SX_BUSY, "lock '%s' held", "/a/b"), SX_BUSY);
  EXPECT_EQ(err.code, SX_BUSY);
  EXPECT_STREQ(err.message, "lock '/a/b' held");
  std::string big(2000, 'z');
  sx__err_set(&err, SX_IO, "%s", big.c_str());
  EXPECT_EQ(strlen(err.message), (size_t)SX_ERROR_MESSAGE_MAX - 1);

  EXPECT_EQ(sx__status_from_errno(ENOSPC), SX_FULL);
  EXPECT_EQ(sx__status_from_errno(EDQUOT), SX_FULL);
  EXPECT_EQ(sx__status_from_errno(ENOMEM), SX_NOMEM);
  EXPECT_EQ(sx__status_from_errno(ENOENT), SX_NOT_FOUND);
  EXPECT_EQ(sx__status_from_errno(EACCES), SX_IO);
  EXPECT_EQ(sx__status_from_errno(EPERM), SX_IO);
  EXPECT_EQ(sx__status_from_errno(EROFS), SX_READ_ONLY);
  EXPECT_EQ(sx__status_from_errno(EIO), SX_IO);
  EXPECT_EQ(sx__status_from_errno(EBADF), SX_IO);
}

TEST(OsMisc, ClockSleepPage) {
  uint64_t t0 = sx__now_ns();
  sx__sleep_us(20000);
  uint64_t t1 = sx__now_ns();
  EXPECT_GE(t1 - t0, 20000000u);
  EXPECT_LT(t1 - t0, 2000000000u);
  size_t p = sx__os_page_size();
  EXPECT_GE(p, 4096u);
  EXPECT_EQ(p & (p - 1), 0u);
}

// ---------------------------------------------------------------------------
// The default VFS

TEST_F(OsTest, ReadWriteRoundTrip) {
  sx__vfs *vfs = sx__vfs_default();
  std::string path = P("db");
  sx__file *f = Open(vfs, path, RW);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(std::string(sx__file_path(f)), path);
  EXPECT_GE(sx__file_fd(f), 0);
  EXPECT_NE(fcntl(sx__file_fd(f), F_GETFD) & FD_CLOEXEC, 0);

  std::string data(10000, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = (char)(i * 7 + 3);
  Write(f, data, 100);
  Sync(f);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx__file_sync(f, 1, &err), SX_OK);
  uint64_t size = 0;
  ASSERT_EQ(sx__file_size(f, &size, &err), SX_OK);
  EXPECT_EQ(size, 10100u);
  std::string back(data.size(), '\0');
  ASSERT_EQ(sx__file_read(f, &back[0], back.size(), 100, &err), SX_OK);
  EXPECT_EQ(back, data);
  // The hole before the write reads as zeros.
  char hole[100];
  ASSERT_EQ(sx__file_read(f, hole, sizeof hole, 0, &err), SX_OK);
  for (char c : hole) EXPECT_EQ(c, 0);

  ASSERT_EQ(sx__file_truncate(f, 50, &err), SX_OK);
  ASSERT_EQ(sx__file_size(f, &size, &err), SX_OK);
  EXPECT_EQ(size, 50u);
  sx__file_close(f);
  sx__file_close(nullptr);  // no-op

  // Read-only descriptor: reads work, writes fail.
  sx__file *ro = Open(vfs, path, SX__OPEN_READ);
  ASSERT_NE(ro, nullptr);
  char c;
  EXPECT_EQ(sx__file_read(ro, &c, 1, 10, &err), SX_OK);
  EXPECT_NE(sx__file_write(ro, "x", 1, 0, &err), SX_OK);
  sx__file_close(ro);
}

TEST_F(OsTest, ShortReadIsError) {
  sx__file *f = Open(sx__vfs_default(), P("db"), RW);
  Write(f, std::string(100, 'a'), 0);
  char buf[200];
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx__file_read(f, buf, 200, 0, &err), SX_IO);
  EXPECT_EQ(err.code, SX_IO);
  EXPECT_NE(strstr(err.message, "short read"), nullptr) << err.message;
  EXPECT_NE(strstr(err.message, P("db").c_str()), nullptr) << err.message;
  EXPECT_EQ(sx__file_read(f, buf, 1, 100, &err), SX_IO);
  EXPECT_EQ(sx__file_read(f, buf, 100, 0, &err), SX_OK);
  sx__file_close(f);
}

TEST_F(OsTest, OpenErrors) {
  sx__vfs *vfs = sx__vfs_default();
  sx__file *f = nullptr;
  sx_error err = SX_ERROR_INIT;
  std::string missing = P("missing");
  EXPECT_EQ(vfs->open(vfs, missing.c_str(), SX__OPEN_READ, &f, &err), SX_NOT_FOUND);
  EXPECT_EQ(f, nullptr);
  EXPECT_EQ(err.code, SX_NOT_FOUND);
  EXPECT_EQ(std::string(err.message), "cannot open '" + missing + "': No such file or directory");

  sx__file *a = Open(vfs, P("db"), RW | SX__OPEN_EXCL);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(vfs->open(vfs, P("db").c_str(), RW | SX__OPEN_EXCL, &f, &err), SX_EXISTS);
  EXPECT_NE(strstr(err.message, "already exists"), nullptr);
  sx__file_close(a);
}

TEST_F(OsTest, MmapSharesThePageCache) {
  sx__file *f = Open(sx__vfs_default(), P("db"), RW);
  size_t page = sx__os_page_size();
  Write(f, std::string(page * 2, 'm'), 0);
  sx_error err = SX_ERROR_INIT;
  void *ro = nullptr, *rw = nullptr;
  ASSERT_EQ(sx__file_mmap(f, 0, page * 2, 0, &ro, &err), SX_OK) << err.message;
  ASSERT_EQ(sx__file_mmap(f, page, page, 1, &rw, &err), SX_OK) << err.message;
  EXPECT_EQ(((char *)ro)[page + 5], 'm');
  ((char *)rw)[5] = 'Q';  // visible through the other map and to pread
  EXPECT_EQ(((char *)ro)[page + 5], 'Q');
  char c = 0;
  ASSERT_EQ(sx__file_read(f, &c, 1, page + 5, &err), SX_OK);
  EXPECT_EQ(c, 'Q');
  void *bad = nullptr;
  EXPECT_EQ(sx__file_mmap(f, 100, page, 0, &bad, &err), SX_INVALID_ARGUMENT);
  EXPECT_EQ(bad, nullptr);
  sx__file_munmap(f, ro, page * 2);
  sx__file_munmap(f, rw, page);
  sx__file_close(f);
}

TEST_F(OsTest, RenameDirSyncUnlinkExists) {
  sx__vfs *vfs = sx__vfs_default();
  sx_error err = SX_ERROR_INIT;
  std::string a = P("a"), b = P("b");
  EXPECT_EQ(vfs->exists(vfs, a.c_str(), &err), 0);
  sx__file *f = Open(vfs, a, RW);
  Write(f, "hello", 0);
  sx__file_close(f);
  EXPECT_EQ(vfs->exists(vfs, a.c_str(), &err), 1);
  EXPECT_EQ(vfs->dir_sync(vfs, a.c_str(), &err), SX_OK) << err.message;
  ASSERT_EQ(vfs->rename(vfs, a.c_str(), b.c_str(), &err), SX_OK) << err.message;
  EXPECT_EQ(vfs->exists(vfs, a.c_str(), &err), 0);
  EXPECT_EQ(sxt::ReadFile(b), "hello");
  EXPECT_EQ(vfs->rename(vfs, a.c_str(), b.c_str(), &err), SX_NOT_FOUND);
  EXPECT_NE(strstr(err.message, "cannot rename"), nullptr);
  EXPECT_EQ(vfs->unlink(vfs, b.c_str(), &err), SX_OK);
  EXPECT_EQ(vfs->unlink(vfs, b.c_str(), &err), SX_OK);  // missing is fine
  EXPECT_FALSE(Exists(b));
  // A bare name lives in ".".
  EXPECT_EQ(vfs->dir_sync(vfs, "relative-name", &err), SX_OK) << err.message;
  EXPECT_EQ(vfs->dir_sync(vfs, (P("nodir") + "/x").c_str(), &err), SX_NOT_FOUND);
}

TEST_F(OsTest, FsCheckLocal) {
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx__fs_check_local(dir_, &err), SX_OK) << err.message;
  EXPECT_EQ(sx__fs_check_local(P("not-yet").c_str(), &err), SX_OK) << err.message;
  sx__file_close(Open(sx__vfs_default(), P("db"), RW));
  EXPECT_EQ(sx__fs_check_local(P("db").c_str(), &err), SX_OK) << err.message;
  EXPECT_EQ(sx__fs_check_local((P("no-dir") + "/db").c_str(), &err), SX_NOT_FOUND);
}

// ---------------------------------------------------------------------------
// OFD locks

TEST_F(OsTest, LockExclusionInOneProcess) {
  sx__vfs *vfs = sx__vfs_default();
  sx__file *a = Open(vfs, P("db-shm"), RW);
  sx__file *b = Open(vfs, P("db-shm"), RW);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__file_lock(a, 120, 1, SX__WRLOCK, 0, &err), SX_OK) << err.message;
  EXPECT_EQ(sx__file_lock(b, 120, 1, SX__WRLOCK, 0, &err), SX_BUSY);
  EXPECT_EQ(err.code, SX_BUSY);
  EXPECT_NE(strstr(err.message, "db-shm"), nullptr) << err.message;
  EXPECT_EQ(sx__file_lock(b, 120, 1, SX__RDLOCK, 0, &err), SX_BUSY);
  // Other bytes are free.
  EXPECT_EQ(sx__file_lock(b, 121, 1, SX__WRLOCK, 0, &err), SX_OK);
  // GETLK sees the other description's lock, never its own.
  EXPECT_EQ(sx__file_lock_held(b, 120, 1, SX__WRLOCK), 1);
  EXPECT_EQ(sx__file_lock_held(b, 120, 1, SX__RDLOCK), 1);
  EXPECT_EQ(sx__file_lock_held(a, 120, 1, SX__WRLOCK), 0);
  EXPECT_EQ(sx__file_lock_held(a, 121, 1, SX__WRLOCK), 1);
  EXPECT_EQ(sx__file_lock_held(b, 121, 1, SX__WRLOCK), 0);
  // Closing the holder releases.
  sx__file_close(a);
  EXPECT_EQ(sx__file_lock_held(b, 120, 1, SX__WRLOCK), 0);
  EXPECT_EQ(sx__file_lock(b, 120, 1, SX__WRLOCK, 0, &err), SX_OK);
  sx__file_close(b);
}

TEST_F(OsTest, ReadLocksSharedAndConversion) {
  sx__vfs *vfs = sx__vfs_default();
  sx__file *a = Open(vfs, P("db-shm"), RW);
  sx__file *b = Open(vfs, P("db-shm"), RW);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__file_lock(a, 0, 8, SX__RDLOCK, 0, &err), SX_OK);
  ASSERT_EQ(sx__file_lock(b, 0, 8, SX__RDLOCK, 0, &err), SX_OK);
  EXPECT_EQ(sx__file_lock_held(a, 0, 8, SX__RDLOCK), 0);  // readers do not conflict
  EXPECT_EQ(sx__file_lock_held(a, 0, 8, SX__WRLOCK), 1);
  // Upgrade blocked by the other reader.
  EXPECT_EQ(sx__file_lock(a, 0, 8, SX__WRLOCK, 0, &err), SX_BUSY);
  ASSERT_EQ(sx__file_lock(b, 0, 8, SX__UNLOCK, 0, &err), SX_OK);
  EXPECT_EQ(sx__file_lock(a, 0, 8, SX__WRLOCK, 0, &err), SX_OK);
  EXPECT_EQ(sx__file_lock(b, 0, 8, SX__RDLOCK, 0, &err), SX_BUSY);
  // Downgrade lets the reader back in, but not a writer.
  ASSERT_EQ(sx__file_lock(a, 0, 8, SX__RDLOCK, 0, &err), SX_OK);
  EXPECT_EQ(sx__file_lock(b, 0, 8, SX__RDLOCK, 0, &err), SX_OK);
  EXPECT_EQ(sx__file_lock(b, 4, 1, SX__WRLOCK, 0, &err), SX_BUSY);
  EXPECT_EQ(sx__file_lock(a, 0, 8, 7, 0, &err), SX_INVALID_ARGUMENT);
  sx__file_close(a);
  sx__file_close(b);
}

TEST_F(OsTest, LockTimeout) {
  sx__vfs *vfs = sx__vfs_default();
  sx__file *a = Open(vfs, P("db-shm"), RW);
  sx__file *b = Open(vfs, P("db-shm"), RW);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(sx__file_lock(a, 0, 1, SX__WRLOCK, 0, &err), SX_OK);
  uint64_t t0 = sx__now_ns();
  EXPECT_EQ(sx__file_lock(b, 0, 1, SX__WRLOCK, 150, &err), SX_BUSY);
  uint64_t ms = (sx__now_ns() - t0) / 1000000;
  EXPECT_GE(ms, 150u);
  EXPECT_LT(ms, 1500u);
  EXPECT_NE(strstr(err.message, "150 ms"), nullptr) << err.message;

  // Released during the wait: the timed lock gets it long before its timeout.
  std::thread releaser([&] {
    sx__sleep_us(50000);
    sx_error e2 = SX_ERROR_INIT;
    sx__file_lock(a, 0, 1, SX__UNLOCK, 0, &e2);
  });
  t0 = sx__now_ns();
  EXPECT_EQ(sx__file_lock(b, 0, 1, SX__WRLOCK, 5000, &err), SX_OK) << err.message;
  EXPECT_LT((sx__now_ns() - t0) / 1000000, 2000u);
  releaser.join();

  // Wait for ever (-1), woken by the holder closing.
  std::thread closer([&] {
    sx__sleep_us(50000);
    sx__file_close(b);
  });
  EXPECT_EQ(sx__file_lock(a, 0, 1, SX__RDLOCK, -1, &err), SX_OK) << err.message;
  closer.join();
  sx__file_close(a);
}

// A child takes a lock and dies (cleanly or by SIGKILL); the kernel must release it.
void LockHeldByDyingChild(const std::string &path, bool kill_it) {
  // up: child -> parent "locked"; down: parent -> child "go on" (by closing it).
  int up[2], down[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(down), 0);
  unsigned gen = sx__fork_generation();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    sx__file *f = nullptr;
    sx__vfs *vfs = sx__vfs_default();
    char ok = 'n';
    if (vfs->open(vfs, path.c_str(), RW, &f, nullptr) == SX_OK &&
        sx__file_lock(f, 7, 1, SX__WRLOCK, 0, nullptr) == SX_OK && sx__fork_generation() == gen + 1)
      ok = 'y';
    if (write(up[1], &ok, 1) != 1) _exit(3);
    char go;
    if (read(down[0], &go, 1) < 0) _exit(4);  // returns 0 on EOF too
    if (kill_it)
      for (;;) pause();
    _exit(0);  // the descriptor is never closed explicitly
  }
  // From here on the child must be reaped whatever fails: no ASSERT before waitpid.
  close(up[1]);
  close(down[0]);
  char ok = 0;
  bool ready = read(up[0], &ok, 1) == 1 && ok == 'y';
  close(up[0]);
  EXPECT_TRUE(ready) << "the child could not take the lock (or missed the fork)";
  EXPECT_EQ(sx__fork_generation(), gen);  // the parent did not cross a fork

  sx__file *f = Open(sx__vfs_default(), path, RW);
  sx_error err = SX_ERROR_INIT;
  if (ready && f) {
    EXPECT_EQ(sx__file_lock_held(f, 7, 1, SX__RDLOCK), 1);
    EXPECT_EQ(sx__file_lock(f, 7, 1, SX__RDLOCK, 0, &err), SX_BUSY);
  }
  close(down[1]);  // lets the child go on: exit, or wait to be killed
  if (kill_it || !ready) kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  if (kill_it)
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  else
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(sx__file_lock_held(f, 7, 1, SX__WRLOCK), 0);
  EXPECT_EQ(sx__file_lock(f, 7, 1, SX__WRLOCK, 0, &err), SX_OK) << err.message;
  sx__file_close(f);
}

TEST_F(OsTest, LockReleasedWhenChildExits) {
  LockHeldByDyingChild(P("db-shm"), false);
}

TEST_F(OsTest, LockReleasedWhenChildIsKilled) {
  LockHeldByDyingChild(P("db-shm"), true);
}

// ---------------------------------------------------------------------------
// The poison rule

// A VFS whose sync fails without poisoning anything itself: the wrapper must.
int sloppy_sync(sx__file *f, int data_only, sx_error *err) {
  return sx__err_set(err, SX_IO, "sync of '%s' failed", sx__file_path(f));
}

TEST_F(OsTest, PoisonEnforcedByWrapperForAnyVfs) {
  sx__vfs sloppy = *sx__vfs_default();
  sloppy.sync = sloppy_sync;
  sx__file *f = Open(sx__vfs_default(), P("db"), RW);
  f->vfs = &sloppy;
  sx_error err = SX_ERROR_INIT;
  Write(f, "abc", 0);
  EXPECT_EQ(sx__file_sync(f, 1, &err), SX_IO);
  EXPECT_EQ(sx__file_write(f, "d", 1, 3, &err), SX_IO);
  EXPECT_NE(strstr(err.message, "earlier sync"), nullptr) << err.message;
  f->vfs = sx__vfs_default();
  // The default VFS refuses too, even when called through its table.
  EXPECT_EQ(f->vfs->write(f, "d", 1, 3, &err), SX_IO);
  EXPECT_EQ(f->vfs->sync(f, 0, &err), SX_IO);
  EXPECT_EQ(sxt::ReadFile(P("db")), "abc");
  sx__file_close(f);
}

TEST_F(OsTest, FaultedSyncPoisons) {
  sx__faultvfs *fv = sx__faultvfs_new();
  sx__vfs *vfs = sx__faultvfs_vfs(fv);
  sx__file *f = Open(vfs, P("db"), RW);
  sx__file *other = Open(vfs, P("db"), RW);
  Write(f, "abc", 0);
  sx__faultvfs_arm(fv, SX__IO_SYNC, 1, SX__FAULT_EIO, 0);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx__file_sync(f, 1, &err), SX_IO);
  EXPECT_EQ(err.code, SX_IO);
  EXPECT_TRUE(sx__faultvfs_fired(fv));
  sx__faultvfs_disarm(fv);
  EXPECT_EQ(sx__file_write(f, "d", 1, 3, &err), SX_IO);
  EXPECT_NE(strstr(err.message, "earlier sync"), nullptr) << err.message;
  EXPECT_NE(strstr(err.message, P("db").c_str()), nullptr) << err.message;
  EXPECT_EQ(sx__file_sync(f, 0, &err), SX_IO);
  EXPECT_EQ(vfs->write(f, "d", 1, 3, &err), SX_IO);
  // Reads still work; the poison belongs to that sx__file only.
  char buf[3];
  EXPECT_EQ(sx__file_read(f, buf, 3, 0, &err), SX_OK);
  Write(other, "e", 3);
  Sync(other);
  EXPECT_EQ(sxt::ReadFile(P("db")), "abce");
  sx__file_close(f);
  sx__file_close(other);
  sx__faultvfs_free(fv);
}

// ---------------------------------------------------------------------------
// Fault injection

class FaultTest : public OsTest {
 protected:
  void SetUp() override {
    OsTest::SetUp();
    fv_ = sx__faultvfs_new();
    vfs_ = sx__faultvfs_vfs(fv_);
  }
  void TearDown() override {
    sx__faultvfs_free(fv_);
    OsTest::TearDown();
  }
  sx__faultvfs *fv_ = nullptr;
  sx__vfs *vfs_ = nullptr;
};

TEST_F(FaultTest, NthWriteFailsWithEio) {
  sx__file *f = Open(vfs_, P("db"), RW);
  sx__faultvfs_arm(fv_, SX__IO_WRITE, 2, SX__FAULT_EIO, 0);
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx__file_write(f, "a", 1, 0, &err), SX_OK);
  EXPECT_FALSE(sx__faultvfs_fired(fv_));
  EXPECT_EQ(sx__file_write(f, "b", 1, 1, &err), SX_IO);
  EXPECT_EQ(err.code, SX_IO);
  EXPECT_NE(strstr(err.message, "Input/output error"), nullptr) << err.message;
  EXPECT_NE(strstr(err.message, P("db").c_str()), nullptr) << err.message;
  EXPECT_TRUE(sx__faultvfs_fired(fv_));
  EXPECT_EQ(sx__file_write(f, "c", 1, 1, &err), SX_OK);  // once only
  EXPECT_EQ(sxt::ReadFile(P("db")), "ac");
  sx__file_close(f);
}

TEST_F(FaultTest, EnospcIsFull) {
  sx__file *f = Open(vfs_, P("db"), RW);
  sx_error err = SX_ERROR_INIT;
  sx__faultvfs_arm(fv_, SX__IO_WRITE, 1, SX__FAULT_ENOSPC, 0);
  EXPECT_EQ(sx__file_write(f, "a", 1, 0, &err), SX_FULL);
  EXPECT_EQ(err.code, SX_FULL);
  sx__faultvfs_arm(fv_, SX__IO_TRUNCATE, 1, SX__FAULT_ENOSPC, 0);
  EXPECT_EQ(sx__file_truncate(f, 1 << 20, &err), SX_FULL);
  uint64_t size = 1;
  ASSERT_EQ(sx__file_size(f, &size, &err), SX_OK);
  EXPECT_EQ(size, 0u);
  sx__file_close(f);
}

TEST_F(FaultTest, ShortWriteLeavesAPrefix) {
  sx__file *f = Open(vfs_, P("db"), RW);
  std::string data(4096 + 100, 'x');
  for (size_t i = 0; i < data.size(); i++) data[i] = (char)('a' + i % 26);
  sx_error err = SX_ERROR_INIT;
  sx__faultvfs_arm(fv_, SX__IO_WRITE, 1, SX__FAULT_SHORT, 0);
  EXPECT_EQ(sx__file_write(f, data.data(), data.size(), 0, &err), SX_IO);
  EXPECT_NE(strstr(err.message, "2048 of 4196"), nullptr) << err.message;
  std::string got = sxt::ReadFile(P("db"));
  EXPECT_EQ(got, data.substr(0, 2048));
  // A write smaller than two sectors keeps nothing.
  sx__faultvfs_arm(fv_, SX__IO_WRITE, 1, SX__FAULT_SHORT, 0);
  EXPECT_EQ(sx__file_write(f, "zzzz", 4, 0, &err), SX_IO);
  EXPECT_EQ(sxt::ReadFile(P("db")), data.substr(0, 2048));
  sx__file_close(f);
}

TEST_F(FaultTest, PersistentKeepsFailing) {
  sx__file *f = Open(vfs_, P("db"), RW);
  Write(f, "0123456789", 0);
  sx__faultvfs_arm(fv_, SX__IO_READ, 2, SX__FAULT_EIO, 1);
  sx_error err = SX_ERROR_INIT;
  char buf[4];
  EXPECT_EQ(sx__file_read(f, buf, 4, 0, &err), SX_OK);
  for (int i = 0; i < 5; i++) EXPECT_EQ(sx__file_read(f, buf, 4, 0, &err), SX_IO);
  Write(f, "x", 0);  // other kinds unaffected
  sx__faultvfs_disarm(fv_);
  EXPECT_EQ(sx__file_read(f, buf, 4, 0, &err), SX_OK);
  EXPECT_EQ(std::string(buf, 4), "x123");
  sx__file_close(f);
}

TEST_F(FaultTest, CountingAndAnyKind) {
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_KINDS), 0u);
  sx__file *f = Open(vfs_, P("db"), RW);
  sx_error err = SX_ERROR_INIT;
  Write(f, "ab", 0);
  Write(f, "cd", 2);
  char buf[4];
  ASSERT_EQ(sx__file_read(f, buf, 4, 0, &err), SX_OK);
  Sync(f);
  ASSERT_EQ(vfs_->dir_sync(vfs_, P("db").c_str(), &err), SX_OK);
  ASSERT_EQ(sx__file_truncate(f, 3, &err), SX_OK);
  void *m = nullptr;
  ASSERT_EQ(sx__file_mmap(f, 0, 4096, 0, &m, &err), SX_OK);
  sx__file_munmap(f, m, 4096);
  ASSERT_EQ(vfs_->rename(vfs_, P("db").c_str(), P("db2").c_str(), &err), SX_OK);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_OPEN), 1u);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_WRITE), 2u);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_READ), 1u);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_SYNC), 2u);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_TRUNCATE), 1u);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_MMAP), 1u);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_RENAME), 1u);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_KINDS), 9u);

  // The 3rd call of any kind from now: write, read, then the sync fails.
  sx__faultvfs_arm(fv_, SX__IO_KINDS, 3, SX__FAULT_EIO, 0);
  Write(f, "x", 0);
  ASSERT_EQ(sx__file_read(f, buf, 1, 0, &err), SX_OK);
  EXPECT_FALSE(sx__faultvfs_fired(fv_));
  EXPECT_EQ(sx__file_sync(f, 0, &err), SX_IO);
  EXPECT_TRUE(sx__faultvfs_fired(fv_));
  sx__file_close(f);
}

TEST_F(FaultTest, OtherKindsCanFail) {
  sx_error err = SX_ERROR_INIT;
  sx__file *f = nullptr;
  sx__faultvfs_arm(fv_, SX__IO_OPEN, 1, SX__FAULT_EIO, 0);
  EXPECT_EQ(vfs_->open(vfs_, P("db").c_str(), RW, &f, &err), SX_IO);
  EXPECT_EQ(f, nullptr);
  EXPECT_FALSE(Exists(P("db")));
  f = Open(vfs_, P("db"), RW);
  Write(f, std::string(8192, 'a'), 0);
  sx__faultvfs_arm(fv_, SX__IO_MMAP, 1, SX__FAULT_EIO, 0);
  void *m = (void *)1;
  EXPECT_EQ(sx__file_mmap(f, 0, 4096, 0, &m, &err), SX_IO);
  EXPECT_EQ(m, nullptr);
  sx__faultvfs_arm(fv_, SX__IO_RENAME, 1, SX__FAULT_EIO, 0);
  EXPECT_EQ(vfs_->rename(vfs_, P("db").c_str(), P("x").c_str(), &err), SX_IO);
  EXPECT_TRUE(Exists(P("db")));
  EXPECT_FALSE(Exists(P("x")));
  sx__faultvfs_arm(fv_, SX__IO_SYNC, 1, SX__FAULT_EIO, 0);
  EXPECT_EQ(vfs_->dir_sync(vfs_, P("db").c_str(), &err), SX_IO);
  sx__file_close(f);
}

// ---------------------------------------------------------------------------
// Power loss

TEST_F(FaultTest, PowerLossDropRestoresSyncedState) {
  sx_error err = SX_ERROR_INIT;
  const std::string synced = std::string(10, 'w') + std::string(8182, 'x');
  // A: durable name and contents, then unsynced writes through a second handle.
  {
    sx__file *a1 = Open(vfs_, P("a"), RW);
    sx__file *a2 = Open(vfs_, P("a"), RW);
    Write(a1, std::string(8192, 'x'), 0);
    Sync(a1);
    ASSERT_EQ(vfs_->dir_sync(vfs_, P("a").c_str(), &err), SX_OK);
    Write(a1, std::string(10, 'w'), 0);
    Sync(a2);  // a sync through any handle makes the inode's writes durable
    Write(a2, std::string(100, 'y'), 1000);
    Write(a1, std::string(1000, 'z'), 8000);  // extends to 9000
    Write(a2, std::string(50, 'v'), 1020);    // overlaps an unsynced write
    sx__file_close(a1);
    sx__file_close(a2);
  }
  // C: synced, then shrunk and rewritten without a sync.
  {
    sx__file *c = Open(vfs_, P("c"), RW);
    Write(c, std::string(8192, 'q'), 0);
    Sync(c);
    ASSERT_EQ(sx__file_truncate(c, 100, &err), SX_OK);
    Write(c, std::string(10, 'r'), 50);
    ASSERT_EQ(sx__file_truncate(c, 20000, &err), SX_OK);
    sx__file_close(c);
  }
  ASSERT_EQ(vfs_->dir_sync(vfs_, P("c").c_str(), &err), SX_OK);
  // D: synced, then renamed into place (rename syncs the directory).
  {
    sx__file *d = Open(vfs_, P("d.tmp"), RW);
    Write(d, "ddd", 0);
    Sync(d);
    sx__file_close(d);
    ASSERT_EQ(vfs_->rename(vfs_, P("d.tmp").c_str(), P("d").c_str(), &err), SX_OK);
  }
  // B: created and synced, but its directory was not synced since (the rename
  // above was the last directory sync).
  {
    sx__file *b = Open(vfs_, P("b"), RW);
    Write(b, "bbb", 0);
    Sync(b);
    sx__file_close(b);
  }
  // E: created after the last directory sync and never synced at all.
  {
    sx__file *e = Open(vfs_, P("e"), RW);
    Write(e, "eee", 0);
    sx__file_close(e);
  }
  // The shm file is never tracked: it stays as it is.
  {
    sx__file *s = Open(vfs_, P("db-shm"), RW);
    Write(s, "shm", 0);
    sx__file_close(s);
  }
  EXPECT_EQ(sxt::ReadFile(P("a")).size(), 9000u);

  ASSERT_EQ(sx__faultvfs_power_loss(fv_, SX__LOSS_DROP, 0), SX_OK);
  EXPECT_EQ(sxt::ReadFile(P("a")), synced);
  EXPECT_EQ(sxt::ReadFile(P("c")), std::string(8192, 'q'));
  EXPECT_FALSE(Exists(P("b")));
  EXPECT_EQ(sxt::ReadFile(P("d")), "ddd");
  EXPECT_FALSE(Exists(P("d.tmp")));
  EXPECT_FALSE(Exists(P("e")));
  EXPECT_EQ(sxt::ReadFile(P("db-shm")), "shm");

  // Tracking is forgotten: a second power loss changes nothing, and the files are
  // usable through the VFS again.
  ASSERT_EQ(sx__faultvfs_power_loss(fv_, SX__LOSS_DROP, 0), SX_OK);
  EXPECT_EQ(sxt::ReadFile(P("a")), synced);
  sx__file *a = Open(vfs_, P("a"), RW);
  Write(a, "A", 0);
  sx__file_close(a);
  EXPECT_EQ(sxt::ReadFile(P("a"))[0], 'A');
}

// One unsynced write as seen after a torn power loss.
enum Outcome { kKept, kDropped, kTorn, kBad };

Outcome Classify(const std::string &file, uint64_t off, size_t len, char old_c, char new_c,
                 uint64_t old_size) {
  size_t k = 0;  // leading new bytes
  while (k < len && off + k < file.size() && file[off + k] == new_c) k++;
  // Everything after the prefix must be old bytes (or absent past the old size).
  for (size_t i = k; i < len; i++) {
    uint64_t at = off + i;
    if (at >= old_size) {
      if (at < file.size() && file[at] != '\0') return kBad;
      continue;
    }
    if (at >= file.size() || file[at] != old_c) return kBad;
  }
  if (k == len) return kKept;
  if (k == 0) return kDropped;
  return (off + k) % 512 == 0 ? kTorn : kBad;
}

TEST_F(FaultTest, PowerLossTearGivesOldNewOrSectorPrefix) {
  struct W {
    uint64_t off;
    size_t len;
    char c;
  };
  const W writes[] = {
      {0, 2048, 'a'}, {4096, 3000, 'b'}, {8192 + 100, 1500, 'c'}, {16384, 4096, 'd'}};
  const uint64_t old_size = 16384;
  int seen[4] = {0, 0, 0, 0};
  std::string first_result;
  for (uint64_t seed = 1; seed <= 64; seed++) {
    std::string path = P("t");
    {
      sx__file *f = Open(vfs_, path, RW);
      Write(f, std::string(old_size, 'o'), 0);
      Sync(f);
      sx_error err = SX_ERROR_INIT;
      ASSERT_EQ(vfs_->dir_sync(vfs_, path.c_str(), &err), SX_OK);
      for (const W &w : writes) Write(f, std::string(w.len, w.c), w.off);
      sx__file_close(f);
    }
    ASSERT_EQ(sx__faultvfs_power_loss(fv_, SX__LOSS_TEAR, seed), SX_OK);
    std::string file = sxt::ReadFile(path);
    ASSERT_GE(file.size(), old_size) << "seed " << seed;
    ASSERT_LE(file.size(), old_size + 4096) << "seed " << seed;
    // The extension is a sector-aligned prefix of the last write (or all of it).
    EXPECT_TRUE(file.size() == old_size + 4096 || file.size() % 512 == 0) << "seed " << seed;
    for (const W &w : writes) {
      Outcome o = Classify(file, w.off, w.len, 'o', w.c, old_size);
      EXPECT_NE(o, kBad) << "seed " << seed << " write at " << w.off;
      seen[o]++;
    }
    // Bytes no write touched keep their old value.
    for (uint64_t i = 0; i < old_size; i++) {
      bool touched = false;
      for (const W &w : writes) touched |= i >= w.off && i < w.off + w.len;
      if (!touched && file[i] != 'o') {
        ADD_FAILURE() << "seed " << seed << " byte " << i << " changed";
        break;
      }
    }
    if (seed == 1) first_result = file;
    ASSERT_EQ(unlink(path.c_str()), 0);
  }
  EXPECT_GT(seen[kKept], 0);
  EXPECT_GT(seen[kDropped], 0);
  EXPECT_GT(seen[kTorn], 0);

  // Same seed, same outcome.
  std::string path = P("t");
  sx__file *f = Open(vfs_, path, RW);
  Write(f, std::string(old_size, 'o'), 0);
  Sync(f);
  sx_error err = SX_ERROR_INIT;
  ASSERT_EQ(vfs_->dir_sync(vfs_, path.c_str(), &err), SX_OK);
  for (const W &w : writes) Write(f, std::string(w.len, w.c), w.off);
  sx__file_close(f);
  ASSERT_EQ(sx__faultvfs_power_loss(fv_, SX__LOSS_TEAR, 1), SX_OK);
  EXPECT_EQ(sxt::ReadFile(path), first_result);
}

TEST_F(FaultTest, CrashAtSync) {
  sx_error err = SX_ERROR_INIT;
  std::string path = P("db");
  sx__file *f = Open(vfs_, path, RW);
  ASSERT_EQ(vfs_->dir_sync(vfs_, path.c_str(), &err), SX_OK);
  Write(f, std::string(4096, 'A'), 0);
  Sync(f);
  sx__faultvfs_crash_at_sync(fv_, 2);
  Write(f, std::string(4096, 'B'), 4096);
  Sync(f);  // the 1st sync from now takes effect
  EXPECT_FALSE(sx__faultvfs_crashed(fv_));
  Write(f, std::string(4096, 'C'), 8192);
  EXPECT_EQ(sx__file_sync(f, 1, &err), SX_IO);  // the 2nd: the power goes
  EXPECT_TRUE(sx__faultvfs_crashed(fv_));
  EXPECT_NE(strstr(err.message, "power"), nullptr) << err.message;

  // Nothing more reaches the disk; reads still work.
  sx__file *g = Open(vfs_, path, RW);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(sx__file_write(g, "x", 1, 0, &err), SX_IO);
  EXPECT_NE(strstr(err.message, "power is off"), nullptr) << err.message;
  EXPECT_EQ(sx__file_sync(g, 0, &err), SX_IO);
  EXPECT_EQ(sx__file_truncate(g, 0, &err), SX_IO);
  EXPECT_EQ(vfs_->rename(vfs_, path.c_str(), P("other").c_str(), &err), SX_IO);
  EXPECT_EQ(vfs_->dir_sync(vfs_, path.c_str(), &err), SX_IO);
  EXPECT_EQ(vfs_->unlink(vfs_, path.c_str(), &err), SX_IO);
  sx__file *h = nullptr;
  EXPECT_EQ(vfs_->open(vfs_, P("new").c_str(), RW, &h, &err), SX_IO);
  EXPECT_FALSE(Exists(P("new")));
  char c = 0;
  EXPECT_EQ(sx__file_read(g, &c, 1, 8192, &err), SX_OK);
  EXPECT_EQ(c, 'C');  // still in the page cache
  sx__file_close(f);
  sx__file_close(g);

  ASSERT_EQ(sx__faultvfs_power_loss(fv_, SX__LOSS_DROP, 0), SX_OK);
  EXPECT_FALSE(sx__faultvfs_crashed(fv_));
  EXPECT_EQ(sxt::ReadFile(path), std::string(4096, 'A') + std::string(4096, 'B'));
  f = Open(vfs_, path, RW);
  Write(f, "ok", 0);
  Sync(f);
  sx__file_close(f);
  EXPECT_EQ(sxt::ReadFile(path).substr(0, 3), "okA");
}

TEST_F(FaultTest, CrashNow) {
  sx_error err = SX_ERROR_INIT;
  std::string path = P("db");
  sx__file *f = Open(vfs_, path, RW);
  ASSERT_EQ(vfs_->dir_sync(vfs_, path.c_str(), &err), SX_OK);
  Write(f, "1111", 0);
  Sync(f);
  Write(f, "2222", 4);
  sx__faultvfs_crash_now(fv_);
  EXPECT_TRUE(sx__faultvfs_crashed(fv_));
  EXPECT_EQ(sx__file_write(f, "3333", 4, 8, &err), SX_IO);
  EXPECT_EQ(sx__file_sync(f, 0, &err), SX_IO);
  sx__file_close(f);
  ASSERT_EQ(sx__faultvfs_power_loss(fv_, SX__LOSS_DROP, 0), SX_OK);
  EXPECT_EQ(sxt::ReadFile(path), "1111");
}

// Many threads through one fault VFS: counts add up and each file ends at exactly
// its last synced state. Run under TSan to check the VFS for races.
TEST_F(FaultTest, ThreadsAndPowerLoss) {
  const int kThreads = 4, kWrites = 60, kSyncEvery = 7;
  std::vector<std::thread> threads;
  std::vector<int> last_synced(kThreads, -1);
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::string path = P(("f" + std::to_string(t)).c_str());
      sx__file *f = nullptr;
      sx_error err = SX_ERROR_INIT;
      if (vfs_->open(vfs_, path.c_str(), RW, &f, &err) != SX_OK) {
        failures++;
        return;
      }
      if (vfs_->dir_sync(vfs_, path.c_str(), &err) != SX_OK) failures++;
      for (int i = 0; i < kWrites; i++) {
        std::string block(512, (char)('a' + i % 26));
        if (sx__file_write(f, block.data(), block.size(), (uint64_t)i * 512, &err) != SX_OK)
          failures++;
        char back[512];
        if (sx__file_read(f, back, 512, (uint64_t)i * 512, &err) != SX_OK) failures++;
        if (i % kSyncEvery == kSyncEvery - 1) {
          if (sx__file_sync(f, 1, &err) != SX_OK) failures++;
          last_synced[t] = i;
        }
        (void)sx__faultvfs_count(fv_, SX__IO_KINDS);
      }
      sx__file_close(f);
    });
  }
  for (auto &th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_WRITE), (uint64_t)kThreads * kWrites);
  EXPECT_EQ(sx__faultvfs_count(fv_, SX__IO_READ), (uint64_t)kThreads * kWrites);
  ASSERT_EQ(sx__faultvfs_power_loss(fv_, SX__LOSS_DROP, 0), SX_OK);
  for (int t = 0; t < kThreads; t++) {
    std::string want;
    for (int i = 0; i <= last_synced[t]; i++) want += std::string(512, (char)('a' + i % 26));
    EXPECT_EQ(sxt::ReadFile(P(("f" + std::to_string(t)).c_str())), want) << "thread " << t;
  }
}

}  // namespace
