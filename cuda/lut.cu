// LUT-quantized weight matmul on tensor cores (FLUTE-style).
// One warp computes a 16 (output features) x 8*TM (tokens) tile over a slice of K (split-K, so
// that M = 1..16 still fills the GPU): Y^T = W X^T with W as the mma A operand, so the 16-row
// side of m16n8k16 is taken by the weight and tiny M wastes no tensor-core rows.
// Codes were restructured at quantize time so that each lane's 32-bit word(s) hold exactly the
// codes of its A fragment (_lut_layout.py). Two codes at a time index a table of half2 (or
// bf162) pairs in shared memory, duplicated 8 (4-bit) or 32 (2/3-bit) times against bank
// conflicts; the pair is scaled by the group scale and goes to mma.sync with fp32 accumulation.
// Partial sums of the splits go to a float32 workspace; a second kernel adds them, adds the
// bias and converts. Fragment layouts (m16n8k16): mma.cuh.
#include <cuda_fp16.h>

#include "check.cuh"
#include "lut.hpp"
#include "mma.cuh"

namespace matkern::cuda {
namespace {

constexpr int kWarps = 4;

template <int BITS>
struct PairTable {
  static constexpr int kEntries = 1 << (2 * BITS);
  static constexpr int kCopies = BITS == 4 ? 8 : 32;
  static constexpr int kSize = kEntries * kCopies;
};

// Two consecutive activations X[tok, k], X[tok, k+1] as one b register (0 past M).
template <typename XT, bool BF16>
__device__ __forceinline__ uint32_t load_x2(const XT* __restrict__ row, int k, bool valid) {
  if (!valid) return 0u;
  if constexpr (sizeof(XT) == 2) {
    return __ldg(reinterpret_cast<const unsigned int*>(row + k));
  } else {
    const float2 v = __ldg(reinterpret_cast<const float2*>(row + k));
    return pack2<BF16>(v.x, v.y);
  }
}

// Pair index (code of a_{2b} | code of a_{2b+1} << BITS) of register b of k16 tile tt.
template <int BITS>
__device__ __forceinline__ uint32_t pair_index(const uint32_t (&w)[BITS], int tt, int b) {
  if constexpr (BITS == 4) {
    return (w[tt] >> (8 * b)) & 0xFFu;
  } else if constexpr (BITS == 2) {
    return (w[tt >> 1] >> (16 * (tt & 1) + 4 * b)) & 0xFu;
  } else {
    const uint32_t lo = w[tt >> 1] >> (16 * (tt & 1) + 4 * b);
    const uint32_t hi = w[2] >> (8 * tt + 2 * b);
    const uint32_t c0 = (lo & 3u) | ((hi & 1u) << 2);
    const uint32_t c1 = ((lo >> 2) & 3u) | (((hi >> 1) & 1u) << 2);
    return c0 | (c1 << 3);
  }
}

template <int BITS, int TM, typename XT, bool BF16>
__global__ void __launch_bounds__(kWarps * 32)
    lut_mma_kernel(const XT* __restrict__ x, int M, int K, const uint32_t* __restrict__ packed,
                   const float* __restrict__ scales, const float* __restrict__ table, int gs, int N,
                   int n_tiles, int chunks, int per, int splits, float* __restrict__ ws) {
  using PT = PairTable<BITS>;
  __shared__ uint32_t pairs[PT::kSize];
  for (int i = threadIdx.x; i < PT::kSize; i += blockDim.x) {
    const int idx = i / PT::kCopies;
    pairs[i] = pack2<BF16>(table[idx & ((1 << BITS) - 1)], table[idx >> BITS]);
  }
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int job = blockIdx.x * kWarps + warp;
  if (job >= n_tiles * splits) return;
  const int nt = job / splits, sp = job % splits;
  const int g = lane >> 2, t = lane & 3;
  const int copy = lane % PT::kCopies;
  const int ngroups = (K + gs - 1) / gs;  // the last group of a row may be partial
  const int row_lo = nt * 16 + g, row_hi = row_lo + 8;
  const int m0 = blockIdx.y * 8 * TM;

  const XT* xrow[TM];
  bool xvalid[TM];
#pragma unroll
  for (int mt = 0; mt < TM; ++mt) {
    const int tok = m0 + mt * 8 + g;
    xvalid[mt] = tok < M;
    xrow[mt] = x + (long long)(xvalid[mt] ? tok : 0) * K;
  }

  float acc[TM][4];
#pragma unroll
  for (int mt = 0; mt < TM; ++mt)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[mt][i] = 0.f;

  const int kc_end = min(chunks, (sp + 1) * per);
  const uint32_t* src = packed + (long long)nt * chunks * (BITS * 32) + lane;
  // the next chunk's words are loaded while this chunk is multiplied (register double buffer)
  uint32_t wnext[BITS];
#pragma unroll
  for (int i = 0; i < BITS; ++i)
    wnext[i] = sp * per < kc_end ? __ldg(src + ((long long)sp * per * BITS + i) * 32) : 0u;
  for (int kc = sp * per; kc < kc_end; ++kc) {
    uint32_t w[BITS];
#pragma unroll
    for (int i = 0; i < BITS; ++i) w[i] = wnext[i];
    if (kc + 1 < kc_end) {
#pragma unroll
      for (int i = 0; i < BITS; ++i) wnext[i] = __ldg(src + ((long long)(kc + 1) * BITS + i) * 32);
    }
    // group scales of rows row_lo / row_hi for the two 32-column halves of the chunk (groups
    // hold a multiple of 32 columns, so a half never straddles two groups; K is a multiple of
    // 32, so a half is either all inside K or all past it)
    uint32_t s_lo[2], s_hi[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int k = kc * 64 + 32 * h;
      const int grp = (k < K ? k : 0) / gs;
      const float slo = row_lo < N ? __ldg(scales + (long long)row_lo * ngroups + grp) : 0.f;
      const float shi = row_hi < N ? __ldg(scales + (long long)row_hi * ngroups + grp) : 0.f;
      s_lo[h] = pack2<BF16>(slo, slo);
      s_hi[h] = pack2<BF16>(shi, shi);
    }
#pragma unroll
    for (int tt = 0; tt < 4; ++tt) {
      const int k0 = kc * 64 + tt * 16;
      if (k0 >= K) break;
      uint32_t a[4];
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const uint32_t p = pairs[pair_index<BITS>(w, tt, b) * PT::kCopies + copy];
        a[b] = mul2<BF16>(p, (b & 1) ? s_hi[tt >> 1] : s_lo[tt >> 1]);
      }
#pragma unroll
      for (int mt = 0; mt < TM; ++mt) {
        const uint32_t b0 = load_x2<XT, BF16>(xrow[mt], k0 + 2 * t, xvalid[mt]);
        const uint32_t b1 = load_x2<XT, BF16>(xrow[mt], k0 + 2 * t + 8, xvalid[mt]);
        mma_m16n8k16<BF16>(acc[mt], a, b0, b1);
      }
    }
  }
  // C fragment: c0, c1 at (feature row_lo, tokens 2t, 2t+1); c2, c3 at row_hi.
  float* dst = ws + (long long)sp * M * N;
#pragma unroll
  for (int mt = 0; mt < TM; ++mt)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int tok = m0 + mt * 8 + 2 * t + (i & 1);
      const int row = (i < 2) ? row_lo : row_hi;
      if (tok < M && row < N) dst[(long long)tok * N + row] = acc[mt][i];
    }
}

