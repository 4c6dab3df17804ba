// Build and run-time facts for matkern.show_config().
#include <omp.h>

#include <optional>

#include "bind_common.hpp"
#include "int8.hpp"
#include "lut.hpp"
#include "parallel.hpp"
#include "pool_tuning.hpp"
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
  m.def("lut_i8_kernel", [] { return std::string(lut_i8_kernel_name()); });
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
  // The pool's wait policy and counters (pool_tuning.hpp): for A/B runs and the tests.
  m.def("pool_policy", [] {
    const PoolPolicy p = pool_policy();
    nb::dict d;
    d["helper_spin_us"] = p.helper_spin_us;
    d["caller_spin_us"] = p.caller_spin_us;
    d["helper_batch"] = p.helper_batch;
    d["guard"] = p.guard;
    return d;
  });
  m.def("set_pool_policy",
        [](int64_t helper_spin_us, int64_t caller_spin_us, bool helper_batch, bool guard) {
    if (helper_spin_us < 0 || caller_spin_us < 0)
      throw nb::value_error("set_pool_policy(): spin times must be >= 0 microseconds");
    set_pool_policy({helper_spin_us, caller_spin_us, helper_batch, guard});
  }, "helper_spin_us"_a, "caller_spin_us"_a, "helper_batch"_a, "guard"_a);
  m.def("pool_contended", [] { return pool_contended(); });
  m.def("pool_stats", [] {
    const PoolStats s = pool_stats();
    nb::dict d;
    d["jobs"] = s.jobs;
    d["caller_chunks"] = s.caller_chunks;
    d["helper_chunks"] = s.helper_chunks;
    d["caller_sleeps"] = s.caller_sleeps;
    d["seats_taken"] = s.seats_taken;
    d["late_helpers"] = s.late_helpers;
    d["guarded_jobs"] = s.guarded_jobs;
    d["backoffs"] = s.backoffs;
    return d;
  });
  m.def("set_pool_helper_stall", [](double seconds, bool in_chunk) {
    if (!(seconds >= 0.0 && seconds <= 60.0))
      throw nb::value_error("set_pool_helper_stall(): seconds must be in [0, 60]");
    set_pool_helper_stall_us(int64_t(seconds * 1e6), in_chunk);
  }, "seconds"_a, "in_chunk"_a = false);
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
