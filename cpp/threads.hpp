// Thread control shared by every CPU kernel.
//
// One process-wide setting (matkern.set_num_threads, threadpoolctl through the two extern "C"
// functions below) is also the process's thread budget; each OS thread may lower its own
// count (matkern.threads(n), a thread_local). A kernel call takes its team from the budget
// for its duration (KernelScope): calls running at once from several Python threads share
// the budget instead of each starting a full team, and none waits: a call gets what is free,
// at least one thread.
#pragma once

#include <nanobind/nanobind.h>

#define MATKERN_EXPORT __attribute__((visibility("default")))

extern "C" {
// The process-wide setting, for threadpoolctl's controller (python/matkern/_threads.py).
MATKERN_EXPORT int matkern_get_num_threads();
MATKERN_EXPORT void matkern_set_num_threads(int n);
}

namespace matkern {

int local_threads();           // this OS thread's own count, 0 when it has none
void set_local_threads(int n);  // 0 clears it
int threads_in_use();           // threads held by running kernel calls, all OS threads

// Holds the team of one kernel call: asks for this thread's count (its own, else the
// process setting, capped by OpenMP's own limit for this thread), takes what the budget
// has free (at least 1), sets OpenMP's team size for the call and gives both back after.
class ThreadGrant {
 public:
  ThreadGrant();
  ~ThreadGrant();
  ThreadGrant(const ThreadGrant&) = delete;
  ThreadGrant& operator=(const ThreadGrant&) = delete;
  int granted() const { return granted_; }

 private:
  int granted_;
  int saved_omp_;
};

// What every binding holds while it runs (its call guard, kKernelCall in bind_common.hpp):
// the GIL released, then a thread grant (destroyed in the reverse order, also when the binding
// throws: the grant is returned before the GIL is taken back).
struct KernelScope {
  nanobind::gil_scoped_release nogil;
  ThreadGrant grant;
};

}  // namespace matkern
