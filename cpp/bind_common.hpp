// Shared helpers for the CPU binding files: array aliases and the family registration list.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <cstdint>

namespace nb = nanobind;

namespace matkern {
// C-contiguous CPU arrays of a fixed dtype, any shape. The Python layer has already checked
// dtype, shape and contiguity and worded any error; these types are a second line of defence.
template <typename T>
using carr = nb::ndarray<T, nb::device::cpu, nb::c_contig>;
template <typename T>
using anyarr = nb::ndarray<T, nb::device::cpu>;

// One function per kernel family, each defined in cpp/bind_<family>.cpp.
void bind_info(nb::module_& m);
void bind_hadamard(nb::module_& m);
void bind_spmm(nb::module_& m);
void bind_int8(nb::module_& m);
void bind_lut(nb::module_& m);
void bind_gram(nb::module_& m);
void bind_randproj(nb::module_& m);
void bind_svd(nb::module_& m);
}  // namespace matkern
