// Knobs and counters of the helper pool (parallel.cpp), for the A/B measurements of its wait
// policy (tools/ab_parallel_runtime.py) and for the tests (a helper stalled on purpose).
// Not part of the kernels' interface: only parallel.cpp and bind_info.cpp include it.
#pragma once

#include <cstdint>

namespace matkern {

struct PoolPolicy {
  int64_t helper_spin_us;  // an idle helper looks for the next job this long, then sleeps
  int64_t caller_spin_us;  // a caller waiting for claimed chunks spins this long, then sleeps
  bool helper_batch;       // helpers run as SCHED_BATCH (no wake-up preemption), Linux only
  bool guard;              // the contention guard: calls whose helpers cost more than they
               // saved send the next calls to the caller alone for a while
};

struct PoolStats {
  int64_t jobs;  // parallel_chunks calls that went to the pool
  int64_t caller_chunks;  // chunks those calls ran on the calling thread
  int64_t helper_chunks;  // chunks run by helpers
  int64_t caller_sleeps;  // waits for a helper's chunk that ended in a sleep, not a spin
  int64_t seats_taken;   // helpers that joined a call (took a seat in its job)
  int64_t late_helpers;  // helpers that took a seat and found every chunk already claimed
  int64_t guarded_jobs;  // calls the contention guard ran on the caller alone
  int64_t backoffs;  // times the guard stopped waking helpers
};

PoolPolicy pool_policy();
void set_pool_policy(const PoolPolicy& p);
PoolStats pool_stats();

// Whether the contention guard holds the helpers back now: recent parallel calls lost more
// time waiting for helpers than the helpers saved (a neighbour holds the cores). Python-level
// parallel work (matfun's stacks) asks it too.
bool pool_contended();

// Test hooks: every helper sleeps `us` after taking its seat in a job, before it claims a
// chunk (a helper whose core was taken by another process: the call must not wait for it),
// or, with in_chunk, after claiming its first chunk of a job and before running it (a helper
// descheduled inside a chunk: the call waits, and the contention guard must react). 0: off.
void set_pool_helper_stall_us(int64_t us, bool in_chunk);

}  // namespace matkern
