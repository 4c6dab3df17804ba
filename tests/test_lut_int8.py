"""lut_matmul(..., compute="int8"): int8 activations (absmax per row) times the table as int8
codes, exact integer sums per group, a float finish; AVX-512 VNNI (vpshufb + vpdpbusd) for
4-bit weights with groups and K multiples of 128, a portable loop otherwise.

Tolerances
- Against the reference (reference.lut_matmul_int8_codes: the same codes and integer sums,
  finished in float64): the kernels add the ngroups terms scale_g * S_g in float32 (16-lane
  partial sums in the AVX-512 kernel, then a reduction; double in the portable loop) and
  multiply once by absmax / 127 / tfac. Each step rounds by at most u = 2**-24 relative to the
  sum of the terms' magnitudes, so |y - ref| <= (ngroups + 8) * u * B with
  B = sum_g |scale_g| |x8| . |t8| (times absmax / 127 / tfac): one wrong code moves y by about
  |x w|, which B / K bounds from below only for tiny K, and B * (ngroups + 8) * u is far below
  that wherever K >= 32.
- Against the float32 path (compute=None): the activation codes round each x by at most half
  a step of absmax / 127, the nf4/fp4 tables by half a step of max|table| / 127: on N(0, 1)
  data the results differ by about 1% relative (norm), and the error against the exact
  product stays within 2% of the float32 path's own (the 4-bit weight's 9-25%).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matkern
from conftest import run_in_threads
from matkern import _dispatch
from matkern.reference import int8 as ref8
from matkern.reference import lut as ref

U32 = 2.0**-24


def _cpu_or_skip():
    try:
        return _dispatch.cpu()
    except RuntimeError as e:
        pytest.skip(str(e))


def _bound(X, qw):
    """B (module docstring) and ngroups: the magnitude sums the kernels' rounding is relative to."""
    codes = qw.codes
    N, K = codes.shape
    x8, sx = ref8.int8_quantize_rowwise(X)
    t8, tfac = ref.lut_table_int8(qw.table)
    w8 = np.abs(t8[codes].astype(np.float64))
    ax = np.abs(x8.astype(np.float64))
    gs = qw.group_size
    ng = -(-K // gs)
    B = np.zeros((X.shape[0], N))
    for g in range(ng):
        c = slice(g * gs, min(K, (g + 1) * gs))
        B += (ax[:, c] @ w8[:, c].T) * np.abs(qw.scales[:, g].astype(np.float64))
    return B * (np.nan_to_num(sx.astype(np.float64)) / 127 / tfac)[:, None], ng


def _check(X, qw, bias=None):
    y = matkern.lut_matmul(X, qw, bias=bias, compute="int8")
    want = matkern.lut_matmul(X, qw, bias=bias, compute="int8", backend="reference")
    assert y.dtype == X.dtype and y.shape == want.shape
    B, ng = _bound(X.reshape(-1, X.shape[-1]).astype(np.float32), qw)
    tol = (ng + 8) * U32 * B.reshape(y.shape) + 1e-30
    if bias is not None:  # the bias is added in float32 after the finish: half an ulp more
        tol = tol + U32 * np.abs(want)
    np.testing.assert_array_less(np.abs(y.astype(np.float64) - want), tol + 1e-37)
    return y


def test_int8_table_exact_where_it_can_be():
    """t8 / tfac equals the table for "int" (2 bits to 4) and "fp4_e2m1"; nf4 and fp4 are
    rounded by at most half a step of max|table| / 127."""
    for bits in (2, 3, 4):
        t, _ = ref.lut_table("int", bits)
        t8, f = ref.lut_table_int8(t)
        assert f == 2.0 and np.array_equal(t8 / f, t)
    t, _ = ref.lut_table("fp4_e2m1", 4)
    t8, f = ref.lut_table_int8(t)
    assert np.array_equal(t8 / f, t) and np.abs(t8).max() <= 127
    for name in ("nf4", "fp4"):
        t, _ = ref.lut_table(name, 4)
        t8, f = ref.lut_table_int8(t)
        assert np.abs(t8).max() == 127
        assert np.abs(t8 / f - t).max() <= 0.5 / f * (1 + 1e-12)


# (N, K, M, group_size, table, bits): the VNNI kernel's shapes (groups and K multiples of
# 128, one to several passes of 6 rows, partial chunks of 32 weight rows) and the portable
# loop's (groups of 32/64, K not a multiple of 128, 2/3 bits, one group per row)
CASES = [
    (70, 256, 1, 128, "nf4", 4),
    (100, 512, 5, 128, "int", 4),
    (64, 384, 13, 128, "nf4", 4),
    (33, 1024, 17, 256, "fp4", 4),
    (48, 128, 8, 128, "fp4_e2m1", 4),
    (31, 640, 9, None, "nf4", 4),
    (33, 256, 3, 64, "nf4", 4),
    (40, 200, 2, 32, "int", 3),
    (17, 96, 4, 32, "int", 2),
    (20, 192, 3, 64, "nf4", 4),
]


@pytest.mark.parametrize("N,K,M,gs,table,bits", CASES)
def test_matches_the_reference(N, K, M, gs, table, bits):
    _cpu_or_skip()
    rng = np.random.default_rng(N * K + M)
    W = rng.standard_normal((N, K)).astype(np.float32)
    qw = matkern.lut_quantize(W, bits=bits, group_size=gs, table=table)
    X = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    _check(X, qw)
    _check(X, qw, bias=b)
    _check(X[0], qw)  # one row, 1-D


@pytest.mark.parametrize("N,K,M,gs,table,bits", CASES[:5])
def test_portable_loop_agrees(N, K, M, gs, table, bits, monkeypatch):
    """MATKERN_SIMD=avx2 (read at every call) sends the VNNI shapes to the portable loop:
    both within the reference's tolerance, and within twice it of each other."""
    _cpu_or_skip()
    rng = np.random.default_rng(K + M)
    qw = matkern.lut_quantize(
        rng.standard_normal((N, K)).astype(np.float32), bits=bits, group_size=gs, table=table
    )
    X = rng.standard_normal((M, K)).astype(np.float32)
    fast = _check(X, qw)
    monkeypatch.setenv("MATKERN_SIMD", "avx2")
    assert matkern.backends()["lut_int8_kernel"] == "portable"
    slow = _check(X, qw)
    B, ng = _bound(X, qw)
    np.testing.assert_array_less(
        np.abs(fast - slow.astype(np.float64)), 2 * (ng + 8) * U32 * B + 1e-30
    )


def test_close_to_the_float32_path():
    """About 1% from the float32 product on N(0, 1) data; the error against the exact
    product within 2% of the float32 path's own."""
    _cpu_or_skip()
    rng = np.random.default_rng(3)
    W = rng.standard_normal((256, 1024)).astype(np.float32)
    X = rng.standard_normal((16, 1024)).astype(np.float32)
    exact = X.astype(np.float64) @ W.T.astype(np.float64)
    for table in ("nf4", "int", "fp4"):
        qw = matkern.lut_quantize(W, bits=4, group_size=128, table=table)
        y8 = matkern.lut_matmul(X, qw, compute="int8")
        yf = matkern.lut_matmul(X, qw)
        assert np.linalg.norm(y8 - yf) / np.linalg.norm(yf) < 0.02
        e8 = np.linalg.norm(y8 - exact) / np.linalg.norm(exact)
        ef = np.linalg.norm(yf - exact) / np.linalg.norm(exact)
        assert e8 < 1.02 * ef


def test_special_rows():
    """A row holding NaN or Inf gives a NaN row (the others unaffected), a zero row the bias,
    float16 X a float16 result, no rows an empty one."""
    _cpu_or_skip()
    rng = np.random.default_rng(4)
    qw = matkern.lut_quantize(rng.standard_normal((40, 256)).astype(np.float32), group_size=128)
    b = rng.standard_normal(40).astype(np.float32)
    X = rng.standard_normal((4, 256)).astype(np.float32)
    X[1, 7], X[2, 100], X[3] = np.nan, np.inf, 0.0
    y = matkern.lut_matmul(X, qw, bias=b, compute="int8")
    assert np.isnan(y[1]).all() and np.isnan(y[2]).all()
    np.testing.assert_array_equal(y[3], b)
    _check(X[:1], qw, bias=b)
    y16 = matkern.lut_matmul(X[:1].astype(np.float16), qw, compute="int8")
    assert y16.dtype == np.float16
    assert matkern.lut_matmul(np.zeros((0, 256), np.float32), qw, compute="int8").shape == (0, 40)


def test_rotated_weight():
    """A weight quantized with a Hadamard rotation: X rotated (fused into the padded rows on
    the CPU), then the int8 path, as the reference backend computes it."""
    _cpu_or_skip()
    rng = np.random.default_rng(5)
    W = rng.standard_normal((64, 512)).astype(np.float32)
    rot = matkern.HadamardRotation(512, random_state=1)
    qw = matkern.lut_quantize(W, group_size=128, rotation=rot)
    X = rng.standard_normal((3, 512)).astype(np.float32)
    y = matkern.lut_matmul(X, qw, compute="int8")
    want = matkern.lut_matmul(X, qw, compute="int8", backend="reference")
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_bad_compute_is_refused():
    rng = np.random.default_rng(6)
    qw = matkern.lut_quantize(rng.standard_normal((8, 64)).astype(np.float32), group_size=32)
    with pytest.raises(ValueError, match="compute"):
        matkern.lut_matmul(np.ones((1, 64), np.float32), qw, compute="int4")


def test_threads_share_one_result():
    """Each output is one task's: the same bits at 1 and 2 threads and from 4 threads at once."""
    _cpu_or_skip()
    rng = np.random.default_rng(7)
    qw = matkern.lut_quantize(rng.standard_normal((300, 1024)).astype(np.float32), group_size=128)
    X = rng.standard_normal((12, 1024)).astype(np.float32)
    with matkern.threads(1):
        one = matkern.lut_matmul(X, qw, compute="int8")
    two = matkern.lut_matmul(X, qw, compute="int8")
    np.testing.assert_array_equal(one, two)
    calls = [lambda: matkern.lut_matmul(X, qw, compute="int8")] * 4
    for y in run_in_threads(calls, repeats=3):
        np.testing.assert_array_equal(y, one)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([(4, "nf4"), (4, "int"), (4, "fp4"), (3, "int"), (2, "int")]),
    st.sampled_from([32, 64, 128, 256, None]),
    st.integers(1, 40),
    st.integers(1, 10),
    st.integers(1, 12),
    st.floats(-30, 30),
    st.integers(0, 2**32 - 1),
)
def test_property_against_the_reference(bt, gs, n, kb, m, log_scale, seed):
    """Any shape (K = 32 kb, so that 128-multiples and others both occur), group size, bit
    width and magnitude of X and W (2^-30 .. 2^30): within the reference's bound."""
    _cpu_or_skip()
    bits, table = bt
    K = 32 * kb
    if gs is not None and gs > K:
        gs = None
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, K)) * 2.0**log_scale).astype(np.float32)
    X = (rng.standard_normal((m, K)) * 2.0**-log_scale).astype(np.float32)
    qw = matkern.lut_quantize(W, bits=bits, group_size=gs, table=table)
    _check(X, qw)


