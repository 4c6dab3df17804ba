"""Sparse inputs, checked once and alike for every family, *before* scipy or a kernel reads them.

scipy trusts a matrix's index arrays: ``tocsr``, ``tocsc``, ``sort_indices`` and
``has_canonical_format`` run C++ that writes (or reads) out of bounds when ``indices`` or
``indptr`` were corrupted after construction (``A.indices[0] = 10**7``). So every family
validates the structure of a scipy / cupyx sparse matrix in its own format with vectorized
array operations first, and converts only then.

- :func:`check_structure` validates a scipy or cupyx matrix in its stored format.
- :func:`check_compressed` validates raw compressed arrays (CSR or CSC) and returns the
  number of stored entries.
- :func:`as_csr` validates and returns a CSR matrix of the same library.
- :func:`canonical_csr` validates and returns canonical CSR (sorted, duplicates summed).
- :func:`owned` copies an array that may share memory with the caller's arrays and marks it
  read-only, so that a validated object owns what it validated.

Whether an object is sparse at all (``_dispatch.is_sparse``) and copies to the host
(``_dispatch.to_host``) live in ``_dispatch``, next to the other questions of array type and
device.
"""

from __future__ import annotations

import numpy as np

from . import _checks, _dispatch


def _int_vector(arr, what, fn):
    if not hasattr(arr, "dtype") or arr.dtype.kind not in "iu":
        got = getattr(arr, "dtype", type(arr).__name__)
        raise TypeError(f"{fn}(): {what} must be an integer array, got {got}")
    if arr.ndim != 1:
        raise ValueError(f"{fn}(): {what} must be 1-dimensional, got shape {arr.shape}")
    return arr


def _extent(arr):
    """(min, max) of a non-empty integer array as Python ints (one transfer from a GPU)."""
    lo, hi = _dispatch.to_host(_dispatch.array_module(arr).stack([arr.min(), arr.max()])).tolist()
    return int(lo), int(hi)


def check_indices_in(indices, bound, what, fn):
    """Every entry of ``indices`` lies in [0, bound)."""
    if indices.size:
        lo, hi = _extent(indices)
        if lo < 0 or hi >= bound:
            raise ValueError(f"{fn}(): {what} must lie in [0, {bound}), got values in [{lo}, {hi}]")


def check_compressed(indptr, indices, n_major, n_minor, name, fn, *, data=None, exact=False):
    """Validate a compressed (CSR: major = rows, CSC: major = columns) index structure.

    indptr: integer, ``n_major + 1`` entries, starts at 0, never decreases, ends at
    ``nnz <= len(indices)`` (== when ``exact``; scipy allows longer arrays and ignores the
    tail); ``data``, when given, at least as long as the used part of indices; the used
    indices lie in [0, n_minor). Returns nnz.
    """
    _int_vector(indptr, f"{name}.indptr", fn)
    _int_vector(indices, f"{name}.indices", fn)
    if indptr.size != n_major + 1:
        raise ValueError(
            f"{fn}(): {name}.indptr must have {n_major + 1} entries, got {indptr.size}"
        )
    xp = _dispatch.array_module(indptr)
    ip = indptr.astype(xp.int64, copy=False)
    first, last = (int(v) for v in _dispatch.to_host(ip[xp.asarray([0, n_major])]))
    if first != 0:
        raise ValueError(f"{fn}(): {name}.indptr must start at 0, got {first}")
    if n_major and bool((ip[1:] < ip[:-1]).any()):
        raise ValueError(
            f"{fn}(): {name}.indptr must be nondecreasing (a decrease is what an overflowed "
            "int32 indptr looks like)"
        )
    size = int(indices.size)
    if last > size or (exact and last != size):
        rel = "equal" if exact else "be at most"
        raise ValueError(
            f"{fn}(): {name}.indptr[-1] = {last} must {rel} len({name}.indices) = {size}"
        )
    if data is not None:
        if getattr(data, "ndim", 1) != 1:
            raise ValueError(f"{fn}(): {name}.data must be 1-dimensional, got shape {data.shape}")
        if data.size < last or (exact and data.size != last):
            raise ValueError(f"{fn}(): {name}.data has {data.size} entries; indptr[-1] says {last}")
    check_indices_in(indices[:last], n_minor, f"{name}.indices", fn)
    return last


