// AVX2/FMA kernels of the LUT matmul. Codes become floats in registers, with no memory
// lookups. 4-bit: the 16-float table is held as four byte planes, each looked up for 32 codes
// at once with vpshufb, and the planes are interleaved back into floats (lookup4). 2- and
// 3-bit: the table lives in two ymm registers and each group of 8 codes is expanded with
// vpermps (which reads the low 3 bits of each 32-bit lane), for 3 bits from both halves and a
// blend on the code's top bit, which a variable left shift moved into the lane's sign bit.
#include <immintrin.h>

#include "avx2_transpose.hpp"
#include "lut.hpp"

namespace matkern {
namespace avx2 {
namespace {

struct Table {
  __m256 lo, hi;   // 3-bit: entries 0-3 twice and 4-7 twice; 2-bit: 0-3 twice
  __m256i p[4];    // 4-bit: byte plane j = byte j of entries 0-15, in both 128-bit lanes
  bool hi_only;    // 4-bit: every entry has zero low 16 bits (bfloat16-exact: int, fp4 tables)
};

inline Table load_table(const float* t, int bits) {
  Table r;
  r.hi_only = false;
  if (bits == 4) {
    uint32_t low = 0;
    for (int i = 0; i < 16; ++i) {
      uint32_t u;
      __builtin_memcpy(&u, t + i, 4);
      low |= u & 0xFFFFu;
    }
    r.hi_only = low == 0;
    // 4x4 byte transposes inside each group of four floats, then a 4x4 dword transpose.
    const __m128i sh = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m128i c[4];
    for (int i = 0; i < 4; ++i)
      c[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 4 * i)), sh);
    const __m128i t0 = _mm_unpacklo_epi32(c[0], c[1]), t1 = _mm_unpacklo_epi32(c[2], c[3]);
    const __m128i t2 = _mm_unpackhi_epi32(c[0], c[1]), t3 = _mm_unpackhi_epi32(c[2], c[3]);
    r.p[0] = _mm256_broadcastsi128_si256(_mm_unpacklo_epi64(t0, t1));
    r.p[1] = _mm256_broadcastsi128_si256(_mm_unpackhi_epi64(t0, t1));
    r.p[2] = _mm256_broadcastsi128_si256(_mm_unpacklo_epi64(t2, t3));
    r.p[3] = _mm256_broadcastsi128_si256(_mm_unpackhi_epi64(t2, t3));
  } else {
    const __m128 a = _mm_loadu_ps(t);
    r.lo = _mm256_set_m128(a, a);
    const __m128 b = bits == 3 ? _mm_loadu_ps(t + 4) : a;
    r.hi = _mm256_set_m128(b, b);
  }
  return r;
}

// Index bytes of a 4-bit block: from a pair of blocks (one 32-byte load; the odd block's
// indices are the high nibbles), or a lone last block (16 bytes, lane 1 from the high nibbles).
inline __m256i pair_index(__m256i raw, int odd) {
  const __m256i m = _mm256_set1_epi8(15);
  return _mm256_and_si256(odd ? _mm256_srli_epi16(raw, 4) : raw, m);
}

inline __m256i block_index4(const uint32_t* row, int64_t j, int64_t nblocks) {
  if ((j | 1) < nblocks) {
    const uint32_t* w = row + (j & ~int64_t(1)) * 4;
    return pair_index(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)), int(j & 1));
  }
  const __m128i lone = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j * 4));
  const __m256i raw = _mm256_broadcastsi128_si256(lone);
  return _mm256_and_si256(_mm256_blend_epi32(raw, _mm256_srli_epi16(raw, 4), 0xF0),
                          _mm256_set1_epi8(15));
}

// 32 index bytes (4-bit codes) as four vectors of 8 unscaled table values: vpshufb looks up
// each byte plane of the table; unpacking bytes then 16-bit pairs rebuilds the floats, in the
// code order of the CPU layout (see _lut_layout.CPU_POS).
// HI: the table's low 16 bits are all zero, so only byte planes 2 and 3 are looked up and
// interleaved with zeros (two shuffles and two unpacks fewer per 32 codes).
template <bool HI>
inline void lookup4(__m256i idx, const Table& t, __m256 (&v)[4]) {
  const __m256i b2 = _mm256_shuffle_epi8(t.p[2], idx), b3 = _mm256_shuffle_epi8(t.p[3], idx);
  const __m256i h0 = _mm256_unpacklo_epi8(b2, b3), h1 = _mm256_unpackhi_epi8(b2, b3);
  __m256i l0, l1;
  if constexpr (HI) {
    l0 = l1 = _mm256_setzero_si256();
  } else {
    const __m256i b0 = _mm256_shuffle_epi8(t.p[0], idx), b1 = _mm256_shuffle_epi8(t.p[1], idx);
    l0 = _mm256_unpacklo_epi8(b0, b1);
    l1 = _mm256_unpackhi_epi8(b0, b1);
  }
  v[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(l0, h0));
  v[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(l0, h0));
  v[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(l1, h1));
  v[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(l1, h1));
}

