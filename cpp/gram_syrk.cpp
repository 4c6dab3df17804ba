// One Gram step G = fac * B B^T (symmetric, stored whole) for float32 B (c x k) with a known
// summation structure, for the Gram iteration's large matrices (the CPU's BLAS path for
// float32): every entry is the float sum of ceil(k / KC) chunk sums,
// each a fresh length-KC dot product in registers, added into C once. Its rounding error is
// then at most gamma_{KC + J} |B| |B|^T (J = ceil(k / KC)) instead of the gamma_k that a BLAS
// call of unknown order has to be granted: 2048-long products get a 21x smaller margin, so
// float32 steps certify tightly where 64-bit ones were needed. Blocked like BLIS: B packed
// once into 16-row panels, 144-row blocks of A packed per thread, a 6 x 16 register tile (two
// of them at once on AVX-512, gram_syrk_avx512.cpp); the
// C block of a panel stays in L1 across the chunks. The lower triangle is computed, written
// out scaled and mirrored (row-major, or packed as the next step's B panels, gram.hpp: then
// the next step packs nothing and these writes are whole 64-byte lines); one threaded pass
// then sums the squares and row sums of |G|.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "gram.hpp"
#include "parallel.hpp"
#include "scratch.hpp"
#include "simd.hpp"

namespace matkern {

namespace gram_portable_syrk {
// The same tile as the AVX2 one, in plain loops (the sums' order is the same per entry: a
// fresh accumulator over the chunk, then one add into C).
void tile(int64_t kc, const float* ap, const float* bp, float* ct, bool first) {
  float acc[kSyrkMR][kSyrkNR] = {};
  for (int64_t l = 0; l < kc; ++l)
    for (int r = 0; r < kSyrkMR; ++r) {
      const float a = ap[l * kSyrkMR + r];
#pragma omp simd
      for (int q = 0; q < kSyrkNR; ++q) acc[r][q] += a * bp[l * kSyrkNR + q];
    }
  for (int r = 0; r < kSyrkMR; ++r)
    for (int q = 0; q < kSyrkNR; ++q)
      ct[r * kSyrkNR + q] = first ? acc[r][q] : ct[r * kSyrkNR + q] + acc[r][q];
}
}  // namespace gram_portable_syrk

namespace {

// Tiles t and t + 1 of a block against one panel (ap1 == nullptr: tile t alone).
using TileFn = void (*)(int64_t, const float*, const float*, const float*, float*, float*, bool);

template <void (*F)(int64_t, const float*, const float*, float*, bool)>
void tile_pair(int64_t kc, const float* ap0, const float* ap1, const float* bp, float* ct0,
               float* ct1, bool first) {
  F(kc, ap0, bp, ct0, first);
  if (ap1) F(kc, ap1, bp, ct1, first);
}

TileFn pick_tile() {
#ifdef MATKERN_BUILD_AVX512
  if (simd_level() >= Simd::avx512_vnni) return &avx512::gram_syrk_tile2;
#endif
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) return &tile_pair<&avx2::gram_syrk_tile>;
#endif
  return &tile_pair<&gram_portable_syrk::tile>;
}

// Rows of A per block (24 tiles): each B chunk brought into L1 serves 24 tiles. 144 ran 8-12%
// faster than 48 here (2048^2, 2 threads, 5 alternating runs); 96-240 alike. Reading A and B
// in place from the previous (symmetric) step's output, rows padded against set aliasing,
// instead of packing was 40% slower: the strided reads outran the prefetchers.
constexpr int64_t kMC = 144;

// dst[l * w + q] = B[i0 + q, l] for q < w, l < k (zero for rows past c): contiguous reads
// along whichever index of B is unit-stride.
void pack_rows(const float* b, int64_t rs, int64_t cs, int64_t c, int64_t k, int64_t i0, int w,
               float* dst) {
  const int nq = c - i0 < w ? int(c - i0) : w;
  if (rs == 1) {
    for (int64_t l = 0; l < k; ++l) {
      const float* src = b + l * cs + i0;
      float* d = dst + l * w;
      for (int q = 0; q < nq; ++q) d[q] = src[q];
      for (int q = nq; q < w; ++q) d[q] = 0.0f;
    }
    return;
  }
  // Blocks of 16 l: the part of dst being written (16 x w floats) stays in L1 while each row
  // of b is read a cache line at a time (the whole-row scatter went through L2).
  for (int64_t l0 = 0; l0 < k; l0 += 16) {
    const int64_t lend = k - l0 < 16 ? k : l0 + 16;
    for (int q = 0; q < w; ++q) {
      const float* src = b + (i0 + q) * rs;
      for (int64_t l = l0; l < lend; ++l) dst[l * w + q] = q < nq ? src[l * cs] : 0.0f;
    }
  }
}

}  // namespace

