"""The products of the matrix-function iterations (``_matfun_iter``): ``xp.matmul`` for stacks,
on the CPU through matkern's AVX-512 batched float32 GEMM (``cpp/matfun.cpp``) where the CPU
has AVX-512, since NumPy's OpenBLAS takes its Haswell (AVX2) kernels on AMD Zen 4/5: 205
against 109 GFLOPS for a stack of 128 x 128 products on one thread of a 2-core AMD EPYC
(Zen 5). float64, CuPy, other CPUs: ``xp.matmul``.

The kernel reads each operand as stored: C-contiguous, or the transposed view of a
C-contiguous stack (``swapaxes(X, 1, 2)``), so the iterations' ``X^T X`` copies nothing. It
also sums a step's polynomial c A A + b A + a I in its epilogue (``then``), skips a
triangular right operand's zeros (``b_upper``), and gives ``add_transposed`` (alpha A +
beta B^T) and ``tri_inv_upper`` (batched triangular inverses) to the square root's Newton
start. Their pure-NumPy fallbacks compute the same values in another summation order."""

from __future__ import annotations

import threading

import numpy as np

from . import _dispatch
from ._lapack_nogil import trtri_upper

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


def matmul(xp, A, B, sym=False, then=None, b_upper=False):
    """``xp.matmul(A, B)`` for stacks A (batch, m, k) and B (batch, k, n). ``sym``: the caller
    knows every C = A B is symmetric with C[i, j] and C[j, i] sums of the same products (A^T A,
    or S S for an exactly symmetric S): the kernel computes the upper triangle only.
    ``then``: (alpha, beta, D, gamma), each factor a scalar or an array of batch values
    shaped (batch, 1, 1), D a stack shaped as C (symmetric where ``sym``): the result is
    alpha C + beta D + gamma I, in the kernel while each C is in cache. ``b_upper``: every
    B is upper triangular (zeros below the diagonal), which the kernel then skips."""
    if (
        xp is not np
        or A.dtype != np.float32
        or B.dtype != np.float32
        or A.ndim != 3
        or B.ndim != 3
        or A.shape[0] != B.shape[0]
        or A.shape[2] != B.shape[1]
    ):
        return _then(xp, xp.matmul(A, B), then)
    cpu = _kernel()
    ta, a = _stored(A)
    tb, b = _stored(B)
    D = None if then is None else then[2]
    if cpu is None or a is None or b is None or not (D is None or D.flags.c_contiguous):
        return _then(xp, np.matmul(A, B), then)
    out = np.empty((A.shape[0], A.shape[1], B.shape[2]), np.float32)
    sym = bool(sym) and A.shape[1] == B.shape[2] >= SYM_MIN
    extra = {}
    if then is not None:
        alpha, beta, _, gamma = (_per_matrix(v, A.shape[0]) if v is not D else v for v in then)
        extra = dict(alpha=alpha, beta=beta, d=D, gamma=gamma)
    cpu.bmm_f32(
        a, ta, b, tb, out, not getattr(_state, "pieces", False), sym, b_upper=b_upper, **extra
    )
    return out


def _per_matrix(v, batch):
    """A scalar or (batch, 1, 1) factor as a C-contiguous float32 (batch,) array."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(v, np.float32).reshape(-1), (batch,)))


def _then(xp, C, then):
    """alpha C + beta D + gamma I (``matmul``'s ``then``) with array operations."""
    if then is None:
        return C
    alpha, beta, D, gamma = then
    C *= alpha
    C += beta * D
    k = C.shape[-1]
    diag = C.reshape(C.shape[0], -1)[:, :: k + 1]
    if np.ndim(gamma) == 0:  # a scalar: no host-to-device copy on CuPy
        diag += gamma
    else:  # (batch, 1) or (batch, 1, 1), on C's device
        diag += xp.reshape(gamma, (-1, 1))
    return C


TRI_LEAF = 32  # LAPACK's trtri at and below this size (5 us at 32, 16 us at 64, 0.3 ms at 256)


def tri_inv_upper(R):
    """The inverses of a NumPy stack R (batch, k, k) of nonsingular upper triangular
    matrices (float32 or float64; the strictly lower parts zero): by halves,
    [[A, B], [0, C]]^-1 = [[A^-1, -A^-1 B C^-1], [0, C^-1]], the two products of each level
    batched (``matmul``; the second with the triangular C^-1 skipped where zero), LAPACK's
    trtri on the leaves (``trtri_upper``: without the GIL). 0.12 ms a 256 x 256 float32
    matrix (stacks of 8) on one core of the 2-core Zen 5 against 0.31 ms for strtri (k^3 / 3
    flops, most of them in the products). Not finite where a matrix is singular to the
    working precision."""
    k = R.shape[-1]
    if k <= TRI_LEAF:
        # a C-ordered copy (R may be a view or the caller's); trtri leaves the zeros below
        # the diagonal as they are
        out = np.array(R, order="C")
        for i in range(out.shape[0]):
            if trtri_upper(out[i]) != 0:  # an exact zero on the diagonal
                out[i] = np.inf
        return out
    h = k // 2
    Ai = tri_inv_upper(R[:, :h, :h])  # views: the leaves copy what they invert
    Ci = tri_inv_upper(R[:, h:, h:])
    out = np.zeros_like(R)
    out[:, :h, :h] = Ai
    out[:, h:, h:] = Ci
    with np.errstate(over="ignore", invalid="ignore"):
        AB = matmul(np, Ai, np.ascontiguousarray(R[:, :h, h:]))
        out[:, :h, h:] = -matmul(np, AB, Ci, b_upper=True)
    return out


def add_transposed(A, B, alpha, beta):
    """alpha[i] A[i] + beta[i] B[i]^T for NumPy stacks A, B (batch, k, k), a new stack;
    alpha, beta: (batch,) arrays or scalars. float32 C-contiguous stacks go through the
    AVX-512 kernel (16 x 16 register transposes: NumPy's strided read of B^T took 60 us for
    a 256 x 256 matrix); the rest through NumPy."""
    batch = A.shape[0]
    al = np.broadcast_to(np.asarray(alpha, dtype=A.dtype), (batch,))
    be = np.broadcast_to(np.asarray(beta, dtype=A.dtype), (batch,))
    cpu = _kernel() if A.dtype == np.float32 == B.dtype else None
    if cpu is None or not (A.flags.c_contiguous and B.flags.c_contiguous) or A.ndim != 3:
        return A * al[:, None, None] + np.swapaxes(B, 1, 2) * be[:, None, None]
    out = np.empty_like(A)
    cpu.add_transposed_f32(A, B, np.ascontiguousarray(al), np.ascontiguousarray(be), out)
    return out
