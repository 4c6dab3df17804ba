// CUDA bindings of the randproj family (kernels not written yet: see its issue).
#include "bind_common.hpp"

namespace matkern::cuda {
void bind_randproj(nb::module_&) {}
}  // namespace matkern::cuda
