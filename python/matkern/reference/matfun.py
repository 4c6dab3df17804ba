"""Reference matrix functions and norms: plain NumPy, one matrix at a time, the definition of
correct for ``matkern.matfun``.

Exact values come from LAPACK decompositions (``polar_factor`` by SVD, ``sqrtm_psd_eigh`` and
``sqrtm_psd_backward`` by eigh, ``nuclear_norm(method="exact")`` by singular values); the
iterations (Newton-Schulz orthogonalization, coupled Newton-Schulz square root, the Taylor and
Pade polynomials of sqrt(I - Z), the Newton-Schulz sign iteration of the Lyapunov equation,
Hutchinson and Hutch++ trace estimates) are written out for reading, each step on its own
line. ``ns_coefficients`` turns a ``coefficients`` argument into the per-iteration (a, b, c)
of X <- a X + b (X X^T) X + c (X X^T)^2 X; the fast routes use the same schedule.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .gram import gram_bound

__all__ = [
    "polar_factor",
    "orthogonalize",
    "ns_coefficients",
    "sqrtm_psd_eigh",
    "sqrtm_psd",
    "inv_sqrtm_psd",
    "sqrtm_psd_backward",
    "nuclear_norm",
    "schatten_norm",
    "trace_estimate",
    "mano_score",
]

CUBIC = (1.5, -0.5, 0.0)
MUON = (3.4445, -4.7750, 2.0315)  # Jordan et al. (Muon): fast, but sigma stays in ~[0.7, 1.2]
QUINTIC = (15 / 8, -10 / 8, 3 / 8)  # p(1) = 1, p'(1) = p''(1) = 0: cubic convergence near 1
# _polar_full(1e-3) as computed by _minimax_quintic (the default; tests check that the linear
# program reproduces it), stored so that a first call does not wait ~1 s for the solver
POLAR_1E3 = (
    (8.386972563761418, -24.371890462391296, 17.726903611965298),
    (4.1437841551466805, -3.0193791604771882, 0.5527987408026553),
    (3.9338052759219457, -2.876010455788106, 0.5369615820904073),
    (3.2891448138793917, -2.4211325621412847, 0.48701750480483275),
    (2.2905178857282786, -1.6372108514837935, 0.40356288572962173),
    (1.8828567440149624, -1.2491372078289484, 0.36660059705766435),
    (1.8656712827852087, -1.2313971268201684, 0.3657259217852935),
)


# the adaptive iterations' target: a residual ||X^T X - I||_F / sqrt(k) at the working
# precision (float32: a few ulps of 1, the Gram product's own rounding at k = 256)
WORK_TOL = {np.dtype(np.float32): 4e-7, np.dtype(np.float64): 1e-14}

# ----------------------------------------------------------------------- coefficient schedules


def _minimax_quintic(lo, hi):
    """(a, b, c, err, min p, max p): the odd quintic p(x) = a x + b x^3 + c x^5 minimising
    max |1 - p| on [lo, hi] (a linear program on a grid) subject to p(x) >= x on (0, lo]:
    singular values below the design interval keep growing and stay positive."""
    from scipy.optimize import linprog

    x = np.unique(np.concatenate([np.geomspace(lo, hi, 250), np.linspace(lo, hi, 250)]))
    v = np.stack([x, x**3, x**5], axis=1)
    # variables (a, b, c, t); minimise t with |1 - p(x_i)| <= t
    ones = np.ones((len(x), 1))
    a_ub = [np.hstack([v, -ones]), np.hstack([-v, -ones])]
    b_ub = [np.ones(len(x)), -np.ones(len(x))]
    xs = np.geomspace(lo * 1e-3, lo, 50)  # p(x) >= x below the interval
    a_ub.append(np.hstack([-np.stack([xs, xs**3, xs**5], 1), 0 * xs[:, None]]))
    b_ub.append(-xs)
    res = linprog(
        [0, 0, 0, 1],
        A_ub=np.vstack(a_ub),
        b_ub=np.concatenate(b_ub),
        bounds=[(None, None)] * 3 + [(0, None)],
        method="highs",
    )
    a, b, c, _ = res.x
    xd = np.linspace(lo, hi, 20001)
    p = a * xd + b * xd**3 + c * xd**5
    return float(a), float(b), float(c), float(np.abs(1 - p).max()), float(p.min()), float(p.max())


def _polar_schedule(n_iter, lower):
    """The first n_iter steps of ``_polar_full(lower)``."""
    full = _polar_designed(lower)
    return full[:n_iter] + (QUINTIC,) * max(0, n_iter - len(full))


def _polar_designed(lower):
    """``_polar_full(lower)``, the stored POLAR_1E3 for the default (no linear programs)."""
    return POLAR_1E3 if lower == 1e-3 else _polar_full(lower)


def polar_planned(lower):
    """How many steps of the "polar" schedule for ``lower`` come before the pure quintic
    ones (after which every step lowers each |1 - x^2|)."""
    return len(_polar_designed(float(lower)))


@functools.lru_cache(maxsize=32)
def _polar_full(lower):
    """Greedy minimax schedule (the Polar Express idea, Amsel et al. 2025, derived here by
    linear programming): each step's quintic is the best one on the interval the previous
    steps left, [lower, 1] at first; once the interval is within 1e-3 of 1 the fixed quintic
    QUINTIC (cubic convergence) takes over."""
    lo, hi, steps = lower, 1.0, []
    while max(1 - lo, hi - 1) >= 1e-3 and len(steps) < 40:
        # designed on [lo, 1.01 hi]: a margin for rounding above the interval's top
        a, b, c, _, lo, hi = _minimax_quintic(lo, hi * 1.01)
        steps.append((a, b, c))
    return tuple(steps)


# lower="auto": the schedule's assumed smallest singular value is estimated per matrix, never
# below this floor (the default lower), rounded down to one of LOWER_GRID points per decade
# (so a stack needs a handful of schedules, each solved once and cached)
AUTO_LOWER_FLOOR = 1e-3
LOWER_GRID = 8
# the inverse iteration's estimate sqrt(1 / v^T A^-1 v) is at or above the true smallest
# singular value; it is trusted to within this factor
POWER_TRUST = 0.8
POWER_STEPS = 4


def lower_from_gram(A, floor=AUTO_LOWER_FLOOR):
    """Per matrix of A (k, k) or a stack (batch, k, k), A = X^T X of a scaled X (singular
    values at most 1): an estimate of X's smallest singular value s for the "polar"
    schedule, float64 array (batch,). From A's Cholesky factor (the QDWH algorithm starts
    the same way), the larger of two estimates of lambda_min(A) = s^2:
    1 / ||A^-1||_1 by LAPACK's 1-norm condition estimate (below lambda_min by up to
    sqrt(k) unless the estimator undershoots the norm), and POWER_TRUST^2 times the Rayleigh
    quotient 1 / (v^T A^-1 v) after POWER_STEPS steps of inverse iteration from a fixed
    start (above lambda_min, close to it once the iteration has found the smallest
    eigenvector); all in float32 (spotrf, spocon, spotrs: an estimate, at 0.6x float64's
    time). Then s rounded down to the LOWER_GRID grid, at least ``floor``, at most 1;
    ``floor`` where A is not numerically positive definite (in float32). O(k^3 / 3) a
    matrix: about 30 us at k = 128, 0.3 ms at 256, 12 ms at 1024 (OpenBLAS, one thread).
    Underestimating s costs steps; overestimating it leaves the smallest singular values to
    the later steps (still convergent), so neither breaks the iteration."""
    from scipy.linalg import lapack

    A = np.asarray(A, dtype=np.float32)
    k = A.shape[-1]
    flat = A.reshape(-1, k, k)
    out = np.full(flat.shape[0], float(floor))
    for i, a in enumerate(flat):
        chol, info = lapack.spotrf(a, lower=1, clean=1)
        if info == 0:
            out[i] = lower_from_factor(chol, a, floor, lower=True)
    return out


def lower_from_factor(chol, A, floor=AUTO_LOWER_FLOOR, lower=False):
    """``lower_from_gram``'s estimate for one matrix A (k, k) from its float32 Cholesky
    factor ``chol`` (A = R^T R with R = chol upper triangular, or A = L L^T, L = chol,
    when ``lower``); ``floor`` when an estimate is not finite and positive."""
    from scipy.linalg import lapack

    uplo = "L" if lower else "U"
    anorm = float(np.abs(A).sum(axis=0, dtype=np.float64).max())  # ||A||_1
    if not np.isfinite(anorm):
        return float(floor)
    rcond, info = lapack.spocon(chol, anorm, uplo=uplo)
    lam = float(rcond) * anorm if info == 0 else 0.0
    v = _power_start(A.shape[-1])
    nu = 0.0
    for _ in range(POWER_STEPS):
        w, info = lapack.spotrs(chol, v, lower=int(lower))
        if info != 0:
            break
        nu = float(v @ w)  # v^T A^-1 v, v a unit vector
        v = w / np.float32(np.linalg.norm(w))
    if nu > 0 and np.isfinite(nu):
        lam = max(lam, POWER_TRUST**2 / nu)
    if not lam > 0 or not np.isfinite(lam):
        return float(floor)
    return grid_floor(math.sqrt(lam), floor)


def grid_floor(s, floor=AUTO_LOWER_FLOOR):
    """s > 0 rounded down to one of LOWER_GRID points per decade, within [floor, 1]."""
    grid = math.floor(math.log10(s) * LOWER_GRID) / LOWER_GRID
    return min(1.0, max(float(floor), 10.0**grid))


# the scaled Newton step's estimates of R's extreme singular values: power iterations
NEWTON_POWER_STEPS = 2  # 1 to 3 gave the same schedules on the MiniLM covariances


def newton_polar_start(R, Rinv, gram, square):
    """One scaled Newton step of the polar iteration for a stack R (batch, k, k) of
    nonsingular upper triangular factors with inverses Rinv (Higham's scaled Newton
    iteration; the inverse of a triangular factor costs k^3 / 3 flops, a sixth of a
    Newton-Schulz step): X = (z R + R^-T / z) / 2 has R's polar factor and singular values
    h(z s) = (z s + 1 / (z s)) / 2 >= 1 for R's s, so with z = 1 / sqrt(s_max s_min)
    (``newton_zeta``) the condition number sqrt(kappa) of R drops to about
    (kappa^(1/4) + kappa^(-1/4)) / 2 (1e4 -> 5). Then X is scaled by the certified bound of
    ``newton_scaled`` into singular values [1 / u, 1]. ``gram(X)``: X^T X for a stack,
    ``square(A)``: A A for a symmetric stack (the caller's products).

    Returns (X / u, A / u^2, A^2 / u^4, lows) with A = X^T X: the scaled iterate, its Gram
    product and that one's square (the first Newton-Schulz step's) and ``newton_scaled``'s
    lows (NaN where A overflowed: the caller takes another route for that matrix)."""
    z = newton_zeta(R, Rinv)
    work = R.dtype
    with np.errstate(over="ignore", invalid="ignore"):
        X = R * (0.5 * z).astype(work)[:, None, None]
        X += np.swapaxes(Rinv, 1, 2) * (0.5 / z).astype(work)[:, None, None]
        A = gram(X)
    return newton_scaled(X, A, square)


def newton_zeta(R, Rinv):
    """float64 (batch,) z = 1 / sqrt(s_max s_min) for the stacks R and Rinv = R^-1: s_max
    and s_min estimated by NEWTON_POWER_STEPS steps of the power iteration on R^T R and on
    R^-1 R^-T from a fixed start (an estimate is enough: z only balances the two ends); 1
    where an estimate is not finite."""
    batch, k = R.shape[0], R.shape[-1]
    work = R.dtype

    def largest(F, Ft):  # ||F v|| for v the power iteration's vector on F^T F (a norm, not
        # its square: R^-1 of a float64 R with s_min = 1e-150 has norms near 1e150)
        v = np.broadcast_to(_power_start(k).astype(work)[:, None], (batch, k, 1))
        for _ in range(NEWTON_POWER_STEPS):
            w = Ft @ (F @ v)
            w = w / np.abs(w).max(axis=1, keepdims=True)  # so that its norm cannot overflow
            v = w / np.linalg.norm(w, axis=1, keepdims=True)
        x = (F @ v).astype(np.float64)
        m = np.abs(x).max(axis=(1, 2))
        return m * np.linalg.norm(x / m[:, None, None], axis=(1, 2))

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        s_max = largest(R, np.swapaxes(R, 1, 2))  # from below
        inv_min = largest(np.swapaxes(Rinv, 1, 2), Rinv)  # ~ 1 / s_min, from below
        z = np.sqrt(inv_min / s_max)
    # an estimate that overflowed would unbalance the ends (z = 1 on R with s in [1e-150, 1]
    # made s = 1 the smallest singular value of X); the power vectors' norms stay finite
    # for every R whose inverse is finite
    return np.where(np.isfinite(z) & (z > 0), z, 1.0)


def newton_scaled(X, A, square):
    """(X / u, A / u^2, A^2 / u^4, lows), X and A scaled in place, for the Newton step's X
    with A = X^T X; ``square(S)``: S S for a symmetric stack. u^2 = min(||A||_inf,
    ||A^2||_F^(1/2)) >= ||A||_2 = ||X||_2^2, certified (a symmetric matrix's 2-norm is at
    most its inf-norm; the second is the Schatten 4-norm, within 1.4x of the largest
    singular value on the MiniLM covariances where the first is 2x off), so X / u has its
    singular values in [1 / u, 1] (those of X are at least 1). A is divided by its
    inf-norm before it is squared, so A^2 cannot overflow. lows: float64 (batch,) 1 / u
    rounded down to the "polar" schedule's grid (``grid_floor``, not clamped: below
    AUTO_LOWER_FLOOR the schedule of the floor runs uncertified, ``polar_certified_steps``),
    NaN where the inf-norm is not finite (A overflowed)."""
    k = X.shape[-1]
    work = X.dtype
    # the sums in the working precision, their rounding covered by the margin
    margin = 1 + 4 * k * float(np.finfo(work).eps)
    with np.errstate(over="ignore", invalid="ignore"):
        u2 = np.abs(A).sum(axis=2).max(axis=1).astype(np.float64) * margin
    bad = ~(np.isfinite(u2) & (u2 > 0))
    u2[bad] = 1.0  # no division by inf; those matrices are reported below
    X /= np.sqrt(u2).astype(work)[:, None, None]
    A /= u2.astype(work)[:, None, None]
    A2 = square(A)  # ||A||_2 <= 1 now: entries of A^2 at most 1
    # one dot product per matrix (einsum's order depends on the stack: results must not)
    F = A2.reshape(A2.shape[0], 1, -1)
    sq = np.matmul(F, F.reshape(A2.shape[0], -1, 1)).reshape(-1)
    s4 = np.sqrt(np.sqrt(sq.astype(np.float64))) * margin
    s4 = np.where(s4 < 1, s4, 1.0)
    X /= np.sqrt(s4).astype(work)[:, None, None]
    A /= s4.astype(work)[:, None, None]
    A2 /= (s4 * s4).astype(work)[:, None, None]
    u = np.sqrt(u2 * s4)
    lows = np.array([grid_floor(1.0 / v, 0.0) for v in u])  # below AUTO_LOWER_FLOOR too
    lows[bad] = np.nan
    return X, A, A2, lows


@functools.lru_cache(maxsize=8)
def _power_start(k):
    """The inverse iteration's fixed unit start vector (float32, k entries)."""
    v = np.random.default_rng(0).standard_normal(k).astype(np.float32)
    v /= np.float32(np.linalg.norm(v))
    v.flags.writeable = False
    return v