// Block j of a row (nblocks blocks) as four vectors of 8 unscaled table values.
template <int BITS, bool HI = false>
inline void decode_block(const uint32_t* row, int64_t j, int64_t nblocks, const Table& t,
                         __m256 (&v)[4]) {
  if constexpr (BITS == 4) {
    lookup4<HI>(block_index4(row, j, nblocks), t, v);
  } else {
    const uint32_t* w = row + j * BITS;
    const __m256i s0 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i s1 = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
    const __m256i b0 = _mm256_set1_epi32(int(w[0])), b1 = _mm256_set1_epi32(int(w[1]));
    const __m256i idx[4] = {_mm256_srlv_epi32(b0, s0), _mm256_srlv_epi32(b0, s1),
                            _mm256_srlv_epi32(b1, s0), _mm256_srlv_epi32(b1, s1)};
    if constexpr (BITS == 2) {
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) v[q] = _mm256_permutevar8x32_ps(t.lo, idx[q]);
    } else {
      // third bits: bit i of w[2] to the sign bit of lane i % 8 of vector i / 8
      const __m256i sl = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
      const __m256i h = _mm256_set1_epi32(int(w[2]));
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m256i sh = _mm256_sub_epi32(sl, _mm256_set1_epi32(8 * q));
        const __m256 m = _mm256_castsi256_ps(_mm256_sllv_epi32(h, sh));
        v[q] = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.lo, idx[q]),
                                _mm256_permutevar8x32_ps(t.hi, idx[q]), m);
      }
    }
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Groups of gs columns in a row of nblocks blocks of 32: ceil(nblocks * 32 / gs) groups, of
// gs / 32 blocks except a partial last one.
inline int64_t group_count(int64_t nblocks, int gs) { return (nblocks * 32 + gs - 1) / gs; }
inline int group_blocks(int64_t nblocks, int gs, int64_t g) {
  const int64_t per = gs / 32, j0 = g * per;
  return int(nblocks - j0 < per ? nblocks - j0 : per);
}

// f(b, v) for each block b < nb of a group starting at block j0 of a row (nblocks blocks in
// all), v its decoded values. Whole 4-bit pairs share one load, and the codes 2 KiB ahead
// (the next row at K = 4096) are prefetched: 7-10% faster on a weight past L2.
template <int BITS, bool HI, class F>
inline void for_group_blocks(const uint32_t* row, int64_t j0, int nb, int64_t nblocks,
                             const Table& t, F&& f) {
  __m256 v[4];
  if (BITS == 4 && nb % 2 == 0 && j0 % 2 == 0) {
    const uint32_t* wg = row + j0 * 4;
    for (int b = 0; b < nb; b += 2) {
      __builtin_prefetch(wg + 4 * b + 512, 0, 3);
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + 4 * b));
      lookup4<HI>(pair_index(raw, 0), t, v);
      f(b, v);
      lookup4<HI>(pair_index(raw, 1), t, v);
      f(b + 1, v);
    }
  } else {
    for (int b = 0; b < nb; ++b) {
      decode_block<BITS, HI>(row, j0 + b, nblocks, t, v);
      f(b, v);
    }
  }
}

template <int BITS, bool HI = false>
float gemv_row_t(const float* x, const uint32_t* words, const float* scales, const Table& t, int gs,
                 int64_t K) {
  __m256 acc = _mm256_setzero_ps();
  const int64_t nblocks = K / 32, ngroups = group_count(nblocks, gs);
  for (int64_t g = 0; g < ngroups; ++g) {
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    const float* xg = x + g * gs;
    const int nb = group_blocks(nblocks, gs, g);
    for_group_blocks<BITS, HI>(words, g * (gs / 32), nb, nblocks, t,
                               [&](int b, const __m256(&v)[4]) {
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q)
        a[q] = _mm256_fmadd_ps(_mm256_loadu_ps(xg + 32 * b + 8 * q), v[q], a[q]);
    });
    const __m256 s = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(scales[g]), s, acc);
  }
  return hsum(acc);
}

template <int BITS, bool HI = false>
void decode_rows_t(const uint32_t* words, int64_t wpr, const float* scales, int64_t ngroups,
                   const Table& t, int gs, int64_t g, int64_t ng, int nrows, float* buf,
                   int64_t ldb) {
  const int64_t nblocks = wpr / BITS;
  for (int r = 0; r < nrows; ++r)
    for (int64_t gg = g; gg < g + ng; ++gg) {
      const __m256 s = _mm256_set1_ps(scales[r * ngroups + gg]);
      float* o = buf + r * ldb + (gg - g) * gs;
      const int nb = group_blocks(nblocks, gs, gg);
      for_group_blocks<BITS, HI>(words + r * wpr, gg * (gs / 32), nb, nblocks, t,
                                 [&](int b, const __m256(&v)[4]) {
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) _mm256_storeu_ps(o + 32 * b + 8 * q, _mm256_mul_ps(v[q], s));
      });
    }
}

