"""fwht and FJLT: every backend against the reference, properties, and bad input.

Tolerance for fwht: each output is a sum of n terms +-x_j added in a tree of depth log2(n),
so its rounding error is at most log2(n) * u * sum_j |x_j| (u the unit roundoff of the dtype);
the tests allow twice that against a float64 evaluation of the same transform.
"""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import matkern
from conftest import run_in_threads, simd_runs, to_backend, to_numpy

# The property tests draw n_components above n_features on purpose (still a valid projection);
# scikit-learn, and so matkern, warns about it (DataDimensionalityWarning).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataDimensionalityWarning")

FLOATS = [np.float32, np.float64]


def fwht_bound(x, axis):
    n = x.shape[axis]
    u = np.finfo(x.dtype).eps / 2
    s = np.abs(x.astype(np.float64)).sum(axis=axis, keepdims=True)
    return 2 * max(1, np.log2(n)) * u * s + np.finfo(np.float64).tiny


def check_fwht(x, axis, normalize, backend):
    y = to_numpy(
        matkern.fwht(to_backend(x, backend), axis=axis, normalize=normalize, backend=backend)
    )
    assert y.dtype == x.dtype and y.shape == x.shape
    expect = matkern.reference.fwht(x.astype(np.float64), axis=axis, normalize=normalize)
    bound = fwht_bound(x, axis)
    if normalize:
        bound = bound / np.sqrt(x.shape[axis]) * 2
    assert np.all(np.abs(y - expect) <= bound)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "shape,axis",
    [
        ((1,), -1),
        ((2,), 0),
        ((5, 8), -1),
        ((3, 1024), 1),
        ((2, 3, 64), -1),
        ((16, 3, 5), 0),
        ((4, 256, 7), 1),
        ((2, 1 << 14), -1),
        ((1, 1 << 17), -1),
        ((3, 1 << 16), -1),
        ((8, 4), -2),
    ],
)
@pytest.mark.parametrize("normalize", [False, True])
def test_fwht_matches_reference(backend, dtype, shape, axis, normalize):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    check_fwht(x, axis, normalize, backend)


@settings(max_examples=40, deadline=None)
@given(
    log_n=st.integers(0, 13),
    batch=st.lists(st.integers(1, 5), max_size=2),
    dtype=st.sampled_from(FLOATS),
    normalize=st.booleans(),
    data=st.data(),
)
def test_fwht_property_any_batch_shape(log_n, batch, dtype, normalize, data):
    shape = list(batch)
    axis = data.draw(st.integers(0, len(shape)))
    shape.insert(axis, 1 << log_n)
    x = np.random.default_rng(log_n).uniform(-1, 1, shape).astype(dtype)
    for backend in ("cpu", "reference"):
        check_fwht(x, axis, normalize, backend)


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32, 64, 128])
def test_fwht_equals_scipy_hadamard(backend, n):
    x = np.random.default_rng(n).standard_normal((3, n))
    y = to_numpy(matkern.fwht(to_backend(x, backend), backend=backend))
    np.testing.assert_allclose(y, x @ scipy.linalg.hadamard(n).T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_fwht_twice_is_n_times_identity(backend, dtype):
    n = 2048
    x = np.random.default_rng(0).standard_normal((4, n)).astype(dtype)
    xb = to_backend(x, backend)
    y = to_numpy(matkern.fwht(matkern.fwht(xb, backend=backend), backend=backend))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y / n, x, rtol=tol, atol=tol)
    z = to_numpy(
        matkern.fwht(
            matkern.fwht(xb, normalize=True, backend=backend), normalize=True, backend=backend
        )
    )
    np.testing.assert_allclose(z, x, rtol=tol, atol=tol)


def test_fwht_out_and_in_place(backend):
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    xb = to_backend(x.copy(), backend)
    out = to_backend(np.empty_like(x), backend)
    r = matkern.fwht(xb, out=out, backend=backend)
    assert r is out
    r2 = matkern.fwht(xb, out=xb, backend=backend)  # in place
    assert r2 is xb
    np.testing.assert_allclose(to_numpy(xb), to_numpy(out), rtol=1e-6)


def test_fwht_accepts_strided_input_without_changing_it(backend):
    base = np.random.default_rng(2).standard_normal((8, 128))
    x = to_backend(base, backend)[:, ::2]
    y = matkern.fwht(x, backend=backend)
    np.testing.assert_allclose(to_numpy(y), matkern.reference.fwht(base[:, ::2]), rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(x), base[:, ::2])


