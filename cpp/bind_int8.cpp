// Bindings of the int8 family: activation quantization, widening, and the packed int8 GEMM
// with its fused epilogue. The Python layer has checked every shape and dtype.
#include "bind_common.hpp"
#include "int8.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace matkern {
namespace {

void quantize_rows(carr<const float> x, carr<const int64_t> outlier_cols, carr<int16_t> q,
                   carr<float> scale) {
  const int64_t m = x.shape(0), k = x.shape(1), kp = q.shape(1);
  if (q.shape(0) != size_t(m) || scale.size() != size_t(m) || kp < k || kp % 2)
    throw std::invalid_argument("int8_quantize_rows: inconsistent shapes");
  const int64_t* cols = outlier_cols.data();
  const int64_t n_out = int64_t(outlier_cols.size());
  for (int64_t c = 0; c < n_out; ++c)
    if (cols[c] < 0 || cols[c] >= k)
      throw std::invalid_argument("int8_quantize_rows: outlier column out of range");
  int8_quantize_rows(x.data(), m, k, kp, cols, n_out, q.data(), scale.data());
}

void widen(carr<const int8_t> a, carr<int16_t> q) {
  const int64_t m = a.shape(0), k = a.shape(1), kp = q.shape(1);
  if (q.shape(0) != size_t(m) || kp < k || kp % 2)
    throw std::invalid_argument("int8_widen: inconsistent shapes");
  int8_widen(a.data(), m, k, kp, q.data());
}

void check_gemm(const carr<const int16_t>& xq, const carr<const int8_t>& wp, int64_t n,
                int64_t out_rows, int64_t out_cols) {
  const int64_t m = xq.shape(0), kp = xq.shape(1);
  const int64_t np = (n + 7) / 8 * 8;
  if (kp % 2 || int64_t(wp.size()) != np * kp || out_rows != m || out_cols != n)
    throw std::invalid_argument("int8_gemm_packed: inconsistent shapes");
}

using opt_f32 = std::optional<carr<const float>>;

void gemm_f32(carr<const int16_t> xq, carr<const int8_t> wp, int64_t n, carr<const float> row_scale,
              carr<const float> col_scale, opt_f32 bias, opt_f32 addend, opt_f32 xo, opt_f32 wot,
              carr<float> out) {
  check_gemm(xq, wp, n, out.shape(0), out.shape(1));
  const int64_t m = xq.shape(0), kp = xq.shape(1);
  if (row_scale.size() != size_t(m) || col_scale.size() != size_t(n))
    throw std::invalid_argument("int8_gemm_packed: scale sizes");
  if (bias && bias->size() != size_t(n)) throw std::invalid_argument("int8_gemm_packed: bias size");
  if (addend && addend->size() != size_t(m * n))
    throw std::invalid_argument("int8_gemm_packed: addend size");
  Int8Epilogue ep;
  ep.row_scale = row_scale.data();
  ep.col_scale = col_scale.data();
  ep.bias = data_or_null(bias);
  ep.addend = data_or_null(addend);
  if (xo || wot) {  // the outlier columns' product xo @ wot, added in the epilogue
    if (!xo || !wot || xo->ndim() != 2 || wot->ndim() != 2 || int64_t(xo->shape(0)) != m ||
        int64_t(wot->shape(1)) != n || xo->shape(1) != wot->shape(0) || addend)
      throw std::invalid_argument("int8_gemm_packed: outlier operand shapes");
    ep.xo = xo->data();
    ep.wot = wot->data();
    ep.n_out = int64_t(xo->shape(1));
  }
  ep.out_f32 = out.data();
  int8_gemm_packed(xq.data(), m, kp, wp.data(), n, ep);
}

void gemm_i32(carr<const int16_t> xq, carr<const int8_t> wp, int64_t n, carr<int32_t> out) {
  check_gemm(xq, wp, n, out.shape(0), out.shape(1));
  Int8Epilogue ep;
  ep.out_i32 = out.data();
  int8_gemm_packed(xq.data(), xq.shape(0), xq.shape(1), wp.data(), n, ep);
}

// The vpdpbusd path's operands: the packed weight (N16 * Kq bytes) and corr (N16); returns
// Kq and the activation row stride (int8_vnni_ldx).
std::pair<int64_t, int64_t> check_vnni(const carr<const int8_t>& wv,
                                       const carr<const int32_t>& corr, int64_t n, int64_t k) {
  const int64_t n16 = (n + 15) / 16 * 16;
  if (n < 1 || int64_t(corr.size()) != n16 || int64_t(wv.size()) % n16)
    throw std::invalid_argument("int8_vnni: inconsistent weight shapes");
  const int64_t kq = int64_t(wv.size()) / n16;
  if (kq % 4 || kq < k || kq >= k + 4) throw std::invalid_argument("int8_vnni: weight K");
  return {kq, int8_vnni_ldx(kq)};
}

// Quantizes x (without its outlier columns), multiplies on the vpdpbusd path and runs the
// epilogue into out; ep carries the bias, addend or outlier operands. GIL released.
void run_vnni(const carr<const float>& x, const int64_t* cols, int64_t n_out,
              const carr<const int8_t>& wv, const carr<const int32_t>& corr, int64_t n, int64_t kq,
              int64_t ldx, Int8Epilogue& ep) {
  const int64_t m = x.shape(0), k = x.shape(1);
  std::unique_ptr<uint8_t[]> q(new uint8_t[size_t(m * ldx)]);
  std::unique_ptr<float[]> sx(new float[size_t(m)]);
  int8_quantize_rows_u8(x.data(), m, k, ldx, cols, n_out, q.get(), sx.get());
  ep.row_scale = sx.get();
  Int8VnniGemm g;
  g.xq = q.get(), g.ldx = ldx, g.m = m, g.w = wv.data(), g.kq = kq, g.n = n, g.corr = corr.data();
  int8_gemm_vnni(g, ep);
}

// The checks int8_matmul_vnni and int8_matmul_vnni_auto share; returns (Kq, ldx).
std::pair<int64_t, int64_t> check_matmul_vnni(const char* fn, const carr<const float>& x,
                                              const carr<const int8_t>& wv,
                                              const carr<const int32_t>& corr, int64_t n,
                                              const carr<const float>& col_scale,
                                              const opt_f32& bias, const carr<float>& out) {
  if (!int8_vnni_enabled()) throw std::invalid_argument(std::string(fn) + ": path not enabled");
  const int64_t m = x.shape(0), k = x.shape(1);
  const auto kq_ldx = check_vnni(wv, corr, n, k);
  if (int64_t(out.shape(0)) != m || int64_t(out.shape(1)) != n || col_scale.size() != size_t(n))
    throw std::invalid_argument(std::string(fn) + ": inconsistent shapes");
  if (bias && bias->size() != size_t(n))
    throw std::invalid_argument(std::string(fn) + ": bias size");
  return kq_ldx;
}

void matmul_vnni(carr<const float> x, carr<const int64_t> outlier_cols, carr<const int8_t> wv,
                 carr<const int32_t> corr, int64_t n, carr<const float> col_scale, opt_f32 bias,
                 opt_f32 addend, opt_f32 xo, opt_f32 wot, carr<float> out) {
  const auto [kq, ldx] =
      check_matmul_vnni("int8_matmul_vnni", x, wv, corr, n, col_scale, bias, out);
  const int64_t m = x.shape(0), k = x.shape(1);
  if (addend && addend->size() != size_t(m * n))
    throw std::invalid_argument("int8_matmul_vnni: addend size");
  const int64_t* cols = outlier_cols.data();
  const int64_t n_out = int64_t(outlier_cols.size());
  for (int64_t c = 0; c < n_out; ++c)
    if (cols[c] < 0 || cols[c] >= k)
      throw std::invalid_argument("int8_matmul_vnni: outlier column out of range");
  Int8Epilogue ep;
  if (xo || wot) {
    if (!xo || !wot || xo->ndim() != 2 || wot->ndim() != 2 || int64_t(xo->shape(0)) != m ||
        int64_t(wot->shape(1)) != n || xo->shape(1) != wot->shape(0) || addend)
      throw std::invalid_argument("int8_matmul_vnni: outlier operand shapes");
    ep.xo = xo->data();
    ep.wot = wot->data();
    ep.n_out = int64_t(xo->shape(1));
  }
  ep.col_scale = col_scale.data();
  ep.bias = data_or_null(bias);
  ep.addend = data_or_null(addend);
  ep.out_f32 = out.data();
  run_vnni(x, cols, n_out, wv, corr, n, kq, ldx, ep);
}

// The columns of x (M, K) holding any |x| >= threshold (none when threshold <= 0: the
// reference's rule, decided on Python's double, compared in float32).
std::vector<int64_t> outlier_cols_of(const carr<const float>& x, double threshold) {
  const int64_t m = x.shape(0), k = x.shape(1);
  std::vector<int64_t> cols;
  if (!(threshold > 0) || m <= 0 || k <= 0) return cols;
  std::vector<uint8_t> hit(static_cast<size_t>(k));
  int8_outlier_flags(x.data(), m, k, float(threshold), hit.data());
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {  // eight flags a word: most are zero
    uint64_t word;
    std::memcpy(&word, hit.data() + j, 8);
    if (word == 0) continue;
    for (int64_t t = j; t < j + 8; ++t)
      if (hit[size_t(t)]) cols.push_back(t);
  }
  for (; j < k; ++j)
    if (hit[size_t(j)]) cols.push_back(j);
  return cols;
}

nb::ndarray<nb::numpy, int64_t> index_array(const std::vector<int64_t>& v) {
  auto* cols = new int64_t[v.empty() ? 1 : v.size()];
  nb::capsule owner(cols, [](void* p) noexcept { delete[] static_cast<int64_t*>(p); });
  std::copy(v.begin(), v.end(), cols);
  return nb::ndarray<nb::numpy, int64_t>(cols, {v.size()}, owner);
}

// int8_matmul on the vpdpbusd path in one call with the GIL released: the outlier columns
// (threshold), their float operands (x's columns, the weight's dequantized from its layout),
// quantization, product and epilogue into out; returns None. Where the outlier part is too
// large for the epilogue (more than max_cols columns, or rows x columns above max_work), out is
// left alone and the columns are returned: the caller multiplies them by BLAS and passes that
// product to int8_matmul_vnni as its addend.
nb::object matmul_vnni_auto(carr<const float> x, double threshold, int64_t max_cols,
                            int64_t max_work, carr<const int8_t> wv, carr<const int32_t> corr,
                            int64_t n, carr<const float> col_scale, opt_f32 bias, carr<float> out) {
  std::vector<int64_t> cols;
  bool done = false;
  {
    KernelScope scope;
    const auto [kq, ldx] =
        check_matmul_vnni("int8_matmul_vnni_auto", x, wv, corr, n, col_scale, bias, out);
    const int64_t m = x.shape(0), k = x.shape(1);
    cols = outlier_cols_of(x, threshold);
    const int64_t n_out = int64_t(cols.size());
    if (n_out <= max_cols && m * n_out <= max_work) {
      std::vector<float> xo(size_t(m * n_out)), wot(size_t(n_out * n));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t c = 0; c < n_out; ++c) xo[size_t(i * n_out + c)] = x.data()[i * k + cols[c]];
      int8_vnni_columns(wv.data(), kq, n, col_scale.data(), cols.data(), n_out, wot.data());
      Int8Epilogue ep;
      ep.xo = n_out ? xo.data() : nullptr;
      ep.wot = n_out ? wot.data() : nullptr;
      ep.n_out = n_out;
      ep.col_scale = col_scale.data();
      ep.bias = data_or_null(bias);
      ep.out_f32 = out.data();
      run_vnni(x, cols.data(), n_out, wv, corr, n, kq, ldx, ep);
      done = true;
    }
  }
  if (done) return nb::none();
  return nb::cast(index_array(cols));
}

