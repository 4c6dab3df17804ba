"""The fused rotate + quantize routes (python/matkern/_rotate_quant.py, cpp/rotate_quant.cpp)
and the FJLT over m * 2^k transforms (``FJLT(padding="hadamard")``).

Tolerances:
- int8_matmul / lut_matmul with a rotated weight on the CPU: bit-identical (``array_equal``)
  to the unfused composition, the rotation applied by ``HadamardRotation.apply`` and the plain
  matmul called on the rotated X with the same codes. The fused kernel runs the same row
  kernels in the same order (and rounds float16 input's rotation to float16 as the unfused
  path does), so any difference is a bug, at every SIMD level.
- The float16 rounding helper: exact against NumPy's ``astype(float16)``.
- FJLT(padding="hadamard") against the dense float64 formula ``scale * P @ H_n'[:, :d] @
  diag(signs)``: each output sums (m + log2 p) levels of +-x additions and then a gather of
  nnz_row products, so its error is at most (m + log2 p + nnz_row) * u * ||x||_1 * max|P| *
  scale; the tests allow 1e-4 relative to the largest output (float32; m <= 60, nnz_row <=
  a few hundred: the bound is ~4e-5) and 1e-10 for float64.
"""

import numpy as np
import pytest

import matkern
from conftest import _backend_params, simd_level_run, to_backend, to_numpy
from matkern import _quant_api, _rotate_quant
from matkern.int8 import Int8Weight

SHAPES = [(384, 1), (384, 7), (256, 3), (80, 2), (4096, 2), (60, 33)]


def _data(k, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, k)).astype(dtype)
    X[:, 3] *= 20.0
    W = rng.standard_normal((40, k)).astype(np.float32)
    return X, W


def _unrotated(Wq):
    """The same codes and scales without the rotation (the unfused composition's weight),
    sharing the layouts Wq holds (none is built)."""
    return Int8Weight(Wq.shape, Wq.scale, Wq._pairs, Wq.device, None, vnni=Wq._vnni)


