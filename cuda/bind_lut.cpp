// CUDA bindings of the lut family (kernels not written yet: see its issue).
#include "bind_common.hpp"

namespace matkern::cuda {
void bind_lut(nb::module_&) {}
}  // namespace matkern::cuda
