// Portable FWHT kernels, the threading over rows, and the fused FJLT. The AVX2 row kernel is
// chosen at run time when the CPU has it.
#include "hadamard.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <vector>

#include "parallel.hpp"
#include "scratch.hpp"
#include "simd.hpp"

namespace matkern {
namespace hadamard_portable {
#include "hadamard_mixed.inc"

void mixed_row_f32(float* x, int64_t m, int64_t p, const float* ht, int64_t mp, float* tmp,
                   float scale) {
  dense_blocks<float>(x, m, p, ht, mp, tmp);
  butterflies<float>(x, m, p, scale);
}

void mixed_row_f64(double* x, int64_t m, int64_t p, const double* ht, int64_t mp, double* tmp,
                   double scale) {
  dense_blocks<double>(x, m, p, ht, mp, tmp);
  butterflies<double>(x, m, p, scale);
}
}  // namespace hadamard_portable

namespace {

constexpr int64_t kBlock = 1 << 13;

// Radix-4 passes (two stages per trip through memory), then a radix-2 stage if one is left.
template <typename T>
void portable_stages(T* x, int64_t len, int64_t from, int64_t to) {
  int64_t h = from;
  for (; h * 4 <= to; h *= 4)
    for (int64_t j = 0; j < len; j += 4 * h) {
      T* a = x + j;
#pragma omp simd
      for (int64_t i = 0; i < h; ++i) {
        T x0 = a[i], x1 = a[i + h], x2 = a[i + 2 * h], x3 = a[i + 3 * h];
        T s0 = x0 + x1, d0 = x0 - x1, s1 = x2 + x3, d1 = x2 - x3;
        a[i] = s0 + s1;
        a[i + h] = d0 + d1;
        a[i + 2 * h] = s0 - s1;
        a[i + 3 * h] = d0 - d1;
      }
    }
  if (h < to)
    for (int64_t j = 0; j < len; j += 2 * h) {
      T* a = x + j;
#pragma omp simd
      for (int64_t i = 0; i < h; ++i) {
        T x0 = a[i], x1 = a[i + h];
        a[i] = x0 + x1;
        a[i + h] = x0 - x1;
      }
    }
}

template <typename T>
void portable_row(T* x, int64_t n) {
  const int64_t blk = std::min(n, kBlock);
  for (int64_t b = 0; b < n; b += blk) portable_stages(x + b, blk, int64_t(1), blk);
  if (blk < n) portable_stages(x, n, blk, n);
}

// 32-byte aligned float scratch, one per thread.
struct AlignedBuffer {
  float* data;
  explicit AlignedBuffer(size_t n)
      : data(static_cast<float*>(std::aligned_alloc(32, ((n * sizeof(float) + 31) / 32) * 32))) {
    if (!data) throw std::bad_alloc();
  }
  ~AlignedBuffer() { std::free(data); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

template <typename T>
using RowFn = void (*)(T*, int64_t);

template <typename T>
RowFn<T> pick_row_kernel() {
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) return static_cast<RowFn<T>>(&avx2::fwht_row);
#endif
  return &portable_row<T>;
}

template <typename T>
void scale_inplace(T* x, int64_t len, T s) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) x[i] *= s;
}

#include "hadamard_strided.inc"

}  // namespace

// Rows per piece of a parallel loop: enough butterflies (n log n each) that a piece is worth
// handing to another thread (~64k element operations, a few microseconds).
static int64_t row_grain(int64_t n) {
  int64_t lg = 1;
  while ((int64_t(1) << lg) < n) ++lg;
  return std::max<int64_t>(1, (int64_t(1) << 16) / (n * lg));
}

// The strided case (inner > 1) in chunks of 256 columns, each chunk scaled by s (when
// `scale`) while it is in cache.
template <typename T>
static void strided_pass(T* data, int64_t outer, int64_t n, int64_t inner, bool scale, T s) {
  void (*strided)(T*, int64_t, int64_t, int64_t, int64_t) = &strided_slice<T>;
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) strided = static_cast<decltype(strided)>(&avx2::fwht_strided);
#endif
  const int64_t chunk = 256;
  const int64_t nchunks = (inner + chunk - 1) / chunk;
  parallel_for_range(outer * nchunks, row_grain(n), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / nchunks, c0 = (t % nchunks) * chunk;
      const int64_t c1 = std::min(inner, c0 + chunk);
      T* x = data + o * n * inner;
      strided(x, n, inner, c0, c1);
      if (scale)
        for (int64_t i = 0; i < n; ++i) scale_inplace(x + i * inner + c0, c1 - c0, s);
    }
  });
}

