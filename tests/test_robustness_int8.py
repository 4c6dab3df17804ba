"""int8 robustness (issue #15): scale overflow/underflow, subnormals, zero rows, near-overflow
values, NaN/Inf, crash probes and memory peaks.

Tolerances and their reasons
----------------------------
* cpu backend (AVX2 and portable) vs the reference, no outlier columns: **bit-identical**. The
  codes are rint(x * fl(127 / absmax)) with an exact 2^100 prescale for rows below 2^-64 in
  all three, the int32 sums are exact, and the epilogue is the same float64 expression
  (C * (absmax_X / 127^2)) * scale_W rounded once to float32.
* with outlier columns: relative 1e-5 of sum |x| |w| per entry (the outlier product is a float32
  dot product whose summation order differs between BLAS, the fused epilogue and the reference).
* reference vs exact float64 math X @ W.T: per entry
  ``0.51 / 127 * (absmax_x * ||w_n||_1 + scale_n * (||x||_1 + K * 0.5 * absmax_x / 127))``
  (each code is within half a step, absmax / 127 / 2, of x * 127 / absmax; 0.51 instead of 0.5
  covers the float32 rounding of x * (127 / absmax), < 127 * 2^-24 of a step) plus
  2^-22 |y| + 2^-149 (float32 rounding of the result, absolute near subnormals); float16 X
  adds the float16 rounding of the result: 2^-10 |y| + 2^-24.
"""

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matkern
from conftest import assert_no_crash, simd_runs
from matkern import reference

F32_MAX = float(np.finfo(np.float32).max)
SETTINGS = dict(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# M = 1 (GEMV), <= 6 (one row tile), 7/13 (several tiles); K odd, around the AVX2 16-wide
# loop, and past 512 (the blocked K path for M > 6)
MS = [1, 2, 6, 7, 13]
KS = [1, 3, 15, 16, 17, 33, 513, 600]
NS = [1, 8, 17]


def exact_bound(x, w, sx, sw):
    """Bound on |int8 result - x @ w.T| from the quantization (see the module docstring)."""
    x64, w64 = np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64))
    k = x.shape[1]
    sx64, sw64 = sx.astype(np.float64)[:, None], sw.astype(np.float64)[None, :]
    return (
        0.51
        / 127
        * (sx64 * w64.sum(1)[None, :] + sw64 * (x64.sum(1)[:, None] + k * 0.5 * sx64 / 127))
    )


def make(rng, shape, exps):
    """Standard normal rows, row i scaled by 2^exps[i] (exactly, in float64 then rounded)."""
    a = rng.standard_normal(shape) * np.ldexp(1.0, np.asarray(exps))[:, None]
    return a.astype(np.float32)


@st.composite
def cases(draw):
    m, k, n = draw(st.sampled_from(MS)), draw(st.sampled_from(KS)), draw(st.sampled_from(NS))
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    lo, hi = (-149, 120) if dtype == np.float32 else (-20, 10)
    ex = draw(st.lists(st.integers(lo, hi), min_size=m, max_size=m))
    # weight rows from subnormal to near overflow, the product kept below the float32 (float16)
    # range
    top = (120 if dtype == np.float32 else 4) - max(max(ex), 0)
    ew = draw(st.lists(st.integers(-149, top), min_size=n, max_size=n))
    zero_x = draw(st.lists(st.booleans(), min_size=m, max_size=m))
    zero_w = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**31))
    order = draw(st.sampled_from(["C", "F", "strided"]))
    return m, k, n, dtype, ex, ew, zero_x, zero_w, seed, order


def build(case):
    m, k, n, dtype, ex, ew, zero_x, zero_w, seed, order = case
    rng = np.random.default_rng(seed)
    X = make(rng, (m, k), ex)
    X[np.array(zero_x) & (rng.random(m) < 0.3)] = 0
    X = X.astype(dtype)
    W = make(rng, (n, k), ew)
    W[np.array(zero_w) & (rng.random(n) < 0.3)] = 0
    if order == "F":
        X = np.asfortranarray(X)
    elif order == "strided":
        X = np.repeat(X, 2, axis=1)[:, ::2]
    return X, W


@settings(**SETTINGS)
@given(cases())
def test_property_cpu_equals_reference_and_bound(case):
    X, W = build(case)
    Wq = matkern.int8_quantize(W)
    codes, scale = Wq.codes, Wq.scale
    # the weight quantizer: codes as the reference's row quantizer, scale = absmax exactly
    rc, rs = reference.int8_quantize_rowwise(W)
    np.testing.assert_array_equal(codes, rc)
    np.testing.assert_array_equal(scale, np.abs(W).max(axis=1))
    yc = matkern.int8_matmul(X, Wq, threshold=0.0, backend="cpu")
    yr = matkern.int8_matmul(X, Wq, threshold=0.0, backend="reference")
    assert yc.dtype == X.dtype
    np.testing.assert_array_equal(yc, yr)
    # the reference vs exact float64 math
    Xf = X.astype(np.float32)
    exact = Xf.astype(np.float64) @ W.astype(np.float64).T
    sx = np.abs(Xf).max(axis=1)
    bound = exact_bound(Xf, W, sx, scale) + 2.0**-22 * np.abs(exact) + 2.0**-149
    if X.dtype == np.float16:
        bound += 2.0**-10 * np.abs(exact) + 2.0**-24
    err = np.abs(yr.astype(np.float64) - exact)
    assert np.all(err <= bound), (float((err / bound).max()), case)


