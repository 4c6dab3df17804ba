"""Sparse x dense products: a multithreaded AVX2 CSR kernel on the CPU, and on the GPU the
SMaT design (rows reordered by Jaccard similarity, 16 x 16 blocks, ``mma.sync`` tensor cores
with float32 accumulation) with a CSR CUDA kernel for matrices that block badly."""

from __future__ import annotations

import threading
import time

import numpy as np

from . import _checks as C
from . import _dispatch as D
from . import _sparse_input as SI
from . import _spmm_blocks as BL
from .reference import spmm as ref

__all__ = ["SparseMatrix", "spmm"]

# GPU kernel rule: the block (tensor-core) kernel when at least this fraction of the stored
# 16 x 16 blocks' entries is nonzero after reordering, else the CSR kernel. See SparseMatrix.
BLOCKED_MIN_FILL = 0.30  # measured on an H100: see SparseMatrix

_CPU_DTYPES = (np.float32, np.float64)
_GPU_DTYPES = (np.float32, np.float16)
_REF_DTYPES = (np.float16, np.float32, np.float64)
_DTYPE_SETS = {"cpu": frozenset(map(np.dtype, _CPU_DTYPES)),
               "cuda": frozenset(map(np.dtype, _GPU_DTYPES)),
               "reference": frozenset(map(np.dtype, _REF_DTYPES))}
_PRECISIONS = (None, "tf32", "f16", "bf16", "fp32")
_KERNELS = (None, "auto", "blocked", "csr")
_GPU_MAX_K = 65535 * 64  # grid.y walks B's columns in 64-column tiles (k > 32)
_MODE_ID = {"tf32": 0, "f16": 1, "bf16": 2}


def _host(x):
    return D.to_host(x) if D.is_cupy_array(x) else np.asarray(x)


