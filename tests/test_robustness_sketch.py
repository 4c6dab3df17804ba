"""Robustness of the sketching family (issue #21): bad input gives TypeError/ValueError naming
the argument, the expected and the received value; corrupted sparse input never crashes; the
sketches match their dense definitions over a hypothesis-drawn space of shapes, dtypes and
scales.

Tolerances (property test): the CPU sketch against ``S.toarray() @ A`` within
``(log2(mpad) + 8) * eps * max(|S| @ |A|)`` (eps of A's dtype; the FWHT's log2(mpad) stages
and at most m-term sums, see test_sketch.py), plus the smallest normal number of the dtype
times m for subnormal inputs (gradual underflow loses absolute, not relative, accuracy).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import matkern
from conftest import assert_no_crash, backend_available
from sparse_corruption import BAD_SOURCE, KINDS

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

needs_cpu = pytest.mark.skipif(not backend_available("cpu")[0], reason="cpu backend unavailable")
CLASSES = [matkern.SRHT, matkern.CountSketch, matkern.GaussianSketch]


# ------------------------------------------------------------------------ argument errors
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_sketch_argument_errors(cls):
    name = cls.__name__
    with pytest.raises(TypeError, match=rf"{name}\(\): n_rows must be an integer, got float"):
        cls(10.0, 3)
    with pytest.raises(ValueError, match=rf"{name}\(\): n_components must be >= 1"):
        cls(10, 0)
    with pytest.raises(ValueError, match=r"random_state must be None, a nonnegative int"):
        cls(10, 3, random_state=-1)
    with pytest.raises(ValueError, match="backend"):
        cls(10, 3, backend="gpu")
    S = cls(10, 3, random_state=0)
    fn = f"{name}.apply"
    with pytest.raises(ValueError, match=rf"{fn}\(\): A must have 10 rows .*got shape \(9, 2\)"):
        S.apply(np.ones((9, 2)))
    with pytest.raises(
        TypeError, match=rf"{fn}\(\): A must have dtype float32 or float64, got int64"
    ):
        S.apply(np.ones((10, 2), dtype=np.int64))
    with pytest.raises(
        TypeError, match=rf"{fn}\(\): A must be a NumPy or CuPy array, got builtins.list"
    ):
        S.apply([[1.0]] * 10)
    with pytest.raises(ValueError, match=rf"{fn}\(\): A must be finite, got NaN or Inf"):
        S.apply(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match=rf"{fn}\(\): A must be finite"):
        S.apply(sp.csr_matrix(np.full((10, 2), np.inf)))
    with pytest.raises(ValueError, match=rf"{fn}\(\): A must be 1- or 2-dimensional"):
        S.apply(np.ones((10, 2, 2)))
    with pytest.raises(ValueError, match=rf"{fn}\(\): A must not be empty"):
        S.apply(np.ones((10, 0)))
    with pytest.raises(
        TypeError, match=rf"{fn}\(\): A must have dtype float32 or float64, got complex"
    ):
        S.apply(sp.csr_matrix(np.ones((10, 2), dtype=complex)))
    with pytest.raises(ValueError, match=rf"{name}.apply_right\(\): A must have 10 columns"):
        S.apply_right(np.ones((4, 9)))


def test_srht_too_many_components():
    with pytest.raises(ValueError, match=r"SRHT\(\): n_components must be <= 16 .* got 17"):
        matkern.SRHT(10, 17)
    assert matkern.SRHT(10, 16, random_state=0).apply(np.eye(10)).shape == (16, 10)


def test_function_errors():
    with pytest.raises(TypeError, match=r"srht\(\): A must be a NumPy or CuPy array"):
        matkern.srht("abc", 2)
    with pytest.raises(ValueError, match=r"countsketch\(\): A must not be empty"):
        matkern.countsketch(np.ones((0, 3)), 2)
    A = np.random.default_rng(0).standard_normal((50, 5))
    b = np.ones(50)
    with pytest.raises(ValueError, match=r"lstsq\(\): A must be tall .*got shape \(5, 50\)"):
        matkern.lstsq(A.T.copy(), np.ones(5))
    with pytest.raises(ValueError, match=r"lstsq\(\): b must have 50 rows .*got shape \(49,\)"):
        matkern.lstsq(A, np.ones(49))
    with pytest.raises(TypeError, match=r"lstsq\(\): b must have a float dtype, got int64"):
        matkern.lstsq(A, np.ones(50, dtype=np.int64))
    with pytest.raises(ValueError, match=r"lstsq\(\): b must be finite"):
        matkern.lstsq(A, np.full(50, np.nan))
    with pytest.raises(ValueError, match=r"lstsq\(\): method must be one of"):
        matkern.lstsq(A, b, method="qr")
    with pytest.raises(ValueError, match=r"lstsq\(\): sketch must be one of"):
        matkern.lstsq(A, b, sketch="fjlt")
    with pytest.raises(ValueError, match=r"lstsq\(\): sketch_size must be >= n = 5 .*got 3"):
        matkern.lstsq(A, b, sketch_size=3)
    with pytest.raises(ValueError, match=r"lstsq\(\): sketch_size must be <= 64 for the SRHT"):
        matkern.lstsq(A, b, sketch_size=65)
    with pytest.raises(ValueError, match=r"lstsq\(\): tol must be > 0"):
        matkern.lstsq(A, b, tol=0.0)
    with pytest.raises(ValueError, match=r"lstsq\(\): maxiter must be >= 0"):
        matkern.lstsq(A, b, maxiter=-1)
    with pytest.raises(ValueError, match=r"randomized_svd\(\): n_components must be <= 5"):
        matkern.randomized_svd(A, 6)
    with pytest.raises(ValueError, match=r"randomized_svd\(\): sketch must be one of"):
        matkern.randomized_svd(A, 2, sketch="x")
    with pytest.raises(ValueError, match=r"randomized_svd\(\): power_iteration_normalizer"):
        matkern.randomized_svd(A, 2, power_iteration_normalizer="qr")
    with pytest.raises(TypeError, match=r"randomized_svd\(\): transpose must be 'auto' or a bool"):
        matkern.randomized_svd(A, 2, transpose=1)
    with pytest.raises(ValueError, match=r"randomized_svd\(\): n_iter must be >= 0"):
        matkern.randomized_svd(A, 2, n_iter=-1)


def test_inputs_are_not_kept_or_changed():
    """The operator keeps no reference to A; changing A afterwards changes nothing."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((64, 4))
    A0 = A.copy()
    S = matkern.SRHT(64, 16, random_state=0)
    Y = S.apply(A)
    assert np.array_equal(A, A0)
    A[:] = 0
    assert np.array_equal(S.apply(A0), Y)
    # strided (non-contiguous) input is copied, not refused
    B = rng.standard_normal((64, 8))[:, ::2]
    np.testing.assert_allclose(S.apply(B), S.apply(np.ascontiguousarray(B)), atol=1e-14)


