// bmm_f32 (matfun.hpp): per matrix, blocks of K (so that the block of A the tiles read stays
// in L2 while the panels of B go by), and in each every (tile of 8 rows, panel of 48
// columns, the first panel n % 48 wide when that is not 0) pair through the AVX-512
// register tile, straight from the operands as stored. A transposed B is first copied
// row-major (one pass, O(n k)). Results are float32 sums in k order within a K block,
// blocks added in order: the same for any thread count.
#include <algorithm>

#include "matfun.hpp"
#include "parallel.hpp"
#include "scratch.hpp"
#include "simd.hpp"

namespace matkern {
namespace {

#ifdef MATKERN_BUILD_AVX512
constexpr int64_t kKc = 256;
constexpr int64_t kMr = avx512::kBmmMr, kNr = avx512::kBmmNr;

struct BTag;

// One matrix: C (m, n) = op(A) op(B); its (panel, tile-group) pairs on the pool when parallel.
// ep: this matrix's epilogue (alpha, beta, gamma values, d its D) when ep.alpha is set.
// b_upper: op(B) upper triangular, so a panel's sums stop at its last column's row.
void one_matrix(int64_t m, int64_t n, int64_t k, const float* a, bool ta, const float* b, bool tb,
                bool b_upper, float* c, bool parallel, bool sym, const BmmEpilogue& ep) {
  if (k == 0) std::fill(c, c + m * n, 0.0f);
  if (k == 0 && !ep.alpha) return;
  const int64_t lda = ta ? m : k;
  if (tb) {  // B stored (n, k): its transpose, row-major (k, n)
    float* bt = thread_scratch<BTag, float>(size_t(k * n));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t q = 0; q < k; ++q) bt[q * n + j] = b[j * k + q];
    b = bt;
  }
  const int64_t tiles = (m + kMr - 1) / kMr, panels = (n + kNr - 1) / kNr;
  const int64_t per = 8, groups = (tiles + per - 1) / per;  // 64 rows of C a job
  // the narrow panel (n % 48 columns) comes first: with sym it then needs the fewest tiles
  const int64_t first = n - (panels - 1) * kNr;
  for (int64_t k0 = 0; k0 < k; k0 += kKc) {  // (no block when k == 0)
    const int64_t kc = std::min(kKc, k - k0);
    const bool acc = k0 > 0;
    auto job = [&](int64_t t) {
      const int64_t p = t % panels, g = t / panels;
      const int64_t j0 = p == 0 ? 0 : first + (p - 1) * kNr;
      const int nc = int(p == 0 ? first : kNr);
      const int64_t kn = b_upper ? std::min(kc, j0 + nc - k0) : kc;  // B's rows past j0 + nc: 0
      if (kn <= 0) return;  // (never in the first block: the tiles start from it)
      for (int64_t ti = g * per; ti < std::min(tiles, (g + 1) * per); ++ti) {
        const int64_t i0 = ti * kMr;
        if (sym && i0 >= j0 + nc) break;  // below the diagonal: mirrored afterwards
        const int mr = int(std::min<int64_t>(kMr, m - i0));
        const float* at = ta ? a + k0 * lda + i0 : a + i0 * lda + k0;
        avx512::bmm_tile(at, lda, ta, mr, b + k0 * n + j0, n, kn, c + i0 * n + j0, n, nc, acc);
      }
    };
    if (parallel) {
      parallel_for_chunks(panels * groups, job);
    } else {
      for (int64_t t = 0; t < panels * groups; ++t) job(t);
    }
  }
  if (ep.alpha) avx512::epilogue(c, m, n, sym, *ep.alpha, *ep.beta, ep.d, *ep.gamma);
  if (sym) avx512::mirror_upper(c, m, n);  // C = C^T
}

// Matrix i's epilogue: the i-th values and D.
BmmEpilogue nth(const BmmEpilogue& ep, int64_t i, int64_t size) {
  if (!ep.alpha) return ep;
  return {ep.alpha + i, ep.beta + i, ep.d + i * size, ep.gamma + i};
}
#endif

}  // namespace

bool bmm_enabled() {
#ifdef MATKERN_BUILD_AVX512
  return simd_level() >= Simd::avx512_vnni;
#else
  return false;
#endif
}

void add_transposed_f32(int64_t batch, int64_t k, const float* a, const float* b,
                        const float* alpha, const float* beta, float* out) {
#ifdef MATKERN_BUILD_AVX512
  for (int64_t i = 0; i < batch; ++i)
    avx512::add_transposed(k, a + i * k * k, b + i * k * k, alpha[i], beta[i], out + i * k * k);
#else
  (void)batch, (void)k, (void)a, (void)b, (void)alpha, (void)beta, (void)out;
#endif
}

void bmm_f32(int64_t batch, int64_t m, int64_t n, int64_t k, BmmOperand a, BmmOperand b, float* c,
             bool parallel, bool sym, const BmmEpilogue& ep) {
#ifdef MATKERN_BUILD_AVX512
  const int64_t sa = m * k, sb = k * n, sc = m * n;
  if (parallel && batch > 1) {  // matrices on the pool, each on one thread
    parallel_for_chunks(batch, [&](int64_t i) {
      one_matrix(m, n, k, a.data + i * sa, a.trans, b.data + i * sb, b.trans, b.upper, c + i * sc,
                 false, sym, nth(ep, i, sc));
    });
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    one_matrix(m, n, k, a.data + i * sa, a.trans, b.data + i * sb, b.trans, b.upper, c + i * sc,
               parallel, sym, nth(ep, i, sc));
#else
  (void)batch, (void)m, (void)n, (void)k, (void)a, (void)b, (void)c, (void)parallel, (void)sym,
      (void)ep;
#endif
}

}  // namespace matkern