@functools.lru_cache(maxsize=32)
def _polar_errors(lower):
    """max |1 - x^2| over the interval that each designed step of ``_polar_designed(lower)``
    leaves of [lower, 1], with the design's 1% margin on the interval's top at each step.
    Each step's image of its interval is bounded from the polynomial on a grid of spacing
    h: its extremes are the ends (on the grid) or where p' = 0, within max|p''| h^2 / 8 of
    a grid value, the margin added (a bound, not an estimate)."""
    lo, hi, errs = lower, 1.0, []
    for a, b, c in _polar_designed(lower):
        x = np.linspace(lo, 1.01 * hi, 20001)
        p = a * x + b * x**3 + c * x**5
        h = x[1] - x[0]
        curv = 6 * abs(b) * x[-1] + 20 * abs(c) * x[-1] ** 3  # >= |p''| on [0, x[-1]]
        margin = curv * h * h / 8 + 1e-15
        lo, hi = float(p.min()) - margin, float(p.max()) + margin
        errs.append(max(1 - lo * lo, hi * hi - 1))
    return tuple(errs)


def polar_certified_steps(lowers, n_iter, e_stop):
    """``polar_steps`` for starts whose singular values are certified to lie in [lower, 1]
    (``newton_polar_start``): each matrix's designed schedule ends after the first step
    that leaves every |1 - x^2| at most ``e_stop`` (``_polar_errors``), then QUINTIC; from
    lower 0.133, say, two designed steps instead of three. Returns (steps (batch, n_iter,
    3), bounds (batch,)): bounds[i], the largest |1 - x^2| before matrix i's first QUINTIC
    step (at most e_stop where the schedule reaches it), for ``ns_last``. A lower below
    AUTO_LOWER_FLOOR (condition above 1e3 after the Newton step, which only a condition
    number of R beyond ~1e12 leaves) takes the floor's full schedule with bound inf: its
    convergence is left to the residual tests."""
    lowers = np.asarray(lowers, dtype=np.float64)
    below = lowers < AUTO_LOWER_FLOOR  # the floor's schedule, no certified end
    lowers = np.maximum(lowers, AUTO_LOWER_FLOOR)
    out = np.empty((lowers.size, n_iter, 3))
    bounds = np.empty(lowers.size)
    for v in np.unique(lowers):
        errs = _polar_errors(float(v))
        cut = next((i + 1 for i, e in enumerate(errs) if e <= e_stop), len(errs))
        steps = _polar_designed(float(v))[:cut][:n_iter]
        steps += (QUINTIC,) * (n_iter - len(steps))
        out[lowers == v] = np.asarray(steps).reshape(n_iter, 3)
        bounds[lowers == v] = errs[cut - 1] if cut else 1 - v * v
    bounds[below] = np.inf
    return out, bounds


