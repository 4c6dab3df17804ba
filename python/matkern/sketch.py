"""Sketch and solve: the subsampled randomized Hadamard transform (SRHT), CountSketch and the
Gaussian sketch, and the solvers built on them: :func:`randomized_svd` (scikit-learn's
conventions, any of the three sketches) and :func:`lstsq` (least squares preconditioned by a
sketch: Blendenpik / LSRN, or sketch-and-solve).

A sketch S is a k x m random matrix applied to the m rows of A: ``S @ A`` (k x c). Its random
parts (signs, buckets) come from a counter-based hash of the seed's key and its row sample
from a generator seeded with that key (:mod:`matkern.reference.sketch` defines them), so that
one ``random_state`` gives the same S on the reference, CPU and GPU backends, and one operator
object applies the same draw to several matrices (A and b of a least-squares problem).
"""

from __future__ import annotations

import numpy as np

from . import _checks, _dispatch, _sketch_ops
from ._sketch_solve import LstsqInfo, lstsq, randomized_svd
from .hadamard import _check_seed
from .randproj import _check_backend, _seed_of
from .reference import randproj as ref_randproj
from .reference import sketch as ref

__all__ = [
    "SRHT",
    "CountSketch",
    "GaussianSketch",
    "srht",
    "countsketch",
    "gaussian_sketch",
    "randomized_svd",
    "lstsq",
    "LstsqInfo",
]


class _Sketch:
    kind = ""

    def __init__(self, n_rows, n_components, *, random_state=None, backend=None):
        fn = type(self).__name__
        self.n_rows = _checks.check_int(n_rows, "n_rows", fn, min_value=1)
        self.n_components = _checks.check_int(
            n_components, "n_components", fn, min_value=1, max_value=_checks.INT32_MAX
        )
        _check_backend(backend, fn)
        self.random_state = random_state
        self.backend = backend
        _check_seed(random_state, fn)  # a negative int seed is refused by name
        self.seed_ = _seed_of(random_state, fn)
        self.key_ = ref_randproj.rp_seed_key(self.seed_)
        self._right = {}

    @property
    def shape(self):
        """(n_components, n_rows): S is k x m."""
        return (self.n_components, self.n_rows)

    def __repr__(self):
        return f"{type(self).__name__}(n_rows={self.n_rows}, n_components={self.n_components})"

    def apply(self, A):
        """``S @ A``: A of shape (n_rows,) or (n_rows, c) (NumPy/CuPy float32/float64, scipy or
        cupyx sparse, SparseMatrix) -> dense (k,) or (k, c), A's dtype and array type."""
        fn = f"{type(self).__name__}.apply"
        M = _sketch_ops.as_mat(A, "A", fn, allow_1d=True)
        if M.shape[0] != self.n_rows:
            raise ValueError(
                f"{fn}(): A must have {self.n_rows} rows (the sketch's n_rows), got shape "
                f"{_shape_of(A)}"
            )
        self._check_memory(M, fn)
        be = _pick(fn, A, M, self.backend)
        out = _sketch_ops.left(self, M, be)
        return out.reshape(-1) if M.vector else out

    def apply_right(self, A):
        """``A @ S.T``: A of shape (r, n_rows) (dense or sparse) -> dense (r, k), A's dtype
        and array type: the sketch of A's columns (a randomized range finder's first step)."""
        fn = f"{type(self).__name__}.apply_right"
        M = _sketch_ops.as_mat(A, "A", fn)
        if M.shape[1] != self.n_rows:
            raise ValueError(
                f"{fn}(): A must have {self.n_rows} columns (the sketch's n_rows), got shape "
                f"{_shape_of(A)}"
            )
        _checks.check_memory(
            M.dtype.itemsize * (M.shape[0] * self.n_components + self.n_rows * 4),
            "the sketch A @ S.T",
            fn,
        )
        be = _pick(fn, A, M, self.backend)
        return _sketch_ops.right(self, M, be)

    def toarray(self):
        """The dense k x m matrix S (NumPy float64): for tests and small sizes."""
        _checks.check_memory(
            8 * self.n_components * self.n_rows * 2, "S.toarray()", f"{type(self).__name__}"
        )
        return ref.sketch_matrix(self.kind, self.key_, self.n_rows, self.n_components)

    def right_matrix(self, dtype):
        """S^T (m x k) as a dense host array of ``dtype``, cached."""
        key = np.dtype(dtype).str
        if key not in self._right:
            m, k = self.n_rows, self.n_components
            if self.kind == "srht":
                St = _sketch_ops.srht_right_matrix(
                    self.key_, m, k, self.padded_rows_, self.rows_, dtype
                )
            else:
                St = ref.sketch_matrix(self.kind, self.key_, m, k).T.astype(dtype)
            self._right[key] = np.ascontiguousarray(St)
        return self._right[key]

    def _check_memory(self, M, fn):
        _checks.check_memory(
            M.dtype.itemsize * self.n_components * M.shape[1] * 2, "the sketch S @ A", fn
        )


