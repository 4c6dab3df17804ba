"""Very sparse random projection (scikit-learn's SparseRandomProjection, generated on the fly)
and FastRP graph embeddings (Chen et al., CIKM 2019).

The projection matrix is never drawn from a stateful generator: entry (component c, feature j)
comes from a counter-based hash of (seed, j) walked by a geometric skip (see
:mod:`matkern.reference.randproj`), so every backend (NumPy reference, C++ CPU, CUDA) builds
bit-identical matrices from one seed, and the kernels generate the rows they need in
bounded chunks instead of storing the matrix.
"""

from __future__ import annotations

import math
import numbers
import sys
import time

import numpy as np

from . import _checks as C
from . import _dispatch as D
from . import _sparse_input as S
from .reference import randproj as ref
from .spmm import _GPU_MAX_K, _gpu_csr_matmul, _gpu_csr_plan

__all__ = ["SparseRandomProjection", "fastrp"]

_FLOATS = (np.float32, np.float64)
# GPU: feature rows of R generated per chunk, bounding the generated entries (~16M).
_GPU_CHUNK_ENTRIES = 1 << 24
# fastrp(progress=None) shows a bar from this many stored edges on (the 1M-node, 10M-edge
# power-law graph of the benchmarks takes seconds per iteration on the CPU).
_PROGRESS_MIN_NNZ = 5_000_000


