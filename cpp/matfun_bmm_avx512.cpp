// The register tile of bmm_f32 (matfun.hpp): 8 rows x 48 columns of C in 24 zmm
// accumulators; per k, three loads of a row of B and eight broadcasts of A, 24 FMAs. Neither
// operand is packed: B's rows are read where they lie (48 columns = 192 bytes a row), and
// A's eight values of one k come from eight row pointers (A as stored) or one run (A
// transposed, stored k-major).
#include <immintrin.h>

#include "matfun.hpp"

namespace matkern::avx512 {
namespace {

template <int MR, bool TA>
void tile(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t kc, float* c,
          int64_t ldc, int nc, bool accumulate) {
  __m512 acc[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();
  const __mmask16 m0 = nc >= 16 ? __mmask16(0xffff) : __mmask16((1u << nc) - 1);
  const __mmask16 m1 = nc >= 32  ? __mmask16(0xffff)
                       : nc > 16 ? __mmask16((1u << (nc - 16)) - 1)
                                 : __mmask16(0);
  const __mmask16 m2 = nc >= 48  ? __mmask16(0xffff)
                       : nc > 32 ? __mmask16((1u << (nc - 32)) - 1)
                                 : __mmask16(0);
  const float* ar[MR];  // A as stored: row i's values at ar[i][k]
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) ar[i] = a + i * lda;
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = b + k * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, bk);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, bk + 16);
    const __m512 b2 = _mm512_maskz_loadu_ps(m2, bk + 32);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 x = _mm512_set1_ps(TA ? a[k * lda + i] : ar[i][k]);
      acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(x, b2, acc[i][2]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_maskz_loadu_ps(m0, ci));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_maskz_loadu_ps(m1, ci + 16));
      acc[i][2] = _mm512_add_ps(acc[i][2], _mm512_maskz_loadu_ps(m2, ci + 32));
    }
    _mm512_mask_storeu_ps(ci, m0, acc[i][0]);
    _mm512_mask_storeu_ps(ci + 16, m1, acc[i][1]);
    _mm512_mask_storeu_ps(ci + 32, m2, acc[i][2]);
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t, int,
                        bool);
// [ta][mr - 1]
const TileFn kTiles[2][kBmmMr] = {{tile<1, false>, tile<2, false>, tile<3, false>, tile<4, false>,
                                   tile<5, false>, tile<6, false>, tile<7, false>, tile<8, false>},
                                  {tile<1, true>, tile<2, true>, tile<3, true>, tile<4, true>,
                                   tile<5, true>, tile<6, true>, tile<7, true>, tile<8, true>}};

}  // namespace

void bmm_tile(const float* a, int64_t lda, bool ta, int mr, const float* b, int64_t ldb, int64_t kc,
              float* c, int64_t ldc, int nc, bool accumulate) {
  kTiles[ta ? 1 : 0][mr - 1](a, lda, b, ldb, kc, c, ldc, nc, accumulate);
}

}  // namespace matkern::avx512
