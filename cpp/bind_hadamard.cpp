// Bindings of the Walsh-Hadamard family: fwht (in place on a prepared copy) and the fused FJLT.
#include "bind_common.hpp"
#include "hadamard.hpp"

namespace matkern {
namespace {

template <typename T>
void fwht_inplace(carr<T> x, int64_t outer, int64_t n, int64_t inner, bool normalize) {
  if (int64_t(x.size()) != outer * n * inner) throw std::invalid_argument("fwht: size mismatch");
  fwht<T>(x.data(), outer, n, inner, normalize);
}

template <typename T>
void fwht_copy(carr<const T> src, carr<T> dst, int64_t outer, int64_t n, int64_t inner,
               bool normalize) {
  if (int64_t(src.size()) != outer * n * inner || dst.size() != src.size())
    throw std::invalid_argument("fwht: size mismatch");
  fwht_from<T>(src.data(), dst.data(), outer, n, inner, normalize);
}

template <typename T>
void fwht_mixed_inplace(carr<T> x, int64_t outer, int64_t m, int64_t p, carr<const T> ht,
                        bool normalize) {
  const int64_t mp = (m + 7) / 8 * 8;
  if (m < 1 || p < 1 || (p & (p - 1)) != 0 || int64_t(x.size()) != outer * m * p ||
      int64_t(ht.size()) != m * mp)
    throw std::invalid_argument("fwht_mixed: size mismatch");
  fwht_mixed<T>(x.data(), outer, m, p, ht.data(), mp, normalize);
}

template <typename T>
void fwht_mixed_copy(carr<const T> src, carr<T> dst, int64_t outer, int64_t m, int64_t p,
                     carr<const T> ht, bool normalize) {
  const int64_t mp = (m + 7) / 8 * 8;
  if (m < 1 || p < 1 || (p & (p - 1)) != 0 || int64_t(src.size()) != outer * m * p ||
      dst.size() != src.size() || int64_t(ht.size()) != m * mp)
    throw std::invalid_argument("fwht_mixed: size mismatch");
  fwht_mixed_from<T>(src.data(), dst.data(), outer, m, p, ht.data(), mp, normalize);
}

// P (k x dpad) as CSR: indptr, indices, pdata.
template <typename T>
void fjlt(carr<const T> x, carr<const T> signs, carr<const int64_t> indptr,
          carr<const int32_t> indices, carr<const T> pdata, int64_t dpad, double scale,
          carr<T> out) {
  const int64_t rows = x.shape(0), d = x.shape(1), k = out.shape(1);
  const Csr p = check_csr(indptr, indices, pdata, k, "fjlt: inconsistent shapes");
  if (out.shape(0) != size_t(rows) || int64_t(signs.size()) < d || d > dpad)
    throw std::invalid_argument("fjlt: inconsistent shapes");
  fjlt_transform<T>(x.data(), rows, d, dpad, signs.data(), p.indptr, p.indices, pdata.data(), k,
                    scale, out.data());
}

template <typename T>
void def_typed(nb::module_& m) {
  m.def("fwht_inplace", &fwht_inplace<T>, kKernelCall, "x"_a, "outer"_a, "n"_a, "inner"_a,
        "normalize"_a);
  m.def("fwht_copy", &fwht_copy<T>, kKernelCall, "src"_a, "dst"_a, "outer"_a, "n"_a, "inner"_a,
        "normalize"_a);
  m.def("fwht_mixed_inplace", &fwht_mixed_inplace<T>, kKernelCall, "x"_a, "outer"_a, "m"_a, "p"_a,
        "ht"_a, "normalize"_a);
  m.def("fwht_mixed_copy", &fwht_mixed_copy<T>, kKernelCall, "src"_a, "dst"_a, "outer"_a, "m"_a,
        "p"_a, "ht"_a, "normalize"_a);
  m.def("fjlt_transform", &fjlt<T>, kKernelCall, "x"_a, "signs"_a, "indptr"_a, "indices"_a,
        "pdata"_a, "dpad"_a, "scale"_a, "out"_a);
}

}  // namespace

void bind_hadamard(nb::module_& m) {
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern
