// The fused LSQR pass over a dense tall A (sketch.hpp: dense_lsqr_pass). LSQR's products
// A v and A^T u each stream A from memory; here the pass computes both, so a step reads A
// once instead of twice. The rows' arithmetic: AVX2/FMA in sketch_lsqr_avx2.cpp, these
// portable loops otherwise.
#include <algorithm>
#include <cstring>
#include <vector>

#include "parallel.hpp"
#include "simd.hpp"
#include "sketch.hpp"

namespace matkern {
namespace {

constexpr int kLanes = 8;  // independent partial sums per dot product (vectorizable)

// Dots of rows a[0..R) (length n) with t, each summed in kLanes lanes then lane by lane:
// a fixed order, the same on every machine.
template <int R, typename T>
inline void dots(const T* const* rows, const double* t, int64_t n, double* out) {
  double acc[R][kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int q = 0; q < R; ++q)
      for (int l = 0; l < kLanes; ++l) acc[q][l] += double(rows[q][j + l]) * t[j + l];
  for (int q = 0; q < R; ++q) {
    double s = 0.0;
    for (int l = 0; l < kLanes; ++l) s += acc[q][l];
    for (int64_t jj = j; jj < n; ++jj) s += double(rows[q][jj]) * t[jj];
    out[q] = s;
  }
}

// z += sum_q d[q] rows[q], added in q order (as the AVX2 copy's FMA chain).
template <int R, typename T>
inline void axpys(const T* const* rows, const double* d, int64_t n, double* z) {
  for (int64_t j = 0; j < n; ++j) {
    double s = z[j];
    for (int q = 0; q < R; ++q) s += d[q] * double(rows[q][j]);
    z[j] = s;
  }
}

#include "sketch_lsqr_rows.inl"

}  // namespace

template <typename T>
void dense_lsqr_pass(const T* a, int64_t m, int64_t n, const double* t, int64_t r, const double* w,
                     const double* c, double* y, double* z) {
  // Pieces of at least 512 rows and at most 256 of them: many per thread for the pool's
  // dynamic hand-out, partial sums of z small (256 r n doubles), and a count set by m alone.
  const int64_t rows = std::max<int64_t>(512, (m + 255) / 256);
  const int64_t pieces = std::max<int64_t>(1, (m + rows - 1) / rows);
  std::vector<double> partial(static_cast<size_t>(pieces * r * n));
#ifdef MATKERN_BUILD_AVX2
  const bool wide = simd_level() >= Simd::avx2;
#endif
  parallel_for_chunks(pieces, [&](int64_t p) {
    const int64_t i0 = p * rows, i1 = std::min(m, i0 + rows);
    double* zp = partial.data() + p * r * n;
#ifdef MATKERN_BUILD_AVX2
    if (wide) return avx2::lsqr_piece(a, i0, i1, n, t, r, w, c, y, zp);
#endif
    lsqr_rows(a, i0, i1, n, t, r, w, c, y, zp);
  });
  std::memcpy(z, partial.data(), sizeof(double) * size_t(r * n));
  for (int64_t p = 1; p < pieces; ++p) {
    const double* zp = partial.data() + p * r * n;
    for (int64_t j = 0; j < r * n; ++j) z[j] += zp[j];
  }
}

template void dense_lsqr_pass<float>(const float*, int64_t, int64_t, const double*, int64_t,
                                     const double*, const double*, double*, double*);
template void dense_lsqr_pass<double>(const double*, int64_t, int64_t, const double*, int64_t,
                                      const double*, const double*, double*, double*);

}  // namespace matkern