@pytest.mark.parametrize("k,m", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("randomized", [True, False])
def test_int8_fused_equals_the_composition(k, m, dtype, randomized):
    X, W = _data(k, m, dtype)
    rot = matkern.HadamardRotation(k, random_state=3, randomized=randomized)
    assert _rotate_quant.fusable(rot, "cpu")
    Wq = matkern.int8_quantize(W, rotation=rot)
    bias = np.linspace(-1, 1, 40).astype(np.float32)
    Y = matkern.int8_matmul(X, Wq, bias=bias, threshold=0.0)
    Xr = _quant_api.rotate(X, rot)  # the unfused rotation (float16: rounded)
    manual = matkern.int8_matmul(Xr, _unrotated(Wq), bias=bias, threshold=0.0)
    assert Y.dtype == dtype and np.array_equal(Y, manual)


def test_int8_fused_with_threshold_keeps_the_outlier_semantics():
    """threshold > 0: rows whose rotated absmax stays below it take the fused route, and a
    rotated outlier (or a non-finite row) sends the call to the unfused route, which
    decomposes the outlier columns as before: equal to the composition either way."""
    rot = matkern.HadamardRotation(384, random_state=0)
    X, W = _data(384, 5, np.float32)
    Wq = matkern.int8_quantize(W, rotation=rot)
    for scale, threshold in [(0.1, 6.0), (1.0, 6.0), (1.0, 1.0)]:
        Xs = X * np.float32(scale)
        Y = matkern.int8_matmul(Xs, Wq, threshold=threshold)
        manual = matkern.int8_matmul(rot.apply(Xs), _unrotated(Wq), threshold=threshold)
        assert np.array_equal(Y, manual)
    Xn = X.copy()
    Xn[2, 5] = np.inf
    with np.errstate(invalid="ignore"):  # the Inf, rotated into every column, meets zeros
        Y = matkern.int8_matmul(Xn, Wq, threshold=6.0)
        manual = matkern.int8_matmul(rot.apply(Xn), _unrotated(Wq), threshold=6.0)
    assert np.array_equal(Y, manual, equal_nan=True)
    assert not np.isfinite(Y[2]).any() and np.isfinite(Y[[0, 1, 3, 4]]).all()


@pytest.mark.parametrize("k,m", [(384, 1), (384, 5), (256, 2), (96, 3), (4096, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lut_fused_equals_the_composition(k, m, dtype):
    X, W = _data(k, m, dtype, seed=1)
    rot = matkern.HadamardRotation(k, random_state=5)
    qw = matkern.lut_quantize(W, 4, min(128, k), "nf4", rotation=rot)
    Y = matkern.lut_matmul(X, qw)
    plain = matkern.lut_quantize(W, 4, min(128, k), "nf4", rotation=rot)
    plain.rotation = None  # same codes, no rotation: the composition's weight
    manual = matkern.lut_matmul(_quant_api.rotate(X, rot), plain)
    assert Y.dtype == dtype and np.array_equal(Y, manual)


@pytest.mark.parametrize("level", ["portable", "avx2", "avx512_vnni"])
def test_fused_equals_the_composition_at_every_simd_level(level):
    code = (
        "import sys, numpy as np, matkern\n"
        "from matkern.int8 import Int8Weight\n"
        "rng = np.random.default_rng(0)\n"
        "out = []\n"
        "for k in (384, 1024, 80):\n"
        "    X = rng.standard_normal((9, k)).astype(np.float32)\n"
        "    W = rng.standard_normal((24, k)).astype(np.float32)\n"
        "    rot = matkern.HadamardRotation(k, random_state=1)\n"
        "    Wq = matkern.int8_quantize(W, rotation=rot)\n"
        "    plain = Int8Weight(Wq.shape, Wq.scale, Wq._pairs, 'cpu', None, vnni=Wq._vnni)\n"
        "    Y = matkern.int8_matmul(X, Wq, threshold=0.0)\n"
        "    vnni = matkern._dispatch.cpu().int8_vnni_enabled()\n"
        "    only_held = (Wq._pairs is None) if vnni else (Wq._vnni is None)\n"
        "    M = matkern.int8_matmul(rot.apply(X), plain, threshold=0.0)\n"
        "    qw = matkern.lut_quantize(W, 4, 32, 'nf4', rotation=rot)\n"
        "    L = matkern.lut_matmul(X, qw)\n"
        "    qw.rotation = None\n"
        "    L2 = matkern.lut_matmul(rot.apply(X), qw)\n"
        "    out.append([np.array_equal(Y, M), np.array_equal(L, L2), only_held])\n"
        "np.save(sys.argv[1], np.array(out))\n"
        "print(matkern.backends()['simd'])\n"
    )
    assert simd_level_run(level, code).all()


def _vnni_or_skip():
    if not matkern._dispatch.cpu().int8_vnni_enabled():
        pytest.skip("this CPU or build has no AVX-512 VNNI (or MATKERN_INT8_TILE=vpdpwssd)")


@pytest.mark.parametrize("k,m", [(384, 7), (4096, 2), (80, 13), (1024, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_int8_fused_vnni_route_builds_no_pair_layout(k, m, dtype):
    """Where vpdpbusd runs, the fused rotated call quantizes into u8 codes for the weight's
    VNNI layout: the int16-pair panels are never built (the weight's bytes stay the same), and
    the result equals the composition bit for bit (k = 1024, 4096: the padded row stride)."""
    _vnni_or_skip()
    X, W = _data(k, m, dtype, seed=2)
    rot = matkern.HadamardRotation(k, random_state=4)
    Wq = matkern.int8_quantize(W, rotation=rot)
    held = Wq.nbytes
    assert Wq._pairs is None
    bias = np.linspace(-2, 2, 40).astype(np.float32)
    Y = matkern.int8_matmul(X, Wq, bias=bias, threshold=0.0)
    Y6 = matkern.int8_matmul(X * dtype(0.01), Wq, threshold=6.0)  # fused: no rotated outlier
    assert Wq._pairs is None and Wq.nbytes == held
    manual = matkern.int8_matmul(_quant_api.rotate(X, rot), _unrotated(Wq), bias=bias, threshold=0)
    manual6 = matkern.int8_matmul(_quant_api.rotate(X * dtype(0.01), rot), _unrotated(Wq))
    assert np.array_equal(Y, manual) and np.array_equal(Y6, manual6)
    assert Wq._pairs is None and Wq.nbytes == held


def test_int8_fused_pair_route_under_the_vpdpwssd_tile(monkeypatch):
    """MATKERN_INT8_TILE=vpdpwssd (read per call) on a weight that holds only the VNNI layout:
    the fused call takes the int16 route (building the pair panels) and still equals the
    composition."""
    _vnni_or_skip()
    X, W = _data(384, 5, np.float32, seed=3)
    rot = matkern.HadamardRotation(384, random_state=6)
    Wq = matkern.int8_quantize(W, rotation=rot)
    monkeypatch.setenv("MATKERN_INT8_TILE", "vpdpwssd")
    Y = matkern.int8_matmul(X, Wq, threshold=0.0)
    assert Wq._pairs is not None
    manual = matkern.int8_matmul(rot.apply(X), _unrotated(Wq), threshold=0.0)
    monkeypatch.delenv("MATKERN_INT8_TILE")
    assert np.array_equal(Y, manual)
    assert np.array_equal(matkern.int8_matmul(X, Wq, threshold=0.0), Y)


def test_float16_rounding_matches_numpy():
    """round_f16 of the kernels on n = 1 (no transform: z = x): every float32 class, ties
    included, rounds as NumPy's astype(float16)."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    special = np.float32(
        [0.0, -0.0, 65504.0, 65519.99, 65520.0, 6.1e-5, 2.0**-14, 2.0**-24, 2.0**-25, 3 * 2.0**-25]
    )
    ties = (np.arange(1, 2049, dtype=np.float32) + 0.5) * np.float32(2.0**-10)  # halfway values
    x = np.concatenate([x, special, -special, ties, x * np.float32(2.0**-100)])
    x = np.concatenate([x, np.ldexp(rng.random(50_000, np.float32), rng.integers(-30, 17, 50_000))])
    out = np.empty((x.size, 1), np.float32)
    matkern._cpu.rotate_rows_padded(x[:, None], None, None, 1, 1, True, out)
    with np.errstate(over="ignore"):
        expect = x.astype(np.float16).astype(np.float32)
    assert np.array_equal(out[:, 0], expect)


def _dense_fjlt(t, X):
    n = t.padded_features_
    H = matkern.hadamard_matrix(n) / np.sqrt(n)
    Z = np.zeros((X.shape[0], n))
    Z[:, : X.shape[1]] = X.astype(np.float64) * t.signs_
    return t.scale_ * (t.projection_ @ (H @ Z.T)).T


@pytest.mark.parametrize("d,dpad", [(384, 384), (100, 104), (1536, 1536), (64, 64), (13, 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fjlt_hadamard_padding_matches_the_dense_formula(d, dpad, dtype, backend):
    X = np.random.default_rng(2).standard_normal((40, d)).astype(dtype)
    t = matkern.FJLT(8, random_state=4, padding="hadamard", backend=backend).fit(X)
    assert t.padded_features_ == dpad
    Y = to_numpy(t.transform(to_backend(X, backend)))
    expect = _dense_fjlt(t, X)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert Y.dtype == dtype
    np.testing.assert_allclose(Y, expect, rtol=tol, atol=tol * np.abs(expect).max())
    np.testing.assert_allclose(
        X.astype(np.float64) @ t.components_.T, expect, rtol=tol, atol=tol * np.abs(expect).max()
    )


def test_fjlt_hadamard_padding_preserves_norms_and_default_is_unchanged():
    X = np.random.default_rng(3).standard_normal((200, 384))
    Y = matkern.FJLT(256, random_state=0, padding="hadamard").fit_transform(X)
    ratio = np.linalg.norm(Y, axis=1) / np.linalg.norm(X, axis=1)
    assert 0.8 < np.median(ratio) < 1.2
    assert matkern.FJLT(16, random_state=0).fit(X).padded_features_ == 512


def test_fjlt_bad_padding():
    X = np.ones((4, 12))
    with pytest.raises(ValueError, match="padding"):
        matkern.FJLT(4, padding="pow3").fit(X)


def test_the_fused_routes_rotate_no_separate_array(monkeypatch):
    """int8_matmul (threshold 0, or no outlier) and lut_matmul with a rotated weight on the
    CPU never call the unfused rotation (which makes a new rotated array)."""
    X, W = _data(384, 3, np.float32)
    rot = matkern.HadamardRotation(384, random_state=0)
    Wq = matkern.int8_quantize(W, rotation=rot)
    qw = matkern.lut_quantize(W, 4, 128, "nf4", rotation=rot)

    def boom(x, rotation):
        raise AssertionError("unfused rotation called")

    monkeypatch.setattr(_quant_api, "rotate", boom)
    matkern.int8_matmul(X, Wq, threshold=0.0)
    matkern.int8_matmul(X * np.float32(0.01), Wq)  # threshold 6, no rotated |x| reaches it
    matkern.lut_matmul(X, qw)
    with pytest.raises(AssertionError, match="unfused"):
        matkern.int8_matmul(X * np.float32(100), Wq)  # outliers: the unfused route


GPU = [p for p in _backend_params() if p.values[0] == "cuda"]


@pytest.mark.parametrize("device", GPU)
@pytest.mark.parametrize("k,m", [(384, 1), (384, 19), (4096, 3), (96, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_gpu_fused_routes_match_the_cpu(device, k, m, dtype):
    """The GPU kernel transforms in the CPU kernels' order (H_m sums j ascending, the same
    butterflies), so its rotated rows and int8 codes equal the CPU's; what is left is the
    GEMMs' float rounding (int8: the same exact int32 sums and double epilogue; LUT:
    float16 tensor-core products): rtol 1e-6 (int8, float32 out) / 2e-3 (float16 out, LUT)."""
    X, W = _data(k, m, dtype, seed=4)
    rot = matkern.HadamardRotation(k, random_state=6)
    Wq = matkern.int8_quantize(W, rotation=rot)
    qw = matkern.lut_quantize(W, 4, min(128, k), "nf4", rotation=rot)
    cpu_int8 = matkern.int8_matmul(X, Wq, threshold=0.0).astype(np.float64)
    cpu_lut = matkern.lut_matmul(X, qw).astype(np.float64)
    Xb = to_backend(X, device)
    got_int8 = to_numpy(matkern.int8_matmul(Xb, Wq.to_device(device), threshold=0.0)).astype(
        np.float64
    )
    got_lut = to_numpy(matkern.lut_matmul(Xb, qw.to_device(device))).astype(np.float64)
    scale = np.abs(cpu_int8).max()
    tol = 1e-6 if dtype == np.float32 else 2e-3
    np.testing.assert_allclose(got_int8, cpu_int8, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(got_lut, cpu_lut, rtol=2e-3, atol=2e-3 * np.abs(cpu_lut).max())
