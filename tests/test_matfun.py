"""Matrix functions and norms (issue #22): every backend against the reference and against
LAPACK (numpy.linalg.svd / eigh, scipy.linalg.sqrtm); never-diverge cases; real data (the
MiniLM weights, the digits CNN kernels reshaped); bad input.

Tolerances, and why.
- Backend vs reference, same iteration: the CPU/CUDA routes run the reference's steps on the
  whole stack with BLAS products, which sum in another order: entries of O(1) results agree
  to 2e-5 (float32: a few ulps times the ~10 products of a chain) and 1e-11 (float64).
- Against the exact polar factor / square root (float64 SVD / eigh): a converged iteration
  reaches the working precision times the growth of the chain, 2e-5 (float32, entries O(1))
  and 1e-10 (float64); float16 input is rounded to 2^-11 = 5e-4 relative before it starts,
  so its results agree to 5e-3 (results are float16 too: 2^-11 of rounding).
- Pade / Taylor square roots converge with the degree, not to the working precision: tested
  on well-conditioned matrices (condition 10), where degree 8 (Pade) gives 1.1e-5 and degree
  40 (Taylor) 1.3e-3 relative Frobenius error (measured; the Taylor tail at the smallest
  eigenvalue, z = 0.9, is sum_{k>40} |binom(1/2, k)| 0.9^k), checked at twice that; the
  backends must also agree with the reference's same polynomial to 1e-9.
- Hutch++ is random: exact when the sketch holds the whole range (rank <= n_probes/3), and
  within 2% for the decaying spectra tested (the residual after the sketch is < 1% of the
  norm, and the Lanczos quadrature on it is good to a few %), with fixed seeds.
- MaNo is plain float64 arithmetic: 1e-12 against the reference.
"""

import numpy as np
import pytest
import scipy.linalg

import matkern
from conftest import DATA, to_backend, to_numpy
from matkern import _matfun_iter
from matkern.reference import matfun as ref

TOL = {np.float32: 2e-5, np.float64: 1e-10}


def _orth_err(Q):
    Q = np.asarray(Q, dtype=np.float64)
    if Q.shape[-2] < Q.shape[-1]:
        Q = np.swapaxes(Q, -1, -2)
    k = Q.shape[-1]
    return float(np.abs(np.swapaxes(Q, -1, -2) @ Q - np.eye(k)).max())


def _minilm_weight(i=0):
    with np.load(DATA / "transformer" / "minilm_l6_layer0.npz") as d:
        keys = sorted(k for k in d.files if k.endswith(".weight"))
        return d[keys[i]].astype(np.float32)


def _cnn_kernel():
    d = np.load(DATA / "conv" / "digits_cnn.npz")
    K = d["conv1.weight"].astype(np.float32)
    return np.ascontiguousarray(K.reshape(K.shape[0], -1))  # (64, 288)


