"""The CPU's BLAS route for one large matrix: syrk/herk products (half a GEMM each), with the
C++ pass (``normalize``, shared with _gram_syrk) that mirrors, measures and rescales the
product between steps. complex64 runs its first products in 64-bit (WIDE_STEPS)."""

from __future__ import annotations

import math

import numpy as np

from . import _dispatch
from .reference.gram import MARGIN, certify_chain

# The 64-bit type 32-bit input is widened to (here for the first WIDE_STEPS products; on
# the GPU for every product of a large side, see _gram_cuda).
WIDE = {np.dtype(np.float32): np.dtype(np.float64), np.dtype(np.complex64): np.dtype(np.complex128)}
# complex64 inputs on the BLAS path run their first products in 64-bit: while the spectrum
# is still flat, ||G_t||_F^2 / sigma_1(G_t)^2 is large (~n/5 for a square Gaussian matrix)
# and so would be the float32 rounding margin (5% on a 2048 x 2048 matrix, against 0.9% for
# the iteration itself); from the fourth product on it is small and float32 products are
# certified tightly. Costs 1.5x the all-float32 time.
WIDE_STEPS = 3


def normalize(G, mirror, scale):
    """(e, F, f, r) of the C++ pass (gram_normalize) on one 2-D C-contiguous array G
    (modified in place when mirroring or scaling); r bounds || |G| ||_2 after scaling when
    mirroring (the largest row sum of |entries|), else is inf."""
    rows, cols = G.shape
    cplx = G.dtype.kind == "c"
    e = np.zeros(1, np.int32)
    F = np.zeros(1)
    f = np.zeros(1)
    r = np.zeros(1)
    real = G.view(G.real.dtype) if cplx else G
    _dispatch.cpu().gram_normalize(real.reshape(-1), 1, rows, cols, cplx, mirror, scale, e, F, f, r)
    return int(e[0]), float(F[0]), float(f[0]), float(r[0])


def bound_blas(W, n_iter):
    """Certified bound for one large matrix W (m, n) on the CPU: syrk/herk products."""
    from scipy.linalg import blas

    m, n = W.shape
    c, k0 = min(m, n), max(m, n)
    cplx = W.dtype.kind == "c"
    rks = {
        np.dtype(np.float32): blas.ssyrk,
        np.dtype(np.float64): blas.dsyrk,
        np.dtype(np.complex64): blas.cherk,
        np.dtype(np.complex128): blas.zherk,
    }
    H = W.copy()
    e0, F0, f0, r0 = normalize(H, False, True)
    if F0 == 0.0:
        return 0.0
    # fs[t] bounds || |H_t| ||_2, which bounds the product's rounding error (gamma fs[t]^2,
    # spectral norm): the Frobenius norm, or for the symmetric H_t (t >= 1) the largest row
    # sum of |entries| when smaller (it is, by far, once the spectrum has a few large values).
    es, fs, ks, sdt, conv, rs = [e0], [f0 * math.sqrt(MARGIN)], [], [], [0.0], [r0]
    F = fs[0]
    wide = WIDE.get(W.dtype)
    n_wide = WIDE_STEPS if wide is not None else 0
    # G = B B^* with B the c x k smaller-side view; Fortran-ordered outputs, upper triangle
    # filled = the lower triangle of their C-ordered transpose, which the C++ pass mirrors.
    rows_are_c = m < n
    for t in range(n_iter):
        if t < n_wide and H.dtype != wide:
            H = H.astype(wide)  # exact
        elif t >= n_wide and H.dtype != W.dtype:
            # Round H_t to the input's precision: |H_t - H'_t| <= u |H_t| entrywise, so
            # ||H_t - H'_t||_2 <= u fs[t]; and every row sum of |H'_t| <= (1 + u) rs[t].
            u = 2.0**-24
            conv[t] += u / (1 - u) * fs[t] * MARGIN + math.sqrt(c * c) * 2.0**-149
            H = np.ascontiguousarray(H.astype(W.dtype))
            fs[t] = min(normalize(H, False, False)[2], rs[t] * (1 + 2 * u)) * math.sqrt(MARGIN)
        rk = rks[H.dtype]
        sdt.append(H.dtype)
        if rows_are_c:  # B = H (c x k): a = H.T (F-contiguous), a^T a = H H^T
            G = rk(1.0, H.T, trans=2 if cplx else 1)
        else:  # B = H^T: a = H.T, a a^T = H^T H
            G = rk(1.0, H.T, trans=0)
        ks.append(H.shape[1] if rows_are_c else H.shape[0])
        H = G.T  # C-contiguous view
        last = t + 1 == n_iter
        e, F, f, r = normalize(H, True, not last)
        if last:
            break
        es.append(e)
        fs.append(min(f, r) * math.sqrt(MARGIN))
        rs.append(r)
        conv.append(0.0)
        rows_are_c = True
    T = len(ks) or 1
    return float(
        certify_chain(
            [es[:T]], [fs[:T]], [F], ks, c, k0, W.dtype, step_dtypes=sdt or None, conv=conv[:T]
        )[0]
    )
