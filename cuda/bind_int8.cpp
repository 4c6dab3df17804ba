// CUDA bindings of the int8 family. float16 arrays travel as their uint16 bits (CuPy views).
#include "bind_common.hpp"
#include "int8.hpp"

namespace matkern::cuda {
namespace {

// mask (k,): 1 for the outlier columns left out of the quantization; None: no outliers.
template <typename T>
void quantize_rows(darr<const T> x, std::optional<darr<const uint8_t>> mask, darr<int8_t> q,
                   darr<float> scale, std::uintptr_t stream) {
  const int64_t m = x.shape(0), k = x.shape(1), kp = q.shape(1);
  if (x.ndim() != 2 || q.shape(0) != size_t(m) || scale.size() != size_t(m) || kp < k || kp % 32 ||
      (mask && mask->size() != size_t(k)))
    throw std::invalid_argument("int8_quantize_rows: inconsistent shapes");
  if constexpr (sizeof(T) == 4)
    int8_quantize_rows_f32(x.data(), m, k, kp, data_or_null(mask), q.data(), scale.data(), stream);
  else
    int8_quantize_rows_f16(x.data(), m, k, kp, data_or_null(mask), q.data(), scale.data(), stream);
}

// a (m, kp) and b (n, kp) int8, kp a multiple of 32.
void check_gemm(const darr<const int8_t>& a, const darr<const int8_t>& b, size_t out_rows,
                size_t out_cols, const char* error) {
  const size_t m = a.shape(0), kp = a.shape(1), n = b.shape(0);
  if (b.shape(1) != kp || kp % 32 || out_rows != m || out_cols != n)
    throw std::invalid_argument(error);
}

using opt_f32 = std::optional<darr<const float>>;

template <typename T>
void gemm_scaled(darr<const int8_t> a, darr<const int8_t> b, darr<const float> row_scale,
                 darr<const float> col_scale, opt_f32 bias, opt_f32 addend, darr<T> out,
                 std::uintptr_t stream) {
  const int64_t m = a.shape(0), kp = a.shape(1), n = b.shape(0);
  check_gemm(a, b, out.shape(0), out.shape(1), "int8_gemm_scaled: inconsistent shapes");
  if (row_scale.size() != size_t(m) || col_scale.size() != size_t(n))
    throw std::invalid_argument("int8_gemm_scaled: inconsistent shapes");
  if (bias && bias->size() != size_t(n)) throw std::invalid_argument("int8_gemm_scaled: bias size");
  if (addend && addend->size() != size_t(m * n))
    throw std::invalid_argument("int8_gemm_scaled: addend size");
  if constexpr (sizeof(T) == 4)
    int8_gemm_scaled_f32(a.data(), b.data(), m, n, kp, row_scale.data(), col_scale.data(),
                         data_or_null(bias), data_or_null(addend), out.data(), stream);
  else
    int8_gemm_scaled_f16(a.data(), b.data(), m, n, kp, row_scale.data(), col_scale.data(),
                         data_or_null(bias), data_or_null(addend), out.data(), stream);
}

// The whole product in one call (int8_matmul_fused in int8.hpp); false: too many outlier
// columns, nothing written. Arrays travel as device pointers: DLPack imports of six CuPy arrays
// cost more host time than the launches (issue #23). The caller (matkern.int8) passes
// contiguous arrays whose shapes it has checked: x (m, k), b (n, kp), col_scale (n), bias (n)
// or 0, out (m, n) of x's type, work of work_bytes >= int8_fused_work_bytes(...).
bool matmul_fused(std::uintptr_t x, bool half, int64_t m, int64_t k, double threshold,
                  std::uintptr_t b, int64_t n, int64_t kp, std::uintptr_t col_scale,
                  std::uintptr_t bias, std::uintptr_t out, std::uintptr_t work, int64_t work_bytes,
                  int64_t cap, std::uintptr_t stream) {
  if (m < 0 || n < 0 || k < 0 || kp < k || kp % 32 || cap < 0 || !x || !b || !col_scale || !out ||
      !work)
    throw std::invalid_argument("int8_matmul_fused: inconsistent arguments");
  if (work_bytes < int8_fused_work_bytes(m, k, kp, n, cap))
    throw std::invalid_argument("int8_matmul_fused: work too small");
  const auto* bp = reinterpret_cast<const int8_t*>(b);
  const auto* sp = reinterpret_cast<const float*>(col_scale);
  const auto* biasp = reinterpret_cast<const float*>(bias);
  auto* wp = reinterpret_cast<void*>(work);
  if (half)
    return int8_matmul_fused_f16(reinterpret_cast<const uint16_t*>(x), m, k, threshold, bp, n, kp,
                                 sp, biasp, reinterpret_cast<uint16_t*>(out), wp, cap, stream);
  return int8_matmul_fused_f32(reinterpret_cast<const float*>(x), m, k, threshold, bp, n, kp, sp,
                               biasp, reinterpret_cast<float*>(out), wp, cap, stream);
}

void gemm_i32(darr<const int8_t> a, darr<const int8_t> b, darr<int32_t> out,
              std::uintptr_t stream) {
  check_gemm(a, b, out.shape(0), out.shape(1), "int8_gemm_i32: inconsistent shapes");
  int8_gemm_i32(a.data(), b.data(), a.shape(0), b.shape(0), a.shape(1), out.data(), stream);
}

template <typename T>  // float32, or float16 as uint16
void def_typed(nb::module_& m) {
  m.def("int8_quantize_rows", &quantize_rows<T>, kLaunchCall, "x"_a, "mask"_a.none(), "q"_a,
        "scale"_a, "stream"_a);
  m.def("int8_gemm_scaled", &gemm_scaled<T>, kLaunchCall, "a"_a, "b"_a, "row_scale"_a,
        "col_scale"_a, "bias"_a.none(), "addend"_a.none(), "out"_a, "stream"_a);
}

}  // namespace

void bind_int8(nb::module_& m) {
  def_typed<float>(m);
  def_typed<uint16_t>(m);
  m.def("int8_fused_work_bytes", &int8_fused_work_bytes, "m"_a, "k"_a, "kp"_a, "n"_a, "cap"_a);
  m.def("int8_matmul_fused", &matmul_fused, kLaunchCall, "x"_a, "half"_a, "m"_a, "k"_a,
        "threshold"_a, "b"_a, "n"_a, "kp"_a, "col_scale"_a, "bias"_a, "out"_a, "work"_a,
        "work_bytes"_a, "cap"_a, "stream"_a);
  m.def("int8_gemm_i32", &gemm_i32, kLaunchCall, "a"_a, "b"_a, "out"_a, "stream"_a);
}

}  // namespace matkern::cuda
