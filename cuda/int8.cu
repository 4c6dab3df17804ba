// LLM.int8() on the GPU: row quantization, an int8 tensor-core GEMM (mma.sync m16n8k32 s8,
// int32 accumulation) with a fused epilogue, and a dp4a GEMV path for a few rows.
//
// GEMM tiling: a 256-thread block computes a 128 x 128 tile (BM=128 activation rows, BN=128
// weight rows); 8 warps as 2 x 4, each a 64 x 32 sub-tile = 4 x 4 mma tiles of 16 x 8. K in
// steps of 64 bytes, double-buffered in shared memory with cp.async (zero-fill past the edges).
// Shared rows are padded to 80 bytes (20 words): the fragment loads of a warp, rows g = 0..7
// and words t = 0..3, then hit 32 different banks. Fragment layouts (m16n8k32 .s8): mma.cuh;
// B's column n is row n of W, so b0, b1 are 4-byte words of W's rows.
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "check.cuh"
#include "int8.hpp"
#include "mma.cuh"

namespace matkern::cuda {
namespace {

constexpr int BM = 128, BN = 128, BK = 64, LDS = BK + 16, NT = 256;
constexpr double kInv127SqD = 1.0 / (127.0 * 127.0);

__device__ __forceinline__ float load_x(const float* p) { return *p; }
__device__ __forceinline__ float load_x(const uint16_t* p) {
  return __half2float(__ushort_as_half(*p));
}
__device__ __forceinline__ void store_out(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_out(uint16_t* p, float v) {
  *p = __half_as_ushort(__float2half_rn(v));
}

// ---------------------------------------------------------------- activation quantization
template <typename T>
__global__ void __launch_bounds__(NT)
    quantize_rows_kernel(const T* __restrict__ x, int k, int kp, const uint8_t* __restrict__ mask,
                         int8_t* __restrict__ q, float* __restrict__ scale) {
  __shared__ float s_max[NT / 32];
  __shared__ int s_bad[NT / 32];
  const T* row = x + static_cast<long long>(blockIdx.x) * k;
  float mx = 0.0f;
  int bad = 0;
  for (int i = threadIdx.x; i < k; i += NT) {
    if (mask && mask[i]) continue;
    const float a = fabsf(load_x(row + i));
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
  // Tiny rows prescaled by an exact power of two, as the CPU kernels (cpp/int8.hpp).
  const float pre = mx < 0x1p-64f ? 0x1p100f : 1.0f;
  const float inv = zero ? 0.0f : __fdiv_rn(127.0f, mx * pre);  // IEEE division, as the CPU
  int8_t* qr = q + static_cast<long long>(blockIdx.x) * kp;
  for (int i = threadIdx.x; i < kp; i += NT) {
    int v = 0;
    if (!zero && i < k && !(mask && mask[i]))
      v = __float2int_rn(__fmul_rn(__fmul_rn(load_x(row + i), pre), inv));
    qr[i] = static_cast<int8_t>(v);
  }
}

// ---------------------------------------------------------------- epilogue
struct Epi {
  const float* row_scale;
  const float* col_scale;
  const float* bias;
  const float* addend;
};

template <typename OutT>
__device__ __forceinline__ void emit(OutT* out, const Epi& ep, int r, int c, int n, int acc) {
  const long long idx = static_cast<long long>(r) * n + c;
  if constexpr (std::is_same_v<OutT, int32_t>) {  // int8_gemm: the raw product
    out[idx] = acc;
  } else {
    // In double, as the CPU epilogue: tiny or large scales leave float32's range in between.
    float v = static_cast<float>(static_cast<double>(acc) *
                                 (static_cast<double>(ep.row_scale[r]) * kInv127SqD) *
                                 static_cast<double>(ep.col_scale[c]));
    if (ep.bias) v += ep.bias[c];
    if (ep.addend) v += ep.addend[idx];
    store_out(out + idx, v);
  }
}

// ---------------------------------------------------------------- tensor-core GEMM
template <typename OutT>
__global__ void __launch_bounds__(NT)
    gemm_mma_kernel(const int8_t* __restrict__ A, const int8_t* __restrict__ B, int M, int N,
                    int Kp, Epi ep, OutT* __restrict__ out) {
  __shared__ __align__(16) int8_t As[2][BM * LDS];
  __shared__ __align__(16) int8_t Bs[2][BN * LDS];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, t = lane % 4;
  const int wm = warp / 4, wn = warp % 4;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  auto load_tile = [&](int stage, int k0) {
#pragma unroll
    for (int c = tid; c < BM * BK / 16; c += NT) {
      const int r = c / (BK / 16), col = (c % (BK / 16)) * 16;
      const bool kin = k0 + col < Kp;
      const bool ain = kin && m0 + r < M, bin = kin && n0 + r < N;
      cp_async16(&As[stage][r * LDS + col],
                 ain ? A + static_cast<long long>(m0 + r) * Kp + k0 + col : A, ain ? 16 : 0);
      cp_async16(&Bs[stage][r * LDS + col],
                 bin ? B + static_cast<long long>(n0 + r) * Kp + k0 + col : B, bin ? 16 : 0);
    }
    cp_async_commit();
  };

  int acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

  const int ktiles = (Kp + BK - 1) / BK;
  load_tile(0, 0);
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt & 1;
    if (kt + 1 < ktiles) {
      load_tile(s ^ 1, (kt + 1) * BK);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int8_t* as = As[s];
    const int8_t* bs = Bs[s];
#pragma unroll
    for (int ks = 0; ks < BK; ks += 32) {
      unsigned a[4][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int r = wm * 64 + i * 16 + g;
        a[i][0] = *reinterpret_cast<const unsigned*>(as + r * LDS + ks + 4 * t);
        a[i][1] = *reinterpret_cast<const unsigned*>(as + (r + 8) * LDS + ks + 4 * t);
        a[i][2] = *reinterpret_cast<const unsigned*>(as + r * LDS + ks + 16 + 4 * t);
        a[i][3] = *reinterpret_cast<const unsigned*>(as + (r + 8) * LDS + ks + 16 + 4 * t);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = wn * 32 + j * 8 + g;
        b[j][0] = *reinterpret_cast<const unsigned*>(bs + c * LDS + ks + 4 * t);
        b[j][1] = *reinterpret_cast<const unsigned*>(bs + c * LDS + ks + 16 + 4 * t);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_m16n8k32_s8(acc[i][j], a[i], b[j][0], b[j][1]);
    }
    __syncthreads();  // the next iteration's cp.async overwrites the other stage
  }

#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = m0 + wm * 64 + i * 16 + g, c = n0 + wn * 32 + j * 8 + 2 * t;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int rr = r + (e >= 2 ? 8 : 0), cc = c + (e & 1);
        if (rr < M && cc < N) emit(out, ep, rr, cc, N, acc[i][j][e]);
      }
    }
}

// ---------------------------------------------------------------- GEMV path (M <= 4)
// One warp per weight row n: lanes stride over K in 16-byte chunks, dp4a against each of the
// M activation rows (read from L1/L2, they are tiny), a warp reduction, one lane writes.
constexpr int kGemvMaxRows = 4;

template <typename OutT>
__global__ void __launch_bounds__(NT)
    gemv_kernel(const int8_t* __restrict__ A, const int8_t* __restrict__ B, int M, int N, int Kp,
                Epi ep, OutT* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * (NT / 32) + threadIdx.x / 32;
  if (n >= N) return;
  const int chunks = Kp / 16;
  const int4* w = reinterpret_cast<const int4*>(B + static_cast<long long>(n) * Kp);
  int acc[kGemvMaxRows] = {0, 0, 0, 0};
  for (int c = lane; c < chunks; c += 32) {
    const int4 wv = __ldg(w + c);
#pragma unroll
    for (int r = 0; r < kGemvMaxRows; ++r) {
      if (r < M) {
        const int4 xv =
            __ldg(reinterpret_cast<const int4*>(A + static_cast<long long>(r) * Kp) + c);
        acc[r] = __dp4a(xv.x, wv.x, acc[r]);
        acc[r] = __dp4a(xv.y, wv.y, acc[r]);
        acc[r] = __dp4a(xv.z, wv.z, acc[r]);
        acc[r] = __dp4a(xv.w, wv.w, acc[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; ++r) {
    if (r >= M) break;
    int v = acc[r];
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) emit(out, ep, r, n, N, v);
  }
}

template <typename OutT>
void launch_gemm(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp, Epi ep,
                 OutT* out, std::uintptr_t stream) {
  if (m == 0 || n == 0) return;
  if (kp % 32) throw std::invalid_argument("int8 gemm: Kp must be a multiple of 32");
  const cudaStream_t st = as_stream(stream);
  if (m <= kGemvMaxRows) {
    gemv_kernel<OutT>
        <<<blocks_for(n, NT / 32), NT, 0, st>>>(a, b, int(m), int(n), int(kp), ep, out);
  } else {
    const dim3 grid(blocks_for(n, BN), blocks_for(m, BM));
    gemm_mma_kernel<OutT><<<grid, NT, 0, st>>>(a, b, int(m), int(n), int(kp), ep, out);
  }
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <typename T>
void launch_quantize(const T* x, int64_t m, int64_t k, int64_t kp, const uint8_t* mask, int8_t* q,
                     float* scale, std::uintptr_t stream) {
  if (m == 0) return;
  quantize_rows_kernel<T>
      <<<unsigned(m), NT, 0, as_stream(stream)>>>(x, int(k), int(kp), mask, q, scale);
  MATKERN_CUDA_LAUNCH_CHECK();
}

}  // namespace

void int8_quantize_rows_f32(const float* x, int64_t m, int64_t k, int64_t kp, const uint8_t* mask,
                            int8_t* q, float* scale, std::uintptr_t stream) {
  launch_quantize(x, m, k, kp, mask, q, scale, stream);
}
void int8_quantize_rows_f16(const uint16_t* x, int64_t m, int64_t k, int64_t kp,
                            const uint8_t* mask, int8_t* q, float* scale, std::uintptr_t stream) {
  launch_quantize(x, m, k, kp, mask, q, scale, stream);
}
void int8_gemm_scaled_f32(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp,
                          const float* row_scale, const float* col_scale, const float* bias,
                          const float* addend, float* out, std::uintptr_t stream) {
  launch_gemm(a, b, m, n, kp, Epi{row_scale, col_scale, bias, addend}, out, stream);
}
void int8_gemm_scaled_f16(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp,
                          const float* row_scale, const float* col_scale, const float* bias,
                          const float* addend, uint16_t* out, std::uintptr_t stream) {
  launch_gemm(a, b, m, n, kp, Epi{row_scale, col_scale, bias, addend}, out, stream);
}
void int8_gemm_i32(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp, int32_t* out,
                   std::uintptr_t stream) {
  launch_gemm(a, b, m, n, kp, Epi{nullptr, nullptr, nullptr, nullptr}, out, stream);
}

}  // namespace matkern::cuda
