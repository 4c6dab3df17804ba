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

// B held as row blocks in separate arrays (the row chunks of a distributed iterate), read in
// place instead of copied into one: rows [off[q], off[q+1]) of B are block q, whose row
// j - off[q] starts at ptr[q] + (j - off[q]) * ld[q] (C order within a row). off has nb + 1
// entries: off[0] = 0, nondecreasing (empty blocks allowed), off[nb] = n; nb <= 65536.
template <typename T>
struct RowBlocks {
  const T* const* ptr;
  const int64_t* off;
  const int64_t* ld;
  int64_t nb;
};

// Receives the product's rows [r0, r0 + rows) at v (row stride ldv) right after they are
// written, while they are in cache (a fused next step: FastRP's embedding update).
template <typename T>
using RowsDone = void (*)(void* ctx, int64_t r0, int64_t rows, const T* v, int64_t ldv);

// out = A @ B for B given as row blocks; otherwise the contract of csr_spmm (C-order B), with
// the same summation order: bit-identical to csr_spmm on the blocks' concatenation.
// With done: every run of up to 32 rows is handed to done(ctx, ...) once written, on the
// thread that wrote it; out may then be null (the product is not kept: each thread writes its
// runs into a scratch buffer of its own, ldv = k).
template <typename T>
void csr_spmm_blocks(int64_t m, int64_t k, const int64_t* indptr, const int32_t* indices,
                     const T* data, const RowBlocks<T>& b, T* out, int64_t ldc,
                     RowsDone<T> done = nullptr, void* ctx = nullptr);

// How the row kernels find row j of a blocked B without a branch (a row's indices jump between
// blocks at random: a search per jump cost 1.7x the product). Cells of 2^shift rows, with
// 2^shift <= the shortest nonempty block, hold at most one block boundary each: cell
// c = j >> shift keeps the boundary and the addressing of the blocks on either side, so
//   h = j >= bound;  row = base[h] + j * step[h]   (byte addresses)
// with step = ld * sizeof(T) and base = ptr - off * step of that block (integers: only the
// sum is an address). One cache line per cell, no load depending on another.
struct RowCell {
  int64_t bound;
  int64_t base[2];
  int64_t step[2];
};

struct RowAddress {
  const RowCell* cell;
  int shift;
};

// (No inline lookup function here: see simd.hpp on code shared with the AVX2 files.)

namespace avx2 {
// Rows [r0, r1) of the product, same contract as csr_spmm (no threading inside).
void csr_rows(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* indices,
              const float* data, const float* b, int64_t ldb, bool b_row_major, float* out,
              int64_t ldc);
void csr_rows(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* indices,
              const double* data, const double* b, int64_t ldb, bool b_row_major, double* out,
              int64_t ldc);
void csr_rows_blocks(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr,
                     const int32_t* indices, const float* data, const RowAddress& b, float* out,
                     int64_t ldc);
void csr_rows_blocks(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr,
                     const int32_t* indices, const double* data, const RowAddress& b, double* out,
                     int64_t ldc);
}  // namespace avx2

}  // namespace matkern
