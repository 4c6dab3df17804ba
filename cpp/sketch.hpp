// Sketching kernels on the CPU: the SRHT of a tall matrix's rows (sign, zero padding, FWHT
// and row sampling fused per block of columns) and CountSketch of dense or CSR matrices from
// either side, in time proportional to the entries read. The random signs and buckets come
// from the counter-based hash of python/matkern/reference/sketch.py (stream_hash).
#pragma once
#include <cstdint>

namespace matkern {

// splitmix64 finalizer and the per-stream hash of index i (same constants as randproj).
inline uint64_t sketch_mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z;
}
inline uint64_t sketch_stream_base(uint64_t key, uint64_t stream) {
  return sketch_mix(key + stream * 0xD1B54A32D192ED03ull);
}
inline uint64_t sketch_hash(uint64_t base, int64_t i) {
  return sketch_mix(base + uint64_t(i + 1) * 0x9E3779B97F4A7C15ull);
}

// out (k x c) = scale * (H D pad(a))[rows]: a (m x c) C-contiguous, D the signs of stream 1,
// H of order mpad (a power of two >= m), rows (k) in [0, mpad).
template <typename T>
void srht_left(const T* a, int64_t m, int64_t c, uint64_t key, const int64_t* rows, int64_t k,
               int64_t mpad, double scale, T* out);

// out (k x c) = S a for the CountSketch of a's m rows (stream 2): a dense (m x c), or CSR
// (indptr m + 1, indices in [0, c)).
template <typename T>
void countsketch_left_dense(const T* a, int64_t m, int64_t c, uint64_t key, int64_t k, T* out);
template <typename T>
void countsketch_left_csr(const int64_t* indptr, const int32_t* indices, const T* data, int64_t m,
                          int64_t c, uint64_t key, int64_t k, T* out);

// out (m x l) = a S^T for the CountSketch of a's n columns: dense a (m x n) or CSR.
template <typename T>
void countsketch_right_dense(const T* a, int64_t m, int64_t n, uint64_t key, int64_t l, T* out);
template <typename T>
void countsketch_right_csr(const int64_t* indptr, const int32_t* indices, const T* data, int64_t m,
                           int64_t n, uint64_t key, int64_t l, T* out);

// out (n x n, float64, C order) = a^T a for CSR a (m x n; rows in any column order, repeated
// columns summed), in time proportional to the sum over rows of nnz(row)^2. Each output row
// is summed by one piece over a's rows in order: the result does not depend on the team size.
template <typename T>
void csr_gram(const int64_t* indptr, const int32_t* indices, const T* data, int64_t m, int64_t n,
              double* out);

// One LSQR step's two products with a dense A in one pass over A (the solver is bound by
// reading A): y[:, k] = A t[k] + c[k] w[:, k] and z[k] = A^T y[:, k], where a is (m x n)
// C-contiguous, t (r x n) holds r right-hand sides as rows, c has r entries, w and y are
// (m x r), z is (r x n); all but a are float64 and sums run in float64. Each row of A is read once
// from memory and used twice from L1. Rows are summed in fixed pieces whose count depends on m
// only, added in piece order: the result does not depend on the team size.
template <typename T>
void dense_lsqr_pass(const T* a, int64_t m, int64_t n, const double* t, int64_t r, const double* w,
                     const double* c, double* y, double* z);

#ifdef MATKERN_BUILD_AVX2
namespace avx2 {  // rows [i0, i1) of the pass into zp (r x n, zeroed here): sketch_lsqr_avx2.cpp
void lsqr_piece(const float* a, int64_t i0, int64_t i1, int64_t n, const double* t, int64_t r,
                const double* w, const double* c, double* y, double* zp);
void lsqr_piece(const double* a, int64_t i0, int64_t i1, int64_t n, const double* t, int64_t r,
                const double* w, const double* c, double* y, double* zp);
}  // namespace avx2
#endif

}  // namespace matkern
