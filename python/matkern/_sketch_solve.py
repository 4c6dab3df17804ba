"""The solvers of the sketching family: :func:`randomized_svd` (Halko-Martinsson-Tropp with
scikit-learn's conventions, the first product replaced by a structured sketch) and
:func:`lstsq` (Blendenpik / LSRN: the SVD of a sketch of A preconditions LSQR, started from
the sketch-and-solve answer), with a block LSQR that runs one LSQR per right-hand side in
lockstep (one product with A and one with A^T per step for all of them).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from . import _checks, _dispatch, _pow2, _sketch_ops, _threads

SKETCHES = ("srht", "countsketch", "gaussian")
METHODS = ("blendenpik", "sketch-and-solve", "direct")


@dataclasses.dataclass(frozen=True)
class LstsqInfo:
    """What :func:`lstsq` did.

    Attributes
    ----------
    method : str  "blendenpik", "sketch-and-solve" or "direct".
    sketch : str or None  the sketch used ("srht", "countsketch", "gaussian").
    sketch_size : int  rows of the sketch (0 for "direct").
    iterations : int  LSQR steps (the most over the right-hand sides; 0 without LSQR).
    residual_norm : float or numpy.ndarray  ``||b - A x||`` (one per column of a 2-D b).
    condition_number : float  cond(A) estimated from the sketch (exact for "direct").
    rank : int  numerical rank used (columns of A kept by the preconditioner).
    converged : bool  LSQR reached ``tol`` for every right-hand side (True without LSQR).
    tol : float  the tolerance asked for.
    preconditioner : str or None  how R was made: "gram" (Cholesky of A^T A, sparse A on the
        CPU), "sketch-gram" (Cholesky of (SA)^T SA), "sketch-qr", "sketch-svd" (rank
        deficient), None for "direct".
    """

    method: str
    sketch: str | None
    sketch_size: int
    iterations: int
    residual_norm: object
    condition_number: float
    rank: int
    converged: bool
    tol: float
    preconditioner: str | None = None


def _sketch_class(kind):
    from . import sketch

    return {
        "srht": sketch.SRHT,
        "countsketch": sketch.CountSketch,
        "gaussian": sketch.GaussianSketch,
    }[kind]


def _check_choice(value, name, fn, choices):
    if not isinstance(value, str):
        raise TypeError(f"{fn}(): {name} must be one of {choices}, got {type(value).__name__}")
    return _checks.check_choice(value, name, fn, choices)


# --------------------------------------------------------------------------- randomized SVD


def randomized_svd(
    A,
    n_components,
    *,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    transpose="auto",
    flip_sign=True,
    sketch="srht",
    random_state=None,
    backend=None,
):
    """Truncated SVD by a randomized range finder, as ``sklearn.utils.extmath.randomized_svd``
    (same arguments, same steps, same return and sign conventions), the Gaussian test matrix
    replaced by a structured sketch of A's columns.

    ``Y = A S^T`` (S an l x n sketch, l = n_components + n_oversamples; SRHT: the fused FJLT
    kernel on A's rows, CountSketch: one pass over A's entries, Gaussian: a BLAS product), then
    ``n_iter`` power steps ``Y = A (A^T Y)`` each product normalized ("LU" as scipy's
    ``lu(permute_l=True)``, "QR", or "none"; "auto" is "none" for n_iter <= 2, else "LU"),
    ``Q = qr(Y)``, ``B = Q^T A = U_B s V^T``, ``U = Q U_B``; svd_flip signs (the largest |U|
    entry of each column is positive; with ``transpose`` the decision follows the same
    rule as scikit-learn's). ``n_iter="auto"``: 7 if n_components < 0.1 min(m, n), else 4.
    ``transpose="auto"``: work on A^T when m < n.

    Parameters
    ----------
    A : (m, n) NumPy/CuPy array (float32/float64), scipy/cupyx sparse matrix or SparseMatrix
        Sparse products run on matkern's threaded SpMM (CPU) or cuSPARSE (GPU).
    n_components : int  1 <= n_components <= min(m, n).
    n_oversamples, n_iter, power_iteration_normalizer, transpose, flip_sign : as scikit-learn.
    sketch : {"srht", "countsketch", "gaussian"}
    random_state : None, int, numpy Generator or RandomState
    backend : {"reference", "cpu", "cuda"}, optional  for the sketch.

    Returns
    -------
    U (m, n_components), s (n_components,), Vt (n_components, n): A's dtype (float32 stays
    float32) and array type (NumPy for sparse host input, CuPy on the GPU).

    Example
    -------
    >>> import numpy as np, matkern
    >>> A = np.random.default_rng(0).standard_normal((300, 80)).astype(np.float32)
    >>> U, s, Vt = matkern.randomized_svd(A, 5, random_state=0)
    >>> U.shape, s.shape, Vt.shape, s.dtype
    ((300, 5), (5,), (5, 80), dtype('float32'))
    """
    fn = "randomized_svd"
    M = _sketch_ops.as_mat(A, "A", fn)
    m, n = M.shape
    k = _checks.check_int(n_components, "n_components", fn, min_value=1, max_value=min(m, n))
    p = _checks.check_int(n_oversamples, "n_oversamples", fn, min_value=0)
    if isinstance(n_iter, str):
        _checks.check_choice(n_iter, "n_iter", fn, ("auto",))
        n_iter = 7 if k < 0.1 * min(m, n) else 4
    n_iter = _checks.check_int(n_iter, "n_iter", fn, min_value=0)
    norm = _check_choice(
        power_iteration_normalizer, "power_iteration_normalizer", fn, ("auto", "QR", "LU", "none")
    )
    if norm == "auto":
        norm = "none" if n_iter <= 2 else "LU"
    if isinstance(transpose, str):
        _checks.check_choice(transpose, "transpose", fn, ("auto",))
        transpose = m < n
    elif not isinstance(transpose, (bool, np.bool_)):
        raise TypeError(
            f"{fn}(): transpose must be 'auto' or a bool, got {type(transpose).__name__}"
        )
    if not isinstance(flip_sign, (bool, np.bool_)):
        raise TypeError(f"{fn}(): flip_sign must be a bool, got {type(flip_sign).__name__}")
    kind = _check_choice(sketch, "sketch", fn, SKETCHES)
    from .randproj import _check_backend

    _check_backend(backend, fn)
    mm, nn = (n, m) if transpose else (m, n)
    l_ = min(k + p, nn) if kind == "srht" else k + p
    _checks.check_memory(M.dtype.itemsize * (mm + nn) * (k + p) * 4, "randomized_svd's factors", fn)
    xp = M.xp
    op = _Transposed(M) if transpose else M
    S = _sketch_class(kind)(nn, max(l_, 1), random_state=random_state, backend=backend)
    if transpose:
        # Y = A^T S^T = (S A)^T: the sketch of A's rows
        be = _dispatch.pick(fn, M.dense if not M.sparse else M.data, backend=backend)
        Y = xp.ascontiguousarray(_sketch_ops.left(S, M, be).T)
    else:
        be = _dispatch.pick(fn, M.dense if not M.sparse else M.data, backend=backend)
        Y = _sketch_ops.right(S, M, be)
    dtype = M.dtype
    Y = Y.astype(dtype, copy=False)
    # Y = A Omega is the first product of scikit-learn's loop (Q = A Q; Q = A^T Q) n_iter
    # times, then Q = qr(A Q)
    for i in range(n_iter):
        if i:
            Y = op.matmul(Y).astype(dtype, copy=False)
        Y = _normalize(Y, norm, xp)
        Y = _normalize(op.rmatmul(Y).astype(dtype, copy=False), norm, xp)
    Q = _qr(op.matmul(Y).astype(dtype, copy=False) if n_iter else Y, xp)
    B = op.rmatmul(Q).astype(dtype, copy=False).T  # Q^T A, (l x n)
    Uh, s, Vt = _svd(B, xp)
    with _threads.single_blas_thread():
        U = Q @ Uh
    if flip_sign:
        if not transpose:
            U, Vt = _svd_flip_u(U, Vt, xp)
        else:
            U, Vt = _svd_flip_v(U, Vt, xp)
    if transpose:
        return (
            xp.ascontiguousarray(Vt[:k].T),
            s[:k],
            xp.ascontiguousarray(U[:, :k].T),
        )
    return xp.ascontiguousarray(U[:, :k]), s[:k], xp.ascontiguousarray(Vt[:k])


class _Transposed:
    """A^T of a Mat, for the products of the range finder."""

    def __init__(self, M):
        self.M = M

    def matmul(self, X):
        return self.M.rmatmul(X)

    def rmatmul(self, Y):
        return self.M.matmul(Y)


# The factorizations of the thin m x l blocks run on one BLAS thread: LAPACK's panel steps
# on these shapes gain nothing from a second thread and lose much when a neighbour holds
# its core (a 1600 x 200 QR: 0.06-0.09 s on one thread, 0.7-2 s on two, on the shared
# 2-core machine); the products with A keep every thread.


def _normalize(Y, how, xp):
    if how == "none":
        # only Y's range matters: keep max|Y| near 1 by a power of two (exact), or the
        # unnormalized steps A (A^T Y) overflow (float32 entries of 1e15 did at n_iter=1)
        return _pow2.unit_scale(Y, 16)[0]
    if how == "QR":
        return _qr(Y, xp)
    if xp is np:
        import scipy.linalg as la

        with _threads.single_blas_thread():
            return la.lu(Y, permute_l=True, check_finite=False)[0]
    return _qr(Y, xp)  # CuPy has no LU with permute_l: QR, as scikit-learn's array API path


def _qr(Y, xp):
    if xp is np:
        import scipy.linalg as la

        with _threads.single_blas_thread():
            return la.qr(Y, mode="economic", check_finite=False)[0]
    return xp.linalg.qr(Y, mode="reduced")[0]


def _svd(B, xp):
    if xp is np:
        import scipy.linalg as la

        with _threads.single_blas_thread():
            return la.svd(B, full_matrices=False, check_finite=False)
    return xp.linalg.svd(B, full_matrices=False)


def _svd_flip_u(U, Vt, xp):
    i = xp.argmax(xp.abs(U), axis=0)
    signs = xp.sign(U[i, xp.arange(U.shape[1])])
    signs[signs == 0] = 1
    return U * signs, Vt * signs[:, None]


def _svd_flip_v(U, Vt, xp):
    i = xp.argmax(xp.abs(Vt), axis=1)
    signs = xp.sign(Vt[xp.arange(Vt.shape[0]), i])
    signs[signs == 0] = 1
    return U * signs, Vt * signs[:, None]


# ----------------------------------------------------------------------------- least squares


def lstsq(
    A,
    b,
    *,
    method="blendenpik",
    sketch=None,
    sketch_size=None,
    tol=None,
    maxiter=None,
    rcond=None,
    random_state=None,
    backend=None,
):
    """Least squares ``min ||A x - b||`` for tall A, by a sketch: returns ``(x, info)``.

    ``method="blendenpik"`` (Avron-Maymounkov-Toledo; LSRN's SVD form): sketch A and b with
    one draw (SA, Sb), take the SVD of the sketch through its QR (``SA = Q R``,
    ``R = U s V^T``; a well-conditioned sketch, cond(R) <= 1e5, gets R from the Cholesky
    factor of ``SA^T SA`` instead: one SYRK, a quarter of the QR's time), keep the singular values above ``rcond * s_max``, precondition with
    ``N = V s^-1`` and run LSQR on ``A N`` from the sketch-and-solve answer until
    ``||(AN)^T r|| <= tol ||AN|| ||r||`` or ``||r|| <= tol ||b||`` (dense A on the CPU: both
    products of a step from one pass over A, matkern's threads). The preconditioned matrix
    has condition number ~ (1 + sqrt(n/k)) / (1 - sqrt(n/k)), so LSQR needs a few tens of steps
    whatever cond(A) is, and the answer is as accurate as a direct solve's (residual norms
    agree to ~tol^2). Rank-deficient A (singular values below the cut) gives a warning and the
    minimum-norm solution; cond(A) beyond ~1e-4 / eps a warning (the answer's forward error
    grows with it); an LSQR that stops at ``maxiter`` a warning and ``info.converged=False``.
    Sparse A on the CPU, with ``sketch`` and ``sketch_size`` left at None: when A^T A costs
    less than the sketch route (rows of few nonzeros: sum of nnz(row)^2 against the sketch's
    Gram and its ~25 extra LSQR steps), R is the Cholesky factor of A^T A itself (same
    cond(R) <= 1e5 gate, else the sketch): A R^-1 then has condition number 1 + O(eps
    cond(A)^2) and LSQR, started from the normal equations' answer, stops after one or two
    steps at the same tol (``info.preconditioner == "gram"``, ``info.sketch`` None).
    ``"sketch-and-solve"``: ``argmin ||S(A x - b)||`` only (fast, approximate: the residual
    is within a factor ~(1 + sqrt(n/k)) of the optimum); ``sketch="gaussian"`` gives the dense
    sketch of the l-infinity-guarantee analysis. ``"direct"``: numpy/cupy ``linalg.lstsq``
    (sparse A densified).

    Parameters
    ----------
    A : (m, n) with m >= n: NumPy/CuPy array (float32/float64), scipy/cupyx sparse, SparseMatrix
    b : (m,) or (m, r) dense array of the same array type (any float dtype; used in A's dtype)
    method : {"blendenpik", "sketch-and-solve", "direct"}
    sketch : {"srht", "countsketch", "gaussian"} or None  default "srht" for dense A,
        "countsketch" for sparse A (time proportional to nnz).
    sketch_size : int, optional  default min(mpad, 8 n) for SRHT and Gaussian, 12 n for
        CountSketch when nnz(A) >= 4 n^2, else 4 n (the sketch's QR would cost more than the
        LSQR steps a larger sketch saves); at least n + 10.
    tol : float, optional  LSQR's tolerance; default 1e-8 (float64), 1e-4 (float32).
    maxiter : int, optional  LSQR steps; default 200.
    rcond : float, optional  relative singular-value cut; default eps * max(m, n) as numpy.
    random_state : None, int, numpy Generator or RandomState
    backend : {"reference", "cpu", "cuda"}, optional  for the sketch.

    Returns
    -------
    x : (n,) or (n, r), A's dtype and array type.
    info : :class:`LstsqInfo`

    Example
    -------
    >>> import numpy as np, matkern
    >>> rng = np.random.default_rng(0)
    >>> A, b = rng.standard_normal((2000, 50)), rng.standard_normal(2000)
    >>> x, info = matkern.lstsq(A, b, random_state=0)
    >>> bool(np.allclose(x, np.linalg.lstsq(A, b, rcond=None)[0])), info.converged
    (True, True)
    """
    fn = "lstsq"
    M = _sketch_ops.as_mat(A, "A", fn)
    m, n = M.shape
    if m < n:
        raise ValueError(
            f"{fn}(): A must be tall (rows >= columns) for a sketched least-squares solve, got "
            f"shape {M.shape}; use numpy.linalg.lstsq for wide systems"
        )
    _checks.check_array(b, "b", fn, contiguous=False, finite=True)
    if b.ndim not in (1, 2):
        raise ValueError(f"{fn}(): b must be 1- or 2-dimensional, got shape {b.shape}")
    if b.dtype.kind != "f":
        raise TypeError(f"{fn}(): b must have a float dtype, got {b.dtype}")
    if b.shape[0] != m:
        raise ValueError(f"{fn}(): b must have {m} rows (as A), got shape {b.shape}")
    if _dispatch.device_of(b) != ("cuda" if M.on_gpu else "cpu"):
        raise ValueError(f"{fn}(): A and b must be on one device (both NumPy or both CuPy)")
    method = _check_choice(method, "method", fn, METHODS)
    kind = sketch
    if kind is None:
        kind = "countsketch" if M.sparse else "srht"
    kind = _check_choice(kind, "sketch", fn, SKETCHES)
    eps = float(np.finfo(M.dtype).eps)
    if tol is None:
        tol = 1e-8 if M.dtype == np.float64 else 1e-4
    tol = _checks.check_float(tol, "tol", fn, min_value=0.0, strict=True)
    maxiter = 200 if maxiter is None else _checks.check_int(maxiter, "maxiter", fn, min_value=0)
    if rcond is None:
        rcond = eps * max(m, n)
    rcond = _checks.check_float(rcond, "rcond", fn, min_value=0.0)
    from .randproj import _check_backend

    _check_backend(backend, fn)
    xp = M.xp
    vector = b.ndim == 1
    B = xp.ascontiguousarray(b.reshape(m, -1), dtype=M.dtype)
    # entries far from 1 (float64 1e300: the sketch's Gram overflowed into a warning and a
    # slower QR) are solved as 2^-eA A x' = 2^-eB b, x = 2^(eB - eA) x': exact
    M, e_a = _pow2_mat(M)
    B, e_b = _pow2.unit_scale(B, 64)
    x, info = _lstsq_solve(
        M,
        B,
        vector,
        method,
        kind,
        sketch,
        sketch_size,
        tol,
        maxiter,
        rcond,
        random_state,
        backend,
        fn,
    )
    if e_a or e_b:
        x = xp.ldexp(x, e_b - e_a).astype(M.dtype, copy=False)
        info = dataclasses.replace(info, residual_norm=np.ldexp(info.residual_norm, e_b))
    return x, info


def _pow2_mat(M):
    """``_pow2.unit_scale`` of a validated operand (dense, or CSR values: a caller's
    SparseMatrix is then rebuilt from the scaled values); bits 64 float64, 32 float32 (the
    sketch is factored in float64; an LSQR step's A^T A v stays below 2^64 m)."""
    bits = 64 if M.dtype == np.float64 else 32
    if not M.sparse:
        dense, e = _pow2.unit_scale(M.dense, bits)
        return (dataclasses.replace(M, dense=dense) if e else M), e
    data, e = _pow2.unit_scale(M.data, bits)
    if not e:
        return M, 0
    return _sketch_ops.Mat(M.shape, M.dtype, M.xp, None, M.indptr, M.indices, data), e


def _lstsq_solve(
    M, B, vector, method, kind, sketch, sketch_size, tol, maxiter, rcond, random_state, backend, fn
):
    """lstsq's solve on the validated (and scaled) operands."""
    m, n = M.shape
    xp = M.xp
    eps = float(np.finfo(M.dtype).eps)
    if method == "direct":
        return _direct(M, B, vector, tol, fn)
    mpad = 1 << max(0, (m - 1).bit_length())
    if sketch_size is None:
        # A larger sketch costs 2 s n^2 more in its QR and saves LSQR steps of ~4 (nnz + n^2):
        # worth it only when A has several n^2 entries (MovieLens 9724 x 610, nnz 1e5: 4 n
        # rows took 0.23 s, 12 n 0.59 s; uniform 2e5 x 200, nnz 1e6: 12 n the faster)
        nnz = int(M.indptr[-1]) if M.sparse else m * n
        s = (12 * n if kind == "countsketch" else 8 * n) if nnz >= 4 * n * n else 4 * n
        s = max(s, n + 10)
        if kind == "srht":
            s = min(s, mpad)
    else:
        s = _checks.check_int(sketch_size, "sketch_size", fn, min_value=1)
    if s < n:
        raise ValueError(f"{fn}(): sketch_size must be >= n = {n} (A's columns), got {s}")
    if kind == "srht" and s > mpad:
        raise ValueError(
            f"{fn}(): sketch_size must be <= {mpad} for the SRHT (rows padded to a power of "
            f"two), got {s}"
        )
    _checks.check_memory(
        8 * (2 * s * n + 3 * n * n) + M.dtype.itemsize * 6 * m * B.shape[1], "lstsq's sketch", fn
    )
    be = _dispatch.pick(fn, M.dense if not M.sparse else M.data, backend=backend)
    Bm = _sketch_ops.as_mat(B, "b", fn)
    attempts = [(kind, s)]
    if kind != "srht" or s < mpad:
        attempts.append(("srht", min(mpad, 2 * s)))
    exact = None
    if method == "blendenpik" and sketch is None and sketch_size is None and be == "cpu":
        exact = _exact_gram_cholesky(M, B, s)
    if exact is not None:  # R from A^T A itself: cheaper than the sketch's, and exact
        Rs, QtSB, cond = exact
        svd, kind, s, attempts, how = None, None, 0, [], "gram"
    for kind, s in attempts:
        S = _sketch_class(kind)(m, s, random_state=random_state, backend=backend)
        SA = _sketch_ops.left(S, M, be).astype(np.float64)
        SB = _sketch_ops.left(S, Bm, be).astype(np.float64)
        chol = _gram_cholesky(SA, SB, xp)
        if chol is not None:  # well-conditioned sketch: R from its Gram matrix
            Rs, QtSB, cond = chol
            svd, how = None, "sketch-gram"
            break
        with _threads.single_blas_thread():  # small dense steps: one BLAS thread
            # R of [SA, SB] = [[R, Q^T SB], [0, .]]: Q never formed
            Raug = xp.linalg.qr(xp.concatenate([SA, SB], axis=1), mode="r")
            Rs, QtSB = Raug[:n, :n], Raug[:n, n:]
            cond = _triangular_cond(Rs, xp)
            if cond * rcond < 1.0:  # full rank: precondition by R^-1 (Blendenpik)
                svd, how = None, "sketch-qr"
                break
            # maybe rank deficient: decide on the SVD R = U diag(sv) Vt (LSRN)
            svd, how = xp.linalg.svd(Rs), "sketch-svd"
        U, sv, Vt = svd
        sv_max = float(sv[0])
        keep = int((sv > rcond * sv_max).sum()) if sv_max > 0 else 0
        if keep in (0, n) or not _sketch_lost_rank(M, Vt[keep:], rcond * sv_max, xp):
            break
        # A has weight in directions the sketch lost (colliding rows of high leverage):
        # once more with a larger SRHT, which mixes all rows before sampling
    if svd is None:
        keep = n
    else:
        if sv_max == 0.0:
            x = xp.zeros((n, B.shape[1]), dtype=M.dtype)
            res = _norms(B, xp)
            warnings.warn(f"{fn}(): A is zero; returning x = 0", RuntimeWarning, stacklevel=2)
            return _finish(x, vector), LstsqInfo(
                method, kind, s, 0, _res_out(res, vector), math.inf, 0, True, tol, how
            )
        cond = sv_max / float(sv[keep - 1]) if keep == n else math.inf
    if keep < n:
        warnings.warn(
            f"{fn}(): A is rank deficient (numerical rank {keep} of {n} columns at rcond="
            f"{rcond:.3g}); returning the minimum-norm least-squares solution",
            RuntimeWarning,
            stacklevel=2,
        )
    elif cond * eps > 1e-4:
        warnings.warn(
            f"{fn}(): A is ill-conditioned (estimated condition number {cond:.3g}); the "
            f"solution's forward error may be as large as cond * eps = {cond * eps:.2g}",
            RuntimeWarning,
            stacklevel=2,
        )
    N, NT = _preconditioner(Rs, svd, keep, xp)  # y -> N y (keep -> n), t -> N^T t
    with _threads.single_blas_thread():
        x0 = N(QtSB if svd is None else U[:, :keep].T @ QtSB)  # sketch-and-solve
    if method == "sketch-and-solve":
        x = x0.astype(M.dtype)
        res = _norms(B - M.matmul(x), xp)
        return _finish(x, vector), LstsqInfo(
            method, kind, s, 0, _res_out(res, vector), cond, keep, True, tol, how
        )

    # The n x n steps on one BLAS thread, the products with A on all
    def matvec(V):  # (A N) V
        with _threads.single_blas_thread():
            t = N(V).astype(M.dtype, copy=False)
        return M.matmul(t)

    def rmatvec(Ur):  # (A N)^T U
        t = M.rmatmul(Ur.astype(M.dtype, copy=False))
        with _threads.single_blas_thread():
            return NT(t.astype(np.float64, copy=False))

    bnorm = _norms(B.astype(np.float64), xp)
    fused = _fused_pass(M, be)
    if fused is not None:  # dense A on the host: one pass over A a step, matkern's threads
        with _threads.single_blas_thread():
            Y, iters, converged = _lsqr_fused(fused, N, NT, x0, B, bnorm, tol, maxiter)
    else:
        R0 = (B - M.matmul(x0.astype(M.dtype))).astype(np.float64)
        if M.sparse and not M.on_gpu:  # products on SpMM threads: BLAS has only small steps
            with _threads.single_blas_thread():
                Y, iters, converged = _lsqr(matvec, rmatvec, R0, bnorm, tol, maxiter, xp)
        else:
            Y, iters, converged = _lsqr(matvec, rmatvec, R0, bnorm, tol, maxiter, xp)
    with _threads.single_blas_thread():
        x = (x0 + N(Y)).astype(M.dtype)
    res = _norms(B - M.matmul(x), xp)
    if not converged:
        warnings.warn(
            f"{fn}(): LSQR did not reach tol={tol:.3g} in maxiter={maxiter} steps (estimated "
            f"cond(A) {cond:.3g}); the solution is approximate (info.converged is False)",
            RuntimeWarning,
            stacklevel=2,
        )
    return _finish(x, vector), LstsqInfo(
        method, kind, s, iters, _res_out(res, vector), cond, keep, converged, tol, how
    )


# cond(R) at most this: R from the Cholesky factor of the sketch's Gram matrix. Its error
# (~eps cond^2 relative) then leaves A R^-1 within a few percent of the QR's preconditioned
# matrix; beyond it (or when the Cholesky fails) the QR of the sketch.
_CHOL_COND = 1e5


def _gram_cholesky(SA, SB, xp):
    """(R, Q^T SB, cond estimate) from the Cholesky factor of SA^T SA (R^T R = SA^T SA, so
    R is the sketch's QR factor up to signs and Q^T SB = R^-T SA^T SB), or None when SA is
    not comfortably full rank (Cholesky fails or cond(R) > _CHOL_COND). One SYRK (s n^2
    flops, BLAS's threads) and an n^3/3 factorization instead of a Householder QR
    (2 s n^2 flops in LAPACK's panel steps): the QR was half of the MovieLens solve."""
    if xp is not np:
        return None
    with _threads.single_blas_thread():
        G = SA.T @ SA  # NumPy's matmul runs SYRK for a product with its own transpose
        C = SA.T @ SB
    return _chol_from_gram(G, C)


def _exact_gram_cholesky(M, B, s):
    """(R, R^-T A^T B, cond estimate) from the Cholesky factor of A^T A itself, for sparse A
    on the host when that Gram matrix costs less than the sketch route; None otherwise (dense
    or GPU A, the Gram matrix dearer, or cond(R) > _CHOL_COND: the sketch's QR then).

    Cost model, in scattered multiply-adds: A^T A takes sum_i nnz(row i)^2 / 2 (matkern's
    csr_gram kernel); the sketch route its pass over A, the sketch's Gram (s n^2 / 2 in BLAS,
    counted 1/20 of a scattered one) and ~25 more LSQR steps (2 nnz each) than an exact R
    needs: with cond(A R^-1) = 1 + O(eps cond(A)^2) LSQR stops after one or two steps.
    MovieLens 9724 x 610 (nnz 1e5, cond ~2e3): 3e6 against 6e7; 1 LSQR step instead of 31.
    Rows of ~n nonzeros (nearly dense A) cost n^2 each: the sketch then wins."""
    if not M.sparse or M.on_gpu:
        return None
    m, n = M.shape
    nnz = int(M.indptr[-1])
    r = np.diff(M.indptr).astype(np.float64)
    pairs = float(r @ (r + 1.0)) / 2.0
    if pairs > s * n * n / 40.0 + 51.0 * nnz:
        return None
    _checks.check_memory(8 * 2 * n * n, "lstsq's Gram matrix", "lstsq")
    G = np.empty((n, n))
    _dispatch.cpu().csr_gram(M.indptr, M.indices, M.data, G)
    C = M.rmatmul(B).astype(np.float64, copy=False)
    return _chol_from_gram(G, C)


def _chol_from_gram(G, C):
    """(R, R^-T C, cond(R) estimate) with R^T R = G (upper Cholesky factor, one BLAS
    thread), or None when G is not comfortably positive definite (Cholesky fails or
    cond(R) > _CHOL_COND)."""
    import scipy.linalg as la

    try:
        with _threads.single_blas_thread():
            R = la.cholesky(G, lower=False, check_finite=False)
    except la.LinAlgError:
        return None
    cond = _triangular_cond(R, np)
    if not cond <= _CHOL_COND:
        return None
    with _threads.single_blas_thread():
        RtC = la.solve_triangular(R, C, trans="T", lower=False, check_finite=False)
    return R, RtC, cond


def _triangular_cond(R, xp):
    """cond(R) of the upper-triangular R: LAPACK's 1-norm estimate (trcon, O(n^2), within a
    factor n of the 2-norm one) on the host; the exact 2-norm value from the singular values
    on the GPU. inf for a singular R."""
    if xp is not np:
        sv = xp.linalg.svd(R, compute_uv=False)
        return float(sv[0] / sv[-1]) if float(sv[-1]) > 0 else math.inf
    from scipy.linalg import lapack

    if not np.all(np.diag(R)):
        return math.inf
    rc, info = lapack.dtrcon(R, norm="1", uplo="U", diag="N")
    return 1.0 / rc if info == 0 and rc > 0 else math.inf


def _preconditioner(R, svd, keep, xp):
    """(N, N^T) as functions on float64 blocks: N = R^-1 (triangular solves), or
    N = V_keep diag(1/sv_keep) from the SVD of R (rank-deficient case: the min-norm answer)."""
    if svd is None:
        from scipy.linalg import solve_triangular

        Rc = np.ascontiguousarray(R)

        def n_apply(V):
            return solve_triangular(Rc, V, lower=False, check_finite=False)

        def nt_apply(T):
            return solve_triangular(Rc, T, trans="T", lower=False, check_finite=False)

        return n_apply, nt_apply
    _, sv, Vt = svd
    Nmat = Vt[:keep].T / sv[:keep]  # n x keep
    NmatT = xp.ascontiguousarray(Nmat.T)
    return (lambda V: Nmat @ V), (lambda T: NmatT @ T)


def _sketch_lost_rank(M, Vd, cut, xp):
    """True when A is not small on the directions the sketch found null (rows of Vd): the
    sketch lost rank that A has (a true null direction gives ||A v|| ~ eps ||A||)."""
    AV = M.matmul(xp.ascontiguousarray(Vd.T).astype(M.dtype))
    return bool(float(_norms(AV, xp).max()) > 10 * cut)


def _norms(X, xp):
    return xp.sqrt((X.astype(np.float64) ** 2).sum(axis=0))


def _res_out(res, vector):
    res = np.asarray(_dispatch.to_host(res), dtype=np.float64)
    return float(res[0]) if vector else res


def _finish(x, vector):
    return x[:, 0].copy() if vector else x


def _direct(M, B, vector, tol, fn):
    xp = M.xp
    if M.sparse:
        _checks.check_memory(
            M.dtype.itemsize * M.shape[0] * M.shape[1] * 3, "method='direct' (A densified)", fn
        )
        Ad = M.scipy().toarray()
    else:
        Ad = M.dense
    x, _, rank, sv = xp.linalg.lstsq(Ad, B, rcond=None)
    sv = np.asarray(_dispatch.to_host(sv))
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    res = _norms(B - Ad @ x, xp)
    return _finish(x, vector), LstsqInfo(
        "direct", None, 0, 0, _res_out(res, vector), cond, int(rank), True, tol
    )


def _fused_pass(M, be):
    """The CPU kernel ``(T, W, c) -> (A T + c W, A^T (A T + c W))`` (float64 blocks, T (n, r),
    W (m, r), c (r,)) that reads a dense host A once for both products of an LSQR step, or
    None (sparse A: the products are SpMM calls; GPU A: cuBLAS's two GEMVs)."""
    if M.sparse or M.on_gpu or be != "cpu":
        return None
    A = M.dense
    m, n = A.shape
    kernel = _dispatch.cpu().dense_lsqr_pass

    def run(T, W, c):
        r = T.shape[1]
        Y, Z = np.empty((m, r)), np.empty((r, n))
        kernel(
            A,
            np.ascontiguousarray(T.T, dtype=np.float64),
            np.ascontiguousarray(W, dtype=np.float64),
            np.ascontiguousarray(c, dtype=np.float64).reshape(r),
            Y,
            Z,
        )
        return Y, Z.T

    return run


def _lsqr_fused(fused, N, NT, x0, B, bnorm, tol, maxiter):
    """_lsqr on Abar = A N with both products of a step from one pass over A: the pass
    returns y = Abar v - alpha u and A^T y together, and u = y / beta, Abar^T u = N^T A^T y /
    beta (the same LSQR, with the division by beta after the product instead of before)."""
    Y0, Z0 = fused(x0, B, -np.ones(B.shape[1]))  # A x0 - B = -R0 and -A^T R0

    def step(v, u, alpha):
        y, z = fused(N(v), u, -alpha)
        return y, NT(z)

    return _lsqr(None, None, -Y0, bnorm, tol, maxiter, np, step=step, first=-NT(Z0))


def _lsqr(matvec, rmatvec, B, bnorm, tol, maxiter, xp, step=None, first=None):
    """LSQR (Paige-Saunders) for each column of B at once: min ||Abar y - B[:, j]||. Stops a
    column when ||r|| <= tol ||b_j|| or ||Abar^T r|| <= tol ||Abar|| ||r|| (Abar's norm
    estimated as LSQR does); returns (Y, steps, all converged). ``step(v, u, alpha)``, when
    given, returns ``(y, Abar^T y)`` for ``y = Abar v - alpha u`` in place of matvec and
    rmatvec, and ``first`` is then ``Abar^T B``."""
    r = B.shape[1]
    beta = _norms(B, xp)
    u = B / xp.where(beta > 0, beta, 1.0)
    if first is None:
        v = rmatvec(u).astype(np.float64)
    else:
        v = first / xp.where(beta > 0, beta, 1.0)
    alpha = _norms(v, xp)
    v = v / xp.where(alpha > 0, alpha, 1.0)
    w = v.copy()
    y = xp.zeros((v.shape[0], r))
    phibar, rhobar = beta.copy(), alpha.copy()
    anorm = xp.zeros(r)
    active = (beta > tol * bnorm) & (alpha > 0)
    steps = 0
    while bool(active.any()) and steps < maxiter:
        steps += 1
        if step is None:
            u = matvec(v).astype(np.float64) - alpha * u
            beta = _norms(u, xp)
            u = u / xp.where(beta > 0, beta, 1.0)
            atu = rmatvec(u).astype(np.float64)
        else:
            u, aty = step(v, u, alpha)
            beta = _norms(u, xp)
            bs = xp.where(beta > 0, beta, 1.0)
            u, atu = u / bs, aty / bs
        anorm = xp.sqrt(anorm**2 + alpha**2 + beta**2)
        v = atu - beta * v
        alpha = _norms(v, xp)
        v = v / xp.where(alpha > 0, alpha, 1.0)
        rho = xp.sqrt(rhobar**2 + beta**2)
        rho = xp.where(rho > 0, rho, 1.0)
        c, sn = rhobar / rho, beta / rho
        theta = sn * alpha
        rhobar = -c * alpha
        phi = c * phibar
        phibar = sn * phibar
        y += xp.where(active, phi / rho, 0.0) * w
        w = v - (theta / rho) * w
        arnorm = phibar * alpha * xp.abs(c)
        done = (phibar <= tol * bnorm) | (arnorm <= tol * anorm * phibar) | (alpha == 0)
        active = active & ~done
    return y, steps, not bool(active.any())
