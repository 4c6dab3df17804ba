// AVX2/FMA copies of the randproj kernels (this file alone is compiled with -mavx2 -mfma).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "parallel.hpp"
#include "randproj.hpp"

namespace matkern {
namespace avx2 {
#include "randproj_kernels.inl"
}  // namespace avx2
}  // namespace matkern
