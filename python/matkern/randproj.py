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
import warnings

import numpy as np

from . import _checks, _dispatch, _estimator, _fastrp, _sparse_input
from ._interop import array_methods, arrays
from ._randproj_ops import generate, gpu_project
from .reference import randproj as ref

__all__ = ["SparseRandomProjection", "fastrp"]

_FLOATS = (np.float32, np.float64)


def _seed_of(random_state, fn):
    """An integer seed: the int itself, else one drawn from the Generator/RandomState/None."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    rng = _checks.check_random_state(random_state, fn)
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
        raise TypeError(
            f"{fn}(): {name} must have dtype {_checks.dtype_names(dtypes)}, got {X.dtype}"
        )
    n, d = shape
    if n == 0 or d == 0:
        raise ValueError(f"{fn}(): {name} must not be empty, got shape {shape}")
    if square and n != d:
        raise ValueError(f"{fn}(): {name} must be square (an adjacency matrix), got shape {shape}")
    to = cast if cast is not None and X.dtype.kind in "biu" else None
    X = _sparse_input.canonical_csr(X, name, fn, dtype=to, nnz_limit=2**62)
    xp = _dispatch.array_module(X.data)
    indptr = X.indptr.astype(xp.int64, copy=False)
    indices = X.indices.astype(xp.int32, copy=False)
    return X, indptr, indices, xp.ascontiguousarray(X.data)


def _check_flag(value, name, fn):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{fn}(): {name} must be True or False, got {type(value).__name__} {value!r}"
        )
    return bool(value)


def _check_backend(backend, fn):
    if backend is not None:
        _checks.check_choice(backend, "backend", fn, _dispatch.BACKENDS)


def _n_components(n_components, eps, n, d, fn, *, limit=None):
    """k for n samples of d features: an int >= 1, or "auto" (Johnson-Lindenstrauss bound),
    which, as in scikit-learn, must give 1 <= k <= d. eps is validated in both cases."""
    eps = _check_eps(eps, fn)
    if isinstance(n_components, str):
        _checks.check_choice(n_components, "n_components", fn, ("auto",))
        from .hadamard import johnson_lindenstrauss_min_dim

        k = johnson_lindenstrauss_min_dim(n, eps)
        if k <= 0:
            raise ValueError(
                f"{fn}(): n_components='auto' with eps={eps} and n_samples={n} gives a target "
                f"dimension of {k}, which is invalid (the Johnson-Lindenstrauss bound "
                "4 log(n) / (eps^2/2 - eps^3/3) needs n_samples >= 2); pass an int n_components"
            )
        if k > (d if limit is None else limit):
            raise ValueError(
                f"{fn}(): n_components='auto' with eps={eps} and n_samples={n} gives a target "
                f"dimension of {k}, larger than n_features = {d}: no reduction; pass an int "
                "n_components or a larger eps"
            )
        return k
    if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral):
        raise TypeError(
            f"{fn}(): n_components must be an integer >= 1 or 'auto', got "
            f"{type(n_components).__name__} {n_components!r}"
        )
    return _checks.check_int(
        n_components, "n_components", fn, min_value=1, max_value=_checks.INT32_MAX
    )


def _check_eps(eps, fn):
    eps = _checks.check_float(eps, "eps", fn, min_value=0.0, max_value=1.0, strict=True)
    if eps >= 1.0:
        raise ValueError(f"{fn}(): eps must be in (0, 1), got {eps}")
    return eps


@array_methods
class SparseRandomProjection(
    _estimator.ClassNamePrefixFeaturesOutMixin,
    _estimator.TransformerMixin,
    _estimator.BaseEstimator,
):
    """Very sparse random projection (Achlioptas; Li, Hastie, Church): scikit-learn's
    ``sklearn.random_projection.SparseRandomProjection`` (same parameters, attributes, errors,
    warnings and dtypes), with the matrix generated on the fly.

    Each entry of ``components_`` (n_components x n_features) is ``+sqrt(1/(density*k))`` or
    ``-sqrt(1/(density*k))`` with probability ``density/2`` each, else 0, independently;
    ``density="auto"`` is ``1/sqrt(n_features)``. ``transform(X) == X @ components_.T``.

    Where it differs from scikit-learn, deliberately: the matrix is not drawn from
    ``random_state``'s stream but by a counter-based hash of (seed, feature) (the same on every
    backend: one seed gives bit-identical matrices on the reference, the CPU and the GPU), so
    that fitting stores only a 64-bit key and transforming needs memory only for the output
    (plus generated chunks of at most a few MB on the CPU). The matrices therefore differ from
    scikit-learn's for the same seed; the distribution is the same. ``components_`` is
    generated on access (a property, not stored). ``backend`` is matkern's own parameter.
    Sparse input with ``dense_output=False`` (the default, as scikit-learn) gives the CSR
    matrix scipy makes of the dense result (explicit zeros dropped, sorted indices): on the
    CPU the kernel compacts each row's nonzeros as it computes the row (no dense n x k array).

    Parameters
    ----------
    n_components : int >= 1, or "auto"
        Output dimension k; "auto" uses ``johnson_lindenstrauss_min_dim(n_samples, eps)``,
        which must give 1 <= k <= n_features (ValueError otherwise, as scikit-learn: one
        sample gives k = 0). An int above n_features warns (``DataDimensionalityWarning``).
    density : float in (0, 1], or "auto"
    eps : float in (0, 1), used by ``n_components="auto"`` only.
    dense_output : bool, default False
        Sparse input: False returns a CSR matrix (scipy's ``csr_matrix`` or ``csr_array`` as
        scikit-learn's ``sparse_interface`` setting says; cupyx for cupyx input), True a dense
        array. Dense input always gives a dense result.
    compute_inverse_components : bool, default False
        Compute ``inverse_components_`` (the pseudo-inverse of ``components_``, dense
        n_features x k) in fit, for :meth:`inverse_transform`.
    random_state : None, int, numpy Generator or RandomState
        An int is the seed itself (equal ints give equal matrices).
    backend : {"reference", "cpu", "cuda"}, optional
        Force a backend; by default NumPy/scipy input runs the C++ kernels and CuPy/cupyx
        input the CUDA kernels.

    Input: X (n_samples, n_features): NumPy arrays, array-likes, pandas frames and scipy
    sparse matrices as scikit-learn validates them (float32/float64 kept, integer and object
    data converted to float64, any memory layout, NaN/Inf refused with ValueError); CuPy
    arrays or cupyx sparse matrices (stay on the GPU). A sparse matrix's index structure is
    validated in its own format before anything converts it; X is never modified. The
    result's dtype is NumPy's promotion of X's dtype and the fitted dtype (float32 for
    float32 in and float32 fitted), its array type X's.

    Attributes
    ----------
    n_components_, n_features_in_, feature_names_in_ (pandas input with string column names),
    density_, seed_ (the 64-bit seed), scale_ (the nonzero magnitude), ``components_`` (scipy
    CSR, k x d, in the dtype of the data fitted on; generated on access) and
    ``inverse_components_`` (when ``compute_inverse_components``).

    Example
    -------
    >>> import numpy as np, matkern
    >>> X = np.random.default_rng(0).standard_normal((100, 5000)).astype(np.float32)
    >>> p = matkern.SparseRandomProjection(64, random_state=0)
    >>> Y = p.fit_transform(X)
    >>> Y.shape, Y.dtype, p.components_.dtype
    ((100, 64), dtype('float32'), dtype('float32'))
    >>> bool(np.allclose(Y, X @ p.components_.T.toarray(), atol=1e-4))
    True
    """

    def __init__(
        self,
        n_components="auto",
        *,
        density="auto",
        eps=0.1,
        dense_output=False,
        compute_inverse_components=False,
        random_state=None,
        backend=None,
    ):
        self.n_components = n_components
        self.density = density
        self.eps = eps
        self.dense_output = dense_output
        self.compute_inverse_components = compute_inverse_components
        self.random_state = random_state
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def fit(self, X, y=None):
        """Choose k, the density and the seed for inputs shaped like X (only X's shape and
        dtype are used, after validation). ``y`` is ignored. Returns self."""
        fn = "SparseRandomProjection.fit"
        X = _estimator.validate_X(self, X, reset=True, fn=fn)
        n, d = X.shape
        _checks.check_index_range(d, "n_features", fn)
        k = _n_components(self.n_components, self.eps, n, d, fn)
        if isinstance(self.density, str):
            _checks.check_choice(self.density, "density", fn, ("auto",))
            p = 1.0 / math.sqrt(d)
        else:
            p = _checks.check_float(
                self.density, "density", fn, min_value=0.0, max_value=1.0, strict=True
            )
        _check_flag(self.dense_output, "dense_output", fn)
        inverse = _check_flag(self.compute_inverse_components, "compute_inverse_components", fn)
        _check_backend(self.backend, fn)
        warn_no_reduction(self.n_components, k, d)
        seed = _seed_of(self.random_state, fn)
        self.n_components_, self.density_ = k, p
        self.seed_ = seed
        self.scale_ = math.sqrt(1.0 / (p * k))
        self._key = ref.rp_seed_key(self.seed_)
        self._table = ref.rp_table(p, k)
        self._fit_dtype = np.dtype(X.dtype)
        if inverse:
            self.inverse_components_ = pinv(self.components_)
        elif hasattr(self, "inverse_components_"):
            del self.inverse_components_
        return self

    @property
    def _n_features_out(self):
        """Output width, for get_feature_names_out (``sparserandomprojection0``, ...)."""
        return self.n_components_

    def _generate(self, backend, j0=0, j1=None):
        xp = _dispatch.cupy_module() if backend == "cuda" else np
        j1 = self.n_features_in_ if j1 is None else j1
        return generate(backend, self._key, self._table, self.n_components_, j0, j1, xp)

    @property
    def components_(self):
        """The k x d projection as a scipy CSR matrix (sorted indices) in the dtype of the data
        fitted on, generated on access with the CPU generator (a new matrix each access)."""
        _estimator.check_fitted(self)
        import scipy.sparse as sp

        be = "cpu" if _dispatch._cpu is not None else "reference"
        indptr, comps, neg = self._generate(be)
        vals = np.where(neg == 1, -self.scale_, self.scale_).astype(self._fit_dtype)
        R = sp.csr_matrix((vals, comps, indptr), shape=(self.n_features_in_, self.n_components_))
        M = R.T.tocsr()
        M.sort_indices()
        return M

    def transform(self, X):
        """Project the rows of X: (n, n_features) -> (n, n_components); dense for dense input
        or ``dense_output=True``, else CSR (see the class docstring for dtypes and types)."""
        fn = "SparseRandomProjection.transform"
        _estimator.check_fitted(self)
        X0 = X
        X = _estimator.validate_X(self, X, reset=False, fn=fn)
        X = _estimator.cast(X, _estimator.result_dtype(X.dtype, self._fit_dtype))
        sparse = _dispatch.is_sparse(X)
        if sparse:
            X, indptr, indices, data = _check_sparse(X, "X", fn)
        else:
            X = _dispatch.array_module(X).ascontiguousarray(X)
        be = _dispatch.pick(fn, X, backend=self.backend)
        n, k, d = X.shape[0], self.n_components_, self.n_features_in_
        if be == "reference":
            Y = ref.sparse_random_projection(
                _dispatch.to_host(X), self._key, self._table, k, self.scale_
            )
            out = _dispatch.reference_result(Y.astype(X.dtype), X)
        elif be == "cpu" and sparse and not self.dense_output:
            # CSR straight from the kernel: each row's nonzeros compacted as it is computed
            parts = _dispatch.cpu().rp_sparse_csr(
                indptr, indices, data, d, k, self._key, self._table, self.scale_
            )
            return _estimator.csr_result(parts, (n, k), X0)
        elif be == "cpu":
            out = np.empty((n, k), dtype=X.dtype)
            if sparse:
                _dispatch.cpu().rp_sparse(
                    indptr, indices, data, d, None, None, self._key, self._table, self.scale_, out
                )
            else:
                _dispatch.cpu().rp_dense(X, self._key, self._table, self.scale_, out)
        else:
            out = gpu_project(
                X if not sparse else (indptr, indices, data),
                d,
                self._key,
                self._table,
                k,
                self.scale_,
                dtype=X.dtype,
                n=n,
            )
        if sparse and not self.dense_output:
            return _estimator.sparse_like(out, X0)
        return out

    def inverse_transform(self, X):
        """Map projected rows back: ``X @ inverse_components_.T``, (n, n_components) ->
        (n, n_features), always dense (the pseudo-inverse is computed here when
        ``compute_inverse_components`` is False), as scikit-learn."""
        fn = "SparseRandomProjection.inverse_transform"
        _estimator.check_fitted(self)
        X = _estimator.validate_inverse_input(X, self.n_components_, fn)
        inv = getattr(self, "inverse_components_", None)
        if inv is None:
            inv = pinv(self.components_)
        return inverse(X, inv)


def pinv(components):
    """The pseudo-inverse (n_features x k) of a k x n_features projection (dense or sparse),
    dense, in its dtype (scikit-learn's ``inverse_components_``)."""
    import scipy.linalg

    if hasattr(components, "toarray"):
        components = components.toarray()
    return scipy.linalg.pinv(components, check_finite=False)


def inverse(X, inv):
    """``X @ inv.T`` as a dense array on X's device (X dense or sparse)."""
    if _dispatch.device_of(X) == "cuda":
        inv = _dispatch.cupy_module().asarray(inv)
    Y = X @ inv.T
    if _dispatch.is_sparse(Y):
        Y = Y.toarray()
    return _dispatch.array_module(Y).asarray(Y)


def warn_no_reduction(n_components, k, d):
    """scikit-learn's DataDimensionalityWarning for an int n_components above n_features."""
    if not isinstance(n_components, str) and k > d:
        from sklearn.exceptions import DataDimensionalityWarning

        warnings.warn(
            "The number of components is higher than the number of features: "
            f"n_features < n_components ({d} < {k}). The dimensionality of the problem will "
            "not be reduced.",
            DataDimensionalityWarning,
            stacklevel=3,
        )


@arrays("adjacency")
def fastrp(
    adjacency,
    dim=128,
    iteration_weights=(0.0, 1.0, 1.0),
    normalization_strength=0.0,
    l2_normalize=True,
    random_state=None,
    *,
    dtype=np.float32,
    backend=None,
    progress=None,
):
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
    dtype, dim, weights, beta, l2_normalize = _check_fastrp_args(
        adjacency,
        dim,
        iteration_weights,
        normalization_strength,
        l2_normalize,
        dtype,
        backend,
        progress,
        fn,
    )
    # structure validated before any conversion (integer/bool weights cast after it)
    A, indptr, indices, data = _check_adjacency(adjacency, dtype, fn)
    progress = None if progress is None else bool(progress)
    be = _dispatch.pick(fn, A, backend=backend)
    key = ref.rp_seed_key(_seed_of(random_state, fn))
    if be == "reference":
        E = ref.fastrp(_dispatch.to_host(A), dim, weights, beta, l2_normalize, key)
        return _dispatch.reference_result(E.astype(dtype), A)
    steps, shown = _fastrp.with_progress(weights, progress, int(indptr[-1]), fn)
    walk = _fastrp.prepare(indptr, indices, data, dim, beta, key, dtype)
    if be == "cpu":
        return _fastrp.embed_cpu(walk, steps, len(weights), l2_normalize)
    return _fastrp.embed_cuda(walk, steps, len(weights), l2_normalize, synchronize=shown)


def _check_fastrp_args(
    adjacency,
    dim,
    iteration_weights,
    normalization_strength,
    l2_normalize,
    dtype,
    backend,
    progress,
    fn,
):
    """fastrp's arguments other than the adjacency's contents, in the order they are checked:
    (dtype, dim, weights, beta, l2_normalize), validated and normalized."""
    if not _dispatch.is_sparse(adjacency):
        raise TypeError(
            f"{fn}(): adjacency must be a scipy.sparse or cupyx.scipy.sparse matrix, "
            f"got {type(adjacency).__module__}.{type(adjacency).__name__}"
        )
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn}(): dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in [np.dtype(t) for t in _FLOATS]:
        raise TypeError(f"{fn}(): dtype must be float32 or float64, got {dtype}")
    dim = _checks.check_int(dim, "dim", fn, min_value=1, max_value=_checks.INT32_MAX)
    weights = _check_weights(iteration_weights, fn)
    beta = _checks.check_float(normalization_strength, "normalization_strength", fn)
    l2_normalize = _check_flag(l2_normalize, "l2_normalize", fn)
    _check_backend(backend, fn)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(
            f"{fn}(): progress must be None, True or False, got {type(progress).__name__}"
        )
    return dtype, dim, weights, beta, l2_normalize


