// AVX-512 kernels of the 4-bit LUT matmul. The 16-float table fills one zmm register, so a
// code becomes its float with one vpermps (which reads the low 4 bits of each 32-bit lane):
// no byte planes (the AVX2 kernels' four vpshufb and eight unpacks per 32 codes).
// GEMV: a row's codes in order, 64 a step, against X permuted once to the codes' order, with
// the group's scale folded into the table (one multiply per group).
// GEMM: the code words of 16 rows are transposed 16 x 16 as dwords, after which lane r of
// word d holds row r's codes at eight known columns; a shift and a vpermps give 16 rows'
// weights of one column: the operand of an outer-product register tile (a column of W
// across 32 rows times a broadcast element of X), scaled once per unit of 128 columns.
// AVX-512 F only (vpermps, vpsrlvd, FMA).
#include <immintrin.h>

#include "lut.hpp"

namespace matkern::avx512 {
namespace {

// Column (within a 128-column unit) of nibble j of code word d (d < 16; _lut_layout.CPU_POS):
// word d of pair d / 8 holds index bytes 4p..4p+3 (p = d % 8) of the pair's even block in its
// low nibbles and of its odd block in its high nibbles; index byte q of a block is code
// 8q' + e of it, q = 4q' + e for e < 4 (q < 16) and q = 16 + 4q' + (e - 4) otherwise.
constexpr int unit_col(int d, int j) {
  const int pr = d >> 3, p = d & 7, b = j >> 1;
  return 64 * pr + 32 * (j & 1) + (p < 4 ? 8 * p + b : 8 * (p - 4) + 4 + b);
}

// Column of nibble j of word d (d < 4) of a row's lone last block (K % 64 == 32): its 16 bytes
// hold index bytes 0-15 in their low nibbles and 16-31 in their high ones, so nibble j is
// index byte 16 (j & 1) + 4d + j / 2, the block's code 8d + 4 (j & 1) + j / 2.
constexpr int lone_col(int d, int j) { return 8 * d + 4 * (j & 1) + (j >> 1); }

// r[d] = word d of the 16 rows (lane = row) from r[row] = the row's 16 words.
inline void transpose16x16(__m512i (&r)[16]) {
  __m512i a[16], b[16];
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    b[4 * i + 0] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
    b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
  }
  // b[4q + c], 128-bit lane l: rows 4q..4q+3 of word 4l + c; a 4 x 4 transpose of lanes
  for (int c = 0; c < 4; ++c) {
    const __m512i e0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x44);
    const __m512i e1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xEE);
    const __m512i e2 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x44);
    const __m512i e3 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xEE);
    r[c] = _mm512_shuffle_i32x4(e0, e2, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(e0, e2, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(e1, e3, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(e1, e3, 0xDD);
  }
}

// Code words read ahead by the panel decode (two units): its 32 rows are 32 streams, more
// than the hardware prefetchers follow, and the decode alone had taken 1.5x as long.
constexpr int kDecodeAhead = 32;

// Bytes of a row's codes read ahead by the GEMV: at 11008 x 4096 (22 MiB of codes) the
// hardware prefetcher alone left it 0.8-0.98x torch's int4pack kernel, 1.2-1.4x with this.
constexpr int kGemvAhead = 1024;

// 64 codes (a pair of blocks, 32 bytes at w) of a row times xq[0:64], into four accumulators.
// Each 128-bit lane gets the same 16 code bytes and keeps byte l of each dword (lane l), or
// its high nibble: dword 4l + j looks up byte 4j + l. The shifts run beside vpermps's port.
inline void gemv_pair(const uint8_t* w, const float* xq, __m512 ts, __m512i sh_lo, __m512i sh_hi,
                      __m512& a0, __m512& a1, __m512& a2, __m512& a3) {
  const __m512i c0 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  const __m512i c1 =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)));
  a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(c0, sh_lo), ts), _mm512_loadu_ps(xq),
                       a0);
  a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(c0, sh_hi), ts),
                       _mm512_loadu_ps(xq + 16), a1);
  a2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(c1, sh_lo), ts),
                       _mm512_loadu_ps(xq + 32), a2);
  a3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(c1, sh_hi), ts),
                       _mm512_loadu_ps(xq + 48), a3);
}