void gemm_vnni_i32(carr<const int8_t> a, carr<const int8_t> wv, carr<const int32_t> corr, int64_t n,
                   carr<int32_t> out) {
  if (!int8_vnni_enabled()) throw std::invalid_argument("int8_gemm_vnni_i32: path not enabled");
  const int64_t m = a.shape(0), k = a.shape(1);
  const auto [kq, ldx] = check_vnni(wv, corr, n, k);
  if (int64_t(out.shape(0)) != m || int64_t(out.shape(1)) != n)
    throw std::invalid_argument("int8_gemm_vnni_i32: inconsistent shapes");
  std::unique_ptr<uint8_t[]> q(new uint8_t[size_t(m * ldx)]);
  int8_offset_rows(a.data(), m, k, ldx, q.get());
  Int8Epilogue ep;
  ep.out_i32 = out.data();
  Int8VnniGemm g;
  g.xq = q.get(), g.ldx = ldx, g.m = m, g.w = wv.data(), g.kq = kq, g.n = n, g.corr = corr.data();
  int8_gemm_vnni(g, ep);
}

// The threshold arrives as Python's double: "no decomposition" is decided on it (as the
// reference does), the comparison made with its float32 rounding.
nb::ndarray<nb::numpy, int64_t> outlier_columns(carr<const float> x, double threshold) {
  std::vector<int64_t> cols;
  {
    KernelScope scope;
    cols = outlier_cols_of(x, threshold);
  }
  return index_array(cols);
}

