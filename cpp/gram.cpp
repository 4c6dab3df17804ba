// Gram iteration on the CPU: the batch driver (threads over matrices, optional pruning for
// a max over the batch) and the normalization pass that the BLAS path runs between products.
#include "gram.hpp"

#include <math.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "parallel.hpp"
#include "simd.hpp"

namespace matkern {
namespace gram_portable {
#include "gram_kernel.inc"
}  // namespace gram_portable

namespace {

template <typename R>
double unit_roundoff() {
  return ldexp(1.0, sizeof(R) == 4 ? -24 : -53);
}

template <typename R>
using OneFn = double (*)(const R*, int64_t, int64_t, bool, int, R*, double*, double);

template <typename R>
double portable_one(const R* a, int64_t m, int64_t n, bool cplx, int n_iter, R* work, double* lower,
                    double stop_below) {
  return gram_portable::bound_one<R>(a, m, n, cplx, n_iter, work, lower, stop_below,
                                     unit_roundoff<R>());
}

template <typename R>
using DftFn = void (*)(const double*, int64_t, int64_t, int64_t, const double*, const double*, bool,
                       R*);

template <typename R>
void portable_dft(const double* taps, int64_t T, int64_t P, int64_t ld, const double* cs,
                  const double* sn, bool round32, R* out) {
  gram_portable::dft_taps_one<R>(taps, T, P, ld, cs, sn, round32, out);
}

template <typename R>
using FreqFn = double (*)(const double*, int64_t, int64_t, const double*, const double*, bool,
                          int64_t, int64_t, double, int, R*, double);

template <typename R>
double portable_freq(const double* taps, int64_t T, int64_t ld, const double* cs, const double* sn,
                     bool round32, int64_t c_out, int64_t c_in, double fro, int n_iter, R* work,
                     double stop_below) {
  return gram_portable::bound_conv_freq<R>(taps, T, ld, cs, sn, round32, c_out, c_in, fro, n_iter,
                                           work, stop_below, unit_roundoff<R>());
}

using PairFn = void (*)(const double*, int64_t, int64_t, int64_t, const long long*,
                        const long long*, int64_t, double*);
using RowsFn = void (*)(const double*, int64_t, int64_t, const double*, const double*, int64_t,
                        double*);
template <typename R>
using FirstFn = double (*)(const double*, int64_t, int, R*, double, double, const R*, int64_t,
                           int64_t, double*);

void portable_pair_sum(const double* taps, int64_t ld, int64_t ro, int64_t c, const long long* pt,
                       const long long* pu, int64_t npair, double* M) {
  gram_portable::tap_pair_sum(taps, ld, ro, c, pt, pu, npair, M);
}
void portable_rows(const double* SA, int64_t nd, int64_t c, const double* pc, const double* ps,
                   int64_t nb, double* out) {
  gram_portable::gram1_rows(SA, nd, c, pc, ps, nb, out);
}
template <typename R>
double portable_first(const double* g, int64_t c, int n_iter, R* work, double stop_below,
                      double del64, const R* a, int64_t m, int64_t n, double* lower) {
  return gram_portable::bound_gram1<R>(g, c, n_iter, work, stop_below, del64, unit_roundoff<R>(), a,
                                       m, n, lower);
}

// The AVX2 or the portable copy of every kernel, chosen once per call (as lut.cpp does).
template <typename R>
struct Kernels {
  OneFn<R> one;
  DftFn<R> dft;
  FreqFn<R> freq;
  PairFn pair_sum;
  RowsFn rows;
  FirstFn<R> first;
};

template <typename R>
Kernels<R> pick_kernels() {
#ifdef MATKERN_BUILD_AVX2
  if (simd_level() >= Simd::avx2)
    return {static_cast<OneFn<R>>(&avx2::gram_bound_one),
            static_cast<DftFn<R>>(&avx2::gram_dft_taps),
            static_cast<FreqFn<R>>(&avx2::gram_conv_freq),
            &avx2::gram_tap_pair_sum,
            &avx2::gram_first_rows,
            static_cast<FirstFn<R>>(&avx2::gram_bound_first)};
#endif
  return {&portable_one<R>,   &portable_dft<R>, &portable_freq<R>,
          &portable_pair_sum, &portable_rows,   &portable_first<R>};
}

// S_0 = M_0, S_d = M_d + M_d^T, A_d = M_d - M_d^T (d = 1..nd), each c x c, into SA with
// their rows interleaved (row i of each, then row i + 1 of each: see gram1_rows).
void tap_offset_sums(const GramTapFirst& tf, PairFn pair_sum, double* SA) {
  const int64_t c = tf.c, c2 = c * c, nd = tf.nd;
  std::vector<long long> pt(tf.pt, tf.pt + tf.start[nd + 1]), pu(tf.pu, tf.pu + tf.start[nd + 1]);
  parallel_for_range(nd + 1, 1, [&](int64_t d0, int64_t d1) {
    std::vector<double> M(static_cast<size_t>(c2));
    for (int64_t d = d0; d < d1; ++d) {
      const int64_t q0 = tf.start[d];
      pair_sum(tf.taps, tf.ld, tf.ro, c, pt.data() + q0, pu.data() + q0, tf.start[d + 1] - q0,
               M.data());
      const int64_t nm = 1 + 2 * nd;  // SA's rows interleaved (gram1_rows)
      for (int64_t i = 0; i < c; ++i) {
        double* S = SA + (i * nm + d) * c;
        double* A = SA + (i * nm + nd + d) * c;
        for (int64_t j = 0; j < c; ++j) {
          if (!d) {
            S[j] = M[size_t(i * c + j)];
            continue;
          }
          S[j] = M[size_t(i * c + j)] + M[size_t(j * c + i)];
          A[j] = M[size_t(i * c + j)] - M[size_t(j * c + i)];
        }
      }
    }
  });
}

}  // namespace

template <typename R>
void gram_bound_batch(const R* a, int64_t batch, int64_t m, int64_t n, bool cplx, int n_iter,
                      int prune_iter, double* out) {
  if (n_iter < 0 || n_iter > 60) throw std::invalid_argument("gram: n_iter out of range");
  const OneFn<R> one = pick_kernels<R>().one;
  const int64_t c = m < n ? m : n, k = m < n ? n : m;
  const int64_t stride = m * n * (cplx ? 2 : 1);
  const int64_t cp = (c + 7) / 8 * 8;
  const size_t work_len = size_t(2 * cp * k + 2 * cp * cp);
  const bool prune = prune_iter > 0 && prune_iter < n_iter && batch > 1;
  std::vector<double> lower(prune ? batch : 0);
  std::vector<char> todo(batch, 1);
  if (prune) {
    parallel_for_range(batch, 1, [&](int64_t b0, int64_t b1) {
      std::vector<R> work(work_len);
      for (int64_t b = b0; b < b1; ++b)
        out[b] = one(a + b * stride, m, n, cplx, prune_iter, work.data(), &lower[b], -1.0);
    });
    double best = 0;
    for (int64_t b = 0; b < batch; ++b) best = lower[b] > best ? lower[b] : best;
    // A matrix whose upper bound is below some matrix's certified lower bound cannot hold
    // the maximum: its looser bound stays.
    for (int64_t b = 0; b < batch; ++b) todo[b] = out[b] >= best;
  }
  parallel_for_range(batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<R> work(work_len);
    for (int64_t b = b0; b < b1; ++b)
      if (todo[b]) out[b] = one(a + b * stride, m, n, cplx, n_iter, work.data(), nullptr, -1.0);
  });
}

