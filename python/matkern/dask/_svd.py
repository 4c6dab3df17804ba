"""Truncated SVD of a tall dask array: a randomized range finder whose sketch is the FJLT
(subsampled randomized Hadamard) and Dask's tsqr; rows appended by a tree merge of per-block
truncated SVDs."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from .. import _checks, _dispatch
from . import _tasks
from ._projection import FJLT

__all__ = ["TruncatedSVD"]

_FAN_IN = 8


@_tasks.in_worker
def _block_svd(block, k):
    """(s, Vt) of one row block, truncated to k (float64, on the host)."""
    X = np.asarray(_dispatch.to_host(block), dtype=np.float64)
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    return s[:k], Vt[:k]


def _merge(k, *parts):
    """(s, Vt) of the stacked rows diag(s_i) Vt_i: the SVD of [A_1; A_2; ...] from theirs
    (exact when each A_i has rank <= k, the usual truncation error otherwise)."""
    K = np.vstack([s[:, None] * Vt for s, Vt in parts])
    _, s, Vt = np.linalg.svd(K, full_matrices=False)
    return s[:k], Vt[:k]


class TruncatedSVD:
    """Rank-k truncated SVD A ~ U diag(s) V^T of a tall dask array (n x d, n >> d).

    ``fit(A)``: randomized range finder (Halko, Martinsson, Tropp 2011, Alg. 4.4) with the
    FJLT as the sketch: Y = FJLT(k + n_oversamples) of A's rows (n x l, the sketch made on
    each worker from one seed, O(d log d) per row instead of the dense Gaussian sketch's
    O(d l)), Q = tsqr(Y) (:func:`dask.array.linalg.tsqr`, persisted), ``n_iter`` power
    iterations Y = A (A^T Q) re-orthonormalized by tsqr, then the l x d matrix B = Q^T A is
    decomposed on the client: s and V^T are B's, U = Q U_B.

    ``partial_fit(E)`` / ``add_rows(E)``: appends the rows of a dask array E: each row block
    gets its own truncated SVD on its worker, the (s, V^T) pairs are merged up a tree
    (SVD of the stacked diag(s_i) V_i^T, fan-in 8) and finally with the current factors. Exact
    when every block and A have rank <= k; otherwise each merge drops what lies outside its
    top k (the error of an incremental SVD). ``partial_fit`` on an unfitted estimator fits
    by the merge alone.

    Parameters
    ----------
    n_components : int, k
    n_oversamples : int, extra sketch columns (default 10); l = min(d, k + n_oversamples)
    n_iter : int, power iterations (default 2)
    random_state : None or int (the FJLT's seed)

    Attributes
    ----------
    singular_values_ : (k,) float64 NumPy;  components_ : (k, d) float64 NumPy (V^T)
    U_ : (n, k) float64 lazy dask array, A V diag(1/s) over every row fitted and added
    n_samples_, n_features_in_

    Inputs: dask arrays (NumPy or CuPy chunks) of float32/float64, finite; column chunks
    are merged (rows must be whole), d at most a few thousand (l x d and d x l matrices are
    formed on the client).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> A = da.from_array(rng.standard_normal((20000, 8)) @ rng.standard_normal((8, 300)),
    ...                   chunks=(5000, 300))
    >>> svd = matkern.dask.TruncatedSVD(8, random_state=0).fit(A)
    >>> bool(np.allclose(svd.singular_values_, np.linalg.svd(A.compute(), compute_uv=False)[:8]))
    True
    """

    def __init__(self, n_components, *, n_oversamples=10, n_iter=2, random_state=None):
        self.n_components = n_components
        self.n_oversamples = n_oversamples
        self.n_iter = n_iter
        self.random_state = random_state

    def _check(self, A, fn, *, width=None):
        k = _checks.check_int(self.n_components, "n_components", fn, min_value=1)
        _checks.check_int(self.n_oversamples, "n_oversamples", fn, min_value=0)
        _checks.check_int(self.n_iter, "n_iter", fn, min_value=0)
        _tasks.check_dask_array(A, "A", fn, dtypes=(np.float32, np.float64), ndim=2)
        if width is not None and A.shape[1] != width:
            raise ValueError(f"{fn}(): A must have {width} columns (as fitted), got {A.shape[1]}")
        if k > min(A.shape) and width is None:
            raise ValueError(
                f"{fn}(): n_components must be <= min(A.shape) = {min(A.shape)}, got {k}"
            )
        return k, _tasks.one_chunk_along(A, 1)

    def fit(self, A, y=None):
        """The rank-k SVD of a tall dask array A (n x d). Returns self (computes now)."""
        fn = "TruncatedSVD.fit"
        k, A = self._check(A, fn)
        n, d = A.shape
        width = min(d, k + self.n_oversamples)
        sketch = FJLT(width, random_state=self.random_state).fit(A)
        Y = sketch.transform(A).astype(np.float64)
        (Q,) = dask.persist(da.linalg.tsqr(Y)[0])
        A64 = A.astype(np.float64)
        for _ in range(self.n_iter):
            Z = np.asarray(_dispatch.to_host((A64.T @ Q).compute()))  # d x l, tree-summed
            Z, _ = np.linalg.qr(Z)
            xp = _dispatch.array_module(A._meta)
            (Q,) = dask.persist(da.linalg.tsqr(A64 @ xp.asarray(Z))[0])
        B = np.asarray(_dispatch.to_host((Q.T @ A64).compute()))  # l x d
        _, s, Vt = np.linalg.svd(B, full_matrices=False)
        self._set(s[:k], Vt[:k], [A])
        return self

    def _set(self, s, Vt, sources):
        self.singular_values_ = np.ascontiguousarray(s)
        self.components_ = np.ascontiguousarray(Vt)
        self._sources = sources
        self.n_samples_ = int(sum(a.shape[0] for a in sources))
        self.n_features_in_ = int(Vt.shape[1])

    def partial_fit(self, E, y=None):
        """Append the rows of a dask array E (m x d) by a tree merge of per-block SVDs.
        Returns self (computes now)."""
        fn = "TruncatedSVD.partial_fit"
        fitted = hasattr(self, "components_")
        k, E = self._check(E, fn, width=self.n_features_in_ if fitted else None)
        parts = [dask.delayed(_block_svd, pure=True)(b, k) for b in E.to_delayed().ravel()]
        while len(parts) > 1:
            parts = [
                dask.delayed(_merge, pure=True)(k, *parts[i : i + _FAN_IN])
                for i in range(0, len(parts), _FAN_IN)
            ]
        s, Vt = dask.compute(parts[0])[0]
        if fitted:
            s, Vt = _merge(k, (self.singular_values_, self.components_), (s, Vt))
            sources = self._sources + [E]
        else:
            sources = [E]
        self._set(s, Vt, sources)
        return self

    def add_rows(self, E):
        """Same as :meth:`partial_fit` (the name of :class:`matkern.TruncatedSVD`)."""
        return self.partial_fit(E)

    @property
    def U_(self):
        """(n, k) left singular vectors, lazily: the fitted rows times V diag(1/s)."""
        if not hasattr(self, "components_"):
            raise RuntimeError("TruncatedSVD.U_: call fit() first")
        s = self.singular_values_
        inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)
        W = self.components_.T * inv
        return da.concatenate([a.astype(np.float64) @ W for a in self._sources], axis=0)

    def transform(self, X):
        """X V: (n, d) -> (n, k), lazily for dask X (float64)."""
        if not hasattr(self, "components_"):
            raise RuntimeError("TruncatedSVD.transform(): call fit() first")
        if X.shape[-1] != self.n_features_in_:
            raise ValueError(
                f"TruncatedSVD.transform(): X must have {self.n_features_in_} columns, "
                f"got shape {X.shape}"
            )
        return X.astype(np.float64) @ self.components_.T

    def fit_transform(self, A, y=None):
        """fit(A) then transform(A)."""
        return self.fit(A).transform(A)
