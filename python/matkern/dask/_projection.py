"""Random projections and the Walsh-Hadamard transform on dask arrays.

Row chunks are transformed independently by the single-process estimator, which every
worker receives once (a graph key of its own): for :class:`SparseRandomProjection` that is
a 64-bit key and a small table (the matrix is generated on the worker by the counter-based
generator, never shipped), for :class:`FJLT` the signs and the sparse P (about
k log(n)^2 entries). Column-chunked input to the sparse projection sums the partial
projections of the column blocks, each block generating only its own rows of R.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np

from .. import _dispatch, hadamard, randproj
from .._randproj_ops import generate
from . import _tasks

__all__ = ["SparseRandomProjection", "FJLT", "fwht"]

_FLOATS = (np.float32, np.float64)


def _shape_proxy(shape, dtype):
    """A NumPy array of ``shape`` and ``dtype`` using one element of memory (all strides 0):
    what the single-process ``fit`` reads of a dask array is its shape and dtype only."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype=dtype), shape=shape, strides=(0, 0))


def _fit_shape(fit, X):
    """``fit`` (the single-process one) of a shape proxy of X, without scikit-learn's NaN/Inf
    pass: over the proxy it is a sum of n x d zeros on the client (0.5 s of CPU for
    400000 x 4096) that says nothing about X's values (each chunk's transform checks them)."""
    from sklearn import config_context

    with config_context(assume_finite=True):
        return fit(_shape_proxy(X.shape, X.dtype))


def _dense_meta(X, ndim, dtype):
    """The result's meta: X's chunk type for dense chunks, NumPy for scipy sparse chunks."""
    if _dispatch.is_sparse(X._meta):
        return np.empty((0,) * ndim, dtype=dtype)
    return _tasks.meta(X._meta, ndim, dtype)


def _check_fitted_input(est, X, fn):
    _tasks.check_dask_array(X, "X", fn, dtypes=_FLOATS, ndim=2)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"{fn}(): X must have {est.n_features_in_} columns (as fitted), got {X.shape[1]}"
        )


@_tasks.in_worker
def _transform_rows(block, est):
    """One row chunk through the single-process estimator (CPU or GPU by the chunk's type)."""
    return est.transform(block)


@_tasks.in_worker
def _srp_partial(block, j0, est):
    """block @ R[j0 : j0 + block columns] as a (rows, 1, k) array: one column block's share of
    the sparse projection, R's rows generated here from the seed."""
    j0 = int(np.asarray(j0).reshape(-1)[0])
    j1 = j0 + block.shape[1]
    k, dtype = est.n_components_, block.dtype
    if _dispatch.is_sparse(block):
        block = block.toarray()
    xp = _dispatch.array_module(block)
    be = "cuda" if xp is not np else ("cpu" if _dispatch._cpu is not None else "reference")
    indptr, comps, negs = generate(be, est._key, est._table, k, j0, j1, xp)
    vals = xp.where(xp.asarray(negs) == 1, -est.scale_, est.scale_).astype(dtype)
    if xp is np:
        import scipy.sparse as sp
    else:  # pragma: no cover - GPU only
        import cupyx.scipy.sparse as sp
    R = sp.csr_matrix((vals, xp.asarray(comps), xp.asarray(indptr)), shape=(j1 - j0, k))
    # (R^T X^T)^T: scipy's CSR times a dense matrix, in the chunk's dtype
    out = xp.ascontiguousarray((R.T.tocsr() @ xp.ascontiguousarray(block.T)).T)
    return out.astype(dtype, copy=False)[:, None, :]


