// Launchers of the int8 family (defined in int8.cu; plain C++ declarations).
// Layouts: activations and weights as int8 rows of Kp bytes (Kp a multiple of 32, zero padded);
// a product is A (M, Kp) . B (N, Kp)^T, "linear layer" orientation.
#pragma once
#include <cstdint>

namespace matkern::cuda {

// Row-wise absmax quantization: x (M, K) float32 or float16 (given as its uint16 bits) ->
// q (M, Kp) int8, scale (M). mask (K bytes, or null): columns set to 1 count as zero (the
// outlier columns). A row with NaN/Inf outside them: scale NaN, codes zero.
void int8_quantize_rows_f32(const float* x, int64_t m, int64_t k, int64_t kp, const uint8_t* mask,
                            int8_t* q, float* scale, std::uintptr_t stream);
void int8_quantize_rows_f16(const uint16_t* x, int64_t m, int64_t k, int64_t kp,
                            const uint8_t* mask, int8_t* q, float* scale, std::uintptr_t stream);

// out[m, n] = C[m, n] * row_scale[m] * col_scale[n] / 127^2 + bias[n] + addend[m, n], with
// C = A . B^T exact in int32 (bias and addend may be null; addend is float32 (M, N)).
void int8_gemm_scaled_f32(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp,
                          const float* row_scale, const float* col_scale, const float* bias,
                          const float* addend, float* out, std::uintptr_t stream);
void int8_gemm_scaled_f16(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp,
                          const float* row_scale, const float* col_scale, const float* bias,
                          const float* addend, uint16_t* out, std::uintptr_t stream);
// out = A . B^T as int32.
void int8_gemm_i32(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp, int32_t* out,
                   std::uintptr_t stream);

}  // namespace matkern::cuda
