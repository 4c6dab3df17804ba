// CUDA bindings of the int8 family. float16 arrays travel as their uint16 bits (CuPy views).
#include <stdexcept>

#include "bind_common.hpp"
#include "int8.hpp"

namespace matkern::cuda {
namespace {

template <typename T>
void quantize_rows(darr<const T> x, darr<const uint8_t> mask, darr<int8_t> q, darr<float> scale,
                   std::uintptr_t stream) {
  const int64_t m = x.shape(0), k = x.shape(1), kp = q.shape(1);
  if (x.ndim() != 2 || q.shape(0) != size_t(m) || scale.size() != size_t(m) || kp < k ||
      kp % 32 || (mask.size() != 0 && mask.size() != size_t(k)))
    throw std::invalid_argument("int8_quantize_rows: inconsistent shapes");
  const T* xp = x.data();
  const uint8_t* mp = mask.size() ? mask.data() : nullptr;
  int8_t* qp = q.data();
  float* sp = scale.data();
  nb::gil_scoped_release release;
  if constexpr (sizeof(T) == 4) int8_quantize_rows_f32(xp, m, k, kp, mp, qp, sp, stream);
  else int8_quantize_rows_f16(xp, m, k, kp, mp, qp, sp, stream);
}

template <typename T>
void gemm_scaled(darr<const int8_t> a, darr<const int8_t> b, darr<const float> row_scale,
                 darr<const float> col_scale, nb::object bias_obj, nb::object addend_obj,
                 darr<T> out, std::uintptr_t stream) {
  const int64_t m = a.shape(0), kp = a.shape(1), n = b.shape(0);
  if (b.shape(1) != size_t(kp) || kp % 32 || out.shape(0) != size_t(m) ||
      out.shape(1) != size_t(n) || row_scale.size() != size_t(m) || col_scale.size() != size_t(n))
    throw std::invalid_argument("int8_gemm_scaled: inconsistent shapes");
  const float* bias = nullptr;
  const float* addend = nullptr;
  if (!bias_obj.is_none()) {
    auto bb = nb::cast<darr<const float>>(bias_obj);
    if (bb.size() != size_t(n)) throw std::invalid_argument("int8_gemm_scaled: bias size");
    bias = bb.data();
  }
  if (!addend_obj.is_none()) {
    auto ad = nb::cast<darr<const float>>(addend_obj);
    if (ad.size() != size_t(m * n)) throw std::invalid_argument("int8_gemm_scaled: addend size");
    addend = ad.data();
  }
  const int8_t* ap = a.data();
  const int8_t* bp = b.data();
  const float* rs = row_scale.data();
  const float* cs = col_scale.data();
  T* op = out.data();
  nb::gil_scoped_release release;
  if constexpr (sizeof(T) == 4) int8_gemm_scaled_f32(ap, bp, m, n, kp, rs, cs, bias, addend, op, stream);
  else int8_gemm_scaled_f16(ap, bp, m, n, kp, rs, cs, bias, addend, op, stream);
}

void gemm_i32(darr<const int8_t> a, darr<const int8_t> b, darr<int32_t> out,
              std::uintptr_t stream) {
  const int64_t m = a.shape(0), kp = a.shape(1), n = b.shape(0);
  if (b.shape(1) != size_t(kp) || kp % 32 || out.shape(0) != size_t(m) || out.shape(1) != size_t(n))
    throw std::invalid_argument("int8_gemm_i32: inconsistent shapes");
  const int8_t* ap = a.data();
  const int8_t* bp = b.data();
  int32_t* op = out.data();
  nb::gil_scoped_release release;
  int8_gemm_i32(ap, bp, m, n, kp, op, stream);
}

}  // namespace

void bind_int8(nb::module_& m) {
  m.def("int8_quantize_rows", &quantize_rows<float>);
  m.def("int8_quantize_rows", &quantize_rows<uint16_t>);
  m.def("int8_gemm_scaled", &gemm_scaled<float>, nb::arg("a"), nb::arg("b"),
        nb::arg("row_scale"), nb::arg("col_scale"), nb::arg("bias").none(),
        nb::arg("addend").none(), nb::arg("out"), nb::arg("stream"));
  m.def("int8_gemm_scaled", &gemm_scaled<uint16_t>, nb::arg("a"), nb::arg("b"),
        nb::arg("row_scale"), nb::arg("col_scale"), nb::arg("bias").none(),
        nb::arg("addend").none(), nb::arg("out"), nb::arg("stream"));
  m.def("int8_gemm_i32", &gemm_i32);
}

}  // namespace matkern::cuda