def _seed_of(random_state, fn):
    """An integer seed: the int itself, else one drawn from the Generator/RandomState/None."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    rng = C.check_random_state(random_state, fn)
    return int(rng.integers(0, 2**63 - 1))


def _check_sparse(X, name, fn, dtypes=_FLOATS, square=False, cast=None):
    """A scipy/cupyx sparse matrix -> canonical CSR (sorted, duplicates summed, int32 indices,
    int64 indptr). Wrong dtype: TypeError; bad shape, empty, corrupted index structure, index
    overflow: ValueError. The index structure is validated in X's own format
    (``_sparse_input``) before scipy/cupyx converts, sorts or casts anything: those trust the
    indices and write out of bounds otherwise. ``cast``: a dtype integer/bool data is converted
    to (after validation). May share memory with X (nothing here keeps it)."""
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise ValueError(f"{fn}(): {name} must be 2-dimensional, got shape {shape}")
    if cast is not None and X.dtype.kind in "biu":
        pass  # converted below, once the structure is known to be sound
    elif X.dtype not in [np.dtype(d) for d in dtypes]:
        raise TypeError(f"{fn}(): {name} must have dtype {C.dtype_names(dtypes)}, got {X.dtype}")
    n, d = shape
    if n == 0 or d == 0:
        raise ValueError(f"{fn}(): {name} must not be empty, got shape {shape}")
    if square and n != d:
        raise ValueError(f"{fn}(): {name} must be square (an adjacency matrix), got shape {shape}")
    X = S.as_csr(X, name, fn)
    C.check_index_range(int(X.data.size), f"{name}.nnz", fn, limit=2**62)
    if cast is not None and X.dtype.kind in "biu":
        X = X.astype(cast)
    if not X.has_canonical_format:  # unsorted or duplicate indices: sum them, as scipy does
        X = X.copy()
        X.sum_duplicates()
    xp = D.array_module(X.data)
    indptr = X.indptr.astype(xp.int64, copy=False)
    indices = X.indices.astype(xp.int32, copy=False)
    return X, indptr, indices, xp.ascontiguousarray(X.data)


def _check_sparse_shape(X, name, fn):
    """fit() reads only the shape of a sparse X, but validates its structure all the same (a
    corrupted matrix is refused at the first call that sees it)."""
    if X.dtype not in [np.dtype(d) for d in _FLOATS]:
        raise TypeError(f"{fn}(): {name} must have dtype {C.dtype_names(_FLOATS)}, got {X.dtype}")
    S.check_structure(X, name, fn)
    if 0 in tuple(X.shape):
        raise ValueError(f"{fn}(): {name} must not be empty, got shape {tuple(X.shape)}")


def _check_flag(value, name, fn):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}(): {name} must be True or False, got {type(value).__name__} "
                        f"{value!r}")
    return bool(value)


def _check_backend(backend, fn):
    if backend is not None:
        C.check_choice(backend, "backend", fn, D.BACKENDS)


def _n_components(n_components, eps, n, d, fn, *, limit=None):
    """k for n samples of d features: an int >= 1, or "auto" (Johnson-Lindenstrauss bound),
    which, as in scikit-learn, must give 1 <= k <= d. eps is validated in both cases."""
    eps = _check_eps(eps, fn)
    if isinstance(n_components, str):
        C.check_choice(n_components, "n_components", fn, ("auto",))
        from .hadamard import johnson_lindenstrauss_min_dim

        k = johnson_lindenstrauss_min_dim(n, eps)
        if k <= 0:
            raise ValueError(
                f"{fn}(): n_components='auto' with eps={eps} and n_samples={n} gives a target "
                f"dimension of {k}, which is invalid (the Johnson-Lindenstrauss bound "
                "4 log(n) / (eps^2/2 - eps^3/3) needs n_samples >= 2); pass an int n_components")
        if k > (d if limit is None else limit):
            raise ValueError(
                f"{fn}(): n_components='auto' with eps={eps} and n_samples={n} gives a target "
                f"dimension of {k}, larger than n_features = {d}: no reduction; pass an int "
                "n_components or a larger eps")
        return k
    if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral):
        raise TypeError(f"{fn}(): n_components must be an integer >= 1 or 'auto', got "
                        f"{type(n_components).__name__} {n_components!r}")
    return C.check_int(n_components, "n_components", fn, min_value=1, max_value=C.INT32_MAX)


def _check_eps(eps, fn):
    eps = C.check_float(eps, "eps", fn, min_value=0.0, max_value=1.0, strict=True)
    if eps >= 1.0:
        raise ValueError(f"{fn}(): eps must be in (0, 1), got {eps}")
    return eps


def _generate(be, seed_key, table, k, j0, j1, xp):
    """Rows j0..j1-1 of R on backend ``be``: (indptr int64, components int32, negative int8)."""
    if be == "reference":
        return ref.rp_generate(seed_key, table, k, j0, j1)
    nr = j1 - j0
    counts = xp.empty(nr, dtype=xp.int64)
    indptr = xp.zeros(nr + 1, dtype=xp.int64)
    if be == "cpu":
        D.cpu().rp_count(seed_key, table, k, j0, counts)
        np.cumsum(counts, out=indptr[1:])
        nnz = int(indptr[-1])
        comps, negs = np.empty(nnz, np.int32), np.empty(nnz, np.int8)
        D.cpu().rp_fill(seed_key, table, k, j0, indptr, comps, negs)
        return indptr, comps, negs
    cu, s = D.cuda(), D.stream_ptr()
    dtable = xp.asarray(table)
    cu.rp_count(seed_key, dtable, k, j0, counts, s)
    xp.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    comps, negs = xp.empty(max(nnz, 1), xp.int32), xp.empty(max(nnz, 1), xp.int8)
    cu.rp_fill(seed_key, dtable, k, j0, indptr, comps, negs, s)
    return indptr, comps[:nnz], negs[:nnz]


def _gpu_chunks(table, k, d):
    density = 1.0 - float(table[1]) / 2.0**63 if k >= 1 else 1.0
    per_row = 1.0 + density * k
    step = max(1, int(_GPU_CHUNK_ENTRIES / per_row))
    return [(j0, min(d, j0 + step)) for j0 in range(0, d, step)]


class SparseRandomProjection:
    """Very sparse random projection (Achlioptas; Li, Hastie, Church), scikit-learn's
    distribution: each entry of ``components_`` (n_components x n_features) is
    ``+sqrt(1/(density*k))`` or ``-sqrt(1/(density*k))`` with probability ``density/2`` each,
    else 0, independently; ``density="auto"`` is ``1/sqrt(n_features)``.
    ``transform(X) == X @ components_.T``.

    The matrix is generated on the fly from ``random_state`` by a counter-based hash (the
    same on every backend: one seed gives bit-identical matrices on the reference, the CPU and
    the GPU), so that fitting stores only a 64-bit key and transforming needs memory only for
    the output (plus generated chunks of at most a few MB on the CPU). The CPU kernels thread
    over rows (OpenMP, AVX2 when present); the GPU kernels gather over the generated entries.
    The matrices differ from scikit-learn's for the same seed (another generator); the
    distribution is the same.

    Parameters
    ----------
    n_components : int >= 1, or "auto"
        Output dimension k; "auto" uses ``johnson_lindenstrauss_min_dim(n_samples, eps)``,
        which must give 1 <= k <= n_features (ValueError otherwise, as scikit-learn: one
        sample gives k = 0).
    density : float in (0, 1], or "auto"
    eps : float in (0, 1), used by ``n_components="auto"`` only.
    random_state : None, int, numpy Generator or RandomState
        An int is the seed itself (equal ints give equal matrices).
    dense_output : bool
        For sparse input, ``False`` returns a scipy/cupyx CSR matrix (computed densely, then
        converted); dense input always gives a dense result.
    backend : {"reference", "cpu", "cuda"}, optional

    Input: X (n_samples, n_features) float32/float64, NumPy or CuPy array (C-contiguous), or a
    scipy/cupyx sparse matrix (any format; its index structure validated in that format,
    then converted to CSR, duplicate entries summed; X itself is never modified). The
    result has X's dtype and array type. NaN/Inf in X propagate to the outputs whose
    projection rows touch them.

    Attributes
    ----------
    n_components_, n_features_in_, density_, seed_, scale_ (the nonzero magnitude), and
    ``components_`` (scipy CSR, float64, k x d; generated on access with the CPU generator).

    Example
    -------
    >>> import numpy as np, matkern
    >>> X = np.random.default_rng(0).standard_normal((100, 5000)).astype(np.float32)
    >>> p = matkern.SparseRandomProjection(64, random_state=0)
    >>> Y = p.fit_transform(X)
    >>> Y.shape, Y.dtype
    ((100, 64), dtype('float32'))
    >>> bool(np.allclose(Y, X @ p.components_.T.toarray(), atol=1e-4))
    True
    """

    def __init__(self, n_components="auto", *, density="auto", eps=0.1, random_state=None,
                 dense_output=True, backend=None):
        self.n_components = n_components
        self.density = density
        self.eps = eps
        self.random_state = random_state
        self.dense_output = dense_output
        self.backend = backend

    def fit(self, X, y=None):
        """Choose k, the density and the seed for inputs shaped like X. Returns self."""
        fn = "SparseRandomProjection.fit"
        if S.is_sparse(X):
            _check_sparse_shape(X, "X", fn)
        else:
            C.check_array(X, "X", fn, dtypes=_FLOATS, ndim=2, contiguous=False)
        n, d = X.shape
        C.check_index_range(d, "n_features", fn)
        k = _n_components(self.n_components, self.eps, n, d, fn)
        if isinstance(self.density, str):
            C.check_choice(self.density, "density", fn, ("auto",))
            p = 1.0 / math.sqrt(d)
        else:
            p = C.check_float(self.density, "density", fn, min_value=0.0, max_value=1.0,
                              strict=True)
        _check_flag(self.dense_output, "dense_output", fn)
        _check_backend(self.backend, fn)
        seed = _seed_of(self.random_state, fn)
        self.n_components_, self.n_features_in_, self.density_ = k, d, p
        self.seed_ = seed
        self.scale_ = math.sqrt(1.0 / (p * k))
        self._key = ref.rp_seed_key(self.seed_)
        self._table = ref.rp_table(p, k)
        return self

    def _generate(self, backend, j0=0, j1=None):
        xp = D.cupy_module() if backend == "cuda" else np
        j1 = self.n_features_in_ if j1 is None else j1
        return _generate(backend, self._key, self._table, self.n_components_, j0, j1, xp)

    @property
    def components_(self):
        """The k x d projection as a scipy CSR matrix (float64, sorted indices)."""
        if not hasattr(self, "_key"):
            raise RuntimeError("SparseRandomProjection.components_: call fit() first")
        import scipy.sparse as sp

        be = "cpu" if D._cpu is not None else "reference"
        indptr, comps, neg = self._generate(be)
        vals = np.where(neg == 1, -self.scale_, self.scale_)
        R = sp.csr_matrix((vals, comps, indptr), shape=(self.n_features_in_, self.n_components_))
        M = R.T.tocsr()
        M.sort_indices()
        return M

    def transform(self, X):
        """Project the rows of X: (n, n_features) -> (n, n_components), X's dtype and type."""
        fn = "SparseRandomProjection.transform"
        if not hasattr(self, "_key"):
            raise RuntimeError(f"{fn}(): call fit() first")
        sparse = S.is_sparse(X)
        if sparse:
            X, indptr, indices, data = _check_sparse(X, "X", fn)
        else:
            C.check_array(X, "X", fn, dtypes=_FLOATS, ndim=2)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{fn}(): X must have {self.n_features_in_} columns (as fitted), got {X.shape[1]}")
        be = D.pick(fn, X, backend=self.backend)
        n, k, d = X.shape[0], self.n_components_, self.n_features_in_
        if be == "reference":
            Xh = X.get() if D.is_cupyx_sparse(X) else D.to_host(X)
            Y = ref.sparse_random_projection(Xh, self._key, self._table, k, self.scale_)
            out = Y.astype(X.dtype)
            if D.device_of(X) == "cuda":
                out = D.cupy_module().asarray(out)
        elif be == "cpu":
            out = np.empty((n, k), dtype=X.dtype)
            if sparse:
                D.cpu().rp_sparse(indptr, indices, data, d, None, None, self._key, self._table,
                                  self.scale_, out)
            else:
                D.cpu().rp_dense(X, self._key, self._table, self.scale_, out)
        else:
            out = _gpu_project(X if not sparse else (indptr, indices, data), d, self._key,
                               self._table, k, self.scale_, dtype=X.dtype, n=n)
        if sparse and not self.dense_output:
            return _to_csr(out)
        return out

    def fit_transform(self, X, y=None):
        """fit(X) then transform(X)."""
        return self.fit(X).transform(X)


