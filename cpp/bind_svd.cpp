// Bindings of the svd family: the three sparse kernels of the extended-factorisation updater.
#include <stdexcept>
#include <string>

#include "bind_common.hpp"
#include "threads.hpp"
#include "svd.hpp"

namespace matkern {
namespace {

// The kernels index B / Y / out with these arrays unchecked: validate the whole structure here
// (O(nnz + rows), small next to the kernels' O(nnz k)), so that no caller of the module -- the
// Python layer validates first -- can make them read or write out of bounds.
void check_compressed(const char* fn, const int64_t* ip, int64_t rows, const int32_t* ix,
                      int64_t size, int64_t bound) {
  if (rows < 0 || ip[0] != 0) throw std::invalid_argument(std::string(fn) + ": indptr must start at 0");
  for (int64_t r = 0; r < rows; ++r)
    if (ip[r + 1] < ip[r]) throw std::invalid_argument(std::string(fn) + ": indptr must be nondecreasing");
  if (ip[rows] > size) throw std::invalid_argument(std::string(fn) + ": indptr[-1] exceeds len(indices)");
  for (int64_t p = 0; p < ip[rows]; ++p)
    if (ix[p] < 0 || ix[p] >= bound)
      throw std::invalid_argument(std::string(fn) + ": index out of range");
}

void gather(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const double> data,
            carr<const double> B, carr<double> out) {
  if (indptr.size() < 1 || B.ndim() != 2 || out.ndim() != 2)
    throw std::invalid_argument("svd_gather: inconsistent shapes");
  const int64_t c = int64_t(indptr.size()) - 1, k = B.shape(1);
  if (int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != k || indices.size() != data.size())
    throw std::invalid_argument("svd_gather: inconsistent shapes");
  check_compressed("svd_gather", indptr.data(), c, indices.data(), int64_t(indices.size()),
                   int64_t(B.shape(0)));
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
  if (indptr.size() < 1 || cptr.size() < 1 || out.ndim() != 2)
    throw std::invalid_argument("svd_gram: inconsistent shapes");
  const int64_t c = int64_t(indptr.size()) - 1;
  const int64_t n = int64_t(cptr.size()) - 1;
  if (int64_t(out.shape(0)) != c || int64_t(out.shape(1)) != c ||
      indices.size() != data.size() || cidx.size() != cval.size())
    throw std::invalid_argument("svd_gram: inconsistent shapes");
  check_compressed("svd_gram", indptr.data(), c, indices.data(), int64_t(indices.size()), n);
  check_compressed("svd_gram", cptr.data(), n, cidx.data(), int64_t(cidx.size()), c);
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
  if (Y.ndim() != 2 || B.ndim() != 2) throw std::invalid_argument("svd_scatter: inconsistent shapes");
  const int64_t nr = int64_t(rows.size()), k = B.shape(1);
  if (int64_t(indptr.size()) != nr + 1 || int64_t(Y.shape(1)) != k ||
      indices.size() != data.size())
    throw std::invalid_argument("svd_scatter: inconsistent shapes");
  check_compressed("svd_scatter", indptr.data(), nr, indices.data(), int64_t(indices.size()),
                   int64_t(Y.shape(0)));
  // Rows strictly increasing (so distinct: the threads own whole rows of B) and in range.
  for (int64_t r = 0; r < nr; ++r) {
    const int32_t row = rows.data()[r];
    if (row < 0 || int64_t(row) >= int64_t(B.shape(0)) || (r && row <= rows.data()[r - 1]))
      throw std::invalid_argument("svd_scatter: rows must increase strictly and lie in [0, len(B))");
  }
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
