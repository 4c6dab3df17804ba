"""Matrix functions and norms: Newton-Schulz orthogonalization and square roots scaled by
certified spectral-norm bounds, nuclear and Schatten norms, stochastic traces, MaNo.

- ``orthogonalize``: the polar factor U V^T of a matrix or a stack (Muon's orthogonalized
  update), by Newton-Schulz on the smaller Gram side, scaled by matkern's certified
  Gram-iteration bound (``scale="gram"``: never below the spectral norm, so the iteration
  never leaves its convergence region, and far tighter than the Frobenius norm, so fewer
  iterations reach a given error).
- ``sqrtm_psd`` / ``inv_sqrtm_psd``: A^(1/2), A^(-1/2) of symmetric PSD matrices (covariance
  pooling) by coupled Newton-Schulz, or the Taylor / Pade polynomials of sqrt(I - Z) of the
  "fast matrix square root" paper (Song et al.); ``sqrtm_psd_backward``: the Lyapunov
  equation of the gradient, by the Newton-Schulz sign iteration.
- ``nuclear_norm`` (exact, the L_{1,2} approximation of the Matrix Nuclear-Norm paper, or
  Hutch++), ``schatten_norm``, ``trace_estimate`` (Hutchinson / Hutch++ for a matrix, a
  sparse matrix or a LinearOperator), ``mano_score`` (Xie et al., NeurIPS'24).

Layers. This family has no C++ or CUDA kernel of its own: the iterations are chains of
matrix products on whole stacks, and BLAS (numpy.matmul: OpenBLAS gemm/syrk per matrix) and
cuBLAS (cupy.matmul: one strided-batched launch per product) already run them at the
machine's GEMM rate; a fused kernel could only save the launches of stacks of tiny matrices,
which these sizes (64..4096) do not need. The family's native pieces are matkern's: the
certified Gram bound (C++/CUDA, ``_gram_batch``) and SpMM for sparse probes. The routes are
``_matfun_iter`` (iterations) and ``_matfun_norms`` (norms, traces); ``backend="reference"``
runs ``matkern.reference.matfun`` (plain NumPy, one matrix at a time).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _checks, _dispatch, _matfun_iter, _matfun_norms, _pow2
from .reference import matfun as _ref

__all__ = [
    "orthogonalize",
    "sqrtm_psd",
    "inv_sqrtm_psd",
    "sqrtm_psd_backward",
    "nuclear_norm",
    "schatten_norm",
    "trace_estimate",
    "mano_score",
]

_FLOATS = (np.float16, np.float32, np.float64)
COEFFICIENTS = ("cubic", "quintic", "muon", "polar")
SQRT_METHODS = ("newton-schulz", "polar", "pade", "taylor")
SQRT_DEFAULT_ITER = {"pade": 8, "taylor": 40}
MAX_ITER = 100


def _check_stack(x, name, fn, square=False, finite=True):
    _checks.check_array(x, name, fn, dtypes=_FLOATS, min_ndim=2, finite=finite)
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{fn}(): {name} must be square (..., n, n), got shape {x.shape}")
    _checks.check_index_range(x.shape[-1] * x.shape[-2], f"{name}.shape[-2] * {name}.shape[-1]", fn)
    return x


def _check_psd_minors(A, fn):
    """Finite entries and cheap necessary conditions of semi-definiteness (the 1 x 1 and
    2 x 2 principal minors): no diagonal entry below -t and no |A[i, j]| above
    sqrt(A[i, i] A[j, j]) + t, t = n eps max|A| (rounding of a PSD matrix). Such inputs used
    to run the iterations on x^2 < 0 and return NaN or entries of 1e23; other indefinite
    matrices still pass (a full test would cost an eigendecomposition, more than the call).
    One pass over A, in pieces on matkern's threads for NumPy (1.3 ms for 64 x 256 x 256
    float32 on the 2-core Zen 5, 6.5 ms as one NumPy expression)."""
    n = A.shape[-1]
    flat = A.reshape(-1, n, n)
    flags = _dispatch.to_host(_matfun_iter.map_chunks(_minors_flags, flat)[0])
    if flags[:, 0].any():
        raise ValueError(f"{fn}(): A must be finite, got NaN or Inf")
    bad = flags[:, 1:].any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = (
            "a negative diagonal entry"
            if flags[i, 1]
            else "an entry |A[i, j]| above sqrt(A[i, i] A[j, j])"
        )
        raise ValueError(
            f"{fn}(): A must be symmetric positive semi-definite, got {what} in matrix {i} of "
            f"the stack (of shape {A.shape})"
        )


def _minors_flags(flat):
    """((batch, 3) bool array: [not finite, negative diagonal, entry above the 2 x 2 minors'
    bound], 0) for a stack (batch, n, n), as ``_check_psd_minors`` tests them."""
    xp = _dispatch.array_module(flat)
    n = flat.shape[-1]
    wd = _matfun_iter.work_dtype(flat.dtype)
    d = xp.diagonal(flat, axis1=1, axis2=2).astype(wd)
    absf = xp.abs(flat).astype(wd, copy=False)
    mx = absf.reshape(flat.shape[0], -1).max(axis=1)  # NaN or inf where A is not finite
    t = (n * np.finfo(wd).eps) * mx
    neg = xp.any(d < -t[:, None], axis=1)
    r = xp.sqrt(xp.maximum(d, 0))
    absf -= r[:, :, None] * r[:, None, :]
    over = absf.reshape(flat.shape[0], -1).max(axis=1) > t
    return xp.stack([~xp.isfinite(mx), neg, over], axis=1), 0


def _unit_scaled(A):
    """(A times a power of two, the factor's inverse as a float) by ``_pow2.unit_scale``,
    bits 64 (float64) or 8 (float32): sums of squares and the Hutch++ products on the Gram
    side (|A|^4 m n in Lanczos' norms) overflowed for float64 entries of 1e100 and float32
    ones of 1e10; the norms are homogeneous, so the caller multiplies its result by it."""
    As, e = _pow2.unit_scale(A, 64 if A.dtype == np.float64 else 8)
    return As, math.ldexp(1.0, e)


def _check_memory(x, copies, fn, name):
    """``copies`` work arrays of x's size in the working dtype."""
    wd = _matfun_iter.work_dtype(x.dtype)
    _checks.check_memory(copies * x.size * wd.itemsize, f"{name} of shape {x.shape}", fn)


def _check_coefficients(coefficients, n_iter, fn):
    if isinstance(coefficients, str):
        return _checks.check_choice(coefficients, "coefficients", fn, COEFFICIENTS)
    if not isinstance(coefficients, (tuple, list)) or not coefficients:
        raise TypeError(
            f"{fn}(): coefficients must be one of {COEFFICIENTS}, a tuple (a, b) or (a, b, c), "
            f"or a sequence of n_iter such tuples, got {type(coefficients).__name__}"
        )
    steps = coefficients if isinstance(coefficients[0], (tuple, list)) else [coefficients]
    if steps is coefficients and len(steps) != n_iter:
        raise ValueError(
            f"{fn}(): coefficients must give one tuple per iteration (n_iter={n_iter}), got "
            f"{len(steps)}"
        )
    for s in steps:
        if not isinstance(s, (tuple, list)) or len(s) not in (2, 3):
            raise ValueError(
                f"{fn}(): each coefficient tuple must be (a, b) or (a, b, c), got {s!r}"
            )
        for v in s:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
                raise ValueError(f"{fn}(): coefficients must be finite real numbers, got {s!r}")
    return coefficients


def orthogonalize(
    G,
    n_iter=5,
    coefficients="cubic",
    scale="gram",
    *,
    lower=1e-3,
    scale_iter=4,
    tol=None,
    backend=None,
):
    """Polar factor U V^T of G = U diag(s) V^T by Newton-Schulz, for a matrix or a stack.

    Steps X <- a X + b (X X^T) X + c (X X^T)^2 X on the smaller Gram side (G^T when m > n),
    after X = G / scale. ``scale="gram"`` divides by matkern's certified spectral-norm bound
    (``spectral_norm_bound``'s Gram iteration, ``scale_iter`` products): every singular value
    is then at most 1 (never diverges), and the largest at least rank^(-1/2^(scale_iter+1))
    (0.84 for rank 256 at the default 4, the worst case: a flat spectrum; far closer to 1
    for decaying ones), where ``"frobenius"`` leaves it at rank^(-1/2) (0.06) for a flat
    spectrum, so more steps are needed (see tools/matfun_evidence.py).

    Parameters
    ----------
    G : numpy.ndarray or cupy.ndarray (m, n) or (..., m, n)
        float16, float32 or float64, C-contiguous, finite. float16 is computed in float32.
    n_iter : int in [0, 100]
    coefficients : "cubic" | "quintic" | "muon" | "polar" | (a, b[, c]) | sequence of them
        "cubic" (1.5, -0.5): classic, converges for singular values in (0, sqrt 3), slowly
        for small ones (x1.5 a step). "quintic" (15/8, -10/8, 3/8): converges cubically near
        1. "muon" (3.4445, -4.7750, 2.0315): Muon's; fast but NOT convergent: singular
        values end in about [0.68, 1.13] (||Q^T Q - I||_2 up to ~0.5), which Muon accepts.
        "polar": per-step minimax quintics for singular values in [lower, 1] (the Polar
        Express idea, solved here by linear programming), then "quintic": converges to the
        working precision in about 7 steps for lower=1e-3 and 3-4 for lower=0.3.
    scale : "gram" | "frobenius"
    lower : float in (0, 1] or "auto", only for "polar": the assumed smallest singular
        value of the scaled matrix (smaller ones still converge, more slowly). "auto":
        s, the smallest singular value of each scaled matrix (k = min(m, n) columns), is
        estimated from the first step's Gram product X^T X, whose Cholesky
        factor (float32 LAPACK on the host, as QDWH starts) gives the larger of
        1/||(X^T X)^-1||_1 (the 1-norm condition estimate: below s^2 by up to sqrt(k)) and
        0.8^2 over the Rayleigh quotient of 4 inverse-iteration steps (at or above s^2); its
        square root rounded down to 8 points a decade, never below 1e-3, and 1e-3 when X^T X
        is not numerically positive definite (``reference.lower_from_gram``). Cost: about
        0.14 ms a matrix at k = 128, 0.6 ms at 256, 15 ms at 1024 (this 2-core EPYC): worth
        it for a few large, well-conditioned matrices, not for stacks of small
        ill-conditioned ones (there the default's 1e-3 is near the truth anyway). Each
        matrix runs its own schedule: on a 4096 x 1024 Gaussian (s = 0.31) 3 steps to
        tol=1e-2 and 4 to the working precision, against 7 and 8 with lower=1e-3. Best
        with ``tol``: a fixed n_iter is spent on the schedule the estimate planned.
    scale_iter : int in [1, 30], Gram-iteration products of the bound.
    tol : float > 0, optional (keyword only)
        Stop each matrix of a stack on its own, before the first step at which its
        ||X^T X - I||_F (read off the Gram product that step computes anyway) is at most
        ``tol`` or has stalled (below 1e-2 and more than half the step before: the working
        precision's floor, about 1e-4 for float32 at k = 128, so ``tol=1e-5`` means "until
        converged"); n_iter is then the most steps. The stopped matrices leave the stack, so
        the later products run on fewer: on 256 Gaussian 128 x 128 matrices most stop after
        7 steps where the slowest needs 11-12. Without ``tol``, exactly n_iter steps.
    backend : {"reference", "cpu", "cuda"}, optional
        "cpu" / "cuda": one numpy.matmul / cupy.matmul (cuBLAS batched) per product for the
        whole stack; "reference": matkern.reference.orthogonalize, one matrix at a time.

    Returns
    -------
    Array of G's shape, dtype and array type. Accuracy: with a convergent schedule the
    orthogonality error ||Q^T Q - I||_2 falls to about 1e-6 (float32) or 1e-14 (float64);
    after a fixed n_iter it is what the schedule reaches for G's singular values (a singular
    value s/bound < 1e-3 needs ~log(1e-3/s)/log(1.5) more cubic steps). With ``tol``, each
    matrix that stopped by it has ||Q^T Q - I||_2 <= ||Q^T Q - I||_F <= tol (up to the Gram
    product's rounding) or is at the working precision. Zero matrices give 0.

    Example
    -------
    >>> G = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    >>> Q = matkern.orthogonalize(G, n_iter=6, coefficients="polar", lower=0.1)
    >>> bool(np.abs(Q.T @ Q - np.eye(32)).max() < 1e-4)
    True
    >>> S = np.random.default_rng(1).standard_normal((8, 16, 16)).astype(np.float32)
    >>> Q = matkern.orthogonalize(S, n_iter=20, coefficients="polar", tol=1e-3)
    >>> bool(np.abs(np.swapaxes(Q, 1, 2) @ Q - np.eye(16)).max() < 1e-3)
    True
    """
    fn = "orthogonalize"
    _check_stack(G, "G", fn)
    n_iter = _checks.check_int(n_iter, "n_iter", fn, min_value=0, max_value=MAX_ITER)
    _check_coefficients(coefficients, n_iter, fn)
    _checks.check_choice(scale, "scale", fn, ("gram", "frobenius"))
    lower = _check_lower(lower, fn)
    scale_iter = _checks.check_int(scale_iter, "scale_iter", fn, min_value=1, max_value=30)
    if tol is not None:
        tol = _checks.check_float(tol, "tol", fn, min_value=0.0, strict=True)
    be = _dispatch.pick(fn, G, backend=backend)
    m, n = G.shape[-2:]
    if be == "reference":
        out = _ref.orthogonalize(
            _dispatch.to_host(G), n_iter, coefficients, scale, lower, scale_iter, tol
        )
        return _dispatch.reference_result(out, G)
    _check_memory(G, 6, fn, "G")  # X, its scaled copy, the update; the Gram squares are smaller
    out = _matfun_iter.orthogonalize(
        G.reshape(-1, m, n), n_iter, coefficients, scale, lower, scale_iter, be, tol
    )
    return out.reshape(G.shape)


def _check_lower(lower, fn):
    """lower: "auto" or a float in (0, 1]."""
    if isinstance(lower, str):
        if lower != "auto":
            raise ValueError(f'{fn}(): lower must be "auto" or a float in (0, 1], got {lower!r}')
        return lower
    return _checks.check_float(lower, "lower", fn, min_value=0.0, max_value=1.0, strict=True)


def _check_sqrt_args(A, method, n_iter, scale, coefficients, lower, fn):
    _check_stack(A, "A", fn, square=True, finite=False)  # finite: in _check_psd_minors
    _checks.check_choice(method, "method", fn, SQRT_METHODS)
    _checks.check_choice(coefficients, "coefficients", fn, ("polar", "cubic"))
    if lower is None:  # the Cholesky factor of "polar" gives the estimate at little cost
        lower = "auto" if method == "polar" else 1e-3
    if scale is None:  # "polar" plans its steps from the estimate: the free bound suffices
        scale = "trace" if method == "polar" else "gram"
    _checks.check_choice(scale, "scale", fn, ("gram", "trace"))
    lower = _check_lower(lower, fn)
    if n_iter is None:
        if method not in ("newton-schulz", "polar"):
            n_iter = SQRT_DEFAULT_ITER[method]
    else:
        n_iter = _checks.check_int(n_iter, "n_iter", fn, min_value=1, max_value=MAX_ITER)
    return n_iter, scale, lower


def _sqrt(A, method, n_iter, scale, coefficients, lower, backend, inverse, fn):
    if method is None:  # the device's fastest accurate route ("polar" needs LAPACK per matrix)
        method = "newton-schulz" if backend == "cuda" or _dispatch.is_cupy_array(A) else "polar"
    n_iter, scale, lower = _check_sqrt_args(A, method, n_iter, scale, coefficients, lower, fn)
    _check_psd_minors(A, fn)
    be = _dispatch.pick(fn, A, backend=backend)
    if be == "cuda" and method == "polar":
        raise ValueError(
            f'{fn}(): method="polar" runs on the CPU only (its Cholesky factorizations are '
            'LAPACK calls per matrix); use method="newton-schulz" for CuPy arrays'
        )
    n = A.shape[-1]
    if be == "reference":
        f = _ref.inv_sqrtm_psd if inverse else _ref.sqrtm_psd
        its = n_iter or _ref_default_iter(A, coefficients)
        out = f(_dispatch.to_host(A), method, its, scale, coefficients, lower)
        return _dispatch.reference_result(out, A)
    copies = 2 * (n_iter or 1) + 4 if method == "pade" else 6
    _check_memory(A, copies, fn, "A")
    out, _ = _matfun_iter.sqrtm(
        A.reshape(-1, n, n), method, n_iter, scale, inverse, be, coefficients, lower
    )
    return out.reshape(A.shape)


def _ref_default_iter(A, coefficients):
    """The reference has no adaptive stop: enough coupled Newton-Schulz steps for the
    working precision at condition numbers up to ~1e6 (lower=1e-3)."""
    if coefficients == "polar":
        return 12
    return 30 if A.dtype == np.float64 else 25


def sqrtm_psd(
    A,
    method=None,
    n_iter=None,
    scale=None,
    *,
    coefficients="polar",
    lower=None,
    backend=None,
):
    """Principal square root of symmetric positive semi-definite matrices.

    A is divided by c >= lambda_max (``scale="gram"``: matkern's certified bound, so the
    eigenvalues of A/c lie in [lambda_min/lambda_max, 1]; ``"trace"``: the trace, looser by up
    to the rank, but free; ``scale=None``: "trace" for "polar", whose estimated ``lower``
    absorbs the looser top at no extra step on the MiniLM covariances, "gram" for the
    others), then:

    - "newton-schulz": coupled Newton-Schulz (Higham), M = Z Y, T = a I + b M + c M^2,
      Y <- Y T, Z <- T Z. On x = sqrt(eigenvalue of A/c) a step is x <- a x + b x^3 + c x^5,
      the polar iteration of :func:`orthogonalize`: ``coefficients="cubic"`` is Higham's
      T = (3I - M)/2 (3 products a step; a small eigenvalue l/c grows only x2.25 a step),
      ``"polar"`` (default) the minimax schedule for x in [lower, 1], i.e. eigenvalues down
      to lower^2 = 1e-6 of the bound (4 products a step, about half the steps: 9 against 16
      on MiniLM covariances of condition ~3e3). ``lower`` defaults to 1e-3 here;
      ``lower="auto"``: each matrix's lower estimated from a Cholesky factorization of A/c
      (as :func:`orthogonalize`'s), 1e-3 when A is singular to working precision.
      ``n_iter=None``: each matrix until ||I - Z Y||_F/sqrt(n) reaches the working
      precision (4e-7 float32, 1e-14 float64) or stalls.
    - "polar" (the default for NumPy arrays): A/c = R^T R (Cholesky, LAPACK per matrix, CPU
      only), U the polar factor of R by the Newton-Schulz steps of :func:`orthogonalize`
      (the same scalar iteration on sqrt(eigenvalue), at 3 products a step, two of them
      symmetric, against 4), then A^(1/2) = sqrt(c) U^T R and A^(-1/2) = R^-1 U / sqrt(c),
      symmetrized. With
      ``lower="auto"`` (the default here) one scaled Newton step comes first: R^-1 by a
      blocked triangular inverse, X = (z R + R^-T / z) / 2 (same polar factor; condition
      sqrt(kappa) of R down to about kappa^(1/4) / 2), X scaled by a certified bound of its
      norm, then the "polar" schedule for the certified interval, cut where its bound
      allows one last pure quintic step (4 steps on the MiniLM covariances, against 7 from
      R). With a number for ``lower``: no Newton step, the schedule from X = R (the first
      Gram product is A/c itself). ``n_iter``: the Newton-Schulz steps after the Newton
      step; ``n_iter=None``: each matrix until ||U^T U - I||_F reaches the working
      precision times sqrt(n), stalls, or its last quintic step is certified to get there.
      A matrix whose factorization fails (singular to the working precision) or whose
      inverse is not finite takes "newton-schulz" instead. MiniLM covariances 64 x 256 x
      256 (float32): 3.6x faster than "newton-schulz" and about half its error (3.2e-6
      against 6.6e-6 relative to the float64 eigh root); across condition numbers 10 to
      1e9 at most about scipy.linalg.sqrtm's error (0.06-1.03x of it, float32 and float64;
      tests/test_matfun_polar_sqrt.py checks 2x from 10 to 1e6).
    - "taylor": sqrt(I - Z) = I - sum_k |binom(1/2, k)| Z^k to degree n_iter (default 40),
      Z = I - A/c (one product a term). Error at an eigenvalue l: about
      (1 - l/c)^(n_iter) / n_iter^1.5: good only for well-conditioned A.
    - "pade": the [n_iter/n_iter] Pade approximant (default 8) in partial fractions,
      I - sum_j alpha_j (I - beta_j Z)^(-1) Z, all solves as one batched solve; far more
      accurate than Taylor at equal degree, error growing with the condition number.

    Parameters
    ----------
    A : numpy.ndarray or cupy.ndarray (n, n) or (..., n, n), float16/float32/float64, finite.
        Symmetry and semi-definiteness are assumed, not checked (an eigendecomposition would
        cost more than the call), except for two cheap necessary conditions: a negative
        diagonal entry or an |A[i, j]| above sqrt(A[i, i] A[j, j]) (beyond rounding) raises
        ValueError; other negative eigenvalues give meaningless results.
    method : None (default), "polar", "newton-schulz", "taylor" or "pade". None: "polar"
        for NumPy arrays (the fastest and most accurate route on the CPU), "newton-schulz"
        for CuPy arrays and ``backend="cuda"`` ("polar" factorizes on the host).
    n_iter, scale, coefficients, lower : see above.
    backend : {"reference", "cpu", "cuda"}, optional
        "reference" runs a fixed n_iter (default 12 "polar" steps, 25/30 "cubic") one
        matrix at a time.

    Returns
    -------
    Array like A. Accuracy (relative Frobenius error against the eigh square root, float32,
    "newton-schulz"): about 1e-6 up to condition 1e4, then the float32 rounding of the
    small eigenvalues dominates (see tools/matfun_evidence.py for each method). A singular
    (rank-deficient) A: the iteration stops once its residual rises (the coupled
    iteration's Z grows on the null space), and the root is good to about sqrt(eps)
    relative (2e-4 float32, 1.5e-8 float64: the square root's own sensitivity at 0).

    Example
    -------
    >>> B = np.random.default_rng(0).standard_normal((32, 32))
    >>> A = B @ B.T + np.eye(32)
    >>> S = matkern.sqrtm_psd(A)
    >>> bool(np.abs(S @ S - A).max() < 1e-9 * np.abs(A).max())
    True
    """
    return _sqrt(A, method, n_iter, scale, coefficients, lower, backend, False, "sqrtm_psd")


def inv_sqrtm_psd(
    A,
    method=None,
    n_iter=None,
    scale=None,
    *,
    coefficients="polar",
    lower=None,
    backend=None,
):
    """A^(-1/2) of symmetric positive definite matrices, as :func:`sqrtm_psd` (same methods
    and defaults): R^-1 U for "polar" (the default for NumPy arrays), the coupled
    Newton-Schulz iteration's Z, the Taylor series of (1 - z)^(-1/2), or the Pade square
    root inverted by one batched solve. A = 0 gives inf; a singular A huge entries. The
    error grows with the condition number kappa: within (kappa / 2 + 20) eps relative for
    "polar" (kappa 10 to 1e6, tests/test_matfun_polar_sqrt.py).

    Example
    -------
    >>> A = np.diag([4.0, 1.0])
    >>> np.round(matkern.inv_sqrtm_psd(A), 6).tolist()
    [[0.5, 0.0], [0.0, 1.0]]
    """
    return _sqrt(A, method, n_iter, scale, coefficients, lower, backend, True, "inv_sqrtm_psd")


def sqrtm_psd_backward(A, sqrtA, grad, n_iter=None, *, backend=None):
    """Gradient through the matrix square root: dL/dA = X with sqrtA X + X sqrtA = grad.

    The Lyapunov equation is solved by the Newton-Schulz iteration of the matrix sign of
    [[S, grad], [0, -S]] (S = sqrtA / its certified bound), 6 products a step; it converges
    when A is positive definite (a small eigenvalue l of A costs ~log(c/l)/log(2.25)/2
    extra steps). ``n_iter=None``: until the working precision. The reference backend solves
    it exactly by eigh.

    Parameters
    ----------
    A : array (..., n, n), the input of the forward pass (checked for shape only).
    sqrtA : array like A, its square root (symmetric).
    grad : array like A, dL/dsqrtA.
    n_iter : int or None
    backend : optional

    Returns
    -------
    Array of grad's shape and dtype. Accuracy: relative error ~1e-5 (float32) / 1e-12
    (float64) for condition numbers of A up to 1e4.

    Example
    -------
    >>> A = np.diag([4.0, 1.0]); S = np.diag([2.0, 1.0]); G = np.ones((2, 2))
    >>> np.round(matkern.sqrtm_psd_backward(A, S, G), 6).tolist()
    [[0.25, 0.333333], [0.333333, 0.5]]
    """
    fn = "sqrtm_psd_backward"
    _check_stack(sqrtA, "sqrtA", fn, square=True)
    for name, x in (("A", A), ("grad", grad)):
        _check_stack(x, name, fn, square=True)
        if x.shape != sqrtA.shape:
            raise ValueError(f"{fn}(): {name} must have sqrtA's shape {sqrtA.shape}, got {x.shape}")
    if grad.dtype != sqrtA.dtype:
        raise TypeError(f"{fn}(): grad must have sqrtA's dtype {sqrtA.dtype}, got {grad.dtype}")
    if n_iter is not None:
        n_iter = _checks.check_int(n_iter, "n_iter", fn, min_value=1, max_value=MAX_ITER)
    be = _dispatch.pick(fn, A, sqrtA, grad, backend=backend)
    n = sqrtA.shape[-1]
    if be == "reference":
        out = _ref.sqrtm_psd_backward(None, _dispatch.to_host(sqrtA), _dispatch.to_host(grad))
        return _dispatch.reference_result(out.astype(grad.dtype), grad)
    _check_memory(sqrtA, 8, fn, "sqrtA")
    out, _ = _matfun_iter.lyapunov(sqrtA.reshape(-1, n, n), grad.reshape(-1, n, n), n_iter, be)
    return out.reshape(grad.shape)


# ----------------------------------------------------------------------------------- norms


def _check_matrix(A, fn, name="A"):
    _checks.check_array(A, name, fn, dtypes=(np.float32, np.float64), ndim=2, finite=True)
    return A


def _check_probes(n_probes, lanczos_steps, fn):
    n_probes = _checks.check_int(n_probes, "n_probes", fn, min_value=3, max_value=1 << 20)
    lanczos_steps = _checks.check_int(
        lanczos_steps, "lanczos_steps", fn, min_value=1, max_value=500
    )
    return n_probes, lanczos_steps


def nuclear_norm(
    A, method="exact", *, n_probes=60, lanczos_steps=12, random_state=None, backend=None
):
    """Nuclear norm ||A||_* = sum of the singular values of a matrix (m, n).

    - "exact": LAPACK / cuSOLVER singular values (relative error ~1e-6 float32).
    - "l12": the L_{1,2} approximation of the Matrix Nuclear-Norm paper (Li et al., EMNLP'25
      Findings): the sum of the min(m, n) largest column norms, O(mn), no SVD. An upper bound
      when n <= m (equal for orthogonal columns); its error is the columns' correlation, not
      a tolerance (see tools/matfun_evidence.py on MiniLM activations).
    - "hutchpp": Hutch++ on tr (A^T A)^(1/2): n_probes/3 sketch vectors taken exactly by
      Rayleigh-Ritz, the rest by Hutchinson with ``lanczos_steps``-step Lanczos quadrature,
      every probe block in one product. Cost ~ (n_probes/3 + lanczos_steps n_probes/3) m n
      products' worth; accurate (~1%) when the spectrum decays, so that the sketch holds
      most of the norm; a flat spectrum leaves the Hutchinson part's variance.

    Parameters
    ----------
    A : numpy.ndarray or cupy.ndarray (m, n), float32 or float64, finite
    method : "exact" | "l12" | "hutchpp"
    n_probes : int >= 3, lanczos_steps : int >= 1, random_state : seed or Generator
        ("hutchpp" only)
    backend : optional ("exact" and "l12" on "reference" run the NumPy definitions;
        "hutchpp" is its own definition and runs the same code on every backend)

    Returns
    -------
    float

    Example
    -------
    >>> float(matkern.nuclear_norm(np.diag([3.0, -2.0, 0.5])))
    5.5
    """
    fn = "nuclear_norm"
    _check_matrix(A, fn)
    _checks.check_choice(method, "method", fn, ("exact", "l12", "hutchpp"))
    n_probes, lanczos_steps = _check_probes(n_probes, lanczos_steps, fn)
    rng = _checks.check_random_state(random_state, fn)
    be = _dispatch.pick(fn, A, backend=backend)
    xp = _dispatch.array_module(A)
    if method == "hutchpp":
        As, f = _unit_scaled(A)
        return f * _matfun_norms.spectral_sum(As, np.sqrt, n_probes, lanczos_steps, rng)
    if be == "reference":
        return _ref.nuclear_norm(_dispatch.to_host(A), method)
    if method == "l12":
        As, f = _unit_scaled(A)
        cols = xp.sqrt((As.astype(np.float64) ** 2).sum(axis=0))
        d = min(A.shape)
        top = cols if d == A.shape[1] else xp.sort(cols)[::-1][:d]
        return f * float(top.sum())
    return float(xp.linalg.svd(A, compute_uv=False).astype(np.float64).sum())


def schatten_norm(
    A, p, method="exact", *, n_probes=60, lanczos_steps=12, random_state=None, backend=None
):
    """Schatten p-norm (sum_i s_i^p)^(1/p) of a matrix (m, n), p >= 1 or inf.

    "exact": p = 2 is the Frobenius norm (no SVD), p = inf the largest singular value,
    others from the singular values. "hutchpp": tr (A^T A)^(p/2) as in :func:`nuclear_norm`.

    Example
    -------
    >>> round(matkern.schatten_norm(np.diag([3.0, 4.0]), 2), 6)
    5.0
    """
    fn = "schatten_norm"
    _check_matrix(A, fn)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or np.isnan(p) or p < 1:
        raise ValueError(f"{fn}(): p must be a real number >= 1 or inf, got {p!r}")
    _checks.check_choice(method, "method", fn, ("exact", "hutchpp"))
    n_probes, lanczos_steps = _check_probes(n_probes, lanczos_steps, fn)
    rng = _checks.check_random_state(random_state, fn)
    be = _dispatch.pick(fn, A, backend=backend)
    xp = _dispatch.array_module(A)
    p = float(p)
    if method == "hutchpp" and not np.isinf(p):
        As, f = _unit_scaled(A)
        t = _matfun_norms.spectral_sum(As, lambda x: x ** (p / 2), n_probes, lanczos_steps, rng)
        return f * float(t ** (1 / p))
    if be == "reference":
        return _ref.schatten_norm(_dispatch.to_host(A), p)
    if p == 2:
        As, f = _unit_scaled(A)
        return f * float(xp.sqrt((As.astype(np.float64) ** 2).sum()))
    s = xp.linalg.svd(A, compute_uv=False).astype(np.float64)
    if np.isinf(p):
        return float(s.max())
    mx = s.max()
    return float(mx * ((s / mx) ** p).sum() ** (1 / p)) if float(mx) > 0 else 0.0


def trace_estimate(op, n, n_probes=30, method="hutchpp", *, random_state=None, backend=None):
    """Stochastic estimate of tr(op) from products with blocks of probe vectors.

    "hutchinson": mean of g^T op g over n_probes Rademacher probes (unbiased; variance
    2 ||op||_F^2 / n_probes for symmetric op). "hutchpp" (Meyer et al.): n_probes/3 probes
    sketch Q = orth(op S), tr(Q^T op Q) exactly, Hutchinson on the rest: variance
    O(1/n_probes^2) for PSD op with decaying spectrum. Each probe block goes to op in one
    product: ``op @ G`` for a dense array, matkern's SpMM for a scipy sparse matrix,
    ``op.matmat(G)`` for a LinearOperator (implement ``_matmat`` for one product).

    Parameters
    ----------
    op : square NumPy/CuPy array, scipy.sparse matrix, or LinearOperator of shape (n, n)
    n : int, its size
    n_probes : int >= 3
    method : "hutchpp" | "hutchinson"
    random_state : seed or Generator
    backend : optional ("reference": probes one at a time)

    Returns
    -------
    float

    Example
    -------
    >>> round(matkern.trace_estimate(np.diag(np.arange(10.0)), 10, n_probes=30), 6)
    45.0
    """
    fn = "trace_estimate"
    n = _checks.check_int(n, "n", fn, min_value=1)
    n_probes = _checks.check_int(n_probes, "n_probes", fn, min_value=3, max_value=1 << 20)
    _checks.check_choice(method, "method", fn, ("hutchinson", "hutchpp"))
    rng = _checks.check_random_state(random_state, fn)
    shape = getattr(op, "shape", None)
    if shape is None or not (hasattr(op, "matmat") or hasattr(op, "__matmul__")):
        raise TypeError(
            f"{fn}(): op must be a square array, a sparse matrix or a LinearOperator, got "
            f"{type(op).__name__}"
        )
    if tuple(shape) != (n, n):
        raise ValueError(f"{fn}(): op must have shape (n, n) = {(n, n)}, got {tuple(shape)}")
    if isinstance(op, np.ndarray) or _dispatch.is_cupy_array(op):
        _checks.check_array(op, "op", fn, dtypes=(np.float32, np.float64), ndim=2, finite=True)
    dtype = np.dtype(op.dtype) if getattr(op, "dtype", None) in (np.float32, np.float64) else None
    dtype = dtype or np.dtype(np.float64)
    is_operator = hasattr(op, "matmat") and not hasattr(op, "tocsr")
    if not is_operator:
        be = _dispatch.pick(fn, op, backend=backend)
        dev = _dispatch.device_of(op)
    else:  # a LinearOperator: scipy (CPU) or cupyx (GPU)
        dev = "cuda" if type(op).__module__.startswith("cupyx") else "cpu"
        be = backend or ("cuda" if dev == "cuda" else "cpu")
        _checks.check_choice(be, "backend", fn, _dispatch.BACKENDS)
    if be == "reference":
        return _ref.trace_estimate(op, n, n_probes, method, seed=int(rng.integers(1 << 31)))
    xp = _dispatch.cupy_module() if dev == "cuda" else np
    return _matfun_norms.trace(op, n, n_probes, method, rng, dtype, xp, be)


def mano_score(logits, p=4, *, normalization="auto", threshold=5.0, backend=None):
    """MaNo score (Xie et al., NeurIPS'24) of the logits of N samples over K classes: an
    unsupervised estimate of accuracy under distribution shift (higher: more accurate).

    With Phi = mean_i (logsumexp(q_i) - mean_k q_ik) (the cross-entropy of the softmax
    against the uniform label), the rows are normalized by softmax when Phi > threshold
    ("auto", the paper's softrun with eta = 5), else by the order-2 Taylor normalization of
    the authors' code: v = 1 + q + q^2/2, minus the row's minimum, divided by the row's sum
    (a row that becomes 0 stays 0). The score is ||P||_p / (N K)^(1/p), the entrywise p-norm
    (p = 4 in the paper), in [0, 1].

    Parameters
    ----------
    logits : numpy.ndarray or cupy.ndarray (N, K), float16/float32/float64, finite
    p : real >= 1 or inf
    normalization : "auto" | "softmax" | "taylor"
    threshold : float
    backend : optional

    Returns
    -------
    float (computed in float64: exact to ~1e-15 relative)

    Example
    -------
    >>> logits = np.array([[10.0, 0.0], [0.0, 10.0]])
    >>> round(matkern.mano_score(logits, normalization="softmax"), 4)
    0.8409
    """
    fn = "mano_score"
    _checks.check_array(logits, "logits", fn, dtypes=_FLOATS, ndim=2, finite=True)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or np.isnan(p) or p < 1:
        raise ValueError(f"{fn}(): p must be a real number >= 1 or inf, got {p!r}")
    _checks.check_choice(normalization, "normalization", fn, ("auto", "softmax", "taylor"))
    threshold = _checks.check_float(threshold, "threshold", fn)
    be = _dispatch.pick(fn, logits, backend=backend)
    if be == "reference":
        return _ref.mano_score(_dispatch.to_host(logits), p, normalization, threshold)
    xp = _dispatch.array_module(logits)
    q = logits.astype(np.float64)
    mx = q.max(axis=1, keepdims=True)
    e = xp.exp(q - mx)
    se = e.sum(axis=1)
    phi = float((mx[:, 0] + xp.log(se) - q.mean(axis=1)).mean())
    if normalization == "softmax" or (normalization == "auto" and phi > threshold):
        P = e / se[:, None]
    else:
        v = 1 + q + q * q / 2
        v -= v.min(axis=1, keepdims=True)
        P = v / xp.maximum(v.sum(axis=1, keepdims=True), 1e-12)
    N, K = q.shape
    if np.isinf(p):
        return float(P.max())
    pm = float(P.max())
    if pm == 0:
        return 0.0
    return float(pm * (((P / pm) ** p).sum() / (N * K)) ** (1 / p))
