// Bindings of the spmm family (kernels not written yet: see its issue).
#include "bind_common.hpp"

namespace matkern {
void bind_spmm(nb::module_&) {}
}  // namespace matkern
