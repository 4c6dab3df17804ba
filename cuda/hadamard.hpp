// Launchers of the Walsh-Hadamard family (defined in hadamard.cu; plain C++ declarations).
#pragma once
#include <cstdint>

namespace matkern::cuda {

// In place on a (outer, n, inner) C-contiguous array
void fwht_f32(float* x, int64_t outer, int64_t n, int64_t inner, bool normalize,
              std::uintptr_t stream);
void fwht_f64(double* x, int64_t outer, int64_t n, int64_t inner, bool normalize,
              std::uintptr_t stream);
// z (rows, dpad) is scratch; out (rows, k). Same formula as the CPU fjlt_transform.
void fjlt_f32(const float* x, int64_t rows, int64_t d, int64_t dpad, const float* signs,
              const int64_t* p_indptr, const int32_t* p_indices, const float* p_data, int64_t k,
              double scale, float* z, float* out, std::uintptr_t stream);
void fjlt_f64(const double* x, int64_t rows, int64_t d, int64_t dpad, const double* signs,
              const int64_t* p_indptr, const int32_t* p_indices, const double* p_data, int64_t k,
              double scale, double* z, double* out, std::uintptr_t stream);

}  // namespace matkern::cuda
