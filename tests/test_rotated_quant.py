"""Rotated quantization (issue #20 item 3): int8_quantize / lut_quantize(..., rotation=Q) store
the rotated weight W Q, and int8_matmul / lut_matmul rotate X the same way.

Checks: the rotated call equals the manual composition bit for bit (same kernels on the same
rotated operands); it approximates X W^T within the quantization error of the rotated
operands (the same relative bounds as the unrotated tests: 2% for W8A8 on Gaussian data,
12% for 4-bit nf4 with groups of 128); dequantize() rotates back to W's space.
"""

import numpy as np
import pytest

import matkern


def data(n=48, k=384, m=6, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, k)).astype(np.float32)
    X = rng.standard_normal((m, k)).astype(np.float32)
    W[:, 7] *= 40.0  # an outlier feature, the case rotations are for
    X[:, 7] *= 40.0
    return W, X


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)


def test_int8_rotated_equals_the_composition_and_approximates_the_product():
    W, X = data()
    rot = matkern.HadamardRotation(384, random_state=1)
    Wq = matkern.int8_quantize(W, rotation=rot)
    assert Wq.rotation is rot
    Y = matkern.int8_matmul(X, Wq, threshold=0.0)
    manual = matkern.int8_matmul(rot.apply(X), matkern.int8_quantize(rot.apply(W)), threshold=0.0)
    assert np.array_equal(Y, manual)
    exact = X.astype(np.float64) @ W.T
    plain = matkern.int8_matmul(X, matkern.int8_quantize(W), threshold=0.0)
    assert rel(Y, exact) < 0.02 and rel(Y, exact) < rel(plain, exact)  # outlier spread
    assert rel(Wq.dequantize(), W) < 0.02
    Y3 = matkern.int8_matmul(X.reshape(2, 3, 384), Wq, threshold=0.0)
    assert np.array_equal(Y3.reshape(6, -1), Y)


def test_lut_rotated_equals_the_composition():
    W, X = data(seed=2)
    rot = matkern.HadamardRotation(384, random_state=3)
    qw = matkern.lut_quantize(W, 4, 128, "nf4", rotation=rot)
    assert qw.rotation is rot and qw.to_device("cpu").rotation is rot
    Y = matkern.lut_matmul(X, qw)
    manual = matkern.lut_matmul(rot.apply(X), matkern.lut_quantize(rot.apply(W), 4, 128, "nf4"))
    assert np.array_equal(Y, manual)
    assert rel(Y, X.astype(np.float64) @ W.T) < 0.12
    assert rel(qw.dequantize(), W) < 0.12
    assert qw.dequantize(np.float16).dtype == np.float16


def test_layers_take_a_rotation_and_float16_input():
    W, X = data(k=1536, seed=4)
    rot = matkern.HadamardRotation(1536, random_state=0)
    for layer in (
        matkern.Int8Linear(W, threshold=0.0, rotation=rot),
        matkern.LUTLinear(W, rotation=rot),
    ):
        y = layer(X)
        assert y.dtype == np.float32 and rel(y, X.astype(np.float64) @ W.T) < 0.12
        y16 = layer(X.astype(np.float16))
        assert y16.dtype == np.float16 and rel(y16, X.astype(np.float64) @ W.T) < 0.12


def test_rotation_must_fit_the_weight():
    W, _ = data()
    with pytest.raises(ValueError, match=r"rotation must have n = 384 .* got n = 512"):
        matkern.int8_quantize(W, rotation=matkern.HadamardRotation(512))
    with pytest.raises(TypeError, match="rotation must be None or a matkern.HadamardRotation"):
        matkern.lut_quantize(W, rotation=np.eye(384))
    with pytest.raises(ValueError, match=r"lut_quantize\(\): rotation must have n = 384"):
        matkern.lut_quantize(W, rotation=matkern.HadamardRotation(12))
