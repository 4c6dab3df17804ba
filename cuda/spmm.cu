// SpMM on the GPU: the SMaT block-sparse tensor-core kernel and a CSR fallback kernel.
//
// Block kernel: one warp per block row (16 reordered rows of A), NT n-tiles of 8 output
// columns per warp (grid.y walks the rest of B's columns). For each 16 x 16 block of its
// block row the warp loads its A fragments with one 16-byte load per lane (values were laid
// out on the host in fragment order), builds B fragments straight from global memory
// (rows 16*block_col.., guarded at n and k), and issues mma.sync with float32 accumulators:
// m16n8k16 for f16/bf16 (one per block and n-tile), m16n8k8 for tf32 (two). The epilogue
// writes each accumulator row to its original row (out_rows), undoing the permutation.
// Fragment layouts (m16n8k16, m16n8k8 .tf32): mma.cuh.
#include <cuda_fp16.h>

#include <stdexcept>
#include <type_traits>

#include "check.cuh"
#include "mma.cuh"
#include "spmm.hpp"

namespace matkern::cuda {
namespace {

constexpr int kWarps = 4;  // warps (block rows or CSR rows) per CTA

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_f<__half>(float x) {
  return __float2half_rn(x);
}

template <typename T>
__device__ __forceinline__ T load_b(const T* __restrict__ b, int j, int col, int n, int k) {
  return (j < n && col < k) ? b[int64_t(j) * k + col] : from_f<T>(0.f);
}

template <typename T>
__device__ __forceinline__ void store_pair(T* __restrict__ out, int row, int col, int k, float x0,
                                           float x1) {
  if (row < 0) return;
  T* o = out + int64_t(row) * k + col;
  if (col < k) o[0] = from_f<T>(x0);
  if (col + 1 < k) o[1] = from_f<T>(x1);
}

template <int MODE, int NT>
__global__ void __launch_bounds__(kWarps * 32)
    bsr_kernel(int nbr, int n, int k, const int64_t* __restrict__ bptr,
               const int32_t* __restrict__ bcol, const void* __restrict__ values,
               const int32_t* __restrict__ orows, const void* __restrict__ bv,
               void* __restrict__ outv, const int* __restrict__ bad) {
  using TIO = typename std::conditional<MODE == kModeF16, __half, float>::type;
  const int warp = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (warp >= nbr || (bad && *bad)) return;
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int c0 = blockIdx.y * (NT * 8);
  const TIO* B = static_cast<const TIO*>(bv);
  float acc[NT][4];
#pragma unroll
  for (int i = 0; i < NT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  const int64_t e = bptr[warp + 1];
  for (int64_t blk = bptr[warp]; blk < e; ++blk) {
    const int jc = bcol[blk] * 16;
    if constexpr (MODE == kModeTf32) {
      const float4* av = static_cast<const float4*>(values) + (blk * 64 + lane * 2);
      const float4 x0 = av[0], x1 = av[1];
      const uint32_t a0[4] = {__float_as_uint(x0.x), __float_as_uint(x0.y), __float_as_uint(x0.z),
                              __float_as_uint(x0.w)};
      const uint32_t a1[4] = {__float_as_uint(x1.x), __float_as_uint(x1.y), __float_as_uint(x1.z),
                              __float_as_uint(x1.w)};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int col = c0 + nt * 8 + g;
        mma_m16n8k8_tf32(acc[nt], a0, to_tf32(load_b(B, jc + t, col, n, k)),
                         to_tf32(load_b(B, jc + t + 4, col, n, k)));
        mma_m16n8k8_tf32(acc[nt], a1, to_tf32(load_b(B, jc + 8 + t, col, n, k)),
                         to_tf32(load_b(B, jc + 12 + t, col, n, k)));
      }
    } else {
      const uint4 x = static_cast<const uint4*>(values)[blk * 32 + lane];
      const uint32_t a[4] = {x.x, x.y, x.z, x.w};
      const int j = jc + 2 * t;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int col = c0 + nt * 8 + g;
        if constexpr (MODE == kModeF16) {
          const uint32_t b0 = pack_half2(load_b(B, j, col, n, k), load_b(B, j + 1, col, n, k));
          const uint32_t b1 = pack_half2(load_b(B, j + 8, col, n, k), load_b(B, j + 9, col, n, k));
          mma_m16n8k16<false>(acc[nt], a, b0, b1);
        } else {
          const uint32_t b0 = pack_bf16x2(load_b(B, j, col, n, k), load_b(B, j + 1, col, n, k));
          const uint32_t b1 = pack_bf16x2(load_b(B, j + 8, col, n, k), load_b(B, j + 9, col, n, k));
          mma_m16n8k16<true>(acc[nt], a, b0, b1);
        }
      }
    }
  }
  TIO* out = static_cast<TIO*>(outv);
  const int r_lo = orows[warp * 16 + g], r_hi = orows[warp * 16 + g + 8];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int col = c0 + nt * 8 + 2 * t;
    store_pair(out, r_lo, col, k, acc[nt][0], acc[nt][1]);
    store_pair(out, r_hi, col, k, acc[nt][2], acc[nt][3]);
  }
}