# --------------------------------------------------------------------------- crash probes
_CASES = [(f, k) for f, ks in KINDS.items() for k in ks]


@needs_cpu
@pytest.mark.parametrize("fmt", list(KINDS))
def test_corrupted_sparse_never_crashes(fmt):
    code = (
        BAD_SOURCE
        + f"""
fmt = {fmt!r}
for kind in {KINDS[fmt]!r}:
    for cls in (matkern.SRHT, matkern.CountSketch):
        S = cls(10, 4, random_state=0)
        refused(lambda: S.apply(bad(fmt, kind, (10, 20))), cls.__name__)
        S2 = cls(20, 4, random_state=0)
        refused(lambda: S2.apply_right(bad(fmt, kind, (10, 20))), cls.__name__ + " right")
    if fmt != "coo" or kind not in ("short",):
        refused(lambda: matkern.lstsq(bad(fmt, kind, (20, 10)), np.ones(20)), "lstsq")
    refused(lambda: matkern.randomized_svd(bad(fmt, kind, (20, 10)), 2), "randomized_svd")
Y = matkern.CountSketch(10, 4, random_state=0).apply(sp.random(10, 20, density=0.3, format=fmt))
assert np.isfinite(Y).all()
print("done")
"""
    )
    assert "done" in assert_no_crash(code, expect=())


# ---------------------------------------------------------------------- property test
@needs_cpu
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["srht", "countsketch"]),
    m=st.integers(1, 70),
    c=st.integers(1, 9),
    k=st.integers(1, 40),
    dtype=st.sampled_from([np.float32, np.float64]),
    scale=st.sampled_from([1e-300, 1e-30, 1.0, 1e30]),
    sparse=st.booleans(),
    seed=st.integers(0, 2**63 - 1),
)
def test_sketch_property(kind, m, c, k, dtype, scale, sparse, seed):
    if dtype == np.float32 and scale in (1e-300,):
        scale = 1e-40  # float32 subnormal
    if dtype == np.float32 and scale == 1e30:
        scale = 1e30 / 1e6  # well below float32 overflow after sums
    cls = matkern.SRHT if kind == "srht" else matkern.CountSketch
    mpad = 1 << max(0, (m - 1).bit_length())
    if kind == "srht":
        k = min(k, mpad)
    rng = np.random.default_rng(seed % 1000)
    A = (rng.standard_normal((m, c)) * scale).astype(dtype)
    S = cls(m, k, random_state=seed)
    D = S.toarray()
    exact = D @ A.astype(np.float64)
    eps = np.finfo(dtype).eps
    tol = (np.log2(mpad) + 8) * eps * (np.abs(D) @ np.abs(A.astype(np.float64))).max()
    tol += np.finfo(dtype).tiny * m * (np.abs(D).max() + 1)
    Ain = sp.csr_matrix(A) if sparse else A
    out = S.apply(Ain)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.astype(np.float64), exact, rtol=0, atol=tol)