def test_fwht_nan_propagates(backend):
    x = np.zeros((2, 16))
    x[0, 3] = np.nan
    y = to_numpy(matkern.fwht(to_backend(x, backend), backend=backend))
    assert np.isnan(y[0]).all() and not np.isnan(y[1]).any()


def test_fwht_bad_input():
    with pytest.raises(
        ValueError, match=r"fwht\(\): x must have a length m \* 2\^k along axis -1 .* got 1002"
    ):
        matkern.fwht(np.zeros((2, 1002)))
    with pytest.raises(
        TypeError, match=r"fwht\(\): x must have dtype float32 or float64, got int64"
    ):
        matkern.fwht(np.zeros(8, np.int64))
    with pytest.raises(TypeError, match="must be a NumPy or CuPy array"):
        matkern.fwht([1.0, 2.0])
    with pytest.raises(ValueError, match="must not be empty"):
        matkern.fwht(np.zeros((0, 8)))
    with pytest.raises(ValueError, match="out of range"):
        matkern.fwht(np.zeros((2, 8)), axis=2)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 8\)"):
        matkern.fwht(np.zeros((2, 8)), out=np.zeros((2, 4)))
    with pytest.raises(TypeError, match="out must have dtype float64"):
        matkern.fwht(np.zeros((2, 8)), out=np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        matkern.fwht(np.zeros((2, 8)), out=np.zeros((2, 16))[:, ::2])
    with pytest.raises(ValueError, match="backend must be one of"):
        matkern.fwht(np.zeros(8), backend="gpu")


def test_fwht_from_many_threads_at_once():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((64, 4096)).astype(np.float32) for _ in range(8)]
    expect = [matkern.reference.fwht(x) for x in xs]
    results = run_in_threads([lambda x=x: matkern.fwht(x) for x in xs], repeats=5)
    for r, e in zip(results, expect):
        np.testing.assert_allclose(r, e, rtol=1e-4, atol=1e-3)


