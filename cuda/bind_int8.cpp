// CUDA bindings of the int8 family (kernels not written yet: see its issue).
#include "bind_common.hpp"

namespace matkern::cuda {
void bind_int8(nb::module_&) {}
}  // namespace matkern::cuda
