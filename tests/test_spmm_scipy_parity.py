"""SparseMatrix against scipy.sparse.csr_array, operation by operation (issue #17, item 2).

Each supported operation (``S @ B`` with 2-D and 1-D B, ``S.dot``, ``B @ S``, ``S.T``,
``toarray``, ``tocsr``) runs on the CPU and reference backends for every float32/float64
combination of A and B, and must give scipy's shape and dtype (scipy's promotion: float64
with float32 gives float64) and scipy's values within:

- float32 result: ``|y - exact| <= 1e-5 * (|A| @ |B|)``, exact being the float64 product. A
  float32 sum of L products is off by at most about ``L * 2**-24`` of ``|A||B|``; the
  matrices here have at most ~15 entries a row, so 1e-5 leaves a 10x margin without hiding
  a wrong entry (an error of one whole term is >= 1/L of the bound's scale).
- float64 result: the same with 1e-12 (``L * 2**-53`` is about 2e-15; the kernels and scipy
  sum in different orders, so bit equality is not expected).

Also: pickle and joblib round trips, ``np.asarray(S)`` and the elementwise operators refused
with TypeError naming the alternative.
"""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

import matkern

BACKENDS = ["cpu", "reference"]
DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def matrix(dtype, m=60, n=45, seed=0):
    """A random CSR with duplicates and unsorted indices, as a scipy csr_array."""
    rng = np.random.default_rng(seed)
    nnz = 400
    rows = rng.integers(0, m, nnz)
    cols = rng.integers(0, n, nnz)
    vals = rng.standard_normal(nnz)
    coo = sp.coo_array((vals, (rows, cols)), shape=(m, n))
    A = coo.tocsr()
    A.data = A.data.astype(dtype)
    return A


