// Sketching kernels (see sketch.hpp). Every output row or column block is written by one
// piece of a parallel loop in a fixed order, so results do not depend on the team size.
#include "sketch.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "hadamard.hpp"
#include "parallel.hpp"
#include "scratch.hpp"

namespace matkern {
namespace {

constexpr uint64_t kSignStream = 1;
constexpr uint64_t kCountStream = 2;

struct SrhtScratch {};

// +-1 per index of stream `stream`, in parallel.
template <typename T>
void signs_of(uint64_t key, uint64_t stream, int64_t n, T* sign) {
  const uint64_t base = sketch_stream_base(key, stream);
  parallel_for_range(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) sign[i] = (sketch_hash(base, i) & 1) ? T(-1) : T(1);
  });
}

// CountSketch bucket and sign of indices 0..n-1 (k buckets).
template <typename T>
void buckets_of(uint64_t key, int64_t n, int64_t k, int32_t* bucket, T* sign) {
  const uint64_t base = sketch_stream_base(key, kCountStream);
  parallel_for_range(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const uint64_t h = sketch_hash(base, i);
      bucket[i] = int32_t(((h >> 32) * uint64_t(k)) >> 32);
      sign[i] = (h & 1) ? T(-1) : T(1);
    }
  });
}

// Rows of each bucket, in increasing order: start (k + 1) and order (m), a counting sort.
void group_by_bucket(const int32_t* bucket, int64_t m, int64_t k, std::vector<int64_t>& start,
                     std::vector<int64_t>& order) {
  start.assign(size_t(k) + 1, 0);
  for (int64_t i = 0; i < m; ++i) ++start[size_t(bucket[i]) + 1];
  for (int64_t b = 0; b < k; ++b) start[b + 1] += start[b];
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  order.resize(size_t(m));
  for (int64_t i = 0; i < m; ++i) order[size_t(next[bucket[i]]++)] = i;
}

}  // namespace

template <typename T>
void srht_left(const T* a, int64_t m, int64_t c, uint64_t key, const int64_t* rows, int64_t k,
               int64_t mpad, double scale, T* out) {
  std::vector<T> sign(static_cast<size_t>(m));
  signs_of<T>(key, kSignStream, m, sign.data());
  // Columns in blocks of four cache lines of a row, or one when four would leave fewer than
  // four blocks per thread (fewer columns when a padded column is long, so that a thread's
  // scratch stays below ~32 MB): the block is read row by row, signed and stored transposed
  // (one padded column per scratch row), transformed by the row kernel, sampled. The reads
  // are one short piece per row of A, each a cache miss: four lines per piece took the
  // 100000 x 400 float64 sketch from 109 to 94 ms (2 threads).
  const int64_t line = 64 / int64_t(sizeof(T));
  const int64_t lines = c >= 4 * line * 4 * int64_t(call_team()) ? 4 : 1;
  const int64_t width = std::max<int64_t>(
      1, std::min<int64_t>(lines * line, (int64_t(32) << 20) / (mpad * int64_t(sizeof(T)))));
  const int64_t nblk = (c + width - 1) / width;
  const T sc = T(scale);
  // Scratch rows 64 bytes apart from a multiple of 4 KiB: the w store streams of the
  // transposing copy would otherwise all map to one cache set.
  const int64_t ld = mpad + line;
  parallel_for_range(nblk, 1, [&](int64_t b0, int64_t b1) {
    T* z = thread_scratch<SrhtScratch, T>(size_t(width * ld));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t c0 = b * width, w = std::min(width, c - c0);
      for (int64_t i = 0; i < m; ++i) {
        const T* ar = a + i * c + c0;
        const T s = sign[size_t(i)];
        for (int64_t j = 0; j < w; ++j) z[j * ld + i] = s * ar[j];
      }
      for (int64_t j = 0; j < w; ++j) {
        T* zj = z + j * ld;
        std::fill(zj + m, zj + mpad, T(0));
        fwht_row_serial<T>(zj, mpad);
      }
      for (int64_t r = 0; r < k; ++r) {
        const int64_t src = rows[r];
        T* o = out + r * c + c0;
        for (int64_t j = 0; j < w; ++j) o[j] = sc * z[j * ld + src];
      }
    }
  });
}

