"""The four update strategies of :class:`matkern.TruncatedSVD` (see ``svd.py``'s docstring):
the complement of an update outside the current subspace (``zha-simon``: QR; ``gkl``:
Golub-Kahan-Lanczos; ``rpi``: randomized power iteration; ``sparse``: implicit, under the
update's own Gram matrix), the small core SVD, and the new factors.

The factors are U = U'[:n] K_u and V = V'[:n] K_v (:class:`Side`); ``s`` holds the k singular
values. :func:`append` appends rows (or, with U and V swapped, columns) and
:func:`low_rank_update` applies A + D E^T; both return the new ``s`` and update the sides in
place. ``ops`` is the backend (``_svd_ops._Ops``); everything is float64.
"""

from __future__ import annotations

import numpy as np

from . import _dispatch
from ._dispatch import is_sparse

# Relative eigenvalue floor of the Jacobi-scaled Gram matrix of the update's complement: the
# Gram matrix is formed by a subtraction, so directions below ~1e-8 of a column's squared norm
# are rounding noise; dropping them keeps the implicit basis orthonormal to ~1e-8.
GRAM_FLOOR = 1e-8
# Largest condition number of K_u / K_v before it is folded into U' / V'.
K_COND_MAX = 1e6


class Side:
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

    def __getstate__(self):
        # the array module is not picklable: record which one (CuPy buffers pickle as CuPy)
        state = {k: v for k, v in self.__dict__.items() if k != "xp"}
        state["gpu"] = self.xp is not np
        return state

    def __setstate__(self, state):
        state = dict(state)
        gpu = state.pop("gpu")
        self.__dict__.update(state)
        self.xp = _dispatch.cupy_module() if gpu else np
        if not gpu:
            # joblib.load(mmap_mode="r") gives read-only buffers: updates write in place
            for name in ("buf", "K"):
                if not getattr(self, name).flags.writeable:
                    setattr(self, name, np.array(getattr(self, name)))

    def copy(self):
        out = Side.__new__(Side)
        out.xp, out.n, out.plain = self.xp, self.n, self.plain
        out.buf, out.K = self.buf.copy(), self.K.copy()
        return out


def low_rank_update(ops, s, u, v, Dm, Em, method, *, rank, n_iter, rng):
    """A + D E^T: Dm (len(u) x c), Em (len(v) x c). Returns the new singular values; ``rank``,
    ``n_iter``: the vectors and power-iteration steps of "gkl" / "rpi"; ``rng`` their random
    numbers."""
    xp = ops.xp
    Dt = Dm.T.tocsr() if is_sparse(Dm) else xp.ascontiguousarray(Dm.T)
    Et = Em.T.tocsr() if is_sparse(Em) else xp.ascontiguousarray(Em.T)
    cu = complement(ops, u, Dt, method, rank=rank, n_iter=n_iter, rng=rng)
    cv = complement(ops, v, Et, method, rank=rank, n_iter=n_iter, rng=rng)
    k = len(s)
    left = xp.concatenate([cu["P"], cu["R"]], axis=0)  # (k + rD) x c
    right = xp.concatenate([cv["P"], cv["R"]], axis=0)  # (k + rE) x c
    M = left @ right.T
    M[:k, :k] += xp.diag(s)
    F, T, G = top_svd(xp, M, k)
    s = xp.ascontiguousarray(T[:k])
    apply(ops, u, cu, F, method)
    apply(ops, v, cv, G, method)
    return s


def append(ops, s, grow, proj, Xt, method, *, rank, n_iter, rng):
    """Append c new rows to ``grow``'s factor, Xt (c x len(proj)) being their content
    against ``proj``'s factor: the row update, or the column update with U and V swapped.
    Returns the new singular values (arguments as in :func:`low_rank_update`)."""
    xp = ops.xp
    k = len(s)
    c = Xt.shape[0]
    cp = complement(ops, proj, Xt, method, rank=rank, n_iter=n_iter, rng=rng)
    r = cp["R"].shape[0]
    M = xp.zeros((k + c, k + r))
    M[:k, :k] = xp.diag(s)
    M[k:, :k] = cp["P"].T
    M[k:, k:] = cp["R"].T
    F, T, G = top_svd(xp, M, k)
    s = xp.ascontiguousarray(T[:k])
    if len(s) < k:  # M narrower than k cannot happen (k + r >= k); kept for clarity
        raise AssertionError("rank dropped below k")
    # grow side: [B; 0] W1 + [0; I] W2
    W1, W2 = F[:k], F[k:]
    if method == "sparse":
        Kn = grow.K @ W1
        if cond(xp, Kn) > K_COND_MAX:
            grow.fold()
            grow.buf[: grow.n] = grow.Bp @ W1
            grow.append(W2)
        else:
            grow.K, grow.plain = Kn, False
            grow.append(xp.linalg.solve(Kn.T, W2.T).T)
    else:
        grow.set_dense(xp.concatenate([grow.materialize() @ W1, W2], axis=0))
    apply(ops, proj, cp, G, method)
    return s