def certified_e_stop(dtype, k):
    """The |1 - x^2| from which one QUINTIC step ends within the working precision's
    residual WORK_TOL * sqrt(k) for k x k matrices (``ns_last``'s threshold)."""
    tol = WORK_TOL[np.dtype(dtype)] * math.sqrt(k)
    return min(LAST_BELOW, (tol / 0.64) ** (1 / 3))


def polar_steps(lowers, n_iter):
    """(batch, n_iter, 3) float64: row i is ``ns_coefficients("polar", n_iter, lowers[i])``,
    each distinct lower's schedule computed once."""
    lowers = np.asarray(lowers, dtype=np.float64)
    out = np.empty((lowers.size, n_iter, 3))
    for v in np.unique(lowers):
        out[lowers == v] = np.asarray(_polar_schedule(n_iter, float(v))).reshape(n_iter, 3)
    return out


def ns_coefficients(coefficients, n_iter, lower=1e-3):
    """Per-iteration (a, b, c) for X <- a X + b (X X^T) X + c (X X^T)^2 X.

    coefficients: "cubic" (1.5, -0.5, 0): classic Newton-Schulz, converges to the polar factor
    for singular values in (0, sqrt(3)), quadratically near 1, slowly (x1.5 a step) for small
    ones; "quintic" (15/8, -10/8, 3/8): converges for singular values in (0, ~1.6), cubically
    near 1; "muon" (3.4445, -4.7750, 2.0315): Muon's coefficients, which lift small singular
    values fast (x3.44 a step) but do NOT converge: singular values end in about [0.68, 1.13]
    (orthogonality error ||Q^T Q - I||_2 about 0.5), by design; "polar": a per-iteration
    minimax schedule for singular values in [lower, 1] (see ``_polar_schedule``), converging
    to float precision; a tuple (a, b) or (a, b, c) used at every step; or a sequence of
    n_iter such tuples."""
    if isinstance(coefficients, str):
        if coefficients == "polar":
            return _polar_schedule(n_iter, float(lower))
        fixed = {"cubic": CUBIC, "quintic": QUINTIC, "muon": MUON}[coefficients]
        return (fixed,) * n_iter
    seq = list(coefficients)
    if seq and not isinstance(seq[0], (tuple, list, np.ndarray)):
        seq = [seq] * n_iter
    return tuple(tuple(float(v) for v in s) + (0.0,) * (3 - len(s)) for s in seq)


