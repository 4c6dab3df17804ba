"""A sparse matrix split by rows over the workers, validated and prepared there once, and its
products with dense NumPy, CuPy or dask matrices."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from .. import _checks, _dispatch, _sparse_input
from .._spmm import SparseMatrix as _LocalSparseMatrix
from .._spmm import _result_dtype
from . import _tasks

__all__ = ["SparseMatrix"]

# The matrix goes into the graph once (so that a lost worker's blocks can be rebuilt from it):
# Dask's warning about large graphs would fire for every matrix above 10 MB.
_GRAPH_LIMIT = {"distributed.admin.large-graph-warning-threshold": "1 PiB"}


@_tasks.in_worker
def _build_block(parts, shape):
    """A row block's raw CSR arrays -> a validated, owned, CPU-prepared matkern.SparseMatrix
    (the validation and the preparation run here, on the worker that keeps the block)."""
    S = _LocalSparseMatrix._checked((*parts, shape), "SparseMatrix.from_scipy")
    return S.prepare("cpu", dtype=S.dtype if S.dtype != np.float16 else np.float32)


@_tasks.in_worker
def _build_from_chunks(*chunks):
    """One row of scipy sparse chunks (a dask array's blocks) -> a prepared block."""
    import scipy.sparse as sp

    fn = "SparseMatrix.from_dask"
    for c in chunks:
        if not _dispatch.is_sparse(c):
            raise TypeError(
                f"{fn}(): X's chunks must be scipy sparse matrices, got "
                f"{type(c).__module__}.{type(c).__name__}"
            )
        _sparse_input.check_structure(c, "X's chunk", fn)
    A = chunks[0] if len(chunks) == 1 else sp.hstack(chunks, format="csr")
    S = _LocalSparseMatrix._checked(A, fn)
    return S.prepare("cpu", dtype=S.dtype if S.dtype != np.float16 else np.float32)


@_tasks.in_worker
def _multiply_chunks(block, *chunks):
    """One row block times one column chunk of B given as B's row chunks (NumPy, of the
    result's dtype): read in place by ``spmm_csr_blocks`` (the same bits as ``block @`` their
    concatenation, without making it); a chunk whose rows are not contiguous is copied."""
    chunks = [c if c.strides[-1] == c.itemsize else np.ascontiguousarray(c) for c in chunks]
    dtype = chunks[0].dtype
    out = np.empty((block.shape[0], chunks[0].shape[1]), dtype=dtype)  # rows without entries: 0
    data = block._cpu_arrays(dtype)
    _dispatch.cpu().spmm_csr_blocks(block.shape[1], block.indptr, block.indices, data, chunks, out)
    return out


@_tasks.in_worker
def _block_nnz(block):
    return block.nnz


@_tasks.in_worker
def _multiply(block, B):
    """One row block times the whole of B (B's chunk type picks the CPU or the GPU)."""
    return block @ B


def _balanced_row_chunks(indptr, n_blocks, fn):
    """Sizes of ``n_blocks`` row blocks (fewer for fewer rows) holding about equal numbers
    of stored entries: rows of a power-law graph differ in length by orders of magnitude,
    and equal row counts put 4x the edges of the last block into the first (200k nodes)."""
    n_blocks = _checks.check_int(n_blocks, "n_blocks", fn, min_value=1)
    m = indptr.shape[0] - 1
    nnz = int(indptr[-1])
    targets = (np.arange(1, n_blocks) * nnz) // n_blocks
    cuts = np.searchsorted(indptr, targets, side="left")
    bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, m - 1) if m > 1 else [], [m])))
    return tuple(int(s) for s in np.diff(bounds) if s > 0)


def _row_chunks(row_chunks, m, fn):
    """Row chunk sizes from an int (rows per chunk) or a sequence of sizes summing to m."""
    if isinstance(row_chunks, (int, np.integer)) and not isinstance(row_chunks, bool):
        step = _checks.check_int(row_chunks, "row_chunks", fn, min_value=1)
        return tuple(min(step, m - r) for r in range(0, m, step))
    try:
        sizes = tuple(int(s) for s in row_chunks)
    except (TypeError, ValueError):
        raise TypeError(
            f"{fn}(): row_chunks must be an int or a sequence of ints, got "
            f"{type(row_chunks).__name__}"
        ) from None
    if any(s < 1 for s in sizes) or sum(sizes) != m:
        raise ValueError(
            f"{fn}(): row_chunks must be positive sizes summing to the {m} rows, got {sizes}"
        )
    return sizes