def _to_csr(Y):
    if D.is_cupy_array(Y):
        import cupyx.scipy.sparse as csp

        return csp.csr_matrix(Y)
    import scipy.sparse as sp

    return sp.csr_matrix(Y)


def _gpu_project(X, d, key, table, k, scale, *, dtype, n, rowscale=None, colscale=None):
    """out = scale * diag(rowscale) X diag(colscale) R on the GPU, R generated per chunk."""
    cp = D.cupy_module()
    cu, s = D.cuda(), D.stream_ptr()
    out = cp.zeros((n, k), dtype=dtype)
    for j0, j1 in _gpu_chunks(table, k, d):
        indptr, comps, negs = _generate("cuda", key, table, k, j0, j1, cp)
        if isinstance(X, tuple):
            xi, xj, xv = X
            cu.rp_sparse_accumulate(xi, xj, xv, colscale, indptr, comps, negs, j0, j1, out, s)
        else:
            # components of this chunk grouped by component: CSR (k x (j1-j0)) by a stable sort
            nnz = int(indptr[-1])
            rows = _row_ids(indptr, cp).astype(cp.int32)
            order = cp.argsort(comps, kind="stable") if nnz else cp.empty(0, cp.int64)
            cols_by_c = cp.ascontiguousarray(rows[order]) if nnz else cp.empty(1, cp.int32)
            negs_by_c = cp.ascontiguousarray(negs[order]) if nnz else cp.empty(1, cp.int8)
            cptr = cp.zeros(k + 1, dtype=cp.int64)
            if nnz:
                cp.cumsum(cp.bincount(comps, minlength=k), out=cptr[1:])
            cu.rp_dense_accumulate(X, cptr, cols_by_c, negs_by_c, j0, out, s)
    factor = dtype.type(scale) if rowscale is None else (scale * rowscale).astype(dtype)[:, None]
    out *= factor
    return out


