// Build facts and whether a GPU is usable now, for matkern.show_config().
#include <nanobind/stl/tuple.h>

#include "bind_common.hpp"

#ifndef MATKERN_CUDA_ARCHS
#define MATKERN_CUDA_ARCHS ""
#endif
#ifndef MATKERN_CUDA_VERSION
#define MATKERN_CUDA_VERSION ""
#endif

namespace matkern::cuda {
void bind_info(nb::module_& m) {
  m.def("architectures", [] { return std::string(MATKERN_CUDA_ARCHS); });
  m.def("nvcc_version", [] { return std::string(MATKERN_CUDA_VERSION); });
  m.def("device_info", [] {
    DeviceInfo i = device_info();
    nb::dict d;
    d["count"] = i.count;
    d["error"] = i.error;
    d["name"] = i.name;
    d["compute_capability"] = nb::make_tuple(i.major, i.minor);
    d["runtime_version"] = i.runtime_version;
    d["driver_version"] = i.driver_version;
    return d;
  });
}
}  // namespace matkern::cuda
