// AVX2 butterflies for one contiguous row. The first three (float) or two (double) stages run
// inside one register by lane permutes; the rest pair whole registers, two stages per pass
// (radix 4) to halve the trips through memory. Rows longer than kBlock are done block by block
// first, so that the early stages stay in L1/L2.
#include <immintrin.h>

#include "avx2_transpose.hpp"
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

// Butterflies between whole vectors z[j] (8 rows side by side), stages h = from.. < to.
void vec_stages(__m256* z, int64_t len, int64_t from, int64_t to) {
  int64_t h = from;
  for (; h * 4 <= to; h *= 4)
    for (int64_t j = 0; j < len; j += 4 * h) {
      __m256* a = z + j;
      for (int64_t i = 0; i < h; ++i) {
        __m256 x0 = a[i], x1 = a[i + h], x2 = a[i + 2 * h], x3 = a[i + 3 * h];
        __m256 s0 = _mm256_add_ps(x0, x1), d0 = _mm256_sub_ps(x0, x1);
        __m256 s1 = _mm256_add_ps(x2, x3), d1 = _mm256_sub_ps(x2, x3);
        a[i] = _mm256_add_ps(s0, s1);
        a[i + h] = _mm256_add_ps(d0, d1);
        a[i + 2 * h] = _mm256_sub_ps(s0, s1);
        a[i + 3 * h] = _mm256_sub_ps(d0, d1);
      }
    }
  if (h < to)
    for (int64_t j = 0; j < len; j += 2 * h)
      for (int64_t i = j; i < j + h; ++i) {
        __m256 x0 = z[i], x1 = z[i + h];
        z[i] = _mm256_add_ps(x0, x1);
        z[i + h] = _mm256_sub_ps(x0, x1);
      }
}

}  // namespace

void fjlt_block8(const float* x, int64_t d, int rows, int64_t dpad, const float* signs,
                 const int64_t* indptr, const int32_t* indices, const float* pdata, int64_t k,
                 float scale, float* zt, float* ot, float* out) {
  __m256* z = reinterpret_cast<__m256*>(zt);  // zt is 32-byte aligned, dpad * 8 floats
  // Sign-flip and transpose: z[j] holds feature j of the (up to) 8 rows.
  int64_t j = 0;
  if (rows == 8) {
    for (; j + 8 <= d; j += 8) {
      __m256 r[8];
      for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(x + q * d + j);
      transpose8x8(r);
      for (int q = 0; q < 8; ++q) z[j + q] = _mm256_mul_ps(r[q], _mm256_set1_ps(signs[j + q]));
    }
  }
  for (; j < d; ++j) {
    alignas(32) float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int q = 0; q < rows; ++q) v[q] = x[q * d + j] * signs[j];
    z[j] = _mm256_load_ps(v);
  }
  for (; j < dpad; ++j) z[j] = _mm256_setzero_ps();
  // FWHT along j on whole vectors, the first stages block by block (32 KiB) for the cache.
  const int64_t blk = dpad < 1024 ? dpad : 1024;
  for (int64_t b = 0; b < dpad; b += blk) vec_stages(z + b, blk, 1, blk);
  if (blk < dpad) vec_stages(z, dpad, blk, dpad);
  // Sparse projection: one vector load and FMA per nonzero of P serves all 8 rows.
  __m256* o = reinterpret_cast<__m256*>(ot);
  const __m256 sc = _mm256_set1_ps(scale);
  for (int64_t i = 0; i < k; ++i) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t p = indptr[i];
    const int64_t e = indptr[i + 1];
    for (; p + 1 < e; p += 2) {
      a0 = _mm256_fmadd_ps(_mm256_set1_ps(pdata[p]), z[indices[p]], a0);
      a1 = _mm256_fmadd_ps(_mm256_set1_ps(pdata[p + 1]), z[indices[p + 1]], a1);
    }
    if (p < e) a0 = _mm256_fmadd_ps(_mm256_set1_ps(pdata[p]), z[indices[p]], a0);
    o[i] = _mm256_mul_ps(_mm256_add_ps(a0, a1), sc);
  }
  // Transpose back into the rows of out (k per row).
  int64_t i = 0;
  if (rows == 8) {
    for (; i + 8 <= k; i += 8) {
      __m256 r[8];
      for (int q = 0; q < 8; ++q) r[q] = o[i + q];
      transpose8x8(r);
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(out + q * k + i, r[q]);
    }
  }
  for (; i < k; ++i)
    for (int q = 0; q < rows; ++q) out[q * k + i] = ot[i * 8 + q];
}

