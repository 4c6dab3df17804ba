// Peak throughput of the instructions the int8 and LUT kernels are built on, on this CPU: the
// ceiling against which bench/results' GMAC/s figures are read (issue #25). Independent
// accumulator chains (24, more than latency x issue width), inline asm so that the compiler
// cannot merge or drop them; one OpenMP thread per core.
//   vpdpbusd zmm: 64 u8 x s8 multiply-adds per instruction (the int8 GEMM's)
//   vfmadd231ps zmm: 16 float multiply-adds (the LUT kernels')
//   vpermps zmm + vpsrlvd zmm: a 16-entry float table lookup of 16 codes (the LUT GEMV's)
// Build and run: tools/simd_peak.sh.
#include <immintrin.h>
#include <omp.h>

#include <cstdio>

namespace {

constexpr long kIters = 20000000;

#define CHAINS(X) \
  X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
  X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

// One timed loop of 24 independent chains: DECL(i) declares chain i's state, STEP(i) runs
// one step of it (the instructions measured), KEEP(i) keeps its result alive.
#define MK_RATE(name, SETUP, DECL, STEP, KEEP) \
  double name() {                             \
    const double t0 = omp_get_wtime();        \
    _Pragma("omp parallel") {                 \
      SETUP CHAINS(DECL)                      \
      for (long it = 0; it < kIters; ++it) {  \
        CHAINS(STEP)                          \
      }                                       \
      CHAINS(KEEP)                            \
    }                                         \
    return omp_get_wtime() - t0;              \
  }

#define KEEP(i) asm volatile("" ::"v"(c##i));

#define VNNI_SETUP const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
#define VNNI_DECL(i) __m512i c##i = _mm512_set1_epi32(i);
#define VNNI_STEP(i) asm volatile("vpdpbusd %1, %2, %0" : "+v"(c##i) : "v"(a), "v"(b));
MK_RATE(vnni_rate, VNNI_SETUP, VNNI_DECL, VNNI_STEP, KEEP)

#define FMA_SETUP const __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0.5f);
#define FMA_DECL(i) __m512 c##i = _mm512_set1_ps(float(i));
#define FMA_STEP(i) asm volatile("vfmadd231ps %1, %2, %0" : "+v"(c##i) : "v"(a), "v"(b));
MK_RATE(fma_rate, FMA_SETUP, FMA_DECL, FMA_STEP, KEEP)

// One lookup: a variable shift of the code dwords, then vpermps from the table register.
#define LUT_SETUP                                                                  \
  const __m512i codes = _mm512_set1_epi32(0x76543210), sh = _mm512_set1_epi32(4); \
  const __m512 table = _mm512_set1_ps(1.0f);
#define LUT_DECL(i)                          \
  __m512 c##i = _mm512_set1_ps(float(i)); \
  __m512i s##i = codes;
#define LUT_STEP(i)                                                      \
  asm volatile("vpsrlvd %1, %2, %0" : "=v"(s##i) : "v"(sh), "v"(codes)); \
  asm volatile("vpermps %1, %2, %0" : "=v"(c##i) : "v"(table), "v"(s##i));
MK_RATE(lookup_rate, LUT_SETUP, LUT_DECL, LUT_STEP, KEEP)

}  // namespace

int main() {
  const int nt = omp_get_max_threads();
  const double ops = double(nt) * kIters * 24;
  vnni_rate();  // warm-up: clocks up
  const double tv = vnni_rate(), tf = fma_rate(), tl = lookup_rate();
  std::printf("threads %d\n", nt);
  std::printf("vpdpbusd zmm: %.0f GMAC/s (%.2f G instructions/s per thread)\n",
              ops * 64 / tv / 1e9, ops / tv / 1e9 / nt);
  std::printf("vfmadd231ps zmm: %.0f GFLOP/s fp32 (%.2f G instructions/s per thread)\n",
              ops * 32 / tf / 1e9, ops / tf / 1e9 / nt);
  std::printf("vpsrlvd + vpermps zmm: %.1f G codes/s looked up (%.2f G lookups/s per thread)\n",
              ops * 16 / tl / 1e9, ops / tl / 1e9 / nt);
  return 0;
}
