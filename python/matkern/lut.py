"""LUT-quantized weight matmul (FLUTE): 2/3/4-bit codes into a lookup table, group scales,
dequantized inside the matmul."""

from __future__ import annotations

import numpy as np

from . import _checks, _dispatch, _lut_layout
from ._interop import arrays
from .reference import lut as ref

__all__ = ["LUTWeight", "lut_quantize", "lut_dequantize", "lut_matmul", "LUT_TABLES"]

LUT_TABLES = ("int", "fp4", "nf4")
_BITS = (2, 3, 4)
_GROUPS = (32, 64, 128, 256)
_X_DTYPES = (np.float32, np.float16)


class LUTWeight:
    """A weight matrix W (N out_features x K in_features) stored as ``bits``-bit codes into a
    table of 2**bits float32 values, with one float32 scale per group of ``group_size``
    consecutive inputs of a row: ``W[n, k] ~ table[code[n, k]] * scales[n, k // group_size]``.

    Made by :func:`lut_quantize`; used by :func:`lut_matmul` and :func:`lut_dequantize`. The
    codes are packed in the order the kernels of its device read them (see
    ``matkern._lut_layout``): a weight made from a NumPy array lives on the CPU, one made from
    a CuPy array on the GPU (in the mma tile order); :meth:`to_device` converts.

    Attributes
    ----------
    shape : (N, K)
    bits : 2, 3 or 4
    group_size : 32, 64, 128 or 256
    table_name : "int", "fp4", "nf4" or "custom"
    table : float32 array (2**bits,) on the weight's device
    scales : float32 array (N, K // group_size) on the weight's device
    packed : uint32 array, the packed codes (layout "cpu" or "gpu")
    device : "cpu" or "cuda"
    nbytes : bytes of codes + scales + table

    Example
    -------
    >>> import numpy as np, matkern
    >>> W = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    >>> qw = matkern.lut_quantize(W, bits=4, group_size=128, table="nf4")
    >>> qw.shape, qw.scales.shape, qw.packed.dtype
    ((64, 256), (64, 2), dtype('uint32'))
    """

    def __init__(self, shape, bits, group_size, table_name, table, scales, packed, layout):
        self.shape = tuple(int(s) for s in shape)
        self.bits = int(bits)
        self.group_size = int(group_size)
        self.table_name = table_name
        self.table = table
        self.scales = scales
        self.packed = packed
        self.layout = layout

    @property
    def device(self) -> str:
        return "cuda" if self.layout == "gpu" else "cpu"

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes + self.scales.nbytes + self.table.nbytes)

    def __repr__(self):
        return (
            f"LUTWeight(shape={self.shape}, bits={self.bits}, group_size={self.group_size}, "
            f"table={self.table_name!r}, device={self.device!r}, nbytes={self.nbytes})"
        )

    def codes(self):
        """The unpacked codes, uint8 (N, K), on the weight's device."""
        N, K = self.shape
        if self.layout == "gpu":
            return _lut_layout.unpack_gpu(self.packed, self.bits, N, K)
        return _lut_layout.unpack_cpu(self.packed, self.bits, K)

    def to_device(self, device):
        """This weight on ``device`` ("cpu" or "cuda"), repacked for that device's kernels."""
        fn = "LUTWeight.to_device"
        _checks.check_choice(device, "device", fn, ("cpu", "cuda"))
        if device == self.device:
            return self
        codes = _dispatch.to_host(self.codes())
        table, scales = _dispatch.to_host(self.table), _dispatch.to_host(self.scales)
        return _build(codes, scales, table, self.bits, self.group_size, self.table_name, device)

    def dequantize(self):
        """Float32 (N, K) matrix on the weight's device: see :func:`lut_dequantize`."""
        return lut_dequantize(self)


def _build(codes, scales, table, bits, group_size, table_name, device):
    N, K = codes.shape
    if device == "cuda":
        cp = _dispatch.cupy_module()
        packed = cp.asarray(_lut_layout.pack_gpu(codes, bits))
        return LUTWeight(
            (N, K),
            bits,
            group_size,
            table_name,
            cp.asarray(table),
            cp.asarray(scales),
            packed,
            "gpu",
        )
    return LUTWeight(
        (N, K),
        bits,
        group_size,
        table_name,
        table,
        scales,
        _lut_layout.pack_cpu(codes, bits),
        "cpu",
    )


def _check_table(table, bits, fn):
    if isinstance(table, str):
        _checks.check_choice(table, "table", fn, LUT_TABLES)
        if table in ("fp4", "nf4") and bits != 4:
            raise ValueError(
                f"{fn}(): table {table!r} has 16 values and needs bits=4, got bits={bits}"
            )
        return table
    if not (isinstance(table, (list, tuple, np.ndarray)) or _dispatch.is_cupy_array(table)):
        raise TypeError(
            f"{fn}(): table must be one of {LUT_TABLES} or an array of 2**bits "
            f"values, got {type(table).__name__}"
        )
    t = np.asarray(_dispatch.to_host(table))
    if t.dtype.kind not in "iuf":
        raise TypeError(f"{fn}(): table must hold real numbers, got dtype {t.dtype}")
    if t.size != 1 << bits:
        raise ValueError(f"{fn}(): table must have 2**bits = {1 << bits} values, got {t.size}")
    if not np.isfinite(t).all():
        raise ValueError(f"{fn}(): table must be finite, got NaN or Inf")
    if t.size and np.abs(t.astype(np.float64)).max() > np.finfo(np.float32).max:
        raise ValueError(
            f"{fn}(): table values must fit float32 (|value| <= 3.4028235e+38), "
            f"got max |value| = {np.abs(t.astype(np.float64)).max():.6g}"
        )
    t = t.astype(np.float32).reshape(-1)
    if not np.abs(t).max() > 0:
        raise ValueError(f"{fn}(): table must have a nonzero value")
    return t


