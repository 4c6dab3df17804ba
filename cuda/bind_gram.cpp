// CUDA bindings of the gram family: the batched normalization between cuBLAS products.
#include "bind_common.hpp"
#include "gram.hpp"

namespace matkern::cuda {
namespace {

template <typename R>
void normalize(darr<R> x, int64_t batch, int64_t len, bool scale, darr<int32_t> e, darr<double> F,
               darr<double> f, std::uintptr_t stream) {
  if (int64_t(x.size()) != batch * len || int64_t(e.size()) != batch ||
      int64_t(F.size()) != batch || int64_t(f.size()) != batch)
    throw std::invalid_argument("gram_normalize: size mismatch");
  if constexpr (sizeof(R) == 4)
    gram_normalize_f32(x.data(), batch, len, scale, e.data(), F.data(), f.data(), stream);
  else gram_normalize_f64(x.data(), batch, len, scale, e.data(), F.data(), f.data(), stream);
}

template <typename R>
void def_typed(nb::module_& m) {
  m.def("gram_normalize", &normalize<R>, kLaunchCall, "x"_a, "batch"_a, "len"_a, "scale"_a, "e"_a,
        "F"_a, "f"_a, "stream"_a);
}

}  // namespace

void bind_gram(nb::module_& m) {
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern::cuda
