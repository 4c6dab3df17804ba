"""Certified bounds for a batch of matrices at any scale: each matrix prescaled by an exact
power of two (``prescale``, shared with the convolution routes), the backend's route run
(the reference's ``gram_bound``, ``_gram_cpu`` or ``_gram_cuda``), the bounds scaled back.

Exact power-of-two prescaling. The kernels take the scale of their input for granted: the
fused and BLAS-pass C++ kernels scale by 2^-p, p the exponent of the largest |entry|, which
is inf for a subnormal one (NaN bounds); the convolution routes form the taps' Gram matrix,
||K_f||_F^2 and the first product from the taps unscaled, which underflow below ~1e-81
(float64) and overflow float32 from ~1e27, so bounds came out below the norm, 0, inf or
NaN. Every input (each matrix of a batch, each kernel) whose largest |entry| lies outside
[2^-WINDOW, 2^WINDOW] is therefore first multiplied by 2^-p, which brings it into
[1/2, 1), and its bound by 2^p at the end (reference ``unscale_bound``): exact, except that
scaling down rounds the entries that fall below the dtype's normal range (each by at most
half its smallest subnormal), a matrix E with ||E||_2 <= ||E||_F <= sqrt(m n) tiny that is
added to the bound (a convolution's: kh kw sqrt(c_out c_in) tiny, since ||E_f||_F <= sum of
the taps' ||E_t||_F). Inputs inside the window run as they are (no copy); the tests check
every route at its edges. A bound above the largest float64 raises OverflowError.
"""

from __future__ import annotations

import math

import numpy as np

from . import _dispatch, _gram_cpu, _gram_cuda
from .reference.gram import gram_bound, unscale_bound

WINDOW = 32


def prescale(A, per_tiny):
    """(A2, p, under) for a non-empty stack A (batch, ...) of real or complex entries: p
    (int64, batch) the exponents that A2[b] = A[b] * 2^-p[b] was scaled by (0 inside the
    window; A2 is A when no matrix needs scaling), under (float64, batch) the bound on the
    scaling's rounding in A2's units (per_tiny times the dtype's smallest subnormal where
    p > 0, else 0)."""
    xp = _dispatch.array_module(A)
    batch = A.shape[0]
    r = A.view(A.real.dtype) if A.dtype.kind == "c" else A
    r = r.reshape(batch, -1)
    if xp is np and _dispatch._cpu is not None:  # one pass, no temporaries (C++)
        mx = np.empty(batch)
        _dispatch.cpu().gram_max_abs_batch(np.ascontiguousarray(r).reshape(-1), batch, mx)
    else:
        mx = _dispatch.to_host(xp.maximum(r.max(axis=1), -r.min(axis=1))).astype(np.float64)
    p = np.where(mx > 0, np.frexp(mx)[1], 0).astype(np.int64)
    p = np.where(np.abs(p) > WINDOW, p, 0)
    if not p.any():
        return A, p, np.zeros(batch)
    tiny = float(np.finfo(A.real.dtype).smallest_subnormal)
    under = np.where(p > 0, per_tiny * tiny * (1 + 1e-12), 0.0)
    r2 = xp.ldexp(xp.ascontiguousarray(r), xp.asarray(-p[:, None].astype(np.int32)))
    return r2.view(A.dtype).reshape(A.shape), p, under


def bounds(A, n_iter, be, prune=False, fn="spectral_norm_bound"):
    """float64 NumPy array (batch,) of certified bounds for A (batch, m, n), C-contiguous, of
    any scale (prescaled per matrix), on backend ``be``. prune: only the maximum needs to be
    as tight as n_iter (CPU fused kernel, see _gram_cpu.PRUNE_ITER)."""
    m, n = A.shape[1:]
    A2, p, under = prescale(A, math.sqrt(m * n))
    return unscale_bound(_bounds_scaled(A2, n_iter, be, prune), p, under, fn)


def _bounds_scaled(A, n_iter, be, prune):
    """bounds of an A whose every matrix has its largest |entry| within the window."""
    if be == "reference":
        return np.array([gram_bound(_dispatch.to_host(a), n_iter) for a in A], dtype=np.float64)
    if be == "cuda":
        return _gram_cuda.bounds(A, n_iter)
    return _gram_cpu.bounds(A, n_iter, prune)
