"""SparseRandomProjection and fastrp: the generator's distribution, bit-identical matrices on
every backend, transform == X @ components_.T, FastRP against the reference, bad input.

Tolerances. The kernels add +-x terms in the input dtype and multiply by the scale once at the
end; the reference sums in float64. Each output is a sum of m = (number of nonzeros in its
row of the projection) terms, so the rounding error is at most m * u * sum|terms| (u the unit
roundoff); the tests allow 4 * (d * density) * u * max|x| * sqrt(1/(density k)) per entry with
d * density the expected m, plus 6 standard deviations' slack through the factor 4. FastRP
(float32 kernels, float64 reference) goes through q sparse products with row-stochastic S and
row normalizations of O(1) values: the tests allow 2e-5 absolute on entries of size O(1), a
few hundred float32 ulps. The distribution tests use fixed seeds, so they are deterministic;
their thresholds (|z| < 5, chi-square p > 1e-4) would fail a correct generator with
probability < 1e-4 per test for a random seed.
"""

import importlib.util
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import matkern
from conftest import DATA, run_in_threads, to_backend, to_numpy
from matkern import _estimator, _fastrp, _gpu_csr
from matkern.reference import randproj as ref

# The property tests draw n_components above n_features on purpose (still a valid projection);
# scikit-learn, and so matkern, warns about it (DataDimensionalityWarning).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataDimensionalityWarning")

FLOATS = [np.float32, np.float64]


def to_backend_sparse(A, backend):
    if backend == "cuda":
        import cupyx.scipy.sparse as csp

        return csp.csr_matrix(A)
    return A


def generated(p, backend):
    """(indptr, comps, negs) of R from backend's generator, as NumPy."""
    ip, c, ng = p._generate(backend)
    return to_numpy(ip), to_numpy(c), to_numpy(ng)


def bound(X, p, dtype):
    u = np.finfo(dtype).eps / 2
    m = max(1.0, X.shape[1] * p.density_)
    return 4 * (m + 6 * np.sqrt(m)) * u * np.abs(X).max() * p.scale_ + 1e-300


# ----------------------------------------------------------------------------- generator


@pytest.mark.parametrize(
    "k,d,density",
    [(256, 10000, "auto"), (7, 300, 0.5), (64, 50, 1.0), (1, 1000, 0.01), (1000, 20, 1e-3)],
)
def test_generator_bit_identical_on_every_backend(compiled_backend, k, d, density):
    p = matkern.SparseRandomProjection(k, density=density, random_state=11).fit(np.zeros((2, d)))
    a = generated(p, "reference")
    b = generated(p, compiled_backend)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_distribution_density_signs_positions_gaps():
    """Fixed seed; d*k = 2e6 entries at density 0.05 (100k nonzeros).
    Count: Binomial(d k, p), |z| < 5. Signs: Binomial(nnz, 1/2), |z| < 5. Components: each of
    the k components equally likely, chi-square p > 1e-4. First nonzero position in a row:
    P(m) = p (1-p)^m, chi-square over bins with expected counts >= 20, p > 1e-4. Values:
    exactly +-sqrt(1/(p k))."""
    k, d, dens = 500, 4000, 0.05
    p = matkern.SparseRandomProjection(k, density=dens, random_state=2024).fit(np.zeros((1, d)))
    M = p.components_
    assert M.shape == (k, d) and sp.isspmatrix_csr(M)
    nnz = M.nnz
    z = (nnz - d * k * dens) / np.sqrt(d * k * dens * (1 - dens))
    assert abs(z) < 5, z
    vals = M.data
    s = np.sqrt(1 / (dens * k))
    assert np.all((vals == s) | (vals == -s))
    zs = ((vals > 0).sum() - nnz / 2) / np.sqrt(nnz / 4)
    assert abs(zs) < 5, zs
    per_comp = np.diff(M.indptr)
    assert scipy.stats.chisquare(per_comp).pvalue > 1e-4
    ip, comps, _ = generated(p, "reference")
    has = np.diff(ip) > 0
    first = comps[ip[:-1][has]]
    # Include rows without nonzeros as position k (probability (1-p)^k).
    first = np.concatenate([first, np.full((~has).sum(), k)])
    edges = np.arange(0, 30)
    obs = np.array([(first == m).sum() for m in edges] + [(first >= 30).sum()])
    pm = dens * (1 - dens) ** edges
    exp = np.concatenate([pm, [(1 - dens) ** 30]]) * d
    assert exp.min() >= 20
    assert scipy.stats.chisquare(obs, exp).pvalue > 1e-4


