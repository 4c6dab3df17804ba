// LUT matmul on the CPU: the portable inner kernels, and the drivers that thread over output
// rows (OpenMP) and call the AVX2 or portable kernels chosen at run time.
#include "lut.hpp"

#include <algorithm>
#include <vector>

#include "parallel.hpp"
#include "scratch.hpp"
#include "simd.hpp"

namespace matkern {

namespace {
// Groups of gs columns per row of K columns (K and gs multiples of 32): the last may be partial.
inline int64_t group_count(int64_t K, int64_t gs) { return (K + gs - 1) / gs; }
// Blocks of 32 codes in group g: gs / 32, fewer in a partial last group.
inline int64_t group_blocks(int64_t K, int64_t gs, int64_t g) {
  return (std::min(K, (g + 1) * gs) - g * gs) / 32;
}
}  // namespace

namespace portable {
namespace {

// Index byte of code k in a 4-bit block (_lut_layout.CPU_POS).
inline int cpu_pos(int k) {
  const int q = k >> 3, e = k & 7;
  return 4 * q + (e < 4 ? e : 12 + e);
}

// The 32 codes of block j of a row (nblocks blocks, words at row) into c[0..31]. 4-bit blocks
// come in pairs, 8 words whose byte p holds index byte p of the even block in its low nibble
// and of the odd block in its high nibble; a lone last block keeps index bytes 0-15 in the
// low nibbles of its 16 bytes and 16-31 in the high nibbles.
inline void unpack_block(const uint32_t* row, int64_t j, int64_t nblocks, int bits, uint8_t* c) {
  if (bits == 4) {
    const bool paired = (j | 1) < nblocks;
    const uint32_t* w = row + (paired ? (j & ~int64_t(1)) : j) * 4;
    for (int k = 0; k < 32; ++k) {
      const int p = cpu_pos(k);
      const int byte = paired ? p : p & 15;
      const int shift = paired ? 4 * int(j & 1) : 4 * (p >> 4);
      c[k] = uint8_t((w[byte >> 2] >> (8 * (byte & 3) + shift)) & 15u);
    }
    return;
  }
  const uint32_t* w = row + j * bits;
  if (bits == 2) {
    for (int i = 0; i < 32; ++i) c[i] = uint8_t((w[i >> 4] >> (2 * (i & 15))) & 3u);
  } else {
    for (int i = 0; i < 32; ++i)
      c[i] = uint8_t(((w[i >> 4] >> (2 * (i & 15))) & 3u) | (((w[2] >> i) & 1u) << 2));
  }
}

}  // namespace

namespace {
float gemv_row(const float* x, const uint32_t* words, const float* scales, const float* table,
               int bits, int gs, int64_t K) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint8_t c[32];
  const int64_t ngroups = group_count(K, gs);
  for (int64_t g = 0; g < ngroups; ++g) {
    float ga[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t nb = group_blocks(K, gs, g);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t k0 = g * gs + 32 * b;
      unpack_block(words, k0 / 32, K / 32, bits, c);
      for (int i = 0; i < 32; ++i) ga[i & 7] += x[k0 + i] * table[c[i]];
    }
    const float s = scales[g];
    for (int l = 0; l < 8; ++l) acc[l] += s * ga[l];
  }
  float sum = 0;
  for (int l = 0; l < 8; ++l) sum += acc[l];
  return sum;
}
}  // namespace

void gemv_rows(const float* x, const uint32_t* words, const float* scales, const float* table,
               int bits, int gs, int64_t K, int64_t nrows, const float* bias, float* out) {
  const int64_t wpr = K / 32 * bits, ngroups = group_count(K, gs);
  for (int64_t r = 0; r < nrows; ++r) {
    const float s = gemv_row(x, words + r * wpr, scales + r * ngroups, table, bits, gs, K);
    out[r] = bias ? s + bias[r] : s;
  }
}

void decode_rows(const uint32_t* words, int64_t wpr, const float* scales, int64_t ngroups,
                 const float* table, int bits, int gs, int64_t g, int64_t ng, int nrows, float* buf,
                 int64_t ldb) {
  uint8_t c[32];
  const int64_t nblocks = wpr / bits;
  for (int r = 0; r < nrows; ++r)
    for (int64_t gg = g; gg < g + ng; ++gg) {
      const float s = scales[r * ngroups + gg];
      float* o = buf + r * ldb + (gg - g) * gs;
      const int64_t nb = group_blocks(nblocks * 32, gs, gg);
      for (int64_t b = 0; b < nb; ++b) {
        unpack_block(words + r * wpr, gg * gs / 32 + b, nblocks, bits, c);
        for (int i = 0; i < 32; ++i) o[32 * b + i] = table[c[i]] * s;
      }
    }
}

void tile_product(const float* x, int64_t ldx, int mr, const float* buf, int64_t ldb, int len,
                  float* part) {
  for (int i = 0; i < mr; ++i)
    for (int r = 0; r < 4; ++r) {
      float* p = part + (i * 4 + r) * 8;
      const float* xi = x + i * ldx;
      const float* wr = buf + r * ldb;
      for (int k = 0; k < len; k += 8)
#pragma omp simd
        for (int l = 0; l < 8; ++l) p[l] += xi[k + l] * wr[k + l];
    }
}

void transpose16(const float* buf, int64_t ldb, int len, float* bt) {
  for (int r = 0; r < 16; ++r)
    for (int k = 0; k < len; ++k) bt[k * 16 + r] = buf[r * ldb + k];
}

void panel_product(const float* x, int64_t ldx, int mr, const float* bt, int len, float* c) {
  for (int i = 0; i < mr; ++i) {
    float acc[16];
    for (int j = 0; j < 16; ++j) acc[j] = c[i * 16 + j];
    for (int k = 0; k < len; ++k) {
      const float a = x[i * ldx + k];
#pragma omp simd
      for (int j = 0; j < 16; ++j) acc[j] += a * bt[k * 16 + j];
    }
    for (int j = 0; j < 16; ++j) c[i * 16 + j] = acc[j];
  }
}

}  // namespace portable

