// Fused rotate + quantize on the GPU (rotate_quant.hpp). One 256-thread block per row; the row
// (n <= kRotateMaxN floats) lives in shared memory for the whole transform:
//  1. load: z[e] = x[e] * signs[e];
//  2. H_m stage (m > 1), in passes of whole blocks of m: thread t computes the outputs
//     e = e0 + t + r * NT (r < kPer) of the pass, z'[b m + i] = sum_j H[i][j] z[b m + j] with j
//     ascending from 0 (the CPU kernels' order; the products are +-z, exact), into registers;
//     a barrier; then writes them back (every read of a pass precedes its writes);
//  3. the Sylvester butterflies across blocks, stage h = 1, 2, .. p/2: pair t < n / 2 is
//     (a, a + h m) with a = (t / (h m)) 2 h m + t % (h m); one barrier per stage;
//  4. the scale 1/sqrt(n) (and rounding to float16 where asked), then either the int8
//     quantization of cuda/int8.cu (absmax by warp shuffles, codes rint(x * 127 / absmax)) or
//     the padded float rows.
// tests/test_rotate_quant_cuda_replay.py replays these indices on the host.
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>

#include "check.cuh"
#include "rotate_quant.hpp"

namespace matkern::cuda {
namespace {

constexpr int NT = 256;
constexpr int kPer = 8;  // outputs per thread per pass of the H_m stage

__device__ __forceinline__ float load_x(const float* p) { return *p; }
__device__ __forceinline__ float load_x(const uint16_t* p) {
  return __half2float(__ushort_as_half(*p));
}
__device__ __forceinline__ void store_row(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_row(uint16_t* p, float v) {
  *p = __half_as_ushort(__float2half_rn(v));
}

// Steps 1-3 and the scale on the row of this block; z: n floats of shared memory.
template <typename T>
__device__ void rotate_row(const T* __restrict__ xr, int m, int p, const float* __restrict__ signs,
                           const float* __restrict__ ht, bool round_f16, float* z) {
  const int n = m * p, mp = (m + 7) / 8 * 8;
  for (int e = threadIdx.x; e < n; e += NT) {
    const float v = load_x(xr + e);
    z[e] = signs ? v * signs[e] : v;
  }
  __syncthreads();
  if (m > 1) {
    const int pass_blocks = max(1, NT * kPer / m);
    for (int b0 = 0; b0 < p; b0 += pass_blocks) {
      const int e0 = b0 * m, e1 = min(p, b0 + pass_blocks) * m;
      float acc[kPer];
#pragma unroll
      for (int r = 0; r < kPer; ++r) {
        const int e = e0 + threadIdx.x + r * NT;
        acc[r] = 0.0f;
        if (e < e1) {
          const int b = e / m, i = e - b * m;
          const float* zb = z + b * m;
          for (int j = 0; j < m; ++j) acc[r] = fmaf(zb[j], ht[j * mp + i], acc[r]);
        }
      }
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kPer; ++r) {
        const int e = e0 + threadIdx.x + r * NT;
        if (e < e1) z[e] = acc[r];
      }
      __syncthreads();
    }
  }
  for (int h = m; h < n; h *= 2) {  // h counts elements: (blocks per half) * m
    for (int t = threadIdx.x; t < n / 2; t += NT) {
      const int a = (t / h) * 2 * h + t % h;
      const float u = z[a], v = z[a + h];
      z[a] = u + v;
      z[a + h] = u - v;
    }
    __syncthreads();
  }
  const float s = static_cast<float>(1.0 / sqrt(static_cast<double>(n)));  // as the CPU's
  for (int e = threadIdx.x; e < n; e += NT) {
    float v = z[e] * s;
    if (round_f16) v = __half2float(__float2half_rn(v));
    z[e] = v;
  }
  __syncthreads();
}

template <typename T>
__global__ void __launch_bounds__(NT)
    rotate_quantize_kernel(const T* __restrict__ x, int m, int p, const float* __restrict__ signs,
                           const float* __restrict__ ht, bool round_f16, int kp,
                           int8_t* __restrict__ q, float* __restrict__ scale) {
  extern __shared__ float z[];
  __shared__ float s_max[NT / 32];
  __shared__ int s_bad[NT / 32];
  const int n = m * p;
  rotate_row(x + static_cast<long long>(blockIdx.x) * n, m, p, signs, ht, round_f16, z);
  float mx = 0.0f;
  int bad = 0;
  for (int i = threadIdx.x; i < n; i += NT) {
    const float a = fabsf(z[i]);
    bad |= !(a <= 3.402823466e38f);  // NaN or Inf
    mx = fmaxf(mx, a);
  }
  for (int o = 16; o > 0; o /= 2) {
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    bad |= __shfl_xor_sync(0xffffffffu, bad, o);
  }
  const int w = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) {
    s_max[w] = mx;
    s_bad[w] = bad;
  }
  __syncthreads();
  mx = 0.0f;
  bad = 0;
  for (int i = 0; i < NT / 32; ++i) {
    mx = fmaxf(mx, s_max[i]);
    bad |= s_bad[i];
  }
  const bool zero = bad || mx == 0.0f;
  if (threadIdx.x == 0) scale[blockIdx.x] = bad ? __int_as_float(0x7fc00000) : mx;
  const float pre = mx < 0x1p-64f ? 0x1p100f : 1.0f;  // as cuda/int8.cu and cpp/int8.hpp
  const float inv = zero ? 0.0f : __fdiv_rn(127.0f, mx * pre);
  int8_t* qr = q + static_cast<long long>(blockIdx.x) * kp;
  for (int i = threadIdx.x; i < kp; i += NT) {
    int v = 0;
    if (!zero && i < n) v = __float2int_rn(__fmul_rn(__fmul_rn(z[i], pre), inv));
    qr[i] = static_cast<int8_t>(v);
  }
}

template <typename T>
__global__ void __launch_bounds__(NT)
    rotate_rows_kernel(const T* __restrict__ x, int m, int p, const float* __restrict__ signs,
                       const float* __restrict__ ht, int ldo, T* __restrict__ out) {
  extern __shared__ float z[];
  const int n = m * p;
  rotate_row(x + static_cast<long long>(blockIdx.x) * n, m, p, signs, ht, false, z);
  T* o = out + static_cast<long long>(blockIdx.x) * ldo;
  for (int i = threadIdx.x; i < ldo; i += NT) store_row(o + i, i < n ? z[i] : 0.0f);
}

void check_sizes(int64_t rows, int64_t m, int64_t p) {
  if (m < 1 || p < 1 || m * p > kRotateMaxN || rows > 0x7fffffff)
    throw std::invalid_argument("rotate_quantize: row too long for the fused kernel");
}

template <typename T>
void launch_quantize(const T* x, int64_t rows, int64_t m, int64_t p, const float* signs,
                     const float* ht, bool round_f16, int64_t kp, int8_t* q, float* scale,
                     std::uintptr_t stream) {
  check_sizes(rows, m, p);
  if (rows == 0) return;
  const size_t smem = size_t(m * p) * sizeof(float);
  rotate_quantize_kernel<T><<<unsigned(rows), NT, smem, as_stream(stream)>>>(
      x, int(m), int(p), signs, ht, round_f16, int(kp), q, scale);
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <typename T>
void launch_rows(const T* x, int64_t rows, int64_t m, int64_t p, const float* signs,
                 const float* ht, int64_t ldo, T* out, std::uintptr_t stream) {
  check_sizes(rows, m, p);
  if (rows == 0) return;
  const size_t smem = size_t(m * p) * sizeof(float);
  rotate_rows_kernel<T><<<unsigned(rows), NT, smem, as_stream(stream)>>>(x, int(m), int(p), signs,
                                                                         ht, int(ldo), out);
  MATKERN_CUDA_LAUNCH_CHECK();
}

}  // namespace

void rotate_quantize_int8_f32(const float* x, int64_t rows, int64_t m, int64_t p,
                              const float* signs, const float* ht, bool round_f16, int64_t kp,
                              int8_t* q, float* scale, std::uintptr_t stream) {
  launch_quantize(x, rows, m, p, signs, ht, round_f16, kp, q, scale, stream);
}
void rotate_quantize_int8_f16(const uint16_t* x, int64_t rows, int64_t m, int64_t p,
                              const float* signs, const float* ht, bool round_f16, int64_t kp,
                              int8_t* q, float* scale, std::uintptr_t stream) {
  launch_quantize(x, rows, m, p, signs, ht, round_f16, kp, q, scale, stream);
}
void rotate_rows_padded_f32(const float* x, int64_t rows, int64_t m, int64_t p, const float* signs,
                            const float* ht, int64_t ldo, float* out, std::uintptr_t stream) {
  launch_rows(x, rows, m, p, signs, ht, ldo, out, stream);
}
void rotate_rows_padded_f16(const uint16_t* x, int64_t rows, int64_t m, int64_t p,
                            const float* signs, const float* ht, int64_t ldo, uint16_t* out,
                            std::uintptr_t stream) {
  launch_rows(x, rows, m, p, signs, ht, ldo, out, stream);
}

}  // namespace matkern::cuda
