// Shared helpers for the CUDA binding files (host compiler only: no CUDA header here).
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>

#include "launch.hpp"

namespace nb = nanobind;

namespace matkern::cuda {
template <typename T>
using darr = nb::ndarray<T, nb::device::cuda, nb::c_contig>;

void bind_info(nb::module_& m);
void bind_hadamard(nb::module_& m);
void bind_spmm(nb::module_& m);
void bind_int8(nb::module_& m);
void bind_lut(nb::module_& m);
void bind_gram(nb::module_& m);
void bind_randproj(nb::module_& m);
void bind_svd(nb::module_& m);
}  // namespace matkern::cuda
