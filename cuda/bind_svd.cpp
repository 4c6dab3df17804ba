// CUDA bindings of the svd family: the three sparse kernels of the extended-factorisation updater.
#include <stdexcept>

#include "bind_common.hpp"
#include "svd.hpp"

namespace matkern::cuda {
namespace {

void gather(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const double> data,
            darr<const double> B, darr<double> out, std::uintptr_t stream) {
  const int64_t c = int64_t(indptr.size()) - 1, k = B.shape(1);
  if (B.ndim() != 2 || out.ndim() != 2 || int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != k ||
      indices.size() != data.size())
    throw std::invalid_argument("svd_gather: inconsistent shapes");
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const double* dp = data.data();
  const double* bp = B.data();
  double* op = out.data();
  nb::gil_scoped_release release;
  svd_gather(ip, ix, dp, c, bp, k, op, stream);
}

void gram(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const double> data,
          darr<const int64_t> cptr, darr<const int32_t> cidx, darr<const double> cval,
          darr<double> out, std::uintptr_t stream) {
  const int64_t c = int64_t(indptr.size()) - 1;
  if (out.ndim() != 2 || int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != c ||
      indices.size() != data.size() || cidx.size() != cval.size() || cptr.size() < 1)
    throw std::invalid_argument("svd_gram: inconsistent shapes");
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const double* dp = data.data();
  const int64_t* cp = cptr.data();
  const int32_t* ci = cidx.data();
  const double* cv = cval.data();
  double* op = out.data();
  nb::gil_scoped_release release;
  svd_gram(ip, ix, dp, c, cp, ci, cv, op, stream);
}

void scatter(darr<const int32_t> rows, darr<const int64_t> indptr, darr<const int32_t> indices,
             darr<const double> data, darr<const double> Y, darr<double> B, std::uintptr_t stream) {
  const int64_t nr = int64_t(rows.size()), k = B.shape(1);
  if (int64_t(indptr.size()) != nr + 1 || Y.ndim() != 2 || B.ndim() != 2 ||
      int64_t(Y.shape(1)) != k || indices.size() != data.size())
    throw std::invalid_argument("svd_scatter: inconsistent shapes");
  const int32_t* rp = rows.data();
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const double* dp = data.data();
  const double* yp = Y.data();
  double* bp = B.data();
  nb::gil_scoped_release release;
  svd_scatter(rp, ip, ix, dp, nr, yp, k, bp, stream);
}

}  // namespace

void bind_svd(nb::module_& m) {
  m.def("svd_gather", &gather);
  m.def("svd_gram", &gram);
  m.def("svd_scatter", &scatter);
}

}  // namespace matkern::cuda