# --------------------------------------------------------------------------- orthogonalize


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(40, 24), (24, 40), (3, 30, 30), (2, 2, 16, 20)])
@pytest.mark.parametrize("coefficients", ["cubic", "muon", (2.0, -1.5, 0.5)])
def test_orthogonalize_matches_reference(backend, dtype, shape, coefficients):
    G = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    Q = matkern.orthogonalize(to_backend(G, backend), 6, coefficients, backend=backend)
    R = ref.orthogonalize(G, 6, coefficients)
    assert Q.dtype == dtype and Q.shape == shape
    np.testing.assert_allclose(to_numpy(Q), R, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("coefficients", ["cubic", "quintic", "polar"])
def test_orthogonalize_converges_to_polar_factor(backend, dtype, coefficients):
    G = np.random.default_rng(1).standard_normal((4, 50, 30)).astype(dtype)
    n = {"cubic": 14, "quintic": 10, "polar": 9}[coefficients]
    Q = to_numpy(matkern.orthogonalize(to_backend(G, backend), n, coefficients, backend=backend))
    np.testing.assert_allclose(Q, ref.polar_factor(G), atol=10 * TOL[dtype], rtol=0)
    assert _orth_err(Q) < 10 * TOL[dtype]


def test_orthogonalize_float16_accumulates_in_float32(backend):
    G = np.random.default_rng(2).standard_normal((3, 32, 48)).astype(np.float16)
    Q = matkern.orthogonalize(to_backend(G, backend), 12, backend=backend)
    assert Q.dtype == np.float16
    np.testing.assert_allclose(
        to_numpy(Q).astype(np.float64), ref.polar_factor(G), atol=5e-3, rtol=0
    )


def test_muon_coefficients_do_not_converge_as_documented():
    G = np.random.default_rng(3).standard_normal((64, 64)).astype(np.float32)
    s = np.linalg.svd(matkern.orthogonalize(G, 10, "muon"), compute_uv=False)
    assert (
        0.6 < s.min() and s.max() < 1.2 and _orth_err(matkern.orthogonalize(G, 10, "muon")) > 1e-2
    )


@pytest.mark.parametrize(
    "name, G",
    [
        ("minilm attn_in weight", _minilm_weight(0)),
        ("digits conv1 reshaped", _cnn_kernel()),
    ],
)
def test_gram_scale_saves_iterations_on_real_matrices(name, G):
    """The certified bound is far tighter than the Frobenius norm on real layers: fewer cubic
    steps reach orthogonality error 1e-2, and both converge (never diverge)."""

    def steps(scale):
        for n in range(1, 60):
            if _orth_err(matkern.orthogonalize(G, n, "cubic", scale)) < 1e-2:
                return n
        return 99

    g, f = steps("gram"), steps("frobenius")
    assert g < f < 99, (name, g, f)


def test_gram_scaled_singular_values_never_exceed_one():
    """scale="gram" divides by a certified bound: every scaled singular value is <= 1
    (the convergence region of every schedule), including flat spectra whose Frobenius
    norm is far above the spectral norm, and matrices at the threshold (all singular
    values equal, so the bound is attained)."""
    rng = np.random.default_rng(4)
    Q0, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    cases = [
        rng.standard_normal((5, 64, 96)),
        np.eye(256)[None] * 3.0,  # ||.||_F = 16 ||.||_2
        Q0[None] * 1e30,  # at the threshold, near float32 overflow
        Q0[None] * 1e-30,
        _minilm_weight(1)[None],
        _cnn_kernel()[None],
    ]
    for X in cases:
        for dtype in (np.float32, np.float64):
            Xn, s = _matfun_iter.normalize(X.astype(dtype), "gram", "cpu")
            top = np.linalg.svd(Xn.astype(np.float64), compute_uv=False)[:, 0]
            assert (top <= 1 + 4 * np.finfo(dtype).eps).all()
            # and tight: the Gram bound's worst case after T = 4 products is rank^(1/2^(T+1))
            assert (top >= min(X.shape[-2:]) ** (-1 / 32) * 0.99).all()


@pytest.mark.parametrize("coefficients", ["cubic", "muon", "polar", "quintic"])
def test_never_diverges_at_the_threshold(backend, coefficients):
    """All singular values equal (the bound is attained): every schedule stays bounded; the
    convergent ones return the polar factor. Large and tiny scales too."""
    Q0, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((48, 48)))
    for c in (1e-30, 1.0, 3e30):
        G = (Q0 * c).astype(np.float32)
        Q = to_numpy(
            matkern.orthogonalize(to_backend(G, backend), 8, coefficients, backend=backend)
        )
        assert np.isfinite(Q).all()
        if coefficients != "muon":
            np.testing.assert_allclose(Q, Q0, atol=1e-4)
        else:
            assert np.abs(Q).max() < 2


def test_zero_matrix_gives_zero(backend):
    G = np.zeros((2, 8, 5), np.float32)
    Q = matkern.orthogonalize(to_backend(G, backend), backend=backend)
    assert (to_numpy(Q) == 0).all()


def test_orthogonalize_does_not_modify_input(backend):
    G = np.random.default_rng(6).standard_normal((2, 20, 30)).astype(np.float32)
    Gb = to_backend(G.copy(), backend)
    matkern.orthogonalize(Gb, backend=backend)
    np.testing.assert_array_equal(to_numpy(Gb), G)


def _mixed_stack(rng, count=12, k=40):
    """Gaussian squares (some singular values near 0: many steps) beside nearly orthogonal
    matrices (few steps), so the per-matrix stopping has something to tell apart."""
    G = rng.standard_normal((count, k, k))
    for i in range(0, count, 3):
        Q, _ = np.linalg.qr(G[i])
        G[i] = Q * (1 + 0.05 * rng.standard_normal(k))
    return G


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tol", [1e-2, 1e-5])
def test_orthogonalize_tol_stops_each_matrix(backend, dtype, tol):
    """With tol every matrix ends within tol of orthogonal (or at the working precision;
    then at the polar factor), and the result agrees with the reference's (which stops each
    matrix by the same rule) within tol or the fixed-step test's tolerance."""
    G = _mixed_stack(np.random.default_rng(7)).astype(dtype)
    Q = to_numpy(
        matkern.orthogonalize(to_backend(G, backend), 30, "polar", tol=tol, backend=backend)
    )
    floor = 10 * TOL[dtype]  # the working precision's orthogonality error
    for q in Q:
        assert _orth_err(q) <= max(tol, floor)
    if tol < floor:  # converged: the polar factor
        np.testing.assert_allclose(Q, ref.polar_factor(G), atol=10 * floor, rtol=0)
    R = ref.orthogonalize(G, 30, "polar", tol=tol)
    np.testing.assert_allclose(Q, R, atol=max(tol, 10 * TOL[dtype]), rtol=0)


def test_orthogonalize_tol_runs_fewer_steps_on_easy_matrices(monkeypatch):
    """The stack shrinks as matrices stop: the products of the later steps are taken on
    fewer matrices (counted through the products' batch sizes), and the hard matrices still
    converge."""
    G = _mixed_stack(np.random.default_rng(8)).astype(np.float32)
    sizes = []
    real = _matfun_iter.mm

    def mm(xp, A, B, *args, **kw):
        sizes.append(A.shape[0])
        return real(xp, A, B, *args, **kw)

    monkeypatch.setattr(_matfun_iter, "mm", mm)
    with matkern.threads(1):  # one piece: the whole stack's sizes in order
        Q = matkern.orthogonalize(G, 30, "polar", tol=1e-4)
    assert sizes[0] == 12 and sizes[-1] < 12 and sizes == sorted(sizes, reverse=True)
    assert len(sizes) < 3 * 30  # every matrix stopped before the step limit
    assert max(_orth_err(q) for q in Q) <= 1e-4


