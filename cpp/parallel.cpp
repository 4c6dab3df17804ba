// The helper pool behind parallel_chunks (see parallel.hpp).
//
// Wait policy (measured: docs/notes/2026-12-perf-notes.md, "Helper pool wait policy"):
// - The caller runs chunks from the start and waits only for chunks a helper has claimed and
//   not finished (a count of finished chunks, not of helpers): a helper that took a seat but
//   was descheduled before it claimed anything is never waited for.
// - While it waits, the caller spins for caller_spin_us and then sleeps on the job's
//   condition variable. Sleeping leaves its core idle, and an idle core makes the kernel's
//   scheduler pull a runnable thread over at once: the helper that lost its core to another
//   process resumes on the caller's core instead of waiting a time slice behind that process.
//   A caller that yields in a loop keeps its core busy and blocks that migration.
// - Idle helpers look for the next job for helper_spin_us (back-to-back calls find them
//   awake), pausing and then yielding, and then sleep: they do not hold cores other work needs.
// - A call wakes only as many sleeping helpers as it has seats for.
// - Contention guard: each call weighs what its helpers saved (their chunks, at the caller's
//   own time per chunk) against what it lost waiting for them after its own last chunk.
//   When the recent balance turns negative (a neighbour holds the cores: a helper holding a
//   chunk was descheduled), the calls of the next period run on the caller alone (the same
//   chunks, so the same results). The period is at least 4x the time the call lost; it
//   doubles while the probe calls after it keep losing (1 ms to 250 ms) and is reset by a
//   call whose helpers pay off.
#include <omp.h>
#include <pthread.h>
#ifdef __linux__
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "parallel.hpp"
#include "pool_tuning.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MATKERN_PAUSE() _mm_pause()
#else
#define MATKERN_PAUSE() ((void)0)
#endif

namespace matkern {
namespace {

using Clock = std::chrono::steady_clock;

// Defaults chosen by tools/ab_parallel_runtime.py --policy (see the note named above).
std::atomic<int64_t> g_helper_spin_us{300};
std::atomic<int64_t> g_caller_spin_us{50};
std::atomic<bool> g_helper_batch{false};
std::atomic<int64_t> g_stall_us{0};
std::atomic<bool> g_stall_in_chunk{false};
std::atomic<bool> g_guard{true};
// The first few microseconds of any spin only pause (no system call): a job that follows at
// once, as the next layer's or the next kernel's does, is found without a yield's latency.
constexpr auto kPauseSpin = std::chrono::microseconds(5);
constexpr int kMaxHelpers = 255;
constexpr int64_t kMinBackoffNs = 1'000'000, kMaxBackoffNs = 250'000'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// The contention guard's state, shared by all callers (updates may race: a lost update only
// shifts the balance a little).
struct Guard {
  std::atomic<int64_t> balance_ns{0};     // recent time saved by helpers minus time waited
  std::atomic<int64_t> serial_until_ns{0};  // calls before this run on the caller alone
  std::atomic<int64_t> backoff_ns{kMinBackoffNs};

  bool holds(int64_t t) const { return t < serial_until_ns.load(std::memory_order_relaxed); }

  void record(int64_t saved, int64_t lost, int64_t t);
};
Guard g_guard_state;

struct Counters {
  std::atomic<int64_t> jobs{0}, caller_chunks{0}, helper_chunks{0}, caller_sleeps{0},
      seats_taken{0}, late_helpers{0}, guarded_jobs{0}, backoffs{0};
};
Counters g_count;

void Guard::record(int64_t saved, int64_t lost, int64_t t) {
  const int64_t gain = saved - lost;
  // A decaying sum: one slow call after many good ones does not stop the helpers.
  const int64_t b = balance_ns.load(std::memory_order_relaxed);
  const int64_t nb = b - b / 8 + gain;
  if (nb >= 0) {
    balance_ns.store(nb, std::memory_order_relaxed);
    if (gain > 0) backoff_ns.store(kMinBackoffNs, std::memory_order_relaxed);
    return;
  }
  // Alone for at least 4x what this call lost (a probe after it costs at most a fifth).
  const int64_t back = backoff_ns.load(std::memory_order_relaxed);
  serial_until_ns.store(t + std::min(kMaxBackoffNs, std::max(back, 4 * lost)),
                        std::memory_order_relaxed);
  backoff_ns.store(std::min(2 * back, kMaxBackoffNs), std::memory_order_relaxed);
  balance_ns.store(0, std::memory_order_relaxed);
  g_count.backoffs.fetch_add(1, std::memory_order_relaxed);
}

struct Job {
  std::atomic<int64_t> next{0};      // the next chunk to claim
  std::atomic<int64_t> finished{0};  // chunks run to the end (the caller's added at once)
  std::atomic<bool> caller_sleeps{false};
  int64_t n = 0;
  int seats = 0;  // helpers that may still join (guarded by Pool::mu_)
  int team = 0;
  ChunkFn fn = nullptr;
  void* ctx = nullptr;
  std::mutex mu;  // with `done`: the caller's sleep until `finished` reaches n
  std::condition_variable done;
};

// Spins for up to `limit` (pausing, then yielding) until ready() holds; returns whether it did.
template <typename F>
bool spin_until(std::chrono::microseconds limit, const F& ready) {
  const auto start = Clock::now();
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      if (ready()) return true;
      MATKERN_PAUSE();
    }
    const auto waited = Clock::now() - start;
    if (waited >= limit) return ready();
    if (waited >= kPauseSpin) std::this_thread::yield();
  }
}

