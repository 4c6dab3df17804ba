"""Rotated activations fused with the quantized matmuls' activation pass (issue #20 item 3).

A rotated weight (``int8_quantize`` / ``lut_quantize`` with ``rotation=``) makes its matmul
rotate X first. Unfused that is three passes over X (sign flip into a new array, the fast
transform, then the activation quantization or the padded float32 copy the LUT kernel reads);
here it is one kernel call per matmul (cpp/rotate_quant.cpp on the CPU,
cuda/rotate_quant.cu on the GPU): each row is sign-flipped, transformed in a per-thread
scratch row and written straight into the buffer the GEMM consumes.

The fused routes compute every value as the unfused composition does (the same row kernels in
the same order, float16 input rotated in float32 and rounded to float16), so their results
are bit-identical to it (tests/test_rotate_quant.py). They serve the base orders m for which
fwht itself runs the one-pass row kernel (m <= hadamard._MIXED_KERNEL_MAX_M, i.e. every
power of two and 12, 20, 24, 28, ..., 384, 1536, 4096, 5120, ...); larger m (e.g. 11008 =
344 * 32) keep the unfused route, whose H_m stage is a BLAS product.
"""

from __future__ import annotations

import numpy as np

from . import _dispatch, _hadamard_orders, hadamard

# The GPU kernel holds a row in shared memory: n <= this (cuda/rotate_quant.hpp kRotateMaxN).
_GPU_MAX_N = 12288


def fusable(rotation, be):
    """True when the fused kernels serve this rotation on backend ``be`` (see the module
    docstring; on the GPU also n <= 12288, the row held in shared memory)."""
    if rotation is None or be == "reference":
        return False
    if rotation.base_order > hadamard._MIXED_KERNEL_MAX_M:
        return False
    return be == "cpu" or rotation.n <= _GPU_MAX_N


def kernel_arrays(rotation, dtype, xp=np):
    """(signs or None, ht or None, m, p) in ``dtype`` on ``xp``'s device, cached on the
    rotation: the arguments of the fused kernels."""
    # keyed by the objects themselves: np.dtype(dtype).str took 0.4 us, a tenth of a
    # rotated M = 1 call at K = 384
    key = ("fused", dtype, xp)
    cache = rotation._device_signs
    hit = cache.get(key)
    if hit is None:
        m, p = _hadamard_orders.split_order(rotation.n)
        signs = xp.asarray(rotation.signs_.astype(dtype)) if rotation.randomized else None
        ht = xp.asarray(_hadamard_orders.padded_columns(m, np.dtype(dtype))) if m > 1 else None
        hit = cache[key] = (signs, ht, m, p)
    return hit


def int8_matmul(X2, Wq, bias, threshold, be):
    """int8_matmul's route for a rotated weight on ``be`` ("cpu" or "cuda"): the result (M, N)
    in X2's dtype, or None when the caller must take the unfused route (see int8_cpu)."""
    xp = _dispatch.array_module(X2)
    b32 = None if bias is None else xp.ascontiguousarray(bias, dtype=xp.float32)
    if be == "cpu":
        return int8_cpu(X2, Wq, b32, threshold)
    return int8_cuda(X2, Wq, b32, threshold)


def int8_cpu(X2, Wq, b32, threshold):
    """int8_matmul's CPU route for a rotated weight: rotate + quantize X2 (M, K) in one pass,
    then the int8 GEMM: where vpdpbusd runs (int8_vnni_enabled) into u8 codes for the
    weight's VNNI layout, in one call; else into int16 codes for the int16-pair panels. Returns None when ``threshold`` > 0 and some rotated row's absmax
    reaches it (or is not finite): then outlier columns may exist and the caller takes the
    unfused route, which decomposes them exactly as before."""
    cpu = _dispatch.cpu()
    m = X2.shape[0]
    n = Wq.shape[0]
    signs, ht, bm, p = kernel_arrays(Wq.rotation, np.float32)
    xf = np.ascontiguousarray(X2, dtype=np.float32)
    half = X2.dtype == np.float16
    if cpu.int8_vnni_enabled():  # vpdpbusd: u8 codes, the weight's VNNI layout (no _packed)
        wv, corr = Wq._vnni_layout()
        out = np.empty((m, n), np.float32)
        args = (xf, signs, ht, bm, p, half, float(threshold), wv, corr, n, Wq.scale, b32, out)
        if not cpu.rotate_int8_matmul_vnni(*args):
            return None
        return out if X2.dtype == np.float32 else out.astype(X2.dtype)
    kp = Wq._packed.shape[1] * 2
    q = np.empty((m, kp), np.int16)
    sx = np.empty(m, np.float32)
    cpu.rotate_quantize_int8(xf, signs, ht, bm, p, half, q, sx)
    # every |x| < threshold in every row <=> no outlier column (NaN compares False)
    if threshold > 0 and not sx.max() < np.float32(threshold):
        return None
    out = np.empty((m, n), np.float32)
    cpu.int8_gemm_f32(q, Wq._packed.reshape(-1), n, sx, Wq.scale, b32, None, None, None, out)
    return out if X2.dtype == np.float32 else out.astype(X2.dtype)


