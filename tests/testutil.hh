// C++ side of the test utility (testutil.h): what the GoogleTest files share.
#ifndef SX_TESTUTIL_HH
#define SX_TESTUTIL_HH

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "testutil.h"

namespace sxt {

// n vectors of dim floats from seed, by the conformance generator (testutil.h).
inline std::vector<float> Gen(uint64_t seed, size_t n, size_t dim) {
  std::vector<float> v(n * dim);
  sx_test_gen(seed, v.data(), v.size());
  return v;
}

// A fresh directory for one test, removed with everything in it at the end of the
// scope; db is the path of a database file inside it.
struct TmpDir {
  char *dir;
  std::string db;
  explicit TmpDir(const char *tag) : dir(sx_test_tmpdir(tag)), db(std::string(dir) + "/t.sx") {}
  ~TmpDir() {
    sx_test_rmtree(dir);
    free(dir);
  }
  TmpDir(const TmpDir &) = delete;
  TmpDir &operator=(const TmpDir &) = delete;
  std::string path(const char *name) const { return std::string(dir) + "/" + name; }
};

}  // namespace sxt

#endif
