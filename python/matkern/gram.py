"""Certified spectral-norm bounds by Gram iteration, for matrices and convolution layers.

``spectral_norm_bound(W)`` and ``conv_spectral_norm_bound(kernel, input_size)`` return true
upper bounds on the largest singular value, in float32 too: the products run in the input's
precision (or wider), every rescaling is by an exact power of two, and the rounding of every
product is added back by a proven margin (see :mod:`matkern.reference.gram`).
``spectral_norm_bounds`` bounds a list of layers of mixed shapes in one call, each shape
group (or convolution) as one batch.

This module checks the arguments, picks the backend and calls one function of a private
route module:

- ``_gram_batch``: a batch of matrices at any scale (exact power-of-two prescaling, then
  the reference, CPU or CUDA route, then the bound scaled back);
- ``_gram_cpu``: matrices whose smaller side is <= 512 run a fused C++ kernel (the whole
  iteration of one matrix in cache, half the products' work by symmetry, threads over the
  batch, AVX2 when present; products summed in chunks of 128, which keeps float32 margins
  small); larger float32 matrices run a C++ SYRK whose chunked sums do the same
  (``_gram_syrk``); larger 64-bit and complex64 ones run BLAS syrk/herk (half a GEMM) with a
  C++ pass that mirrors, measures and rescales between products, complex64 with its first
  products in 64-bit (``_gram_blas``);
- ``_gram_cuda``: cuBLAS products through CuPy (batched) and a CUDA kernel for the
  per-matrix norms and rescaling of the whole batch (sides > 64 of 32-bit input in 64-bit);
- ``_gram_conv``: a convolution's route and memory estimate; its frequency matrices and
  their rounding slack come from ``_gram_dft``; on the CPU, kernels of few taps compute each
  frequency matrix inside the fused kernel and stop frequencies that cannot hold the max
  early, and with at most 25 tap offsets (3 x 3) the first Gram product of every frequency
  comes from the taps instead, in double, and no frequency matrix is formed
  (``_gram_conv_fused``);
- ``_gram_layers``: the batches of ``spectral_norm_bounds``.

Scale. Every route is certified at every scale of its input, from the smallest subnormal to
near overflow: a matrix or kernel whose largest |entry| is outside [2^-32, 2^32] is first
multiplied by an exact power of two (``_gram_batch.prescale``), its bound multiplied back,
and the scaling's underflow added. A bound above the largest float64 raises OverflowError
(never inf). Convolutions whose phase tables and frequency matrices would not fit in the
memory available (MemAvailable) are refused with a ValueError before anything is allocated
(``_gram_conv.check_memory``).
"""

from __future__ import annotations

import numpy as np

from . import _checks, _dispatch, _gram_batch, _gram_conv, _gram_layers
from ._interop import arrays

__all__ = ["spectral_norm_bound", "conv_spectral_norm_bound", "spectral_norm_bounds"]

_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
MAX_ITER = 30


def _check_iter(n_iter, fn):
    return _checks.check_int(n_iter, "n_iter", fn, min_value=0, max_value=MAX_ITER)


def _check_matrix_stack(W, name, fn):
    _checks.check_array(W, name, fn, dtypes=_DTYPES, min_ndim=2, finite=True)
    _checks.check_index_range(W.shape[-1] * W.shape[-2], f"{name}.shape[-2] * {name}.shape[-1]", fn)
    return W


