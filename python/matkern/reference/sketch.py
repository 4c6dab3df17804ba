"""Reference (plain NumPy/SciPy) for the sketching family: the three sketches, defined
entry by entry, and the textbook randomized SVD built on them. The definition of correct;
vectorized, not fast.

Every sketch S is a k x m matrix applied to the rows of A (m x c): ``S @ A``. Its random
parts come from the seed's 64-bit key (``rp_seed_key`` of the randproj family) so that every
backend builds the same S:

* ``stream_hash(key, s, i) = mix(mix(key + s * C1) + (i + 1) * G)`` (uint64, wrapping, ``mix``
  the splitmix64 finalizer), for stream s = 1 (SRHT signs) and s = 2 (CountSketch);
* SRHT: ``S = sqrt(1 / k) * P H D``: D the m x m diagonal of signs (-1 where the hash of
  stream 1 has its low bit set), H the unnormalized Hadamard matrix of order mpad (the next
  power of two >= m, A zero-padded), P the k rows ``srht_rows(key, mpad, k)``: a uniformly
  random k-subset of range(mpad), sorted (drawn on the host by a numpy Generator seeded with
  the key). E[S^T S] = I.
* CountSketch: row i of A goes to bucket ``floor((h >> 32) * k / 2^32)`` with sign -1 where
  h's low bit is set (h the hash of stream 2): one +-1 per column of S.
* Gaussian: ``S = G^T / sqrt(k)`` with G (m x k) standard normal, drawn row by row (C order)
  from a numpy Generator seeded with the key.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .randproj import C1, G, _mix

__all__ = [
    "stream_hash",
    "srht_signs",
    "srht_rows",
    "countsketch_hash",
    "srht_sketch",
    "countsketch_sketch",
    "gaussian_sketch_matrix",
    "sketch_matrix",
    "randomized_svd",
]

SIGN_STREAM = 1
COUNT_STREAM = 2


def stream_hash(key: int, stream: int, n: int) -> np.ndarray:
    """uint64 hashes of i = 0..n-1 in stream ``stream`` of ``key``."""
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(key) + np.uint64(stream) * np.uint64(C1))
        return _mix(base + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(G))


def srht_signs(key: int, n: int, dtype=np.float64) -> np.ndarray:
    """The SRHT's diagonal D: +-1 (float) for rows 0..n-1."""
    h = stream_hash(key, SIGN_STREAM, n)
    return np.where((h & np.uint64(1)) == 1, -1.0, 1.0).astype(dtype)


def srht_rows(key: int, mpad: int, k: int) -> np.ndarray:
    """The k sampled rows of H (sorted int64, distinct) for padded length mpad."""
    rng = np.random.Generator(np.random.PCG64(int(key)))
    rows = rng.choice(mpad, size=k, replace=False)
    rows.sort()
    return rows.astype(np.int64)


def countsketch_hash(key: int, m: int, k: int):
    """(bucket int64, sign float64) of rows 0..m-1 for a k-row CountSketch."""
    h = stream_hash(key, COUNT_STREAM, m)
    bucket = ((h >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)
    sign = np.where((h & np.uint64(1)) == 1, -1.0, 1.0)
    return bucket.astype(np.int64), sign


def _dense(A):
    return np.asarray(A.toarray() if sp.issparse(A) else A, dtype=np.float64)


def srht_sketch(A, key: int, k: int) -> np.ndarray:
    """S @ A for the SRHT of A's m rows (A dense or scipy sparse; float64 result)."""
    from .hadamard import fwht

    A = _dense(A)
    m = A.shape[0]
    mpad = 1 << max(0, (m - 1).bit_length())
    Z = np.zeros((mpad,) + A.shape[1:])
    Z[:m] = A * srht_signs(key, m).reshape((m,) + (1,) * (A.ndim - 1))
    Z = fwht(Z, axis=0)
    return Z[srht_rows(key, mpad, k)] / np.sqrt(k)


def countsketch_sketch(A, key: int, k: int) -> np.ndarray:
    """S @ A for the CountSketch of A's m rows (float64 result)."""
    m = A.shape[0]
    bucket, sign = countsketch_hash(key, m, k)
    S = sp.csr_matrix((sign, (bucket, np.arange(m))), shape=(k, m))
    out = S @ (A.astype(np.float64) if sp.issparse(A) else _dense(A))
    return np.asarray(out.toarray() if sp.issparse(out) else out)


def gaussian_sketch_matrix(key: int, m: int, k: int) -> np.ndarray:
    """The k x m Gaussian sketch (float64)."""
    rng = np.random.Generator(np.random.PCG64(int(key)))
    return rng.standard_normal((m, k)).T / np.sqrt(k)


def sketch_matrix(kind: str, key: int, m: int, k: int) -> np.ndarray:
    """The dense k x m matrix S of a sketch ("srht", "countsketch" or "gaussian")."""
    if kind == "gaussian":
        return gaussian_sketch_matrix(key, m, k)
    f = srht_sketch if kind == "srht" else countsketch_sketch
    return f(np.eye(m), key, k)


def randomized_svd(A, n_components, n_oversamples, n_iter, Omega, normalizer="LU"):
    """Halko-Martinsson-Tropp with scikit-learn's steps, in float64: Q = A Omega, n_iter
    power steps each normalized ("LU", "QR" or "none"), Q = qr(A Q), B = Q^T A,
    B = Uh s Vt; returns (Q Uh, s, Vt) truncated to n_components, signs as svd_flip (largest
    |U| entry of each column positive). A dense or scipy sparse (m x n), Omega (n x l)."""
    import scipy.linalg as la

    def norm(Y):
        if normalizer == "QR":
            return la.qr(Y, mode="economic")[0]
        if normalizer == "LU":
            return la.lu(Y, permute_l=True)[0]
        return Y

    A = A.astype(np.float64) if sp.issparse(A) else np.asarray(A, dtype=np.float64)
    Q = Omega
    for _ in range(n_iter):
        Q = norm(np.asarray(A @ Q))
        Q = norm(np.asarray(A.T @ Q))
    Q = la.qr(np.asarray(A @ Q), mode="economic")[0]
    B = np.asarray((A.T @ Q).T)
    Uh, s, Vt = la.svd(B, full_matrices=False)
    U = Q @ Uh
    i = np.argmax(np.abs(U), axis=0)
    sg = np.sign(U[i, np.arange(U.shape[1])])
    sg[sg == 0] = 1
    U, Vt = U * sg, Vt * sg[:, None]
    return U[:, :n_components], s[:n_components], Vt[:n_components]