class SRHT(_Sketch):
    """Subsampled randomized Hadamard transform: ``S = sqrt(1/k) P H D`` (k x m).

    D flips the signs of the m rows at random, H is the Walsh-Hadamard transform of order
    mpad (the next power of two >= m; A is zero-padded), P keeps k distinct rows of H chosen
    uniformly at random. ``E[S^T S] = I``; S mixes the rows first, so a few rows of high
    leverage (coherent A) are spread over all of them before sampling: a subspace embedding
    with k = O(d log d) rows for d columns.

    CPU: one fused pass per block of columns (sign, pad, FWHT, sample; threads over blocks);
    ``apply_right`` runs the fused FJLT kernel on A's rows. GPU: CuPy code around the batched
    FWHT kernel. Sparse A is densified a block of columns at a time.

    Parameters
    ----------
    n_rows : int  m, the rows of the matrices S is applied to.
    n_components : int  k <= mpad.
    random_state : None, int, numpy Generator or RandomState
    backend : {"reference", "cpu", "cuda"}, optional

    Attributes: ``padded_rows_`` (mpad), ``rows_`` (the k sampled rows of H, sorted int64),
    ``key_`` (the seed's 64-bit key).

    Example
    -------
    >>> import numpy as np, matkern
    >>> A = np.random.default_rng(0).standard_normal((1000, 20))
    >>> S = matkern.SRHT(1000, 100, random_state=0)
    >>> SA, Sb = S.apply(A), S.apply(A[:, 0])
    >>> SA.shape, Sb.shape, bool(np.allclose(SA[:, 0], Sb))
    ((100, 20), (100,), True)
    """

    kind = "srht"

    def __init__(self, n_rows, n_components, *, random_state=None, backend=None):
        super().__init__(n_rows, n_components, random_state=random_state, backend=backend)
        mpad = 1 << max(0, (self.n_rows - 1).bit_length())
        if self.n_components > mpad:
            raise ValueError(
                f"SRHT(): n_components must be <= {mpad} (n_rows padded to a power of two), "
                f"got {self.n_components}"
            )
        _checks.check_index_range(mpad, "n_rows padded to a power of two", "SRHT")
        self.padded_rows_ = mpad
        self.rows_ = ref.srht_rows(self.key_, mpad, self.n_components)
        self.rows_.flags.writeable = False

    def _check_memory(self, M, fn):
        # the output, and per thread up to 32 MB of padded columns (plus a densified block)
        _checks.check_memory(
            M.dtype.itemsize * self.n_components * M.shape[1] * 2
            + min(32 << 20, 64 * self.padded_rows_) * 16
            + (_sketch_ops._BLOCK_BYTES if M.sparse else 0),
            "the sketch S @ A",
            fn,
        )


