"""Sketching family (issue #21): the SRHT, CountSketch and Gaussian sketches against their
dense definitions on every backend, their embedding statistics, lstsq against
numpy.linalg.lstsq and randomized_svd against the exact SVD and scikit-learn.

Tolerances, and why:

- Sketch products vs ``S.toarray() @ A`` (float64 reference matrix): float64 ``1e-12 *
  (|S| @ |A|)`` elementwise-max scale, float32 ``(log2(mpad) + 8) * eps32 * (|S| @ |A|)``:
  the SRHT's FWHT adds one rounding per stage (log2 mpad stages) and every other sketch sums
  at most m products; ``|S| @ |A|`` bounds every partial sum.
- Subspace embedding: for an orthonormal basis U (m x d) the singular values of S U lie in
  1 +- eps. Gaussian and SRHT with k = 8d: eps ~ sqrt(d/k) = 0.35 on average; we require the
  largest of the distortions over 5 seeds < 0.75 (about twice the mean, far in the tail).
  CountSketch (k = 16d) < 0.85. The coherent basis (d identity columns: all the leverage on
  d rows) must pass the same bounds, CountSketch with its theoretical k = O(d^2) rows (8 d^2:
  two of the d rows sharing a bucket collapse a direction); a uniform row sample without
  the Hadamard mixing fails it (checked, distortion 1).
- lstsq vs numpy.linalg.lstsq (float64): relative residual norm agreement <= 1e-10, the
  issue's bar, for the well-conditioned, cond 1e10 and coherent cases (the residual norm is
  quadratic in the solution's error, so LSQR's tol = 1e-8 gives ~1e-16). At cond 1e10
  numpy's own residual exceeds the optimum by a few 1e-10 (its backward error eps ||A|| ||x||
  with ||x|| ~ 1e10), so there the bar is one-sided: ours at most numpy's * (1 + 1e-10) and
  at least numpy's * (1 - 1e-8). Solutions: ||A (x - x_numpy)|| <= 1e-6 ||r||, since LSQR
  stops when ||(AN)^T r|| <= tol ||AN|| ||r|| (tol = 1e-8, cond(AN) ~ 2, factor 50 of slack).
- randomized_svd: the Frobenius error ||A - U S Vt|| within 2% of scikit-learn's at the same
  settings (the two differ only in the test matrix), singular values within 1e-6 relative of
  the exact ones on a matrix whose spectrum has a gap; backends against the reference
  algorithm with the same test matrix: 1e-8 relative (float64, only summation orders differ).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import matkern
from conftest import to_backend, to_numpy
from matkern import reference as mref
from matkern.reference import sketch as ref

CLASSES = [matkern.SRHT, matkern.CountSketch, matkern.GaussianSketch]


def _tol(S, A, dtype):
    bound = np.abs(S) @ np.abs(A)
    if dtype == np.float64:
        return 1e-12 * bound.max() + 1e-300
    mpad = 1 << max(0, (S.shape[1] - 1).bit_length())
    return (np.log2(mpad) + 8) * np.finfo(np.float32).eps * bound.max()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sketch_matches_definition(backend, cls, dtype):
    rng = np.random.default_rng(1)
    m, c, k = 300, 7, 40
    A = rng.standard_normal((m, c)).astype(dtype)
    S = cls(m, k, random_state=5, backend=backend)
    D = S.toarray()
    exact = D @ A.astype(np.float64)
    tol = _tol(D, A, dtype)
    out = S.apply(to_backend(A, backend))
    assert out.dtype == dtype and out.shape == (k, c)
    np.testing.assert_allclose(to_numpy(out), exact, rtol=0, atol=tol)
    # one column (1-D) gets the same draw
    v = to_numpy(S.apply(to_backend(np.ascontiguousarray(A[:, 2]), backend)))
    np.testing.assert_allclose(v, exact[:, 2], rtol=0, atol=tol)
    # from the right: A^T S^T
    At = np.ascontiguousarray(A.T)
    np.testing.assert_allclose(
        to_numpy(S.apply_right(to_backend(At, backend))), exact.T, rtol=0, atol=tol
    )


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_sketch_sparse_inputs(cls):
    rng = np.random.default_rng(2)
    A = sp.random(500, 30, density=0.05, format="csr", random_state=3, dtype=np.float64)
    S = cls(500, 60, random_state=rng)
    D = S.toarray()
    exact = D @ A.toarray()
    tol = _tol(D, A.toarray(), np.float64)
    for form in (A, A.tocsc(), A.tocoo(), matkern.SparseMatrix(A)):
        np.testing.assert_allclose(S.apply(form), exact, rtol=0, atol=tol)
    At = A.T.tocsr()
    np.testing.assert_allclose(S.apply_right(At), exact.T, rtol=0, atol=tol)
    np.testing.assert_allclose(S.apply_right(matkern.SparseMatrix(At)), exact.T, rtol=0, atol=tol)


def test_reference_definitions():
    import scipy.linalg as la

    m, k = 100, 30
    S = matkern.SRHT(m, k, random_state=7)
    H = la.hadamard(128)
    signs = ref.srht_signs(S.key_, m)
    expect = H[S.rows_][:, :m] * signs / np.sqrt(k)
    np.testing.assert_allclose(S.toarray(), expect, atol=1e-15)
    assert len(set(S.rows_.tolist())) == k
    C = matkern.CountSketch(m, k, random_state=7).toarray()
    assert ((C != 0).sum(axis=0) == 1).all() and set(np.unique(np.abs(C[C != 0]))) == {1.0}
    # the hash's buckets are roughly uniform: no bucket holds more than 4x its share
    b, _ = ref.countsketch_hash(11, 100000, 50)
    assert np.bincount(b, minlength=50).max() < 4 * 2000
    # the same seed gives the same draw; another seed another
    assert np.array_equal(matkern.SRHT(m, k, random_state=7).toarray(), S.toarray())
    assert not np.array_equal(matkern.SRHT(m, k, random_state=8).toarray(), S.toarray())


def _distortion(S, U):
    sv = np.linalg.svd(S.apply(U), compute_uv=False)
    return float(max(abs(sv[0] - 1), abs(sv[-1] - 1)))


@pytest.mark.parametrize("coherent", [False, True], ids=["incoherent", "coherent"])
def test_subspace_embedding(coherent):
    m, d = 4000, 12
    rng = np.random.default_rng(4)
    if coherent:
        U = np.zeros((m, d))
        U[rng.choice(m, d, replace=False), np.arange(d)] = 1.0
    else:
        U = np.linalg.qr(rng.standard_normal((m, d)))[0]
    for cls, k, bound in [
        (matkern.SRHT, 8 * d, 0.75),
        (matkern.GaussianSketch, 8 * d, 0.75),
        # CountSketch needs ~d^2 rows: two leverage rows in one bucket collapse a direction
        (matkern.CountSketch, 8 * d * d if coherent else 16 * d, 0.85),
    ]:
        worst = max(_distortion(cls(m, k, random_state=s), U) for s in range(5))
        assert worst < bound, (cls.__name__, coherent, worst)
    if coherent:
        # plain uniform row sampling (no mixing) misses the leverage rows: distortion 1
        rows = np.random.default_rng(0).choice(m, 8 * d, replace=False)
        sv = np.linalg.svd(U[rows] * np.sqrt(m / (8 * d)), compute_uv=False)
        assert sv[-1] < 1e-12


def test_threads_do_not_change_results():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((3000, 40))
    As = sp.random(3000, 40, density=0.05, format="csr", random_state=1)
    outs = []
    for t in (1, 2, 8):
        with matkern.threads(t):
            outs.append(
                [
                    matkern.srht(A, 200, random_state=1),
                    matkern.countsketch(A, 200, random_state=1),
                    matkern.countsketch(As, 200, random_state=1),
                    matkern.CountSketch(40, 16, random_state=1).apply_right(As),
                ]
            )
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            assert np.array_equal(a, b)


# ------------------------------------------------------------------------------ lstsq


def _problem(kind, m=3000, n=40, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "well":
        A = rng.standard_normal((m, n))
    elif kind == "ill":  # cond 1e10, singular values log-spaced
        U = np.linalg.qr(rng.standard_normal((m, n)))[0]
        V = np.linalg.qr(rng.standard_normal((n, n)))[0]
        A = (U * np.logspace(0, -10, n)) @ V.T
    else:  # coherent: a few rows carry all the weight of some columns
        A = rng.standard_normal((m, n)) * 1e-3
        rows = rng.choice(m, 5, replace=False)
        A[rows, :5] += 1e3 * np.eye(5)
    b = A @ rng.standard_normal(n) + rng.standard_normal(m)
    return A, b


@pytest.mark.parametrize("kind", ["well", "ill", "coherent"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_lstsq_matches_numpy(kind, sparse):
    import warnings

    A, b = _problem(kind)
    if sparse:
        A = np.where(np.random.default_rng(9).random(A.shape) < 0.3, A, 0.0)
    x0, *_ = np.linalg.lstsq(A, b, rcond=None)
    r0 = np.linalg.norm(A @ x0 - b)
    Ain = sp.csr_matrix(A) if sparse else A
    with warnings.catch_warnings():
        if kind == "ill":
            warnings.simplefilter("ignore", RuntimeWarning)  # cond 1e10 warns (tested below)
        x, info = matkern.lstsq(Ain, b, random_state=0)
    r = np.linalg.norm(A @ x - b)
    if kind == "ill":
        assert -1e-8 <= (r - r0) / r0 <= 1e-10, (r, r0, info)
    else:
        assert abs(r - r0) / r0 <= 1e-10, (r, r0, info)
    assert info.converged and info.rank == A.shape[1] and 0 < info.iterations < 100
    assert abs(info.residual_norm - r) <= 1e-9 * r
    if info.preconditioner == "gram":  # sparse, A^T A cheaper than a sketch's Gram, cond ok
        assert sparse and info.sketch is None, info
        assert info.iterations <= 3  # cond(A R^-1) = 1 + O(eps cond(A)^2)
    else:  # dense A, or cond(A) beyond _CHOL_COND: the sketch
        assert info.sketch == ("countsketch" if sparse else "srht"), info
        assert info.preconditioner in ("sketch-gram", "sketch-qr"), info
    assert info.preconditioner == "gram" or not (sparse and kind == "well"), info
    if kind != "ill":
        assert np.linalg.norm(A @ (x - x0)) <= 1e-6 * r0
    if kind == "well":
        assert info.condition_number < 40  # 1-norm estimate, cond_2 ~ 2
    if kind == "ill" and not sparse:
        assert 1e9 < info.condition_number < 1e12  # a 1-norm estimate: within n of cond_2


@pytest.mark.parametrize("cond", [1e4, 1e7])
def test_lstsq_preconditioner_from_gram_cholesky_or_qr(cond):
    """The sketch's R comes from the Cholesky factor of its Gram matrix up to cond(R) ~ 1e5
    (_CHOL_COND), from its QR beyond: both answers agree with LAPACK to 1e-10."""
    import warnings

    from matkern import _sketch_solve

    rng = np.random.default_rng(3)
    m, n = 3000, 40
    U = np.linalg.qr(rng.standard_normal((m, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (U * np.logspace(0, -np.log10(cond), n)) @ V.T
    b = A @ rng.standard_normal(n) + rng.standard_normal(m)
    SA = rng.standard_normal((4 * n, m)) @ A
    chol = _sketch_solve._gram_cholesky(SA, SA[:, :1], np)
    assert (chol is not None) == (cond < _sketch_solve._CHOL_COND)
    if chol is not None:  # R^T R = SA^T SA, Q^T SB = R^-T SA^T SB
        R, QtSB, _ = chol
        np.testing.assert_allclose(
            R.T @ R, SA.T @ SA, rtol=0, atol=1e-12 * np.abs(SA).max() ** 2 * m
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x, info = matkern.lstsq(A, b, random_state=0)
    x0 = np.linalg.lstsq(A, b, rcond=None)[0]
    r, r0 = np.linalg.norm(A @ x - b), np.linalg.norm(A @ x0 - b)
    assert abs(r - r0) / r0 <= 1e-10 and info.converged, (r, r0, info)


def test_lstsq_options():
    A, b = _problem("well", m=2000, n=30, seed=3)
    B = np.stack([b, 2 * b + 1, np.zeros_like(b)], axis=1)
    X0 = np.linalg.lstsq(A, B, rcond=None)[0]
    for sk in ("srht", "countsketch", "gaussian"):
        X, info = matkern.lstsq(A, B, sketch=sk, random_state=1)
        assert X.shape == (30, 3) and info.residual_norm.shape == (3,)
        R0 = np.linalg.norm(A @ X0 - B, axis=0)
        assert (np.linalg.norm(A @ (X - X0), axis=0) <= 1e-6 * R0 + 1e-12).all()
    # sketch-and-solve: residual within (1 + sqrt(n/k))^2 of the optimum, no iterations
    x, info = matkern.lstsq(A, b, method="sketch-and-solve", sketch="gaussian", random_state=2)
    r0 = np.linalg.norm(A @ X0[:, 0] - b)
    assert info.iterations == 0 and r0 <= info.residual_norm <= (1 + np.sqrt(30 / 240)) ** 2 * r0
    x, info = matkern.lstsq(A, b, method="direct")
    np.testing.assert_allclose(x, X0[:, 0], atol=1e-12 * np.abs(X0).max())
    assert info.method == "direct" and info.rank == 30
    # float32 stays float32 and reaches float32 accuracy
    x32, info = matkern.lstsq(A.astype(np.float32), b.astype(np.float32), random_state=0)
    assert x32.dtype == np.float32
    r32 = np.linalg.norm(A @ x32.astype(np.float64) - b)
    assert abs(r32 - r0) / r0 < 1e-5
    # maxiter too small: a warning and converged=False, never a silent answer
    with pytest.warns(RuntimeWarning, match="LSQR did not reach"):
        _, info = matkern.lstsq(A, b, maxiter=1, tol=1e-14, random_state=0)
    assert not info.converged
    # cond 1e12: solved, with a warning about the forward error
    rng = np.random.default_rng(8)
    Ai = rng.standard_normal((2000, 30)) * np.logspace(0, -12, 30)
    with pytest.warns(RuntimeWarning, match="ill-conditioned"):
        _, info = matkern.lstsq(Ai, b, random_state=0)
    assert info.condition_number > 1e11 and info.rank == 30


def test_lstsq_rank_deficient_gives_min_norm_and_warns():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((2000, 20))
    A[:, 5] = A[:, 3] - 2 * A[:, 7]  # rank 19
    b = rng.standard_normal(2000)
    with pytest.warns(RuntimeWarning, match="rank deficient"):
        x, info = matkern.lstsq(A, b, random_state=0)
    x0 = np.linalg.lstsq(A, b, rcond=None)[0]  # the minimum-norm solution
    assert info.rank == 19
    # the same point (not just the same residual): the min-norm one
    np.testing.assert_allclose(x, x0, atol=1e-5 * np.abs(x0).max())
    with pytest.warns(RuntimeWarning, match="A is zero"):
        x, info = matkern.lstsq(np.zeros((50, 3)), np.ones(50))
    assert not x.any() and info.rank == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_gram_kernel(dtype):
    """csr_gram (A^T A of a CSR matrix, float64 out) against scipy: sorted rows, unsorted
    rows and repeated columns (summed, as scipy sums them), empty rows; the same bits at
    every thread count (each output row summed by one piece in row order)."""
    from matkern import _dispatch

    cpu = _dispatch.cpu()
    A = sp.random(500, 37, density=0.1, format="lil", random_state=2, dtype=dtype)
    A[7] = 0  # an empty row
    A = A.tocsr()
    # unsorted and repeated columns: reverse two rows' entries, add a duplicate to one
    indptr, indices, data = A.indptr.copy(), A.indices.copy(), A.data.copy()
    for i in (3, 11):
        s, e = indptr[i], indptr[i + 1]
        indices[s:e], data[s:e] = indices[s:e][::-1].copy(), data[s:e][::-1].copy()
    s = indptr[20]
    indices = np.insert(indices, s, indices[s])
    data = np.insert(data, s, dtype(0.5))
    indptr[21:] += 1
    messy = sp.csr_matrix((data, indices, indptr), shape=A.shape)
    for X in (A, messy):
        ref = (X.astype(np.float64).T @ X.astype(np.float64)).toarray()  # scipy sums repeats
        outs = []
        for t in (1, 2, 5):
            G = np.empty((37, 37))
            with matkern.threads(t):
                cpu.csr_gram(X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data, G)
            outs.append(G)
        np.testing.assert_allclose(outs[0], ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
        assert np.array_equal(outs[0], outs[0].T)
        assert all(np.array_equal(outs[0], G) for G in outs[1:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (513, 13), (5003, 40)])
@pytest.mark.parametrize("r", [1, 3])
def test_dense_lsqr_pass_kernel(dtype, shape, r):
    """dense_lsqr_pass (y = A t + c w, z = A^T y in one pass over A, float64 sums) against
    NumPy in float64: rows not a multiple of the 4-row block or the pieces, n below and
    above the 8 dot-product lanes, several right-hand sides with their own c; the same bits
    at every thread count (pieces set by m, added in order). Tolerance: float64 dots of
    length <= 5003 with |terms| ~ 1, 1e-12 relative to the sums of |terms|."""
    from matkern import _dispatch

    cpu = _dispatch.cpu()
    m, n = shape
    rng = np.random.default_rng(m + n + r)
    A = rng.standard_normal((m, n)).astype(dtype)
    T = rng.standard_normal((r, n))
    W = rng.standard_normal((m, r))
    c = rng.standard_normal(r)
    A64 = A.astype(np.float64)
    y_ref = A64 @ T.T + c * W
    z_ref = (A64.T @ y_ref).T
    y_scale = np.abs(A64) @ np.abs(T.T) + np.abs(c * W)
    z_scale = (np.abs(A64).T @ y_scale).T
    outs = []
    for t in (1, 2, 3):
        Y, Z = np.empty((m, r)), np.empty((r, n))
        with matkern.threads(t):
            cpu.dense_lsqr_pass(A, T, W, c, Y, Z)
        outs.append((Y, Z))
    Y, Z = outs[0]
    assert np.all(np.abs(Y - y_ref) <= 1e-12 * y_scale)
    assert np.all(np.abs(Z - z_ref) <= 1e-12 * z_scale)
    assert all(np.array_equal(Y, Yt) and np.array_equal(Z, Zt) for Yt, Zt in outs[1:])
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cpu.dense_lsqr_pass(A, T, W[: m - 1] if m > 1 else W[:0], c, Y, Z)


def test_dense_lsqr_pass_portable_and_simd_agree():
    """The portable rows and the AVX2/FMA rows of dense_lsqr_pass (fresh interpreters, one
    with MATKERN_SIMD=portable) both match NumPy's float64 products to 1e-12 relative to the
    sums of |terms| (not bit for bit: FMA rounds once where the portable loop rounds twice)."""
    from conftest import simd_runs

    code = """
