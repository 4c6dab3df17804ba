// Bindings of the svd family: the three sparse kernels of the extended-factorisation updater.
// The kernels index B / Y / out with the index arrays unchecked: each binding validates the
// whole structure (Csr::check_structure, O(nnz + rows), small next to the kernels' O(nnz k)),
// so that no caller of the module -- the Python layer validates first -- can make them read or
// write out of bounds.
#include "bind_common.hpp"
#include "svd.hpp"

namespace matkern {
namespace {

// out (c x k) = Xt @ B, Xt (c x n) as CSR (indptr, indices, data).
void gather(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const double> data,
            carr<const double> B, carr<double> out) {
  const char* error = "svd_gather: inconsistent shapes";
  if (B.ndim() != 2 || out.ndim() != 2) throw std::invalid_argument(error);
  const Csr x = check_csr(indptr, indices, data, error);
  const int64_t k = B.shape(1);
  if (int64_t(out.shape(0)) != x.rows || int64_t(out.shape(1)) != k)
    throw std::invalid_argument(error);
  x.check_structure("svd_gather", int64_t(B.shape(0)));
  svd_gather(x.indptr, x.indices, data.data(), x.rows, B.data(), k, out.data());
}

// out (c x c) = Xt @ Xt^T, Xt given as CSR (indptr, indices, data) and as CSC (cptr, cidx, cval).
void gram(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const double> data,
          carr<const int64_t> cptr, carr<const int32_t> cidx, carr<const double> cval,
          carr<double> out) {
  const char* error = "svd_gram: inconsistent shapes";
  if (out.ndim() != 2) throw std::invalid_argument(error);
  const Csr x = check_csr(indptr, indices, data, error);
  const Csr xt = check_csr(cptr, cidx, cval, error);
  if (int64_t(out.shape(0)) != x.rows || int64_t(out.shape(1)) != x.rows)
    throw std::invalid_argument(error);
  x.check_structure("svd_gram", xt.rows);
  xt.check_structure("svd_gram", x.rows);
  svd_gram(x.indptr, x.indices, data.data(), x.rows, xt.indptr, xt.indices, cval.data(),
           out.data());
}

// B[rows[r]] += row r of the CSR matrix (indptr, indices, data) times Y.
void scatter(carr<const int32_t> rows, carr<const int64_t> indptr, carr<const int32_t> indices,
             carr<const double> data, carr<const double> Y, carr<double> B) {
  const char* error = "svd_scatter: inconsistent shapes";
  if (Y.ndim() != 2 || B.ndim() != 2) throw std::invalid_argument(error);
  const int64_t nr = int64_t(rows.size()), k = B.shape(1);
  const Csr x = check_csr(indptr, indices, data, nr, error);
  if (int64_t(Y.shape(1)) != k) throw std::invalid_argument(error);
  x.check_structure("svd_scatter", int64_t(Y.shape(0)));
  // Rows strictly increasing (so distinct: the threads own whole rows of B) and in range.
  const int32_t* rp = rows.data();
  for (int64_t r = 0; r < nr; ++r)
    if (rp[r] < 0 || int64_t(rp[r]) >= int64_t(B.shape(0)) || (r && rp[r] <= rp[r - 1]))
      throw std::invalid_argument(
          "svd_scatter: rows must increase strictly and lie in [0, len(B))");
  svd_scatter(rp, x.indptr, x.indices, data.data(), nr, Y.data(), k, B.data());
}

}  // namespace

void bind_svd(nb::module_& m) {
  m.def("svd_gather", &gather, kKernelCall, "indptr"_a, "indices"_a, "data"_a, "B"_a, "out"_a);
  m.def("svd_gram", &gram, kKernelCall, "indptr"_a, "indices"_a, "data"_a, "cptr"_a, "cidx"_a,
        "cval"_a, "out"_a);
  m.def("svd_scatter", &scatter, kKernelCall, "rows"_a, "indptr"_a, "indices"_a, "data"_a, "Y"_a,
        "B"_a);
}

}  // namespace matkern
