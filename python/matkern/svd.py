"""A truncated SVD that updates itself: rows and columns appended, low-rank changes A + D E^T.

Methods (all keep the rank-k factors A ~ U diag(s) V^T):

- ``"zha-simon"``: the part of the update outside the current subspace is orthogonalised by a
  QR (twice-projected), then the small (k+c) x (k+c) matrix is decomposed.
- ``"gkl"`` (Vecharynski-Saad): ``update_rank`` Golub-Kahan-Lanczos steps replace the QR: only
  the dominant ``update_rank`` directions of the part outside the subspace are kept.
- ``"rpi"`` (Yamazaki): randomized power iteration, ``update_rank`` vectors,
  ``update_n_iter`` steps.
- ``"sparse"`` (Deng et al., ICLR'24): U = U' K_u, V = V' K_v with k x k factors. The update's
  complement is orthogonalised under the update's own inner product (Gram matrix
  X^T X - P^T P, P = V^T X), never formed densely; K is updated, and the correction is
  scattered into the rows of U'/V' that the update names. Cost O(nnz(X) k + c^2 k + (k+c)^3),
  independent of the number of rows of the factors (appended rows excepted).
- ``"auto"``: ``"sparse"`` when the update's density (nonzeros / entries) is at most
  ``sparse_density`` (default 0.05), else ``"zha-simon"``.

All computations are in float64 (float32 input is converted): thousands of updates keep U and
V orthonormal only with the 53-bit mantissa; results are presented in the dtype fitted on.
The strategies themselves live in ``_svd_update``, the feature variances behind
``explained_variance_ratio_`` in ``_svd_stats``; this module is the estimator, a scikit-learn
transformer (``_estimator``).
"""

from __future__ import annotations

import contextlib
import copy as _copy
import numbers

import numpy as np

from . import _checks, _dispatch, _estimator, _svd_stats, _svd_update
from ._interop import array_methods
from ._svd_ops import _Ops, as_update, density
from ._threads import single_blas_thread

__all__ = ["TruncatedSVD"]

METHODS = ("auto", "zha-simon", "gkl", "rpi", "sparse")
INITS = ("auto", "lanczos", "randomized", "dense")


