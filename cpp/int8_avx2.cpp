// AVX2 kernels of the int8 family: activation quantization and the int16-pair vpmaddwd
// micro-kernel (exact int32 accumulation; 16 multiply-adds per instruction).
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstring>

#include "int8.hpp"

namespace matkern::avx2 {
namespace {

// MR rows of X (int16 pairs, broadcast) x NP panels of 8 weight rows (int8 pairs widened).
// 6 x 2 keeps 12 accumulators, 2 weight vectors, the broadcast and one product in the 16 ymm
// registers (6 x 3 or 4 x 3 made GCC spill accumulators to the stack every step).
template <int MR, int NP>
void tile_kernel(const int16_t* x, int64_t ldx, const int8_t* w, int64_t panel_stride,
                 int64_t pairs, int32_t* tile, bool accumulate) {
  __m256i c[MR][NP];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NP; ++j)
      c[i][j] = accumulate
                    ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + i * 16 + j * 8))
                    : _mm256_setzero_si256();
  const int32_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = reinterpret_cast<const int32_t*>(x + i * ldx);
  for (int64_t p = 0; p < pairs; ++p) {
    __m256i b[NP];
    for (int j = 0; j < NP; ++j)
      b[j] = _mm256_cvtepi8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j * panel_stride + p * 16)));
    for (int i = 0; i < MR; ++i) {
      int32_t v;
      std::memcpy(&v, xr[i] + p, 4);
      const __m256i a = _mm256_set1_epi32(v);
      for (int j = 0; j < NP; ++j) c[i][j] = _mm256_add_epi32(c[i][j], _mm256_madd_epi16(a, b[j]));
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NP; ++j)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + i * 16 + j * 8), c[i][j]);
}

// The full 6 x 2 tile with named accumulators: GCC keeps these in registers, where the
// generic array version spills several of them every step.
template <>
void tile_kernel<6, 2>(const int16_t* x, int64_t ldx, const int8_t* w, int64_t panel_stride,
                       int64_t pairs, int32_t* tile, bool accumulate) {
  // clang-format off: statement macros in rows (clang-format reflows them unstably)
#define MK_LOAD(i, j)                                                                        \
  accumulate ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + (i) * 16 + (j) * 8)) \
             : _mm256_setzero_si256()
  __m256i c00 = MK_LOAD(0, 0), c01 = MK_LOAD(0, 1), c10 = MK_LOAD(1, 0), c11 = MK_LOAD(1, 1);
  __m256i c20 = MK_LOAD(2, 0), c21 = MK_LOAD(2, 1), c30 = MK_LOAD(3, 0), c31 = MK_LOAD(3, 1);
  __m256i c40 = MK_LOAD(4, 0), c41 = MK_LOAD(4, 1), c50 = MK_LOAD(5, 0), c51 = MK_LOAD(5, 1);
#undef MK_LOAD
  const int32_t* x0 = reinterpret_cast<const int32_t*>(x);
  const int32_t* x1 = reinterpret_cast<const int32_t*>(x + ldx);
  const int32_t* x2 = reinterpret_cast<const int32_t*>(x + 2 * ldx);
  const int32_t* x3 = reinterpret_cast<const int32_t*>(x + 3 * ldx);
  const int32_t* x4 = reinterpret_cast<const int32_t*>(x + 4 * ldx);
  const int32_t* x5 = reinterpret_cast<const int32_t*>(x + 5 * ldx);
  const int8_t* w1 = w + panel_stride;
  for (int64_t p = 0; p < pairs; ++p) {
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + p * 16)));
    const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w1 + p * 16)));
    __m256i a;
#define MK_ROW(i)                                                      \
  a = _mm256_set1_epi32(x##i[p]);                                      \
  c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(a, b0));      \
  c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(a, b1));
    MK_ROW(0) MK_ROW(1) MK_ROW(2) MK_ROW(3) MK_ROW(4) MK_ROW(5)
#undef MK_ROW
  }
#define MK_STORE(i, j) \
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + (i) * 16 + (j) * 8), c##i##j);
  MK_STORE(0, 0) MK_STORE(0, 1) MK_STORE(1, 0) MK_STORE(1, 1) MK_STORE(2, 0) MK_STORE(2, 1)
  MK_STORE(3, 0) MK_STORE(3, 1) MK_STORE(4, 0) MK_STORE(4, 1) MK_STORE(5, 0) MK_STORE(5, 1)
#undef MK_STORE
  // clang-format on
}

using TileFn = void (*)(const int16_t*, int64_t, const int8_t*, int64_t, int64_t, int32_t*, bool);
const TileFn kTiles[6][2] = {
    {tile_kernel<1, 1>, tile_kernel<1, 2>}, {tile_kernel<2, 1>, tile_kernel<2, 2>},
    {tile_kernel<3, 1>, tile_kernel<3, 2>}, {tile_kernel<4, 1>, tile_kernel<4, 2>},
    {tile_kernel<5, 1>, tile_kernel<5, 2>}, {tile_kernel<6, 1>, tile_kernel<6, 2>},
};

}  // namespace

void gemm_tile(const int16_t* x, int64_t ldx, int mr, const int8_t* w, int64_t panel_stride, int np,
               int64_t pairs, int32_t* tile, bool accumulate) {
  kTiles[mr - 1][np - 1](x, ldx, w, panel_stride, pairs, tile, accumulate);
}

bool quantize_row(const float* x, int64_t k, int64_t kp, int16_t* q, float* absmax) {
  const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
  __m256 mx = _mm256_setzero_ps(), ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
    ok = _mm256_and_ps(ok, _mm256_cmp_ps(a, big, _CMP_LE_OQ));  // false for NaN and Inf
    mx = _mm256_max_ps(mx, a);
  }
  float m8[8];
  _mm256_storeu_ps(m8, mx);
  float m = 0.0f;
  for (int j = 0; j < 8; ++j) m = m8[j] > m ? m8[j] : m;
  bool finite = _mm256_movemask_ps(ok) == 0xff;
  for (; i < k; ++i) {
    const float a = std::fabs(x[i]);
    finite = finite && a <= FLT_MAX;
    m = a > m ? a : m;
  }
  if (!finite || m == 0.0f) {
    std::memset(q, 0, size_t(kp) * sizeof(int16_t));
    *absmax = finite ? 0.0f : NAN;
    return finite;
  }
  *absmax = m;
  const float pre = m < kInt8Tiny ? kInt8Pre : 1.0f;  // see int8.hpp
  const float inv = 127.0f / (m * pre);
  const __m256 vinv = _mm256_set1_ps(inv), vpre = _mm256_set1_ps(pre);
  i = 0;
  for (; i + 16 <= k; i += 16) {
    // cvtps rounds to nearest even, as np.rint does; packs keeps values in [-127, 127].
    const __m256 xa = _mm256_mul_ps(_mm256_loadu_ps(x + i), vpre);
    const __m256 xb = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8), vpre);
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(xa, vinv));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(xb, vinv));
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), p);
  }
  for (; i < k; ++i) q[i] = int16_t(std::nearbyint((x[i] * pre) * inv));
  for (; i < kp; ++i) q[i] = 0;
  return true;
}

}  // namespace matkern::avx2
