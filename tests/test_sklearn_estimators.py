"""matkern's estimators as scikit-learn estimators (issue #17 item 1): SparseRandomProjection,
FJLT and TruncatedSVD pass scikit-learn's ``check_estimator`` suite, work in clone /
GridSearchCV / Pipeline, round-trip through pickle and joblib, keep float32, and follow
scikit-learn's semantics where the names match (errors, warnings, signs, sparse output).

check_estimator runs with the parameters scikit-learn's own test suite gives its classes
(``sklearn/utils/_test_common/instance_generator.py``): SparseRandomProjection(n_components=2),
TruncatedSVD(n_components=1); FJLT like a random projection, n_components=2. With no expected
failures; the one skip is ``check_array_api_input`` (without SCIPY_ARRAY_API), which
scikit-learn's SparseRandomProjection and TruncatedSVD skip too.

Tolerances against scikit-learn's TruncatedSVD (``algorithm="arpack"``, converged to rounding)
on the same float64 data whose singular values are well separated (ratio >= 1.3):
- singular values and explained_variance_ratio_: 1e-10 relative; both are LAPACK / ARPACK
  results in float64, which agree to ~1e-14 for a gap this large.
- transform (and components_): 1e-8 relative to the largest entry; the singular vectors of a
  well-separated spectrum are determined to ~eps / gap, and svd_flip fixes their signs
  alike, so any sign disagreement would show as an O(1) error.
After partial_fit / update on data of exact rank <= k the updated factors are those of the
whole matrix up to rounding (tests/test_svd.py), so the same bars hold.

float32: results within 1e-5 relative of the float64 run (float32 rounding of inputs and
outputs; the computation itself is float64).
"""

from __future__ import annotations

import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.decomposition import TruncatedSVD as SkTruncatedSVD
from sklearn.exceptions import DataDimensionalityWarning, NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import matkern


def _estimators():
    return [
        matkern.SparseRandomProjection(n_components=2),
        matkern.FJLT(n_components=2),
        matkern.TruncatedSVD(n_components=1),
    ]


@parametrize_with_checks(_estimators(), expected_failed_checks=lambda est: {})
def test_check_estimator(estimator, check):
    check(estimator)


# ------------------------------------------------------------------ helpers
def spectrum_data(m=80, n=30, k=8, seed=0, rank=None):
    """X (m x n): singular values 10 * 1.5**-i (well separated) plus a constant 3 (so that
    the variances differ from the raw second moments); exact rank ``rank`` when given (the
    constant counted)."""
    rng = np.random.default_rng(seed)
    r = min(m, n) if rank is None else rank - 1
    U, _ = np.linalg.qr(rng.standard_normal((m, r)))
    V, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = 10.0 * 1.5 ** -np.arange(r)
    return (U * s) @ V.T + 3.0


def make(name, **kw):
    seed = {"random_state": 0}
    if name == "srp":
        return matkern.SparseRandomProjection(n_components=6, **seed, **kw)
    if name == "fjlt":
        return matkern.FJLT(n_components=6, **seed, **kw)
    return matkern.TruncatedSVD(n_components=4, **seed, **kw)


NAMES = ["srp", "fjlt", "svd"]


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# ------------------------------------------------------------------ API
@pytest.mark.parametrize("name", NAMES)
def test_clone_pickle_joblib_round_trips(name, tmp_path):
    X = spectrum_data()
    est = make(name).fit(X)
    Y = est.transform(X)
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "n_features_in_")
    np.testing.assert_array_equal(clone(est).fit(X).transform(X), Y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.transform(X), Y)
    joblib.dump(est, tmp_path / "est.joblib")
    for mmap in (None, "r"):
        loaded = joblib.load(tmp_path / "est.joblib", mmap_mode=mmap)
        np.testing.assert_array_equal(loaded.transform(X), Y)


def test_svd_partial_fit_after_unpickling_continues_identically(tmp_path):
    X = spectrum_data(120, 30, rank=4)
    a = matkern.TruncatedSVD(4, method="sparse", random_state=0).fit(X[:60])
    a.partial_fit(X[60:90])
    buf = io.BytesIO()
    joblib.dump(a, buf)
    buf.seek(0)
    b = joblib.load(buf)
    joblib.dump(a, tmp_path / "a.joblib")
    c = joblib.load(tmp_path / "a.joblib", mmap_mode="r")  # read-only buffers
    for t in (a, b, c):
        t.partial_fit(X[90:])
    for t in (b, c):
        np.testing.assert_array_equal(t.singular_values_, a.singular_values_)
        np.testing.assert_array_equal(t.components_, a.components_)
        np.testing.assert_array_equal(t.explained_variance_ratio_, a.explained_variance_ratio_)


