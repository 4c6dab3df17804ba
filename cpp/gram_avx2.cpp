// AVX2/FMA copy of the fused per-matrix Gram iteration (same source as the portable copy,
// compiled with -mavx2 -mfma: the inner dot products vectorize 8 floats / 4 doubles wide).
#include <immintrin.h>
#include <math.h>

#include "avx2_transpose.hpp"
#include "gram.hpp"

namespace matkern {
namespace avx2 {
namespace gram_impl {

// Explicit 4 x 8 float tile (the common case: complex64 conv matrices, float32 layers): eight
// ymm accumulators, two loads and eight broadcasts per step of l.
static bool tile_hook(const float* btr, const float* bti, long long cp, long long k, long long i0,
                      long long j0, float (&sr)[4][8], float (&si)[4][8]) {
  __m256 ar0 = _mm256_setzero_ps(), ar1 = ar0, ar2 = ar0, ar3 = ar0;
  __m256 ai0 = ar0, ai1 = ar0, ai2 = ar0, ai3 = ar0;
  if (!bti) {
    // Real: l unrolled by two into a second set of accumulators (eight chains, so that the
    // FMA latency does not stall them); summed at the end.
    __m256 br0 = ar0, br1 = ar0, br2 = ar0, br3 = ar0;
    long long l = 0;
    for (; l + 2 <= k; l += 2) {
      const float* r = btr + l * cp;
      const float* t = r + cp;
      const __m256 b = _mm256_loadu_ps(r + j0), c = _mm256_loadu_ps(t + j0);
      ar0 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0), b, ar0);
      ar1 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0 + 1), b, ar1);
      ar2 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0 + 2), b, ar2);
      ar3 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0 + 3), b, ar3);
      br0 = _mm256_fmadd_ps(_mm256_broadcast_ss(t + i0), c, br0);
      br1 = _mm256_fmadd_ps(_mm256_broadcast_ss(t + i0 + 1), c, br1);
      br2 = _mm256_fmadd_ps(_mm256_broadcast_ss(t + i0 + 2), c, br2);
      br3 = _mm256_fmadd_ps(_mm256_broadcast_ss(t + i0 + 3), c, br3);
    }
    if (l < k) {
      const float* r = btr + l * cp;
      const __m256 b = _mm256_loadu_ps(r + j0);
      ar0 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0), b, ar0);
      ar1 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0 + 1), b, ar1);
      ar2 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0 + 2), b, ar2);
      ar3 = _mm256_fmadd_ps(_mm256_broadcast_ss(r + i0 + 3), b, ar3);
    }
    ar0 = _mm256_add_ps(ar0, br0);
    ar1 = _mm256_add_ps(ar1, br1);
    ar2 = _mm256_add_ps(ar2, br2);
    ar3 = _mm256_add_ps(ar3, br3);
  } else {
    for (long long l = 0; l < k; ++l) {
      const float* r = btr + l * cp;
      const float* m = bti + l * cp;
      const __m256 br = _mm256_loadu_ps(r + j0), bi = _mm256_loadu_ps(m + j0);
      __m256 a = _mm256_broadcast_ss(r + i0), b = _mm256_broadcast_ss(m + i0);
      ar0 = _mm256_fmadd_ps(b, bi, _mm256_fmadd_ps(a, br, ar0));
      ai0 = _mm256_fnmadd_ps(a, bi, _mm256_fmadd_ps(b, br, ai0));
      a = _mm256_broadcast_ss(r + i0 + 1), b = _mm256_broadcast_ss(m + i0 + 1);
      ar1 = _mm256_fmadd_ps(b, bi, _mm256_fmadd_ps(a, br, ar1));
      ai1 = _mm256_fnmadd_ps(a, bi, _mm256_fmadd_ps(b, br, ai1));
      a = _mm256_broadcast_ss(r + i0 + 2), b = _mm256_broadcast_ss(m + i0 + 2);
      ar2 = _mm256_fmadd_ps(b, bi, _mm256_fmadd_ps(a, br, ar2));
      ai2 = _mm256_fnmadd_ps(a, bi, _mm256_fmadd_ps(b, br, ai2));
      a = _mm256_broadcast_ss(r + i0 + 3), b = _mm256_broadcast_ss(m + i0 + 3);
      ar3 = _mm256_fmadd_ps(b, bi, _mm256_fmadd_ps(a, br, ar3));
      ai3 = _mm256_fnmadd_ps(a, bi, _mm256_fmadd_ps(b, br, ai3));
    }
  }
  _mm256_storeu_ps(sr[0], ar0);
  _mm256_storeu_ps(sr[1], ar1);
  _mm256_storeu_ps(sr[2], ar2);
  _mm256_storeu_ps(sr[3], ar3);
  _mm256_storeu_ps(si[0], ai0);
  _mm256_storeu_ps(si[1], ai1);
  _mm256_storeu_ps(si[2], ai2);
  _mm256_storeu_ps(si[3], ai3);
  return true;
}
// Double: 8 columns are two 4-wide vectors. Real: 4 rows x 2 vectors, eight single-FMA
// chains. Complex: the rows in two pairs (two passes over l), each 2 rows x 2 vectors x
// (re, im) accumulators, as the float complex tile.
static bool tile_hook(const double* btr, const double* bti, long long cp, long long k, long long i0,
                      long long j0, double (&sr)[4][8], double (&si)[4][8]) {
  if (!bti) {
    __m256d a[4][2];
    for (int q = 0; q < 4; ++q) a[q][0] = a[q][1] = _mm256_setzero_pd();
    for (long long l = 0; l < k; ++l) {
      const double* r = btr + l * cp;
      const __m256d b0 = _mm256_loadu_pd(r + j0), b1 = _mm256_loadu_pd(r + j0 + 4);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m256d x = _mm256_broadcast_sd(r + i0 + q);
        a[q][0] = _mm256_fmadd_pd(x, b0, a[q][0]);
        a[q][1] = _mm256_fmadd_pd(x, b1, a[q][1]);
      }
    }
    for (int q = 0; q < 4; ++q) {
      _mm256_storeu_pd(sr[q], a[q][0]);
      _mm256_storeu_pd(sr[q] + 4, a[q][1]);
      _mm256_storeu_pd(si[q], _mm256_setzero_pd());
      _mm256_storeu_pd(si[q] + 4, _mm256_setzero_pd());
    }
    return true;
  }
  for (int h = 0; h < 4; h += 2) {
    __m256d re[2][2], im[2][2];
    for (int q = 0; q < 2; ++q) re[q][0] = re[q][1] = im[q][0] = im[q][1] = _mm256_setzero_pd();
    for (long long l = 0; l < k; ++l) {
      const double* r = btr + l * cp;
      const double* m = bti + l * cp;
      const __m256d r0 = _mm256_loadu_pd(r + j0), r1 = _mm256_loadu_pd(r + j0 + 4);
      const __m256d m0 = _mm256_loadu_pd(m + j0), m1 = _mm256_loadu_pd(m + j0 + 4);
#pragma GCC unroll 2
      for (int q = 0; q < 2; ++q) {
        const __m256d x = _mm256_broadcast_sd(r + i0 + h + q);
        const __m256d y = _mm256_broadcast_sd(m + i0 + h + q);
        re[q][0] = _mm256_fmadd_pd(y, m0, _mm256_fmadd_pd(x, r0, re[q][0]));
        re[q][1] = _mm256_fmadd_pd(y, m1, _mm256_fmadd_pd(x, r1, re[q][1]));
        im[q][0] = _mm256_fnmadd_pd(x, m0, _mm256_fmadd_pd(y, r0, im[q][0]));
        im[q][1] = _mm256_fnmadd_pd(x, m1, _mm256_fmadd_pd(y, r1, im[q][1]));
      }
    }
    for (int q = 0; q < 2; ++q) {
      _mm256_storeu_pd(sr[h + q], re[q][0]);
      _mm256_storeu_pd(sr[h + q] + 4, re[q][1]);
      _mm256_storeu_pd(si[h + q], im[q][0]);
      _mm256_storeu_pd(si[h + q] + 4, im[q][1]);
    }
  }
  return true;
}