template <typename OT>
__global__ void lut_reduce_kernel(const float* __restrict__ ws, long long MN, int N, int splits,
                                  const float* __restrict__ bias, OT* __restrict__ out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < MN;
       i += (long long)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int p = 0; p < splits; ++p) s += ws[p * MN + i];
    if (bias) s += bias[i % N];
    if constexpr (sizeof(OT) == 2) out[i] = __float2half_rn(s);
    else out[i] = s;
  }
}

template <int BITS, int TM, typename XT, bool BF16>
void launch_mma(const void* x, int M, int K, const uint32_t* packed, const float* scales,
                const float* table, int gs, int N, int per, int splits, float* ws,
                cudaStream_t st) {
  const int n_tiles = (N + 15) / 16, chunks = (K + 63) / 64;
  const dim3 grid(unsigned((n_tiles * splits + kWarps - 1) / kWarps),
                  unsigned((M + 8 * TM - 1) / (8 * TM)));
  lut_mma_kernel<BITS, TM, XT, BF16>
      <<<grid, kWarps * 32, 0, st>>>(static_cast<const XT*>(x), M, K, packed, scales, table, gs, N,
                                     n_tiles, chunks, per, splits, ws);
  MATKERN_CUDA_LAUNCH_CHECK();
}

template <int BITS, int TM>
void dispatch_types(bool x_is_half, bool bf16, const void* x, int M, int K, const uint32_t* packed,
                    const float* scales, const float* table, int gs, int N, int per, int splits,
                    float* ws, cudaStream_t st) {
  if (x_is_half)
    launch_mma<BITS, TM, __half, false>(x, M, K, packed, scales, table, gs, N, per, splits, ws, st);
  else if (bf16)
    launch_mma<BITS, TM, float, true>(x, M, K, packed, scales, table, gs, N, per, splits, ws, st);
  else
    launch_mma<BITS, TM, float, false>(x, M, K, packed, scales, table, gs, N, per, splits, ws, st);
}

