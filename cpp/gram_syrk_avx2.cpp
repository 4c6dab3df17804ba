// AVX2/FMA register tile of the chunked float32 SYRK (gram_syrk.cpp): 6 rows x 16 columns in
// twelve ymm accumulators, fresh for each chunk of kc products, then added into the C block.
#include <immintrin.h>

#include "gram.hpp"

namespace matkern {
namespace avx2 {

void gram_syrk_tile(int64_t kc, const float* ap, const float* bp, float* ct, bool first) {
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int r = 0; r < 6; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  // Unrolled by 4: the loop's own counter and branch had held it 15-30% below the FMA rate.
#pragma GCC unroll 4
  for (int64_t l = 0; l < kc; ++l) {
    const __m256 b0 = _mm256_loadu_ps(bp + l * 16), b1 = _mm256_loadu_ps(bp + l * 16 + 8);
#pragma GCC unroll 6
    for (int r = 0; r < 6; ++r) {
      const __m256 x = _mm256_broadcast_ss(ap + l * 6 + r);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < 6; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      float* p = ct + r * 16 + h * 8;
      _mm256_storeu_ps(p, first ? acc[r][h] : _mm256_add_ps(_mm256_loadu_ps(p), acc[r][h]));
    }
}

}  // namespace avx2
}  // namespace matkern