namespace {

struct Kernels {
  void (*gemv_rows)(const float*, const uint32_t*, const float*, const float*, int, int, int64_t,
                    int64_t, const float*, float*);
  void (*decode_rows)(const uint32_t*, int64_t, const float*, int64_t, const float*, int, int,
                      int64_t, int64_t, int, float*, int64_t);
  void (*tile_product)(const float*, int64_t, int, const float*, int64_t, int, float*);
  void (*transpose16)(const float*, int64_t, int, float*);
  void (*panel_product)(const float*, int64_t, int, const float*, int, float*);
};

Kernels pick_kernels() {
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2)
    return {&avx2::gemv_rows, &avx2::decode_rows, &avx2::tile_product, &avx2::transpose16,
            &avx2::panel_product};
#endif
  return {&portable::gemv_rows, &portable::decode_rows, &portable::tile_product,
          &portable::transpose16, &portable::panel_product};
}

// X (M, K) repacked span by span: block s holds columns s*span.. of every row, rows ldx =
// span + 16 floats apart. In place, X's rows lie K floats apart (16 KiB at K = 4096): the rows
// a register tile reads at once share one L1 set, and the tiles waited on their loads.
std::vector<float> repack_x(const float* x, int64_t M, int64_t K, int64_t span, int64_t ldx) {
  const int64_t nsp = (K + span - 1) / span;
  std::vector<float> xp(size_t(nsp * M * ldx));
  parallel_for_range(nsp * M, 64, [&](int64_t b, int64_t e) {
    for (int64_t sm = b; sm < e; ++sm) {
      const int64_t sp = sm / M, m = sm % M;
      const int64_t len = std::min(span, K - sp * span);
      std::copy(x + m * K + sp * span, x + m * K + sp * span + len, xp.data() + sm * ldx);
    }
  });
  return xp;
}

