// lut_matmul(compute="int8") on the CPU: X quantized per row to int8 codes by absmax (as
// int8_matmul quantizes it), the table to int8 (t8 = table * tfac, exact where the table
// allows it), exact integer dot products per group, and a float finish:
//   y[i, n] = (sum_g scale[n, g] * S[i, n, g]) * absmax[i] / 127 / tfac (+ bias[n]),
//   S[i, n, g] = sum over k in group g of x8[i, k] * t8[code[n, k]]   (int32, exact).
// 4-bit codes with groups and K multiples of 128 take the AVX-512 VNNI kernel
// (lut_i8_avx512.cpp: vpshufb lookups, vpdpbusd products); others a portable loop over the
// rows decoded by portable::decode_rows.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "int8.hpp"
#include "lut.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace matkern {
namespace {

constexpr int64_t kRowChunk = 32;  // weight rows per task

bool i8_avx512_fits(int bits, int gs, int64_t K) {
#ifdef MATKERN_BUILD_AVX512
  return bits == 4 && gs % 128 == 0 && K % 128 == 0 && simd_level() >= Simd::avx512_vnni;
#else
  (void)bits, (void)gs, (void)K;
  return false;
#endif
}

// Column (within a 128-column chunk of a row, _lut_layout's pairs of blocks) of byte b's low
// nibble (hi = 0) or high nibble (hi = 1): byte b of pair b / 32 is index byte q = b % 32,
// which holds code CPU_POS^-1[q] of the pair's even block (low nibble) or odd block (high).
inline int chunk_col(int b, int hi) {
  const int q = b & 31;
  const int col = q < 16 ? (q >> 2) * 8 + (q & 3) : ((q - 16) >> 2) * 8 + 4 + (q & 3);
  return 64 * (b >> 5) + 32 * hi + col;
}

// Finishes rows [n0, n0 + nr) of output row i from the raw group sums raw[r] (float from the
// AVX-512 kernel, double from the portable loop; the product is taken in double either way).
template <typename T>
void finish(const T* raw, int64_t i, int64_t n0, int nr, double rowfac, const float* bias,
            int64_t N, float* out) {
  for (int r = 0; r < nr; ++r) {
    const float v = float(double(raw[r]) * rowfac);
    out[i * N + n0 + r] = bias ? v + bias[n0 + r] : v;
  }
}

}  // namespace

const char* lut_i8_kernel_name() {
  return i8_avx512_fits(4, 128, 128) ? "avx512_vnni" : "portable";
}