# ----------------------------------------------------------------------------- orthogonalize


def polar_factor(G):
    """The polar factor U V^T of G = U diag(s) V^T (thin SVD, float64), for a matrix (m, n)
    or a stack (..., m, n): the nearest matrix with orthonormal rows or columns."""
    U, _, Vt = np.linalg.svd(np.asarray(G, dtype=np.float64), full_matrices=False)
    return U @ Vt


def _scale(X, scale, scale_iter):
    """X divided by its Frobenius norm or by its certified Gram-iteration bound (X has its
    largest |entry| 1, so neither overflows); 0 stays 0."""
    if scale == "frobenius":
        s = float(np.sqrt(np.sum(X.astype(np.float64) ** 2)))
    else:
        s = gram_bound(X, scale_iter)
    return X / X.dtype.type(s) if s > 0 else X


# tol's stall rule: a residual below this that no longer halves has reached the working
# precision (the Gram product's own rounding), so further steps cannot lower it
STALL_BELOW = 1e-2


# the steps that lower every |1 - x^2|: only after one of them does a residual that no longer
# halves mean the working precision (``ns_stops``); a designed step can raise the residual of
# a matrix already closer to orthogonal than its interval assumes (a Newton start certified
# to [0.75, 1] that is the identity: 5e-6 -> 3e-3), which is no stall
MONOTONE = (QUINTIC, CUBIC)


