// Sparse kernels of the truncated-SVD updating family (Deng et al.'s extended factorisation):
// the projection of an update's nonzeros on the basis rows they name, the update's Gram matrix,
// and the scatter of a small dense correction into the rows the update touches. float64 only:
// the updater keeps its factors in float64 so that orthogonality survives many updates.
#pragma once
#include <cstdint>

namespace matkern {

// out (c x k) = Xt @ B, Xt a c x n CSR matrix, B (n x k) row-major. Only the rows of B that Xt
// names are read. Threads over the c output rows.
void svd_gather(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
                const double* B, int64_t k, double* out);

// G (c x c) = Xt @ Xt^T, Xt given both as CSR (c x n: indptr, indices, data) and as CSC
// (cptr of length n + 1, cidx row indices < c, cval). No duplicate entries.
void svd_gram(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
              const int64_t* cptr, const int32_t* cidx, const double* cval, double* G);

// B[rows[r], :] += sum_p data[p] * Y[indices[p], :] for p in [indptr[r], indptr[r + 1]),
// r < nr; rows distinct (each row of B written by one thread). Y is (c x k), B (n x k).
void svd_scatter(const int32_t* rows, const int64_t* indptr, const int32_t* indices,
                 const double* data, int64_t nr, const double* Y, int64_t k, double* B);

namespace avx2 {
// y[0:k] += a * x[0:k]
void axpy(double a, const double* x, double* y, int64_t k);
}  // namespace avx2

}  // namespace matkern
