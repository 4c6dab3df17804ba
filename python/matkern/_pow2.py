"""Exact rescaling by powers of two: a routine whose intermediate values grow like a power of
its input's magnitude (sums of squares, unnormalized power steps, a sketch's Gram matrix)
runs on X * 2^-e with max|X * 2^-e| in [1/2, 1), and the caller scales its result back.
Multiplying by a power of two changes only exponents, so the result keeps its digits."""

from __future__ import annotations

import math

from . import _dispatch


def unit_scale(X, bits):
    """(X * 2^-e, e), e the exponent of max|X| (so the maximum lands in [1/2, 1)), when
    max|X| lies outside [2^-bits, 2^bits]; (X, 0) when it lies inside or X is zero or empty
    (no copy). NumPy or CuPy, X's dtype kept."""
    xp = _dispatch.array_module(X)
    mx = float(xp.abs(X).max()) if X.size else 0.0
    if mx == 0.0 or 2.0**-bits <= mx <= 2.0**bits:
        return X, 0
    e = math.frexp(mx)[1]
    return xp.ldexp(X, -e).astype(X.dtype, copy=False), e