// 8 x 8 float transpose (negated when neg) in registers.
static bool mirror_hook(const float* src, float* dst, long long cp, bool neg) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * cp);
  transpose8x8(r);
  const __m256 sign = _mm256_set1_ps(neg ? -0.0f : 0.0f);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * cp, _mm256_xor_ps(r[i], sign));
  return true;
}
static bool mirror_hook(const double*, double*, long long, bool) { return false; }

#define MATKERN_GRAM_MIRROR 1
#define MATKERN_GRAM_TILE 1
#include "gram_kernel.inc"
#undef MATKERN_GRAM_TILE
#undef MATKERN_GRAM_MIRROR
}  // namespace gram_impl

double gram_bound_one(const float* a, int64_t m, int64_t n, bool cplx, int n_iter, float* work,
                      double* lower, double stop_below) {
  return gram_impl::bound_one<float>(a, m, n, cplx, n_iter, work, lower, stop_below,
                                     ldexp(1.0, -24));
}
double gram_bound_one(const double* a, int64_t m, int64_t n, bool cplx, int n_iter, double* work,
                      double* lower, double stop_below) {
  return gram_impl::bound_one<double>(a, m, n, cplx, n_iter, work, lower, stop_below,
                                      ldexp(1.0, -53));
}

double gram_conv_freq(const double* taps, int64_t T, int64_t ld, const double* cs, const double* sn,
                      bool round32, int64_t c_out, int64_t c_in, double fro, int n_iter,
                      float* work, double stop_below) {
  return gram_impl::bound_conv_freq<float>(taps, T, ld, cs, sn, round32, c_out, c_in, fro, n_iter,
                                           work, stop_below, ldexp(1.0, -24));
}
double gram_conv_freq(const double* taps, int64_t T, int64_t ld, const double* cs, const double* sn,
                      bool round32, int64_t c_out, int64_t c_in, double fro, int n_iter,
                      double* work, double stop_below) {
  return gram_impl::bound_conv_freq<double>(taps, T, ld, cs, sn, round32, c_out, c_in, fro, n_iter,
                                            work, stop_below, ldexp(1.0, -53));
}
void gram_dft_taps(const double* taps, int64_t T, int64_t P, int64_t ld, const double* cs,
                   const double* sn, bool round32, float* out) {
  gram_impl::dft_taps_one<float>(taps, T, P, ld, cs, sn, round32, out);
}
void gram_dft_taps(const double* taps, int64_t T, int64_t P, int64_t ld, const double* cs,
                   const double* sn, bool round32, double* out) {
  gram_impl::dft_taps_one<double>(taps, T, P, ld, cs, sn, round32, out);
}

