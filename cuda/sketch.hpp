// Launchers of the sketching family (defined in sketch.cu; plain C++ declarations). The
// CountSketch buckets and signs are the hash of python/matkern/reference/sketch.py (stream 2),
// computed in the kernels; sums use atomic adds (the order of the additions is not fixed).
#pragma once
#include <cstdint>

namespace matkern::cuda {

// out (k x c) = S a for the CountSketch of a's m rows: a dense (m x c) or CSR (m rows).
// out (m x l) = a S^T for the CountSketch of a's n columns: dense (m x n) or CSR.
#define MATKERN_SKETCH_CUDA_DECLS(T)                                                              \
  void countsketch_left_dense(const T* a, int64_t m, int64_t c, uint64_t key, int64_t k, T* out,  \
                              std::uintptr_t stream);                                             \
  void countsketch_left_csr(const int64_t* indptr, const int32_t* indices, const T* data,         \
                            int64_t m, int64_t c, uint64_t key, int64_t k, T* out,                \
                            std::uintptr_t stream);                                               \
  void countsketch_right_dense(const T* a, int64_t m, int64_t n, uint64_t key, int64_t l, T* out, \
                               std::uintptr_t stream);                                            \
  void countsketch_right_csr(const int64_t* indptr, const int32_t* indices, const T* data,        \
                             int64_t m, int64_t n, uint64_t key, int64_t l, T* out,               \
                             std::uintptr_t stream);
MATKERN_SKETCH_CUDA_DECLS(float)
MATKERN_SKETCH_CUDA_DECLS(double)
#undef MATKERN_SKETCH_CUDA_DECLS

}  // namespace matkern::cuda
