"""TruncatedSVD updating: exact recovery, compiled kernels against the reference, real data,
orthonormality over many updates, threads, and bad input.

Tolerances (all in float64):
- Exact rank: when A has rank <= k and every update keeps it so, each method's result is the
  SVD of the whole matrix up to rounding. Each update costs O(1) ulps per entry amplified by
  the small SVD's condition, and the tests run <= 10 updates on matrices with sigma_1/sigma_k
  below 100: 1e-9 relative on singular values and on ||A - U S V^T||_max / ||A||_max leaves
  three orders of magnitude of margin above the observed ~1e-14.
- Compiled vs reference: the kernels differ from scipy only in the order of the sums, so the
  singular values agree to 1e-10 relative and the projectors U U^T, V V^T to 1e-8 (a
  projector, unlike the vectors, is defined even for close singular values).
- Orthonormality after 100 updates: dense methods re-orthogonalise every update, 1e-10.
  "sparse" carries U = U' K_u with K_u^-1 applied to each correction; the error grows with
  the conditioning of K (folded back above 1e6) and the Gram floor (1e-8): 1e-6 stated.
- Real data (BlogCatalog subgraph, MovieLens users in time order): truncation is lossy, so the
  bounds are measured figures with margin: the updated residual ||A - U S V^T||_F within 5% of
  the optimal rank-k residual and the leading singular values within 5%.
"""

import functools

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import datasets
import matkern
from conftest import run_in_threads, to_backend, to_numpy
from matkern import _svd_ops, _svd_update

METHODS = ["zha-simon", "gkl", "rpi", "sparse"]


def lowrank(m, n, k, seed, spread=10.0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, k)))
    V, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.geomspace(spread, 1.0, k)
    return (U * s) @ V.T


def to_be(A, backend, sparse=False):
    if sparse:
        A = sp.csr_matrix(A)
        if backend == "cuda":
            import cupyx.scipy.sparse as csp

            return csp.csr_matrix(A)
        return A
    return to_backend(A, backend)


def factors(t):
    return to_numpy(t.U_), to_numpy(t.singular_values_), to_numpy(t.components_)


def assert_exact(t, A, k, tol=1e-9):
    U, s, Vt = factors(t)
    ex = np.linalg.svd(A, compute_uv=False)[:k]
    np.testing.assert_allclose(s, ex, rtol=0, atol=tol * ex[0])
    assert np.abs((U * s) @ Vt - A).max() <= tol * np.abs(A).max()
    assert np.abs(U.T @ U - np.eye(k)).max() <= 1e-10
    assert np.abs(Vt @ Vt.T - np.eye(k)).max() <= 1e-10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sparse", [False, True])
def test_exact_rank_rows(backend, method, sparse):
    k = 6
    A = lowrank(160, 70, k, 1)
    t = matkern.TruncatedSVD(k, method=method, random_state=0, backend=backend)
    t.fit(to_be(A[:60], backend, sparse))
    for i in range(60, 160, 25):
        t.add_rows(to_be(A[i : i + 25], backend, sparse))
    assert t.n_samples_ == 160 and t.n_updates_ == 4 and t.last_method_ == method
    assert_exact(t, A, k)


@pytest.mark.parametrize("method", METHODS)
def test_exact_rank_columns_and_update(backend, method):
    k = 5
    A = lowrank(50, 130, k, 2)
    t = matkern.TruncatedSVD(k, method=method, random_state=1, backend=backend)
    t.fit(to_be(A[:, :40], backend))
    t.add_columns(to_be(A[:, 40:90], backend, sparse=True))
    t.add_columns(to_be(A[:, 90:], backend))
    assert t.n_features_in_ == 130
    assert_exact(t, A, k)
    # A + D E^T with rank(D E^T) = 2 stays of rank <= k + 2: fit with k + 2 components
    rng = np.random.default_rng(3)
    Dm = rng.standard_normal((50, 2))
    Em = np.zeros((130, 2))
    Em[rng.choice(130, 9, replace=False)] = rng.standard_normal((9, 2))
    t2 = matkern.TruncatedSVD(k + 2, method=method, random_state=1, backend=backend)
    t2.fit(to_be(A, backend)).update(to_be(Dm, backend), to_be(Em, backend, sparse=True))
    assert_exact(t2, A + Dm @ Em.T, k + 2)