@settings(**SETTINGS)
@given(cases(), st.sampled_from([1e-30, 0.5, 2.0, 6.0]))
def test_property_outliers(case, threshold):
    X, W = build(case)
    Wq = matkern.int8_quantize(W)
    yc = matkern.int8_matmul(X, Wq, threshold=threshold, backend="cpu").astype(np.float64)
    yr = matkern.int8_matmul(X, Wq, threshold=threshold, backend="reference").astype(np.float64)
    Xf = X.astype(np.float64)
    scale = np.abs(Xf) @ np.abs(W.astype(np.float64)).T
    tol = 1e-5 * scale + 2.0**-149
    if X.dtype == np.float16:
        tol += 2.0**-10 * np.abs(yr) + 2.0**-24
    assert np.all(np.abs(yc - yr) <= tol)


SIMD_CODE = r"""
import sys, numpy as np, matkern
MS, KS, NS = [1, 2, 6, 7, 13], [1, 15, 17, 33, 513, 600], [1, 17]
rng = np.random.default_rng(7)
res = {}
i = 0
for m in MS:
    for k in KS:
        for n in NS:
            ex = rng.integers(-149, 120, m)
            ex[rng.random(m) < 0.3] = -140  # tiny rows (127 / absmax overflows float32)
            X = (rng.standard_normal((m, k)) * np.ldexp(1.0, ex)[:, None]).astype(np.float32)
            X[rng.random(m) < 0.15] = 0
            ew = rng.integers(-149, 120 - max(0, int(ex.max())), n)
            W = (rng.standard_normal((n, k)) * np.ldexp(1.0, ew)[:, None]).astype(np.float32)
            Wq = matkern.int8_quantize(W)
            res[f"y{i}"] = matkern.int8_matmul(X, Wq, threshold=0.0)
            res[f"r{i}"] = matkern.int8_matmul(X, Wq, threshold=0.0, backend="reference")
            res[f"h{i}"] = matkern.int8_matmul(X.astype(np.float16) if ex.max() < 10 else X, Wq, threshold=0.0)
            res[f"h{i}r"] = matkern.int8_matmul(X.astype(np.float16) if ex.max() < 10 else X, Wq, threshold=0.0, backend="reference")
            i += 1
np.savez(sys.argv[1], **res)
print(matkern.backends()["simd"])
"""


def test_simd_levels_agree_with_reference():
    portable, default = simd_runs(SIMD_CODE, ".npz")
    for key in portable.files:
        if key.endswith("r") or key.startswith("r"):
            continue
        np.testing.assert_array_equal(portable[key], default[key], err_msg=key)
    for key in portable.files:
        if key.startswith("y"):
            np.testing.assert_array_equal(portable[key], portable["r" + key[1:]], err_msg=key)
        if key.startswith("h") and not key.endswith("r"):
            np.testing.assert_array_equal(portable[key], portable[key + "r"], err_msg=key)


# ---------------------------------------------------------------- exact regressions


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("m", [1, 7])
@pytest.mark.parametrize("tiny", [1e-37, 3e-38, 1e-40, 2.0**-149 * 3])
def test_tiny_activation_rows(backend, m, tiny):
    """Rows with max |x| < 127 / FLT_MAX: codes were -32768 (AVX2) or 0 (portable, reference)."""
    X = np.array([[1.0, -0.5, 0.25, 0.0] * 5] * m, np.float32) * np.float32(tiny)
    W = np.eye(4, 20, dtype=np.float32) + np.eye(4, 20, 1, dtype=np.float32)
    Wq = matkern.int8_quantize(W)
    y = matkern.int8_matmul(X, Wq, threshold=0.0, backend=backend)
    exact = X.astype(np.float64) @ W.astype(np.float64).T
    assert np.all(np.abs(y - exact) <= 0.01 * np.abs(exact).max() + 2.0**-149)
    assert np.abs(y).max() > 0


def test_tiny_activation_codes():
    X = np.array([[1e-38, -(2.0**-149), 5e-39]], np.float32)
    q, sx = reference.int8_quantize_rowwise(X)
    assert sx[0] == np.float32(1e-38)
    np.testing.assert_array_equal(q, [[127, 0, 64]])