def test_orthogonalize_tol_result_does_not_depend_on_the_stack():
    """Each matrix's path depends on itself only: alone, in the stack, on 1 or 2 threads,
    the same bits."""
    G = _mixed_stack(np.random.default_rng(9)).astype(np.float32)
    whole = matkern.orthogonalize(G, 30, "polar", tol=1e-3)
    with matkern.threads(1):
        one = matkern.orthogonalize(G, 30, "polar", tol=1e-3)
    np.testing.assert_array_equal(whole, one)
    for i in (0, 1, 5):
        np.testing.assert_array_equal(
            matkern.orthogonalize(G[i : i + 1], 30, "polar", tol=1e-3)[0], whole[i]
        )


def test_orthogonalize_tol_with_no_steps_returns_the_scaled_input():
    """n_iter=0 with tol: no step, no test; the scaled input as without tol."""
    G = np.random.default_rng(10).standard_normal((3, 20, 12)).astype(np.float32)
    np.testing.assert_array_equal(
        matkern.orthogonalize(G, 0, "polar", tol=1e-3), matkern.orthogonalize(G, 0, "polar")
    )


def _tall(rng, m, k, cond, batch=1):
    """batch matrices m x k with singular values spread evenly from 1 down to 1/cond."""
    U = np.linalg.qr(rng.standard_normal((batch, m, k)))[0]
    V = np.linalg.qr(rng.standard_normal((batch, k, k)))[0]
    return (U * np.linspace(1.0, 1.0 / cond, k)) @ np.swapaxes(V, 1, 2)


def test_lower_from_gram_brackets_the_smallest_singular_value():
    """The estimate lies between the 1-norm bound's worst case and the inverse iteration's
    trust factor over the grid: k^(-1/4) s / grid step <= l <= s / POWER_TRUST (and on the
    grid); singular, NaN and tiny cases give the floor."""
    rng = np.random.default_rng(20)
    step = 10 ** (1 / ref.LOWER_GRID)
    for cond in (2.0, 5.0, 30.0, 300.0):
        X = _tall(rng, 300, 60, cond, batch=3)
        A = (np.swapaxes(X, 1, 2) @ X).astype(np.float32)
        s = np.sqrt(np.linalg.eigvalsh(A.astype(np.float64))[:, 0])
        lo = ref.lower_from_gram(A)
        assert lo.shape == (3,)
        for li, si in zip(lo, s):
            assert si * 60**-0.25 / step <= li <= si / ref.POWER_TRUST * (1 + 1e-6)
            assert abs(np.log10(li) * ref.LOWER_GRID - round(np.log10(li) * ref.LOWER_GRID)) < 1e-9
    assert np.all(ref.lower_from_gram(np.eye(5)) == 1.0)
    floor = ref.AUTO_LOWER_FLOOR
    singular = np.diag([1.0, 0.5, 0.0])
    assert ref.lower_from_gram(singular)[0] == floor
    assert ref.lower_from_gram(np.full((3, 3), np.nan))[0] == floor
    assert ref.lower_from_gram(np.diag([1.0, 1e-12]))[0] == floor  # s = 1e-6 below the floor
    assert ref.lower_from_gram(np.diag([1.0, 1e-12]), floor=1e-7)[0] < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_orthogonalize_auto_lower_needs_fewer_steps(backend, dtype):
    """A well-conditioned matrix (condition 4): with lower="auto" four fixed steps reach the
    working precision, where the default lower=1e-3 schedule is still far off; the backends
    agree with the reference's same schedule."""
    G = _tall(np.random.default_rng(21), 400, 80, 4.0)[0].astype(dtype)
    Q = to_numpy(
        matkern.orthogonalize(to_backend(G, backend), 4, "polar", lower="auto", backend=backend)
    )
    Q0 = to_numpy(matkern.orthogonalize(to_backend(G, backend), 4, "polar", backend=backend))
    assert _orth_err(Q) < 10 * TOL[dtype] and _orth_err(Q0) > 1e-2
    np.testing.assert_allclose(Q, ref.polar_factor(G), atol=10 * TOL[dtype], rtol=0)
    R = ref.orthogonalize(G, 4, "polar", lower="auto")
    np.testing.assert_allclose(Q, R, atol=TOL[dtype], rtol=0)