def ns_stops(r, prev, tol):
    """The matrices whose Newton-Schulz iteration stops before this step (``tol``): residual
    r = ||X X^T - I||_F at most tol, or stalled (below STALL_BELOW and above half the previous
    step's). r, prev: float64 arrays; prev is inf before the first step and after a designed
    step (only a pure QUINTIC or CUBIC step lowers every |1 - x^2|, so only after one does a
    residual that no longer halves mean the working precision)."""
    return (r <= tol) | ((r < STALL_BELOW) & (r > 0.5 * prev))


# a pure QUINTIC step maps each e = 1 - x^2 to e^3 (5/8 + O(e)), at most 0.64 |e|^3 for
# |e| <= LAST_BELOW: from a residual r = ||E||_F (>= max |e|) it ends at most 0.64 r^3
LAST_BELOW = 0.02


def ns_last(r, tol, quintic):
    """The matrices whose step at residual r (float64 array) is their last under ``tol``,
    with no Gram product after it to test: the step is the pure QUINTIC (``quintic``, a bool
    array or bool) and r <= min(LAST_BELOW, (tol / 0.64)^(1/3)), so it ends within tol, or
    at the working precision where tol is below it. Saves the products of the step that
    ``ns_stops`` would run to see the residual stall there."""
    return np.asarray(quintic) & (r <= min(LAST_BELOW, (tol / 0.64) ** (1 / 3)))