@pytest.mark.parametrize("s", [1e-37, 1e-40, 2.0**-149, 2.0**-140])
def test_tiny_weight_rows_keep_codes(s):
    """int8_quantize turned rows with max |w| < ~3.7e-37 into all-zero codes."""
    W = np.array([[1.0, -0.5, 0.25, 0.125], [2.0, 0, -2.0, 1.0]], np.float32)
    Wq1 = matkern.int8_quantize(W)
    Ws = (W.astype(np.float64) * s).astype(np.float32)
    Wq = matkern.int8_quantize(Ws)
    np.testing.assert_array_equal(Wq.scale, np.abs(Ws).max(axis=1))
    exact_codes = np.rint(Ws.astype(np.float64) * 127 / np.abs(Ws).max(axis=1, keepdims=True))
    np.testing.assert_array_equal(Wq.codes, exact_codes)
    if s >= 1e-37:  # no subnormal rounding of W itself: the codes of the unscaled W
        np.testing.assert_array_equal(Wq.codes, Wq1.codes)
    d = Wq.dequantize().astype(np.float64)
    assert np.all(np.abs(d - Ws) <= 0.51 / 127 * np.abs(Ws).max(axis=1, keepdims=True) + 2.0**-149)


def test_near_overflow_rows():
    X = np.array([[3e38, -1e38, 1.0], [-3.4e38, 0, 3.4e38]], np.float32)
    W = np.array([[1e-38, 1e-38, 0], [2.0**-149, 0, 0]], np.float32)
    Wq = matkern.int8_quantize(W)
    for be in ("reference", "cpu"):
        y = matkern.int8_matmul(X, Wq, threshold=0.0, backend=be).astype(np.float64)
        exact = X.astype(np.float64) @ W.astype(np.float64).T
        assert np.all(np.isfinite(y))
        assert np.all(np.abs(y - exact) <= 0.02 * np.abs(exact).max(axis=1, keepdims=True) + 1e-44)


def test_nan_inf_rows_and_weights():
    W = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="W must be finite"):
        matkern.int8_quantize(np.array([[1, np.nan]], np.float32))
    with pytest.raises(ValueError, match="W must be finite"):
        matkern.int8_quantize(np.array([[1, np.inf]], np.float16))
    X = np.array([[1, 2, 3, 4], [np.nan, 0, 0, 0], [np.inf, 1, 1, 1], [1e-40, 0, 0, 0]], np.float32)
    Wq = matkern.int8_quantize(W)
    for be in ("reference", "cpu"):
        y = matkern.int8_matmul(X, Wq, threshold=0.0, backend=be)
        assert np.all(np.isfinite(y[[0, 3]])) and np.all(np.isnan(y[[1, 2]]))
        assert np.all(y[3] > 0)


# ---------------------------------------------------------------- crash probes


def test_crash_probes():
    assert_no_crash("""
        W = np.ones((5, 33), np.float32)
        for X in [np.full((1, 33), 1e-45, np.float32), np.full((9, 33), -3.4e38, np.float32),
                  np.full((2, 33), np.nan, np.float32), np.zeros((7, 33), np.float16),
                  np.full((3, 33), np.inf, np.float32)]:
            for t in (0.0, 6.0):
                matkern.int8_matmul(X, matkern.int8_quantize(W * np.float32(1e-42)), threshold=t)
    """)
    assert_no_crash(
        "matkern.int8_quantize(np.full((3, 5), np.nan, np.float32))", expect=("ValueError",)
    )


# ---------------------------------------------------------------- memory


def peak_extra(fn, *args, **kw):
    tracemalloc.start()
    try:
        fn(*args, **kw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_quantize_memory_peak(dtype):
    """int8_quantize of a 2048 x 2048 W: peak extra memory <= 2x W's bytes (float32: measured
    0.82x: 0.25x codes, 0.25x the finiteness mask of the argument check, a ~4 MiB chunk; it was
    > 2x with two float32 copies of W). float16 W is half as many bytes for the same codes and
    float32 chunk: bound 2x + 4 MiB."""
    W = np.random.default_rng(0).standard_normal((2048, 2048)).astype(dtype)
    peak = peak_extra(matkern.int8_quantize, W)
    assert peak <= 2 * W.nbytes + (4 << 20 if dtype == np.float16 else 0), peak / W.nbytes


def test_matmul_memory_peak():
    """int8_matmul: extra memory within 2x (X + output) + the int16 row codes (0.5x X)."""
    rng = np.random.default_rng(0)
    Wq = matkern.int8_quantize(rng.standard_normal((256, 1024)).astype(np.float32))
    X = rng.standard_normal((512, 1024)).astype(np.float32)
    peak = peak_extra(matkern.int8_matmul, X, Wq, threshold=0.0)
    assert peak <= 2 * (X.nbytes + 512 * 256 * 4), peak / X.nbytes


def test_epilogue_without_float32_overflow_in_between():
    """Huge activations times tiny weights: the product fits float32, but t * sx / 127^2
    alone did not (inf, then inf * tiny = inf)."""
    X = np.full((1, 64), 3e38, np.float32)
    W = np.full((4, 64), 1e-30, np.float32)
    for be in ("reference", "cpu"):
        y = matkern.int8_matmul(X, matkern.int8_quantize(W), threshold=0.0, backend=be)
        np.testing.assert_allclose(y, 64 * 3e38 * 1e-30, rtol=1e-6)
