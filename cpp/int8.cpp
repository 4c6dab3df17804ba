// Portable int8 kernels, the threading and the fused epilogue; the AVX2 or AVX-512 VNNI
// micro-kernel and the AVX2 quantizer are chosen at run time (simd_level()).
#include "int8.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "parallel.hpp"
#include "simd.hpp"

namespace matkern {
namespace {

constexpr int kMr = 6, kNp = 2, kNb = 8 * kNp;  // a tile: 6 rows x 16 columns (AVX2)
constexpr int kMrMax = kInt8Avx512Mr;            // the AVX-512 tile's rows
constexpr int64_t kKcPairs = 256;                // K block: 512 inputs
constexpr int64_t kMcRows = 192;                 // row chunk: 192 rows x 1 KiB K slice (L2)

bool quantize_row_portable(const float* x, int64_t k, int64_t kp, int16_t* q, float* absmax) {
  float m = 0.0f;
  bool finite = true;
  for (int64_t i = 0; i < k; ++i) {
    const float a = std::fabs(x[i]);
    finite = finite && a <= FLT_MAX;
    m = a > m ? a : m;
  }
  if (!finite || m == 0.0f) {
    std::fill(q, q + kp, int16_t(0));
    *absmax = finite ? 0.0f : NAN;
    return finite;
  }
  *absmax = m;
  const float pre = m < kInt8Tiny ? kInt8Pre : 1.0f;
  const float inv = 127.0f / (m * pre);
  for (int64_t i = 0; i < k; ++i) q[i] = int16_t(std::nearbyint((x[i] * pre) * inv));
  for (int64_t i = k; i < kp; ++i) q[i] = 0;
  return true;
}

void tile_portable(const int16_t* x, int64_t ldx, int mr, const int8_t* w, int64_t panel_stride,
                   int np, int64_t pairs, int32_t* tile, bool accumulate) {
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < np * 8; ++j) {
      const int8_t* wp = w + (j / 8) * panel_stride + (j % 8) * 2;
      const int16_t* xr = x + i * ldx;
      int32_t s = accumulate ? tile[i * kNb + j] : 0;
      for (int64_t p = 0; p < pairs; ++p)
        s += int32_t(xr[2 * p]) * wp[p * 16] + int32_t(xr[2 * p + 1]) * wp[p * 16 + 1];
      tile[i * kNb + j] = s;
    }
}

using TileFn = void (*)(const int16_t*, int64_t, int, const int8_t*, int64_t, int, int64_t,
                        int32_t*, bool);
using QuantFn = bool (*)(const float*, int64_t, int64_t, int16_t*, float*);

struct Tile {
  TileFn fn;
  int mr;  // rows of X per tile
};

// The AVX-512 tile only for more than 6 rows: a GEMV streams the weight once and is bound by
// memory, where the AVX2 tile was as fast and the 512-bit widening of the weights is wasted.
Tile pick_tile(int64_t m) {
#ifdef MATKERN_BUILD_AVX512
  if (m > kMr && simd_level() >= Simd::avx512_vnni) return {&avx512::gemm_tile, kMrMax};
#endif
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) return {&avx2::gemm_tile, kMr};
#endif
  (void)m;
  return {&tile_portable, kMr};
}

QuantFn pick_quant() {
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2) return &avx2::quantize_row;
#endif
  return &quantize_row_portable;
}

