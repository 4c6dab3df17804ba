"""Certified spectral-norm bounds by Gram iteration, for matrices and convolution layers.

``spectral_norm_bound(W)`` and ``conv_spectral_norm_bound(kernel, input_size)`` return true
upper bounds on the largest singular value, in float32 too: the products run in the input's
precision (or wider), every rescaling is by an exact power of two, and the rounding of every
product is added back by a proven margin (see :mod:`matkern.reference.gram`).
``spectral_norm_bounds`` bounds a list of layers of mixed shapes in one call, each shape
group (or convolution) as one batch.

Backends. CPU: matrices whose smaller side is <= 512 run a fused C++ kernel (the whole
iteration of one matrix in cache, half the products' work by symmetry, threads over the
batch, AVX2 when present; products summed in chunks of 128, which keeps float32 margins
small). Larger float32 matrices run a C++ SYRK whose chunked sums do the same (see
_bound_syrk32); larger 64-bit and complex64 ones run BLAS syrk/herk
(half a GEMM) with a C++ pass that mirrors, measures and rescales between products, complex64
with its first products in 64-bit. Convolutions of few
taps compute each frequency matrix inside the fused kernel and stop frequencies that cannot
hold the max early (see _conv_bounds_fused); with at most 25 tap offsets (3 x 3) the first
Gram product of every frequency comes from the taps instead, in double, and no frequency
matrix is formed (see _first_from_taps). GPU: cuBLAS products
through CuPy (batched) and a CUDA kernel for the per-matrix norms and rescaling of the whole
batch (sides > 64 of 32-bit input in 64-bit).

Scale. Every route is certified at every scale of its input, from the smallest subnormal to
near overflow: a matrix or kernel whose largest |entry| is outside [2^-32, 2^32] is first
multiplied by an exact power of two (see _WINDOW), its bound multiplied back, and the
scaling's underflow added. A bound above the largest float64 raises OverflowError (never
inf). Convolutions whose phase tables and frequency matrices would not fit in the memory
available (MemAvailable) are refused with a ValueError before anything is allocated
(_check_conv_memory).
"""

from __future__ import annotations

import math
import os

import numpy as np

from . import _checks as C
from . import _dispatch as D
from ._threads import single_blas_thread
from .reference import gram as ref

__all__ = ["spectral_norm_bound", "conv_spectral_norm_bound", "spectral_norm_bounds"]

_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
_SMALL = 512  # smaller side up to which the fused CPU kernel beat BLAS calls (measured here)
_SMALL_32 = 64  # GPU: above it, 32-bit input runs in 64-bit
# Products run on every matrix before those that cannot hold the batch's max drop out (off
# by default: for random kernels nearly all frequencies are within 10% of the max, and the
# pruning pass then only adds work).
_PRUNE_ITER = 3
MAX_ITER = 30


# Exact power-of-two prescaling. The kernels take the scale of their input for granted: the
# fused and BLAS-pass C++ kernels scale by 2^-p, p the exponent of the largest |entry|, which
# is inf for a subnormal one (NaN bounds); the convolution routes form the taps' Gram matrix,
# ||K_f||_F^2 and the first product from the taps unscaled, which underflow below ~1e-81
# (float64) and overflow float32 from ~1e27, so bounds came out below the norm, 0, inf or
# NaN. Every input (each matrix of a batch, each kernel) whose largest |entry| lies outside
# [2^-_WINDOW, 2^_WINDOW] is therefore first multiplied by 2^-p, which brings it into
# [1/2, 1), and its bound by 2^p at the end (ref.unscale_bound): exact, except that scaling
# down rounds the entries that fall below the dtype's normal range (each by at most half its
# smallest subnormal), a matrix E with ||E||_2 <= ||E||_F <= sqrt(m n) tiny that is added to
# the bound (a convolution's: kh kw sqrt(c_out c_in) tiny, since ||E_f||_F <= sum of the
# taps' ||E_t||_F). Inputs inside the window run as they are (no copy); the tests check every
# route at its edges. A bound above the largest float64 raises OverflowError.
_WINDOW = 32


