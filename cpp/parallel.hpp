// parallel_for: chunks of a loop run on the calling thread plus pool helpers that join when
// they are free, instead of an OpenMP team that waits at its join barrier for its slowest
// (or not yet scheduled) thread.
//
// Why: next to one busy process, a 2-thread OpenMP region whose second thread shares a core
// with the neighbour waits a scheduler time slice (milliseconds) for it: SpMM on pubmed went
// from 0.4 ms to 4-8 ms. Here the caller starts at once and takes chunks until none are
// left; a helper that wakes late finds nothing to do and the call never waits for it. The
// caller only waits for helpers that are inside a chunk, so chunks should be small (many
// more than threads). Helpers spin briefly after a job (back-to-back calls find them awake)
// and then sleep: idle helpers do not hold cores that other work needs.
//
// The team size is OpenMP's for this thread (set by the call's ThreadGrant, threads.hpp).
#pragma once

#include <cstdint>

namespace matkern {

using ChunkFn = void (*)(void* ctx, int64_t chunk);

// Runs fn(ctx, c) once for every c in [0, n_chunks), in any order, on up to `team` threads
// (the caller included). Returns when all have run.
void parallel_chunks(int64_t n_chunks, int team, ChunkFn fn, void* ctx);

// The team of the current kernel call (its ThreadGrant).
int call_team();

// A/B switch for benchmarks: true runs parallel_chunks as an OpenMP dynamic loop (the
// former runtime) instead of the pool. Process-wide; the pool is the default.
void set_parallel_runtime(bool openmp);
bool parallel_runtime_is_openmp();

template <typename F>
void parallel_for_chunks(int64_t n_chunks, const F& body) {
  auto thunk = [](void* ctx, int64_t c) { (*static_cast<const F*>(ctx))(c); };
  parallel_chunks(n_chunks, call_team(), thunk, const_cast<void*>(static_cast<const void*>(&body)));
}

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);

// fn(ctx, begin, end) over [0, n) in pieces of at least `grain` items, about 16 pieces per
// thread of the call's team (fewer when n / grain is smaller: one piece runs on the caller
// alone). A plain function, so that files compiled with wider SIMD flags can call it without
// instantiating a shared template (see randproj_kernels.inl).
void parallel_ranges(int64_t n, int64_t grain, RangeFn fn, void* ctx);

// body(begin, end) over [0, n), as parallel_ranges.
template <typename F>
void parallel_for_range(int64_t n, int64_t grain, const F& body) {
  auto thunk = [](void* ctx, int64_t b, int64_t e) { (*static_cast<const F*>(ctx))(b, e); };
  parallel_ranges(n, grain, thunk, const_cast<void*>(static_cast<const void*>(&body)));
}

}  // namespace matkern
