// AVX-512 m * 2^k transform of 16 rows at once (hadamard.hpp, avx512::mixed_rows16). The rows
// are transposed into a scratch of n vectors (vector e holds element e of the 16 rows), so the
// whole transform is vertical adds and multiply-adds with no lane shuffles between the two
// transposes; at n = 384 the scratch is 24 KiB and stays in L1.
//
// Every value is computed by the same operations in the same order as the row kernels
// (hadamard_mixed.inc, the AVX2 dense_blocks_f32): the H_m stage as
// acc = 0, acc = fma(x_j, H[i][j], acc) for j = 0..m-1 (H[i][j] = +-1: each step is an exact
// product and one rounding, i.e. acc +- x_j), then the Sylvester butterflies h = 1, 2, ..., p/2
// (grouping stages into radix-4/8 passes changes no operation), then the scale. So the results
// equal the row kernels' bit for bit and do not depend on how rows fall into groups of 16.
#include <immintrin.h>

#include "avx512_transpose.hpp"
#include "hadamard.hpp"

namespace matkern {
namespace avx512 {
namespace {

inline __mmask16 first_lanes(int64_t k) {
  return k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k > 0 ? k : 0)) - 1u);
}

// dst[i0 .. i0 + T) = H_m rows i0.. applied to the block zb (m vectors): T independent chains
// of m multiply-adds by +-1, j in order (as the row kernels).
template <int T>
inline void hm_tile(const __m512* zb, int64_t m, const float* ht, int64_t mp, int64_t i0,
                    __m512* dst) {
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t j = 0; j < m; ++j) {
    const __m512 v = zb[j];
    const float* h = ht + j * mp + i0;
    for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(h[t]), acc[t]);
  }
  for (int t = 0; t < T; ++t) dst[i0 + t] = acc[t];
}

// H_m of one block (m a multiple of 4) into dst (m vectors).
inline void hm_block(const __m512* zb, int64_t m, const float* ht, int64_t mp, __m512* dst) {
  int64_t i = 0;
  for (; i + 16 <= m; i += 16) hm_tile<16>(zb, m, ht, mp, i, dst);
  switch (m - i) {
    case 12: hm_tile<12>(zb, m, ht, mp, i, dst); break;
    case 8: hm_tile<8>(zb, m, ht, mp, i, dst); break;
    case 4: hm_tile<4>(zb, m, ht, mp, i, dst); break;
    default: break;
  }
}

// Butterfly stages h = from, 2 from, ... < p between blocks of m vectors (blocks j, j + h).
void butterfly_stages(__m512* z, int64_t m, int64_t p, int64_t from) {
  int64_t h = from;
  for (; h * 8 <= p; h *= 8) {  // radix 8: three stages per pass
    const int64_t s = h * m;
    for (int64_t j = 0; j < p; j += 8 * h) {
      __m512* a = z + j * m;
      for (int64_t i = 0; i < s; ++i) {
        __m512 x0 = a[i], x1 = a[i + s], x2 = a[i + 2 * s], x3 = a[i + 3 * s];
        __m512 x4 = a[i + 4 * s], x5 = a[i + 5 * s], x6 = a[i + 6 * s], x7 = a[i + 7 * s];
        __m512 y0 = _mm512_add_ps(x0, x1), y1 = _mm512_sub_ps(x0, x1);
        __m512 y2 = _mm512_add_ps(x2, x3), y3 = _mm512_sub_ps(x2, x3);
        __m512 y4 = _mm512_add_ps(x4, x5), y5 = _mm512_sub_ps(x4, x5);
        __m512 y6 = _mm512_add_ps(x6, x7), y7 = _mm512_sub_ps(x6, x7);
        x0 = _mm512_add_ps(y0, y2), x2 = _mm512_sub_ps(y0, y2);
        x1 = _mm512_add_ps(y1, y3), x3 = _mm512_sub_ps(y1, y3);
        x4 = _mm512_add_ps(y4, y6), x6 = _mm512_sub_ps(y4, y6);
        x5 = _mm512_add_ps(y5, y7), x7 = _mm512_sub_ps(y5, y7);
        a[i] = _mm512_add_ps(x0, x4), a[i + 4 * s] = _mm512_sub_ps(x0, x4);
        a[i + s] = _mm512_add_ps(x1, x5), a[i + 5 * s] = _mm512_sub_ps(x1, x5);
        a[i + 2 * s] = _mm512_add_ps(x2, x6), a[i + 6 * s] = _mm512_sub_ps(x2, x6);
        a[i + 3 * s] = _mm512_add_ps(x3, x7), a[i + 7 * s] = _mm512_sub_ps(x3, x7);
      }
    }
  }
  if (h * 4 <= p) {  // radix 4
    const int64_t s = h * m;
    for (int64_t j = 0; j < p; j += 4 * h) {
      __m512* a = z + j * m;
      for (int64_t i = 0; i < s; ++i) {
        const __m512 x0 = a[i], x1 = a[i + s], x2 = a[i + 2 * s], x3 = a[i + 3 * s];
        const __m512 s0 = _mm512_add_ps(x0, x1), d0 = _mm512_sub_ps(x0, x1);
        const __m512 s1 = _mm512_add_ps(x2, x3), d1 = _mm512_sub_ps(x2, x3);
        a[i] = _mm512_add_ps(s0, s1), a[i + s] = _mm512_add_ps(d0, d1);
        a[i + 2 * s] = _mm512_sub_ps(s0, s1), a[i + 3 * s] = _mm512_sub_ps(d0, d1);
      }
    }
    h *= 4;
  }
  if (h < p) {  // radix 2
    const int64_t s = h * m;
    for (int64_t j = 0; j < p; j += 2 * h) {
      __m512* a = z + j * m;
      for (int64_t i = 0; i < s; ++i) {
        const __m512 x0 = a[i], x1 = a[i + s];
        a[i] = _mm512_add_ps(x0, x1), a[i + s] = _mm512_sub_ps(x0, x1);
      }
    }
  }
}

}  // namespace