template <int BITS>
void dispatch_tm(int tm, bool x_is_half, bool bf16, const void* x, int M, int K,
                 const uint32_t* packed, const float* scales, const float* table, int gs, int N,
                 int per, int splits, float* ws, cudaStream_t st) {
  if (tm == 1)
    dispatch_types<BITS, 1>(x_is_half, bf16, x, M, K, packed, scales, table, gs, N, per, splits, ws,
                            st);
  else if (tm == 2)
    dispatch_types<BITS, 2>(x_is_half, bf16, x, M, K, packed, scales, table, gs, N, per, splits, ws,
                            st);
  else
    dispatch_types<BITS, 4>(x_is_half, bf16, x, M, K, packed, scales, table, gs, N, per, splits, ws,
                            st);
}

}  // namespace

void lut_matmul(const void* x, bool x_is_half, int64_t M, int64_t K, const uint32_t* packed,
                const float* scales, const float* table, int bits, int gs, int64_t N, int tm,
                int64_t per, bool bf16, float* ws, int64_t splits, const float* bias, void* out,
                bool out_is_half, std::uintptr_t stream) {
  if (M == 0 || N == 0) return;
  if (x_is_half && bf16) throw std::invalid_argument("lut_matmul: bfloat16 needs float32 X");
  if (tm != 1 && tm != 2 && tm != 4) throw std::invalid_argument("lut_matmul: tm");
  if ((M + 8 * tm - 1) / (8 * tm) > 65535) throw std::invalid_argument("lut_matmul: M too large");
  cudaStream_t st = as_stream(stream);
  const int iM = int(M), iK = int(K), iN = int(N), ip = int(per), is = int(splits);
  switch (bits) {
    case 2:
      dispatch_tm<2>(tm, x_is_half, bf16, x, iM, iK, packed, scales, table, gs, iN, ip, is, ws, st);
      break;
    case 3:
      dispatch_tm<3>(tm, x_is_half, bf16, x, iM, iK, packed, scales, table, gs, iN, ip, is, ws, st);
      break;
    case 4:
      dispatch_tm<4>(tm, x_is_half, bf16, x, iM, iK, packed, scales, table, gs, iN, ip, is, ws, st);
      break;
    default: throw std::invalid_argument("lut_matmul: bits must be 2, 3 or 4");
  }
  const long long MN = M * N;
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<long long>((MN + threads - 1) / threads, 4096));
  if (out_is_half)
    lut_reduce_kernel<__half>
        <<<blocks, threads, 0, st>>>(ws, MN, iN, is, bias, static_cast<__half*>(out));
  else
    lut_reduce_kernel<float>
        <<<blocks, threads, 0, st>>>(ws, MN, iN, is, bias, static_cast<float*>(out));
  MATKERN_CUDA_LAUNCH_CHECK();
}

}  // namespace matkern::cuda
