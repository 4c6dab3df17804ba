// Rotate, then quantize, one row at a time (rotate_quant.hpp). The transform of a row runs in
// a per-thread scratch row (n floats: 16 KiB at n = 4096, in L1/L2) by the row kernels that
// fwht uses, chosen the same way, so each value is computed exactly as in the unfused path.
#include "rotate_quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "hadamard.hpp"
#include "int8.hpp"
#include "parallel.hpp"
#include "scratch.hpp"
#include "simd.hpp"

namespace matkern {
namespace {

struct RotateScratchTag {};
struct FjltScratchTag {};

// v rounded to float16 precision (round to nearest, ties to even) and back: what
// numpy's astype(float16).astype(float32) gives, without F16C. NaN and Inf stay. Branch free
// (selects), so that the loop over a row vectorizes.
inline float round_to_f16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  const uint32_t a = u & 0x7fffffffu;
  // normal float16 range: keep 10 of the 23 mantissa bits, ties to even (a carry may bump
  // the exponent, up to 65536 = 0x47800000, which the overflow select replaces by Inf)
  const uint32_t nb = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
  float av, nr;
  std::memcpy(&av, &a, 4);
  std::memcpy(&nr, &nb, 4);
  // float16 subnormals (|v| < 2^-14): multiples of 2^-24, which is the ulp of av + 0.5
  const float sr = (av + 0.5f) - 0.5f;
  float r = a < 0x38800000u ? sr : nr;
  r = a >= 0x477ff000u ? INFINITY : r;  // from 65520 on: past float16's largest, 65504
  r = a >= 0x7f800000u ? av : r;        // NaN and Inf as they are
  uint32_t rb;
  std::memcpy(&rb, &r, 4);
  rb |= u & 0x80000000u;
  std::memcpy(&r, &rb, 4);
  return r;
}

// The rotation of one row, prepared once per call: the row kernel and the scale; for float32
// where it runs (mixed_rows16_enabled), the AVX-512 kernel that rotates 16 rows at once.
template <typename T>
struct RowKernel {
  RowRotation<T> r;
  int64_t n;
  T s;
  MixedRowFn<T> mixed;
  bool rows16;

  explicit RowKernel(const RowRotation<T>& rot)
      : r(rot),
        n(rot.m * rot.p),
        s(rot.normalize ? T(1.0 / std::sqrt(double(rot.m * rot.p))) : T(1)),
        mixed(rot.m > 1 ? pick_mixed_row<T>() : nullptr),
        rows16(std::is_same_v<T, float> && mixed_rows16_enabled(rot.m, rot.p)) {}

  // Rows per call of rows().
  int64_t batch() const { return rows16 ? 16 : 1; }

  // Scratch elements per thread for rows(): the batch of rotated rows (batch() x n) and the
  // kernels' own (the 16-row kernel's, or the H_m stage's 4 blocks).
  size_t scratch() const {
    size_t work = size_t(4 * r.mp);
#ifdef MATKERN_BUILD_AVX512
    if (rows16) work = std::max(work, size_t(avx512::mixed_rows16_scratch(r.m, r.p)));
#endif
    return size_t(batch() * n) + work;
  }

  // z (n) = the rotated row of x (length d <= n, zero padded); tmp: 4 * mp scratch. The
  // members are read into locals first: z might alias them otherwise, and the loops would
  // reload them every step instead of vectorizing.
  void operator()(const T* __restrict x, int64_t d, T* __restrict z, T* tmp) const {
    const T* __restrict signs = r.signs;
    const int64_t len = n;
    const T sc = s;
    if (signs) {
      for (int64_t j = 0; j < d; ++j) z[j] = x[j] * signs[j];
    } else {
      for (int64_t j = 0; j < d; ++j) z[j] = x[j];
    }
    for (int64_t j = d; j < len; ++j) z[j] = T(0);
    if (mixed) {
      mixed(z, r.m, r.p, r.ht, r.mp, tmp, sc);
    } else {
      fwht_row_serial<T>(z, len);
      if (sc != T(1))
        for (int64_t i = 0; i < len; ++i) z[i] *= sc;
    }
    round_row(z);
  }

  // out rows [0, rows) (ldo apart, n long) = the rotated rows of x (ldx apart, d <= n long),
  // rows <= batch(); work: the kernels' scratch (see scratch()). The 16-row kernel takes
  // groups of 4 rows or more (fewer cost it as much as 16); every value is the same either way.
  void rows(const T* x, int64_t ldx, int64_t d, int64_t nrows, T* out, int64_t ldo, T* work) const {
#ifdef MATKERN_BUILD_AVX512
    if constexpr (std::is_same_v<T, float>) {
      if (rows16 && nrows >= 4) {
        avx512::mixed_rows16(x, ldx, d, int(nrows), r.signs, r.m, r.p, r.ht, r.mp, s, work, out,
                             ldo);
        for (int64_t i = 0; i < nrows; ++i) round_row(out + i * ldo);
        return;
      }
    }
#endif
    for (int64_t i = 0; i < nrows; ++i) (*this)(x + i * ldx, d, out + i * ldo, work);
  }