class SparseRandomProjection(randproj.SparseRandomProjection):
    """:class:`matkern.SparseRandomProjection` that also takes dask arrays.

    ``fit(X)`` of a dask array (n, d) reads its shape only; ``transform(X)`` of a dask array
    returns a lazy dask array (n, k) of X's dtype, row-chunked like X, whose chunks have X's
    chunk type (NumPy, or CuPy for CuPy chunks; scipy sparse chunks give NumPy chunks).
    Row chunks: each is ``transform`` of the single-process estimator on that chunk, the
    matrix generated on the worker from the seed (only the 64-bit key and a small table reach
    the workers), so the result is **bit-identical** to ``transform`` of the whole array in
    one process. Column-chunked X: each (row, column) block computes its partial projection
    with its own rows of R and the partials of a row chunk are summed by a tree reduction
    (float32: agrees with the single-process result to about 1e-6 of the row's projected
    norm, not bit for bit). NumPy and scipy input go to the single-process estimator.

    Example
    -------
    >>> import dask.array as da, matkern.dask
    >>> X = da.random.default_rng(0).standard_normal((10000, 2048), chunks=(2500, 2048))
    >>> p = matkern.dask.SparseRandomProjection(64, random_state=0).fit(X)
    >>> p.transform(X.astype("float32")).chunks
    ((2500, 2500, 2500, 2500), (64,))
    """

    def fit(self, X, y=None):
        """Choose k, the density and the seed for inputs shaped like X. Returns self."""
        if not _tasks.is_dask_array(X):
            return super().fit(X, y)
        _tasks.check_dask_array(X, "X", "SparseRandomProjection.fit", dtypes=_FLOATS, ndim=2)
        return _fit_shape(super().fit, X)

    def transform(self, X):
        """Project the rows of X: (n, n_features) -> (n, n_components), lazily for dask X."""
        if not _tasks.is_dask_array(X):
            return super().transform(X)
        fn = "SparseRandomProjection.transform"
        if not hasattr(self, "_key"):
            raise RuntimeError(f"{fn}(): call fit() first")
        _check_fitted_input(self, X, fn)
        k = self.n_components_
        est = _tasks.shared(
            self, "srp", token=(self.seed_, k, self.n_features_in_, self.density_, self.backend)
        )
        out_meta = _dense_meta(X, 2, X.dtype)
        if len(X.chunks[1]) == 1:
            return _tasks.map_rows(_transform_rows, X, est, n_out=k, out_meta=out_meta)
        starts = np.cumsum((0,) + X.chunks[1][:-1])
        offsets = da.from_array(starts, chunks=1)
        parts = da.blockwise(
            _srp_partial, "ijk", X, "ij", offsets, "j", est, None,
            new_axes={"k": k}, adjust_chunks={"j": 1}, align_arrays=False, dtype=X.dtype,
            meta=_dense_meta(X, 3, X.dtype),
        )  # fmt: skip
        return parts.sum(axis=1, dtype=X.dtype)

    def fit_transform(self, X, y=None):
        """fit(X) then transform(X)."""
        return self.fit(X).transform(X)


class FJLT(hadamard.FJLT):
    """:class:`matkern.FJLT` that also takes dask arrays.

    ``fit(X)`` of a dask array reads its shape only (D and P are drawn on the client, as in
    one process: the same seed gives the same transform). ``transform(X)`` of a dask array
    (n, d) returns a lazy dask array (n, k) of X's dtype and chunk type, each row chunk
    transformed by the fitted estimator, which each worker receives once (the signs and P,
    about k log(n)^2 nonzeros). Since the Hadamard transform mixes all the features of a
    row, column-chunked X is first rechunked to whole rows. The result is **bit-identical**
    to the single-process ``transform`` of the whole array.

    Example
    -------
    >>> X = da.ones((4096, 1000), chunks=(1024, 1000), dtype="float32")
    >>> matkern.dask.FJLT(32, random_state=0).fit_transform(X).shape
    (4096, 32)
    """

    def fit(self, X, y=None):
        """Draw D and P for inputs shaped like X. Returns self."""
        if not _tasks.is_dask_array(X):
            return super().fit(X, y)
        _tasks.check_dask_array(X, "X", "FJLT.fit", dtypes=_FLOATS, ndim=2)
        return _fit_shape(super().fit, X)

    def transform(self, X):
        """Project the rows of X: (n, d) -> (n, k), lazily for dask X."""
        if not _tasks.is_dask_array(X):
            return super().transform(X)
        fn = "FJLT.transform"
        if not hasattr(self, "projection_"):
            raise RuntimeError(f"{fn}(): call fit() first")
        _check_fitted_input(self, X, fn)
        self._check_state(fn)
        X = _tasks.one_chunk_along(X, 1)
        P = self.projection_
        token = (self.signs_, P.data, P.indices, P.indptr, self.scale_, self.backend)
        est = _tasks.shared(self, "fjlt", token=token)
        return _tasks.map_rows(_transform_rows, X, est, n_out=self.n_components_)

    def fit_transform(self, X, y=None):
        """fit(X) then transform(X)."""
        return self.fit(X).transform(X)


