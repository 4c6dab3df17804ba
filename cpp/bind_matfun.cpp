// Bindings of the matfun family's batched float32 GEMM (matfun.hpp).
#include "bind_common.hpp"
#include "matfun.hpp"

namespace matkern {
namespace {

// out (batch, m, n) = op(a) . op(b); a (batch, m, k) or, ta, (batch, k, m); b (batch, k, n)
// or, tb, (batch, n, k); sym: see matfun.hpp. alpha, beta, gamma (batch,) and d (batch, m,
// n), all or none: out = alpha out + beta d + gamma I per matrix (BmmEpilogue). b_upper:
// op(b) is upper triangular (its zeros are not read).
void bmm(carr<const float> a, bool ta, carr<const float> b, bool tb, carr<float> out, bool parallel,
         bool sym, std::optional<carr<const float>> alpha, std::optional<carr<const float>> beta,
         std::optional<carr<const float>> d, std::optional<carr<const float>> gamma, bool b_upper) {
  if (!bmm_enabled()) throw std::invalid_argument("bmm_f32: needs AVX-512 (bmm_enabled())");
  if (a.ndim() != 3 || b.ndim() != 3 || out.ndim() != 3)
    throw std::invalid_argument("bmm_f32: stacks of matrices (3-D) expected");
  const int64_t batch = a.shape(0);
  const int64_t m = ta ? a.shape(2) : a.shape(1), k = ta ? a.shape(1) : a.shape(2);
  const int64_t kb = tb ? b.shape(2) : b.shape(1), n = tb ? b.shape(1) : b.shape(2);
  if (int64_t(b.shape(0)) != batch || kb != k || int64_t(out.shape(0)) != batch ||
      int64_t(out.shape(1)) != m || int64_t(out.shape(2)) != n)
    throw std::invalid_argument("bmm_f32: inconsistent shapes");
  if (sym && m != n) throw std::invalid_argument("bmm_f32: sym needs a square product");
  BmmEpilogue ep;
  if (alpha || beta || d || gamma) {
    if (!(alpha && beta && d && gamma))
      throw std::invalid_argument("bmm_f32: alpha, beta, d and gamma go together");
    for (const auto* v : {&*alpha, &*beta, &*gamma})
      if (v->ndim() != 1 || int64_t(v->shape(0)) != batch)
        throw std::invalid_argument("bmm_f32: alpha, beta, gamma of shape (batch,) expected");
    if (d->ndim() != 3 || int64_t(d->shape(0)) != batch || int64_t(d->shape(1)) != m ||
        int64_t(d->shape(2)) != n)
      throw std::invalid_argument("bmm_f32: d shaped as out expected");
    ep = {alpha->data(), beta->data(), d->data(), gamma->data()};
  }
  bmm_f32(batch, m, n, k, {a.data(), ta}, {b.data(), tb, b_upper}, out.data(), parallel, sym, ep);
}

// out (batch, k, k) = alpha[:, None, None] a + beta[:, None, None] b^T (b's matrices
// transposed); out must not overlap a or b.
void add_transposed(carr<const float> a, carr<const float> b, carr<const float> alpha,
                    carr<const float> beta, carr<float> out) {
  if (!bmm_enabled()) throw std::invalid_argument("add_transposed_f32: needs AVX-512");
  if (a.ndim() != 3 || b.ndim() != 3 || out.ndim() != 3 || alpha.ndim() != 1 || beta.ndim() != 1)
    throw std::invalid_argument("add_transposed_f32: stacks (3-D) and (batch,) factors expected");
  const int64_t batch = a.shape(0), k = a.shape(1);
  for (const auto* x : {&a, &b})
    if (int64_t(x->shape(0)) != batch || int64_t(x->shape(1)) != k || int64_t(x->shape(2)) != k)
      throw std::invalid_argument("add_transposed_f32: inconsistent shapes");
  if (int64_t(out.shape(0)) != batch || int64_t(out.shape(1)) != k || int64_t(out.shape(2)) != k ||
      int64_t(alpha.shape(0)) != batch || int64_t(beta.shape(0)) != batch)
    throw std::invalid_argument("add_transposed_f32: inconsistent shapes");
  const float* o = out.data();
  const int64_t size = batch * k * k;
  auto overlaps = [&](const float* p) { return p < o + size && o < p + size; };
  if (overlaps(a.data()) || overlaps(b.data()))
    throw std::invalid_argument("add_transposed_f32: out must not overlap a or b");
  add_transposed_f32(batch, k, a.data(), b.data(), alpha.data(), beta.data(), out.data());
}

}  // namespace

void bind_matfun(nb::module_& m) {
  m.def("bmm_enabled", &bmm_enabled);
  m.def("bmm_f32", &bmm, kKernelCall, "a"_a, "ta"_a, "b"_a, "tb"_a, "out"_a, "parallel"_a,
        "sym"_a = false, "alpha"_a.none() = nb::none(), "beta"_a.none() = nb::none(),
        "d"_a.none() = nb::none(), "gamma"_a.none() = nb::none(), "b_upper"_a = false);
  m.def("add_transposed_f32", &add_transposed, kKernelCall, "a"_a, "b"_a, "alpha"_a, "beta"_a,
        "out"_a);
}

}  // namespace matkern
