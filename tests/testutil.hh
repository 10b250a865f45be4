// C++ side of the test utility (testutil.h): what the GoogleTest files share.
#ifndef SX_TESTUTIL_HH
#define SX_TESTUTIL_HH

#include <cstddef>
#include <cstdint>
#include <vector>

#include "testutil.h"

namespace sxt {

// n vectors of dim floats from seed, by the conformance generator (testutil.h).
inline std::vector<float> Gen(uint64_t seed, size_t n, size_t dim) {
  std::vector<float> v(n * dim);
  sx_test_gen(seed, v.data(), v.size());
  return v;
}

}  // namespace sxt

#endif
