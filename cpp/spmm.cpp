// CSR x dense on the CPU: the split of rows by nonzero count, the OpenMP loop, and the
// portable row kernels (the AVX2/FMA ones are in spmm_avx2.cpp).
#include "spmm.hpp"

#include <algorithm>
#include <stdexcept>
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

// Rows [r0, r1) with B as row blocks, each row of B found through RowAddress.
template <typename T>
void portable_rows_blocks(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr,
                          const int32_t* indices, const T* data, const RowAddress& b, T* out,
                          int64_t ldc) {
  for (int64_t i = r0; i < r1; ++i) {
    T* o = out + i * ldc;
    std::fill(o, o + k, T(0));
    for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
      const int64_t j = indices[p];
      const RowCell& cell = b.cell[j >> b.shift];
      const int h = j >= cell.bound;
      const T* row = reinterpret_cast<const T*>(cell.base[h] + j * cell.step[h]);
      const T v = data[p];
#pragma omp simd
      for (int64_t c = 0; c < k; ++c) o[c] += v * row[c];
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

// rows(r0, r1) over [0, m): on one thread for small products, else over parts of consecutive
// rows cut where the running cost (a row ~ its nonzeros plus a constant for zeroing and
// storing its output row) crosses equal shares, a few parts per thread, so that a few dense
// rows do not serialize the product.
template <class Rows>
void for_row_parts(int64_t m, int64_t k, const int64_t* indptr, const Rows& rows) {
  const int64_t base = indptr[0];
  const int64_t nnz = indptr[m] - base;
  const int64_t total = nnz + m;
  const int threads = call_team();
  if (threads == 1 || total * k < (int64_t(1) << 15)) {
    rows(int64_t(0), m);
    return;
  }
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
    if (cut[q] < cut[q + 1]) rows(cut[q], cut[q + 1]);
  });
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
  for_row_parts(m, k, indptr, [&](int64_t r0, int64_t r1) {
    rows(r0, r1, k, indptr, indices, data, b, ldb, b_row_major, out, ldc);
  });
}

template <typename T>
void csr_spmm_blocks(int64_t m, int64_t k, const int64_t* indptr, const int32_t* indices,
                     const T* data, const RowBlocks<T>& b, T* out, int64_t ldc, RowsDone<T> done,
                     void* ctx) {
  if (m <= 0 || k <= 0) return;
  // The nonempty blocks, and cells as long as the shortest of them (a power of two).
  std::vector<int64_t> end, base, step;
  int64_t shortest = 0, only = -1;
  for (int64_t q = 0; q < b.nb; ++q) {
    const int64_t rows = b.off[q + 1] - b.off[q];
    if (rows == 0) continue;
    shortest = shortest == 0 ? rows : std::min(shortest, rows);
    only = q;
    end.push_back(b.off[q + 1]);
    step.push_back(b.ld[q] * int64_t(sizeof(T)));
    base.push_back(int64_t(reinterpret_cast<intptr_t>(b.ptr[q])) - b.off[q] * step.back());
  }
  if (end.empty()) throw std::invalid_argument("csr_spmm_blocks: B has no rows");
  // One nonempty block is one array: the one-array row kernel, without the block lookup
  // (which costs up to 1.6x at k = 32: a gathered B then runs at the one-array speed).
  const RowsFn<T> dense = end.size() == 1 ? pick_rows_kernel<T>() : nullptr;
  const T* one = end.size() == 1 ? b.ptr[only] : nullptr;
  const int64_t one_ld = end.size() == 1 ? b.ld[only] : 0;
  int shift = 0;
  while ((int64_t(2) << shift) <= shortest) ++shift;
  const int64_t n = end.back();
  std::vector<RowCell> cells(size_t(((n - 1) >> shift) + 1));
  for (size_t c = 0, q = 0; c < cells.size(); ++c) {
    while (end[q] <= int64_t(c << shift)) ++q;  // q: the block of the cell's first row
    const size_t h = std::min(q + 1, end.size() - 1);  // the next one (or q again)
    cells[c] = RowCell{end[q], {base[q], base[h]}, {step[q], step[h]}};
  }
  const RowAddress a{cells.data(), shift};
  using Rows = void (*)(int64_t, int64_t, int64_t, const int64_t*, const int32_t*, const T*,
                        const RowAddress&, T*, int64_t);
  Rows rows = &portable_rows_blocks<T>;
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) rows = static_cast<Rows>(&avx2::csr_rows_blocks);
#endif
  const auto run = [&](int64_t r0, int64_t r1, const int64_t* ip, T* dst, int64_t ld) {
    if (dense) dense(r0, r1, k, ip, indices, data, one, one_ld, true, dst, ld);
    else rows(r0, r1, k, ip, indices, data, a, dst, ld);
  };
  if (!done) {
    for_row_parts(m, k, indptr, [&](int64_t r0, int64_t r1) { run(r0, r1, indptr, out, ldc); });
    return;
  }
  // Runs of 32 rows: written (into out, or a scratch buffer of this part) and handed over
  // while they are in cache. indptr + r makes run row 0 the matrix's row r.
  constexpr int64_t kRun = 32;
  for_row_parts(m, k, indptr, [&](int64_t r0, int64_t r1) {
    std::vector<T> scratch(out ? 0 : size_t(kRun * k));
    for (int64_t r = r0; r < r1; r += kRun) {
      const int64_t len = std::min(kRun, r1 - r);
      T* dst = out ? out + r * ldc : scratch.data();
      const int64_t ld = out ? ldc : k;
      run(0, len, indptr + r, dst, ld);
      done(ctx, r, len, dst, ld);
    }
  });
}

template void csr_spmm<float>(int64_t, int64_t, int64_t, const int64_t*, const int32_t*,
                              const float*, const float*, int64_t, bool, float*, int64_t);
template void csr_spmm<double>(int64_t, int64_t, int64_t, const int64_t*, const int32_t*,
                               const double*, const double*, int64_t, bool, double*, int64_t);
template void csr_spmm_blocks<float>(int64_t, int64_t, const int64_t*, const int32_t*, const float*,
                                     const RowBlocks<float>&, float*, int64_t, RowsDone<float>,
                                     void*);
template void csr_spmm_blocks<double>(int64_t, int64_t, const int64_t*, const int32_t*,
                                      const double*, const RowBlocks<double>&, double*, int64_t,
                                      RowsDone<double>, void*);

}  // namespace matkern
