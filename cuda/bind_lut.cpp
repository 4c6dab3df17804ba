// CUDA bindings of the lut family: the fused tensor-core LUT matmul.
#include "bind_common.hpp"
#include "lut.hpp"

namespace matkern::cuda {
namespace {

// Arrays travel as device pointers: DLPack imports of seven CuPy arrays cost more host time than
// the launch at small M (issue #23). The caller (matkern.lut._matmul_cuda) passes contiguous
// arrays of the LUTWeight it validated at quantize time: x (M, K) and out (M, N) float16 or
// float32, packed (N/16 tiles, K/64 chunks, bits, 32) uint32, scales (N, ceil(K/gs)) and table
// (2^bits) float32, ws (splits, M, N) float32, bias (N) float32 or 0.
void matmul(std::uintptr_t x, bool x_half, int64_t M, int64_t K, std::uintptr_t packed,
            std::uintptr_t scales, std::uintptr_t table, int bits, int gs, int64_t N, int tm,
            int64_t per, bool bf16, std::uintptr_t ws, int64_t splits, std::uintptr_t bias,
            std::uintptr_t out, bool out_half, std::uintptr_t stream) {
  const int64_t chunks = (K + 63) / 64;
  if (M < 0 || N < 0 || gs < 32 || gs % 32 != 0 || K % 32 != 0 || bits < 2 || bits > 4 || per < 1 ||
      splits != (chunks + per - 1) / per || !x || !packed || !scales || !table || !ws || !out ||
      (tm != 1 && tm != 2 && tm != 4))
    throw std::invalid_argument("lut_matmul: inconsistent arguments");
  lut_matmul(reinterpret_cast<const void*>(x), x_half, M, K,
             reinterpret_cast<const uint32_t*>(packed), reinterpret_cast<const float*>(scales),
             reinterpret_cast<const float*>(table), bits, gs, N, tm, per, bf16,
             reinterpret_cast<float*>(ws), splits, reinterpret_cast<const float*>(bias),
             reinterpret_cast<void*>(out), out_half, stream);
}

}  // namespace

void bind_lut(nb::module_& m) {
  m.def("lut_matmul", &matmul, kLaunchCall, "x"_a, "x_half"_a, "M"_a, "K"_a, "packed"_a, "scales"_a,
        "table"_a, "bits"_a, "group_size"_a, "N"_a, "tm"_a, "per"_a, "bf16"_a, "ws"_a, "splits"_a,
        "bias"_a, "out"_a, "out_half"_a, "stream"_a);
}

}  // namespace matkern::cuda
