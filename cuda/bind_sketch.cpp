// CUDA bindings of the sketching family: CountSketch from either side, dense or CSR. The
// Python layer validated the index arrays (as_mat); these checks guard the shapes only.
#include "bind_common.hpp"
#include "sketch.hpp"

namespace matkern::cuda {
namespace {

template <typename T>
void cs_left_dense(darr<const T> a, uint64_t key, darr<T> out, std::uintptr_t stream) {
  if (a.ndim() != 2 || out.ndim() != 2 || out.shape(1) != a.shape(1) || out.shape(0) < 1)
    throw std::invalid_argument("countsketch_left_dense: inconsistent shapes");
  countsketch_left_dense(a.data(), a.shape(0), a.shape(1), key, out.shape(0), out.data(), stream);
}

template <typename T>
void cs_left_csr(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const T> data,
                 uint64_t key, darr<T> out, std::uintptr_t stream) {
  const int64_t m = check_csr(indptr, indices, data, "countsketch_left_csr: inconsistent shapes");
  if (out.ndim() != 2 || out.shape(0) < 1) throw std::invalid_argument("countsketch_left_csr: out");
  countsketch_left_csr(indptr.data(), indices.data(), data.data(), m, out.shape(1), key,
                       out.shape(0), out.data(), stream);
}

template <typename T>
void cs_right_dense(darr<const T> a, uint64_t key, darr<T> out, std::uintptr_t stream) {
  if (a.ndim() != 2 || out.ndim() != 2 || out.shape(0) != a.shape(0) || out.shape(1) < 1)
    throw std::invalid_argument("countsketch_right_dense: inconsistent shapes");
  countsketch_right_dense(a.data(), a.shape(0), a.shape(1), key, out.shape(1), out.data(), stream);
}

template <typename T>
void cs_right_csr(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const T> data,
                  int64_t n, uint64_t key, darr<T> out, std::uintptr_t stream) {
  const int64_t m = check_csr(indptr, indices, data, "countsketch_right_csr: inconsistent shapes");
  if (out.ndim() != 2 || out.shape(0) != size_t(m) || out.shape(1) < 1)
    throw std::invalid_argument("countsketch_right_csr: out");
  countsketch_right_csr(indptr.data(), indices.data(), data.data(), m, n, key, out.shape(1),
                        out.data(), stream);
}

template <typename T>
void def_typed(nb::module_& m) {
  m.def("countsketch_left_dense", &cs_left_dense<T>, kLaunchCall, "a"_a, "key"_a, "out"_a,
        "stream"_a);
  m.def("countsketch_left_csr", &cs_left_csr<T>, kLaunchCall, "indptr"_a, "indices"_a, "data"_a,
        "key"_a, "out"_a, "stream"_a);
  m.def("countsketch_right_dense", &cs_right_dense<T>, kLaunchCall, "a"_a, "key"_a, "out"_a,
        "stream"_a);
  m.def("countsketch_right_csr", &cs_right_csr<T>, kLaunchCall, "indptr"_a, "indices"_a, "data"_a,
        "n"_a, "key"_a, "out"_a, "stream"_a);
}

}  // namespace

void bind_sketch(nb::module_& m) {
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern::cuda