int64_t mixed_rows16_scratch(int64_t m, int64_t p) {
  const int64_t n16 = (m * p + 15) / 16 * 16;
  return 16 * (n16 + 4 * m) + 16;  // + 16: room to align to 64 bytes
}

void mixed_rows16(const float* x, int64_t ldx, int64_t d, int rows, const float* signs, int64_t m,
                  int64_t p, const float* ht, int64_t mp, float scale, float* scratch, float* out,
                  int64_t ldo) {
  const int64_t n = m * p;
  const uintptr_t a = reinterpret_cast<uintptr_t>(scratch);
  __m512* z = reinterpret_cast<__m512*>(scratch + ((64 - a % 64) % 64) / sizeof(float));
  __m512* tmp = z + (n + 15) / 16 * 16;
  // 1. Rows in (sign flip, zero padding past d), transposed 16 columns at a time.
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const __mmask16 cm = first_lanes(d - j0);
    const __m512 sg = signs ? _mm512_maskz_loadu_ps(cm, signs + j0) : _mm512_set1_ps(1.0f);
    __m512 r[16];
    for (int i = 0; i < 16; ++i) {
      if (i < rows) {
        const __m512 v = _mm512_maskz_loadu_ps(cm, x + i * ldx + j0);
        r[i] = signs ? _mm512_mul_ps(v, sg) : v;
      } else {
        r[i] = _mm512_setzero_ps();
      }
    }
    transpose16(r);
    for (int c = 0; c < 16; ++c) z[j0 + c] = r[c];
  }
  // 2. H_m on each block into tmp, groups of g blocks, written back through the first
  // log2(g) butterfly stages (h = 1, 2).
  const int64_t g = p >= 4 ? 4 : p;
  for (int64_t b = 0; b < p; b += g) {
    for (int64_t k = 0; k < g; ++k) hm_block(z + (b + k) * m, m, ht, mp, tmp + k * m);
    __m512* o = z + b * m;
    if (g == 4) {
      for (int64_t i = 0; i < m; ++i) {
        const __m512 x0 = tmp[i], x1 = tmp[m + i], x2 = tmp[2 * m + i], x3 = tmp[3 * m + i];
        const __m512 s0 = _mm512_add_ps(x0, x1), d0 = _mm512_sub_ps(x0, x1);
        const __m512 s1 = _mm512_add_ps(x2, x3), d1 = _mm512_sub_ps(x2, x3);
        o[i] = _mm512_add_ps(s0, s1), o[m + i] = _mm512_add_ps(d0, d1);
        o[2 * m + i] = _mm512_sub_ps(s0, s1), o[3 * m + i] = _mm512_sub_ps(d0, d1);
      }
    } else if (g == 2) {
      for (int64_t i = 0; i < m; ++i) {
        const __m512 x0 = tmp[i], x1 = tmp[m + i];
        o[i] = _mm512_add_ps(x0, x1), o[m + i] = _mm512_sub_ps(x0, x1);
      }
    } else {
      for (int64_t i = 0; i < m; ++i) o[i] = tmp[i];
    }
  }
  // 3. The remaining butterflies, between whole vectors.
  butterfly_stages(z, m, p, g);
  // 4. Scaled and transposed back into the rows.
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const __mmask16 cm = first_lanes(n - j0);
    __m512 r[16];
    for (int c = 0; c < 16; ++c) r[c] = scale != 1.0f ? _mm512_mul_ps(z[j0 + c], sc) : z[j0 + c];
    transpose16(r);
    for (int i = 0; i < rows; ++i) _mm512_mask_storeu_ps(out + i * ldo + j0, cm, r[i]);
  }
}

}  // namespace avx512
}  // namespace matkern
