"""The matrix-function routes of ``matkern.matfun`` for the "cpu" and "cuda" backends: batched
iterations written once over the array module (NumPy on the CPU, CuPy on the GPU), every
product one matmul over the whole stack (``_matfun_bmm``: matkern's AVX-512 batched GEMM
on CPUs that have it, else OpenBLAS gemm per matrix; one cuBLAS strided-batched launch per
product on the GPU), every linear solve one batched
``xp.linalg.solve``.

Scaling. Each matrix is first divided by its largest |entry| (so nothing below overflows or
underflows), then by a per-matrix bound: the certified Gram-iteration bound of
``_gram_batch.bounds`` (an upper bound on the spectral norm, so the singular values or
eigenvalues of the scaled matrix are at most 1 and the iterations cannot leave their
convergence region), the Frobenius norm, or the trace (PSD matrices).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import _dispatch, _gram_batch, _threads
from ._lapack_nogil import potrf_upper
from ._matfun_bmm import add_transposed, pieces, tri_inv_upper
from ._matfun_bmm import matmul as mm
from .reference.matfun import (
    MONOTONE,
    QUINTIC,
    STALL_BELOW,
    WORK_TOL,
    _pade_terms,
    _taylor_terms,
    certified_e_stop,
    lower_from_gram,
    newton_scaled,
    newton_zeta,
    ns_coefficients,
    ns_last,
    ns_stops,
    polar_certified_steps,
    polar_planned,
    polar_steps,
)

# stop an adaptive iteration when its residual falls below this (per working dtype) or stalls
TOL = WORK_TOL
MAX_ITER = 60


def work_dtype(dtype):
    """float64 for float64 input, float32 otherwise (float16 is accumulated in float32)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def map_chunks(fn, *stacks):
    """fn applied to pieces of the stacks (batch, ...) and the results joined: on the CPU a
    stack of several matrices is cut into pieces (4 per thread, at least one matrix each)
    claimed one at a time by the calling thread and the granted worker threads
    (``_threads.run_pieces``: a worker whose core another process holds is never waited for
    unless it is inside a piece), each piece's products on single-threaded BLAS
    (``_threads.single_blas_thread``; NumPy releases the GIL in matmul). OpenBLAS splitting
    every small product over its own threads was 10x slower on this machine's 2 busy cores
    (0.43 s against 0.046 s for 256 products of 128 x 128); a single matrix keeps BLAS's
    threads. Every matrix's iteration is its own (per-matrix stopping), so the cut changes
    no result. When the helper pool's contention guard holds (``_threads.pool_contended``)
    the stack runs on the caller alone, as it does on one matkern thread (BLAS's products
    then on one thread too: orthogonalize on 32 x 128 x 128 took 4.6 s with OpenBLAS's own
    two threads against 0.3 s on two matkern threads, on the loaded 2-core machine). fn returns (array, int); the ints are maxed. CuPy
    stacks run whole (one batched launch per product)."""
    xp = _dispatch.array_module(stacks[0])
    batch = stacks[0].shape[0]
    if xp is not np or batch <= 1:
        return fn(*stacks)
    if _threads.get_num_threads() <= 1:  # a stack on one thread: BLAS's products too
        with _threads.single_blas_thread():
            return fn(*stacks)
    # the threads come from matkern's budget, shared with concurrent calls and kernels
    with _threads.thread_grant() as granted:
        nt = min(granted, batch)
        if nt <= 1 or _threads.pool_contended():  # one thread, BLAS's too
            with _threads.single_blas_thread():
                return fn(*stacks)
        n = min(batch, 4 * nt)
        bounds = np.linspace(0, batch, n + 1).astype(int)
        with _threads.single_blas_thread():

            def piece(i):
                with pieces():  # the kernel's products on this thread alone
                    return fn(*(s[bounds[i] : bounds[i + 1]] for s in stacks))

            done = _threads.run_pieces(piece, n, nt)
    return np.concatenate([d[0] for d in done]), max(d[1] for d in done)


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


