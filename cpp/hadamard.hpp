// Fast Walsh-Hadamard transform (unnormalized: H_n with entries +-1, Sylvester order) and the
// fused FJLT (sign flip, zero padding, normalized FWHT, sparse projection) on the CPU.
#pragma once
#include <cstdint>

namespace matkern {

// In place on a C-contiguous array viewed as (outer, n, inner), transforming the middle axis;
// n is a power of two. Threads over outer rows (or over inner slices when outer is small).
template <typename T>
void fwht(T* data, int64_t outer, int64_t n, int64_t inner, bool normalize);

// The same, reading from src (C-contiguous, same shape) and writing dst: out-of-place without
// a separate copy pass.
template <typename T>
void fwht_from(const T* src, T* dst, int64_t outer, int64_t n, int64_t inner, bool normalize);

// In place on C-contiguous rows of length n = m * p (p a power of two): each row becomes
// H_n x with H_n = H_p (Sylvester) kron H_m, times 1/sqrt(n) when normalize. ht holds H_m's
// columns zero padded: ht[j * mp + i] = H[i][j] for i < m, mp = m rounded up to 8.
template <typename T>
void fwht_mixed(T* data, int64_t outer, int64_t m, int64_t p, const T* ht, int64_t mp,
                bool normalize);

// The same from src into dst (C-contiguous, same shape; src == dst: in place), in one pass.
template <typename T>
void fwht_mixed_from(const T* src, T* dst, int64_t outer, int64_t m, int64_t p, const T* ht,
                     int64_t mp, bool normalize);

// One row of the m * 2^k transform on the calling thread (x, m, p, ht, mp, tmp of 4 * mp, scale),
// the best kernel for this CPU: fwht_mixed's and the fused rotations' (rotate_quant.cpp).
template <typename T>
using MixedRowFn = void (*)(T*, int64_t, int64_t, const T*, int64_t, T*, T);
template <typename T>
MixedRowFn<T> pick_mixed_row();

// True when avx512::mixed_rows16 serves the m * p transform (float32) on this CPU: AVX-512,
// m a multiple of 4 (every Hadamard order m > 2), n = m * p small enough that 16 rows stay in
// L1/L2. It computes every value exactly as the row kernels do (same operations, same order).
bool mixed_rows16_enabled(int64_t m, int64_t p);

// One contiguous row of length n (a power of two), unnormalized, on the calling thread only
// (the best row kernel for this CPU): for kernels that run their own parallel loop (sketch).
template <typename T>
void fwht_row_serial(T* x, int64_t n);

// out[r, i] = scale * sum_p p_data[p] * H(pad(x[r] * signs))[p_indices[p]] for p in row i of the
// CSR matrix P (k x dpad). x is (rows, d) C-contiguous, out is (rows, k).
template <typename T>
void fjlt_transform(const T* x, int64_t rows, int64_t d, int64_t dpad, const T* signs,
                    const int64_t* p_indptr, const int32_t* p_indices, const T* p_data, int64_t k,
                    double scale, T* out);

namespace avx2 {
// One row of the m * 2^k transform (cpp/hadamard_mixed.inc), tmp holding 4 * mp elements.
void mixed_row_f32(float* x, int64_t m, int64_t p, const float* ht, int64_t mp, float* tmp,
                   float scale);
void mixed_row_f64(double* x, int64_t m, int64_t p, const double* ht, int64_t mp, double* tmp,
                   double scale);
// One contiguous row of length n (a power of two), in place, unnormalized.
void fwht_row(float* x, int64_t n);
void fwht_row(double* x, int64_t n);
// Butterflies between the rows of x (n rows of stride inner) on columns [c0, c1), in place.
void fwht_strided(float* x, int64_t n, int64_t inner, int64_t c0, int64_t c1);
void fwht_strided(double* x, int64_t n, int64_t inner, int64_t c0, int64_t c1);
// FJLT of up to 8 rows at once (x: rows x d, out: rows x k), working on zt (dpad * 8 floats,
// 32-byte aligned: feature j of all 8 rows in one vector) and ot (k * 8 floats, aligned).
void fjlt_block8(const float* x, int64_t d, int rows, int64_t dpad, const float* signs,
                 const int64_t* indptr, const int32_t* indices, const float* pdata, int64_t k,
                 float scale, float* zt, float* ot, float* out);
}  // namespace avx2

namespace avx512 {
// Floats of scratch mixed_rows16 needs (any alignment: it aligns its own start).
int64_t mixed_rows16_scratch(int64_t m, int64_t p);
// Up to 16 rows of the m * p transform at once (m a multiple of 4, n = m * p): out[i, :n] =
// scale * H_n (signs * x[i, :d] zero padded to n) for i < rows; x rows ldx apart, out rows ldo
// apart (out == x with ldo == ldx: in place). signs (d entries) may be null.
void mixed_rows16(const float* x, int64_t ldx, int64_t d, int rows, const float* signs, int64_t m,
                  int64_t p, const float* ht, int64_t mp, float scale, float* scratch, float* out,
                  int64_t ldo);
}  // namespace avx512

}  // namespace matkern
