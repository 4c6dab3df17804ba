// Bindings of the spmm family: CSR x dense (B in C or Fortran order) into a C-order output.
#include "bind_blocks.hpp"
#include "bind_common.hpp"
#include "spmm.hpp"

namespace matkern {
namespace {

template <typename T>
void spmm_csr(int64_t n, carr<const int64_t> indptr, carr<const int32_t> indices,
              carr<const T> data, nb::ndarray<const T, nb::device::cpu, nb::ndim<2>> b,
              carr<T> out) {
  const Csr a = check_csr(indptr, indices, data, "spmm_csr: inconsistent shapes");
  const int64_t m = a.rows, k = int64_t(b.shape(1));
  if (int64_t(b.shape(0)) != n || out.ndim() != 2 || int64_t(out.shape(0)) != m ||
      int64_t(out.shape(1)) != k)
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
  if (m > 0 && a.end() > a.nnz)
    throw std::invalid_argument("spmm_csr: indptr points past the indices");
  csr_spmm<T>(m, n, k, a.indptr, a.indices, data.data(), b.data(), ldb, row_major, out.data(), k);
}

// B as a list of row blocks (2-D, rows C-contiguous, equal column counts, rows adding up to
// n), read in place: the row chunks of a distributed iterate without their concatenation.
template <typename T>
void spmm_csr_blocks(int64_t n, carr<const int64_t> indptr, carr<const int32_t> indices,
                     carr<const T> data, std::vector<block_arr<T>> blocks, carr<T> out) {
  const char* shapes = "spmm_csr_blocks: inconsistent shapes";
  const Csr a = check_csr(indptr, indices, data, shapes);
  if (out.ndim() != 2 || int64_t(out.shape(0)) != a.rows) throw std::invalid_argument(shapes);
  const int64_t k = int64_t(out.shape(1));
  const BlockList<T> b(blocks, n, k, "spmm_csr_blocks");
  if (a.rows > 0 && a.end() > a.nnz)
    throw std::invalid_argument("spmm_csr_blocks: indptr points past the indices");
  csr_spmm_blocks<T>(a.rows, k, a.indptr, a.indices, data.data(), b.view(), out.data(), k);
}

template <typename T>
void def_typed(nb::module_& m) {
  m.def("spmm_csr", &spmm_csr<T>, kKernelCall, "n"_a, "indptr"_a, "indices"_a, "data"_a, "b"_a,
        "out"_a);
  m.def("spmm_csr_blocks", &spmm_csr_blocks<T>, kKernelCall, "n"_a, "indptr"_a, "indices"_a,
        "data"_a, "blocks"_a, "out"_a);
}

}  // namespace

void bind_spmm(nb::module_& m) {
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern
