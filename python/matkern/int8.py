"""LLM.int8(): int8 matmul with mixed-precision outlier decomposition (bitsandbytes semantics).

``int8_quantize(W)`` packs a weight once; ``int8_matmul(X, W)`` quantizes X per row on the fly,
multiplies in int8 with exact int32 sums, scales, and adds the float product of the outlier
feature columns. CPU: AVX-512 VNNI vpdpbusd kernels where the CPU has them (their own weight
layout, ``Int8Weight._vnni``), else AVX2 vpmaddwd (portable fallback), on the helper pool
(cpp/parallel.hpp); the same int32 sums and float results on every level. GPU: int8 tensor cores (mma.sync m16n8k32) with a fused epilogue, and a
dp4a GEMV path for a few rows.

Orientation: every product here is "linear layer" style, ``A (M, K) @ B.T`` with B (N, K).

dtypes: X in float32 or float16 on both devices, the result in X's dtype (computed in float32);
float64 X, W or bias (NumPy's default) is converted to float32 first (a copy; the result is
float32), as ``lut_quantize`` / ``lut_matmul`` do.
bfloat16 is not accepted: NumPy and CuPy have no bfloat16 dtype to carry it (torch tensors are
taken through DLPack, see ``matkern._interop``, but a bfloat16 one is refused); convert to
float16 or float32.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks, _dispatch, _quant_api, _rotate_quant
from ._interop import array_methods, arrays
from .reference import int8 as ref

__all__ = ["Int8Weight", "int8_quantize", "int8_matmul", "Int8Linear", "int8_gemm"]

_XTYPES = (np.float32, np.float16)
_GPU_KALIGN = 32  # the tensor-core kernels read K in steps of 32 (zero padded)
_GEMM_KMAX = (2**31 - 1) // (128 * 128)  # int8_gemm: |sum| <= 128 * 128 * K fits int32
_QUANT_KMAX = (2**31 - 1) // (127 * 127)  # quantized codes are in [-127, 127]


class Int8Weight:
    """A weight (out_features N, in_features K) quantized to int8 codes with one float32
    absmax scale per output row, W ~ codes * scale[:, None] / 127, stored in the layout the
    kernels of its device read (made by :func:`int8_quantize`; do not build it by hand).

    The same attributes as :class:`matkern.LUTWeight`: ``shape``, ``device``, ``nbytes``,
    ``codes``, ``scales``, ``to_device()``, ``dequantize()``.

    Attributes
    ----------
    shape : (N, K)
    scales : float32 array (N,), the absmax of each row, NumPy or CuPy like the weight
        (``scale`` is the same array, its name before 0.1.0)
    codes : int8 array (N, K): the codes (a view on the GPU, an unpacked copy on the CPU)
    device : "cpu" or "cuda"
    nbytes : bytes held (codes, padding and scales)

    Example
    -------
    >>> import numpy as np, matkern
    >>> Wq = matkern.int8_quantize(np.float32([[1.0, -0.5], [0.0, 2.0]]))
    >>> Wq.shape, Wq.scales.tolist(), Wq.dequantize(np.float16).dtype
    ((2, 2), [1.0, 2.0], dtype('float16'))
    """

    __slots__ = ("shape", "scale", "_pairs", "device", "rotation", "_vnni")

    def __init__(self, shape, scale, packed, device, rotation=None, vnni=None):
        self.shape = tuple(int(s) for s in shape)
        self.scale = scale
        # CPU: the int16-pair panels (AVX2, portable, vpdpwssd) and/or the vpdpbusd layout
        # (packed, corr); a weight quantized where vpdpbusd runs holds only the latter, and
        # either is made from the other once, when first needed (one copy of the codes).
        self._pairs = packed
        self._vnni = vnni
        self.device = device
        self.rotation = rotation

    @property
    def _packed(self):
        """The device's main layout: CUDA's padded rows, or the CPU's int16-pair panels
        (Np/8, Kp/2, 8, 2), made from the vpdpbusd layout on first use."""
        if self._pairs is None:
            self._pairs = _cpu_pack(self.codes)
        return self._pairs

    def _vnni_layout(self):
        """The vpdpbusd kernels' layout (_vnni_pack) of a CPU weight, made on first use and
        kept: a weight quantized where that path runs has it from int8_quantize on."""
        if self._vnni is None:
            self._vnni = _vnni_pack(self.codes)
        return self._vnni

    def _stored(self):
        """The arrays of the layout this weight holds (no layout is built): the vpdpbusd
        layout (packed, corr) where held, else the int16-pair panels (CPU) or CUDA's rows."""
        return self._vnni if self._vnni is not None else (self._pairs,)

    @property
    def out_features(self):
        return self.shape[0]

    @property
    def in_features(self):
        return self.shape[1]

    @property
    def scales(self):
        return self.scale

    @property
    def codes(self):
        n, k = self.shape
        if self.device == "cuda":
            return self._pairs[:, :k]
        if self._pairs is None:
            return _vnni_unpack(self._vnni[0], n, k)
        p = self._pairs
        np_, kp = p.shape[0] * 8, p.shape[1] * 2  # packed: (Np/8, Kp/2, 8, 2)
        return p.transpose(0, 2, 1, 3).reshape(np_, kp)[:n, :k]

    @property
    def nbytes(self):
        held = [self.scale] + ([] if self._pairs is None else [self._pairs])
        held += [] if self._vnni is None else list(self._vnni)
        return int(sum(a.nbytes for a in held))

    def dequantize(self, dtype=np.float32):
        """The weight the codes stand for, codes * scale / 127 (N, K), computed in float32 and
        rounded once to ``dtype`` (float32 or float16), on the weight's device. A rotated
        weight (``rotation`` set) is rotated back: the result approximates the original W."""
        dt = _quant_api.check_dequant_dtype(dtype, "Int8Weight.dequantize")
        xp = _dispatch.array_module(self.scale)
        W = ref.dequantize_rows(self.codes, self.scale, xp)
        if self.rotation is not None:
            W = self.rotation.apply_transpose(W)
        return W.astype(dt, copy=False)

    def to_device(self, device):
        """This weight on ``device`` ("cpu" or "cuda"), repacked for that device's kernels
        (the same codes and scales)."""
        fn = "Int8Weight.to_device"
        _checks.check_choice(device, "device", fn, ("cpu", "cuda"))
        if device == self.device:
            return self
        codes = _dispatch.to_host(self.codes)
        scale = _dispatch.to_host(self.scale)
        if device == "cuda":
            cp = _dispatch.cupy_module()
            return Int8Weight(
                self.shape, cp.asarray(scale), cp.asarray(_gpu_pack(codes)), "cuda", self.rotation
            )
        return Int8Weight(self.shape, np.array(scale), _cpu_pack(codes), "cpu", self.rotation)

    def __repr__(self):
        return f"Int8Weight(shape={self.shape}, device={self.device!r})"


def _cpu_pack(codes):
    """int8 (N, K) codes -> the CPU kernels' panels (Np/8, Kp/2, 8, 2) (NumPy)."""
    n, k = codes.shape
    np8, kp = -(-n // 8) * 8, _cpu_kpad(k)
    full = np.zeros((np8, kp), np.int8)
    full[:n, :k] = codes
    return np.ascontiguousarray(full.reshape(np8 // 8, 8, kp // 2, 2).transpose(0, 2, 1, 3))


_VNNI_COLS = 64  # output columns per super-panel of the vpdpbusd layout (cpp/int8.hpp)


def _vnni_pack(codes):
    """int8 (N, K) codes -> the AVX-512 VNNI (vpdpbusd) kernels' layout (cpp/int8.hpp): the
    codes padded to (N16, Kq) in super-panels of 64 columns x quads of inputs, flat int8, and
    corr (N16,) int32 = -128 * the row sums (modulo 2^32: the kernel's sums wrap the same
    way, and the result is exact wherever it fits int32). Packed 1024 rows at a time (no
    padded copy of the whole weight)."""
    n, k = codes.shape
    n16, kq = -(-n // 16) * 16, -(-k // 4) * 4
    corr = np.zeros(n16, np.int32)
    sums = codes.sum(axis=1, dtype=np.int64) * -128
    corr[:n] = (sums & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    out = np.empty(n16 * kq, np.int8)
    group = 16 * _VNNI_COLS
    for r0 in range(0, n16, group):
        r1 = min(n16, r0 + group)
        blk = np.zeros((r1 - r0, kq), np.int8)
        blk[: max(0, min(n, r1) - r0), :k] = codes[r0:r1]
        nf = (r1 - r0) // _VNNI_COLS * _VNNI_COLS  # full super-panels; a narrower last one
        full = blk[:nf].reshape(nf // _VNNI_COLS, _VNNI_COLS, kq // 4, 4).transpose(0, 2, 1, 3)
        out[r0 * kq : (r0 + nf) * kq] = full.reshape(-1)
        tail = blk[nf:].reshape(r1 - r0 - nf, kq // 4, 4).transpose(1, 0, 2)
        out[(r0 + nf) * kq : r1 * kq] = tail.reshape(-1)
    return out, corr


def _vnni_unpack(wv, n, k):
    """The (N, K) codes held in a _vnni_pack layout (a view of an unpacked copy)."""
    n16 = -(-n // 16) * 16
    kq = wv.size // n16
    full = np.empty((n16, kq), np.int8)
    nf = n16 // _VNNI_COLS * _VNNI_COLS
    blocks = wv[: nf * kq].reshape(nf // _VNNI_COLS, kq // 4, _VNNI_COLS, 4)
    full[:nf] = blocks.transpose(0, 2, 1, 3).reshape(nf, kq)
    full[nf:] = wv[nf * kq :].reshape(kq // 4, n16 - nf, 4).transpose(1, 0, 2).reshape(-1, kq)
    return full[:n, :k]


def _gpu_pack(codes):
    """int8 (N, K) codes -> rows padded to K a multiple of 32 (NumPy)."""
    n, k = codes.shape
    full = np.zeros((n, -(-k // _GPU_KALIGN) * _GPU_KALIGN), np.int8)
    full[:, :k] = codes
    return full


@arrays("W")
def int8_quantize(W, *, rotation=None, backend=None):
    """Quantize a weight matrix to int8 with one absmax scale per output row.

    Parameters
    ----------
    W : numpy.ndarray or cupy.ndarray, (out_features N, in_features K), float32 or float16
        Must be finite (ValueError otherwise); K <= 133,144 (127 * 127 * K < 2^31).
    rotation : matkern.HadamardRotation of dimension K, optional
        Quantize the rotated weight ``W @ Q`` instead (QuaRot-style: the rotation spreads
        outlier features, so plain per-row int8 fits better) and keep Q with the weight:
        :func:`int8_matmul` then rotates X the same way, so ``X @ W.T`` is unchanged up to
        the quantization error. With a rotation, use ``threshold=0`` (no outliers are left
        to decompose). The matmul's rotation of X is fused with its activation quantization
        (one pass per row: sign flip, transform, absmax, rounding; CPU and GPU) where the
        base order m <= 64 (every power of two, 384, 1536, ...); with ``threshold > 0`` it
        falls back to rotating X first when a rotated row reaches the threshold.
    backend : {"reference", "cpu", "cuda"}, optional
        Only checks the device here: the packed layout follows W's device (NumPy: the CPU
        kernels' panels of 8 rows x pairs of inputs; CuPy: rows padded to K multiple of 32).

    Returns
    -------
    Int8Weight on W's device (its ``rotation`` attribute holds the rotation): codes = rint(W * 127 / absmax_row), scale = absmax_row. Rows
    whose absmax is below 2^-64 are multiplied by 2^100 (exactly) before 127 / absmax is
    taken, so tiny rows keep their codes (127 / absmax overflows float32 below ~3.7e-37).
    Works a block of rows at a time: no float32 copy of W.

    Example
    -------
    >>> import numpy as np, matkern
    >>> Wq = matkern.int8_quantize(np.array([[1.0, -0.5], [0.0, 2.0]], np.float32))
    >>> Wq.codes, Wq.scale
    (array([[127, -64],
           [  0, 127]], dtype=int8), array([1., 2.], dtype=float32))
    """
    fn = "int8_quantize"
    W = _quant_api.float64_to_float32(W)
    _checks.check_array(W, "W", fn, dtypes=_XTYPES, ndim=2, contiguous=False, finite=True)
    n, k = W.shape
    rotation = _quant_api.check_rotation(rotation, k, fn)
    W = _quant_api.rotate(W, rotation)
    _checks.check_index_range(n, "W.shape[0]", fn)
    _checks.check_index_range(k, "W.shape[1]", fn)
    if k > _QUANT_KMAX:
        raise ValueError(
            f"{fn}(): in_features = {k} could overflow the int32 sums (max {_QUANT_KMAX})"
        )
    be = _dispatch.pick(fn, W, backend=backend)
    xp = _dispatch.array_module(W)
    scale = xp.empty(n, xp.float32)
    if be == "cuda":
        kp = -(-k // _GPU_KALIGN) * _GPU_KALIGN
        packed = xp.zeros((n, kp), xp.int8)
        _quantize_rows_into(W, packed, scale, xp)
        return Int8Weight((n, k), scale, packed, "cuda", rotation)
    np8, kp = -(-n // 8) * 8, _cpu_kpad(k)
    full = np.zeros((np8, kp), np.int8)
    _quantize_rows_into(W, full, scale, xp)
    if be == "cpu" and _dispatch.cpu().int8_vnni_enabled():  # only the layout that runs here
        return Int8Weight((n, k), scale, None, "cpu", rotation, vnni=_vnni_pack(full[:n, :k]))
    # the panel layout of _cpu_pack, from the padded codes already in place
    packed = np.ascontiguousarray(full.reshape(np8 // 8, 8, kp // 2, 2).transpose(0, 2, 1, 3))
    return Int8Weight((n, k), scale, packed, "cpu", rotation)


_BLOCK_BYTES = 4 << 20  # float32 rows quantized at a time: the temporaries stay ~2 such blocks


def _quantize_rows_into(W, dest, scale, xp):
    """codes = rint(W * 127 / absmax_row) into dest[:n, :k], absmax into scale, a block of rows
    at a time (no float32 copy of the whole W). Rows with absmax below 2^-64 are multiplied by
    2^100 first (exact), as every backend does (reference.int8.TINY): 127 / absmax overflows
    float32 below ~3.7e-37, which used to turn such rows into zero codes."""
    n, k = W.shape
    rows = max(1, _BLOCK_BYTES // (4 * k))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        blk = xp.asarray(W[r0:r1], dtype=xp.float32)
        absmax = xp.abs(blk).max(axis=1)
        safe = xp.where(absmax > 0, absmax, xp.float32(1))
        pre = xp.where(safe < ref.TINY, ref.PRE, xp.float32(1)).astype(xp.float32)
        inv = (xp.float32(127) / (safe * pre)).astype(xp.float32)
        t = blk * pre[:, None]
        t *= inv[:, None]
        xp.rint(t, out=t)
        dest[r0:r1, :k] = t
        scale[r0:r1] = absmax


def _cpu_kpad(k):
    """Row length of the CPU layouts: even (pairs of inputs), and never a multiple of 256, so
    that the rows and panels the micro-kernel streams at once (strides 2 Kp and 8 Kp bytes) do
    not all fall into the same L1 cache sets (4 KiB aliasing)."""
    kp = k + (k & 1)
    return kp + 32 if kp % 256 == 0 else kp


def _check_weight(W, fn):
    if not isinstance(W, Int8Weight):
        raise TypeError(
            f"{fn}(): W must be an Int8Weight (from matkern.int8_quantize), got "
            f"{type(W).__module__}.{type(W).__name__}"
        )


def _outlier_columns(X2, threshold, xp):
    """Columns of X2 with any |x| >= threshold (int64 indices on X2's device)."""
    if threshold <= 0 or X2.shape[0] == 0:
        return xp.zeros(0, xp.int64)
    t = np.float32(threshold)
    # |x| >= t in float32 as the reference: NaN is never an outlier, nor hides one
    hit = (xp.abs(X2.astype(xp.float32)) >= t).any(axis=0)
    return xp.flatnonzero(hit).astype(xp.int64)


@_quant_api.call_form("int8_matmul(X, W, *, bias=None, threshold=6.0, backend=None)", ("Wq",))
@arrays("X", "bias")
def int8_matmul(X, W, *, bias=None, threshold=6.0, backend=None):
    """LLM.int8() product X @ W.T with outlier decomposition.

    X is quantized per row (token) by absmax on the fly; the feature columns of X holding any
    |x| >= ``threshold`` are left out of the int8 product and multiplied in float32 against the
    matching dequantized weight columns, then added (bitsandbytes' mixed-precision
    decomposition). The int8 part is exact (int32 sums); out = C * absmax_X[row] *
    scale_W[col] / 127^2 + bias + outlier product.

    Parameters
    ----------
    X : array (..., K), float32 or float16 (NumPy -> CPU kernels, CuPy -> GPU kernels), any
        strides (copied to a contiguous array only where the kernel needs one). A row holding NaN or Inf outside the outlier columns gives a NaN output row; Inf in
        an outlier column gives Inf/NaN in its row only. Other rows are unaffected. An empty
        batch (no rows) gives an empty result.
    W : Int8Weight (N, K) on X's device
    bias : array (N,), float32 or float16, optional (keyword only, as every argument after W)
    threshold : float >= 0
        Outlier threshold (6.0 as in transformers); 0 turns the decomposition off.
    backend : {"reference", "cpu", "cuda"}, optional

    Returns
    -------
    Array (..., N) of X's dtype and array type (computed in float32, then cast).

    The weight argument was named ``Wq`` before 0.1.0: ``Wq=`` raises a TypeError showing this
    form (the same as :func:`lut_matmul`'s).

    Example
    -------
    >>> import numpy as np, matkern
    >>> W = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    >>> X = np.random.default_rng(1).standard_normal((4, 32)).astype(np.float32)
    >>> Y = matkern.int8_matmul(X, matkern.int8_quantize(W))
    >>> bool(np.linalg.norm(Y - X @ W.T) < 0.02 * np.linalg.norm(X @ W.T))
    True
    """
    fn = "int8_matmul"
    X, bias = _quant_api.float64_to_float32(X), _quant_api.float64_to_float32(bias)
    _checks.check_array(X, "X", fn, dtypes=_XTYPES, min_ndim=1, contiguous=False, allow_empty=True)
    _check_weight(W, fn)
    threshold = _checks.check_float(threshold, "threshold", fn, min_value=0.0)
    n, k = W.shape
    if X.shape[-1] != k:
        raise ValueError(f"{fn}(): X must have {k} columns (W.in_features), got shape {X.shape}")
    if bias is not None:
        _checks.check_array(bias, "bias", fn, dtypes=_XTYPES, ndim=1, contiguous=False)
        if bias.shape[0] != n:
            raise ValueError(f"{fn}(): bias must have shape ({n},), got {bias.shape}")
    be = _dispatch.pick(fn, X, W.scale, bias, backend=backend)
    if (be == "cuda") != (W.device == "cuda"):
        raise ValueError(
            f"{fn}(): W was quantized for {W.device!r} but X is on "
            f"{'cuda' if _dispatch.is_cupy_array(X) else 'cpu'}"
        )
    lead = X.shape[:-1]
    m = math.prod(lead)  # 1 for a single row
    _checks.check_index_range(m, "the number of rows of X", fn)
    xp = _dispatch.array_module(X)
    if m == 0:
        return xp.zeros(lead + (n,), X.dtype)
    # a rotated weight: X @ W.T = (X Q)(W Q)^T. Rotate and quantize X in one pass
    # (_rotate_quant); otherwise, or when outliers remain, one fast transform of X first.
    if _rotate_quant.fusable(W.rotation, be):
        out = _rotate_quant.int8_matmul(X.reshape(m, k), W, bias, threshold, be)
        if out is not None:
            return out.reshape(lead + (n,))
    X = _quant_api.rotate(X, W.rotation)
    X2 = X.reshape(m, k)
    if be == "reference":
        codes = _dispatch.to_host(W.codes)
        b = None if bias is None else _dispatch.to_host(bias)
        out = ref.int8_matmul(
            _dispatch.to_host(X2), codes, _dispatch.to_host(W.scale), threshold, b
        )
        return _dispatch.like(out, X).reshape(lead + (n,))
    b32 = None if bias is None else xp.ascontiguousarray(bias, dtype=xp.float32)
    if be == "cpu":
        return _cpu_matmul(X2, W, threshold, b32).reshape(lead + (n,))
    out = _cuda_matmul_fused(X2, W, threshold, b32)
    if out is None:  # many outlier columns: their product by cuBLAS, added in the epilogue
        cols = _outlier_columns(X2, threshold, xp)
        wo = ref.dequantize_rows(_codes_columns(W, cols), W.scale, xp)
        addend = xp.ascontiguousarray(X2[:, cols].astype(xp.float32) @ wo.T)
        out = _cuda_matmul(X2, W, cols, b32, addend)
    return out.reshape(lead + (n,))


def _codes_columns(Wq, cols):
    """Wq's codes at columns ``cols`` (N, len(cols)), gathered without unpacking the rest."""
    if Wq.device == "cuda":
        return Wq._packed[:, cols]
    p = Wq._packed  # (Np/8, Kp/2, 8, 2)
    g = p[:, cols // 2, :, cols % 2]  # (len(cols), Np/8, 8)
    return g.reshape(len(cols), -1)[:, : Wq.shape[0]].T


# The CPU kernel's epilogue (and the GPU's: cuda/int8.cu's kFusedMaxWork is _FUSED_WORK)
# multiplies the outlier columns itself when there are at most
# _FUSED_OUTLIERS of them and rows x columns is at most _FUSED_WORK (measured here: at M=2048,
# N=11008 BLAS wins from 16 columns on, at M=256 the epilogue still wins at 64).
_FUSED_OUTLIERS = 64
_FUSED_WORK = 16384


def _cpu_matmul(X2, Wq, threshold, b32):
    cpu = _dispatch.cpu()
    m = X2.shape[0]
    n = Wq.shape[0]
    xf = np.ascontiguousarray(X2, dtype=np.float32)
    vnni = cpu.int8_vnni_enabled()
    out = np.empty((m, n), np.float32)
    wv = corr = xo = wot = None
    if vnni:
        # one call with the GIL released: outlier columns (the reference's rule: any |x| >=
        # threshold), their operands, quantization, product, epilogue. It hands the columns
        # back instead when there are too many for the epilogue (the BLAS path below).
        wv, corr = Wq._vnni_layout()
        cols = cpu.int8_matmul_vnni_auto(
            xf, float(threshold), _FUSED_OUTLIERS, _FUSED_WORK, wv, corr, n, Wq.scale, b32, out
        )
        if cols is None:
            return out if X2.dtype == np.float32 else out.astype(X2.dtype)
    else:
        # the outlier columns, found in one pass
        cols = cpu.int8_outlier_columns(xf, float(threshold))
    if cols.size:
        xo = xf[:, cols]
        if vnni:  # straight from the vpdpbusd layout, as dequantize_rows computes them
            wot = np.empty((cols.size, n), np.float32)
            cpu.int8_vnni_columns(wv, n, Wq.scale, cols, wot)
        else:
            wot = np.ascontiguousarray(ref.dequantize_rows(_codes_columns(Wq, cols), Wq.scale).T)
    addend = None
    if xo is not None and not (xo.shape[1] <= _FUSED_OUTLIERS and xo.size <= _FUSED_WORK):
        # Many outlier columns: a BLAS product into out, which the epilogue reads as its
        # addend (entry by entry, before overwriting it). Few: multiplied in the kernel's
        # epilogue; a BLAS call here (even a thin one) left its threads spinning for ~0.1 s on
        # the cores that the int8 kernel's threads needed next: 76 -> 47 ms at M=256,
        # N=K=4096.
        # Inf/NaN in an outlier column reaches its row as Inf/NaN, as in the fused epilogue,
        # without NumPy's "invalid value" warning that path does not give either
        with np.errstate(invalid="ignore", over="ignore"):
            np.matmul(xo, np.ascontiguousarray(wot.T).T, out=out)
        addend, xo, wot = out, None, None
    if vnni:  # AVX-512 VNNI: quantization, vpdpbusd product and epilogue in one call
        cpu.int8_matmul_vnni(xf, cols, wv, corr, n, Wq.scale, b32, addend, xo, wot, out)
    else:
        kp = Wq._packed.shape[1] * 2
        q = np.empty((m, kp), np.int16)
        sx = np.empty(m, np.float32)
        cpu.int8_quantize_rows(xf, cols, q, sx)
        cpu.int8_gemm_f32(q, Wq._packed.reshape(-1), n, sx, Wq.scale, b32, addend, xo, wot, out)
    return out if X2.dtype == np.float32 else out.astype(X2.dtype)


def _cuda_matmul_fused(X2, Wq, threshold, b32):
    """The GPU product in one binding call (outlier columns, quantization, int8 product and an
    epilogue that adds the float product of up to _FUSED_OUTLIERS outlier columns): five
    launches from C++ instead of a dozen CuPy calls, the arrays passed as device pointers
    (their shapes are known here: X2 (m, k), the weight's rows (n, kp), scale and bias (n,)).
    None when there are more outlier columns than the epilogue takes."""
    cp = _dispatch.cupy_module()
    m, k = X2.shape
    packed = Wq._packed
    n, kp = packed.shape
    x = cp.ascontiguousarray(X2)
    out = cp.empty((m, n), x.dtype)
    cu = _dispatch.cuda()
    nbytes = cu.int8_fused_work_bytes(m, k, kp, n, _FUSED_OUTLIERS)
    work = cp.empty(nbytes, cp.uint8)
    done = cu.int8_matmul_fused(
        x.data.ptr, x.dtype == cp.float16, m, k, threshold, packed.data.ptr, n, kp,
        Wq.scale.data.ptr, 0 if b32 is None else b32.data.ptr, out.data.ptr, work.data.ptr,
        nbytes, _FUSED_OUTLIERS, cp.cuda.get_current_stream().ptr,
    )  # fmt: skip
    return out if done else None


def _cuda_matmul(X2, Wq, cols, b32, addend):
    cp = _dispatch.cupy_module()
    cu = _dispatch.cuda()
    m, k = X2.shape
    n, kp = Wq.shape[0], Wq._packed.shape[1]
    x = cp.ascontiguousarray(X2)
    mask = None
    if cols.size:
        mask = cp.zeros(k, cp.uint8)
        mask[cols] = 1
    q = cp.empty((m, kp), cp.int8)
    sx = cp.empty(m, cp.float32)
    out = cp.empty((m, n), x.dtype)
    half = x.dtype == cp.float16
    xv = x.view(cp.uint16) if half else x
    ov = out.view(cp.uint16) if half else out
    s = _dispatch.stream_ptr()
    cu.int8_quantize_rows(xv, mask, q, sx, s)
    cu.int8_gemm_scaled(q, Wq._packed, sx, Wq.scale, b32, addend, ov, s)
    return out


@array_methods(init=True, array_like=True)
class Int8Linear:
    """A linear layer y = x @ W.T + bias with W stored as int8 (LLM.int8()).

    Parameters
    ----------
    W : array (out_features, in_features), float32 or float16, NumPy or CuPy (an already
        quantized :class:`Int8Weight`: :meth:`from_weight`)
    bias : array (out_features,), optional
    threshold : float, the outlier threshold (0 turns the decomposition off)
    rotation : matkern.HadamardRotation of dimension in_features, optional (keyword only):
        store the rotated weight (see :func:`int8_quantize`); calls rotate X to match
    backend : {"reference", "cpu", "cuda"}, optional

    Calling it on X (..., in_features) float32/float16 on W's device returns (..., out_features)
    of X's dtype.

    Example
    -------
    >>> import numpy as np, matkern
    >>> layer = matkern.Int8Linear(np.eye(3, dtype=np.float32), bias=np.ones(3, np.float32))
    >>> layer(np.array([[1.0, 2.0, 3.0]], np.float32)).round(1)  # int8 error ~1%
    array([[2., 3., 4.]], dtype=float32)
    """

    def __init__(self, W, bias=None, threshold=6.0, *, rotation=None, backend=None):
        self._setup(int8_quantize(W, rotation=rotation, backend=backend), bias, threshold, backend)

    @property
    def in_features(self):
        return self.weight.in_features

    @property
    def out_features(self):
        return self.weight.out_features

    @classmethod
    def from_weight(cls, W, bias=None, threshold=6.0, *, backend=None):
        """A layer on an already quantized :class:`Int8Weight` W (used as it is)."""
        _check_weight(W, "Int8Linear.from_weight")
        layer = cls.__new__(cls)
        layer._setup(W, bias, threshold, backend)
        return layer

    def _setup(self, weight, bias, threshold, backend):
        if bias is not None:
            _checks.check_array(
                bias, "bias", "Int8Linear", dtypes=_XTYPES, ndim=1, contiguous=False
            )
            if bias.shape[0] != weight.shape[0]:
                raise ValueError(
                    f"Int8Linear(): bias must have shape ({weight.shape[0]},), got {bias.shape}"
                )
        self.weight = weight
        self.bias = bias
        self.threshold = _checks.check_float(threshold, "threshold", "Int8Linear", min_value=0.0)
        self.backend = backend

    def __call__(self, X):
        return int8_matmul(
            X, self.weight, bias=self.bias, threshold=self.threshold, backend=self.backend
        )

    def __repr__(self):
        return (
            f"Int8Linear(in_features={self.in_features}, out_features={self.out_features}, "
            f"threshold={self.threshold}, device={self.weight.device!r})"
        )


@arrays("A", "B")
def int8_gemm(A, B, *, backend=None):
    """Exact int32 product of two int8 matrices, linear-layer orientation: A @ B.T.

    Parameters
    ----------
    A : int8 array (M, K); B : int8 array (N, K) (NumPy or CuPy, same device)
        K must be at most 131,071 so that no int32 sum can overflow (128 * 128 * K < 2^31).

    Returns
    -------
    int32 array (M, N), exactly sum_k A[m, k] * B[n, k].

    Example
    -------
    >>> import numpy as np, matkern
    >>> A = np.array([[1, -2, 3]], np.int8); B = np.array([[127, 127, 127], [-128, 0, 1]], np.int8)
    >>> matkern.int8_gemm(A, B)
    array([[ 254, -125]], dtype=int32)
    """
    fn = "int8_gemm"
    _checks.check_array(A, "A", fn, dtypes=(np.int8,), ndim=2, contiguous=False, allow_empty=True)
    _checks.check_array(B, "B", fn, dtypes=(np.int8,), ndim=2, contiguous=False, allow_empty=True)
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"{fn}(): A and B must have the same number of columns K (A @ B.T), "
            f"got A {A.shape} and B {B.shape}"
        )
    m, k = A.shape
    n = B.shape[0]
    if k > _GEMM_KMAX:
        raise ValueError(f"{fn}(): K = {k} could overflow the int32 sums (max {_GEMM_KMAX})")
    _checks.check_index_range(m, "A.shape[0]", fn)
    _checks.check_index_range(n, "B.shape[0]", fn)
    be = _dispatch.pick(fn, A, B, backend=backend)
    xp = _dispatch.array_module(A)
    if m == 0 or n == 0 or k == 0:
        return xp.zeros((m, n), xp.int32)
    if be == "reference":
        return _dispatch.reference_result(
            ref.int8_gemm(_dispatch.to_host(A), _dispatch.to_host(B)), A
        )
    if be == "cpu":
        cpu = _dispatch.cpu()
        if cpu.int8_vnni_enabled():
            out = np.empty((m, n), np.int32)
            wv, corr = _vnni_pack(B)
            cpu.int8_gemm_vnni_i32(np.ascontiguousarray(A), wv, corr, n, out)
            return out
        kp = _cpu_kpad(k)
        aq = np.empty((m, kp), np.int16)
        cpu.int8_widen(np.ascontiguousarray(A), aq)
        np8 = -(-n // 8) * 8
        full = np.zeros((np8, kp), np.int8)
        full[:n, :k] = B
        packed = np.ascontiguousarray(full.reshape(np8 // 8, 8, kp // 2, 2).transpose(0, 2, 1, 3))
        out = np.empty((m, n), np.int32)
        cpu.int8_gemm_i32(aq, packed.reshape(-1), n, out)
        return out
    cp = _dispatch.cupy_module()
    kp = -(-k // _GPU_KALIGN) * _GPU_KALIGN
    ap = cp.zeros((m, kp), cp.int8)
    ap[:, :k] = A
    bp = cp.zeros((n, kp), cp.int8)
    bp[:, :k] = B
    out = cp.empty((m, n), cp.int32)
    _dispatch.cuda().int8_gemm_i32(ap, bp, out, _dispatch.stream_ptr())
    return out
