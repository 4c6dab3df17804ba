// CUDA bindings of the lut family: the fused tensor-core LUT matmul.
#include "bind_common.hpp"
#include "lut.hpp"

namespace matkern::cuda {
namespace {

using anydev = nb::ndarray<nb::device::cuda, nb::c_contig>;

bool is_half(const anydev& a, const char* what) {
  const nb::dlpack::dtype d = a.dtype();
  if (d == nb::dtype<float>()) return false;
  if (d.code == uint8_t(nb::dlpack::dtype_code::Float) && d.bits == 16 && d.lanes == 1) return true;
  throw std::invalid_argument(std::string("lut_matmul: ") + what + " must be float16 or float32");
}

// bias: float32 (N,), or None.
void matmul(anydev x, darr<const uint32_t> packed, darr<const float> scales,
            darr<const float> table, int bits, int gs, int64_t N, int64_t K, int tm, int64_t per,
            bool bf16, darr<float> ws, std::optional<darr<const float>> bias, anydev out,
            std::uintptr_t stream) {
  if (x.ndim() != 2 || out.ndim() != 2 || ws.ndim() != 3)
    throw std::invalid_argument("lut_matmul: bad ranks");
  const int64_t M = x.shape(0), splits = ws.shape(0);
  const int64_t n_tiles = (N + 15) / 16, chunks = (K + 63) / 64;
  if (int64_t(x.shape(1)) != K || int64_t(out.shape(0)) != M || int64_t(out.shape(1)) != N ||
      int64_t(ws.shape(1)) != M || int64_t(ws.shape(2)) != N ||
      int64_t(packed.size()) != n_tiles * chunks * bits * 32 || gs < 32 || gs % 32 != 0 ||
      K % 32 != 0 || int64_t(scales.size()) != N * ((K + gs - 1) / gs) ||
      int64_t(table.size()) != (int64_t(1) << bits) || per < 1 ||
      splits != (chunks + per - 1) / per || (bias && int64_t(bias->size()) != N))
    throw std::invalid_argument("lut_matmul: inconsistent shapes");
  const bool xh = is_half(x, "X"), oh = is_half(out, "out");
  lut_matmul(x.data(), xh, M, K, packed.data(), scales.data(), table.data(), bits, gs, N, tm, per,
             bf16, ws.data(), splits, data_or_null(bias), out.data(), oh, stream);
}

}  // namespace

void bind_lut(nb::module_& m) {
  m.def("lut_matmul", &matmul, kLaunchCall, "x"_a, "packed"_a, "scales"_a, "table"_a, "bits"_a,
        "group_size"_a, "N"_a, "K"_a, "tm"_a, "per"_a, "bf16"_a, "ws"_a, "bias"_a.none(), "out"_a,
        "stream"_a);
}

}  // namespace matkern::cuda
