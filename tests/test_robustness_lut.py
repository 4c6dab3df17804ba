"""LUT quantization at every scale, with every table; what it cannot represent is refused.

What the property tests cover: W float16/32/64, bits 2/3/4, group sizes 32-256, every named
table and random custom tables (reach from 2^-60 to 2^60), each group of W scaled by its own
power of two from the float32 subnormal range to 2^100, zero groups mixed in; lut_matmul
(M = 1, the GEMV, and M = 5, the blocked path) on the CPU against the reference.

Tolerances
- Codes and scales: exactly the reference's (both are computed by it, a block of rows at a
  time in lut_quantize).
- Dequantized values: within the farthest distance of a point of [-reach, reach] from its
  nearest table value (half the largest gap, or an end of the range) times the group scale, plus
  the rounding of the scale and of the product (float32), for groups whose scale is a normal
  float32 (a subnormal scale keeps fewer significant bits: only finiteness is required).
- lut_matmul CPU against the reference: K * 2^-24 * (|X| @ |W_deq|.T) per entry, the
  worst-case float32 dot-product bound (as tests/test_lut.py), plus 8 subnormal units.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matkern
from conftest import assert_no_crash

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
F32_TINY = float(np.finfo(np.float32).tiny)


@st.composite
def lut_case(draw):
    bits = draw(st.sampled_from([2, 3, 4]))
    names = ["int"] + (["nf4", "fp4"] if bits == 4 else [])
    gs = draw(st.sampled_from([32, 64, 128, 256]))
    n = draw(st.integers(1, 9))
    groups = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        table = draw(st.sampled_from(names))
        reach = matkern.reference.lut.lut_table(table, bits)[1]
    else:
        reach = 2.0 ** draw(st.integers(-60, 60))
        table = (rng.uniform(-1, 1, 1 << bits) * reach).astype(np.float32)
        table[0] = reach
        reach = float(np.abs(table).max())
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    lo = -14 if dtype == np.float16 else -126
    hi = 14 if dtype == np.float16 else 100
    exps = draw(st.lists(st.integers(lo, hi), min_size=n * groups, max_size=n * groups))
    W = rng.standard_normal((n, groups, gs)) * np.ldexp(1.0, np.array(exps)).reshape(n, groups, 1)
    if draw(st.booleans()):
        W[rng.integers(0, n), rng.integers(0, groups)] = 0.0
    return W.reshape(n, groups * gs).astype(dtype), bits, gs, table, reach


@SETTINGS
@given(lut_case())
def test_quantize_any_scale_any_table(case):
    """Either a clear ValueError naming what cannot be represented, or a weight whose every
    dequantized value is finite and, where the scale is normal, within half a table gap."""
    W, bits, gs, table, reach = case
    try:
        qw = matkern.lut_quantize(W, bits, gs, table)
    except ValueError as e:
        assert "lut_quantize()" in str(e)
        # refused only when a scale truly leaves float32
        g = np.abs(W.astype(np.float64)).reshape(W.shape[0], -1, gs).max(axis=-1)
        s = g / reach
        assert ((s > np.finfo(np.float32).max * 0.99) | ((g > 0) & (s < 2.0**-148))
                | ((g > 0) & (g < 2.0**-148))).any()
        return
    deq = matkern.lut_dequantize(qw).astype(np.float64)
    assert np.isfinite(deq).all()
    vals = np.sort(matkern.reference.lut.lut_table(table, bits)[0].astype(np.float64))
    # farthest any value in [-reach, reach] lies from its nearest table value
    gap = max(np.diff(vals).max() / 2 if vals.size > 1 else 0.0, vals[0] + reach,
              reach - vals[-1])
    sc = qw.scales.astype(np.float64)
    normal = np.repeat(sc >= F32_TINY, gs, axis=1)
    bound = np.repeat(sc, gs, axis=1) * (gap * (1 + 2**-20) + reach * 2**-22)
    err = np.abs(deq - W.astype(np.float64))
    assert (err[normal] <= bound[normal] + 2**-149).all()


@SETTINGS
@given(lut_case(), st.sampled_from([1, 5]))
def test_matmul_cpu_equals_reference_any_scale(case, m):
    W, bits, gs, table, reach = case
    try:
        qw = matkern.lut_quantize(W, bits, gs, table)
    except ValueError:
        return
    K = W.shape[1]
    X = np.random.default_rng(m).standard_normal((m, K)).astype(np.float32)
    ref = matkern.lut_matmul(X, qw, backend="reference").astype(np.float64)
    y = matkern.lut_matmul(X, qw, backend="cpu").astype(np.float64)
    deq = matkern.lut_dequantize(qw).astype(np.float64)
    mag = np.abs(X.astype(np.float64)) @ np.abs(deq).T
    fin = mag < 1e38
    assert (np.abs(y - ref)[fin] <= K * 2.0**-24 * mag[fin] * 2 + 8 * 2.0**-149).all()


def test_float64_beyond_float32_is_refused():
    W = np.full((2, 32), 1e39)
    with pytest.raises(ValueError, match=r"lut_quantize\(\): W must fit float32"):
        matkern.lut_quantize(W, 4, 32)


def test_float64_group_that_rounds_to_zero_is_refused():
    W = np.zeros((2, 64))
    W[1, 32:] = 1e-300
    with pytest.raises(ValueError, match="float32 rounds to zero"):
        matkern.lut_quantize(W, 4, 32)


@pytest.mark.parametrize("w, reach", [(1e30, 1e-10), (1e-30, 1e30), (3e38, 0.5)])
def test_table_whose_reach_overflows_the_scale_is_refused(w, reach):
    W = np.full((2, 32), w, np.float32)
    table = np.linspace(-reach, reach, 16)
    with pytest.raises(ValueError, match="group scale .* leaves float32's range"):
        matkern.lut_quantize(W, 4, 32, table)


def test_group_whose_scale_underflows_is_refused():
    W = np.full((1, 32), 1e-45, np.float32)  # / 7.5 (the int table's reach) rounds to 0
    with pytest.raises(ValueError, match="rescale W or the table"):
        matkern.lut_quantize(W, 4, 32, "int")


@pytest.mark.parametrize("s", [1e-44, 1e-40, 1e-38, 3e38])
def test_extreme_but_representable_groups_are_kept(s):
    W = np.full((3, 32), s, np.float32)
    W[1] = -W[1]
    W[2] = 0
    qw = matkern.lut_quantize(W, 4, 32, "int")
    deq = matkern.lut_dequantize(qw)
    assert np.isfinite(deq).all() and not deq[2].any()
    np.testing.assert_allclose(deq[:2], W[:2], rtol=0.3 if s < 1e-37 else 1e-6)


def test_quantize_memory_within_twice_the_weight():
    """It peaked at 5.3x W (float64 temporaries over the whole matrix); now a block of rows
    at a time: within 2x W (issue: ~2x input + output)."""
    W = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    tracemalloc.start()
    matkern.lut_quantize(W)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= 2 * W.nbytes, peak / W.nbytes


def test_bad_custom_tables_never_crash():
    assert_no_crash("""
        W = np.ones((2, 32), np.float32)
        for t in ([np.nan] * 16, [np.inf] * 16, [0.0] * 16, [1.0] * 15, "nope"):
            try:
                matkern.lut_quantize(W, 4, 32, t)
            except (ValueError, TypeError):
                pass
            else:
                raise SystemExit(f"accepted {t!r}")
    """)
