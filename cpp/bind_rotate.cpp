// Bindings of the rotated-row kernels (rotate_quant.hpp): rotate + int8 quantize, rotate into
// padded float32 rows, and the FJLT over an m * 2^k transform. The Python layer (rotation.py,
// hadamard.py) has checked shapes and dtypes; these checks are the second line.
#include <memory>

#include "bind_common.hpp"
#include "int8.hpp"
#include "rotate_quant.hpp"

namespace matkern {
namespace {

// The rotation's arrays: signs (n) or None, ht (m x mp, H_m's padded columns) or None for
// m = 1; n = m * p.
template <typename T>
RowRotation<T> make_rotation(const std::optional<carr<const T>>& signs,
                             const std::optional<carr<const T>>& ht, int64_t m, int64_t p,
                             bool normalize, bool round_f16, const char* fn) {
  RowRotation<T> r;
  r.m = m;
  r.p = p;
  r.mp = (m + 7) / 8 * 8;
  r.normalize = normalize;
  r.round_f16 = round_f16;
  const auto fail = [fn] {
    throw std::invalid_argument(std::string(fn) + ": inconsistent shapes");
  };
  if (m < 1 || p < 1 || (p & (p - 1)) != 0) fail();
  if (m > 1 && (!ht || int64_t(ht->size()) != m * r.mp)) fail();
  if (signs && int64_t(signs->size()) != m * p) fail();
  r.signs = data_or_null(signs);
  r.ht = m > 1 ? ht->data() : nullptr;
  return r;
}

using opt_f32 = std::optional<carr<const float>>;

void rotate_quantize(carr<const float> x, opt_f32 signs, opt_f32 ht, int64_t m, int64_t p,
                     bool round_f16, carr<int16_t> q, carr<float> scale) {
  const char* fn = "rotate_quantize_int8";
  const int64_t rows = x.shape(0), k = x.shape(1), kp = q.shape(1);
  const RowRotation<float> r = make_rotation<float>(signs, ht, m, p, true, round_f16, fn);
  if (k != m * p || q.shape(0) != size_t(rows) || scale.size() != size_t(rows) || kp < k || kp % 2)
    throw std::invalid_argument("rotate_quantize_int8: inconsistent shapes");
  rotate_quantize_int8(x.data(), rows, k, kp, r, q.data(), scale.data());
}

// int8_matmul of a rotated weight on the vpdpbusd path: rotate + quantize x into u8 codes,
// then the VNNI GEMM and epilogue into out, the int16-pair layout never touched. Returns
// false (out unwritten) when threshold > 0 and some row's absmax is not below it (or not
// finite): outlier columns may exist then, and the caller takes the unfused route.
bool rotate_matmul_vnni(carr<const float> x, opt_f32 signs, opt_f32 ht, int64_t m, int64_t p,
                        bool round_f16, double threshold, carr<const int8_t> wv,
                        carr<const int32_t> corr, int64_t n, carr<const float> col_scale,
                        opt_f32 bias, carr<float> out) {
  const char* fn = "rotate_int8_matmul_vnni";
  if (!int8_vnni_enabled())
    throw std::invalid_argument("rotate_int8_matmul_vnni: path not enabled");
  const int64_t rows = x.shape(0), k = x.shape(1);
  const RowRotation<float> r = make_rotation<float>(signs, ht, m, p, true, round_f16, fn);
  const int64_t n16 = (n + 15) / 16 * 16;
  if (k != m * p || n < 1 || int64_t(corr.size()) != n16 || int64_t(wv.size()) % n16 ||
      int64_t(out.shape(0)) != rows || int64_t(out.shape(1)) != n ||
      col_scale.size() != size_t(n) || (bias && bias->size() != size_t(n)))
    throw std::invalid_argument("rotate_int8_matmul_vnni: inconsistent shapes");
  const int64_t kq = int64_t(wv.size()) / n16;
  if (kq % 4 || kq < k || kq >= k + 4)
    throw std::invalid_argument("rotate_int8_matmul_vnni: weight K");
  if (rows == 0) return true;
  const int64_t ldx = int8_vnni_ldx(kq);
  std::unique_ptr<uint8_t[]> q(new uint8_t[size_t(rows * ldx)]);
  std::unique_ptr<float[]> sx(new float[size_t(rows)]);
  rotate_quantize_int8_u8(x.data(), rows, k, ldx, r, q.get(), sx.get());
  if (threshold > 0) {  // every |x| < threshold in every row <=> no outlier column
    const float t = float(threshold);
    for (int64_t i = 0; i < rows; ++i)
      if (!(sx[size_t(i)] < t)) return false;  // NaN compares false
  }
  Int8Epilogue ep;
  ep.row_scale = sx.get();
  ep.col_scale = col_scale.data();
  ep.bias = data_or_null(bias);
  ep.out_f32 = out.data();
  Int8VnniGemm g;
  g.xq = q.get(), g.ldx = ldx, g.m = rows, g.w = wv.data(), g.kq = kq, g.n = n;
  g.corr = corr.data();
  int8_gemm_vnni(g, ep);
  return true;
}

void rotate_padded(carr<const float> x, opt_f32 signs, opt_f32 ht, int64_t m, int64_t p,
                   bool round_f16, carr<float> out) {
  const char* fn = "rotate_rows_padded";
  const int64_t rows = x.shape(0), k = x.shape(1), ldo = out.shape(1);
  const RowRotation<float> r = make_rotation<float>(signs, ht, m, p, true, round_f16, fn);
  if (k != m * p || out.shape(0) != size_t(rows) || ldo < k)
    throw std::invalid_argument("rotate_rows_padded: inconsistent shapes");
  rotate_rows_padded(x.data(), rows, k, ldo, r, out.data());
}

// P (k x n') as CSR; x (rows, d), d <= n' = m * p; unnormalized transform (scale folds it).
template <typename T>
void fjlt_mixed(carr<const T> x, carr<const T> signs, std::optional<carr<const T>> ht, int64_t m,
                int64_t p, carr<const int64_t> indptr, carr<const int32_t> indices,
                carr<const T> pdata, double scale, carr<T> out) {
  const char* fn = "fjlt_mixed_transform";
  const int64_t rows = x.shape(0), d = x.shape(1), k = out.shape(1);
  const RowRotation<T> r = make_rotation<T>(std::nullopt, ht, m, p, false, false, fn);
  const Csr c = check_csr(indptr, indices, pdata, k, "fjlt_mixed_transform: inconsistent shapes");
  c.check_structure(fn, m * p);
  if (out.shape(0) != size_t(rows) || int64_t(signs.size()) != d || d > m * p)
    throw std::invalid_argument("fjlt_mixed_transform: inconsistent shapes");
  RowRotation<T> rs = r;
  rs.signs = signs.data();  // d signs: only the first d entries of a row are read
  fjlt_mixed_transform<T>(x.data(), rows, d, rs, c.indptr, c.indices, pdata.data(), k, scale,
                          out.data());
}

template <typename T>
void def_fjlt(nb::module_& mod) {
  mod.def("fjlt_mixed_transform", &fjlt_mixed<T>, kKernelCall, "x"_a, "signs"_a, "ht"_a.none(),
          "m"_a, "p"_a, "indptr"_a, "indices"_a, "pdata"_a, "scale"_a, "out"_a);
}

}  // namespace

void bind_rotate(nb::module_& mod) {
  mod.def("rotate_quantize_int8", &rotate_quantize, kKernelCall, "x"_a, "signs"_a.none(),
          "ht"_a.none(), "m"_a, "p"_a, "round_f16"_a, "q"_a, "scale"_a);
  mod.def("rotate_int8_matmul_vnni", &rotate_matmul_vnni, kKernelCall, "x"_a, "signs"_a.none(),
          "ht"_a.none(), "m"_a, "p"_a, "round_f16"_a, "threshold"_a, "wv"_a, "corr"_a, "n"_a,
          "col_scale"_a, "bias"_a.none(), "out"_a);
  mod.def("rotate_rows_padded", &rotate_padded, kKernelCall, "x"_a, "signs"_a.none(), "ht"_a.none(),
          "m"_a, "p"_a, "round_f16"_a, "out"_a);
  def_fjlt<float>(mod);
  def_fjlt<double>(mod);
}

}  // namespace matkern
