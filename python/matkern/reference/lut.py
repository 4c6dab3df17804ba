"""Reference (plain NumPy) for LUT-quantized weights: the definition of correct.

A weight matrix W (N out_features x K in_features) is cut into groups of ``group_size``
consecutive inputs per row. Each group gets one float32 scale ``s = max|W_group| / r`` with
``r`` the table's reach ``max|table|``. Each weight becomes the index of the
table value nearest to ``W / s`` (ties go to the smaller value), and dequantizes to
``table[code] * s`` in float32.

These functions work on plain arrays (codes as one uint8 per weight); ``matkern.lut_quantize``
wraps them into a packed :class:`matkern.LUTWeight` for the kernels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lut_table", "lut_quantize_codes", "lut_dequantize_codes", "lut_matmul_codes"]

# bitsandbytes' NormalFloat-4 table (quantiles of N(0, 1) scaled to [-1, 1], exact 0).
NF4 = np.array(
    [
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ],
    dtype=np.float32,
)

# fp4 e2m1 (OCP MX): sign, 2 exponent bits, 1 mantissa bit; codes 0-7 positive, 8-15 negative
# (code 8 is -0.0).
FP4 = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
    dtype=np.float32,
)


def lut_table(table, bits):
    """(values, reach): the float32 table of ``2**bits`` values and the divisor of the scale.

    ``table`` is "int" (the uniform symmetric grid j - (2**bits - 1)/2, j = 0 .. 2**bits-1:
    -7.5 .. 7.5 in steps of 1 for 4 bits, -1.5, -0.5, 0.5, 1.5 for 2 bits; all codes used,
    no exact zero), "fp4" (e2m1, bits=4), "nf4" (NormalFloat, bits=4) or an array of 2**bits
    finite values. The reach (scale divisor) is max|value|, which must be > 0.
    """
    n = 1 << bits
    if isinstance(table, str):
        if table == "int":
            return (np.arange(n) - (n - 1) / 2).astype(np.float32), (n - 1) / 2
        if table == "fp4":
            return FP4.copy(), 6.0
        if table == "nf4":
            return NF4.copy(), 1.0
        raise ValueError(f"unknown table {table!r}")
    t = np.asarray(table, dtype=np.float32).reshape(-1)
    return t, float(np.abs(t).max())


def _nearest(v, values):
    """Index of the entry of ``values`` nearest to each element of v (ties: smaller value)."""
    order = np.argsort(values, kind="stable")
    s = values[order].astype(np.float64)
    mids = (s[:-1] + s[1:]) / 2
    pos = np.searchsorted(mids, v.astype(np.float64), side="left")
    return order[pos].astype(np.uint8)


_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32, 2^-126


def check_quantizable(W, values, reach, fn="lut_quantize"):
    """Raise ValueError where W (finite, any float dtype) cannot be quantized into ``values``
    with float32 scales: |W| beyond the float32 range, a group scale max|W_group| / reach
    (or reach * scale, the largest dequantized value) overflowing float32, or a normal-range
    group whose scale would underflow so far that its rounding error (up to reach * 2^-150)
    exceeds 2^-10 of max|W_group| (only a custom table with a huge range can do that; groups
    of subnormal weights are kept, with that absolute error)."""
    if W.size == 0:
        return
    mx = max(float(W.max()), -float(W.min()))  # two reductions, no temporary as large as W
    if mx > _F32_MAX:
        raise ValueError(
            f"{fn}(): W must be within the float32 range (|W| <= {_F32_MAX:.8g}), "
            f"as its dequantized values are float32, got max |W| = {mx:.6g}"
        )
    if mx / reach > _F32_MAX or np.isinf(np.float32(reach) * np.float32(mx / reach)):
        raise ValueError(
            f"{fn}(): the group scale max|W_group| / max|table| must fit float32, "
            f"got max |W| = {mx:.6g} / max|table| = {reach:.6g} = "
            f"{mx / reach:.6g} (> {_F32_MAX:.8g}): scale W down or use a table "
            f"with a wider range"
        )


def _check_underflow(mx, reach, fn):
    """mx: float64 group maxima. See check_quantizable."""
    bad = (mx >= _F32_TINY) & (reach * 2.0**-150 > mx * 2.0**-10)
    if bad.any():
        m = float(mx[bad].min())
        raise ValueError(
            f"{fn}(): the group scale max|W_group| / max|table| must not "
            f"underflow float32, got max|W_group| = {m:.6g} / max|table| = "
            f"{reach:.6g} = {m / reach:.6g} (the scale would lose its precision "
            f"below {_F32_TINY:.6g}): use a table with a smaller range"
        )


def quantize_rows(W, values, reach, group_size, fn="lut_quantize"):
    """(codes uint8 (n, K), scales float32 (n, K // group_size)) for rows W (any float dtype,
    finite, checked by check_quantizable). The scale is max|W_group| / reach rounded once to
    float32 (computed in float64, so float64 weights keep their precision); the codes are the
    table values nearest W / scale for the stored scale (float64 quotient)."""
    n, K = W.shape
    G = np.asarray(W).reshape(n, K // group_size, group_size).astype(np.float64)
    mx = np.abs(G).max(axis=-1)
    _check_underflow(mx, reach, fn)
    scales = (mx / reach).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1)).astype(np.float64)
    G /= safe[..., None]
    codes = _nearest(G, values).reshape(n, K)
    return codes, scales


def lut_quantize_codes(W, bits, group_size, table):
    """(codes uint8 (N, K), scales float32 (N, K // group_size), table float32 (2**bits,)).

    K must be a multiple of group_size. A group of zeros gets scale 0 (and the code of the
    table value nearest 0). Scales are max|W_group| / reach rounded once to float32, codes
    the nearest table values to W / scale (in float64). ValueError where W is beyond the
    float32 range or a scale would overflow (or, for a custom table, lose its precision).
    """
    values, reach = lut_table(table, bits)
    W = np.asarray(W)
    if W.dtype.kind != "f":
        W = W.astype(np.float32)
    check_quantizable(W, values, reach)
    codes, scales = quantize_rows(W, values, reach, group_size)
    return codes, scales, values


def lut_dequantize_codes(codes, scales, table):
    """Float32 (N, K) matrix ``table[codes] * scale`` of each group."""
    N, K = codes.shape
    gs = K // scales.shape[1]
    w = np.asarray(table, np.float32)[codes].reshape(N, K // gs, gs) * scales[..., None]
    return w.reshape(N, K).astype(np.float32)


def lut_matmul_codes(X, codes, scales, table, bias=None):
    """``X @ dequant(W).T (+ bias)`` computed in float32; returns float32 (M, N)."""
    W = lut_dequantize_codes(codes, scales, table)
    y = np.asarray(X, np.float32) @ W.T
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    return y.astype(np.float32)