def complement(ops, side, Xt, method, *, rank, n_iter, rng):
    """The complement of X (= Xt^T, len(side) x c) outside span(side): P = B^T X (k x c), and
    for dense methods an orthonormal Q (n x r) with R = Q^T X; for "sparse" the implicit
    Q = (X - B P) C with R (r x c)."""
    xp = ops.xp
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
        Cs, Rs = gram_factor(xp, W / d[:, None] / d[None, :])
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
    n_vectors = min(rank, c, B.shape[0] - B.shape[1])
    if n_vectors <= 0:  # the basis already spans the whole space: nothing outside it
        Q = xp.zeros((B.shape[0], 0))
    elif method == "gkl":
        Q = gkl(xp, B, Xt, P, n_vectors, rng)
    else:
        Q = rpi(xp, B, Xt, P, n_vectors, n_iter, rng)
    R = xp.asarray(Xt @ Q).T if Q.shape[1] else xp.zeros((0, c))
    return {"P": P, "Q": Q, "R": R}


def gkl(xp, B, Xt, P, n_vectors, rng):
    """n_vectors Golub-Kahan-Lanczos steps on (I - B B^T) X, full reorthogonalisation: an
    orthonormal basis (n x <= n_vectors) of its dominant left singular directions."""

    def mv(v):  # (I - B B^T) X v
        y = xp.asarray(Xt.T @ v).ravel() - B @ (P @ v)
        return y

    def rmv(u):  # X^T (I - B B^T) u, for u orthogonal to B
        return xp.asarray(Xt @ u).ravel()

    c = Xt.shape[0]
    v = xp.asarray(rng.standard_normal(c))
    v /= xp.linalg.norm(v)
    us, vs = [], [v]
    scale = None
    for _ in range(n_vectors):
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


def rpi(xp, B, Xt, P, n_vectors, n_iter, rng):
    """Randomized power iteration on (I - B B^T) X: n_vectors vectors, n_iter steps."""
    c = Xt.shape[0]
    Om = xp.asarray(rng.standard_normal((c, n_vectors)))

    def mv(V):
        return xp.asarray(Xt.T @ V) - B @ (P @ V)

    Y = mv(Om)
    for _ in range(n_iter):
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


def apply(ops, side, comp, W, method):
    """B <- [B, Q] W, W ((k + r) x k)."""
    xp = ops.xp
    k = W.shape[1]
    W1, W2 = W[:k], W[k:]
    if method == "sparse":
        P, Cm = comp["P"], comp["C"]
        CW2 = Cm @ W2  # c x k
        Kn = side.K @ (W1 - P @ CW2)
        if cond(xp, Kn) > K_COND_MAX:
            side.fold()
            side.buf[: side.n] = side.Bp @ (W1 - P @ CW2)
            ops.scatter(comp["Xc"], xp.ascontiguousarray(CW2), side.buf)
        else:
            Y = xp.ascontiguousarray(xp.linalg.solve(Kn.T, CW2.T).T)
            side.K, side.plain = Kn, False
            ops.scatter(comp["Xc"], Y, side.buf)
    else:
        side.set_dense(side.Bp @ W1 + comp["Q"] @ W2)


def gram_factor(xp, Ws):
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


def top_svd(xp, M, k):
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


def cond(xp, K):
    """The 2-norm condition number of the small square K (inf when singular)."""
    s = xp.linalg.svd(K, compute_uv=False)
    smin = float(s[-1])
    return float("inf") if smin == 0.0 else float(s[0]) / smin