// CSR: one warp per segment of a row (a whole row unless the host split long rows into
// segments, see SpmmCsrSegments); the segment's (value, column) pairs are loaded 32 at a time,
// one per lane, and broadcast with shuffles; each lane accumulates two output columns
// (c, c + 32). Segments of split rows add their partial sums into a float32 scratch row
// (atomics), which csr_finish_kernel converts into the output.
template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    csr_kernel(int64_t nseg, int k, const int64_t* __restrict__ bounds,
               const int32_t* __restrict__ seg_row, const int32_t* __restrict__ seg_slot,
               const int32_t* __restrict__ idx, const float* __restrict__ val,
               const T* __restrict__ b, T* __restrict__ out, float* __restrict__ part,
               const int* __restrict__ only_if_bad) {
  const int64_t seg = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (seg >= nseg || (only_if_bad && !*only_if_bad)) return;
  const int64_t row = seg_row ? seg_row[seg] : seg;
  const int lane = threadIdx.x & 31;
  const int c = blockIdx.y * 64 + lane, c2 = c + 32;
  float a0 = 0.f, a1 = 0.f;
  const int64_t p0 = bounds[seg], p1 = bounds[seg + 1];
  for (int64_t base = p0; base < p1; base += 32) {
    float v = 0.f;
    int j = 0;
    if (base + lane < p1) {
      v = val[base + lane];
      j = idx[base + lane];
    }
    const int cnt = int(p1 - base < 32 ? p1 - base : 32);
    for (int q = 0; q < cnt; ++q) {
      const float vq = __shfl_sync(0xffffffffu, v, q);
      const int jq = __shfl_sync(0xffffffffu, j, q);
      const T* br = b + int64_t(jq) * k;
      if (c < k) a0 += vq * to_f(br[c]);
      if (c2 < k) a1 += vq * to_f(br[c2]);
    }
  }
  const int slot = seg_slot ? seg_slot[seg] : -1;
  if (slot < 0) {
    if (c < k) out[row * k + c] = from_f<T>(a0);
    if (c2 < k) out[row * k + c2] = from_f<T>(a1);
  } else {
    if (c < k) atomicAdd(part + int64_t(slot) * k + c, a0);
    if (c2 < k) atomicAdd(part + int64_t(slot) * k + c2, a1);
  }
}

template <typename T>
__global__ void csr_finish_kernel(int64_t n_split, int k, const int32_t* __restrict__ split_rows,
                                  const float* __restrict__ part, T* __restrict__ out,
                                  const int* __restrict__ only_if_bad) {
  if (only_if_bad && !*only_if_bad) return;
  const int64_t total = n_split * k;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    out[int64_t(split_rows[i / k]) * k + i % k] = from_f<T>(part[i]);
}

