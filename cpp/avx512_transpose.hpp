// 16 x 16 float transpose in registers, for the AVX-512 kernel files only (*_avx512.cpp,
// compiled with -mavx512f; never include it from portable code).
#pragma once
#include <immintrin.h>

namespace matkern {
namespace avx512 {
namespace {

// r[i] (row i, 16 columns) -> r[c] (column c, 16 rows).
inline void transpose16(__m512* r) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4k + c], 128-bit lane L: column 4L + c of rows 4k..4k+3
  for (int k = 0; k < 4; ++k) {
    const __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * k + 2]), d = _mm512_castps_pd(t[4 * k + 3]);
    u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 lo0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
    const __m512 lo1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    const __m512 hi0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 hi1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(lo0, lo1, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(lo0, lo1, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(hi0, hi1, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(hi0, hi1, 0xDD);
  }
}

}  // namespace
}  // namespace avx512
}  // namespace matkern
