// LLM.int8() matmul on the CPU: row-wise absmax quantization of the activations, an exact
// int8 x int8 -> int32 product against a weight packed at quantize time, and a fused float
// epilogue (row scale x column scale / 127^2, bias, outlier product added).
//
// Packed weight layout (made by the Python layer at quantize time): the weight (N, K) int8 is
// zero-padded to (Np, Kp), Np a multiple of 8 and Kp even, and stored as panels of 8 output
// rows; inside a panel, for each pair of inputs (k, k+1), the 8 rows' two codes (16 bytes):
//   packed[((n / 8) * (Kp / 2) + k / 2) * 16 + (n % 8) * 2 + k % 2] = W[n, k].
// The activations are quantized to int16 codes of int8 values, (M, Kp) row-major, so that one
// 32-bit broadcast carries a pair (k, k+1) and vpmaddwd multiplies it against 8 rows at once,
// exactly (no vpmaddubsw saturation to work around).
#pragma once
#include <cstdint>

namespace matkern {

// Rows whose absmax is below kInt8Tiny are multiplied by kInt8Pre (exact: a power of two)
// before 127 / absmax is taken, which overflows float32 for absmax < 127 / FLT_MAX
// (~3.7e-37): codes = rint((x * pre) * (127 / (absmax * pre))), the same codes as the plain
// formula wherever that one is finite. The reference and the CUDA kernel do the same.
constexpr float kInt8Tiny = 0x1p-64f;
constexpr float kInt8Pre = 0x1p100f;

struct Int8Epilogue {
  const float* row_scale = nullptr;  // (M): activation absmax per row (NaN: row not finite)
  const float* col_scale = nullptr;  // (N): weight absmax per output row
  const float* bias = nullptr;       // (N) or null
  const float* addend = nullptr;     // (M, N) float32 outlier product (may alias out_f32), or
  const float* xo = nullptr;         // (M, n_out) outlier columns of X and
  const float* wot = nullptr;        // (n_out, N) the matching dequantized weight columns^T,
  int64_t n_out = 0;                 // multiplied in the epilogue (few columns: deterministic)
  float* out_f32 = nullptr;          // (M, N): scaled result; or
  int32_t* out_i32 = nullptr;        // (M, N): the raw int32 product (int8_gemm)
};

// C = Xq (M, Kp) . Wpacked^T -> epilogue. Threads over blocks of 16 output columns.
void int8_gemm_packed(const int16_t* xq, int64_t m, int64_t kp, const int8_t* wpacked, int64_t n,
                      const Int8Epilogue& ep);

// Row-wise absmax quantization of x (M, K) float32 into q (M, Kp) int16 codes in [-127, 127]
// (columns K..Kp-1 zero) and scale (M) = absmax. Columns listed in outlier_cols are treated as
// zero (they go through the float path). A row holding NaN or Inf (outside the outlier
// columns) gets scale NaN and zero codes, so that its whole output row is NaN.
void int8_quantize_rows(const float* x, int64_t m, int64_t k, int64_t kp,
                        const int64_t* outlier_cols, int64_t n_out, int16_t* q, float* scale);

// One row of int8_quantize_rows (no outlier columns), on the calling thread: the rotated
// activations (rotate_quant.cpp) are quantized by the same code as the plain ones.
void int8_quantize_row(const float* x, int64_t k, int64_t kp, int16_t* q, float* scale);

// int8 (M, K) -> int16 (M, Kp), zero padded (the left operand of int8_gemm).
void int8_widen(const int8_t* a, int64_t m, int64_t k, int64_t kp, int16_t* q);

namespace avx2 {
// One row: absmax, NaN/Inf check, codes. Returns false when the row is not finite.
bool quantize_row(const float* x, int64_t k, int64_t kp, int16_t* q, float* absmax);
// tile[i * 16 + j] (+)= sum_p x[i * ldx + 2p .. 2p+1] . panel (j / 8) rows, for i < mr (1..6)
// and np (1..2) panels of 8 columns; panel_stride = Kp * 8 bytes between panels. accumulate:
// add to the tile's values instead of overwriting them.
void gemm_tile(const int16_t* x, int64_t ldx, int mr, const int8_t* w, int64_t panel_stride, int np,
               int64_t pairs, int32_t* tile, bool accumulate);
}  // namespace avx2

constexpr int kInt8Avx512Mr = 12;  // rows of X per AVX-512 tile (6 for AVX2 and portable)

namespace avx512 {
// The AVX2 gemm_tile's contract with mr up to kInt8Avx512Mr (tile rows 16 int32 apart), by
// AVX-512 VNNI (vpdpwssd): bit-identical int32 results.
void gemm_tile(const int16_t* x, int64_t ldx, int mr, const int8_t* w, int64_t panel_stride, int np,
               int64_t pairs, int32_t* tile, bool accumulate);
}  // namespace avx512

// The AVX-512 VNNI path (vpdpbusd, int8_vnni_avx512.cpp), on a layout of its own made by the
// Python layer when the weight is quantized on a CPU that runs this path:
//   the codes (N, K) zero padded to (N16, Kq), N16 a multiple of 16 and Kq of 4, stored as
//   super-panels of 64 output columns (the last one 16, 32, 48 or 64 wide, w columns); in
//   super-panel s, for each quad of inputs k / 4, the w columns' four codes:
//     w_packed[s * 64 * Kq + (k / 4) * w * 4 + (n % 64) * 4 + k % 4] = W[n, k]
//   corr (N16) int32 = -128 * sum_k W[n, k] (modulo 2^32).
// The activations are u8 = code + 128, rows ldx bytes apart (ldx >= Kq, a multiple of 4).
constexpr int kInt8VnniCols = 64;        // columns per super-panel
constexpr int kInt8VnniMr = 6;           // rows per register tile (6 x 64: 24 accumulators)
constexpr int kInt8VnniRowChunk = 96;    // rows per task at most (16 tiles)

struct Int8VnniGemm {
  const uint8_t* xq = nullptr;  // (M, ldx) activations + 128
  int64_t ldx = 0, m = 0;
  const int8_t* w = nullptr;  // packed weight, (N16 * Kq) bytes
  int64_t kq = 0, n = 0;
  const int32_t* corr = nullptr;  // (N16)
};

// True when the int8 kernels take the vpdpbusd path now: the CPU runs AVX-512 VNNI
// (simd_level(), so MATKERN_SIMD can turn it off) and MATKERN_INT8_TILE is not "vpdpwssd"
// (which keeps the int16-pair layout and its vpdpwssd tile, for A/B runs and tests).
bool int8_vnni_enabled();

// The activation row stride of the vpdpbusd GEMM for a weight of Kq inputs: Kq, or Kq + 64
// where Kq is a multiple of 1 KiB, so that the six rows a tile reads at once do not share L1
// sets.
inline int64_t int8_vnni_ldx(int64_t kq) { return kq % 1024 ? kq : kq + 64; }

// The int8 GEMM tile that runs now for more than 6 rows (show_config): "vpdpbusd" (the VNNI
// layout), "vpdpwssd" (the AVX-512 tile on the int16-pair panels; 6 rows or fewer run the
// AVX2 tile), "avx2" or "portable".
const char* int8_tile_name();

// Row-wise absmax quantization as int8_quantize_rows, into u8 codes + 128 (M, ldx); columns
// K..ldx-1 get 128 (code 0).
void int8_quantize_rows_u8(const float* x, int64_t m, int64_t k, int64_t ldx,
                           const int64_t* outlier_cols, int64_t n_out, uint8_t* q, float* scale);

// int8 (M, K) -> u8 (M, ldx) = a + 128, padded with 128 (the left operand of int8_gemm).
void int8_offset_rows(const int8_t* a, int64_t m, int64_t k, int64_t ldx, uint8_t* q);

// C = (Xq - 128) . W^T -> epilogue (int8_vnni_enabled() only). Threads over super-panels and
// chunks of rows.
void int8_gemm_vnni(const Int8VnniGemm& g, const Int8Epilogue& ep);

// hit[j] = 1 where column j of x (M, K) holds any |x| >= threshold (NaN never does), else 0.
void int8_outlier_flags(const float* x, int64_t m, int64_t k, float threshold, uint8_t* hit);

// The dequantized weight at columns cols (n_cols) from the vpdpbusd layout:
// wot[c * n + r] = float(double(W[r, cols[c]]) * (double(scale[r]) / 127)), as
// reference.int8.dequantize_rows computes it.
void int8_vnni_columns(const int8_t* w, int64_t kq, int64_t n, const float* scale,
                       const int64_t* cols, int64_t n_cols, float* wot);

namespace avx512 {
// One task of int8_gemm_vnni: super-panel sp, rows [r0, r1) (r1 - r0 <= kInt8VnniRowChunk).
void vnni_task(const Int8VnniGemm& g, const Int8Epilogue& ep, int64_t sp, int64_t r0, int64_t r1);
// hit[j] = any |x[i * ldx + j]| >= threshold over i < m, for j < w <= 1024 (a block of
// int8_outlier_flags).
void outlier_flag_block(const float* x, int64_t m, int64_t ldx, int64_t w, float threshold,
                        uint8_t* hit);
// int8_vnni_columns by 512-bit loads: the same floats.
void vnni_columns(const int8_t* w, int64_t kq, int64_t n, const float* scale, const int64_t* cols,
                  int64_t n_cols, float* wot);
// One row of int8_quantize_rows_u8 (no outlier columns).
bool quantize_row_u8(const float* x, int64_t k, int64_t kq, uint8_t* q, float* absmax);
}  // namespace avx512

}  // namespace matkern