def orthogonalize(
    G, n_iter=5, coefficients="cubic", scale="gram", lower=1e-3, scale_iter=4, tol=None
):
    """Newton-Schulz approximation of the polar factor of G (m, n) or of each matrix of a
    stack (..., m, n); the result has G's dtype. Computed in float32 for float16/float32 input
    (float64 for float64) on the Gram side: X = G (or G^T when m > n, so that X X^T is the
    smaller square), X /= max|X|, X /= scale (Frobenius norm or the certified Gram bound),
    then n_iter steps X <- a X + b (X X^T) X + c (X X^T)^2 X; with ``tol``, each matrix stops
    before the first step at which ``ns_stops`` holds for r = ||X X^T - I||_F (A = X X^T of
    that step, in the working dtype; r in float64), or after the step for which ``ns_last``
    holds. ``lower="auto"`` (with "polar"): each
    matrix's schedule is for ``lower_from_gram`` of its first step's A."""
    G = np.asarray(G)
    work = np.float64 if G.dtype == np.float64 else np.float32
    auto = coefficients == "polar" and isinstance(lower, str)  # lower="auto"
    steps = None if auto else ns_coefficients(coefficients, n_iter, lower)
    out = np.empty(G.shape, dtype=G.dtype)
    m, n = G.shape[-2:]
    flat_in, flat_out = G.reshape(-1, m, n), out.reshape(-1, m, n)
    for i in range(flat_in.shape[0]):
        X = flat_in[i].astype(work)
        if m > n:
            X = X.T.copy()
        mx = np.abs(X).max()
        if mx > 0:
            X = X / mx
        X = _scale(X, scale, scale_iter)
        prev = np.inf
        for step in range(n_iter):
            A = X @ X.T
            if step == 0 and auto:  # the schedule for this matrix's estimated smallest value
                steps = ns_coefficients("polar", n_iter, lower_from_gram(A)[0])
            a, b, c = steps[step]
            if tol is not None:
                E = (A - np.eye(A.shape[0], dtype=work)).astype(np.float64)
                r = np.sqrt(np.sum(E * E))
                if ns_stops(r, prev, tol):
                    break
                prev = r if (a, b, c) in MONOTONE else np.inf  # see ns_stops
            B = b * A + c * (A @ A)
            X = a * X + B @ X
            if tol is not None and ns_last(r, tol, (a, b, c) == QUINTIC):
                break
        flat_out[i] = (X.T if m > n else X).astype(G.dtype)
    return out


# ----------------------------------------------------------------------------- square roots


def sqrtm_psd_eigh(A, inverse=False):
    """V diag(w^(1/2)) V^T (or w^(-1/2)) from A = V diag(w) V^T in float64, for a symmetric
    matrix or a stack; eigenvalues below 0 (rounding) are clipped to 0 (inverse: to the
    smallest positive float64, so a singular A gives huge, not infinite, entries)."""
    w, V = np.linalg.eigh(np.asarray(A, dtype=np.float64))
    w = np.maximum(w, 0.0)
    f = 1 / np.sqrt(np.maximum(w, np.finfo(np.float64).tiny)) if inverse else np.sqrt(w)
    return (V * f[..., None, :]) @ np.swapaxes(V, -1, -2)


def _psd_scale(A, scale):
    """c >= lambda_max(A): the trace, or the certified Gram bound of the spectral norm."""
    if scale == "trace":
        return float(np.trace(A.astype(np.float64)))
    mx = np.abs(A).max()
    return float(gram_bound(A / mx, 4)) * float(mx) if mx > 0 else 0.0


def _pade_terms(m):
    """(alpha_j, beta_j), j = 1..m: the [m/m] Pade approximant of sqrt(1 + x) is
    1 + sum_j alpha_j x / (1 + beta_j x) (Higham, Functions of Matrices, eq. 6.? / the
    Gauss-Legendre form), alpha_j = 2/(2m+1) sin^2(j pi/(2m+1)), beta_j = cos^2(...)."""
    j = np.arange(1, m + 1)
    t = j * np.pi / (2 * m + 1)
    return 2 / (2 * m + 1) * np.sin(t) ** 2, np.cos(t) ** 2


def _taylor_terms(k, inverse):
    """Coefficients of z^1..z^k in the Taylor series of (1 - z)^(1/2) (or ^(-1/2))."""
    e = -0.5 if inverse else 0.5
    c, out = 1.0, []
    for i in range(1, k + 1):
        c *= (e - i + 1) / i
        out.append(c * (-1) ** i)
    return np.array(out)


def polar_sqrt(Y, n_iter, inverse, coefficients="polar", lower=1e-3):
    """(Y^(1/2) or Y^(-1/2), True) for a symmetric positive definite Y (k, k) with
    ||Y||_2 <= 1, or (None, False) when its Cholesky factorization fails (Y singular to the
    working precision): Y = R^T R (R upper triangular, ||R||_2 <= 1), U the polar factor of
    R by n_iter Newton-Schulz steps X <- X (a I + b X^T X + c (X^T X)^2) from X = R (the
    first step's X^T X is Y itself, its upper triangle mirrored), then Y^(1/2) = U^T R and
    Y^(-1/2) = R^-1 U (R = U Y^(1/2)), each symmetrized. The steps act on the singular
    values of R, the square roots of Y's eigenvalues: the same scalar iteration as the
    coupled Newton-Schulz square root, at three products a step (two symmetric) instead of
    four.

    ``lower="auto"`` (with "polar"): one scaled Newton step comes first
    (``newton_polar_start``: R^-1 by a triangular inverse, condition sqrt(kappa) -> about
    kappa^(1/4) / 2), then n_iter steps of the schedule for its certified lower bound
    (``polar_certified_steps``); (None, False) also when R^-1 or that step is not finite."""
    import scipy.linalg

    work = Y.dtype
    G = np.triu(Y) + np.triu(Y, 1).T
    try:
        R = np.linalg.cholesky(G).T
    except np.linalg.LinAlgError:
        return None, False
    eye = np.eye(Y.shape[0], dtype=work)
    Rinv = None
    X, A0 = R.copy(), G
    if coefficients == "polar" and isinstance(lower, str):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            Rinv = scipy.linalg.solve_triangular(R, eye)
        if not np.isfinite(Rinv).all():
            return None, False
        Xs, As, _, lows = newton_polar_start(
            R[None], Rinv[None], lambda S: np.swapaxes(S, 1, 2) @ S, lambda S: S @ S
        )
        if not np.isfinite(lows[0]):
            return None, False
        X, A0 = Xs[0], As[0]
        steps = polar_certified_steps(lows, n_iter, certified_e_stop(work, Y.shape[0]))[0][0]
    else:
        steps = ns_coefficients(coefficients, n_iter, lower)
    for i, (a, b, c) in enumerate(steps):
        A = A0 if i == 0 else X.T @ X
        X = X @ (a * eye + b * A + c * (A @ A))
    if inverse:
        H = Rinv @ X if Rinv is not None else scipy.linalg.solve_triangular(R, X)
    else:
        H = X.T @ R
    return ((H + H.T) / 2).astype(work), True


