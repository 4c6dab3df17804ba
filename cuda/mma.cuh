// Tensor-core and async-copy helpers shared by the .cu files (sm_80+): the mma.sync wrappers,
// cp.async, and the packing of two 16-bit values into one 32-bit register.
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k*"): the one description in C++;
// python/matkern/_mma_layout.py states the same in code for the host-side layouts and replays
// (tests/test_int8_cuda_replay.py, tests/test_lut.py, tests/test_spmm.py). Lane l of the warp
// has g = l / 4 and t = l % 4. A is row-major (M x K), B column-major (K x N), C/D M x N;
// (r, c) below is (row, column) of A or C and (k, n) of B. Registers are 32-bit, packing two
// 16-bit or four 8-bit elements, the lower index in the lower bits.
//
//   m16n8k8 .tf32 (one element a register)
//     A: a0 (g, t)     a1 (g+8, t)     a2 (g, t+4)     a3 (g+8, t+4)
//     B: b0 (t, g)     b1 (t+4, g)
//   m16n8k16 .f16 / .bf16 (two elements a register: i = 2 * register + 0, 1)
//     A: a0,a1 (g, 2t+{0,1})     a2,a3 (g+8, 2t+{0,1})
//        a4,a5 (g, 2t+8+{0,1})   a6,a7 (g+8, 2t+8+{0,1})
//     B: b0,b1 (2t+{0,1}, g)     b2,b3 (2t+8+{0,1}, g)
//   m16n8k32 .s8 (four elements a register: i = 4 * register + 0..3)
//     A: a0..a3 (g, 4t+{0..3})    a4..a7 (g+8, 4t+{0..3})
//        a8..a11 (g, 16+4t+{0..3})  a12..a15 (g+8, 16+4t+{0..3})
//     B: b0..b3 (4t+{0..3}, g)    b4..b7 (16+4t+{0..3}, g)
//   C/D of every shape (float32 or int32, one element a register):
//        c0,c1 (g, 2t+{0,1})     c2,c3 (g+8, 2t+{0,1})
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace matkern::cuda {

// ---------------------------------------------------------------- packing
// float -> tf32 (round to nearest, ties away from zero), in a 32-bit register.
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// Two halves as one register, lo in the low 16 bits (no rounding: the bits as they are).
__device__ __forceinline__ uint32_t pack_half2(__half lo, __half hi) {
  return uint32_t(__half_as_ushort(lo)) | (uint32_t(__half_as_ushort(hi)) << 16);
}

// Two floats rounded to bfloat16 one at a time (round to nearest even), lo in the low 16 bits.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat16 l = __float2bfloat16_rn(lo), h = __float2bfloat16_rn(hi);
  return uint32_t(__bfloat16_as_ushort(l)) | (uint32_t(__bfloat16_as_ushort(h)) << 16);
}

// Two floats rounded as a pair to bfloat16 (BF16) or float16 (round to nearest even).
template <bool BF16>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (BF16) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

// The product of two packed pairs, element by element, in bfloat16 (BF16) or float16.
template <bool BF16>
__device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t s) {
  if constexpr (BF16) {
    __nv_bfloat162 r =
        __hmul2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&s));
    return *reinterpret_cast<uint32_t*>(&r);
  } else {
    __half2 r = __hmul2(*reinterpret_cast<__half2*>(&a), *reinterpret_cast<__half2*>(&s));
    return *reinterpret_cast<uint32_t*>(&r);
  }
}

// ---------------------------------------------------------------- mma.sync (D = A B + D)
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                 uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// bfloat16 (BF16) or float16 inputs, float32 accumulation.
template <bool BF16>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
  if constexpr (BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// int8 inputs, int32 accumulation.
__device__ __forceinline__ void mma_m16n8k32_s8(int (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---------------------------------------------------------------- cp.async
// 16 bytes global -> shared, bypassing L1; src_bytes < 16 reads that many and zero-fills the
// rest (0: all zero, nothing read).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace matkern::cuda