// Few long rows (fewer than threads), src copied into dst on the way (src == dst: in place).
// Each row is split into kBlock pieces transformed in parallel (each copied just before), then
// the stages between pieces run as a strided transform of the (n / kBlock, kBlock) view with
// the normalization folded in: two parallel passes per row, so next to a busy process a call
// waits at most twice for a helper whose core was taken.
template <typename T>
static void long_rows(const T* src, T* dst, int64_t outer, int64_t n, bool normalize) {
  const RowFn<T> row = pick_row_kernel<T>();
  const T s = T(1.0 / std::sqrt(double(n)));
  for (int64_t r = 0; r < outer; ++r) {
    T* x = dst + r * n;
    const T* xs = src + r * n;
    parallel_for_range(n / kBlock, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (xs != x) std::copy(xs + b * kBlock, xs + (b + 1) * kBlock, x + b * kBlock);
        row(x + b * kBlock, kBlock);
      }
    });
    strided_pass<T>(x, 1, n / kBlock, kBlock, normalize, s);
  }
}

template <typename T>
void fwht(T* data, int64_t outer, int64_t n, int64_t inner, bool normalize) {
  const T s = normalize ? T(1.0 / std::sqrt(double(n))) : T(1);
  if (inner == 1 && outer < call_team() && n >= 4 * kBlock)
    return long_rows<T>(data, data, outer, n, normalize);
  if (inner == 1) {
    const RowFn<T> row = pick_row_kernel<T>();
    parallel_for_range(outer, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        row(data + r * n, n);
        if (normalize) scale_inplace(data + r * n, n, s);
      }
    });
    return;
  }
  strided_pass<T>(data, outer, n, inner, normalize, s);
}

template <typename T>
void fjlt_transform(const T* x, int64_t rows, int64_t d, int64_t dpad, const T* signs,
                    const int64_t* p_indptr, const int32_t* p_indices, const T* p_data, int64_t k,
                    double scale, T* out) {
#ifdef MATKERN_BUILD_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (simd_level() >= Simd::avx2) {
      // Eight rows side by side: each nonzero of P costs one vector load for all eight.
      // Pieces of blocks on the helper pool (parallel.hpp), buffers per piece.
      const int64_t nblk = (rows + 7) / 8;
      parallel_for_range(nblk, 2, [&](int64_t b0, int64_t b1) {
        AlignedBuffer zt(size_t(dpad) * 8), ot(size_t(k) * 8);
        for (int64_t r = b0 * 8; r < b1 * 8 && r < rows; r += 8) {
          const int nr = int(std::min<int64_t>(8, rows - r));
          avx2::fjlt_block8(x + r * d, d, nr, dpad, signs, p_indptr, p_indices, p_data, k,
                            float(scale), zt.data, ot.data, out + r * k);
        }
      });
      return;
    }
  }
#endif
  const RowFn<T> row = pick_row_kernel<T>();
  const T sc = T(scale);
  // One padded row at a time per piece: the FWHT and the gathers that follow stay in cache.
  parallel_for_range(rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<T> buf(dpad);
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * d;
      T* z = buf.data();
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) z[j] = xr[j] * signs[j];
      std::fill(z + d, z + dpad, T(0));
      row(z, dpad);
      T* o = out + r * k;
      for (int64_t i = 0; i < k; ++i) {
        T acc0 = 0, acc1 = 0;
        int64_t p = p_indptr[i];
        const int64_t e = p_indptr[i + 1];
        for (; p + 1 < e; p += 2) {
          acc0 += p_data[p] * z[p_indices[p]];
          acc1 += p_data[p + 1] * z[p_indices[p + 1]];
        }
        if (p < e) acc0 += p_data[p] * z[p_indices[p]];
        o[i] = sc * (acc0 + acc1);
      }
    }
  });
}

template <typename T>
void fwht_from(const T* src, T* dst, int64_t outer, int64_t n, int64_t inner, bool normalize) {
  if (inner == 1 && outer < call_team() && n >= 4 * kBlock)
    return long_rows<T>(src, dst, outer, n, normalize);
  if (inner == 1 && outer >= call_team()) {
    // Copy each row just before transforming it, so the copy costs no extra trip to memory.
    const RowFn<T> row = pick_row_kernel<T>();
    const T s = normalize ? T(1.0 / std::sqrt(double(n))) : T(1);
    parallel_for_range(outer, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        std::copy(src + r * n, src + (r + 1) * n, dst + r * n);
        row(dst + r * n, n);
        if (normalize) scale_inplace(dst + r * n, n, s);
      }
    });
    return;
  }
  const int64_t total = outer * n * inner;
  parallel_for_range(total, int64_t(1) << 16,
                     [&](int64_t i0, int64_t i1) { std::copy(src + i0, src + i1, dst + i0); });
  fwht<T>(dst, outer, n, inner, normalize);
}

