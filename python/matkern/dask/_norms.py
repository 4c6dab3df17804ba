"""Certified spectral-norm bounds on Dask: a tall array through its Gram matrix, and many
layers spread over the workers.

Tall A (n x d): each row chunk A_i is scaled by an exact power of two 2^-e_i (its largest
|entry| into [1/2, 1)) and its Gram matrix M_i = (2^-e_i A_i)^T (2^-e_i A_i) formed in
float64; a tree of combines adds them, each rescaled to the larger exponent by an exact
power of two (fan-in ``_FAN_IN``). The sum G (scaled by 2^-2E, E the largest exponent) is
then bounded by :func:`matkern.spectral_norm_bound` (Gram iteration, certified for G as
computed), and the rounding of the distributed sum is added back:

Margin. Every entry of G is a sum of n products a_rj a_rk computed in some order (BLAS inside
a chunk, the tree across chunks): whatever the order, |G - A_s^T A_s| <= gamma_n |A_s|^T |A_s|
entrywise (Higham, Accuracy and Stability, Thm. 3.1 / (3.5) for any summation tree;
gamma_n = n u / (1 - n u), u = 2^-53; the products of float32 input are exact, of float64 input
one rounding each, which gamma_n already counts), so
||G - A_s^T A_s||_2 <= ||.||_F <= gamma_n || |A_s| ||_F^2 = gamma_n ||A_s||_F^2,
and ||A_s||_F^2 <= trace(G) / (1 - gamma_n) (its terms are nonnegative). Underflow adds at most
2^-1075 per scaling, product and addition of each entry (scaled units, where every |entry| is
< 1): at most 6 n d 2^-1075 over the d x d entries in Frobenius norm, counted as well. Hence

    ||A||_2 <= 2^E sqrt(b(G) + gamma_n (trace(G) / (1 - gamma_n) + U) + U),

each step of it rounded upward, and never below the exact norm.
"""

from __future__ import annotations

import math

import dask
import numpy as np

from .. import _checks, _dispatch, gram
from . import _tasks

__all__ = ["spectral_norm_bound", "spectral_norm_bounds"]

_FAN_IN = 8
_U = 2.0**-53
_TINY = 2.0**-1075
_MAX_SIDE = 16384  # d x d float64 Gram matrices up to 2 GiB


@_tasks.in_worker
def _leaf(block):
    """(M, e, rows) of one row chunk: M = (2^-e A_i)^T (2^-e A_i) in float64, on the host;
    M None for an all-zero chunk."""
    xp = _dispatch.array_module(block)
    if not bool(xp.isfinite(block).all()):
        raise ValueError("spectral_norm_bound(): A must be finite, got NaN or Inf")
    amax = float(xp.abs(block).max()) if block.size else 0.0
    rows = int(block.shape[0])
    if amax == 0.0:
        return None, 0, rows
    e = math.frexp(amax)[1]  # amax * 2^-e in [1/2, 1)
    X = xp.ldexp(block.astype(xp.float64), -e)
    return np.asarray(_dispatch.to_host(X.T @ X)), e, rows


def _combine(*parts):
    """Sum of partial (M, e, rows): each M rescaled to the largest e by an exact power of two."""
    rows = sum(p[2] for p in parts)
    live = [p for p in parts if p[0] is not None]
    if not live:
        return None, 0, rows
    e = max(p[1] for p in live)
    M = None
    for Mi, ei, _ in live:
        Mi = Mi if ei == e else np.ldexp(Mi, 2 * (ei - e))
        M = Mi.copy() if M is None else M + Mi
    return M, e, rows


def _tree(parts):
    while len(parts) > 1:
        parts = [
            dask.delayed(_combine, pure=True)(*parts[i : i + _FAN_IN])
            for i in range(0, len(parts), _FAN_IN)
        ]
    return parts[0]


def _up(x, steps=2):
    """x rounded up by a few ulps (each float operation of the margin rounds to nearest)."""
    for _ in range(steps):
        x = math.nextafter(x, math.inf)
    return x