def _csr_parts(A, fn):
    """(data, indices, indptr, shape, sources) of A on the host: the index structure
    validated (before scipy converts anything: scipy trusts its indices), the values not yet;
    ``sources`` are the caller's arrays that the result may share memory with."""
    if SI.is_sparse(A):
        csr = SI.as_csr(A, "A", fn)
        sources = tuple(getattr(A, k) for k in ("data", "indices", "indptr") if hasattr(A, k))
        return _host(csr.data), _host(csr.indices), _host(csr.indptr), csr.shape, sources
    if isinstance(A, tuple) and len(A) == 4:
        data, indices, indptr, shape = A
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise ValueError(f"{fn}(): shape must be a tuple (m, n), got {shape!r}")
        m = C.check_int(shape[0], "shape[0]", fn, min_value=0)
        n = C.check_int(shape[1], "shape[1]", fn, min_value=0)
        C.check_index_range(m, "the number of rows", fn)
        C.check_index_range(n, "the number of columns", fn)
        data, indices, indptr = _host(data), _host(indices), _host(indptr)
        SI.check_compressed(indptr, indices, m, n, "A", fn, data=data, exact=True)
        return data, indices, indptr, (m, n), (data, indices, indptr)
    mod = type(A).__module__
    raise TypeError(
        f"{fn}(): A must be a scipy.sparse or cupyx.scipy.sparse matrix, a SparseMatrix or a "
        f"(data, indices, indptr, shape) tuple, got {mod}.{type(A).__name__}"
    )


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
    shape, nnz, dtype (of the values as given).
    prepare_time_ : dict  seconds spent preparing, keyed "cpu/float32", "cuda/reorder",
        "cuda/blocks-tf32", "cuda/csr", ...
    reorder_ : str or None  row order chosen for the GPU blocks: "original",
        "minhash-jaccard" or "first-block-column" (the candidate giving the fewest blocks).
    block_counts_ : dict  number of 16 x 16 blocks per candidate order.
    n_blocks_, fill_ratio_ : blocks of the chosen order, and nnz / (16 * 16 * n_blocks_).
    kernel_ : str or None  the kernel the last product ran: "cpu-csr-avx2+fma",
        "cpu-csr-portable", "cuda-blocked-tf32|f16|bf16", "cuda-csr" or "reference".

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
    >>> np.allclose(S @ B, A @ B, rtol=1e-5, atol=1e-5)
    True
    """

    __array_priority__ = 100  # so that NumPy defers ``ndarray @ S`` / ``S @ ndarray`` to us

    def __init__(self, A, *, _fn="SparseMatrix"):
        fn = _fn
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
        self.data = SI.owned(data, *sources)
        self.indices = SI.owned(indices, *sources, dtype=np.int32)
        self.indptr = SI.owned(indptr, *sources, dtype=np.int64)
        self._init_caches()

    def _state(self):
        return {k: getattr(self, k) for k in ("shape", "nnz", "dtype", "data", "indices", "indptr")}

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

    def __repr__(self):
        return f"<matkern.SparseMatrix {self.shape[0]}x{self.shape[1]}, nnz={self.nnz}, {self.dtype}>"

    def __matmul__(self, B):
        return spmm(self, B)

    def toscipy(self):
        """The matrix as a scipy.sparse.csr_matrix (host copy of the stored CSR)."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

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
            perm, name, counts = BL.choose_order(self.indptr, self.indices, m, n)
            self._gpu_cache["perm"] = perm
            self.reorder_, self.block_counts_ = name, counts
            self.n_blocks_ = counts[name]
            self.fill_ratio_ = self.nnz / (256 * self.n_blocks_) if self.n_blocks_ else 0.0
            self.prepare_time_["cuda/reorder"] = time.perf_counter() - t0
        return self._gpu_cache["perm"]

    def _gpu_csr(self):
        """Device CSR (float32 values) and the row segments of rows longer than _SEG."""
        if "csr" not in self._gpu_cache:
            t0 = time.perf_counter()
            self._gpu_cache["csr"] = _gpu_csr_plan(self.indptr, self.indices, self.data)
            D.cupy_module().cuda.get_current_stream().synchronize()
            self.prepare_time_["cuda/csr"] = time.perf_counter() - t0
        return self._gpu_cache["csr"]

    def _gpu_blocks(self, mode):
        key = "blocks-" + mode
        if key not in self._gpu_cache:
            perm = self._reorder()
            t0 = time.perf_counter()
            m, n = self.shape
            b = BL.build_blocks(self.indptr, self.indices, self.data, m, n, perm, mode)
            cp = D.cupy_module()
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
        C.check_choice(device, "device", fn, ("cpu", "cuda"))
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
        return {"rows": self.shape[0], "cols": self.shape[1], "nnz": self.nnz,
                "reorder": self.reorder_, "block_counts": dict(self.block_counts_),
                "n_blocks": self.n_blocks_, "fill_ratio": self.fill_ratio_,
                "kernel_auto": "blocked" if self.fill_ratio_ >= BLOCKED_MIN_FILL else "csr"}


_SEG = 256  # GPU CSR: rows with more nonzeros are cut into segments of this many


