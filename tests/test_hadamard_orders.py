"""Hadamard transforms of lengths m * 2^k (issue #20 item 1): the Paley base matrices, fwht on
every backend against the dense definition, and the lengths that are refused.

Tolerance: an output of the m * 2^k transform is a dot product of m terms +-x (the H_m stage,
a BLAS/cuBLAS product in any summation order: error at most m * u * sum |x|) followed by
log2(p) butterfly stages (at most log2(p) * u * sum |x| more), u the unit roundoff of the
dtype; the tests allow twice (m + log2 p) * u * sum_j |x_j| against a float64 evaluation of
the dense matrix product.
"""

import numpy as np
import pytest

import matkern
from conftest import simd_runs, to_backend, to_numpy
from matkern import _hadamard_orders

LISTED = [12, 20, 28, 36, 40, 52, 60, 108, 140]  # issue #20's base orders with a Paley build
WIDTHS = [384, 1536, 2560, 3072, 5120, 11008, 13824, 14336]  # model widths named in #20


@pytest.mark.parametrize("n", LISTED + [312, 344])
def test_base_matrices_are_hadamard(n):
    m = _hadamard_orders.split_order(n)[0]
    H = _hadamard_orders.base_matrix(m, np.int64)
    assert H.shape == (m, m) and set(np.unique(H)) == {-1, 1}
    assert np.array_equal(H @ H.T, m * np.eye(m, dtype=np.int64))


@pytest.mark.parametrize("n", LISTED + WIDTHS + [24, 48, 96, 1000, 9984])
def test_split_order(n):
    m, p = _hadamard_orders.split_order(n)
    assert m * p == n and p & (p - 1) == 0 and m in (1,) + tuple(range(4, 4097, 4))


@pytest.mark.parametrize("n", [3, 5, 6, 10, 14, 18, 156, 172, 1002])
def test_lengths_without_a_construction_are_refused(n):
    assert _hadamard_orders.split_order(n) is None
    with pytest.raises(ValueError, match=f"got {n}"):
        matkern.fwht(np.zeros((2, n)))
    with pytest.raises(ValueError, match=f"order {n}"):
        matkern.hadamard_matrix(n)


def test_widths_of_real_models_are_served():
    assert _hadamard_orders.split_order(11008) == (344, 32)  # 172 * 64 via 343 = 7^3
    assert _hadamard_orders.split_order(384) == (12, 32)
    assert _hadamard_orders.split_order(13824) == (108, 128)


@pytest.mark.parametrize("n", [12, 24, 40, 52, 96, 140, 384])
def test_hadamard_matrix_is_orthogonal_and_matches_fwht(n):
    H = matkern.hadamard_matrix(n)
    assert np.array_equal(H @ H.T, n * np.eye(n))
    assert np.array_equal(matkern.fwht(np.eye(n)), H.T)  # row i of fwht(I) is column i of H


def bound(x, n):
    m, p = _hadamard_orders.split_order(n)
    u = np.finfo(x.dtype).eps / 2
    s = np.abs(x.astype(np.float64)).sum(axis=-1, keepdims=True)
    return 2 * (m + np.log2(p)) * u * s + np.finfo(np.float64).tiny


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [12, 20, 28, 36, 48, 60, 108, 384, 1536])
@pytest.mark.parametrize("normalize", [False, True])
def test_fwht_against_the_dense_matrix(backend, dtype, n, normalize):
    x = np.random.default_rng(n).standard_normal((5, n)).astype(dtype)
    H = matkern.hadamard_matrix(n)
    scale = 1 / np.sqrt(n) if normalize else 1.0
    expect = x.astype(np.float64) @ H.T * scale
    y = to_numpy(matkern.fwht(to_backend(x, backend), normalize=normalize, backend=backend))
    assert y.dtype == dtype and y.shape == x.shape
    assert np.all(np.abs(y - expect) <= bound(x, n) * scale * (2 if normalize else 1))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_fwht_on_any_axis_and_strides(backend, axis):
    x = np.random.default_rng(1).standard_normal((24, 24, 24))
    view = to_backend(x, backend)[:, ::1, :]
    y = to_numpy(matkern.fwht(view, axis=axis, backend=backend))
    H = matkern.hadamard_matrix(24)
    expect = np.moveaxis(np.moveaxis(x, axis, -1) @ H.T, -1, axis)
    np.testing.assert_allclose(y, expect, rtol=0, atol=1e-12 * np.abs(x).sum())
    xt = to_backend(np.ascontiguousarray(x.transpose(2, 0, 1)), backend).transpose(1, 2, 0)
    y2 = to_numpy(matkern.fwht(xt, axis=axis, backend=backend))
    np.testing.assert_allclose(y2, expect, rtol=0, atol=1e-12 * np.abs(x).sum())


def test_fwht_in_place_and_out(backend):
    x = np.random.default_rng(2).standard_normal((4, 96))
    expect = x @ matkern.hadamard_matrix(96).T
    xb = to_backend(x.copy(), backend)
    y = matkern.fwht(xb, out=xb, backend=backend)
    assert y is xb
    np.testing.assert_allclose(to_numpy(y), expect, atol=1e-12 * np.abs(x).sum())
    out = to_backend(np.empty_like(x), backend)
    assert matkern.fwht(to_backend(x, backend), out=out, backend=backend) is out
    np.testing.assert_allclose(to_numpy(out), expect, atol=1e-12 * np.abs(x).sum())


def test_normalized_transform_is_orthogonal(backend):
    x = np.random.default_rng(3).standard_normal((3, 1536))
    y = to_numpy(matkern.fwht(to_backend(x, backend), normalize=True, backend=backend))
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-13)


def test_portable_and_simd_kernels_agree():
    """The one-pass CPU kernel (m <= 64) on the portable path and on the CPU's SIMD path: the
    same bound (FMA or not changes the rounding, not the error bound)."""
    code = (
        "import sys, numpy as np, matkern\n"
        "x = np.random.default_rng(0).standard_normal((9, 1536)).astype(np.float32)\n"
        "np.save(sys.argv[1], np.stack([matkern.fwht(x), matkern.fwht(x[:, :640])[:, :1] "
        "* np.ones((1, 1536), np.float32)]))\n"
        "print(matkern.backends()['simd'])"
    )
    portable, simd = simd_runs(code)
    x = np.random.default_rng(0).standard_normal((9, 1536)).astype(np.float32)
    for y in (portable, simd):
        assert np.all(np.abs(y[0] - x.astype(np.float64) @ matkern.hadamard_matrix(1536).T)
                      <= bound(x, 1536))  # fmt: skip
        first = x[:, :640].astype(np.float64) @ matkern.hadamard_matrix(640)[0]
        assert np.all(np.abs(y[1][:, 0] - first) <= bound(x[:, :640], 640)[:, 0])
