// Launchers of the lut family (defined in lut.cu; plain C++ declarations).
#pragma once
#include <cstdint>

namespace matkern::cuda {

// Y = X @ dequant(W).T (+ bias) with W packed in the GPU tile order (python/matkern/
// _lut_layout.py): packed uint32 (ceil(N/16), chunks = ceil(K/64), bits, 32), scales float32
// (N, ceil(K/gs)), table float32 (2^bits). K and gs are multiples of 32 (the caller pads X
// with zero columns to K rounded up to 32; per-row weights pass gs = that K); the last group
// of a row may be partial. X (M, K) is float16 (x_is_half) or float32; the products
// run in float16, or bfloat16 when bf16 is set (float32 X only), with float32 accumulation.
// tm: token tiles of 8 per warp (1, 2 or 4); per: 64-column chunks per split; ws float32
// (splits, M, N) scratch; bias float32 (N) or nullptr; out (M, N) float16 (out_is_half) or
// float32.
void lut_matmul(const void* x, bool x_is_half, int64_t M, int64_t K, const uint32_t* packed,
                const float* scales, const float* table, int bits, int gs, int64_t N, int tm,
                int64_t per, bool bf16, float* ws, int64_t splits, const float* bias, void* out,
                bool out_is_half, std::uintptr_t stream);

}  // namespace matkern::cuda
