// Sparse kernels of the truncated-SVD updater on the GPU. One block per sparse row; threads run
// along the k columns of the dense factor, so each nonzero reads/writes one contiguous row.
#include "check.cuh"
#include "svd.hpp"

namespace matkern::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void gather_kernel(const int64_t* __restrict__ indptr,
                              const int32_t* __restrict__ indices, const double* __restrict__ data,
                              const double* __restrict__ B, int64_t k, double* __restrict__ out) {
  const int64_t j = blockIdx.x;
  const int64_t p0 = indptr[j], p1 = indptr[j + 1];
  for (int64_t t = threadIdx.x; t < k; t += blockDim.x) {
    double acc = 0.0;
    for (int64_t p = p0; p < p1; ++p) acc += data[p] * B[int64_t(indices[p]) * k + t];
    out[j * k + t] = acc;
  }
}

// Row i of G: zeroed, then each nonzero (i, col) of the row adds its column's products.
// Several threads may hit one G entry (two nonzeros of row i sharing a row j): atomics.
__global__ void gram_kernel(const int64_t* __restrict__ indptr, const int32_t* __restrict__ indices,
                            const double* __restrict__ data, int64_t c,
                            const int64_t* __restrict__ cptr, const int32_t* __restrict__ cidx,
                            const double* __restrict__ cval, double* __restrict__ G) {
  const int64_t i = blockIdx.x;
  double* g = G + i * c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) g[j] = 0.0;
  __syncthreads();
  for (int64_t p = indptr[i] + threadIdx.x; p < indptr[i + 1]; p += blockDim.x) {
    const double v = data[p];
    const int64_t col = indices[p];
    for (int64_t q = cptr[col]; q < cptr[col + 1]; ++q) atomicAdd(g + cidx[q], v * cval[q]);
  }
}

__global__ void scatter_kernel(const int32_t* __restrict__ rows, const int64_t* __restrict__ indptr,
                               const int32_t* __restrict__ indices, const double* __restrict__ data,
                               const double* __restrict__ Y, int64_t k, double* __restrict__ B) {
  const int64_t r = blockIdx.x;
  double* b = B + int64_t(rows[r]) * k;
  const int64_t p0 = indptr[r], p1 = indptr[r + 1];
  for (int64_t t = threadIdx.x; t < k; t += blockDim.x) {
    double acc = 0.0;
    for (int64_t p = p0; p < p1; ++p) acc += data[p] * Y[int64_t(indices[p]) * k + t];
    b[t] += acc;
  }
}

int threads_for_k(int64_t k) { return k >= kThreads ? kThreads : int((k + 31) / 32 * 32); }

}  // namespace

void svd_gather(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
                const double* B, int64_t k, double* out, std::uintptr_t stream) {
  if (c == 0 || k == 0) return;
  gather_kernel<<<unsigned(c), threads_for_k(k), 0, as_stream(stream)>>>(indptr, indices, data, B,
                                                                         k, out);
  MATKERN_CUDA_LAUNCH_CHECK();
}

void svd_gram(const int64_t* indptr, const int32_t* indices, const double* data, int64_t c,
              const int64_t* cptr, const int32_t* cidx, const double* cval, double* G,
              std::uintptr_t stream) {
  if (c == 0) return;
  gram_kernel<<<unsigned(c), kThreads, 0, as_stream(stream)>>>(indptr, indices, data, c, cptr, cidx,
                                                               cval, G);
  MATKERN_CUDA_LAUNCH_CHECK();
}

void svd_scatter(const int32_t* rows, const int64_t* indptr, const int32_t* indices,
                 const double* data, int64_t nr, const double* Y, int64_t k, double* B,
                 std::uintptr_t stream) {
  if (nr == 0 || k == 0) return;
  scatter_kernel<<<unsigned(nr), threads_for_k(k), 0, as_stream(stream)>>>(rows, indptr, indices,
                                                                           data, Y, k, B);
  MATKERN_CUDA_LAUNCH_CHECK();
}

}  // namespace matkern::cuda
