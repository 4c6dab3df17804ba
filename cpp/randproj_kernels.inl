// Kernel bodies of the randproj family, included twice: by randproj.cpp inside
// namespace matkern::rp_portable and by randproj_avx2.cpp inside namespace matkern::avx2 (the
// only file compiled with -mavx2 -mfma), so that the inner loops are vectorized for each ISA.
// Rule of *_avx2.cpp files: raw pointers and malloc only here, no std containers or shared
// inline templates (the linker must never pick an AVX2 copy for portable code).
//
// The projection R (d features x k components, the transpose of components_) is never stored
// whole: feature row j holds the nonzero components found by a geometric skip driven by a
// counter-based hash of (seed, j, t), so that any backend regenerates any row independently.
//   base_j = mix(seed_key + (j + 1) * C1);  h_t = mix(base_j + (t + 1) * G), t = 0, 1, ...
//   u = h_t >> 1 (63 bits); skip = #{m in 1..k : table[m] > u}, table[m] = floor(2^63 (1-p)^m)
//   position += skip + 1 (from -1); stop at >= k; the sign of the entry is h_t & 1 (1: -).
// table is computed once on the host (NumPy) and shared by every backend: bit-identical rows.

static inline uint64_t rp_mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

static constexpr uint64_t kRpG = 0x9E3779B97F4A7C15ULL;
static constexpr uint64_t kRpC1 = 0xD1B54A32D192ED03ULL;

// skip = number of m in [1, k] with table[m] > u (table nonincreasing): binary search.
static inline int64_t rp_skip(const uint64_t* table, int64_t k, uint64_t u) {
  int64_t lo = 1, hi = k + 1;  // first m in [lo, hi) with table[m] <= u, or k + 1
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (table[mid] > u) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

// body(b, e) over [0, n) in pieces of at least `grain` rows on the helper pool: a thread whose
// core is busy never holds the others up at a barrier. Through parallel_ranges (a plain
// function) rather than the header's parallel_for_range template, under the rule above.
template <typename F>
static void rp_for(int64_t n, int64_t grain, F&& body) {
  parallel_ranges(n, grain, [](void* c, int64_t b, int64_t e) { (*static_cast<F*>(c))(b, e); },
                  &body);
}

// Visit the nonzeros (component, negative?) of feature row j. Returns the count.
template <typename F>
static inline int64_t rp_row(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j,
                             F&& f) {
  const uint64_t base = rp_mix(seed_key + uint64_t(j + 1) * kRpC1);
  int64_t pos = -1, cnt = 0;
  for (uint64_t t = 1;; ++t) {
    const uint64_t h = rp_mix(base + t * kRpG);
    pos += rp_skip(table, k, h >> 1) + 1;
    if (pos >= k) break;
    f(int32_t(pos), int(h & 1));
    ++cnt;
  }
  return cnt;
}

void rp_count(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
              int64_t* counts) {
  rp_for(nrows, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      counts[r] = rp_row(seed_key, table, k, j0 + r, [](int32_t, int) {});
  });
}

// indptr (nrows + 1) from rp_count's prefix sum; comps/signs receive each row's entries.
void rp_fill(uint64_t seed_key, const uint64_t* table, int64_t k, int64_t j0, int64_t nrows,
             const int64_t* indptr, int32_t* comps, int8_t* negs) {
  rp_for(nrows, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t p = indptr[r];
      rp_row(seed_key, table, k, j0 + r, [&](int32_t c, int neg) {
        comps[p] = c;
        negs[p] = int8_t(neg);
        ++p;
      });
    }
  });
}

// A chunk of R's feature rows as CSR (ptr relative to the chunk), entries +-1 as float.
struct RpChunk {
  int64_t* ptr = nullptr;
  int32_t* comp = nullptr;
  float* val = nullptr;
  int64_t cap = 0;
};

static void rp_chunk_free(RpChunk& c) {
  std::free(c.ptr);
  std::free(c.comp);
  std::free(c.val);
  c = RpChunk{};
}