@arrays("W", "table")
def lut_quantize(W, bits=4, group_size=128, table="nf4"):
    """Quantize a weight matrix to ``bits``-bit codes into a lookup table with group scales.

    Each row of W is cut into groups of ``group_size`` consecutive inputs; a group's scale is
    ``max|W_group| / max|table|`` and each weight becomes the index of the table value nearest
    ``W / scale`` (ties: the smaller value). Values exactly ``table[c] * scale`` come back
    exactly. The quantization runs on the host (NumPy); a CuPy W is copied over and the result
    is packed for the GPU kernels.

    Parameters
    ----------
    W : numpy.ndarray or cupy.ndarray, float16, float32 or float64, shape (N, K)
        out_features x in_features, finite (NaN/Inf: ValueError). Any strides. Each group
        scale is max|W_group| / max|table| computed in float64 and rounded once to float32;
        W beyond float32's range, a scale (or table value x scale) that overflows float32,
        and a custom table whose scale would underflow far below float32's normal range are
        refused (ValueError). Quantized a chunk of rows at a time: the call holds W, the packed
        codes and the scales plus a few MiB.
    bits : 2, 3 or 4
    group_size : 32, 64, 128 or 256
        K must be a multiple of it (ValueError otherwise: pad W with zero columns, and X with
        zero columns, to use a K that is not).
    table : "int", "fp4", "nf4" or array of 2**bits values
        "int": the uniform symmetric grid j - (2**bits-1)/2 (4 bits: -7.5, -6.5, .., 7.5; no
        exact zero, every code used); "fp4": e2m1 values
        +-{0, .5, 1, 1.5, 2, 3, 4, 6}; "nf4": NormalFloat-4 (bitsandbytes); fp4/nf4 need
        bits=4. A custom table is used in its given order (codes index it).

    Returns
    -------
    LUTWeight on W's device.

    Example
    -------
    >>> W = np.random.default_rng(0).standard_normal((128, 512)).astype(np.float32)
    >>> qw = matkern.lut_quantize(W, bits=3, group_size=64, table="int")
    >>> err = np.linalg.norm(matkern.lut_dequantize(qw) - W) / np.linalg.norm(W)  # ~0.1
    """
    fn = "lut_quantize"
    _checks.check_array(
        W,
        "W",
        fn,
        dtypes=(np.float16, np.float32, np.float64),
        ndim=2,
        contiguous=False,
        finite=True,
    )
    bits = _checks.check_int(bits, "bits", fn)
    _checks.check_choice(bits, "bits", fn, _BITS)
    group_size = _checks.check_int(group_size, "group_size", fn)
    _checks.check_choice(group_size, "group_size", fn, _GROUPS)
    tab = _check_table(table, bits, fn)
    N, K = W.shape
    if K % group_size:
        raise ValueError(
            f"{fn}(): W's in_features (K = {K}) must be a multiple of group_size "
            f"= {group_size} (pad W and X with zero columns)"
        )
    _checks.check_index_range(N, "N (out_features)", fn)
    _checks.check_index_range(K, "K (in_features)", fn)
    values, reach = ref.lut_table(tab, bits)
    ref.check_quantizable(W, values, reach, fn)
    name = tab if isinstance(tab, str) else "custom"
    device = _dispatch.device_of(W)
    # A chunk of rows at a time (~1 MiB of weights: float64 and int64 temporaries of a few
    # MiB), packed straight into the result: the call holds W, the packed codes and the
    # scales plus one chunk's temporaries (it peaked at 5x W when quantizing all of W at once).
    step = max(16, (1 << 18) // K // 16 * 16)
    scales = np.empty((N, K // group_size), np.float32)
    if device == "cuda":
        packed = np.empty((-(-N // 16), -(-K // 64), bits, 32), np.uint32)
    else:
        packed = np.empty((N, K * bits // 32), np.uint32)
    for r0 in range(0, N, step):
        r1 = min(N, r0 + step)
        codes, scales[r0:r1] = ref.quantize_rows(
            _dispatch.to_host(W[r0:r1]), values, reach, group_size, fn
        )
        if device == "cuda":
            packed[r0 // 16 : -(-r1 // 16)] = _lut_layout.pack_gpu(codes, bits)
        else:
            packed[r0:r1] = _lut_layout.pack_cpu(codes, bits)
    if device == "cuda":
        cp = _dispatch.cupy_module()
        return LUTWeight(
            (N, K),
            bits,
            group_size,
            name,
            cp.asarray(values),
            cp.asarray(scales),
            cp.asarray(packed),
            "gpu",
        )
    return LUTWeight((N, K), bits, group_size, name, values, scales, packed, "cpu")


def _check_weight(qw, fn):
    if not isinstance(qw, LUTWeight):
        raise TypeError(
            f"{fn}(): qw must be a matkern.LUTWeight (from lut_quantize), got {type(qw).__name__}"
        )


def lut_dequantize(qw, *, backend=None):
    """The float32 matrix ``table[code] * scale`` (N, K) that ``qw`` stands for.

    Parameters
    ----------
    qw : LUTWeight
    backend : {"reference", "cpu", "cuda"}, optional (default: the weight's device)

    Returns
    -------
    float32 (N, K), NumPy for a CPU weight, CuPy for a GPU weight.

    Example
    -------
    >>> W = np.float32([[1, -2, 0.5, 0] * 8])
    >>> matkern.lut_dequantize(matkern.lut_quantize(W, 4, 32, "int"))[0, :4]  # doctest: +SKIP
    """
    fn = "lut_dequantize"
    _check_weight(qw, fn)
    be = _dispatch.pick(fn, qw.packed, backend=backend)
    N, K = qw.shape
    if be == "cpu":
        out = np.empty((N, K), np.float32)
        _dispatch.cpu().lut_dequantize(
            qw.packed, qw.scales, qw.table, qw.bits, qw.group_size, K, out
        )
        return out
    # reference and cuda: unpack with array ops on the weight's device (dequantization is an
    # offline step; the fused matmul never materializes this matrix)
    xp = _dispatch.array_module(qw.packed)
    codes = qw.codes()
    w = qw.table[codes.astype(xp.int64)].reshape(N, K // qw.group_size, qw.group_size)
    return (w * qw.scales[..., None]).reshape(N, K).astype(xp.float32)


_SM_COUNT = {}


def _splits(cp, n_tiles, m_blocks, chunks):
    """(splits, chunks per split): split-K so that about 32 warps per SM have work, which
    small M alone (one 16 x 8*tm tile per warp) cannot give."""
    dev = cp.cuda.Device().id
    if dev not in _SM_COUNT:  # cached: the attribute query is slow next to a GEMV
        _SM_COUNT[dev] = cp.cuda.runtime.getDeviceProperties(dev)["multiProcessorCount"]
    want = 32 * _SM_COUNT[dev]  # warps
    s = max(1, min(chunks, -(-want // max(1, n_tiles * m_blocks))))
    per = -(-chunks // s)
    return -(-chunks // per), per


@arrays("X", "bias")
def lut_matmul(X, qw, bias=None, *, compute=None, backend=None):
    """``X @ dequant(W).T (+ bias)`` with the weight dequantized inside the kernel.

    CPU: the codes are expanded in registers and fed to FMAs in float32. 4-bit: vpshufb
    looks up the table's four byte planes (two for bfloat16-exact tables such as "int" and
    "fp4") and byte/word unpacks rebuild the floats; 2/3-bit: vpermps on the table held in a
    register. A GEMV kernel for one row of X (group scale applied once per group), a blocked
    kernel for up to 31 rows (4 weight rows dequantized 8192 columns at a time, then register
    tiles of up to 3 x 4 dot products over 256-column spans), and from 32 rows a wide one (16
    weight rows dequantized 2048 columns at a time and transposed span by span, then 6 x 16
    register tiles as in a GEMM); threads over output rows.
    The result equals the float32 product with the dequantized matrix up to float32 rounding.
    GPU: the table is kept as a half2 pair table in shared memory (8-32 copies against bank
    conflicts); codes are looked up in registers, scaled, and fed to ``mma.sync`` m16n8k16 with
    float32 accumulation; split-K so that one to a few tokens fill the GPU.

    Parameters
    ----------
    X : numpy.ndarray or cupy.ndarray, float32 or float16, shape (M, K) or (K,)
        C-contiguous, on qw's device. NaN/Inf propagate to the rows they touch.
    qw : LUTWeight, shape (N, K)
    bias : array (N,), float32 or float16, optional
    compute : {None, "float16", "bfloat16"}
        GPU only: the input type of the tensor-core products (accumulation is float32).
        None means "float16". CuPy has no bfloat16 dtype, so bfloat16 takes float32 X and
        rounds it to bfloat16 in registers. float16 needs X, the table times the scales and
        the products within float16's range (|v| < 65504); bfloat16 has float32's range at
        8 bits of precision. The CPU always computes in float32 (float16 X is widened first)
        and ignores ``compute``.
    backend : {"reference", "cpu", "cuda"}, optional

    Returns
    -------
    (M, N) or (N,) array of X's dtype and array type (float32 accumulation throughout).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> qw = matkern.lut_quantize(rng.standard_normal((256, 512)).astype(np.float32))
    >>> X = rng.standard_normal((4, 512)).astype(np.float32)
    >>> Y = matkern.lut_matmul(X, qw)
    >>> np.allclose(Y, X @ matkern.lut_dequantize(qw).T, rtol=1e-4, atol=1e-4)
    True
    """
    fn = "lut_matmul"
    _check_weight(qw, fn)
    _checks.check_array(X, "X", fn, dtypes=_X_DTYPES, ndim=(1, 2))
    N, K = qw.shape
    if X.shape[-1] != K:
        raise ValueError(
            f"{fn}(): X must have K = {K} columns (qw's in_features), got shape {X.shape}"
        )
    if bias is not None:
        _checks.check_array(bias, "bias", fn, dtypes=_X_DTYPES, ndim=1)
        if bias.shape[0] != N:
            raise ValueError(f"{fn}(): bias must have shape ({N},), got {bias.shape}")
    if compute is not None:
        _checks.check_choice(compute, "compute", fn, ("float16", "bfloat16"))
        if compute == "bfloat16" and X.dtype != np.float32:
            raise TypeError(
                f"{fn}(): compute='bfloat16' takes float32 X (CuPy has no "
                f"bfloat16 dtype), got {X.dtype}"
            )
    if _dispatch.device_of(X) != qw.device:
        raise ValueError(
            f"{fn}(): X is on {_dispatch.device_of(X)} but qw on {qw.device} (use "
            f"qw.to_device({_dispatch.device_of(X)!r}))"
        )
    be = _dispatch.pick(fn, X, bias, qw.packed, backend=backend)
    X2 = X.reshape(1, K) if X.ndim == 1 else X
    M = X2.shape[0]
    _checks.check_index_range(M, "M (rows of X)", fn)
    if be == "reference":
        codes = _dispatch.to_host(qw.codes())
        y = ref.lut_matmul_codes(
            _dispatch.to_host(X2),
            codes,
            _dispatch.to_host(qw.scales),
            _dispatch.to_host(qw.table),
            None if bias is None else _dispatch.to_host(bias),
        )
        y = _dispatch.reference_result(y.astype(X.dtype), X)
    elif be == "cpu":
        xf = X2 if X2.dtype == np.float32 else X2.astype(np.float32)
        bf = None if bias is None else bias.astype(np.float32, copy=False)
        y = np.empty((M, N), np.float32)
        _dispatch.cpu().lut_matmul(
            xf, qw.packed, qw.scales, qw.table, qw.bits, qw.group_size, bf, y
        )
        if X.dtype != np.float32:
            y = y.astype(X.dtype)
    else:
        y = _matmul_cuda(X2, qw, bias, compute or "float16")
    return y.reshape(N) if X.ndim == 1 else y


def _matmul_cuda(X, qw, bias, compute):
    cp = _dispatch.cupy_module()
    N, K = qw.shape
    M = X.shape[0]
    tm = 1 if M <= 8 else (2 if M <= 16 else 4)  # token tiles of 8 per warp
    m_blocks = -(-M // (8 * tm))
    n_tiles, chunks = qw.packed.shape[0], qw.packed.shape[1]
    splits, per = _splits(cp, n_tiles, m_blocks, chunks)
    ws = cp.empty((splits, M, N), cp.float32)
    out = cp.empty((M, N), X.dtype)
    bf = None if bias is None else bias.astype(cp.float32, copy=False)
    _dispatch.cuda().lut_matmul(
        X,
        qw.packed,
        qw.scales,
        qw.table,
        qw.bits,
        qw.group_size,
        N,
        K,
        tm,
        per,
        compute == "bfloat16",
        ws,
        bf,
        out,
        _dispatch.stream_ptr(),
    )
    return out
