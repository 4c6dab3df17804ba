// CUDA bindings of the fused rotate + quantize kernels (rotate_quant.hpp). float16 arrays
// travel as their uint16 bits (CuPy views); the Python layer (_rotate_quant.py) has checked
// shapes and dtypes.
#include "bind_common.hpp"
#include "rotate_quant.hpp"

namespace matkern::cuda {
namespace {

using opt_f32 = std::optional<darr<const float>>;

// signs (n) or None; ht (m x mp) or None for m = 1; n = m * p.
void check_rotation(const opt_f32& signs, const opt_f32& ht, int64_t m, int64_t p, int64_t k,
                    const char* error) {
  const int64_t mp = (m + 7) / 8 * 8;
  if (m < 1 || p < 1 || (p & (p - 1)) != 0 || m * p != k || m * p > kRotateMaxN ||
      (signs && int64_t(signs->size()) != k) || (m > 1 && (!ht || int64_t(ht->size()) != m * mp)))
    throw std::invalid_argument(error);
}

template <typename T>
void rotate_quantize(darr<const T> x, opt_f32 signs, opt_f32 ht, int64_t m, int64_t p,
                     bool round_f16, darr<int8_t> q, darr<float> scale, std::uintptr_t stream) {
  const char* error = "rotate_quantize_int8: inconsistent shapes";
  const int64_t rows = x.shape(0), k = x.shape(1), kp = q.shape(1);
  check_rotation(signs, ht, m, p, k, error);
  if (x.ndim() != 2 || q.shape(0) != size_t(rows) || scale.size() != size_t(rows) || kp < k ||
      kp % 32)
    throw std::invalid_argument(error);
  const float* h = m > 1 ? ht->data() : nullptr;
  if constexpr (sizeof(T) == 4)
    rotate_quantize_int8_f32(x.data(), rows, m, p, data_or_null(signs), h, round_f16, kp, q.data(),
                             scale.data(), stream);
  else
    rotate_quantize_int8_f16(x.data(), rows, m, p, data_or_null(signs), h, round_f16, kp, q.data(),
                             scale.data(), stream);
}

template <typename T>
void rotate_rows(darr<const T> x, opt_f32 signs, opt_f32 ht, int64_t m, int64_t p, darr<T> out,
                 std::uintptr_t stream) {
  const char* error = "rotate_rows_padded: inconsistent shapes";
  const int64_t rows = x.shape(0), k = x.shape(1), ldo = out.shape(1);
  check_rotation(signs, ht, m, p, k, error);
  if (x.ndim() != 2 || out.ndim() != 2 || out.shape(0) != size_t(rows) || ldo < k)
    throw std::invalid_argument(error);
  const float* h = m > 1 ? ht->data() : nullptr;
  if constexpr (sizeof(T) == 4)
    rotate_rows_padded_f32(x.data(), rows, m, p, data_or_null(signs), h, ldo, out.data(), stream);
  else
    rotate_rows_padded_f16(x.data(), rows, m, p, data_or_null(signs), h, ldo, out.data(), stream);
}

template <typename T>  // float32, or float16 as uint16
void def_typed(nb::module_& mod) {
  mod.def("rotate_quantize_int8", &rotate_quantize<T>, kLaunchCall, "x"_a, "signs"_a.none(),
          "ht"_a.none(), "m"_a, "p"_a, "round_f16"_a, "q"_a, "scale"_a, "stream"_a);
  mod.def("rotate_rows_padded", &rotate_rows<T>, kLaunchCall, "x"_a, "signs"_a.none(),
          "ht"_a.none(), "m"_a, "p"_a, "out"_a, "stream"_a);
}

}  // namespace

void bind_rotate(nb::module_& mod) {
  def_typed<float>(mod);
  def_typed<uint16_t>(mod);
}

}  // namespace matkern::cuda
