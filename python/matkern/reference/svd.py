"""Reference (plain NumPy/SciPy) for the truncated-SVD updating family.

The three sparse operations that the compiled backends implement as kernels, written with
scipy.sparse, and the textbook Zha-Simon row update on dense arrays (the definition the
updater's methods are checked against).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["svd_gather", "svd_gram", "svd_scatter", "zha_simon_add_rows"]


def svd_gather(Xt, B):
    """``Xt @ B``: Xt a (c x n) scipy CSR matrix, B (n x k) float64 -> (c x k)."""
    return np.asarray(Xt @ B)


def svd_gram(Xt):
    """``Xt @ Xt.T`` as a dense (c x c) float64 array, Xt a scipy CSR matrix."""
    return np.asarray((Xt @ Xt.T).toarray(), dtype=np.float64)


def svd_scatter(rows, indptr, indices, data, Y, B):
    """``B[rows[r]] += sum_p data[p] * Y[indices[p]]`` for p in row r of (indptr, indices);
    rows distinct; B updated in place."""
    X = sp.csr_matrix((data, indices, indptr), shape=(len(rows), Y.shape[0]))
    B[rows] += X @ Y


def zha_simon_add_rows(U, s, Vt, E, k):
    """Zha-Simon: the rank-k SVD of [U diag(s) Vt; E] computed from the factors and E.

    ``Q R = qr((I - V V^T) E^T)``, ``M = [[diag(s), 0], [E V, R^T]]``, ``M = F T G^T``;
    returns ``(blockdiag(U, I) F_k, T_k, ([V, Q] G_k)^T)``. Dense NumPy arrays, float64.
    """
    V = Vt.T
    E = np.asarray(E, dtype=np.float64)
    P = E @ V
    Q, R = np.linalg.qr(E.T - V @ P.T)
    kk = len(s)
    M = np.block([[np.diag(s), np.zeros((kk, R.shape[0]))], [P, R.T]])
    F, T, Gt = np.linalg.svd(M)
    m = U.shape[0]
    Ub = np.zeros((m + E.shape[0], kk + E.shape[0]))
    Ub[:m, :kk] = U
    Ub[m:, kk:] = np.eye(E.shape[0])
    return Ub @ F[:, :k], T[:k], (np.hstack([V, Q]) @ Gt[:k].T).T
