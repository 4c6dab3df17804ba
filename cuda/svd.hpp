// Launchers of the svd family's sparse kernels (defined in svd.cu; plain C++ declarations).
// Same semantics as the CPU kernels in cpp/svd.hpp; float64 only.
#pragma once
#include <cstdint>

namespace matkern::cuda {

// out (c x k) = Xt @ B, Xt CSR (c rows), B (n x k)
void svd_gather(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
                const double* B, int64_t k, double* out, std::uintptr_t stream);
// G (c x c) = Xt @ Xt^T from Xt's CSR (c rows) and CSC (cptr, cidx, cval) forms
void svd_gram(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
              const int64_t* cptr, const int32_t* cidx, const double* cval, double* G,
              std::uintptr_t stream);
// B[rows[r]] += sum_p data[p] * Y[indices[p]] over p in [indptr[r], indptr[r+1]), rows distinct
void svd_scatter(const int32_t* rows, const int64_t* indptr, const int32_t* indices,
                 const double* data, int64_t nr, const double* Y, int64_t k, double* B,
                 std::uintptr_t stream);

}  // namespace matkern::cuda