// The packed weight, and its rows [n0, n0 + nrows) dequantized gpc groups (a chunk) at a
// time into wbuf (row stride ldw), then f(k0, len, w) for each span of the chunk: len columns
// from column k0, at w in wbuf. Spans end at the chunk's end and at multiples of kSpan (the
// repacked X's blocks), so a span never leaves one block of X; with groups of 32..256 columns
// a chunk is a multiple of kSpan and every span is kSpan long. Reading a chunk's codes row by
// row is sequential, which the hardware prefetcher follows; span by span (runs of 128 bytes
// 2 KiB apart) the decode had waited on memory even with software prefetch.
constexpr int kSpan = 256;  // columns per register-tile pass (X's span rows stay in L1)

struct Weight {
  const uint32_t* packed;
  const float* scales;
  const float* table;
  int bits, gs;
  int64_t K, wpr, ngroups;

  template <class F>
  void over_spans(const Kernels& kr, int64_t n0, int nrows, int64_t gpc, float* wbuf, int64_t ldw,
                  F&& f) const {
    for (int64_t c0 = 0; c0 < ngroups; c0 += gpc) {
      const int64_t c1 = std::min(ngroups, c0 + gpc);
      kr.decode_rows(packed + n0 * wpr, wpr, scales + n0 * ngroups, ngroups, table, bits, gs, c0,
                     c1 - c0, nrows, wbuf, ldw);
      const int64_t k_begin = c0 * gs, k_end = std::min(K, c1 * gs);
      for (int64_t k0 = k_begin; k0 < k_end;) {
        const int64_t k1 = std::min(k_end, (k0 / kSpan + 1) * kSpan);
        f(k0, int(k1 - k0), wbuf + (k0 - k_begin));
        k0 = k1;
      }
    }
  }
};

constexpr int kNR = 4;   // weight rows dequantized together (blocked path)
constexpr int kMR = 3;   // rows of X per register tile
constexpr int64_t kMC = 48;  // rows of X per pass over a weight row tile
constexpr int64_t kChunk = 8192;  // weight columns dequantized at once (blocked path)

// M = 2..31: 4 weight rows dequantized kChunk columns at a time (4 x 32 KiB, in L2; 7-19%
// faster than span by span), then register tiles of up to 3 rows of X by the 4 weight rows,
// a span at a time.
void blocked(const Kernels& kr, const float* x, int64_t M, int64_t K, const uint32_t* packed,
             const float* scales, const float* table, int bits, int gs, int64_t N,
             const float* bias, float* out) {
  const int64_t ngroups = group_count(K, gs);
  const Weight wt{packed, scales, table, bits, gs, K, K / 32 * bits, ngroups};
  const int64_t ntiles = (N + kNR - 1) / kNR;
  const int64_t mchunks = (M + kMC - 1) / kMC;
  const int64_t ldx = kSpan + 16;
  const int64_t gpc = std::max<int64_t>(1, std::min(ngroups, kChunk / gs));  // groups per chunk
  const int64_t ldw = std::min(K, gpc * gs) + 16;  // padded: rows 32 KiB apart share L1 sets
  const std::vector<float> xp = repack_x(x, M, K, kSpan, ldx);
  struct WTag;
  struct PTag;
  // Jobs on the helper pool (parallel.hpp), one weight tile by up to kMC rows of X each:
  // next to a busy process an OpenMP team waited for its descheduled thread at every
  // barrier (M = 16 ran at half the speed of one thread).
  parallel_for_chunks(ntiles * mchunks, [&](int64_t job) {
    float* wbuf = thread_scratch<WTag, float>(size_t(kNR * ldw));
    float* part = thread_scratch<PTag, float>(size_t(kMC) * kNR * 8);
    const int64_t t = job / mchunks, m0 = (job % mchunks) * kMC;
    const int64_t n0 = t * kNR;
    const int nrows = int(std::min<int64_t>(kNR, N - n0));
    const int64_t mc = std::min<int64_t>(kMC, M - m0);
    std::fill(part, part + kMC * kNR * 8, 0.0f);
    if (nrows < kNR) std::fill(wbuf, wbuf + kNR * ldw, 0.0f);
    wt.over_spans(kr, n0, nrows, gpc, wbuf, ldw, [&](int64_t k0, int len, const float* wb) {
      // register tiles of at most kMR rows of X, as even as possible (16 = 3+3+3+3+2+2)
      const float* xs = xp.data() + (k0 / kSpan) * M * ldx + k0 % kSpan;
      int64_t tiles_left = (mc + kMR - 1) / kMR;
      for (int64_t i = 0; i < mc; --tiles_left) {
        const int mr = int((mc - i + tiles_left - 1) / tiles_left);
        kr.tile_product(xs + (m0 + i) * ldx, ldx, mr, wb, ldw, len, part + i * kNR * 8);
        i += mr;
      }
    });
    for (int64_t i = 0; i < mc; ++i)
      for (int r = 0; r < nrows; ++r) {
        const float* p = part + (i * kNR + r) * 8;
        float s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        if (bias) s += bias[n0 + r];
        out[(m0 + i) * N + n0 + r] = s;
      }
  });
}