@pytest.mark.parametrize("name", NAMES)
def test_pipeline_gridsearch_and_fitted_step(name):
    rng = np.random.default_rng(1)
    X = spectrum_data(90, 32, seed=1)
    y = (X[:, 0] + 0.1 * rng.standard_normal(90) > np.median(X[:, 0])).astype(int)
    pipe = make_pipeline(make(name), RidgeClassifier())
    grid = {f"{pipe.steps[0][0]}__n_components": [2, 3]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    assert search.best_params_[f"{pipe.steps[0][0]}__n_components"] in (2, 3)
    # an already fitted step inside a Pipeline: frozen, or the pipeline used as is
    step = make(name).fit(X)
    clf = RidgeClassifier().fit(step.transform(X), y)
    fitted = Pipeline([("proj", step), ("clf", clf)])
    np.testing.assert_array_equal(fitted.predict(X), clf.predict(step.transform(X)))
    frozen = Pipeline([("proj", FrozenEstimator(step)), ("clf", RidgeClassifier())])
    frozen.fit(X, y)
    np.testing.assert_array_equal(frozen[0].transform(X), step.transform(X))


@pytest.mark.parametrize("name", NAMES)
def test_feature_names_out_set_output_and_keyword_only(name):
    X = spectrum_data()
    est = make(name).fit(X)
    prefix = type(est).__name__.lower()
    assert list(est.get_feature_names_out()) == [
        f"{prefix}{i}" for i in range(est.transform(X).shape[1])
    ]
    assert est.set_output(transform="default") is est
    with pytest.raises(TypeError):
        type(est)(2, "auto")  # keyword-only after n_components
    with pytest.raises(NotFittedError):
        type(est)().transform(X)


def test_set_output_pandas():
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    X = pd.DataFrame(spectrum_data(), columns=[f"f{i}" for i in range(30)])
    for name in NAMES:
        est = make(name).set_output(transform="pandas")
        Y = est.fit_transform(X)
        assert isinstance(Y, pd.DataFrame)
        assert list(est.feature_names_in_) == list(X.columns)


def test_defaults_match_sklearn():
    from sklearn.random_projection import SparseRandomProjection as SkSRP

    assert matkern.TruncatedSVD().n_components == SkTruncatedSVD().n_components == 2
    ours, theirs = matkern.SparseRandomProjection().get_params(), SkSRP().get_params()
    for key, value in theirs.items():
        assert ours[key] == value, key


# ------------------------------------------------------------------ dtypes and layouts
@pytest.mark.parametrize("name", NAMES)
def test_float32_preserved(name):
    X = spectrum_data()
    e64 = make(name).fit(X)
    e32 = make(name).fit(X.astype(np.float32))
    Y32 = e32.transform(X.astype(np.float32))
    assert Y32.dtype == np.float32 and e32.components_.dtype == np.float32
    assert rel(Y32, e64.transform(X)) <= 1e-5
    # promotion as scikit-learn: float64 data through a float32 fit gives float64
    assert e32.transform(X).dtype == np.float64
    if name == "svd":
        for attr in ("singular_values_", "explained_variance_", "explained_variance_ratio_", "U_"):
            assert getattr(e32, attr).dtype == np.float32, attr
            assert rel(getattr(e32, attr), getattr(e64, attr)) <= 1e-5, attr
        assert e32.fit_transform(X.astype(np.float32)).dtype == np.float32
        assert e32.inverse_transform(Y32).dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_f_ordered_integer_and_list_input(name):
    rng = np.random.default_rng(2)
    Xi = rng.integers(-5, 6, size=(40, 24))
    ref = make(name).fit(Xi.astype(np.float64))
    expect = ref.transform(Xi.astype(np.float64))
    for X in (Xi, np.asfortranarray(Xi.astype(np.float64)), Xi.tolist()):
        est = make(name).fit(X)
        Y = est.transform(X)
        assert Y.dtype == np.float64
        np.testing.assert_allclose(Y, expect, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ random projections
def test_srp_auto_and_warning_as_sklearn():
    X = np.ones((100, 50))
    with pytest.raises(ValueError, match="larger than n_features = 50"):
        matkern.SparseRandomProjection().fit(X)
    with pytest.warns(DataDimensionalityWarning, match="n_features < n_components"):
        matkern.SparseRandomProjection(60).fit(X)
    with pytest.warns(DataDimensionalityWarning):
        matkern.FJLT(60).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matkern.SparseRandomProjection(50).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        matkern.SparseRandomProjection(5).fit(np.full((3, 4), np.nan))


@pytest.mark.parametrize("kind", ["csr_matrix", "csr_array", "csc_matrix", "coo_matrix"])
def test_srp_sparse_output_by_default(kind):
    A = getattr(sp, kind)(sp.random(30, 200, density=0.05, random_state=0))
    p = matkern.SparseRandomProjection(16, random_state=0).fit(A)
    Y = p.transform(A)
    assert sp.issparse(Y) and Y.format == "csr" and Y.shape == (30, 16)
    assert isinstance(Y, sp.csr_matrix)  # scikit-learn's default sparse_interface: spmatrix
    dense = matkern.SparseRandomProjection(16, random_state=0, dense_output=True).fit(A)
    D = dense.transform(A)
    assert isinstance(D, np.ndarray)
    np.testing.assert_array_equal(Y.toarray(), D)
    np.testing.assert_allclose(D, (A @ p.components_.T).toarray(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["srp", "fjlt"])
def test_inverse_transform_is_the_pseudo_inverse(name):
    X = spectrum_data(20, 12)
    a = make(name).fit(X)
    b = make(name, compute_inverse_components=True).fit(X)
    M = np.asarray(a.components_.toarray() if sp.issparse(a.components_) else a.components_)
    Y = a.transform(X)
    np.testing.assert_allclose(b.inverse_components_, np.linalg.pinv(M), atol=1e-10)
    np.testing.assert_allclose(a.inverse_transform(Y), Y @ np.linalg.pinv(M).T, atol=1e-10)
    np.testing.assert_allclose(b.inverse_transform(Y), a.inverse_transform(Y), atol=1e-12)
    with pytest.raises(ValueError, match="must have 6 columns"):
        a.inverse_transform(np.ones((2, 5)))


# ------------------------------------------------------------------ TruncatedSVD vs sklearn
def compare_with_sklearn(ours, X, k):
    sk = SkTruncatedSVD(k, algorithm="arpack", tol=0.0, random_state=0).fit(X)
    for attr in ("singular_values_", "explained_variance_ratio_", "explained_variance_"):
        np.testing.assert_allclose(getattr(ours, attr), getattr(sk, attr), rtol=1e-10, err_msg=attr)
    assert rel(ours.components_, sk.components_) <= 1e-8
    assert rel(ours.transform(X), sk.transform(X)) <= 1e-8
    assert (
        rel(ours.inverse_transform(ours.transform(X)), sk.inverse_transform(sk.transform(X)))
        <= 1e-8
    )


@pytest.mark.parametrize("sparse", [False, True])
def test_svd_matches_sklearn_fit(sparse):
    X = spectrum_data(80, 30)
    Xs = sp.csr_matrix(X) if sparse else X
    ours = matkern.TruncatedSVD(5, random_state=0).fit(Xs)
    compare_with_sklearn(ours, Xs, 5)
    assert (
        rel(
            ours.fit_transform(Xs), SkTruncatedSVD(5, algorithm="arpack", tol=0.0).fit_transform(Xs)
        )
        <= 1e-8
    )
    # the convention itself: the largest |entry| of each component is positive
    C = ours.components_
    assert np.all(C[np.arange(5), np.abs(C).argmax(axis=1)] > 0)
    np.testing.assert_allclose(ours.U_ * ours.singular_values_, ours.transform(Xs), atol=1e-10)


@pytest.mark.parametrize("method", ["sparse", "zha-simon", "gkl", "rpi"])
def test_svd_partial_fit_and_update_match_sklearn_on_the_whole(method):
    X = spectrum_data(150, 30, rank=5, seed=3)
    t = matkern.TruncatedSVD(5, method=method, random_state=0).fit(X[:50])
    for i in range(50, 150, 25):
        t.partial_fit(X[i : i + 25] if i % 50 else sp.csr_matrix(X[i : i + 25]))
    assert t.n_updates_ == 4 and t.n_samples_ == 150
    compare_with_sklearn(t, X, 5)
    # A + D E^T: rank 3 data, a rank-2 change, 5 components
    rng = np.random.default_rng(40)
    A = spectrum_data(60, 25, rank=3, seed=4)
    D, E = rng.standard_normal((60, 2)), rng.standard_normal((25, 2))
    u = matkern.TruncatedSVD(5, method=method, random_state=0).fit(A).update(D, E)
    compare_with_sklearn(u, A + D @ E.T, 5)


def test_svd_add_columns_keeps_variances_and_feature_count():
    X = spectrum_data(60, 40, rank=4, seed=5)
    t = matkern.TruncatedSVD(4, random_state=0).fit(X[:, :25]).add_columns(X[:, 25:])
    assert t.n_features_in_ == 40
    compare_with_sklearn(t, X, 4)
    with pytest.raises(ValueError, match="X has 25 features, but TruncatedSVD is expecting 40"):
        t.transform(X[:, :25])


def test_svd_copy_is_independent():
    X = spectrum_data(100, 20, rank=4)
    a = matkern.TruncatedSVD(4, method="rpi", random_state=0).fit(X[:50])
    b = a.copy()
    a.partial_fit(X[50:])
    assert b.n_samples_ == 50 and a.n_samples_ == 100
    b.partial_fit(X[50:])
    np.testing.assert_array_equal(a.singular_values_, b.singular_values_)


def test_assume_finite_skips_the_nan_check():
    """NaN/Inf are refused as scikit-learn refuses them; under its assume_finite setting the
    check (a pass over X) is skipped and NaN propagates to the outputs whose projection rows
    touch it, as before the estimators validated like scikit-learn."""
    from sklearn import config_context

    X = np.ones((2, 100))
    X[0, 7] = np.nan
    p = matkern.SparseRandomProjection(50, density=0.2, random_state=0).fit(np.ones((2, 100)))
    with pytest.raises(ValueError, match="NaN"):
        p.transform(X)
    with config_context(assume_finite=True):
        Y = p.transform(X)
    touched = p.components_.toarray()[:, 7] != 0
    assert touched.any() and not touched.all()
    assert np.all(np.isnan(Y[0, touched])) and np.all(np.isfinite(Y[0, ~touched]))
    assert np.all(np.isfinite(Y[1]))
