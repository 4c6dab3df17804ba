"""Reference (plain NumPy/SciPy) for the randproj family: the generator of the very sparse
projection, the projection itself and FastRP. The definition of correct; vectorized, not fast.

The projection R (n_features x n_components, the transpose of scikit-learn's components_) is
defined by a counter-based generator, so that every backend builds the same matrix from a seed:

* ``seed_key = mix(seed + G)``, ``base_j = mix(seed_key + (j + 1) * C1)`` for feature j,
  ``h_t = mix(base_j + t * G)`` for t = 1, 2, ... (uint64 arithmetic modulo 2^64, ``mix`` the
  splitmix64 finalizer);
* the nonzero components of feature j are found by a geometric skip: from position -1, move
  ``skip + 1`` where ``skip = #{m in 1..k : table[m] > h_t >> 1}`` and
  ``table[m] = floor(2^63 (1 - density)^m)``, so P(skip >= m) = (1 - density)^m: each entry is
  nonzero with probability density, independently; stop once the position reaches k;
* the sign of each nonzero is the low bit of its h_t (1 = negative).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rp_seed_key", "rp_table", "rp_generate", "sparse_random_projection", "fastrp"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
G = 0x9E3779B97F4A7C15
C1 = 0xD1B54A32D192ED03
_MASK = (1 << 64) - 1


def _mix(z):
    """splitmix64 finalizer on a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z = z * _M1
        z = z ^ (z >> np.uint64(27))
        z = z * _M2
        z = z ^ (z >> np.uint64(31))
    return z


def rp_seed_key(seed: int) -> int:
    """The 64-bit key of an integer seed (taken modulo 2^64)."""
    return int(_mix(np.uint64((int(seed) + G) & _MASK)))


def rp_table(density: float, k: int) -> np.ndarray:
    """table[m] = floor(2^63 (1 - density)^m), m = 0..k (uint64, nonincreasing)."""
    m = np.arange(k + 1, dtype=np.float64)
    q = np.power(1.0 - float(density), m) * 2.0**63
    q[0] = 2.0**63
    return np.floor(q).astype(np.uint64)


def rp_generate(seed_key: int, table: np.ndarray, k: int, j0: int, j1: int):
    """Feature rows j0..j1-1 of R as CSR pieces: (indptr int64, components int32, negative int8).

    Runs all rows at once, one geometric step per loop trip.
    """
    nr = j1 - j0
    rev = table[1:][::-1].copy()  # nondecreasing, for searchsorted
    with np.errstate(over="ignore"):
        base = _mix(
            np.uint64(seed_key)
            + (np.arange(j0, j1, dtype=np.uint64) + np.uint64(1)) * np.uint64(C1)
        )
    pos = np.full(nr, -1, dtype=np.int64)
    rows = np.arange(nr)
    out_r, out_c, out_neg = [], [], []
    t = 1
    while rows.size:
        with np.errstate(over="ignore"):
            h = _mix(base[rows] + np.uint64(t) * np.uint64(G))
        u = h >> np.uint64(1)
        skip = k - np.searchsorted(rev, u, side="right")
        pos[rows] += skip + 1
        alive = pos[rows] < k
        rows = rows[alive]
        out_r.append(rows)
        out_c.append(pos[rows])
        out_neg.append((h[alive] & np.uint64(1)).astype(np.int8))
        t += 1
    r = np.concatenate(out_r)
    c = np.concatenate(out_c)
    neg = np.concatenate(out_neg)
    order = np.lexsort((c, r))
    r, c, neg = r[order], c[order], neg[order]
    indptr = np.zeros(nr + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=nr), out=indptr[1:])
    return indptr, c.astype(np.int32), neg


def _r_matrix(seed_key, table, k, d, scale):
    import scipy.sparse as sp

    indptr, comps, neg = rp_generate(seed_key, table, k, 0, d)
    vals = np.where(neg == 1, -scale, scale)
    return sp.csr_matrix((vals, comps, indptr), shape=(d, k))


def sparse_random_projection(X, seed_key, table, k, scale):
    """scale * X @ R in float64 (X dense or scipy sparse, n x d); returns a dense (n, k) array."""
    d = X.shape[1]
    R = _r_matrix(seed_key, table, k, d, 1.0)
    Y = X @ R if not isinstance(X, np.ndarray) else (R.T @ X.T).T
    return scale * np.asarray(Y.toarray() if hasattr(Y, "toarray") else Y, dtype=np.float64)


def degree_power(deg, beta):
    """deg ** beta with zero-degree nodes mapped to 0 (beta != 0) or 1 (beta == 0)."""
    out = np.zeros_like(deg, dtype=np.float64)
    pos = deg > 0
    out[pos] = np.power(deg[pos], beta)
    if beta == 0:
        out[~pos] = 1.0
    return out


def fastrp(A, dim, weights, beta, l2_normalize, seed_key):
    """FastRP (Chen et al. 2019) in float64: S = D^-1 A (rows of sinks left at zero),
    U_1 = S diag(deg^beta) R, U_i = S U_{i-1}, embedding = sum_i w_i normalize(U_i)."""
    import scipy.sparse as sp

    A = sp.csr_matrix(A, dtype=np.float64)
    n = A.shape[0]
    deg = np.asarray(A.sum(axis=1)).ravel()
    inv = np.zeros(n)
    inv[deg > 0] = 1.0 / deg[deg > 0]
    S = sp.diags(inv) @ A
    density = 1.0 / np.sqrt(n)
    table = rp_table(density, dim)
    R = _r_matrix(seed_key, table, dim, n, np.sqrt(1.0 / (density * dim)))
    U = np.asarray((S @ sp.diags(degree_power(deg, beta)) @ R).toarray())
    emb = np.zeros((n, dim))
    for i, w in enumerate(weights):
        if i:
            U = S @ U
        V = U
        if l2_normalize:
            norms = np.linalg.norm(U, axis=1, keepdims=True)
            V = np.divide(U, norms, out=np.zeros_like(U), where=norms > 0)
        emb += w * V
    return emb
