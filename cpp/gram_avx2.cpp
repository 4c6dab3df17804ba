// AVX2/FMA copy of the fused per-matrix Gram iteration (same source as the portable copy,
// compiled with -mavx2 -mfma: the inner dot products vectorize 8 floats / 4 doubles wide).
#include <math.h>

#include "gram.hpp"

namespace matkern {
namespace avx2 {
namespace gram_impl {
#include "gram_kernel.inc"
}  // namespace gram_impl

double gram_bound_one(const float* a, int64_t m, int64_t n, bool cplx, int n_iter, float* work,
                      double* lower) {
  return gram_impl::bound_one<float>(a, m, n, cplx, n_iter, work, lower, ldexp(1.0, -24));
}
double gram_bound_one(const double* a, int64_t m, int64_t n, bool cplx, int n_iter,
                      double* work, double* lower) {
  return gram_impl::bound_one<double>(a, m, n, cplx, n_iter, work, lower, ldexp(1.0, -53));
}

}  // namespace avx2
}  // namespace matkern
