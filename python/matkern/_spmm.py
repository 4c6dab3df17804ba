"""Sparse x dense products: a multithreaded AVX2 CSR kernel on the CPU, and on the GPU the
SMaT design (rows reordered by Jaccard similarity, 16 x 16 blocks, ``mma.sync`` tensor cores
with float32 accumulation) with a CSR CUDA kernel for matrices that block badly."""

from __future__ import annotations

import threading
import time

import numpy as np

from . import _checks, _dispatch, _gpu_csr, _sparse_input, _spmm_blocks
from ._interop import array_methods, arrays
from .reference import spmm as ref

__all__ = ["SparseMatrix", "spmm"]

# GPU kernel rule: the block (tensor-core) kernel when at least this fraction of the stored
# 16 x 16 blocks' entries is nonzero after reordering, else the CSR kernel. See SparseMatrix.
BLOCKED_MIN_FILL = 0.30  # measured on an H100: see SparseMatrix

_CPU_DTYPES = (np.float32, np.float64)
_GPU_DTYPES = (np.float32, np.float16)
_REF_DTYPES = (np.float16, np.float32, np.float64)
_DTYPE_SETS = {
    "cpu": frozenset(map(np.dtype, _CPU_DTYPES)),
    "cuda": frozenset(map(np.dtype, _GPU_DTYPES)),
    "reference": frozenset(map(np.dtype, _REF_DTYPES)),
}
_PRECISIONS = (None, "tf32", "f16", "bf16", "fp32")
_KERNELS = (None, "auto", "blocked", "csr")
_MODE_ID = {"tf32": 0, "f16": 1, "bf16": 2}


def _host(x):
    """x as a NumPy array (CuPy arrays copied to the host, sequences converted)."""
    return np.asarray(_dispatch.to_host(x))


def _csr_parts(A, fn):
    """(data, indices, indptr, shape, sources) of A on the host: the index structure
    validated (before scipy converts anything: scipy trusts its indices), the values not yet;
    ``sources`` are the caller's arrays that the result may share memory with."""
    if _dispatch.is_sparse(A):
        csr = _sparse_input.as_csr(A, "A", fn)
        sources = tuple(getattr(A, k) for k in ("data", "indices", "indptr") if hasattr(A, k))
        return _host(csr.data), _host(csr.indices), _host(csr.indptr), csr.shape, sources
    if isinstance(A, tuple) and len(A) == 4:
        data, indices, indptr, shape = A
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise ValueError(f"{fn}(): shape must be a tuple (m, n), got {shape!r}")
        m = _checks.check_int(shape[0], "shape[0]", fn, min_value=0)
        n = _checks.check_int(shape[1], "shape[1]", fn, min_value=0)
        _checks.check_index_range(m, "the number of rows", fn)
        _checks.check_index_range(n, "the number of columns", fn)
        data, indices, indptr = _host(data), _host(indices), _host(indptr)
        _sparse_input.check_compressed(indptr, indices, m, n, "A", fn, data=data, exact=True)
        return data, indices, indptr, (m, n), (data, indices, indptr)
    mod = type(A).__module__
    raise TypeError(
        f"{fn}(): A must be a scipy.sparse or cupyx.scipy.sparse matrix, a SparseMatrix or a "
        f"(data, indices, indptr, shape) tuple, got {mod}.{type(A).__name__}"
    )


