// The CPU extension module: one call per kernel family (bindings in cpp/bind_<family>.cpp).
#include "bind_common.hpp"

NB_MODULE(_cpu, m) {
  m.doc() = "matkern C++ CPU kernels (internal; use the matkern package)";
  matkern::bind_info(m);
  matkern::bind_hadamard(m);
  matkern::bind_spmm(m);
  matkern::bind_int8(m);
  matkern::bind_lut(m);
  matkern::bind_gram(m);
  matkern::bind_randproj(m);
  matkern::bind_svd(m);
  matkern::bind_sketch(m);
  matkern::bind_rotate(m);
  matkern::bind_matfun(m);
}