def test_gram_small_svd_path_is_exact(monkeypatch):
    # the partial-eigh path of the small SVD (used for big batches) recovers exact rank too
    monkeypatch.setattr(_svd_update, "GRAM_SVD_MIN", 8)
    k = 4
    A = lowrank(200, 90, k, 4)
    for method in METHODS:
        t = matkern.TruncatedSVD(k, method=method, random_state=0).fit(A[:50])
        t.add_rows(sp.csr_matrix(A[50:120])).add_rows(A[120:])
        t.add_columns(np.zeros((200, 3)) + A[:, :3])
        assert_exact(t, np.hstack([A, A[:, :3]]), k)


@pytest.mark.parametrize("method", METHODS)
def test_compiled_matches_reference(compiled_backend, method):
    A = datasets.movielens_users()[:300, :1000]
    k = 12
    ts = {}
    for be in ("reference", compiled_backend):
        t = matkern.TruncatedSVD(k, method=method, init="dense", random_state=7, backend=be)
        t.fit(to_be(A[:150].toarray(), be))
        for i in range(150, 300, 30):
            t.add_rows(to_be(A[i : i + 30], be, sparse=True))
        t.update(to_be(np.ones((300, 1)), be), to_be(A[:1].T.toarray(), be))
        ts[be] = factors(t)
    (U0, s0, V0), (U1, s1, V1) = ts["reference"], ts[compiled_backend]
    np.testing.assert_allclose(s1, s0, rtol=1e-10, atol=0)
    assert np.abs(U1 @ U1.T - U0 @ U0.T).max() <= 1e-8
    assert np.abs(V1.T @ V1 - V0.T @ V0).max() <= 1e-8


def test_kernels_against_reference():
    ops = _svd_ops._Ops("cpu")
    rops = _svd_ops._Ops("reference")
    rng = np.random.default_rng(5)
    Xt = sp.random(37, 300, density=0.05, random_state=5, format="csr")
    Xt.indices = Xt.indices.astype(np.int32)
    B = rng.standard_normal((300, 19))
    np.testing.assert_allclose(ops.gather(Xt, B), rops.gather(Xt, B), rtol=1e-12, atol=1e-12)
    Xc = Xt.tocsc()
    np.testing.assert_allclose(ops.gram(Xt, Xc), rops.gram(Xt, Xc), rtol=1e-12, atol=1e-12)
    Y = rng.standard_normal((37, 19))
    B0, B1 = B.copy(), B.copy()
    ops.scatter(ops.compress_columns(Xc), Y, B0)
    rops.scatter(rops.compress_columns(Xc), Y, B1)
    np.testing.assert_allclose(B0, B1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(B0, B + Xt.T @ Y, rtol=1e-12, atol=1e-12)
    # rows the update does not name are untouched (bitwise)
    untouched = np.diff(Xc.indptr) == 0
    assert untouched.any() and np.array_equal(B0[untouched], B[untouched])


def test_simd_and_portable_paths_agree(monkeypatch):
    ops = _svd_ops._Ops("cpu")
    Xt = sp.random(50, 400, density=0.1, random_state=1, format="csr")
    Xt.indices = Xt.indices.astype(np.int32)
    B = np.random.default_rng(1).standard_normal((400, 37))  # k not a multiple of 4
    a = ops.gather(Xt, B)
    monkeypatch.setenv("MATKERN_SIMD", "portable")
    assert matkern.backends()["simd"] == "portable"
    np.testing.assert_allclose(ops.gather(Xt, B), a, rtol=1e-13, atol=1e-13)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(20, 60),
    n=st.integers(20, 60),
    k=st.integers(1, 6),
    c=st.integers(1, 30),
    method=st.sampled_from(METHODS),
    seed=st.integers(0, 10**6),
)
def test_property_exact_rank_any_shape(m, n, k, c, method, seed):
    A = lowrank(m + c, n, k, seed, spread=5.0)
    t = matkern.TruncatedSVD(k, method=method, random_state=seed).fit(A[:m])
    t.add_rows(A[m:])
    assert_exact(t, A, k, tol=1e-8)


