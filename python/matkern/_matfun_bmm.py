"""The products of the matrix-function iterations (``_matfun_iter``): ``xp.matmul`` for stacks,
on the CPU through matkern's AVX-512 batched float32 GEMM (``cpp/matfun.cpp``) where the CPU
has AVX-512, since NumPy's OpenBLAS takes its Haswell (AVX2) kernels on AMD Zen 4/5: 205
against 109 GFLOPS for a stack of 128 x 128 products on one thread of a 2-core AMD EPYC
(Zen 5). float64, CuPy, other CPUs: ``xp.matmul``.

The kernel reads each operand as stored: C-contiguous, or the transposed view of a
C-contiguous stack (``swapaxes(X, 1, 2)``), so the iterations' ``X^T X`` copies nothing."""

from __future__ import annotations

import threading

import numpy as np

from . import _dispatch

_state = threading.local()  # .pieces: this thread runs one piece of a stack (map_chunks)


class pieces:
    """Context: products made here are one thread's share of a stack already spread over the
    granted threads (``_matfun_iter.map_chunks``): the kernel stays on the calling thread."""

    def __enter__(self):
        self._was = getattr(_state, "pieces", False)
        _state.pieces = True

    def __exit__(self, *exc):
        _state.pieces = self._was


def _stored(X):
    """(trans, array as stored) for a 3-D float32 stack: C-contiguous, or the transpose of one;
    (None, None) otherwise."""
    if X.flags.c_contiguous:
        return False, X
    T = X.swapaxes(1, 2)
    if T.flags.c_contiguous:
        return True, T
    return None, None


def _kernel():
    """The CPU module where its batched GEMM runs now (MATKERN_SIMD is read per call), or None."""
    try:
        cpu = _dispatch.cpu()
    except RuntimeError:
        return None
    return cpu if cpu.bmm_enabled() else None


def matmul(xp, A, B):
    """``xp.matmul(A, B)`` for stacks A (batch, m, k) and B (batch, k, n)."""
    if (
        xp is not np
        or A.dtype != np.float32
        or B.dtype != np.float32
        or A.ndim != 3
        or B.ndim != 3
        or A.shape[0] != B.shape[0]
        or A.shape[2] != B.shape[1]
    ):
        return xp.matmul(A, B)
    cpu = _kernel()
    ta, a = _stored(A)
    tb, b = _stored(B)
    if cpu is None or a is None or b is None:
        return np.matmul(A, B)
    out = np.empty((A.shape[0], A.shape[1], B.shape[2]), np.float32)
    cpu.bmm_f32(a, ta, b, tb, out, not getattr(_state, "pieces", False))
    return out