template <typename T>
void countsketch_left_dense(const T* a, int64_t m, int64_t c, uint64_t key, int64_t k, T* out) {
  std::vector<int32_t> bucket(static_cast<size_t>(m));
  std::vector<T> sign(static_cast<size_t>(m));
  buckets_of<T>(key, m, k, bucket.data(), sign.data());
  std::vector<int64_t> start, order;
  group_by_bucket(bucket.data(), m, k, start, order);
  // One output row per bucket: the sum of its signed rows, added in row order.
  const int64_t grain =
      std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, c * (m / k + 1)));
  parallel_for_range(k, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t b = r0; b < r1; ++b) {
      T* o = out + b * c;
      std::fill(o, o + c, T(0));
      for (int64_t p = start[b]; p < start[b + 1]; ++p) {
        const int64_t i = order[size_t(p)];
        const T s = sign[size_t(i)];
        const T* ar = a + i * c;
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) o[j] += s * ar[j];
      }
    }
  });
}

template <typename T>
void countsketch_left_csr(const int64_t* indptr, const int32_t* indices, const T* data, int64_t m,
                          int64_t c, uint64_t key, int64_t k, T* out) {
  std::vector<int32_t> bucket(static_cast<size_t>(m));
  std::vector<T> sign(static_cast<size_t>(m));
  buckets_of<T>(key, m, k, bucket.data(), sign.data());
  std::vector<int64_t> start, order;
  group_by_bucket(bucket.data(), m, k, start, order);
  const int64_t per_bucket = indptr[m] / std::max<int64_t>(1, k) + c / 8 + 1;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / per_bucket);
  parallel_for_range(k, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t b = r0; b < r1; ++b) {
      T* o = out + b * c;
      std::fill(o, o + c, T(0));
      for (int64_t p = start[b]; p < start[b + 1]; ++p) {
        const int64_t i = order[size_t(p)];
        const T s = sign[size_t(i)];
        for (int64_t q = indptr[i]; q < indptr[i + 1]; ++q) o[indices[q]] += s * data[q];
      }
    }
  });
}

template <typename T>
void countsketch_right_dense(const T* a, int64_t m, int64_t n, uint64_t key, int64_t l, T* out) {
  std::vector<int32_t> bucket(static_cast<size_t>(n));
  std::vector<T> sign(static_cast<size_t>(n));
  buckets_of<T>(key, n, l, bucket.data(), sign.data());
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / (n + l));
  parallel_for_range(m, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      T* o = out + i * l;
      const T* ar = a + i * n;
      std::fill(o, o + l, T(0));
      for (int64_t j = 0; j < n; ++j) o[bucket[size_t(j)]] += sign[size_t(j)] * ar[j];
    }
  });
}

template <typename T>
void countsketch_right_csr(const int64_t* indptr, const int32_t* indices, const T* data, int64_t m,
                           int64_t n, uint64_t key, int64_t l, T* out) {
  std::vector<int32_t> bucket(static_cast<size_t>(n));
  std::vector<T> sign(static_cast<size_t>(n));
  buckets_of<T>(key, n, l, bucket.data(), sign.data());
  const int64_t grain =
      std::max<int64_t>(1, (int64_t(1) << 14) / (indptr[m] / std::max<int64_t>(1, m) + l + 1));
  parallel_for_range(m, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      T* o = out + i * l;
      std::fill(o, o + l, T(0));
      for (int64_t q = indptr[i]; q < indptr[i + 1]; ++q) {
        const int32_t j = indices[q];
        o[bucket[size_t(j)]] += sign[size_t(j)] * data[q];
      }
    }
  });
}