def _check_adjacency(adjacency, dtype, fn):
    """(A, indptr, indices, data): the adjacency as canonical CSR with ``dtype`` weights,
    checked to be square, finite and nonnegative."""
    A, indptr, indices, data = _check_sparse(adjacency, "adjacency", fn, square=True, cast=dtype)
    if data.dtype != dtype:
        data = data.astype(dtype)
    xp = _dispatch.array_module(data)
    if data.size and not bool(xp.isfinite(data).all()):
        raise ValueError(f"{fn}(): adjacency must have finite weights, got NaN or Inf")
    if data.size and bool((data < 0).any()):
        raise ValueError(
            f"{fn}(): adjacency must have nonnegative weights (a transition "
            "matrix is built from it), got a negative weight"
        )
    return A, indptr, indices, data


def _check_weights(iteration_weights, fn):
    """A nonempty sequence of finite real numbers (not a string, not bools)."""
    name = "iteration_weights"
    if isinstance(iteration_weights, (str, bytes)) or not hasattr(iteration_weights, "__iter__"):
        raise TypeError(
            f"{fn}(): {name} must be a sequence of real numbers, got "
            f"{type(iteration_weights).__name__} {iteration_weights!r}"
        )
    weights = list(iteration_weights)
    if not weights:
        raise ValueError(f"{fn}(): {name} must not be empty")
    for i, w in enumerate(weights):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
            raise TypeError(
                f"{fn}(): {name} must be a sequence of real numbers, got "
                f"{type(w).__name__} {w!r} at index {i}"
            )
        if not math.isfinite(float(w)):
            raise ValueError(f"{fn}(): {name} must be finite, got {float(w)} at index {i}")
    return [float(w) for w in weights]
