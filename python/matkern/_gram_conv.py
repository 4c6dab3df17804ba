"""A convolution's bound: its route (the CPU's fused kernel, _gram_conv_fused, or its
frequency matrices from _gram_dft bounded as one batch by _gram_batch) and the memory that
route needs, checked before anything is allocated."""

from __future__ import annotations

import math

import numpy as np

from . import _checks, _gram_batch, _gram_conv_fused
from ._gram_cpu import SMALL
from ._gram_dft import few_taps, frequency_matrices
from .reference.gram import unscale_bound


def fused(kernel, h, w, be):
    """Whether the CPU computes this kernel's frequency matrices inside the fused Gram kernel."""
    c_out, c_in, kh, kw = kernel.shape
    return be == "cpu" and few_taps(kh, kw, h, w) and min(c_out, c_in) <= SMALL


def prescale(kernel):
    """_gram_batch.prescale of one kernel: (K2, p, under), its rounding E bounded through
    ||conv_E|| = max_f ||E_f||_2 <= sum_t ||E_t||_F."""
    c_out, c_in, kh, kw = kernel.shape
    return _gram_batch.prescale(kernel[None], kh * kw * math.sqrt(c_out * c_in))


def bound(kernel, h, w, n_iter, be, fn):
    """Certified bound of one convolution of any scale: the kernel prescaled, the frequency
    routes run on it, the max scaled back."""
    K2, p, under = prescale(kernel)
    b = _frequency_bounds(K2[0], h, w, n_iter, be).max()
    return float(unscale_bound(np.array([b]), p, under, fn)[0])


def _frequency_bounds(kernel, h, w, n_iter, be):
    """Certified bounds of every frequency matrix of the convolution, slack included; only
    their max is as tight as n_iter on the CPU's fused route (pruned, see
    _gram_conv_fused.bounds)."""
    if fused(kernel, h, w, be):
        return _gram_conv_fused.bounds(kernel, h, w, n_iter, prune=True)
    K, slack = frequency_matrices(kernel, h, w)
    return _gram_batch.bounds(K, n_iter, be) + slack


def available_bytes():
    """Memory a call may allocate (_checks.available_memory: MemAvailable); a function of its
    own so that tests can pretend the machine is smaller."""
    return _checks.available_memory()


def needed_bytes(kernel, h, w, be):
    """Upper estimate of the host bytes the largest step of a convolution bound allocates at
    once (the arrays alive together), by route; nf = h (w//2+1) frequencies, T = kh kw taps,
    P = c_out c_in. Fused CPU route: the phase tables cs, sn and their kept copies (4 nf T
    doubles; _gram_dft.phases peaks at the same), the first-from-taps phases (~3 nf nd doubles
    over nd offsets) and ~16 per-frequency vectors. Stored-matrix routes: phase table, its
    complex copy and a temporary (6 nf T doubles), or the rfft2's zero-padded input and
    outputs (P h w + 4 P nf doubles); then the complex128 frequency matrices, their complex64
    rounding (float32) and a prescaled copy (5 nf P doubles), and per-frequency vectors.
    Every route also holds a few copies of the taps (float64, padded; 5 P T doubles) and
    per-thread C++ buffers (c x max(c_out, c_in) values, below the rest)."""
    c_out, c_in, kh, kw = kernel.shape
    nf, T, P = h * (w // 2 + 1), kh * kw, c_out * c_in
    if fused(kernel, h, w, be):
        offsets = (2 * kh - 1) * (2 * kw - 1)
        nd = offsets // 2 if offsets <= _gram_conv_fused.FIRST_OFFSETS else 0
        return 8 * nf * (4 * T + 3 * nd + 16) + 40 * P * T
    if few_taps(kh, kw, h, w):
        dft = 8 * nf * (6 * T + 2 * P)
    else:
        dft = 8 * (P * h * w + 4 * P * nf)
    return dft + 8 * nf * (5 * P + 8) + 40 * P * T


def check_memory(kernel, h, w, be, name, fn, held=0):
    """ValueError naming ``name`` when the bound of this convolution, with ``held`` bytes
    already held for other layers of the call, would allocate more than the memory available
    now (available_bytes), before anything is allocated. Returns its estimate."""
    need, have = needed_bytes(kernel, h, w, be), available_bytes()
    if need + held > have:
        also = f" (with {held / 2**30:.3g} GiB for the layers before it)" if held else ""
        raise ValueError(
            f"{fn}(): {name} = {(h, w)} needs about {need / 2**30:.3g} GiB for a "
            f"{'x'.join(map(str, kernel.shape))} kernel (phase tables and "
            f"frequency matrices){also}, more than the {have / 2**30:.3g} GiB "
            f"of memory available"
        )
    return need
