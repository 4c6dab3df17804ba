// CUDA bindings of the gram family (kernels not written yet: see its issue).
#include "bind_common.hpp"

namespace matkern::cuda {
void bind_gram(nb::module_&) {}
}  // namespace matkern::cuda