template <typename T>
MixedRowFn<T> pick_mixed_row() {
  // (a 16-lane AVX-512 copy of the H_m stage was 25% slower at m = 12 here, 2026-12-03)
  if constexpr (std::is_same_v<T, float>)
    return simd_level() >= Simd::avx2 ? &avx2::mixed_row_f32 : &hadamard_portable::mixed_row_f32;
  else return simd_level() >= Simd::avx2 ? &avx2::mixed_row_f64 : &hadamard_portable::mixed_row_f64;
}

// Widths up to which the 16-row AVX-512 kernel runs: 16 rows of 16384 floats are 1 MiB of
// scratch, still in L2; it was 1.6-1.9x the AVX2 row kernel from n = 384 to 14336 (2026-12-03).
constexpr int64_t kRows16MaxN = 16384;

bool mixed_rows16_enabled(int64_t m, int64_t p) {
#ifdef MATKERN_BUILD_AVX512
  return m > 1 && m % 4 == 0 && m * p <= kRows16MaxN && simd_level() >= Simd::avx512_vnni;
#else
  (void)m, (void)p;
  return false;
#endif
}

namespace {
struct Rows16ScratchTag {};
}  // namespace

template <typename T>
void fwht_mixed_from(const T* src, T* dst, int64_t outer, int64_t m, int64_t p, const T* ht,
                     int64_t mp, bool normalize) {
  MixedRowFn<T> row = pick_mixed_row<T>();
  const T s = normalize ? T(1.0 / std::sqrt(double(m * p))) : T(1);
  const int64_t n = m * p;
#ifdef MATKERN_BUILD_AVX512
  if constexpr (std::is_same_v<T, float>) {
    if (outer >= 4 && mixed_rows16_enabled(m, p)) {
      // 16 rows per kernel call, read from src and written to dst in one pass (the kernel
      // holds the 16 rows in its scratch, so src == dst is fine); pieces of ~64k multiply-adds
      const int64_t groups = (outer + 15) / 16;
      const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / (16 * n * (m + 1)));
      const size_t work = size_t(avx512::mixed_rows16_scratch(m, p));
      parallel_for_range(groups, grain, [&](int64_t g0, int64_t g1) {
        float* sc = thread_scratch<Rows16ScratchTag, float>(work);
        for (int64_t g = g0; g < g1; ++g) {
          const int rows = int(std::min<int64_t>(16, outer - g * 16));
          avx512::mixed_rows16(src + g * 16 * n, n, n, rows, nullptr, m, p, ht, mp, s, sc,
                               dst + g * 16 * n, n);
        }
      });
      return;
    }
  }
#endif
  // ~64k multiply-adds per piece (the H_m stage costs m per element)
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / (n * (m + 1)));
  parallel_for_range(outer, grain, [&](int64_t r0, int64_t r1) {
    std::vector<T> tmp(static_cast<size_t>(4 * mp));  // the AVX2 stage tiles 4 blocks
    for (int64_t r = r0; r < r1; ++r) {
      if (src != dst) std::copy(src + r * n, src + (r + 1) * n, dst + r * n);
      row(dst + r * n, m, p, ht, mp, tmp.data(), s);
    }
  });
}

template <typename T>
void fwht_mixed(T* data, int64_t outer, int64_t m, int64_t p, const T* ht, int64_t mp,
                bool normalize) {
  fwht_mixed_from<T>(data, data, outer, m, p, ht, mp, normalize);
}

template MixedRowFn<float> pick_mixed_row<float>();
template MixedRowFn<double> pick_mixed_row<double>();
template void fwht_mixed<float>(float*, int64_t, int64_t, int64_t, const float*, int64_t, bool);
template void fwht_mixed<double>(double*, int64_t, int64_t, int64_t, const double*, int64_t, bool);
template void fwht_mixed_from<float>(const float*, float*, int64_t, int64_t, int64_t, const float*,
                                     int64_t, bool);
template void fwht_mixed_from<double>(const double*, double*, int64_t, int64_t, int64_t,
                                      const double*, int64_t, bool);

template <typename T>
void fwht_row_serial(T* x, int64_t n) {
  pick_row_kernel<T>()(x, n);
}

template void fwht_row_serial<float>(float*, int64_t);
template void fwht_row_serial<double>(double*, int64_t);
template void fwht_from<float>(const float*, float*, int64_t, int64_t, int64_t, bool);
template void fwht_from<double>(const double*, double*, int64_t, int64_t, int64_t, bool);
template void fwht<float>(float*, int64_t, int64_t, int64_t, bool);
template void fwht<double>(double*, int64_t, int64_t, int64_t, bool);
template void fjlt_transform<float>(const float*, int64_t, int64_t, int64_t, const float*,
                                    const int64_t*, const int32_t*, const float*, int64_t, double,
                                    float*);
template void fjlt_transform<double>(const double*, int64_t, int64_t, int64_t, const double*,
                                     const int64_t*, const int32_t*, const double*, int64_t, double,
                                     double*);

}  // namespace matkern