constexpr int64_t kWideM = 32;   // from this many rows of X on, the wide path
constexpr int64_t kWideMC = 288;  // rows of X per pass over a 16-row panel (span: 313 KiB, L2)
constexpr int64_t kWideChunk = 2048;  // weight columns dequantized at once (16 x 8 KiB)

// Larger M: 16 weight rows dequantized kWideChunk columns at a time (2-10% faster than span
// by span) and transposed a span at a time (k-major, 16 wide), so that a 6 x 16 register
// tile (six broadcasts of X, two loads of weights, twelve FMAs per k) runs as a GEMM's; the
// blocked path's 3 x 4 inner-product tile had run at a third of the FMA rate. Each output
// sums the same products as the reference, in another order.
void wide(const Kernels& kr, const float* x, int64_t M, int64_t K, const uint32_t* packed,
          const float* scales, const float* table, int bits, int gs, int64_t N, const float* bias,
          float* out) {
  const int64_t ngroups = group_count(K, gs);
  const Weight wt{packed, scales, table, bits, gs, K, K / 32 * bits, ngroups};
  const int64_t ldx = kSpan + 16;
  const std::vector<float> xp = repack_x(x, M, K, kSpan, ldx);
  const int64_t npan = (N + 15) / 16, mchunks = (M + kWideMC - 1) / kWideMC;
  const int64_t gpc = std::max<int64_t>(1, std::min(ngroups, kWideChunk / gs));  // per chunk
  const int64_t ldw = std::min(K, gpc * gs) + 16;
  struct WTag;
  struct BTag;
  struct CTag;
  parallel_for_chunks(npan * mchunks, [&](int64_t job) {  // on the pool, as blocked()
    float* wbuf = thread_scratch<WTag, float>(size_t(16 * ldw));
    float* bt = thread_scratch<BTag, float>(size_t(16 * kSpan));
    float* c = thread_scratch<CTag, float>(size_t(kWideMC * 16));
    const int64_t n0 = (job / mchunks) * 16, m0 = (job % mchunks) * kWideMC;
    const int nrows = int(std::min<int64_t>(16, N - n0));
    const int64_t mc = std::min<int64_t>(kWideMC, M - m0);
    std::fill(c, c + kWideMC * 16, 0.0f);
    if (nrows < 16) std::fill(wbuf, wbuf + 16 * ldw, 0.0f);
    wt.over_spans(kr, n0, nrows, gpc, wbuf, ldw, [&](int64_t k0, int len, const float* wb) {
      kr.transpose16(wb, ldw, len, bt);
      const float* xs = xp.data() + ((k0 / kSpan) * M + m0) * ldx + k0 % kSpan;
      for (int64_t i = 0; i < mc; i += 6)
        kr.panel_product(xs + i * ldx, ldx, int(std::min<int64_t>(6, mc - i)), bt, len, c + i * 16);
    });
    for (int64_t i = 0; i < mc; ++i)
      for (int r = 0; r < nrows; ++r)
        out[(m0 + i) * N + n0 + r] =
            bias ? c[size_t(i * 16 + r)] + bias[n0 + r] : c[size_t(i * 16 + r)];
  });
}

