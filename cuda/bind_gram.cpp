// CUDA bindings of the gram family: the batched normalization between cuBLAS products.
#include "bind_common.hpp"
#include "gram.hpp"

namespace matkern::cuda {
namespace {

template <typename R>
void normalize(darr<R> x, int64_t batch, int64_t len, bool scale, darr<int32_t> e,
               darr<double> F, darr<double> f, std::uintptr_t stream) {
  if (int64_t(x.size()) != batch * len || int64_t(e.size()) != batch ||
      int64_t(F.size()) != batch || int64_t(f.size()) != batch)
    throw std::invalid_argument("gram_normalize: size mismatch");
  R* xp = x.data();
  int32_t* ep = e.data();
  double* Fp = F.data();
  double* fp = f.data();
  nb::gil_scoped_release release;
  if constexpr (sizeof(R) == 4) gram_normalize_f32(xp, batch, len, scale, ep, Fp, fp, stream);
  else gram_normalize_f64(xp, batch, len, scale, ep, Fp, fp, stream);
}

}  // namespace

void bind_gram(nb::module_& m) {
  m.def("gram_normalize", &normalize<float>);
  m.def("gram_normalize", &normalize<double>);
}

}  // namespace matkern::cuda
