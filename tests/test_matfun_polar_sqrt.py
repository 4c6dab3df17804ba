"""The Cholesky + Newton + Newton-Schulz square root (sqrtm_psd / inv_sqrtm_psd with
method="polar", lower="auto") and its parts: the triangular inverse, the GIL-free LAPACK
calls, the certified Newton start, the certified schedules and the last-step rule.

Tolerances:
- square roots against the float64 eigh root: at most twice scipy.linalg.sqrtm's own error
  on the same rounded input plus 10 eps (scipy is the anchor users have); the inverse root
  within (kappa / 2 + 20) eps, its sensitivity to the input's rounding (measured: 0.02 to
  0.07 of kappa eps / 2, 10 eps at kappa = 10);
- the triangular inverse: ||R Rinv - I||_max <= 4 k eps kappa_inf(R) (the forward error
  bound of a triangular inverse, Higham, Accuracy and Stability, ch. 8);
- the certified bounds: exact properties (sigma_max(X / u) <= 1 up to the Gram product's
  rounding, 1e-5 relative; every sigma of X / u >= lows);
- the schedules' bounds: dense-grid evaluations in float64 of the polynomials themselves.
"""

import threading

import numpy as np
import pytest
import scipy.linalg

import matkern
from matkern import _lapack_nogil, _matfun_bmm, _matfun_iter
from matkern.reference import matfun as ref

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}


def _spd(rng, batch, n, cond):
    Q = np.linalg.qr(rng.standard_normal((batch, n, n)))[0]
    w = np.geomspace(1.0, 1.0 / cond, n)
    return (Q * w[None, None, :]) @ np.swapaxes(Q, 1, 2)


def _rel(S, ex):
    d = (S.astype(np.float64) - ex).reshape(len(ex), -1)
    return np.linalg.norm(d, axis=1) / np.linalg.norm(ex.reshape(len(ex), -1), axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cond", [1e1, 1e3, 1e5, 1e6])
def test_accuracy_across_condition_numbers(dtype, cond):
    A = _spd(np.random.default_rng(int(cond)), 3, 96, cond)
    Ad = A.astype(dtype)
    ex, exi = ref.sqrtm_psd_eigh(A), ref.sqrtm_psd_eigh(A, True)
    scipy_err = _rel(np.array([np.real(scipy.linalg.sqrtm(a)) for a in Ad]), ex)
    S = matkern.sqrtm_psd(Ad, "polar")
    Si = matkern.inv_sqrtm_psd(Ad, "polar")
    assert S.dtype == Si.dtype == dtype
    eps = EPS[dtype]
    assert np.all(_rel(S, ex) <= 2 * scipy_err + 10 * eps)
    assert np.all(_rel(Si, exi) <= (cond / 2 + 20) * eps)


def test_reference_takes_the_same_steps():
    """The reference's polar_sqrt (one matrix at a time, NumPy products) runs the same Newton
    start, schedule and steps: the same root to float32 rounding over 10 steps."""
    A = _spd(np.random.default_rng(5), 4, 64, 1e4).astype(np.float32)
    for inverse in (False, True):
        f = matkern.inv_sqrtm_psd if inverse else matkern.sqrtm_psd
        fr = ref.inv_sqrtm_psd if inverse else ref.sqrtm_psd
        S, R = f(A, "polar", n_iter=6), fr(A, "polar", 6, "trace", lower="auto")
        np.testing.assert_allclose(S, R, atol=(1e-3 if inverse else 2e-5) * np.abs(R).max())


def test_fallback_where_the_inverse_is_not_finite(monkeypatch):
    """A matrix whose triangular inverse is not finite takes the coupled iteration; the
    others keep the Newton route; all accurate."""
    A = _spd(np.random.default_rng(6), 3, 40, 100.0).astype(np.float32)
    real = _matfun_iter.tri_inv_upper

    def broken(R):
        out = real(R)
        out[1, 0, 0] = np.inf
        return out

    monkeypatch.setattr(_matfun_iter, "tri_inv_upper", broken)
    with matkern.threads(1):  # one piece: matrix 1 of the stack is the broken one
        S = matkern.sqrtm_psd(A, "polar")
    assert np.all(_rel(S, ref.sqrtm_psd_eigh(A.astype(np.float64))) < 5e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5, 64, 65, 200, 256])