void fwht_row(float* x, int64_t n) { row(x, n); }
void fwht_row(double* x, int64_t n) { row(x, n); }

namespace {
#include "hadamard_strided.inc"
}  // namespace
void fwht_strided(float* x, int64_t n, int64_t inner, int64_t c0, int64_t c1) {
  strided_slice(x, n, inner, c0, c1);
}
void fwht_strided(double* x, int64_t n, int64_t inner, int64_t c0, int64_t c1) {
  strided_slice(x, n, inner, c0, c1);
}

#include "hadamard_mixed.inc"

namespace {

// Stage 1 of the m * 2^k transform, register tiled like a GEMM micro-kernel: 4 blocks x 16
// outputs (8 accumulators) per pass over j, each pair of column loads of ht shared by the 4
// blocks (one broadcast of x[b][j] each). Outputs go to tmp (4 x mp) and back to x once the
// 4 blocks are done, since every output of a block reads all of its inputs.
void dense_blocks_f32(float* x, int64_t m, int64_t p, const float* ht, int64_t mp, float* tmp) {
  int64_t b = 0;
  for (; b + 4 <= p; b += 4) {
    const float* x0 = x + b * m;
    int64_t c = 0;
    for (; c + 16 <= mp; c += 16) {
      __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
             a30 = a00, a31 = a00;
      for (int64_t j = 0; j < m; ++j) {
        const __m256 h0 = _mm256_loadu_ps(ht + j * mp + c);
        const __m256 h1 = _mm256_loadu_ps(ht + j * mp + c + 8);
        __m256 v = _mm256_broadcast_ss(x0 + j);
        a00 = _mm256_fmadd_ps(v, h0, a00);
        a01 = _mm256_fmadd_ps(v, h1, a01);
        v = _mm256_broadcast_ss(x0 + m + j);
        a10 = _mm256_fmadd_ps(v, h0, a10);
        a11 = _mm256_fmadd_ps(v, h1, a11);
        v = _mm256_broadcast_ss(x0 + 2 * m + j);
        a20 = _mm256_fmadd_ps(v, h0, a20);
        a21 = _mm256_fmadd_ps(v, h1, a21);
        v = _mm256_broadcast_ss(x0 + 3 * m + j);
        a30 = _mm256_fmadd_ps(v, h0, a30);
        a31 = _mm256_fmadd_ps(v, h1, a31);
      }
      _mm256_storeu_ps(tmp + c, a00);
      _mm256_storeu_ps(tmp + c + 8, a01);
      _mm256_storeu_ps(tmp + mp + c, a10);
      _mm256_storeu_ps(tmp + mp + c + 8, a11);
      _mm256_storeu_ps(tmp + 2 * mp + c, a20);
      _mm256_storeu_ps(tmp + 2 * mp + c + 8, a21);
      _mm256_storeu_ps(tmp + 3 * mp + c, a30);
      _mm256_storeu_ps(tmp + 3 * mp + c + 8, a31);
    }
    for (; c < mp; c += 8) {  // mp is a multiple of 8
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t j = 0; j < m; ++j) {
        const __m256 h0 = _mm256_loadu_ps(ht + j * mp + c);
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + j), h0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + m + j), h0, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + 2 * m + j), h0, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + 3 * m + j), h0, a3);
      }
      _mm256_storeu_ps(tmp + c, a0);
      _mm256_storeu_ps(tmp + mp + c, a1);
      _mm256_storeu_ps(tmp + 2 * mp + c, a2);
      _mm256_storeu_ps(tmp + 3 * mp + c, a3);
    }
    for (int k = 0; k < 4; ++k)
      for (int64_t i = 0; i < m; ++i) x[(b + k) * m + i] = tmp[k * mp + i];
  }
  if (b < p) dense_blocks<float>(x + b * m, m, p - b, ht, mp, tmp);  // p < 4 blocks left
}

}  // namespace

void mixed_row_f32(float* x, int64_t m, int64_t p, const float* ht, int64_t mp, float* tmp,
                   float scale) {
  dense_blocks_f32(x, m, p, ht, mp, tmp);
  butterflies<float>(x, m, p, scale);
}

void mixed_row_f64(double* x, int64_t m, int64_t p, const double* ht, int64_t mp, double* tmp,
                   double scale) {
  dense_blocks<double>(x, m, p, ht, mp, tmp);
  butterflies<double>(x, m, p, scale);
}

}  // namespace avx2
}  // namespace matkern
