// Run-time choice of SIMD kernels. Each level's variants live in files of their own, the only
// files compiled with that level's flags: *_avx2.cpp (-mavx2 -mfma) and *_avx512.cpp
// (AVX-512 F/BW/VL and VNNI); everything else is portable. Rule for those files: keep their
// code in namespace matkern::avx2 / matkern::avx512 and use no std:: containers or inline
// templates shared with portable files, so that the linker can never pick a wider copy of a
// shared inline function for portable code.
#pragma once
#include <cstdlib>
#include <cstring>

namespace matkern {

// Ordered: a kernel written for a level runs on every level above it (compare with >=).
enum class Simd { portable = 0, avx2 = 1, avx512_vnni = 2 };

inline bool cpu_has_avx2_fma() {
#if defined(MATKERN_BUILD_AVX2) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

// AVX-512 F/BW/VL with VNNI (Intel since Cascade Lake, AMD since Zen 4). libgcc's feature bits
// also require the OS to save the 512-bit state (XCR0), so a set bit means usable.
inline bool cpu_has_avx512_vnni() {
#if defined(MATKERN_BUILD_AVX512) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
  static const bool ok = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512vnni");
  return ok;
#else
  return false;
#endif
}

inline Simd cpu_simd_level() {
  if (cpu_has_avx512_vnni()) return Simd::avx512_vnni;
  return cpu_has_avx2_fma() ? Simd::avx2 : Simd::portable;
}

// MATKERN_SIMD=portable|avx2|avx512_vnni forces that level when the CPU has it (a level the
// CPU lacks is capped at the CPU's own), for testing every path on one machine.
inline Simd simd_level() {
  const Simd cpu = cpu_simd_level();
  const char* env = std::getenv("MATKERN_SIMD");
  if (!env) return cpu;
  Simd want = cpu;
  if (std::strcmp(env, "portable") == 0) want = Simd::portable;
  else if (std::strcmp(env, "avx2") == 0) want = Simd::avx2;
  else if (std::strcmp(env, "avx512_vnni") == 0) want = Simd::avx512_vnni;
  return want < cpu ? want : cpu;
}

inline const char* simd_name(Simd s) {
  switch (s) {
    case Simd::avx512_vnni: return "avx512_vnni";
    case Simd::avx2: return "avx2+fma";
    default: return "portable";
  }
}

}  // namespace matkern
