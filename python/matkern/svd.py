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
V orthonormal only with the 53-bit mantissa. The strategies themselves live in
``_svd_update``; this module is the estimator.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import numbers

import numpy as np

from . import _checks, _dispatch, _svd_update
from ._interop import array_methods
from ._svd_ops import _Ops, as_update, density
from ._threads import single_blas_thread

__all__ = ["TruncatedSVD"]

METHODS = ("auto", "zha-simon", "gkl", "rpi", "sparse")
INITS = ("auto", "lanczos", "randomized", "dense")


@array_methods
class TruncatedSVD:
    """Rank-k truncated SVD A ~ U diag(s) V^T that is updated as A grows or changes.

    Parameters
    ----------
    n_components : int
        k, the rank kept.
    method : {"auto", "zha-simon", "gkl", "rpi", "sparse"}
        Update method (see the module docstring); "auto" picks "sparse" for updates with density
        <= ``sparse_density`` and "zha-simon" otherwise.
    init : {"auto", "lanczos", "randomized", "dense"}
        Initial SVD in :meth:`fit`: "lanczos" (scipy / cupyx ``svds``), "randomized" (range
        finder with ``n_iter`` power iterations, ``n_oversamples`` extra vectors), "dense"
        (LAPACK / cuSOLVER full SVD). "auto": "dense" when min(shape) <= 2000 and the matrix has at
        most 4e6 entries (dense or sparse), else "lanczos" on the CPU and "randomized" on the GPU.
    update_rank : int, optional
        Directions outside the current subspace that "gkl" and "rpi" keep per update (default
        min(c, k), c = the update's rank dimension).
    update_n_iter : int
        Power-iteration steps of "rpi" per update (default 2).
    sparse_density : float
        Threshold of "auto".
    n_iter, n_oversamples : int
        Of the randomized initial SVD.
    random_state : None, int or numpy Generator
    backend : {"reference", "cpu", "cuda"}, optional
        Forced backend of the sparse kernels; by default NumPy/scipy input runs the C++ kernels
        and CuPy/cupyx input the CUDA kernels.

    Attributes
    ----------
    U_ : (n_samples, k) float64, left singular vectors (array type of the fitted input)
    singular_values_ : (k,) float64, descending
    components_ : (k, n_features) float64, V^T (scikit-learn's name)
    n_samples_, n_features_in_ : current shape of A
    n_updates_ : number of updates applied
    last_method_ : the method the last update used

    Inputs: NumPy arrays or scipy.sparse matrices (CPU), CuPy arrays or cupyx.scipy.sparse
    matrices (GPU), float32 or float64, 2-D, finite (NaN/Inf raise ValueError), not empty.

    Example
    -------
    >>> import numpy as np, matkern
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 50))
    >>> svd = matkern.TruncatedSVD(8, method="sparse").fit(A[:100])
    >>> svd = svd.add_rows(A[100:])
    >>> bool(np.allclose(svd.singular_values_, np.linalg.svd(A, compute_uv=False)[:8]))
    True
    """

    def __init__(
        self,
        n_components,
        method="auto",
        *,
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

    def fit(self, A, y=None):
        """Compute the initial rank-k SVD of A (n_samples x n_features, dense or sparse).

        Returns self. ``n_components`` must be <= min(A.shape) (< min(A.shape) for "lanczos").
        """
        fn = "TruncatedSVD.fit"
        self._check_params(fn)
        A = as_update(A, "A", fn)
        k = self.n_components
        m, n = A.shape
        if k > min(m, n):
            raise ValueError(f"{fn}(): n_components must be <= min(A.shape) = {min(m, n)}, got {k}")
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
        self.n_updates_ = 0
        self.last_method_ = None
        return self

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
        if not hasattr(self, "_s"):
            raise RuntimeError(f"{fn}(): this TruncatedSVD is not fitted yet; call fit(A) first")

    def _out(self, x):
        if self._cupy_out and isinstance(x, np.ndarray):
            return _dispatch.cupy_module().asarray(x)
        return x

    @property
    def U_(self):
        self._check_fitted("TruncatedSVD.U_")
        return self._out(self._u.materialize().copy())

    @property
    def singular_values_(self):
        self._check_fitted("TruncatedSVD.singular_values_")
        return self._out(self._s.copy())

    @property
    def components_(self):
        self._check_fitted("TruncatedSVD.components_")
        return self._out(self._ops.xp.ascontiguousarray(self._v.materialize().T))

    @property
    def n_samples_(self):
        return self._u.n

    @property
    def n_features_in_(self):
        return self._v.n

    def transform(self, X):
        """Project rows X (c x n_features, dense or sparse) on the right singular vectors:
        ``X @ V`` (c x k), as scikit-learn's TruncatedSVD.transform."""
        fn = "TruncatedSVD.transform"
        self._check_fitted(fn)
        X = self._prepare(X, "X", fn, self._v.n, "n_features_in_")
        return self._out(self._ops.xp.asarray(X @ self._v.materialize()))

    def copy(self):
        """An independent copy of the fitted state (for branching a sequence of updates)."""
        out = TruncatedSVD.__new__(TruncatedSVD)
        out.__dict__.update(self.__dict__)
        if hasattr(self, "_s"):
            out._s, out._u, out._v = self._s.copy(), self._u.copy(), self._v.copy()
            # the copy draws its own random numbers: branches must not advance each other's
            out._rng = _copy.deepcopy(self._rng)
        return out

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

    def _done(self, method):
        self.n_updates_ += 1
        self.last_method_ = method

    def add_rows(self, E):
        """Append rows E (c x n_features): A <- [A; E]. Returns self."""
        fn = "TruncatedSVD.add_rows"
        self._check_fitted(fn)
        self._check_params(fn)  # method, update_rank, ... may have been changed since fit
        E = self._prepare(E, "E", fn, self._v.n, "n_features_in_")
        with self._blas_scope():
            self._append(self._u, self._v, E)
        return self

    def add_columns(self, E):
        """Append columns E (n_samples x c): A <- [A, E]. Returns self."""
        fn = "TruncatedSVD.add_columns"
        self._check_fitted(fn)
        self._check_params(fn)  # method, update_rank, ... may have been changed since fit
        E = self._prepare(E, "E", fn, None, "n_samples_", height=self._u.n)
        with self._blas_scope():
            self._append(self._v, self._u, E.T.tocsr() if _dispatch.is_sparse(E) else E.T)
        return self

    def _append(self, grow, proj, Xt):
        """Append the rows Xt (c x len(proj)) to ``grow``'s factor: add_rows, or add_columns
        with U and V swapped."""
        method = self._pick_method(Xt)
        self._s = _svd_update.append(
            self._ops, self._s, grow, proj, Xt, method, **self._update_options()
        )
        self._done(method)

    def update(self, D, E):
        """Low-rank change A <- A + D E^T, D (n_samples x c), E (n_features x c). Returns self."""
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
            self._s = _svd_update.low_rank_update(
                self._ops, self._s, self._u, self._v, Dm, Em, method, **self._update_options()
            )
        self._done(method)
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
