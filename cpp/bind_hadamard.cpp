// Bindings of the Walsh-Hadamard family: fwht (in place on a prepared copy) and the fused FJLT.
#include "bind_common.hpp"
#include "threads.hpp"
#include "hadamard.hpp"

namespace matkern {
namespace {

template <typename T>
void fwht_inplace(carr<T> x, int64_t outer, int64_t n, int64_t inner, bool normalize) {
  if (int64_t(x.size()) != outer * n * inner) throw std::invalid_argument("fwht: size mismatch");
  T* p = x.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  fwht<T>(p, outer, n, inner, normalize);
}

template <typename T>
void fwht_copy(carr<const T> src, carr<T> dst, int64_t outer, int64_t n, int64_t inner,
               bool normalize) {
  if (int64_t(src.size()) != outer * n * inner || dst.size() != src.size())
    throw std::invalid_argument("fwht: size mismatch");
  const T* sp = src.data();
  T* dp = dst.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  fwht_from<T>(sp, dp, outer, n, inner, normalize);
}

template <typename T>
void fjlt(carr<const T> x, carr<const T> signs, carr<const int64_t> indptr,
          carr<const int32_t> indices, carr<const T> pdata, int64_t dpad, double scale,
          carr<T> out) {
  const int64_t rows = x.shape(0), d = x.shape(1), k = out.shape(1);
  if (out.shape(0) != size_t(rows) || int64_t(signs.size()) < d || d > dpad ||
      int64_t(indptr.size()) != k + 1)
    throw std::invalid_argument("fjlt: inconsistent shapes");
  const T* xp = x.data();
  const T* sp = signs.data();
  const int64_t* ip = indptr.data();
  const int32_t* jp = indices.data();
  const T* dp = pdata.data();
  T* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  fjlt_transform<T>(xp, rows, d, dpad, sp, ip, jp, dp, k, scale, op);
}

}  // namespace

void bind_hadamard(nb::module_& m) {
  m.def("fwht_inplace", &fwht_inplace<float>);
  m.def("fwht_inplace", &fwht_inplace<double>);
  m.def("fwht_copy", &fwht_copy<float>);
  m.def("fwht_copy", &fwht_copy<double>);
  m.def("fjlt_transform", &fjlt<float>);
  m.def("fjlt_transform", &fjlt<double>);
}

}  // namespace matkern