def test_layer_takes_compute_int8():
    """LUTLinear(..., compute="int8") calls lut_matmul with it: the same result."""
    _cpu_or_skip()
    rng = np.random.default_rng(8)
    W = rng.standard_normal((48, 256)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    X = rng.standard_normal((3, 256)).astype(np.float32)
    layer = matkern.LUTLinear(W, bias=b, compute="int8")
    qw = matkern.lut_quantize(W)
    np.testing.assert_array_equal(layer(X), matkern.lut_matmul(X, qw, bias=b, compute="int8"))
    with pytest.raises(ValueError, match="compute"):
        matkern.LUTLinear(W, compute="int4")


@pytest.mark.gpu
def test_gpu_refuses_compute_int8():
    """compute="int8" is CPU-only: a CuPy X and GPU weight give a ValueError naming it."""
    ok, why = _dispatch.gpu_status()
    if not ok:
        pytest.skip(why)
    cp = _dispatch.cupy_module()
    qw = matkern.lut_quantize(np.random.default_rng(9).standard_normal((16, 128)), 4, 128)
    X = cp.ones((2, 128), cp.float32)
    with pytest.raises(ValueError, match="compute='int8' runs on the CPU"):
        matkern.lut_matmul(X, qw.to_device("cuda"), compute="int8")