def dense(shape, dtype, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_close(y, A, B, transpose_b=False):
    """y against the float64 scipy product A @ B (or B @ A) under the module's bound."""
    A64 = A.astype(np.float64)
    B64 = B.astype(np.float64)
    if transpose_b:
        exact, mag = B64 @ A64, np.abs(B64) @ abs(A64)
    else:
        exact, mag = A64 @ B64, abs(A64) @ np.abs(B64)
    tol = RTOL[np.dtype(y.dtype)] * mag + 1e-300
    assert np.all(np.abs(y.astype(np.float64) - exact) <= tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize("b_dtype", DTYPES)
@pytest.mark.parametrize("b_shape", [(45, 7), (45,)], ids=["2d", "1d"])
def test_matmul_parity(backend, a_dtype, b_dtype, b_shape):
    A = matrix(a_dtype)
    B = dense(b_shape, b_dtype)
    S = matkern.SparseMatrix(A)
    want = A @ B
    for y in (
        matkern.spmm(S, B, backend=backend),
        S @ B if backend == "cpu" else matkern.spmm(A, B, backend=backend),
        S.dot(B) if backend == "cpu" else matkern.spmm(S, B, backend=backend),
    ):
        assert isinstance(y, np.ndarray)
        assert y.shape == want.shape and y.dtype == want.dtype, (y.shape, y.dtype, want.dtype)
        assert_close(y, A, B)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize("b_dtype", DTYPES)
def test_out_has_promoted_dtype(backend, a_dtype, b_dtype):
    A = matrix(a_dtype)
    B = dense((45, 3), b_dtype)
    dtype = (A @ B).dtype
    out = np.empty((60, 3), dtype)
    assert matkern.spmm(A, B, out=out, backend=backend) is out
    assert_close(out, A, B)
    other = np.float32 if dtype == np.float64 else np.float64
    with pytest.raises(TypeError, match=f"out must have dtype {np.dtype(dtype).name}"):
        matkern.spmm(A, B, out=np.empty((60, 3), other), backend=backend)
    out1 = np.empty(60, dtype)
    assert matkern.spmm(A, B[:, 0], out=out1, backend=backend) is out1
    assert_close(out1, A, B[:, 0])
    with pytest.raises(ValueError, match=r"out must have shape \(60,\)"):
        matkern.spmm(A, B[:, 0], out=np.empty((60, 1), dtype), backend=backend)


@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize("b_dtype", DTYPES)
@pytest.mark.parametrize("b_shape", [(5, 60), (60,)], ids=["2d", "1d"])
def test_rmatmul_parity(a_dtype, b_dtype, b_shape):
    A = matrix(a_dtype)
    B = dense(b_shape, b_dtype)
    S = matkern.SparseMatrix(A)
    want = B @ A
    y = B @ S
    assert isinstance(y, np.ndarray)
    assert y.shape == want.shape and y.dtype == want.dtype
    assert_close(y, A, B, transpose_b=True)
    np.testing.assert_array_equal(y, (S.T @ B.T).T)
    with pytest.raises(ValueError, match="B must have 60 columns"):
        dense((5, 59), b_dtype) @ S


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_toarray_tocsr(dtype):
    A = matrix(dtype)
    S = matkern.SparseMatrix(A)
    T = S.T
    assert isinstance(T, matkern.SparseMatrix)
    assert T.shape == (45, 60) and T.dtype == dtype and T.nnz == A.nnz
    assert S.T is T and T.T is S  # built once
    np.testing.assert_array_equal(T.toarray(), A.T.toarray())
    B = dense((60, 4), dtype)
    assert_close(T @ B, A.T.tocsr(), B)
    d = S.toarray()
    assert d.dtype == dtype and d.shape == A.shape
    np.testing.assert_array_equal(d, A.toarray())
    c = S.tocsr()
    assert isinstance(c, sp.csr_array) and c.dtype == dtype and c.shape == A.shape
    np.testing.assert_array_equal(c.toarray(), A.toarray())
    c.data[:] = 0  # a copy: S unchanged
    np.testing.assert_array_equal(S.toarray(), A.toarray())
    assert S.shape == A.shape and S.nnz == A.nnz and S.dtype == A.dtype


def test_transpose_with_duplicates_and_empty():
    # duplicates and unsorted indices as given (summed, as scipy does), empty rows/columns
    A = (np.array([1.0, 2.0, 4.0]), np.array([2, 0, 2]), np.array([0, 3, 3]), (2, 4))
    S = matkern.SparseMatrix(A)
    expect = np.array([[2.0, 0, 5.0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(S.toarray(), expect)
    np.testing.assert_array_equal(S.T.toarray(), expect.T)
    np.testing.assert_array_equal(S.T @ np.ones(2), expect.T @ np.ones(2))
    Z = matkern.SparseMatrix(sp.csr_array((0, 3)))
    assert Z.T.shape == (3, 0) and Z.T.toarray().shape == (3, 0)


def _roundtrip_checks(S, S2, B):
    assert S2.shape == S.shape and S2.dtype == S.dtype and S2.nnz == S.nnz
    np.testing.assert_array_equal(S2.toarray(), S.toarray())
    np.testing.assert_array_equal(S2 @ B, S @ B)
    np.testing.assert_array_equal(S2.T.toarray(), S.T.toarray())
    assert not S2.data.flags.writeable  # read-only, as the constructor leaves them


@pytest.mark.parametrize("dtype", DTYPES)
def test_pickle_roundtrip(dtype):
    S = matkern.SparseMatrix(matrix(dtype))
    B = dense((45, 3), dtype)
    S @ B  # caches filled
    S.T  # noqa: B018  (the transpose built: dropped from the state)
    blob = pickle.dumps(S)
    S2 = pickle.loads(blob)
    assert S2.prepare_time_ == {} and S2.kernel_ is None
    _roundtrip_checks(S, S2, B)
    assert len(blob) < 3 * (S.data.nbytes + S.indices.nbytes + S.indptr.nbytes) + 2000


def test_joblib_roundtrip(tmp_path):
    joblib = pytest.importorskip("joblib", reason="joblib not installed")
    S = matkern.SparseMatrix(matrix(np.float64))
    S @ dense((45, 2), np.float64)
    path = tmp_path / "S.joblib"
    joblib.dump(S, path)
    _roundtrip_checks(S, joblib.load(path), dense((45, 2), np.float64))


def test_array_refused():
    S = matkern.SparseMatrix(matrix(np.float64))
    with pytest.raises(TypeError, match=r"use S\.toarray\(\)"):
        np.asarray(S)
    with pytest.raises(TypeError, match=r"S\.toarray\(\)"):
        np.array(S)
    with pytest.raises(TypeError):
        np.add(np.ones((60, 45)), S)


@pytest.mark.parametrize(
    "op",
    [
        lambda S, X: S + X,
        lambda S, X: X + S,
        lambda S, X: S - X,
        lambda S, X: X - S,
        lambda S, X: S * X,
        lambda S, X: X * S,
        lambda S, X: S * 2.0,
        lambda S, X: 2.0 * S,
        lambda S, X: S / 2.0,
        lambda S, X: S**2,
        lambda S, X: -S,
        lambda S, X: S @ S,
    ],
)
def test_unsupported_operations_name_the_alternative(op):
    S = matkern.SparseMatrix(matrix(np.float64))
    X = np.ones((60, 45))
    with pytest.raises(TypeError, match=r"does not support .*tocsr\(\)"):
        op(S, X)