#ifdef MATKERN_BUILD_AVX512
// AVX-512, 4-bit codes whose pairs of blocks lie in one group (lut.hpp's avx512 kernels).
// K is the packed row's columns (a multiple of 32): a row of an odd number of blocks ends in a
// lone block, which the kernels take as a unit of its own (K = 4000 had run the AVX2 kernels
// at half the speed). A pair must not straddle two groups: gs % 64 == 0, or one group per row.
bool avx512_fits(int bits, int gs, int64_t K) {
  return bits == 4 && (gs % 64 == 0 || gs >= K) && K % 32 == 0 && simd_level() >= Simd::avx512_vnni;
}

// x permuted pair by pair (64 columns) to the order avx512::lut4_gemv reads codes in: lane m
// of its vectors looks up index byte 4 (m % 4) + m / 4 (+16 for the pair's second 16 bytes),
// low nibbles (the even block) first, then high nibbles (the odd block, 32 columns on).
// A lone last block (K % 64 == 32) reads index bytes 4 (m % 4) + m / 4 in its low nibbles
// (xq[m]), then 16 + that in its high nibbles (xq[16 + m]).
std::vector<float> permute_x_pairs(const float* x, int64_t K) {
  std::vector<float> xq(static_cast<size_t>(K));
  const int64_t p = K / 64;
  if (K % 64)
    for (int half = 0; half < 2; ++half)
      for (int m = 0; m < 16; ++m) {
        const int q = 16 * half + 4 * (m & 3) + (m >> 2);
        const int col = q < 16 ? (q >> 2) * 8 + (q & 3) : ((q - 16) >> 2) * 8 + 4 + (q & 3);
        xq[size_t(64 * p + 16 * half + m)] = x[64 * p + col];
      }
  for (int64_t p = 0; p < K / 64; ++p)
    for (int half = 0; half < 2; ++half)
      for (int m = 0; m < 16; ++m) {
        const int q = 16 * half + 4 * (m & 3) + (m >> 2);  // index byte (_lut_layout.CPU_POS)
        const int col = q < 16 ? (q >> 2) * 8 + (q & 3) : ((q - 16) >> 2) * 8 + 4 + (q & 3);
        xq[size_t(64 * p + 32 * half + m)] = x[64 * p + col];
        xq[size_t(64 * p + 32 * half + 16 + m)] = x[64 * p + 32 + col];
      }
  return xq;
}

// M = 1: row by row (each row's codes one sequential stream), 32 rows a chunk on the pool.
void gemv512(const float* x, int64_t K, const uint32_t* packed, const float* scales,
             const float* table, int gs, int64_t N, const float* bias, float* out) {
  const int64_t wpr = K / 8, ngroups = group_count(K, gs), chunk = 32;
  const std::vector<float> xq = permute_x_pairs(x, K);
  parallel_for_chunks((N + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t n0 = c * chunk;
    const int nr = int(std::min<int64_t>(chunk, N - n0));
    avx512::lut4_gemv(xq.data(), packed + n0 * wpr, wpr, scales + n0 * ngroups, ngroups, table, gs,
                      K, nr, out + n0);
    if (bias)
      for (int r = 0; r < nr; ++r) out[n0 + r] += bias[n0 + r];
  });
}

