"""A convolution's frequency matrices (Sedghi et al., ICLR'19) and the bound on their rounding:
phase tables, the direct DFT over few taps or an rfft2, both in float64, and the slack that
the certified bound adds for them."""

from __future__ import annotations

import math

import numpy as np

from . import _dispatch
from ._threads import single_blas_thread


def few_taps(kh, kw, h, w):
    """Whether the direct DFT over the taps beats an rfft2 (up to 7x7 taps on 32x32, measured)."""
    return kh * kw <= 4 * math.log2(h * w) + 9


def phases(h, w, p, q):
    """(cos, sin) float64 arrays (h*(w//2+1), len(p)) of the angles 2 pi (u p / h + v q / w)
    at every frequency (u, v) for the integer positions or offsets (p[j], q[j]). The phase is
    reduced modulo 1 in exact integer arithmetic before the single rounding of 2 pi x, so
    every entry is accurate to a few float64 ulps."""
    u = np.arange(h)[:, None, None]
    v = np.arange(w // 2 + 1)[None, :, None]
    num = ((u * np.asarray(p)) % h) * w + ((v * np.asarray(q)) % w) * h  # / (h w), in [0, 2)
    ang = (2 * np.pi / (h * w)) * num.reshape(h * (w // 2 + 1), len(p))
    return np.cos(ang), np.sin(ang)


def phase_table(h, w, kh, kw):
    """(cos, sin) (h*(w//2+1), kh*kw): tap (p, q) (index p kw + q) at frequency (u, v) has
    phase cos - i sin."""
    return phases(h, w, np.repeat(np.arange(kh), kw), np.tile(np.arange(kw), kh))


def _dft_taps(kernel, h, w):
    """(h*(w//2+1), c_out*c_in) complex128: the 2-D DFT of the kernel's few taps as one
    complex GEMM against the phase table (a direct sum of kh*kw terms per entry: for 3x3 and
    5x5 kernels far cheaper than zero-padding every (c_out, c_in) pair to h x w for an FFT,
    and written in the frequency-major order the batch needs, no transpose afterwards)."""
    xp = _dispatch.array_module(kernel)
    c_out, c_in, kh, kw = kernel.shape
    cs, sn = phase_table(h, w, kh, kw)
    taps = kernel.reshape(c_out * c_in, kh * kw).T.astype(np.complex128)
    table = xp.asarray(cs - 1j * sn)
    if xp is not np:
        return table @ taps
    # One BLAS thread: a multithreaded call leaves its workers spinning on the cores that the
    # Gram kernel's threads need next (it ran 1.6x slower after a 2-thread GEMM). Splitting
    # a GEMM of inner dimension kh*kw over threads does not change its sums.
    with single_blas_thread():
        return table @ taps


def tap_l1_norm(k64):
    """|| sum over taps t of |kernel[:, :, t]| ||_F."""
    xp = _dispatch.array_module(k64)
    l1 = xp.abs(k64).sum(axis=(2, 3))  # (c_out, c_in)
    return float(xp.sqrt((l1 * l1).sum()))


def tap_norm_sum(k64):
    """Sum over taps t of ||kernel[:, :, t]||_F: >= every frequency matrix's ||K_f||_F (each
    is a sum of the taps times phases of modulus 1)."""
    xp = _dispatch.array_module(k64)
    return float(xp.sqrt((k64 * k64).sum(axis=(0, 1))).sum())


def slack(k64, h, w, f32):
    """Per-frequency bound on how far rounding moved the largest singular values of the
    frequency matrices: the float64 DFT errs by at most 10 (log2(hw) + 2 + kh kw) u64 times the
    taps' l1 norm per entry, a generous multiple of either route's rounding bound (direct sum
    or rfft2; phases are accurate to a few u64); rounding the result to complex64 (f32) moves
    each matrix by at most u32 ||K_f||_F, and ||K_f||_F <= sum over taps t of
    ||kernel[:, :, t]||_F (|phase| = 1)."""
    kh, kw = k64.shape[2:]
    dft = float(10 * (math.log2(h * w) + 2 + kh * kw) * 2.0**-53 * tap_l1_norm(k64))
    if not f32:
        return dft
    u = 2.0**-24
    fro = tap_norm_sum(k64)
    return (fro + dft) * (u / (1 - u)) * (1 + 1e-9) + dft * (1 + u)


def frequency_matrices(kernel, h, w):
    """(K, slack): the h*(w//2+1) frequency matrices (c_out, c_in) in the kernel's precision
    (complex64 for float32) and, per matrix, the bound of :func:`slack`. The DFT runs in
    float64, as a direct sum over the taps when they are few, else as an rfft2."""
    xp = _dispatch.array_module(kernel)
    c_out, c_in, kh, kw = kernel.shape
    k64 = kernel.astype(np.float64, copy=False)
    nf = h * (w // 2 + 1)
    if few_taps(kh, kw, h, w):
        K = _dft_taps(k64, h, w).reshape(nf, c_out, c_in)
    else:
        K = xp.fft.rfft2(k64, s=(h, w), axes=(-2, -1))
        K = xp.ascontiguousarray(K.transpose(2, 3, 0, 1).reshape(nf, c_out, c_in))
    f32 = kernel.dtype == np.float32
    per_matrix = np.full(nf, slack(k64, h, w, f32))
    return (K.astype(np.complex64) if f32 else K), per_matrix
