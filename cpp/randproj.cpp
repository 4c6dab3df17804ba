// Portable copies of the randproj kernels and the run-time choice between them and AVX2.
#include "randproj.hpp"
#include "parallel.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "simd.hpp"

namespace matkern {
namespace rp_portable {
#include "randproj_kernels.inl"
}  // namespace rp_portable

namespace rp {
namespace {
inline bool use_avx2() {
#ifdef MATKERN_BUILD_AVX2
  return simd_level() >= Simd::avx2;
#else
  return false;
#endif
}
}  // namespace

#ifdef MATKERN_BUILD_AVX2
#define MATKERN_RP_CALL(fn, ...) (use_avx2() ? avx2::fn(__VA_ARGS__) : rp_portable::fn(__VA_ARGS__))
#else
#define MATKERN_RP_CALL(fn, ...) rp_portable::fn(__VA_ARGS__)
#endif

void count(uint64_t s, const uint64_t* t, int64_t k, int64_t j0, int64_t nr, int64_t* c) {
  MATKERN_RP_CALL(rp_count, s, t, k, j0, nr, c);
}
void fill(uint64_t s, const uint64_t* t, int64_t k, int64_t j0, int64_t nr, const int64_t* ip,
          int32_t* comps, int8_t* negs) {
  MATKERN_RP_CALL(rp_fill, s, t, k, j0, nr, ip, comps, negs);
}
template <typename T>
void dense(const T* x, int64_t n, int64_t d, uint64_t s, const uint64_t* t, int64_t k, double scale,
           T* out) {
  MATKERN_RP_CALL(rp_dense<T>, x, n, d, s, t, k, scale, out);
}
template <typename T>
void sparse(const int64_t* ip, const int32_t* ix, const T* v, int64_t n, int64_t d, const T* rs,
            const T* cs, uint64_t s, const uint64_t* t, int64_t k, double scale, T* out) {
  MATKERN_RP_CALL(rp_sparse<T>, ip, ix, v, n, d, rs, cs, s, t, k, scale, out);
}
template <typename T>
int64_t sparse_csr(const int64_t* ip, const int32_t* ix, const T* v, int64_t n, int64_t d,
                   uint64_t s, const uint64_t* t, int64_t k, double scale, int64_t* oip,
                   int32_t** oix, T** ov) {
  return MATKERN_RP_CALL(rp_sparse_csr<T>, ip, ix, v, n, d, s, t, k, scale, oip, oix, ov);
}
template <typename T>
void sparse_given(const int64_t* ip, const int32_t* ix, const T* v, int64_t n, const T* rs,
                  const T* cs, const int64_t* ptr, const int32_t* comp, const float* val, int64_t k,
                  double scale, T* out) {
  MATKERN_RP_CALL(rp_sparse_given<T>, ip, ix, v, n, rs, cs, ptr, comp, val, k, scale, out);
}
template <typename T>
void accumulate(const T* u, int64_t n, int64_t k, double w, bool l2, T* emb, const T* base) {
  MATKERN_RP_CALL(accumulate_rows<T>, u, n, k, w, l2, emb, base);
}
#undef MATKERN_RP_CALL

template <typename T>
void hop(int64_t m, int64_t k, const int64_t* indptr, const int32_t* indices, const T* data,
         const RowBlocks<T>& b, double weight, bool l2, T* emb, const T* base, T* u_out) {
  struct Ctx {
    int64_t k;
    double weight;
    bool l2;
    T* emb;
    const T* base;
  } ctx{k, weight, l2, emb, base};
  // A run of 32 rows is below accumulate's grain: it runs on the thread that wrote the run.
  const RowsDone<T> add = [](void* c, int64_t r0, int64_t rows, const T* v, int64_t) {
    const Ctx& x = *static_cast<const Ctx*>(c);
    accumulate<T>(v, rows, x.k, x.weight, x.l2, x.emb + r0 * x.k,
                  x.base ? x.base + r0 * x.k : nullptr);
  };
  csr_spmm_blocks<T>(m, k, indptr, indices, data, b, u_out, k, add, &ctx);
}

template void dense<float>(const float*, int64_t, int64_t, uint64_t, const uint64_t*, int64_t,
                           double, float*);
template void dense<double>(const double*, int64_t, int64_t, uint64_t, const uint64_t*, int64_t,
                            double, double*);
template void sparse<float>(const int64_t*, const int32_t*, const float*, int64_t, int64_t,
                            const float*, const float*, uint64_t, const uint64_t*, int64_t, double,
                            float*);
template void sparse<double>(const int64_t*, const int32_t*, const double*, int64_t, int64_t,
                             const double*, const double*, uint64_t, const uint64_t*, int64_t,
                             double, double*);
template int64_t sparse_csr<float>(const int64_t*, const int32_t*, const float*, int64_t, int64_t,
                                   uint64_t, const uint64_t*, int64_t, double, int64_t*, int32_t**,
                                   float**);
template int64_t sparse_csr<double>(const int64_t*, const int32_t*, const double*, int64_t, int64_t,
                                    uint64_t, const uint64_t*, int64_t, double, int64_t*, int32_t**,
                                    double**);
template void sparse_given<float>(const int64_t*, const int32_t*, const float*, int64_t,
                                  const float*, const float*, const int64_t*, const int32_t*,
                                  const float*, int64_t, double, float*);
template void sparse_given<double>(const int64_t*, const int32_t*, const double*, int64_t,
                                   const double*, const double*, const int64_t*, const int32_t*,
                                   const float*, int64_t, double, double*);
template void hop<float>(int64_t, int64_t, const int64_t*, const int32_t*, const float*,
                         const RowBlocks<float>&, double, bool, float*, const float*, float*);
template void hop<double>(int64_t, int64_t, const int64_t*, const int32_t*, const double*,
                          const RowBlocks<double>&, double, bool, double*, const double*, double*);
template void accumulate<float>(const float*, int64_t, int64_t, double, bool, float*, const float*);
template void accumulate<double>(const double*, int64_t, int64_t, double, bool, double*,
                                 const double*);
}  // namespace rp
}  // namespace matkern
