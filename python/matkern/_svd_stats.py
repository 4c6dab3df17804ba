"""Per-feature statistics of the matrix a :class:`matkern.TruncatedSVD` has seen, kept through
its updates, for ``explained_variance_ratio_`` (scikit-learn's denominator: the sum of the
features' variances, ``np.var(A, axis=0).sum()``).

A :class:`Stats` holds the row count n, the feature means and the sums of squared deviations
M2 (float64, on the factors' device). Batches are combined exactly (Chan, Golub and LeVeque's
pairwise update, as scikit-learn's IncrementalPCA), new columns appended, and a low-rank
change A + D E^T applied with the one term that needs A itself, sum_i A_ij (D_c E^T)_ij,
taken from the current rank-k factors (exact when A has rank <= k). Inputs are the updater's
validated float64 arrays (dense, or canonical CSR with int32 indices). No checks here.
"""

from __future__ import annotations

from typing import NamedTuple

from ._dispatch import array_module, is_sparse


class Stats(NamedTuple):
    n: int
    mean: object  # (d,) float64
    m2: object  # (d,) float64: sum over rows of (x - mean)^2

    def total_variance(self):
        """sum_j var(A[:, j]) (population variance, as np.var)."""
        return float(self.m2.sum()) / self.n


def of_rows(X):
    """Stats of the rows of X (c x d, dense or CSR): two passes, as np.var."""
    if not is_sparse(X):
        mean = X.mean(axis=0)
        return Stats(X.shape[0], mean, ((X - mean) ** 2).sum(axis=0))
    xp = array_module(X.data)
    c, d = X.shape
    counts = xp.bincount(X.indices, minlength=d)
    mean = xp.bincount(X.indices, weights=X.data, minlength=d) / c
    dev = X.data - mean[X.indices]
    m2 = xp.bincount(X.indices, weights=dev * dev, minlength=d) + (c - counts) * mean**2
    return Stats(c, mean, m2)


def add_rows(a, b):
    """The stats of A stacked on B (same features)."""
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    m2 = a.m2 + b.m2 + delta**2 * (a.n * b.n / n)
    return Stats(n, mean, m2)


def add_columns(a, X):
    """The stats of [A, X] for new columns X (n x c, dense or CSR; n = a.n rows)."""
    xp = array_module(a.mean)
    b = of_rows(X)
    return Stats(a.n, xp.concatenate([a.mean, b.mean]), xp.concatenate([a.m2, b.m2]))


def low_rank(a, D, E, u, s, v):
    """The stats of A + D E^T, D (n x c), E (d x c) dense or CSR, A ~ U diag(s) V^T given by
    the factor sides ``u``, ``v`` (``_svd_update.Side``) and ``s`` before the change.

    With Dc = D - 1 mean(D)^T: mean' = mean + E mean(D); M2'_j = M2_j + 2 (A^T Dc)_j . E_j +
    E_j (Dc^T Dc) E_j^T, and A^T Dc is taken as V diag(s) (U^T Dc)."""
    xp = array_module(a.mean)
    n = a.n
    Dd = D.toarray() if is_sparse(D) else D
    Ed = E.toarray() if is_sparse(E) else E
    mD = Dd.mean(axis=0)  # (c,)
    G = Dd.T @ Dd - n * xp.outer(mD, mD)  # Dc^T Dc
    UtDc = _side_t_mul(u, Dd) - xp.outer(_side_t_mul(u, xp.ones((n, 1))).ravel(), mD)
    AtDc = _side_mul(v, s[:, None] * UtDc)  # (d, c)
    cross = (AtDc * Ed).sum(axis=1)
    m2 = a.m2 + 2.0 * cross + ((Ed @ G) * Ed).sum(axis=1)
    return Stats(n, a.mean + Ed @ mD, xp.maximum(m2, 0.0))


def _side_t_mul(side, M):
    """B^T M for the side's factor B = B'[:n] K, without forming B."""
    out = side.Bp.T @ M
    return out if side.plain else side.K.T @ out


def _side_mul(side, W):
    """B W for the side's factor B = B'[:n] K, without forming B."""
    return side.Bp @ (W if side.plain else side.K @ W)