def _sqrtm_one(A, method, n_iter, scale, inverse, coefficients="polar", lower=1e-3):
    n = A.shape[0]
    work = A.dtype
    eye = np.eye(n, dtype=work)
    c = _psd_scale(A, scale)
    if c <= 0:
        return np.zeros_like(A) if not inverse else np.full_like(A, np.inf)
    Y = A / work.type(c)
    if method == "polar":
        R, ok = polar_sqrt(Y, n_iter, inverse, coefficients, lower)
        if ok:
            return R * work.type(c ** (-0.5) if inverse else c**0.5)
        method = "newton-schulz"  # singular to the working precision: the coupled iteration
    if method == "newton-schulz":
        # M = Z Y, T = a I + b M + c M^2: on x = sqrt(eigenvalue) the step is x <- p(x), the
        # polar iteration; "cubic" (1.5, -0.5, 0) is Higham's T = (3I - Z Y)/2
        Z = eye.copy()
        if coefficients == "polar" and isinstance(lower, str):  # "auto": Y's eigenvalues are x^2
            lower = lower_from_gram(Y)[0]
        planned = polar_planned(lower) if coefficients == "polar" else 0
        prev = np.inf
        for i, (a, b, c5) in enumerate(ns_coefficients(coefficients, n_iter, lower)):
            M = Z @ Y
            # a singular A: Z grows on the null space until Z Y's rounding there is O(1); stop
            # when the residual is not finite or rises after the planned schedule (the range
            # has converged by then; see _matfun_iter._Stopper)
            with np.errstate(over="ignore", invalid="ignore"):
                r = float(np.sqrt(np.sum((M - eye).astype(np.float64) ** 2)) / np.sqrt(n))
            if not np.isfinite(r) or (i > planned and r > prev and r >= STALL_BELOW):
                break
            prev = r
            T = a * eye + b * M + c5 * (M @ M)
            Y, Z = Y @ T, T @ Z
        R = Z if inverse else Y
    elif method == "taylor":
        Zm = eye - Y  # sqrt(A/c) = sqrt(I - Zm), eigenvalues of Zm in [0, 1)
        R, P = eye.copy(), eye.copy()
        for coef in _taylor_terms(n_iter, inverse):
            P = P @ Zm
            R = R + work.type(coef) * P
    else:  # pade: sqrt(I - Zm) = I - sum_j alpha_j Zm (I - beta_j Zm)^-1
        Zm = eye - Y
        alpha, beta = _pade_terms(n_iter)
        R = eye.copy()
        for a, b in zip(alpha, beta):
            R = R - work.type(a) * np.linalg.solve(eye - work.type(b) * Zm, Zm)
        if inverse:
            R = np.linalg.solve(R, eye)
    f = c ** (-0.5) if inverse else c**0.5
    return R * work.type(f)


def sqrtm_psd(A, method="newton-schulz", n_iter=20, scale="gram", coefficients="polar", lower=1e-3):
    """Square root of a symmetric positive semi-definite A (n, n) or stack, by the plain
    iteration of ``method`` (see :func:`matkern.sqrtm_psd`), one matrix at a time, in A's
    precision (float32 for float16)."""
    return _sqrtm_stack(A, method, n_iter, scale, False, coefficients, lower)


def inv_sqrtm_psd(
    A, method="newton-schulz", n_iter=20, scale="gram", coefficients="polar", lower=1e-3
):
    """A^(-1/2) by the plain iteration of ``method``, as :func:`sqrtm_psd`."""
    return _sqrtm_stack(A, method, n_iter, scale, True, coefficients, lower)


def _sqrtm_stack(A, method, n_iter, scale, inverse, coefficients="polar", lower=1e-3):
    A = np.asarray(A)
    work = np.float64 if A.dtype == np.float64 else np.float32
    n = A.shape[-1]
    flat = A.reshape(-1, n, n).astype(work)
    out = np.stack(
        [_sqrtm_one(a, method, n_iter, scale, inverse, coefficients, lower) for a in flat]
    )
    return out.reshape(A.shape).astype(A.dtype)