def _prescale(A, per_tiny):
    """(A2, p, under) for a stack A (batch, ...) of real or complex entries: p (int64, batch)
    the exponents that A2[b] = A[b] * 2^-p[b] was scaled by (0 inside the window; A2 is A when
    no matrix needs scaling), under (float64, batch) the bound on the scaling's rounding in
    A2's units (per_tiny times the dtype's smallest subnormal where p > 0, else 0)."""
    xp = D.array_module(A)
    batch = A.shape[0]
    r = A.view(A.real.dtype) if A.dtype.kind == "c" else A
    r = r.reshape(batch, -1)
    if r.shape[1] == 0:
        return A, np.zeros(batch, np.int64), np.zeros(batch)
    if xp is np and D._cpu is not None:  # one pass, no temporaries (see gram_max_abs_batch)
        mx = np.empty(batch)
        D.cpu().gram_max_abs_batch(np.ascontiguousarray(r).reshape(-1), batch, mx)
    else:
        mx = D.to_host(xp.maximum(r.max(axis=1), -r.min(axis=1))).astype(np.float64)
    p = np.where(mx > 0, np.frexp(mx)[1], 0).astype(np.int64)
    p = np.where(np.abs(p) > _WINDOW, p, 0)
    if not p.any():
        return A, p, np.zeros(batch)
    tiny = float(np.finfo(A.real.dtype).smallest_subnormal)
    under = np.where(p > 0, per_tiny * tiny * (1 + 1e-12), 0.0)
    r2 = xp.ldexp(xp.ascontiguousarray(r), xp.asarray(-p[:, None].astype(np.int32)))
    return r2.view(A.dtype).reshape(A.shape), p, under


def _bounds(A, n_iter, be, prune=False, fn="spectral_norm_bound"):
    """float64 NumPy array (batch,) of certified bounds for A (batch, m, n), C-contiguous, of
    any scale (prescaled per matrix, see _WINDOW)."""
    m, n = A.shape[1:]
    A2, p, under = _prescale(A, math.sqrt(m * n))
    return ref.unscale_bound(_bounds_scaled(A2, n_iter, be, prune), p, under, fn)


def _bounds_scaled(A, n_iter, be, prune=False):
    """_bounds of an A whose every matrix has its largest |entry| within the window."""
    batch, m, n = A.shape
    if be == "reference":
        return np.array([ref.gram_bound(D.to_host(a), n_iter) for a in A], dtype=np.float64)
    if be == "cuda":
        return _bounds_cuda(A, n_iter)
    cplx = A.dtype.kind == "c"
    if min(m, n) <= _SMALL:
        # 32-bit input stays 32-bit: the kernel sums its products in chunks of 128, which
        # keeps the float32 margin within 0.06% of the 64-bit one up to side 512 (it used to
        # run sides > 64 in 64-bit: 1.4-2x slower real, 2-2.8x complex).
        real = A.view(A.real.dtype) if cplx else A
        out = np.empty(batch, dtype=np.float64)
        D.cpu().gram_bound_batch(real.reshape(-1), batch, m, n, cplx, n_iter,
                                 _PRUNE_ITER if prune else 0, out)
        return out
    if A.dtype == np.float32 and n_iter > 0:
        return np.array([_bound_syrk32(a, n_iter) for a in A], dtype=np.float64)
    return np.array([_bound_blas(a, n_iter) for a in A], dtype=np.float64)


def _bound_syrk32(W, n_iter):
    """One large float32 matrix on the CPU, every product in float32 by the C++ chunked SYRK
    (gram_syrk_step): its known summation order (chunks of 128 products, each added once)
    bounds the rounding by gamma_{128 + k/128} instead of gamma_k, 14x less at k = 2048, so the
    float32 products certify as tightly as the 64-bit ones that BLAS needed (2048^2 Gaussian:
    gap +1.16% against +0.94% with three 64-bit BLAS steps), and no step runs in 64-bit. The
    step also scales its output by 2^-e (e twice the exponent of the input's norm), mirrors it
    and returns its norms, so nothing else touches the matrix between products; W is read in
    place (no scaled copy) when its norm keeps every product finite."""
    m, n = W.shape
    c, k0 = min(m, n), max(m, n)
    _, F0, _, _ = _normalize_cpu(W if W.flags.writeable else W.copy(), False, False)
    if F0 == 0.0:
        return 0.0
    if not 2.0**-60 < F0 < 2.0**60:  # products could overflow float32: scale a copy first
        return _bound_blas(W, n_iter)
    tiny = 2.0**-149
    cpu = D.cpu()
    # B = W (c x k), or W^T read through strides when W is tall; a square W is taken as it is
    # (W W^T and W^T W have the same spectrum) since its rows pack faster than its columns.
    H, trans = W, m > n
    es, fs, ks, gks = [0], [F0 * math.sqrt(ref.MARGIN)], [], []
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
        fs.append(min(math.sqrt(ss), r) * math.sqrt(ref.MARGIN))
        H, trans = G, False
    return float(ref.certify_chain([es], [fs], [F], ks, c, k0, W.dtype, gks=gks)[0])