template <typename R>
void gram_conv_bound_batch(const double* taps, int64_t T, int64_t P, int64_t ld, const double* cs,
                           const double* sn, const double* fro, int64_t nf, int64_t c_out,
                           int64_t c_in, bool round32, int n_iter, const int64_t* probe,
                           int64_t n_probe, double* out, const GramTapFirst* tf) {
  if (n_iter < 0 || n_iter > 60) throw std::invalid_argument("gram: n_iter out of range");
  if (P != c_out * c_in || ld < P) throw std::invalid_argument("gram_conv: bad taps shape");
  if (tf && (n_iter < 1 || tf->c != (c_out < c_in ? c_out : c_in) || tf->ro * tf->c != P))
    throw std::invalid_argument("gram_conv: bad first-product setup");
  const Kernels<R> kr = pick_kernels<R>();
  const int64_t c = c_out < c_in ? c_out : c_in, k = c_out < c_in ? c_in : c_out;
  const int64_t cp = (c + 7) / 8 * 8;
  const size_t work_len = size_t(2 * cp * k + 2 * cp * cp);
  // The probes run in full first, with rigorous lower bounds; their best, L, is at most the
  // batch's max, so every other matrix stops as soon as its certified bound drops below L
  // (it cannot hold the max). Deterministic: L does not depend on the threads' timing.
  std::vector<double> lower(size_t(n_probe), 0.0);
  std::vector<char> done(size_t(nf), 0);
  const int64_t nd = tf ? tf->nd : 0, c2 = c * c;
  std::vector<double> SA(tf ? size_t((1 + 2 * nd) * c2) : 0);
  if (tf) tap_offset_sums(*tf, kr.pair_sum, SA.data());
  parallel_for_range(n_probe, 1, [&](int64_t q0, int64_t q1) {
    std::vector<R> work(work_len), mat(size_t(2 * P));
    std::vector<double> g(tf ? size_t(2 * c2) : 0);
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t f = probe[q];
      kr.dft(taps, T, P, ld, cs + f * T, sn + f * T, round32, mat.data());
      if (tf) {  // the same route as the others (so a probe's bound is theirs), plus L
        kr.rows(SA.data(), nd, c, tf->pc + f * nd, tf->ps + f * nd, 1, g.data());
        out[f] = kr.first(g.data(), c, n_iter, work.data(), -1.0, tf->del64, mat.data(), c_out,
                          c_in, &lower[size_t(q)]);
      } else {
        out[f] =
            kr.one(mat.data(), c_out, c_in, true, n_iter, work.data(), &lower[size_t(q)], -1.0);
      }
    }
  });
  double L = -1.0;
  for (int64_t q = 0; q < n_probe; ++q) {
    L = lower[size_t(q)] > L ? lower[size_t(q)] : L;
    done[size_t(probe[q])] = 1;
  }
  if (tf) {
    // Batches of up to 8 frequencies: each row of the offset sums serves all of them from
    // L1; at most 4 MiB of Gram matrices per thread (one at a time for sides >= 256).
    const int64_t kNB = std::max<int64_t>(1, std::min<int64_t>(8, (int64_t(1) << 22) / (16 * c2)));
    std::vector<int64_t> todo;
    for (int64_t f = 0; f < nf; ++f)
      if (!done[size_t(f)]) todo.push_back(f);
    const int64_t nbat = (int64_t(todo.size()) + kNB - 1) / kNB;
    parallel_for_range(nbat, 1, [&](int64_t bt0, int64_t bt1) {
      std::vector<R> work(work_len);
      std::vector<double> g(size_t(kNB * 2 * c2)), pc(size_t(kNB * nd)), ps(size_t(kNB * nd));
      for (int64_t bt = bt0; bt < bt1; ++bt) {
        const int64_t f0 = bt * kNB;
        const int64_t nb = int64_t(todo.size()) - f0 < kNB ? int64_t(todo.size()) - f0 : kNB;
        for (int64_t q = 0; q < nb; ++q)
          for (int64_t d = 0; d < nd; ++d) {
            pc[size_t(q * nd + d)] = tf->pc[todo[size_t(f0 + q)] * nd + d];
            ps[size_t(q * nd + d)] = tf->ps[todo[size_t(f0 + q)] * nd + d];
          }
        kr.rows(SA.data(), nd, c, pc.data(), ps.data(), nb, g.data());
        for (int64_t q = 0; q < nb; ++q)
          out[todo[size_t(f0 + q)]] = kr.first(g.data() + q * 2 * c2, c, n_iter, work.data(), L,
                                               tf->del64, nullptr, 0, 0, nullptr);
      }
    });
    return;
  }
  parallel_for_range(nf, 1, [&](int64_t f0, int64_t f1) {
    std::vector<R> work(work_len), mat(size_t(2 * P));
    for (int64_t f = f0; f < f1; ++f) {
      if (done[size_t(f)]) continue;
      out[f] = kr.freq(taps, T, ld, cs + f * T, sn + f * T, round32, c_out, c_in, fro[f], n_iter,
                       work.data(), L);
    }
  });
}