def orthogonalize(G, n_iter, coefficients, scale, lower, scale_iter, be, tol=None):
    """Newton-Schulz polar factor of a stack G (batch, m, n), result in G's dtype. The Gram
    side: X X^T (m <= n) or X^T X (m > n), so every product is on the smaller square and no
    transpose is copied. ``tol``: per-matrix stopping (``_ns_steps``)."""
    xp = _dispatch.array_module(G)
    wd = work_dtype(G.dtype)
    X = G.astype(wd, copy=False)
    X, _ = normalize(X, scale, be, scale_iter)
    if _auto(coefficients, lower):
        steps = n_iter  # each matrix's schedule from its first Gram product (_ns_steps)
    else:
        steps = ns_coefficients(coefficients, n_iter, lower)
    X, _ = map_chunks(lambda Xc: (_ns_steps(Xc, steps, xp, tol), 0), X)
    return X.astype(G.dtype, copy=False)


def _norms(E, xp):
    """float64 NumPy array of ||E_i||_F for a C-contiguous stack E (batch, k, k): one batched
    dot product (BLAS), 2.4x faster here than einsum."""
    F = E.reshape(E.shape[0], 1, -1)
    r2 = xp.matmul(F, F.reshape(E.shape[0], -1, 1)).reshape(-1)
    return np.sqrt(_dispatch.to_host(r2).astype(np.float64))


def _auto(coefficients, lower):
    """lower="auto" with the "polar" schedule: per-matrix schedules (``_coefficients``)."""
    return coefficients == "polar" and isinstance(lower, str)


def _lower_one_blas_thread(A):
    """``lower_from_gram`` of a stack on one BLAS thread: its LAPACK calls on k <= 1024
    gain little from OpenBLAS's threads, and next to a busy process those threads waited
    for a taken core (2048 x 512 lower="auto": 0.47x matkern on one thread)."""
    with _threads.single_blas_thread():
        return lower_from_gram(_dispatch.to_host(A))


def _coefficients(steps, i, xp, wd, eform):
    """Step i's (a, b, c) in the working dtype ``wd``, c None when 0: from a shared schedule
    (scalars), or from per-matrix ``steps`` (batch, n, 3) float64 host array (arrays shaped
    for the stack: a (batch, 1) for ``_add_diag``, b and c (batch, 1, 1); the products by
    them are the same float multiplies as by a scalar). ``eform``: the polynomial rewritten
    in E = X^T X - I, (a + b + c, b + 2c, c), formed in float64 first either way."""
    if isinstance(steps, np.ndarray):
        a, b, c = (steps[:, i, j] for j in range(3))
    else:
        a, b, c = steps[i]
    if eform:
        a, b = a + b + c, b + 2 * c
    if not isinstance(steps, np.ndarray):
        return wd.type(a), wd.type(b), (wd.type(c) if c else None)
    a, b, c = (xp.asarray(np.asarray(v).astype(wd)) for v in (a, b, c))
    return a[:, None], b[:, None, None], (c[:, None, None] if c.any() else None)


def _step_in(steps, i, kinds):
    """Whether step i is one of the (a, b, c) ``kinds``, per matrix for a (batch, n, 3)
    schedule."""
    if isinstance(steps, np.ndarray):
        row = steps[:, i]
        return np.any([np.all(row == np.asarray(kind), axis=1) for kind in kinds], axis=0)
    return tuple(steps[i]) in kinds