// Generate feature rows [j0, j1) into ch: counts, a prefix sum, then the entries.
static void rp_chunk_make(RpChunk& ch, uint64_t seed_key, const uint64_t* table, int64_t k,
                          int64_t j0, int64_t j1) {
  const int64_t nr = j1 - j0;
  rp_for(nr, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      ch.ptr[r + 1] = rp_row(seed_key, table, k, j0 + r, [](int32_t, int) {});
  });
  ch.ptr[0] = 0;
  for (int64_t r = 0; r < nr; ++r) ch.ptr[r + 1] += ch.ptr[r];
  if (ch.ptr[nr] > ch.cap) {
    std::free(ch.comp);
    std::free(ch.val);
    ch.cap = ch.ptr[nr] + ch.ptr[nr] / 4 + 16;
    ch.comp = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * ch.cap));
    ch.val = static_cast<float*>(std::malloc(sizeof(float) * ch.cap));
  }
  rp_for(nr, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t p = ch.ptr[r];
      int32_t* cp = ch.comp;
      float* vp = ch.val;
      rp_row(seed_key, table, k, j0 + r, [&](int32_t c, int neg) {
        cp[p] = c;
        vp[p] = neg ? -1.0f : 1.0f;
        ++p;
      });
    }
  });
}

// Features per chunk: bounds the generated entries to about 2^21 (a few MB) at any density.
static int64_t rp_chunk_rows(const uint64_t* table, int64_t k, int64_t d) {
  const double p = 1.0 - double(table[1]) / 9223372036854775808.0;
  const double per_row = 1.0 + p * double(k);
  int64_t rows = int64_t(double(1 << 21) / per_row);
  if (rows < 1) rows = 1;
  return rows < d ? rows : d;
}

// out (n x k) = scale * X (n x d, dense, C order) @ R. Threads over rows; per chunk of features
// the 8-row tiles keep their k outputs transposed (k x 8) so that each entry of R updates eight
// rows with one vector multiply-add.
template <typename T>
void rp_dense(const T* x, int64_t n, int64_t d, uint64_t seed_key, const uint64_t* table, int64_t k,
              double scale, T* out) {
  rp_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b * k; i < e * k; ++i) out[i] = T(0);
  });
  const int64_t fc = rp_chunk_rows(table, k, d);
  RpChunk ch;
  ch.ptr = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * (fc + 1)));
  const int64_t ntiles = (n + 7) / 8;
  for (int64_t j0 = 0; j0 < d; j0 += fc) {
    const int64_t j1 = j0 + fc < d ? j0 + fc : d;
    rp_chunk_make(ch, seed_key, table, k, j0, j1);
    const int64_t* ptr = ch.ptr;
    const int32_t* comp = ch.comp;
    const float* val = ch.val;
    rp_for(ntiles, 1, [&](int64_t t0, int64_t t1) {
      T* tile = static_cast<T*>(std::malloc(sizeof(T) * 8 * k));
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = t * 8, nr = n - r0 < 8 ? n - r0 : 8;
        for (int64_t i = 0; i < 8 * k; ++i) tile[i] = T(0);
        for (int64_t j = j0; j < j1; ++j) {
          const int64_t a = ptr[j - j0], b = ptr[j - j0 + 1];
          if (a == b) continue;
          T xv[8];
          for (int r = 0; r < 8; ++r) xv[r] = r < nr ? x[(r0 + r) * d + j] : T(0);
          for (int64_t p = a; p < b; ++p) {
            T* tc = tile + int64_t(comp[p]) * 8;
            const T v = T(val[p]);
#pragma omp simd
            for (int r = 0; r < 8; ++r) tc[r] += v * xv[r];
          }
        }
        for (int64_t r = 0; r < nr; ++r) {
          T* o = out + (r0 + r) * k;
          for (int64_t c = 0; c < k; ++c) o[c] += tile[c * 8 + r];
        }
      }
      std::free(tile);
    });
  }
  const T s = T(scale);
  rp_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b * k; i < e * k; ++i) out[i] *= s;
  });
  rp_chunk_free(ch);
}