def test_density_auto_and_scale():
    X = np.zeros((3, 2500))
    p = matkern.SparseRandomProjection(100, random_state=0).fit(X)
    assert p.density_ == pytest.approx(1 / 50)
    assert p.scale_ == pytest.approx(np.sqrt(50 / 100))
    z = (p.components_.nnz - 2500 * 100 / 50) / np.sqrt(2500 * 100 / 50)
    assert abs(z) < 5


def test_same_seed_same_matrix_different_seed_different():
    X = np.zeros((2, 3000))
    a = matkern.SparseRandomProjection(64, random_state=5).fit(X).components_
    b = matkern.SparseRandomProjection(64, random_state=5).fit(X).components_
    c = matkern.SparseRandomProjection(64, random_state=6).fit(X).components_
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0
    g1 = matkern.SparseRandomProjection(64, random_state=np.random.default_rng(1)).fit(X)
    g2 = matkern.SparseRandomProjection(64, random_state=np.random.default_rng(1)).fit(X)
    assert g1.seed_ == g2.seed_


# ----------------------------------------------------------------------------- transform


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "shape,k,density",
    [
        ((50, 300), 32, "auto"),
        ((1, 1), 1, "auto"),
        ((17, 1000), 100, 0.3),
        ((9, 64), 5, 1.0),
        ((3, 3000), 1000, 1.0),
    ],
)
def test_dense_transform_equals_x_components_t(backend, dtype, shape, k, density):
    # (3, 3000) -> 1000 at density 1 makes 3M generated entries: several chunks on the CPU.
    X = np.random.default_rng(shape[1]).standard_normal(shape).astype(dtype)
    p = matkern.SparseRandomProjection(k, density=density, random_state=3, backend=backend)
    Y = to_numpy(p.fit_transform(to_backend(X, backend)))
    assert Y.shape == (shape[0], k) and Y.dtype == dtype
    expect = X.astype(np.float64) @ p.components_.T.toarray()
    assert np.all(np.abs(Y - expect) <= bound(X, p, dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_transform_equals_x_components_t(backend, dtype, fmt):
    X = sp.random(200, 5000, density=0.01, format=fmt, random_state=4, dtype=dtype)
    p = matkern.SparseRandomProjection(128, random_state=9, backend=backend).fit(X)
    Y = to_numpy(p.transform(to_backend_sparse(X.tocsr(), backend) if backend == "cuda" else X))
    assert Y.shape == (200, 128) and Y.dtype == dtype
    expect = (X.astype(np.float64) @ p.components_.T).toarray()
    assert np.all(np.abs(Y - expect) <= bound(X.toarray(), p, dtype))


def test_sparse_transform_chunked_and_unsorted_duplicates(backend):
    # density 1 with k=1000, d=3000: several generated chunks; indices unsorted with duplicates.
    rng = np.random.default_rng(8)
    rows = rng.integers(0, 40, 3000)
    cols = rng.integers(0, 3000, 3000)
    vals = rng.standard_normal(3000)
    X = sp.csr_matrix((vals, (rows, cols)), shape=(40, 3000))
    X.has_canonical_format = False
    Xu = sp.csr_matrix((X.data[::-1].copy(), X.indices[::-1].copy(), X.indptr), shape=X.shape)
    Xd = sp.coo_matrix(
        (np.r_[vals, vals], (np.r_[rows, rows], np.r_[cols, cols])), shape=(40, 3000)
    )
    p = matkern.SparseRandomProjection(
        1000, density=1.0, dense_output=True, random_state=1, backend=backend
    ).fit(X)
    M = p.components_.T.toarray()
    for A in (Xu, Xd):
        Xin = to_backend_sparse(A.tocsr(), backend) if backend == "cuda" else A
        Y = to_numpy(p.transform(Xin))
        np.testing.assert_allclose(Y, A.toarray() @ M, atol=1e-9 * np.abs(A).max() * 3000)


def test_dense_output_false_gives_sparse():
    X = sp.random(30, 400, density=0.05, format="csr", random_state=0)
    p = matkern.SparseRandomProjection(16, random_state=0, dense_output=False)
    Y = p.fit_transform(X)
    assert sp.issparse(Y)
    np.testing.assert_allclose(Y.toarray(), (X @ p.components_.T).toarray(), atol=1e-12)


def _assert_same_csr(Y, R):
    """Y is R entry for entry: values, structure and dtypes (scipy's own canonical CSR)."""
    assert type(Y) is type(R)
    assert Y.shape == R.shape and Y.has_sorted_indices
    for a, b in ((Y.indptr, R.indptr), (Y.indices, R.indices), (Y.data, R.data)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "n, d, k, density",
    [
        (700, 2000, 200, "auto"),  # ~1/4 of the entries zero, blocks of 256 rows and a tail
        (40, 9000, 256, 1.0),  # R in several chunks: rows from the dense result
        (300, 300, 64, "auto"),  # mostly empty rows
        (1, 10, 5, "auto"),
    ],
)
def test_csr_output_is_scipys_conversion_of_the_dense_result(dtype, n, d, k, density):
    """The kernel's CSR (dense_output=False) is exactly scipy's CSR of the dense result: same
    values, explicit zeros dropped, sorted indices, int32 indices, of the kind scikit-learn's
    setting asks for."""
    X = sp.random(n, d, density=0.01, format="lil", random_state=n, dtype=dtype)
    X[0] = 0  # an empty input row: an empty output row
    X = X.tocsr()
    p = matkern.SparseRandomProjection(k, density=density, random_state=3).fit(X)
    q = matkern.SparseRandomProjection(k, density=density, random_state=3, dense_output=True)
    D = q.fit(X).transform(X)
    _assert_same_csr(p.transform(X), sp.csr_matrix(D))
    Xa = sp.csr_array(X)  # the kind scikit-learn's sparse_interface setting asks for
    _assert_same_csr(p.transform(Xa), _estimator._csr_class(Xa)(D))
    with matkern.threads(1):  # rows in fixed blocks: the same whatever the team
        _assert_same_csr(p.transform(X), sp.csr_matrix(D))


def test_csr_output_drops_zeros_and_keeps_nan_as_scipy():
    """A row whose terms cancel gives no stored entry; -0.0 is a zero (numpy.nonzero)."""
    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]]))
    p = matkern.SparseRandomProjection(8, density=1.0, random_state=0).fit(X)
    Y = p.transform(X)
    assert Y.indptr.tolist() == [0, 8, 8, 16]
    Z = p.transform(sp.csr_matrix(np.array([[-0.0, 0.0]]) + 0 * X[:1].toarray()))
    assert Z.nnz == 0


