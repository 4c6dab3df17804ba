"""int8 at every scale: tiny, subnormal and huge rows of X and W, every backend and SIMD level.

What the property tests cover: X and W of float32 (and float16 X), shapes M = 1 (the GEMV
tile), small, odd K, N not a multiple of the 8-row panels; each row of X and W scaled by its
own power of two, from the subnormal range (2^-149) to 2^60, with zero rows mixed in;
threshold 0 (no outlier path) and 6 (outlier columns); the CPU kernels (AVX2 and portable)
against the reference, and the reference against exact float64 products.

Tolerances
- CPU against the reference: the codes and the int32 product are exact, and the scale
  epilogue is computed in float64 in the same order on both (rounded once), so without
  outlier columns the results are bit-identical; with them the outlier product is summed in
  another order: 1e-5 * (|X| @ |W|.T) per entry (as tests/test_int8.py) plus a few float32
  subnormal units (2^-149 each) for results in the subnormal range.
- Against exact float64: each output within the absmax rounding bound (each code is off by
  at most half a step, max/254: (|x|_1 max|w| + max|x| |w|_1) / 254 plus their product
  term) plus 1e-6 of |x|.|w| for the float32 epilogue, on outputs whose |x|.|w| stays in
  float32's normal range (smaller ones are subnormal by the input, not by the kernel).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matkern
from conftest import simd_runs

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
TINY32 = 2.0**-149


def _scaled(rng, rows, cols, exps, dtype=np.float32):
    A = rng.standard_normal((rows, cols))
    A *= np.ldexp(1.0, np.asarray(exps))[:, None]
    return A.astype(dtype)


@st.composite
def int8_case(draw):
    m = draw(st.sampled_from([1, 2, 5, 7, 13]))
    n = draw(st.sampled_from([1, 3, 8, 17]))
    k = draw(st.sampled_from([1, 3, 16, 33, 130]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ex = draw(st.lists(st.integers(-140, 60), min_size=m, max_size=m))
    ew = draw(st.lists(st.integers(-140, 60), min_size=n, max_size=n))
    X = _scaled(rng, m, k, ex)
    W = _scaled(rng, n, k, ew)
    if draw(st.booleans()):
        X[rng.integers(0, m)] = 0.0
    if draw(st.booleans()):
        W[rng.integers(0, n)] = 0.0
    threshold = draw(st.sampled_from([0.0, 6.0]))
    return X, W, threshold


@SETTINGS
@given(int8_case())
def test_cpu_equals_reference_at_any_scale(case):
    X, W, threshold = case
    Wq = matkern.int8_quantize(W)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        ref = matkern.reference.int8_matmul(X, Wq.codes, Wq.scale, threshold)
    y = matkern.int8_matmul(X, Wq, threshold=threshold, backend="cpu")
    if threshold == 0:
        np.testing.assert_array_equal(y, ref)
        return
    mag = np.abs(X.astype(np.float64)) @ np.abs(W.astype(np.float64)).T
    fin = np.isfinite(ref) & (mag < 1e38)
    assert np.array_equal(np.isfinite(y), np.isfinite(ref))
    err = np.abs(y[fin].astype(np.float64) - ref[fin])
    assert (err <= 1e-5 * mag[fin] + 8 * TINY32).all()


@SETTINGS
@given(int8_case())
def test_reference_is_right_at_any_scale(case):
    """Every output whose magnitude stays in float32's normal range is within the absmax
    rounding bound, at any scale of the inputs."""
    X, W, threshold = case
    Wq = matkern.int8_quantize(W)
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    exact = X64 @ W64.T
    y = matkern.int8_matmul(X, Wq, threshold=threshold, backend="reference").astype(np.float64)
    mag = np.abs(X64) @ np.abs(W64).T
    bound = _absmax_bound(X64, W64) + 1e-6 * mag
    ok = (mag > 1e-30) & (mag < 1e30)
    assert (np.abs(y - exact)[ok] <= bound[ok]).all()


def _absmax_bound(X, W):
    """|y - x.w| for absmax int8 codes of x and w (each off by at most half a step, max/254):
    (|x|_1 max|w| + max|x| |w|_1) / 254, plus the product of the two errors."""
    mx, mw = np.abs(X).max(axis=1), np.abs(W).max(axis=1)
    l1x, l1w = np.abs(X).sum(axis=1), np.abs(W).sum(axis=1)
    k = X.shape[1]
    return ((l1x[:, None] * mw[None, :] + mx[:, None] * l1w[None, :]) / 254
            + k * mx[:, None] * mw[None, :] / 254**2)


@pytest.mark.parametrize("s", [1e-45, 1e-40, 3e-38, 3.7e-37, 1e-30])
def test_tiny_activation_rows_on_every_simd_level(s):
    """The issue's case: rows of X with max |x| below ~3.7e-37 got codes -32768 on the AVX2
    path. Both SIMD levels and the reference now give the same, right product."""
    code = f"""
