"""Reference (plain NumPy) for the spmm family: CSR x dense, the definition the kernels are
tested against."""

from __future__ import annotations

import numpy as np

__all__ = ["spmm_csr"]


def spmm_csr(data, indices, indptr, shape, B, dtype=None):
    """``A @ B`` for a CSR matrix A given by (data, indices, indptr, shape) and a dense B.

    Entries are accumulated in float64 in storage order; duplicate (row, column) entries add
    up, unsorted indices are fine. Returns an (m, k) C-order array of ``dtype`` (default B's).

    Example
    -------
    >>> import numpy as np
    >>> spmm_csr(np.array([2.0]), np.array([1]), np.array([0, 1, 1]), (2, 2), np.eye(2))
    array([[0., 2.],
           [0., 0.]])
    """
    m, n = shape
    B = np.asarray(B)
    k = B.shape[1]
    out = np.zeros((m, k), dtype=np.float64)
    indptr = np.asarray(indptr, dtype=np.int64)
    nnz = int(indptr[-1] - indptr[0]) if m else 0
    if nnz and k:
        rows = np.repeat(np.arange(m), np.diff(indptr))
        vals = np.asarray(data, dtype=np.float64)[indptr[0] : indptr[0] + nnz]
        cols = np.asarray(indices)[indptr[0] : indptr[0] + nnz]
        Bd = B.astype(np.float64)
        step = max(1, (1 << 22) // k)  # bound the nnz x k temporary
        for s in range(0, nnz, step):
            np.add.at(out, rows[s : s + step], vals[s : s + step, None] * Bd[cols[s : s + step]])
    return out.astype(dtype or B.dtype)
