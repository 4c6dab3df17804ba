"""The CPU route for a batch of matrices (within the prescaling window, see _gram_batch):
the fused C++ kernel when the smaller side is at most SMALL, else one matrix at a time by
the chunked float32 SYRK (_gram_syrk) or BLAS syrk/herk (_gram_blas)."""

from __future__ import annotations

import numpy as np

from . import _dispatch
from ._gram_blas import bound_blas
from ._gram_syrk import bound_syrk32

SMALL = 512  # smaller side up to which the fused CPU kernel beat BLAS calls (measured here)
# Products run on every matrix before those that cannot hold the batch's max drop out (off
# by default: for random kernels nearly all frequencies are within 10% of the max, and the
# pruning pass then only adds work).
PRUNE_ITER = 3


def bounds(A, n_iter, prune=False):
    """float64 array (batch,) of certified bounds for A (batch, m, n), C-contiguous."""
    m, n = A.shape[1:]
    if min(m, n) <= SMALL:
        return _bounds_fused(A, n_iter, prune)
    if A.dtype == np.float32 and n_iter > 0:
        return np.array([bound_syrk32(a, n_iter) for a in A], dtype=np.float64)
    return np.array([bound_blas(a, n_iter) for a in A], dtype=np.float64)


def _bounds_fused(A, n_iter, prune):
    """The whole batch in the fused kernel (gram_bound_batch), threads over the matrices.

    32-bit input stays 32-bit: the kernel sums its products in chunks of 128, which keeps
    the float32 margin within 0.06% of the 64-bit one up to side 512 (it used to run sides
    > 64 in 64-bit: 1.4-2x slower real, 2-2.8x complex)."""
    batch, m, n = A.shape
    cplx = A.dtype.kind == "c"
    real = A.view(A.real.dtype) if cplx else A
    out = np.empty(batch, dtype=np.float64)
    _dispatch.cpu().gram_bound_batch(
        real.reshape(-1), batch, m, n, cplx, n_iter, PRUNE_ITER if prune else 0, out
    )
    return out