def test_triangular_inverse(dtype, k):
    rng = np.random.default_rng(k)
    R = np.triu(rng.standard_normal((3, k, k))) + 4 * np.sqrt(k) * np.eye(k)
    R = R.astype(dtype)
    Ri = _matfun_bmm.tri_inv_upper(R)
    assert not np.tril(Ri, -1).any()
    for r, ri in zip(R.astype(np.float64), Ri.astype(np.float64)):
        kappa = np.abs(r).sum(1).max() * np.abs(ri).sum(1).max()
        assert np.abs(r @ ri - np.eye(k)).max() <= 4 * k * EPS[dtype] * kappa
    R[1, k // 2, k // 2] = 0  # singular: that matrix only is not finite
    Ri = _matfun_bmm.tri_inv_upper(R)
    assert not np.isfinite(Ri[1]).all() and np.isfinite(Ri[[0, 2]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("capsule", [True, False])
def test_lapack_without_the_gil(monkeypatch, dtype, capsule):
    """potrf_upper / trtri_upper in place against NumPy (through cython_lapack's capsules
    and through the f2py fallback), info > 0 for a matrix that is not positive definite,
    and correct from several threads at once."""
    if capsule:  # the GIL-free route is really taken with this SciPy
        assert _lapack_nogil._routine("spotrf") is not None
        assert _lapack_nogil._routine("dtrtri") is not None
    else:
        monkeypatch.setattr(_lapack_nogil, "_routine", lambda name: None)
    rng = np.random.default_rng(2)
    A = _spd(rng, 8, 50, 1e3).astype(dtype)
    want = np.linalg.cholesky(A.astype(np.float64), upper=True)
    R = A.copy()
    results = []

    def work(idx):
        results.append([_lapack_nogil.potrf_upper(R[i]) for i in idx])

    threads = [threading.Thread(target=work, args=(range(j, 8, 2),)) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(info == 0 for r in results for info in r)
    R = np.triu(R)
    tol = 50 * EPS[dtype] * np.abs(want).max()
    np.testing.assert_allclose(R, want, atol=tol, rtol=0)
    Ri = R.copy()
    assert all(_lapack_nogil.trtri_upper(r) == 0 for r in Ri)
    np.testing.assert_allclose(
        np.triu(Ri) @ R, np.broadcast_to(np.eye(50), R.shape), atol=1e3 * tol
    )
    bad = -np.eye(4, dtype=dtype)
    assert _lapack_nogil.potrf_upper(bad) > 0


@pytest.mark.parametrize("cond", [1.0, 1e2, 1e4, 1e6])
def test_newton_start_is_certified(cond):
    """X / u has singular values in [lows, 1] (the schedule's interval) and the polar factor
    of R; A and A2 are its Gram product and that one's square."""
    Y = _spd(np.random.default_rng(int(cond) + 1), 4, 60, cond)
    R = np.linalg.cholesky(Y, upper=True)
    Ri = np.linalg.inv(R)
    X, A, A2, lows = ref.newton_polar_start(
        R.copy(), Ri, lambda S: np.swapaxes(S, 1, 2) @ S, lambda S: S @ S
    )
    s = np.linalg.svd(X, compute_uv=False)
    assert np.all(s[:, 0] <= 1 + 1e-5) and np.all(s[:, -1] >= lows)
    np.testing.assert_allclose(ref.polar_factor(X), ref.polar_factor(R), atol=1e-9)
    np.testing.assert_allclose(A, np.swapaxes(X, 1, 2) @ X, atol=1e-12)
    np.testing.assert_allclose(A2, A @ A, atol=1e-12)
    kappa_r = np.sqrt(cond)  # the step's purpose: sqrt(kappa(R)) -> about kappa(R)^(1/2) / 2
    assert np.all(s[:, 0] / s[:, -1] <= max(2.0, 1.5 * np.sqrt(kappa_r)))


@pytest.mark.parametrize("e_stop", [0.02, 1e-3, 5e-5])
def test_certified_schedules_keep_their_bounds(e_stop):
    """After each matrix's designed steps (cut where the bound reaches e_stop) every
    x in [lower, 1] has |1 - p(x)^2| <= bound, and the QUINTIC step after it takes that to
    0.64 bound^3; the bound is at most e_stop wherever the full design reaches it."""
    lows = np.array([1e-3, 0.0133, 0.1, 0.1778, 0.3162, 0.75, 1.0])
    steps, bounds = ref.polar_certified_steps(lows, 12, e_stop)
    for low, sched, bound in zip(lows, steps, bounds):
        x = np.unique(np.concatenate([np.geomspace(low, 1, 4000), np.linspace(low, 1, 4000)]))
        i = 0
        while tuple(sched[i]) != ref.QUINTIC:
            a, b, c = sched[i]
            x = a * x + b * x**3 + c * x**5
            i += 1
        assert np.abs(1 - x**2).max() <= bound * (1 + 1e-9)
        if min(ref._polar_errors(float(low)) or (0.0,)) <= e_stop:
            assert bound <= e_stop
        a, b, c = ref.QUINTIC
        x = a * x + b * x**3 + c * x**5
        assert np.abs(1 - x**2).max() <= 0.64 * bound**3 + 1e-15


def test_last_step_rule_bound():
    """One QUINTIC step maps e = 1 - x^2 to at most 0.64 |e|^3 for |e| <= LAST_BELOW
    (float64 on |e| >= 1e-4, where e^3 is far above the rounding)."""
    e = np.concatenate(
        [np.linspace(1e-4, ref.LAST_BELOW, 20001), -np.linspace(1e-4, ref.LAST_BELOW, 20001)]
    )
    x = np.sqrt(1 - e)
    a, b, c = ref.QUINTIC
    p = a * x + b * x**3 + c * x**5
    assert np.all(np.abs(1 - p**2) <= 0.64 * np.abs(e) ** 3)
    assert ref.ns_last(np.array([0.019, 0.021]), 1.0, True).tolist() == [True, False]
    assert not ref.ns_last(np.array([1e-3]), 1e-14, True)[0]  # float64's tol needs r <= 2.5e-5
    assert not ref.ns_last(np.array([1e-3]), 1.0, False)[0]  # a designed step: no rule


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 5, 130])
def test_already_converged_matrices(dtype, n):
    """Multiples of the identity: the Newton start is certified only to [0.75, 1] (the grid
    below 1 - rounding), and the designed step for that interval moves the residual from
    ~1e-6 up to ~3e-3; that rise is not a stall (it used to stop there with an error of
    7e-4 in float32). Exact to 16 eps (the rounding of the steps that follow; 10 eps
    measured in float64)."""
    A = np.broadcast_to(3 * np.eye(n, dtype=dtype), (3, n, n)).copy()
    for f, want in ((matkern.sqrtm_psd, np.sqrt(3.0)), (matkern.inv_sqrtm_psd, 3**-0.5)):
        S = f(A, "polar")
        want_s = np.broadcast_to(want * np.eye(n), S.shape)
        np.testing.assert_allclose(S, want_s, atol=16 * EPS[dtype] * want, rtol=0)


@pytest.mark.parametrize("dtype,tiny", [(np.float32, 1e-30), (np.float64, 1e-300)])
def test_eigenvalues_over_the_whole_range(dtype, tiny):
    """Diagonal matrices with eigenvalues from 1 down to 1e-30 (float32) / 1e-300 (float64):
    no overflow (the power iteration's norms and A A used to overflow: NaN, or z = 1 made the
    largest eigenvalue the iteration's smallest, 2e-132 for sqrt(1)); the relative error to
    working precision (roots of eigenvalues below ~1e-40 of the largest stay unconverged at
    the step limit, as with the coupled iteration: far below that error)."""
    d = np.geomspace(1.0, tiny, 6)
    A = np.diag(d).astype(dtype)[None]
    S = matkern.sqrtm_psd(A, "polar")
    assert np.isfinite(S).all()
    np.testing.assert_allclose(S[0, 0, 0], 1.0, rtol=10 * EPS[dtype])
    assert np.abs(S[0] - np.diag(np.sqrt(d))).max() <= 10 * EPS[dtype]


def test_calls_from_several_threads():
    """Concurrent calls (the LAPACK calls run without the GIL, the products on matkern's
    shared thread budget): each result equals the call made alone, to the bit (a matrix's
    path depends on itself only, not on how its stack was cut)."""
    A = _spd(np.random.default_rng(9), 12, 96, 1e4).astype(np.float32)
    want = matkern.sqrtm_psd(A, "polar")
    wanti = matkern.inv_sqrtm_psd(A, "polar")
    got = {}

    def work(i):
        f = matkern.inv_sqrtm_psd if i % 2 else matkern.sqrtm_psd
        got[i] = f(A, "polar")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, S in got.items():
        np.testing.assert_array_equal(S, wanti if i % 2 else want)
