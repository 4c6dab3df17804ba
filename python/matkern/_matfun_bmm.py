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


# sym products from this size on (8 x 48 tiles: smaller ones skip few; measured on the 2-core
# Zen 5, orthogonalize polar x11 / x6: 256 x 128 x 128 131 -> 125 ms, 4096 x 1024 378 ->
# 328 ms, 4 x 512 x 512 73 -> 60 ms)
SYM_MIN = 128


def matmul(xp, A, B, sym=False):
    """``xp.matmul(A, B)`` for stacks A (batch, m, k) and B (batch, k, n). ``sym``: the caller
    knows every C = A B is symmetric with C[i, j] and C[j, i] sums of the same products (A^T A,
    or S S for an exactly symmetric S): the kernel computes the upper triangle only."""
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
    sym = bool(sym) and A.shape[1] == B.shape[2] >= SYM_MIN
    cpu.bmm_f32(a, ta, b, tb, out, not getattr(_state, "pieces", False), sym)
    return out