class Pool {
 public:
  static Pool& get() {
    static const bool created = [] {
      pthread_atfork(nullptr, nullptr, [] { instance() = new Pool; });  // fork: no helpers
      instance() = new Pool;
      return true;
    }();
    (void)created;
    return *instance();
  }

  void run(int64_t n, int team, ChunkFn fn, void* ctx) {
    const bool guard = g_guard.load(std::memory_order_relaxed);
    const int64_t t0 = guard ? now_ns() : 0;
    if (guard && g_guard_state.holds(t0)) {
      g_count.guarded_jobs.fetch_add(1, std::memory_order_relaxed);
      for (int64_t c = 0; c < n; ++c) fn(ctx, c);
      return;
    }
    auto job = std::make_shared<Job>();
    job->n = n;
    job->fn = fn;
    job->ctx = ctx;
    job->seats = int(std::min<int64_t>(std::min(team, kMaxHelpers + 1) - 1, n - 1));
    job->team = job->seats + 1;
    int wake;
    {
      std::lock_guard<std::mutex> lk(mu_);
      grow(job->seats);
      open_.push_back(job);
      has_open_.store(true);
      wake = std::min(sleepers_, job->seats);
    }
    for (int i = 0; i < wake; ++i) cv_.notify_one();
    int64_t mine = 0;
    for (int64_t c = job->next.fetch_add(1); c < n; c = job->next.fetch_add(1), ++mine) fn(ctx, c);
    const int64_t t1 = guard ? now_ns() : 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = std::find(open_.begin(), open_.end(), job);
      if (it != open_.end()) open_.erase(it);
      has_open_.store(!open_.empty());
    }
    g_count.jobs.fetch_add(1, std::memory_order_relaxed);
    g_count.caller_chunks.fetch_add(mine, std::memory_order_relaxed);
    // Every chunk is claimed now; wait for those that helpers are still running.
    const bool waited = job->finished.fetch_add(mine) + mine != n;
    if (waited) wait_for_helpers(*job);
    if (guard) {
      // A call that did not wait lost nothing: helpers that never joined (small or quick
      // jobs) must not stop the pool for the calls after it.
      const int64_t t2 = waited ? now_ns() : t1;
      // What the helpers' chunks would have cost the caller, at its own time per chunk, and
      // at most (team - 1) x its own time (a caller descheduled inside its chunks would
      // otherwise credit the helpers with its lost time).
      const int64_t busy = t1 - t0;
      const int64_t cap = int64_t(job->team - 1) * busy;
      const int64_t saved = mine > 0 ? std::min(cap, busy / mine * (n - mine)) : cap;
      g_guard_state.record(saved, t2 - t1, t2);
    }
  }

 private:
  // The caller's wait for chunks that helpers claimed: a spin, then a sleep.
  static void wait_for_helpers(Job& job) {
    const auto all_done = [&] { return job.finished.load() == job.n; };
    if (spin_until(std::chrono::microseconds(g_caller_spin_us.load(std::memory_order_relaxed)),
                   all_done))
      return;
    g_count.caller_sleeps.fetch_add(1, std::memory_order_relaxed);
    std::unique_lock<std::mutex> lk(job.mu);
    job.caller_sleeps.store(true);
    job.done.wait(lk, all_done);
  }

  static Pool*& instance() {
    static Pool* p = nullptr;
    return p;
  }

  void grow(int helpers) {  // under mu_
    while (n_helpers_ < helpers) {
      std::thread(&Pool::helper, this).detach();  // lives as long as the process
      ++n_helpers_;
    }
  }

  std::shared_ptr<Job> take() {  // under mu_: a seat in the oldest open job, if any
    if (open_.empty()) return nullptr;
    std::shared_ptr<Job> job = open_.front();
    if (--job->seats <= 0) {  // the last seat: no one else joins this job
      open_.erase(open_.begin());
      has_open_.store(!open_.empty());
    }
    return job;
  }

  // A helper's share of a job: claims chunks until none are left. Each finished chunk is
  // counted at once, so the caller never waits on a helper between chunks.
  static void work(Job& job, int64_t stall_us) {
    bool any = false;
    for (int64_t c = job.next.fetch_add(1); c < job.n; c = job.next.fetch_add(1)) {
      if (stall_us > 0 && !any) std::this_thread::sleep_for(std::chrono::microseconds(stall_us));
      job.fn(job.ctx, c);
      any = true;
      // counted before the chunk is reported finished: a caller sees it when it returns
      g_count.helper_chunks.fetch_add(1, std::memory_order_relaxed);
      if (job.finished.fetch_add(1) + 1 == job.n && job.caller_sleeps.load()) {
        std::lock_guard<std::mutex> lk(job.mu);
        job.done.notify_one();
      }
    }
    if (!any) g_count.late_helpers.fetch_add(1, std::memory_order_relaxed);
  }

  static void apply_batch(bool batch) {
#ifdef __linux__
    sched_param sp{};
    sp.sched_priority = 0;
    pthread_setschedparam(pthread_self(), batch ? SCHED_BATCH : SCHED_OTHER, &sp);
#else
    (void)batch;
#endif
  }

  void helper() {
    // Whatever runs inside a chunk counts as one thread of the call that owns the job (its
    // grant holds the budget): a parallel loop nested there must not start a team of its own.
    omp_set_num_threads(1);
    bool batch = false;
    for (;;) {
      spin_until(std::chrono::microseconds(g_helper_spin_us.load(std::memory_order_relaxed)),
                 [&] { return has_open_.load(std::memory_order_relaxed); });
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        ++sleepers_;
        cv_.wait(lk, [&] { return !open_.empty(); });
        --sleepers_;
        job = take();
      }
      if (!job) continue;
      g_count.seats_taken.fetch_add(1, std::memory_order_relaxed);
      const bool want_batch = g_helper_batch.load(std::memory_order_relaxed);
      if (want_batch != batch) apply_batch(batch = want_batch);
      const int64_t stall = g_stall_us.load(std::memory_order_relaxed);
      const bool in_chunk = g_stall_in_chunk.load(std::memory_order_relaxed);
      if (stall > 0 && !in_chunk) std::this_thread::sleep_for(std::chrono::microseconds(stall));
      work(*job, in_chunk ? stall : 0);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Job>> open_;
  std::atomic<bool> has_open_{false};
  int n_helpers_ = 0;
  int sleepers_ = 0;
};