def _normalize_cpu(G, mirror, scale):
    """(e, F, f, r) of the C++ pass on one 2-D C-contiguous array G (modified in place); r
    bounds || |G| ||_2 after scaling when mirroring (the largest row sum of |entries|), else
    is inf."""
    rows, cols = G.shape
    cplx = G.dtype.kind == "c"
    e = np.zeros(1, np.int32)
    F = np.zeros(1)
    f = np.zeros(1)
    r = np.zeros(1)
    real = G.view(G.real.dtype) if cplx else G
    D.cpu().gram_normalize(real.reshape(-1), 1, rows, cols, cplx, mirror, scale, e, F, f, r)
    return int(e[0]), float(F[0]), float(f[0]), float(r[0])


_WIDE = {np.dtype(np.float32): np.dtype(np.float64),
         np.dtype(np.complex64): np.dtype(np.complex128)}
# complex64 inputs on the BLAS path (and float32 ones of extreme scale, see _bound_syrk32) run
# their first products in 64-bit: while the spectrum is
# still flat, ||G_t||_F^2 / sigma_1(G_t)^2 is large (~n/5 for a square Gaussian matrix) and so
# would be the float32 rounding margin (5% on a 2048 x 2048 matrix, against 0.9% for the
# iteration itself); from the fourth product on it is small and float32 products are certified
# tightly. Costs 1.5x the all-float32 time.
_WIDE_STEPS = 3


def _bound_blas(W, n_iter):
    """One large matrix on the CPU: syrk/herk products (half a GEMM each)."""
    from scipy.linalg import blas

    m, n = W.shape
    c, k0 = min(m, n), max(m, n)
    cplx = W.dtype.kind == "c"
    rks = {np.dtype(np.float32): blas.ssyrk, np.dtype(np.float64): blas.dsyrk,
           np.dtype(np.complex64): blas.cherk, np.dtype(np.complex128): blas.zherk}
    H = W.copy()
    e0, F0, f0, r0 = _normalize_cpu(H, False, True)
    if F0 == 0.0:
        return 0.0
    # fs[t] bounds || |H_t| ||_2, which bounds the product's rounding error (gamma fs[t]^2,
    # spectral norm): the Frobenius norm, or for the symmetric H_t (t >= 1) the largest row
    # sum of |entries| when smaller (it is, by far, once the spectrum has a few large values).
    es, fs, ks, sdt, conv, rs = [e0], [f0 * math.sqrt(ref.MARGIN)], [], [], [0.0], [r0]
    F = fs[0]
    wide = _WIDE.get(W.dtype)
    n_wide = _WIDE_STEPS if wide is not None else 0
    # G = B B^* with B the c x k smaller-side view; Fortran-ordered outputs, upper triangle
    # filled = the lower triangle of their C-ordered transpose, which the C++ pass mirrors.
    rows_are_c = m < n
    for t in range(n_iter):
        if t < n_wide and H.dtype != wide:
            H = H.astype(wide)  # exact
        elif t >= n_wide and H.dtype != W.dtype:
            # Round H_t to the input's precision: |H_t - H'_t| <= u |H_t| entrywise, so
            # ||H_t - H'_t||_2 <= u fs[t]; and every row sum of |H'_t| <= (1 + u) rs[t].
            u = 2.0**-24
            conv[t] += u / (1 - u) * fs[t] * ref.MARGIN + math.sqrt(c * c) * 2.0**-149
            H = np.ascontiguousarray(H.astype(W.dtype))
            fs[t] = min(_normalize_cpu(H, False, False)[2], rs[t] * (1 + 2 * u)) * math.sqrt(
                ref.MARGIN)
        rk = rks[H.dtype]
        sdt.append(H.dtype)
        if rows_are_c:  # B = H (c x k): a = H.T (F-contiguous), a^T a = H H^T
            G = rk(1.0, H.T, trans=2 if cplx else 1)
        else:  # B = H^T: a = H.T, a a^T = H^T H
            G = rk(1.0, H.T, trans=0)
        ks.append(H.shape[1] if rows_are_c else H.shape[0])
        H = G.T  # C-contiguous view
        last = t + 1 == n_iter
        e, F, f, r = _normalize_cpu(H, True, not last)
        if last:
            break
        es.append(e)
        fs.append(min(f, r) * math.sqrt(ref.MARGIN))
        rs.append(r)
        conv.append(0.0)
        rows_are_c = True
    T = len(ks) or 1
    return float(ref.certify_chain([es[:T]], [fs[:T]], [F], ks, c, k0, W.dtype,
                                   step_dtypes=sdt or None, conv=conv[:T])[0])