def certified_from_gram(M, e, n, d, n_iter):
    """The bound on ||A||_2 from the distributed Gram sum (see the module docstring)."""
    if M is None:
        return 0.0
    if n * _U >= 0.5:
        raise ValueError("spectral_norm_bound(): A has too many rows for the float64 margin")
    gamma = _up(n * _U / (1.0 - n * _U))
    under = _up(6.0 * n * d * _TINY + _TINY)
    trace = _up(float(math.fsum(np.diag(M).tolist())))
    fro2 = _up(trace / (1.0 - gamma) + under)
    if n_iter == 0:
        top = fro2
    else:
        top = gram.spectral_norm_bound(np.ascontiguousarray(M), n_iter - 1)
    total = _up(_up(top + _up(gamma * fro2)) + under)
    root = _up(math.sqrt(total))
    bound = math.ldexp(root, e)
    if math.isinf(bound):
        raise OverflowError("spectral_norm_bound(): the bound exceeds the largest float64")
    return _up(bound, 1) if bound > 0 else bound


def spectral_norm_bound(A, n_iter=6):
    """Certified upper bound on the largest singular value of a tall dask array.

    The Gram matrix A^T A = sum_i A_i^T A_i of the row chunks is formed on the workers
    (float64, each chunk first scaled by an exact power of two) and summed by a tree
    reduction; the Gram iteration then runs on the d x d sum in the client
    (:func:`matkern.spectral_norm_bound`, ``n_iter - 1`` more products: the same
    rank^(1/2^(n_iter+1)) gap as the single-process bound), and a proven margin for the
    rounding of the distributed sum is added (module docstring): the result is never below
    the exact norm, at any scale (subnormal to near overflow) and in any chunking.

    Parameters
    ----------
    A : dask array (n, d), float32 or float64, NumPy or CuPy chunks, finite; d <= 16384
        (column chunks are merged); n may be anything (a chunk's rows are summed at once)
    n_iter : int in [0, 30]; 0 gives a bound on the Frobenius norm

    Returns
    -------
    float (computed now on the active scheduler). NaN/Inf in A raise ValueError from the
    task that meets them.

    Example
    -------
    >>> A = da.random.default_rng(0).standard_normal((100000, 64), chunks=(25000, 64))
    >>> b = matkern.dask.spectral_norm_bound(A)
    >>> b >= np.linalg.norm(A.compute(), 2)
    True
    """
    fn = "spectral_norm_bound"
    _tasks.check_dask_array(A, "A", fn, dtypes=(np.float32, np.float64), ndim=2)
    n_iter = _checks.check_int(n_iter, "n_iter", fn, min_value=0, max_value=gram.MAX_ITER)
    n, d = A.shape
    if d > _MAX_SIDE:
        raise ValueError(
            f"{fn}(): A must have at most {_MAX_SIDE} columns (a tall array: its d x d Gram "
            f"matrix is formed), got {d}"
        )
    A = _tasks.one_chunk_along(A, 1)
    leaves = [dask.delayed(_leaf, pure=True)(b) for b in A.to_delayed().ravel()]
    M, e, rows = dask.compute(_tree(leaves))[0]
    return certified_from_gram(M, e, rows, d, n_iter)


@_tasks.in_worker
def _layer_bound(layer, input_size, n_iter):
    return float(gram.spectral_norm_bounds([layer], [input_size], n_iter)[0])


def spectral_norm_bounds(layers, input_sizes=None, n_iter=6):
    """Certified bounds of many layers (:func:`matkern.spectral_norm_bounds`), one task per
    layer spread over the workers.

    Parameters
    ----------
    layers : sequence of NumPy or CuPy arrays (dense (m, n) matrices or convolution kernels
        (c_out, c_in, kh, kw)), as :func:`matkern.spectral_norm_bounds` takes them; each is
        sent to the one worker that bounds it
    input_sizes : sequence of (h, w) or None per layer (required for 4-D entries)
    n_iter : int

    Returns
    -------
    numpy.ndarray float64 (len(layers),), computed now; equal to the single-process
    ``matkern.spectral_norm_bounds`` (each layer is bounded on its own there too).

    Example
    -------
    >>> Ws = [np.diag([2.0, 1.0]), np.ones((2, 5)), np.zeros((4, 4, 3, 3))]
    >>> matkern.dask.spectral_norm_bounds(Ws, [None, None, (8, 8)]).shape
    (3,)
    """
    fn = "spectral_norm_bounds"
    sizes = gram._check_layer_list(layers, input_sizes, fn)
    n_iter = _checks.check_int(n_iter, "n_iter", fn, min_value=0, max_value=gram.MAX_ITER)
    gram._check_layers(layers, sizes, fn)
    tasks = [dask.delayed(_layer_bound, pure=True)(w, s, n_iter) for w, s in zip(layers, sizes)]
    from ._sparse import _GRAPH_LIMIT

    with dask.config.set(_GRAPH_LIMIT):
        return np.array(dask.compute(*tasks), dtype=np.float64)
