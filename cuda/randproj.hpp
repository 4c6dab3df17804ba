// Launchers of the randproj family (defined in randproj.cu; plain C++ declarations).
// The generator is the one of cpp/randproj_kernels.inl and python/matkern/reference/randproj.py.
#pragma once
#include <cstdint>

namespace matkern::cuda {

// counts[r] = number of nonzeros of feature row j0 + r of R, r < nrows.
void rp_count(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
              int64_t* counts, std::uintptr_t stream);
// Rows j0..j0+nrows-1 into CSR (indptr from the prefix sum of rp_count).
void rp_fill(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
             const int64_t* indptr, int32_t* comps, int8_t* negs, std::uintptr_t stream);

// out[r, c] += sum_{p in cptr[c]..cptr[c+1]} (neg_p ? -1 : 1) * x[r, j0 + cols[p]]:
// one chunk of features, grouped by component. x (n, d), out (n, k).
#define MATKERN_RP_CUDA_DECLS(T)                                                                   \
  void rp_dense_accumulate(const T* x, int64_t n, int64_t d, const int64_t* cptr,                  \
                           const int32_t* cols, const int8_t* negs, int64_t j0, int64_t k, T* out, \
                           std::uintptr_t stream);                                                 \
  void rp_sparse_accumulate(const int64_t* xptr, const int32_t* xidx, const T* xval, int64_t n,    \
                            const T* colscale, const int64_t* rptr, const int32_t* comps,          \
                            const int8_t* negs, int64_t j0, int64_t j1, int64_t k, T* out,         \
                            std::uintptr_t stream);                                                \
  void rp_csr_spmm(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,        \
                   const T* rowscale, const T* b, int64_t k, T* out, std::uintptr_t stream);
MATKERN_RP_CUDA_DECLS(float)
MATKERN_RP_CUDA_DECLS(double)
#undef MATKERN_RP_CUDA_DECLS

}  // namespace matkern::cuda