def _row_segments(indptr):
    """(bounds, seg_row, seg_slot, split_rows) cutting rows longer than _SEG (see
    cuda/spmm.hpp SpmmCsrSegments); four 1-element dummies when no row is that long."""
    counts = np.diff(indptr)
    nseg = np.maximum(1, -(-counts // _SEG))
    if counts.size == 0 or nseg.max() <= 1:
        return (np.zeros(1, np.int64), np.zeros(1, np.int32), np.zeros(1, np.int32),
                np.zeros(1, np.int32))
    m = counts.size
    seg_row = np.repeat(np.arange(m), nseg)
    first = np.cumsum(nseg) - nseg  # index of each row's first segment
    j = np.arange(seg_row.size) - first[seg_row]
    bounds = np.append(indptr[seg_row] + j * _SEG, indptr[-1]).astype(np.int64)
    split = nseg > 1
    slot_of_row = np.full(m, -1, np.int32)
    slot_of_row[split] = np.arange(int(split.sum()), dtype=np.int32)
    return (bounds, seg_row.astype(np.int32), slot_of_row[seg_row],
            np.nonzero(split)[0].astype(np.int32))


def _gpu_csr_plan(indptr, indices, data):
    """The GPU CSR kernel's operands, planned once for any number of products: (indptr int64,
    indices int32, data float32, row segments) as C-order CuPy arrays. Takes the NumPy or
    CuPy arrays of an already validated CSR matrix; the segments are planned on the host."""
    cp = D.cupy_module()
    segs = _row_segments(_host(indptr).astype(np.int64, copy=False))
    return (cp.asarray(indptr, dtype=cp.int64, order="C"),
            cp.asarray(indices, dtype=cp.int32, order="C"),
            cp.asarray(data, dtype=cp.float32, order="C"), tuple(cp.asarray(a) for a in segs))


def _gpu_csr_matmul(csr, B, out):
    """out = A @ B on the GPU CSR kernel (float32 values and accumulation, no tensor cores:
    what spmm runs for precision="fp32" or kernel="csr"), A planned once by _gpu_csr_plan.
    B: C-order (n, k) CuPy float32 or float16, k <= _GPU_MAX_K; out: C-order (m, k) of B's
    dtype. No checks: the caller has validated everything."""
    if int(csr[2].size) == 0:  # nnz = 0
        out.fill(0)
        return out
    _run_gpu_csr(D.cuda(), D.cupy_module(), B.shape[0], csr, B, out, 0, D.stream_ptr())
    return out


def _run_gpu_csr(cuda, cp, n, csr, Bc, out, only_if_bad, stream):
    ip, ix, dv, (bounds, seg_row, seg_slot, split_rows) = csr
    segs = ()
    if int(bounds.size) > 1:  # rows cut into segments (1-element placeholders: none are)
        part = cp.empty(int(split_rows.size) * Bc.shape[1], dtype=cp.float32)
        segs = (bounds, seg_row, seg_slot, split_rows, part)
    cuda.spmm_csr(n, ip, ix, dv, Bc, out, only_if_bad, stream, *segs)


def _resolve_mode(dtype, precision, fn):
    C.check_choice(precision, "precision", fn, _PRECISIONS)
    if dtype == np.float16:
        if precision not in (None, "f16"):
            raise ValueError(f"{fn}(): precision={precision!r} needs float32 B; float16 B "
                             "runs with precision 'f16'")
        return "f16"
    if precision == "f16":
        raise ValueError(f"{fn}(): precision='f16' needs float16 B, got {dtype}")
    return precision or "tf32"


def spmm(A, B, *, out=None, backend=None, precision=None, kernel=None):
    """Sparse x dense product ``A @ B``.

    Parameters
    ----------
    A : SparseMatrix, or anything SparseMatrix accepts (then prepared for this call only;
        keep a SparseMatrix to reuse the preparation). Shape (m, n).
    B : numpy.ndarray or cupy.ndarray, shape (n, k), C or Fortran order (other strides:
        ValueError). CPU: float32 or float64. GPU: float32 or float16 (bfloat16: CuPy has no
        such dtype, so pass float32 B with ``precision="bf16"``). A's values are converted to
        B's dtype (cached per dtype). NaN/Inf in B propagate as in ``A @ B``.
    out : array, optional
        C-contiguous, writable (m, k) array of B's dtype and array type to write into. It may
        overlap B (``out=B`` when B is square): the product then goes through a temporary.
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
    (m, k) C-order array of B's dtype and array type, in A's original row order (``out``
    when given). Rows of A without nonzeros give zero rows; m, n or k = 0 give an empty or
    all-zero result.

    Example
    -------
    >>> import numpy as np, scipy.sparse as sp, matkern
    >>> A = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> matkern.spmm(A, np.ones((2, 3), dtype=np.float32))
    array([[1., 1., 1.],
           [2., 2., 2.]], dtype=float32)
    """
    fn = "spmm"
    S = A if isinstance(A, SparseMatrix) else SparseMatrix(A, _fn=fn)
    C.check_array(B, "B", fn, ndim=2, contiguous=False, allow_empty=True)
    be = D.pick(fn, B, out, backend=backend)
    allowed = {"cpu": _CPU_DTYPES, "cuda": _GPU_DTYPES, "reference": _REF_DTYPES}[be]
    if B.dtype not in _DTYPE_SETS[be]:
        raise TypeError(f"{fn}(): B must have dtype {C.dtype_names(allowed)} on backend "
                        f"'{be}', got {B.dtype}")
    m, n = S.shape
    if B.shape[0] != n:
        raise ValueError(f"{fn}(): B must have {n} rows (A is {m}x{n}), got shape {B.shape}")
    if not (B.flags.c_contiguous or B.flags.f_contiguous):
        raise ValueError(f"{fn}(): B must be C- or Fortran-contiguous, got a strided view of "
                         f"shape {B.shape}")
    C.check_choice(kernel, "kernel", fn, _KERNELS)
    mode = _resolve_mode(B.dtype, precision, fn) if be == "cuda" else None
    if precision is not None and be != "cuda":
        C.check_choice(precision, "precision", fn, _PRECISIONS)
    k = B.shape[1]
    C.check_index_range(k, "B.shape[1]", fn)
    C.check_out(out, (m, k), B.dtype, B, "out", fn)
    if out is not None and not out.flags.c_contiguous:
        raise ValueError(f"{fn}(): out must be C-contiguous")
    if C.may_overlap(out, B):
        # The kernels read B while they write out: compute into a temporary, then copy.
        out[...] = spmm(S, B, backend=be, precision=precision, kernel=kernel)
        return out
    xp = D.array_module(B)
    if be == "reference":
        S.kernel_ = "reference"
        y = D.like(ref.spmm_csr(S.data, S.indices, S.indptr, S.shape, D.to_host(B)), B)
        if out is None:
            return y
        out[...] = y
        return out
    if out is None:
        out = xp.empty((m, k), dtype=B.dtype)
    if m == 0 or k == 0:
        return out
    if n == 0 or S.nnz == 0:
        out.fill(0)
        return out
    if be == "cpu":
        data = S._cpu_arrays(B.dtype)
        D.cpu().spmm_csr(n, S.indptr, S.indices, data, B, out)
        S.kernel_ = "cpu-csr-" + D.cpu().simd_level()
        return out
    if k > _GPU_MAX_K:
        raise ValueError(f"{fn}(): B.shape[1] must be <= {_GPU_MAX_K} on the GPU (grid limit), "
                         f"got {k}; split B's columns")
    cp, cuda, stream = D.cupy_module(), D.cuda(), D.stream_ptr()
    Bc = cp.ascontiguousarray(B)
    use = kernel or "auto"
    if mode == "fp32":
        use = "csr"
    if use == "auto":
        with S._lock:
            S._reorder()
        use = "blocked" if S.fill_ratio_ >= BLOCKED_MIN_FILL else "csr"
        guard = use == "blocked"
    else:
        guard = False
    if use == "blocked":
        with S._lock:
            blk = S._gpu_blocks(mode)
            csr = S._gpu_csr() if guard else None
        bad = 0
        if guard:
            # B with Inf/NaN: decided on the device (no host sync): the block kernel then
            # skips and the CSR kernel runs instead.
            flag = cp.empty(1, dtype=cp.int32)
            cuda.spmm_nonfinite(Bc, flag.data.ptr, stream)
            bad = flag.data.ptr
        cuda.spmm_bsr(m, n, blk["block_ptr"], blk["block_col"], blk["values"], _MODE_ID[mode],
                      blk["out_rows"], Bc, out, bad, stream)
        if guard:
            _run_gpu_csr(cuda, cp, n, csr, Bc, out, bad, stream)
        S.kernel_ = "cuda-blocked-" + mode
    else:
        with S._lock:
            csr = S._gpu_csr()
        _gpu_csr_matmul(csr, Bc, out)
        S.kernel_ = "cuda-csr"
    return out
