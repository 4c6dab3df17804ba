// Process-wide thread setting and budget; see threads.hpp.
#include "threads.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>

namespace {
// Set from Python at import (matkern._threads: environment, affinity, cgroup quota).
std::atomic<int> g_setting{1};
std::atomic<int> g_in_use{0};
thread_local int t_local = 0;
}  // namespace

extern "C" int matkern_get_num_threads() { return g_setting.load(std::memory_order_relaxed); }

extern "C" void matkern_set_num_threads(int n) {
  g_setting.store(std::max(1, n), std::memory_order_relaxed);
}

namespace matkern {

int local_threads() { return t_local; }
void set_local_threads(int n) { t_local = std::max(0, n); }
int threads_in_use() { return g_in_use.load(std::memory_order_relaxed); }

ThreadGrant::ThreadGrant() : saved_omp_(omp_get_max_threads()) {
  const int budget = g_setting.load(std::memory_order_relaxed);
  int want = t_local > 0 ? std::min(t_local, budget) : budget;
  want = std::max(1, std::min(want, saved_omp_));  // threadpoolctl's "openmp" limit, OMP_*
  int used = g_in_use.load(std::memory_order_relaxed);
  int take;
  do {
    take = std::max(1, std::min(want, budget - used));
  } while (!g_in_use.compare_exchange_weak(used, used + take, std::memory_order_relaxed));
  granted_ = take;
  omp_set_num_threads(take);
}

ThreadGrant::~ThreadGrant() {
  omp_set_num_threads(saved_omp_);
  g_in_use.fetch_sub(granted_, std::memory_order_relaxed);
}

}  // namespace matkern
