// AVX2/FMA row kernels of the CPU SpMM (compiled with -mavx2 -mfma; see cpp/simd.hpp).
// C-order B (one array, or row blocks in separate arrays): register blocking over B's columns,
// up to 8 vector accumulators (64 floats or 32 doubles of an output row) that stay in
// registers while the row's nonzeros stream by.
// Fortran-order B: per output column, 8 (float) or 4 (double) nonzeros at a time through
// gathers from that column, four columns at once.
#include <immintrin.h>

#include "spmm.hpp"

namespace matkern::avx2 {
namespace {

struct F32 {
  using T = float;
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V bcast(T x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static __m256i mask(int64_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(rem)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V mload(const T* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static void mstore(T* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
  // col[idx[0..7]]
  static V gather(const T* col, const int32_t* idx) {
    return _mm256_i32gather_ps(col, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)), 4);
  }
};

struct F64 {
  using T = double;
  using V = __m256d;
  static constexpr int W = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V bcast(T x) { return _mm256_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static __m256i mask(int64_t rem) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(rem), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static V mload(const T* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  static void mstore(T* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
  // col[idx[0..3]]
  static V gather(const T* col, const int32_t* idx) {
    return _mm256_i32gather_pd(col, _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx)), 8);
  }
};

// Row j of a blocked B (see RowAddress): loads from j's cell only, selected without a branch.
template <typename T>
inline const T* block_row(const RowAddress& a, int64_t j) {
  const RowCell& cell = a.cell[j >> a.shift];
  const bool h = j >= cell.bound;
  const int64_t base = h ? cell.base[1] : cell.base[0];
  const int64_t step = h ? cell.step[1] : cell.step[0];
  return reinterpret_cast<const T*>(base + j * step);
}

// Where the B row of nonzero p starts. Dense: one array. Looked: a blocked B, looked up at
// each use (one column pass, k <= 8 W: two lookups per nonzero, the row's and the
// prefetch's). Listed: a blocked B with more passes, the rows of a run of nonzeros [p0, ...)
// looked up once into ptr[] beforehand (see rows_blocks).
template <typename T>
struct Dense {
  const int32_t* idx;
  const T* b;
  int64_t ldb;
  const T* at(int64_t p) const { return b + int64_t(idx[p]) * ldb; }
};

template <typename T>
struct Looked {
  const int32_t* idx;
  RowAddress a;
  const T* at(int64_t p) const { return block_row<T>(a, idx[p]); }
};

template <typename T>
struct Listed {
  const T* const* ptr;
  int64_t p0;
  const T* at(int64_t p) const { return ptr[p - p0]; }
};

// One row, columns [c, c + NV*W) of a C-order B, over nonzeros [p0, p1); add: onto the
// partial sums already in o (a row's later runs), else from zero.
template <class S, int NV, class A>
inline void row_block(int64_t p0, int64_t p1, const typename S::T* val, const A b, int64_t c,
                      typename S::T* o, bool add) {
  typename S::V acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = add ? S::load(o + v * S::W) : S::zero();
  for (int64_t p = p0; p < p1; ++p) {
    const typename S::V a = S::bcast(val[p]);
    const typename S::T* row = b.at(p) + c;
    if (p + 4 < p1) _mm_prefetch(reinterpret_cast<const char*>(b.at(p + 4) + c), _MM_HINT_T0);
    for (int v = 0; v < NV; ++v) acc[v] = S::fma(a, S::load(row + v * S::W), acc[v]);
  }
  for (int v = 0; v < NV; ++v) S::store(o + v * S::W, acc[v]);
}

// The last k % W columns, masked.
template <class S, class A>
inline void row_tail(int64_t p0, int64_t p1, const typename S::T* val, const A b, int64_t c,
                     int64_t rem, typename S::T* o, bool add) {
  const __m256i m = S::mask(rem);
  typename S::V acc = add ? S::mload(o, m) : S::zero();
  for (int64_t p = p0; p < p1; ++p) acc = S::fma(S::bcast(val[p]), S::mload(b.at(p) + c, m), acc);
  S::mstore(o, m, acc);
}

// Every column of one output row o, over nonzeros [p0, p1).
template <class S, class A>
inline void row_cols(int64_t p0, int64_t p1, const typename S::T* val, const A b, int64_t k,
                     typename S::T* o, bool add) {
  constexpr int W = S::W;
  int64_t c = 0;
  for (; c + 8 * W <= k; c += 8 * W) row_block<S, 8>(p0, p1, val, b, c, o + c, add);
  if (c + 4 * W <= k) {
    row_block<S, 4>(p0, p1, val, b, c, o + c, add);
    c += 4 * W;
  }
  if (c + 2 * W <= k) {
    row_block<S, 2>(p0, p1, val, b, c, o + c, add);
    c += 2 * W;
  }
  if (c + W <= k) {
    row_block<S, 1>(p0, p1, val, b, c, o + c, add);
    c += W;
  }
  if (c < k) row_tail<S>(p0, p1, val, b, c, k - c, o + c, add);
}

template <class S>
void rows_c(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* idx,
            const typename S::T* val, const typename S::T* b, int64_t ldb, typename S::T* out,
            int64_t ldc) {
  const Dense<typename S::T> rows{idx, b, ldb};
  for (int64_t i = r0; i < r1; ++i)
    row_cols<S>(indptr[i], indptr[i + 1], val, rows, k, out + i * ldc, false);
}

// Blocked B (see RowAddress). One column pass: looked up at each use. More passes: a row's
// nonzeros in runs of up to 256, each run's B rows looked up first, every line of them
// prefetched as soon as its address is known (lookups in the FMA loops, 4 per nonzero at
// k = 128 floats, made the product 1.7x the one-array time; this loop without the prefetch,
// 1.2x; with it, 0.95-1.0x); the runs after the first add onto the output row (exact: the
// same sums, in the same order, as one run).
template <class S>
void rows_blocks(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* idx,
                 const typename S::T* val, const RowAddress& a, typename S::T* out, int64_t ldc) {
  using T = typename S::T;
  if (k <= 8 * S::W) {
    const Looked<T> rows{idx, a};
    for (int64_t i = r0; i < r1; ++i)
      row_cols<S>(indptr[i], indptr[i + 1], val, rows, k, out + i * ldc, false);
    return;
  }
  constexpr int64_t kRun = 256;
  const T* ptr[kRun];
  const int64_t lines = k * int64_t(sizeof(T)) > 512 ? 8 : (k * int64_t(sizeof(T)) + 63) / 64;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t p0 = indptr[i], p1 = indptr[i + 1];
    T* o = out + i * ldc;
    if (p0 == p1) row_cols<S>(p0, p1, val, Listed<T>{ptr, p0}, k, o, false);  // zeros
    for (int64_t s = p0; s < p1; s += kRun) {
      const int64_t e = p1 - s < kRun ? p1 : s + kRun;
      for (int64_t p = s; p < e; ++p) {
        ptr[p - s] = block_row<T>(a, idx[p]);
        const char* line = reinterpret_cast<const char*>(ptr[p - s]);
        for (int64_t l = 0; l < lines; ++l) _mm_prefetch(line + 64 * l, _MM_HINT_T0);
      }
      row_cols<S>(s, e, val, Listed<T>{ptr, s}, k, o, s > p0);
    }
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline double hsum(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Fortran-order B: out[i, c] = sum_p val[p] * B[idx[p] + c*ldb], four columns per pass.
template <typename S>
void rows_f(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* idx,
            const typename S::T* val, const typename S::T* b, int64_t ldb, typename S::T* out,
            int64_t ldc) {
  using T = typename S::T;
  constexpr int W = S::W;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t p0 = indptr[i], p1 = indptr[i + 1];
    T* o = out + i * ldc;
    int64_t c = 0;
    for (; c + 4 <= k; c += 4) {
      const T* col0 = b + c * ldb;
      const T* col1 = col0 + ldb;
      const T* col2 = col1 + ldb;
      const T* col3 = col2 + ldb;
      typename S::V a0 = S::zero(), a1 = a0, a2 = a0, a3 = a0;
      int64_t p = p0;
      for (; p + W <= p1; p += W) {
        const typename S::V v = S::load(val + p);
        a0 = S::fma(v, S::gather(col0, idx + p), a0);
        a1 = S::fma(v, S::gather(col1, idx + p), a1);
        a2 = S::fma(v, S::gather(col2, idx + p), a2);
        a3 = S::fma(v, S::gather(col3, idx + p), a3);
      }
      T s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (; p < p1; ++p) {
        const T v = val[p];
        const int64_t j = idx[p];
        s0 += v * col0[j];
        s1 += v * col1[j];
        s2 += v * col2[j];
        s3 += v * col3[j];
      }
      o[c] = s0;
      o[c + 1] = s1;
      o[c + 2] = s2;
      o[c + 3] = s3;
    }
    for (; c < k; ++c) {
      const T* col = b + c * ldb;
      T s = 0;
      for (int64_t p = p0; p < p1; ++p) s += val[p] * col[idx[p]];
      o[c] = s;
    }
  }
}

}  // namespace

void csr_rows(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* indices,
              const float* data, const float* b, int64_t ldb, bool b_row_major, float* out,
              int64_t ldc) {
  if (b_row_major) rows_c<F32>(r0, r1, k, indptr, indices, data, b, ldb, out, ldc);
  else rows_f<F32>(r0, r1, k, indptr, indices, data, b, ldb, out, ldc);
}

void csr_rows(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr, const int32_t* indices,
              const double* data, const double* b, int64_t ldb, bool b_row_major, double* out,
              int64_t ldc) {
  if (b_row_major) rows_c<F64>(r0, r1, k, indptr, indices, data, b, ldb, out, ldc);
  else rows_f<F64>(r0, r1, k, indptr, indices, data, b, ldb, out, ldc);
}

void csr_rows_blocks(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr,
                     const int32_t* indices, const float* data, const RowAddress& b, float* out,
                     int64_t ldc) {
  rows_blocks<F32>(r0, r1, k, indptr, indices, data, b, out, ldc);
}

void csr_rows_blocks(int64_t r0, int64_t r1, int64_t k, const int64_t* indptr,
                     const int32_t* indices, const double* data, const RowAddress& b, double* out,
                     int64_t ldc) {
  rows_blocks<F64>(r0, r1, k, indptr, indices, data, b, out, ldc);
}

}  // namespace matkern::avx2
