// Bindings of the sketching family: SRHT of a tall matrix's rows and CountSketch from either
// side, dense or CSR. The Python layer (python/matkern/sketch.py) checked every argument;
// these checks only guard the shapes the kernels index with.
#include "bind_common.hpp"
#include "sketch.hpp"

namespace matkern {
namespace {

template <typename T>
void srht(carr<const T> a, uint64_t key, carr<const int64_t> rows, int64_t mpad, double scale,
          carr<T> out) {
  const int64_t m = a.shape(0), c = a.shape(1), k = rows.size();
  if (a.ndim() != 2 || out.ndim() != 2 || out.shape(0) != size_t(k) || out.shape(1) != size_t(c) ||
      m > mpad || (mpad & (mpad - 1)) != 0)
    throw std::invalid_argument("srht_left: inconsistent shapes");
  for (int64_t r = 0; r < k; ++r)
    if (rows.data()[r] < 0 || rows.data()[r] >= mpad)
      throw std::invalid_argument("srht_left: row index out of range");
  srht_left<T>(a.data(), m, c, key, rows.data(), k, mpad, scale, out.data());
}

template <typename T>
void cs_left_dense(carr<const T> a, uint64_t key, carr<T> out) {
  if (a.ndim() != 2 || out.ndim() != 2 || out.shape(1) != a.shape(1) || out.shape(0) < 1)
    throw std::invalid_argument("countsketch_left_dense: inconsistent shapes");
  countsketch_left_dense<T>(a.data(), a.shape(0), a.shape(1), key, out.shape(0), out.data());
}

template <typename T>
void cs_left_csr(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data,
                 uint64_t key, carr<T> out) {
  const Csr a = check_csr(indptr, indices, data, "countsketch_left_csr: inconsistent shapes");
  if (out.ndim() != 2 || out.shape(0) < 1) throw std::invalid_argument("countsketch_left_csr: out");
  a.check_structure("countsketch_left_csr", int64_t(out.shape(1)));
  countsketch_left_csr<T>(a.indptr, a.indices, data.data(), a.rows, out.shape(1), key, out.shape(0),
                          out.data());
}

template <typename T>
void cs_right_dense(carr<const T> a, uint64_t key, carr<T> out) {
  if (a.ndim() != 2 || out.ndim() != 2 || out.shape(0) != a.shape(0) || out.shape(1) < 1)
    throw std::invalid_argument("countsketch_right_dense: inconsistent shapes");
  countsketch_right_dense<T>(a.data(), a.shape(0), a.shape(1), key, out.shape(1), out.data());
}

template <typename T>
void cs_right_csr(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data,
                  int64_t n, uint64_t key, carr<T> out) {
  const Csr a = check_csr(indptr, indices, data, "countsketch_right_csr: inconsistent shapes");
  if (out.ndim() != 2 || out.shape(0) != size_t(a.rows) || out.shape(1) < 1)
    throw std::invalid_argument("countsketch_right_csr: out");
  a.check_structure("countsketch_right_csr", n);
  countsketch_right_csr<T>(a.indptr, a.indices, data.data(), a.rows, n, key, out.shape(1),
                           out.data());
}

template <typename T>
void gram_csr(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data,
              carr<double> out) {
  const Csr a = check_csr(indptr, indices, data, "csr_gram: inconsistent shapes");
  if (out.ndim() != 2 || out.shape(0) != out.shape(1)) throw std::invalid_argument("csr_gram: out");
  const int64_t n = int64_t(out.shape(0));
  a.check_structure("csr_gram", n);
  csr_gram<T>(a.indptr, a.indices, data.data(), a.rows, n, out.data());
}

template <typename T>
void lsqr_pass(carr<const T> a, carr<const double> t, carr<const double> w, carr<const double> c,
               carr<double> y, carr<double> z) {
  if (a.ndim() != 2 || t.ndim() != 2 || w.ndim() != 2 || y.ndim() != 2 || z.ndim() != 2)
    throw std::invalid_argument("dense_lsqr_pass: arrays must be 2-D");
  const size_t m = a.shape(0), n = a.shape(1), r = t.shape(0);
  if (t.shape(1) != n || w.shape(0) != m || w.shape(1) != r || y.shape(0) != m || y.shape(1) != r ||
      z.shape(0) != r || z.shape(1) != n || c.ndim() != 1 || c.shape(0) != r)
    throw std::invalid_argument("dense_lsqr_pass: inconsistent shapes");
  dense_lsqr_pass<T>(a.data(), int64_t(m), int64_t(n), t.data(), int64_t(r), w.data(), c.data(),
                     y.data(), z.data());
}

template <typename T>
void def_typed(nb::module_& m) {
  m.def("srht_left", &srht<T>, kKernelCall, "a"_a, "key"_a, "rows"_a, "mpad"_a, "scale"_a, "out"_a);
  m.def("countsketch_left_dense", &cs_left_dense<T>, kKernelCall, "a"_a, "key"_a, "out"_a);
  m.def("countsketch_left_csr", &cs_left_csr<T>, kKernelCall, "indptr"_a, "indices"_a, "data"_a,
        "key"_a, "out"_a);
  m.def("countsketch_right_dense", &cs_right_dense<T>, kKernelCall, "a"_a, "key"_a, "out"_a);
  m.def("countsketch_right_csr", &cs_right_csr<T>, kKernelCall, "indptr"_a, "indices"_a, "data"_a,
        "n"_a, "key"_a, "out"_a);
  m.def("csr_gram", &gram_csr<T>, kKernelCall, "indptr"_a, "indices"_a, "data"_a, "out"_a);
  m.def("dense_lsqr_pass", &lsqr_pass<T>, kKernelCall, "a"_a, "t"_a, "w"_a, "c"_a, "y"_a, "z"_a);
}

}  // namespace

void bind_sketch(nb::module_& m) {
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern
