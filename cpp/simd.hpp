// Run-time choice of SIMD kernels. The AVX2/FMA variants live in *_avx2.cpp files, the only
// files compiled with -mavx2 -mfma; everything else is portable. Rule for *_avx2.cpp files:
// keep their code in namespace matkern::avx2 and use no std:: containers or inline templates
// shared with portable files, so that the linker can never pick an AVX2 copy of a shared
// inline function for portable code.
#pragma once
#include <cstdlib>
#include <cstring>

namespace matkern {

enum class Simd { portable = 0, avx2 = 1 };

inline bool cpu_has_avx2_fma() {
#if defined(MATKERN_BUILD_AVX2) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

// MATKERN_SIMD=portable forces the portable kernels (for testing both paths on one machine).
inline Simd simd_level() {
  const char* env = std::getenv("MATKERN_SIMD");
  if (env && std::strcmp(env, "portable") == 0) return Simd::portable;
  return cpu_has_avx2_fma() ? Simd::avx2 : Simd::portable;
}

inline const char* simd_name(Simd s) { return s == Simd::avx2 ? "avx2+fma" : "portable"; }

}  // namespace matkern
