// CSR x dense products on the CPU (the spmm family). Reusable by other families:
// include "spmm.hpp" and call matkern::csr_spmm<float|double>.
#pragma once
#include <cstdint>

namespace matkern {

// out = A @ B, with A an m x n CSR matrix and B an n x k dense matrix; out is overwritten.
//
// Contract:
// - indptr: m + 1 int64 offsets, nondecreasing (indptr[0] need not be 0: rows read
//   [indptr[i], indptr[i+1])). indices: int32 column numbers in [0, n), in any order within a
//   row; duplicate (row, column) entries are summed. data: the values, same type as B.
// - B: b_row_major = true  -> element (j, c) at b[j * ldb + c] (C order, ldb >= k);
//      b_row_major = false -> element (j, c) at b[j + c * ldb] (Fortran order, ldb >= n).
// - out: element (i, c) at out[i * ldc + c], ldc >= k; rows without nonzeros become 0.
// - Threads: OpenMP over parts of consecutive rows holding equal shares of (nnz + rows), so
//   that a few dense rows do not serialize the product. Safe to call from several threads
//   at once (no global state). AVX2/FMA kernels when simd_level() allows, else portable.
// - NaN/Inf in A or B propagate as IEEE arithmetic does; the summation order within a row is
//   the storage order of its entries.
template <typename T>
void csr_spmm(int64_t m, int64_t n, int64_t k, const int64_t* indptr, const int32_t* indices,
              const T* data, const T* b, int64_t ldb, bool b_row_major, T* out, int64_t ldc);

namespace avx2 {
// Rows [r0, r1) of the product, same contract as csr_spmm (no threading inside).
void csr_rows(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* indices,
              const float* data, const float* b, int64_t ldb, bool b_row_major, float* out,
              int64_t ldc);
void csr_rows(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* indices,
              const double* data, const double* b, int64_t ldb, bool b_row_major, double* out,
              int64_t ldc);
}  // namespace avx2

}  // namespace matkern