template <typename T>
void csr_gram(const int64_t* indptr, const int32_t* indices, const T* data, int64_t m, int64_t n,
              double* out) {
  // Work of output row j (the products a_ij a_ik, k >= j, of the rows holding column j): the
  // pieces below own balanced ranges of output rows. Rows whose indices are not strictly
  // increasing (unsorted or repeated columns) are marked and take the general loop.
  std::vector<double> work(static_cast<size_t>(n) + 1, 0.0);
  std::vector<uint8_t> sorted(static_cast<size_t>(m), 1);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t s = indptr[i], e = indptr[i + 1];
    for (int64_t q = s + 1; q < e; ++q)
      if (indices[q] <= indices[q - 1]) sorted[size_t(i)] = 0;
    const bool ok = sorted[size_t(i)];
    for (int64_t q = s; q < e; ++q) work[size_t(indices[q]) + 1] += double(ok ? e - q : e - s);
  }
  for (int64_t j = 0; j < n; ++j) work[size_t(j) + 1] += work[size_t(j)] + 1.0;  // + its zeroing
  // A few pieces per thread: each one scans every row's index range, so many more pieces
  // would cost more scanning than the balance they buy.
  const int64_t pieces = std::max<int64_t>(1, std::min<int64_t>(n, 4 * int64_t(call_team())));
  std::vector<int64_t> bound(static_cast<size_t>(pieces) + 1, n);
  bound[0] = 0;
  for (int64_t p = 1, j = 0; p < pieces; ++p) {
    const double target = work[size_t(n)] * double(p) / double(pieces);
    while (j < n && work[size_t(j)] < target) ++j;
    bound[size_t(p)] = std::max(j, bound[size_t(p) - 1]);
  }
  parallel_for_chunks(pieces, [&](int64_t p) {
    const int32_t lo = int32_t(bound[size_t(p)]), hi = int32_t(bound[size_t(p) + 1]);
    if (lo >= hi) return;
    std::fill(out + int64_t(lo) * n, out + int64_t(hi) * n, 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const int32_t* first = indices + indptr[i];
      const int32_t* last = indices + indptr[i + 1];
      if (first == last) continue;
      const T* val = data + indptr[i];
      if (sorted[size_t(i)]) {
        if (last[-1] < lo || *first >= hi) continue;
        for (const int32_t* qa = std::lower_bound(first, last, lo); qa < last && *qa < hi; ++qa) {
          const double va = double(val[qa - first]);
          double* g = out + int64_t(*qa) * n;
          for (const int32_t* qb = qa; qb < last; ++qb) g[*qb] += va * double(val[qb - first]);
        }
        continue;
      }
      // Every ordered pair (a, b) with col_b >= col_a: repeated columns then add up as the
      // summed entry's products do ((u + v)^2 on the diagonal).
      for (const int32_t* qa = first; qa < last; ++qa) {
        if (*qa < lo || *qa >= hi) continue;
        const double va = double(val[qa - first]);
        double* g = out + int64_t(*qa) * n;
        for (const int32_t* qb = first; qb < last; ++qb)
          if (*qb >= *qa) g[*qb] += va * double(val[qb - first]);
      }
    }
  });
  // The lower triangle from the upper one.
  parallel_for_range(n, 64, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      for (int64_t k = 0; k < j; ++k) out[j * n + k] = out[k * n + j];
  });
}

#define MATKERN_SKETCH_INSTANTIATE(T)                                                          \
  template void srht_left<T>(const T*, int64_t, int64_t, uint64_t, const int64_t*, int64_t,    \
                             int64_t, double, T*);                                             \
  template void countsketch_left_dense<T>(const T*, int64_t, int64_t, uint64_t, int64_t, T*);  \
  template void countsketch_left_csr<T>(const int64_t*, const int32_t*, const T*, int64_t,     \
                                        int64_t, uint64_t, int64_t, T*);                       \
  template void countsketch_right_dense<T>(const T*, int64_t, int64_t, uint64_t, int64_t, T*); \
  template void countsketch_right_csr<T>(const int64_t*, const int32_t*, const T*, int64_t,    \
                                         int64_t, uint64_t, int64_t, T*);                      \
  template void csr_gram<T>(const int64_t*, const int32_t*, const T*, int64_t, int64_t, double*);
MATKERN_SKETCH_INSTANTIATE(float)
MATKERN_SKETCH_INSTANTIATE(double)
#undef MATKERN_SKETCH_INSTANTIATE

}  // namespace matkern
