// Plain C++ declarations shared by the CUDA launchers (each family declares its own in
// cuda/<family>.hpp the same way): included by the binding files (host compiler,
// no CUDA header) and by the .cu files that define them. Streams travel as integers (the
// cudaStream_t handle that CuPy's current stream gives), pointers as raw device pointers.
// Launchers throw std::runtime_error on a CUDA error.
#pragma once
#include <cstdint>
#include <string>

namespace matkern::cuda {

// ---- info (info.cu)
struct DeviceInfo {
  int count = 0;           // usable devices; 0 when none
  std::string error;       // why none is usable (driver missing, no device), else empty
  std::string name;        // device 0
  int major = 0, minor = 0;
  int runtime_version = 0;
  int driver_version = 0;
};
DeviceInfo device_info();

}  // namespace matkern::cuda