// Row i of the one-chunk sparse projection (R's feature rows [0, d) in ptr/comp/val): o (k) =
// scale * rowscale[i] * sum_q data[q] colscale[j] R[j], in the order of i's entries. Shared by
// rp_sparse and rp_sparse_csr, so that both give the same bits.
template <typename T>
static inline void rp_sparse_row(const int64_t* indptr, const int32_t* indices, const T* data,
                                 int64_t i, const T* rowscale, const T* colscale,
                                 const int64_t* ptr, const int32_t* comp, const float* val,
                                 int64_t k, double scale, T* o) {
  for (int64_t c = 0; c < k; ++c) o[c] = T(0);
  for (int64_t q = indptr[i], qe = indptr[i + 1]; q < qe; ++q) {
    const int64_t j = indices[q];
    T xv = data[q];
    if (colscale) xv *= colscale[j];
    const int64_t a = ptr[j], b = ptr[j + 1];
    for (int64_t p = a; p < b; ++p) o[comp[p]] += T(val[p]) * xv;
  }
  const T s = T(scale) * (rowscale ? rowscale[i] : T(1));
  for (int64_t c = 0; c < k; ++c) o[c] *= s;
}

// rp_sparse with R's feature rows [0, d) given (ptr d + 1, comp, val: as rp_chunk_make
// writes them) instead of generated: the Dask layer makes R once per graph and every row
// block of the adjacency uses it. The rows are rp_sparse_row's, so the bits are rp_sparse's.
template <typename T>
void rp_sparse_given(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,
                     const T* rowscale, const T* colscale, const int64_t* ptr, const int32_t* comp,
                     const float* val, int64_t k, double scale, T* out) {
  rp_for(n, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      rp_sparse_row(indptr, indices, data, i, rowscale, colscale, ptr, comp, val, k, scale,
                    out + i * k);
  });
}

// out (n x k) = scale * diag(rowscale) X diag(colscale) R for X in CSR (sorted indices);
// rowscale/colscale may be null (ones). Threads over rows; features in chunks, each row keeping
// a cursor into its sorted column indices.
template <typename T>
void rp_sparse(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n, int64_t d,
               const T* rowscale, const T* colscale, uint64_t seed_key, const uint64_t* table,
               int64_t k, double scale, T* out) {
  const int64_t fc = rp_chunk_rows(table, k, d);
  const bool one_chunk = fc >= d;
  int64_t* cursor = one_chunk ? nullptr : static_cast<int64_t*>(std::malloc(sizeof(int64_t) * n));
  RpChunk ch;
  ch.ptr = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * (fc + 1)));
  // One chunk (the usual case): zero, accumulate and scale each row while it is in cache.
  const int pass_scale = one_chunk ? 1 : 0;
  if (!one_chunk)
    rp_for(n, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        for (int64_t c = 0; c < k; ++c) out[i * k + c] = T(0);
        cursor[i] = indptr[i];
      }
    });
  for (int64_t j0 = 0; j0 < d; j0 += fc) {
    const int64_t j1 = j0 + fc < d ? j0 + fc : d;
    rp_chunk_make(ch, seed_key, table, k, j0, j1);
    const int64_t* ptr = ch.ptr;
    const int32_t* comp = ch.comp;
    const float* val = ch.val;
    rp_for(n, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        T* o = out + i * k;
        if (pass_scale) {  // one chunk: the whole row at once
          rp_sparse_row(indptr, indices, data, i, rowscale, colscale, ptr, comp, val, k, scale, o);
          continue;
        }
        int64_t q = cursor[i];
        const int64_t qe = indptr[i + 1];
        for (; q < qe && indices[q] < j1; ++q) {
          const int64_t j = indices[q];
          T xv = data[q];
          if (colscale) xv *= colscale[j];
          const int64_t a = ptr[j - j0], b = ptr[j - j0 + 1];
          for (int64_t p = a; p < b; ++p) o[comp[p]] += T(val[p]) * xv;
        }
        cursor[i] = q;
      }
    });
  }
  if (!pass_scale)
    rp_for(n, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T s = T(scale) * (rowscale ? rowscale[i] : T(1));
        for (int64_t c = 0; c < k; ++c) out[i * k + c] *= s;
      }
    });
  std::free(cursor);
  rp_chunk_free(ch);
}