def rank_k_error(A, U, s, Vt):
    """||A - U S V^T||_F for sparse A without forming the dense difference."""
    An2 = sp.linalg.norm(A) ** 2
    AV = np.asarray(A @ Vt.T)
    cross = np.sum(s * np.einsum("ij,ij->j", U, AV))
    return np.sqrt(max(An2 - 2 * cross + np.sum((U.T @ U) * np.outer(s, s) * (Vt @ Vt.T)), 0))


@functools.lru_cache(maxsize=None)
def real_case(dataset):
    """(A, k, top-k singular values of the whole A, optimal rank-k residual)."""
    if dataset == "blogcatalog":
        A, k = datasets.blogcatalog()[:1500, :1500], 16
    else:
        A, k = datasets.movielens_users()[:, :3000], 10
    ex = np.sort(sp.linalg.svds(A, k=k, v0=np.ones(min(A.shape)))[1])[::-1]
    opt = np.sqrt(sp.linalg.norm(A) ** 2 - np.sum(ex**2))
    return A, k, ex, opt


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", ["blogcatalog", "movielens"])
def test_real_data_half_then_batches(method, dataset):
    A, k, ex, opt = real_case(dataset)
    m = A.shape[0]
    h = m // 2
    t = matkern.TruncatedSVD(k, method=method, init="lanczos", random_state=0).fit(A[:h])
    for b in np.array_split(np.arange(h, m), 10):
        t.add_rows(A[b[0] : b[-1] + 1])
    U, s, Vt = factors(t)
    assert rank_k_error(A, U, s, Vt) <= 1.05 * opt
    assert np.all(np.abs(s[:3] - ex[:3]) <= 0.05 * ex[:3])
    assert np.abs(U.T @ U - np.eye(k)).max() <= 1e-10


@pytest.mark.parametrize("method", METHODS)
def test_orthonormal_after_100_updates(method):
    A = datasets.blogcatalog()[:1200, :1200]
    k = 16
    t = matkern.TruncatedSVD(k, method=method, init="dense", random_state=0).fit(A[:600])
    for b in np.array_split(np.arange(600, 1200), 100):
        t.add_rows(A[b[0] : b[-1] + 1])
    assert t.n_updates_ == 100
    U, s, Vt = factors(t)
    tol = 1e-6 if method == "sparse" else 1e-10
    assert np.abs(U.T @ U - np.eye(k)).max() <= tol
    assert np.abs(Vt @ Vt.T - np.eye(k)).max() <= tol
    assert np.all(np.diff(s) <= 0)


def test_auto_picks_by_density():
    A = lowrank(100, 60, 4, 9)
    t = matkern.TruncatedSVD(4, random_state=0).fit(A[:50])
    E = np.zeros((5, 60))
    E[:, :2] = 1.0  # density 2/60 <= 0.05
    t.add_rows(E)
    assert t.last_method_ == "sparse"
    t.add_rows(A[50:60])
    assert t.last_method_ == "zha-simon"


def test_transform_and_inits():
    A = lowrank(120, 80, 5, 11)
    for init in ("dense", "lanczos", "randomized"):
        t = matkern.TruncatedSVD(5, init=init, random_state=0).fit(sp.csr_matrix(A))
        U, s, Vt = factors(t)
        np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-8)
        np.testing.assert_allclose(t.transform(A), U * s, atol=1e-8)
        np.testing.assert_allclose(t.transform(sp.csr_matrix(A)), U * s, atol=1e-8)


