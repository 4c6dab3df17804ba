// Bindings of the matfun family's batched float32 GEMM (matfun.hpp).
#include "bind_common.hpp"
#include "matfun.hpp"

namespace matkern {
namespace {

// out (batch, m, n) = op(a) . op(b); a (batch, m, k) or, ta, (batch, k, m); b (batch, k, n)
// or, tb, (batch, n, k); sym: see matfun.hpp.
void bmm(carr<const float> a, bool ta, carr<const float> b, bool tb, carr<float> out, bool parallel,
         bool sym) {
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
  bmm_f32(batch, m, n, k, {a.data(), ta}, {b.data(), tb}, out.data(), parallel, sym);
}

}  // namespace

void bind_matfun(nb::module_& m) {
  m.def("bmm_enabled", &bmm_enabled);
  m.def("bmm_f32", &bmm, kKernelCall, "a"_a, "ta"_a, "b"_a, "tb"_a, "out"_a, "parallel"_a,
        "sym"_a = false);
}

}  // namespace matkern
