// CUDA bindings of the svd family: the three sparse kernels of the extended-factorisation updater.
#include "bind_common.hpp"
#include "svd.hpp"

namespace matkern::cuda {
namespace {

// out (c x k) = Xt @ B, Xt (c x n) as CSR (indptr, indices, data).
void gather(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const double> data,
            darr<const double> B, darr<double> out, std::uintptr_t stream) {
  const char* error = "svd_gather: inconsistent shapes";
  const int64_t c = int64_t(indptr.size()) - 1, k = B.shape(1);
  if (B.ndim() != 2 || out.ndim() != 2 || int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != k)
    throw std::invalid_argument(error);
  check_csr(indptr, indices, data, error);
  svd_gather(indptr.data(), indices.data(), data.data(), c, B.data(), k, out.data(), stream);
}

// out (c x c) = Xt @ Xt^T, Xt given as CSR (indptr, indices, data) and as CSC (cptr, cidx, cval).
void gram(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const double> data,
          darr<const int64_t> cptr, darr<const int32_t> cidx, darr<const double> cval,
          darr<double> out, std::uintptr_t stream) {
  const char* error = "svd_gram: inconsistent shapes";
  const int64_t c = int64_t(indptr.size()) - 1;
  if (out.ndim() != 2 || int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != c)
    throw std::invalid_argument(error);
  check_csr(indptr, indices, data, error);
  check_csr(cptr, cidx, cval, error);
  svd_gram(indptr.data(), indices.data(), data.data(), c, cptr.data(), cidx.data(), cval.data(),
           out.data(), stream);
}

// B[rows[r]] += row r of the CSR matrix (indptr, indices, data) times Y.
void scatter(darr<const int32_t> rows, darr<const int64_t> indptr, darr<const int32_t> indices,
             darr<const double> data, darr<const double> Y, darr<double> B, std::uintptr_t stream) {
  const char* error = "svd_scatter: inconsistent shapes";
  const int64_t nr = int64_t(rows.size()), k = B.shape(1);
  if (Y.ndim() != 2 || B.ndim() != 2 || int64_t(Y.shape(1)) != k)
    throw std::invalid_argument(error);
  check_csr(indptr, indices, data, nr, error);
  svd_scatter(rows.data(), indptr.data(), indices.data(), data.data(), nr, Y.data(), k, B.data(),
              stream);
}

}  // namespace

void bind_svd(nb::module_& m) {
  m.def("svd_gather", &gather, kLaunchCall, "indptr"_a, "indices"_a, "data"_a, "B"_a, "out"_a,
        "stream"_a);
  m.def("svd_gram", &gram, kLaunchCall, "indptr"_a, "indices"_a, "data"_a, "cptr"_a, "cidx"_a,
        "cval"_a, "out"_a, "stream"_a);
  m.def("svd_scatter", &scatter, kLaunchCall, "rows"_a, "indptr"_a, "indices"_a, "data"_a, "Y"_a,
        "B"_a, "stream"_a);
}

}  // namespace matkern::cuda
