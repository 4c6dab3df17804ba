"""The GPU CSR SpMM kernel's operands, planned once for any number of products, and its call.

Used by :class:`matkern.SparseMatrix` (the CSR kernel, and the fallback of the block kernel
for non-finite B) and by ``fastrp`` (its float32 graph products). Rows longer than ``SEG``
nonzeros are cut into segments whose partial sums the kernel adds (``cuda/spmm.hpp``
``SpmmCsrSegments``), so that one hub row does not serialize a whole warp's work.
"""

from __future__ import annotations

import numpy as np

from . import _dispatch

SEG = 256  # rows with more nonzeros are cut into segments of this many
MAX_K = 65535 * 64  # grid.y walks B's columns in 64-column tiles (k > 32)


def row_segments(indptr):
    """(bounds, seg_row, seg_slot, split_rows) cutting rows longer than SEG (see
    cuda/spmm.hpp SpmmCsrSegments); four 1-element dummies when no row is that long."""
    counts = np.diff(indptr)
    nseg = np.maximum(1, -(-counts // SEG))
    if counts.size == 0 or nseg.max() <= 1:
        return (
            np.zeros(1, np.int64),
            np.zeros(1, np.int32),
            np.zeros(1, np.int32),
            np.zeros(1, np.int32),
        )
    m = counts.size
    seg_row = np.repeat(np.arange(m), nseg)
    first = np.cumsum(nseg) - nseg  # index of each row's first segment
    j = np.arange(seg_row.size) - first[seg_row]
    bounds = np.append(indptr[seg_row] + j * SEG, indptr[-1]).astype(np.int64)
    split = nseg > 1
    slot_of_row = np.full(m, -1, np.int32)
    slot_of_row[split] = np.arange(int(split.sum()), dtype=np.int32)
    return (
        bounds,
        seg_row.astype(np.int32),
        slot_of_row[seg_row],
        np.nonzero(split)[0].astype(np.int32),
    )


def plan(indptr, indices, data):
    """The GPU CSR kernel's operands: (indptr int64, indices int32, data float32, row
    segments) as C-order CuPy arrays. Takes the NumPy or CuPy arrays of an already validated
    CSR matrix; the segments are planned on the host."""
    cp = _dispatch.cupy_module()
    host_indptr = np.asarray(_dispatch.to_host(indptr))
    segs = row_segments(host_indptr.astype(np.int64, copy=False))
    return (
        cp.asarray(indptr, dtype=cp.int64, order="C"),
        cp.asarray(indices, dtype=cp.int32, order="C"),
        cp.asarray(data, dtype=cp.float32, order="C"),
        tuple(cp.asarray(a) for a in segs),
    )


def matmul(csr, B, out):
    """out = A @ B on the GPU CSR kernel (float32 values and accumulation, no tensor cores:
    what spmm runs for precision="fp32" or kernel="csr"), A planned once by :func:`plan`.
    B: C-order (n, k) CuPy float32 or float16, k <= MAX_K; out: C-order (m, k) of B's dtype.
    No checks: the caller has validated everything."""
    if int(csr[2].size) == 0:  # nnz = 0
        out.fill(0)
        return out
    run(csr, B, out, 0)
    return out


def run(csr, B, out, only_if_bad):
    """Launch the CSR kernel on CuPy's current stream. ``only_if_bad``: 0, or the device
    address of the flag the non-finite check of B set (the kernel then runs only if it is
    set: the block kernel's fallback)."""
    cp = _dispatch.cupy_module()
    ip, ix, dv, (bounds, seg_row, seg_slot, split_rows) = csr
    segs = ()
    if int(bounds.size) > 1:  # rows cut into segments (1-element placeholders: none are)
        part = cp.empty(int(split_rows.size) * B.shape[1], dtype=cp.float32)
        segs = (bounds, seg_row, seg_slot, split_rows, part)
    _dispatch.cuda().spmm_csr(
        B.shape[0], ip, ix, dv, B, out, only_if_bad, _dispatch.stream_ptr(), *segs
    )