// rp_sparse's result as CSR (rowscale and colscale none): the nonzeros of each row in
// column order, explicit zeros dropped (scipy's conversion of the dense result, bit for bit),
// without the dense n x k array when R's rows fit one chunk (the usual case). The indices and
// values are malloc'd with room for n x k entries (address space only: a page is touched when
// an entry lands on it) and handed to the caller (who frees them) shrunk to nnz (at least 1).
// Rows go in fixed blocks of kRpCsrRows (whatever the team): block b computes each row into
// a scratch row and packs its nonzeros from entry b * kRpCsrRows * k on, writing the row's
// count into out_indptr[i + 1]; a prefix sum gives out_indptr, and the blocks are moved down
// to their places in block order (each block's place is at or below its packed start).
// Returns nnz; throws std::bad_alloc (nothing left allocated) when memory runs out. When R
// needs several chunks, the rows come from rp_sparse's dense result.
static constexpr int64_t kRpCsrRows = 256;

// Packs the nonzeros of o (k) at idx / val (room for k); returns their count. Branch-free:
// each entry is written at the next free place, which advances only past a nonzero (a quarter
// of a projection's entries may be zero, in no pattern a branch predicts). NaN stays (it is
// nonzero), -0.0 goes: as numpy.nonzero.
template <typename T>
static int64_t rp_csr_pack(const T* o, int64_t k, int32_t* idx, T* val) {
  int64_t m = 0;
  for (int64_t c = 0; c < k; ++c) {
    const T v = o[c];
    idx[m] = int32_t(c);
    val[m] = v;
    m += v != T(0) ? 1 : 0;
  }
  return m;
}

template <typename T>
int64_t rp_sparse_csr(const int64_t* indptr, const int32_t* indices, const T* data, int64_t n,
                      int64_t d, uint64_t seed_key, const uint64_t* table, int64_t k, double scale,
                      int64_t* out_indptr, int32_t** out_indices, T** out_data) {
  *out_indices = nullptr;
  *out_data = nullptr;
  const int64_t room = n * k > 0 ? n * k : 1;
  auto* idx = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * room));
  T* val = idx ? static_cast<T*>(std::malloc(sizeof(T) * room)) : nullptr;
  const int64_t fc = rp_chunk_rows(table, k, d);
  T* dense = nullptr;  // several chunks of R: rows from rp_sparse's dense result
  RpChunk ch;
  if (val && fc < d) dense = static_cast<T*>(std::malloc(sizeof(T) * room));
  else if (val) ch.ptr = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * (d + 1)));
  if (!val || (fc < d ? !dense : !ch.ptr)) {
    std::free(idx);
    std::free(val);
    std::free(dense);
    std::free(ch.ptr);
    throw std::bad_alloc();
  }
  if (dense)
    rp_sparse<T>(indptr, indices, data, n, d, nullptr, nullptr, seed_key, table, k, scale, dense);
  else rp_chunk_make(ch, seed_key, table, k, 0, d);
  const int64_t nblocks = (n + kRpCsrRows - 1) / kRpCsrRows;
  int failed = 0;
  rp_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    T* row = dense ? nullptr : static_cast<T*>(std::malloc(sizeof(T) * (k > 0 ? k : 1)));
    if (!dense && !row) {
      __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
      return;
    }
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRpCsrRows, r1 = r0 + kRpCsrRows < n ? r0 + kRpCsrRows : n;
      int64_t at = r0 * k;
      for (int64_t i = r0; i < r1; ++i) {
        const T* o = row;
        if (dense) o = dense + i * k;
        else
          rp_sparse_row(indptr, indices, data, i, static_cast<const T*>(nullptr),
                        static_cast<const T*>(nullptr), ch.ptr, ch.comp, ch.val, k, scale, row);
        const int64_t m = rp_csr_pack(o, k, idx + at, val + at);
        out_indptr[i + 1] = m;
        at += m;
      }
    }
    std::free(row);
  });
  std::free(dense);
  rp_chunk_free(ch);
  if (failed) {
    std::free(idx);
    std::free(val);
    throw std::bad_alloc();
  }
  out_indptr[0] = 0;
  for (int64_t i = 0; i < n; ++i) out_indptr[i + 1] += out_indptr[i];
  const int64_t nnz = out_indptr[n];
  for (int64_t b = 1; b < nblocks; ++b) {  // block 0 is in place
    const int64_t r0 = b * kRpCsrRows, r1 = r0 + kRpCsrRows < n ? r0 + kRpCsrRows : n;
    const int64_t to = out_indptr[r0], m = out_indptr[r1] - to;
    std::memmove(idx + to, idx + r0 * k, sizeof(int32_t) * m);
    std::memmove(val + to, val + r0 * k, sizeof(T) * m);
  }
  const int64_t keep = nnz > 0 ? nnz : 1;  // shrinking keeps the data (mremap for large ones)
  auto* idx_fit = static_cast<int32_t*>(std::realloc(idx, sizeof(int32_t) * keep));
  T* val_fit = static_cast<T*>(std::realloc(val, sizeof(T) * keep));
  *out_indices = idx_fit ? idx_fit : idx;
  *out_data = val_fit ? val_fit : val;
  return nnz;
}

