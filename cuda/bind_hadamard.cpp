// CUDA bindings of the Walsh-Hadamard family.
#include "bind_common.hpp"
#include "hadamard.hpp"

namespace matkern::cuda {
namespace {

template <typename T>
void fwht_inplace(darr<T> x, int64_t outer, int64_t n, int64_t inner, bool normalize,
                  std::uintptr_t stream) {
  if (int64_t(x.size()) != outer * n * inner) throw std::invalid_argument("fwht: size mismatch");
  T* p = x.data();
  nb::gil_scoped_release release;
  if constexpr (sizeof(T) == 4) fwht_f32(p, outer, n, inner, normalize, stream);
  else fwht_f64(p, outer, n, inner, normalize, stream);
}

template <typename T>
void fjlt(darr<const T> x, darr<const T> signs, darr<const int64_t> indptr,
          darr<const int32_t> indices, darr<const T> pdata, int64_t dpad, double scale,
          darr<T> scratch, darr<T> out, std::uintptr_t stream) {
  const int64_t rows = x.shape(0), d = x.shape(1), k = out.shape(1);
  if (out.shape(0) != size_t(rows) || int64_t(scratch.size()) != rows * dpad ||
      int64_t(indptr.size()) != k + 1 || d > dpad)
    throw std::invalid_argument("fjlt: inconsistent shapes");
  const T* xp = x.data();
  const T* sp = signs.data();
  const int64_t* ip = indptr.data();
  const int32_t* jp = indices.data();
  const T* dp = pdata.data();
  T* zp = scratch.data();
  T* op = out.data();
  nb::gil_scoped_release release;
  if constexpr (sizeof(T) == 4) fjlt_f32(xp, rows, d, dpad, sp, ip, jp, dp, k, scale, zp, op, stream);
  else fjlt_f64(xp, rows, d, dpad, sp, ip, jp, dp, k, scale, zp, op, stream);
}

}  // namespace

void bind_hadamard(nb::module_& m) {
  m.def("fwht_inplace", &fwht_inplace<float>);
  m.def("fwht_inplace", &fwht_inplace<double>);
  m.def("fjlt_transform", &fjlt<float>);
  m.def("fjlt_transform", &fjlt<double>);
}

}  // namespace matkern::cuda
