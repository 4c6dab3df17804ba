// The helper pool behind parallel_chunks (see parallel.hpp).
#include "parallel.hpp"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MATKERN_PAUSE() _mm_pause()
#else
#define MATKERN_PAUSE() ((void)0)
#endif

namespace matkern {
namespace {

// How long an idle helper keeps looking for the next job before it sleeps: long enough for
// back-to-back kernel calls, short enough to leave a shared core to its other work.
// It yields while it looks, so that a thread waiting for its core (the caller itself, or a
// neighbour's) runs first: pausing instead made SpMM 1.2-1.7x slower than one thread next
// to a busy process, and not looking at all cost back-to-back calls a wake-up each.
constexpr auto kSpin = std::chrono::microseconds(300);
// The first few microseconds it only pauses (no system call): a call that follows at once,
// as the next layer's or the next kernel's does, finds it without the latency of a yield.
constexpr auto kPauseSpin = std::chrono::microseconds(5);
constexpr int kMaxHelpers = 255;

struct Job {
  std::atomic<int64_t> next{0};
  std::atomic<int> active{0};
  int64_t n = 0;
  int seats = 0;  // helpers that may still join (guarded by Pool::mu)
  ChunkFn fn = nullptr;
  void* ctx = nullptr;
};

// Chunks of job: a helper registers as active *before* it takes a chunk, so that the caller,
// which looks at `active` only after `next` ran out, never misses a helper inside a chunk
// (both atomics sequentially consistent). A helper that registers later finds `next` spent
// and never touches fn or ctx.
void drain(Job& job) {
  for (int64_t c = job.next.fetch_add(1); c < job.n; c = job.next.fetch_add(1)) job.fn(job.ctx, c);
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
    auto job = std::make_shared<Job>();
    job->n = n;
    job->fn = fn;
    job->ctx = ctx;
    job->seats = int(std::min<int64_t>(std::min(team, kMaxHelpers + 1) - 1, n - 1));
    bool wake;
    {
      std::lock_guard<std::mutex> lk(mu_);
      grow(job->seats);
      open_.push_back(job);
      has_open_.store(true);
      wake = sleepers_ > 0;
    }
    if (wake) cv_.notify_all();
    drain(*job);
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = std::find(open_.begin(), open_.end(), job);
      if (it != open_.end()) open_.erase(it);
      has_open_.store(!open_.empty());
    }
    for (int spins = 0; job->active.load() != 0; ++spins) {
      if (spins < 4096) MATKERN_PAUSE();
      else std::this_thread::yield();
    }
  }

 private:
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

  void helper() {
    // Whatever runs inside a chunk counts as one thread of the call that owns the job (its
    // grant holds the budget): a parallel loop nested there must not start a team of its own.
    omp_set_num_threads(1);
    for (;;) {
      const auto start = std::chrono::steady_clock::now();
      for (;;) {
        if (has_open_.load(std::memory_order_relaxed)) break;
        const auto now = std::chrono::steady_clock::now();
        if (now - start >= kSpin) break;
        if (now - start < kPauseSpin) {
          for (int i = 0; i < 16; ++i) MATKERN_PAUSE();
        } else {
          std::this_thread::yield();
        }
      }
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        ++sleepers_;
        cv_.wait(lk, [&] { return !open_.empty(); });
        --sleepers_;
        job = take();
      }
      if (!job) continue;
      job->active.fetch_add(1);
      drain(*job);
      job->active.fetch_sub(1);
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
