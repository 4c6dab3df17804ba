// Launchers of the gram family (defined in gram.cu; plain C++ declarations).
#pragma once
#include <cstdint>

namespace matkern::cuda {

// For each of the batch rows of x (batch, len) (complex data as its real view): F[b] =
// ||x_b||_2 accumulated in double without overflow (max pass first); when scale, x_b <- x_b *
// 2^-e[b] with e[b] the binary exponent of F[b] (exact barring underflow) and f[b] = ||x_b||
// after scaling; else e[b] = 0 and f[b] = F[b]. One block per row.
void gram_normalize_f32(float* x, int64_t batch, int64_t len, bool scale, int32_t* e, double* F,
                        double* f, std::uintptr_t stream);
void gram_normalize_f64(double* x, int64_t batch, int64_t len, bool scale, int32_t* e, double* F,
                        double* f, std::uintptr_t stream);

}  // namespace matkern::cuda