void epilogue(const int32_t* tile, int64_t m0, int mr, int64_t n0, int nc, int64_t n,
              const Int8Epilogue& ep) {
  // In double: t * absmax_x * absmax_w / 127^2 leaves float32's range in between (tiny
  // scales underflowed to subnormals, large ones overflowed) where the result itself fits.
  constexpr double kInv = 1.0 / (127.0 * 127.0);
  for (int i = 0; i < mr; ++i) {
    const int64_t row = m0 + i;
    const int32_t* t = tile + i * kNb;
    if (ep.out_i32) {
      std::memcpy(ep.out_i32 + row * n + n0, t, size_t(nc) * sizeof(int32_t));
      continue;
    }
    const double rs = double(ep.row_scale[row]) * kInv;
    float* o = ep.out_f32 + row * n + n0;
    const float* cs = ep.col_scale + n0;
    // One pass, each addend entry read before its output entry is written: the addend may
    // be the output buffer itself (the outlier product written there first).
    const float* b = ep.bias ? ep.bias + n0 : nullptr;
    const float* a = ep.addend ? ep.addend + row * n + n0 : nullptr;
    float extra[kNb];
    if (ep.n_out) {  // the outlier product of this row and these columns, in a fixed order
      a = extra;
      for (int j = 0; j < nc; ++j) extra[j] = 0.0f;
      const float* xr = ep.xo + row * ep.n_out;
      for (int64_t c = 0; c < ep.n_out; ++c) {
        const float xv = xr[c];
        const float* wr = ep.wot + c * n + n0;
        for (int j = 0; j < nc; ++j) extra[j] += xv * wr[j];
      }
    }
    for (int j = 0; j < nc; ++j) {
      float v = float(double(t[j]) * rs * double(cs[j]));
      if (b) v += b[j];
      if (a) v += a[j];
      o[j] = v;
    }
  }
}

}  // namespace

void int8_gemm_packed(const int16_t* xq, int64_t m, int64_t kp, const int8_t* wpacked, int64_t n,
                      const Int8Epilogue& ep) {
  const Tile tk = pick_tile(m);
  const TileFn tile_fn = tk.fn;
  const int64_t mrx = tk.mr;
  const int64_t pairs = kp / 2, panel_stride = kp * 8;
  const int64_t nblocks = (n + kNb - 1) / kNb, mblocks = (m + mrx - 1) / mrx;
  if (m <= mrx || pairs <= kKcPairs) {
    // GEMV and short K: one pass over K per tile; a thread streams its 16-row weight slice
    // once (memory bound at M = 1: the weight is read exactly once, as int8).
    parallel_for_chunks(nblocks, [&](int64_t t) {
      alignas(64) int32_t tile[kMrMax * kNb];
      const int64_t n0 = t * kNb;
      const int nc = int(std::min<int64_t>(kNb, n - n0));
      const int8_t* w = wpacked + (n0 / 8) * panel_stride;
      for (int64_t mb = 0; mb < mblocks; ++mb) {
        const int64_t m0 = mb * mrx;
        const int mr = int(std::min<int64_t>(mrx, m - m0));
        tile_fn(xq + m0 * kp, kp, mr, w, panel_stride, (nc + 7) / 8, pairs, tile, false);
        epilogue(tile, m0, mr, n0, nc, n, ep);
      }
    });
    return;
  }
  // GEMM: K in blocks of kKcPairs pairs, outermost; inside, chunks of 192 rows whose K slice
  // (192 KiB) stays in L2 while 16-row weight slices (8 KiB, in L1) go by; int32
  // partial sums live in a tile buffer (M x 16 per column block) between K blocks.
  const int64_t kblocks = (pairs + kKcPairs - 1) / kKcPairs;
  const int64_t mcb = kMcRows / mrx;  // tiles per row chunk
  const int64_t mchunks = (mblocks + mcb - 1) / mcb;
  std::vector<int32_t> acc(size_t(nblocks * mblocks) * mrx * kNb);
  for (int64_t kb = 0; kb < kblocks; ++kb) {  // one parallel loop per K block
    const int64_t p0 = kb * kKcPairs, np_ = std::min<int64_t>(kKcPairs, pairs - p0);
    const bool last = kb == kblocks - 1;
    parallel_for_chunks(mchunks * nblocks, [&](int64_t task) {
      // consecutive tasks share a chunk of rows, whose K slice then stays in L2
      const int64_t t = task % nblocks, mc = task / nblocks;
      const int64_t n0 = t * kNb;
      const int nc = int(std::min<int64_t>(kNb, n - n0));
      const int8_t* w = wpacked + (n0 / 8) * panel_stride + p0 * 16;
      const int64_t mb_end = std::min(mblocks, (mc + 1) * mcb);
      for (int64_t mb = mc * mcb; mb < mb_end; ++mb) {
        const int64_t m0 = mb * mrx;
        const int mr = int(std::min<int64_t>(mrx, m - m0));
        int32_t* tile = acc.data() + size_t(t * mblocks + mb) * mrx * kNb;
        tile_fn(xq + m0 * kp + 2 * p0, kp, mr, w, panel_stride, (nc + 7) / 8, np_, tile, kb > 0);
        if (last) epilogue(tile, m0, mr, n0, nc, n, ep);
      }
    });
  }
}