def test_csr_output_matches_sklearn_semantics():
    """The same output type, dtype and shape as scikit-learn's transform of sparse input, and
    the same product as X @ components_.T (float64)."""
    from sklearn.random_projection import SparseRandomProjection as SkSRP

    X = sp.random(200, 3000, density=0.01, format="csr", random_state=5)
    p = matkern.SparseRandomProjection(50, random_state=0).fit(X)
    s = SkSRP(50, random_state=0).fit(X)
    Y, Ys = p.transform(X), s.transform(X)
    assert type(Y) is type(Ys) and Y.dtype == Ys.dtype and Y.shape == Ys.shape
    np.testing.assert_allclose(Y.toarray(), (X @ p.components_.T).toarray(), atol=1e-12)


def test_sparse_and_dense_input_agree():
    X = sp.random(100, 2000, density=0.02, format="csr", random_state=3, dtype=np.float64)
    p = matkern.SparseRandomProjection(64, random_state=0).fit(X)
    np.testing.assert_allclose(p.transform(X).toarray(), p.transform(X.toarray()), atol=1e-12)


def test_matches_sklearn_distance_preservation():
    """Not the same matrix as scikit-learn's (another generator) but the same distribution:
    mean squared-norm ratio ~ 1 for both, within 5 standard errors."""
    X = np.random.default_rng(0).standard_normal((400, 3000))
    Y = matkern.SparseRandomProjection(300, random_state=1).fit_transform(X)
    r = (Y**2).sum(1) / (X**2).sum(1)
    assert abs(r.mean() - 1) < 5 * r.std() / np.sqrt(len(r)) + 0.02


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 20),
    d=st.integers(1, 400),
    k=st.integers(1, 70),
    dens=st.one_of(st.just("auto"), st.floats(0.001, 1.0)),
    seed=st.integers(0, 2**40),
)
def test_property_cpu_equals_reference(n, d, k, dens, seed):
    X = np.random.default_rng(seed % 1000).standard_normal((n, d))
    a = matkern.SparseRandomProjection(k, density=dens, random_state=seed).fit(X)
    b = matkern.SparseRandomProjection(k, density=dens, random_state=seed, backend="reference").fit(
        X
    )
    np.testing.assert_allclose(a.transform(X), b.transform(X), atol=bound(X, a, np.float64))
    Xs = sp.csr_matrix(X * (np.abs(X) > 1))
    np.testing.assert_allclose(
        a.transform(Xs).toarray(), b.transform(Xs).toarray(), atol=bound(X, a, np.float64)
    )