template <typename T>
void launch_csr(int64_t m, int64_t k, const int64_t* indptr, const int32_t* indices,
                const float* data, const void* bv, void* outv, const int* only_if_bad,
                const SpmmCsrSegments* segs, cudaStream_t s) {
  const T* b = static_cast<const T*>(bv);
  T* out = static_cast<T*>(outv);
  if (!segs || segs->n_split == 0) {
    const dim3 grid(blocks_for(m, kWarps), blocks_for(k, 64));
    csr_kernel<T><<<grid, kWarps * 32, 0, s>>>(m, int(k), indptr, nullptr, nullptr, indices, data,
                                               b, out, nullptr, only_if_bad);
    MATKERN_CUDA_LAUNCH_CHECK();
    return;
  }
  MATKERN_CUDA_CHECK(cudaMemsetAsync(segs->part, 0, sizeof(float) * segs->n_split * k, s));
  const dim3 grid(blocks_for(segs->n_seg, kWarps), blocks_for(k, 64));
  csr_kernel<T><<<grid, kWarps * 32, 0, s>>>(segs->n_seg, int(k), segs->bounds, segs->seg_row,
                                             segs->seg_slot, indices, data, b, out, segs->part,
                                             only_if_bad);
  MATKERN_CUDA_LAUNCH_CHECK();
  const int64_t total = segs->n_split * k;
  const unsigned g2 = blocks_for(total, 256) < 4096 ? blocks_for(total, 256) : 4096;
  csr_finish_kernel<T>
      <<<g2, 256, 0, s>>>(segs->n_split, int(k), segs->split_rows, segs->part, out, only_if_bad);
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <int MODE, int NT>
void launch_bsr(int64_t nbr, int64_t n, int64_t k, const int64_t* bptr, const int32_t* bcol,
                const void* values, const int32_t* orows, const void* b, void* out, const int* bad,
                cudaStream_t s) {
  const dim3 grid(blocks_for(nbr, kWarps), blocks_for(k, NT * 8));
  bsr_kernel<MODE, NT><<<grid, kWarps * 32, 0, s>>>(int(nbr), int(n), int(k), bptr, bcol, values,
                                                    orows, b, out, bad);
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <int MODE>
void launch_bsr_nt(int64_t nbr, int64_t n, int64_t k, const int64_t* bptr, const int32_t* bcol,
                   const void* values, const int32_t* orows, const void* b, void* out,
                   const int* bad, cudaStream_t s) {
  if (k <= 8) launch_bsr<MODE, 1>(nbr, n, k, bptr, bcol, values, orows, b, out, bad, s);
  else if (k <= 16) launch_bsr<MODE, 2>(nbr, n, k, bptr, bcol, values, orows, b, out, bad, s);
  else if (k <= 32) launch_bsr<MODE, 4>(nbr, n, k, bptr, bcol, values, orows, b, out, bad, s);
  else launch_bsr<MODE, 8>(nbr, n, k, bptr, bcol, values, orows, b, out, bad, s);
}

// *bad = 1 when any element of x (count elements, float32 or float16 bits) is Inf or NaN.
template <typename U, U kExpMask>
__global__ void nonfinite_kernel(const U* __restrict__ x, int64_t count, int* __restrict__ bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    if ((x[i] & kExpMask) == kExpMask) *bad = 1;  // benign race: every writer stores 1
}

}  // namespace

void spmm_nonfinite_launch(const void* b, int64_t count, int io, int* bad, std::uintptr_t stream) {
  cudaStream_t s = as_stream(stream);
  MATKERN_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), s));
  if (count <= 0) return;
  const unsigned grid = blocks_for(count, 256) < 4096 ? blocks_for(count, 256) : 4096;
  if (io == kIoF32)
    nonfinite_kernel<uint32_t, 0x7F800000u>
        <<<grid, 256, 0, s>>>(static_cast<const uint32_t*>(b), count, bad);
  else
    nonfinite_kernel<uint16_t, uint16_t(0x7C00)>
        <<<grid, 256, 0, s>>>(static_cast<const uint16_t*>(b), count, bad);
  MATKERN_CUDA_LAUNCH_CHECK();
}

void spmm_csr_launch(int64_t m, int64_t k, const int64_t* indptr, const int32_t* indices,
                     const float* data, const void* b, void* out, int io, const int* only_if_bad,
                     const SpmmCsrSegments* segs, std::uintptr_t stream) {
  if (m <= 0 || k <= 0) return;
  cudaStream_t s = as_stream(stream);
  if (io == kIoF32) launch_csr<float>(m, k, indptr, indices, data, b, out, only_if_bad, segs, s);
  else if (io == kIoF16)
    launch_csr<__half>(m, k, indptr, indices, data, b, out, only_if_bad, segs, s);
  else throw std::invalid_argument("spmm_csr_launch: unknown io type");
}

void spmm_bsr_launch(int64_t n_block_rows, int64_t n, int64_t k, const int64_t* block_ptr,
                     const int32_t* block_col, const void* values, int mode,
                     const int32_t* out_rows, const void* b, void* out, const int* bad,
                     std::uintptr_t stream) {
  if (n_block_rows <= 0 || k <= 0) return;
  cudaStream_t s = as_stream(stream);
  if (mode == kModeTf32)
    launch_bsr_nt<kModeTf32>(n_block_rows, n, k, block_ptr, block_col, values, out_rows, b, out,
                             bad, s);
  else if (mode == kModeF16)
    launch_bsr_nt<kModeF16>(n_block_rows, n, k, block_ptr, block_col, values, out_rows, b, out, bad,
                            s);
  else if (mode == kModeBf16)
    launch_bsr_nt<kModeBf16>(n_block_rows, n, k, block_ptr, block_col, values, out_rows, b, out,
                             bad, s);
  else throw std::invalid_argument("spmm_bsr_launch: unknown mode");
}

}  // namespace matkern::cuda