def _ns_steps(X, steps, xp, tol=None, gram0=None, stats=None, certified=None, gram0_sq=None):
    """The steps on a stack X (batch, m, n). With ``tol``, a matrix leaves the stack before
    the first step at which ``ns_stops`` holds for its ||X^T X - I||_F (from the step's own
    Gram product, so the test costs a pass over it): the later products run on the
    matrices still iterating only (on a stack of Gaussian 128 x 128 matrices most need 7 of
    the 11-12 steps that the worst one needs). Each matrix's path depends on itself only.
    A matrix whose step is the pure quintic from a residual small enough that it ends within
    tol (``ns_last``) leaves after that step, without the test's product.
    With ``tol`` the step is written in E = X^T X - I (formed in place, exact near the
    diagonal's 1s): P = (a + b + c) I + (b + 2c) E + c E^2, the same polynomial; E^2 is small
    near convergence, so nothing cancels there.

    ``steps``: the (a, b, c) of each step, a per-matrix (batch, n, 3) float64 array, or an
    int n (lower="auto"): n "polar" steps, each matrix's schedule for ``lower_from_gram`` of
    its first Gram product. ``gram0``: the first step's X^T X, when the caller has it (a
    symmetric stack, overwritten); ``gram0_sq``: its square too (read only). ``stats``: a
    dict that receives "steps", the most steps any matrix took. ``certified``: the bounds of
    ``polar_certified_steps``, which made ``steps`` for starts certified to lie in their
    design intervals: before matrix i's first pure quintic step every |1 - x^2| is at most
    certified[i], which ``ns_last`` then takes where it is below the residual's Frobenius
    norm (up to sqrt(k) times the largest |1 - x^2|)."""
    wd = X.dtype
    # A wide stack is iterated as its transpose (polar(X) = polar(X^T)^T), so that every step
    # forms X^T X, which the batched GEMM reads as stored: X X^T had it copy X^T every step.
    wide = X.shape[1] < X.shape[2]
    if wide:
        X = xp.ascontiguousarray(xp.swapaxes(X, 1, 2))
    out = X if tol is None else xp.empty_like(X)  # with tol: each matrix's final iterate
    live = np.arange(X.shape[0])  # the rows of out that X holds
    prev = np.full(X.shape[0], np.inf)
    auto = isinstance(steps, int)
    per_matrix = isinstance(steps, np.ndarray)
    applied = 0
    for i in range(steps if auto else steps.shape[1] if per_matrix else len(steps)):
        if i == 0 and gram0 is not None:
            A = gram0
        else:  # X^T X and A A (A exactly symmetric) are symmetric products
            A = mm(xp, xp.swapaxes(X, 1, 2), X, sym=True)
        if auto and i == 0:
            steps = polar_steps(_lower_one_blas_thread(A), steps)
            per_matrix = True
        if tol is not None:
            _add_diag(A, -1)  # E
            r = _norms(A, xp)
            done = ns_stops(r, prev, tol)
            prev = np.where(_step_in(steps, i, MONOTONE), r, np.inf)  # the stall test's reference
            if done.any():
                out[xp.asarray(live[done])] = X[xp.asarray(done)]
                keep = ~done
                live, prev, r = live[keep], prev[keep], r[keep]
                if not live.size:
                    break
                X, A = X[xp.asarray(keep)], A[xp.asarray(keep)]
                if i == 0 and gram0_sq is not None:
                    gram0_sq = gram0_sq[xp.asarray(keep)]
                if per_matrix:
                    steps = steps[keep]
                if certified is not None:
                    certified = certified[keep]
        a, b, c = _coefficients(steps, i, xp, wd, eform=tol is not None)
        if i == 0 and gram0_sq is not None and c is not None:
            # the caller's A A; in E = A - I: E^2 = A A - 2 E - I
            if tol is not None:  # a is (batch, 1) where c is (batch, 1, 1), or both scalars
                a, b = a - c.reshape(np.shape(a)), b - 2 * c
            P = A * b
            P += c * gram0_sq
        elif c is not None:  # P = c A A + b A + a I, the sum in the product's kernel
            P = mm(xp, A, A, sym=True, then=(c, b, A, a))
            a = None
        else:
            P = A * b
        if a is not None:
            _add_diag(P, a)
        X = mm(xp, X, P)
        applied = i + 1
        if tol is not None:  # the matrices this step took to tol leave without another test
            quintic = _step_in(steps, i, (QUINTIC,))
            if certified is not None:  # the first pure quintic step: the designed ones are done
                first = quintic & ~_step_in(steps, i - 1, (QUINTIC,)) if i > 0 else quintic
                r = np.where(first, np.minimum(r, certified), r)  # (max |e| <= ||E||_F)
            last = ns_last(r, tol, quintic)
            if last.any():
                out[xp.asarray(live[last])] = X[xp.asarray(last)]
                keep = ~last
                live, prev = live[keep], prev[keep]
                if not live.size:
                    break
                X = X[xp.asarray(keep)]
                if per_matrix:
                    steps = steps[keep]
                if certified is not None:
                    certified = certified[keep]
    if stats is not None:
        stats["steps"] = applied
    if tol is not None:
        if live.size:
            out[xp.asarray(live)] = X
        X = out
    return xp.ascontiguousarray(xp.swapaxes(X, 1, 2)) if wide else X