def test_orthogonalize_auto_lower_each_matrix_its_own_schedule():
    """A stack of a well-conditioned, an ill-conditioned and a rank-deficient matrix: with
    tol each converges (the singular one on its range), bits as when alone and on one
    thread; the Wide stack gives the transpose's result."""
    rng = np.random.default_rng(22)
    G = np.concatenate([_tall(rng, 90, 30, c) for c in (3.0, 300.0)])
    low = _tall(rng, 90, 30, 3.0)[0]
    low[:, -5:] = 0  # rank 25
    G = np.concatenate([G, low[None]]).astype(np.float32)
    whole = matkern.orthogonalize(G, 30, "polar", lower="auto", tol=1e-5)
    with matkern.threads(1):
        np.testing.assert_array_equal(
            matkern.orthogonalize(G, 30, "polar", lower="auto", tol=1e-5), whole
        )
    for i in range(3):
        one = matkern.orthogonalize(G[i : i + 1], 30, "polar", lower="auto", tol=1e-5)[0]
        np.testing.assert_array_equal(one, whole[i])
    for q in whole[:2]:
        assert _orth_err(q) < 10 * TOL[np.float32]
    np.testing.assert_allclose(whole[:2], ref.polar_factor(G[:2]), atol=1e-4, rtol=0)
    # the rank-25 matrix: Q^T Q is the projector onto its row space
    P = whole[2].astype(np.float64).T @ whole[2]
    np.testing.assert_allclose(P @ P, P, atol=1e-4)
    assert abs(np.trace(P) - 25) < 1e-3
    wide = np.ascontiguousarray(np.swapaxes(G, 1, 2))
    np.testing.assert_allclose(
        matkern.orthogonalize(wide, 30, "polar", lower="auto", tol=1e-5),
        np.swapaxes(whole, 1, 2),
        atol=1e-6,
        rtol=0,
    )


def test_sqrtm_auto_lower(backend):
    """sqrtm_psd with lower="auto" (Y's own Cholesky estimate): accurate as with the
    default, in no more steps, and equal to the reference's same schedule."""
    A = _spd(np.random.default_rng(23), 3, 48, 50.0)
    S = to_numpy(
        matkern.sqrtm_psd(to_backend(A, backend), "newton-schulz", lower="auto", backend=backend)
    )
    ex = ref.sqrtm_psd_eigh(A)
    assert np.linalg.norm(S - ex) / np.linalg.norm(ex) < 1e-11
    R = ref.sqrtm_psd(A, n_iter=12, lower="auto")
    np.testing.assert_allclose(S, R, rtol=0, atol=1e-10)
    A32 = A.astype(np.float32)
    _, its = _matfun_iter.sqrtm(A32, "newton-schulz", None, "gram", False, "cpu")
    _, its_auto = _matfun_iter.sqrtm(
        A32, "newton-schulz", None, "gram", False, "cpu", "polar", "auto"
    )
    assert its_auto < its


def test_stored_polar_schedule_is_the_linear_programs():
    np.testing.assert_allclose(ref._polar_full(1e-3), ref.POLAR_1E3, rtol=1e-6, atol=1e-6)


def test_polar_schedule_properties():
    steps = ref.ns_coefficients("polar", 12, 1e-3)
    x = np.geomspace(1e-3, 1, 2000)
    for a, b, c in steps:
        x = a * x + b * x**3 + c * x**5
    assert np.abs(x - 1).max() < 1e-9
    assert len(ref.ns_coefficients((1.5, -0.5), 4, 0.1)) == 4


# ---------------------------------------------------------------------------- square roots


