// CountSketch on the GPU: each entry of A is added, with its row's (or column's) sign, into
// its bucket's output row (column) by an atomic add: one pass over the entries, O(nnz) for
// CSR. The SRHT needs no kernel of its own (python/matkern/_sketch_ops.py: CuPy code around
// the batched FWHT of hadamard.cu).
#include "check.cuh"
#include "sketch.hpp"

namespace matkern::cuda {
namespace {

constexpr uint64_t kG = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kC1 = 0xD1B54A32D192ED03ULL;
constexpr uint64_t kCountStream = 2;
constexpr int kThreads = 256;

__device__ __forceinline__ uint64_t mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

// bucket in [0, k) and sign of index i (same arithmetic as cpp/sketch.hpp and the reference)
__device__ __forceinline__ long long bucket_of(uint64_t base, long long i, long long k,
                                               bool* negative) {
  const uint64_t h = mix(base + uint64_t(i + 1) * kG);
  *negative = h & 1;
  return (long long)(((h >> 32) * uint64_t(k)) >> 32);
}

uint64_t stream_base(uint64_t key) {
  uint64_t z = key + kCountStream * kC1;
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

// Grid-stride over the m * c entries of a dense a: out[b(i), j] += s(i) a[i, j].
template <typename T>
__global__ void left_dense_kernel(const T* __restrict__ a, long long m, long long c, uint64_t base,
                                  long long k, T* __restrict__ out) {
  const long long total = m * c;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const long long i = e / c, j = e - i * c;
    bool neg;
    const long long b = bucket_of(base, i, k, &neg);
    atomicAdd(out + b * c + j, neg ? -a[e] : a[e]);
  }
}

// One warp per row (grid-stride over rows), lanes over the row's entries.
template <typename T>
__global__ void left_csr_kernel(const long long* __restrict__ indptr,
                                const int32_t* __restrict__ indices, const T* __restrict__ data,
                                long long m, long long c, uint64_t base, long long k,
                                T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long i = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32; i < m; i += warps) {
    bool neg;
    const long long b = bucket_of(base, i, k, &neg);
    T* o = out + b * c;
    for (long long q = indptr[i] + lane; q < indptr[i + 1]; q += 32)
      atomicAdd(o + indices[q], neg ? -data[q] : data[q]);
  }
}

// out[i, b(j)] += s(j) a[i, j] over the m * n entries of a dense a.
template <typename T>
__global__ void right_dense_kernel(const T* __restrict__ a, long long m, long long n, uint64_t base,
                                   long long l, T* __restrict__ out) {
  const long long total = m * n;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const long long i = e / n, j = e - i * n;
    bool neg;
    const long long b = bucket_of(base, j, l, &neg);
    atomicAdd(out + i * l + b, neg ? -a[e] : a[e]);
  }
}

template <typename T>
__global__ void right_csr_kernel(const long long* __restrict__ indptr,
                                 const int32_t* __restrict__ indices, const T* __restrict__ data,
                                 long long m, uint64_t base, long long l, T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long i = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32; i < m; i += warps) {
    T* o = out + i * l;
    for (long long q = indptr[i] + lane; q < indptr[i + 1]; q += 32) {
      bool neg;
      const long long b = bucket_of(base, indices[q], l, &neg);
      atomicAdd(o + b, neg ? -data[q] : data[q]);
    }
  }
}

unsigned grid_for(long long work) {
  const long long g = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(g < 1 ? 1 : (g > 65535 ? 65535 : g));
}

}  // namespace

#define MATKERN_SKETCH_CUDA_DEFS(T)                                                               \
  void countsketch_left_dense(const T* a, int64_t m, int64_t c, uint64_t key, int64_t k, T* out,  \
                              std::uintptr_t stream) {                                            \
    MATKERN_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(T) * k * c, as_stream(stream)));            \
    left_dense_kernel<T>                                                                          \
        <<<grid_for(m * c), kThreads, 0, as_stream(stream)>>>(a, m, c, stream_base(key), k, out); \
    MATKERN_CUDA_LAUNCH_CHECK();                                                                  \
  }                                                                                               \
  void countsketch_left_csr(const int64_t* indptr, const int32_t* indices, const T* data,         \
                            int64_t m, int64_t c, uint64_t key, int64_t k, T* out,                \
                            std::uintptr_t stream) {                                              \
    MATKERN_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(T) * k * c, as_stream(stream)));            \
    left_csr_kernel<T><<<grid_for(m * 32), kThreads, 0, as_stream(stream)>>>(                     \
        reinterpret_cast<const long long*>(indptr), indices, data, m, c, stream_base(key), k,     \
        out);                                                                                     \
    MATKERN_CUDA_LAUNCH_CHECK();                                                                  \
  }                                                                                               \
  void countsketch_right_dense(const T* a, int64_t m, int64_t n, uint64_t key, int64_t l, T* out, \
                               std::uintptr_t stream) {                                           \
    MATKERN_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(T) * m * l, as_stream(stream)));            \
    right_dense_kernel<T>                                                                         \
        <<<grid_for(m * n), kThreads, 0, as_stream(stream)>>>(a, m, n, stream_base(key), l, out); \
    MATKERN_CUDA_LAUNCH_CHECK();                                                                  \
  }                                                                                               \
  void countsketch_right_csr(const int64_t* indptr, const int32_t* indices, const T* data,        \
                             int64_t m, int64_t n, uint64_t key, int64_t l, T* out,               \
                             std::uintptr_t stream) {                                             \
    (void)n;                                                                                      \
    MATKERN_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(T) * m * l, as_stream(stream)));            \
    right_csr_kernel<T><<<grid_for(m * 32), kThreads, 0, as_stream(stream)>>>(                    \
        reinterpret_cast<const long long*>(indptr), indices, data, m, stream_base(key), l, out);  \
    MATKERN_CUDA_LAUNCH_CHECK();                                                                  \
  }
MATKERN_SKETCH_CUDA_DEFS(float)
MATKERN_SKETCH_CUDA_DEFS(double)
#undef MATKERN_SKETCH_CUDA_DEFS

}  // namespace matkern::cuda
