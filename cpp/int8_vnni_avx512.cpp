// AVX-512 VNNI int8 GEMM/GEMV with vpdpbusd (u8 x s8, four products per 32-bit lane: twice
// the multiply-adds of vpdpwssd per instruction, and no widening of the weights).
//
// Activations are stored as u8 = code + 128 (codes in [-128, 127]), so that
//   sum_k (x_k + 128) w_k = sum_k x_k w_k + 128 sum_k w_k,
// and the accumulators start from corr[n] = -128 * sum_k w[n, k] (made when the weight is
// packed): the result is the exact int32 product. vpdpbusd adds without saturation, so all of
// this is arithmetic modulo 2^32, exact wherever the true sum fits int32 (as it always does
// here: |sum| <= 128 * 128 * K < 2^31); corr itself may wrap.
//
// Layout (int8.hpp, Int8VnniGemm): super-panels of 64 output columns; inside one, for each
// quad of inputs (k .. k+3), the 64 columns' four codes (256 bytes, four zmm loads). A tile
// of MR rows x NB panels keeps MR * NB accumulators (6 x 4 = 24 of the 32 zmm registers) and
// per quad loads NB weight vectors and broadcasts MR activation dwords. The epilogue is the
// portable one (int8.cpp) vectorized with the same operations in the same order: the same
// floats on every level.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstring>

#include "int8.hpp"