namespace {
// Quantizes the m rows of x (row length k) by quant_row(i, row) on the pool, the outlier
// columns zeroed first (they go through the float path).
template <class QuantRow>
void quantize_rows_without_outliers(const float* x, int64_t m, int64_t k,
                                    const int64_t* outlier_cols, int64_t n_out,
                                    const QuantRow& quant_row) {
  // Rows of at least ~32k values per piece: a smaller quantization stays on the caller.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(k, 1));
  parallel_for_range(m, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> row(n_out > 0 ? size_t(k) : 0);
    for (int64_t i = i0; i < i1; ++i) {
      const float* src = x + i * k;
      if (n_out > 0) {
        std::memcpy(row.data(), src, size_t(k) * sizeof(float));
        for (int64_t c = 0; c < n_out; ++c) row[size_t(outlier_cols[c])] = 0.0f;
        src = row.data();
      }
      quant_row(i, src);
    }
  });
}
}  // namespace

void int8_quantize_rows(const float* x, int64_t m, int64_t k, int64_t kp,
                        const int64_t* outlier_cols, int64_t n_out, int16_t* q, float* scale) {
  const QuantFn qf = pick_quant();
  quantize_rows_without_outliers(x, m, k, outlier_cols, n_out, [&](int64_t i, const float* src) {
    qf(src, k, kp, q + i * kp, scale + i);
  });
}

void int8_quantize_row(const float* x, int64_t k, int64_t kp, int16_t* q, float* scale) {
  pick_quant()(x, k, kp, q, scale);
}

bool int8_vnni_enabled() {
#ifdef MATKERN_BUILD_AVX512
  const char* tile = std::getenv("MATKERN_INT8_TILE");
  return simd_level() >= Simd::avx512_vnni && !(tile && std::strcmp(tile, "vpdpwssd") == 0);
#else
  return false;
#endif
}

const char* int8_tile_name() {
  if (int8_vnni_enabled()) return "vpdpbusd";
  const TileFn f = pick_tile(kMr + 1).fn;  // the tile of a product of more than 6 rows
#ifdef MATKERN_BUILD_AVX512
  if (f == &avx512::gemm_tile) return "vpdpwssd";
#endif
#ifdef MATKERN_BUILD_AVX2
  if (f == &avx2::gemm_tile) return "avx2";
#endif
  return "portable";
}

void int8_quantize_rows_u8(const float* x, int64_t m, int64_t k, int64_t ldx,
                           const int64_t* outlier_cols, int64_t n_out, uint8_t* q, float* scale) {
#ifdef MATKERN_BUILD_AVX512
  quantize_rows_without_outliers(x, m, k, outlier_cols, n_out, [&](int64_t i, const float* src) {
    avx512::quantize_row_u8(src, k, ldx, q + i * ldx, scale + i);
  });
#else
  (void)x, (void)m, (void)k, (void)ldx, (void)outlier_cols, (void)n_out, (void)q, (void)scale;
#endif
}

void int8_offset_rows(const int8_t* a, int64_t m, int64_t k, int64_t ldx, uint8_t* q) {
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(k, 1));
  parallel_for_range(m, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = 0; j < k; ++j) q[i * ldx + j] = uint8_t(a[i * k + j] ^ 0x80);
      for (int64_t j = k; j < ldx; ++j) q[i * ldx + j] = 128;
    }
  });
}