def _check_input_size(input_size, kernel, fn):
    if not isinstance(input_size, (tuple, list)) or len(input_size) != 2:
        raise TypeError(f"{fn}(): input_size must be a pair (h, w), got {input_size!r}")
    h = _checks.check_int(input_size[0], "input_size[0]", fn, min_value=1)
    w = _checks.check_int(input_size[1], "input_size[1]", fn, min_value=1)
    kh, kw = kernel.shape[2:]
    if kh > h or kw > w:
        raise ValueError(
            f"{fn}(): the kernel's spatial size ({kh}, {kw}) must not exceed "
            f"input_size, got {(h, w)}"
        )
    _checks.check_index_range(
        h * (w // 2 + 1) * kernel.shape[0] * kernel.shape[1],
        "number of frequency-matrix entries",
        fn,
    )
    return h, w


def _check_layer_list(layers, input_sizes, fn):
    """input_sizes as a list with one entry per layer (None: all None)."""
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise TypeError(
            f"{fn}(): layers must be a non-empty list or tuple of arrays, got "
            f"{type(layers).__name__}"
        )
    if input_sizes is None:
        input_sizes = [None] * len(layers)
    if not isinstance(input_sizes, (list, tuple)) or len(input_sizes) != len(layers):
        raise ValueError(
            f"{fn}(): input_sizes must be a list with one entry per layer "
            f"({len(layers)}), got {input_sizes!r}"
        )
    return input_sizes


def _check_layers(layers, input_sizes, fn):
    """{i: (h, w)} for the convolution layers; every layer checked."""
    convs = {}
    for i, (layer, size) in enumerate(zip(layers, input_sizes)):
        name = f"layers[{i}]"
        if getattr(layer, "ndim", None) == 4:
            _checks.check_array(
                layer, name, fn, dtypes=(np.float32, np.float64), ndim=4, finite=True
            )
            if size is None:
                raise ValueError(f"{fn}(): input_sizes[{i}] is required for the 4-D {name}")
            convs[i] = _check_input_size(size, layer, fn)
        else:
            _checks.check_array(layer, name, fn, dtypes=_DTYPES, ndim=2, finite=True)
    return convs


@arrays("W")
def spectral_norm_bound(W, n_iter=6, *, backend=None):
    """Certified upper bound on the largest singular value of W, by Gram iteration.

    ``n_iter`` Gram products G <- G G^* (on the smaller side of W), each rescaled by an exact
    power of two; the bound is ||G_T||_F^(1/2^T) times the scales, plus a proven margin for
    the rounding of every product (so it holds in float32 too). The relative gap to the exact
    norm is at most rank^(1/2^(T+1)) - 1 and usually far smaller: about 1e-3 to 1e-2 for dense
    random matrices at T = 6, and 0 up to rounding once the top singular value is separated.

    Parameters
    ----------
    W : numpy.ndarray or cupy.ndarray, (m, n) or a stack (..., m, n)
        float32, float64, complex64 or complex128, C-contiguous, finite (NaN/Inf rejected).
    n_iter : int in [0, 30]
        Number of Gram products (0 gives the Frobenius norm).
    backend : {"reference", "cpu", "cuda"}, optional

    Returns
    -------
    float for a single matrix; for a stack a float64 array of shape W.shape[:-2] (NumPy or
    CuPy like W). float64 holds the bound without rounding it down. Certified at every scale
    of W, subnormal to near overflow (W is first multiplied by an exact power of two); 0.0
    for W = 0. Raises OverflowError when a bound exceeds the largest float64 (W's norm within
    about 1e-12 of 1.8e308 or above): an infinite bound would be true but useless, so no
    backend returns inf.

    Example
    -------
    >>> import numpy as np, matkern
    >>> W = np.diag([3.0, 1.0]).astype(np.float32)
    >>> b = matkern.spectral_norm_bound(W)
    >>> 3.0 <= b < 3.0001
    True
    """
    fn = "spectral_norm_bound"
    _check_matrix_stack(W, "W", fn)
    n_iter = _check_iter(n_iter, fn)
    be = _dispatch.pick(fn, W, backend=backend)
    m, n = W.shape[-2:]
    out = _gram_batch.bounds(W.reshape(-1, m, n), n_iter, be)
    if W.ndim == 2:
        return float(out[0])
    return _dispatch.like(out.reshape(W.shape[:-2]), W)


@arrays("kernel")
def conv_spectral_norm_bound(kernel, input_size, n_iter=6, *, backend=None):
    """Certified upper bound on the spectral norm of a 2-D convolution with circular padding.

    The 2-D DFT block-diagonalizes the convolution into h*(w//2+1) complex matrices
    c_out x c_in (Sedghi et al., ICLR'19; the remaining frequencies are conjugates); the Gram
    iteration runs on all of them as one batch and the bound is their maximum. The frequency
    matrices are computed in float64 (a direct sum over the taps for kernels of few taps, else
    an rfft2) and rounded to the kernel's precision (float32 -> complex64); a proven bound on
    both roundings is added to the result, so it is certified end to end. On the CPU, kernels
    of few taps (up to 7x7 on 32x32) and sides up to 512 have each frequency matrix summed
    inside the Gram kernel (never stored), and a frequency stops early once its bound is below
    a rigorous lower bound on the max (from the 8 frequencies of largest Frobenius norm, run
    first): it cannot hold the max.

    Parameters
    ----------
    kernel : numpy.ndarray or cupy.ndarray (c_out, c_in, kh, kw), float32 or float64, finite
    input_size : (h, w) with h >= kh, w >= kw
    n_iter : int in [0, 30]
    backend : {"reference", "cpu", "cuda"}, optional

    Returns
    -------
    float: certified at every kernel scale (subnormal to near overflow: the kernel is first
    multiplied by an exact power of two); 0.0 for a zero kernel. Raises OverflowError when
    the bound exceeds the largest float64, and ValueError naming input_size, before
    allocating, when the call would need more memory than the machine has available now
    (MemAvailable; the phase tables and frequency matrices grow as h * w).

    Example
    -------
    >>> K = np.random.default_rng(0).standard_normal((8, 4, 3, 3))
    >>> b = matkern.conv_spectral_norm_bound(K, (16, 16))
    >>> b >= matkern.reference.conv_spectral_norm(K, (16, 16))
    True
    """
    fn = "conv_spectral_norm_bound"
    _checks.check_array(kernel, "kernel", fn, dtypes=(np.float32, np.float64), ndim=4, finite=True)
    h, w = _check_input_size(input_size, kernel, fn)
    n_iter = _check_iter(n_iter, fn)
    be = _dispatch.pick(fn, kernel, backend=backend)
    _gram_conv.check_memory(kernel, h, w, be, "input_size", fn)
    return _gram_conv.bound(kernel, h, w, n_iter, be, fn)


@arrays("layers")
def spectral_norm_bounds(layers, input_sizes=None, n_iter=6, *, backend=None):
    """Certified bounds for many layers of mixed shapes in one call.

    Each entry of ``layers`` is a dense matrix (m, n) or a convolution kernel
    (c_out, c_in, kh, kw) (then ``input_sizes[i]`` gives its (h, w)). Matrices of the same
    shape and dtype, and convolutions' frequency matrices, are bounded as one batch each.

    Parameters
    ----------
    layers : sequence of arrays (all NumPy or all CuPy), float32/float64 (dense: complex too)
    input_sizes : sequence of (h, w) or None per layer (required for 4-D entries)
    n_iter : int
    backend : optional

    Returns
    -------
    numpy.ndarray float64 of shape (len(layers),). Every layer is prescaled on its own (any
    scale is certified); OverflowError and the memory ValueError (naming input_sizes[i]) as
    in conv_spectral_norm_bound.

    Example
    -------
    >>> Ws = [np.diag([2.0, 1.0]), np.ones((2, 5)), np.zeros((4, 4, 3, 3))]
    >>> b = matkern.spectral_norm_bounds(Ws, [None, None, (8, 8)])
    >>> b.shape, bool(2.0 <= b[0] < 2.0001), bool(10**0.5 <= b[1] < 3.1623), float(b[2])
    ((3,), True, True, 0.0)
    """
    fn = "spectral_norm_bounds"
    input_sizes = _check_layer_list(layers, input_sizes, fn)
    n_iter = _check_iter(n_iter, fn)
    convs = _check_layers(layers, input_sizes, fn)
    be = _dispatch.pick(fn, *layers, backend=backend)
    _gram_layers.check_memory(layers, convs, be, fn)
    return _gram_layers.bounds(layers, convs, n_iter, be, fn)