namespace matkern::avx512 {
namespace {

constexpr int kCols = kInt8VnniCols;   // columns of a super-panel (and of a tile row in acc)
constexpr int kMr = kInt8VnniMr;       // rows per tile
// K block: 256 inputs, 16 KiB of a super-panel, which stays in L1 beside the next block's
// 16 KiB that the row tiles prefetch meanwhile (128 quads, 32 + 32 KiB, overflowed L1's 48).
constexpr int64_t kKcQuads = 64;
// Bytes ahead in the weight stream on its first pass (measured, 1 thread: 15% off M = 16 at
// N = 11008; no loss at M = 1 or 256).
constexpr int64_t kPrefetch = 4096;

// What a tile prefetches besides its work: ahead (the weight it reads itself, kPrefetch bytes
// ahead: the first tile of a task's first K block, whose weight nobody fetched before), and
// lines of another block (the next K block's weight, a share per tile), lpi lines per quad
// for its first quads.
struct Prefetch {
  bool ahead = false;
  const char* next = nullptr;
  int64_t quads = 0;  // quads that prefetch next
  int lpi = 0;
};

// Named accumulators c<row><panel> (GCC kept an array of them in memory, copying every
// accumulator each step); rows and panels beyond MR x NB compile away.
template <int MR, int NB>
void vnni_tile(const uint8_t* x, int64_t ldx, const int8_t* w, int64_t quads, int32_t* acc,
               const int32_t* init, const Prefetch& pf) {
  // clang-format off: statement macros in rows (clang-format reflows them unstably)
#define MK_DECL(i) __m512i c##i##0 = z, c##i##1 = z, c##i##2 = z, c##i##3 = z;
#define MK_ON(i, j, stmt) if constexpr (MR > (i) && NB > (j)) { stmt; }
#define MK_INIT(i, j) MK_ON(i, j, c##i##j = init ? v##j : _mm512_loadu_si512(acc + (i) * kCols + (j) * 16))
#define MK_INIT_ROW(i) MK_INIT(i, 0) MK_INIT(i, 1) MK_INIT(i, 2) MK_INIT(i, 3)
#define MK_DOT(i, j) MK_ON(i, j, c##i##j = _mm512_dpbusd_epi32(c##i##j, a, b##j))
#define MK_ROW(i)                                                              \
  if constexpr (MR > (i)) {                                                    \
    int32_t v;                                                                 \
    std::memcpy(&v, x + (i) * ldx + 4 * q, 4);                                 \
    const __m512i a = _mm512_set1_epi32(v);                                    \
    MK_DOT(i, 0) MK_DOT(i, 1) MK_DOT(i, 2) MK_DOT(i, 3)                        \
  }
#define MK_STORE(i, j) MK_ON(i, j, _mm512_storeu_si512(acc + (i) * kCols + (j) * 16, c##i##j))
#define MK_STORE_ROW(i) MK_STORE(i, 0) MK_STORE(i, 1) MK_STORE(i, 2) MK_STORE(i, 3)
  const __m512i z = _mm512_setzero_si512();
  MK_DECL(0) MK_DECL(1) MK_DECL(2) MK_DECL(3) MK_DECL(4) MK_DECL(5)
  __m512i v0 = z, v1 = z, v2 = z, v3 = z;
  if (init) {
    v0 = _mm512_loadu_si512(init);
    if constexpr (NB > 1) v1 = _mm512_loadu_si512(init + 16);
    if constexpr (NB > 2) v2 = _mm512_loadu_si512(init + 32);
    if constexpr (NB > 3) v3 = _mm512_loadu_si512(init + 48);
  }
  MK_INIT_ROW(0) MK_INIT_ROW(1) MK_INIT_ROW(2) MK_INIT_ROW(3) MK_INIT_ROW(4) MK_INIT_ROW(5)
  for (int64_t q = 0; q < quads; ++q) {
    const int8_t* wq = w + q * NB * 64;
    if (pf.ahead) {  // the weight's first pass (from L3 or memory): fetch well ahead
      const char* pa = reinterpret_cast<const char*>(wq) + kPrefetch;
      for (int j = 0; j < NB; ++j) _mm_prefetch(pa + j * 64, _MM_HINT_T0);
    }
    if (q < pf.quads) {
      for (int j = 0; j < pf.lpi; ++j) _mm_prefetch(pf.next + (q * pf.lpi + j) * 64, _MM_HINT_T0);
    }
    const __m512i b0 = _mm512_loadu_si512(wq);
    const __m512i b1 = NB > 1 ? _mm512_loadu_si512(wq + 64) : z;
    const __m512i b2 = NB > 2 ? _mm512_loadu_si512(wq + 128) : z;
    const __m512i b3 = NB > 3 ? _mm512_loadu_si512(wq + 192) : z;
    MK_ROW(0) MK_ROW(1) MK_ROW(2) MK_ROW(3) MK_ROW(4) MK_ROW(5)
  }
  MK_STORE_ROW(0) MK_STORE_ROW(1) MK_STORE_ROW(2) MK_STORE_ROW(3) MK_STORE_ROW(4) MK_STORE_ROW(5)
#undef MK_DECL
#undef MK_ON
#undef MK_INIT
#undef MK_INIT_ROW
#undef MK_DOT
#undef MK_ROW
#undef MK_STORE
#undef MK_STORE_ROW
  // clang-format on
}

using TileFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, int32_t*, const int32_t*,
                        const Prefetch&);
#define MK_ROW(r) {vnni_tile<r, 1>, vnni_tile<r, 2>, vnni_tile<r, 3>, vnni_tile<r, 4>}
const TileFn kTiles[kMr][4] = {MK_ROW(1), MK_ROW(2), MK_ROW(3), MK_ROW(4), MK_ROW(5), MK_ROW(6)};
#undef MK_ROW

// The portable epilogue (int8.cpp) for mr rows x nc columns of acc (rows kCols apart), eight
// columns at a time: the same double products and float additions, in the same order.
void epilogue(const int32_t* acc, int64_t m0, int mr, int64_t n0, int nc, int64_t n,
              const Int8Epilogue& ep) {
  constexpr double kInv = 1.0 / (127.0 * 127.0);
  for (int i = 0; i < mr; ++i) {
    const int64_t row = m0 + i;
    const int32_t* t = acc + i * kCols;
    if (ep.out_i32) {
      std::memcpy(ep.out_i32 + row * n + n0, t, size_t(nc) * sizeof(int32_t));
      continue;
    }
    const __m512d rs = _mm512_set1_pd(double(ep.row_scale[row]) * kInv);
    float* o = ep.out_f32 + row * n + n0;
    const float* cs = ep.col_scale + n0;
    const float* b = ep.bias ? ep.bias + n0 : nullptr;
    const float* a = ep.addend ? ep.addend + row * n + n0 : nullptr;
    const float* xr = ep.n_out ? ep.xo + row * ep.n_out : nullptr;
    for (int j = 0; j < nc; j += 8) {
      const __mmask8 mk = nc - j >= 8 ? __mmask8(0xff) : __mmask8((1u << (nc - j)) - 1);
      const __m512d td = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(mk, t + j));
      const __m512d cd = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mk, cs + j));
      __m256 v = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(td, rs), cd));
      if (b) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(mk, b + j));
      if (xr) {  // the outlier product, in the portable loop's order
        __m256 e = _mm256_setzero_ps();
        for (int64_t c = 0; c < ep.n_out; ++c) {
          __m256 p = _mm256_mul_ps(_mm256_set1_ps(xr[c]),
                                   _mm256_maskz_loadu_ps(mk, ep.wot + c * n + n0 + j));
          asm("" : "+v"(p));  // keep the product rounded: no fused multiply-add here
          e = _mm256_add_ps(e, p);
        }
        v = _mm256_add_ps(v, e);
      } else if (a) {
        v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(mk, a + j));
      }
      _mm256_mask_storeu_ps(o + j, mk, v);
    }
  }
}

}  // namespace

