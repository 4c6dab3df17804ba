"""A truncated SVD that updates itself: rows and columns appended, low-rank changes A + D E^T.

Methods (all keep the rank-k factors A ~ U diag(s) V^T):

- ``"zha-simon"``: the part of the update outside the current subspace is orthogonalised by a
  QR (twice-projected), then the small (k+c) x (k+c) matrix is decomposed.
- ``"gkl"`` (Vecharynski-Saad): ``l`` Golub-Kahan-Lanczos steps replace the QR: only the
  dominant l directions of the part outside the subspace are kept.
- ``"rpi"`` (Yamazaki): randomized power iteration, ``l`` vectors, ``t`` steps.
- ``"sparse"`` (Deng et al., ICLR'24): U = U' K_u, V = V' K_v with k x k factors. The update's
  complement is orthogonalised under the update's own inner product (Gram matrix
  X^T X - P^T P, P = V^T X), never formed densely; K is updated, and the correction is
  scattered into the rows of U'/V' that the update names. Cost O(nnz(X) k + c^2 k + (k+c)^3),
  independent of the number of rows of the factors (appended rows excepted).
- ``"auto"``: ``"sparse"`` when the update's density (nonzeros / entries) is at most
  ``sparse_density`` (default 0.05), else ``"zha-simon"``.

All computations are in float64 (float32 input is converted): thousands of updates keep U and
V orthonormal only with the 53-bit mantissa.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import numbers

import numpy as np

from . import _checks as C
from . import _dispatch as D
from ._threads import single_blas_thread
from ._svd_ops import _Ops, as_update, density, is_sparse

__all__ = ["TruncatedSVD"]

METHODS = ("auto", "zha-simon", "gkl", "rpi", "sparse")
INITS = ("auto", "lanczos", "randomized", "dense")
# Relative eigenvalue floor of the Jacobi-scaled Gram matrix of the update's complement: the
# Gram matrix is formed by a subtraction, so directions below ~1e-8 of a column's squared norm
# are rounding noise; dropping them keeps the implicit basis orthonormal to ~1e-8.
GRAM_FLOOR = 1e-8
# Largest condition number of K_u / K_v before it is folded into U' / V'.
K_COND_MAX = 1e6


class _Side:
    """One factor B = B'[:n] @ K, B' with spare rows for appends."""

    def __init__(self, xp, B):
        self.xp = xp
        n, k = B.shape
        self.buf = xp.empty((max(2 * n, 16), k), dtype=np.float64)
        self.buf[:n] = B
        self.n = n
        self.K = xp.eye(k)
        self.plain = True  # K is the identity

    @property
    def Bp(self):
        return self.buf[: self.n]

    def materialize(self):
        return self.Bp if self.plain else self.Bp @ self.K

    def fold(self):
        if not self.plain:
            self.buf[: self.n] = self.Bp @ self.K
            self.K = self.xp.eye(self.K.shape[0])
            self.plain = True

    def set_dense(self, B):
        self.n = 0
        self.append(B)
        self.K = self.xp.eye(B.shape[1])
        self.plain = True

    def append(self, rows):
        need = self.n + rows.shape[0]
        if need > self.buf.shape[0]:
            new = self.xp.empty((2 * need, self.buf.shape[1]), dtype=np.float64)
            new[: self.n] = self.Bp
            self.buf = new
        self.buf[self.n : need] = rows
        self.n = need

    def copy(self):
        out = _Side.__new__(_Side)
        out.xp, out.n, out.plain = self.xp, self.n, self.plain
        out.buf, out.K = self.buf.copy(), self.K.copy()
        return out


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
    l : int, optional
        Vectors kept by "gkl" and "rpi" per update (default min(c, k), c = the update's rank
        dimension).
    t : int
        Power-iteration steps of "rpi" (default 2).
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

    def __init__(self, n_components, method="auto", *, init="auto", l=None, t=2,
                 sparse_density=0.05, n_iter=4, n_oversamples=10, random_state=None,
                 backend=None):
        self.n_components = n_components
        self.method = method
        self.init = init
        self.l = l
        self.t = t
        self.sparse_density = sparse_density
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.random_state = random_state
        self.backend = backend

    # ---------------------------------------------------------------- fitting
    def _check_params(self, fn):
        C.check_int(self.n_components, "n_components", fn, min_value=1)
        C.check_choice(self.method, "method", fn, METHODS)
        C.check_choice(self.init, "init", fn, INITS)
        if self.l is not None:
            C.check_int(self.l, "l", fn, min_value=1)
        C.check_int(self.t, "t", fn, min_value=0)
        C.check_float(self.sparse_density, "sparse_density", fn, min_value=0.0, max_value=1.0)
        C.check_int(self.n_iter, "n_iter", fn, min_value=0)
        C.check_int(self.n_oversamples, "n_oversamples", fn, min_value=0)
        if self.backend is not None:
            C.check_choice(self.backend, "backend", fn, D.BACKENDS)
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
        self._device = D.device_of(A)
        self._backend = D.pick(fn, A, backend=self.backend)
        self._cupy_out = self._device == "cuda"
        if self._backend == "reference" and self._device == "cuda":
            A = _to_host(A)
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
        self._u = _Side(xp, xp.ascontiguousarray(U))
        self._v = _Side(xp, xp.ascontiguousarray(Vt.T))
        self.n_updates_ = 0
        self.last_method_ = None
        return self

    def _initial_svd(self, A, k, init):
        xp, ops = self._ops.xp, self._ops
        if init == "dense":
            Ad = A.toarray() if is_sparse(A) else A
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
            return D.cupy_module().asarray(x)
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
        X = as_update(X, name, fn, width=width, width_name=width_name, device=self._device,
                      height=height)
        if self._backend == "reference" and self._device == "cuda":
            X = _to_host(X)
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

    def add_rows(self, E):
        """Append rows E (c x n_features): A <- [A; E]. Returns self."""
        fn = "TruncatedSVD.add_rows"
        self._check_fitted(fn)
        self._check_params(fn)  # method, l, t, ... may have been changed since fit
        E = self._prepare(E, "E", fn, self._v.n, "n_features_in_")
        with self._blas_scope():
            self._append(self._u, self._v, E, transpose=False)
        return self

    def add_columns(self, E):
        """Append columns E (n_samples x c): A <- [A, E]. Returns self."""
        fn = "TruncatedSVD.add_columns"
        self._check_fitted(fn)
        self._check_params(fn)  # method, l, t, ... may have been changed since fit
        E = self._prepare(E, "E", fn, None, "n_samples_", height=self._u.n)
        with self._blas_scope():
            self._append(self._v, self._u, E.T.tocsr() if is_sparse(E) else E.T, transpose=True)
        return self

    def update(self, D_, E):
        """Low-rank change A <- A + D E^T, D (n_samples x c), E (n_features x c). Returns self."""
        fn = "TruncatedSVD.update"
        self._check_fitted(fn)
        self._check_params(fn)  # method, l, t, ... may have been changed since fit
        Dm = self._prepare(D_, "D", fn, None, "")
        Em = self._prepare(E, "E", fn, None, "")
        if Dm.shape[0] != self._u.n:
            raise ValueError(f"{fn}(): D must have {self._u.n} rows (n_samples_), got shape {Dm.shape}")
        if Em.shape[0] != self._v.n:
            raise ValueError(f"{fn}(): E must have {self._v.n} rows (n_features_in_), got shape {Em.shape}")
        if Dm.shape[1] != Em.shape[1]:
            raise ValueError(f"{fn}(): D and E must have the same number of columns, got "
                             f"{Dm.shape[1]} and {Em.shape[1]}")
        method = self._pick_method(Dm) if self.method == "auto" else self.method
        if self.method == "auto" and method == "sparse" and density(Em) > self.sparse_density:
            method = "zha-simon"
        with self._blas_scope():
            return self._low_rank_update(Dm, Em, method)

    def _low_rank_update(self, Dm, Em, method):
        xp = self._ops.xp
        Dt = Dm.T.tocsr() if is_sparse(Dm) else xp.ascontiguousarray(Dm.T)
        Et = Em.T.tocsr() if is_sparse(Em) else xp.ascontiguousarray(Em.T)
        cu = self._complement(self._u, Dt, method)
        cv = self._complement(self._v, Et, method)
        k = len(self._s)
        left = xp.concatenate([cu["P"], cu["R"]], axis=0)   # (k + rD) x c
        right = xp.concatenate([cv["P"], cv["R"]], axis=0)  # (k + rE) x c
        M = left @ right.T
        M[:k, :k] += xp.diag(self._s)
        F, T, G = _top_svd(xp, M, k)
        self._s = xp.ascontiguousarray(T[:k])
        self._apply(self._u, cu, F, method)
        self._apply(self._v, cv, G, method)
        self._done(method)
        return self

    def _done(self, method):
        self.n_updates_ += 1
        self.last_method_ = method

    def _append(self, grow, proj, Xt, transpose):
        """Append c new rows to ``grow``'s factor, Xt (c x len(proj)) being their content
        against ``proj``'s factor: the row update, or the column update with U and V swapped."""
        xp = self._ops.xp
        method = self._pick_method(Xt)
        k = len(self._s)
        c = Xt.shape[0]
        cp = self._complement(proj, Xt, method)
        r = cp["R"].shape[0]
        M = xp.zeros((k + c, k + r))
        M[:k, :k] = xp.diag(self._s)
        M[k:, :k] = cp["P"].T
        M[k:, k:] = cp["R"].T
        F, T, G = _top_svd(xp, M, k)
        self._s = xp.ascontiguousarray(T[:k])
        if len(self._s) < k:  # M narrower than k cannot happen (k + r >= k); kept for clarity
            raise AssertionError("rank dropped below k")
        # grow side: [B; 0] W1 + [0; I] W2
        W1, W2 = F[:k], F[k:]
        if method == "sparse":
            Kn = grow.K @ W1
            if _cond(xp, Kn) > K_COND_MAX:
                grow.fold()
                grow.buf[: grow.n] = grow.Bp @ W1
                grow.append(W2)
            else:
                grow.K, grow.plain = Kn, False
                grow.append(xp.linalg.solve(Kn.T, W2.T).T)
        else:
            grow.set_dense(xp.concatenate([grow.materialize() @ W1, W2], axis=0))
        self._apply(proj, cp, G, method)
        self._done(method)

    # complement of X (= Xt^T, len(side) x c) outside span(side): P = B^T X (k x c), and
    # for dense methods an orthonormal Q (n x r) with R = Q^T X; for "sparse" the implicit
    # Q = (X - B P) C with R (r x c).
    def _complement(self, side, Xt, method):
        xp, ops = self._ops.xp, self._ops
        sparse_in = is_sparse(Xt)
        if method == "sparse":
            if not sparse_in:
                Xt = ops.sp.csr_matrix(Xt)
                Xt.indices = Xt.indices.astype(np.int32, copy=False)
            P = (ops.gather(Xt, side.Bp) @ side.K).T  # k x c
            Xc = Xt.tocsc()
            G = ops.gram(Xt, Xc)
            W = G - P.T @ P  # Gram matrix of the complement (I - B B^T) X
            d = xp.sqrt(xp.maximum(xp.diag(G), 0.0))
            d = xp.where(d > 0, d, 1.0)  # Jacobi scaling: the floor is relative per column
            Cs, Rs = _gram_factor(xp, W / d[:, None] / d[None, :])
            Cm = Cs / d[:, None]  # c x r: Q = (X - B P) Cm is orthonormal
            R = Rs * d[None, :]  # r x c: (X - B P) = Q R
            return {"P": P, "R": R, "C": Cm, "Xc": ops.compress_columns(Xc)}
        side.fold()
        B = side.Bp
        if method == "zha-simon":
            X = Xt.T.toarray() if sparse_in else Xt.T
            P = B.T @ X
            Y = X - B @ P
            P2 = B.T @ Y  # second projection: "twice is enough"
            Y -= B @ P2
            Q, R = xp.linalg.qr(Y)
            return {"P": P + P2, "Q": Q, "R": R}
        P = (Xt @ B).T if not sparse_in else xp.asarray((Xt @ B)).T
        c = Xt.shape[0]
        l = min(self.l or len(self._s), c, B.shape[0] - B.shape[1])
        if l <= 0:  # the basis already spans the whole space: nothing outside it
            Q = xp.zeros((B.shape[0], 0))
        else:
            Q = self._gkl(B, Xt, P, l) if method == "gkl" else self._rpi(B, Xt, P, l)
        R = xp.asarray(Xt @ Q).T if Q.shape[1] else xp.zeros((0, c))
        return {"P": P, "Q": Q, "R": R}

    def _gkl(self, B, Xt, P, l):
        """l Golub-Kahan-Lanczos steps on (I - B B^T) X, full reorthogonalisation: an
        orthonormal basis (n x <=l) of its dominant left singular directions."""
        xp = self._ops.xp

        def mv(v):  # (I - B B^T) X v
            y = xp.asarray(Xt.T @ v).ravel() - B @ (P @ v)
            return y

        def rmv(u):  # X^T (I - B B^T) u, for u orthogonal to B
            return xp.asarray(Xt @ u).ravel()

        c = Xt.shape[0]
        v = xp.asarray(self._rng.standard_normal(c))
        v /= xp.linalg.norm(v)
        us, vs = [], [v]
        scale = None
        for _ in range(l):
            u = mv(vs[-1])
            for _ in range(2):
                u -= B @ (B.T @ u)
                for q in us:
                    u -= q * (q @ u)
            a = float(xp.linalg.norm(u))
            scale = a if scale is None else max(scale, a)
            if a <= 1e-12 * max(scale, 1e-300):
                break
            us.append(u / a)
            w = rmv(us[-1])
            for q in vs:
                w -= q * (q @ w)
            b = float(xp.linalg.norm(w))
            if b <= 1e-12 * scale:
                break
            vs.append(w / b)
        if not us:
            return xp.zeros((B.shape[0], 0))
        return xp.stack(us, axis=1)

    def _rpi(self, B, Xt, P, l):
        """Randomized power iteration on (I - B B^T) X: l vectors, t steps."""
        xp = self._ops.xp
        c = Xt.shape[0]
        Om = xp.asarray(self._rng.standard_normal((c, l)))

        def mv(V):
            return xp.asarray(Xt.T @ V) - B @ (P @ V)

        Y = mv(Om)
        for _ in range(self.t):
            Y, _ = xp.linalg.qr(Y)
            Z = xp.asarray(Xt @ Y) - P.T @ (B.T @ Y)
            Y = mv(Z)
        Y -= B @ (B.T @ Y)
        Q, Rq = xp.linalg.qr(Y)
        d = xp.abs(xp.diag(Rq))
        keep = d > 1e-12 * max(float(d.max()) if d.size else 0.0, 1e-300)
        Q = Q[:, keep]
        Q -= B @ (B.T @ Q)  # second projection
        Q, _ = xp.linalg.qr(Q)
        return Q

    def _apply(self, side, comp, W, method):
        """B <- [B, Q] W, W ((k + r) x k)."""
        xp, ops = self._ops.xp, self._ops
        k = W.shape[1]
        W1, W2 = W[:k], W[k:]
        if method == "sparse":
            P, Cm = comp["P"], comp["C"]
            CW2 = Cm @ W2  # c x k
            Kn = side.K @ (W1 - P @ CW2)
            if _cond(xp, Kn) > K_COND_MAX:
                side.fold()
                side.buf[: side.n] = side.Bp @ (W1 - P @ CW2)
                ops.scatter(comp["Xc"], xp.ascontiguousarray(CW2), side.buf)
            else:
                Y = xp.ascontiguousarray(xp.linalg.solve(Kn.T, CW2.T).T)
                side.K, side.plain = Kn, False
                ops.scatter(comp["Xc"], Y, side.buf)
        else:
            side.set_dense(side.Bp @ W1 + comp["Q"] @ W2)


