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
  bool upper = false;  // op(X) upper triangular (B only): each column's sum stops at its row
};

// After matrix b's product, while C[b] is in cache: C[b] = alpha[b] C[b] + beta[b] D[b] +
// gamma[b] I (D a stack shaped as C), the polynomial P = c A A + b A + a I of a
// Newton-Schulz step without three passes of NumPy over the stack. Unset (alpha null): none.
struct BmmEpilogue {
  const float* alpha = nullptr;
  const float* beta = nullptr;
  const float* d = nullptr;
  const float* gamma = nullptr;
};

// Whether bmm_f32 runs here (AVX-512 built and simd_level() >= avx512_vnni).
bool bmm_enabled();

// C (batch, m, n) row-major = op(A) (m, k) . op(B) (k, n) for every matrix of the stacks.
// parallel: the matrices (or for one matrix, its panels) on the helper pool; otherwise on
// the calling thread (a caller that already runs pieces of a stack on several threads).
// sym: the caller knows the product is symmetric, C[i][j] and C[j][i] the same sum of the
// same products (A^T A; S S for a symmetric S): register tiles wholly below the diagonal are
// skipped and the lower triangle copied from the upper.
// ep: see BmmEpilogue (with sym, D symmetric too).
void bmm_f32(int64_t batch, int64_t m, int64_t n, int64_t k, BmmOperand a, BmmOperand b, float* c,
             bool parallel, bool sym = false, const BmmEpilogue& ep = {});

// out[b] = alpha[b] A[b] + beta[b] B[b]^T for stacks of k x k row-major matrices (out
// distinct from both): the transposed operand in 16 x 16 register blocks, where NumPy's
// strided copy of a 256 x 256 transpose took 60 us. Needs bmm_enabled().
void add_transposed_f32(int64_t batch, int64_t k, const float* a, const float* b,
                        const float* alpha, const float* beta, float* out);

namespace avx512 {
constexpr int kBmmMr = 8;   // rows of a register tile
constexpr int kBmmNr = 48;  // columns of a register tile (three zmm)
// c[i * ldc + j] (+)= sum over k < kc of A(i, k) * b[k * ldb + j] for i < mr <= 8, j < nc
// <= 48 (columns past nc neither read nor written); A(i, k) = a[i * lda + k], or with ta
// a[k * lda + i]; accumulate: add to c.
void bmm_tile(const float* a, int64_t lda, bool ta, int mr, const float* b, int64_t ldb, int64_t kc,
              float* c, int64_t ldc, int nc, bool accumulate);
// c[i * ldc + j] = c[j * ldc + i] for j < i < m: the lower triangle from the upper.
void mirror_upper(float* c, int64_t m, int64_t ldc);
// c = alpha c + beta d + gamma I for one m x n matrix (row-major, leading dimension n); with
// upper, the upper triangle only (j >= i).
void epilogue(float* c, int64_t m, int64_t n, bool upper, float alpha, float beta, const float* d,
              float gamma);
// out = alpha a + beta b^T for one k x k matrix (row-major, leading dimension k).
void add_transposed(int64_t k, const float* a, const float* b, float alpha, float beta, float* out);
}  // namespace avx512

}  // namespace matkern
