"""Reference (plain NumPy) spectral norms: exact values by SVD, and the certified Gram
iteration written for reading (one matrix at a time, ``numpy.matmul`` for the products).

The Gram iteration (Delattre et al., ICML'23): with G_0 = W and G_{t+1} = G_t G_t^*,
sigma_max(W)^(2^t) = sigma_max(G_t) <= ||G_t||_F, so ||G_t||_F^(1/2^t) bounds sigma_max(W)
from above and the gap shrinks superlinearly in t. Certified in floating point here by
(1) rescaling each G_t by an exact power of two 2^-e_t (no rounding; the exponents are the
log-scale bookkeeping, so nothing overflows), (2) the rounding of each product bounded by the
standard model |fl(B B^*) - B B^*| <= gamma_k |B| |B|^T, whose spectral norm is at most
gamma_k || |B| ||_2^2 <= gamma_k min(||B||_F, sqrt(max row sum * max column sum of |B|))^2,
and (3) walking the chain back up with that error added at every step:
sigma(H_t)^2 <= sigma(G_{t+1}) + delta_t. See :func:`certify_chain`. W itself is first
brought to a largest |entry| in [1/2, 1) by an exact power of two (see :func:`gram_bound`),
so the whole range of scales, subnormal to near overflow, is certified; a bound above the
largest float64 raises OverflowError.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["spectral_norm", "conv_spectral_norm", "conv_matrices", "gram_bound"]

MARGIN = 1.0 + 1e-12  # covers the float64 rounding of the chain's own arithmetic


def _max_exponent(x):
    """Binary exponent p of max |entry| of x (max |entry| in [2^(p-1), 2^p)), 0 when x is 0."""
    x = np.asarray(x)
    r = x.view(x.real.dtype) if np.iscomplexobj(x) else x
    mx = float(max(r.max(), -r.min())) if r.size else 0.0
    return math.frexp(mx)[1] if mx > 0 and math.isfinite(mx) else 0


def spectral_norm(W):
    """Exact largest singular value of W (m, n) -> float, or of each matrix of a stack
    (..., m, n) -> float64 array, by LAPACK SVD in float64/complex128. The SVD runs on W
    times an exact power of two that brings its largest entry near 1 (the norm scales exactly
    with it), so subnormal and near-overflow inputs keep full relative accuracy."""
    W = np.asarray(W)
    wide = np.complex128 if np.iscomplexobj(W) else np.float64
    # One exponent per matrix. Scaling up is exact; scaling down is exact for every entry
    # within 2^-1000 of the matrix's largest.
    r = W.view(W.real.dtype) if np.iscomplexobj(W) else W
    mx = np.abs(r).max(axis=(-2, -1)).astype(np.float64) if W.size else np.zeros(W.shape[:-2])
    p = np.where(mx > 0, np.frexp(mx)[1], 0)
    s = np.linalg.svd(_ldexp(W.astype(wide), -p[..., None, None]), compute_uv=False)[..., 0]
    s = np.ldexp(s, p)
    return float(s) if W.ndim == 2 else s


def _ldexp(x, e):
    """x * 2^e for a real or complex array x (exact barring under/overflow)."""
    if np.iscomplexobj(x):
        out = np.empty_like(x)
        r = out.view(x.real.dtype)
        np.ldexp(np.ascontiguousarray(x).view(x.real.dtype), e, out=r)
        return out
    return np.ldexp(x, e).astype(x.dtype, copy=False)


def conv_matrices(kernel, input_size):
    """The h*(w//2+1) matrices (c_out x c_in, complex) that a 2-D circular convolution with
    ``kernel`` (c_out, c_in, kh, kw) on (h, w) inputs is block-diagonalized into by the 2-D DFT
    (Sedghi et al., ICLR'19); the other frequencies are their conjugates (real kernel)."""
    h, w = input_size
    K = np.fft.rfft2(np.asarray(kernel), s=(h, w), axes=(-2, -1))  # (c_out, c_in, h, w//2+1)
    return np.ascontiguousarray(K.transpose(2, 3, 0, 1).reshape(-1, *K.shape[:2]))


def conv_spectral_norm(kernel, input_size):
    """Exact spectral norm of the circular 2-D convolution (Sedghi et al.): the largest
    singular value over the per-frequency matrices, by SVD in complex128."""
    k64 = np.asarray(kernel, dtype=np.float64)
    p = _max_exponent(k64)  # DFT and SVD near 1, the norm scaled back exactly (see spectral_norm)
    K = conv_matrices(np.ldexp(k64, -p), input_size)
    return math.ldexp(float(np.linalg.svd(K, compute_uv=False)[:, 0].max()), p)


def _unit(dtype):
    return 2.0**-24 if np.dtype(dtype) in (np.float32, np.complex64) else 2.0**-53


def _tiny(dtype):
    return 2.0**-149 if np.dtype(dtype) in (np.float32, np.complex64) else 2.0**-1074


def gamma(k, dtype):
    """Relative rounding bound of a length-k (complex: planar 2k+2) product sum in ``dtype``
    (Higham's gamma; doubled for complex products)."""
    u = _unit(dtype)
    cplx = np.dtype(dtype).kind == "c"
    kk = 2 * k + 2 if cplx else k
    return (2.0 if cplx else 1.0) * kk * u / (1.0 - kk * u)


def certify_chain(e, f, F, ks, c, k0, dtype, step_dtypes=None, conv=None, gks=None):
    """Certified upper bound from the Gram iteration's bookkeeping (vectorized over a batch).

    e, f: (batch, T) exponents and Frobenius norms of H_t = 2^-e_t G_t (t = 0..T-1, G_0 = W);
    F: (batch,) ||G_T||_F of the last product (or ||H_0||_F when T = 0); ks: inner dimension
    of each product; c, k0: the smaller and larger side of W; step_dtypes: the dtype each
    product ran in (default: dtype); conv: per step, a bound on ||H_t - H'_t||_F when H_t was
    rounded to a narrower dtype H'_t before its product (then f[:, t] is ||H'_t||_F); gks:
    per step, the length in gamma_k of the product's rounding bound when it is not ks[t] (a
    product whose summation order is known, such as chunked sums: see gram_syrk_step).
    Returns float64 (batch,).
    """
    e = np.asarray(e, dtype=np.int64)
    f = np.asarray(f, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    T = e.shape[1]
    tiny = _tiny(dtype)
    u = F * MARGIN
    if T == 0:
        raise ValueError("certify_chain needs at least the scaling of W")
    n_prod = len(ks)
    if n_prod == 0:
        out = np.ldexp(u + math.sqrt(c * k0) * tiny, e[:, 0])
    else:
        for t in range(n_prod - 1, -1, -1):
            sdt = dtype if step_dtypes is None else step_dtypes[t]
            glen = ks[t] if gks is None else gks[t]
            delta = gamma(glen, sdt) * f[:, t] ** 2 * MARGIN + c * ks[t] * 2 * tiny
            eta = (math.sqrt(c * k0) if t == 0 else c) * tiny
            if conv is not None:
                eta = eta + conv[t]
            v = np.sqrt((u + delta) * MARGIN) * MARGIN + eta
            u = np.ldexp(v, e[:, t])
        out = u
    # ldexp into the subnormal range rounds: step up one ulp there.
    small = (out > 0) & (out < np.finfo(np.float64).tiny)
    return np.where(small, np.nextafter(out, np.inf), out)


def _scale_pow2(x, e):
    """x * 2^-e in float64, rounded back to x's dtype (exact barring underflow). By ldexp, not
    by a float factor 2.0 ** -e: that factor overflows for e < -1023 (subnormal input)."""
    wide = np.complex128 if np.iscomplexobj(x) else np.float64
    return _ldexp(x.astype(wide), -e).astype(x.dtype)


def _fro(x):
    """Frobenius norm in float64 without overflow."""
    x = np.asarray(x)
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if mx == 0.0 or not np.isfinite(mx):
        return mx
    p = math.frexp(mx)[1]
    wide = np.complex128 if np.iscomplexobj(x) else np.float64
    return math.ldexp(float(np.sqrt(np.sum(np.abs(_ldexp(x.astype(wide), -p)) ** 2))), p)


def _row_sum_bound(H):
    """Upper bound on || |H| ||_2 <= sqrt(largest row sum * largest column sum of |H|)
    (complex: |re| + |im| >= |entry|), which bounds the next product's rounding error like
    the Frobenius norm does and is far smaller once a few singular values dominate. (For the
    Hermitian Gram matrices both sums are the same up to the product's rounding.)"""
    A = np.abs(H.real).astype(np.float64) + np.abs(H.imag).astype(np.float64)
    up = 1.0 + (2 * max(H.shape) + 4) * 2.0**-52
    return math.sqrt(float(A.sum(axis=1).max()) * float(A.sum(axis=0).max())) * up


def _chunked_gram(H, chunk):
    """H H^* as the sum, in H's precision, of the products over chunks of ``chunk`` columns:
    each chunk's sums have at most chunk roundings (whatever order matmul uses inside), each
    chunk is added once, so the error is within gamma_{chunk + number of chunks}."""
    k = H.shape[1]
    G = None
    for p0 in range(0, k, chunk):
        P = H[:, p0 : p0 + chunk]
        P = P @ P.conj().T
        G = P if G is None else G + P
    return G


def gram_bound(W, n_iter=6, wide_steps=0, chunk=None):
    """Certified upper bound on sigma_max(W) for one matrix W (m, n) of float32, float64,
    complex64 or complex128, by ``n_iter`` Gram products in W's own precision (the first
    ``wide_steps`` ones in 64-bit for 32-bit input, then rounded back, as the CPU backend does
    for large complex64 matrices). ``chunk``: each product summed in chunks of that many terms
    (its rounding bound then gamma_{chunk + k/chunk} instead of gamma_k), as the CPU's float32
    SYRK does for large matrices. Returns a Python float (float64 holds the bound without
    rounding it down), certified at every scale of W (subnormal to near overflow); raises
    OverflowError when the bound exceeds the largest float64, as every backend does."""
    W = np.asarray(W)
    m, n = W.shape
    # Bring the largest |entry| into [1/2, 1) by an exact power of two first, and scale the
    # bound back at the end: the iteration then never meets subnormal or overflowing values
    # on its own account, whatever the input's scale (a subnormal float64 W used to raise
    # OverflowError). Scaling up is exact; scaling down rounds only entries that fall below
    # the dtype's normal range, each by at most tiny/2 (complex: tiny/sqrt(2) in modulus), so
    # that rounding E has ||E||_2 <= ||E||_F <= sqrt(m n) tiny, added to the bound.
    p = _max_exponent(W)
    under = math.sqrt(m * n) * _tiny(W.dtype) if p > 0 else 0.0
    b = _gram_bound_scaled(_ldexp(W, -p), n_iter, wide_steps, chunk)
    return float(unscale_bound(np.array([b]), np.array([p]), np.array([under]), "gram_bound")[0])


def unscale_bound(b, p, under, fn):
    """Bounds b (float64 array) of inputs scaled by 2^-p (int array), plus ``under`` (the
    scaling's rounding, spectral norm), scaled back by 2^p, rounded upward (the additions by
    one ulp, a result in the subnormal range by one more). A bound above the largest float64
    raises OverflowError (an infinite bound is true but useless; every backend does the same)."""
    b = np.asarray(b, dtype=np.float64)
    if np.isnan(b).any() or (b < 0).any():  # never return what is not a bound
        raise FloatingPointError(
            f"{fn}(): internal error, a bound came out {b.min()} (NaN "
            f"or negative) instead of a certified value; please report"
        )
    b = np.where(under > 0, np.nextafter(b + under, np.inf), b)
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(b, np.asarray(p, dtype=np.int64))
    if not np.all(np.isfinite(out)):
        raise OverflowError(
            f"{fn}(): the certified bound exceeds the largest float64 "
            f"({np.finfo(np.float64).max:.4g}); the norm scales exactly with "
            f"the input, so bound the input times a power of two instead"
        )
    small = (out > 0) & (out < np.finfo(np.float64).tiny)
    return np.where(small, np.nextafter(out, np.inf), out)


def _gram_bound_scaled(W, n_iter, wide_steps, chunk):
    """gram_bound of a W whose largest |entry| is in [1/2, 1) (or W = 0)."""
    m, n = W.shape
    c, k0 = min(m, n), max(m, n)
    B = W if m < n else W.T  # c x k: work on the smaller side
    F0 = _fro(W)
    if F0 == 0.0:
        return 0.0
    wide = {np.dtype(np.float32): np.float64, np.dtype(np.complex64): np.complex128}.get(W.dtype)
    if wide is None:
        wide_steps = 0
    e = [math.frexp(F0)[1]]
    H = _scale_pow2(np.ascontiguousarray(B), e[0])
    f = [_fro(H) * math.sqrt(MARGIN)]
    ks, gks, sdt, conv = [], [], [], [0.0]
    F = f[0]
    for t in range(n_iter):
        if t < wide_steps:
            H = H.astype(wide)
        elif H.dtype != W.dtype:  # back to 32-bit: ||H - round(H)||_F <= u ||H||_F
            u = 2.0**-24
            conv[t] += u / (1 - u) * f[t] * MARGIN + c * 2.0**-149
            H = H.astype(W.dtype)
            f[t] = _fro(H) * math.sqrt(MARGIN)
        k = H.shape[1]
        G = H @ H.conj().T if chunk is None else _chunked_gram(H, chunk)
        ks.append(k)
        gks.append(k if chunk is None else min(k, chunk + -(-k // chunk)))
        sdt.append(H.dtype)
        F = _fro(G)
        if t + 1 == n_iter:
            break
        e.append(math.frexp(F)[1])
        H = _scale_pow2(G, e[-1])
        f.append(min(_fro(H), _row_sum_bound(H)) * math.sqrt(MARGIN))
        conv.append(0.0)
    T = len(ks) or 1
    return float(
        certify_chain(
            [e[:T]],
            [f[:T]],
            [F],
            ks,
            c,
            k0,
            W.dtype,
            step_dtypes=sdt or None,
            conv=conv[:T],
            gks=gks or None,
        )[0]
    )