// sum of u[c]^2 in double, in 8 running sums (lane c % 8) added in a fixed tree at the end:
// the one running sum's chain of dependent adds made the norm the larger part of accumulate
// (128 adds of 3-4 cycles latency a row). The squares of floats are exact in double, so the
// portable and the FMA builds give the same bits for float rows.
template <typename T>
static inline double row_sum_squares(const T* u, int64_t k) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= k; c += 8)
    for (int l = 0; l < 8; ++l) s[l] += double(u[c + l]) * double(u[c + l]);
  for (int l = 0; c < k; ++c, ++l) s[l] += double(u[c]) * double(u[c]);
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

// emb += weight * (l2 ? u_i / ||u_i|| : u_i) row by row (zero rows stay zero). With base:
// emb = base + the same, base left as it is (the same expression, so the same bits as
// accumulating into a copy of base; FastRP's Dask tasks never change their inputs).
template <typename T>
void accumulate_rows(const T* u, int64_t n, int64_t k, double weight, bool l2, T* emb,
                     const T* base) {
  rp_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* ui = u + i * k;
      T* ei = emb + i * k;
      double w = weight;
      if (l2) {
        const double ss = row_sum_squares(ui, k);
        w = ss > 0 ? weight / std::sqrt(ss) : 0.0;
      }
      const T wt = T(w);
      if (base) {
        const T* bi = base + i * k;
#pragma omp simd
        for (int64_t c = 0; c < k; ++c) ei[c] = bi[c] + wt * ui[c];
      } else {
#pragma omp simd
        for (int64_t c = 0; c < k; ++c) ei[c] += wt * ui[c];
      }
    }
  });
}

template void rp_dense<float>(const float*, int64_t, int64_t, uint64_t, const uint64_t*, int64_t,
                              double, float*);
template void rp_dense<double>(const double*, int64_t, int64_t, uint64_t, const uint64_t*, int64_t,
                               double, double*);
template void rp_sparse<float>(const int64_t*, const int32_t*, const float*, int64_t, int64_t,
                               const float*, const float*, uint64_t, const uint64_t*, int64_t,
                               double, float*);
template void rp_sparse<double>(const int64_t*, const int32_t*, const double*, int64_t, int64_t,
                                const double*, const double*, uint64_t, const uint64_t*, int64_t,
                                double, double*);
template int64_t rp_sparse_csr<float>(const int64_t*, const int32_t*, const float*, int64_t,
                                      int64_t, uint64_t, const uint64_t*, int64_t, double, int64_t*,
                                      int32_t**, float**);
template int64_t rp_sparse_csr<double>(const int64_t*, const int32_t*, const double*, int64_t,
                                       int64_t, uint64_t, const uint64_t*, int64_t, double,
                                       int64_t*, int32_t**, double**);
template void rp_sparse_given<float>(const int64_t*, const int32_t*, const float*, int64_t,
                                     const float*, const float*, const int64_t*, const int32_t*,
                                     const float*, int64_t, double, float*);
template void rp_sparse_given<double>(const int64_t*, const int32_t*, const double*, int64_t,
                                      const double*, const double*, const int64_t*, const int32_t*,
                                      const float*, int64_t, double, double*);
template void accumulate_rows<float>(const float*, int64_t, int64_t, double, bool, float*,
                                     const float*);
template void accumulate_rows<double>(const double*, int64_t, int64_t, double, bool, double*,
                                      const double*);
