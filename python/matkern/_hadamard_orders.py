"""Hadamard matrices of orders m * 2^k: which n have one here, and how each base H_m is built.

fwht of length n = p * m (p a power of two) is the Kronecker product H_p (Sylvester) x H_m,
where H_m is built once by a Paley construction over a finite field GF(q):

- Paley I, q = 3 (mod 4) a prime power: H = I + S of order q + 1, S the skew conference
  matrix [[0, 1^T], [-1, Q]] with Q[a, b] = chi(a - b) (chi the quadratic character).
- Paley II, q = 1 (mod 4): C = [[0, 1^T], [1, Q]] symmetric, H = C x [[1, 1], [1, -1]] +
  I x [[1, -1], [-1, -1]] of order 2 (q + 1).

For n = o * 2^e (o odd), m is the smallest o * 2^j (2 <= j <= e) that either construction
reaches with q a prime or the square or cube of a prime, and p = 2^(e - j): 12 = 11 + 1,
20 = 19 + 1, 28 = 2 (13 + 1), 36 = 2 (17 + 1), 52 = 2 (25 + 1), 60, 108, 140 = q + 1 for the
primes 59, 107, 139. 156 and 172 have no Paley construction, so 156 * 2^k and 172 * 2^k
(k >= 1) use m = 312 = 311 + 1 and m = 344 = 343 + 1 (343 = 7^3): the widths 9984, 11008
(= 344 * 32), ... are served; 156 and 172 themselves are refused. The dense stage costs m
multiply-adds per element, so large m are slower by construction.
"""

from __future__ import annotations

import functools

import numpy as np

MAX_BASE_ORDER = 4096  # a larger H_m would cost more than the dense rotation it replaces


def _prime_power(q):
    """(p, e) with q = p^e for a prime p and e in 1..3, else None."""
    if q < 2:
        return None
    for p in range(2, int(q**0.5) + 2):
        if q % p == 0:
            e, r = 0, q
            while r % p == 0:
                r //= p
                e += 1
            return (p, e) if r == 1 and e <= 3 else None
    return (q, 1)


def _irreducible(p, e):
    """Coefficients (low to high, monic) of a polynomial of degree e <= 3 over GF(p) with no
    root, hence irreducible."""
    if e == 1:
        return np.array([0, 1])
    for code in range(p**e):
        c = [(code // p**i) % p for i in range(e)] + [1]
        if all(sum(ci * x**i for i, ci in enumerate(c)) % p for x in range(p)):
            return np.array(c)
    raise AssertionError("no irreducible polynomial found")  # cannot happen for e <= 3


def _quadratic_character(q):
    """chi[d] for every element d of GF(q) (elements coded as base-p digit integers):
    1 for a nonzero square, -1 for a non-square, 0 for zero; and the subtraction table."""
    p, e = _prime_power(q)
    x = np.arange(q)
    digits = np.stack([(x // p**i) % p for i in range(e)], axis=1)  # (q, e)
    # x * x as a polynomial product reduced modulo the irreducible f
    f = _irreducible(p, e)
    prod = np.zeros((q, 2 * e - 1), dtype=np.int64)
    for i in range(e):
        for j in range(e):
            prod[:, i + j] += digits[:, i] * digits[:, j]
    prod %= p
    for deg in range(2 * e - 2, e - 1, -1):  # subtract lead * x^(deg - e) * f
        lead = prod[:, deg].copy()
        for i in range(e + 1):
            prod[:, deg - e + i] = (prod[:, deg - e + i] - lead * f[i]) % p
    squares = (prod[:, :e] * p ** np.arange(e)).sum(axis=1)
    chi = -np.ones(q, dtype=np.int64)
    chi[squares] = 1
    chi[0] = 0
    diff = (digits[:, None, :] - digits[None, :, :]) % p
    sub = (diff * p ** np.arange(e)).sum(axis=2)  # sub[a, b] = a - b
    return chi, sub


def _jacobsthal(q):
    chi, sub = _quadratic_character(q)
    return chi[sub]


def _paley1(q):
    Q = _jacobsthal(q)
    S = np.zeros((q + 1, q + 1), dtype=np.int64)
    S[0, 1:] = 1
    S[1:, 0] = -1
    S[1:, 1:] = Q
    return S + np.eye(q + 1, dtype=np.int64)


def _paley2(q):
    Q = _jacobsthal(q)
    C = np.zeros((q + 1, q + 1), dtype=np.int64)
    C[0, 1:] = 1
    C[1:, 0] = 1
    C[1:, 1:] = Q
    return np.kron(C, [[1, 1], [1, -1]]) + np.kron(
        np.eye(q + 1, dtype=np.int64), [[1, -1], [-1, -1]]
    )


def _construction(m):
    """The Paley construction of order m (a multiple of 4), or None."""
    if m - 1 > 2 and _prime_power(m - 1) and (m - 1) % 4 == 3:
        return ("paley1", m - 1)
    if m % 2 == 0 and _prime_power(m // 2 - 1) and (m // 2 - 1) % 4 == 1:
        return ("paley2", m // 2 - 1)
    return None


def split_order(n):
    """(m, p) with n = m * p, p a power of two and H_m built here (m = 1 for powers of two),
    or None when this n has no Hadamard matrix here."""
    n = int(n)
    if n < 1:
        return None
    e, o = 0, n
    while o % 2 == 0:
        o //= 2
        e += 1
    if o == 1:
        return (1, n)
    for j in range(2, e + 1):
        m = o << j
        if m > MAX_BASE_ORDER:
            return None
        if _construction(m) is not None:
            return (m, n // m)
    return None


@functools.lru_cache(maxsize=32)
def _base(m):
    if m == 1:
        return np.ones((1, 1), dtype=np.int8)
    kind, q = _construction(m)
    H = _paley1(q) if kind == "paley1" else _paley2(q)
    assert np.array_equal(H @ H.T, m * np.eye(m, dtype=np.int64)), (kind, q)
    H = H.astype(np.int8)
    H.flags.writeable = False
    return H


def base_matrix(m, dtype=np.float64):
    """H_m (m x m, entries +-1, H H^T = m I) as a read-only array of ``dtype``."""
    H = _base(int(m))
    return H if np.dtype(dtype) == np.int8 else H.astype(dtype)


@functools.lru_cache(maxsize=64)
def padded_columns(m, dtype, transpose=False):
    """H_m's columns (H_m^T's with ``transpose``) as rows of length mp = m rounded up to 8,
    zero padded: the layout of the CPU kernel (cpp/hadamard_mixed.inc). Read-only."""
    H = _base(int(m)).astype(dtype)
    mp = (m + 7) // 8 * 8
    ht = np.zeros((m, mp), dtype=dtype)
    ht[:, :m] = H if transpose else H.T
    ht.flags.writeable = False
    return ht


def supported_below(limit):
    """Every n < limit that has a Hadamard matrix here (for error messages and tests)."""
    return [n for n in range(1, limit) if split_order(n) is not None]
