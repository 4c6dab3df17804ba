// The register tile of bmm_f32 (matfun.hpp): 8 rows x 48 columns of C in 24 zmm
// accumulators; per k, three loads of a row of B and eight broadcasts of A, 24 FMAs (a
// narrower tile, 16 or 32 columns, one or two loads and 8 or 16 FMAs). Neither
// operand is packed: B's rows are read where they lie (48 columns = 192 bytes a row), and
// A's eight values of one k come from eight row pointers (A as stored) or one run (A
// transposed, stored k-major).
#include <immintrin.h>

#include <algorithm>
#include <array>

#include "avx512_transpose.hpp"
#include "matfun.hpp"

namespace matkern::avx512 {
namespace {

// NV zmm columns (nc <= 16 NV): a panel narrower than 48 columns runs only the FMAs it needs
template <int MR, bool TA, int NV>
void tile(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t kc, float* c,
          int64_t ldc, int nc, bool accumulate) {
  __m512 acc[MR][NV];
  __mmask16 mask[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v) {
    const int left = nc - 16 * v;
    mask[v] = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  const float* ar[MR];  // A as stored: row i's values at ar[i][k]
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) ar[i] = a + i * lda;
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = b + k * ldb;
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], bk + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 x = _mm512_set1_ps(TA ? a[k * lda + i] : ar[i][k]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(x, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      if (accumulate)
        acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(mask[v], ci + 16 * v));
      _mm512_mask_storeu_ps(ci + 16 * v, mask[v], acc[i][v]);
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t, int,
                        bool);

template <bool TA, int NV>
constexpr std::array<TileFn, kBmmMr> rows() {
  return {tile<1, TA, NV>, tile<2, TA, NV>, tile<3, TA, NV>, tile<4, TA, NV>,
          tile<5, TA, NV>, tile<6, TA, NV>, tile<7, TA, NV>, tile<8, TA, NV>};
}

// [ta][vectors - 1][mr - 1]
const std::array<TileFn, kBmmMr> kTiles[2][3] = {
    {rows<false, 1>(), rows<false, 2>(), rows<false, 3>()},
    {rows<true, 1>(), rows<true, 2>(), rows<true, 3>()}};

// dst (16 x 16, row stride ldd) = src^T (row stride lds)
void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m512 r[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  transpose16(r);
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

}  // namespace

void mirror_upper(float* c, int64_t m, int64_t ldc) {
  // the 16 x 16 blocks below the diagonal by register transposes (a scalar copy with the
  // column stride cost a fifth of a 256 x 256 symmetric product), the rest element-wise
  const int64_t full = m / 16 * 16;
  for (int64_t i0 = 16; i0 < full; i0 += 16)
    for (int64_t j0 = 0; j0 < i0; j0 += 16)
      transpose_block(c + j0 * ldc + i0, ldc, c + i0 * ldc + j0, ldc);
  for (int64_t i = 1; i < m; ++i)
    for (int64_t j = i < full ? i / 16 * 16 : 0; j < i; ++j) c[i * ldc + j] = c[j * ldc + i];
}

void epilogue(float* c, int64_t m, int64_t n, bool upper, float alpha, float beta, const float* d,
              float gamma) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * n;
    const float* di = d + i * n;
    for (int64_t j = upper ? std::min(i, n) : 0; j < n; j += 16) {
      const int64_t cnt = std::min<int64_t>(16, n - j);
      const __mmask16 mk = cnt == 16 ? __mmask16(0xffff) : __mmask16((1u << cnt) - 1);
      const __m512 x = _mm512_mul_ps(va, _mm512_maskz_loadu_ps(mk, ci + j));
      _mm512_mask_storeu_ps(ci + j, mk, _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, di + j), x));
    }
    if (i < n) ci[i] += gamma;
  }
}

void add_transposed(int64_t k, const float* a, const float* b, float alpha, float beta,
                    float* out) {
  const int64_t full = k / 16 * 16;
  alignas(64) float bt[16 * 16];
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t i0 = 0; i0 < full; i0 += 16)
    for (int64_t j0 = 0; j0 < full; j0 += 16) {
      transpose_block(b + j0 * k + i0, k, bt, 16);  // block (i0, j0) of b^T
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        const __m512 x = _mm512_mul_ps(va, _mm512_loadu_ps(a + (i0 + i) * k + j0));
        _mm512_storeu_ps(out + (i0 + i) * k + j0,
                         _mm512_fmadd_ps(vb, _mm512_load_ps(bt + 16 * i), x));
      }
    }
  for (int64_t i = 0; i < k; ++i)  // the edges past the 16 x 16 blocks
    for (int64_t j = i < full ? full : 0; j < k; ++j)
      out[i * k + j] = alpha * a[i * k + j] + beta * b[j * k + i];
}

void bmm_tile(const float* a, int64_t lda, bool ta, int mr, const float* b, int64_t ldb, int64_t kc,
              float* c, int64_t ldc, int nc, bool accumulate) {
  kTiles[ta ? 1 : 0][(nc + 15) / 16 - 1][mr - 1](a, lda, b, ldb, kc, c, ldc, nc, accumulate);
}

}  // namespace matkern::avx512