def check_structure(X, name, fn):
    """Validate the index arrays of a scipy/cupyx sparse matrix in its stored format (csr,
    csc, bsr, coo; dia, lil and dok hold no raw indices that a conversion trusts). Shape must
    be 2-D with sizes that fit 32-bit indices. Raises ValueError/TypeError naming ``name``."""
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise ValueError(f"{fn}(): {name} must be 2-dimensional, got shape {shape}")
    m, n = shape
    _checks.check_index_range(m, f"{name}.shape[0]", fn)
    _checks.check_index_range(n, f"{name}.shape[1]", fn)
    fmt = getattr(X, "format", None)
    if fmt == "csr":
        check_compressed(X.indptr, X.indices, m, n, name, fn, data=X.data)
    elif fmt == "csc":
        check_compressed(X.indptr, X.indices, n, m, name, fn, data=X.data)
    elif fmt == "bsr":
        r, c = X.blocksize
        if r <= 0 or c <= 0 or m % r or n % c:
            raise ValueError(f"{fn}(): {name}.blocksize {X.blocksize} must divide {shape}")
        nb = check_compressed(X.indptr, X.indices, m // r, n // c, name, fn)
        if X.data.ndim != 3 or X.data.shape[0] < nb or X.data.shape[1:] != (r, c):
            raise ValueError(
                f"{fn}(): {name}.data must have shape (>= {nb}, {r}, {c}), got {X.data.shape}"
            )
    elif fmt == "coo":
        row, col = X.row, X.col
        _int_vector(row, f"{name}.row", fn)
        _int_vector(col, f"{name}.col", fn)
        if not (row.size == col.size == X.data.size):
            raise ValueError(
                f"{fn}(): {name}.row, .col and .data must have the same length, "
                f"got {row.size}, {col.size} and {X.data.size}"
            )
        check_indices_in(row, m, f"{name}.row", fn)
        check_indices_in(col, n, f"{name}.col", fn)
    return X


def as_csr(X, name, fn):
    """A validated scipy/cupyx sparse matrix converted to CSR of the same library, trimmed so
    that ``len(indices) == len(data) == indptr[-1]``. May share memory with X (CSR input is
    returned as it is when already trimmed): callers that keep it must copy (:func:`owned`)."""
    check_structure(X, name, fn)
    A = X.tocsr()
    nnz = int(_dispatch.to_host(A.indptr[-1:])[0]) if A.indptr.size else 0
    if A.indices.size != nnz or A.data.size != nnz:
        A = type(A)((A.data[:nnz], A.indices[:nnz], A.indptr), shape=A.shape)
    return A


def canonical_csr(X, name, fn, *, dtype=None, finite=False, nnz_limit=_checks.INT32_MAX):
    """A validated scipy/cupyx sparse matrix as canonical CSR of the same library: sorted
    indices, duplicate entries summed (as scipy sums them), in this order:

    the index structure validated (:func:`as_csr`); with ``finite``, NaN/Inf values refused;
    nnz checked against ``nnz_limit``; the values converted to ``dtype`` when given (a copy
    of the whole matrix); duplicates summed, in a copy unless the conversion made one.
    May share memory with X when no conversion or summing was needed: callers that keep it or
    write to it must copy.
    """
    A = as_csr(X, name, fn)
    if finite:
        xp = _dispatch.array_module(A.data)
        if A.data.size and not bool(xp.isfinite(A.data).all()):
            raise ValueError(f"{fn}(): {name} must be finite, got NaN or Inf")
    _checks.check_index_range(int(A.data.size), f"{name}.nnz", fn, limit=nnz_limit)
    copied = dtype is not None
    if copied:
        A = A.astype(dtype)  # copies data, indices and indptr
    if not A.has_canonical_format:  # unsorted or duplicate indices: sum them, as scipy does
        if not copied:
            A = A.copy()
        A.sum_duplicates()
    return A


def owned(arr, *sources, dtype=None):
    """``arr`` as a C-contiguous array of ``dtype`` that shares no memory with ``sources``
    (the caller's arrays), marked read-only on the host: the object that holds it owns what
    it validated, and later changes to the caller's arrays can neither crash it nor change
    its results."""
    xp = _dispatch.array_module(arr)
    out = xp.ascontiguousarray(arr, dtype=dtype)
    if any(
        s is not None and xp is _dispatch.array_module(s) and xp.may_share_memory(out, s)
        for s in sources
    ):
        out = out.copy()
    if xp is np:
        out.flags.writeable = False
    return out
