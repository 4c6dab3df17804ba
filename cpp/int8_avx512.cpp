// AVX-512 VNNI micro-kernel of the int8 family: the same tile as the AVX2 one (int8.hpp's
// packed layout, int16 activation pairs), with one vpdpwssd per row of X and pair of inputs
// for all 16 columns: the two 8-row panels' codes are widened into one 512-bit register, and
// the multiply, the pairwise add and the accumulation are one instruction (the AVX2 kernel
// needs vpmaddwd and vpaddd per 8 columns). Tiles of up to 12 rows (12 accumulators of the
// 32 zmm registers): the widened weights of a pair serve twice as many rows as at 6. Products and
// sums are exact int32 (no saturation; |sum| <= K * 127^2 as for AVX2), so every level gives the
// same int32 results.
#include <immintrin.h>

#include <cstring>

#include "int8.hpp"

namespace matkern::avx512 {
namespace {

template <int MR, int NP>
void tile_kernel(const int16_t* x, int64_t ldx, const int8_t* w, int64_t panel_stride,
                 int64_t pairs, int32_t* tile, bool accumulate) {
  __m512i c[MR];
  for (int i = 0; i < MR; ++i)
    c[i] = accumulate ? _mm512_loadu_si512(tile + i * 16) : _mm512_setzero_si512();
  const int32_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = reinterpret_cast<const int32_t*>(x + i * ldx);
  const int8_t* w1 = w + panel_stride;
  for (int64_t p = 0; p < pairs; ++p) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + p * 16));
    const __m128i hi = NP > 1 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(w1 + p * 16))
                              : _mm_setzero_si128();
    // dword lane j of b: the pair (k, k+1) of output column j (panel j / 8, row j % 8)
    const __m512i b =
        _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
    for (int i = 0; i < MR; ++i) {
      int32_t v;
      std::memcpy(&v, xr[i] + p, 4);
      c[i] = _mm512_dpwssd_epi32(c[i], _mm512_set1_epi32(v), b);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_storeu_si512(tile + i * 16, c[i]);
}

// The full 12-row tile with named accumulators: with the generic array GCC copied every
// accumulator between registers each step (24 extra moves per pair of inputs).
template <>
void tile_kernel<12, 2>(const int16_t* x, int64_t ldx, const int8_t* w, int64_t panel_stride,
                        int64_t pairs, int32_t* tile, bool accumulate) {
  // clang-format off: statement macros in rows (clang-format reflows them unstably)
#define MK_LOAD(i) accumulate ? _mm512_loadu_si512(tile + (i) * 16) : _mm512_setzero_si512()
  __m512i c0 = MK_LOAD(0), c1 = MK_LOAD(1), c2 = MK_LOAD(2), c3 = MK_LOAD(3);
  __m512i c4 = MK_LOAD(4), c5 = MK_LOAD(5), c6 = MK_LOAD(6), c7 = MK_LOAD(7);
  __m512i c8 = MK_LOAD(8), c9 = MK_LOAD(9), c10 = MK_LOAD(10), c11 = MK_LOAD(11);
#undef MK_LOAD
  const int8_t* w1 = w + panel_stride;
  for (int64_t p = 0; p < pairs; ++p) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + p * 16));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w1 + p * 16));
    const __m512i b =
        _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
#define MK_ROW(i)                                              \
  {                                                            \
    int32_t v;                                                 \
    std::memcpy(&v, x + (i) * ldx + 2 * p, 4);                 \
    c##i = _mm512_dpwssd_epi32(c##i, _mm512_set1_epi32(v), b); \
  }
    MK_ROW(0) MK_ROW(1) MK_ROW(2) MK_ROW(3) MK_ROW(4) MK_ROW(5)
    MK_ROW(6) MK_ROW(7) MK_ROW(8) MK_ROW(9) MK_ROW(10) MK_ROW(11)
#undef MK_ROW
  }
#define MK_STORE(i) _mm512_storeu_si512(tile + (i) * 16, c##i);
  MK_STORE(0) MK_STORE(1) MK_STORE(2) MK_STORE(3) MK_STORE(4) MK_STORE(5)
  MK_STORE(6) MK_STORE(7) MK_STORE(8) MK_STORE(9) MK_STORE(10) MK_STORE(11)
#undef MK_STORE
  // clang-format on
}

using TileFn = void (*)(const int16_t*, int64_t, const int8_t*, int64_t, int64_t, int32_t*, bool);
#define MK_ROW(r) {tile_kernel<r, 1>, tile_kernel<r, 2>}
const TileFn kTiles[kInt8Avx512Mr][2] = {MK_ROW(1), MK_ROW(2),  MK_ROW(3),  MK_ROW(4),
                                         MK_ROW(5), MK_ROW(6),  MK_ROW(7),  MK_ROW(8),
                                         MK_ROW(9), MK_ROW(10), MK_ROW(11), MK_ROW(12)};
#undef MK_ROW

}  // namespace

void gemm_tile(const int16_t* x, int64_t ldx, int mr, const int8_t* w, int64_t panel_stride, int np,
               int64_t pairs, int32_t* tile, bool accumulate) {
  kTiles[mr - 1][np - 1](x, ldx, w, panel_stride, pairs, tile, accumulate);
}

}  // namespace matkern::avx512