// The BLAS path's square Gram matrix, lower triangle filled: its Frobenius norm from the lower
// triangle (strictly lower entries counted twice), then one tiled pass that scales the lower
// triangle by an exact power of two, writes the conjugate mirror and sums the scaled squares.
// Two passes over half the matrix instead of five over all of it (mirror, max, sum, scale,
// sum). A float's square can neither overflow nor underflow a double, so only double input is
// first scaled by its largest entry's binary exponent.
template <typename R>
static void normalize_mirror(R* g, int64_t n, bool cplx, bool scale, int32_t* e, double* F,
                             double* f, double* r) {
  using namespace gram_portable;
  const int64_t s = cplx ? 2 : 1, rl = n * s, len = n * n * s;
  int p = 0;
  if (sizeof(R) == 8) {
    double mx = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double m = max_abs(g + i * rl, (i + 1) * s);
      mx = m > mx ? m : mx;
    }
    if (mx > 0) frexp(mx, &p);
  }
  const double sp = ldexp(1.0, -p);
  double ss = 0;
  for (int64_t i = 0; i < n; ++i)
    ss += 2 * sumsq_raw(g + i * rl, i * s, sp) + sumsq_raw(g + i * rl + i * s, s, sp);
  ss = sumsq_up(ss, len);
  *e = 0;
  *F = ldexp(sqrt(ss), p);
  *f = *F;
  int ex = 0;
  if (scale && ss > 0) {
    frexp(sqrt(ss), &ex);
    ex += p;
    *e = ex;
  }
  const double fac = ldexp(1.0, -ex);
  // 32 x 32 tiles: the scaled lower block goes to a small transposed buffer, whose rows are
  // then copied into the upper block (direct column writes, at the matrix's power-of-two row
  // stride, ran at a fraction of the memory speed).
  constexpr int64_t T = 32;
  R buf[T * T * 2];
  double s2 = 0;
  std::vector<double> rowsum(size_t(n), 0.0);  // sums of |entries| of the scaled rows
  for (int64_t i0 = 0; i0 < n; i0 += T) {
    const int64_t i1 = i0 + T < n ? i0 + T : n;
    for (int64_t j0 = 0; j0 <= i0; j0 += T) {
      for (int64_t i = i0; i < i1; ++i) {
        R* row = g + i * rl;
        const int64_t jend = j0 + T < i ? j0 + T : i;  // the strictly lower part in this tile
        double ri = 0;
        for (int64_t j = j0; j < jend; ++j) {
          R* t = buf + ((j - j0) * T + (i - i0)) * s;
          t[0] = row[j * s] = R(double(row[j * s]) * fac);
          double a = fabs(double(t[0]));
          if (cplx) {
            t[1] = -(row[j * s + 1] = R(double(row[j * s + 1]) * fac));
            a += fabs(double(t[1]));
          }
          ri += a;
          rowsum[size_t(j)] += a;
        }
        if (jend > j0) s2 += 2 * sumsq_raw(row + j0 * s, (jend - j0) * s, 1.0);
        if (i < j0 + T) {  // the diagonal entry lies in this tile (j0 <= i0 <= i)
          for (int64_t q = 0; q < s; ++q) {
            row[i * s + q] = R(double(row[i * s + q]) * fac);
            ri += fabs(double(row[i * s + q]));
          }
          s2 += sumsq_raw(row + i * s, s, 1.0);
        }
        rowsum[size_t(i)] += ri;
      }
      for (int64_t j = j0; j < j0 + T && j < i1; ++j) {  // upper block rows j, columns i > j
        const int64_t ib = i0 > j + 1 ? i0 : j + 1;
        R* dst = g + j * rl + ib * s;
        const R* src = buf + ((j - j0) * T + (ib - i0)) * s;
        for (int64_t l = 0; l < (i1 - ib) * s; ++l) dst[l] = src[l];
      }
    }
  }
  if (scale) *f = sqrt(sumsq_up(s2, len));
  double mr = 0;
  for (int64_t i = 0; i < n; ++i) mr = rowsum[size_t(i)] > mr ? rowsum[size_t(i)] : mr;
  *r = mr * (1.0 + double(2 * n * s + 2) * 0x1p-52);  // any order of the nonnegative sums
}

