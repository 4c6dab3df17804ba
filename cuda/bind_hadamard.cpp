// CUDA bindings of the Walsh-Hadamard family.
#include "bind_common.hpp"
#include "hadamard.hpp"

namespace matkern::cuda {
namespace {

template <typename T>
void fwht_inplace(darr<T> x, int64_t outer, int64_t n, int64_t inner, bool normalize,
                  std::uintptr_t stream) {
  if (int64_t(x.size()) != outer * n * inner) throw std::invalid_argument("fwht: size mismatch");
  if constexpr (sizeof(T) == 4) fwht_f32(x.data(), outer, n, inner, normalize, stream);
  else fwht_f64(x.data(), outer, n, inner, normalize, stream);
}

// P (k x dpad) as CSR: indptr, indices, pdata; scratch (rows x dpad) for the transform.
template <typename T>
void fjlt(darr<const T> x, darr<const T> signs, darr<const int64_t> indptr,
          darr<const int32_t> indices, darr<const T> pdata, int64_t dpad, double scale,
          darr<T> scratch, darr<T> out, std::uintptr_t stream) {
  const int64_t rows = x.shape(0), d = x.shape(1), k = out.shape(1);
  check_csr(indptr, indices, pdata, k, "fjlt: inconsistent shapes");
  if (out.shape(0) != size_t(rows) || int64_t(scratch.size()) != rows * dpad || d > dpad)
    throw std::invalid_argument("fjlt: inconsistent shapes");
  if constexpr (sizeof(T) == 4)
    fjlt_f32(x.data(), rows, d, dpad, signs.data(), indptr.data(), indices.data(), pdata.data(), k,
             scale, scratch.data(), out.data(), stream);
  else
    fjlt_f64(x.data(), rows, d, dpad, signs.data(), indptr.data(), indices.data(), pdata.data(), k,
             scale, scratch.data(), out.data(), stream);
}

template <typename T>
void def_typed(nb::module_& m) {
  m.def("fwht_inplace", &fwht_inplace<T>, kLaunchCall, "x"_a, "outer"_a, "n"_a, "inner"_a,
        "normalize"_a, "stream"_a);
  m.def("fjlt_transform", &fjlt<T>, kLaunchCall, "x"_a, "signs"_a, "indptr"_a, "indices"_a,
        "pdata"_a, "dpad"_a, "scale"_a, "scratch"_a, "out"_a, "stream"_a);
}

}  // namespace

void bind_hadamard(nb::module_& m) {
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern::cuda