def _bounds_cuda(A, n_iter):
    cp = D.cupy_module()
    if os.environ.get("CUPY_TF32", "0") not in ("", "0") and A.dtype in (np.float32,
                                                                          np.complex64):
        # TF32 products have a 10-bit mantissa: the float32 rounding margin would not hold.
        raise RuntimeError("spectral_norm_bound(): CUPY_TF32 is set, so cuBLAS would multiply "
                           "float32 in TF32 and the bound would not be certified; unset it")
    cuda, stream = D.cuda(), D.stream_ptr()
    batch, m, n = A.shape
    c, k0 = min(m, n), max(m, n)
    if c > _SMALL_32 and A.dtype in _WIDE:
        # Tight float32 certificates need 64-bit products for the first steps (_WIDE_STEPS);
        # on the GPUs this targets FP64 GEMM runs at about FP32 speed: run all in 64-bit.
        A = A.astype(_WIDE[A.dtype])
    cplx = A.dtype.kind == "c"

    def normalize(G, scale):
        rows, cols = G.shape[1:]
        e = cp.zeros(batch, cp.int32)
        F = cp.zeros(batch, cp.float64)
        f = cp.zeros(batch, cp.float64)
        real = G.view(G.real.dtype) if cplx else G
        cuda.gram_normalize(real.reshape(-1), batch, rows * cols * (2 if cplx else 1), scale,
                            e, F, f, stream)
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
    Fn = cp.stack(fs[:T], axis=1).get() * math.sqrt(ref.MARGIN)
    out = ref.certify_chain(E, Fn, F.get(), ks, c, k0, A.dtype)
    return np.where(F0.get() == 0, 0.0, out)


def _check_iter(n_iter, fn):
    return C.check_int(n_iter, "n_iter", fn, min_value=0, max_value=MAX_ITER)


def _check_matrix_stack(W, name, fn):
    C.check_array(W, name, fn, dtypes=_DTYPES, min_ndim=2, finite=True)
    C.check_index_range(W.shape[-1] * W.shape[-2], f"{name}.shape[-2] * {name}.shape[-1]", fn)
    return W


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
    be = D.pick(fn, W, backend=backend)
    m, n = W.shape[-2:]
    out = _bounds(W.reshape(-1, m, n), n_iter, be)
    if W.ndim == 2:
        return float(out[0])
    return D.like(out.reshape(W.shape[:-2]), W)


