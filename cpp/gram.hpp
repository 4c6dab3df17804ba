// Certified spectral-norm bounds by Gram iteration (Delattre et al., ICML'23) on the CPU.
// Real matrices are float/double arrays; complex ones are interleaved (re, im) pairs of the
// same real type (NumPy's complex64/complex128 memory layout) with cplx = true.
#pragma once
#include <cstdint>

namespace matkern {

// Scale contract: these kernels take their inputs with the largest |entry| (conv: |tap|) in
// [2^-32, 2^32] (or all zero). They scale by 2^-p from that entry's exponent, which overflows
// for subnormal input, and the convolution routes form squares and fourth powers of the taps
// unscaled. The Python layer (matkern/_gram_batch.py, prescale) multiplies every other input
// by an exact power of two first and scales the bound back.

// out[b] = max |entry| of a[b * len : (b + 1) * len] (real values; complex: their parts), for
// the Python layer's scale check.
template <typename R>
void gram_max_abs_batch(const R* a, int64_t batch, int64_t len, double* out);

// out[b] >= sigma_max(A_b) for the batch of m x n matrices A (C-contiguous), by n_iter Gram
// products per matrix, each fused in cache (the Python layer sends min(m, n) <= 512). When
// prune_iter is in (0, n_iter) only out's maximum is as tight as n_iter: every matrix first
// runs prune_iter products, and those whose bound is already below the best rigorous lower
// bound of the batch keep that (looser but still valid) bound.
template <typename R>
void gram_bound_batch(const R* a, int64_t batch, int64_t m, int64_t n, bool cplx, int n_iter,
                      int prune_iter, double* out);

// out[f] >= sigma_max(K_f) for the nf frequency matrices K_f (c_out x c_in, complex) of a
// convolution, computed here from its taps (T = kh*kw rows of P = c_out*c_in values at row
// stride ld >= P: taps[t * ld + o * c_in + i] = kernel[o, i, t]) and phase table (cs, sn:
// nf x T, the phase of tap t at frequency f is cs - i sn): each thread sums its frequency's
// matrix in double, rounds it to R (through float when round32) and runs the fused Gram
// iteration on it, so the nf matrices are never stored. The n_probe frequencies in probe
// (distinct, in [0, nf)) run first; when there are any, only out's maximum is as tight as
// n_iter: the others stop once their bound is below the probes' best rigorous lower bound.
// fro[f] estimates ||K_f||_F (it picks the scaling only; 0 for a zero matrix).
//
// tf (optional): the non-probe frequencies' first product from the taps instead (see
// gram_kernel.inc, "First product from the taps"): K_t (ro x c, c the smaller side) at
// taps + t * ld, the tap pairs (pt, pu) of offset d in [start[d], start[d + 1]) for d = 0
// (the zero offset) .. nd, and their phases pc, ps (nf x nd); del64 bounds the double
// evaluation's error (Frobenius) for every frequency. Needs n_iter >= 1.
struct GramTapFirst {
  const double* taps;
  int64_t ld, ro, c;
  const int64_t *pt, *pu, *start;
  int64_t nd;
  const double *pc, *ps;
  double del64;
};
template <typename R>
void gram_conv_bound_batch(const double* taps, int64_t T, int64_t P, int64_t ld, const double* cs,
                           const double* sn, const double* fro, int64_t nf, int64_t c_out,
                           int64_t c_in, bool round32, int n_iter, const int64_t* probe,
                           int64_t n_probe, double* out, const GramTapFirst* tf = nullptr);

// For the BLAS path: for each rows x cols matrix of g (batch of them), optionally mirror the
// lower triangle to the upper one (conjugated; square only), then F[b] = ||g_b||_F (double
// accumulation, overflow-free); when scale, g_b <- g_b * 2^-e[b] with e[b] the binary exponent
// of F[b] (exact, barring underflow) and f[b] = ||g_b||_F after scaling (else e = 0, f = F).
// r[b]: when mirroring, an upper bound on the largest row sum of |entries| after scaling
// (complex: |re| + |im|), which bounds || |g_b| ||_2 for the symmetric g_b; else +inf.
template <typename R>
void gram_normalize(R* g, int64_t batch, int64_t rows, int64_t cols, bool cplx, bool mirror,
                    bool scale, int32_t* e, double* F, double* f, double* r);

// Chunked float32 SYRK step (gram_syrk.cpp): g (c x c, row-major, whole) = fac * fl(B B^T),
// B[i, l] at b[i * rs + l * cs] (c x k; any strides, so B may be a transpose); fac a power of
// two in float's normal range. Every entry sums chunks of kSyrkKC products in a fresh register
// accumulator, each added into the entry once, so its rounding error before scaling is at most
// gamma_{gram_syrk_gamma_len(k)} (|B| |B|^T)_ij; the scaling is exact barring underflow.
// sumsq >= ||g||_F^2 and rowmax >= the largest row sum of |g| (double sums, upward margins).
// Packed layout of a symmetric c x c matrix S (as the next step's B): ceil(c/16) panels of c
// rows of 16, P[(p * c + l) * 16 + q] = S[16p + q, l], zero for 16p + q >= c (never written:
// the caller zeroes the buffer once). packed_out writes g so; packed_in reads b so (k == c,
// rs and cs unused), which saves the next step its packing and the output its scattered
// row-major mirror writes.
constexpr int kSyrkMR = 6, kSyrkNR = 16, kSyrkKC = 128;
int64_t gram_syrk_gamma_len(int64_t k);
void gram_syrk_step(const float* b, int64_t rs, int64_t cs, int64_t c, int64_t k, bool packed_in,
                    float fac, float* g, bool packed_out, double* sumsq, double* rowmax);

namespace avx2 {
double gram_bound_one(const float* a, int64_t m, int64_t n, bool cplx, int n_iter, float* work,
                      double* lower, double stop_below);
double gram_bound_one(const double* a, int64_t m, int64_t n, bool cplx, int n_iter, double* work,
                      double* lower, double stop_below);
void gram_dft_taps(const double* taps, int64_t T, int64_t P, int64_t ld, const double* cs,
                   const double* sn, bool round32, float* out);
double gram_conv_freq(const double* taps, int64_t T, int64_t ld, const double* cs, const double* sn,
                      bool round32, int64_t c_out, int64_t c_in, double fro, int n_iter,
                      float* work, double stop_below);
double gram_conv_freq(const double* taps, int64_t T, int64_t ld, const double* cs, const double* sn,
                      bool round32, int64_t c_out, int64_t c_in, double fro, int n_iter,
                      double* work, double stop_below);
void gram_syrk_tile(int64_t kc, const float* ap, const float* bp, float* ct, bool first);
void gram_dft_taps(const double* taps, int64_t T, int64_t P, int64_t ld, const double* cs,
                   const double* sn, bool round32, double* out);
void gram_tap_pair_sum(const double* taps, int64_t ld, int64_t ro, int64_t c, const long long* pt,
                       const long long* pu, int64_t npair, double* M);
void gram_first_rows(const double* SA, int64_t nd, int64_t c, const double* pc, const double* ps,
                     int64_t nb, double* out);
double gram_bound_first(const double* g, int64_t c, int n_iter, float* work, double stop_below,
                        double del64, const float* a, int64_t m, int64_t n, double* lower);
double gram_bound_first(const double* g, int64_t c, int n_iter, double* work, double stop_below,
                        double del64, const double* a, int64_t m, int64_t n, double* lower);
}  // namespace avx2

// AVX-512: the SYRK's tiles t (rows ap0, C ct0) and t + 1 (ap1, ct1; nullptr: tile t alone)
// against one 16-column panel, each entry summed as avx2::gram_syrk_tile does.
namespace avx512 {
void gram_syrk_tile2(int64_t kc, const float* ap0, const float* ap1, const float* bp, float* ct0,
                     float* ct1, bool first);
}  // namespace avx512

}  // namespace matkern