def _stderr_is_terminal():
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def _plain_progress(items, fn):
    """progress=True without tqdm: one line on stderr after each item."""
    t0 = time.perf_counter()
    for i, item in enumerate(items, 1):
        yield item
        print(f"{fn}(): iteration {i}/{len(items)} done after {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)


def _with_progress(items, progress, nnz, fn):
    """(items, possibly wrapped in a progress bar on stderr; whether one is shown). tqdm is
    imported here only: it is not a dependency of matkern."""
    if progress is False or (progress is None and (nnz < _PROGRESS_MIN_NNZ
                                                   or not _stderr_is_terminal())):
        return items, False
    try:
        from tqdm import tqdm
    except ImportError:
        if progress is None:
            return items, False
        return _plain_progress(items, fn), True
    # leave=None: the finished bar stays, unless it sits below another one (the bench runner's)
    return tqdm(items, desc=fn, unit="iteration", file=sys.stderr, leave=None), True


def fastrp(adjacency, dim=128, iteration_weights=(0.0, 1.0, 1.0), normalization_strength=0.0,
           l2_normalize=True, random_state=None, *, dtype=np.float32, backend=None,
           progress=None):
    """FastRP node embeddings (Chen et al., CIKM 2019; as in github.com/GTmac/FastRP).

    With S = D^-1 A the transition matrix (D the diagonal of row sums; rows of nodes with
    no out-edges stay zero) and R the n x dim very sparse projection with density 1/sqrt(n)
    (scikit-learn's scaling, the same generator as :class:`SparseRandomProjection`) whose
    row j is scaled by deg_j ** normalization_strength (nodes of degree 0 get 0, or 1 when
    normalization_strength == 0):

        U_1 = S R,  U_i = S U_{i-1},  embedding = sum_i w_i * normalize(U_i)

    for the q = len(iteration_weights) weights w_i; ``normalize`` divides each row by its L2
    norm (zero rows stay zero) when ``l2_normalize``, else is the identity. The paper's
    BlogCatalog setting is dim=512, iteration_weights=(0, 0, 1, 6.67),
    normalization_strength=-0.64, followed by standardizing each column
    (sklearn.preprocessing.scale) before classification; that last step is left to the caller.

    Parameters
    ----------
    adjacency : scipy.sparse or cupyx.scipy.sparse matrix, n x n, nonnegative weights
        Any format, symmetric or directed (row i lists i's out-edges); converted to CSR with
        duplicate entries summed. Integer/bool weights are converted to ``dtype``.
    dim : int >= 1
    iteration_weights : sequence of finite floats, length >= 1
    normalization_strength : float (beta)
    l2_normalize : bool
    random_state : None, int, numpy Generator or RandomState
    dtype : numpy.float32 (default) or numpy.float64, the compute and result dtype
    backend : {"reference", "cpu", "cuda"}, optional
    progress : None (default), True or False
        A progress bar over the q iterations on stderr, drawn by tqdm (imported only then;
        tqdm is not a dependency of matkern). None: shown for large graphs only (at least
        5,000,000 stored entries in adjacency) when tqdm is installed and stderr is a
        terminal. True: always shown; without tqdm, one line per iteration on stderr instead.
        False: never. The reference backend shows none. On the GPU a shown bar synchronizes
        the stream after each iteration (so that it times the work, not the launches).

    Returns
    -------
    (n, dim) array of ``dtype``: NumPy for scipy input, CuPy for cupyx input.

    Example
    -------
    >>> import scipy.sparse as sp, matkern
    >>> A = sp.random(1000, 1000, density=0.01, format="csr", random_state=0)
    >>> E = matkern.fastrp(A + A.T, dim=64, random_state=0)
    >>> E.shape, E.dtype
    ((1000, 64), dtype('float32'))
    """
    fn = "fastrp"
    if not S.is_sparse(adjacency):
        raise TypeError(f"{fn}(): adjacency must be a scipy.sparse or cupyx.scipy.sparse matrix, "
                        f"got {type(adjacency).__module__}.{type(adjacency).__name__}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn}(): dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in [np.dtype(t) for t in _FLOATS]:
        raise TypeError(f"{fn}(): dtype must be float32 or float64, got {dtype}")
    dim = C.check_int(dim, "dim", fn, min_value=1, max_value=C.INT32_MAX)
    weights = _check_weights(iteration_weights, fn)
    beta = C.check_float(normalization_strength, "normalization_strength", fn)
    l2_normalize = _check_flag(l2_normalize, "l2_normalize", fn)
    _check_backend(backend, fn)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"{fn}(): progress must be None, True or False, got "
                        f"{type(progress).__name__}")
    # structure validated before any conversion (integer/bool weights cast after it)
    A, indptr, indices, data = _check_sparse(adjacency, "adjacency", fn, square=True,
                                             cast=dtype)
    if data.dtype != dtype:
        data = data.astype(dtype)
    progress = None if progress is None else bool(progress)
    xp = D.array_module(data)
    if data.size and not bool(xp.isfinite(data).all()):
        raise ValueError(f"{fn}(): adjacency must have finite weights, got NaN or Inf")
    if data.size and bool((data < 0).any()):
        raise ValueError(f"{fn}(): adjacency must have nonnegative weights (a transition "
                         "matrix is built from it), got a negative weight")
    be = D.pick(fn, A, backend=backend)
    seed = _seed_of(random_state, fn)
    key = ref.rp_seed_key(seed)
    n = A.shape[0]
    if be == "reference":
        Ah = A.get() if D.is_cupyx_sparse(A) else A
        E = ref.fastrp(Ah, dim, weights, beta, bool(l2_normalize), key).astype(dtype)
        return D.cupy_module().asarray(E) if xp is not np else E

    steps, shown = _with_progress(weights, progress, int(indptr[-1]), fn)
    density = 1.0 / math.sqrt(n)
    table = ref.rp_table(density, dim)
    scale = math.sqrt(1.0 / (density * dim))
    deg64 = np.asarray(D.to_host(_row_sums(indptr, data, xp)), dtype=np.float64)
    inv = np.zeros(n)
    inv[deg64 > 0] = 1.0 / deg64[deg64 > 0]
    colfac = ref.degree_power(deg64, beta)
    inv_t, col_t = xp.asarray(inv.astype(dtype)), xp.asarray(colfac.astype(dtype))
    emb = xp.zeros((n, dim), dtype=dtype)
    if be == "cpu":
        cpu = D.cpu()
        U = np.empty((n, dim), dtype=dtype)
        cpu.rp_sparse(indptr, indices, data, n, inv_t, col_t, key, table, scale, U)
        V = np.empty_like(U) if len(weights) > 1 else None
        # S = D^-1 A once, so every graph product is a plain CSR x dense on the SpMM family's
        # kernel (matkern::csr_spmm).
        s_data = (data * np.repeat(inv_t, np.diff(indptr))).astype(dtype, copy=False)
        for i, w in enumerate(steps):
            if i:
                cpu.spmm_csr(n, indptr, indices, s_data, U, V)
                U, V = V, U
            if w != 0.0:
                cpu.rp_accumulate(U, w, bool(l2_normalize), emb)
        return emb
    cu, s = D.cuda(), D.stream_ptr()
    U = _gpu_project((indptr, indices, data), n, key, table, dim, scale, dtype=dtype, n=n,
                     rowscale=inv_t, colscale=col_t)
    V = xp.empty_like(U) if len(weights) > 1 else None
    csr = None
    if V is not None and dtype == np.float32 and dim <= _GPU_MAX_K:
        # S = D^-1 A scaled once and planned once (row segments for hub rows), so that every
        # graph product runs the SpMM family's float32 CSR kernel: spmm's exact float32 path
        # (precision="fp32"), never its TF32/FP16 tensor-core kernel.
        s_data = data * inv_t[_row_ids(indptr, xp)]
        csr = _gpu_csr_plan(indptr, indices, s_data)
    for i, w in enumerate(steps):
        if i:
            if csr is not None:
                _gpu_csr_matmul(csr, U, V)
            else:
                # float64 (the SpMM CUDA kernel takes float32 values only), or dim beyond its
                # grid limit: randproj's own CSR kernel, D^-1 applied as a row scale.
                cu.rp_csr_spmm(indptr, indices, data, inv_t, U, V, s)
            U, V = V, U
        if w != 0.0:
            if l2_normalize:
                norms = xp.sqrt((U.astype(xp.float64) ** 2).sum(axis=1, keepdims=True))
                f = xp.where(norms > 0, w / xp.where(norms > 0, norms, 1.0), 0.0).astype(dtype)
                emb += f * U
            else:
                emb += dtype.type(w) * U
        if shown:
            xp.cuda.get_current_stream().synchronize()  # the bar then times the GPU work
    return emb


def _check_weights(iteration_weights, fn):
    """A nonempty sequence of finite real numbers (not a string, not bools)."""
    name = "iteration_weights"
    if isinstance(iteration_weights, (str, bytes)) or not hasattr(iteration_weights, "__iter__"):
        raise TypeError(f"{fn}(): {name} must be a sequence of real numbers, got "
                        f"{type(iteration_weights).__name__} {iteration_weights!r}")
    weights = list(iteration_weights)
    if not weights:
        raise ValueError(f"{fn}(): {name} must not be empty")
    for i, w in enumerate(weights):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
            raise TypeError(f"{fn}(): {name} must be a sequence of real numbers, got "
                            f"{type(w).__name__} {w!r} at index {i}")
        if not math.isfinite(float(w)):
            raise ValueError(f"{fn}(): {name} must be finite, got {float(w)} at index {i}")
    return [float(w) for w in weights]


def _row_ids(indptr, xp):
    """The row of each stored entry of a CSR matrix."""
    n, nnz = indptr.shape[0] - 1, int(indptr[-1])
    if xp is np:
        return np.repeat(np.arange(n), np.diff(indptr))
    return xp.searchsorted(indptr, xp.arange(nnz), side="right") - 1


def _row_sums(indptr, data, xp):
    """Row sums (weighted out-degrees) of a CSR matrix, in float64."""
    n = indptr.shape[0] - 1
    rows = _row_ids(indptr, xp)
    return xp.bincount(rows, weights=data.astype(xp.float64), minlength=n)
