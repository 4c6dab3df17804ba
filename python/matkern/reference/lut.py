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

__all__ = [
    "lut_table",
    "lut_quantize_codes",
    "lut_dequantize_codes",
    "lut_matmul_codes",
    "lut_table_int8",
    "lut_matmul_int8_codes",
    "bnb_quantize",
    "bnb_dequantize",
]

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
# (code 8 is -0.0). Reach 6.
FP4_E2M1 = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
    dtype=np.float32,
)

# bitsandbytes' "fp4": its own 4-bit float (sign bit 8, then 2 exponent bits and 1 mantissa
# bit with exponent bias 2 and a subnormal 0.0625), in code order 0, 0.0625, 8, 12, 4, 6, 2, 3
# and their negatives, divided by 12 in float32 so that the reach is 1 (the scale is the
# block's absmax). Not the OCP e2m1 grid: 2/3 and 1/3 have no e2m1 counterpart.
FP4_BNB = (
    np.array(
        [0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3], dtype=np.float32
    )
    / np.float32(12)
).astype(np.float32)

# The named tables: name -> (values, reach). "int" depends on the bit width (lut_table).
NAMED = {"fp4_e2m1": (FP4_E2M1, 6.0), "fp4": (FP4_BNB, 1.0), "nf4": (NF4, 1.0)}
TABLE_NAMES = ("int", "fp4", "fp4_e2m1", "nf4")


def lut_table(table, bits):
    """(values, reach): the float32 table of ``2**bits`` values and the divisor of the scale.

    ``table`` is "int" (the uniform symmetric grid j - (2**bits - 1)/2, j = 0 .. 2**bits-1:
    -7.5 .. 7.5 in steps of 1 for 4 bits, -1.5, -0.5, 0.5, 1.5 for 2 bits; all codes used,
    no exact zero), "fp4" (bitsandbytes' fp4, bits=4, reach 1), "fp4_e2m1" (OCP e2m1,
    bits=4, reach 6), "nf4" (NormalFloat, bits=4) or an array of 2**bits finite values. The
    reach (scale divisor) is max|value|, which must be > 0.
    """
    n = 1 << bits
    if isinstance(table, str):
        if table == "int":
            return (np.arange(n) - (n - 1) / 2).astype(np.float32), (n - 1) / 2
        if table in NAMED:
            values, reach = NAMED[table]
            return values.copy(), reach
        raise ValueError(f"unknown table {table!r}")
    t = np.asarray(table, dtype=np.float32).reshape(-1)
    return t, float(np.abs(t).max())


def _nearest(v, values):
    """Index of the entry of ``values`` nearest to each element of v (ties: smaller value).
    A negative v whose nearest value is 0 takes the table's -0.0 where it has one (fp4,
    fp4_e2m1: code 8), as bitsandbytes' sign-bit quantizer does; the value is the same."""
    order = np.argsort(values, kind="stable")
    s = values[order].astype(np.float64)
    mids = (s[:-1] + s[1:]) / 2
    v = v.astype(np.float64, copy=False)
    codes = order[np.searchsorted(mids, v, side="left")].astype(np.uint8)
    neg_zero = np.flatnonzero((values == 0) & np.signbit(values))
    if neg_zero.size:
        codes[(values[codes] == 0) & (v < 0)] = neg_zero[0]
    return codes


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


def n_groups(K, group_size):
    """Groups per row: ceil(K / group_size) (the last one holds the K % group_size rest)."""
    return -(-K // group_size)


def quantize_rows(W, values, reach, group_size, fn="lut_quantize"):
    """(codes uint8 (n, K), scales float32 (n, ceil(K / group_size))) for rows W (any float
    dtype, finite, checked by check_quantizable). The last group of a row is partial when
    group_size does not divide K. The scale is max|W_group| / reach rounded once to float32
    (computed in float64, so float64 weights keep their precision); the codes are the table
    values nearest W / scale for the stored scale (float64 quotient)."""
    n, K = W.shape
    ng = n_groups(K, group_size)
    G = np.zeros((n, ng * group_size), np.float64)  # zeros past K leave each max unchanged
    G[:, :K] = W
    G = G.reshape(n, ng, group_size)
    mx = np.abs(G).max(axis=-1)
    _check_underflow(mx, reach, fn)
    scales = (mx / reach).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1)).astype(np.float64)
    G /= safe[..., None]
    codes = _nearest(G, values).reshape(n, ng * group_size)[:, :K]
    return np.ascontiguousarray(codes), scales