class _Stopper:
    """Per-matrix stopping of the coupled iteration: with n_iter None (adaptive) a matrix
    stops once its residual r = ||E||_F / sqrt(n) reaches the working precision or stalls
    there (no longer halves after falling below 1e-2); in both modes it stops when it
    diverges: r not finite, or r still above 1e-2 and rising once the planned schedule is
    over (``planned`` steps: a pure quintic or cubic step lowers every |1 - x^2| in exact
    arithmetic). That is what a singular A does: on its null space Z grows by the
    coefficient a every step (x = 0 there), and once Z Y's rounding there is O(1) the
    residual rises and the iterates turn to inf/NaN a few steps later (rank 20 of 40: from
    step 9); the range has converged by then. Stopped matrices keep their iterate. Each
    matrix's path thus depends on itself only, not on the stack it came in or on how the
    stack was cut."""

    def __init__(self, batch, dtype, n_iter, planned=0):
        self.adaptive = n_iter is None
        self.limit = n_iter or MAX_ITER
        self.tol = TOL[np.dtype(dtype)]
        self.active = np.ones(batch, dtype=bool)
        self.prev = np.full(batch, np.inf)
        self.planned = np.broadcast_to(np.asarray(planned), (batch,))
        self.its = 0

    def update(self, E, xp):
        """Record the residuals of E (batch, n, n) after self.its steps; False once every
        matrix has stopped."""
        n = E.shape[-1]
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging E squares to inf
            r = _dispatch.to_host(xp.sqrt((E * E).sum(axis=(1, 2)))).astype(np.float64)
        r /= math.sqrt(n)
        rising = (self.its > self.planned) & (r > self.prev) & (r >= STALL_BELOW)
        done = ~np.isfinite(r) | rising
        if self.adaptive:
            done |= (r <= self.tol) | ((r < STALL_BELOW) & (r > 0.5 * self.prev))
        self.its += 1
        self.active &= ~done
        self.prev = r
        return bool(self.active.any())

    def keep(self, new, old, xp):
        """new where the matrix is still running, old where it stopped."""
        if self.active.all():
            return new
        return xp.where(xp.asarray(self.active)[:, None, None], new, old)


def sqrtm(A, method, n_iter, scale, inverse, be, coefficients="polar", lower=1e-3):
    """(result in A's dtype, iterations run) for a stack A (batch, n, n) of symmetric PSD
    matrices: A^(1/2) or A^(-1/2) by coupled Newton-Schulz, Taylor or Pade. Each piece of
    the stack is scaled on its thread (``map_chunks``), except with scale="gram", whose
    bound's kernel takes the whole stack."""
    xp = _dispatch.array_module(A)
    wd = work_dtype(A.dtype)

    def method_run(Yc):
        if method == "polar":
            return _polar_sqrt(Yc, n_iter, inverse, coefficients, lower)
        eye = _eye_like(Yc, Yc.shape[0])
        if method == "newton-schulz":
            return _ns_sqrt(Yc, eye, n_iter, inverse, xp, coefficients, lower)
        if method == "taylor":
            Zm = eye - Yc
            R, P = eye.copy(), eye
            for coef in _taylor_terms(n_iter, inverse):
                P = mm(xp, P, Zm)
                R += wd.type(coef) * P
            return R, n_iter
        return _pade(Yc, eye, n_iter, inverse, xp), n_iter

    def run(Yc, c=None):
        if c is None:  # this piece's scale
            Yc, c = normalize(Yc, scale, be)
        zero = c <= 0
        if zero.any():  # the iterations need a nonzero matrix: run on I, scale by 0 (or inf)
            Yc[xp.asarray(zero)] = _eye_like(Yc, 1)[0]
        R, its = method_run(Yc)
        c_safe = np.where(zero, 1.0, c)
        f = c_safe ** (-0.5) if inverse else np.sqrt(np.where(zero, 0.0, c))  # trace: c = -0
        R *= xp.asarray(f.astype(wd))[:, None, None]
        if inverse and zero.any():  # A = 0 has no inverse square root
            R[xp.asarray(zero)] = np.inf
        return R, its

    Aw = A.astype(wd, copy=False)  # normalize copies it
    if scale == "gram":
        Y, its = map_chunks(run, *normalize(Aw, scale, be))
    else:
        Y, its = map_chunks(run, Aw)
    return Y.astype(A.dtype, copy=False), its


