// Bindings of the svd family: the three sparse kernels of the extended-factorisation updater.
#include <stdexcept>

#include "bind_common.hpp"
#include "threads.hpp"
#include "svd.hpp"

namespace matkern {
namespace {

void gather(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const double> data,
            carr<const double> B, carr<double> out) {
  const int64_t c = int64_t(indptr.size()) - 1, k = B.shape(1);
  if (B.ndim() != 2 || out.ndim() != 2 || int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != k ||
      indices.size() != data.size() || int64_t(indices.size()) < indptr.data()[c])
    throw std::invalid_argument("svd_gather: inconsistent shapes");
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const double* dp = data.data();
  const double* bp = B.data();
  double* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  svd_gather(ip, ix, dp, c, bp, k, op);
}

void gram(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const double> data,
          carr<const int64_t> cptr, carr<const int32_t> cidx, carr<const double> cval,
          carr<double> out) {
  const int64_t c = int64_t(indptr.size()) - 1;
  const int64_t n = int64_t(cptr.size()) - 1;
  if (out.ndim() != 2 || int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != c ||
      indices.size() != data.size() || int64_t(indices.size()) < indptr.data()[c] ||
      cidx.size() != cval.size() || int64_t(cidx.size()) < cptr.data()[n])
    throw std::invalid_argument("svd_gram: inconsistent shapes");
  for (int64_t p = 0; p < indptr.data()[c]; ++p)
    if (indices.data()[p] < 0 || indices.data()[p] >= n)
      throw std::invalid_argument("svd_gram: column index out of range");
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const double* dp = data.data();
  const int64_t* cp = cptr.data();
  const int32_t* ci = cidx.data();
  const double* cv = cval.data();
  double* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  svd_gram(ip, ix, dp, c, cp, ci, cv, op);
}

void scatter(carr<const int32_t> rows, carr<const int64_t> indptr, carr<const int32_t> indices,
             carr<const double> data, carr<const double> Y, carr<double> B) {
  const int64_t nr = int64_t(rows.size()), k = B.shape(1);
  if (int64_t(indptr.size()) != nr + 1 || Y.ndim() != 2 || B.ndim() != 2 ||
      int64_t(Y.shape(1)) != k || indices.size() != data.size() ||
      int64_t(indices.size()) < indptr.data()[nr])
    throw std::invalid_argument("svd_scatter: inconsistent shapes");
  const int32_t* rp = rows.data();
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const double* dp = data.data();
  const double* yp = Y.data();
  double* bp = B.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  svd_scatter(rp, ip, ix, dp, nr, yp, k, bp);
}

}  // namespace

void bind_svd(nb::module_& m) {
  m.def("svd_gather", &gather);
  m.def("svd_gram", &gram);
  m.def("svd_scatter", &scatter);
}

}  // namespace matkern
