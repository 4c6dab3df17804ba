// AVX2/FMA rows of the fused LSQR pass (sketch_lsqr.cpp), chosen at run time: the portable
// loops run at ~2 GFLOP/s, under the memory rate this pass is meant to reach.
#include <immintrin.h>

#include "sketch.hpp"

namespace matkern::avx2 {
namespace {

inline __m256d load4(const double* p) { return _mm256_loadu_pd(p); }
inline __m256d load4(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }

inline double hsum(__m256d a, __m256d b) {
  const __m256d s = _mm256_add_pd(a, b);
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
}

// out[q] = rows[q] . t for R rows, two accumulators per row (2 R independent FMA chains).
template <int R, typename T>
inline void dots(const T* const* rows, const double* t, int64_t n, double* out) {
  __m256d acc0[R], acc1[R];
  for (int q = 0; q < R; ++q) acc0[q] = acc1[q] = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256d t0 = _mm256_loadu_pd(t + j), t1 = _mm256_loadu_pd(t + j + 4);
    for (int q = 0; q < R; ++q) {
      acc0[q] = _mm256_fmadd_pd(load4(rows[q] + j), t0, acc0[q]);
      acc1[q] = _mm256_fmadd_pd(load4(rows[q] + j + 4), t1, acc1[q]);
    }
  }
  if (j + 4 <= n) {
    const __m256d t0 = _mm256_loadu_pd(t + j);
    for (int q = 0; q < R; ++q) acc0[q] = _mm256_fmadd_pd(load4(rows[q] + j), t0, acc0[q]);
    j += 4;
  }
  for (int q = 0; q < R; ++q) {
    double s = hsum(acc0[q], acc1[q]);
    for (int64_t jj = j; jj < n; ++jj) s += double(rows[q][jj]) * t[jj];
    out[q] = s;
  }
}

// z += sum_q d[q] rows[q] (one load and store of z for the R rows).
template <int R, typename T>
inline void axpys(const T* const* rows, const double* d, int64_t n, double* z) {
  __m256d dv[R];
  for (int q = 0; q < R; ++q) dv[q] = _mm256_set1_pd(d[q]);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256d zv = _mm256_loadu_pd(z + j);
    for (int q = 0; q < R; ++q) zv = _mm256_fmadd_pd(dv[q], load4(rows[q] + j), zv);
    _mm256_storeu_pd(z + j, zv);
  }
  for (; j < n; ++j)
    for (int q = 0; q < R; ++q) z[j] += d[q] * double(rows[q][j]);
}

#include "sketch_lsqr_rows.inl"

}  // namespace

void lsqr_piece(const float* a, int64_t i0, int64_t i1, int64_t n, const double* t, int64_t r,
                const double* w, const double* c, double* y, double* zp) {
  lsqr_rows(a, i0, i1, n, t, r, w, c, y, zp);
}
void lsqr_piece(const double* a, int64_t i0, int64_t i1, int64_t n, const double* t, int64_t r,
                const double* w, const double* c, double* y, double* zp) {
  lsqr_rows(a, i0, i1, n, t, r, w, c, y, zp);
}

}  // namespace matkern::avx2
