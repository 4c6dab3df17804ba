// Launchers of the fused rotate + quantize kernels (rotate_quant.cu): one thread block per row
// of X, the row held in shared memory while it is sign-flipped, transformed (H_p kron H_m,
// normalized) and then quantized to int8 (int8_matmul) or written as float32/float16 rows
// padded with zero columns (lut_matmul). Plain C++ declarations (no CUDA headers).
#pragma once
#include <cstdint>

namespace matkern::cuda {

// Largest row (n = m * p floats in shared memory, the default 48 KiB without an opt-in).
constexpr int64_t kRotateMaxN = 12288;

// x (rows, n) float32 or float16 (uint16 bits); signs (n) float32 or null; ht: H_m's columns
// zero padded to mp = m rounded up to 8 (ht[j * mp + i] = H[i][j]), null for m = 1.
// round_f16: round the rotated values to float16 (as the unfused path's float16 result).
// q (rows, kp) int8 codes (kp a multiple of 32, zero past n), scale (rows) the absmax (NaN for
// a row that is not finite, as int8_quantize_rows).
void rotate_quantize_int8_f32(const float* x, int64_t rows, int64_t m, int64_t p,
                              const float* signs, const float* ht, bool round_f16, int64_t kp,
                              int8_t* q, float* scale, std::uintptr_t stream);
void rotate_quantize_int8_f16(const uint16_t* x, int64_t rows, int64_t m, int64_t p,
                              const float* signs, const float* ht, bool round_f16, int64_t kp,
                              int8_t* q, float* scale, std::uintptr_t stream);
// out (rows, ldo) of x's type, columns n..ldo-1 zero.
void rotate_rows_padded_f32(const float* x, int64_t rows, int64_t m, int64_t p, const float* signs,
                            const float* ht, int64_t ldo, float* out, std::uintptr_t stream);
void rotate_rows_padded_f16(const uint16_t* x, int64_t rows, int64_t m, int64_t p,
                            const float* signs, const float* ht, int64_t ldo, uint16_t* out,
                            std::uintptr_t stream);

}  // namespace matkern::cuda
