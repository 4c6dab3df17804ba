// LUT-quantized weight matmul (FLUTE-style) on the CPU: y = X @ dequant(W).T (+ bias), where
// dequant(W)[n, k] = table[code[n, k]] * scales[n, k / group_size] in float32.
// Codes are packed per row in blocks of 32 codes stored in `bits` uint32 words (layout in
// python/matkern/_lut_layout.py): 4-bit nibbles / 2-bit fields in order, 3-bit = two words
// of the low two bits plus one word of third bits.
#pragma once
#include <cstdint>

namespace matkern {

// The LUT kernels' level now (show_config): "avx512" (4-bit weights with groups and K
// multiples of 64; the others run the AVX2 kernels), "avx2" or "portable".
const char* lut_kernel_name();

// Groups: gs consecutive columns of a row (gs % 32 == 0, any size: per-row weights pass K
// rounded up to 32), ngroups = ceil(K / gs) scales per row; the last group of a row may be
// partial (K % gs columns). The kernels take K % 32 == 0: lut_matmul's caller pads X with zero
// columns (the packed codes past the true K are 0 and meet those zeros).
// x (M, K) float32, packed (N, K*bits/32), scales (N, ngroups), table (2^bits), bias (N) or
// nullptr, out (M, N).
void lut_matmul(const float* x, int64_t M, int64_t K, const uint32_t* packed, const float* scales,
                const float* table, int bits, int gs, int64_t N, const float* bias, float* out);

// out (N, K) = dequantized matrix; here K is the true in_features (any K: the packed rows hold
// ceil(K / 32) blocks, ngroups = ceil(ceil32(K) / gs)).
void lut_dequantize(const uint32_t* packed, const float* scales, const float* table, int bits,
                    int gs, int64_t N, int64_t K, float* out);

// The three inner kernels, one portable and one AVX2 copy of each (chosen at run time).
// gemv_rows: out[r] = dot(x[0:K], dequant row r) (+ bias[r]) for nrows consecutive rows.
// decode_rows: groups [g, g + ng) of `nrows` consecutive rows (row stride `wpr` words,
//   `ngroups` scales per row), scaled, into buf[r * ldb + k] (k counted from group g); the
//   row's last group may be partial (wpr / bits * 32 columns in all).
// tile_product: part[i][r][0:8] += x[i][k..] * buf[r][k..] summed over k in [0, len) by
//   8-lane partial sums, for i < mr (x rows at stride ldx) and r < 4 (buf rows at stride ldb).
// Wide path (larger M): transpose16: bt[k * 16 + r] = buf[r * ldb + k] for r < 16, k < len
//   (len % 8 == 0); panel_product: c[i * 16 + j] += sum over k < len of x[i * ldx + k] *
//   bt[k * 16 + j], for i < mr <= 6, j < 16 (a 6 x 16 register tile, as a GEMM's).
namespace portable {
void gemv_rows(const float* x, const uint32_t* words, const float* scales, const float* table,
               int bits, int gs, int64_t K, int64_t nrows, const float* bias, float* out);
void decode_rows(const uint32_t* words, int64_t wpr, const float* scales, int64_t ngroups,
                 const float* table, int bits, int gs, int64_t g, int64_t ng, int nrows, float* buf,
                 int64_t ldb);
void tile_product(const float* x, int64_t ldx, int mr, const float* buf, int64_t ldb, int len,
                  float* part);
void transpose16(const float* buf, int64_t ldb, int len, float* bt);
void panel_product(const float* x, int64_t ldx, int mr, const float* bt, int len, float* c);
}  // namespace portable
namespace avx2 {
void gemv_rows(const float* x, const uint32_t* words, const float* scales, const float* table,
               int bits, int gs, int64_t K, int64_t nrows, const float* bias, float* out);
void decode_rows(const uint32_t* words, int64_t wpr, const float* scales, int64_t ngroups,
                 const float* table, int bits, int gs, int64_t g, int64_t ng, int nrows, float* buf,
                 int64_t ldb);
void tile_product(const float* x, int64_t ldx, int mr, const float* buf, int64_t ldb, int len,
                  float* part);
void transpose16(const float* buf, int64_t ldb, int len, float* bt);
void panel_product(const float* x, int64_t ldx, int mr, const float* bt, int len, float* c);
}  // namespace avx2
// AVX-512 (F) 4-bit kernels, for 4-bit weights whose pairs of blocks lie in one group (gs a
// multiple of 64, or one group per row) and whose packed K is a multiple of 32 (a row may end
// in a lone block, lut.cpp's avx512_fits); others take the AVX2 kernels. Rows at stride wpr
// words.
// lut4_gemv: out[r] = dot(x, dequant row r) for r < nrows, with xq = x permuted pair by pair
//   (64 columns) to the order the kernel reads codes in (lut.cpp's permute_x_pairs).
// lut4_decode_panel: bt[k * 32 + r] = table[code of row r at column k0 + k], unscaled, for
//   k < len (a multiple of 32 up to 128, k0 % 128 == 0; 32 or 96 at the end of a row with a
//   lone last block), r < 32 (zero for r >= nrows).
// lut4_panel_product: c[i * 32 + j] += s[j] * sum over k < len of x[k * mr + i] *
//   bt[k * 32 + j] for i < mr <= 12, j < 32 (a 12 x 32 register tile; X packed k-major).
namespace avx512 {
void lut4_gemv(const float* xq, const uint32_t* rows, int64_t wpr, const float* scales,
               int64_t ngroups, const float* table, int gs, int64_t K, int nrows, float* out);
void lut4_decode_panel(const uint32_t* rows, int64_t wpr, const float* table, int64_t k0, int len,
                       int nrows, float* bt);
void lut4_panel_product(const float* x, int mr, const float* bt, int len, const float* s, float* c);
}  // namespace avx512

}  // namespace matkern

