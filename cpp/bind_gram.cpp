// Bindings of the gram family (kernels not written yet: see its issue).
#include "bind_common.hpp"

namespace matkern {
void bind_gram(nb::module_&) {}
}  // namespace matkern