def test_simd_and_portable_paths_agree():
    code = (
        "import sys, numpy as np, matkern; "
        "x=np.random.default_rng(5).standard_normal((3, 1<<15)).astype(np.float32); "
        "y=matkern.fwht(x, normalize=True); "
        "X=np.random.default_rng(6).standard_normal((21, 1000)).astype(np.float32); "
        "Y=matkern.fjlt(X, 40, random_state=1); "
        "print(matkern.backends()['simd']); np.save(sys.argv[1], np.concatenate([y.ravel(), Y.ravel()]))"
    )
    portable, default = simd_runs(code)
    np.testing.assert_allclose(portable, default, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------- FJLT


@pytest.mark.parametrize("dtype", FLOATS)
def test_fjlt_matches_reference_and_components(backend, dtype):
    X = np.random.default_rng(0).standard_normal((50, 300)).astype(dtype)
    t = matkern.FJLT(32, random_state=7, backend=backend).fit(X)
    Y = to_numpy(t.transform(to_backend(X, backend)))
    assert Y.shape == (50, 32) and Y.dtype == dtype
    expect = X.astype(np.float64) @ t.components_.T
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(Y, expect, rtol=tol, atol=tol * np.abs(expect).max())


def test_fjlt_same_seed_same_transform_on_every_backend(compiled_backend):
    X = np.random.default_rng(1).standard_normal((20, 200))
    a = matkern.fjlt(X, 16, random_state=3, backend="reference")
    b = to_numpy(
        matkern.fjlt(to_backend(X, compiled_backend), 16, random_state=3, backend=compiled_backend)
    )
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    c = matkern.fjlt(X, 16, random_state=4)
    assert not np.allclose(a, c)


def test_fjlt_preserves_distances():
    """1000 points in d = 4096 mapped to k = 256: 99% of the pairwise distance ratios lie in
    1 +- 0.3 (measured here: the 0.5% and 99.5% quantiles are about 0.90 and 1.09)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 4096)).astype(np.float32)
    X[:, :16] *= 20  # uneven coordinates: what H·D is for
    Y = matkern.fjlt(X, 256, random_state=0)
    i, j = np.triu_indices(1000, 1)
    sel = rng.choice(i.size, 20000, replace=False)
    d0 = np.linalg.norm(X[i[sel]] - X[j[sel]], axis=1)
    d1 = np.linalg.norm(Y[i[sel]] - Y[j[sel]], axis=1)
    ratio = d1 / d0
    lo, hi = np.quantile(ratio, [0.005, 0.995])
    inside = np.mean(np.abs(ratio - 1) <= 0.3)
    print(f"FJLT distance ratios: 0.5%={lo:.3f} 99.5%={hi:.3f} inside 1+-0.3: {inside:.4f}")
    assert inside >= 0.99


def test_fjlt_auto_components_and_density():
    X = np.ones((100, 500))
    t = matkern.FJLT(eps=0.5, random_state=0).fit(X)
    assert t.n_components_ == matkern.johnson_lindenstrauss_min_dim(100, eps=0.5)
    assert t.padded_features_ == 512
    assert 0 < t.density_ <= 1
    np.testing.assert_allclose(t.density_, min(1.0, np.log(100) ** 2 / 512))


def test_fjlt_bad_input():
    X = np.ones((10, 64), np.float32)
    with pytest.raises(NotFittedError):
        matkern.FJLT(8).transform(X)
    t = matkern.FJLT(8, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 65 features, but FJLT is expecting 64"):
        t.transform(np.ones((3, 65), np.float32))
    with pytest.raises(TypeError, match="dense data is required"):
        t.transform(scipy.sparse.csr_matrix(np.ones((3, 64), np.float32)))
    with pytest.raises(ValueError, match="NaN"):
        t.transform(np.full((3, 64), np.nan, np.float32))
    # converted as scikit-learn converts: ints (to float64) and strided views
    np.testing.assert_allclose(
        t.transform(np.ones((3, 64), np.int32)), t.transform(np.ones((3, 64))), rtol=1e-6
    )
    Y = t.transform(np.ones((64, 3), np.float32).T)
    np.testing.assert_array_equal(Y, t.transform(np.ones((3, 64), np.float32)))
    with pytest.raises(ValueError, match="n_components must be >= 1"):
        matkern.FJLT(0).fit(X)
    with pytest.raises(ValueError, match="density must be > 0"):
        matkern.FJLT(4, density=0.0).fit(X)
    with pytest.raises(ValueError, match="Expected 2D array"):
        matkern.FJLT(4).fit(np.ones(8))


@pytest.mark.parametrize("log_n", [16, 17, 18, 19, 20])
@pytest.mark.parametrize("normalize", [False, True])
def test_fwht_long_rows_same_bits_on_any_thread_count(log_n, normalize):
    """One long row on 2+ threads takes the two-pass path (blocks, then the radix-4 strided
    pass between them); on one thread the row kernel: the same additions in the same order,
    so the same bits, for n / 8192 an even and an odd power of two. The strided case (axis 0)
    too."""
    x = np.random.default_rng(log_n).standard_normal((1, 1 << log_n)).astype(np.float32)
    with matkern.threads(1):
        one = matkern.fwht(x, normalize=normalize)
    for n in (2, 4):
        with matkern.threads(n):
            np.testing.assert_array_equal(matkern.fwht(x, normalize=normalize), one)
    y = np.ascontiguousarray(x.reshape(-1, 64)[: 1 << (log_n - 8)])  # (2^(log_n-8), 64)
    with matkern.threads(1):
        one = matkern.fwht(y, axis=0, normalize=normalize)
    with matkern.threads(2):
        np.testing.assert_array_equal(matkern.fwht(y, axis=0, normalize=normalize), one)
    check_fwht(y, 0, normalize, "cpu")


def test_strided_pass_same_bits_on_portable_and_simd_paths():
    """The strided pass (fwht along an outer axis; the long-row path's second pass) is the
    same loop compiled for the baseline and for AVX2: additions and subtractions only, so the
    same bits on both paths, float32 and float64."""
    code = (
        "import sys, numpy as np, matkern; "
        "a=np.random.default_rng(7).standard_normal((1<<11, 300)).astype(np.float32); "
        "b=np.random.default_rng(8).standard_normal((1<<9, 3, 70)); "
        "ya=matkern.fwht(a, axis=0); yb=matkern.fwht(b, axis=0, normalize=True); "
        "print(matkern.backends()['simd']); "
        "np.save(sys.argv[1], np.concatenate([ya.ravel().astype(np.float64), yb.ravel()]))"
    )
    portable, default = simd_runs(code)
    np.testing.assert_array_equal(portable, default)