def sqrtm_psd_backward(A, sqrtA, grad):
    """dL/dA for L(sqrtm(A)) given dL/dS = grad: the X with S X + X S = grad, S = sqrtA,
    from S = V diag(s) V^T: X = V ((V^T grad V) / (s_i + s_j)) V^T, in float64 (pairs with
    s_i + s_j = 0, a singular A, give 0). A is not used (kept for the public signature)."""
    S = np.asarray(sqrtA, dtype=np.float64)
    s, V = np.linalg.eigh(S)
    s = np.maximum(s, 0.0)
    Vt = np.swapaxes(V, -1, -2)
    den = s[..., :, None] + s[..., None, :]
    H = Vt @ np.asarray(grad, dtype=np.float64) @ V
    H = np.where(den > 0, H / np.where(den > 0, den, 1.0), 0.0)
    return V @ H @ Vt


# ----------------------------------------------------------------------------------- norms


def nuclear_norm(A, method="exact"):
    """Sum of the singular values of A (m, n), float64: "exact" from LAPACK's singular
    values; "l12" the L_{1,2} approximation of Li et al. (Matrix Nuclear-Norm, EMNLP'25
    Findings): the sum of the min(m, n) largest column norms (an upper bound when n <= m,
    equal for orthogonal columns)."""
    A = np.asarray(A, dtype=np.float64)
    if method == "l12":
        mx = float(np.abs(A).max())  # squares of entries near 1e200 would overflow
        B = A / mx if mx > 0 else A
        cols = np.sort(np.sqrt((B * B).sum(axis=0)))[::-1]
        return float(cols[: min(A.shape)].sum()) * (mx if mx > 0 else 1.0)
    return float(np.linalg.svd(A, compute_uv=False).sum())


def schatten_norm(A, p):
    """(sum_i s_i^p)^(1/p) from the singular values (float64); p = inf: the largest."""
    s = np.linalg.svd(np.asarray(A, dtype=np.float64), compute_uv=False)
    if np.isinf(p) or s.max() == 0:
        return float(s.max())
    return float(((s / s.max()) ** p).sum() ** (1 / p) * s.max())  # s**p alone overflows


def trace_estimate(op, n, n_probes, method="hutchinson", seed=0):
    """Hutchinson (mean of g^T op g over Rademacher probes g) or Hutch++ (Meyer et al.,
    SOSA'21: tr(Q^T op Q) for Q an orthonormal basis of op S, S n_probes/3 probes, plus
    Hutchinson on (I - QQ^T) op (I - QQ^T) with the remaining probes), the probes applied
    one at a time. op: a square array or anything with ``@`` on vectors."""
    rng = np.random.default_rng(seed)

    def mv(v):
        return np.asarray(op @ v, dtype=np.float64)

    if method == "hutchinson":
        g = rng.choice([-1.0, 1.0], size=(n_probes, n))
        return float(np.mean([gi @ mv(gi) for gi in g]))
    k = max(1, n_probes // 3)
    S = rng.choice([-1.0, 1.0], size=(n, k))
    Q, _ = np.linalg.qr(np.stack([mv(S[:, j]) for j in range(k)], axis=1))
    low = sum(Q[:, j] @ mv(Q[:, j]) for j in range(Q.shape[1]))
    r = max(1, n_probes - 2 * k)
    g = rng.choice([-1.0, 1.0], size=(r, n))
    rest = 0.0
    for gi in g:
        v = gi - Q @ (Q.T @ gi)
        rest += v @ mv(v)
    return float(low + rest / r)


def mano_score(logits, p=4, normalization="auto", threshold=5.0):
    """MaNo (Xie et al., NeurIPS'24): ||sigma(logits)||_p / (N K)^(1/p), entrywise p-norm of
    the normalized (N, K) logits, in float64. sigma is softmax when the criterion
    Phi = mean_i (logsumexp(q_i) - mean_k q_ik) (cross-entropy to the uniform label) exceeds
    ``threshold`` ("auto"), else the order-2 Taylor normalization: v = 1 + q + q^2/2, minus
    its row minimum, divided by its row sum (rows that become 0 stay 0)."""
    q = np.asarray(logits, dtype=np.float64)
    mx = q.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(q - mx).sum(axis=1))
    phi = float(np.mean(lse - q.mean(axis=1)))
    if normalization == "softmax" or (normalization == "auto" and phi > threshold):
        e = np.exp(q - mx)
        P = e / e.sum(axis=1, keepdims=True)
    else:
        v = 1 + q + q * q / 2
        v = v - v.min(axis=1, keepdims=True)
        s = v.sum(axis=1, keepdims=True)
        P = v / np.maximum(s, 1e-12)
    N, K = q.shape
    if np.isinf(p):
        return float(np.abs(P).max())
    return float((np.abs(P) ** p).sum() ** (1 / p) / (N * K) ** (1 / p))
