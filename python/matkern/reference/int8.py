"""Reference (plain NumPy) for LLM.int8(): the definition of correct for the int8 family.

Semantics as bitsandbytes' LLM.int8(): row-wise absmax quantization, q = rint(x * 127 / absmax)
(computed as ``x * (127 / absmax)`` in float32, the order the kernels use; rows with absmax
below 2^-64 first multiplied by 2^100, exactly), int8 x int8 summed exactly, out = C *
rowscale_X * rowscale_W / 127^2 (in float64, rounded once to float32) + bias, plus the float
product of the outlier feature columns (any |x| >= threshold) against the dequantized weight
columns.
"""

from __future__ import annotations

import numpy as np

__all__ = ["int8_quantize_rowwise", "int8_outlier_columns", "int8_matmul", "int8_gemm"]

_INV127SQ = 1.0 / (127.0 * 127.0)
# Rows with absmax below TINY are multiplied by PRE (an exact power of two) before 127 / absmax
# is taken, which overflows float32 below ~3.7e-37: the codes equal the plain formula's
# wherever that one is finite, and tiny rows keep their codes instead of overflowing.
TINY = np.float32(2.0**-64)
PRE = np.float32(2.0**100)


def int8_quantize_rowwise(X):
    """Row-wise absmax quantization of a 2-D float array.

    Returns ``(codes, absmax)``: int8 codes in [-127, 127] and the float32 absmax per row.
    An all-zero row has absmax 0 and zero codes; a row holding NaN or Inf has absmax NaN and
    zero codes (its output row is then NaN).
    """
    X = np.asarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)
    absmax = np.abs(np.where(np.isfinite(X), X, 0)).max(axis=1, initial=0).astype(np.float32)
    safe = np.where(absmax > 0, absmax, np.float32(1))
    pre = np.where(safe < TINY, PRE, np.float32(1)).astype(np.float32)
    inv = (np.float32(127) / (safe * pre)).astype(np.float32)
    scaled = np.where(np.isfinite(X), X, 0) * pre[:, None]
    codes = np.rint(scaled * inv[:, None]).astype(np.int8)
    codes[~finite] = 0
    codes[absmax == 0] = 0
    absmax = np.where(finite, absmax, np.float32(np.nan)).astype(np.float32)
    return codes, absmax


def dequantize_rows(codes, scale, xp=np):
    """float32 codes * scale / 127, row by row, computed in float64 and rounded once: scale / 127
    in float32 would round a subnormal scale to very few bits first."""
    w = codes.astype(xp.float64) * (scale.astype(xp.float64) / 127.0)[:, None]
    return w.astype(xp.float32)


def int8_outlier_columns(X, threshold):
    """Indices (int64, ascending) of the columns of X with any |x| >= threshold; none if
    threshold == 0. NaN is never an outlier (its row becomes NaN through the int8 path)."""
    if threshold <= 0 or X.shape[0] == 0:
        return np.zeros(0, np.int64)
    X = np.asarray(X, dtype=np.float32)
    hit = (np.abs(X) >= np.float32(threshold)).any(axis=0)
    return np.flatnonzero(hit).astype(np.int64)


def int8_matmul(X, codes, scale, threshold=6.0, bias=None):
    """X (M, K) float @ W.T for W given as int8 ``codes`` (N, K) and float32 ``scale`` (N)
    (W ~ codes * scale / 127). Result (M, N) in X's dtype."""
    Xf = np.asarray(X, dtype=np.float32)
    cols = int8_outlier_columns(Xf, threshold)
    Xi = Xf.copy()
    Xi[:, cols] = 0
    q, sx = int8_quantize_rowwise(Xi)
    C = q.astype(np.int64) @ codes.astype(np.int64).T
    out = (
        C.astype(np.float64)
        * (sx.astype(np.float64)[:, None] * _INV127SQ)
        * scale.astype(np.float64)[None, :]
    ).astype(np.float32)
    if bias is not None:
        out = out + np.asarray(bias, np.float32)[None, :]
    if cols.size:
        wo = dequantize_rows(codes[:, cols], scale)
        out = out + Xf[:, cols] @ wo.T
    return out.astype(X.dtype)


def int8_gemm(A, B):
    """Exact product A (M, K) int8 @ B.T (B is (N, K) int8), as int32 (computed in int64)."""
    return (np.asarray(A).astype(np.int64) @ np.asarray(B).astype(np.int64).T).astype(np.int32)
