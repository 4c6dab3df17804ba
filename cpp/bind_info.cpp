// Build and run-time facts for matkern.show_config().
#include <omp.h>

#include <optional>

#include "bind_common.hpp"
#include "int8.hpp"
#include "lut.hpp"
#include "parallel.hpp"
#include "simd.hpp"

#ifndef MATKERN_COMPILER
#define MATKERN_COMPILER "unknown"
#endif

namespace matkern {
namespace {
// A thread grant held from Python (python/matkern/_threads.thread_grant): for work that runs
// its own threads outside a kernel call (matfun's pieces of a stack) and must take them from
// the same budget as the kernels. Released explicitly, on the OS thread that took it.
struct PyThreadGrant {
  std::optional<ThreadGrant> grant;
  PyThreadGrant() { grant.emplace(); }
  int granted() const { return grant ? grant->granted() : 0; }
  void release() { grant.reset(); }
};
}  // namespace

void bind_info(nb::module_& m) {
  nb::class_<PyThreadGrant>(m, "ThreadGrant")
      .def(nb::init<>())
      .def_prop_ro("granted", &PyThreadGrant::granted)
      .def("release", &PyThreadGrant::release);
  m.def("compiler", [] { return std::string(MATKERN_COMPILER); });
  m.def("simd_level", [] { return std::string(simd_name(simd_level())); });
  m.def("avx2_compiled", [] {
#ifdef MATKERN_BUILD_AVX2
    return true;
#else
    return false;
#endif
  });
  m.def("avx512_compiled", [] {
#ifdef MATKERN_BUILD_AVX512
    return true;
#else
    return false;
#endif
  });
  m.def("int8_tile", [] { return std::string(int8_tile_name()); });
  m.def("lut_kernel", [] { return std::string(lut_kernel_name()); });
  m.def("omp_max_threads", [] { return omp_get_max_threads(); });
  m.def("get_num_threads", [] { return matkern_get_num_threads(); });
  m.def("set_num_threads", [](int n) { matkern_set_num_threads(n); });
  m.def("get_local_threads", [] { return local_threads(); });
  m.def("set_local_threads", [](int n) { set_local_threads(n); });
  m.def("threads_in_use", [] { return threads_in_use(); });
  m.def("set_parallel_runtime", [](const std::string& name) {
    if (name != "pool" && name != "openmp")
      throw nb::value_error("set_parallel_runtime(): name must be 'pool' or 'openmp'");
    set_parallel_runtime(name == "openmp");
  });
  m.def("parallel_runtime",
        [] { return std::string(parallel_runtime_is_openmp() ? "openmp" : "pool"); });
  // A kernel-shaped call for the tests: holds a grant for `seconds` with the GIL released
  // and returns the OpenMP team size it ran with.
  m.def("hold_threads", [](double seconds) {
    int team = 0;
    const double end = omp_get_wtime() + seconds;
#pragma omp parallel
    {
#pragma omp single
      team = omp_get_num_threads();
    }
    while (omp_get_wtime() < end) {
    }
    return team;
  }, kKernelCall, "seconds"_a);
}
}  // namespace matkern
