"""Robustness of the matfun family: every scale from subnormal to near overflow, shapes from
1 x 1 up, stacks, float16/32/64, inputs never modified, results independent of the thread
count and of concurrent calls.

Tolerances.
- orthogonalize at any scale: the result is the same as for the matrix scaled to O(1) up to
  the rounding of the max-|entry| prescaling (exact for powers of two; the scales drawn here
  are powers of two, so the results agree to a few ulps: 1e-5 float32, 1e-12 float64), and
  finite. Subnormal float32 inputs lose their low bits when stored (their relative
  precision is 2^-23 times their distance from the smallest normal), so only their
  finiteness and orthogonality after convergence (1e-4) are checked.
- sqrtm at scale 2^k: sqrtm(2^k A) = 2^(k/2) sqrtm(A) exactly for even k; checked to 1e-5.
- thread count: bit-identical (each matrix's products and stopping depend on itself only).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matkern
from conftest import run_in_threads

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    batch=st.integers(1, 3),
    k=st.integers(-60, 60),
    seed=st.integers(0, 1000),
)
def test_orthogonalize_any_scale_and_shape(dtype, m, n, batch, k, seed):
    G = np.random.default_rng(seed).standard_normal((batch, m, n)).astype(dtype)
    base = matkern.orthogonalize(G, 6, "quintic")
    Q = matkern.orthogonalize(np.ldexp(G, k).astype(dtype), 6, "quintic")
    assert np.isfinite(Q).all()
    np.testing.assert_allclose(Q, base, atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize(
    "dtype, scale",
    [(np.float32, 1e-40), (np.float32, 3e38), (np.float64, 1e-310), (np.float64, 1e308)],
)
def test_orthogonalize_extreme_scales(dtype, scale):
    Q0, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))
    G = (Q0 * scale).astype(dtype)
    assert np.isfinite(G).all()
    Q = matkern.orthogonalize(G, 10, "quintic")
    assert np.isfinite(Q).all()
    assert np.abs(Q.astype(np.float64).T @ Q - np.eye(16)).max() < 1e-4


@FAST
@given(k=st.integers(-40, 40).map(lambda v: 2 * v), seed=st.integers(0, 100))
def test_sqrtm_scales_exactly(k, seed):
    B = np.random.default_rng(seed).standard_normal((2, 8, 8))
    A = B @ np.swapaxes(B, 1, 2) + np.eye(8)
    S = matkern.sqrtm_psd(A)
    S2 = matkern.sqrtm_psd(np.ldexp(A, k))
    np.testing.assert_allclose(S2, np.ldexp(S, k // 2), rtol=1e-5, atol=0)


def test_one_by_one_and_float16():
    assert matkern.orthogonalize(np.array([[-3.0]]))[0, 0] == pytest.approx(-1.0)
    assert matkern.sqrtm_psd(np.array([[4.0]]))[0, 0] == pytest.approx(2.0)
    G = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float16)
    assert matkern.orthogonalize(G).dtype == np.float16


def test_inputs_never_modified():
    rng = np.random.default_rng(2)
    G = rng.standard_normal((3, 10, 7)).astype(np.float32)
    A = G @ np.swapaxes(G, 1, 2) + np.eye(10, dtype=np.float32)
    keep = (G.copy(), A.copy())
    matkern.orthogonalize(G)
    matkern.sqrtm_psd(A)
    matkern.inv_sqrtm_psd(A, "pade")
    matkern.sqrtm_psd_backward(A, matkern.sqrtm_psd(A), A)
    np.testing.assert_array_equal(G, keep[0])
    np.testing.assert_array_equal(A, keep[1])


def test_results_independent_of_thread_count():
    rng = np.random.default_rng(3)
    G = rng.standard_normal((9, 20, 16)).astype(np.float32)
    A = G @ np.swapaxes(G, 1, 2) + 0.01 * np.eye(20, dtype=np.float32)
    out = []
    for t in (1, 2, 3):
        with matkern.threads(t):
            out.append((matkern.orthogonalize(G, 7, "polar"), matkern.sqrtm_psd(A)))
    for q, s in out[1:]:
        np.testing.assert_array_equal(q, out[0][0])
        np.testing.assert_array_equal(s, out[0][1])


def test_concurrent_calls():
    rng = np.random.default_rng(4)
    Gs = [rng.standard_normal((4, 24, 24)).astype(np.float32) for _ in range(3)]
    want = [matkern.orthogonalize(G, 8, "polar") for G in Gs]
    got = run_in_threads([lambda G=G: matkern.orthogonalize(G, 8, "polar") for G in Gs], 3)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-6)
