// Bindings of the spmm family: CSR x dense (B in C or Fortran order) into a C-order output.
#include <stdexcept>

#include "bind_common.hpp"
#include "threads.hpp"
#include "spmm.hpp"

namespace matkern {
namespace {

template <typename T>
void spmm_csr(int64_t n, carr<const int64_t> indptr, carr<const int32_t> indices,
              carr<const T> data, nb::ndarray<const T, nb::device::cpu, nb::ndim<2>> b,
              carr<T> out) {
  const int64_t m = int64_t(indptr.size()) - 1;
  const int64_t k = int64_t(b.shape(1));
  if (m < 0 || int64_t(b.shape(0)) != n || out.ndim() != 2 || int64_t(out.shape(0)) != m ||
      int64_t(out.shape(1)) != k || indices.size() != data.size())
    throw std::invalid_argument("spmm_csr: inconsistent shapes");
  // Any row stride when B's rows are contiguous (k == 1 included), else any column stride
  // when its columns are: the Python layer passes C- or Fortran-contiguous arrays.
  bool row_major;
  int64_t ldb;
  if (k == 1 || b.stride(1) == 1) {
    row_major = true;
    ldb = int64_t(b.stride(0));
  } else if (b.stride(0) == 1 || n == 1) {
    row_major = false;
    ldb = int64_t(b.stride(1));
  } else {
    throw std::invalid_argument("spmm_csr: B must be C- or Fortran-contiguous");
  }
  if (m > 0 && indptr.data()[m] > int64_t(indices.size()))
    throw std::invalid_argument("spmm_csr: indptr points past the indices");
  const int64_t* ip = indptr.data();
  const int32_t* jp = indices.data();
  const T* dp = data.data();
  const T* bp = b.data();
  T* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  csr_spmm<T>(m, n, k, ip, jp, dp, bp, ldb, row_major, op, k);
}

}  // namespace

void bind_spmm(nb::module_& m) {
  m.def("spmm_csr", &spmm_csr<float>);
  m.def("spmm_csr", &spmm_csr<double>);
}

}  // namespace matkern
