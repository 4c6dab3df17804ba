// Very sparse random projection generated on the fly, and the FastRP graph products (CPU).
// The kernel bodies live in randproj_kernels.inl, compiled once portable and once with AVX2;
// the functions below pick one at run time (simd_level()).
#pragma once
#include <cstdint>

#include "spmm.hpp"

namespace matkern {

#define MATKERN_RP_DECLS                                                                         \
  void rp_count(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,  \
                int64_t* counts);                                                                \
  void rp_fill(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,   \
               const int64_t* indptr, int32_t* comps, int8_t* negs);                             \
  template <typename T>                                                                          \
  void rp_dense(const T* x, int64_t n, int64_t d, uint64_t seed_key, const uint64_t* table,      \
                int64_t k, double scale, T* out);                                                \
  template <typename T>                                                                          \
  void rp_sparse(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,        \
                 int64_t d, const T* rowscale, const T* colscale, uint64_t seed_key,             \
                 const uint64_t* table, int64_t k, double scale, T* out);                        \
  template <typename T>                                                                          \
  int64_t rp_sparse_csr(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n, \
                        int64_t d, uint64_t seed_key, const uint64_t* table, int64_t k,          \
                        double scale, int64_t* out_indptr, int32_t** out_indices, T** out_data); \
  template <typename T>                                                                          \
  void rp_sparse_given(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,  \
                       const T* rowscale, const T* colscale, const int64_t* ptr,                 \
                       const int32_t* comp, const float* val, int64_t k, double scale, T* out);  \
  template <typename T>                                                                          \
  void accumulate_rows(const T* u, int64_t n, int64_t k, double weight, bool l2, T* emb,         \
                       const T* base);

namespace rp_portable {
MATKERN_RP_DECLS
}
namespace avx2 {
MATKERN_RP_DECLS
}
#undef MATKERN_RP_DECLS

// Run-time dispatch (portable or AVX2) of the kernels above; same signatures.
namespace rp {
void count(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
           int64_t* counts);
void fill(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
          const int64_t* indptr, int32_t* comps, int8_t* negs);
template <typename T>
void dense(const T* x, int64_t n, int64_t d, uint64_t seed_key, const uint64_t* table, int64_t k,
           double scale, T* out);
template <typename T>
void sparse(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n, int64_t d,
            const T* rowscale, const T* colscale, uint64_t seed_key, const uint64_t* table,
            int64_t k, double scale, T* out);
// rp_sparse's result (no row or column scale) as CSR: out_indptr (n + 1) filled, the
// indices and values malloc'd (the caller frees them with std::free); returns nnz.
template <typename T>
int64_t sparse_csr(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,
                   int64_t d, uint64_t seed_key, const uint64_t* table, int64_t k, double scale,
                   int64_t* out_indptr, int32_t** out_indices, T** out_data);
// sparse() with R's rows (ptr, comp, val; as rp_fill generates them, val +-1) given.
template <typename T>
void sparse_given(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,
                  const T* rowscale, const T* colscale, const int64_t* ptr, const int32_t* comp,
                  const float* val, int64_t k, double scale, T* out);
// emb += weight * (l2 ? u_i / ||u_i|| : u_i) per row; with base (not null): emb = base + that.
template <typename T>
void accumulate(const T* u, int64_t n, int64_t k, double weight, bool l2, T* emb,
                const T* base = nullptr);
// One FastRP hop of a block of m rows: V = S B (S the CSR rows, B the previous iterate as row
// blocks: csr_spmm_blocks) and emb = base + weight * (l2 ? v_i / ||v_i|| : v_i) (accumulate's
// arithmetic: the same bits as the two calls), each run of V's rows added while in cache. V is
// written to u_out when not null (the next hop's input), else never stored whole; base null:
// emb += instead.
template <typename T>
void hop(int64_t m, int64_t k, const int64_t* indptr, const int32_t* indices, const T* data,
         const RowBlocks<T>& b, double weight, bool l2, T* emb, const T* base, T* u_out);
}  // namespace rp

}  // namespace matkern