def int8_cuda(X2, Wq, b32, threshold):
    """The GPU route of int8_cpu: rotate + quantize in one kernel (a block per row), then the
    int8 tensor-core GEMM; None under the same condition."""
    cp = _dispatch.cupy_module()
    cu = _dispatch.cuda()
    m = X2.shape[0]
    n, kp = Wq.shape[0], Wq._packed.shape[1]
    signs, ht, bm, p = kernel_arrays(Wq.rotation, np.float32, cp)
    x = cp.ascontiguousarray(X2)
    half = x.dtype == cp.float16
    q = cp.empty((m, kp), cp.int8)
    sx = cp.empty(m, cp.float32)
    s = _dispatch.stream_ptr()
    cu.rotate_quantize_int8(x.view(cp.uint16) if half else x, signs, ht, bm, p, half, q, sx, s)
    if threshold > 0 and not bool(sx.max() < np.float32(threshold)):
        return None
    out = cp.empty((m, n), x.dtype)
    cu.int8_gemm_scaled(
        q, Wq._packed, sx, Wq.scale, b32, None, out.view(cp.uint16) if half else out, s
    )
    return out


def lut_rows(X2, rotation, kp, be):
    """The rotated rows of X2 (M, K) as lut_matmul's kernels read them, (M, kp) with zero
    columns past K, written by one kernel pass: float32 on the CPU, X2's dtype on the GPU."""
    if be == "cpu":
        return lut_cpu_rows(X2, rotation, kp)
    cp = _dispatch.cupy_module()
    signs, ht, bm, p = kernel_arrays(rotation, np.float32, cp)
    x = cp.ascontiguousarray(X2)
    out = cp.empty((X2.shape[0], kp), x.dtype)
    if x.dtype == cp.float16:
        x, ov = x.view(cp.uint16), out.view(cp.uint16)
    else:
        ov = out
    _dispatch.cuda().rotate_rows_padded(x, signs, ht, bm, p, ov, _dispatch.stream_ptr())
    return out


def lut_cpu_rows(X2, rotation, kp):
    """The rotated rows of X2 (M, K) as lut_matmul's CPU kernel reads them: C-contiguous
    float32 (M, kp), columns K..kp-1 zero, written by one kernel pass."""
    signs, ht, bm, p = kernel_arrays(rotation, np.float32)
    xf = np.ascontiguousarray(X2, dtype=np.float32)
    out = np.empty((X2.shape[0], kp), np.float32)
    _dispatch.cpu().rotate_rows_padded(xf, signs, ht, bm, p, X2.dtype == np.float16, out)
    return out


def rotate_cpu(X, rotation):
    """``rotation.apply(X)`` for float32 NumPy X (..., n) in one kernel pass (sign flip and
    transform, cpp/rotate_quant.cpp): a new C-contiguous array, bit-identical to the unfused
    sign flip followed by fwht."""
    signs, ht, bm, p = kernel_arrays(rotation, np.float32)
    x2 = np.ascontiguousarray(X).reshape(-1, rotation.n)
    out = np.empty(x2.shape, np.float32)
    _dispatch.cpu().rotate_rows_padded(x2, signs, ht, bm, p, False, out)
    return out.reshape(X.shape)
