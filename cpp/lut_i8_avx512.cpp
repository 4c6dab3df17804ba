// AVX-512 VNNI kernel of lut_matmul(compute="int8"), 4-bit codes (lut_i8.cpp has the math).
// A row's codes are read 64 bytes (128 codes) at a time in their packed order; vpshufb looks
// the low and the high nibbles up in the 16-byte table of u8 weights (t8 + 128), and vpdpbusd
// multiplies each against 64 int8 codes of X laid out in the same order, four products a
// lane: per 128 weights, one load, three integer ops, two lookups and two dot products (the
// float kernel's lookups took a shift and a vpermps per 16 weights, and an FMA each).
// The u8 offset is taken out in integers: each lane of a group's accumulator starts at -128 x
// the sum of the X codes it multiplies, so that it holds an exact sum of t8 x x8 products
// alone; then one conversion and one FMA by the group's scale per group and row of X.
#include <immintrin.h>

#include "lut.hpp"

namespace matkern::avx512 {
namespace {

// Bytes of a row's codes read ahead (the rows of a task follow each other in memory; the
// prefetch covers the start of the next row as well).
constexpr int kAhead = 1024;

template <int MR>
void rows_mr(const int8_t* xp, int64_t ldx, int64_t K, const int32_t* xcorr, int64_t cstride,
             int64_t ngroups, const uint32_t* rows, int64_t wpr, const float* scales, __m512i tbl,
             int gs, int nrows, float* raw) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const int64_t cpg = gs / 128, nch = K / 128;
  for (int r = 0; r < nrows; ++r) {
    const uint8_t* w = reinterpret_cast<const uint8_t*>(rows + r * wpr);
    __m512 f[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) f[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ngroups; ++g) {
      __m512i a[MR];
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) a[i] = _mm512_loadu_si512(xcorr + g * cstride + i * 16);
      const int64_t c1 = (g + 1) * cpg < nch ? (g + 1) * cpg : nch;
      for (int64_t c = g * cpg; c < c1; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(w + 64 * c + kAhead), _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(w + 64 * c);
        const __m512i lo = _mm512_shuffle_epi8(tbl, _mm512_and_si512(v, m4));
        const __m512i hi = _mm512_shuffle_epi8(tbl, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
        const int8_t* xc = xp + 128 * c;
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
          a[i] = _mm512_dpbusd_epi32(a[i], lo, _mm512_loadu_si512(xc + i * ldx));
          a[i] = _mm512_dpbusd_epi32(a[i], hi, _mm512_loadu_si512(xc + i * ldx + 64));
        }
      }
      const __m512 s = _mm512_set1_ps(scales[r * ngroups + g]);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) f[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[i]), s, f[i]);
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) raw[i * 32 + r] = _mm512_reduce_add_ps(f[i]);
  }
}

}  // namespace

void lut4_i8_rows(const int8_t* xp, int64_t ldx, int64_t K, int mr, const int32_t* xcorr,
                  int64_t cstride, int64_t ngroups, const uint32_t* rows, int64_t wpr,
                  const float* scales, const uint8_t* lut, int gs, int nrows, float* raw) {
  using RowsFn = void (*)(const int8_t*, int64_t, int64_t, const int32_t*, int64_t, int64_t,
                          const uint32_t*, int64_t, const float*, __m512i, int, int, float*);
  static const RowsFn kRows[kLutI8Mr] = {rows_mr<1>, rows_mr<2>, rows_mr<3>,
                                         rows_mr<4>, rows_mr<5>, rows_mr<6>};
  const __m512i tbl =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lut)));
  kRows[mr - 1](xp, ldx, K, xcorr, cstride, ngroups, rows, wpr, scales, tbl, gs, nrows, raw);
}

}  // namespace matkern::avx512
