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

#include <algorithm>
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
// The fused outlier product runs when rows x outlier columns is at most this (the CPU's
// _FUSED_WORK): beyond it the epilogue's per-element loop costs more than a cuBLAS product.
constexpr int64_t kFusedMaxWork = 16384;

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
                         int8_t* __restrict__ q, float* __restrict__ scale,
                         const int* __restrict__ cols, int ncols, float* __restrict__ xo) {
  __shared__ float s_max[NT / 32];
  __shared__ int s_bad[NT / 32];
  const T* row = x + static_cast<long long>(blockIdx.x) * k;
  // the row's outlier operands, in float32 as the reference's X[:, cols].astype(float32)
  for (int j = threadIdx.x; j < ncols; j += NT)
    xo[static_cast<long long>(blockIdx.x) * ncols + j] = load_x(row + cols[j]);
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
  // the outlier product, fused: xo (M, ncols) and wo (N, ncols) float32, or ncols = 0
  const float* xo = nullptr;
  const float* wo = nullptr;
  int ncols = 0;
};

// kOutliers: compiled with the outlier loop (the mma kernel's copy without it keeps its
// registers for the tiles).
template <bool kOutliers, typename OutT>
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
    if (kOutliers &&
        ep.ncols) {  // few outlier columns: their float product here (the reference's xo @ wo.T)
      const float* xr = ep.xo + static_cast<long long>(r) * ep.ncols;
      const float* wr = ep.wo + static_cast<long long>(c) * ep.ncols;
      float s = 0.0f;
      for (int j = 0; j < ep.ncols; ++j) s = fmaf(xr[j], wr[j], s);
      v += s;
    }
    store_out(out + idx, v);
  }
}

// ---------------------------------------------------------------- tensor-core GEMM
template <typename OutT, bool kOutliers>
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
        if (rr < M && cc < N) emit<kOutliers>(out, ep, rr, cc, N, acc[i][j][e]);
      }
    }
}

// ---------------------------------------------------------------- GEMV path (M <= 16)
// One warp per weight row n: lanes stride over K in 16-byte chunks, dp4a against each of the
// M activation rows (read from L1/L2, they are tiny), a warp reduction, one lane writes.
// R (4, 8 or 16) bounds M: the accumulators stay in registers. Below 16 rows the mma tiles
// (128 rows) would leave almost all of the tensor cores' work as zero padding, and only
// N / 128 blocks run.
constexpr int kGemvMaxRows = 16;

