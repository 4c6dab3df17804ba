// Build and run-time facts for matkern.show_config().
#include <omp.h>

#include "bind_common.hpp"
#include "simd.hpp"

#ifndef MATKERN_COMPILER
#define MATKERN_COMPILER "unknown"
#endif

namespace matkern {
void bind_info(nb::module_& m) {
  m.def("compiler", [] { return std::string(MATKERN_COMPILER); });
  m.def("simd_level", [] { return std::string(simd_name(simd_level())); });
  m.def("avx2_compiled", [] {
#ifdef MATKERN_BUILD_AVX2
    return true;
#else
    return false;
#endif
  });
  m.def("omp_max_threads", [] { return omp_get_max_threads(); });
}
}  // namespace matkern
