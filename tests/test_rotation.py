"""HadamardRotation and hadamard_standardize (issue #20 items 2 and 4).

Tolerances: the rotation is a normalized transform whose outputs are dot products of at most
m + log2(p) rounding steps (see tests/test_hadamard_orders.py); against a float64 dense
product, float64 results agree to 1e-12 relative and float32 to 1e-5 relative (both well
above (m + log2 p) * u for the sizes here, m <= 344).
"""

import pickle

import numpy as np
import pytest

import matkern
from conftest import to_backend, to_numpy

SIZES = [16, 12, 384, 1536, 11008]


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)


@pytest.mark.parametrize("n", SIZES[:-1])
def test_matrix_is_orthogonal(n):
    Q = matkern.HadamardRotation(n, random_state=1).matrix()
    np.testing.assert_allclose(Q @ Q.T, np.eye(n), atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("n", SIZES)
def test_apply_and_transpose_match_the_matrix(backend, n, dtype, tol):
    rot = matkern.HadamardRotation(n, random_state=3)
    X = np.random.default_rng(n).standard_normal((5, n)).astype(dtype)
    Y = to_numpy(rot.apply(to_backend(X, backend), backend=backend))
    assert Y.dtype == dtype and Y.shape == X.shape
    if n <= 2000:
        Q = rot.matrix()
        assert rel(Y, X.astype(np.float64) @ Q) < tol
        Z = to_numpy(rot.apply_transpose(to_backend(X, backend), backend=backend))
        assert rel(Z, X.astype(np.float64) @ Q.T) < tol
    back = to_numpy(rot.apply_transpose(to_backend(Y, backend), backend=backend))
    assert rel(back, X.astype(np.float64)) < 2 * tol
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), np.linalg.norm(X, axis=1), rtol=tol)


def test_matmul_is_unchanged_by_rotating_both_sides():
    rot = matkern.HadamardRotation(1536, random_state=0)
    rng = np.random.default_rng(0)
    X, W = rng.standard_normal((16, 1536)), rng.standard_normal((64, 1536))
    np.testing.assert_allclose(rot.apply(X) @ rot.apply(W).T, X @ W.T, atol=1e-10)


def test_rotation_spreads_an_outlier():
    x = np.zeros((1, 384))
    x[0, 7] = 100.0
    y = matkern.HadamardRotation(384, random_state=0).apply(x)
    np.testing.assert_allclose(np.abs(y), 100.0 / np.sqrt(384))


def test_signs_are_seeded_and_backend_independent():
    a = matkern.HadamardRotation(384, random_state=5)
    b = matkern.HadamardRotation(384, random_state=5)
    c = matkern.HadamardRotation(384, random_state=6)
    assert np.array_equal(a.signs_, b.signs_) and not np.array_equal(a.signs_, c.signs_)
    assert set(np.unique(a.signs_)) == {-1.0, 1.0}
    assert 150 < (a.signs_ > 0).sum() < 234  # a fair coin, 384 flips, > 4 sigma either way
    X = np.random.default_rng(0).standard_normal((3, 384))
    np.testing.assert_allclose(a.apply(X, backend="reference"), a.apply(X), atol=1e-12)
    r = matkern.HadamardRotation(384, random_state=np.random.default_rng(1))
    assert isinstance(r.seed, int)


def test_pickle_round_trip():
    rot = matkern.HadamardRotation(1536, random_state=9)
    back = pickle.loads(pickle.dumps(rot))
    assert back == rot and np.array_equal(back.signs_, rot.signs_)
    X = np.random.default_rng(0).standard_normal((2, 1536))
    assert np.array_equal(back.apply(X), rot.apply(X))
    assert "seed=9" in repr(rot)


def test_unrandomized_is_the_normalized_transform():
    rot = matkern.HadamardRotation(24, randomized=False)
    X = np.random.default_rng(0).standard_normal((3, 24))
    np.testing.assert_allclose(rot.apply(X), matkern.fwht(X, normalize=True), atol=1e-14)


def test_bad_input():
    with pytest.raises(ValueError, match=r"HadamardRotation\(\): n must .* got 156"):
        matkern.HadamardRotation(156)
    with pytest.raises(TypeError, match="n must be an integer"):
        matkern.HadamardRotation(3.5)
    rot = matkern.HadamardRotation(16, random_state=0)
    with pytest.raises(ValueError, match=r"apply\(\): X must have 16 columns"):
        rot.apply(np.zeros((2, 8)))
    with pytest.raises(TypeError, match="dtype float32 or float64"):
        rot.apply(np.zeros((2, 16), np.int32))
    with pytest.raises(ValueError, match="X must be finite"):
        matkern.hadamard_standardize(np.full((4, 12), np.nan))


@pytest.mark.parametrize("n", [12, 64, 384])
def test_hadamard_standardize(n):
    rng = np.random.default_rng(n)
    X = rng.standard_normal((2000, n)) @ rng.standard_normal((n, n)) * np.linspace(0.1, 10, n)
    X += 5.0
    Z, inverse = matkern.hadamard_standardize(X)
    v = Z.var(axis=0, ddof=1)
    np.testing.assert_allclose(v, 1.0, rtol=1e-8)  # equal variances, exactly up to rounding
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-8)
    np.testing.assert_allclose(inverse(Z), X, rtol=1e-9, atol=1e-9 * np.abs(X).max())
    Zr, inv_r = matkern.hadamard_standardize(X, random_state=1)
    np.testing.assert_allclose(Zr.var(axis=0, ddof=1), 1.0, rtol=1e-8)
    np.testing.assert_allclose(inv_r(Zr), X, rtol=1e-9, atol=1e-9 * np.abs(X).max())


def test_hadamard_standardize_on_real_activations():
    from datasets import minilm_layers

    _, X, _ = minilm_layers()[2]  # layer 0 ffn_in: 512 real activations of width 384
    X = X.astype(np.float64)
    Z, inverse = matkern.hadamard_standardize(X)
    v = Z.var(axis=0, ddof=1)
    assert np.ptp(v) < 1e-6  # per-dimension variances equalized
    np.testing.assert_allclose(inverse(Z), X, atol=1e-8 * np.abs(X).max())


def test_torch_tensors_round_trip():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    rot = matkern.HadamardRotation(384, random_state=2)
    X = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)
    Y = rot.apply(torch.from_numpy(X))
    assert isinstance(Y, torch.Tensor) and np.array_equal(Y.numpy(), rot.apply(X))
    back = rot.apply_transpose(Y)
    assert isinstance(back, torch.Tensor)
    Z, inverse = matkern.hadamard_standardize(torch.from_numpy(X.astype(np.float64)))
    assert isinstance(Z, torch.Tensor) and isinstance(inverse(Z), torch.Tensor)
