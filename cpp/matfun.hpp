// Batched float32 GEMM for the matrix-function iterations (python/matkern/_matfun_iter.py):
// C[b] = op(A[b]) . op(B[b]) for stacks of small to medium matrices, with AVX-512 FMAs.
// NumPy's OpenBLAS takes its Haswell (AVX2) kernels on AMD Zen 4/5, half of what the
// 512-bit FMA units do there (bench/results/simd_peak_cpu.txt); this kernel is used where
// simd_level() reaches avx512_vnni, NumPy's matmul elsewhere.
#pragma once
#include <cstdint>

namespace matkern {

// Operand op(X) of shape (r, c) from a C-contiguous stack: not transposed, X[b] is (r, c)
// row-major (leading dimension c); transposed, X[b] is (c, r) row-major and read as its
// transpose.
struct BmmOperand {
  const float* data = nullptr;
  bool trans = false;
};

// Whether bmm_f32 runs here (AVX-512 built and simd_level() >= avx512_vnni).
bool bmm_enabled();

// C (batch, m, n) row-major = op(A) (m, k) . op(B) (k, n) for every matrix of the stacks.
// parallel: the matrices (or for one matrix, its panels) on the helper pool; otherwise on
// the calling thread (a caller that already runs pieces of a stack on several threads).
// sym: the caller knows the product is symmetric, C[i][j] and C[j][i] the same sum of the
// same products (A^T A; S S for a symmetric S): register tiles wholly below the diagonal are
// skipped and the lower triangle copied from the upper.
void bmm_f32(int64_t batch, int64_t m, int64_t n, int64_t k, BmmOperand a, BmmOperand b, float* c,
             bool parallel, bool sym = false);

namespace avx512 {
constexpr int kBmmMr = 8;   // rows of a register tile
constexpr int kBmmNr = 48;  // columns of a register tile (three zmm)
// c[i * ldc + j] (+)= sum over k < kc of A(i, k) * b[k * ldb + j] for i < mr <= 8, j < nc
// <= 48 (columns past nc neither read nor written); A(i, k) = a[i * lda + k], or with ta
// a[k * lda + i]; accumulate: add to c.
void bmm_tile(const float* a, int64_t lda, bool ta, int mr, const float* b, int64_t ldb, int64_t kc,
              float* c, int64_t ldc, int nc, bool accumulate);
}  // namespace avx512

}  // namespace matkern