import sys, numpy as np, matkern
rng = np.random.default_rng(0)
W = rng.standard_normal((24, 64)).astype(np.float32)
X = (rng.standard_normal((3, 64)) * {s!r}).astype(np.float32)
y = matkern.int8_matmul(X, matkern.int8_quantize(W), threshold=0.0)
np.save(sys.argv[1], y)
print(matkern.backends()['simd'])
"""
    portable, default = simd_runs(code)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((24, 64)).astype(np.float32)
    X = (rng.standard_normal((3, 64)) * s).astype(np.float32)
    Wq = matkern.int8_quantize(W)
    ref = matkern.reference.int8_matmul(X, Wq.codes, Wq.scale, 0.0)
    np.testing.assert_array_equal(portable, ref)
    np.testing.assert_array_equal(default, ref)
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    exact = X64 @ W64.T
    mag = np.abs(X64) @ np.abs(W64).T
    if mag.min() > 1e-36:  # results in float32's normal range: the absmax rounding bound
        assert (np.abs(ref - exact) <= _absmax_bound(X64, W64) + 1e-6 * mag).all()
    assert np.abs(ref).max() > 0 or mag.max() < TINY32


@pytest.mark.parametrize("s", [1e-44, 1e-39, 1e-37, 1e-20, 1e20, 3e38])
def test_tiny_and_huge_weight_rows_keep_their_codes(s):
    rng = np.random.default_rng(1)
    W = (rng.standard_normal((9, 40)) / 4 * s).astype(np.float32)
    W[3] = 0.0
    Wq = matkern.int8_quantize(W)
    codes, ref_codes = Wq.codes, matkern.reference.int8_quantize_rowwise(W)[0]
    np.testing.assert_array_equal(codes, ref_codes)
    nz = np.abs(W).max(axis=1) > 0
    assert (np.abs(codes[nz]).max(axis=1) == 127).all() and not codes[3].any()
    np.testing.assert_array_equal(Wq.scale, np.abs(W).max(axis=1))
    if s >= 1e-37:  # scales in float32's normal range: the usual int8 error
        W64 = W.astype(np.float64)
        back = codes.astype(np.float64) * (Wq.scale.astype(np.float64) / 127)[:, None]
        err = np.linalg.norm(back - W64, axis=1) / np.maximum(np.linalg.norm(W64, axis=1), 1e-300)
        assert err[nz].max() <= 0.01


def test_epilogue_without_float32_overflow_in_between():
    """Huge activations times tiny weights: the product fits float32, but t * sx / 127^2
    alone did not (inf, then inf * tiny = inf)."""
    X = np.full((1, 64), 3e38, np.float32)
    W = np.full((4, 64), 1e-30, np.float32)
    for be in ("reference", "cpu"):
        y = matkern.int8_matmul(X, matkern.int8_quantize(W), threshold=0.0, backend=be)
        np.testing.assert_allclose(y, 64 * 3e38 * 1e-30, rtol=1e-6)


def test_quantize_memory_stays_below_the_weight():
    """int8_quantize works a block of rows at a time: no float32 copy of W (it made two).
    Bound: the weight's bytes (the codes are a quarter of it, their padded staging copy and
    the packed copy another half, the row blocks 8 MiB)."""
    W = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    tracemalloc.start()
    Wq = matkern.int8_quantize(W)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= W.nbytes + (1 << 20), peak / W.nbytes
    assert Wq.nbytes >= W.size


def test_codes_of_float16_and_strided_input_match():
    rng = np.random.default_rng(2)
    W = (rng.standard_normal((16, 96)) * 1e-3).astype(np.float16)
    Wt = np.asfortranarray(W.astype(np.float32))
    np.testing.assert_array_equal(matkern.int8_quantize(W).codes,
                                  matkern.int8_quantize(Wt).codes)
