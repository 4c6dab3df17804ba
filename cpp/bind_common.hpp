// Shared helpers for the CPU binding files: array aliases, the kernel call guard, the CSR
// checker and the family registration list.
//
// A binding function is the kernel call and its argument checks, nothing else:
//   m.def("name", &fn, kKernelCall, "x"_a, "bias"_a.none(), ...);
// kKernelCall runs the whole function (checks included) with the GIL released and a thread
// grant held (KernelScope); the checks only read array shapes and host memory, and what they
// throw reaches Python after the guard has unwound (std::invalid_argument -> ValueError).
// Every argument is named; an optional array is std::optional<carr<T>> with .none().
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "threads.hpp"

namespace nb = nanobind;

namespace matkern {
using namespace nb::literals;

// C-contiguous CPU arrays of a fixed dtype, any shape. The Python layer has already checked
// dtype, shape and contiguity and worded any error; these types are a second line of defence.
template <typename T>
using carr = nb::ndarray<T, nb::device::cpu, nb::c_contig>;

// The call guard of every kernel binding (see above).
inline constexpr nb::call_guard<KernelScope> kKernelCall{};

// An optional array's data, or nullptr for None.
template <typename T>
T* data_or_null(const std::optional<carr<T>>& a) {
  return a ? a->data() : nullptr;
}

// The CSR checker of the CPU bindings. A compressed matrix (CSR, or CSC read as the CSR of
// its transpose) arrives as indptr, indices and a values array (any element type). check_csr
// checks that indptr has rows + 1 entries (without rows: at least one, the count taken from
// indptr) and that indices and values have the same length, throws std::invalid_argument(error)
// otherwise, and returns the matrix's view. What a kernel needs beyond that (the end offset,
// sorted offsets, indices in range) is checked by the view's methods or by the Python layer.
struct Csr {
  const int64_t* indptr;
  const int32_t* indices;
  int64_t rows;
  int64_t nnz;  // entries of indices

  int64_t end() const { return indptr[rows]; }
  // indptr starts at 0, never decreases and ends within indices; every index lies in
  // [0, bound). Errors read "<fn>: ...". O(rows + nnz): for kernels that index their dense
  // operands with these arrays unchecked (svd).
  void check_structure(const char* fn, int64_t bound) const {
    const auto fail = [fn](const char* what) {
      throw std::invalid_argument(std::string(fn) + ": " + what);
    };
    if (indptr[0] != 0) fail("indptr must start at 0");
    for (int64_t r = 0; r < rows; ++r)
      if (indptr[r + 1] < indptr[r]) fail("indptr must be nondecreasing");
    if (end() > nnz) fail("indptr[-1] exceeds len(indices)");
    for (int64_t p = 0; p < end(); ++p)
      if (indices[p] < 0 || indices[p] >= bound) fail("index out of range");
  }
};

template <typename I, typename V>
Csr check_csr(const carr<const int64_t>& indptr, const carr<I>& indices, const carr<V>& values,
              const char* error) {
  if (indptr.size() < 1 || indices.size() != values.size()) throw std::invalid_argument(error);
  return Csr{indptr.data(), indices.data(), int64_t(indptr.size()) - 1, int64_t(indices.size())};
}
template <typename I, typename V>
Csr check_csr(const carr<const int64_t>& indptr, const carr<I>& indices, const carr<V>& values,
              int64_t rows, const char* error) {
  if (int64_t(indptr.size()) != rows + 1) throw std::invalid_argument(error);
  return check_csr(indptr, indices, values, error);
}

// One function per kernel family, each defined in cpp/bind_<family>.cpp.
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
void bind_matfun(nb::module_& m);
}  // namespace matkern