@array_methods
class TruncatedSVD(
    _estimator.ClassNamePrefixFeaturesOutMixin,
    _estimator.TransformerMixin,
    _estimator.BaseEstimator,
):
    """Rank-k truncated SVD A ~ U diag(s) V^T that is updated as A grows or changes: a
    scikit-learn transformer with ``sklearn.decomposition.TruncatedSVD``'s attributes,
    ``transform`` / ``fit_transform`` / ``inverse_transform``, dtypes and sign convention,
    plus ``partial_fit`` and matkern's updates.

    Parameters
    ----------
    n_components : int, default 2 (as scikit-learn)
        k, the rank kept; at most min(A.shape).
    method : {"auto", "zha-simon", "gkl", "rpi", "sparse"}
        Update method (see the module docstring); "auto" picks "sparse" for updates with density
        <= ``sparse_density`` and "zha-simon" otherwise.
    init : {"auto", "lanczos", "randomized", "dense"}
        Initial SVD in :meth:`fit`: "lanczos" (scipy / cupyx ``svds``), "randomized" (range
        finder with ``n_iter`` power iterations, ``n_oversamples`` extra vectors), "dense"
        (LAPACK / cuSOLVER full SVD). "auto": "dense" when min(shape) <= 2000 and the matrix has at
        most 4e6 entries (dense or sparse), else "lanczos" on the CPU and "randomized" on the GPU.
        (scikit-learn calls this ``algorithm``; its default is the randomized finder.)
    update_rank : int, optional
        Directions outside the current subspace that "gkl" and "rpi" keep per update (default
        min(c, k), c = the update's rank dimension).
    update_n_iter : int
        Power-iteration steps of "rpi" per update (default 2).
    sparse_density : float
        Threshold of "auto".
    n_iter, n_oversamples : int
        Of the randomized initial SVD (n_iter default 4; scikit-learn's is 5).
    random_state : None, int, numpy Generator or RandomState
    backend : {"reference", "cpu", "cuda"}, optional
        Forced backend of the sparse kernels; by default NumPy/scipy input runs the C++ kernels
        and CuPy/cupyx input the CUDA kernels.

    All parameters after ``n_components`` are keyword-only.

    Fitting and updating
    --------------------
    :meth:`fit` computes the initial SVD; :meth:`partial_fit` (scikit-learn's updating entry
    point) appends rows: the first call fits, later calls are :meth:`add_rows` with
    scikit-learn's input conversion and feature checks. :meth:`add_columns` and :meth:`update`
    (A + D E^T) are matkern's further updates; :meth:`copy` branches a fitted state.

    Dtypes and signs
    ----------------
    The factors are computed and updated in float64 (thousands of updates keep U and V
    orthonormal only with the 53-bit mantissa; float32 input is converted), and presented in
    the dtype of the data fitted on: float32 in gives float32 ``components_``,
    ``singular_values_``, ``explained_variance_*``, ``U_`` and float32 ``transform`` output
    (NumPy's promotion of X's dtype and the fitted dtype, as scikit-learn). Signs follow
    scikit-learn's ``svd_flip(u_based_decision=False)``: in each row of ``components_`` the
    entry of largest magnitude is positive (``U_`` flipped alike), applied when the results are
    read, so the updates themselves are unchanged.

    Attributes
    ----------
    components_ : (k, n_features), V^T (fitted dtype)
    singular_values_ : (k,), descending
    explained_variance_ : (k,), the variance of each column of ``U_ * singular_values_``
        (A's rows projected), as scikit-learn
    explained_variance_ratio_ : (k,), explained_variance_ / the sum of A's feature variances.
        The feature variances are kept exactly through fit, partial_fit / add_rows and
        add_columns; after :meth:`update` the one term that needs A itself is taken from the
        rank-k factors (exact when A has rank <= k).
    U_ : (n_samples, k), left singular vectors
    n_samples_, n_features_in_ : current shape of A
    feature_names_in_ : names of the features, when fitted on a pandas frame with string
        column names (dropped by add_columns)
    n_updates_ : number of updates applied
    last_method_ : the method the last update used

    Results have the array type of the fitted input (NumPy, or CuPy for CuPy/cupyx input).

    Inputs: on the host, whatever scikit-learn's ``validate_data`` accepts (NumPy arrays,
    array-likes, pandas frames, scipy sparse matrices; float32/float64 kept, integer and object
    data converted to float64, any layout); on the GPU, CuPy arrays or cupyx sparse matrices.
    2-D, finite (NaN/Inf raise ValueError), not empty. A sparse matrix's index structure is
    validated in its own format before anything converts it. :meth:`add_rows`,
    :meth:`add_columns` and :meth:`update` take float32/float64 NumPy/CuPy arrays or sparse
    matrices only (matkern's checks, no conversion).

    Example
    -------
    >>> import numpy as np, matkern
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 50))
    >>> svd = matkern.TruncatedSVD(8, method="sparse").fit(A[:100])
    >>> svd = svd.partial_fit(A[100:])
    >>> bool(np.allclose(svd.singular_values_, np.linalg.svd(A, compute_uv=False)[:8]))
    True
    >>> svd.transform(A[:3]).shape
    (3, 8)
    """

    def __init__(
        self,
        n_components=2,
        *,
        method="auto",
        init="auto",
        update_rank=None,
        update_n_iter=2,
        sparse_density=0.05,
        n_iter=4,
        n_oversamples=10,
        random_state=None,
        backend=None,
    ):
        self.n_components = n_components
        self.method = method
        self.init = init
        self.update_rank = update_rank
        self.update_n_iter = update_n_iter
        self.sparse_density = sparse_density
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.random_state = random_state
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __getstate__(self):
        # results read since the last update (signs, explained variance) are caches: rebuilt
        state = super().__getstate__()
        if "_derived" in state:
            state = {**state, "_derived": {}}
        return state

    # ---------------------------------------------------------------- fitting
    def _check_params(self, fn):
        _checks.check_int(self.n_components, "n_components", fn, min_value=1)
        _checks.check_choice(self.method, "method", fn, METHODS)
        _checks.check_choice(self.init, "init", fn, INITS)
        if self.update_rank is not None:
            _checks.check_int(self.update_rank, "update_rank", fn, min_value=1)
        _checks.check_int(self.update_n_iter, "update_n_iter", fn, min_value=0)
        _checks.check_float(self.sparse_density, "sparse_density", fn, min_value=0.0, max_value=1.0)
        _checks.check_int(self.n_iter, "n_iter", fn, min_value=0)
        _checks.check_int(self.n_oversamples, "n_oversamples", fn, min_value=0)
        if self.backend is not None:
            _checks.check_choice(self.backend, "backend", fn, _dispatch.BACKENDS)
        _check_seed(self.random_state, fn)

    def fit(self, X, y=None):
        """Compute the initial rank-k SVD of X (n_samples x n_features, dense or sparse).
        ``y`` is ignored. Returns self. ``n_components`` must be <= min(X.shape) (< for
        "lanczos", which then falls back to "dense")."""
        fn = "TruncatedSVD.fit"
        self._check_params(fn)
        X = _estimator.validate_X(self, X, reset=True, fn=fn)
        self._fit(X, fn)
        return self

    def fit_transform(self, X, y=None):
        """fit(X), then X's rows projected: ``U_ * singular_values_`` (equal to
        ``transform(X)`` up to rounding), (n_samples, k) dense."""
        self.fit(X)
        return self._projected_rows()

    def _fit(self, X, fn):
        fit_dtype = np.dtype(X.dtype)
        A = as_update(X, "X", fn)  # float64, canonical CSR or C-contiguous: our own copy
        k = self.n_components
        m, n = A.shape
        if k > min(m, n):
            raise ValueError(f"{fn}(): n_components must be <= min(X.shape) = {min(m, n)}, got {k}")
        self._device = _dispatch.device_of(A)
        self._backend = _dispatch.pick(fn, A, backend=self.backend)
        self._cupy_out = self._device == "cuda"
        if self._backend == "reference" and self._device == "cuda":
            A = _dispatch.to_host(A)
        self._ops = _Ops("cuda" if self._backend == "cuda" else self._backend)
        self._rng = _check_seed(self.random_state, fn)
        init = self.init
        if init == "auto":
            # Small problems (dense or sparse): a full SVD is exact and cheap. Larger sparse
            # ones: ARPACK on the CPU; on the GPU the randomized finder, since cupyx's svds
            # converged poorly in our GPU run (singular values off by 20% on a 60 x 70 matrix).
            if min(m, n) <= 2000 and m * n <= 4_000_000:
                init = "dense"
            else:
                init = "lanczos" if self._ops.name != "cuda" else "randomized"
        if init == "lanczos" and k >= min(m, n):
            init = "dense"
        U, s, Vt = self._initial_svd(A, k, init)
        xp = self._ops.xp
        self._s = xp.asarray(s, dtype=np.float64)
        self._u = _svd_update.Side(xp, xp.ascontiguousarray(U))
        self._v = _svd_update.Side(xp, xp.ascontiguousarray(Vt.T))
        self._stats = _svd_stats.of_rows(A)
        self._fit_dtype = fit_dtype
        self._derived = {}
        self.n_updates_ = 0
        self.last_method_ = None

    def _initial_svd(self, A, k, init):
        xp, ops = self._ops.xp, self._ops
        if init == "dense":
            Ad = A.toarray() if _dispatch.is_sparse(A) else A
            U, s, Vt = xp.linalg.svd(Ad, full_matrices=False)
            return U[:, :k], s[:k], Vt[:k]
        if init == "lanczos":
            if ops.name == "cuda":
                from cupyx.scipy.sparse.linalg import svds
            else:
                from scipy.sparse.linalg import svds
            v0 = self._rng.standard_normal(min(A.shape))
            kw = {} if ops.name == "cuda" else {"v0": v0}
            U, s, Vt = svds(A, k=k, **kw)
            order = xp.argsort(-s)
            return U[:, order], s[order], Vt[order]
        # randomized range finder (Halko-Martinsson-Tropp) with QR-normalized power iterations
        m, n = A.shape
        p = min(k + self.n_oversamples, min(m, n))
        Om = xp.asarray(self._rng.standard_normal((n, p)))
        Y = A @ Om
        for _ in range(self.n_iter):
            Y, _ = xp.linalg.qr(Y)
            Z, _ = xp.linalg.qr(A.T @ Y)
            Y = A @ Z
        Q, _ = xp.linalg.qr(Y)
        Bs = (A.T @ Q).T
        Ub, s, Vt = xp.linalg.svd(Bs, full_matrices=False)
        return (Q @ Ub)[:, :k], s[:k], Vt[:k]

    # ---------------------------------------------------------------- results
    def _check_fitted(self, fn):
        _estimator.check_fitted(self)

    def _out(self, x):
        """x (float64, the factors' device) in the fitted dtype and the fitted array type."""
        x = x.astype(self._fit_dtype, copy=False)
        if self._cupy_out and isinstance(x, np.ndarray):
            return _dispatch.cupy_module().asarray(x)
        return x

    def _signs(self):
        """scikit-learn's svd_flip(u_based_decision=False) signs of the current factors: the
        largest-magnitude entry of each right singular vector made positive (0 -> +1)."""
        if "signs" not in self._derived:
            xp = self._ops.xp
            V = self._v.materialize()
            rows = xp.argmax(xp.abs(V), axis=0)
            sg = xp.sign(V[rows, xp.arange(V.shape[1])])
            self._derived["signs"] = xp.where(sg == 0, 1.0, sg)
        return self._derived["signs"]

    @property
    def U_(self):
        """(n_samples, k) left singular vectors (signs as ``components_``)."""
        self._check_fitted("TruncatedSVD.U_")
        return self._out(self._u.materialize() * self._signs())

    @property
    def singular_values_(self):
        """(k,) singular values, descending."""
        self._check_fitted("TruncatedSVD.singular_values_")
        return self._out(self._s.copy())

    @property
    def components_(self):
        """(k, n_features) right singular vectors V^T, svd_flip signs."""
        self._check_fitted("TruncatedSVD.components_")
        V = self._v.materialize() * self._signs()
        return self._out(self._ops.xp.ascontiguousarray(V.T))

    @property
    def explained_variance_(self):
        """(k,) variance of each column of ``U_ * singular_values_`` (the fitted rows
        projected), as scikit-learn's."""
        self._check_fitted("TruncatedSVD.explained_variance_")
        if "variance" not in self._derived:
            Y = self._u.materialize() * self._s
            self._derived["variance"] = ((Y - Y.mean(axis=0)) ** 2).mean(axis=0)
        return self._out(self._derived["variance"].copy())

    @property
    def explained_variance_ratio_(self):
        """(k,) ``explained_variance_`` over the sum of the feature variances of A."""
        self._check_fitted("TruncatedSVD.explained_variance_ratio_")
        self.explained_variance_  # noqa: B018 (fills the cache)
        ratio = self._derived["variance"] / self._stats.total_variance()
        return self._out(ratio)

    @property
    def n_samples_(self):
        """Current number of rows of A."""
        self._check_fitted("TruncatedSVD.n_samples_")
        return self._u.n

    @property
    def _n_features_out(self):
        """Output width, for get_feature_names_out (``truncatedsvd0``, ...)."""
        self._check_fitted("TruncatedSVD.get_feature_names_out")
        return len(self._s)

    def _projected_rows(self):
        return self._out(self._u.materialize() * (self._s * self._signs()))

    def transform(self, X):
        """Project rows X (c x n_features, dense or sparse) on the right singular vectors:
        ``X @ components_.T`` (c x k, dense), as scikit-learn's TruncatedSVD.transform; the
        dtype is NumPy's promotion of X's dtype and the fitted dtype."""
        fn = "TruncatedSVD.transform"
        self._check_fitted(fn)
        X = _estimator.validate_X(self, X, reset=False, fn=fn)
        dtype = _estimator.result_dtype(X.dtype, self._fit_dtype)
        Xf = self._prepare(X, "X", fn, self._v.n, "n_features_in_")
        Y = self._ops.xp.asarray(Xf @ self._v.materialize()) * self._signs()
        return self._out(Y).astype(dtype, copy=False)

    def inverse_transform(self, X):
        """Map projected rows back: ``X @ components_``, (c, k) -> (c, n_features), dense,
        as scikit-learn."""
        fn = "TruncatedSVD.inverse_transform"
        self._check_fitted(fn)
        X = _estimator.validate_inverse_input(X, len(self._s), fn, accept_sparse=False)
        C = self.components_
        if _dispatch.device_of(X) != _dispatch.device_of(C):
            xp = _dispatch.array_module(X)
            C = xp.asarray(_dispatch.to_host(C)) if xp is np else xp.asarray(C)
        return X @ C

    def copy(self):
        """An independent deep copy of the fitted state (for branching a sequence of updates:
        the copy has its own random numbers too)."""
        return _copy.deepcopy(self)

    # ---------------------------------------------------------------- updates
    def _prepare(self, X, name, fn, width, width_name, height=None):
        X = as_update(
            X, name, fn, width=width, width_name=width_name, device=self._device, height=height
        )
        if self._backend == "reference" and self._device == "cuda":
            X = _dispatch.to_host(X)
        return X

    def _blas_scope(self):
        # The update is a chain of small dense calls alternating between NumPy's and SciPy's
        # BLAS: one thread avoids their pools fighting for the cores (see _threads).
        if self._ops.xp is np:
            return single_blas_thread()
        return contextlib.nullcontext()

    def _pick_method(self, X):
        if self.method != "auto":
            return self.method
        return "sparse" if density(X) <= self.sparse_density else "zha-simon"

    def _update_options(self):
        # "gkl" / "rpi": vectors kept and power-iteration steps, and the estimator's random
        # numbers (read before the update changes the singular values)
        return {
            "rank": self.update_rank or len(self._s),
            "n_iter": self.update_n_iter,
            "rng": self._rng,
        }

    def _done(self, method, stats):
        self._stats = stats
        self._derived = {}
        self.n_updates_ += 1
        self.last_method_ = method

    def partial_fit(self, X, y=None):
        """Fit on the first call; afterwards append the rows X (c x n_features_in_): A <- [A; X]
        (:meth:`add_rows` with scikit-learn's input conversion and feature-name checks).
        ``y`` is ignored. Returns self."""
        fn = "TruncatedSVD.partial_fit"
        if not hasattr(self, "_s"):
            return self.fit(X)
        self._check_params(fn)
        X = _estimator.validate_X(self, X, reset=False, fn=fn)
        return self._add_rows(X, fn)

    def add_rows(self, E):
        """Append rows E (c x n_features): A <- [A; E]. Returns self."""
        fn = "TruncatedSVD.add_rows"
        self._check_fitted(fn)
        self._check_params(fn)  # method, update_rank, ... may have been changed since fit
        return self._add_rows(E, fn)

    def _add_rows(self, E, fn):
        E = self._prepare(E, "E", fn, self._v.n, "n_features_in_")
        stats = _svd_stats.add_rows(self._stats, _svd_stats.of_rows(E))
        with self._blas_scope():
            self._append(self._u, self._v, E, stats)
        return self

    def add_columns(self, E):
        """Append columns E (n_samples x c): A <- [A, E]. Returns self. ``n_features_in_``
        grows; ``feature_names_in_`` is dropped (the new columns have no names)."""
        fn = "TruncatedSVD.add_columns"
        self._check_fitted(fn)
        self._check_params(fn)  # method, update_rank, ... may have been changed since fit
        E = self._prepare(E, "E", fn, None, "n_samples_", height=self._u.n)
        stats = _svd_stats.add_columns(self._stats, E)
        with self._blas_scope():
            self._append(self._v, self._u, E.T.tocsr() if _dispatch.is_sparse(E) else E.T, stats)
        self.n_features_in_ = self._v.n
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def _append(self, grow, proj, Xt, stats):
        """Append the rows Xt (c x len(proj)) to ``grow``'s factor: add_rows, or add_columns
        with U and V swapped."""
        method = self._pick_method(Xt)
        self._s = _svd_update.append(
            self._ops, self._s, grow, proj, Xt, method, **self._update_options()
        )
        self._done(method, stats)

    def update(self, D, E):
        """Low-rank change A <- A + D E^T, D (n_samples x c), E (n_features x c). Returns self.

        Besides the update itself, the feature variances behind ``explained_variance_ratio_``
        cost one product with U (O(n_samples k c))."""
        fn = "TruncatedSVD.update"
        self._check_fitted(fn)
        self._check_params(fn)  # method, update_rank, ... may have been changed since fit
        Dm = self._prepare(D, "D", fn, None, "")
        Em = self._prepare(E, "E", fn, None, "")
        if Dm.shape[0] != self._u.n:
            raise ValueError(
                f"{fn}(): D must have {self._u.n} rows (n_samples_), got shape {Dm.shape}"
            )
        if Em.shape[0] != self._v.n:
            raise ValueError(
                f"{fn}(): E must have {self._v.n} rows (n_features_in_), got shape {Em.shape}"
            )
        if Dm.shape[1] != Em.shape[1]:
            raise ValueError(
                f"{fn}(): D and E must have the same number of columns, got "
                f"{Dm.shape[1]} and {Em.shape[1]}"
            )
        method = self._pick_method(Dm) if self.method == "auto" else self.method
        if self.method == "auto" and method == "sparse" and density(Em) > self.sparse_density:
            method = "zha-simon"
        with self._blas_scope():
            stats = _svd_stats.low_rank(self._stats, Dm, Em, self._u, self._s, self._v)
            self._s = _svd_update.low_rank_update(
                self._ops, self._s, self._u, self._v, Dm, Em, method, **self._update_options()
            )
        self._done(method, stats)
        return self


def _check_seed(random_state, fn):
    """check_random_state, with an int seed checked here so that its errors name the argument
    (numpy's own message for a negative seed does not)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if int(random_state) < 0:
            raise ValueError(
                f"{fn}(): random_state must be None, a nonnegative int, a numpy "
                f"Generator or RandomState, got {int(random_state)}"
            )
    return _checks.check_random_state(random_state, fn)
