"""Backend operations of the truncated-SVD updater: the three sparse kernels (gather, Gram,
scatter) per backend, and the input normalisation shared by fit and the updates.

A backend object carries ``xp`` (numpy or cupy), ``sp`` (scipy.sparse or cupyx.scipy.sparse)
and the kernels; the update strategies in ``_svd_update.py`` are written once against it.
"""

from __future__ import annotations

import numpy as np

from . import _checks, _dispatch, _sparse_input
from ._dispatch import is_sparse
from .reference import svd as ref

_FLOATS = (np.float32, np.float64)


class _Ops:
    """Kernels on one backend. ``Xt`` is always a canonical CSR matrix (sorted, no duplicates,
    float64, int32 indices) of the backend's sparse module."""

    def __init__(self, name):
        self.name = name
        if name == "cuda":
            self.xp = _dispatch.cupy_module()
            import cupyx.scipy.sparse as csp

            self.sp = csp
        else:
            import scipy.sparse as ssp

            self.xp = np
            self.sp = ssp

    def __reduce__(self):
        # modules are not picklable: an _Ops is rebuilt from its backend's name
        return (_Ops, (self.name,))

    # out (c x k) = Xt @ B
    def gather(self, Xt, B):
        if self.name == "reference":
            return ref.svd_gather(Xt, B)
        xp = self.xp
        if Xt.shape[1] != B.shape[0]:
            raise ValueError(
                f"svd gather: update has {Xt.shape[1]} columns, basis {B.shape[0]} rows"
            )
        out = xp.empty((Xt.shape[0], B.shape[1]), dtype=np.float64)
        ip = Xt.indptr.astype(np.int64)
        if self.name == "cpu":
            _dispatch.cpu().svd_gather(ip, Xt.indices, Xt.data, B, out)
        else:
            _dispatch.cuda().svd_gather(ip, Xt.indices, Xt.data, B, out, _dispatch.stream_ptr())
        return out

    # (c x c) = Xt @ Xt^T, dense; Xc is Xt.tocsc()
    def gram(self, Xt, Xc):
        if self.name == "reference":
            return ref.svd_gram(Xt)
        xp = self.xp
        c = Xt.shape[0]
        out = xp.empty((c, c), dtype=np.float64)
        args = (
            Xt.indptr.astype(np.int64),
            Xt.indices,
            Xt.data,
            Xc.indptr.astype(np.int64),
            Xc.indices.astype(np.int32),
            Xc.data,
        )
        if self.name == "cpu":
            _dispatch.cpu().svd_gram(*args, out)
        else:
            _dispatch.cuda().svd_gram(*args, out, _dispatch.stream_ptr())
        return out

    # B[rows touched by Xt's columns] += Xt^T @ Y, touching only those rows of B.
    def scatter(self, Xc, Y, B):
        rows, indptr, indices, data = Xc
        if len(rows) == 0:
            return
        if self.name == "reference":
            ref.svd_scatter(rows, indptr, indices, data, Y, B)
        elif self.name == "cpu":
            _dispatch.cpu().svd_scatter(rows, indptr, indices, data, Y, B)
        else:
            _dispatch.cuda().svd_scatter(rows, indptr, indices, data, Y, B, _dispatch.stream_ptr())

    def compress_columns(self, Xc):
        """The columns of Xc (Xt in CSC form) that hold nonzeros, as (rows, indptr, indices,
        data) of X = Xt^T restricted to those rows (the rows of the basis the update touches)."""
        xp = self.xp
        counts = xp.diff(Xc.indptr)
        rows = xp.flatnonzero(counts).astype(np.int32)
        indptr = xp.concatenate([Xc.indptr[rows], Xc.indptr[-1:]]).astype(np.int64)
        return rows, indptr, Xc.indices.astype(np.int32), Xc.data.astype(np.float64)


def device_name(x) -> str:
    try:
        return _dispatch.device_of(x)
    except TypeError:
        return "?"


def as_update(
    x, name, fn, *, width=None, width_name="", device=None, allow_sparse=True, height=None
):
    """Validate a 2-D update (dense or sparse) and return it as float64: a canonical CSR matrix
    when sparse, a C-contiguous array when dense. Errors name ``fn`` and ``name``."""
    dev = device_name(x)
    if dev == "?":
        raise TypeError(
            f"{fn}(): {name} must be a NumPy/CuPy array or a scipy/cupyx sparse matrix, got "
            f"{type(x).__module__}.{type(x).__name__}"
        )
    if device is not None and dev != device:
        raise ValueError(
            f"{fn}(): {name} must be on the fitted device ({device}), got a {dev} array"
        )
    if is_sparse(x):
        if not allow_sparse:
            raise TypeError(f"{fn}(): {name} must be dense, got a sparse matrix")
        if x.dtype not in [np.dtype(d) for d in _FLOATS]:
            raise TypeError(f"{fn}(): {name} must have dtype float32 or float64, got {x.dtype}")
        if len(x.shape) != 2:
            raise ValueError(f"{fn}(): {name} must be 2-dimensional, got shape {x.shape}")
    else:
        _checks.check_array(x, name, fn, dtypes=_FLOATS, ndim=2, contiguous=False, allow_empty=True)
    rows, cols = x.shape
    if rows == 0 or cols == 0:
        raise ValueError(f"{fn}(): {name} must not be empty, got shape {tuple(x.shape)}")
    if width is not None and cols != width:
        raise ValueError(
            f"{fn}(): {name} must have {width} columns ({width_name}), got shape {tuple(x.shape)}"
        )
    if height is not None and rows != height:
        raise ValueError(
            f"{fn}(): {name} must have {height} rows ({width_name}), got shape {tuple(x.shape)}"
        )
    _checks.check_index_range(rows, f"{name}.shape[0]", fn)
    _checks.check_index_range(cols, f"{name}.shape[1]", fn)
    if is_sparse(x):
        # Index structure first, in the stored format, before scipy/cupyx converts anything:
        # tocsr / astype / sum_duplicates trust indptr and indices and write out of bounds.
        # A copy of our own (the float64 conversion copies data, indices and indptr),
        # canonical, int32 indices: nothing the updater keeps or hands to a kernel shares
        # memory with the caller's arrays.
        x = _sparse_input.canonical_csr(x, name, fn, dtype=np.float64, finite=True)
        x.indices = x.indices.astype(np.int32, copy=False)
        return x
    xp = _dispatch.array_module(x)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{fn}(): {name} must be finite, got NaN or Inf")
    return xp.ascontiguousarray(x, dtype=np.float64)


def density(x) -> float:
    """Fraction of nonzero entries of a dense or sparse 2-D update."""
    size = x.shape[0] * x.shape[1]
    if is_sparse(x):
        return x.nnz / size
    return float(_dispatch.array_module(x).count_nonzero(x)) / size
