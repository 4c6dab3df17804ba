// CUDA bindings of the randproj family (device arrays, CuPy's stream as an integer).
#include "bind_common.hpp"
#include "randproj.hpp"

namespace matkern::cuda {
namespace {

void count(uint64_t seed_key, darr<const uint64_t> table, int64_t k, int64_t j0,
           darr<int64_t> counts, std::uintptr_t stream) {
  if (int64_t(table.size()) != k + 1) throw std::invalid_argument("rp_count: table size");
  rp_count(seed_key, table.data(), k, j0, int64_t(counts.size()), counts.data(), stream);
}

// Fills the rows of R (as CSR: indptr given, comps and negs written).
void fill(uint64_t seed_key, darr<const uint64_t> table, int64_t k, int64_t j0,
          darr<const int64_t> indptr, darr<int32_t> comps, darr<int8_t> negs,
          std::uintptr_t stream) {
  const char* error = "rp_fill: inconsistent sizes";
  if (int64_t(table.size()) != k + 1) throw std::invalid_argument(error);
  const int64_t nr = check_csr(indptr, comps, negs, error);
  rp_fill(seed_key, table.data(), k, j0, nr, indptr.data(), comps.data(), negs.data(), stream);
}

// out += X R[:, j0:j0+k]: R's columns (k, as CSR: cptr, cols, negs).
template <typename T>
void dense(darr<const T> x, darr<const int64_t> cptr, darr<const int32_t> cols,
           darr<const int8_t> negs, int64_t j0, darr<T> out, std::uintptr_t stream) {
  const int64_t n = x.shape(0), d = x.shape(1), k = out.shape(1);
  const char* error = "rp_dense_accumulate: inconsistent sizes";
  check_csr(cptr, cols, negs, k, error);
  if (int64_t(out.shape(0)) != n) throw std::invalid_argument(error);
  rp_dense_accumulate(x.data(), n, d, cptr.data(), cols.data(), negs.data(), j0, k, out.data(),
                      stream);
}

// out += X diag(colscale) R[j0:j1]: X (n rows, CSR: xptr, xidx, xval), R's rows j0..j1-1 (CSR:
// rptr, comps, negs); no column scale when None.
template <typename T>
void sparse(darr<const int64_t> xptr, darr<const int32_t> xidx, darr<const T> xval,
            std::optional<darr<const T>> colscale, darr<const int64_t> rptr,
            darr<const int32_t> comps, darr<const int8_t> negs, int64_t j0, int64_t j1, darr<T> out,
            std::uintptr_t stream) {
  const int64_t n = out.shape(0), k = out.shape(1);
  const char* error = "rp_sparse_accumulate: inconsistent sizes";
  check_csr(xptr, xidx, xval, n, error);
  check_csr(rptr, comps, negs, j1 - j0, error);
  rp_sparse_accumulate(xptr.data(), xidx.data(), xval.data(), n, data_or_null(colscale),
                       rptr.data(), comps.data(), negs.data(), j0, j1, k, out.data(), stream);
}

// out = diag(rowscale) A b, A (n rows) as CSR; no row scale when None.
template <typename T>
void spmm(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const T> data,
          std::optional<darr<const T>> rowscale, darr<const T> b, darr<T> out,
          std::uintptr_t stream) {
  const int64_t n = out.shape(0), k = out.shape(1);
  const char* error = "rp_csr_spmm: inconsistent sizes";
  check_csr(indptr, indices, data, n, error);
  if (int64_t(b.shape(1)) != k || (rowscale && int64_t(rowscale->size()) != n))
    throw std::invalid_argument(error);
  rp_csr_spmm(indptr.data(), indices.data(), data.data(), n, data_or_null(rowscale), b.data(), k,
              out.data(), stream);
}

template <typename T>
void def_typed(nb::module_& m) {
  m.def("rp_dense_accumulate", &dense<T>, kLaunchCall, "x"_a, "cptr"_a, "cols"_a, "negs"_a, "j0"_a,
        "out"_a, "stream"_a);
  m.def("rp_sparse_accumulate", &sparse<T>, kLaunchCall, "xptr"_a, "xidx"_a, "xval"_a,
        "colscale"_a.none(), "rptr"_a, "comps"_a, "negs"_a, "j0"_a, "j1"_a, "out"_a, "stream"_a);
  m.def("rp_csr_spmm", &spmm<T>, kLaunchCall, "indptr"_a, "indices"_a, "data"_a,
        "rowscale"_a.none(), "b"_a, "out"_a, "stream"_a);
}

}  // namespace

void bind_randproj(nb::module_& m) {
  m.def("rp_count", &count, kLaunchCall, "seed_key"_a, "table"_a, "k"_a, "j0"_a, "counts"_a,
        "stream"_a);
  m.def("rp_fill", &fill, kLaunchCall, "seed_key"_a, "table"_a, "k"_a, "j0"_a, "indptr"_a,
        "comps"_a, "negs"_a, "stream"_a);
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern::cuda