class SparseMatrix:
    """A sparse m x n matrix split into row blocks kept on the Dask workers.

    Each block is a :class:`matkern.SparseMatrix` built on a worker, which validates its
    index structure (before any scipy method runs), takes owned copies and prepares the
    CPU arrays once; the blocks are then persisted (kept in the workers' memory until this
    object is dropped). A lost worker's blocks are rebuilt from the graph, so a product
    survives a worker failure. Build it with :meth:`from_scipy` (the matrix is on the client)
    or :meth:`from_dask` (a dask array whose chunks are scipy sparse matrices, loaded by the
    workers themselves: nothing passes through the client).

    ``S @ B`` (or :meth:`dot`) returns a lazy dask array of shape (m, k) (or (m,) for 1-D B),
    chunked by S's row blocks (and B's column chunks for dask B); each chunk is the
    single-process product of one block, so the result is **bit-identical** to
    ``matkern.SparseMatrix(A) @ B``. B may be:

    - a NumPy or CuPy array (n, k) or (n,): sent to every worker once (``client.scatter(...,
      broadcast=True)`` when a distributed client is active, else one graph key);
    - a dask array (n, k) or (n,): with NumPy chunks of the result's dtype and column
      chunks of at least 64 columns, each task reads B's row chunks of one column chunk in
      place (fetched once by every worker that holds a block); otherwise (CuPy chunks,
      another dtype, 1-D, narrower chunks) B's rows are gathered into one chunk per column
      chunk first.

    Its dtype follows :func:`matkern.spmm` (float64 with float32 gives float64 on the CPU;
    B's dtype on the GPU).

    Attributes
    ----------
    shape, dtype, nnz, row_chunks (the block sizes), blocks (the persisted Delayed blocks)

    Example
    -------
    >>> import numpy as np, scipy.sparse as sp, matkern.dask
    >>> A = sp.random(10000, 5000, density=1e-3, format="csr", random_state=0)
    >>> S = matkern.dask.SparseMatrix.from_scipy(A, row_chunks=2500)
    >>> Y = S @ np.ones((5000, 16))
    >>> Y.chunks
    ((2500, 2500, 2500, 2500), (16,))
    """

    def __init__(self, blocks, row_chunks, shape, dtype, nnz):
        self.blocks = list(blocks)
        self.row_chunks = tuple(row_chunks)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.nnz = int(nnz)
        self._plans = {}  # per-method derived blocks, persisted beside the blocks (_plan)

    def _plan(self, key, build):
        """Blocks derived from this matrix's blocks by ``build()`` (a list of Delayed), built
        and persisted on the workers the first time ``key`` is asked for, then kept with the
        blocks (dropped with this object): e.g. FastRP's transition matrix per dtype."""
        if key not in self._plans:
            with dask.config.set(_GRAPH_LIMIT):
                self._plans[key] = dask.persist(*build())
        return self._plans[key]

    def __repr__(self):
        return (
            f"<matkern.dask.SparseMatrix {self.shape[0]}x{self.shape[1]}, nnz={self.nnz}, "
            f"{self.dtype}, {len(self.blocks)} row blocks>"
        )

    @classmethod
    def from_scipy(cls, A, row_chunks=None, *, n_blocks=8):
        """Split a scipy sparse matrix (any format) into row blocks of ``row_chunks`` rows (an
        int, or a sequence of block sizes; None: ``n_blocks`` blocks of about equal stored
        entries) and build and persist them on the workers.

        On the client: the index structure is validated in A's own format and converted to
        CSR (O(nnz)); each block's arrays are then slices by indptr, put once into the graph,
        and validated again and prepared by the worker that builds the block.
        """
        fn = "SparseMatrix.from_scipy"
        if not _dispatch.is_sparse(A) or _dispatch.is_cupyx_sparse(A):
            raise TypeError(
                f"{fn}(): A must be a scipy.sparse matrix, got "
                f"{type(A).__module__}.{type(A).__name__}"
            )
        csr = _sparse_input.as_csr(A, "A", fn)
        m, n = csr.shape
        if m == 0 or n == 0:
            raise ValueError(f"{fn}(): A must not be empty, got shape {(m, n)}")
        indptr = np.asarray(csr.indptr, dtype=np.int64)
        if row_chunks is None:
            sizes = _balanced_row_chunks(indptr, n_blocks, fn)
        else:
            sizes = _row_chunks(row_chunks, m, fn)
        blocks, r0 = [], 0
        for rows in sizes:
            a, b = int(indptr[r0]), int(indptr[r0 + rows])
            parts = (
                csr.data[a:b],
                csr.indices[a:b],
                indptr[r0 : r0 + rows + 1] - a,
            )
            token = dask.base.tokenize(*parts, (rows, n))
            raw = dask.delayed(parts, pure=True, name=f"matkern-csr-rows-{token}")
            blocks.append(
                dask.delayed(_build_block, pure=True, name=f"matkern-block-{token}")(raw, (rows, n))
            )
            r0 += rows
        with dask.config.set(_GRAPH_LIMIT):
            blocks = dask.persist(*blocks)
        dtype = csr.dtype if csr.dtype.kind == "f" else np.dtype(np.float64)
        return cls(blocks, sizes, (m, n), dtype, int(indptr[-1]))

    @classmethod
    def from_dask(cls, X):
        """Build from a 2-D dask array whose chunks are scipy sparse matrices (e.g. read from
        storage by ``map_blocks``): one block per row of chunks (column chunks stacked on the
        worker), validated and prepared there and persisted; nothing passes through the client
        but the block sizes (nnz, computed once)."""
        fn = "SparseMatrix.from_dask"
        _tasks.check_dask_array(X, "X", fn, ndim=2)
        if X.dtype.kind == "c":
            raise TypeError(f"{fn}(): X's values must be real, got {X.dtype}")
        parts = X.to_delayed()
        blocks = [dask.delayed(_build_from_chunks, pure=True)(*row) for row in parts]
        blocks = dask.persist(*blocks)
        nnz = sum(dask.compute(*[dask.delayed(_block_nnz)(b) for b in blocks]))
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
        return cls(blocks, X.chunks[0], X.shape, dtype, nnz)

    # ---------------------------------------------------------------- products
    def __matmul__(self, B):
        if _tasks.is_dask_array(B):
            return self._matmul_dask(B)
        if isinstance(B, np.ndarray) or _dispatch.is_cupy_array(B):
            return self._matmul_array(B)
        return NotImplemented

    def dot(self, B):
        """``S @ B``."""
        return self @ B

    def _check_B(self, B, fn):
        _checks.check_array(B, "B", fn, ndim=(1, 2), contiguous=False)
        if B.shape[0] != self.shape[1]:
            raise ValueError(
                f"{fn}(): B must have {self.shape[1]} rows (S is {self.shape[0]}x"
                f"{self.shape[1]}), got shape {B.shape}"
            )

    def _result_dtype(self, B):
        chunk = B._meta if _tasks.is_dask_array(B) else B
        return _result_dtype(self, B, "cuda" if _dispatch.is_cupy_array(chunk) else "cpu")

    def _matmul_array(self, B):
        fn = "SparseMatrix.__matmul__"
        if B.dtype not in (np.float16, np.float32, np.float64):
            raise TypeError(f"{fn}(): B must have dtype float16, float32 or float64, got {B.dtype}")
        self._check_B(B, fn)
        client = _tasks.active_client()
        if client is not None:
            B_key = client.scatter(B, broadcast=True, hash=True)
        else:
            B_key = _tasks.shared(B, "spmm-b")
        dtype = self._result_dtype(B)
        tail = B.shape[1:]
        pieces = [
            da.from_delayed(
                dask.delayed(_multiply, pure=True)(blk, B_key),
                shape=(rows, *tail),
                dtype=dtype,
                meta=_tasks.meta(B, B.ndim, dtype),
            )
            for blk, rows in zip(self.blocks, self.row_chunks)
        ]
        return da.concatenate(pieces, axis=0)

    def _matmul_dask(self, B):
        fn = "SparseMatrix.__matmul__"
        _tasks.check_dask_array(B, "B", fn, dtypes=(np.float16, np.float32, np.float64))
        if B.ndim not in (1, 2) or B.shape[0] != self.shape[1]:
            raise ValueError(
                f"{fn}(): B must have shape ({self.shape[1]},) or ({self.shape[1]}, k), "
                f"got {B.shape}"
            )
        dtype = self._result_dtype(B)
        if (
            B.ndim == 2
            and isinstance(B._meta, np.ndarray)
            and B.dtype == dtype
            and min(B.chunks[1]) >= _tasks.IN_PLACE_MIN_COLUMNS
        ):
            return self._matmul_dask_in_place(B, dtype)
        whole = _tasks.one_chunk_along(B, 0).to_delayed()  # one key per column chunk
        if B.ndim == 1:
            whole, widths = [whole], [()]
        else:
            whole, widths = whole[0], [(w,) for w in B.chunks[1]]
        rows_of_pieces = []
        for blk, rows in zip(self.blocks, self.row_chunks):
            rows_of_pieces.append(
                [
                    da.from_delayed(
                        dask.delayed(_multiply, pure=True)(blk, Bj),
                        shape=(rows, *w),
                        dtype=dtype,
                        meta=_tasks.meta(B._meta, B.ndim, dtype),
                    )
                    for Bj, w in zip(whole, widths)
                ]
            )
        if B.ndim == 1:
            return da.concatenate([r[0] for r in rows_of_pieces], axis=0)
        return da.block(rows_of_pieces)

    def _matmul_dask_in_place(self, B, dtype):
        """S @ B for a 2-D dask B of NumPy chunks already of the result's dtype: each task
        reads the row chunks of one column chunk of B where they are (no task concatenates
        B's rows: that was a copy of n x k values per column chunk, and its first touch)."""
        parts = B.to_delayed()  # (row chunks, column chunks)
        meta = _tasks.meta(B._meta, 2, dtype)
        rows_of_pieces = [
            [
                da.from_delayed(
                    dask.delayed(_multiply_chunks, pure=True)(blk, *parts[:, j]),
                    shape=(rows, w),
                    dtype=dtype,
                    meta=meta,
                )
                for j, w in enumerate(B.chunks[1])
            ]
            for blk, rows in zip(self.blocks, self.row_chunks)
        ]
        return da.block(rows_of_pieces)
