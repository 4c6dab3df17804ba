"""Backend routines shared by :class:`matkern.SparseRandomProjection` and :func:`matkern.fastrp`:
rows of the projection R generated per backend, the chunked GPU projection, and row helpers
of CSR matrices. No checks here: the public functions in ``randproj.py`` validated everything.
"""

from __future__ import annotations

import numpy as np

from . import _dispatch
from .reference import randproj as ref

# GPU: feature rows of R generated per chunk, bounding the generated entries (~16M).
GPU_CHUNK_ENTRIES = 1 << 24


def generate(be, seed_key, table, k, j0, j1, xp):
    """Rows j0..j1-1 of R on backend ``be``: (indptr int64, components int32, negative int8)."""
    if be == "reference":
        return ref.rp_generate(seed_key, table, k, j0, j1)
    nr = j1 - j0
    counts = xp.empty(nr, dtype=xp.int64)
    indptr = xp.zeros(nr + 1, dtype=xp.int64)
    if be == "cpu":
        cpu = _dispatch.cpu()
        cpu.rp_count(seed_key, table, k, j0, counts)
        np.cumsum(counts, out=indptr[1:])
        nnz = int(indptr[-1])
        comps, negs = np.empty(nnz, np.int32), np.empty(nnz, np.int8)
        cpu.rp_fill(seed_key, table, k, j0, indptr, comps, negs)
        return indptr, comps, negs
    cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
    dtable = xp.asarray(table)
    cuda.rp_count(seed_key, dtable, k, j0, counts, stream)
    xp.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    comps, negs = xp.empty(max(nnz, 1), xp.int32), xp.empty(max(nnz, 1), xp.int8)
    cuda.rp_fill(seed_key, dtable, k, j0, indptr, comps, negs, stream)
    return indptr, comps[:nnz], negs[:nnz]


def gpu_chunks(table, k, d):
    """[(j0, j1), ...]: the feature rows of R generated at once on the GPU."""
    density = 1.0 - float(table[1]) / 2.0**63 if k >= 1 else 1.0
    per_row = 1.0 + density * k
    step = max(1, int(GPU_CHUNK_ENTRIES / per_row))
    return [(j0, min(d, j0 + step)) for j0 in range(0, d, step)]


def gpu_project(X, d, key, table, k, scale, *, dtype, n, rowscale=None, colscale=None):
    """out = scale * diag(rowscale) X diag(colscale) R on the GPU, R generated per chunk.
    X: a dense CuPy array, or the (indptr, indices, data) CuPy arrays of a CSR matrix."""
    cp = _dispatch.cupy_module()
    cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
    out = cp.zeros((n, k), dtype=dtype)
    for j0, j1 in gpu_chunks(table, k, d):
        indptr, comps, negs = generate("cuda", key, table, k, j0, j1, cp)
        if isinstance(X, tuple):
            xi, xj, xv = X
            cuda.rp_sparse_accumulate(
                xi, xj, xv, colscale, indptr, comps, negs, j0, j1, out, stream
            )
        else:
            # components of this chunk grouped by component: CSR (k x (j1-j0)) by a stable sort
            nnz = int(indptr[-1])
            rows = row_ids(indptr, cp).astype(cp.int32)
            order = cp.argsort(comps, kind="stable") if nnz else cp.empty(0, cp.int64)
            cols_by_c = cp.ascontiguousarray(rows[order]) if nnz else cp.empty(1, cp.int32)
            negs_by_c = cp.ascontiguousarray(negs[order]) if nnz else cp.empty(1, cp.int8)
            cptr = cp.zeros(k + 1, dtype=cp.int64)
            if nnz:
                cp.cumsum(cp.bincount(comps, minlength=k), out=cptr[1:])
            cuda.rp_dense_accumulate(X, cptr, cols_by_c, negs_by_c, j0, out, stream)
    factor = dtype.type(scale) if rowscale is None else (scale * rowscale).astype(dtype)[:, None]
    out *= factor
    return out


def row_ids(indptr, xp):
    """The row of each stored entry of a CSR matrix."""
    n, nnz = indptr.shape[0] - 1, int(indptr[-1])
    if xp is np:
        return np.repeat(np.arange(n), np.diff(indptr))
    return xp.searchsorted(indptr, xp.arange(nnz), side="right") - 1


def row_sums(indptr, data, xp):
    """Row sums (weighted out-degrees) of a CSR matrix, in float64."""
    n = indptr.shape[0] - 1
    rows = row_ids(indptr, xp)
    return xp.bincount(rows, weights=data.astype(xp.float64), minlength=n)