// c[i][0:32] += s * (sum over k < len of x[k * MR + i] * bt[k][0:32]): 24 accumulators at
// MR = 12, two loads of weights and MR broadcasts per column.
template <int MR>
void panel_t(const float* x, const float* bt, int len, const float* s, float* c) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int k = 0; k < len; ++k) {
    const __m512 b0 = _mm512_loadu_ps(bt + k * 32), b1 = _mm512_loadu_ps(bt + k * 32 + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(x[k * MR + i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  const __m512 s0 = _mm512_loadu_ps(s), s1 = _mm512_loadu_ps(s + 16);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(c + i * 32, _mm512_fmadd_ps(acc[i][0], s0, _mm512_loadu_ps(c + i * 32)));
    _mm512_storeu_ps(c + i * 32 + 16,
                     _mm512_fmadd_ps(acc[i][1], s1, _mm512_loadu_ps(c + i * 32 + 16)));
  }
}

}  // namespace

void lut4_gemv(const float* xq, const uint32_t* rows, int64_t wpr, const float* scales,
               int64_t ngroups, const float* table, int gs, int64_t K, int nrows, float* out) {
  const __m512 t = _mm512_loadu_ps(table);
  const __m512i sh_lo = _mm512_setr_epi32(0, 0, 0, 0, 8, 8, 8, 8, 16, 16, 16, 16, 24, 24, 24, 24);
  const __m512i sh_hi = _mm512_add_epi32(sh_lo, _mm512_set1_epi32(4));
  // one group per row may have gs % 64 == 32: all its pairs are then in group 0
  const int64_t npairs = K / 64, ppg = ngroups == 1 ? npairs : gs / 64;
  for (int r = 0; r < nrows; ++r) {
    const uint8_t* w = reinterpret_cast<const uint8_t*>(rows + r * wpr);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t g = 0; g < ngroups; ++g) {
      // the group's table scaled: the dequantized weights exactly (table[c] * scale in float)
      const __m512 ts = _mm512_mul_ps(t, _mm512_set1_ps(scales[r * ngroups + g]));
      const int64_t p1 = (g + 1) * ppg < npairs ? (g + 1) * ppg : npairs;
      for (int64_t p = g * ppg; p < p1; ++p) {
        _mm_prefetch(reinterpret_cast<const char*>(w + 32 * p + kGemvAhead), _MM_HINT_T0);
        gemv_pair(w + 32 * p, xq + 64 * p, ts, sh_lo, sh_hi, a0, a1, a2, a3);
      }
    }
    if (K % 64) {  // the lone last block (in the last group): xq's last 32 are its order
      const __m512 ts = _mm512_mul_ps(t, _mm512_set1_ps(scales[r * ngroups + ngroups - 1]));
      const __m512i c0 = _mm512_broadcast_i32x4(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 32 * npairs)));
      a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(c0, sh_lo), ts),
                           _mm512_loadu_ps(xq + 64 * npairs), a0);
      a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(c0, sh_hi), ts),
                           _mm512_loadu_ps(xq + 64 * npairs + 16), a1);
    }
    out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
}

void lut4_decode_panel(const uint32_t* rows, int64_t wpr, const float* table, int64_t k0, int len,
                       int nrows, float* bt) {
  const __m512 t = _mm512_loadu_ps(table);
  // a unit's words: 4 per 32 columns (len 32 or 96 end in the lone last block)
  const __mmask16 m = __mmask16((1u << (len / 8)) - 1);
  for (int h = 0; h < 2; ++h) {
    const int nr = nrows - 16 * h < 16 ? nrows - 16 * h : 16;
    float* o = bt + 16 * h;
    if (nr <= 0) {
      for (int k = 0; k < len; ++k) _mm512_storeu_ps(o + k * 32, _mm512_setzero_ps());
      continue;
    }
    // w[r] = the unit's words of row r, then transposed: w[d] lane r = word d of row r
    __m512i w[16];
    const uint32_t* base = rows + 16 * h * wpr + k0 / 8;
    for (int r = 0; r < 16; ++r) {
      w[r] = r < nr ? _mm512_maskz_loadu_epi32(m, base + r * wpr) : _mm512_setzero_si512();
      _mm_prefetch(reinterpret_cast<const char*>(base + r * wpr + kDecodeAhead), _MM_HINT_T0);
    }
    transpose16x16(w);
    if (len % 64) {  // the row's lone last block: words 8 npr .. 8 npr + 3
      const int npr = len / 64;
#pragma GCC unroll 4
      for (int d = 0; d < 4; ++d) {
        const __m512i v = w[8 * npr + d];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j)
          _mm512_storeu_ps(o + (64 * npr + lone_col(d, j)) * 32,
                           _mm512_permutexvar_ps(j ? _mm512_srli_epi32(v, 4 * j) : v, t));
      }
    }
    for (int pr = 0; pr < len / 64; ++pr) {
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) {
        const __m512i v = w[8 * pr + p];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j)
          _mm512_storeu_ps(o + unit_col(8 * pr + p, j) * 32,
                           _mm512_permutexvar_ps(j ? _mm512_srli_epi32(v, 4 * j) : v, t));
      }
    }
  }
}

void lut4_panel_product(const float* x, int mr, const float* bt, int len, const float* s,
                        float* c) {
  switch (mr) {
    case 12: return panel_t<12>(x, bt, len, s, c);
    case 11: return panel_t<11>(x, bt, len, s, c);
    case 10: return panel_t<10>(x, bt, len, s, c);
    case 9: return panel_t<9>(x, bt, len, s, c);
    case 8: return panel_t<8>(x, bt, len, s, c);
    case 7: return panel_t<7>(x, bt, len, s, c);
    case 6: return panel_t<6>(x, bt, len, s, c);
    case 5: return panel_t<5>(x, bt, len, s, c);
    case 4: return panel_t<4>(x, bt, len, s, c);
    case 3: return panel_t<3>(x, bt, len, s, c);
    case 2: return panel_t<2>(x, bt, len, s, c);
    default: return panel_t<1>(x, bt, len, s, c);
  }
}

}  // namespace matkern::avx512
