// Bindings of the lut family: the fused LUT matmul and the dequantization (CPU).
#include "bind_common.hpp"
#include "lut.hpp"

#include <cmath>

namespace matkern {
namespace {

// packed, scales and table of N rows of K weights (K: any; the packed rows hold ceil(K / 32)
// blocks): sizes as lut.hpp lays them out.
bool weight_sizes_ok(const carr<const uint32_t>& packed, const carr<const float>& scales,
                     const carr<const float>& table, int bits, int gs, int64_t N, int64_t K) {
  if (gs < 32 || gs % 32 != 0 || (bits != 2 && bits != 3 && bits != 4)) return false;
  const int64_t kp = (K + 31) / 32 * 32;
  return int64_t(packed.size()) == N * (kp / 32) * bits &&
         int64_t(scales.size()) == N * ((kp + gs - 1) / gs) &&
         int64_t(table.size()) == (int64_t(1) << bits);
}

void matmul(carr<const float> x, carr<const uint32_t> packed, carr<const float> scales,
            carr<const float> table, int bits, int gs, std::optional<carr<const float>> bias,
            carr<float> out) {
  const int64_t M = x.shape(0), K = x.shape(1), N = out.shape(1);
  if (out.shape(0) != size_t(M) || int64_t(packed.shape(0)) != N || K % 32 != 0 ||
      !weight_sizes_ok(packed, scales, table, bits, gs, N, K))
    throw std::invalid_argument("lut_matmul: inconsistent shapes");
  if (bias && int64_t(bias->size()) != N) throw std::invalid_argument("lut_matmul: bias size");
  lut_matmul(x.data(), M, K, packed.data(), scales.data(), table.data(), bits, gs, N,
             data_or_null(bias), out.data());
}

void matmul_i8(carr<const float> x, carr<const uint32_t> packed, carr<const float> scales,
               carr<const float> table, carr<const int8_t> t8, double tfac, int bits, int gs,
               std::optional<carr<const float>> bias, carr<float> out) {
  const int64_t M = x.shape(0), K = x.shape(1), N = out.shape(1);
  if (out.shape(0) != size_t(M) || int64_t(packed.shape(0)) != N || K % 32 != 0 ||
      !weight_sizes_ok(packed, scales, table, bits, gs, N, K) ||
      int64_t(t8.size()) != (int64_t(1) << bits))
    throw std::invalid_argument("lut_matmul_i8: inconsistent shapes");
  if (!(tfac > 0) || !std::isfinite(tfac))
    throw std::invalid_argument("lut_matmul_i8: tfac must be finite and > 0");
  if (bias && int64_t(bias->size()) != N) throw std::invalid_argument("lut_matmul_i8: bias size");
  lut_matmul_i8(x.data(), M, K, packed.data(), scales.data(), t8.data(), tfac, bits, gs, N,
                data_or_null(bias), out.data());
}

void dequantize(carr<const uint32_t> packed, carr<const float> scales, carr<const float> table,
                int bits, int gs, int64_t K, carr<float> out) {
  const int64_t N = out.shape(0);
  if (int64_t(out.shape(1)) != K || !weight_sizes_ok(packed, scales, table, bits, gs, N, K))
    throw std::invalid_argument("lut_dequantize: inconsistent shapes");
  lut_dequantize(packed.data(), scales.data(), table.data(), bits, gs, N, K, out.data());
}

}  // namespace

void bind_lut(nb::module_& m) {
  m.def("lut_matmul", &matmul, kKernelCall, "x"_a, "packed"_a, "scales"_a, "table"_a, "bits"_a,
        "group_size"_a, "bias"_a.none(), "out"_a);
  m.def("lut_matmul_i8", &matmul_i8, kKernelCall, "x"_a, "packed"_a, "scales"_a, "table"_a, "t8"_a,
        "tfac"_a, "bits"_a, "group_size"_a, "bias"_a.none(), "out"_a);
  m.def("lut_dequantize", &dequantize, kKernelCall, "packed"_a, "scales"_a, "table"_a, "bits"_a,
        "group_size"_a, "K"_a, "out"_a);
}

}  // namespace matkern