std::atomic<bool> g_use_openmp{false};

}  // namespace

PoolPolicy pool_policy() {
  return {g_helper_spin_us.load(), g_caller_spin_us.load(), g_helper_batch.load(), g_guard.load()};
}

void set_pool_policy(const PoolPolicy& p) {
  g_helper_spin_us.store(std::max<int64_t>(0, p.helper_spin_us));
  g_caller_spin_us.store(std::max<int64_t>(0, p.caller_spin_us));
  g_helper_batch.store(p.helper_batch);
  g_guard.store(p.guard);
  if (!p.guard) g_guard_state.serial_until_ns.store(0);
}

bool pool_contended() { return g_guard.load() && g_guard_state.holds(now_ns()); }

PoolStats pool_stats() {
  return {g_count.jobs.load(),          g_count.caller_chunks.load(), g_count.helper_chunks.load(),
          g_count.caller_sleeps.load(), g_count.seats_taken.load(),   g_count.late_helpers.load(),
          g_count.guarded_jobs.load(),  g_count.backoffs.load()};
}

void set_pool_helper_stall_us(int64_t us, bool in_chunk) {
  g_stall_in_chunk.store(in_chunk);
  g_stall_us.store(std::max<int64_t>(0, us));
}

int call_team() { return omp_get_max_threads(); }

void set_parallel_runtime(bool openmp) { g_use_openmp.store(openmp); }
bool parallel_runtime_is_openmp() { return g_use_openmp.load(); }

void parallel_chunks(int64_t n_chunks, int team, ChunkFn fn, void* ctx) {
  if (n_chunks <= 0) return;
  if (team <= 1 || n_chunks == 1) {
    for (int64_t c = 0; c < n_chunks; ++c) fn(ctx, c);
    return;
  }
  if (g_use_openmp.load(std::memory_order_relaxed)) {  // the former runtime, for A/B runs
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (int64_t c = 0; c < n_chunks; ++c) fn(ctx, c);
    return;
  }
  Pool::get().run(n_chunks, team, fn, ctx);
}

void parallel_ranges(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  const int team = call_team();
  grain = grain < 1 ? 1 : grain;
  int64_t pieces = (n + grain - 1) / grain;
  if (pieces > int64_t(team) * 16) pieces = int64_t(team) * 16;
  if (team <= 1 || pieces <= 1) {
    fn(ctx, 0, n);
    return;
  }
  struct Split {
    RangeFn fn;
    void* ctx;
    int64_t n, pieces;
  } split{fn, ctx, n, pieces};
  auto piece = [](void* c, int64_t p) {
    const Split& s = *static_cast<const Split*>(c);
    s.fn(s.ctx, s.n * p / s.pieces, s.n * (p + 1) / s.pieces);
  };
  parallel_chunks(pieces, team, piece, &split);
}

}  // namespace matkern
