// AVX-512 register tile of the chunked float32 SYRK (gram_syrk.cpp): two of the AVX2 kernel's
// 6 x 16 tiles (12 rows of the block, one 16-column panel) in twelve zmm accumulators, so
// that each B load serves 12 FMAs and twelve independent chains cover the FMA latency; on a
// 2-core Zen 5 the 6 x 16 ymm tile ran at about half of the zmm FMA rate. Every entry's sum is
// the AVX2 tile's: a fresh FMA chain over the chunk in l order, then one add into C, so both
// levels give the same bits.
#include <immintrin.h>

#include "gram.hpp"

namespace matkern {
namespace avx512 {

namespace {
template <int T>
void tiles(int64_t kc, const float* ap0, const float* ap1, const float* bp, float* ct0, float* ct1,
           bool first) {
  constexpr int R = kSyrkMR;
  __m512 acc[T][R];
#pragma GCC unroll 12
  for (int i = 0; i < T * R; ++i) acc[i / R][i % R] = _mm512_setzero_ps();
  const float* ap[2] = {ap0, ap1};
#pragma GCC unroll 2
  for (int64_t l = 0; l < kc; ++l) {
    const __m512 b = _mm512_loadu_ps(bp + l * kSyrkNR);
#pragma GCC unroll 2
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r)
        acc[t][r] = _mm512_fmadd_ps(_mm512_set1_ps(ap[t][l * R + r]), b, acc[t][r]);
  }
  float* ct[2] = {ct0, ct1};
#pragma GCC unroll 2
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      float* p = ct[t] + r * kSyrkNR;
      _mm512_storeu_ps(p, first ? acc[t][r] : _mm512_add_ps(_mm512_loadu_ps(p), acc[t][r]));
    }
}
}  // namespace

void gram_syrk_tile2(int64_t kc, const float* ap0, const float* ap1, const float* bp, float* ct0,
                     float* ct1, bool first) {
  if (ap1) return tiles<2>(kc, ap0, ap1, bp, ct0, ct1, first);
  tiles<1>(kc, ap0, nullptr, bp, ct0, nullptr, first);
}

}  // namespace avx512
}  // namespace matkern
