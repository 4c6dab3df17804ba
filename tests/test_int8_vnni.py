"""The AVX-512 VNNI (vpdpbusd) int8 path: u8 activations (code + 128) times s8 weights, the
exact -128 * column-sum correction, its layout (64-column super-panels x quads of inputs), the
fused outlier columns and its vectorized epilogue.

Tolerances: none. The int32 sums are exact on every level (compared with NumPy's int64
product), and the float results of int8_matmul must be bit-identical to the other tiles'
(vpdpwssd, AVX2, portable): same codes, same double-precision scaling, same float32
additions in the same order. Tests of this path skip where the CPU (or the build) has no
AVX-512 VNNI; MATKERN_INT8_TILE=vpdpwssd selects the previous AVX-512 tile in the same
process (read at every call).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matkern
from conftest import simd_level_run
from matkern import _dispatch
from matkern import int8 as int8_mod


def _cpu_or_skip():
    try:
        return _dispatch.cpu()
    except RuntimeError as e:
        pytest.skip(str(e))


def _vnni_or_skip():
    if not _cpu_or_skip().int8_vnni_enabled():
        pytest.skip("this CPU or build has no AVX-512 VNNI (or MATKERN_INT8_TILE=vpdpwssd)")


def test_layout_holds_the_codes():
    """_vnni_pack: every code at its documented offset (cpp/int8.hpp), zero padding, and
    corr = -128 * row sum modulo 2^32, for N with a partial last super-panel and K not a
    multiple of 4."""
    rng = np.random.default_rng(0)
    for n, k in ((1, 1), (17, 5), (64, 8), (130, 7), (200, 33)):
        codes = rng.integers(-128, 128, (n, k), dtype=np.int8)
        wv, corr = int8_mod._vnni_pack(codes)
        n16, kq = -(-n // 16) * 16, -(-k // 4) * 4
        assert wv.shape == (n16 * kq,) and corr.shape == (n16,) and corr.dtype == np.int32
        r, c = np.meshgrid(np.arange(n16), np.arange(kq), indexing="ij")
        s = r // 64
        width = np.minimum(64, n16 - s * 64)
        got = wv[s * 64 * kq + (c // 4) * width * 4 + (r % 64) * 4 + c % 4]
        full = np.zeros((n16, kq), np.int8)
        full[:n, :k] = codes
        np.testing.assert_array_equal(got, full)
        want = (-128 * full.sum(axis=1, dtype=np.int64)) % 2**32
        np.testing.assert_array_equal(corr.astype(np.int64) % 2**32, want)


# M: GEMV, one tile (6), several tiles, around the 96-row task chunk; K: not a multiple of
# 4, across the 256-input K block; N: not a multiple of 16 or 64
@pytest.mark.parametrize(
    "m,k,n",
    [
        (1, 1, 1),
        (1, 7, 17),
        (2, 515, 65),
        (5, 3, 130),
        (6, 4, 64),
        (7, 1027, 63),
        (13, 2, 200),
        (95, 129, 49),
        (97, 600, 81),
        (193, 61, 16),
        (30, 1300, 150),
    ],
)
def test_int8_gemm_exact_at_edges(m, k, n):
    _vnni_or_skip()
    rng = np.random.default_rng(m * 1000 + k + n)
    A = rng.integers(-128, 128, (m, k), dtype=np.int8)
    B = rng.integers(-128, 128, (n, k), dtype=np.int8)
    np.testing.assert_array_equal(
        matkern.int8_gemm(A, B), A.astype(np.int64) @ B.astype(np.int64).T
    )


@pytest.mark.parametrize("k", [1, 5, 131071])
def test_offset_correction_at_the_extremes(k):
    """Activations at -128 (u8 0) and 127 (u8 255), weights at -128, -127 and 127, up to the
    largest K (sums of +-2^31 - 2^14, the correction itself wrapping modulo 2^32): exact."""
    _vnni_or_skip()
    A = np.array([[-128] * k, [127] * k, [-128, 127] * (k // 2) + [0] * (k % 2)], np.int8)
    B = np.array(
        [[-128] * k, [127] * k, [-127] * k, [127, -128] * (k // 2) + [1] * (k % 2)], np.int8
    )
    np.testing.assert_array_equal(
        matkern.int8_gemm(A, B), A.astype(np.int64) @ B.astype(np.int64).T
    )


@pytest.mark.parametrize("threshold", [0.0, 6.0])
@pytest.mark.parametrize("n_out", [0, 3, 70])
def test_matmul_identical_to_the_vpdpwssd_tile(threshold, n_out, monkeypatch):
    """int8_matmul through vpdpbusd equals the vpdpwssd tile's result bit for bit (codes at
    +-127 included: rows whose absmax sits in one column), with bias, fused outlier columns
    (3) and the BLAS addend (70), M across tiles and chunks, N with partial panels."""
    _vnni_or_skip()
    rng = np.random.default_rng(n_out)
    for m, k, n in ((1, 301, 77), (8, 1100, 130), (101, 97, 45)):
        X = rng.standard_normal((m, k)).astype(np.float32)
        X[:, 0] = 5.0  # absmax column: code 127 in every row
        cols = rng.choice(np.arange(1, k), min(n_out, k - 1), replace=False)
        X[rng.integers(0, m, cols.size), cols] = 9.0
        W = rng.standard_normal((n, k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        Wq = matkern.int8_quantize(W)
        new = matkern.int8_matmul(X, Wq, bias=b, threshold=threshold)
        monkeypatch.setenv("MATKERN_INT8_TILE", "vpdpwssd")
        old = matkern.int8_matmul(X, Wq, bias=b, threshold=threshold)
        monkeypatch.delenv("MATKERN_INT8_TILE")
        np.testing.assert_array_equal(new, old)
        ref = matkern.reference.int8_matmul(X, Wq.codes, Wq.scale, threshold, b)
        if threshold == 0 or n_out == 0:  # no float32 outlier product: bit-identical too
            np.testing.assert_array_equal(new, ref)


def test_outlier_columns_follow_the_reference():
    """The columns the CPU path leaves to the float product: any |x| >= threshold (equality
    included, compared in float32), NaN never, one row or many."""
    cpu = _cpu_or_skip()
    X = np.zeros((3, 2100), np.float32)
    X[0, 5], X[1, 2099], X[2, 7], X[0, 1500] = (
        6.0,
        -6.0,
        np.nan,
        np.nextafter(6.0, 0, dtype=np.float32),
    )
    X[2, 1024] = np.inf
    for rows in (X[:1], X):
        got = cpu.int8_outlier_columns(np.ascontiguousarray(rows), 6.0)
        np.testing.assert_array_equal(got, matkern.reference.int8_outlier_columns(rows, 6.0))
    assert cpu.int8_outlier_columns(X, 0.0).size == 0
    # a threshold that is positive but rounds to float32 zero: every non-NaN column
    np.testing.assert_array_equal(
        cpu.int8_outlier_columns(X, 1e-50), matkern.reference.int8_outlier_columns(X, 1e-50)
    )


def test_weight_holds_one_layout_and_makes_the_other_once():
    """A weight quantized where the path runs carries only its layout (no packing at the
    first call; nbytes counts what is held); its codes, and the int16-pair panels made from
    them on first use (other tiles, to_device), are the quantized codes."""
    _vnni_or_skip()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((130, 9)).astype(np.float32)
    Wq = matkern.int8_quantize(W)
    assert Wq._pairs is None and Wq._vnni is not None
    layout = Wq._vnni
    matkern.int8_matmul(np.ones((2, 9), np.float32), Wq)
    assert Wq._vnni is layout and Wq._pairs is None
    assert Wq.nbytes == Wq.scale.nbytes + 144 * 12 + 144 * 4
    codes = matkern.reference.int8_quantize_rowwise(W)[0]
    np.testing.assert_array_equal(Wq.codes, codes)
    np.testing.assert_array_equal(Wq._packed, int8_mod._cpu_pack(codes))
    assert Wq.nbytes == Wq.scale.nbytes + 144 * 12 + 144 * 4 + Wq._pairs.nbytes


_TILE_CODE = (
    "import sys, numpy as np, matkern; rng=np.random.default_rng(3); out={}\n"
    "for m, k, n in ((1, 3, 5), (6, 1027, 65), (97, 130, 200)):\n"
    "    X=rng.standard_normal((m, k)).astype(np.float32); X[:, 1] *= 30\n"
    "    W=rng.standard_normal((n, k)).astype(np.float32)\n"
    "    A=rng.integers(-128, 128, (m, k), dtype=np.int8)\n"
    "    out[f'y{m}']=matkern.int8_matmul(X, matkern.int8_quantize(W))\n"
    "    out[f'C{m}']=matkern.int8_gemm(A, A[::-1])\n"
    "print(matkern.backends()['simd']); np.savez(sys.argv[1], **out)\n"
)


def test_vpdpwssd_tile_selectable_and_identical(monkeypatch):
    """MATKERN_INT8_TILE=vpdpwssd in a fresh process: the previous AVX-512 tile runs and
    gives the portable results, as the default vpdpbusd path does."""
    portable = simd_level_run("portable", _TILE_CODE, ".npz")
    monkeypatch.setenv("MATKERN_INT8_TILE", "vpdpwssd")
    old = simd_level_run("avx512_vnni", _TILE_CODE, ".npz")
    monkeypatch.delenv("MATKERN_INT8_TILE")
    new = simd_level_run("avx512_vnni", _TILE_CODE, ".npz")
    for key in portable.files:
        np.testing.assert_array_equal(old[key], portable[key], err_msg=key)
        np.testing.assert_array_equal(new[key], portable[key], err_msg=key)


@pytest.mark.parametrize("n", [1, 15, 17, 63, 64, 65, 130, 200])
def test_weight_columns_from_the_layout_equal_the_reference(n):
    """int8_vnni_columns (512-bit loads of a column's 64-row runs): the dequantized weight
    columns bit for bit as reference.dequantize_rows makes them, for columns at every byte of
    a quad, N ending in a partial super-panel or a partial 16-row group, subnormal scales."""
    cpu = _cpu_or_skip()
    _vnni_or_skip()
    rng = np.random.default_rng(n)
    k = 23
    codes = rng.integers(-127, 128, (n, k), dtype=np.int8)
    scale = (rng.random(n) * 3).astype(np.float32)
    scale[::7] = np.float32(1e-40)  # subnormal: scale / 127 in float32 would lose bits
    wv, _ = int8_mod._vnni_pack(codes)
    cols = np.array([0, 1, 2, 3, 6, 13, 22], np.int64)
    wot = np.empty((cols.size, n), np.float32)
    cpu.int8_vnni_columns(wv, n, scale, cols, wot)
    want = matkern.reference.int8.dequantize_rows(codes[:, cols], scale).T
    np.testing.assert_array_equal(wot, want)


def test_outlier_columns_across_blocks_and_tails():
    """The 16-column masks of the flag blocks (1024 columns): widths that end inside a group
    of 16, one column, many rows; every NaN/Inf/threshold placement against the reference."""
    cpu = _cpu_or_skip()
    rng = np.random.default_rng(5)
    for m, k in ((1, 1), (1, 15), (3, 17), (2, 1023), (5, 1024), (4, 1025), (33, 3000)):
        X = rng.standard_normal((m, k)).astype(np.float32)
        idx = rng.integers(0, m * k, max(1, m * k // 50))
        X.reshape(-1)[idx] = rng.choice([6.0, -6.0, 7.5, np.nan, np.inf, -np.inf, 5.999], idx.size)
        np.testing.assert_array_equal(
            cpu.int8_outlier_columns(X, 6.0), matkern.reference.int8_outlier_columns(X, 6.0)
        )


def test_fused_call_or_the_columns_handed_back():
    """int8_matmul_vnni_auto: with few outlier columns the whole product in one call (None
    back, out written); with more than max_cols (or rows x columns above max_work) out is
    left alone and the columns come back. Shapes that disagree raise ValueError."""
    cpu = _cpu_or_skip()
    _vnni_or_skip()
    rng = np.random.default_rng(9)
    m, k, n = 5, 300, 70
    X = rng.standard_normal((m, k)).astype(np.float32)
    X[0, [3, 100, 299]] = 8.0
    Wq = matkern.int8_quantize(rng.standard_normal((n, k)).astype(np.float32))
    wv, corr = Wq._vnni_layout()
    want = matkern.reference.int8_matmul(X, Wq.codes, Wq.scale, 6.0, None)
    out = np.zeros((m, n), np.float32)
    assert cpu.int8_matmul_vnni_auto(X, 6.0, 64, 16384, wv, corr, n, Wq.scale, None, out) is None
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)  # float32 outlier sums
    np.testing.assert_array_equal(out, matkern.int8_matmul(X, Wq, threshold=6.0))
    for max_cols, max_work in ((2, 16384), (64, 14)):
        out = np.zeros((m, n), np.float32)
        cols = cpu.int8_matmul_vnni_auto(
            X, 6.0, max_cols, max_work, wv, corr, n, Wq.scale, None, out
        )
        np.testing.assert_array_equal(cols, [3, 100, 299])
        assert not out.any()
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cpu.int8_matmul_vnni_auto(X, 6.0, 64, 16384, wv, corr, n, Wq.scale, None, out[:, :-1])
    with pytest.raises(ValueError, match="bias size"):
        cpu.int8_matmul_vnni_auto(X, 6.0, 64, 16384, wv, corr, n, Wq.scale, Wq.scale[:3], out)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 20),
    st.integers(1, 300),
    st.integers(1, 150),
    st.integers(0, 80),
    st.sampled_from([0.0, 3.0, 6.0]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_property_fused_call_equals_the_vpdpwssd_tile(m, k, n, n_hot, threshold, bad_row, seed):
    """Any shape, number of outlier columns (the fused epilogue up to 64, the BLAS addend past
    it), threshold, and a row holding NaN or Inf: the one-call vpdpbusd route equals the
    vpdpwssd tile's route bit for bit."""
    _vnni_or_skip()
    import os

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, k)).astype(np.float32)
    hot = rng.choice(k, min(n_hot, k), replace=False)
    X[rng.integers(0, m, hot.size), hot] = rng.choice([-9.0, 7.0, 40.0], hot.size)
    if bad_row:
        X[rng.integers(0, m), rng.integers(0, k)] = rng.choice([np.nan, np.inf])
    Wq = matkern.int8_quantize(rng.standard_normal((n, k)).astype(np.float32))
    new = matkern.int8_matmul(X, Wq, threshold=threshold)
    os.environ["MATKERN_INT8_TILE"] = "vpdpwssd"
    try:
        old = matkern.int8_matmul(X, Wq, threshold=threshold)
    finally:
        del os.environ["MATKERN_INT8_TILE"]
    np.testing.assert_array_equal(new, old)


def test_inf_in_many_outlier_columns_warns_nothing():
    """More outlier columns than the epilogue takes (the BLAS addend) with an Inf among them:
    that row is Inf/NaN, the others finite, and no NumPy warning (as with few columns)."""
    _cpu_or_skip()
    rng = np.random.default_rng(11)
    X = rng.standard_normal((3, 200)).astype(np.float32)
    X[0, :70] = 8.0  # 70 outlier columns: more than the fused epilogue's 64
    X[1, 5] = np.inf
    W = rng.standard_normal((40, 200)).astype(np.float32)
    W[:, 5] = 0.0  # inf * 0: NumPy's "invalid value" case
    Wq = matkern.int8_quantize(W)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Y = matkern.int8_matmul(X, Wq)
    assert not np.isfinite(Y[1]).any() and np.isfinite(Y[[0, 2]]).all()