def _check_seed(random_state, fn):
    """check_random_state, with an int seed checked here so that its errors name the argument
    (numpy's own message for a negative seed does not)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if int(random_state) < 0:
            raise ValueError(f"{fn}(): random_state must be None, a nonnegative int, a numpy "
                             f"Generator or RandomState, got {int(random_state)}")
    return C.check_random_state(random_state, fn)


def _gram_factor(xp, Ws):
    """C (c x r), R (r x c) with C^T Ws C = I_r and Ws = R^T R, dropping directions whose
    (pivoted) Gram diagonal falls below GRAM_FLOOR: pivoted Cholesky (LAPACK pstrf, c^3/3
    flops) on the host, a symmetric eigendecomposition on the GPU."""
    c = Ws.shape[0]
    if xp is np:
        from scipy.linalg import lapack, solve_triangular

        Lf, piv, r, info = lapack.dpstrf((Ws + Ws.T) / 2, tol=GRAM_FLOOR, lower=1)
        if info < 0:
            raise RuntimeError(f"dpstrf failed (info={info})")
        if r == 0 or float(Ws.diagonal().max()) <= GRAM_FLOOR:
            return np.zeros((c, 0)), np.zeros((0, c))
        perm = piv[:c] - 1
        L = np.tril(Lf)[:, :r]
        Cm = np.zeros((c, r))
        Cm[perm[:r]] = solve_triangular(L[:r], np.eye(r), lower=True).T
        R = np.zeros((r, c))
        R[:, perm] = L.T
        return Cm, R
    lam, Z = xp.linalg.eigh((Ws + Ws.T) / 2)
    keep = lam > GRAM_FLOOR
    lam, Z = lam[keep], Z[:, keep]
    return Z / xp.sqrt(lam)[None, :], (Z * xp.sqrt(lam)[None, :]).T


# Smallest side of M from which the top-k triplets come from its Gram matrix's top-k
# eigenpairs (partial MRRR) and a QR, instead of a full SVD (about 3x faster at 600 x 600).
GRAM_SVD_MIN = 200


def _top_svd(xp, M, k):
    """Top-k singular triplets of the small dense M: F (rows x k), T (k,), G (cols x k)."""
    small = min(M.shape)
    if xp is not np or small < max(GRAM_SVD_MIN, 2 * k):
        F, T, Gt = xp.linalg.svd(M, full_matrices=False)
        return F[:, :k], T[:k], Gt[:k].T
    from scipy.linalg import eigh, qr

    wide = M.shape[1] > M.shape[0]
    Mx = M.T if wide else M  # tall: rows >= cols
    n = Mx.shape[1]
    _, G = eigh(Mx.T @ Mx, subset_by_index=[n - k, n - 1], driver="evr")
    G = G[:, ::-1]
    F, Rr = qr(Mx @ G, mode="economic")
    sg = np.sign(np.diag(Rr))
    sg[sg == 0] = 1.0
    F *= sg[None, :]
    T = np.abs(np.diag(Rr))
    order = np.argsort(-T, kind="stable")
    F, T, G = F[:, order], T[order], G[:, order]
    return (G, T, F) if wide else (F, T, G)


def _cond(xp, K):
    s = xp.linalg.svd(K, compute_uv=False)
    smin = float(s[-1])
    return float("inf") if smin == 0.0 else float(s[0]) / smin


def _col_sq(xp, P):
    return (P * P).sum(axis=0)


def _to_host(x):
    if D.is_cupyx_sparse(x):
        return x.get()
    return D.to_host(x)
