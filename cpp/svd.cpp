// Portable sparse kernels of the svd family, threaded on the helper pool (parallel.hpp); the row
// axpy uses the AVX2 variant when the CPU has it (MATKERN_SIMD=portable forces the portable loop).
#include "svd.hpp"

#include <vector>

#include "parallel.hpp"
#include "simd.hpp"

namespace matkern {
namespace {

void axpy_portable(double a, const double* x, double* y, int64_t k) {
#pragma omp simd
  for (int64_t i = 0; i < k; ++i) y[i] += a * x[i];
}

using AxpyFn = void (*)(double, const double*, double*, int64_t);

AxpyFn pick_axpy() {
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) return &avx2::axpy;
#endif
  return &axpy_portable;
}

// body(begin, end) over rows [0, n) in pieces of at least min_rows rows; on the caller alone
// when the whole job is under 2^18 multiply-adds (not worth waking helpers for).
template <typename F>
void for_rows(int64_t n, int64_t work, int64_t min_rows, const F& body) {
  if (work < (int64_t(1) << 18)) return body(int64_t(0), n);
  parallel_for_range(n, min_rows, body);
}

}  // namespace

void svd_gather(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
                const double* B, int64_t k, double* out) {
  const AxpyFn axpy = pick_axpy();
  for_rows(c, indptr[c] * k, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      double* o = out + j * k;
      for (int64_t t = 0; t < k; ++t) o[t] = 0.0;
      for (int64_t p = indptr[j]; p < indptr[j + 1]; ++p)
        axpy(data[p], B + int64_t(indices[p]) * k, o, k);
    }
  });
}

void svd_gram(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
              const int64_t* cptr, const int32_t* cidx, const double* cval, double* G) {
  // Row i of G from the columns row i touches: G[i, j] = sum over shared columns of products.
  // Cost sum_col nnz(col)^2, small for sparse updates; each thread owns whole rows of G.
  int64_t work = 0;
  for (int64_t i = 0; i < c; ++i) work += indptr[i + 1] - indptr[i];
  for_rows(c, work * 8, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double* g = G + i * c;
      for (int64_t j = 0; j < c; ++j) g[j] = 0.0;
      for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
        const double v = data[p];
        const int64_t col = indices[p];
        for (int64_t q = cptr[col]; q < cptr[col + 1]; ++q) g[cidx[q]] += v * cval[q];
      }
    }
  });
}

void svd_scatter(const int32_t* rows, const int64_t* indptr, const int32_t* indices,
                 const double* data, int64_t nr, const double* Y, int64_t k, double* B) {
  const AxpyFn axpy = pick_axpy();
  for_rows(nr, indptr[nr] * k, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double* b = B + int64_t(rows[r]) * k;
      for (int64_t p = indptr[r]; p < indptr[r + 1]; ++p)
        axpy(data[p], Y + int64_t(indices[p]) * k, b, k);
    }
  });
}

}  // namespace matkern