template <int MR>
void tile_t(const float* x, int64_t ldx, const float* buf, int64_t ldb, int len, float* part) {
  __m256 acc[MR][4];
#pragma GCC unroll 3
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) acc[i][r] = _mm256_loadu_ps(part + (i * 4 + r) * 8);
  for (int k = 0; k < len; k += 8) {
    __m256 w[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) w[r] = _mm256_loadu_ps(buf + r * ldb + k);
#pragma GCC unroll 3
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) acc[i][r] = _mm256_fmadd_ps(xv, w[r], acc[i][r]);
    }
  }
#pragma GCC unroll 3
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) _mm256_storeu_ps(part + (i * 4 + r) * 8, acc[i][r]);
}

// c[i][0:16] += sum over k of x[i * ldx + k] * bt[k][0:16] for i < MR: twelve accumulators at
// MR = 6, two weight loads and MR broadcasts per k.
template <int MR>
void panel_t(const float* x, int64_t ldx, const float* bt, int len, float* c) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = _mm256_loadu_ps(c + i * 16);
    acc[i][1] = _mm256_loadu_ps(c + i * 16 + 8);
  }
#pragma GCC unroll 2
  for (int k = 0; k < len; ++k) {
    const __m256 b0 = _mm256_loadu_ps(bt + k * 16), b1 = _mm256_loadu_ps(bt + k * 16 + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(x + i * ldx + k);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(c + i * 16, acc[i][0]);
    _mm256_storeu_ps(c + i * 16 + 8, acc[i][1]);
  }
}

// dst[j * ld_dst + i] = src[i * ld_src + j] for an 8 x 8 block.
inline void transpose8(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
  transpose8x8(r);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * ld_dst, r[i]);
}

}  // namespace

void transpose16(const float* buf, int64_t ldb, int len, float* bt) {
  for (int k = 0; k < len; k += 8) {
    transpose8(buf + k, ldb, bt + k * 16, 16);
    transpose8(buf + 8 * ldb + k, ldb, bt + k * 16 + 8, 16);
  }
}

void panel_product(const float* x, int64_t ldx, int mr, const float* bt, int len, float* c) {
  switch (mr) {
    case 6: return panel_t<6>(x, ldx, bt, len, c);
    case 5: return panel_t<5>(x, ldx, bt, len, c);
    case 4: return panel_t<4>(x, ldx, bt, len, c);
    case 3: return panel_t<3>(x, ldx, bt, len, c);
    case 2: return panel_t<2>(x, ldx, bt, len, c);
    default: return panel_t<1>(x, ldx, bt, len, c);
  }
}

void gemv_rows(const float* x, const uint32_t* words, const float* scales, const float* table,
               int bits, int gs, int64_t K, int64_t nrows, const float* bias, float* out) {
  const Table t = load_table(table, bits);
  const int64_t wpr = K / 32 * bits, ngroups = group_count(K / 32, gs);
  for (int64_t r = 0; r < nrows; ++r) {
    const uint32_t* w = words + r * wpr;
    const float* s = scales + r * ngroups;
    const float y = bits == 4   ? (t.hi_only ? gemv_row_t<4, true>(x, w, s, t, gs, K)
                                             : gemv_row_t<4>(x, w, s, t, gs, K))
                    : bits == 3 ? gemv_row_t<3>(x, w, s, t, gs, K)
                                : gemv_row_t<2>(x, w, s, t, gs, K);
    out[r] = bias ? y + bias[r] : y;
  }
}

void decode_rows(const uint32_t* words, int64_t wpr, const float* scales, int64_t ngroups,
                 const float* table, int bits, int gs, int64_t g, int64_t ng, int nrows, float* buf,
                 int64_t ldb) {
  const Table t = load_table(table, bits);
  if (bits == 4 && t.hi_only)
    return decode_rows_t<4, true>(words, wpr, scales, ngroups, t, gs, g, ng, nrows, buf, ldb);
  if (bits == 4)
    return decode_rows_t<4>(words, wpr, scales, ngroups, t, gs, g, ng, nrows, buf, ldb);
  if (bits == 3)
    return decode_rows_t<3>(words, wpr, scales, ngroups, t, gs, g, ng, nrows, buf, ldb);
  return decode_rows_t<2>(words, wpr, scales, ngroups, t, gs, g, ng, nrows, buf, ldb);
}

void tile_product(const float* x, int64_t ldx, int mr, const float* buf, int64_t ldb, int len,
                  float* part) {
  if (mr == 3) return tile_t<3>(x, ldx, buf, ldb, len, part);
  if (mr == 2) return tile_t<2>(x, ldx, buf, ldb, len, part);
  return tile_t<1>(x, ldx, buf, ldb, len, part);
}

}  // namespace avx2
}  // namespace matkern