void vnni_task(const Int8VnniGemm& g, const Int8Epilogue& ep, int64_t sp, int64_t r0, int64_t r1) {
  const int64_t n0 = sp * kCols;
  const int nc = int(g.n - n0 < kCols ? g.n - n0 : kCols);
  const int nb = (nc + 15) / 16;
  const int8_t* w = g.w + n0 * g.kq;  // every super-panel before this one is full
  const int32_t* corr = g.corr + n0;
  const int64_t quads = g.kq / 4;
  const int64_t tiles = (r1 - r0 + kMr - 1) / kMr;
  // One tile: its accumulators stay in registers over the whole K. More: K blocks whose
  // weight slice stays in L1 while the row tiles go by; the tiles after the first fetch the
  // next block's slice from L3 or memory meanwhile, so that the first tile of the next block
  // does not wait for it (measured, 1 thread, 256 x 11008 x 4096: 210 -> 250 GMAC/s).
  const int64_t kc = tiles == 1 ? (quads > 0 ? quads : 1) : kKcQuads;
  alignas(64) int32_t acc[kInt8VnniRowChunk * kCols];
  for (int64_t q0 = 0; q0 == 0 || q0 < quads; q0 += kc) {
    const int64_t nq = quads - q0 < kc ? quads - q0 : kc;
    const int64_t next_q = q0 + kc < quads ? (quads - q0 - kc < kc ? quads - q0 - kc : kc) : 0;
    const int64_t lines = next_q * nb;  // a quad of nb * 16 columns is nb lines
    const int64_t share = tiles > 1 ? (lines + tiles - 2) / (tiles - 1) : 0;
    const int lpi = nq > 0 ? int((share + nq - 1) / nq) : 0;
    const char* next = lines ? reinterpret_cast<const char*>(w + (q0 + kc) * nb * 64) : nullptr;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t m0 = r0 + t * kMr;
      const int mr = int(r1 - m0 < kMr ? r1 - m0 : kMr);
      Prefetch pf;
      pf.ahead = t == 0 && q0 == 0;
      if (t > 0 && lpi > 0 && next) {
        pf.next = next + (t - 1) * share * 64;
        pf.quads = (share + lpi - 1) / lpi;
        pf.lpi = lpi;
      }
      kTiles[mr - 1][nb - 1](g.xq + m0 * g.ldx + 4 * q0, g.ldx, w + q0 * nb * 64, nq,
                             acc + t * kMr * kCols, q0 == 0 ? corr : nullptr, pf);
    }
  }
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t m0 = r0 + t * kMr;
    const int mr = int(r1 - m0 < kMr ? r1 - m0 : kMr);
    epilogue(acc + t * kMr * kCols, m0, mr, n0, nc, g.n, ep);
  }
}

