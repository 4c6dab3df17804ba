// Bindings of the gram family: the fused batch bound and the BLAS-path normalization.
// Complex arrays arrive as their real view (..., 2) from the Python layer.
#include "bind_common.hpp"
#include "gram.hpp"

#include <vector>

namespace matkern {
namespace {

template <typename R>
void bound_batch(carr<const R> a, int64_t batch, int64_t m, int64_t n, bool cplx, int n_iter,
                 int prune_iter, carr<double> out) {
  if (int64_t(a.size()) != batch * m * n * (cplx ? 2 : 1) || int64_t(out.size()) != batch)
    throw std::invalid_argument("gram_bound_batch: size mismatch");
  gram_bound_batch<R>(a.data(), batch, m, n, cplx, n_iter, prune_iter, out.data());
}

template <typename R>
void max_abs_batch(carr<const R> a, int64_t batch, carr<double> out) {
  if (batch <= 0 || int64_t(a.size()) % batch != 0 || int64_t(out.size()) != batch)
    throw std::invalid_argument("gram_max_abs_batch: size mismatch");
  gram_max_abs_batch<R>(a.data(), batch, int64_t(a.size()) / batch, out.data());
}

template <typename R>
void normalize(carr<R> g, int64_t batch, int64_t rows, int64_t cols, bool cplx, bool mirror,
               bool scale, carr<int32_t> e, carr<double> F, carr<double> f, carr<double> r) {
  if (int64_t(g.size()) != batch * rows * cols * (cplx ? 2 : 1) || int64_t(e.size()) != batch ||
      int64_t(F.size()) != batch || int64_t(f.size()) != batch || int64_t(r.size()) != batch)
    throw std::invalid_argument("gram_normalize: size mismatch");
  gram_normalize<R>(g.data(), batch, rows, cols, cplx, mirror, scale, e.data(), F.data(), f.data(),
                    r.data());
}

// taps (T, ld) with ld >= c_out * c_in (padded rows); cs, sn (nf, T). wide: run the Gram
// iteration in double (R = double), on frequency matrices rounded through float first when
// round32 (float32 kernels). fro (nf): estimates of ||K_f||_F (they pick the scaling only).
// probe: distinct frequencies run first (empty: no early stops).
void conv_bound_impl(carr<const double> taps, carr<const double> cs, carr<const double> sn,
                     carr<const double> fro, int64_t c_out, int64_t c_in, bool round32, bool wide,
                     int n_iter, carr<const int64_t> probe, carr<double> out,
                     const GramTapFirst* tf) {
  const int64_t P = c_out * c_in;
  if (taps.ndim() != 2 || cs.ndim() != 2 || sn.ndim() != 2 || P <= 0)
    throw std::invalid_argument("gram_conv_bound_batch: taps, cs and sn must be 2-D");
  const int64_t T = int64_t(taps.shape(0)), ld = int64_t(taps.shape(1));
  const int64_t nf = int64_t(out.size());
  if (ld < P || int64_t(cs.shape(0)) != nf || int64_t(cs.shape(1)) != T ||
      sn.shape(0) != cs.shape(0) || sn.shape(1) != cs.shape(1) || int64_t(fro.size()) != nf)
    throw std::invalid_argument("gram_conv_bound_batch: size mismatch");
  if (!wide && !round32)
    throw std::invalid_argument("gram_conv_bound_batch: float run of a 64-bit kernel");
  const int64_t np = int64_t(probe.size());
  std::vector<char> seen(size_t(nf), 0);
  for (int64_t q = 0; q < np; ++q) {
    const int64_t f = probe.data()[q];
    if (f < 0 || f >= nf || seen[size_t(f)])
      throw std::invalid_argument("gram_conv_bound_batch: probe must hold distinct frequencies");
    seen[size_t(f)] = 1;
  }
  const auto run = wide ? &gram_conv_bound_batch<double> : &gram_conv_bound_batch<float>;
  run(taps.data(), T, P, ld, cs.data(), sn.data(), fro.data(), nf, c_out, c_in, round32, n_iter,
      probe.data(), np, out.data(), tf);
}

void conv_bound_batch(carr<const double> taps, carr<const double> cs, carr<const double> sn,
                      carr<const double> fro, int64_t c_out, int64_t c_in, bool round32, bool wide,
                      int n_iter, carr<const int64_t> probe, carr<double> out) {
  conv_bound_impl(taps, cs, sn, fro, c_out, c_in, round32, wide, n_iter, probe, out, nullptr);
}

// The same with the non-probe frequencies' first product from the taps (gram.hpp,
// GramTapFirst): gtaps (T, ld2) the Gram side's taps (ro x c each, c the smaller side), the
// pairs (pt, pu) of offset d in [start[d], start[d + 1]), d = 0..nd, phases pc, ps (nf, nd)
// and del64 the bound on the double evaluation's error.
void conv_bound_batch_first(carr<const double> taps, carr<const double> cs, carr<const double> sn,
                            carr<const double> fro, int64_t c_out, int64_t c_in, bool round32,
                            bool wide, int n_iter, carr<const int64_t> probe, carr<double> out,
                            carr<const double> gtaps, carr<const int64_t> pt,
                            carr<const int64_t> pu, carr<const int64_t> start,
                            carr<const double> pc, carr<const double> ps, double del64) {
  const int64_t c = c_out < c_in ? c_out : c_in, P = c_out * c_in;
  const int64_t nd = int64_t(start.size()) - 2, T = int64_t(taps.ndim() == 2 ? taps.shape(0) : 0);
  const int64_t nf = int64_t(out.size()), npair = int64_t(pt.size());
  if (gtaps.ndim() != 2 || int64_t(gtaps.shape(0)) != T || int64_t(gtaps.shape(1)) < P || nd < 0 ||
      int64_t(pu.size()) != npair || pc.ndim() != 2 || ps.ndim() != 2 ||
      int64_t(pc.shape(0)) != nf || int64_t(pc.shape(1)) != nd || pc.shape(0) != ps.shape(0) ||
      pc.shape(1) != ps.shape(1) || n_iter < 1 || !(del64 >= 0) || c <= 0)
    throw std::invalid_argument("gram_conv_bound_batch_first: bad first-product setup");
  const int64_t* st = start.data();
  if (st[0] != 0 || st[nd + 1] != npair)
    throw std::invalid_argument("gram_conv_bound_batch_first: bad pair offsets");
  for (int64_t d = 0; d <= nd; ++d)
    if (st[d + 1] < st[d])
      throw std::invalid_argument("gram_conv_bound_batch_first: bad pair offsets");
  for (int64_t q = 0; q < npair; ++q)
    if (pt.data()[q] < 0 || pt.data()[q] >= T || pu.data()[q] < 0 || pu.data()[q] >= T)
      throw std::invalid_argument("gram_conv_bound_batch_first: tap index out of range");
  const GramTapFirst tf{gtaps.data(), int64_t(gtaps.shape(1)),
                        P / c,        c,
                        pt.data(),    pu.data(),
                        st,           nd,
                        pc.data(),    ps.data(),
                        del64};
  conv_bound_impl(taps, cs, sn, fro, c_out, c_in, round32, wide, n_iter, probe, out, &tf);
}

// Packed layout (gram.hpp): shape (ceil(c/16), c, 16), zero in the rows past c.
template <class A>
bool is_packed(const A& a, int64_t c) {
  return a.ndim() == 3 && int64_t(a.shape(0)) == (c + kSyrkNR - 1) / kSyrkNR &&
         int64_t(a.shape(1)) == c && int64_t(a.shape(2)) == kSyrkNR;
}

// g float32 C-contiguous <- fac * B B^T (whole, symmetric), as (c, c) or packed (ceil(c/16),
// c, 16) (3-D g). B = b (c, k) when trans is false, b^T with b (k, c) when true, or b packed
// (3-D b: an earlier step's packed g, its padding checked to be zero). Returns (gamma length
// of the products' rounding bound, sum of squares of g, largest row sum of |g|), the last two
// rounded upward.
std::tuple<int64_t, double, double> syrk_step(carr<const float> b, bool trans, float fac,
                                              carr<float> g) {
  const bool packed_in = b.ndim() == 3, packed_out = g.ndim() == 3;
  if ((b.ndim() != 2 && !packed_in) || (g.ndim() != 2 && !packed_out))
    throw std::invalid_argument("gram_syrk_step: b and g must be 2-D or packed (3-D)");
  const int64_t c = packed_out ? int64_t(g.shape(1)) : int64_t(g.shape(0));
  if (packed_out ? !is_packed(g, c) : int64_t(g.shape(1)) != c)
    throw std::invalid_argument("gram_syrk_step: g must be (c, c) or (ceil(c/16), c, 16)");
  const float* bp = b.data();
  int64_t rs = 0, cs = 0, k = c;
  if (packed_in) {
    if (!is_packed(b, c)) throw std::invalid_argument("gram_syrk_step: size mismatch (packed b)");
    const int64_t npan = int64_t(b.shape(0)), used = c - (npan - 1) * kSyrkNR;
    const float* last = bp + (npan - 1) * c * kSyrkNR;
    for (int64_t l = 0; l < c; ++l)
      for (int64_t q = used; q < kSyrkNR; ++q)
        if (last[l * kSyrkNR + q] != 0.0f)
          throw std::invalid_argument("gram_syrk_step: packed b must be zero past row c");
  } else {
    const int64_t r0 = int64_t(b.shape(0)), r1 = int64_t(b.shape(1));
    if ((trans ? r1 : r0) != c) throw std::invalid_argument("gram_syrk_step: size mismatch");
    rs = trans ? 1 : r1, cs = trans ? r1 : 1, k = trans ? r0 : r1;
  }
  double ss = 0, rm = 0;
  gram_syrk_step(bp, rs, cs, c, k, packed_in, fac, g.data(), packed_out, &ss, &rm);
  return {gram_syrk_gamma_len(k), ss, rm};
}

template <typename R>
void def_typed(nb::module_& m) {
  m.def("gram_bound_batch", &bound_batch<R>, kKernelCall, "a"_a, "batch"_a, "m"_a, "n"_a, "cplx"_a,
        "n_iter"_a, "prune_iter"_a, "out"_a);
  m.def("gram_max_abs_batch", &max_abs_batch<R>, kKernelCall, "a"_a, "batch"_a, "out"_a);
  m.def("gram_normalize", &normalize<R>, kKernelCall, "g"_a, "batch"_a, "rows"_a, "cols"_a,
        "cplx"_a, "mirror"_a, "scale"_a, "e"_a, "F"_a, "f"_a, "r"_a);
}

}  // namespace

void bind_gram(nb::module_& m) {
  def_typed<float>(m);
  def_typed<double>(m);
  m.def("gram_conv_bound_batch", &conv_bound_batch, kKernelCall, "taps"_a, "cs"_a, "sn"_a, "fro"_a,
        "c_out"_a, "c_in"_a, "round32"_a, "wide"_a, "n_iter"_a, "probe"_a, "out"_a);
  m.def("gram_conv_bound_batch_first", &conv_bound_batch_first, kKernelCall, "taps"_a, "cs"_a,
        "sn"_a, "fro"_a, "c_out"_a, "c_in"_a, "round32"_a, "wide"_a, "n_iter"_a, "probe"_a, "out"_a,
        "gtaps"_a, "pt"_a, "pu"_a, "start"_a, "pc"_a, "ps"_a, "del64"_a);
  m.def("gram_syrk_step", &syrk_step, kKernelCall, "b"_a, "trans"_a, "fac"_a, "g"_a);
}

}  // namespace matkern