import sys, numpy as np, matkern
from matkern import _dispatch
rng = np.random.default_rng(5)
A = rng.standard_normal((1031, 45)).astype(np.float32)
T, W, c = rng.standard_normal((2, 45)), rng.standard_normal((1031, 2)), rng.standard_normal(2)
Y, Z = np.empty((1031, 2)), np.empty((2, 45))
_dispatch.cpu().dense_lsqr_pass(A, T, W, c, Y, Z)
np.save(sys.argv[1], np.concatenate([Y.ravel(), Z.ravel()]))
print(matkern.backends()["simd"])
"""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((1031, 45)).astype(np.float32).astype(np.float64)
    T, W, c = rng.standard_normal((2, 45)), rng.standard_normal((1031, 2)), rng.standard_normal(2)
    y = A @ T.T + c * W
    ref = np.concatenate([y.ravel(), (A.T @ y).T.ravel()])
    ys = np.abs(A) @ np.abs(T.T) + np.abs(c * W)
    scale = np.concatenate([ys.ravel(), (np.abs(A).T @ ys).T.ravel()])
    for out in simd_runs(code):
        assert np.all(np.abs(out - ref) <= 1e-12 * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstsq_dense_fused_pass_matches_unfused(dtype):
    """Dense A on the CPU runs LSQR with the fused pass; the reference backend with NumPy's
    two products. Same problem, several right-hand sides: both reach LAPACK's residual
    (float64 1e-10 relative, float32 1e-4: its default tol) and take the same steps to
    within one."""
    A, b = _problem("well")
    A = A.astype(dtype)
    B = np.stack([b, 2 * b + 1, -b], axis=1).astype(dtype)
    xs = {}
    for be in ("cpu", "reference"):
        xs[be] = matkern.lstsq(A, B, random_state=0, backend=be)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    r0 = np.linalg.norm(A64 @ np.linalg.lstsq(A64, B64, rcond=None)[0] - B64, axis=0)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    for be, (x, info) in xs.items():
        r = np.linalg.norm(A64 @ x.astype(np.float64) - B64, axis=0)
        assert np.all(np.abs(r - r0) <= rtol * r0), (be, r, r0)
        assert info.converged and x.dtype == dtype
    assert abs(xs["cpu"][1].iterations - xs["reference"][1].iterations) <= 1


def test_lstsq_sparse_exact_gram_route():
    """Sparse A of short rows: R from A^T A (info.preconditioner "gram"), one or two LSQR
    steps, residual agreement 1e-10 with LAPACK, for scipy input, a SparseMatrix with
    unsorted rows and several right-hand sides; an explicit sketch= keeps the sketch."""
    rng = np.random.default_rng(8)
    A = sp.random(4000, 60, density=0.05, format="csr", random_state=8)
    A = (A @ sp.diags(10 ** rng.uniform(-1, 1, 60))).tocsr()  # cond ~ 1e2-1e3
    B = np.stack([A @ rng.standard_normal(60) + rng.standard_normal(4000), np.ones(4000)], 1)
    X0 = np.linalg.lstsq(A.toarray(), B, rcond=None)[0]
    R0 = np.linalg.norm(A @ X0 - B, axis=0)
    rev = A.copy()
    for i in range(0, 4000, 3):  # reverse every third row's entries
        s, e = rev.indptr[i], rev.indptr[i + 1]
        rev.indices[s:e], rev.data[s:e] = rev.indices[s:e][::-1].copy(), rev.data[s:e][::-1].copy()
    for form in (A, matkern.SparseMatrix(rev)):
        X, info = matkern.lstsq(form, B, random_state=0)
        assert info.preconditioner == "gram" and info.sketch is None and info.sketch_size == 0
        assert info.converged and 1 <= info.iterations <= 3, info
        R = np.linalg.norm(A @ X - B, axis=0)
        assert (np.abs(R - R0) / R0 <= 1e-10).all(), (R, R0)
    x, info = matkern.lstsq(A, B[:, 0], sketch="countsketch", random_state=0)
    assert info.sketch == "countsketch" and info.preconditioner == "sketch-gram"
    r = np.linalg.norm(A @ x - B[:, 0])
    assert abs(r - R0[0]) / R0[0] <= 1e-10


def test_lstsq_sparse_forms():
    A = sp.random(3000, 25, density=0.05, format="csr", random_state=4) + sp.eye(3000, 25)
    b = np.random.default_rng(0).standard_normal(3000)
    x0 = np.linalg.lstsq(A.toarray(), b, rcond=None)[0]
    for form in (A.tocsc(), matkern.SparseMatrix(A)):
        for sk in ("countsketch", "srht"):
            x, info = matkern.lstsq(form, b, sketch=sk, random_state=0)
            r0 = np.linalg.norm(A @ x0 - b)
            assert np.linalg.norm(A @ (x - x0)) <= 1e-6 * r0


# ---------------------------------------------------------------------- randomized_svd


def _lowrank(m=400, n=150, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    s = np.concatenate([np.linspace(10, 5, 10), 0.5 * 0.9 ** np.arange(n - 10)])
    return ((U * s) @ V.T).astype(dtype), s


@pytest.mark.parametrize("sketch", ["srht", "countsketch", "gaussian"])
def test_randomized_svd_accuracy_vs_sklearn(sketch):
    from sklearn.utils.extmath import randomized_svd as sk_rsvd

    A, s_true = _lowrank()
    k = 10
    best = np.sqrt((s_true[k:] ** 2).sum())
    for n_iter in (0, 2):
        U, s, Vt = matkern.randomized_svd(A, k, n_iter=n_iter, sketch=sketch, random_state=0)
        err = np.linalg.norm(A - (U * s) @ Vt)
        errs_sk = [
            np.linalg.norm(A - (u * v) @ w)
            for u, v, w in (sk_rsvd(A, k, n_iter=n_iter, random_state=r) for r in range(3))
        ]
        assert err <= 1.02 * max(errs_sk) and err >= best * (1 - 1e-12)
    U, s, Vt = matkern.randomized_svd(A, k, sketch=sketch, random_state=0)
    np.testing.assert_allclose(s, s_true[:k], rtol=1e-6)
    Us, ss, Vts = sk_rsvd(A, k, random_state=0)
    # the same sign convention: the factors agree with scikit-learn's, signs included
    np.testing.assert_allclose(U, Us, atol=1e-5)
    np.testing.assert_allclose(Vt, Vts, atol=1e-5)
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-12)


def test_randomized_svd_inputs_and_dtypes(backend):
    A, s_true = _lowrank(300, 120, seed=1)
    A32 = A.astype(np.float32)
    U, s, Vt = matkern.randomized_svd(to_backend(A32, backend), 5, random_state=0, backend=backend)
    assert U.dtype == s.dtype == Vt.dtype == np.float32
    assert U.shape == (300, 5) and Vt.shape == (5, 120)
    np.testing.assert_allclose(to_numpy(s), s_true[:5], rtol=1e-4)
    # wide input (transpose="auto" works on A^T) gives the transposed answer
    U2, s2, Vt2 = matkern.randomized_svd(
        to_backend(np.ascontiguousarray(A.T), backend), 5, random_state=0, backend=backend
    )
    np.testing.assert_allclose(to_numpy(s2), s_true[:5], rtol=1e-8)
    assert U2.shape == (120, 5) and Vt2.shape == (5, 300)


def test_randomized_svd_sparse_and_reference_algorithm():
    A = sp.random(600, 200, density=0.05, format="csr", random_state=2)
    k, p, n_iter = 6, 10, 3
    S = matkern.SRHT(200, k + p, random_state=3)
    Ur, sr, Vtr = ref.randomized_svd(A, k, p, n_iter, S.toarray().T)
    for form in (A, A.tocsc(), matkern.SparseMatrix(A)):
        U, s, Vt = matkern.randomized_svd(form, k, n_iter=n_iter, random_state=3)
        np.testing.assert_allclose(s, sr, rtol=1e-8)
        np.testing.assert_allclose(U, Ur, atol=1e-7)
        np.testing.assert_allclose(Vt, Vtr, atol=1e-7)
    s_exact = np.linalg.svd(A.toarray(), compute_uv=False)[:k]
    U, s, Vt = matkern.randomized_svd(A, k, n_iter=7, sketch="countsketch", random_state=0)
    np.testing.assert_allclose(s, s_exact, rtol=2e-2)  # a flat spectrum: no gap
    assert mref.randomized_svd is ref.randomized_svd


def test_cuda_countsketch_index_replay():
    """Host replay of cuda/sketch.cu's index arithmetic (the GPU kernels cannot run here):
    the launcher's stream base, the device bucket_of, and each kernel's map from its thread
    index to (row, column) and output offset, against the reference CountSketch."""
    from matkern.reference.randproj import C1, G, _mix

    seed = 3
    key = matkern.CountSketch(1, 1, random_state=seed).key_
    base = np.uint64(int(_mix(np.uint64((key + 2 * C1) % 2**64))))  # stream_base(key)

    def bucket_of(i, k):
        with np.errstate(over="ignore"):
            h = _mix(base + (i.astype(np.uint64) + np.uint64(1)) * np.uint64(G))
        return ((h >> np.uint64(32)) * np.uint64(k) >> np.uint64(32)).astype(np.int64), (
            h & np.uint64(1)
        ) == 1

    rng = np.random.default_rng(0)
    m, c, k = 57, 5, 9
    A = rng.standard_normal((m, c))
    As = sp.random(m, c, density=0.4, format="csr", random_state=1)
    S = matkern.CountSketch(m, k, random_state=seed).toarray()
    # left_dense_kernel: e < m*c, i = e / c, j = e - i*c, out[b(i)*c + j] += s(i) a[e]
    e = np.arange(m * c)
    i = e // c
    j = e - i * c
    b, neg = bucket_of(i, k)
    out = np.zeros(k * c)
    np.add.at(out, b * c + j, np.where(neg, -A.ravel(), A.ravel()))
    np.testing.assert_allclose(out.reshape(k, c), S @ A, atol=1e-12)
    # left_csr_kernel: row i's entries q: out[b(i)*c + indices[q]] += s(i) data[q]
    rows = np.repeat(np.arange(m), np.diff(As.indptr))
    b, neg = bucket_of(rows, k)
    out = np.zeros(k * c)
    np.add.at(out, b * c + As.indices, np.where(neg, -As.data, As.data))
    np.testing.assert_allclose(out.reshape(k, c), S @ As.toarray(), atol=1e-12)
    # right kernels: columns hashed, out[i*l + b(j)]; here A^T (c x m) so that S acts on m
    St = matkern.CountSketch(m, k, random_state=seed)
    At = np.ascontiguousarray(A.T)
    e = np.arange(c * m)
    i = e // m
    j = e - i * m
    b, neg = bucket_of(j, k)
    out = np.zeros(c * k)
    np.add.at(out, i * k + b, np.where(neg, -At.ravel(), At.ravel()))
    np.testing.assert_allclose(out.reshape(c, k), St.apply_right(At), atol=1e-12)
    Ats = As.T.tocsr()
    rows = np.repeat(np.arange(c), np.diff(Ats.indptr))
    b, neg = bucket_of(Ats.indices, k)
    out = np.zeros(c * k)
    np.add.at(out, rows * k + b, np.where(neg, -Ats.data, Ats.data))
    np.testing.assert_allclose(out.reshape(c, k), St.apply_right(Ats), atol=1e-12)