@needs_cpu
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 300),
    c=st.integers(120, 700),
    dtype=st.sampled_from([np.float32, np.float64]),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**63 - 1),
)
def test_srht_wide_blocks_property(m, c, dtype, threads, seed):
    """Wide A (the blocks of four cache lines of columns, chosen by width and team size):
    the SRHT matches its dense definition, and its bits do not depend on the thread count."""
    mpad = 1 << max(0, (m - 1).bit_length())
    k = min(mpad, 17)
    A = np.random.default_rng(seed % 1000).standard_normal((m, c)).astype(dtype)
    S = matkern.SRHT(m, k, random_state=seed)
    D = S.toarray()
    eps = np.finfo(dtype).eps
    tol = (np.log2(mpad) + 8) * eps * (np.abs(D) @ np.abs(A.astype(np.float64))).max()
    with matkern.threads(threads):
        out = S.apply(A)
    np.testing.assert_allclose(out.astype(np.float64), D @ A.astype(np.float64), rtol=0, atol=tol)
    with matkern.threads(3 - threads):
        assert np.array_equal(S.apply(A), out)


@needs_cpu
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 2000),
    n=st.integers(1, 40),
    r=st.integers(1, 3),
    dtype=st.sampled_from([np.float32, np.float64]),
    scale=st.sampled_from([1e-150, 1.0, 1e150]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_lsqr_pass_property(m, n, r, dtype, scale, seed):
    """The fused LSQR pass (y = A t + c w, z = A^T y) against NumPy's float64 products over
    shapes around its 4-row blocks, 8 lanes and pieces, and magnitudes near float64's range
    (float32 A stays in range): 1e-12 relative to the sums of |terms|."""
    from matkern import _dispatch

    if dtype == np.float32:
        scale = min(scale, 1e30)
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((m, n)) * scale).astype(dtype)
    T, W, c = rng.standard_normal((r, n)), rng.standard_normal((m, r)), rng.standard_normal(r)
    Y, Z = np.empty((m, r)), np.empty((r, n))
    _dispatch.cpu().dense_lsqr_pass(A, T, W, c, Y, Z)
    A64 = A.astype(np.float64)
    y = A64 @ T.T + c * W
    ys = np.abs(A64) @ np.abs(T.T) + np.abs(c * W)
    assert np.all(np.abs(Y - y) <= 1e-12 * ys)
    assert np.all(np.abs(Z - (A64.T @ y).T) <= 1e-12 * (np.abs(A64).T @ ys).T + 1e-300)


# ----------------------------------------------------------------------- extreme magnitudes
@needs_cpu
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("method", ["blendenpik", "direct"])
@pytest.mark.parametrize("sa, sb", [(1e300, 1.0), (1e-300, 1e-300), (1e200, 1e100), (1.0, 1e300)])
def test_lstsq_scales_exactly(sparse, method, sa, sb):
    """lstsq of (sa A, sb b) is (sb / sa) x with no warning (the suite runs -W error): the
    operands are scaled by powers of two before the solve. float64 entries of 1e300 made the
    sketch's Gram overflow (a RuntimeWarning, then a QR); 1e200 lost 8 digits. Same
    tolerance as an unscaled solve: 1e-12 relative."""
    rng = np.random.default_rng(3)
    A, b = rng.standard_normal((300, 10)), rng.standard_normal(300)
    x0 = np.linalg.lstsq(A, b, rcond=None)[0]
    As = sp.csr_matrix(A * sa) if sparse else A * sa
    x, info = matkern.lstsq(As, b * sb, method=method, random_state=0)
    np.testing.assert_allclose(x * (sa / sb), x0, rtol=1e-12, atol=1e-12 * np.abs(x0).max())
    r0 = np.linalg.norm(b - A @ x0)
    assert info.residual_norm / sb == pytest.approx(r0, rel=1e-10)


@needs_cpu
@pytest.mark.parametrize(
    "dtype, scale", [(np.float32, 1e15), (np.float32, 1e-30), (np.float64, 1e300)]
)
@pytest.mark.parametrize("n_iter", [0, 1, 2, 4])
def test_randomized_svd_scales_exactly(dtype, scale, n_iter):
    """Without a power-step normalizer (n_iter <= 2 under "auto") the steps A (A^T Y)
    overflowed float32 for entries of 1e15; Y is now kept near 1 by powers of two: the
    singular values scale exactly (same bits up to the exponent) and U, Vt are the same."""
    G = np.random.default_rng(4).standard_normal((60, 40)).astype(dtype)
    U, s, Vt = matkern.randomized_svd(G, 5, n_iter=n_iter, random_state=0)
    Us, ss, Vts = matkern.randomized_svd(G * dtype(scale), 5, n_iter=n_iter, random_state=0)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ss / dtype(scale), s, rtol=rtol)
    np.testing.assert_allclose(np.abs(Us), np.abs(U), atol=10 * rtol)
