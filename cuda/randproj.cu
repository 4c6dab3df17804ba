// Very sparse random projection and FastRP products on the GPU. The generator is the same
// integer arithmetic as the CPU and NumPy ones (splitmix64 finalizer, geometric skip by a
// shared uint64 table), so the three give bit-identical matrices.
#include "check.cuh"
#include "randproj.hpp"

namespace matkern::cuda {
namespace {

constexpr uint64_t kG = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kC1 = 0xD1B54A32D192ED03ULL;

__device__ __forceinline__ uint64_t mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

__device__ __forceinline__ long long skip_of(const uint64_t* table, long long k, uint64_t u) {
  long long lo = 1, hi = k + 1;
  while (lo < hi) {
    const long long mid = (lo + hi) >> 1;
    if (table[mid] > u) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

// mode 0: count into counts[r]; mode 1: write comps/negs from indptr[r].
__global__ void gen_kernel(uint64_t seed_key, const uint64_t* __restrict__ table, long long k,
                           long long j0, long long nrows, long long* counts,
                           const long long* indptr, int32_t* comps, int8_t* negs, int mode) {
  for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < nrows;
       r += (long long)gridDim.x * blockDim.x) {
    const uint64_t base = mix(seed_key + uint64_t(j0 + r + 1) * kC1);
    long long pos = -1, cnt = 0, p = mode ? indptr[r] : 0;
    for (uint64_t t = 1;; ++t) {
      const uint64_t h = mix(base + t * kG);
      pos += skip_of(table, k, h >> 1) + 1;
      if (pos >= k) break;
      if (mode) {
        comps[p] = int32_t(pos);
        negs[p] = int8_t(h & 1);
        ++p;
      }
      ++cnt;
    }
    if (!mode) counts[r] = cnt;
  }
}

// One block per row (grid-stride), threads over components: a gather from the row of x.
template <typename T>
__global__ void dense_kernel(const T* __restrict__ x, long long n, long long d,
                             const long long* __restrict__ cptr, const int32_t* __restrict__ cols,
                             const int8_t* __restrict__ negs, long long j0, long long k,
                             T* __restrict__ out) {
  for (long long r = blockIdx.x; r < n; r += gridDim.x) {
    const T* xr = x + r * d + j0;
    for (long long c = threadIdx.x; c < k; c += blockDim.x) {
      T acc = 0;
      for (long long p = cptr[c]; p < cptr[c + 1]; ++p) {
        const T v = xr[cols[p]];
        acc += negs[p] ? -v : v;
      }
      out[r * k + c] += acc;
    }
  }
}

// One warp per row of X; lanes over its nonzeros; each scatters into the row of out.
template <typename T>
__global__ void sparse_kernel(const long long* __restrict__ xptr, const int32_t* __restrict__ xidx,
                              const T* __restrict__ xval, long long n,
                              const T* __restrict__ colscale, const long long* __restrict__ rptr,
                              const int32_t* __restrict__ comps, const int8_t* __restrict__ negs,
                              long long j0, long long j1, long long k, T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
  for (long long i = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5; i < n; i += warps) {
    T* o = out + i * k;
    for (long long q = xptr[i] + lane; q < xptr[i + 1]; q += 32) {
      const long long j = xidx[q];
      if (j < j0 || j >= j1) continue;
      T v = xval[q];
      if (colscale) v *= colscale[j];
      for (long long p = rptr[j - j0]; p < rptr[j - j0 + 1]; ++p)
        atomicAdd(o + comps[p], negs[p] ? -v : v);
    }
  }
}

// One warp per row of A; lanes over 32 columns at a time (coalesced rows of B).
template <typename T>
__global__ void spmm_kernel(const long long* __restrict__ indptr,
                            const int32_t* __restrict__ indices, const T* __restrict__ data,
                            long long n, const T* __restrict__ rowscale, const T* __restrict__ b,
                            long long k, T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
  for (long long i = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5; i < n; i += warps) {
    const long long q0 = indptr[i], q1 = indptr[i + 1];
    const T s = rowscale ? rowscale[i] : T(1);
    for (long long c0 = 0; c0 < k; c0 += 128) {
      T acc[4] = {0, 0, 0, 0};
      for (long long q = q0; q < q1; ++q) {
        const T a = data[q];
        const T* bj = b + (long long)indices[q] * k + c0 + lane;
#pragma unroll
        for (int u = 0; u < 4; ++u)
          if (c0 + lane + 32 * u < k) acc[u] += a * bj[32 * u];
      }
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (c0 + lane + 32 * u < k) out[i * k + c0 + lane + 32 * u] = s * acc[u];
    }
  }
}

unsigned grid_for(long long work, int per_block) {
  long long g = (work + per_block - 1) / per_block;
  if (g > 65535LL * 16) g = 65535LL * 16;
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

}  // namespace

void rp_count(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
              int64_t* counts, std::uintptr_t stream) {
  if (nrows <= 0) return;
  gen_kernel<<<grid_for(nrows, 256), 256, 0, as_stream(stream)>>>(
      seed_key, table, k, j0, nrows, reinterpret_cast<long long*>(counts), nullptr, nullptr,
      nullptr, 0);
  MATKERN_CUDA_LAUNCH_CHECK();
}

void rp_fill(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
             const int64_t* indptr, int32_t* comps, int8_t* negs, std::uintptr_t stream) {
  if (nrows <= 0) return;
  gen_kernel<<<grid_for(nrows, 256), 256, 0, as_stream(stream)>>>(
      seed_key, table, k, j0, nrows, nullptr, reinterpret_cast<const long long*>(indptr), comps,
      negs, 1);
  MATKERN_CUDA_LAUNCH_CHECK();
}

#define MATKERN_RP_CUDA_DEFS(T)                                                                    \
  void rp_dense_accumulate(const T* x, int64_t n, int64_t d, const int64_t* cptr,                  \
                           const int32_t* cols, const int8_t* negs, int64_t j0, int64_t k, T* out, \
                           std::uintptr_t stream) {                                                \
    if (n <= 0) return;                                                                            \
    dense_kernel<T><<<grid_for(n, 1), 256, 0, as_stream(stream)>>>(                                \
        x, n, d, reinterpret_cast<const long long*>(cptr), cols, negs, j0, k, out);                \
    MATKERN_CUDA_LAUNCH_CHECK();                                                                   \
  }                                                                                                \
  void rp_sparse_accumulate(const int64_t* xptr, const int32_t* xidx, const T* xval, int64_t n,    \
                            const T* colscale, const int64_t* rptr, const int32_t* comps,          \
                            const int8_t* negs, int64_t j0, int64_t j1, int64_t k, T* out,         \
                            std::uintptr_t stream) {                                               \
    if (n <= 0) return;                                                                            \
    sparse_kernel<T><<<grid_for(n, 8), 256, 0, as_stream(stream)>>>(                               \
        reinterpret_cast<const long long*>(xptr), xidx, xval, n, colscale,                         \
        reinterpret_cast<const long long*>(rptr), comps, negs, j0, j1, k, out);                    \
    MATKERN_CUDA_LAUNCH_CHECK();                                                                   \
  }                                                                                                \
  void rp_csr_spmm(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,        \
                   const T* rowscale, const T* b, int64_t k, T* out, std::uintptr_t stream) {      \
    if (n <= 0) return;                                                                            \
    spmm_kernel<T><<<grid_for(n, 8), 256, 0, as_stream(stream)>>>(                                 \
        reinterpret_cast<const long long*>(indptr), indices, data, n, rowscale, b, k, out);        \
    MATKERN_CUDA_LAUNCH_CHECK();                                                                   \
  }
MATKERN_RP_CUDA_DEFS(float)
MATKERN_RP_CUDA_DEFS(double)
#undef MATKERN_RP_CUDA_DEFS

}  // namespace matkern::cuda
