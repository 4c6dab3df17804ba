"""Norm and trace routes of ``matkern.matfun`` for the "cpu" and "cuda" backends, written once
over the array module: every probe block goes through one product (GEMM for arrays, matkern's
SpMM for scipy sparse matrices, ``matmat`` for a LinearOperator), never a Python loop over
probe vectors.

Spectral sums tr f(A^T A) (nuclear norm: f = sqrt; Schatten-p: f = x^(p/2)) use Hutch++ with
stochastic Lanczos quadrature: Q, an orthonormal basis of (A^T A) Omega, takes the dominant
part exactly by Rayleigh-Ritz (the singular values of A Q), and the rest,
tr((I - QQ^T) f(A^T A) (I - QQ^T)), is Hutchinson's estimate whose quadratic forms
g^T f(M) g are Gauss quadratures from ``lanczos_steps`` Lanczos steps run on all probes at
once (one product with A and one with A^T per step, full reorthogonalization).
"""

from __future__ import annotations

import numpy as np

from . import _dispatch


def rademacher(rng, shape, dtype, xp):
    """+-1 probes drawn on the host from ``rng`` (reproducible on every device)."""
    g = rng.integers(0, 2, size=shape).astype(dtype) * 2 - 1
    return xp.asarray(g)


def apply(op, V, be):
    """op @ V for a probe block V (n, r): one GEMM, one SpMM or one matmat."""
    if hasattr(op, "matmat") and not hasattr(op, "tocsr"):  # a LinearOperator
        return op.matmat(V)
    if _dispatch.is_sparse(op):
        from . import _spmm

        # matkern's GPU SpMM has no float64 kernels: cupyx's product there
        ok = (np.float32,) if be == "cuda" else (np.float32, np.float64)
        if op.dtype in ok and V.dtype == op.dtype:
            return _spmm.spmm(op, V, backend=be)
        return op @ V
    return op @ V


def trace(op, n, n_probes, method, rng, dtype, xp, be):
    """Hutchinson or Hutch++ estimate of tr(op) (float)."""
    if method == "hutchinson":
        G = rademacher(rng, (n, n_probes), dtype, xp)
        return float(_dispatch.to_host((G * apply(op, G, be)).sum()) / n_probes)
    k = max(1, n_probes // 3)
    r = max(1, n_probes - 2 * k)
    S = rademacher(rng, (n, k), dtype, xp)
    Q, _ = xp.linalg.qr(apply(op, S, be))
    G = rademacher(rng, (n, r), dtype, xp)
    G = G - Q @ (Q.T @ G)
    Y = apply(op, xp.concatenate([Q, G], axis=1), be)  # both blocks in one product
    low = (Q * Y[:, : Q.shape[1]]).sum()
    rest = (G * Y[:, Q.shape[1] :]).sum() / r
    return float(_dispatch.to_host(low + rest))


def lanczos_quadratic_forms(matvec, V, steps, f, xp):
    """(r,) float64 estimates of v^T f(M) v for the columns v of V (n, r), M symmetric PSD
    given by ``matvec`` on blocks: ``steps`` Lanczos steps per column, all columns at once,
    then the Gauss quadrature ||v||^2 sum_i U[0, i]^2 f(theta_i) of each tridiagonal T."""
    n, r = V.shape
    steps = max(1, min(steps, n))
    nrm = xp.sqrt((V * V).sum(axis=0))
    q = V / xp.where(nrm > 0, nrm, 1)
    basis = [q]
    alphas, betas = [], []
    prev, beta_prev = None, None
    tiny = float(np.finfo(V.dtype).eps) * 10
    for j in range(steps):
        w = matvec(q)
        alpha = (q * w).sum(axis=0)
        w = w - alpha * q
        if prev is not None:
            w = w - beta_prev * prev
        # full reorthogonalization (twice is enough): Lanczos in float32 loses it fast
        for _ in range(2):
            for b in basis:
                w = w - b * (b * w).sum(axis=0)
        beta = xp.sqrt((w * w).sum(axis=0))
        alphas.append(alpha)
        scale_ = xp.maximum(xp.abs(alphas[0]), 1e-300)
        live = beta > tiny * scale_
        beta = xp.where(live, beta, 0)
        betas.append(beta)
        if j == steps - 1:
            break
        prev, beta_prev = q, beta
        q = xp.where(live, w / xp.where(live, beta, 1), 0)
        basis.append(q)
    a = np.stack([_dispatch.to_host(x) for x in alphas], axis=1).astype(np.float64)
    b = np.stack([_dispatch.to_host(x) for x in betas], axis=1).astype(np.float64)[:, :-1]
    s = a.shape[1]
    T = np.zeros((r, s, s))
    idx = np.arange(s)
    T[:, idx, idx] = a
    T[:, idx[:-1], idx[1:]] = b
    T[:, idx[1:], idx[:-1]] = b
    theta, U = np.linalg.eigh(T)
    weights = U[:, 0, :] ** 2
    vals = (weights * f(np.maximum(theta, 0.0))).sum(axis=1)
    return vals * _dispatch.to_host(nrm).astype(np.float64) ** 2


def spectral_sum(A, f, n_probes, lanczos_steps, rng, power_iter=2):
    """Hutch++-style estimate of tr f(A^T A) (on the smaller Gram side M^T M) for a dense A
    and f(0) = 0: Q an orthonormal basis of (M^T M)^q Omega (n_probes/3 columns, q =
    ``power_iter`` steps, re-orthonormalized), the dominant part by Rayleigh-Ritz,
    tr f(Q^T M^T M Q) = sum f(s_i^2) over the singular values of M Q, and the rest,
    tr f(P M^T M P) with P = I - QQ^T, by Hutchinson on the remaining probes (projected into
    range P) with Lanczos quadrature. Exact when Q spans an invariant subspace holding the
    whole range; otherwise both parts lean high (sqrt is concave: the Rayleigh-Ritz and Gauss
    quadrature values exceed the true ones), by a fraction of the part outside the sketch."""
    xp = _dispatch.array_module(A)
    M = A if A.shape[0] >= A.shape[1] else A.T  # M^T M is the smaller Gram matrix
    d = M.shape[1]

    def gram(V):
        return M.T @ (M @ V)

    k = max(1, min(n_probes // 3, d))
    r = max(1, n_probes - 2 * k)
    Q = xp.asarray(rng.standard_normal((d, k)).astype(A.dtype))
    for _ in range(max(1, power_iter)):
        Q, _ = xp.linalg.qr(gram(Q))
    s = xp.linalg.svd(M @ Q, compute_uv=False)
    low = float(f(np.maximum(_dispatch.to_host(s).astype(np.float64), 0.0) ** 2).sum())
    if k >= d:
        return low
    G = rademacher(rng, (d, r), A.dtype, xp)
    G = G - Q @ (Q.T @ G)

    def proj_gram(V):  # P M^T M P: Lanczos stays in range P
        W = gram(V)
        return W - Q @ (Q.T @ W)

    return low + float(lanczos_quadratic_forms(proj_gram, G, lanczos_steps, f, xp).mean())
