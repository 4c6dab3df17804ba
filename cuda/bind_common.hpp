// Shared helpers for the CUDA binding files (host compiler only: no CUDA header here): device
// array aliases, the launch call guard, the CSR checker and the family registration list.
//
// A binding function is the launcher call and its argument checks, nothing else:
//   m.def("name", &fn, kLaunchCall, "x"_a, "bias"_a.none(), ..., "stream"_a);
// kLaunchCall runs the whole function (checks included) with the GIL released; the checks only
// read array shapes, and what they throw reaches Python after the guard has unwound
// (std::invalid_argument -> ValueError). Every argument is named; an optional array is
// std::optional<darr<T>> with .none().
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <stdexcept>

#include "launch.hpp"

namespace nb = nanobind;

namespace matkern::cuda {
using namespace nb::literals;

template <typename T>
using darr = nb::ndarray<T, nb::device::cuda, nb::c_contig>;

// The call guard of every launcher binding (see above).
inline constexpr nb::call_guard<nb::gil_scoped_release> kLaunchCall{};

// An optional array's data, or nullptr for None.
template <typename T>
T* data_or_null(const std::optional<darr<T>>& a) {
  return a ? a->data() : nullptr;
}

// The CSR checker of the CUDA bindings: a compressed matrix arrives as indptr, indices and a
// values array (any element type). check_csr checks that indptr has rows + 1 entries (without
// rows: at least one) and that indices and values have the same length, throws
// std::invalid_argument(error) otherwise, and returns the row count. The arrays live on the
// device, so their contents are the Python layer's to check.
template <typename I, typename V>
int64_t check_csr(const darr<const int64_t>& indptr, const darr<I>& indices, const darr<V>& values,
                  const char* error) {
  if (indptr.size() < 1 || indices.size() != values.size()) throw std::invalid_argument(error);
  return int64_t(indptr.size()) - 1;
}
template <typename I, typename V>
int64_t check_csr(const darr<const int64_t>& indptr, const darr<I>& indices, const darr<V>& values,
                  int64_t rows, const char* error) {
  if (int64_t(indptr.size()) != rows + 1) throw std::invalid_argument(error);
  return check_csr(indptr, indices, values, error);
}

void bind_info(nb::module_& m);
void bind_hadamard(nb::module_& m);
void bind_spmm(nb::module_& m);
void bind_int8(nb::module_& m);
void bind_lut(nb::module_& m);
void bind_gram(nb::module_& m);
void bind_randproj(nb::module_& m);
void bind_svd(nb::module_& m);
void bind_sketch(nb::module_& m);
void bind_rotate(nb::module_& m);
}  // namespace matkern::cuda