namespace matkern {

// lut_matmul with int8 activations (lut_i8.cpp): x (M, K) float32 (K a multiple of 32, zero
// padded), the weight as lut_matmul takes it, t8 (2^bits) the table as int8 codes with
// table ~= t8 / tfac. out (M, N) float32.
void lut_matmul_i8(const float* x, int64_t M, int64_t K, const uint32_t* packed,
                   const float* scales, const int8_t* t8, double tfac, int bits, int gs, int64_t N,
                   const float* bias, float* out);

// "avx512_vnni" where 4-bit weights with groups and K multiples of 128 take the vpdpbusd
// kernel now, else "portable" (show_config).
const char* lut_i8_kernel_name();

namespace avx512 {
// rows of X per pass of lut4_i8_rows: 6, not 8 (with 8, the row addresses took the general
// registers and the per-group code reloaded its values from the stack: 1.25-1.33x slower at
// M = 16 and 64 in alternating runs)
constexpr int kLutI8Mr = 6;
// raw[i * 32 + r] = sum_g scales[r * ngroups + g] * S_g for i < mr, r < nrows (<= 32), S_g =
// sum over group g's columns of xp[i * ldx + k] * lut[code]; the codes of row r at
// rows + r * wpr (4-bit pairs of blocks, _lut_layout), lut[c] = t8[c] + 128 (u8), xp in the
// kernel's column order (lut_i8.cpp), xcorr[g * cstride + i * 16 + l]: per lane l of the
// accumulator, -128 x the sum of the x codes it multiplies in group g (the u8 offset).
void lut4_i8_rows(const int8_t* xp, int64_t ldx, int64_t K, int mr, const int32_t* xcorr,
                  int64_t cstride, int64_t ngroups, const uint32_t* rows, int64_t wpr,
                  const float* scales, const uint8_t* lut, int gs, int nrows, float* raw);
}  // namespace avx512

}  // namespace matkern
