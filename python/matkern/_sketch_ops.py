"""Routes of the sketching family: the input layer (dense, scipy/cupyx sparse, SparseMatrix,
one validated form) and each sketch applied from the left (S @ A) or the right (A @ S^T) on
each backend. No argument checks beyond the input layer: ``sketch.py`` checks the rest.

GPU routes: CountSketch runs the CUDA kernels of cuda/sketch.cu; the SRHT is CuPy array code
around the existing batched FWHT kernel (sign and pad with one elementwise product, the
transform, then fancy-index the sampled rows: a kernel of its own would save one copy only);
the Gaussian sketch is a cuBLAS product with the matrix drawn on the host, so that a seed
gives the same S on every backend.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import _checks, _dispatch, _sparse_input
from .reference import sketch as ref

FLOATS = (np.float32, np.float64)

# Scratch bound of the column-blocked routes (densified sparse columns, GPU padded columns).
_BLOCK_BYTES = 64 << 20


@dataclasses.dataclass
class Mat:
    """A validated 2-D operand: ``dense`` (C-contiguous array) or CSR parts; ``xp`` its
    array module; ``vector`` when the caller passed a 1-D array (viewed as one column)."""

    shape: tuple
    dtype: np.dtype
    xp: object
    dense: object = None
    indptr: object = None
    indices: object = None
    data: object = None
    vector: bool = False
    _sm: object = None  # SparseMatrix (host CSR), built on first use
    _gpu_t: object = None  # cupyx CSR of the transpose, built on first use
    _host_t: object = None  # SparseMatrix of the transpose (host), built on first use
    user_sm: bool = False  # _sm is the caller's SparseMatrix: its own cached .T is used

    @property
    def sparse(self):
        return self.dense is None

    @property
    def on_gpu(self):
        return self.xp is not np

    def spmatrix(self):
        """The host operand as a SparseMatrix (threaded products with dense matrices)."""
        if self._sm is None:
            from ._spmm import SparseMatrix

            self._sm = SparseMatrix((self.data, self.indices, self.indptr, self.shape))
        return self._sm

    def scipy(self):
        import scipy.sparse as sp

        if self.on_gpu:
            import cupyx.scipy.sparse as csp

            return csp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def matmul(self, X):
        """A @ X (X dense, (n,) or (n, r), A's dtype and array type)."""
        if not self.sparse:
            return self.dense @ X
        if self.on_gpu:
            return self.scipy() @ X
        return self.spmatrix() @ X

    def rmatmul(self, Y):
        """A.T @ Y."""
        if not self.sparse:
            return self.dense.T @ Y
        if self.on_gpu:
            if self._gpu_t is None:
                self._gpu_t = self.scipy().T.tocsr()
            return self._gpu_t @ Y
        if self.user_sm:
            return self._sm.T @ Y  # built once and kept by the caller's SparseMatrix
        if self._host_t is None:
            # scipy's CSR -> CSC conversion (a counting sort, O(nnz)) is A^T's CSR: 10-20x
            # faster than SparseMatrix.T's stable argsort for a matrix used in one call
            from ._spmm import SparseMatrix

            t = self.scipy().tocsc()
            self._host_t = SparseMatrix((t.data, t.indices, t.indptr, self.shape[::-1]))
        return self._host_t @ Y

    def host_scipy(self):
        """A as a host scipy CSR matrix, or the dense host array."""
        if not self.sparse:
            return _dispatch.to_host(self.dense)
        import scipy.sparse as sp

        return sp.csr_matrix(
            tuple(_dispatch.to_host(a) for a in (self.data, self.indices, self.indptr)),
            shape=self.shape,
        )


def as_mat(A, name, fn, *, allow_1d=False):
    """Validate A (NumPy/CuPy array, scipy/cupyx sparse matrix or SparseMatrix) as a Mat.
    Wrong type or dtype: TypeError; bad shape, empty, NaN/Inf, corrupted indices: ValueError."""
    from ._spmm import SparseMatrix

    if isinstance(A, SparseMatrix):
        if A.dtype not in [np.dtype(d) for d in FLOATS]:
            raise TypeError(f"{fn}(): {name} must have dtype float32 or float64, got {A.dtype}")
        _nonempty(A.shape, name, fn)
        _finite(A.data, name, fn)
        return Mat(A.shape, A.dtype, np, None, A.indptr, A.indices, A.data, _sm=A, user_sm=True)
    if _dispatch.is_sparse(A):
        if len(A.shape) != 2:
            raise ValueError(f"{fn}(): {name} must be 2-dimensional, got shape {A.shape}")
        cast = np.float64 if A.dtype.kind in "biu" else None
        if cast is None and A.dtype not in [np.dtype(d) for d in FLOATS]:
            raise TypeError(f"{fn}(): {name} must have dtype float32 or float64, got {A.dtype}")
        _nonempty(A.shape, name, fn)
        csr = _sparse_input.canonical_csr(A, name, fn, dtype=cast, finite=True, nnz_limit=2**62)
        xp = _dispatch.array_module(csr.data)
        src = tuple(
            getattr(A, a) for a in ("data", "indices", "indptr", "row", "col") if hasattr(A, a)
        )
        indptr = _sparse_input.owned(csr.indptr, *src, dtype=xp.int64)
        indices = _sparse_input.owned(csr.indices, *src, dtype=xp.int32)
        data = _sparse_input.owned(csr.data, *src)
        return Mat(tuple(csr.shape), data.dtype, xp, None, indptr, indices, data)
    _checks.check_array(A, name, fn, dtypes=FLOATS, contiguous=False, finite=True)
    if A.ndim not in ((1, 2) if allow_1d else (2,)):
        dims = "1- or 2-dimensional" if allow_1d else "2-dimensional"
        raise ValueError(f"{fn}(): {name} must be {dims}, got shape {A.shape}")
    xp = _dispatch.array_module(A)
    vector = A.ndim == 1
    dense = xp.ascontiguousarray(A.reshape(-1, 1) if vector else A)
    return Mat(tuple(dense.shape), dense.dtype, xp, dense, vector=vector)


def _nonempty(shape, name, fn):
    if 0 in tuple(shape):
        raise ValueError(f"{fn}(): {name} must not be empty, got shape {tuple(shape)}")


def _finite(data, name, fn):
    if data.size and not bool(np.isfinite(data).all()):
        raise ValueError(f"{fn}(): {name} must be finite, got NaN or Inf")


def _column_blocks(M, rows, itemsize):
    """Column ranges of M whose dense (rows x width) blocks stay under _BLOCK_BYTES."""
    width = max(1, _BLOCK_BYTES // max(1, rows * itemsize))
    c = M.shape[1]
    return [(c0, min(c, c0 + width)) for c0 in range(0, c, width)]


def _dense_columns(M, c0, c1):
    """Columns c0..c1-1 of a sparse Mat as a dense C-contiguous array (its array module)."""
    blk = M.scipy()[:, c0:c1].toarray()
    return M.xp.ascontiguousarray(blk, dtype=M.dtype)


# ----------------------------------------------------------------------------- left: S @ A


def left(sk, M, be):
    """S @ M for the sketch ``sk`` (M has sk.n_rows rows): (k, c) in M's dtype and module."""
    k, m = sk.n_components, M.shape[0]
    c = M.shape[1]
    if be == "reference":
        Ah = M.host_scipy()
        if sk.kind == "gaussian":
            out = ref.gaussian_sketch_matrix(sk.key_, m, k) @ Ah
        elif sk.kind == "srht":
            out = ref.srht_sketch(Ah, sk.key_, k)
        else:
            out = ref.countsketch_sketch(Ah, sk.key_, k)
        return _dispatch.like(np.asarray(out).astype(M.dtype), M.dense if not M.sparse else M.data)
    xp = M.xp
    out = xp.empty((k, c), dtype=M.dtype)
    if sk.kind == "gaussian":
        return _gaussian_left(sk, M, out)
    if sk.kind == "countsketch":
        if be == "cpu":
            cpu = _dispatch.cpu()
            if M.sparse:
                cpu.countsketch_left_csr(M.indptr, M.indices, M.data, sk.key_, out)
            else:
                cpu.countsketch_left_dense(M.dense, sk.key_, out)
        else:
            cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
            if M.sparse:
                cuda.countsketch_left_csr(M.indptr, M.indices, M.data, sk.key_, out, stream)
            else:
                cuda.countsketch_left_dense(M.dense, sk.key_, out, stream)
        return out
    # SRHT
    scale = 1.0 / math.sqrt(k)
    if be == "cpu":
        rows = sk.rows_
        cpu = _dispatch.cpu()
        if not M.sparse:
            cpu.srht_left(M.dense, sk.key_, rows, sk.padded_rows_, scale, out)
            return out
        for c0, c1 in _column_blocks(M, m, M.dtype.itemsize):
            blk = np.empty((k, c1 - c0), dtype=M.dtype)
            cpu.srht_left(_dense_columns(M, c0, c1), sk.key_, rows, sk.padded_rows_, scale, blk)
            out[:, c0:c1] = blk
        return out
    return _srht_left_gpu(sk, M, out, scale)


def _gaussian_left(sk, M, out):
    """G^T M / sqrt(k) with G (m x k) drawn in consecutive row blocks (the same stream as one
    draw of the whole matrix), so that no k x m matrix is ever held."""
    k, m = sk.n_components, M.shape[0]
    rng = np.random.Generator(np.random.PCG64(int(sk.key_)))
    xp = M.xp
    out[...] = 0
    step = max(1, _BLOCK_BYTES // (8 * k))
    A = M.scipy() if M.sparse else M.dense
    for r0 in range(0, m, step):
        r1 = min(m, r0 + step)
        Gb = xp.asarray(rng.standard_normal((r1 - r0, k)).astype(M.dtype))
        part = A[r0:r1].T @ Gb  # (c, k), dense for sparse A too
        out += xp.asarray(part).T
    out *= M.dtype.type(1.0 / math.sqrt(k))
    return out


def _srht_left_gpu(sk, M, out, scale):
    cp = M.xp
    cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
    m, mpad = M.shape[0], sk.padded_rows_
    signs = cp.asarray(ref.srht_signs(sk.key_, m, M.dtype))
    rows = cp.asarray(sk.rows_)
    step = max(1, _BLOCK_BYTES // (mpad * M.dtype.itemsize))
    for c0 in range(0, M.shape[1], step):
        c1 = min(M.shape[1], c0 + step)
        blk = _dense_columns(M, c0, c1) if M.sparse else M.dense[:, c0:c1]
        Z = cp.zeros((c1 - c0, mpad), dtype=M.dtype)
        Z[:, :m] = (blk * signs[:, None]).T
        cuda.fwht_inplace(Z.reshape(-1), c1 - c0, mpad, 1, False, stream)
        out[:, c0:c1] = Z[:, rows].T * M.dtype.type(scale)
    return out


# --------------------------------------------------------------------------- right: A @ S^T


def right(sk, M, be):
    """M @ S^T for the sketch ``sk`` (M has sk.n_rows columns): (r, k), M's dtype and module."""
    k = sk.n_components
    r = M.shape[0]
    if be == "reference":
        Ah = M.host_scipy()
        S = ref.sketch_matrix(sk.kind, sk.key_, sk.n_rows, k)
        out = np.asarray(Ah @ S.T).astype(M.dtype)
        return _dispatch.like(out, M.dense if not M.sparse else M.data)
    xp = M.xp
    if sk.kind == "countsketch":
        out = xp.empty((r, k), dtype=M.dtype)
        if be == "cpu":
            cpu = _dispatch.cpu()
            if M.sparse:
                cpu.countsketch_right_csr(M.indptr, M.indices, M.data, M.shape[1], sk.key_, out)
            else:
                cpu.countsketch_right_dense(M.dense, sk.key_, out)
        else:
            cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
            if M.sparse:
                cuda.countsketch_right_csr(
                    M.indptr, M.indices, M.data, M.shape[1], sk.key_, out, stream
                )
            else:
                cuda.countsketch_right_dense(M.dense, sk.key_, out, stream)
        return out
    if sk.kind == "srht" and not M.sparse:
        return _srht_right_dense(sk, M, be)
    # Gaussian, or SRHT of sparse rows: the dense n x k matrix S^T times M (threaded SpMM).
    St = xp.asarray(sk.right_matrix(M.dtype))
    return M.matmul(St)


def _srht_right_dense(sk, M, be):
    """Rows of M through the fused FJLT kernels with P the row selection (one 1 per row)."""
    xp = M.xp
    k, mpad = sk.n_components, sk.padded_rows_
    signs = xp.asarray(ref.srht_signs(sk.key_, sk.n_rows, M.dtype))
    indptr = xp.arange(k + 1, dtype=xp.int64)
    indices = xp.asarray(sk.rows_.astype(np.int32))
    pdata = xp.ones(k, dtype=M.dtype)
    out = xp.empty((M.shape[0], k), dtype=M.dtype)
    scale = 1.0 / math.sqrt(k)
    if be == "cpu":
        _dispatch.cpu().fjlt_transform(M.dense, signs, indptr, indices, pdata, mpad, scale, out)
        return out
    cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
    step = max(1, _BLOCK_BYTES // (mpad * M.dtype.itemsize))
    for r0 in range(0, M.shape[0], step):
        xs = M.dense[r0 : r0 + step]
        scratch = xp.empty((xs.shape[0], mpad), dtype=M.dtype)
        cuda.fjlt_transform(
            xs, signs, indptr, indices, pdata, mpad, scale, scratch, out[r0 : r0 + step], stream
        )
    return out


def srht_right_matrix(key, m, k, mpad, rows, dtype):
    """S^T (m x k, dtype) of an SRHT: column r is sign * H[:m, rows[r]] / sqrt(k), built from
    the FWHT of the k selected unit vectors in blocks (never an mpad x mpad matrix)."""
    from .hadamard import fwht

    out = np.empty((m, k), dtype=dtype)
    signs = ref.srht_signs(key, m)
    step = max(1, _BLOCK_BYTES // (8 * mpad))
    for r0 in range(0, k, step):
        r1 = min(k, r0 + step)
        E = np.zeros((r1 - r0, mpad))
        E[np.arange(r1 - r0), rows[r0:r1]] = 1.0
        fwht(E, axis=-1, out=E)
        out[:, r0:r1] = (E[:, :m] * signs).T / math.sqrt(k)
    return out