template <typename R>
static void normalize_one(R* g, int64_t rows, int64_t cols, bool cplx, bool mirror, bool scale,
                          int32_t* e, double* F, double* f, double* r) {
  using namespace gram_portable;
  if (mirror && rows == cols) return normalize_mirror(g, rows, cplx, scale, e, F, f, r);
  *r = HUGE_VAL;
  const int64_t s = cplx ? 2 : 1;
  const int64_t len = rows * cols * s;
  // Overflow-free Frobenius norm: scale by the binary exponent of max |entry| first.
  const double mx = max_abs(g, len);
  *e = 0;
  *F = 0;
  *f = 0;
  if (mx == 0) return;
  int p;
  frexp(mx, &p);
  const double ss = sumsq_up(sumsq_raw(g, len, ldexp(1.0, -p)), len);
  int ex;
  frexp(sqrt(ss), &ex);
  *F = ldexp(sqrt(ss), p);
  *f = *F;
  if (!scale) return;
  ex += p;
  *e = ex;
  scale_pow2(g, len, ex);
  *f = sqrt(sumsq_up(sumsq_raw(g, len, 1.0), len));
}

template <typename R>
void gram_normalize(R* g, int64_t batch, int64_t rows, int64_t cols, bool cplx, bool mirror,
                    bool scale, int32_t* e, double* F, double* f, double* r) {
  const int64_t step = rows * cols * (cplx ? 2 : 1);
  // One thread for a single matrix: this pass sits between two BLAS calls, whose spinning
  // threads an OpenMP team would fight for the cores (it costs ~1% of a product anyway).
  if (batch == 1) return normalize_one(g, rows, cols, cplx, mirror, scale, e, F, f, r);
  parallel_for_range(batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      normalize_one(g + b * step, rows, cols, cplx, mirror, scale, e + b, F + b, f + b, r + b);
  });
}