def _check_input_size(input_size, kernel, fn):
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2):
        raise TypeError(f"{fn}(): input_size must be a pair (h, w), got {input_size!r}")
    h = C.check_int(input_size[0], "input_size[0]", fn, min_value=1)
    w = C.check_int(input_size[1], "input_size[1]", fn, min_value=1)
    kh, kw = kernel.shape[2:]
    if kh > h or kw > w:
        raise ValueError(f"{fn}(): the kernel's spatial size ({kh}, {kw}) must not exceed "
                         f"input_size, got {(h, w)}")
    C.check_index_range(h * (w // 2 + 1) * kernel.shape[0] * kernel.shape[1],
                        "number of frequency-matrix entries", fn)
    return h, w


def _available_bytes():
    """Memory a call may allocate (_checks.available_memory: MemAvailable); a function of its
    own so that tests can pretend the machine is smaller."""
    return C.available_memory()


def _conv_bytes(kernel, h, w, be):
    """Upper estimate of the host bytes the largest step of a convolution bound allocates at
    once (the arrays alive together), by route; nf = h (w//2+1) frequencies, T = kh kw taps,
    P = c_out c_in. Fused CPU route: the phase tables cs, sn and their kept copies (4 nf T
    doubles; _phases peaks at the same), the first-from-taps phases (~3 nf nd doubles over
    nd offsets) and ~16 per-frequency vectors. Stored-matrix routes: phase table, its complex
    copy and a temporary (6 nf T doubles), or the rfft2's zero-padded input and outputs
    (P h w + 4 P nf doubles); then the complex128 frequency matrices, their complex64
    rounding (float32) and a prescaled copy (5 nf P doubles), and per-frequency vectors.
    Every route also holds a few copies of the taps (float64, padded; 5 P T doubles) and
    per-thread C++ buffers (c x max(c_out, c_in) values, below the rest)."""
    c_out, c_in, kh, kw = kernel.shape
    nf, T, P = h * (w // 2 + 1), kh * kw, c_out * c_in
    if _conv_fused(kernel, h, w, be):
        offsets = (2 * kh - 1) * (2 * kw - 1)
        nd = offsets // 2 if offsets <= _FIRST_OFFSETS else 0
        return 8 * nf * (4 * T + 3 * nd + 16) + 40 * P * T
    if _few_taps(kh, kw, h, w):
        dft = 8 * nf * (6 * T + 2 * P)
    else:
        dft = 8 * (P * h * w + 4 * P * nf)
    return dft + 8 * nf * (5 * P + 8) + 40 * P * T


def _check_conv_memory(kernel, h, w, be, name, fn, held=0):
    """ValueError naming ``name`` when the bound of this convolution, with ``held`` bytes
    already held for other layers of the call, would allocate more than the memory available
    now (_available_bytes), before anything is allocated. Returns its estimate."""
    need, have = _conv_bytes(kernel, h, w, be), _available_bytes()
    if have is not None and need + held > have:
        also = f" (with {held / 2**30:.3g} GiB for the layers before it)" if held else ""
        raise ValueError(f"{fn}(): {name} = {(h, w)} needs about {need / 2**30:.3g} GiB for a "
                         f"{'x'.join(map(str, kernel.shape))} kernel (phase tables and "
                         f"frequency matrices){also}, more than the {have / 2**30:.3g} GiB "
                         f"of memory available")
    return need


def _few_taps(kh, kw, h, w):
    """Whether the direct DFT over the taps beats an rfft2 (up to 7x7 taps on 32x32, measured)."""
    return kh * kw <= 4 * math.log2(h * w) + 9


def _phases(h, w, p, q):
    """(cos, sin) float64 arrays (h*(w//2+1), len(p)) of the angles 2 pi (u p / h + v q / w)
    at every frequency (u, v) for the integer positions or offsets (p[j], q[j]). The phase is
    reduced modulo 1 in exact integer arithmetic before the single rounding of 2 pi x, so
    every entry is accurate to a few float64 ulps."""
    u = np.arange(h)[:, None, None]
    v = np.arange(w // 2 + 1)[None, :, None]
    num = ((u * np.asarray(p)) % h) * w + ((v * np.asarray(q)) % w) * h  # / (h w), in [0, 2)
    ang = (2 * np.pi / (h * w)) * num.reshape(h * (w // 2 + 1), len(p))
    return np.cos(ang), np.sin(ang)


def _phase_table(h, w, kh, kw):
    """(cos, sin) (h*(w//2+1), kh*kw): tap (p, q) (index p kw + q) at frequency (u, v) has
    phase cos - i sin."""
    return _phases(h, w, np.repeat(np.arange(kh), kw), np.tile(np.arange(kw), kh))


def _dft_taps(kernel, h, w):
    """(h*(w//2+1), c_out*c_in) complex128: the 2-D DFT of the kernel's few taps as one
    complex GEMM against the phase table (a direct sum of kh*kw terms per entry: for 3x3 and
    5x5 kernels far cheaper than zero-padding every (c_out, c_in) pair to h x w for an FFT,
    and written in the frequency-major order the batch needs, no transpose afterwards)."""
    xp = D.array_module(kernel)
    c_out, c_in, kh, kw = kernel.shape
    cs, sn = _phase_table(h, w, kh, kw)
    taps = kernel.reshape(c_out * c_in, kh * kw).T.astype(np.complex128)
    phases = xp.asarray(cs - 1j * sn)
    if xp is not np:
        return phases @ taps
    # One BLAS thread: a multithreaded call leaves its workers spinning on the cores that the
    # Gram kernel's threads need next (it ran 1.6x slower after a 2-thread GEMM). Splitting
    # a GEMM of inner dimension kh*kw over threads does not change its sums.
    with single_blas_thread():
        return phases @ taps


def _tap_l1_norm(k64):
    """|| sum over taps t of |kernel[:, :, t]| ||_F."""
    xp = D.array_module(k64)
    l1 = xp.abs(k64).sum(axis=(2, 3))  # (c_out, c_in)
    return float(xp.sqrt((l1 * l1).sum()))


def _tap_norm_sum(k64):
    """Sum over taps t of ||kernel[:, :, t]||_F: >= every frequency matrix's ||K_f||_F (each
    is a sum of the taps times phases of modulus 1)."""
    xp = D.array_module(k64)
    return float(xp.sqrt((k64 * k64).sum(axis=(0, 1))).sum())


def _conv_slack(k64, h, w, f32):
    """Per-frequency bound on how far rounding moved the largest singular values of the
    frequency matrices: the float64 DFT errs by at most 10 (log2(hw) + 2 + kh kw) u64 times the
    taps' l1 norm per entry, a generous multiple of either route's rounding bound (direct sum
    or rfft2; phases are accurate to a few u64); rounding the result to complex64 (f32) moves
    each matrix by at most u32 ||K_f||_F, and ||K_f||_F <= sum over taps t of
    ||kernel[:, :, t]||_F (|phase| = 1)."""
    kh, kw = k64.shape[2:]
    slack = float(10 * (math.log2(h * w) + 2 + kh * kw) * 2.0**-53 * _tap_l1_norm(k64))
    if not f32:
        return slack
    u = 2.0**-24
    fro = _tap_norm_sum(k64)
    return (fro + slack) * (u / (1 - u)) * (1 + 1e-9) + slack * (1 + u)


def _conv_matrices(kernel, h, w):
    """(K, slack): the h*(w//2+1) frequency matrices (c_out, c_in) in the kernel's precision
    (complex64 for float32) and, per matrix, the bound of _conv_slack. The DFT runs in
    float64, as a direct sum over the taps when they are few, else as an rfft2."""
    xp = D.array_module(kernel)
    c_out, c_in, kh, kw = kernel.shape
    k64 = kernel.astype(np.float64, copy=False)
    nf = h * (w // 2 + 1)
    if _few_taps(kh, kw, h, w):
        K = _dft_taps(k64, h, w).reshape(nf, c_out, c_in)
    else:
        K = xp.fft.rfft2(k64, s=(h, w), axes=(-2, -1))
        K = xp.ascontiguousarray(K.transpose(2, 3, 0, 1).reshape(nf, c_out, c_in))
    f32 = kernel.dtype == np.float32
    slack = np.full(nf, _conv_slack(k64, h, w, f32))
    return (K.astype(np.complex64) if f32 else K), slack


def _conv_fused(kernel, h, w, be):
    """Whether the CPU computes this kernel's frequency matrices inside the fused Gram kernel."""
    c_out, c_in, kh, kw = kernel.shape
    return be == "cpu" and _few_taps(kh, kw, h, w) and min(c_out, c_in) <= _SMALL


_PROBES = 8  # frequencies bounded in full first when pruning (see _conv_bounds_fused)


def _conv_bounds_fused(kernel, h, w, n_iter, prune=False):
    """Per-frequency bounds (float64, (h*(w//2+1),)), slack included, on the CPU: each thread
    sums its frequency matrix from the taps in float64 (the direct DFT of _dft_taps, in C++),
    rounds it as _conv_matrices would, and bounds it in cache; the h*(w//2+1) matrices are
    never stored (computing and storing them had cost a third of the whole call).

    prune: only the maximum is needed. The _PROBES frequencies of largest Frobenius norm
    (||K_f||_F^2 = a^T C a + b^T C b with C the taps' Gram matrix and a - ib the phases: no
    DFT needed) run all n_iter products first and give a rigorous lower bound L on the max;
    every other frequency stops as soon as its certified bound falls below L, keeping that
    bound (usually looser, always >= its norm). The max stays certified and as tight: the
    frequency holding the exact max never drops below L, so it runs all n_iter products (the
    pruned max equalled the unpruned one on every kernel tested). Random 64x64x3x3 kernels do
    ~2/3 of the products, trained ones ~1/5."""
    c_out, c_in, kh, kw = kernel.shape
    k64 = np.asarray(kernel, dtype=np.float64)
    cs, sn = _phase_table(h, w, kh, kw)
    P = c_out * c_in
    # Rows padded by 8 doubles: at a stride of a multiple of 4 KiB the kh*kw rows that each
    # block of the sum reads would share L1 sets (it ran 5x slower for 64 x 64 kernels).
    taps = np.zeros((kh * kw, P + 8))
    taps[:, :P] = k64.reshape(P, kh * kw).T
    nf = cs.shape[0]
    # ||K_f||_F^2 from the taps' Gram matrix (it picks each matrix's scaling, and the probes).
    # einsum's own loops, not BLAS: a threaded BLAS call leaves workers spinning on the cores
    # the kernel's threads need next (it made a 32x32x5x5 layer 2.5x slower).
    C = np.einsum("tp,up->tu", taps, taps)
    fro2 = np.einsum("ft,tu,fu->f", cs, C, cs) + np.einsum("ft,tu,fu->f", sn, C, sn)
    # Floored at 1e-6 of the largest possible norm (sum of the taps' norms): the quadratic
    # form's cancellation errs by ~1e-7 of that, so the true norm stays below ~2x the value
    # that sets the scale, and nothing overflows however small the matrix.
    fro = np.maximum(np.sqrt(np.maximum(fro2, 0.0)), 1e-6 * _tap_norm_sum(k64))
    # On the columns v = 0 and v = w/2 (w even), frequencies (u, v) and (h - u, v) hold
    # conjugate matrices (the kernel is real): same singular values, so one of each pair runs
    # and the other takes its bound (30 of 544 at 32 x 32).
    u = np.repeat(np.arange(h), w // 2 + 1)
    v = np.tile(np.arange(w // 2 + 1), h)
    edge = (v == 0) | ((w % 2 == 0) & (v == w // 2))
    src = np.where(edge & (u > h // 2), ((h - u) % h) * (w // 2 + 1) + v, np.arange(nf))
    keep = np.flatnonzero(src == np.arange(nf))
    cs, sn, fro, fro2 = cs[keep], sn[keep], fro[keep], fro2[keep]
    nk = len(keep)
    probe = np.zeros(0, dtype=np.int64)
    if prune and n_iter >= 3 and nk > _PROBES:
        probe = np.argsort(-fro2, kind="stable")[:_PROBES].astype(np.int64)
    f32 = kernel.dtype == np.float32  # complex64 matrices, run in 32-bit; else 64-bit
    out = np.empty(nk)
    if n_iter >= 1 and (2 * kh - 1) * (2 * kw - 1) <= _FIRST_OFFSETS:
        gtaps, pt, pu, start, pc, ps, del64 = _first_from_taps(k64, h, w, taps)
        D.cpu().gram_conv_bound_batch_first(taps, cs, sn, fro, c_out, c_in, f32, not f32,
                                            n_iter, probe, out, gtaps, pt, pu, start,
                                            pc[keep], ps[keep], del64)
    else:
        D.cpu().gram_conv_bound_batch(taps, cs, sn, fro, c_out, c_in, f32, not f32, n_iter,
                                      probe, out)
    return out[np.searchsorted(keep, src)] + _conv_slack(k64, h, w, f32)


# Kernels with at most this many tap offsets (3 x 3: 25) take their first Gram product from
# the taps: 25 multiply-adds per entry against a 64-long complex dot product (5 x 5: 81, no
# cheaper than the product).
_FIRST_OFFSETS = 25


def _first_from_taps(k64, h, w, taps=None):
    """The setup of the first Gram product from the taps (GramTapFirst in gram.hpp): with
    F_f = sum_t e^{-i theta_f(t)} K_t, F_f^H F_f = M_0 + sum over offsets d > 0 of
    S_d cos theta_f(d) + i A_d sin theta_f(d), M_d the sum of K_t^T K_u over tap pairs at
    offset pos_t - pos_u = d, S_d = M_d + M_d^T, A_d = M_d - M_d^T; the C++ kernel builds the
    M_d and evaluates every frequency's Gram matrix from them in double, and the chain takes
    it from there (n_iter - 1 more products). Taken on the smaller side (K_t^T when
    c_out < c_in: the Gram matrix is then conj(F F^H), same singular values).

    taps: the fused route's padded tap table, which is gtaps itself when c_in <= c_out.
    Returns (gtaps, pt, pu, start, pc, ps, del64). del64 bounds the double evaluation's error
    in Frobenius norm for every frequency: each entry is a sum of at most T ro products per
    M_d (ro the summed side), one more rounding for S_d, A_d, 1 + 2 nd terms with phases
    (accurate to 26 u64 absolute: the angle num * 2 pi / (h w) < 4 pi rounds twice), two
    roundings per term without FMA: all terms bounded by (sum_t |K_t|)^T (sum_u |K_u|)
    entrywise, whose Frobenius norm is at most ||sum_t |K_t| ||_F^2; twice that count."""
    c_out, c_in, kh, kw = k64.shape
    T = kh * kw
    ro = max(c_out, c_in)
    P = c_out * c_in
    if taps is not None and c_out >= c_in:
        gtaps = taps
    else:
        K = k64.reshape(c_out, c_in, T).transpose(2, 0, 1)  # (T, c_out, c_in)
        if c_out < c_in:
            K = K.transpose(0, 2, 1)
        gtaps = np.zeros((T, P + 8))  # padded rows, as the taps table (L1 sets)
        gtaps[:, :P] = K.reshape(T, P)
    pos = [(t // kw, t % kw) for t in range(T)]
    offs = [(dp, dq) for dp in range(kh) for dq in range(-(kw - 1), kw) if dp > 0 or dq > 0]
    pairs = {d: [] for d in [(0, 0)] + offs}
    for t in range(T):
        for u in range(T):
            d = (pos[t][0] - pos[u][0], pos[t][1] - pos[u][1])
            if d in pairs:
                pairs[d].append((t, u))
    order = [(0, 0)] + offs
    pt = np.array([t for d in order for t, _ in pairs[d]], dtype=np.int64)
    pu = np.array([u for d in order for _, u in pairs[d]], dtype=np.int64)
    start = np.cumsum([0] + [len(pairs[d]) for d in order]).astype(np.int64)
    pc, ps = _phases(h, w, [d[0] for d in offs], [d[1] for d in offs])
    nd = len(offs)
    del64 = 2.0 * (T * ro + 2 * nd + 40) * 2.0**-53 * _tap_l1_norm(k64)**2 * (1 + 1e-9)
    return gtaps, pt, pu, start, pc, ps, del64


def _conv_bound(kernel, h, w, n_iter, be, fn):
    """Certified bound of one convolution of any scale: the kernel prescaled (see _WINDOW;
    its rounding E bounded through ||conv_E|| = max_f ||E_f||_2 <= sum_t ||E_t||_F), the
    frequency routes run on it, the max scaled back."""
    c_out, c_in, kh, kw = kernel.shape
    K2, p, under = _prescale(kernel[None], kh * kw * math.sqrt(c_out * c_in))
    b = _conv_bounds(K2[0], h, w, n_iter, be).max()
    return float(ref.unscale_bound(np.array([b]), p, under, fn)[0])


def _conv_bounds(kernel, h, w, n_iter, be):
    """Certified bounds of every frequency matrix of the convolution, slack included; only
    their max is as tight as n_iter on the CPU's fused route (pruned, see _conv_bounds_fused)."""
    if _conv_fused(kernel, h, w, be):
        return _conv_bounds_fused(kernel, h, w, n_iter, prune=True)
    K, slack = _conv_matrices(kernel, h, w)
    return _bounds(K, n_iter, be) + slack


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
    C.check_array(kernel, "kernel", fn, dtypes=(np.float32, np.float64), ndim=4, finite=True)
    h, w = _check_input_size(input_size, kernel, fn)
    n_iter = _check_iter(n_iter, fn)
    be = D.pick(fn, kernel, backend=backend)
    _check_conv_memory(kernel, h, w, be, "input_size", fn)
    return _conv_bound(kernel, h, w, n_iter, be, fn)


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
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise TypeError(f"{fn}(): layers must be a non-empty list or tuple of arrays, got "
                        f"{type(layers).__name__}")
    if input_sizes is None:
        input_sizes = [None] * len(layers)
    if not isinstance(input_sizes, (list, tuple)) or len(input_sizes) != len(layers):
        raise ValueError(f"{fn}(): input_sizes must be a list with one entry per layer "
                         f"({len(layers)}), got {input_sizes!r}")
    n_iter = _check_iter(n_iter, fn)
    convs = {}
    for i, (L, size) in enumerate(zip(layers, input_sizes)):
        name = f"layers[{i}]"
        if getattr(L, "ndim", None) == 4:
            C.check_array(L, name, fn, dtypes=(np.float32, np.float64), ndim=4, finite=True)
            if size is None:
                raise ValueError(f"{fn}(): input_sizes[{i}] is required for the 4-D {name}")
            convs[i] = _check_input_size(size, L, fn)
        else:
            C.check_array(L, name, fn, dtypes=_DTYPES, ndim=2, finite=True)
    be = D.pick(fn, *layers, backend=backend)
    out = np.empty(len(layers), dtype=np.float64)
    groups = {}
    held = 0  # the stored-matrix layers' frequency matrices all stay alive until the end
    for i, (h, w) in convs.items():  # refuse before anything is allocated
        need = _check_conv_memory(layers[i], h, w, be, f"input_sizes[{i}]", fn, held)
        if not _conv_fused(layers[i], h, w, be):
            held += need
    scaled = {}  # i: (p, under) of a prescaled conv layer (see _WINDOW)
    for i, L in enumerate(layers):
        if i in convs:
            h, w = convs[i]
            if _conv_fused(L, h, w, be):  # a batch of its own, matrices made in the kernel
                out[i] = _conv_bound(L, h, w, n_iter, be, fn)
                continue
            c_out, c_in, kh, kw = L.shape
            K2, p, under = _prescale(L[None], kh * kw * math.sqrt(c_out * c_in))
            scaled[i] = (p, under)
            mats, slack = _conv_matrices(K2[0], h, w)
        else:
            mats, slack = L[None], np.zeros(1)
        groups.setdefault((mats.shape[1:], mats.dtype.str), []).append((i, mats, slack))
    for items in groups.values():
        xp = D.array_module(items[0][1])
        A = xp.concatenate([mats for _, mats, _ in items], axis=0)
        b = _bounds(A, n_iter, be, fn=fn)  # matrices prescaled one by one
        start = 0
        for i, mats, slack in items:
            out[i] = (b[start : start + mats.shape[0]] + slack).max()
            if i in scaled:
                out[i] = ref.unscale_bound(out[i : i + 1], *scaled[i], fn)[0]
            start += mats.shape[0]
    return out