def _polar_sqrt(Y, n_iter, inverse, coefficients, lower):
    """(Y^(1/2) or Y^(-1/2), steps) for a NumPy stack Y (batch, k, k) of symmetric PSD
    matrices with ||Y||_2 <= 1, as ``reference.polar_sqrt``:

    - Y = R^T R by LAPACK potrf per matrix (``potrf_upper``: without the GIL, so the
      pieces' threads factorize at once);
    - with lower="auto", R^-1 (``tri_inv_upper``) and one scaled Newton step (the steps of
      ``reference.newton_polar_start`` on matkern's kernels), a certified start; otherwise
      X = R with Y as its first Gram product;
    - the polar factor U of R by ``_ns_steps`` from X (n_iter None: each matrix until
      ||U^T U - I||_F reaches the working precision times sqrt(k), or its certified last
      step);
    - U^T R (one batched product) or R^-1 U (one batched product with the inverse, or
      trtrs per matrix), symmetrized.

    Matrices whose factorization fails (singular to the working precision), or whose
    inverse or Newton step is not finite, take the coupled iteration (``_ns_sqrt``)."""
    from scipy.linalg import lapack

    wd = Y.dtype
    f32 = wd == np.float32
    trtrs = lapack.strtrs if f32 else lapack.dtrtrs
    batch, k = Y.shape[0], Y.shape[-1]
    newton = _auto(coefficients, lower)
    # potrf reads the upper triangle only; without the Newton step the first Gram product is
    # Y itself, exactly symmetric: its upper triangle mirrored
    G = None if newton else np.triu(Y) + np.swapaxes(np.triu(Y, 1), 1, 2)
    R = np.array(Y, order="C")
    ok = np.ones(batch, dtype=bool)
    with _threads.single_blas_thread():  # see _lower_one_blas_thread
        for i in range(batch):
            ok[i] = potrf_upper(R[i]) == 0
    R *= _upper_mask(k, wd)  # potrf left Y's strictly lower part there (finite: checked)
    limit = n_iter or MAX_ITER
    Rinv, bounds = None, None
    if newton and ok.any():
        Rinv = np.zeros_like(Y)
        Rinv[ok] = tri_inv_upper(_rows(R, ok))
        ok &= np.isfinite(Rinv).all(axis=(1, 2))
    if newton and ok.any():
        Ro, Rio = _rows(R, ok), _rows(Rinv, ok)
        z = newton_zeta(Ro, Rio)  # reference.newton_polar_start's steps, with the kernels
        X = add_transposed(Ro, Rio, 0.5 * z, 0.5 / z)
        A = mm(np, np.swapaxes(X, 1, 2), X, sym=True)
        X, A, A2, lows = newton_scaled(X, A, lambda S: mm(np, S, S, sym=True))
        fine = np.isfinite(lows)
        ok[np.flatnonzero(ok)[~fine]] = False
        X, A, A2 = (_rows(v, fine) for v in (X, A, A2))
        steps, bounds = polar_certified_steps(lows[fine], limit, certified_e_stop(wd, k))
    elif ok.any():
        X, A, A2 = _rows(R, ok), G[ok], None
        steps = ns_coefficients(coefficients, limit, lower)
    out = np.empty_like(Y)
    its = 0
    if not ok.all():
        eye = _eye_like(Y, int((~ok).sum()))
        out[~ok], its = _ns_sqrt(Y[~ok], eye, n_iter, inverse, np, coefficients, lower)
    if ok.any():
        Rk = _rows(R, ok)
        tol = None if n_iter else TOL[wd] * math.sqrt(k)
        stats = {}
        # A is overwritten, X is not; bounds: the certified schedules' (None without Newton)
        U = _ns_steps(X, steps, np, tol, A, stats, bounds, A2)
        if inverse and Rinv is not None:
            H = mm(np, _rows(Rinv, ok), U)
        elif inverse:
            H = np.stack([trtrs(r, u, lower=0)[0] for r, u in zip(Rk, U)])
        else:  # symmetric to the iteration's accuracy: the kernel's upper triangle suffices
            H = mm(np, np.swapaxes(U, 1, 2), Rk, sym=True, b_upper=True)
        H = add_transposed(H, H, 0.5, 0.5)  # exactly symmetric whichever product ran
        if ok.all():
            return H, stats["steps"]
        out[ok] = H
        its = max(its, stats["steps"])
    return out, its