void vnni_columns(carr<const int8_t> wv, int64_t n, carr<const float> scale,
                  carr<const int64_t> cols, carr<float> wot) {
  const int64_t n16 = (n + 15) / 16 * 16, n_cols = int64_t(cols.size());
  if (n < 1 || int64_t(wv.size()) % n16 || scale.size() != size_t(n) ||
      int64_t(wot.size()) != n_cols * n)
    throw std::invalid_argument("int8_vnni_columns: inconsistent shapes");
  const int64_t kq = int64_t(wv.size()) / n16;
  for (int64_t c = 0; c < n_cols; ++c)
    if (cols.data()[c] < 0 || cols.data()[c] >= kq)
      throw std::invalid_argument("int8_vnni_columns: column out of range");
  int8_vnni_columns(wv.data(), kq, n, scale.data(), cols.data(), n_cols, wot.data());
}

}  // namespace

void bind_int8(nb::module_& m) {
  m.def("int8_quantize_rows", &quantize_rows, kKernelCall, "x"_a, "outlier_cols"_a, "q"_a,
        "scale"_a);
  m.def("int8_widen", &widen, kKernelCall, "a"_a, "q"_a);
  m.def("int8_gemm_f32", &gemm_f32, kKernelCall, "xq"_a, "wp"_a, "n"_a, "row_scale"_a,
        "col_scale"_a, "bias"_a.none(), "addend"_a.none(), "xo"_a.none(), "wot"_a.none(), "out"_a);
  m.def("int8_gemm_i32", &gemm_i32, kKernelCall, "xq"_a, "wp"_a, "n"_a, "out"_a);
  m.def("int8_vnni_enabled", &int8_vnni_enabled);
  m.def("int8_outlier_columns", &outlier_columns, "x"_a, "threshold"_a);
  m.def("int8_vnni_columns", &vnni_columns, kKernelCall, "wv"_a, "n"_a, "scale"_a, "cols"_a,
        "wot"_a);
  m.def("int8_matmul_vnni", &matmul_vnni, kKernelCall, "x"_a, "outlier_cols"_a, "wv"_a, "corr"_a,
        "n"_a, "col_scale"_a, "bias"_a.none(), "addend"_a.none(), "xo"_a.none(), "wot"_a.none(),
        "out"_a);
  m.def("int8_matmul_vnni_auto", &matmul_vnni_auto, "x"_a, "threshold"_a, "max_cols"_a,
        "max_work"_a, "wv"_a, "corr"_a, "n"_a, "col_scale"_a, "bias"_a.none(), "out"_a);
  m.def("int8_gemm_vnni_i32", &gemm_vnni_i32, kKernelCall, "a"_a, "wv"_a, "corr"_a, "n"_a, "out"_a);
}

}  // namespace matkern