constexpr int64_t k512Span = 128;  // columns per decoded unit (bt: 128 x 32 floats, 16 KiB)
constexpr int64_t k512MR = 12;     // rows of X per register tile (24 accumulators)
constexpr int64_t k512Tiles = 24;  // register tiles per pass over a panel (288 rows of X)
constexpr int64_t kXScratch = int64_t(1) << 22;  // packed X up to 16 MiB: reused per thread

// Register tiles of X: nt = ceil(M / 12) tiles as even as possible (16 = 8 + 8); tile t
// holds rows [tile_row(t), tile_row(t + 1)).
inline int64_t tile_row(int64_t t, int64_t nt, int64_t M) { return t * M / nt; }

// X (M, K) packed span by span and tile by tile, k-major inside a tile: span s, tile t at
// (s * M + tile_row(t)) * k512Span, element (k, i) at k * mr + i. The tile's broadcasts then
// read one stream at constant offsets (12 rows at a stride had taken 12 address registers).
void pack_x_tiles(const float* x, int64_t M, int64_t K, int64_t nt, float* xp) {
  const int64_t nsp = (K + k512Span - 1) / k512Span;
  parallel_for_range(nsp * nt, 16, [&](int64_t b, int64_t e) {
    for (int64_t st = b; st < e; ++st) {
      const int64_t sp = st / nt, t = st % nt, r0 = tile_row(t, nt, M);
      const int64_t mr = tile_row(t + 1, nt, M) - r0, k0 = sp * k512Span;
      const int64_t len = std::min(k512Span, K - k0);
      float* d = xp + (sp * M + r0) * k512Span;
      for (int64_t k = 0; k < len; ++k)
        for (int64_t i = 0; i < mr; ++i) d[k * mr + i] = x[(r0 + i) * K + k0 + k];
    }
  });
}

// M >= 2: panels of 32 weight rows decoded 128 columns at a time, k-major (bt), into the
// operand of a 12 x 32 register tile (12 broadcasts of X, two loads, 24 FMAs per column);
// each tile's sums over a unit (or a 64-column half, where a group boundary can cut a unit)
// are scaled by the rows' scales once. Each output sums the reference's products in another
// order.
void gemm512(const float* x, int64_t M, int64_t K, const uint32_t* packed, const float* scales,
             const float* table, int gs, int64_t N, const float* bias, float* out) {
  const int64_t wpr = K / 8, ngroups = group_count(K, gs);
  const int64_t nt = (M + k512MR - 1) / k512MR;
  const int64_t xn = (K + k512Span - 1) / k512Span * M * k512Span;
  // the calling thread's buffer (no fresh pages per call: 4 MiB of them had cost 6% at M = 256)
  struct XTag;
  std::vector<float> own;
  float* xp =
      xn <= kXScratch ? thread_scratch<XTag, float>(size_t(xn)) : (own.resize(xn), own.data());
  pack_x_tiles(x, M, K, nt, xp);
  const int64_t npan = (N + 31) / 32, mchunks = (nt + k512Tiles - 1) / k512Tiles;
  const int64_t sub = gs % k512Span == 0 ? k512Span : 64;  // columns sharing one scale
  struct BTag;
  struct CTag;
  parallel_for_chunks(npan * mchunks, [&](int64_t job) {
    float* bt = thread_scratch<BTag, float>(size_t(k512Span * 32));
    float* c = thread_scratch<CTag, float>(size_t(k512Tiles * k512MR * 32));
    alignas(64) float s[32];
    const int64_t n0 = (job / mchunks) * 32, t0 = (job % mchunks) * k512Tiles;
    const int64_t t1 = std::min(nt, t0 + k512Tiles);
    const int64_t m0 = tile_row(t0, nt, M), mc = tile_row(t1, nt, M) - m0;
    const int nrows = int(std::min<int64_t>(32, N - n0));
    std::fill(c, c + mc * 32, 0.0f);
    std::fill(s, s + 32, 0.0f);
    for (int64_t k0 = 0; k0 < K; k0 += k512Span) {
      const int len = int(std::min<int64_t>(k512Span, K - k0));
      avx512::lut4_decode_panel(packed + n0 * wpr, wpr, table, k0, len, nrows, bt);
      for (int64_t u = 0; u < len; u += sub) {
        const int64_t g = (k0 + u) / gs;
        for (int r = 0; r < nrows; ++r) s[r] = scales[(n0 + r) * ngroups + g];
        const int ulen = int(std::min<int64_t>(sub, len - u));
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t r0 = tile_row(t, nt, M);
          const int mr = int(tile_row(t + 1, nt, M) - r0);
          avx512::lut4_panel_product(xp + (k0 / k512Span * M + r0) * k512Span + u * mr, mr,
                                     bt + u * 32, ulen, s, c + (r0 - m0) * 32);
        }
      }
    }
    for (int64_t i = 0; i < mc; ++i)
      for (int r = 0; r < nrows; ++r)
        out[(m0 + i) * N + n0 + r] = bias ? c[i * 32 + r] + bias[n0 + r] : c[i * 32 + r];
  });
}
#endif

}  // namespace

