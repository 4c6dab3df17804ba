// Per-matrix norms and exact power-of-two rescaling for the Gram iteration on the GPU: the
// step between two cuBLAS products, for the whole batch in one launch (one block a matrix).
#include <cmath>

#include "check.cuh"
#include "gram.hpp"

namespace matkern::cuda {
namespace {

constexpr int kThreads = 256;

template <typename Op>
__device__ double block_reduce(double v, double* sh, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? sh[lane] : op(0.0, 0.0);
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  v = sh[0];
  __syncthreads();
  return v;
}

struct Max {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};
struct Sum {
  __device__ double operator()(double a, double b) const { return a + b; }
};

template <typename R>
__global__ void __launch_bounds__(kThreads)
    normalize_kernel(R* __restrict__ x, long long len, bool scale, int32_t* __restrict__ e,
                     double* __restrict__ F, double* __restrict__ f) {
  __shared__ double sh[kThreads / 32];
  R* row = x + blockIdx.x * len;
  double mx = 0;
  for (long long l = threadIdx.x; l < len; l += kThreads) mx = fmax(mx, fabs(double(row[l])));
  mx = block_reduce(mx, sh, Max());
  if (mx == 0) {
    if (threadIdx.x == 0) {
      e[blockIdx.x] = 0;
      F[blockIdx.x] = 0;
      f[blockIdx.x] = 0;
    }
    return;
  }
  int p;
  frexp(mx, &p);
  const double sp = ldexp(1.0, -p);
  double ss = 0;
  for (long long l = threadIdx.x; l < len; l += kThreads) {
    const double v = double(row[l]) * sp;
    ss += v * v;
  }
  ss = block_reduce(ss, sh, Sum());
  int ex;
  frexp(sqrt(ss), &ex);
  const double Fv = ldexp(sqrt(ss), p);
  if (!scale) {
    if (threadIdx.x == 0) {
      e[blockIdx.x] = 0;
      F[blockIdx.x] = Fv;
      f[blockIdx.x] = Fv;
    }
    return;
  }
  ex += p;
  const double fac = ldexp(1.0, -ex);
  double s2 = 0;
  for (long long l = threadIdx.x; l < len; l += kThreads) {
    const R v = R(double(row[l]) * fac);
    row[l] = v;
    s2 += double(v) * double(v);
  }
  s2 = block_reduce(s2, sh, Sum());
  if (threadIdx.x == 0) {
    e[blockIdx.x] = ex;
    F[blockIdx.x] = Fv;
    f[blockIdx.x] = sqrt(s2);
  }
}

template <typename R>
void normalize_impl(R* x, int64_t batch, int64_t len, bool scale, int32_t* e, double* F, double* f,
                    cudaStream_t st) {
  if (batch == 0 || len == 0) return;
  if (batch > 2147483647LL) throw std::invalid_argument("gram_normalize: batch too large");
  normalize_kernel<R><<<unsigned(batch), kThreads, 0, st>>>(x, len, scale, e, F, f);
  MATKERN_CUDA_LAUNCH_CHECK();
}

}  // namespace

void gram_normalize_f32(float* x, int64_t batch, int64_t len, bool scale, int32_t* e, double* F,
                        double* f, std::uintptr_t stream) {
  normalize_impl<float>(x, batch, len, scale, e, F, f, as_stream(stream));
}
void gram_normalize_f64(double* x, int64_t batch, int64_t len, bool scale, int32_t* e, double* F,
                        double* f, std::uintptr_t stream) {
  normalize_impl<double>(x, batch, len, scale, e, F, f, as_stream(stream));
}

}  // namespace matkern::cuda
