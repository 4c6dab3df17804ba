// Whether a GPU is usable now, asked of the statically linked runtime; never throws.
#include "check.cuh"
#include "launch.hpp"

#include <string>

namespace matkern::cuda {
DeviceInfo device_info() {
  DeviceInfo info;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // With no driver at all the runtime reports "driver version is insufficient": say what
    // is really missing (driver version 0 means no driver was found).
    if (info.driver_version == 0) {
      info.error = "no NVIDIA driver or GPU found";
    } else if (err == cudaErrorInsufficientDriver) {
      info.error = "the NVIDIA driver (CUDA " + std::to_string(info.driver_version / 1000) + "." +
                   std::to_string(info.driver_version % 1000 / 10) +
                   ") is older than the CUDA runtime matkern was built with (" +
                   std::to_string(info.runtime_version / 1000) + "." +
                   std::to_string(info.runtime_version % 1000 / 10) + ")";
    } else if (err == cudaErrorNoDevice) {
      info.error = "no NVIDIA GPU found";
    } else {
      info.error = cudaGetErrorString(err);
    }
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return info;
  }
  info.count = count;
  if (count == 0) {
    info.error = "no CUDA device found";
    return info;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    info.name = prop.name;
    info.major = prop.major;
    info.minor = prop.minor;
  }
  return info;
}
}  // namespace matkern::cuda
