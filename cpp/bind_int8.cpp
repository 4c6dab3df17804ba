// Bindings of the int8 family: activation quantization, widening, and the packed int8 GEMM
// with its fused epilogue. The Python layer has checked every shape and dtype.
#include <stdexcept>

#include "bind_common.hpp"
#include "threads.hpp"
#include "int8.hpp"

namespace matkern {
namespace {

void quantize_rows(carr<const float> x, carr<const int64_t> outlier_cols, carr<int16_t> q,
                   carr<float> scale) {
  const int64_t m = x.shape(0), k = x.shape(1), kp = q.shape(1);
  if (q.shape(0) != size_t(m) || scale.size() != size_t(m) || kp < k || kp % 2)
    throw std::invalid_argument("int8_quantize_rows: inconsistent shapes");
  for (size_t c = 0; c < outlier_cols.size(); ++c)
    if (outlier_cols.data()[c] < 0 || outlier_cols.data()[c] >= k)
      throw std::invalid_argument("int8_quantize_rows: outlier column out of range");
  const float* xp = x.data();
  const int64_t* op = outlier_cols.data();
  const int64_t n_out = int64_t(outlier_cols.size());
  int16_t* qp = q.data();
  float* sp = scale.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  int8_quantize_rows(xp, m, k, kp, op, n_out, qp, sp);
}

void widen(carr<const int8_t> a, carr<int16_t> q) {
  const int64_t m = a.shape(0), k = a.shape(1), kp = q.shape(1);
  if (q.shape(0) != size_t(m) || kp < k || kp % 2)
    throw std::invalid_argument("int8_widen: inconsistent shapes");
  const int8_t* ap = a.data();
  int16_t* qp = q.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  int8_widen(ap, m, k, kp, qp);
}

void check_gemm(const carr<const int16_t>& xq, const carr<const int8_t>& wp, int64_t n,
                int64_t out_rows, int64_t out_cols) {
  const int64_t m = xq.shape(0), kp = xq.shape(1);
  const int64_t np = (n + 7) / 8 * 8;
  if (kp % 2 || int64_t(wp.size()) != np * kp || out_rows != m || out_cols != n)
    throw std::invalid_argument("int8_gemm_packed: inconsistent shapes");
}

void gemm_f32(carr<const int16_t> xq, carr<const int8_t> wp, int64_t n, carr<const float> row_scale,
              carr<const float> col_scale, nb::object bias_obj, nb::object addend_obj,
              nb::object xo_obj, nb::object wot_obj, carr<float> out) {
  check_gemm(xq, wp, n, out.shape(0), out.shape(1));
  const int64_t m = xq.shape(0), kp = xq.shape(1);
  if (row_scale.size() != size_t(m) || col_scale.size() != size_t(n))
    throw std::invalid_argument("int8_gemm_packed: scale sizes");
  Int8Epilogue ep;
  ep.row_scale = row_scale.data();
  ep.col_scale = col_scale.data();
  if (!bias_obj.is_none()) {
    auto b = nb::cast<carr<const float>>(bias_obj);
    if (b.size() != size_t(n)) throw std::invalid_argument("int8_gemm_packed: bias size");
    ep.bias = b.data();
  }
  if (!addend_obj.is_none()) {
    auto a = nb::cast<carr<const float>>(addend_obj);
    if (a.size() != size_t(m * n)) throw std::invalid_argument("int8_gemm_packed: addend size");
    ep.addend = a.data();
  }
  if (!xo_obj.is_none() || !wot_obj.is_none()) {
    auto xo = nb::cast<carr<const float>>(xo_obj);
    auto wot = nb::cast<carr<const float>>(wot_obj);
    if (xo.ndim() != 2 || wot.ndim() != 2 || int64_t(xo.shape(0)) != m ||
        int64_t(wot.shape(1)) != n || xo.shape(1) != wot.shape(0) || ep.addend)
      throw std::invalid_argument("int8_gemm_packed: outlier operand shapes");
    ep.xo = xo.data();
    ep.wot = wot.data();
    ep.n_out = int64_t(xo.shape(1));
  }
  ep.out_f32 = out.data();
  const int16_t* xp = xq.data();
  const int8_t* w = wp.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  int8_gemm_packed(xp, m, kp, w, n, ep);
}

void gemm_i32(carr<const int16_t> xq, carr<const int8_t> wp, int64_t n, carr<int32_t> out) {
  check_gemm(xq, wp, n, out.shape(0), out.shape(1));
  Int8Epilogue ep;
  ep.out_i32 = out.data();
  const int16_t* xp = xq.data();
  const int8_t* w = wp.data();
  const int64_t m = xq.shape(0), kp = xq.shape(1);
  KernelScope scope;  // GIL released, threads taken from the budget
  int8_gemm_packed(xp, m, kp, w, n, ep);
}

}  // namespace

void bind_int8(nb::module_& m) {
  m.def("int8_quantize_rows", &quantize_rows);
  m.def("int8_widen", &widen);
  m.def("int8_gemm_f32", &gemm_f32, nb::arg("xq"), nb::arg("wp"), nb::arg("n"),
        nb::arg("row_scale"), nb::arg("col_scale"), nb::arg("bias").none(),
        nb::arg("addend").none(), nb::arg("xo").none(), nb::arg("wot").none(), nb::arg("out"));
  m.def("int8_gemm_i32", &gemm_i32);
}

}  // namespace matkern