@functools.lru_cache(maxsize=8)
def _upper_mask(k, dtype):
    """1 on and above the diagonal of a k x k matrix, 0 below: a product with it is the
    upper triangle, in place (numpy.triu took 8x longer on a stack of 256 x 256)."""
    mask = np.triu(np.ones((k, k), dtype=dtype))
    mask.flags.writeable = False
    return mask


def _rows(x, mask):
    """x[mask] along the first axis, x itself when mask holds everywhere (no copy)."""
    return x if mask.all() else x[mask]


def _ns_sqrt(Y, eye, n_iter, inverse, xp, coefficients="polar", lower=1e-3):
    """Coupled Newton-Schulz (Higham): M = Z Y, T = a I + b M + c M^2, Y <- Y T, Z <- T Z.
    With x = sqrt(an eigenvalue of A/c) this is x <- a x + b x^3 + c x^5, the polar
    iteration on x: "cubic" (1.5, -0.5, 0) is Higham's T = (3I - M)/2; "polar" runs the
    minimax schedule for x in [lower, 1] (eigenvalues down to lower^2 of the bound), several
    times fewer steps for ill-conditioned A at one more product a step. Y -> (A/c)^(1/2),
    Z -> (A/c)^(-1/2). n_iter None: each matrix until ||I - Z Y|| reaches the working
    precision (``_Stopper``; at most MAX_ITER steps)."""
    wd = Y.dtype
    Z = eye.copy()
    limit = n_iter or MAX_ITER
    lows = None
    if _auto(coefficients, lower):  # x^2 = the eigenvalues of Y: Y is the "Gram" of x
        lows = _lower_one_blas_thread(Y)
        steps = polar_steps(lows, limit)
    else:
        steps = ns_coefficients(coefficients, limit, lower)
    planned = 0  # the schedule's steps before the monotone (pure quintic) ones
    if coefficients == "polar":  # lows are grid values, their schedules cached
        planned = polar_planned(lower) if lows is None else np.vectorize(polar_planned)(lows)
    stop = _Stopper(Y.shape[0], wd, n_iter, planned)
    its = 0
    for its in range(1, stop.limit + 1):
        M = mm(xp, Z, Y) if its > 1 else Y.copy()
        if not stop.update(M - eye, xp):
            its -= 1
            break
        a, b, c = _coefficients(steps, its - 1, xp, wd, eform=False)
        if c is not None:  # T = c M M + b M + a I, the sum in the product's kernel
            T = mm(xp, M, M, then=(c, b, M, a))
        else:
            T = M * b
            _add_diag(T, a)
        Y, Z = stop.keep(mm(xp, Y, T), Y, xp), stop.keep(mm(xp, T, Z), Z, xp)
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
    B, c = normalize(S.astype(wd, copy=False), "gram", be)
    zero = c <= 0
    c_safe = np.where(zero, 1.0, c)
    C = grad.astype(wd) / xp.asarray(c_safe.astype(wd))[:, None, None]
    if zero.any():  # S = 0: X = 0 (the pseudo-solution of the reference)
        B[xp.asarray(zero)] = _eye_like(B, 1)[0]
        C[xp.asarray(zero)] = 0
    C, its = map_chunks(lambda Bc, Cc: _sign_steps(Bc, Cc, n_iter, xp), B, C)
    return C.astype(S.dtype, copy=False), its


def _sign_steps(B, C, n_iter, xp):
    wd = B.dtype
    eye = _eye_like(B, B.shape[0])
    half = wd.type(0.5)
    stop = _Stopper(B.shape[0], wd, n_iter)
    its = 0
    for its in range(1, stop.limit + 1):
        B2 = mm(xp, B, B)
        if not stop.update(B2 - eye, xp):
            its -= 1
            break
        Cn = half * (3 * C - mm(xp, B2, C) - mm(xp, C, B2) + mm(xp, mm(xp, B, C), B))
        C = stop.keep(Cn, C, xp)
        B = stop.keep(half * mm(xp, B, 3 * eye - B2), B, xp)
    return C * half, its