@_tasks.in_worker
def _fwht_block(block, axis, normalize):
    return hadamard.fwht(block, axis=axis, normalize=normalize)


def fwht(x, axis=-1, normalize=False):
    """Walsh-Hadamard transform of a dask array along one axis (as :func:`matkern.fwht`).

    Returns a lazy dask array of x's shape, dtype, chunks and chunk type. When ``axis`` is
    one chunk, every chunk is transformed on its own. Otherwise the axis is split in m equal
    power-of-two chunks of length c (rechunked to that when needed): H_n = H_m (x) H_c, so
    each chunk gets the length-c transform, then log2(m) butterfly stages add and subtract
    whole chunks (a + b, a - b), the stages of the larger strides in the same order as the
    single-process kernel. The result is **bit-identical** to :func:`matkern.fwht` of the
    whole array on the CPU (tested); ``normalize`` scales once at the end by 1/sqrt(n).

    Parameters
    ----------
    x : dask array, float32 or float64, the length along ``axis`` a power of two
    axis : int
    normalize : bool

    Example
    -------
    >>> x = da.ones((4, 1024), chunks=(2, 256))
    >>> float(matkern.dask.fwht(x)[0, 0].compute())
    1024.0
    """
    from .. import _checks

    fn = "fwht"
    if not _tasks.is_dask_array(x):
        raise TypeError(
            f"{fn}(): x must be a dask array, got {type(x).__module__}.{type(x).__name__}"
        )
    if x.dtype not in [np.dtype(d) for d in _FLOATS]:
        raise TypeError(f"{fn}(): x must have dtype float32 or float64, got {x.dtype}")
    ax = _checks.normalize_axis(axis, x.ndim, "axis", fn)
    n = x.shape[ax]
    if not _checks.is_power_of_two(n):
        raise ValueError(f"{fn}(): x must have a power-of-two length along axis {axis}, got {n}")
    normalize = bool(normalize)
    out_meta = _tasks.meta(x._meta, x.ndim, x.dtype)
    if len(x.chunks[ax]) == 1:
        return x.map_blocks(_fwht_block, ax, normalize, dtype=x.dtype, meta=out_meta)
    c = 1 << (max(x.chunks[ax]) - 1).bit_length()  # the power of two >= the largest chunk
    if any(s != c for s in x.chunks[ax]):
        x = x.rechunk({ax: c})
    y = x.map_blocks(_fwht_block, ax, False, dtype=x.dtype, meta=out_meta)
    m = n // c
    blocks = [y[(slice(None),) * ax + (slice(i * c, (i + 1) * c),)] for i in range(m)]
    h = 1
    while h < m:  # the butterflies of strides c*h, smallest first (as the kernel's stages)
        for start in range(0, m, 2 * h):
            for i in range(start, start + h):
                a, b = blocks[i], blocks[i + h]
                blocks[i], blocks[i + h] = a + b, a - b
        h *= 2
    out = da.concatenate(blocks, axis=ax)
    if normalize:
        out = out * x.dtype.type(1.0 / math.sqrt(n))
    return out
