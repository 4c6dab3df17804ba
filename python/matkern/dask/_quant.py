"""Quantized inference on dask arrays of activations: the quantized weight (and the bias) sent
to each worker once, every row chunk multiplied by the single-process kernel."""

from __future__ import annotations

import uuid

import numpy as np

from .. import _checks, int8, lut
from . import _tasks

__all__ = ["int8_matmul", "lut_matmul"]


def _token(*arrays, rotation=None):
    """What identifies a weight: its host arrays and rotation, else (device arrays) a fresh
    token. The rotation counts: equal codes rotated differently are different weights."""
    if all(isinstance(a, np.ndarray) or a is None or np.isscalar(a) for a in arrays):
        rot = None if rotation is None else (rotation.n, rotation.seed, rotation.randomized)
        return (*arrays, rot)
    return uuid.uuid4().hex


@_tasks.in_worker
def _int8_rows(block, weight, threshold):
    Wq, bias = weight
    return int8.int8_matmul(block, Wq, threshold=threshold, bias=bias)


@_tasks.in_worker
def _lut_rows(block, weight, compute):
    qw, bias = weight
    return lut.lut_matmul(block, qw, bias=bias, compute=compute)


def _map_rows(fn, X, weight, n_out, *args):
    """fn(chunk, weight, *args) over the row chunks of X (..., K) -> (..., n_out)."""
    return _tasks.map_rows(fn, X, weight, *args, n_out=n_out)


def int8_matmul(X, W, *, bias=None, threshold=6.0):
    """LLM.int8() product ``X @ W.T`` (:func:`matkern.int8_matmul`) of a dask array of
    activations.

    Parameters
    ----------
    X : dask array (..., K), float32 or float16, NumPy (CPU) or CuPy (GPU) chunks; chunks
        along K are merged (each row must be whole)
    W : Int8Weight (N, K) on the chunks' device, sent to each worker once (one graph key,
        with ``bias``)
    threshold, bias : as in :func:`matkern.int8_matmul`

    Returns
    -------
    A lazy dask array (..., N) of X's dtype and chunk type, chunked like X along the leading
    axes. Each row chunk is one ``matkern.int8_matmul`` call, so a row chunk is a batch in
    the sense of the LLM.int8() decomposition: its outlier feature columns are those of the
    chunk (bitsandbytes' per-batch rule). The result is **bit-identical** to
    ``matkern.int8_matmul`` of each chunk, and to that of the whole array whenever the chunks
    agree on the outlier columns (always with ``threshold=0``).

    Example
    -------
    >>> W = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    >>> X = da.random.default_rng(1).standard_normal((1000, 32), chunks=250).astype("float32")
    >>> matkern.dask.int8_matmul(X, matkern.int8_quantize(W)).shape
    (1000, 64)
    """
    fn = "int8_matmul"
    _tasks.check_dask_array(X, "X", fn, dtypes=(np.float32, np.float16))
    if not isinstance(W, int8.Int8Weight):
        raise TypeError(f"{fn}(): W must be an Int8Weight (int8_quantize), got {type(W).__name__}")
    threshold = _checks.check_float(threshold, "threshold", fn, min_value=0.0)
    n, k = W.shape
    if X.shape[-1] != k:
        raise ValueError(f"{fn}(): X must have {k} columns (W.in_features), got shape {X.shape}")
    _check_bias(bias, n, fn)
    weight = _tasks.shared(
        (W, bias), "int8-weight", token=_token(*W._stored(), W.scale, bias, rotation=W.rotation)
    )
    return _map_rows(_int8_rows, X, weight, n, threshold)


def lut_matmul(X, W, *, bias=None, compute=None):
    """``X @ dequant(W).T (+ bias)`` (:func:`matkern.lut_matmul`) of a dask array of
    activations.

    Parameters
    ----------
    X : dask array (M, K), float32 or float16, NumPy or CuPy chunks (on W's device); chunks
        along K are merged
    W : LUTWeight (N, K), sent to each worker once (one graph key, with ``bias``)
    bias, compute : as in :func:`matkern.lut_matmul`

    Returns
    -------
    A lazy dask array (M, N) of X's dtype and chunk type, chunked like X along M. Each row
    chunk is one ``matkern.lut_matmul`` call. Its CPU kernels pick a GEMV, a blocked or a wide
    tile by the number of rows, which sum in different orders: the result agrees with the
    whole-array call to float32 rounding (1e-5 relative), and is bit-identical to the
    single-process call on each chunk.

    Example
    -------
    >>> W = matkern.lut_quantize(np.random.default_rng(0).standard_normal((256, 512), "float32"))
    >>> X = da.ones((1000, 512), chunks=(250, 512), dtype="float32")
    >>> matkern.dask.lut_matmul(X, W).chunks
    ((250, 250, 250, 250), (256,))
    """
    fn = "lut_matmul"
    _tasks.check_dask_array(X, "X", fn, dtypes=(np.float32, np.float16), ndim=2)
    if not isinstance(W, lut.LUTWeight):
        raise TypeError(f"{fn}(): W must be a LUTWeight (lut_quantize), got {type(W).__name__}")
    n, k = W.shape
    if X.shape[-1] != k:
        raise ValueError(
            f"{fn}(): X must have K = {k} columns (W's in_features), got shape {X.shape}"
        )
    _check_bias(bias, n, fn)
    if compute is not None:
        _checks.check_choice(compute, "compute", fn, lut._COMPUTE)
    token = _token(
        W.packed,
        W.scales,
        W.table,
        W.bits,
        W.group_size,
        bias,
        rotation=W.rotation,
    )
    weight = _tasks.shared((W, bias), "lut-weight", token=token)
    return _map_rows(_lut_rows, X, weight, n, compute)


def _check_bias(bias, n, fn):
    if bias is None:
        return
    _checks.check_array(bias, "bias", fn, dtypes=(np.float32, np.float16), ndim=1)
    if bias.shape[0] != n:
        raise ValueError(f"{fn}(): bias must have shape ({n},), got {bias.shape}")
