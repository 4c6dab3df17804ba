// The CUDA extension module: one call per kernel family (bindings in cuda/bind_<family>.cpp).
#include "bind_common.hpp"

NB_MODULE(_cuda, m) {
  m.doc() = "matkern CUDA kernels (internal; use the matkern package)";
  matkern::cuda::bind_info(m);
  matkern::cuda::bind_hadamard(m);
  matkern::cuda::bind_spmm(m);
  matkern::cuda::bind_int8(m);
  matkern::cuda::bind_lut(m);
  matkern::cuda::bind_gram(m);
  matkern::cuda::bind_randproj(m);
  matkern::cuda::bind_svd(m);
  matkern::cuda::bind_sketch(m);
  matkern::cuda::bind_rotate(m);
}
