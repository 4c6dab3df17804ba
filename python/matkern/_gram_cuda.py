"""The CUDA route for a batch of matrices (within the prescaling window, see _gram_batch):
cuBLAS products through CuPy (batched) and a CUDA kernel (gram_normalize) for the
per-matrix norms and rescaling of the whole batch."""

from __future__ import annotations

import math
import os

import numpy as np

from . import _dispatch
from ._gram_blas import WIDE
from .reference.gram import MARGIN, certify_chain

SMALL_32 = 64  # above it, 32-bit input runs in 64-bit


def bounds(A, n_iter):
    """float64 NumPy array (batch,) of certified bounds for the CuPy array A (batch, m, n)."""
    cp = _dispatch.cupy_module()
    if os.environ.get("CUPY_TF32", "0") not in ("", "0") and A.dtype in (np.float32, np.complex64):
        # TF32 products have a 10-bit mantissa: the float32 rounding margin would not hold.
        raise RuntimeError(
            "spectral_norm_bound(): CUPY_TF32 is set, so cuBLAS would multiply "
            "float32 in TF32 and the bound would not be certified; unset it"
        )
    cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
    batch, m, n = A.shape
    c, k0 = min(m, n), max(m, n)
    if c > SMALL_32 and A.dtype in WIDE:
        # Tight float32 certificates need 64-bit products for the first steps (as the CPU's
        # BLAS route, _gram_blas.WIDE_STEPS); on the GPUs this targets FP64 GEMM runs at
        # about FP32 speed: run all in 64-bit.
        A = A.astype(WIDE[A.dtype])
    cplx = A.dtype.kind == "c"

    def normalize(G, scale):
        rows, cols = G.shape[1:]
        e = cp.zeros(batch, cp.int32)
        F = cp.zeros(batch, cp.float64)
        f = cp.zeros(batch, cp.float64)
        real = G.view(G.real.dtype) if cplx else G
        cuda.gram_normalize(
            real.reshape(-1), batch, rows * cols * (2 if cplx else 1), scale, e, F, f, stream
        )
        return e, F, f

    H = A.copy()
    e0, F0, f0 = normalize(H, True)
    es, fs, ks = [e0], [f0], []
    F = f0
    B = H if m < n else H.swapaxes(-1, -2)
    for t in range(n_iter):
        Bh = B.conj().swapaxes(-1, -2) if cplx else B.swapaxes(-1, -2)
        G = cp.ascontiguousarray(cp.matmul(B, Bh))
        ks.append(B.shape[-1])
        last = t + 1 == n_iter
        e, F, f = normalize(G, not last)
        if last:
            break
        es.append(e)
        fs.append(f)
        B = G
    T = len(ks) or 1
    E = cp.stack(es[:T], axis=1).get()
    Fn = cp.stack(fs[:T], axis=1).get() * math.sqrt(MARGIN)
    out = certify_chain(E, Fn, F.get(), ks, c, k0, A.dtype)
    return np.where(F0.get() == 0, 0.0, out)