class CountSketch(_Sketch):
    """CountSketch (Clarkson-Woodruff sparse embedding): row i of A is added, with a random
    sign, to one of k buckets. ``S @ A`` costs one pass over A's entries: time proportional to
    nnz for sparse A (CSR on the CPU: rows grouped by bucket, threads over buckets; GPU:
    atomic adds). A subspace embedding for d columns needs k = O(d^2) rows in theory; a few d
    work in practice as a preconditioner.

    Parameters and example as :class:`SRHT` (any k >= 1).

    Example
    -------
    >>> import scipy.sparse as sp, matkern
    >>> A = sp.random(10000, 50, density=0.01, format="csr", random_state=0)
    >>> matkern.CountSketch(10000, 400, random_state=0).apply(A).shape
    (400, 50)
    """

    kind = "countsketch"


class GaussianSketch(_Sketch):
    """Dense Gaussian sketch ``S = G^T / sqrt(k)``, G (m x k) standard normal, drawn on the
    host in blocks of rows (the same stream as one draw) and applied as a BLAS product: the
    comparison point for the structured sketches, and the dense sketch that sketch-and-solve
    with an l-infinity guarantee calls for. Parameters and example as :class:`SRHT`.

    Example
    -------
    >>> import numpy as np, matkern
    >>> matkern.GaussianSketch(500, 40, random_state=0).apply(np.ones((500, 3))).shape
    (40, 3)
    """

    kind = "gaussian"


def srht(A, k, random_state=None, *, backend=None):
    """``S @ A`` for a fresh :class:`SRHT` of A's rows: A (m,) or (m, c), dense or sparse,
    float32/float64, NumPy or CuPy -> (k,) or (k, c) of A's dtype and array type.

    Example
    -------
    >>> import numpy as np, matkern
    >>> matkern.srht(np.eye(8), 4, random_state=0).shape
    (4, 8)
    """
    return SRHT(_rows_of(A, "srht"), k, random_state=random_state, backend=backend).apply(A)


def countsketch(A, k, random_state=None, *, backend=None):
    """``S @ A`` for a fresh :class:`CountSketch` of A's rows (time proportional to nnz for
    sparse A); shapes, dtypes and devices as :func:`srht`.

    Example
    -------
    >>> import scipy.sparse as sp, matkern
    >>> matkern.countsketch(sp.eye(100, format="csr"), 10, random_state=0).shape
    (10, 100)
    """
    return CountSketch(
        _rows_of(A, "countsketch"), k, random_state=random_state, backend=backend
    ).apply(A)


def gaussian_sketch(A, k, random_state=None, *, backend=None):
    """``S @ A`` for a fresh :class:`GaussianSketch`; shapes as :func:`srht`.

    Example
    -------
    >>> import numpy as np, matkern
    >>> matkern.gaussian_sketch(np.ones(100), 5, random_state=0).shape
    (5,)
    """
    return GaussianSketch(
        _rows_of(A, "gaussian_sketch"), k, random_state=random_state, backend=backend
    ).apply(A)


def _shape_of(A):
    return tuple(getattr(A, "shape", ()))


def _rows_of(A, fn):
    shape = getattr(A, "shape", None)
    if shape is None:
        raise TypeError(
            f"{fn}(): A must be a NumPy or CuPy array, a scipy or cupyx sparse matrix or a "
            f"SparseMatrix, got {type(A).__module__}.{type(A).__name__}"
        )
    if len(shape) not in (1, 2):
        raise ValueError(f"{fn}(): A must be 1- or 2-dimensional, got shape {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError(f"{fn}(): A must not be empty, got shape {tuple(shape)}")
    return int(shape[0])


def _pick(fn, A, M, backend):
    from ._spmm import SparseMatrix

    arr = M.dense if not M.sparse else M.data
    if isinstance(A, SparseMatrix):
        arr = A.data
    return _dispatch.pick(fn, arr, backend=backend)
