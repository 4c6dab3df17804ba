"""The CPU's chunked float32 SYRK route for one large float32 matrix (gram_syrk_step)."""

from __future__ import annotations

import math

import numpy as np

from . import _dispatch
from ._gram_blas import normalize
from .reference.gram import MARGIN, certify_chain


def bound_syrk32(W, n_iter):
    """Certified bound for one large float32 matrix W (m, n), n_iter >= 1, every product in
    float32 by the C++ chunked SYRK (gram_syrk_step): its known summation order (chunks of
    128 products, each added once) bounds the rounding by gamma_{128 + k/128} instead of
    gamma_k, 14x less at k = 2048, so the float32 products certify as tightly as the 64-bit
    ones that BLAS needed (2048^2 Gaussian: gap +1.16% against +0.94% with three 64-bit BLAS
    steps), and no step runs in 64-bit. The step also scales its output by 2^-e (e twice the
    exponent of the input's norm), mirrors it and returns its norms, so nothing else touches
    the matrix between products; W is read in place (no scaled copy).

    W comes prescaled (_gram_batch): its largest |entry| is in [2^-33, 2^32), so its norm
    F0 is in [2^-33, 2^32 sqrt(m n)) and the first product's entries (at most F0^2) stay
    finite in float32 for any matrix that fits in memory; later products are scaled."""
    m, n = W.shape
    c, k0 = min(m, n), max(m, n)
    _, F0, _, _ = normalize(W if W.flags.writeable else W.copy(), False, False)
    if F0 == 0.0:
        return 0.0
    tiny = 2.0**-149
    cpu = _dispatch.cpu()
    # B = W (c x k), or W^T read through strides when W is tall; a square W is taken as it is
    # (W W^T and W^T W have the same spectrum) since its rows pack faster than its columns.
    H, trans = W, m > n
    es, fs, ks, gks = [0], [F0 * math.sqrt(MARGIN)], [], []
    # Each G is written packed (as the next step's B panels, gram.hpp) and read so by the next
    # step: no packing there, and no scattered mirror writes here. Zeroed once: the rows past c
    # of the last panel are never written.
    bufs = [np.zeros((-(-c // 16), c, 16), dtype=np.float32) for _ in range(min(n_iter, 2))]
    for t in range(n_iter):
        e = min(120, max(-120, 2 * math.frexp(fs[t])[1]))
        G = bufs[t % 2]  # the product reads the other one
        glen, ss, r = cpu.gram_syrk_step(H, trans, np.float32(2.0**-e), G)
        ks.append(H.shape[0] if trans else H.shape[1])
        gks.append(glen)
        if t + 1 == n_iter:
            # ||G_T||_F of the unscaled product: the stored scaled one, its underflow, 2^e.
            F = math.ldexp(math.sqrt(ss) + c * tiny, e)
            break
        es.append(e)
        fs.append(min(math.sqrt(ss), r) * math.sqrt(MARGIN))
        H, trans = G, False
    return float(certify_chain([es], [fs], [F], ks, c, k0, W.dtype, gks=gks)[0])
