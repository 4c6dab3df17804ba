// Walsh-Hadamard transform on the GPU.
// Rows (inner == 1): one block takes 2^B contiguous elements (B <= 15 for float, 14 for double)
// and does all B stages on chip: registers for the bits that a thread's elements differ in,
// warp shuffles for the next five bits, one pass through shared memory to switch layouts.
// Longer rows, and the strided case (inner > 1), finish with radix-16 passes through global
// memory in which consecutive threads touch consecutive addresses.
#include <cmath>

#include "check.cuh"
#include "hadamard.hpp"

namespace matkern::cuda {
namespace {

__host__ __device__ constexpr int log_e_for(int b) {
  return b <= 7 ? 1 : (b - 5 + 1) / 2;  // ceil((b-5)/2): keeps log T <= log E + 5
}
__device__ __forceinline__ int pad(int j) { return j + (j >> 5); }

template <int E, typename T>
__device__ __forceinline__ void reg_stages(T (&r)[E]) {
#pragma unroll
  for (int h = 1; h < E; h *= 2)
#pragma unroll
    for (int i = 0; i < E; ++i)
      if ((i & h) == 0) {
        T a = r[i], b = r[i + h];
        r[i] = a + b;
        r[i + h] = a - b;
      }
}

template <typename T, int B>
__global__ void __launch_bounds__(1 << (B - log_e_for(B)))
    fwht_onchip_kernel(T* __restrict__ x, T scale) {
  constexpr int LOG_E = log_e_for(B), E = 1 << LOG_E, LOG_T = B - LOG_E, NT = 1 << LOG_T;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sm = reinterpret_cast<T*>(smem_raw);
  T* base = x + (static_cast<long long>(blockIdx.x) << B);
  const int t = threadIdx.x;
  T r[E];
  // Layout A (j = t + NT*i): a thread's elements differ in bits LOG_T..B-1. Coalesced load.
#pragma unroll
  for (int i = 0; i < E; ++i) r[i] = base[t + NT * i];
  reg_stages<E>(r);
#pragma unroll
  for (int i = 0; i < E; ++i) sm[pad(t + NT * i)] = r[i];
  __syncthreads();
  // Layout B (j = t*E + i): bits 0..LOG_E-1 in registers, the next bits across lanes.
#pragma unroll
  for (int i = 0; i < E; ++i) r[i] = sm[pad(t * E + i)];
  reg_stages<E>(r);
#pragma unroll
  for (int m = 1; m < 32 && m < (1 << (LOG_T - LOG_E)); m *= 2)
#pragma unroll
    for (int i = 0; i < E; ++i) {
      T p = __shfl_xor_sync(0xffffffffu, r[i], m);
      r[i] = (t & m) ? p - r[i] : r[i] + p;
    }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < E; ++i) sm[pad(t * E + i)] = r[i] * scale;
  __syncthreads();
#pragma unroll
  for (int i = 0; i < E; ++i) base[t + NT * i] = sm[pad(t + NT * i)];
}

// Bits s..s+R_LOG-1 of the middle axis of (outer, n, inner). Thread order: inner fastest, then
// the low bits below s, so that a warp reads consecutive addresses.
template <typename T, int R_LOG>
__global__ void fwht_radix_kernel(T* __restrict__ x, long long outer, long long n, long long inner,
                                  int s, T scale) {
  constexpr int R = 1 << R_LOG;
  const long long lo_count = 1LL << s, hi_count = n >> (s + R_LOG);
  const long long total = outer * hi_count * lo_count * inner;
  const long long stride = lo_count * inner;
  for (long long tid = blockIdx.x * (long long)blockDim.x + threadIdx.x; tid < total;
       tid += (long long)gridDim.x * blockDim.x) {
    long long rest = tid;
    const long long in = rest % inner;
    rest /= inner;
    const long long lo = rest % lo_count;
    rest /= lo_count;
    const long long hi = rest % hi_count;
    const long long o = rest / hi_count;
    T* p = x + o * n * inner + ((hi << (s + R_LOG)) + lo) * inner + in;
    T r[R];
#pragma unroll
    for (int m = 0; m < R; ++m) r[m] = p[m * stride];
    reg_stages<R>(r);
#pragma unroll
    for (int m = 0; m < R; ++m) p[m * stride] = r[m] * scale;
  }
}

template <typename T, int B>
void launch_onchip(T* x, long long chunks, T scale, cudaStream_t st) {
  constexpr int NT = 1 << (B - log_e_for(B));
  const size_t smem = size_t((1 << B) + (1 << B) / 32 + 1) * sizeof(T);
  if (smem > 48 * 1024)
    MATKERN_CUDA_CHECK(cudaFuncSetAttribute(
        fwht_onchip_kernel<T, B>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  fwht_onchip_kernel<T, B><<<unsigned(chunks), NT, smem, st>>>(x, scale);
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <typename T>
void onchip(int b, T* x, long long chunks, T scale, cudaStream_t st) {
  switch (b) {
    case 6: return launch_onchip<T, 6>(x, chunks, scale, st);
    case 7: return launch_onchip<T, 7>(x, chunks, scale, st);
    case 8: return launch_onchip<T, 8>(x, chunks, scale, st);
    case 9: return launch_onchip<T, 9>(x, chunks, scale, st);
    case 10: return launch_onchip<T, 10>(x, chunks, scale, st);
    case 11: return launch_onchip<T, 11>(x, chunks, scale, st);
    case 12: return launch_onchip<T, 12>(x, chunks, scale, st);
    case 13: return launch_onchip<T, 13>(x, chunks, scale, st);
    case 14: return launch_onchip<T, 14>(x, chunks, scale, st);
    case 15:
      if constexpr (sizeof(T) == 4) return launch_onchip<T, 15>(x, chunks, scale, st);
  }
  throw std::runtime_error("fwht: unsupported on-chip size");
}

template <typename T>
void radix(int r, T* x, long long outer, long long n, long long inner, int s, T scale,
           cudaStream_t st) {
  const long long work = outer * inner * (n >> r);
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<long long>((work + threads - 1) / threads, 1LL << 20));
  switch (r) {
    case 1:
      fwht_radix_kernel<T, 1><<<blocks, threads, 0, st>>>(x, outer, n, inner, s, scale);
      break;
    case 2:
      fwht_radix_kernel<T, 2><<<blocks, threads, 0, st>>>(x, outer, n, inner, s, scale);
      break;
    case 3:
      fwht_radix_kernel<T, 3><<<blocks, threads, 0, st>>>(x, outer, n, inner, s, scale);
      break;
    default:
      fwht_radix_kernel<T, 4><<<blocks, threads, 0, st>>>(x, outer, n, inner, s, scale);
      break;
  }
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <typename T>
void fwht_impl(T* x, long long outer, long long n, long long inner, bool normalize,
               cudaStream_t st) {
  if (outer == 0 || n <= 1 || inner == 0) return;
  int logn = 0;
  while ((1LL << logn) < n) ++logn;
  const T final_scale = normalize ? T(1.0 / std::sqrt(double(n))) : T(1);
  int done = 0;
  if (inner == 1 && logn >= 6) {
    const int bmax = sizeof(T) == 4 ? 15 : 14;
    const int b = logn < bmax ? logn : bmax;
    onchip<T>(b, x, outer * (n >> b), b == logn ? final_scale : T(1), st);
    done = b;
  }
  while (done < logn) {
    const int r = (logn - done) < 4 ? (logn - done) : 4;
    radix<T>(r, x, outer, n, inner, done, done + r == logn ? final_scale : T(1), st);
    done += r;
  }
}

template <typename T>
__global__ void sign_pad_kernel(const T* __restrict__ x, const T* __restrict__ signs,
                                long long rows, long long d, long long dpad, T* __restrict__ z) {
  const long long total = rows * dpad;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / dpad, j = i % dpad;
    z[i] = j < d ? x[r * d + j] * signs[j] : T(0);
  }
}

template <typename T>
__global__ void sparse_rows_kernel(const T* __restrict__ z, long long rows, long long dpad,
                                   const int64_t* __restrict__ indptr,
                                   const int32_t* __restrict__ indices, const T* __restrict__ pdata,
                                   long long k, T scale, T* __restrict__ out) {
  const long long total = rows * k;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / k, c = i % k;
    const T* zr = z + r * dpad;
    T acc = 0;
    for (int64_t p = indptr[c]; p < indptr[c + 1]; ++p) acc += pdata[p] * zr[indices[p]];
    out[i] = acc * scale;
  }
}

template <typename T>
void fjlt_impl(const T* x, int64_t rows, int64_t d, int64_t dpad, const T* signs,
               const int64_t* indptr, const int32_t* indices, const T* pdata, int64_t k,
               double scale, T* z, T* out, cudaStream_t st) {
  if (rows == 0 || k == 0) return;
  const int threads = 256;
  auto grid = [&](long long work) {
    return unsigned(std::min<long long>((work + threads - 1) / threads, 1LL << 20));
  };
  sign_pad_kernel<T><<<grid(rows * dpad), threads, 0, st>>>(x, signs, rows, d, dpad, z);
  MATKERN_CUDA_LAUNCH_CHECK();
  fwht_impl<T>(z, rows, dpad, 1, false, st);
  sparse_rows_kernel<T>
      <<<grid(rows * k), threads, 0, st>>>(z, rows, dpad, indptr, indices, pdata, k, T(scale), out);
  MATKERN_CUDA_LAUNCH_CHECK();
}

}  // namespace

void fwht_f32(float* x, int64_t outer, int64_t n, int64_t inner, bool normalize,
              std::uintptr_t stream) {
  fwht_impl<float>(x, outer, n, inner, normalize, as_stream(stream));
}
void fwht_f64(double* x, int64_t outer, int64_t n, int64_t inner, bool normalize,
              std::uintptr_t stream) {
  fwht_impl<double>(x, outer, n, inner, normalize, as_stream(stream));
}
void fjlt_f32(const float* x, int64_t rows, int64_t d, int64_t dpad, const float* signs,
              const int64_t* p_indptr, const int32_t* p_indices, const float* p_data, int64_t k,
              double scale, float* z, float* out, std::uintptr_t stream) {
  fjlt_impl<float>(x, rows, d, dpad, signs, p_indptr, p_indices, p_data, k, scale, z, out,
                   as_stream(stream));
}
void fjlt_f64(const double* x, int64_t rows, int64_t d, int64_t dpad, const double* signs,
              const int64_t* p_indptr, const int32_t* p_indices, const double* p_data, int64_t k,
              double scale, double* z, double* out, std::uintptr_t stream) {
  fjlt_impl<double>(x, rows, d, dpad, signs, p_indptr, p_indices, p_data, k, scale, z, out,
                    as_stream(stream));
}

}  // namespace matkern::cuda
