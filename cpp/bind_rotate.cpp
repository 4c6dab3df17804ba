// Bindings of the rotated-row kernels (rotate_quant.hpp): rotate + int8 quantize, rotate into
// padded float32 rows, and the FJLT over an m * 2^k transform. The Python layer (rotation.py,
// hadamard.py) has checked shapes and dtypes; these checks are the second line.
#include "bind_common.hpp"
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
  mod.def("rotate_rows_padded", &rotate_padded, kKernelCall, "x"_a, "signs"_a.none(), "ht"_a.none(),
          "m"_a, "p"_a, "round_f16"_a, "out"_a);
  def_fjlt<float>(mod);
  def_fjlt<double>(mod);
}

}  // namespace matkern