void int8_gemm_vnni(const Int8VnniGemm& g, const Int8Epilogue& ep) {
#ifdef MATKERN_BUILD_AVX512
  // Tasks: super-panels x chunks of rows of equal size (a multiple of the tile's 6 rows, at
  // most kInt8VnniRowChunk); consecutive tasks share a chunk, whose rows then stay in L2.
  const int64_t nsp = (g.n + kInt8VnniCols - 1) / kInt8VnniCols;
  const int64_t nchunks = (g.m + kInt8VnniRowChunk - 1) / kInt8VnniRowChunk;
  const int64_t per = (g.m + nchunks - 1) / nchunks;
  const int64_t rows = (per + kInt8VnniMr - 1) / kInt8VnniMr * kInt8VnniMr;
  parallel_for_chunks(nsp * nchunks, [&](int64_t t) {
    const int64_t sp = t % nsp, r0 = (t / nsp) * rows;
    if (r0 < g.m) avx512::vnni_task(g, ep, sp, r0, std::min(g.m, r0 + rows));
  });
#else
  (void)g, (void)ep;
#endif
}

void int8_outlier_flags(const float* x, int64_t m, int64_t k, float threshold, uint8_t* hit) {
  // Blocks of 1024 columns, each over all rows (1 KiB-long runs): the flags of a block are
  // written by one piece only.
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (k + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(m * kBlock, 1));
  parallel_for_range(blocks, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kBlock, j1 = std::min(k, j0 + kBlock);
#ifdef MATKERN_BUILD_AVX512
      if (simd_level() >= Simd::avx512_vnni) {
        avx512::outlier_flag_block(x + j0, m, k, j1 - j0, threshold, hit + j0);
        continue;
      }
#endif
      // the largest |x| of each column (NaN never compares greater, so it is never kept):
      // a select per entry, which vectorizes where a byte OR of compares did not
      float mx[kBlock];
      std::fill(mx, mx + (j1 - j0), 0.0f);
      for (int64_t i = 0; i < m; ++i) {
        const float* xr = x + i * k + j0;
        for (int64_t j = 0; j < j1 - j0; ++j) {
          const float a = std::fabs(xr[j]);
          mx[j] = a > mx[j] ? a : mx[j];
        }
      }
      for (int64_t j = 0; j < j1 - j0; ++j) hit[j0 + j] = uint8_t(mx[j] >= threshold);
    }
  });
}

void int8_vnni_columns(const int8_t* w, int64_t kq, int64_t n, const float* scale,
                       const int64_t* cols, int64_t n_cols, float* wot) {
#ifdef MATKERN_BUILD_AVX512
  if (simd_level() >= Simd::avx512_vnni)
    return avx512::vnni_columns(w, kq, n, scale, cols, n_cols, wot);
#endif
  const int64_t n16 = (n + 15) / 16 * 16;
  for (int64_t c = 0; c < n_cols; ++c) {
    const int64_t k = cols[c];
    for (int64_t r = 0; r < n; ++r) {
      const int64_t s = r / kInt8VnniCols,
                    width = std::min<int64_t>(kInt8VnniCols, n16 - s * kInt8VnniCols);
      const int8_t code =
          w[s * kInt8VnniCols * kq + (k / 4) * width * 4 + (r % kInt8VnniCols) * 4 + k % 4];
      wot[c * n + r] = float(double(code) * (double(scale[r]) / 127.0));
    }
  }
}

void int8_widen(const int8_t* a, int64_t m, int64_t k, int64_t kp, int16_t* q) {
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(k, 1));
  parallel_for_range(m, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = 0; j < k; ++j) q[i * kp + j] = a[i * k + j];
      for (int64_t j = k; j < kp; ++j) q[i * kp + j] = 0;
    }
  });
}

}  // namespace matkern
