// CUDA bindings of the svd family (kernels not written yet: see its issue).
#include "bind_common.hpp"

namespace matkern::cuda {
void bind_svd(nb::module_&) {}
}  // namespace matkern::cuda