def test_duplicate_and_unsorted_sparse_indices_are_summed():
    A = lowrank(60, 30, 3, 12)
    t0 = matkern.TruncatedSVD(3, method="sparse").fit(A[:30])
    t1 = t0.copy()
    E = np.zeros((2, 30))
    E[0, 3], E[1, 7] = 2.0, -1.0
    dup = sp.csr_matrix(
        (np.array([1.0, 1.0, -1.0]), np.array([3, 3, 7]), np.array([0, 2, 3])), shape=(2, 30)
    )
    assert not dup.has_canonical_format
    t0.add_rows(E)
    t1.add_rows(dup)
    np.testing.assert_allclose(t1.singular_values_, t0.singular_values_, rtol=1e-12)


def test_from_many_threads_at_once():
    A = datasets.blogcatalog()[:800, :800]
    batches = [A[i : i + 40] for i in range(400, 800, 40)]
    base = matkern.TruncatedSVD(8, method="sparse", init="dense").fit(A[:400])
    expect = base.copy()
    for E in batches:
        expect.add_rows(E)

    def work():
        t = base.copy()
        for E in batches:
            t.add_rows(E)
        return t.singular_values_

    results = run_in_threads([work] * 4)
    for r in results:
        np.testing.assert_allclose(r, expect.singular_values_, rtol=1e-12)


# ------------------------------------------------------------------ bad input
@pytest.fixture
def fitted():
    return matkern.TruncatedSVD(3, random_state=0).fit(lowrank(20, 10, 3, 0))


def test_bad_updates(fitted):
    with pytest.raises(ValueError, match=r"add_rows\(\): E must have 10 columns"):
        fitted.add_rows(np.ones((2, 11)))
    with pytest.raises(ValueError, match=r"add_rows\(\): E must have 10 columns"):
        fitted.add_rows(sp.csr_matrix(np.ones((2, 9))))
    with pytest.raises(ValueError, match=r"add_columns\(\): E must have 20 rows"):
        fitted.add_columns(np.ones((19, 2)))
    with pytest.raises(ValueError, match="must not be empty"):
        fitted.add_rows(np.ones((0, 10)))
    with pytest.raises(ValueError, match="must not be empty"):
        fitted.add_rows(sp.csr_matrix((0, 10)))
    with pytest.raises(ValueError, match="finite"):
        fitted.add_rows(np.full((1, 10), np.nan))
    bad = sp.csr_matrix(np.eye(1, 10))
    bad.data[0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        fitted.add_rows(bad)
    with pytest.raises(TypeError, match="dtype"):
        fitted.add_rows(np.ones((1, 10), dtype=np.int64))
    with pytest.raises(TypeError, match="NumPy/CuPy array or a scipy/cupyx sparse"):
        fitted.add_rows([[1.0] * 10])
    with pytest.raises(ValueError, match="2-dimensional"):
        fitted.add_rows(np.ones(10))
    with pytest.raises(ValueError, match=r"update\(\): D must have 20 rows"):
        fitted.update(np.ones((19, 1)), np.ones((10, 1)))
    with pytest.raises(ValueError, match="same number of columns"):
        fitted.update(np.ones((20, 1)), np.ones((10, 2)))
    with pytest.raises(ValueError, match="finite"):
        fitted.update(np.ones((20, 1)), np.full((10, 1), np.nan))
    # nothing was changed by the rejected calls
    assert fitted.n_updates_ == 0 and fitted.n_samples_ == 20


def test_bad_parameters_and_state():
    A = np.ones((5, 4))
    with pytest.raises(NotFittedError):
        matkern.TruncatedSVD(2).add_rows(A)
    with pytest.raises(ValueError, match="n_components must be <= min"):
        matkern.TruncatedSVD(5).fit(A)
    with pytest.raises(ValueError, match="method must be one of"):
        matkern.TruncatedSVD(2, method="qr").fit(A)
    with pytest.raises(TypeError, match="n_components must be an integer"):
        matkern.TruncatedSVD(2.0).fit(A)
    with pytest.raises(ValueError, match="NaN"):
        matkern.TruncatedSVD(2).fit(np.full((5, 4), np.nan))
    with pytest.raises(ValueError, match="update_rank must be >= 1"):
        matkern.TruncatedSVD(2, update_rank=0).fit(A)
    with pytest.raises(ValueError, match="backend must be one of"):
        matkern.TruncatedSVD(2, backend="gpu").fit(A)