def lut_quantize_codes(W, bits, group_size, table):
    """(codes uint8 (N, K), scales float32 (N, ceil(K / group_size)), table float32 (2**bits,)).

    Groups of ``group_size`` consecutive columns of each row, the last one partial when
    group_size does not divide K (group_size >= K: one scale per row). A group of zeros gets scale 0 (and the code of the
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


def lut_dequantize_codes(codes, scales, table, group_size=None):
    """Float32 (N, K) matrix ``table[codes] * scale`` of each group (``group_size`` columns;
    default: K / scales.shape[1], which must then divide K exactly)."""
    N, K = codes.shape
    gs = group_size if group_size is not None else K // scales.shape[1]
    col_group = np.arange(K) // gs
    w = np.asarray(table, np.float32)[codes] * np.asarray(scales, np.float32)[:, col_group]
    return w.astype(np.float32)


def lut_matmul_codes(X, codes, scales, table, bias=None, group_size=None):
    """``X @ dequant(W).T (+ bias)`` computed in float32; returns float32 (M, N)."""
    W = lut_dequantize_codes(codes, scales, table, group_size)
    y = np.asarray(X, np.float32) @ W.T
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    return y.astype(np.float32)


def lut_table_int8(table):
    """(t8 int8, tfac float): the table as int8 codes, ``table ~= t8 / tfac``.

    Exact where some power of two 1..64 scales every value to an integer of at most 127 in
    magnitude (the smallest such one: "int" takes 2, "fp4_e2m1" 2); otherwise
    tfac = 127 / max|table| and t8 = rint(table * tfac) (nf4, fp4: a rounding of at most half
    a step of max|table| / 127 per value)."""
    t = np.asarray(table, np.float64).reshape(-1)
    mx = float(np.abs(t).max())
    for j in range(7):
        f = float(2**j)
        if mx * f <= 127 and np.all(t * f == np.rint(t * f)):
            return np.rint(t * f).astype(np.int8), f
    f = 127.0 / mx
    return np.rint(t * f).astype(np.int8), f


def lut_matmul_int8_codes(X, codes, scales, table, bias=None, group_size=None):
    """``lut_matmul(..., compute="int8")``: X quantized per row to int8 (absmax, as
    int8_matmul: reference.int8.int8_quantize_rowwise), the table to int8 (lut_table_int8),
    exact integer sums per group, then
    ``y = sum_g scale_g * S_g * absmax / 127 / tfac (+ bias)``, here in float64 and rounded
    once to float32 (the kernels sum the group terms in float32). A row holding NaN or Inf
    gives a NaN row."""
    from .int8 import int8_quantize_rowwise

    N, K = codes.shape
    gs = group_size if group_size is not None else K // scales.shape[1]
    x8, sx = int8_quantize_rowwise(np.asarray(X, np.float32))
    t8, tfac = lut_table_int8(table)
    w8 = t8[codes].astype(np.float64)  # (N, K): integers, and so is every sum below
    x8 = x8.astype(np.float64)
    sc = np.asarray(scales, np.float64)
    y = np.zeros((x8.shape[0], N))
    for g in range(-(-K // gs)):
        cols = slice(g * gs, min(K, (g + 1) * gs))
        y += (x8[:, cols] @ w8[:, cols].T) * sc[:, g]
    y *= (sx.astype(np.float64) / 127.0 / tfac)[:, None]
    y = y.astype(np.float32)
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    return y.astype(np.float32)


# ------------------------------------------------------------------ bitsandbytes' 4-bit format
# Written from bitsandbytes' documented format (quantize_4bit / dequantize_4bit), as the
# definition the conversions LUTWeight.from_bitsandbytes / to_bitsandbytes are tested against:
# the weight flattened in row-major order, blocks of ``blocksize`` consecutive values (the last
# one partial), a float32 absmax per block, the code of the table value nearest x * (1/absmax)
# (float32; ties to the smaller value), two codes per byte with the first in the high nibble.


def bnb_table(quant_type):
    """bitsandbytes' 16 values for quant_type "nf4" or "fp4" (reach 1), float32."""
    return {"nf4": NF4, "fp4": FP4_BNB}[quant_type].copy()


def bnb_quantize(W, quant_type, blocksize):
    """(packed uint8 (ceil(n/2), 1), absmax float32 (ceil(n/blocksize),)) for any-shape W."""
    x = np.asarray(W, np.float32).reshape(-1)
    n = x.size
    nb = -(-n // blocksize)
    padded = np.zeros(nb * blocksize, np.float32)
    padded[:n] = x
    blocks = padded.reshape(nb, blocksize)
    absmax = np.abs(blocks).max(axis=1)
    inv = np.float32(1) / np.maximum(absmax, np.float32(1e-38))
    scaled = np.clip(blocks * inv[:, None], -1, 1).reshape(-1)[:n]
    table = bnb_table(quant_type)
    order = np.argsort(table, kind="stable")
    bounds = (table[order][:-1] + table[order][1:]) / np.float32(2)  # float32 midpoints
    codes = order[np.searchsorted(bounds, scaled, side="left")].astype(np.uint8)
    if n % 2:
        codes = np.concatenate([codes, order[np.searchsorted(bounds, [0.0])].astype(np.uint8)])
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).reshape(-1, 1)
    return packed, absmax.astype(np.float32)


def bnb_dequantize(packed, absmax, shape, quant_type, blocksize):
    """float32 array of ``shape``: table[code] * absmax of the code's block."""
    n = int(np.prod(shape))
    b = np.asarray(packed, np.uint8).reshape(-1)
    codes = np.stack([b >> 4, b & 15], axis=1).reshape(-1)[:n]
    block = np.arange(n) // blocksize
    out = bnb_table(quant_type)[codes] * np.asarray(absmax, np.float32)[block]
    return out.astype(np.float32).reshape(shape)
