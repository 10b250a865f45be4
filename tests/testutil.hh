// C++ side of the test utility (testutil.h): what the GoogleTest files share.
#ifndef SX_TESTUTIL_HH
#define SX_TESTUTIL_HH

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sextant.h"
#include "testutil.h"

// C++ linkage even when included inside an extern "C" block beside C headers.
extern "C++" {
namespace sxt {

// n vectors of dim floats from seed, by the conformance generator (testutil.h).
inline std::vector<float> Gen(uint64_t seed, size_t n, size_t dim) {
  std::vector<float> v(n * dim);
  sx_test_gen(seed, v.data(), v.size());
  return v;
}

// A fresh directory for one test, removed with everything in it at the end of the
// scope -- unless the test has failed by then: its files are kept for inspection and
// their place printed. db is the path of a database file inside it.
struct TmpDir {
  char *dir;
  std::string db;
  explicit TmpDir(const char *tag) : dir(sx_test_tmpdir(tag)), db(std::string(dir) + "/t.sx") {}
  ~TmpDir() {
    if (::testing::Test::HasFailure())
      printf("[ keeping %s for inspection ]\n", dir);
    else
      sx_test_rmtree(dir);
    free(dir);
  }
  TmpDir(const TmpDir &) = delete;
  TmpDir &operator=(const TmpDir &) = delete;
  std::string path(const char *name) const {
    return std::string(dir) + "/" + name;
  }
};

// The whole contents of a file, read with plain stdio (not through any test VFS);
// empty when it cannot be opened.
inline std::string ReadFile(const std::string &path) {
  std::string out;
  FILE *f = fopen(path.c_str(), "rb");
  if (!f) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

// The same, as bytes.
inline std::vector<uint8_t> ReadBytes(const std::string &path) {
  std::string s = ReadFile(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Writes n bytes as the whole file at path (a failed assertion on an error).
inline void WriteBytes(const std::string &path, const uint8_t *data, size_t n) {
  FILE *f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(n ? fwrite(data, 1, n, f) : 0, n) << path;
  ASSERT_EQ(fclose(f), 0) << path;
}

// Opens (creating) the database at path with sync = off, the test default where no
// sync is under test (a failed expectation, and NULL, on an error).
inline sx_db *OpenNoSync(const std::string &path) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = SX_SYNC_OFF;
  sx_db *db = nullptr;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_db_open(&db, path.c_str(), &o, &err), SX_OK) << err.message;
  return db;
}

// Ids prefix0, prefix1, ... prefix(n-1): the conformance generator's naming.
inline std::vector<std::string> Ids(const char *prefix, size_t n) {
  std::vector<std::string> r;
  for (size_t i = 0; i < n; i++) r.push_back(prefix + std::to_string(i));
  return r;
}

// Live vectors of a collection view (a failed expectation, and 0, on an error).
inline uint64_t Count(sx_collection *c) {
  uint64_t n = 0;
  sx_error err = SX_ERROR_INIT;
  EXPECT_EQ(sx_collection_count(c, &n, &err), SX_OK) << err.message;
  return n;
}

// Live vectors of collection `name` in a fresh read session of db (UINT64_MAX, and a
// failed expectation, on an error).
inline uint64_t Count(sx_db *db, const char *name) {
  sx_error err = SX_ERROR_INIT;
  sx_read *r = nullptr;
  sx_collection *c = nullptr;
  uint64_t n = UINT64_MAX;
  EXPECT_EQ(sx_read_begin(db, &r, &err), SX_OK) << err.message;
  if (r) {
    EXPECT_EQ(sx_read_collection(r, name, &c, &err), SX_OK) << err.message;
  }
  if (c) {
    EXPECT_EQ(sx_collection_count(c, &n, &err), SX_OK) << err.message;
  }
  sx_collection_free(c);
  sx_read_free(r);
  return n;
}

// Runs a worker program (argv[0] is its path) with its standard output on a pipe,
// SIGKILLs it after ms milliseconds, and returns the last number it acknowledged:
// workers print one decimal number per line once that step is durable, so a partial
// last line was never acknowledged. -1 if it acknowledged nothing, -2 if it could
// not be started.
inline long RunAndKill(const std::vector<std::string> &argv, int ms) {
  int fds[2];
  if (pipe(fds) != 0) return -2;
  pid_t pid = fork();
  if (pid < 0) return -2;
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<char *> args;
    for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  usleep((useconds_t)ms * 1000);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, (size_t)n);
  close(fds[0]);
  long last = -1;
  for (size_t pos = 0, nl; (nl = out.find('\n', pos)) != std::string::npos; pos = nl + 1)
    last = std::stol(out.substr(pos, nl - pos));
  return last;
}

// Exact distance in double precision, independent of the library's kernels.
inline double RefDist(int metric, const float *a, const float *b, size_t dim) {
  double dot = 0, l2 = 0, na = 0, nb = 0;
  for (size_t i = 0; i < dim; i++) {
    double x = a[i], y = b[i];
    dot += x * y;
    l2 += (x - y) * (x - y);
    na += x * x;
    nb += y * y;
  }
  if (metric == SX_METRIC_L2) return l2;
  if (metric == SX_METRIC_IP) return 1 - dot;
  return 1 - dot / (std::sqrt(na) * std::sqrt(nb));
}

}  // namespace sxt
}  // extern "C++"

#endif
