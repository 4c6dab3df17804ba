"""The matrix-function routes of ``matkern.matfun`` for the "cpu" and "cuda" backends: batched
iterations written once over the array module (NumPy on the CPU, CuPy on the GPU), every
product one ``xp.matmul`` over the whole stack (OpenBLAS gemm/syrk per matrix on the CPU,
one cuBLAS strided-batched launch per product on the GPU), every linear solve one batched
``xp.linalg.solve``.

Scaling. Each matrix is first divided by its largest |entry| (so nothing below overflows or
underflows), then by a per-matrix bound: the certified Gram-iteration bound of
``_gram_batch.bounds`` (an upper bound on the spectral norm, so the singular values or
eigenvalues of the scaled matrix are at most 1 and the iterations cannot leave their
convergence region), the Frobenius norm, or the trace (PSD matrices).
"""

from __future__ import annotations

import math

import numpy as np

from . import _dispatch, _gram_batch
from .reference.matfun import _pade_terms, _taylor_terms, ns_coefficients

# stop an adaptive iteration when its residual falls below this (per working dtype) or stalls
TOL = {np.dtype(np.float32): 4e-7, np.dtype(np.float64): 1e-14}
MAX_ITER = 60


def work_dtype(dtype):
    """float64 for float64 input, float32 otherwise (float16 is accumulated in float32)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _add_diag(P, a):
    """P[..., i, i] += a in place for a C-contiguous stack P (batch, k, k)."""
    k = P.shape[-1]
    P.reshape(P.shape[0], k * k)[:, :: k + 1] += a


def _eye_like(X, batch):
    xp = _dispatch.array_module(X)
    k = X.shape[-1]
    eye = xp.zeros((batch, k, k), dtype=X.dtype)
    _add_diag(eye, 1)
    return eye


def normalize(X, scale, be, scale_iter=4):
    """(X / s, s): X (batch, m, n) in its working dtype divided per matrix by s >= ||X||_2
    ("gram": certified bound; "frobenius"; "trace": for PSD stacks), s a float64 NumPy array
    (0 for a zero matrix, which is left as it is). X is first divided by its largest |entry|,
    so the bounds never overflow and the division never leaves the normal range."""
    xp = _dispatch.array_module(X)
    batch = X.shape[0]
    mx = xp.abs(X).reshape(batch, -1).max(axis=1)
    safe = xp.where(mx > 0, mx, 1).astype(X.dtype)
    Xn = X / safe[:, None, None]
    if scale == "gram":
        s = _gram_batch.bounds(xp.ascontiguousarray(Xn), scale_iter, be)
    elif scale == "frobenius":
        s = _dispatch.to_host(xp.sqrt((Xn.astype(np.float64) ** 2).sum(axis=(1, 2))))
    else:  # trace
        s = _dispatch.to_host(xp.trace(Xn, axis1=1, axis2=2).astype(np.float64))
    s = np.asarray(s, dtype=np.float64)
    s_safe = np.where(s > 0, s, 1.0)
    Xn /= xp.asarray(s_safe.astype(X.dtype))[:, None, None]
    return Xn, s * _dispatch.to_host(mx).astype(np.float64)


def orthogonalize(G, n_iter, coefficients, scale, lower, scale_iter, be):
    """Newton-Schulz polar factor of a stack G (batch, m, n), result in G's dtype. The Gram
    side: X X^T (m <= n) or X^T X (m > n), so every product is on the smaller square and no
    transpose is copied."""
    xp = _dispatch.array_module(G)
    wd = work_dtype(G.dtype)
    X = G.astype(wd, copy=False)
    X, _ = normalize(X, scale, be, scale_iter)
    wide = X.shape[1] <= X.shape[2]
    for a, b, c in ns_coefficients(coefficients, n_iter, lower):
        Xt = xp.swapaxes(X, 1, 2)
        A = xp.matmul(X, Xt) if wide else xp.matmul(Xt, X)
        P = A * wd.type(b)
        if c:
            P += wd.type(c) * xp.matmul(A, A)
        _add_diag(P, wd.type(a))
        X = xp.matmul(P, X) if wide else xp.matmul(X, P)
    return X.astype(G.dtype, copy=False)


def _converged(resid, prev, tol):
    """An adaptive iteration stops at tol, or once the quadratic convergence stalls at the
    working precision (the residual no longer halves after falling below 1e-2)."""
    return resid <= tol or (resid < 1e-2 and resid > 0.5 * prev)


def _resid(E, xp):
    """max over the stack of ||E||_F / sqrt(n) (host float)."""
    n = E.shape[-1]
    return float(_dispatch.to_host(xp.sqrt((E * E).sum(axis=(1, 2)).max())) / math.sqrt(n))


def sqrtm(A, method, n_iter, scale, inverse, be):
    """(result in A's dtype, iterations run) for a stack A (batch, n, n) of symmetric PSD
    matrices: A^(1/2) or A^(-1/2) by coupled Newton-Schulz, Taylor or Pade."""
    xp = _dispatch.array_module(A)
    wd = work_dtype(A.dtype)
    batch = A.shape[0]
    Y, c = normalize(A.astype(wd, copy=False), scale, be)
    eye = _eye_like(Y, batch)
    zero = c <= 0
    if zero.any():  # the iterations need a nonzero matrix: run on I, scale by 0 (or inf) below
        Y[xp.asarray(zero)] = eye[0]
    if method == "newton-schulz":
        Y, its = _ns_sqrt(Y, eye, n_iter, inverse, xp)
    elif method == "taylor":
        Zm = eye - Y
        R, P = eye.copy(), eye
        for coef in _taylor_terms(n_iter, inverse):
            P = xp.matmul(P, Zm)
            R += wd.type(coef) * P
        Y, its = R, n_iter
    else:
        Y, its = _pade(Y, eye, n_iter, inverse, xp), n_iter
    c_safe = np.where(zero, 1.0, c)
    f = c_safe ** (-0.5) if inverse else np.sqrt(c)
    Y *= xp.asarray(f.astype(wd))[:, None, None]
    if inverse and zero.any():  # A = 0 has no inverse square root
        Y[xp.asarray(zero)] = np.inf
    return Y.astype(A.dtype, copy=False), its


def _ns_sqrt(Y, eye, n_iter, inverse, xp):
    """Coupled Newton-Schulz (Higham): T = (3I - Z Y)/2, Y <- Y T, Z <- T Z; Y -> (A/c)^(1/2),
    Z -> (A/c)^(-1/2) for eigenvalues of A/c in (0, 1]. n_iter None: until ||I - Z Y||
    reaches the working precision (at most MAX_ITER steps)."""
    Z = eye.copy()
    tol = TOL[Y.dtype]
    prev, its = math.inf, 0
    for its in range(1, (n_iter or MAX_ITER) + 1):
        M = xp.matmul(Z, Y) if its > 1 else Y.copy()
        T = eye * Y.dtype.type(1.5) - M * Y.dtype.type(0.5)
        if n_iter is None:
            resid = _resid(M - eye, xp)
            if _converged(resid, prev, tol):
                its -= 1
                break
            prev = resid
        Y = xp.matmul(Y, T)
        Z = xp.matmul(T, Z) if its > 1 else T
    return (Z if inverse else Y), its


def _pade(Y, eye, m, inverse, xp):
    """[m/m] Pade approximant of sqrt(I - Zm), Zm = I - Y, in partial fractions:
    I - sum_j alpha_j (I - beta_j Zm)^(-1) Zm, the m solves as one batched solve."""
    wd = Y.dtype
    batch, n = Y.shape[0], Y.shape[-1]
    alpha, beta = _pade_terms(m)
    Zm = eye - Y
    be_ = xp.asarray(beta.astype(wd))[:, None, None, None]
    lhs = eye[None] - be_ * Zm[None]
    rhs = xp.broadcast_to(Zm[None], lhs.shape)
    sol = xp.linalg.solve(lhs.reshape(m * batch, n, n), xp.ascontiguousarray(rhs).reshape(-1, n, n))
    sol = sol.reshape(m, batch, n, n)
    R = eye - xp.tensordot(xp.asarray(alpha.astype(wd)), sol, axes=(0, 0))
    if inverse:
        R = xp.linalg.solve(R, eye)
    return R


def lyapunov(S, grad, n_iter, be):
    """(X, iterations) with S X + X S = grad for a stack of symmetric PSD S, by the
    Newton-Schulz sign iteration of [[S, grad], [0, -S]] (Song et al.'s backward): with
    B = S/c, C = grad/c (c the certified bound of S), B <- B (3I - B^2)/2,
    C <- (3C - B^2 C - C B^2 + B C B)/2, then B -> I and C -> 2X."""
    xp = _dispatch.array_module(S)
    wd = work_dtype(S.dtype)
    batch = S.shape[0]
    B, c = normalize(S.astype(wd, copy=False), "gram", be)
    zero = c <= 0
    c_safe = np.where(zero, 1.0, c)
    C = grad.astype(wd) / xp.asarray(c_safe.astype(wd))[:, None, None]
    eye = _eye_like(B, batch)
    if zero.any():  # S = 0: X = 0 (the pseudo-solution of the reference)
        B[xp.asarray(zero)] = eye[0]
        C[xp.asarray(zero)] = 0
    half = wd.type(0.5)
    tol = TOL[wd]
    prev, its = math.inf, 0
    for its in range(1, (n_iter or MAX_ITER) + 1):
        B2 = xp.matmul(B, B)
        if n_iter is None:
            resid = _resid(B2 - eye, xp)
            if _converged(resid, prev, tol):
                its -= 1
                break
            prev = resid
        C = half * (3 * C - xp.matmul(B2, C) - xp.matmul(C, B2) + xp.matmul(xp.matmul(B, C), B))
        B = half * xp.matmul(B, 3 * eye - B2)
    return (C * half).astype(S.dtype, copy=False), its
