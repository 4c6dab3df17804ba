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
// The whole LLM.int8() product in one call: outlier columns of x (any |x| >= threshold; none
// when threshold is 0), quantization of the rest, the int8 product and an epilogue that adds
// bias and the float product of the outlier columns. work: int8_fused_work_bytes(m, k, kp, n,
// cap) bytes of device memory. Waits for the stream once (the outlier count) when threshold > 0.
// Returns false, with out untouched, when there are more than cap outlier columns or more than
// 16384 rows x columns of them (the caller then takes the cuBLAS path for them).
int64_t int8_fused_work_bytes(int64_t m, int64_t k, int64_t kp, int64_t n, int64_t cap);
bool int8_matmul_fused_f32(const float* x, int64_t m, int64_t k, double threshold, const int8_t* b,
                           int64_t n, int64_t kp, const float* col_scale, const float* bias,
                           float* out, void* work, int64_t cap, std::uintptr_t stream);
bool int8_matmul_fused_f16(const uint16_t* x, int64_t m, int64_t k, double threshold,
                           const int8_t* b, int64_t n, int64_t kp, const float* col_scale,
                           const float* bias, uint16_t* out, void* work, int64_t cap,
                           std::uintptr_t stream);
// out = A . B^T as int32.
void int8_gemm_i32(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp, int32_t* out,
                   std::uintptr_t stream);

}  // namespace matkern::cuda