template <typename R>
void gram_max_abs_batch(const R* a, int64_t batch, int64_t len, double* out) {
  // Integer max on the bit patterns (gram_kernel.inc); threads only for large batches: on a
  // few thousand tiny matrices NumPy's per-row max and min took a quarter of the whole call.
  const int64_t grain =
      len > 0 ? std::max<int64_t>(1, ((int64_t(1) << 17) + len - 1) / len) : batch;
  parallel_for_range(batch, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) out[b] = gram_portable::max_abs(a + b * len, len);
  });
}

template void gram_max_abs_batch<float>(const float*, int64_t, int64_t, double*);
template void gram_max_abs_batch<double>(const double*, int64_t, int64_t, double*);
template void gram_bound_batch<float>(const float*, int64_t, int64_t, int64_t, bool, int, int,
                                      double*);
template void gram_bound_batch<double>(const double*, int64_t, int64_t, int64_t, bool, int, int,
                                       double*);
template void gram_conv_bound_batch<float>(const double*, int64_t, int64_t, int64_t, const double*,
                                           const double*, const double*, int64_t, int64_t, int64_t,
                                           bool, int, const int64_t*, int64_t, double*,
                                           const GramTapFirst*);
template void gram_conv_bound_batch<double>(const double*, int64_t, int64_t, int64_t, const double*,
                                            const double*, const double*, int64_t, int64_t, int64_t,
                                            bool, int, const int64_t*, int64_t, double*,
                                            const GramTapFirst*);
template void gram_normalize<float>(float*, int64_t, int64_t, int64_t, bool, bool, bool, int32_t*,
                                    double*, double*, double*);
template void gram_normalize<double>(double*, int64_t, int64_t, int64_t, bool, bool, bool, int32_t*,
                                     double*, double*, double*);

}  // namespace matkern
