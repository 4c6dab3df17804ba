"""The batched float32 GEMM of the matrix-function iterations (cpp/matfun.cpp, AVX-512; the
route in python/matkern/_matfun_bmm.py).

Tolerances. Each entry is a float32 sum of k products (in k order within blocks of 256, the
blocks added in order): its error is at most about k * u * (|A| @ |B|) entrywise, u = 2**-24
(k - 1 additions and the rounding of each product, FMAs rounding once). The tests use
exactly that bound: one wrong product or a dropped block moves an entry by about |a b|, far
more, wherever k >= 1. Results must also be bit-identical for any thread count and for a
stack cut into pieces (each matrix is summed by one thread, in a fixed order).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matkern
from matkern import _dispatch, _matfun_bmm

U32 = 2.0**-24


def _cpu_bmm_or_skip():
    try:
        cpu = _dispatch.cpu()
    except RuntimeError as e:
        pytest.skip(str(e))
    if not cpu.bmm_enabled():
        pytest.skip("this CPU or build has no AVX-512: the iterations use numpy.matmul")
    return cpu


def _operands(rng, b, m, n, k, ta, tb, scale=1.0):
    A = (rng.standard_normal((b, k, m) if ta else (b, m, k)) * scale).astype(np.float32)
    B = (rng.standard_normal((b, n, k) if tb else (b, k, n)) / scale).astype(np.float32)
    Aop = A.transpose(0, 2, 1) if ta else A
    Bop = B.transpose(0, 2, 1) if tb else B
    return A, B, Aop, Bop


def _check(out, Aop, Bop):
    k = Aop.shape[2]
    exact = Aop.astype(np.float64) @ Bop.astype(np.float64)
    bound = max(k, 1) * U32 * (np.abs(Aop).astype(np.float64) @ np.abs(Bop).astype(np.float64))
    np.testing.assert_array_less(np.abs(out - exact), bound + 1e-37)


# edges of the 8 x 48 register tile and the 256-long K blocks, tiny and empty sizes
SHAPES = [
    (1, 1, 1, 1),
    (3, 5, 7, 9),
    (2, 8, 48, 256),
    (2, 9, 49, 257),
    (1, 17, 95, 513),
    (5, 64, 130, 3),
    (1, 300, 40, 1000),
    (2, 4, 6, 0),
]


@pytest.mark.parametrize("b,m,n,k", SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_products_within_the_summation_bound(b, m, n, k, ta, tb):
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(b * 1000 + m + n + k)
    A, B, Aop, Bop = _operands(rng, b, m, n, k, ta, tb)
    for parallel in (False, True):
        out = np.full((b, m, n), np.nan, np.float32)
        cpu.bmm_f32(A, ta, B, tb, out, parallel)
        _check(out, Aop, Bop)


def test_same_bits_for_any_thread_count_and_cut():
    """Serial, on the pool, at 1 thread, and a stack cut in two: the same floats."""
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(1)
    A, B, _, _ = _operands(rng, 6, 130, 70, 600, True, False)
    outs = []
    for parallel in (False, True):
        out = np.empty((6, 130, 70), np.float32)
        cpu.bmm_f32(A, True, B, False, out, parallel)
        outs.append(out)
    with matkern.threads(1):
        out = np.empty((6, 130, 70), np.float32)
        cpu.bmm_f32(A, True, B, False, out, True)
        outs.append(out)
    halves = np.empty((6, 130, 70), np.float32)
    cpu.bmm_f32(A[:2], True, B[:2], False, halves[:2], True)
    cpu.bmm_f32(A[2:], True, B[2:], False, halves[2:], False)
    outs.append(halves)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_route_reads_transposed_views_and_falls_back():
    """_matfun_bmm.matmul: a transposed view goes to the kernel as stored (no copy), a
    non-contiguous stack, float64 and mismatched batches go to numpy.matmul; all agree with
    numpy within the bound."""
    _cpu_bmm_or_skip()
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 50, 30)).astype(np.float32)
    Xt = np.swapaxes(X, 1, 2)
    assert _matfun_bmm._stored(Xt)[0] is True and _matfun_bmm._stored(Xt)[1].base is X
    for A, B in ((Xt, X), (X, Xt), (X[:, ::2], Xt[:, :, ::2])):
        _check(_matfun_bmm.matmul(np, A, B), A, B)
    X64 = X.astype(np.float64)
    np.testing.assert_array_equal(
        _matfun_bmm.matmul(np, np.swapaxes(X64, 1, 2), X64),
        np.matmul(np.swapaxes(X64, 1, 2), X64),
    )


def test_bad_shapes_raise():
    cpu = _cpu_bmm_or_skip()
    A = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cpu.bmm_f32(
            A, False, np.zeros((2, 5, 6), np.float32), False, np.zeros((2, 3, 6), np.float32), True
        )
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cpu.bmm_f32(
            A, False, np.zeros((3, 4, 6), np.float32), False, np.zeros((2, 3, 6), np.float32), True
        )
    with pytest.raises(ValueError, match="3-D"):
        cpu.bmm_f32(
            A[0], False, np.zeros((4, 6), np.float32), False, np.zeros((3, 6), np.float32), True
        )


def test_iterations_agree_with_numpy_matmul(monkeypatch):
    """orthogonalize and sqrtm_psd through the kernel and, with MATKERN_SIMD=avx2 (read per
    call), through numpy.matmul: the same iteration, summed in another order (2e-5, as the
    CPU route against the reference in test_matfun)."""
    _cpu_bmm_or_skip()
    rng = np.random.default_rng(3)
    G = rng.standard_normal((5, 96, 64)).astype(np.float32)
    S = rng.standard_normal((3, 40, 80)).astype(np.float32)
    C = (S @ np.swapaxes(S, 1, 2) / 80).astype(np.float32)
    fast = [matkern.orthogonalize(G), matkern.sqrtm_psd(C), matkern.orthogonalize(G[0])]
    monkeypatch.setenv("MATKERN_SIMD", "avx2")
    slow = [matkern.orthogonalize(G), matkern.sqrtm_psd(C), matkern.orthogonalize(G[0])]
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(f, s, atol=2e-5 * max(1.0, np.abs(s).max()))


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 70),
    st.integers(1, 110),
    st.integers(0, 600),
    st.booleans(),
    st.booleans(),
    st.floats(-20, 20),
    st.integers(0, 2**32 - 1),
)
def test_property_any_shape(b, m, n, k, ta, tb, log_scale, seed):
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(seed)
    A, B, Aop, Bop = _operands(rng, b, m, n, k, ta, tb, 2.0**log_scale)
    out = np.empty((b, m, n), np.float32)
    cpu.bmm_f32(A, ta, B, tb, out, bool(seed & 1))
    _check(out, Aop, Bop)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 150),
    st.integers(0, 300),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_property_symmetric_triangular_and_epilogue(b, m, k, ta, sym, seed):
    """Square products C (m x m) = op(A) R for any size: with a triangular R (``b_upper``)
    the same floats as without the flag; with ``sym`` (A = R^T's shape, op(A) = S a
    symmetric matrix, S S) exactly symmetric; and the epilogue alpha C + beta D + gamma I
    within the summation bound (as ``test_epilogue``)."""
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(seed)
    if sym:  # S S, S exactly symmetric (k = m)
        S = rng.standard_normal((b, m, m)).astype(np.float32)
        A = B = (S + np.swapaxes(S, 1, 2)).astype(np.float32)
        ta = False
    else:
        A = rng.standard_normal((b, k, m) if ta else (b, m, k)).astype(np.float32)
        B = np.triu(rng.standard_normal((b, k, m))).astype(np.float32)
        full = np.empty((b, m, m), np.float32)
        tri = np.empty_like(full)
        cpu.bmm_f32(A, ta, B, False, full, bool(seed & 1))
        cpu.bmm_f32(A, ta, B, False, tri, bool(seed & 2), b_upper=True)
        np.testing.assert_array_equal(tri, full)
    D = rng.standard_normal((b, m, m)).astype(np.float32)
    D = (D + np.swapaxes(D, 1, 2)).astype(np.float32)
    alpha, beta, gamma = (rng.standard_normal(b).astype(np.float32) for _ in range(3))
    out = np.empty((b, m, m), np.float32)
    cpu.bmm_f32(A, ta, B, False, out, bool(seed & 4), sym, alpha=alpha, beta=beta, d=D, gamma=gamma)
    Aop = np.swapaxes(A, 1, 2) if ta else A
    C = Aop.astype(np.float64) @ B.astype(np.float64)
    eye = np.eye(m)
    want = alpha[:, None, None] * C + beta[:, None, None] * D + gamma[:, None, None] * eye
    kk = Aop.shape[2]
    prod = np.abs(Aop).astype(np.float64) @ np.abs(B).astype(np.float64)
    bound = np.abs(alpha)[:, None, None] * (max(kk, 1) + 4) * U32 * prod + 4 * U32 * (
        np.abs(beta[:, None, None] * D) + np.abs(gamma)[:, None, None] * eye
    )
    np.testing.assert_array_less(np.abs(out - want), bound + 1e-30)
    if sym:
        np.testing.assert_array_equal(out, np.swapaxes(out, 1, 2))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_property_add_transposed(b, k, seed):
    """alpha A + beta B^T for any size (16 x 16 blocks and the edges), within one rounding
    of each term."""
    _cpu_bmm_or_skip()
    rng = np.random.default_rng(seed)
    A, B = (rng.standard_normal((b, k, k)).astype(np.float32) for _ in range(2))
    alpha, beta = (rng.standard_normal(b).astype(np.float32) for _ in range(2))
    out = _matfun_bmm.add_transposed(A, B, alpha, beta)
    Bt = np.swapaxes(B, 1, 2)
    want = alpha[:, None, None] * A.astype(np.float64) + beta[:, None, None] * Bt.astype(np.float64)
    terms = np.abs(alpha[:, None, None] * A) + np.abs(beta[:, None, None] * Bt)
    np.testing.assert_array_less(np.abs(out - want), 2 * U32 * terms + 1e-37)


@pytest.mark.parametrize(
    "m,k,ta",
    [
        (1, 5, True),
        (16, 9, False),
        (47, 300, True),
        (130, 70, False),
        (256, 33, True),
        (257, 40, True),
    ],
)
def test_symmetric_products(m, k, ta):
    """sym: X^T X (or X X^T) and S S for an exactly symmetric S: exactly symmetric results,
    the upper triangle within the summation bound, the lower its mirror."""
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(m + k)
    X = rng.standard_normal((2, k, m) if ta else (2, m, k)).astype(np.float32)
    out = np.empty((2, m, m), np.float32)
    # ta: A = X^T (stored X), B = X; else A = X, B = X^T (stored X)
    cpu.bmm_f32(X, ta, X, not ta, out, True, True)
    Aop = np.swapaxes(X, 1, 2) if ta else X
    _check(out, Aop, np.swapaxes(Aop, 1, 2))
    np.testing.assert_array_equal(out, np.swapaxes(out, 1, 2))
    S = out
    out2 = np.empty_like(S)
    cpu.bmm_f32(S, False, S, False, out2, False, True)
    full = np.empty_like(S)
    cpu.bmm_f32(S, False, S, False, full, False, False)
    np.testing.assert_array_equal(out2, full)  # the same sums: the mirror is exact
    with pytest.raises(ValueError, match="square"):
        cpu.bmm_f32(
            np.zeros((2, 3, k), np.float32),
            False,
            np.zeros((2, k, 5), np.float32),
            False,
            np.empty((2, 3, 5), np.float32),
            True,
            True,
        )


@pytest.mark.parametrize(
    "b,m,n,k,sym",
    [
        (3, 5, 7, 9, False),
        (2, 9, 49, 257, False),
        (2, 4, 6, 0, False),
        (2, 130, 130, 130, False),
        (3, 5, 5, 5, True),
        (2, 130, 130, 130, True),
        (1, 256, 256, 256, True),
    ],
)
def test_epilogue(b, m, n, k, sym):
    """alpha C + beta D + gamma I per matrix after the product (the polynomial of a
    Newton-Schulz step): against the same sum in float64, within the product's summation
    bound scaled by |alpha| plus a float32 rounding of each term."""
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(m + n + k)
    if sym:  # S S for an exactly symmetric S, D symmetric
        S = rng.standard_normal((b, m, m)).astype(np.float32)
        A = B = (S + np.swapaxes(S, 1, 2)).astype(np.float32)
        D = rng.standard_normal((b, m, m)).astype(np.float32)
        D = (D + np.swapaxes(D, 1, 2)).astype(np.float32)
    else:
        A, B, _, _ = _operands(rng, b, m, n, k, False, False)
        D = rng.standard_normal((b, m, n)).astype(np.float32)
    alpha, beta, gamma = (rng.standard_normal(b).astype(np.float32) for _ in range(3))
    out = np.full((b, m, n), np.nan, np.float32)
    cpu.bmm_f32(A, False, B, False, out, False, sym, alpha=alpha, beta=beta, d=D, gamma=gamma)
    C = A.astype(np.float64) @ B.astype(np.float64)
    eye = np.eye(m, n)
    want = alpha[:, None, None] * C + beta[:, None, None] * D + gamma[:, None, None] * eye
    kk = A.shape[2]
    prod = np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64)
    bound = np.abs(alpha)[:, None, None] * (max(kk, 1) * U32 + 4 * U32) * prod + 4 * U32 * (
        np.abs(beta[:, None, None] * D) + np.abs(gamma)[:, None, None] * eye
    )
    np.testing.assert_array_less(np.abs(out - want), bound + 1e-30)
    if sym:
        np.testing.assert_array_equal(out, np.swapaxes(out, 1, 2))
    with pytest.raises(ValueError, match="go together"):
        cpu.bmm_f32(A, False, B, False, out, False, sym, alpha=alpha)


@pytest.mark.parametrize("m,k", [(5, 5), (48, 48), (130, 130), (300, 300)])
@pytest.mark.parametrize("sym", [False, True])
def test_upper_triangular_b_skips_its_zeros(m, k, sym):
    """b_upper: the same floats as the full product of the same triangular B (the skipped
    terms are exact zeros, the others summed in the same order)."""
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(m)
    X = rng.standard_normal((2, k, m)).astype(np.float32)
    R = np.triu(rng.standard_normal((2, k, m))).astype(np.float32)
    full = np.empty((2, m, m), np.float32)
    fast = np.empty_like(full)
    cpu.bmm_f32(X, True, R, False, full, False, sym)
    cpu.bmm_f32(X, True, R, False, fast, True, sym, b_upper=True)
    np.testing.assert_array_equal(fast, full)
    if not sym:
        _check(fast, np.swapaxes(X, 1, 2), R)


@pytest.mark.parametrize("k", [1, 15, 16, 33, 256])
def test_add_transposed(k):
    """alpha A + beta B^T per matrix: against NumPy within one rounding of each term (the
    kernel's FMA rounds the sum once), for sizes off and on the 16 x 16 blocks; out must not
    overlap an operand."""
    cpu = _cpu_bmm_or_skip()
    rng = np.random.default_rng(k)
    A, B = (rng.standard_normal((3, k, k)).astype(np.float32) for _ in range(2))
    alpha, beta = (
        rng.standard_normal(3).astype(np.float32),
        rng.standard_normal(3).astype(np.float32),
    )
    out = _matfun_bmm.add_transposed(A, B, alpha, beta)
    terms = np.abs(alpha[:, None, None] * A) + np.abs(beta[:, None, None] * np.swapaxes(B, 1, 2))
    want = alpha[:, None, None] * A.astype(np.float64) + beta[:, None, None] * np.swapaxes(
        B.astype(np.float64), 1, 2
    )
    np.testing.assert_array_less(np.abs(out - want), 2 * U32 * terms + 1e-37)
    with pytest.raises(ValueError, match="overlap"):
        cpu.add_transposed_f32(A, B, alpha, beta, A)
    # the NumPy route (float64) computes the same thing
    out64 = _matfun_bmm.add_transposed(A.astype(np.float64), B.astype(np.float64), alpha, beta)
    np.testing.assert_allclose(out64, want, rtol=1e-12, atol=1e-12)


def test_calls_from_several_threads():
    """orthogonalize (stacks cut into pieces on the granted threads, and one matrix on the
    pool) and the raw kernel with a transposed B (per-thread scratch), from four Python
    threads at once: every result bit-identical to the same call alone."""
    cpu = _cpu_bmm_or_skip()
    from conftest import run_in_threads

    rng = np.random.default_rng(5)
    G = rng.standard_normal((6, 96, 64)).astype(np.float32)
    one = rng.standard_normal((300, 200)).astype(np.float32)
    A, B, _, _ = _operands(rng, 3, 70, 90, 300, False, True)

    def raw():
        out = np.empty((3, 70, 90), np.float32)
        cpu.bmm_f32(A, False, B, True, out, True)
        return out

    calls = [lambda: matkern.orthogonalize(G), lambda: matkern.orthogonalize(one), raw, raw]
    alone = [c() for c in calls]
    for got, want in zip(run_in_threads(calls, repeats=3), alone):
        np.testing.assert_array_equal(got, want)