def test_simd_and_portable_paths_agree(monkeypatch):
    X = np.random.default_rng(1).standard_normal((37, 2000)).astype(np.float32)
    A = sp.random(300, 300, density=0.05, format="csr", random_state=2)
    p = matkern.SparseRandomProjection(96, random_state=4).fit(X)
    y1 = p.transform(X)
    e1 = matkern.fastrp(A, dim=48, random_state=3)
    monkeypatch.setenv("MATKERN_SIMD", "portable")
    assert matkern.backends()["simd"] == "portable"
    y0 = p.transform(X)
    e0 = matkern.fastrp(A, dim=48, random_state=3)
    np.testing.assert_allclose(y0, y1, atol=bound(X, p, np.float32))
    np.testing.assert_allclose(e0, e1, atol=2e-5)


def test_from_many_threads_at_once():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((64, 3000)).astype(np.float32) for _ in range(6)]
    ps = [matkern.SparseRandomProjection(128, random_state=i).fit(xs[0]) for i in range(6)]
    expect = [p.transform(x) for p, x in zip(ps, xs)]
    results = run_in_threads([lambda p=p, x=x: p.transform(x) for p, x in zip(ps, xs)], repeats=4)
    for r, e in zip(results, expect):
        np.testing.assert_array_equal(r, e)


# ----------------------------------------------------------------------------- fastrp


def small_graphs():
    rng = np.random.default_rng(0)
    A = sp.random(300, 300, density=0.03, format="csr", random_state=1)
    sym = ((A + A.T) > 0).astype(np.float64)
    iso = sym.tolil()
    iso[5, :] = 0
    iso[:, 5] = 0
    iso[17, :] = 0  # a sink in a directed graph: out-degree 0, in-degree > 0
    W = sp.random(200, 200, density=0.05, format="csr", random_state=2)
    W.data = rng.uniform(0.1, 3.0, W.nnz)
    # two hubs of 699 and 300 neighbours: rows longer than the GPU SpMM's segment length (256),
    # so that the GPU graph products run its split-row (segment) path
    B = sp.random(700, 700, density=0.004, format="lil", random_state=3)
    B[0, 1:] = 1.0
    B[1, 400:] = 0.5
    hub = ((B + B.T) > 0).astype(np.float64)
    return {
        "symmetric": sym.tocsr(),
        "isolated_and_sink": iso.tocsr(),
        "weighted_directed": W,
        "one_node": sp.csr_matrix((1, 1)),
        "single_edge": sp.csr_matrix(([1.0], ([0], [1])), shape=(2, 2)),
        "hubs": hub.tocsr(),
    }


@pytest.mark.parametrize("name", list(small_graphs()))
@pytest.mark.parametrize(
    "beta,l2,weights",
    [
        (0.0, True, (0.0, 1.0, 1.0)),
        (-0.5, True, (1.0, 2.0, 0.5, 3.0)),
        (0.3, False, (1.0,)),
        (-0.64, False, (0.0, 0.0, 1.0, 6.67)),
    ],
)
def test_fastrp_matches_reference(backend, name, beta, l2, weights):
    A = small_graphs()[name]
    E = to_numpy(
        matkern.fastrp(
            to_backend_sparse(A, backend),
            dim=40,
            iteration_weights=weights,
            normalization_strength=beta,
            l2_normalize=l2,
            random_state=7,
            backend=backend,
        )
    )
    assert E.shape == (A.shape[0], 40) and E.dtype == np.float32
    assert np.all(np.isfinite(E))
    expect = ref.fastrp(A, 40, list(weights), beta, l2, ref.rp_seed_key(7))
    scale = max(1.0, np.abs(expect).max())
    np.testing.assert_allclose(E, expect, atol=2e-5 * scale * len(weights))