void gram_tap_pair_sum(const double* taps, int64_t ld, int64_t ro, int64_t c, const long long* pt,
                       const long long* pu, int64_t npair, double* M) {
  gram_impl::tap_pair_sum(taps, ld, ro, c, pt, pu, npair, M);
}
// gram1_rows (gram_kernel.inc) with its 16-entry blocks in eight ymm accumulators (GCC had
// kept the plain arrays' sums on the stack, at a third of this speed).
void gram_first_rows(const double* SA, int64_t nd, int64_t c, const double* pc, const double* ps,
                     int64_t nb, double* out) {
  if (c % 16) {
    gram_impl::gram1_rows(SA, nd, c, pc, ps, nb, out);
    return;
  }
  const int64_t c2 = c * c, nm = 1 + 2 * nd;
  for (int64_t i = 0; i < c; ++i) {
    const double* row = SA + i * nm * c;
    for (int64_t f = 0; f < nb; ++f) {
      double* re = out + f * 2 * c2 + i * c;
      double* im = re + c2;
      const double* cf = pc + f * nd;
      const double* sf = ps + f * nd;
      for (int64_t j0 = 0; j0 <= i; j0 += 16) {
        const double* s0 = row + j0;
        __m256d r0 = _mm256_loadu_pd(s0), r1 = _mm256_loadu_pd(s0 + 4);
        __m256d r2 = _mm256_loadu_pd(s0 + 8), r3 = _mm256_loadu_pd(s0 + 12);
        __m256d m0 = _mm256_setzero_pd(), m1 = m0, m2 = m0, m3 = m0;
        for (int64_t d = 0; d < nd; ++d) {
          const __m256d cd = _mm256_broadcast_sd(cf + d), sd = _mm256_broadcast_sd(sf + d);
          const double* sp = row + (1 + d) * c + j0;
          const double* ap = row + (1 + nd + d) * c + j0;
          r0 = _mm256_fmadd_pd(_mm256_loadu_pd(sp), cd, r0);
          r1 = _mm256_fmadd_pd(_mm256_loadu_pd(sp + 4), cd, r1);
          r2 = _mm256_fmadd_pd(_mm256_loadu_pd(sp + 8), cd, r2);
          r3 = _mm256_fmadd_pd(_mm256_loadu_pd(sp + 12), cd, r3);
          m0 = _mm256_fmadd_pd(_mm256_loadu_pd(ap), sd, m0);
          m1 = _mm256_fmadd_pd(_mm256_loadu_pd(ap + 4), sd, m1);
          m2 = _mm256_fmadd_pd(_mm256_loadu_pd(ap + 8), sd, m2);
          m3 = _mm256_fmadd_pd(_mm256_loadu_pd(ap + 12), sd, m3);
        }
        _mm256_storeu_pd(re + j0, r0);
        _mm256_storeu_pd(re + j0 + 4, r1);
        _mm256_storeu_pd(re + j0 + 8, r2);
        _mm256_storeu_pd(re + j0 + 12, r3);
        _mm256_storeu_pd(im + j0, m0);
        _mm256_storeu_pd(im + j0 + 4, m1);
        _mm256_storeu_pd(im + j0 + 8, m2);
        _mm256_storeu_pd(im + j0 + 12, m3);
      }
    }
  }
}
double gram_bound_first(const double* g, int64_t c, int n_iter, float* work, double stop_below,
                        double del64, const float* a, int64_t m, int64_t n, double* lower) {
  return gram_impl::bound_gram1<float>(g, c, n_iter, work, stop_below, del64, ldexp(1.0, -24), a, m,
                                       n, lower);
}
double gram_bound_first(const double* g, int64_t c, int n_iter, double* work, double stop_below,
                        double del64, const double* a, int64_t m, int64_t n, double* lower) {
  return gram_impl::bound_gram1<double>(g, c, n_iter, work, stop_below, del64, ldexp(1.0, -53), a,
                                        m, n, lower);
}

}  // namespace avx2
}  // namespace matkern