 private:
  void round_row(T* z) const {
    if constexpr (std::is_same_v<T, float>)
      if (r.round_f16)
        for (int64_t i = 0; i < n; ++i) z[i] = round_to_f16(z[i]);
  }
};

// Rows per piece of the parallel loop: ~64k multiply-adds (the H_m stage costs m + log2 p per
// element), as fwht_mixed's grain; in whole batches.
template <typename T>
int64_t groups_grain(const RowKernel<T>& rk) {
  const int64_t rows = std::max<int64_t>(1, (int64_t(1) << 16) / (rk.n * (rk.r.m + 8)));
  return std::max<int64_t>(1, rows / rk.batch());
}

// body(i0, nrows, z, work) for each batch of rows [i0, i0 + nrows) on the pool, z holding
// batch() rows of n for it (per-thread scratch, tag Tag).
template <typename Tag, typename T, typename F>
void for_row_batches(const RowKernel<T>& rk, int64_t m_rows, const F& body) {
  const int64_t b = rk.batch();
  parallel_for_range((m_rows + b - 1) / b, groups_grain(rk), [&](int64_t g0, int64_t g1) {
    T* z = thread_scratch<Tag, T>(rk.scratch());
    for (int64_t g = g0; g < g1; ++g) body(g * b, std::min(b, m_rows - g * b), z, z + b * rk.n);
  });
}

}  // namespace

void rotate_quantize_int8(const float* x, int64_t m_rows, int64_t k, int64_t kp,
                          const RowRotation<float>& r, int16_t* q, float* scale) {
  const RowKernel<float> rk(r);
  for_row_batches<RotateScratchTag>(rk, m_rows, [&](int64_t i0, int64_t nr, float* z, float* w) {
    rk.rows(x + i0 * k, k, k, nr, z, rk.n, w);
    for (int64_t i = 0; i < nr; ++i)
      int8_quantize_row(z + i * rk.n, k, kp, q + (i0 + i) * kp, scale + i0 + i);
  });
}

void rotate_quantize_int8_u8(const float* x, int64_t m_rows, int64_t k, int64_t ldx,
                             const RowRotation<float>& r, uint8_t* q, float* scale) {
#ifdef MATKERN_BUILD_AVX512
  const RowKernel<float> rk(r);
  for_row_batches<RotateScratchTag>(rk, m_rows, [&](int64_t i0, int64_t nr, float* z, float* w) {
    rk.rows(x + i0 * k, k, k, nr, z, rk.n, w);
    for (int64_t i = 0; i < nr; ++i)
      avx512::quantize_row_u8(z + i * rk.n, k, ldx, q + (i0 + i) * ldx, scale + i0 + i);
  });
#else
  (void)x, (void)m_rows, (void)k, (void)ldx, (void)r, (void)q, (void)scale;
#endif
}

void rotate_rows_padded(const float* x, int64_t m_rows, int64_t k, int64_t ldo,
                        const RowRotation<float>& r, float* out) {
  const RowKernel<float> rk(r);
  // transformed straight into the output rows (z unused)
  for_row_batches<RotateScratchTag>(rk, m_rows, [&](int64_t i0, int64_t nr, float*, float* w) {
    rk.rows(x + i0 * k, k, k, nr, out + i0 * ldo, ldo, w);
    if (ldo > k)
      for (int64_t i = i0; i < i0 + nr; ++i)
        std::fill(out + i * ldo + k, out + (i + 1) * ldo, 0.0f);
  });
}

template <typename T>
void fjlt_mixed_transform(const T* x, int64_t rows, int64_t d, const RowRotation<T>& r,
                          const int64_t* p_indptr, const int32_t* p_indices, const T* p_data,
                          int64_t k, double scale, T* out) {
  const RowKernel<T> rk(r);
  const T sc = T(scale);
  for_row_batches<FjltScratchTag>(rk, rows, [&](int64_t r0, int64_t nr, T* zb, T* w) {
    rk.rows(x + r0 * d, d, d, nr, zb, rk.n, w);
    for (int64_t row = r0; row < r0 + nr; ++row) {
      const T* z = zb + (row - r0) * rk.n;
      T* o = out + row * k;
      for (int64_t i = 0; i < k; ++i) {  // the sparse gather, two chains (as fjlt_transform)
        T acc0 = 0, acc1 = 0;
        int64_t p = p_indptr[i];
        const int64_t e = p_indptr[i + 1];
        for (; p + 1 < e; p += 2) {
          acc0 += p_data[p] * z[p_indices[p]];
          acc1 += p_data[p + 1] * z[p_indices[p + 1]];
        }
        if (p < e) acc0 += p_data[p] * z[p_indices[p]];
        o[i] = sc * (acc0 + acc1);
      }
    }
  });
}

template void fjlt_mixed_transform<float>(const float*, int64_t, int64_t, const RowRotation<float>&,
                                          const int64_t*, const int32_t*, const float*, int64_t,
                                          double, float*);
template void fjlt_mixed_transform<double>(const double*, int64_t, int64_t,
                                           const RowRotation<double>&, const int64_t*,
                                           const int32_t*, const double*, int64_t, double, double*);

}  // namespace matkern