def test_fastrp_float64_and_isolated_rows_zero(backend):
    A = small_graphs()["isolated_and_sink"]
    E = to_numpy(
        matkern.fastrp(
            to_backend_sparse(A, backend), dim=16, random_state=1, dtype=np.float64, backend=backend
        )
    )
    expect = ref.fastrp(A, 16, [0.0, 1.0, 1.0], 0.0, True, ref.rp_seed_key(1))
    np.testing.assert_allclose(E, expect, atol=1e-12)
    assert np.all(E[5] == 0) and np.all(E[17] == 0)


@pytest.mark.gpu
def test_fastrp_gpu_products_run_on_the_spmm_csr_kernel(monkeypatch):
    """float32: the graph products go through the SpMM family's float32 CSR path (S planned
    once); float64 keeps randproj's own kernel (the SpMM CUDA kernel is float32-only)."""
    ok, why = matkern._dispatch.gpu_status()
    if not ok:
        pytest.skip(f"cuda backend unavailable: {why}")
    calls, plans = [], []
    matmul, plan = _gpu_csr.matmul, _gpu_csr.plan  # SparseMatrix's GPU CSR kernel too
    monkeypatch.setattr(_gpu_csr, "matmul", lambda *a: calls.append(1) or matmul(*a))
    monkeypatch.setattr(_gpu_csr, "plan", lambda *a: plans.append(1) or plan(*a))
    A = to_backend_sparse(small_graphs()["hubs"], "cuda")
    matkern.fastrp(A, dim=16, iteration_weights=(1.0, 1.0, 1.0, 1.0), random_state=0)
    assert (len(plans), len(calls)) == (1, 3)
    matkern.fastrp(A, dim=16, iteration_weights=(1.0, 1.0), random_state=0, dtype=np.float64)
    assert (len(plans), len(calls)) == (1, 3)


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_fastrp_progress(backend, tqdm_installed, capsys, monkeypatch):
    """progress=True/False/None give identical embeddings; True writes to stderr (a tqdm bar,
    or one line per iteration without tqdm), False and None (small graph) nothing."""
    if tqdm_installed:
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` then fails
    A = to_backend_sparse(small_graphs()["symmetric"], backend)
    kw = dict(dim=24, iteration_weights=(0.0, 1.0, 2.0), random_state=5, backend=backend)
    capsys.readouterr()
    e_false = to_numpy(matkern.fastrp(A, progress=False, **kw))
    e_none = to_numpy(matkern.fastrp(A, **kw))
    assert capsys.readouterr().err == ""
    e_true = to_numpy(matkern.fastrp(A, progress=np.bool_(True), **kw))
    err = capsys.readouterr().err
    if backend == "reference":
        assert err == ""
    elif tqdm_installed:
        assert "fastrp" in err and "3/3" in err
    else:
        assert "fastrp(): iteration 3/3 done" in err
    np.testing.assert_array_equal(e_true, e_false)
    np.testing.assert_array_equal(e_none, e_false)


def test_fastrp_progress_none_rule(capsys, monkeypatch):
    """progress=None: a bar only from PROGRESS_MIN_NNZ stored entries on, with stderr a
    terminal and tqdm importable (never the plain-line fallback)."""
    A = small_graphs()["symmetric"]
    monkeypatch.setattr(_fastrp, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(_fastrp, "PROGRESS_MIN_NNZ", A.nnz + 1)
    capsys.readouterr()
    matkern.fastrp(A, dim=8, random_state=0)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_fastrp, "PROGRESS_MIN_NNZ", A.nnz)
    if importlib.util.find_spec("tqdm") is not None:
        matkern.fastrp(A, dim=8, random_state=0)
        assert "fastrp" in capsys.readouterr().err
        monkeypatch.setattr(_fastrp, "stderr_is_terminal", lambda: False)
        matkern.fastrp(A, dim=8, random_state=0)
        assert capsys.readouterr().err == ""
        monkeypatch.setattr(_fastrp, "stderr_is_terminal", lambda: True)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    matkern.fastrp(A, dim=8, random_state=0)
    assert capsys.readouterr().err == ""


def test_fastrp_first_product_uses_the_projection_of_sparse_random_projection():
    """U_1 = S R with R = components_.T of SparseRandomProjection(dim, density=1/sqrt(n)) from
    the same seed (beta = 0, one weight, no normalization)."""
    A = small_graphs()["weighted_directed"]
    n = A.shape[0]
    E = matkern.fastrp(
        A, dim=24, iteration_weights=(1.0,), l2_normalize=False, random_state=4, dtype=np.float64
    )
    p = matkern.SparseRandomProjection(24, density=1 / np.sqrt(n), random_state=4).fit(A)
    deg = np.asarray(A.sum(1)).ravel()
    S = sp.diags(np.where(deg > 0, 1 / np.where(deg > 0, deg, 1), 0)) @ A
    np.testing.assert_allclose(E, (S @ p.components_.T).toarray(), atol=1e-12)


def test_fastrp_int_and_bool_adjacency_accepted():
    A = small_graphs()["symmetric"]
    e1 = matkern.fastrp(A, dim=8, random_state=0)
    e2 = matkern.fastrp(A.astype(np.int32), dim=8, random_state=0)
    e3 = matkern.fastrp(A.astype(bool), dim=8, random_state=0)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(e1, e3)


def _ovr_logistic(X, Y, C, maxiter=100):
    """One-vs-rest L2 logistic regression, scikit-learn's objective per label
    (C * sum of log-losses + ||w||^2 / 2, intercept unpenalized), all labels fitted at once by
    one L-BFGS run on their sum (the labels' problems are independent), with a bounded
    number of iterations so that the test stays fast."""
    import scipy.optimize
    import scipy.special

    n, d = X.shape
    L = Y.shape[1]
    Xb = np.hstack([X, np.ones((n, 1))])
    Ys = 2.0 * Y - 1.0

    def f(w):
        W = w.reshape(d + 1, L)
        m = -Ys * (Xb @ W)
        G = C * (Xb.T @ (-Ys * scipy.special.expit(m)))
        G[:-1] += W[:-1]
        return C * np.logaddexp(0, m).sum() + 0.5 * (W[:-1] ** 2).sum(), G.ravel()

    r = scipy.optimize.minimize(
        f, np.zeros((d + 1) * L), jac=True, method="L-BFGS-B", options={"maxiter": maxiter}
    )
    return r.x.reshape(d + 1, L)


def _blogcatalog_f1(E, labels, seeds=5, train_frac=0.1, C=0.1):
    """DeepWalk/FastRP protocol: one-vs-rest logistic regression, each test node gets its
    true number of labels, the top-scoring ones. Returns mean (macro-F1, micro-F1)."""
    from sklearn.metrics import f1_score
    from threadpoolctl import threadpool_limits

    macro, micro = [], []
    with threadpool_limits(1, user_api="blas"):  # small products: threads only contend
        for s in range(seeds):
            _one_split(E, labels, s, train_frac, C, macro, micro, f1_score)
    return float(np.mean(macro)), float(np.mean(micro))


def _one_split(E, labels, s, train_frac, C, macro, micro, f1_score):
    n = E.shape[0]
    perm = np.random.default_rng(s).permutation(n)
    tr, te = perm[: int(train_frac * n)], perm[int(train_frac * n) :]
    W = _ovr_logistic(E[tr], labels[tr].astype(np.float64), C)
    scores = E[te] @ W[:-1] + W[-1]
    counts = np.asarray(labels[te].sum(1)).ravel()
    pred = np.zeros_like(scores, dtype=np.int8)
    order = np.argsort(-scores, axis=1)
    for i, c in enumerate(counts):
        pred[i, order[i, :c]] = 1
    macro.append(f1_score(labels[te], pred, average="macro", zero_division=0))
    micro.append(f1_score(labels[te], pred, average="micro", zero_division=0))


BLOG_SETTINGS = dict(
    dim=512,
    iteration_weights=(0.0, 0.0, 1.0, 6.67),
    normalization_strength=-0.64,
    l2_normalize=True,
    random_state=0,
)


def test_fastrp_blogcatalog_quality():
    """FastRP's BlogCatalog setting (dim 512, weights 0,0,1,6.67, beta -0.64, rows
    L2-normalized, then columns standardized), 10% training nodes, 5 splits, one-vs-rest
    logistic regression with C = 0.1: mean macro-F1 >= 0.22 (the paper: 0.2342)."""
    from sklearn.preprocessing import scale

    m = scipy.io.loadmat(DATA / "graphs" / "blogcatalog.mat")
    A, labels = m["network"].tocsr(), m["group"].toarray().astype(np.int8)
    E = scale(matkern.fastrp(A, **BLOG_SETTINGS).astype(np.float64))
    macro, micro = _blogcatalog_f1(E, labels)
    print(f"BlogCatalog macro-F1 {macro:.4f} micro-F1 {micro:.4f}")
    assert macro >= 0.22, (macro, micro)


def test_fastrp_real_graph_matches_reference():
    A = scipy.io.mmread(DATA / "matrices" / "cora.mtx").tocsr()
    kw = dict(
        dim=64,
        iteration_weights=(0.5, 1.0, 2.0),
        normalization_strength=-0.3,
        l2_normalize=True,
        random_state=3,
    )
    E = matkern.fastrp(A, **kw)
    expect = ref.fastrp(A, 64, [0.5, 1.0, 2.0], -0.3, True, ref.rp_seed_key(3))
    np.testing.assert_allclose(E, expect, atol=1e-4)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_projection():
    """matkern's own parameter checks; X itself is validated by scikit-learn (its messages),
    a sparse X's index structure by matkern first (tests/test_robustness_randproj.py). NaN/Inf
    are refused, as scikit-learn refuses them (they used to propagate)."""
    P = matkern.SparseRandomProjection
    X = np.zeros((4, 10), np.float32)
    with pytest.raises(NotFittedError):
        P(3).transform(X)
    with pytest.raises(TypeError, match="n_components must be an integer"):
        P(2.5).fit(X)
    with pytest.raises(ValueError, match="n_components must be >= 1"):
        P(0).fit(X)
    with pytest.raises(ValueError, match="density must be > 0"):
        P(3, density=0.0).fit(X)
    with pytest.raises(ValueError, match="density must be <= 1"):
        P(3, density=1.5).fit(X)
    with pytest.raises(ValueError, match="density must be one of"):
        P(3, density="dense").fit(X)
    with pytest.raises(TypeError, match="random_state"):
        P(3, random_state="x").fit(X)
    with pytest.raises(ValueError, match=r"0 feature\(s\)"):
        P(3).fit(np.zeros((4, 0)))
    p = P(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 11 features, but SparseRandomProjection is"):
        p.transform(np.zeros((4, 11), np.float32))
    with pytest.raises(ValueError, match="Expected 2D array"):
        p.transform(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        p.transform(np.zeros((0, 10), np.float32))
    with pytest.raises(ValueError, match="could not convert|argument must be"):
        p.transform([["a"] * 10])
    with pytest.raises(ValueError, match="NaN"):
        p.transform(np.full((2, 10), np.nan))
    with pytest.raises(ValueError, match="backend must be one of"):
        P(3, backend="gpu").fit(X).transform(X)
    with pytest.raises(ValueError, match="overflows the 32-bit"):
        P(3).fit(sp.csr_matrix((2, 2**31)))
    # converted as scikit-learn converts: ints, lists, strided views
    Y = p.transform(np.ones((10, 4), np.float32).T)
    np.testing.assert_allclose(p.transform(np.ones((4, 10), np.int64)), Y, rtol=1e-6)
    np.testing.assert_allclose(p.transform(np.ones((4, 10)).tolist()), Y, rtol=1e-6)


def test_bad_input_fastrp():
    A = small_graphs()["symmetric"]
    with pytest.raises(TypeError, match="adjacency must be a scipy.sparse"):
        matkern.fastrp(A.toarray())
    with pytest.raises(ValueError, match="must be square"):
        matkern.fastrp(sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="must not be empty"):
        matkern.fastrp(sp.csr_matrix((0, 0)))
    neg = A.copy()
    neg.data[0] = -1
    with pytest.raises(ValueError, match="nonnegative"):
        matkern.fastrp(neg)
    bad = A.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="finite weights"):
        matkern.fastrp(bad)
    with pytest.raises(ValueError, match="dim must be >= 1"):
        matkern.fastrp(A, dim=0)
    with pytest.raises(ValueError, match="iteration_weights must not be empty"):
        matkern.fastrp(A, iteration_weights=())
    with pytest.raises(ValueError, match="iteration_weights must be finite"):
        matkern.fastrp(A, iteration_weights=(1.0, np.inf))
    with pytest.raises(TypeError, match="iteration_weights must be a sequence"):
        matkern.fastrp(A, iteration_weights=3)
    with pytest.raises(TypeError, match="normalization_strength must be a real"):
        matkern.fastrp(A, normalization_strength="x")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        matkern.fastrp(A, dtype=np.float16)
    with pytest.raises(TypeError, match="random_state"):
        matkern.fastrp(A, random_state=True)
    for bad_progress in (1, 0, "yes", 0.5):
        with pytest.raises(TypeError, match="progress must be None, True or False"):
            matkern.fastrp(A, progress=bad_progress)
    with pytest.raises(ValueError, match="backend='cuda' needs CuPy"):
        matkern.fastrp(A, backend="cuda")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rp_sparse_given_matches_rp_sparse(dtype):
    """rp_sparse_given (R's rows made once, as the Dask FastRP shares them) gives rp_sparse's
    bits, with and without row and column scales; a component or feature index out of range
    is a ValueError, never a write outside the output."""
    from matkern import _dispatch, _randproj_ops

    cpu = _dispatch.cpu()
    n, d, k = 300, 5000, 64
    X = sp.random(n, d, density=0.01, format="csr", random_state=4, dtype=dtype)
    ip, ix = X.indptr.astype(np.int64), X.indices.astype(np.int32)
    key, table = ref.rp_seed_key(11), ref.rp_table(1 / np.sqrt(d), k)
    ptr, comps, negs = _randproj_ops.generate("cpu", key, table, k, 0, d, np)
    vals = np.where(negs == 1, np.float32(-1), np.float32(1))
    rng = np.random.default_rng(0)
    rs, cs = rng.random(n).astype(dtype), rng.random(d).astype(dtype)
    for rowscale, colscale in ((None, None), (rs, cs)):
        want, got = np.empty((n, k), dtype), np.empty((n, k), dtype)
        cpu.rp_sparse(ip, ix, X.data, d, rowscale, colscale, key, table, 0.5, want)
        cpu.rp_sparse_given(ip, ix, X.data, rowscale, colscale, ptr, comps, vals, 0.5, got)
        assert np.array_equal(got, want)
    bad = comps.copy()
    bad[len(bad) // 2] = k
    with pytest.raises(ValueError, match="index out of range"):
        cpu.rp_sparse_given(ip, ix, X.data, None, None, ptr, bad, vals, 0.5, got)
    with pytest.raises(ValueError, match="index out of range"):  # X's features beyond R's rows
        cpu.rp_sparse_given(ip, ix, X.data, None, None, ptr[:100], comps, vals, 0.5, got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l2", [True, False])
def test_accumulate_with_base_is_accumulate_into_a_copy(dtype, l2):
    """rp_accumulate(u, w, l2, out, base) writes base + w normalize(u) into out with the same
    bits as accumulating into a copy of base, and leaves base as it was (FastRP's Dask
    tasks); zero rows of u add zeros."""
    from matkern import _dispatch

    rng = np.random.default_rng(3)
    u = rng.standard_normal((257, 33)).astype(dtype)
    u[5] = 0
    base = rng.standard_normal((257, 33)).astype(dtype)
    keep = base.copy()
    want = base.copy()
    cpu = _dispatch.cpu()
    cpu.rp_accumulate(u, 0.7, l2, want)
    out = np.full_like(base, np.nan)
    cpu.rp_accumulate(u, 0.7, l2, out, base)
    assert np.array_equal(out, want)
    assert np.array_equal(base, keep)
    with pytest.raises(ValueError, match="base's shape"):
        cpu.rp_accumulate(u, 0.7, l2, out, base[:-1])
