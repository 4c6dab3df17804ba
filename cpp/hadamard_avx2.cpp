// AVX2 butterflies for one contiguous row. The first three (float) or two (double) stages run
// inside one register by lane permutes; the rest pair whole registers, two stages per pass
// (radix 4) to halve the trips through memory. Rows longer than kBlock are done block by block
// first, so that the early stages stay in L1/L2.
#include <immintrin.h>

#include "hadamard.hpp"

namespace matkern {
namespace avx2 {
namespace {

constexpr int64_t kBlock = 1 << 13;

inline __m256 inreg_f32(__m256 v) {
  __m256 p = _mm256_permute_ps(v, 0xB1);  // swap neighbours: stage h = 1
  v = _mm256_blend_ps(_mm256_add_ps(v, p), _mm256_sub_ps(p, v), 0xAA);
  p = _mm256_permute_ps(v, 0x4E);  // swap pairs: stage h = 2
  v = _mm256_blend_ps(_mm256_add_ps(v, p), _mm256_sub_ps(p, v), 0xCC);
  p = _mm256_permute2f128_ps(v, v, 1);  // swap halves: stage h = 4
  return _mm256_blend_ps(_mm256_add_ps(v, p), _mm256_sub_ps(p, v), 0xF0);
}

inline __m256d inreg_f64(__m256d v) {
  __m256d p = _mm256_permute_pd(v, 0x5);
  v = _mm256_blend_pd(_mm256_add_pd(v, p), _mm256_sub_pd(p, v), 0xA);
  p = _mm256_permute2f128_pd(v, v, 1);
  return _mm256_blend_pd(_mm256_add_pd(v, p), _mm256_sub_pd(p, v), 0xC);
}

template <typename T>
struct V;
template <>
struct V<float> {
  using R = __m256;
  static constexpr int64_t W = 8;
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R inreg(R v) { return inreg_f32(v); }
};
template <>
struct V<double> {
  using R = __m256d;
  static constexpr int64_t W = 4;
  static R load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, R v) { _mm256_storeu_pd(p, v); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R sub(R a, R b) { return _mm256_sub_pd(a, b); }
  static R inreg(R v) { return inreg_f64(v); }
};

// Stages h = from, 2*from, ... < to on x[0, len), len a multiple of 2*to/... (powers of two).
template <typename T>
void stages(T* x, int64_t len, int64_t from, int64_t to) {
  using O = V<T>;
  int64_t h = from;
  for (; h * 4 <= to; h *= 4) {
    for (int64_t j = 0; j < len; j += 4 * h) {
      T* a = x + j;
      for (int64_t i = 0; i < h; i += O::W) {
        auto x0 = O::load(a + i), x1 = O::load(a + i + h);
        auto x2 = O::load(a + i + 2 * h), x3 = O::load(a + i + 3 * h);
        auto s0 = O::add(x0, x1), d0 = O::sub(x0, x1);
        auto s1 = O::add(x2, x3), d1 = O::sub(x2, x3);
        O::store(a + i, O::add(s0, s1));
        O::store(a + i + h, O::add(d0, d1));
        O::store(a + i + 2 * h, O::sub(s0, s1));
        O::store(a + i + 3 * h, O::sub(d0, d1));
      }
    }
  }
  if (h < to) {  // one radix-2 stage left
    for (int64_t j = 0; j < len; j += 2 * h) {
      T* a = x + j;
      for (int64_t i = 0; i < h; i += O::W) {
        auto x0 = O::load(a + i), x1 = O::load(a + i + h);
        O::store(a + i, O::add(x0, x1));
        O::store(a + i + h, O::sub(x0, x1));
      }
    }
  }
}

template <typename T>
void scalar_row(T* x, int64_t n) {
  for (int64_t h = 1; h < n; h *= 2)
    for (int64_t j = 0; j < n; j += 2 * h)
      for (int64_t i = j; i < j + h; ++i) {
        T a = x[i], b = x[i + h];
        x[i] = a + b;
        x[i + h] = a - b;
      }
}

template <typename T>
void row(T* x, int64_t n) {
  using O = V<T>;
  if (n < O::W) return scalar_row(x, n);
  const int64_t blk = n < kBlock ? n : kBlock;
  for (int64_t b = 0; b < n; b += blk) {
    T* xb = x + b;
    for (int64_t i = 0; i < blk; i += O::W) O::store(xb + i, O::inreg(O::load(xb + i)));
    stages(xb, blk, O::W, blk);
  }
  if (blk < n) stages(x, n, blk, n);
}

}  // namespace

void fwht_row(float* x, int64_t n) { row(x, n); }
void fwht_row(double* x, int64_t n) { row(x, n); }

}  // namespace avx2
}  // namespace matkern