const char* lut_kernel_name() {
#ifdef MATKERN_BUILD_AVX512
  if (avx512_fits(4, 64, 64)) return "avx512";
#endif
  return pick_kernels().gemv_rows == &portable::gemv_rows ? "portable" : "avx2";
}

void lut_matmul(const float* x, int64_t M, int64_t K, const uint32_t* packed, const float* scales,
                const float* table, int bits, int gs, int64_t N, const float* bias, float* out) {
#ifdef MATKERN_BUILD_AVX512
  if (avx512_fits(bits, gs, K)) {
    if (M == 1) return gemv512(x, K, packed, scales, table, gs, N, bias, out);
    return gemm512(x, M, K, packed, scales, table, gs, N, bias, out);
  }
#endif
  const Kernels kr = pick_kernels();
  if (M == 1) {
    const int64_t wpr = K / 32 * bits, ngroups = group_count(K, gs), chunk = 32;
    // On the helper pool (parallel.hpp): a GEMV is short enough that an OpenMP team waiting
    // for a thread whose core is busy took 5x as long.
    parallel_for_chunks((N + chunk - 1) / chunk, [&](int64_t c) {
      const int64_t n0 = c * chunk, nr = std::min(chunk, N - n0);
      kr.gemv_rows(x, packed + n0 * wpr, scales + n0 * ngroups, table, bits, gs, K, nr,
                   bias ? bias + n0 : nullptr, out + n0);
    });
    return;
  }
  if (M >= kWideM) return wide(kr, x, M, K, packed, scales, table, bits, gs, N, bias, out);
  blocked(kr, x, M, K, packed, scales, table, bits, gs, N, bias, out);
}

void lut_dequantize(const uint32_t* packed, const float* scales, const float* table, int bits,
                    int gs, int64_t N, int64_t K, float* out) {
  const Kernels kr = pick_kernels();
  const int64_t kp = (K + 31) / 32 * 32;  // the packed rows' columns
  const int64_t wpr = kp / 32 * bits, ngroups = group_count(kp, gs);
  struct RowTag;
  parallel_for_range(N, 16, [&](int64_t b, int64_t e) {
    // K not a multiple of 32: a row is decoded into a buffer of kp columns, then K copied
    float* row = kp == K ? nullptr : thread_scratch<RowTag, float>(size_t(kp));
    for (int64_t n = b; n < e; ++n) {
      float* dst = row ? row : out + n * K;
      kr.decode_rows(packed + n * wpr, wpr, scales + n * ngroups, ngroups, table, bits, gs, 0,
                     ngroups, 1, dst, kp);
      if (row) std::copy(row, row + K, out + n * K);
    }
  });
}

}  // namespace matkern