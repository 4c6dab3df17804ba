// CSR x dense on the CPU: the split of rows by nonzero count, the OpenMP loop, and the
// portable row kernels (the AVX2/FMA ones are in spmm_avx2.cpp).
#include "spmm.hpp"

#include <algorithm>
#include <vector>

#include "parallel.hpp"
#include "simd.hpp"

namespace matkern {
namespace {

template <typename T>
void portable_rows(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* indices,
                   const T* data, const T* b, int64_t ldb, bool b_row_major, T* out, int64_t ldc) {
  for (int64_t i = r0; i < r1; ++i) {
    T* o = out + i * ldc;
    std::fill(o, o + k, T(0));
    if (b_row_major) {
      for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
        const T v = data[p];
        const T* row = b + int64_t(indices[p]) * ldb;
#pragma omp simd
        for (int64_t c = 0; c < k; ++c) o[c] += v * row[c];
      }
    } else {
      for (int64_t c = 0; c < k; ++c) {
        const T* col = b + c * ldb;
        T s = 0;
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) s += data[p] * col[indices[p]];
        o[c] = s;
      }
    }
  }
}

template <typename T>
using RowsFn = void (*)(int64_t, int64_t, int64_t, const int64_t*, const int32_t*, const T*,
                        const T*, int64_t, bool, T*, int64_t);

template <typename T>
RowsFn<T> pick_rows_kernel() {
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) return static_cast<RowsFn<T>>(&avx2::csr_rows);
#endif
  return &portable_rows<T>;
}

}  // namespace

template <typename T>
void csr_spmm(int64_t m, int64_t n, int64_t k, const int64_t* indptr, const int32_t* indices,
              const T* data, const T* b, int64_t ldb, bool b_row_major, T* out, int64_t ldc) {
  if (m <= 0 || k <= 0) return;
  // Fortran-order B with k >= 8: one blocked transpose into C order (n*k moves) beats
  // gathering every nonzero's k values from k different columns (nnz*k scattered loads).
  std::vector<T> bt;
  if (!b_row_major && k >= 8 && n > 0) {
    bt.resize(size_t(n) * size_t(k));
    constexpr int64_t tb = 32;
    T* dst = bt.data();
    auto block_rows = [&](int64_t blk) {
      const int64_t j0 = blk * tb;
      for (int64_t c0 = 0; c0 < k; c0 += tb)
        for (int64_t j = j0; j < std::min(n, j0 + tb); ++j)
          for (int64_t c = c0; c < std::min(k, c0 + tb); ++c) dst[j * k + c] = b[j + c * ldb];
    };
    const int64_t blocks = (n + tb - 1) / tb;
    if (n * k > (int64_t(1) << 16)) parallel_for_chunks(blocks, block_rows);
    else
      for (int64_t blk = 0; blk < blocks; ++blk) block_rows(blk);
    b = bt.data();
    ldb = k;
    b_row_major = true;
  }
  const RowsFn<T> rows = pick_rows_kernel<T>();
  // Cost of a row ~ its nonzeros plus a constant for zeroing/storing its output row.
  const int64_t base = indptr[0];
  const int64_t nnz = indptr[m] - base;
  const int64_t total = nnz + m;
  const int threads = call_team();
  const int64_t work = (nnz + m) * k;
  if (threads == 1 || work < (int64_t(1) << 15)) {
    rows(0, m, k, indptr, indices, data, b, ldb, b_row_major, out, ldc);
    return;
  }
  // A few parts per thread, cut where the running cost crosses equal shares.
  const int64_t parts = std::min<int64_t>(m, int64_t(threads) * 8);
  std::vector<int64_t> cut(parts + 1);
  cut[0] = 0;
  cut[parts] = m;
  for (int64_t q = 1; q < parts; ++q) {
    const int64_t target = total * q / parts;
    int64_t lo = cut[q - 1], hi = m;  // first row r with cost(r) >= target
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (indptr[mid] - base + mid < target) lo = mid + 1;
      else hi = mid;
    }
    cut[q] = lo;
  }
  parallel_for_chunks(parts, [&](int64_t q) {
    if (cut[q] < cut[q + 1])
      rows(cut[q], cut[q + 1], k, indptr, indices, data, b, ldb, b_row_major, out, ldc);
  });
}

template void csr_spmm<float>(int64_t, int64_t, int64_t, const int64_t*, const int32_t*,
                              const float*, const float*, int64_t, bool, float*, int64_t);
template void csr_spmm<double>(int64_t, int64_t, int64_t, const int64_t*, const int32_t*,
                               const double*, const double*, int64_t, bool, double*, int64_t);

}  // namespace matkern