def _spd(rng, batch, n, cond, dtype=np.float64):
    Qs = np.linalg.qr(rng.standard_normal((batch, n, n)))[0]
    w = np.geomspace(1.0, 1.0 / cond, n)
    return ((Qs * w[None, None, :]) @ np.swapaxes(Qs, 1, 2)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", ["gram", "trace"])
@pytest.mark.parametrize("method", ["newton-schulz", "polar"])
def test_sqrtm_newton_schulz_against_scipy(backend, dtype, scale, method):
    A = _spd(np.random.default_rng(7), 3, 64, 1e3, dtype)
    kw = dict(scale=scale, backend=backend)
    if backend == "cuda" and method == "polar":
        with pytest.raises(ValueError, match="CPU only"):
            matkern.sqrtm_psd(to_backend(A, backend), method, **kw)
        return
    S = to_numpy(matkern.sqrtm_psd(to_backend(A, backend), method, **kw))
    Si = to_numpy(matkern.inv_sqrtm_psd(to_backend(A, backend), method, **kw))
    for a, s, si in zip(A.astype(np.float64), S, Si):
        ex = np.real(scipy.linalg.sqrtm(a))
        assert np.linalg.norm(s - ex) / np.linalg.norm(ex) < (
            5e-6 if dtype == np.float32 else 1e-11
        )
        exi = np.linalg.inv(ex)
        # the inverse root carries the condition number (1e3 -> sqrt: 32) times the rounding
        assert np.linalg.norm(si - exi) / np.linalg.norm(exi) < (
            2e-4 if dtype == np.float32 else 1e-10
        )
    assert S.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_iter", [None, 20])
@pytest.mark.parametrize("method", ["newton-schulz", "polar"])
def test_sqrtm_singular_psd_is_finite_and_accurate(backend, dtype, n_iter, method):
    """A rank-deficient PSD matrix (rank 20 of 40, and a stack with a full-rank one): the
    coupled iteration's Z grows on the null space and used to turn every entry to NaN from
    step ~10 (even at a fixed n_iter). It now stops when the residual rises after the
    schedule: the root to the sensitivity of a square root at 0, sqrt(eps) relative (2e-4
    float32, 1.5e-8 float64; checked at 3x), the full-rank matrix as accurate as alone, the
    inverse root finite (huge on the null space, as documented). "polar": a Cholesky
    factorization that fails takes the coupled iteration; one that succeeds (float64, tiny
    pivots) runs the Newton start on R with a huge inverse, to the same error."""
    if backend == "cuda" and method == "polar":
        pytest.skip('method="polar" runs on the CPU only (its ValueError is tested above)')
    rng = np.random.default_rng(25)
    B = rng.standard_normal((40, 20))
    A = np.stack([B @ B.T, _spd(rng, 1, 40, 100.0)[0]]).astype(dtype)
    S = to_numpy(matkern.sqrtm_psd(to_backend(A, backend), method, n_iter, backend=backend))
    ex = ref.sqrtm_psd_eigh(A.astype(np.float64))
    err = np.linalg.norm((S - ex).reshape(2, -1), axis=1) / np.linalg.norm(
        ex.reshape(2, -1), axis=1
    )
    eps = np.finfo(dtype).eps
    assert err[0] < 3 * np.sqrt(eps)
    assert err[1] < (5e-6 if dtype == np.float32 else 1e-11)
    Si = to_numpy(matkern.inv_sqrtm_psd(to_backend(A, backend), method, n_iter, backend=backend))
    assert np.isfinite(Si).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sqrtm_polar_matches_reference_and_falls_back(dtype):
    """method="polar": the CPU route against the reference's same steps (fixed n_iter, the
    same per-matrix schedules), and a stack holding a singular PSD matrix (its Cholesky
    factorization fails) and a zero matrix: those take the coupled iteration / 0, the
    others the polar route, every one accurate against the float64 eigh root."""
    rng = np.random.default_rng(24)
    A = _spd(rng, 4, 40, 300.0, dtype)
    for inverse in (False, True):
        f = matkern.inv_sqrtm_psd if inverse else matkern.sqrtm_psd
        fr = ref.inv_sqrtm_psd if inverse else ref.sqrtm_psd
        S = f(A, "polar", n_iter=10)
        R = fr(A, "polar", 10, "trace", lower="auto")
        scale = np.abs(R).max()
        np.testing.assert_allclose(S, R, atol=(1e-4 if inverse else 1e-5) * scale, rtol=0)
        if dtype == np.float64:  # 10 steps converge for condition 300: the exact root
            ex = ref.sqrtm_psd_eigh(A, inverse)
            assert np.linalg.norm(S - ex) / np.linalg.norm(ex) < 1e-11
    B = rng.standard_normal((40, 20))
    mixed = np.stack([A[0], (B @ B.T).astype(dtype), np.zeros((40, 40), dtype), A[1]])
    S = matkern.sqrtm_psd(mixed, "polar")
    ex = ref.sqrtm_psd_eigh(mixed.astype(np.float64))
    tol = 5e-6 if dtype == np.float32 else 1e-11
    for i in (0, 3):
        assert np.linalg.norm(S[i] - ex[i]) / np.linalg.norm(ex[i]) < tol
    # rank 20: the coupled iteration's root of the range, to the usual singular-case error
    assert np.linalg.norm(S[1] - ex[1]) / np.linalg.norm(ex[1]) < 1e-2
    assert not S[2].any()
    np.testing.assert_array_equal(S[3], matkern.sqrtm_psd(mixed[3:], "polar")[0])


def test_sqrtm_polar_fewer_steps_than_coupled():
    """On the real MiniLM covariance (condition ~1e3) the polar route needs no more steps
    than the coupled iteration, at most the same error against the float64 eigh root."""
    from bench.matfun import _covariances

    A64 = _covariances(4)
    A = A64.astype(np.float32)
    ex = ref.sqrtm_psd_eigh(A64)
    S, its = _matfun_iter.sqrtm(A, "polar", None, "trace", False, "cpu", "polar", "auto")
    S0, its0 = _matfun_iter.sqrtm(A, "newton-schulz", None, "gram", False, "cpu")
    err = np.linalg.norm((S - ex).reshape(4, -1), axis=1) / np.linalg.norm(
        ex.reshape(4, -1), axis=1
    )
    err0 = np.linalg.norm((S0 - ex).reshape(4, -1), axis=1) / np.linalg.norm(
        ex.reshape(4, -1), axis=1
    )
    assert its <= its0 and err.max() < 1e-5 and err.max() <= err0.max()


@pytest.mark.parametrize("method, n_iter, tol", [("pade", 8, 2.5e-5), ("taylor", 40, 2.6e-3)])
def test_sqrtm_polynomials_well_conditioned(backend, method, n_iter, tol):
    A = _spd(np.random.default_rng(8), 2, 32, 10.0)
    for inverse in (False, True):
        f = matkern.inv_sqrtm_psd if inverse else matkern.sqrtm_psd
        S = to_numpy(f(to_backend(A, backend), method, n_iter, backend=backend))
        ex = ref.sqrtm_psd_eigh(A, inverse)
        assert np.linalg.norm(S - ex) / np.linalg.norm(ex) < tol
        R = ref.inv_sqrtm_psd(A, method, n_iter) if inverse else ref.sqrtm_psd(A, method, n_iter)
        np.testing.assert_allclose(S, R, rtol=1e-9, atol=1e-12)


def test_sqrtm_float16_and_zero(backend):
    A = _spd(np.random.default_rng(9), 2, 16, 10.0).astype(np.float16)
    S = matkern.sqrtm_psd(to_backend(A, backend), backend=backend)
    assert S.dtype == np.float16
    ex = ref.sqrtm_psd_eigh(A.astype(np.float64))
    assert np.abs(to_numpy(S) - ex).max() < 5e-3
    Z = np.zeros((2, 4, 4), np.float32)
    assert (to_numpy(matkern.sqrtm_psd(to_backend(Z, backend), backend=backend)) == 0).all()


def test_sqrtm_real_covariance():
    """Covariance pooling: the (regularized) covariance of MiniLM activations, 256 features."""
    with np.load(DATA / "transformer" / "minilm_l6_layer2.npz") as d:
        X = d["layer2.attn_in.x"].astype(np.float64)[:, :256]
    C = np.cov(X, rowvar=False) + 1e-3 * np.eye(256)
    S = matkern.sqrtm_psd(C.astype(np.float32))
    ex = ref.sqrtm_psd_eigh(C)
    assert np.linalg.norm(S - ex) / np.linalg.norm(ex) < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sqrtm_backward_against_eigh(backend, dtype):
    rng = np.random.default_rng(10)
    A = _spd(rng, 3, 40, 100.0)
    S = ref.sqrtm_psd_eigh(A)
    G = rng.standard_normal(A.shape)
    ex = ref.sqrtm_psd_backward(A, S, G)
    np.testing.assert_allclose(S @ ex + ex @ S, G, atol=1e-10)
    args = [to_backend(x.astype(dtype), backend) for x in (A, S, G)]
    X = to_numpy(matkern.sqrtm_psd_backward(*args, backend=backend))
    assert X.dtype == dtype
    rel = np.linalg.norm(X - ex) / np.linalg.norm(ex)
    assert rel < (1e-4 if dtype == np.float32 else 1e-10)


def test_sqrtm_backward_is_the_gradient():
    """Finite differences of L(A) = <W, sqrtm(A)> along a symmetric direction E."""
    rng = np.random.default_rng(11)
    A = _spd(rng, 1, 12, 10.0)[0]
    W = rng.standard_normal((12, 12))
    E = rng.standard_normal((12, 12))
    E = E + E.T
    X = matkern.sqrtm_psd_backward(A, ref.sqrtm_psd_eigh(A), W)
    h = 1e-6
    fd = (np.sum(W * ref.sqrtm_psd_eigh(A + h * E)) - np.sum(W * ref.sqrtm_psd_eigh(A - h * E))) / (
        2 * h
    )
    assert abs(np.sum(X * E) - fd) < 1e-6 * max(1, abs(fd))


# ----------------------------------------------------------------------------------- norms


def _decaying(rng, m, n, rate=0.85, dtype=np.float64):
    U = np.linalg.qr(rng.standard_normal((m, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return ((U * rate ** np.arange(n)) @ V.T).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nuclear_and_schatten_exact(backend, dtype):
    A = np.random.default_rng(12).standard_normal((60, 40)).astype(dtype)
    s = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    Ab = to_backend(A, backend)
    rt = 1e-5 if dtype == np.float32 else 1e-12
    assert matkern.nuclear_norm(Ab, backend=backend) == pytest.approx(s.sum(), rel=rt)
    assert matkern.schatten_norm(Ab, 1, backend=backend) == pytest.approx(s.sum(), rel=rt)
    assert matkern.schatten_norm(Ab, 2, backend=backend) == pytest.approx(
        np.sqrt((s**2).sum()), rel=rt
    )
    assert matkern.schatten_norm(Ab, 3.5, backend=backend) == pytest.approx(
        (s**3.5).sum() ** (1 / 3.5), rel=rt
    )
    assert matkern.schatten_norm(Ab, np.inf, backend=backend) == pytest.approx(s[0], rel=rt)


def test_l12_definition_and_bound(backend):
    rng = np.random.default_rng(13)
    A = rng.standard_normal((50, 30))
    cols = np.linalg.norm(A, axis=0)
    v = matkern.nuclear_norm(to_backend(A, backend), "l12", backend=backend)
    assert v == pytest.approx(cols.sum(), rel=1e-12)
    assert v >= np.linalg.svd(A, compute_uv=False).sum()  # n <= m: an upper bound
    W = A.T.copy()  # wide: the min(m, n) = 30 largest of the 50 column norms
    cw = np.sort(np.linalg.norm(W, axis=0))[::-1][:30].sum()
    assert matkern.nuclear_norm(to_backend(W, backend), "l12", backend=backend) == pytest.approx(cw)
    Q = np.linalg.qr(rng.standard_normal((50, 30)))[0] * np.arange(1, 31)  # orthogonal cols
    assert matkern.nuclear_norm(Q, "l12") == pytest.approx(matkern.nuclear_norm(Q), rel=1e-10)


@pytest.mark.parametrize(
    "dtype, scale",
    [(np.float32, 1e10), (np.float32, 1e-30), (np.float64, 1e100), (np.float64, 1e300)],
)
def test_norms_scale_exactly(backend, dtype, scale):
    """Norms are homogeneous: of scale * A they are scale times A's, with no warning. Hutch++
    (its Lanczos sums |A|^4 m n), L_(1,2) and Frobenius (sums of squares) overflowed for
    float32 entries of 1e10 and float64 ones of 1e100-1e200; A is now scaled by a power of
    two first (exact, so the same value to the last digits: rtol 1e-12, 1e-5 float32)."""
    G = np.random.default_rng(26).standard_normal((50, 40)).astype(dtype)
    Gs = to_backend(G * dtype(scale), backend)
    G = to_backend(G, backend)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    kw = dict(random_state=0, backend=backend)
    for f in (
        lambda M: matkern.nuclear_norm(M, "hutchpp", **kw),
        lambda M: matkern.nuclear_norm(M, "l12", **kw),
        lambda M: matkern.schatten_norm(M, 3, "hutchpp", **kw),
        lambda M: matkern.schatten_norm(M, 2, **kw),
    ):
        assert f(Gs) / scale == pytest.approx(f(G), rel=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nuclear_hutchpp_decaying_spectrum(backend, dtype):
    A = _decaying(np.random.default_rng(14), 400, 150, 0.9, dtype)
    ex = np.linalg.svd(A.astype(np.float64), compute_uv=False).sum()
    est = matkern.nuclear_norm(
        to_backend(A, backend), "hutchpp", n_probes=60, random_state=0, backend=backend
    )
    assert abs(est - ex) / ex < 0.02
    s3 = matkern.schatten_norm(
        to_backend(A.T.copy(), backend), 3, "hutchpp", random_state=1, backend=backend
    )
    assert s3 == pytest.approx(ref.schatten_norm(A, 3), rel=0.02)


def test_nuclear_hutchpp_exact_for_low_rank():
    rng = np.random.default_rng(15)
    A = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 100))
    ex = np.linalg.svd(A, compute_uv=False).sum()
    assert matkern.nuclear_norm(A, "hutchpp", n_probes=30, random_state=0) == pytest.approx(
        ex, rel=1e-6
    )


def test_trace_estimate_operators(backend):
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    rng = np.random.default_rng(16)
    n = 120
    B = _decaying(rng, n, n, 0.8)
    C = B @ B.T
    tr = np.trace(C)
    for method in ("hutchpp", "hutchinson"):
        est = matkern.trace_estimate(
            to_backend(C, backend), n, 60, method, random_state=0, backend=backend
        )
        assert est == pytest.approx(tr, rel=0.02 if method == "hutchpp" else 0.5)
    if backend == "cuda":
        return
    calls = []

    class Op(sla.LinearOperator):
        def __init__(self):
            super().__init__(np.float64, (n, n))

        def _matvec(self, v):
            return C @ v

        def _matmat(self, V):
            calls.append(V.shape[1])
            return C @ V

    est = matkern.trace_estimate(Op(), n, 30, random_state=0)
    assert est == pytest.approx(tr, rel=0.02)
    assert len(calls) == 2 and sum(calls) == 30  # the sketch, then Q and the probes together
    S = sp.csr_matrix(np.diag(np.arange(1.0, n + 1)))
    # Rademacher probes make Hutchinson exact on a diagonal matrix
    assert matkern.trace_estimate(S, n, 30, "hutchinson", random_state=0) == pytest.approx(
        n * (n + 1) / 2
    )
    low = np.diag(np.r_[np.arange(1.0, 9.0), np.zeros(n - 8)])  # rank 8 <= n_probes/3
    assert matkern.trace_estimate(low, n, 30, random_state=0) == pytest.approx(36.0, rel=1e-10)


@pytest.mark.parametrize("normalization", ["auto", "softmax", "taylor"])
@pytest.mark.parametrize("scale", [0.3, 30.0])
@pytest.mark.parametrize("p", [1, 4, np.inf])
def test_mano_against_reference(backend, normalization, scale, p):
    L = np.random.default_rng(17).standard_normal((300, 10)) * scale
    v = matkern.mano_score(to_backend(L, backend), p, normalization=normalization, backend=backend)
    assert v == pytest.approx(ref.mano_score(L, p, normalization), rel=1e-12)
    assert 0 <= v <= 1


def test_mano_definition():
    L = np.array([[2.0, 0.0, -1.0], [0.0, 0.5, 0.0]])
    e = np.exp(L - L.max(1, keepdims=True))
    P = e / e.sum(1, keepdims=True)
    want = (P**4).sum() ** 0.25 / 6**0.25
    assert matkern.mano_score(L, normalization="softmax") == pytest.approx(want, rel=1e-14)
    v = 1 + L + L**2 / 2
    v -= v.min(1, keepdims=True)
    P = v / v.sum(1, keepdims=True)
    want = (P**4).sum() ** 0.25 / 6**0.25
    # small logits: Phi = cross-entropy to uniform ~ log 3 < 5, so "auto" is Taylor
    assert matkern.mano_score(L) == pytest.approx(want, rel=1e-14)
    big = L * 100  # Phi > 5: softmax
    assert matkern.mano_score(big) == pytest.approx(
        matkern.mano_score(big, normalization="softmax")
    )


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: matkern.orthogonalize(np.ones(4)), ValueError, "G must have at least 2"),
        (lambda: matkern.orthogonalize(np.ones((3, 3), np.int32)), TypeError, "G must have dtype"),
        (lambda: matkern.orthogonalize(np.full((3, 3), np.nan)), ValueError, "G must be finite"),
        (lambda: matkern.orthogonalize(np.ones((4, 4))[:, ::2]), ValueError, "C-contiguous"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), -1), ValueError, "n_iter must be >= 0"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), 2, "fast"), ValueError, "coefficients"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), 2, [(1, 2)]), ValueError, "n_iter=2"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), 2, (1, "x")), ValueError, "coefficients"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), scale="max"), ValueError, "scale"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), lower=0.0), ValueError, "lower"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), lower="fast"), ValueError, '"auto"'),
        (lambda: matkern.sqrtm_psd(np.eye(3), lower="min"), ValueError, "lower must be"),
        (lambda: matkern.sqrtm_psd(np.diag([1.0, -1.0])), ValueError, "negative diagonal entry"),
        # finiteness is tested in the same pass as the minors: NaN anywhere, inf off the diagonal
        (lambda: matkern.sqrtm_psd(np.diag([1.0, np.nan])), ValueError, "A must be finite"),
        (
            lambda: matkern.inv_sqrtm_psd(
                np.where(np.eye(4) > 0, 1.0, 0.0)[None]
                + np.array([[0, np.inf, 0, 0]] + [[0] * 4] * 3),
                "polar",
            ),
            ValueError,
            "A must be finite",
        ),
        (
            lambda: matkern.sqrtm_psd(np.full((2, 3, 3), np.nan, np.float32), backend="reference"),
            ValueError,
            "A must be finite",
        ),
        (
            lambda: matkern.sqrtm_psd(np.array([[1.0, 2.0], [2.0, 1.0]]), "pade"),
            ValueError,
            "above sqrt",
        ),
        (
            lambda: matkern.inv_sqrtm_psd(-np.eye(3, dtype=np.float32)[None], "polar"),
            ValueError,
            "matrix 0 of the stack",
        ),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), tol=0.0), ValueError, "tol must be > 0"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), tol=np.nan), ValueError, "tol must be"),
        (lambda: matkern.orthogonalize(np.ones((3, 3)), tol="1e-3"), TypeError, "tol must be a"),
        (lambda: matkern.orthogonalize([[1.0]]), TypeError, "G must be a NumPy or CuPy"),
        (lambda: matkern.sqrtm_psd(np.ones((3, 4))), ValueError, "A must be square"),
        (lambda: matkern.sqrtm_psd(np.eye(3), "svd"), ValueError, "method"),
        (lambda: matkern.sqrtm_psd(np.eye(3), n_iter=0), ValueError, "n_iter"),
        (lambda: matkern.inv_sqrtm_psd(np.eye(3), scale="fro"), ValueError, "scale"),
        (
            lambda: matkern.sqrtm_psd_backward(np.eye(3), np.eye(3), np.eye(4)),
            ValueError,
            "grad must",
        ),
        (
            lambda: matkern.sqrtm_psd_backward(np.eye(3), np.eye(3), np.eye(3, dtype=np.float32)),
            TypeError,
            "grad must have",
        ),
        (lambda: matkern.nuclear_norm(np.ones((2, 2, 2))), ValueError, "A must be 2-dim"),
        (lambda: matkern.nuclear_norm(np.eye(3), "svd"), ValueError, "method"),
        (lambda: matkern.nuclear_norm(np.eye(3), "hutchpp", n_probes=1), ValueError, "n_probes"),
        (lambda: matkern.schatten_norm(np.eye(3), 0.5), ValueError, "p must be"),
        (lambda: matkern.trace_estimate(np.eye(3), 4), ValueError, "op must have shape"),
        (lambda: matkern.trace_estimate("op", 4), TypeError, "op must be"),
        (lambda: matkern.mano_score(np.ones(3)), ValueError, "logits must be 2-dim"),
        (lambda: matkern.mano_score(np.ones((3, 2)), 0), ValueError, "p must be"),
        (lambda: matkern.mano_score(np.ones((3, 2)), normalization="x"), ValueError, "normaliz"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_docstring_examples():
    import doctest

    from matkern import matfun

    res = doctest.testmod(matfun, extraglobs={"np": np, "matkern": matkern}, verbose=False)
    assert res.attempted >= 10 and res.failed == 0
