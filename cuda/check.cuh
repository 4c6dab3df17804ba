// Error checking shared by the .cu files: every CUDA call and launch becomes an exception.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include <stdexcept>
#include <string>

#define MATKERN_CUDA_CHECK(call)                                                 \
  do {                                                                           \
    cudaError_t err_ = (call);                                                   \
    if (err_ != cudaSuccess)                                                     \
      throw std::runtime_error(std::string("CUDA error in ") + __func__ + ": " + \
                               cudaGetErrorString(err_));                        \
  } while (0)

#define MATKERN_CUDA_LAUNCH_CHECK() MATKERN_CUDA_CHECK(cudaGetLastError())

namespace matkern::cuda {
inline cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }
inline unsigned blocks_for(long long n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}
}  // namespace matkern::cuda
