// Bindings of the lut family: the fused LUT matmul and the dequantization (CPU).
#include "bind_common.hpp"
#include "threads.hpp"
#include "lut.hpp"

namespace matkern {
namespace {

void matmul(carr<const float> x, carr<const uint32_t> packed, carr<const float> scales,
            carr<const float> table, int bits, int gs, carr<const float> bias, carr<float> out) {
  // bias: (N,) or an empty array for none
  const int64_t M = x.shape(0), K = x.shape(1), N = out.shape(1);
  if (out.shape(0) != size_t(M) || int64_t(packed.shape(0)) != N ||
      int64_t(packed.size()) != N * (K / 32) * bits || int64_t(scales.size()) != N * (K / gs) ||
      int64_t(table.size()) != (int64_t(1) << bits) || K % gs != 0 || gs % 32 != 0)
    throw std::invalid_argument("lut_matmul: inconsistent shapes");
  if (bias.size() != 0 && int64_t(bias.size()) != N)
    throw std::invalid_argument("lut_matmul: bias size");
  const float* bp = bias.size() ? bias.data() : nullptr;
  const float* xp = x.data();
  const uint32_t* pp = packed.data();
  const float* sp = scales.data();
  const float* tp = table.data();
  float* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  lut_matmul(xp, M, K, pp, sp, tp, bits, gs, N, bp, op);
}

void dequantize(carr<const uint32_t> packed, carr<const float> scales, carr<const float> table,
                int bits, int gs, int64_t K, carr<float> out) {
  const int64_t N = out.shape(0);
  if (int64_t(out.shape(1)) != K || int64_t(packed.size()) != N * (K / 32) * bits ||
      int64_t(scales.size()) != N * (K / gs) || int64_t(table.size()) != (int64_t(1) << bits) ||
      K % gs != 0 || gs % 32 != 0)
    throw std::invalid_argument("lut_dequantize: inconsistent shapes");
  const uint32_t* pp = packed.data();
  const float* sp = scales.data();
  const float* tp = table.data();
  float* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  lut_dequantize(pp, sp, tp, bits, gs, N, K, op);
}

}  // namespace

void bind_lut(nb::module_& m) {
  m.def("lut_matmul", &matmul);
  m.def("lut_dequantize", &dequantize);
}

}  // namespace matkern