@array_methods(init=True, array_like=True)
class SparseMatrix:
    """A sparse m x n matrix prepared for fast products with dense matrices.

    Keeps the CSR form on the host and prepares, once and lazily per device and dtype, what
    the kernels need: the converted CSR arrays for the CPU, and for the GPU the row
    reordering, the block-sparse layout or the device CSR arrays. Repeated products pay the
    preparation once.

    Parameters
    ----------
    A : scipy.sparse matrix (any format), cupyx.scipy.sparse matrix, or a tuple
        ``(data, indices, indptr, shape)`` in CSR form (NumPy or CuPy arrays).
        Values: float16/32/64 (integer and bool values are converted to float64; complex is
        rejected). Column indices may be unsorted within a row; duplicate (row, column)
        entries are **summed** (as scipy does), on every backend. indptr must start at 0,
        never decrease and end at nnz (an int32 indptr that overflowed shows up as a decrease
        and is rejected). m and n must fit 32-bit indices (<= 2**31 - 1); nnz may exceed it
        (the kernels use 64-bit offsets). NaN/Inf values propagate into the rows that hold them.

    Attributes
    ----------
    shape : (m, n).  nnz : stored entries.  dtype : of the values as given (float16/32/64).
    prepare_time_ : dict  seconds spent preparing, keyed "cpu/float32", "cuda/reorder",
        "cuda/blocks-tf32", "cuda/csr", ...
    reorder_ : str or None  row order chosen for the GPU blocks: "original",
        "minhash-jaccard" or "first-block-column" (the candidate giving the fewest blocks).
    block_counts_ : dict  number of 16 x 16 blocks per candidate order.
    n_blocks_, fill_ratio_ : blocks of the chosen order, and nnz / (16 * 16 * n_blocks_).
    kernel_ : str or None  the kernel the last product ran: "cpu-csr-avx2+fma",
        "cpu-csr-portable", "cuda-blocked-tf32|f16|bf16", "cuda-csr" or "reference".

    Operations (as a scipy.sparse array)
    -------------------------------------
    ``S @ B`` / ``S.dot(B)``: :func:`spmm`; B is a NumPy (CPU) or CuPy (GPU) array of shape
    (n, k) or (n,), the result (m, k) or (m,). Its dtype is promoted as scipy does on the CPU:
    float64 with float32 gives float64 (see :func:`spmm` for which operand is copied); on the
    GPU it is B's dtype. ``B @ S`` for B of shape (k, m) or (m,): ``(S.T @ B.T).T``, shape
    (k, n) or (n,) (the 2-D result is a transposed, Fortran-ordered view). ``S.T``: the n x m
    transpose, a SparseMatrix whose CSR is built once on first use (host, O(nnz)).
    ``S.toarray()``: dense NumPy. ``S.tocsr()``: a scipy.sparse.csr_array copy. Pickling
    (pickle, joblib) keeps the matrix and drops the prepared device arrays. The data stay on
    the host (there is no ``get()``); CuPy B is served from per-device caches.
    ``np.asarray(S)`` and the elementwise operators (+, -, *, /, **, unary -) raise TypeError
    naming the alternative (``S.toarray()`` or ``S.tocsr()``).

    GPU kernel rule (``kernel="auto"``): the block (tensor-core) kernel when ``fill_ratio_ >=
    BLOCKED_MIN_FILL`` (0.30), else the CSR kernel. Measured on an H100 (both kernels forced,
    k = 8..512, float32 and float16): blocks won by 2-4x on band matrices (fill 0.8) and lost
    by 1.5-2.7x on the 27-point stencil (fill 0.09) and the DNN layer (fill 0.12); 0.30 sits
    between. When the block kernel is chosen, B is checked for Inf/NaN on the device (no host
    sync) and the CSR kernel runs instead if any: a padded zero times Inf would put NaN into
    rows that never touch that column. kernel_ then still reads "cuda-blocked-...".

    Example
    -------
    >>> import numpy as np, scipy.sparse as sp, matkern
    >>> A = sp.random(1000, 500, density=0.01, format="csr", random_state=0)
    >>> S = matkern.SparseMatrix(A)
    >>> B = np.ones((500, 32), dtype=np.float32)
    >>> np.allclose(S @ B, A @ B, rtol=1e-5, atol=1e-5)  # float64 A: float64 result
    True
    >>> (S @ B).dtype, (S @ B[:, 0]).shape, (np.ones((3, 1000)) @ S).shape, S.T.shape
    (dtype('float64'), (1000,), (3, 500), (500, 1000))
    """

    # NumPy then returns NotImplemented for ``ndarray @ S`` (and every other binary operator
    # or ufunc) instead of treating S as an object scalar: Python then calls __rmatmul__, or
    # the refusing operator below.
    __array_priority__ = 100
    __array_ufunc__ = None

    def __init__(self, A):
        self._init_from(A, "SparseMatrix")

    @classmethod
    def _checked(cls, A, fn):
        """SparseMatrix(A) whose errors name ``fn`` (the function that was handed A)."""
        self = cls.__new__(cls)
        self._init_from(A, fn)
        return self

    def _init_from(self, A, fn):
        if isinstance(A, SparseMatrix):
            self.__dict__.update(A._state())
            self._init_caches()
            return
        data, indices, indptr, shape, sources = _csr_parts(A, fn)
        if data.ndim != 1:
            raise ValueError(f"{fn}(): A's data must be 1-dimensional, got shape {data.shape}")
        if data.dtype.kind == "c":
            raise TypeError(f"{fn}(): A's values must be real, got {data.dtype}")
        if data.dtype.kind in "biu":
            data = data.astype(np.float64)
        if data.dtype not in [np.dtype(d) for d in _REF_DTYPES]:
            raise TypeError(
                f"{fn}(): A's values must have dtype float16, float32 or float64, got {data.dtype}"
            )
        self.shape = tuple(int(v) for v in shape)
        self.nnz = int(indptr[-1])
        self.dtype = data.dtype
        # Owned, read-only copies: changing the caller's arrays later can neither crash a
        # product (indices were validated here, once) nor change its result.
        self.data = _sparse_input.owned(data, *sources)
        self.indices = _sparse_input.owned(indices, *sources, dtype=np.int32)
        self.indptr = _sparse_input.owned(indptr, *sources, dtype=np.int64)
        self._init_caches()

    def _state(self):
        return {k: getattr(self, k) for k in ("shape", "nnz", "dtype", "data", "indices", "indptr")}

    def __getstate__(self):
        # The matrix only: the lock, the prepared per-device arrays (GPU ones live on one
        # device) and the transpose are rebuilt lazily after unpickling.
        return self._state()

    def __setstate__(self, state):
        self.__dict__.update(state)
        for name in ("data", "indices", "indptr"):
            getattr(self, name).flags.writeable = False  # read-only, as the constructor leaves them
        self._init_caches()

    def _init_caches(self):
        self._lock = threading.Lock()
        self._cpu_cache = {}
        self._gpu_cache = {}
        self.prepare_time_ = {}
        self.reorder_ = None
        self.block_counts_ = None
        self.n_blocks_ = None
        self.fill_ratio_ = None
        self.kernel_ = None
        self._transpose = None

    def __repr__(self):
        return (
            f"<matkern.SparseMatrix {self.shape[0]}x{self.shape[1]}, nnz={self.nnz}, {self.dtype}>"
        )

    def __matmul__(self, B):
        if isinstance(B, SparseMatrix):
            return _refuse("S1 @ S2", "S1.tocsr() @ S2.tocsr()")
        return spmm(self, B)

    def __rmatmul__(self, B):
        """``B @ S`` for a dense B of shape (..., m) (1-D or 2-D): ``(S.T @ B.T).T``, a view
        of a C-order result (so F-ordered for 2-D), of the promoted dtype."""
        if not (isinstance(B, np.ndarray) or _dispatch.is_cupy_array(B)):
            return NotImplemented
        if B.ndim not in (1, 2):
            raise ValueError(f"B @ S: B must be 1- or 2-dimensional, got shape {B.shape}")
        m, n = self.shape
        if B.shape[-1] != m:
            raise ValueError(f"B @ S: B must have {m} columns (S is {m}x{n}), got shape {B.shape}")
        return spmm(self.T, B.T).T

    def dot(self, B):
        """``S @ B`` (as scipy's ``dot``): see :func:`spmm`."""
        return self @ B

    @property
    def T(self):
        """The transpose as a SparseMatrix (n x m, same dtype): its CSR is built on the first
        use (a stable sort of the entries by column, on the host) and kept; ``S.T.T`` is S."""
        t = self._transpose
        if t is None:
            with self._lock:
                if self._transpose is None:
                    self._transpose = self._build_transpose()
                t = self._transpose
        return t

    def _build_transpose(self):
        m, n = self.shape
        rows = np.repeat(np.arange(m, dtype=np.int32), np.diff(self.indptr))
        order = np.argsort(self.indices, kind="stable")
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.indices, minlength=n), out=indptr[1:])
        t = SparseMatrix((self.data[order], rows[order], indptr, (n, m)))
        t._transpose = self  # a cycle, collected as usual; dropped when pickled
        return t

    def toarray(self):
        """The dense m x n NumPy array (duplicate entries summed), of the values' dtype."""
        out = np.zeros(self.shape, dtype=self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out

    def tocsr(self):
        """A scipy.sparse.csr_array copy of the stored CSR (duplicates kept as stored)."""
        import scipy.sparse as sp

        return sp.csr_array(
            (self.data.copy(), self.indices.copy(), self.indptr.copy()), shape=self.shape
        )

    def toscipy(self):
        """The matrix as a scipy.sparse.csr_matrix (host copy of the stored CSR)."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    # ---------------------------------------------------------------- refused operations
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a matkern.SparseMatrix is not converted to a dense array implicitly: use "
            "S.toarray() (dense NumPy) or S.tocsr() (scipy.sparse)"
        )

    def __add__(self, other):
        return _refuse("S + X", "S.tocsr() + X")

    def __radd__(self, other):
        return _refuse("X + S", "X + S.tocsr()")

    def __sub__(self, other):
        return _refuse("S - X", "S.tocsr() - X")

    def __rsub__(self, other):
        return _refuse("X - S", "X - S.tocsr()")

    def __mul__(self, other):
        return _refuse("S * X", "S.tocsr() * X (elementwise) or S @ X (matrix product)")

    def __rmul__(self, other):
        return _refuse("X * S", "X * S.tocsr() (elementwise) or X @ S (matrix product)")

    def __truediv__(self, other):
        return _refuse("S / X", "S.tocsr() / X")

    def __rtruediv__(self, other):
        return _refuse("X / S", "X / S.tocsr().toarray()")

    def __pow__(self, other):
        return _refuse("S ** X", "S.tocsr() ** X")

    def __neg__(self):
        return _refuse("-S", "-S.tocsr()")

    # ---------------------------------------------------------------- preparation
    def _cpu_arrays(self, dtype):
        dtype = np.dtype(dtype)
        hit = self._cpu_cache.get(dtype)  # fast path: no lock once prepared
        if hit is not None:
            return hit
        key = dtype.name
        with self._lock:
            if dtype not in self._cpu_cache:
                t0 = time.perf_counter()
                self._cpu_cache[dtype] = self.data.astype(dtype, copy=False)
                self.prepare_time_["cpu/" + key] = time.perf_counter() - t0
            return self._cpu_cache[dtype]

    def _reorder(self):
        """Row order for the GPU blocks (host, cached); fills reorder_ and block stats."""
        if "perm" not in self._gpu_cache:
            t0 = time.perf_counter()
            m, n = self.shape
            perm, name, counts = _spmm_blocks.choose_order(self.indptr, self.indices, m, n)
            self._gpu_cache["perm"] = perm
            self.reorder_, self.block_counts_ = name, counts
            self.n_blocks_ = counts[name]
            self.fill_ratio_ = self.nnz / (256 * self.n_blocks_) if self.n_blocks_ else 0.0
            self.prepare_time_["cuda/reorder"] = time.perf_counter() - t0
        return self._gpu_cache["perm"]

    def _gpu_csr(self):
        """Device CSR (float32 values) and the row segments of rows longer than
        ``_gpu_csr.SEG``."""
        if "csr" not in self._gpu_cache:
            t0 = time.perf_counter()
            self._gpu_cache["csr"] = _gpu_csr.plan(self.indptr, self.indices, self.data)
            _dispatch.cupy_module().cuda.get_current_stream().synchronize()
            self.prepare_time_["cuda/csr"] = time.perf_counter() - t0
        return self._gpu_cache["csr"]

    def _gpu_blocks(self, mode):
        key = "blocks-" + mode
        if key not in self._gpu_cache:
            perm = self._reorder()
            t0 = time.perf_counter()
            m, n = self.shape
            b = _spmm_blocks.build_blocks(self.indptr, self.indices, self.data, m, n, perm, mode)
            cp = _dispatch.cupy_module()
            vals = b["values"]
            if mode == "f16":
                vals = vals.view(np.uint16)  # the kernel reads raw 16-bit fragments
            dev = {k: cp.asarray(b[k]) for k in ("block_ptr", "block_col", "out_rows")}
            dev["values"] = cp.asarray(vals)
            cp.cuda.get_current_stream().synchronize()
            self._gpu_cache[key] = dev
            self.prepare_time_["cuda/" + key] = time.perf_counter() - t0
        return self._gpu_cache[key]

    def prepare(self, device="cuda", dtype=np.float32, precision=None):
        """Do now the preparation that the first product on ``device`` would do (to time it
        apart from the products). Returns self.

        Example
        -------
        >>> S = matkern.SparseMatrix(A).prepare("cpu")  # doctest: +SKIP
        """
        fn = "SparseMatrix.prepare"
        _checks.check_choice(device, "device", fn, ("cpu", "cuda"))
        if device == "cpu":
            self._cpu_arrays(np.dtype(dtype))
            return self
        mode = _resolve_mode(np.dtype(dtype), precision, fn)
        with self._lock:
            self._reorder()
            if mode != "fp32" and self.fill_ratio_ >= BLOCKED_MIN_FILL:
                self._gpu_blocks(mode)
            self._gpu_csr()  # the CSR kernel, also the fallback for non-finite B
        return self

    def block_stats(self):
        """Dict of the GPU layout statistics (computes the reordering if not done yet):
        rows, cols, nnz, reorder, block_counts, n_blocks, fill_ratio, kernel_auto."""
        with self._lock:
            self._reorder()
        return {
            "rows": self.shape[0],
            "cols": self.shape[1],
            "nnz": self.nnz,
            "reorder": self.reorder_,
            "block_counts": dict(self.block_counts_),
            "n_blocks": self.n_blocks_,
            "fill_ratio": self.fill_ratio_,
            "kernel_auto": "blocked" if self.fill_ratio_ >= BLOCKED_MIN_FILL else "csr",
        }

    # ---------------------------------------------------------------- products
    # spmm has checked B (dtype, shape, layout) and out (C-order (m, k) of B's dtype), and
    # handled the empty cases; these run one backend's kernel into out.
    def _matmul_cpu(self, B, out):
        data = self._cpu_arrays(B.dtype)
        cpu = _dispatch.cpu()
        cpu.spmm_csr(self.shape[1], self.indptr, self.indices, data, B, out)
        # SpMM has no 512-bit kernel: at the avx512_vnni level it runs its AVX2 one
        self.kernel_ = "cpu-csr-" + ("portable" if cpu.simd_level() == "portable" else "avx2+fma")

    def _gpu_kernel(self, mode, kernel):
        """(kernel to run, whether to guard it): the GPU kernel rule of the class docstring.
        Only "auto" guards the block kernel against non-finite B."""
        if mode == "fp32":
            return "csr", False
        if (kernel or "auto") != "auto":
            return kernel, False
        with self._lock:
            self._reorder()
        if self.fill_ratio_ >= BLOCKED_MIN_FILL:
            return "blocked", True
        return "csr", False

    def _matmul_cuda(self, B, out, mode, kernel):
        cp, cuda, stream = _dispatch.cupy_module(), _dispatch.cuda(), _dispatch.stream_ptr()
        Bc = cp.ascontiguousarray(B)
        use, guard = self._gpu_kernel(mode, kernel)
        if use != "blocked":
            with self._lock:
                csr = self._gpu_csr()
            _gpu_csr.matmul(csr, Bc, out)
            self.kernel_ = "cuda-csr"
            return
        with self._lock:
            blk = self._gpu_blocks(mode)
            csr = self._gpu_csr() if guard else None
        bad = 0
        if guard:
            # B with Inf/NaN: decided on the device (no host sync): the block kernel then
            # skips and the CSR kernel runs instead.
            flag = cp.empty(1, dtype=cp.int32)
            cuda.spmm_nonfinite(Bc, flag.data.ptr, stream)
            bad = flag.data.ptr
        m, n = self.shape
        cuda.spmm_bsr(
            m,
            n,
            blk["block_ptr"],
            blk["block_col"],
            blk["values"],
            _MODE_ID[mode],
            blk["out_rows"],
            Bc,
            out,
            bad,
            stream,
        )
        if guard:
            _gpu_csr.run(csr, Bc, out, bad)
        self.kernel_ = "cuda-blocked-" + mode


def _refuse(what, alternative):
    raise TypeError(
        f"matkern.SparseMatrix does not support {what}; it offers @, .dot, .T, .toarray() "
        f"and .tocsr(): use {alternative}"
    )


def _result_dtype(S, B, be):
    """The dtype of ``S @ B``: scipy's promotion of A's and B's dtypes on the CPU and the
    reference backends; B's dtype on the GPU (its kernels have no float64)."""
    if be == "cuda":
        return B.dtype
    return np.result_type(S.dtype, B.dtype)


def _resolve_mode(dtype, precision, fn):
    _checks.check_choice(precision, "precision", fn, _PRECISIONS)
    if dtype == np.float16:
        if precision not in (None, "f16"):
            raise ValueError(
                f"{fn}(): precision={precision!r} needs float32 B; float16 B "
                "runs with precision 'f16'"
            )
        return "f16"
    if precision == "f16":
        raise ValueError(f"{fn}(): precision='f16' needs float16 B, got {dtype}")
    return precision or "tf32"


@arrays("B", "A", "out")
def spmm(A, B, *, out=None, backend=None, precision=None, kernel=None):
    """Sparse x dense product ``A @ B``.

    Parameters
    ----------
    A : SparseMatrix, or anything SparseMatrix accepts (then prepared for this call only;
        keep a SparseMatrix to reuse the preparation). Shape (m, n).
    B : numpy.ndarray or cupy.ndarray, shape (n, k) or (n,), C or Fortran order (other
        strides: ValueError). CPU: float32 or float64. GPU: float32 or float16 (bfloat16: CuPy
        has no such dtype, so pass float32 B with ``precision="bf16"``). NaN/Inf in B
        propagate as in ``A @ B``.
        Result dtype, as scipy on the CPU and reference backends: ``numpy.result_type(A's
        dtype, B's dtype)``. On the CPU the operand of the smaller dtype is copied to it:
        float64 A with float32 B copies B to float64 (per call), float32 A with float64 B
        copies A's values to float64 (cached per dtype). On the GPU the result has B's dtype
        (A's values converted to it; the GPU kernels have no float64).
    out : array, optional
        C-contiguous, writable array of the result's shape ((m, k), or (m,) for 1-D B), dtype
        and array type to write into. It may overlap B (``out=B`` when B is square): the
        product then goes through a temporary.
    backend : {"reference", "cpu", "cuda"}, optional
        By default NumPy B runs on the CPU and CuPy B on the GPU.
    precision : GPU only. None (default): float16 B -> "f16" (m16n8k16 half tensor cores),
        float32 B -> "tf32" (m16n8k8 tf32 tensor cores: 10-bit mantissa inputs). "bf16":
        float32 B and A rounded to bfloat16 (m16n8k16), float32 out. "fp32": the CSR kernel
        in full float32. All modes accumulate in float32.
    kernel : GPU only. None/"auto" (the rule in SparseMatrix), "blocked" or "csr". A forced
        "blocked" skips the Inf/NaN check of B: with non-finite B, rows that share a 16-row
        block with a row touching the bad column may then read NaN (auto never does that).

    Returns
    -------
    (m, k) C-order array ((m,) for 1-D B) of the result dtype above and B's array type, in
    A's original row order (``out`` when given). Rows of A without nonzeros give zero rows; m, n or k = 0 give an empty or
    all-zero result.

    Example
    -------
    >>> import numpy as np, scipy.sparse as sp, matkern
    >>> A = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> matkern.spmm(A, np.ones((2, 3), dtype=np.float32))  # float64 A: promoted
    array([[1., 1., 1.],
           [2., 2., 2.]])
    """
    fn = "spmm"
    S = A if isinstance(A, SparseMatrix) else SparseMatrix._checked(A, fn)
    _checks.check_array(B, "B", fn, contiguous=False, allow_empty=True)
    if B.ndim not in (1, 2):
        raise ValueError(f"{fn}(): B must be 1- or 2-dimensional, got shape {B.shape}")
    if B.ndim == 1:
        return _spmm_vector(S, B, out, backend, precision, kernel, fn)
    be = _dispatch.pick(fn, B, out, backend=backend)
    mode = _check_product(S, B, out, be, precision, kernel, fn)
    if _checks.may_overlap(out, B):
        # The kernels read B while they write out: compute into a temporary, then copy.
        out[...] = spmm(S, B, backend=be, precision=precision, kernel=kernel)
        return out
    dtype = _result_dtype(S, B, be)
    if be == "reference":
        S.kernel_ = "reference"
        y = ref.spmm_csr(S.data, S.indices, S.indptr, S.shape, _dispatch.to_host(B), dtype)
        return _dispatch.reference_result(y, B, out)
    m, n = S.shape
    k = B.shape[1]
    if out is None:
        out = _dispatch.array_module(B).empty((m, k), dtype=dtype)
    if m == 0 or k == 0:
        return out
    if n == 0 or S.nnz == 0:
        out.fill(0)
        return out
    if be == "cpu":
        # float64 A with float32 B: B is copied to float64 (A's float64 values are used as
        # stored); float32 A with float64 B: A's values are copied to float64 (cached).
        S._matmul_cpu(B.astype(dtype, copy=False), out)
        return out
    if k > _gpu_csr.MAX_K:
        raise ValueError(
            f"{fn}(): B.shape[1] must be <= {_gpu_csr.MAX_K} on the GPU (grid "
            f"limit), got {k}; split B's columns"
        )
    S._matmul_cuda(B, out, mode, kernel)
    return out


def _spmm_vector(S, b, out, backend, precision, kernel, fn):
    """spmm for a 1-D B of shape (n,): the product with the (n, 1) view, returned 1-D."""
    m, n = S.shape
    if b.shape[0] != n:
        raise ValueError(f"{fn}(): B must have {n} rows (A is {m}x{n}), got shape {b.shape}")
    if out is not None:
        _checks.check_array(out, "out", fn, allow_empty=True)
        if out.ndim != 1 or out.shape[0] != m:
            raise ValueError(f"{fn}(): out must have shape ({m},), got {out.shape}")
    b = _dispatch.array_module(b).ascontiguousarray(b)  # a strided vector: copied
    y = spmm(
        S,
        b[:, None],
        out=None if out is None else out[:, None],
        backend=backend,
        precision=precision,
        kernel=kernel,
    )
    return out if out is not None else y[:, 0]


def _check_product(S, B, out, be, precision, kernel, fn):
    """The checks of spmm's B, out, precision and kernel once the backend is known; returns
    the GPU precision mode ("tf32", "f16", "bf16" or "fp32"; None off the GPU)."""
    allowed = {"cpu": _CPU_DTYPES, "cuda": _GPU_DTYPES, "reference": _REF_DTYPES}[be]
    if B.dtype not in _DTYPE_SETS[be]:
        raise TypeError(
            f"{fn}(): B must have dtype {_checks.dtype_names(allowed)} on backend "
            f"'{be}', got {B.dtype}"
        )
    m, n = S.shape
    if B.shape[0] != n:
        raise ValueError(f"{fn}(): B must have {n} rows (A is {m}x{n}), got shape {B.shape}")
    if not (B.flags.c_contiguous or B.flags.f_contiguous):
        raise ValueError(
            f"{fn}(): B must be C- or Fortran-contiguous, got a strided view of shape {B.shape}"
        )
    _checks.check_choice(kernel, "kernel", fn, _KERNELS)
    mode = _resolve_mode(B.dtype, precision, fn) if be == "cuda" else None
    if precision is not None and be != "cuda":
        _checks.check_choice(precision, "precision", fn, _PRECISIONS)
    k = B.shape[1]
    _checks.check_index_range(k, "B.shape[1]", fn)
    _checks.check_out(out, (m, k), _result_dtype(S, B, be), B, "out", fn)
    if out is not None and not out.flags.c_contiguous:
        raise ValueError(f"{fn}(): out must be C-contiguous")
    return mode