void lut_matmul_i8(const float* x, int64_t M, int64_t K, const uint32_t* packed,
                   const float* scales, const int8_t* t8, double tfac, int bits, int gs, int64_t N,
                   const float* bias, float* out) {
  // X's codes and absmax per row: the int8 family's quantizer (NaN/Inf rows: absmax NaN,
  // codes 0, so that the output row is NaN)
  std::vector<int16_t> q16(size_t(M * K));
  std::vector<float> sx(static_cast<size_t>(M));
  int8_quantize_rows(x, M, K, K, nullptr, 0, q16.data(), sx.data());
  std::vector<double> rowfac(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) rowfac[size_t(i)] = double(sx[size_t(i)]) / 127.0 / tfac;
  const int64_t ngroups = (K + gs - 1) / gs, wpr = K / 32 * bits;
  const int64_t tasks = (N + kRowChunk - 1) / kRowChunk;
#ifdef MATKERN_BUILD_AVX512
  if (i8_avx512_fits(bits, gs, K)) {
    // X's codes in the kernel's order (per 128-column chunk: the low nibbles' 64 columns,
    // then the high nibbles'), and per group and lane of the kernel's accumulator -128 x the
    // sum of the codes that lane multiplies (the u8 weights' offset): each lane then holds an
    // exact sum of t8 x x8 products alone, of their magnitude (with the offset left in, a lane
    // carried ~128 x more, which the float conversion and sums rounded)
    // rows ldx bytes apart: K + 64 where K is a multiple of 1 KiB, so that the rows a pass
    // reads at once do not share L1 sets
    const int64_t ldx = K % 1024 ? K : K + 64;
    std::vector<int8_t> xp(size_t(M * ldx));
    // corrections pass-major, then group, then row of the pass (one contiguous run per pass;
    // group-major runs of all M rows had 1 KiB strides that fell into few L1 sets), on 64-byte
    // boundaries (whole-line loads)
    constexpr int64_t kMr = avx512::kLutI8Mr;
    const int64_t npass = (M + kMr - 1) / kMr;
    std::vector<int32_t> corr_buf(size_t(npass * ngroups * kMr * 16 + 16), 0);
    int32_t* xcorr =
        corr_buf.data() + (16 - (reinterpret_cast<uintptr_t>(corr_buf.data()) / 4) % 16) % 16;
    int src[128];
    for (int j = 0; j < 128; ++j) src[j] = chunk_col(j & 63, j >> 6);
    parallel_for_range(M, std::max<int64_t>(1, 32768 / K), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t c = 0; c < K / 128; ++c) {
          const int16_t* q = q16.data() + i * K + 128 * c;
          int8_t* d = xp.data() + i * ldx + 128 * c;
          int32_t* corr = xcorr + (((i / kMr) * ngroups + 128 * c / gs) * kMr + i % kMr) * 16;
          int32_t lane[16] = {};
          for (int j = 0; j < 128; ++j) {
            d[j] = int8_t(q[src[j]]);
            lane[(j & 63) >> 2] += d[j];  // byte j of a 64-byte vector: lane j / 4
          }
          for (int l = 0; l < 16; ++l) corr[l] -= 128 * lane[l];
        }
    });
    uint8_t lut[16];
    for (int c = 0; c < 16; ++c) lut[c] = uint8_t(int(t8[c]) + 128);
    parallel_for_chunks(tasks, [&](int64_t t) {
      const int64_t n0 = t * kRowChunk;
      const int nr = int(std::min<int64_t>(kRowChunk, N - n0));
      float raw[kMr * kRowChunk];
      for (int64_t i0 = 0; i0 < M; i0 += kMr) {
        const int mr = int(std::min<int64_t>(kMr, M - i0));
        avx512::lut4_i8_rows(xp.data() + i0 * ldx, ldx, K, mr,
                             xcorr + (i0 / kMr) * ngroups * kMr * 16, kMr * 16, ngroups,
                             packed + n0 * wpr, wpr, scales + n0 * ngroups, lut, gs, nr, raw);
        for (int i = 0; i < mr; ++i)
          finish(raw + i * kRowChunk, i0 + i, n0, nr, rowfac[size_t(i0 + i)], bias, N, out);
      }
    });
    return;
  }
#endif
  // Portable: each row decoded to its t8 values (as floats, exact), then integer sums.
  float tf[16];
  for (int c = 0; c < (1 << bits); ++c) tf[c] = float(t8[c]);
  const std::vector<float> ones(size_t(ngroups), 1.0f);
  parallel_for_chunks(tasks, [&](int64_t t) {
    const int64_t n0 = t * kRowChunk;
    const int nr = int(std::min<int64_t>(kRowChunk, N - n0));
    std::vector<float> wrow(static_cast<size_t>(K));
    std::vector<double> raw(size_t(M * nr));
    for (int r = 0; r < nr; ++r) {
      const int64_t n = n0 + r;
      portable::decode_rows(packed + n * wpr, wpr, ones.data(), ngroups, tf, bits, gs, 0, ngroups,
                            1, wrow.data(), K);
      for (int64_t i = 0; i < M; ++i) {
        const int16_t* xi = q16.data() + i * K;
        double acc = 0.0;
        for (int64_t g = 0; g < ngroups; ++g) {
          int64_t s = 0;
          for (int64_t k = g * gs; k < std::min<int64_t>(K, (g + 1) * gs); ++k)
            s += int64_t(xi[k]) * int64_t(wrow[size_t(k)]);
          acc += double(scales[n * ngroups + g]) * double(s);
        }
        raw[size_t(i * nr + r)] = acc;
      }
    }
    for (int64_t i = 0; i < M; ++i)
      finish(raw.data() + i * nr, i, n0, nr, rowfac[size_t(i)], bias, N, out);
  });
}

}  // namespace matkern