template <int R, typename OutT>
__global__ void __launch_bounds__(NT)
    gemv_kernel(const int8_t* __restrict__ A, const int8_t* __restrict__ B, int M, int N, int Kp,
                Epi ep, OutT* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * (NT / 32) + threadIdx.x / 32;
  if (n >= N) return;
  const int chunks = Kp / 16;
  const int4* w = reinterpret_cast<const int4*>(B + static_cast<long long>(n) * Kp);
  int acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0;
  for (int c = lane; c < chunks; c += 32) {
    const int4 wv = __ldg(w + c);
#pragma unroll
    for (int r = 0; r < R; ++r) {
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
  for (int r = 0; r < R; ++r) {
    if (r >= M) break;
    int v = acc[r];
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) emit<true>(out, ep, r, n, N, v);
  }
}

// ---------------------------------------------------------------- outlier columns
// flags[c] = 1 where any |x[r, c]| >= t (NaN never: the reference's rule). Threads own columns
// (coalesced rows); blockIdx.y takes kFlagRows rows. Every writer stores the same 1, so the
// races between blocks are benign; flags is zeroed before.
constexpr int kFlagRows = 32;

template <typename T>
__global__ void __launch_bounds__(NT) outlier_flags_kernel(const T* __restrict__ x, int m, int k,
                                                           float t, uint8_t* __restrict__ flags) {
  const int c = blockIdx.x * NT + threadIdx.x;
  if (c >= k) return;
  const int r0 = blockIdx.y * kFlagRows, r1 = min(m, r0 + kFlagRows);
  // no early exit: the loads of a thread stay independent (in flight together)
  bool hit = false;
#pragma unroll 8
  for (int r = r0; r < r1; ++r) hit |= fabsf(load_x(x + static_cast<long long>(r) * k + c)) >= t;
  if (hit) flags[c] = 1;
}

// The flagged columns in ascending order: cols[0 .. min(count, cap)) and count (one block; a
// ballot per warp and a scan over the warps per chunk of 1024 columns).
constexpr int kCompactThreads = 1024;
__global__ void __launch_bounds__(kCompactThreads)
    compact_kernel(const uint8_t* __restrict__ flags, int k, int cap, int* __restrict__ cols,
                   int* __restrict__ count) {
  __shared__ int s_warp[kCompactThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int base = 0;
  for (int c0 = 0; c0 < k; c0 += kCompactThreads) {
    const int c = c0 + threadIdx.x;
    const bool f = c < k && flags[c];
    const unsigned ball = __ballot_sync(0xffffffffu, f);
    if (lane == 0) s_warp[warp] = __popc(ball);
    __syncthreads();
    int before = base, total = base;
    for (int w = 0; w < kCompactThreads / 32; ++w) {
      before += w < warp ? s_warp[w] : 0;
      total += s_warp[w];
    }
    const int pos = before + __popc(ball & ((1u << lane) - 1u));
    if (f && pos < cap) cols[pos] = c;
    base = total;
    __syncthreads();  // s_warp is rewritten by the next chunk
  }
  if (threadIdx.x == 0) *count = base;
}

// wo (N, ncols) = the weight's codes at cols, dequantized as the reference's dequantize_rows
// (code * (scale / 127) in double, rounded once to float32).
__global__ void __launch_bounds__(NT)
    outlier_weights_kernel(const int8_t* __restrict__ b, int n, int kp,
                           const float* __restrict__ col_scale, const int* __restrict__ cols,
                           int ncols, float* __restrict__ wo) {
  const long long i = static_cast<long long>(blockIdx.x) * NT + threadIdx.x;
  if (i >= static_cast<long long>(n) * ncols) return;
  const int r = static_cast<int>(i / ncols), j = static_cast<int>(i % ncols);
  const double code = b[static_cast<long long>(r) * kp + cols[j]];
  wo[i] = static_cast<float>(code * (static_cast<double>(col_scale[r]) / 127.0));
}

template <typename OutT>
void launch_gemm(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp, Epi ep,
                 OutT* out, std::uintptr_t stream) {
  if (m == 0 || n == 0) return;
  if (kp % 32) throw std::invalid_argument("int8 gemm: Kp must be a multiple of 32");
  const cudaStream_t st = as_stream(stream);
  if (m <= kGemvMaxRows) {
    const unsigned blocks = blocks_for(n, NT / 32);
    const int mi = int(m), ni = int(n), ki = int(kp);
    if (m <= 4) gemv_kernel<4, OutT><<<blocks, NT, 0, st>>>(a, b, mi, ni, ki, ep, out);
    else if (m <= 8) gemv_kernel<8, OutT><<<blocks, NT, 0, st>>>(a, b, mi, ni, ki, ep, out);
    else gemv_kernel<16, OutT><<<blocks, NT, 0, st>>>(a, b, mi, ni, ki, ep, out);
  } else {
    const dim3 grid(blocks_for(n, BN), blocks_for(m, BM));
    if (ep.ncols)
      gemm_mma_kernel<OutT, true><<<grid, NT, 0, st>>>(a, b, int(m), int(n), int(kp), ep, out);
    else gemm_mma_kernel<OutT, false><<<grid, NT, 0, st>>>(a, b, int(m), int(n), int(kp), ep, out);
  }
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <typename T>
void launch_quantize(const T* x, int64_t m, int64_t k, int64_t kp, const uint8_t* mask, int8_t* q,
                     float* scale, std::uintptr_t stream, const int* cols = nullptr, int ncols = 0,
                     float* xo = nullptr) {
  if (m == 0) return;
  quantize_rows_kernel<T><<<unsigned(m), NT, 0, as_stream(stream)>>>(x, int(k), int(kp), mask, q,
                                                                     scale, cols, ncols, xo);
  MATKERN_CUDA_LAUNCH_CHECK();
}

// The workspace of int8_matmul_fused, carved in this order (each part 256-byte aligned).
struct FusedWork {
  int8_t* q;
  float* sx;
  uint8_t* flags;
  int* cols;  // cap + 1 ints: the columns, then the count
  float* xo;
  float* wo;
};
constexpr int64_t align256(int64_t b) { return (b + 255) / 256 * 256; }

int64_t fused_work_bytes(int64_t m, int64_t k, int64_t kp, int64_t n, int64_t cap) {
  return align256(m * kp) + align256(4 * m) + align256(k) + align256(4 * (cap + 1)) +
         align256(4 * std::min(m * cap, int64_t(kFusedMaxWork))) + align256(4 * n * cap);
}

FusedWork carve(void* work, int64_t m, int64_t k, int64_t kp, int64_t cap) {
  auto* p = static_cast<char*>(work);
  FusedWork w;
  w.q = reinterpret_cast<int8_t*>(p);
  p += align256(m * kp);
  w.sx = reinterpret_cast<float*>(p);
  p += align256(4 * m);
  w.flags = reinterpret_cast<uint8_t*>(p);
  p += align256(k);
  w.cols = reinterpret_cast<int*>(p);
  p += align256(4 * (cap + 1));
  w.xo = reinterpret_cast<float*>(p);
  p += align256(4 * std::min(m * cap, int64_t(kFusedMaxWork)));
  w.wo = reinterpret_cast<float*>(p);
  return w;
}

template <typename T, typename OutT>
bool matmul_fused(const T* x, int64_t m, int64_t k, double threshold, const int8_t* b, int64_t n,
                  int64_t kp, const float* col_scale, const float* bias, OutT* out, void* work,
                  int64_t cap, std::uintptr_t stream) {
  if (m == 0 || n == 0) return true;
  const cudaStream_t st = as_stream(stream);
  FusedWork w = carve(work, m, k, kp, cap);
  int ncols = 0;
  if (threshold > 0.0) {
    // compared in float32 as the reference (a threshold past float's range becomes inf)
    const float t = static_cast<float>(threshold);
    MATKERN_CUDA_CHECK(cudaMemsetAsync(w.flags, 0, size_t(k), st));
    const dim3 grid(blocks_for(k, NT), blocks_for(m, kFlagRows));
    outlier_flags_kernel<T><<<grid, NT, 0, st>>>(x, int(m), int(k), t, w.flags);
    MATKERN_CUDA_LAUNCH_CHECK();
    compact_kernel<<<1, kCompactThreads, 0, st>>>(w.flags, int(k), int(cap), w.cols, w.cols + cap);
    MATKERN_CUDA_LAUNCH_CHECK();
    // The one wait of the call: the count decides the path (as bitsandbytes' nonzero does).
    int count = 0;
    MATKERN_CUDA_CHECK(
        cudaMemcpyAsync(&count, w.cols + cap, sizeof(int), cudaMemcpyDeviceToHost, st));
    MATKERN_CUDA_CHECK(cudaStreamSynchronize(st));
    if (count > cap || m * count > kFusedMaxWork) return false;
    ncols = count;
  }
  const uint8_t* mask = ncols ? w.flags : nullptr;
  launch_quantize(x, m, k, kp, mask, w.q, w.sx, stream, w.cols, ncols, w.xo);
  if (ncols) {
    outlier_weights_kernel<<<blocks_for(n * ncols, NT), NT, 0, st>>>(b, int(n), int(kp), col_scale,
                                                                     w.cols, ncols, w.wo);
    MATKERN_CUDA_LAUNCH_CHECK();
  }
  Epi ep{w.sx, col_scale, bias, nullptr, w.xo, w.wo, ncols};
  launch_gemm(w.q, b, m, n, kp, ep, out, stream);
  return true;
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
int64_t int8_fused_work_bytes(int64_t m, int64_t k, int64_t kp, int64_t n, int64_t cap) {
  return fused_work_bytes(m, k, kp, n, cap);
}
bool int8_matmul_fused_f32(const float* x, int64_t m, int64_t k, double threshold, const int8_t* b,
                           int64_t n, int64_t kp, const float* col_scale, const float* bias,
                           float* out, void* work, int64_t cap, std::uintptr_t stream) {
  return matmul_fused(x, m, k, threshold, b, n, kp, col_scale, bias, out, work, cap, stream);
}
bool int8_matmul_fused_f16(const uint16_t* x, int64_t m, int64_t k, double threshold,
                           const int8_t* b, int64_t n, int64_t kp, const float* col_scale,
                           const float* bias, uint16_t* out, void* work, int64_t cap,
                           std::uintptr_t stream) {
  return matmul_fused(x, m, k, threshold, b, n, kp, col_scale, bias, out, work, cap, stream);
}
void int8_gemm_i32(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t kp, int32_t* out,
                   std::uintptr_t stream) {
  launch_gemm(a, b, m, n, kp, Epi{nullptr, nullptr, nullptr, nullptr}, out, stream);
}

}  // namespace matkern::cuda