void vnni_columns(const int8_t* w, int64_t kq, int64_t n, const float* scale, const int64_t* cols,
                  int64_t n_cols, float* wot) {
  // Super-panels outer: a panel's 64 scales / 127 (double, as the portable loop divides) are
  // made once for all columns; a column's 64 codes in a panel are one 256-byte run of dwords
  // (byte k % 4 of each), four loads.
  const int64_t n16 = (n + 15) / 16 * 16;
  const __m512d inv127 = _mm512_set1_pd(127.0);
  for (int64_t s = 0; s * kCols < n16; ++s) {
    const int64_t r0 = s * kCols;
    const int64_t width = n16 - r0 < kCols ? n16 - r0 : kCols;
    __m512d ds[kCols / 8];
    for (int64_t j = 0; j < width; j += 8) {
      const int64_t left = n - r0 - j;  // rows of the scale that exist (padding reads none)
      const __mmask8 mk = left >= 8 ? __mmask8(0xff) : __mmask8(left > 0 ? (1u << left) - 1 : 0);
      ds[j / 8] = _mm512_div_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(mk, scale + r0 + j)), inv127);
    }
    for (int64_t c = 0; c < n_cols; ++c) {
      const int64_t k = cols[c];
      const int8_t* run = w + r0 * kq + (k / 4) * width * 4;
      const __m128i sh = _mm_cvtsi32_si128(int(24 - 8 * (k % 4)));
      for (int64_t j = 0; j < width; j += 16) {
        const int64_t left = n - r0 - j;
        if (left <= 0) break;
        // byte k % 4 of each dword, sign-extended: shift it to the top, then back down
        const __m512i d = _mm512_sra_epi32(_mm512_sll_epi32(_mm512_loadu_si512(run + j * 4), sh),
                                           _mm_cvtsi32_si128(24));
        const __m512d lo = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(d)), ds[j / 8]);
        const __m512d hi =
            _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(d, 1)), ds[j / 8 + 1]);
        const __mmask16 mk = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
        float* o = wot + c * n + r0 + j;
        _mm256_mask_storeu_ps(o, __mmask8(mk), _mm512_cvtpd_ps(lo));
        _mm256_mask_storeu_ps(o + 8, __mmask8(mk >> 8), _mm512_cvtpd_ps(hi));
      }
    }
  }
}

void outlier_flag_block(const float* x, int64_t m, int64_t ldx, int64_t w, float threshold,
                        uint8_t* hit) {
  // A mask bit per column: any |x| >= threshold over the rows (an ordered compare: NaN never).
  // Rows outer, so that each row's run of w floats is read in order.
  constexpr int64_t kMaxW = 1024;
  const __m512 t = _mm512_set1_ps(threshold);
  const int64_t groups = (w + 15) / 16;
  __mmask16 h[kMaxW / 16] = {};
  const int64_t left = w - (groups - 1) * 16;
  const __mmask16 tail = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    for (int64_t q = 0; q + 1 < groups; ++q)
      h[q] |= _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(xr + 16 * q)), t, _CMP_GE_OQ);
    const int64_t q = groups - 1;
    h[q] |= _mm512_mask_cmp_ps_mask(tail, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail, xr + 16 * q)),
                                    t, _CMP_GE_OQ);
  }
  for (int64_t q = 0; q < groups; ++q)
    _mm_mask_storeu_epi8(hit + 16 * q, q + 1 < groups ? __mmask16(0xffff) : tail,
                         _mm_maskz_set1_epi8(h[q], 1));
}

bool quantize_row_u8(const float* x, int64_t k, int64_t kq, uint8_t* q, float* absmax) {
  const __m512 big = _mm512_set1_ps(FLT_MAX);
  __m512 mx = _mm512_setzero_ps();
  __mmask16 ok = 0xffff;
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 mk = k - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (k - i)) - 1);
    const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(mk, x + i));
    ok &= _mm512_cmp_ps_mask(a, big, _CMP_LE_OQ);  // false for NaN and Inf
    mx = _mm512_max_ps(mx, a);
  }
  const float m = _mm512_reduce_max_ps(mx);
  if (ok != 0xffff || m == 0.0f) {
    std::memset(q, 128, size_t(kq));
    *absmax = ok == 0xffff ? 0.0f : NAN;
    return ok == 0xffff;
  }
  *absmax = m;
  const float pre = m < kInt8Tiny ? kInt8Pre : 1.0f;  // see int8.hpp
  const __m512 vinv = _mm512_set1_ps(127.0f / (m * pre)), vpre = _mm512_set1_ps(pre);
  const __m512i off = _mm512_set1_epi32(128);
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 mk = k - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (k - i)) - 1);
    const __m512 xs = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), vpre);
    // cvtps rounds to nearest even (np.rint); codes in [-127, 127], + 128 fits a byte
    const __m512i c = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(xs, vinv)), off);
    _mm512_mask_cvtepi32_storeu_epi8(q + i, mk, c);
  }
  if (kq > k) std::memset(q + k, 128, size_t(kq - k));
  return true;
}

}  // namespace matkern::avx512
