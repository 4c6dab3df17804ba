// Rotated activations in one pass per row (issue #20): sign flip, the m * 2^k Hadamard
// transform in a per-thread scratch row, then straight into the buffer a kernel reads: int8
// codes and absmax (int8_matmul), padded float32 rows (lut_matmul), or the sparse gather of the
// FJLT. Each row goes through the same row kernels as fwht (hadamard.cpp), in the same order,
// so the results equal the unfused composition (sign flip, fwht, quantize) bit for bit.
#pragma once
#include <cstdint>

namespace matkern {

// The rotation of one row of length n = m * p: z = scale * H_n (signs * x), H_n = H_p kron H_m
// (m = 1: the power-of-two transform). ht: H_m's columns zero padded to mp (as fwht_mixed's),
// null when m = 1. signs: null for no flip. round_f16: round every result to float16
// precision (round to nearest even), as the unfused path's float16 result would be.
template <typename T>
struct RowRotation {
  const T* signs = nullptr;
  const T* ht = nullptr;
  int64_t m = 1, p = 1, mp = 0;
  bool normalize = true;
  bool round_f16 = false;
};

// x (M, k) float32 rows -> q (M, kp) int16 codes and scale (M), exactly as int8_quantize_rows
// would quantize the rotated rows (no outlier columns: a rotated call with a threshold checks
// the scales afterwards, see int8.py).
void rotate_quantize_int8(const float* x, int64_t m_rows, int64_t k, int64_t kp,
                          const RowRotation<float>& r, int16_t* q, float* scale);

// The same codes for the AVX-512 VNNI (vpdpbusd) GEMM: u8 = code + 128 in q (M, ldx), columns
// k..ldx-1 128 (code 0), as int8_quantize_rows_u8 writes them (int8_vnni_enabled() only).
void rotate_quantize_int8_u8(const float* x, int64_t m_rows, int64_t k, int64_t ldx,
                             const RowRotation<float>& r, uint8_t* q, float* scale);

// x (M, k) float32 rows -> out (M, ldo) float32 rotated rows, columns k..ldo-1 zero (the
// padded rows lut_matmul's kernel reads).
void rotate_rows_padded(const float* x, int64_t m_rows, int64_t k, int64_t ldo,
                        const RowRotation<float>& r, float* out);

// The FJLT with an n' = m * p transform (no padding to a power of two when d is such a
// length): out[r, i] = scale * sum_p P[i, p] * (H_n' pad(x[r] * signs))[p], the sign flip and
// zero padding fused into the transform's first pass. x (rows, d), d <= n', out (rows, k).
template <typename T>
void fjlt_mixed_transform(const T* x, int64_t rows, int64_t d, const RowRotation<T>& r,
                          const int64_t* p_indptr, const int32_t* p_indices, const T* p_data,
                          int64_t k, double scale, T* out);

}  // namespace matkern