int64_t gram_syrk_gamma_len(int64_t k) { return kSyrkKC + (k + kSyrkKC - 1) / kSyrkKC; }

void gram_syrk_step(const float* b, int64_t rs, int64_t cs, int64_t c, int64_t k, bool packed_in,
                    float fac, float* g, bool packed_out, double* sumsq, double* rowmax) {
  if (c <= 0 || k <= 0) throw std::invalid_argument("gram_syrk: empty matrix");
  if (packed_in && k != c) throw std::invalid_argument("gram_syrk: packed input must be square");
  // Per row (or panel) partial sums, added in a fixed order after the parallel pass: the
  // result must not depend on how many threads a call was granted (an atomic total did).
  std::vector<double> rowsum(size_t(c), 0.0), rowsq(size_t(c), 0.0);
  const TileFn tile = pick_tile();
  const int64_t npan = (c + kSyrkNR - 1) / kSyrkNR;
  const int64_t nblk = (c + kMC - 1) / kMC;
  std::vector<float> bpv(packed_in ? 0 : size_t(npan * kSyrkNR * k));
  const float* bp = packed_in ? b : bpv.data();
  // On the helper pool (parallel.hpp): no pass waits for a thread whose core is busy.
  // Panel p of bp: k rows of 16 (rows p*16.. of B, zero past c).
  if (!packed_in)
    parallel_for_range(npan, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p)
        pack_rows(b, rs, cs, c, k, p * kSyrkNR, kSyrkNR, bpv.data() + p * k * kSyrkNR);
    });
  struct ATag;
  struct CTag;
  // Largest blocks (most panels left of the diagonal) first, for the balance.
  parallel_for_chunks(nblk, [&](int64_t bb) {
    float* ap = thread_scratch<ATag, float>(size_t(kMC * k));
    float* cb = thread_scratch<CTag, float>(size_t(kMC * kSyrkNR));
    const int64_t i0 = (nblk - 1 - bb) * kMC;  // a multiple of 16 (kMC is)
    const int64_t mc = c - i0 < kMC ? c - i0 : kMC;
    const int64_t ntile = (mc + kSyrkMR - 1) / kSyrkMR;
    if (packed_in) {  // the block's rows at l: 16 contiguous floats in each of its panels
      const int64_t p0 = i0 / kSyrkNR, np = (mc + kSyrkNR - 1) / kSyrkNR;
      float row[kMC + kSyrkNR];
      for (int64_t l = 0; l < k; ++l) {
        for (int64_t pp = 0; pp < np; ++pp)
          for (int q = 0; q < kSyrkNR; ++q)
            row[pp * kSyrkNR + q] = bp[((p0 + pp) * k + l) * kSyrkNR + q];  // 0 past c
        for (int64_t q = np * kSyrkNR; q < ntile * kSyrkMR; ++q) row[q] = 0.0f;
        for (int64_t t = 0; t < ntile; ++t)
          for (int r = 0; r < kSyrkMR; ++r)
            ap[size_t((t * k + l) * kSyrkMR + r)] = row[t * kSyrkMR + r];
      }
    } else if (rs == 1) {  // B^T given: the block's rows are one contiguous run of each row
      for (int64_t l = 0; l < k; ++l) {
        const float* src = b + l * cs + i0;
        for (int64_t t = 0; t < ntile; ++t)
          for (int r = 0; r < kSyrkMR; ++r) {
            const int64_t q = t * kSyrkMR + r;
            ap[size_t((t * k + l) * kSyrkMR + r)] = q < mc ? src[q] : 0.0f;
          }
      }
    } else {
      for (int64_t t = 0; t < ntile; ++t)
        pack_rows(b, rs, cs, c, k, i0 + t * kSyrkMR, kSyrkMR, ap + t * k * kSyrkMR);
    }
    const int64_t ilast = i0 + mc - 1;
    for (int64_t jp = 0; jp * kSyrkNR <= ilast; ++jp) {
      const int64_t j0 = jp * kSyrkNR;
      const float* bpan = bp + jp * k * kSyrkNR;
      for (int64_t p0 = 0; p0 < k; p0 += kSyrkKC) {
        const int64_t kc = k - p0 < kSyrkKC ? k - p0 : kSyrkKC;
        // The next B chunk (the next 8 KiB of bp: this panel's next chunk or the next
        // panel's first) is fetched a few lines per tile while this one is in use: waiting
        // for it from memory at the first tile had cost a sixth of one thread's time.
        const int64_t nxt = (jp * k + p0 + kc) * kSyrkNR;
        const int64_t lines = nxt < npan * k * kSyrkNR ? kc * kSyrkNR * 4 / 64 : 0;
        const int64_t per = (lines + ntile - 1) / ntile;
        // Tiles in pairs (the AVX-512 kernel's 12 rows); a pair whose lower tile is above the
        // diagonal is skipped, one that the diagonal cuts is computed whole (the entries above
        // it are never read).
        for (int64_t t = 0; t < ntile; t += 2) {
          const bool two = t + 1 < ntile;
          for (int64_t q = t * per; q < (t + 2) * per && q < lines; ++q)
            __builtin_prefetch(reinterpret_cast<const char*>(bp + nxt) + q * 64, 0, 3);
          if (j0 > i0 + (t + two) * kSyrkMR + kSyrkMR - 1) continue;
          tile(kc, ap + (t * k + p0) * kSyrkMR, two ? ap + ((t + 1) * k + p0) * kSyrkMR : nullptr,
               bpan + p0 * kSyrkNR, cb + t * kSyrkMR * kSyrkNR,
               two ? cb + (t + 1) * kSyrkMR * kSyrkNR : nullptr, p0 == 0);
        }
      }
      // Out, scaled by fac (a power of two: exact barring underflow); entries j <= i only
      // (tiles above the diagonal were skipped).
      for (int64_t i = i0 > j0 ? i0 : j0; i <= ilast; ++i) {
        const int64_t jend = i + 1 < j0 + kSyrkNR ? i + 1 : j0 + kSyrkNR;  // j <= i
        float* src = cb + (i - i0) * kSyrkNR;
        for (int64_t j = j0; j < jend; ++j) src[j - j0] *= fac;
      }
      if (packed_out) {
        // Entry (i, j) goes to row i of panel j/16 (i > j; cb's row: one 64-byte line)
        // and to row j of panel i/16 (j <= i; cb's column within a 16-row group).
        for (int64_t i = i0 > j0 ? i0 : j0; i <= ilast; ++i) {
          const int64_t jend = i < j0 + kSyrkNR ? i : j0 + kSyrkNR;  // j < i
          const float* src = cb + (i - i0) * kSyrkNR;
          float* dst = g + (jp * c + i) * kSyrkNR;
          for (int64_t j = j0; j < jend; ++j) dst[j - j0] = src[j - j0];
        }
        for (int64_t ig = i0; ig <= ilast; ig += kSyrkNR) {
          if (ig + kSyrkNR - 1 < j0) continue;
          const int64_t iend = ilast < ig + kSyrkNR - 1 ? ilast : ig + kSyrkNR - 1;
          for (int64_t j = j0; j < j0 + kSyrkNR && j <= iend; ++j) {
            float* dst = g + ((ig / kSyrkNR) * c + j) * kSyrkNR;
            for (int64_t i = (ig > j ? ig : j); i <= iend; ++i)
              dst[i - ig] = cb[size_t((i - i0) * kSyrkNR + (j - j0))];
          }
        }
        continue;
      }
      // Row-major: rows i (j <= i) from cb, then the mirror, row by row of the upper block
      // (column writes at the matrix's 8 KiB row stride had hit one L1 set).
      for (int64_t i = i0 > j0 ? i0 : j0; i <= ilast; ++i) {
        const int64_t jend = i + 1 < j0 + kSyrkNR ? i + 1 : j0 + kSyrkNR;  // j <= i
        const float* src = cb + (i - i0) * kSyrkNR;
        float* dst = g + i * c;
        for (int64_t j = j0; j < jend; ++j) dst[j] = src[j - j0];
      }
      const int64_t jlast = ilast < j0 + kSyrkNR - 1 ? ilast : j0 + kSyrkNR - 1;
      for (int64_t j = j0; j <= jlast; ++j) {
        float* dst = g + j * c;
        for (int64_t i = (i0 > j + 1 ? i0 : j + 1); i <= ilast; ++i)
          dst[i] = cb[size_t((i - i0) * kSyrkNR + (j - j0))];
      }
    }
  });
  // Squares and row sums of |entries| over the whole (symmetric) g in 16 double lanes (no
  // reassociation needed to vectorize): row by row, or panel by panel (a lane a row).
  if (packed_out) {
    parallel_for_range(npan, 1, [&](int64_t pb, int64_t pe) {
      for (int64_t p = pb; p < pe; ++p) {
        const float* pan = g + p * c * kSyrkNR;
        double sq[16] = {}, ab[16] = {};
        for (int64_t l = 0; l < c; ++l)
          for (int q = 0; q < 16; ++q) {
            const double v = double(pan[l * kSyrkNR + q]);
            sq[q] += v * v;
            ab[q] += std::fabs(v);
          }
        double s = 0.0;
        for (int q = 0; q < 16; ++q) {
          s += sq[q];
          if (p * kSyrkNR + q < c) rowsum[size_t(p * kSyrkNR + q)] = ab[q];
        }
        rowsq[size_t(p)] = s;
      }
    });
  } else {
    parallel_for_range(c, 16, [&](int64_t ib, int64_t ie) {
      for (int64_t i = ib; i < ie; ++i) {
        const float* row = g + i * c;
        double sq[16] = {}, ab[16] = {};
        int64_t j = 0;
        for (; j + 16 <= c; j += 16)
          for (int q = 0; q < 16; ++q) {
            const double v = double(row[j + q]);
            sq[q] += v * v;
            ab[q] += std::fabs(v);
          }
        for (int q = 0; j < c; ++j, ++q) {
          const double v = double(row[j]);
          sq[q] += v * v;
          ab[q] += std::fabs(v);
        }
        double a = 0.0, s = 0.0;
        for (int q = 0; q < 16; ++q) {
          s += sq[q];
          a += ab[q];
        }
        rowsum[size_t(i)] = a;
        rowsq[size_t(i)] = s;
      }
    });
  }
  double ss_all = 0.0;
  for (int64_t i = 0; i < (packed_out ? npan : c); ++i) ss_all += rowsq[size_t(i)];
  // Upward margins: sums of c^2 (and c) nonnegative rounded terms, in any order.
  *sumsq = ss_all * (1.0 + double(c * c + 2) * 0x1p-52);
  double mr = 0.0;
  for (int64_t i = 0; i < c; ++i) mr = rowsum[size_t(i)] > mr ? rowsum[size_t(i)] : mr;
  *rowmax = mr * (1.0 + double(2 * c + 2) * 0x1p-52);
}

}  // namespace matkern
