// AVX2/FMA row kernels of the svd family (compiled with -mavx2 -mfma; chosen at run time).
#include <immintrin.h>

#include "svd.hpp"

namespace matkern::avx2 {

void axpy(double a, const double* x, double* y, int64_t k) {
  const __m256d va = _mm256_set1_pd(a);
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256d y0 = _mm256_loadu_pd(y + i), y1 = _mm256_loadu_pd(y + i + 4);
    y0 = _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i), y0);
    y1 = _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i + 4), y1);
    _mm256_storeu_pd(y + i, y0);
    _mm256_storeu_pd(y + i + 4, y1);
  }
  for (; i + 4 <= k; i += 4)
    _mm256_storeu_pd(y + i, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
  for (; i < k; ++i) y[i] += a * x[i];
}

}  // namespace matkern::avx2
