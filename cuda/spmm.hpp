// Launchers of the spmm family (defined in spmm.cu; plain C++ declarations).
// B is n x k and out is m x k, both C order (row stride k); elements are float32 or float16
// (io = kIoF32 / kIoF16). Accumulation is always in float32.
#pragma once
#include <cstdint>

namespace matkern::cuda {

enum SpmmIo : int { kIoF32 = 0, kIoF16 = 1 };
// Tensor-core modes of the block kernel: tf32 (m16n8k8, float32 in/out), f16 (m16n8k16,
// float16 in/out), bf16 (m16n8k16, float32 in/out, A and B rounded to bfloat16).
enum SpmmMode : int { kModeTf32 = 0, kModeF16 = 1, kModeBf16 = 2 };

// *bad (device int) = 1 if any of the count elements of b is Inf or NaN, else 0; no host sync.
void spmm_nonfinite_launch(const void* b, int64_t count, int io, int* bad, std::uintptr_t stream);

// Long rows cut into segments of at most a few hundred nonzeros (power-law graphs), so that
// one hub row does not keep one warp busy while the others idle. Segments partition the
// nonzeros in order: segment s holds entries bounds[s] .. bounds[s+1]-1 of row seg_row[s];
// seg_slot[s] = -1 for a row that is one segment, else the row's index among the n_split
// split rows (split_rows[slot] = the row), whose sums go through part (n_split x k float32
// scratch, zeroed by the launcher). All device pointers.
struct SpmmCsrSegments {
  int64_t n_seg = 0, n_split = 0;
  const int64_t* bounds = nullptr;
  const int32_t* seg_row = nullptr;
  const int32_t* seg_slot = nullptr;
  const int32_t* split_rows = nullptr;
  float* part = nullptr;
};

// CSR kernel: one warp per row (or segment), lanes over output columns; A values in float32.
// only_if_bad: null, or a device flag; the kernels then do nothing unless *only_if_bad != 0.
// segs: null (one warp per row) or the segments above.
void spmm_csr_launch(int64_t m, int64_t k, const int64_t* indptr, const int32_t* indices,
                     const float* data, const void* b, void* out, int io, const int* only_if_bad,
                     const SpmmCsrSegments* segs, std::uintptr_t stream);

// Block-sparse (SMaT) kernel: n_block_rows block rows of 16 (reordered) rows; block b of block
// row r covers columns 16*block_col[b] .. +15 and holds 256 values in mma fragment order
// (float32 for tf32, 16-bit for f16/bf16). out_rows[16*r + i] is the original row of slot i
// (-1: padding); every slot's row is written, so out needs no zeroing.
// bad: null, or a device flag; the kernel then does nothing when *bad != 0 (B not finite: a
// padded zero times Inf would put NaN into rows that never touch that column).
void spmm_bsr_launch(int64_t n_block_rows, int64_t n, int64_t k, const int64_t* block_ptr,
                     const int32_t* block_col, const void* values, int mode,
                     const int32_t* out_rows, const void* b, void* out, const int* bad,
                     std::uintptr_t stream);

}  // namespace matkern::cuda
