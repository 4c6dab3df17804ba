"""LUT-quantized weight matmul (FLUTE): 2/3/4-bit codes into a lookup table, group scales,
dequantized inside the matmul."""

from __future__ import annotations

import math

import numpy as np

from . import _checks, _dispatch, _lut_bnb, _lut_layout, _quant_api, _rotate_quant
from ._interop import array_methods, arrays
from .reference import lut as ref

# lut_matmul's (and LUTLinear's) compute= choices besides None
_COMPUTE = ("float16", "bfloat16", "int8")

__all__ = ["LUTWeight", "LUTLinear", "lut_quantize", "lut_dequantize", "lut_matmul", "LUT_TABLES"]

LUT_TABLES = ref.TABLE_NAMES  # ("int", "fp4", "fp4_e2m1", "nf4")
_BITS = (2, 3, 4)
_GROUP_MAX = 4096
_X_DTYPES = (np.float32, np.float16)


class LUTWeight:
    """A weight matrix W (N out_features x K in_features) stored as ``bits``-bit codes into a
    table of 2**bits float32 values, with one float32 scale per group of ``group_size``
    consecutive inputs of a row: ``W[n, k] ~ table[codes[n, k]] * scales[n, k // group_size]``
    (the last group of a row holds the K % group_size rest when group_size does not divide K).

    Made by :func:`lut_quantize` or :meth:`from_bitsandbytes`; used by :func:`lut_matmul`,
    :class:`LUTLinear` and :func:`lut_dequantize`. The codes are packed in the order the
    kernels of its device read them (see ``matkern._lut_layout``): a weight made from a NumPy
    array lives on the CPU, one made from a CuPy array on the GPU (in the mma tile order);
    :meth:`to_device` converts. The same attributes as :class:`matkern.Int8Weight`: ``shape``,
    ``device``, ``nbytes``, ``codes``, ``scales``, ``to_device()``, ``dequantize()``.

    Attributes
    ----------
    shape : (N, K)
    bits : 2, 3 or 4
    group_size : int, columns per group (K for a weight quantized with one group per row)
    table_name : "int", "fp4" (bitsandbytes'), "fp4_e2m1" (OCP), "nf4" or "custom"
    table : float32 array (2**bits,) on the weight's device
    scales : float32 array (N, ceil(K / group_size)) on the weight's device
    codes : uint8 array (N, K), the unpacked codes (a new array on each access)
    packed : uint32 array, the packed codes (layout "cpu" or "gpu")
    device : "cpu" or "cuda"
    nbytes : bytes of the packed codes + scales + table

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
        self.rotation = None  # a HadamardRotation when made by lut_quantize(..., rotation=)
        if layout == "gpu":
            self._check_gpu_arrays()

    def _check_gpu_arrays(self):
        """The CUDA launcher reads the arrays by pointer (no per-call DLPack import): their
        types, order and sizes are checked once, here."""
        N, K = self.shape
        kp = _lut_layout.k32(K)
        want = {
            "packed": (np.uint32, -(-N // 16) * -(-kp // 64) * self.bits * 32),
            "scales": (np.float32, N * -(-kp // self._kernel_gs)),
            "table": (np.float32, 1 << self.bits),
        }
        for name, (dt, size) in want.items():
            a = getattr(self, name)
            ok = _dispatch.is_cupy_array(a) and a.dtype == dt and a.flags.c_contiguous
            if not ok or a.size != size:
                raise ValueError(
                    f"LUTWeight: {name} must be a C-contiguous CuPy {np.dtype(dt).name} array "
                    f"of {size} elements for layout 'gpu', got {type(a).__name__} of dtype "
                    f"{getattr(a, 'dtype', None)} and size {getattr(a, 'size', None)}"
                )

    @property
    def device(self) -> str:
        return "cuda" if self.layout == "gpu" else "cpu"

    @property
    def out_features(self) -> int:
        return self.shape[0]

    @property
    def in_features(self) -> int:
        return self.shape[1]

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes + self.scales.nbytes + self.table.nbytes)

    @property
    def _kernel_gs(self) -> int:
        """The group size the kernels take: a multiple of 32 (one group per row: K rounded up,
        which still makes one group)."""
        return _lut_layout.k32(self.group_size)

    @property
    def _int8_table(self):
        """(t8, tfac) of compute="int8" (reference.lut_table_int8), made once per weight."""
        cached = getattr(self, "_t8", None)
        if cached is None:
            cached = self._t8 = ref.lut_table_int8(_dispatch.to_host(self.table))
        return cached

    def __repr__(self):
        return (
            f"LUTWeight(shape={self.shape}, bits={self.bits}, group_size={self.group_size}, "
            f"table={self.table_name!r}, device={self.device!r}, nbytes={self.nbytes})"
        )

    @property
    def codes(self):
        """The unpacked codes, uint8 (N, K), on the weight's device (a property since 0.1.0;
        it was the method ``codes()``)."""
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
        codes = _dispatch.to_host(self.codes)
        table, scales = _dispatch.to_host(self.table), _dispatch.to_host(self.scales)
        moved = _build(codes, scales, table, self.bits, self.group_size, self.table_name, device)
        moved.rotation = self.rotation
        return moved

    def dequantize(self, dtype=np.float32):
        """The (N, K) matrix ``table[code] * scale`` in ``dtype`` (float32 or float16) on the
        weight's device: see :func:`lut_dequantize`. A rotated weight (``rotation`` set) is
        rotated back: the result approximates the original W."""
        if self.rotation is None:
            return lut_dequantize(self, dtype=dtype)
        dt = _quant_api.check_dequant_dtype(dtype, "LUTWeight.dequantize")
        return self.rotation.apply_transpose(lut_dequantize(self)).astype(dt, copy=False)

    @classmethod
    def from_bitsandbytes(cls, packed, absmax, shape, quant_type, blocksize):
        """A weight already quantized by bitsandbytes (``bitsandbytes.functional.quantize_4bit``,
        or a ``Linear4bit``'s ``weight.data`` and ``weight.quant_state``), without requantizing:
        the same codes, the same float32 values ``table[code] * absmax`` when dequantized.

        bitsandbytes flattens W (N, K) row by row and quantizes blocks of ``blocksize``
        consecutive values with one absmax each, packing two codes per byte (first code in
        the high nibble). Its blocks become this weight's per-row groups: blocksize dividing
        K gives groups of blocksize, a multiple of K one group per row, otherwise groups of
        gcd(K, blocksize) (which must be a multiple of 32; ValueError otherwise) with each
        block's absmax repeated.

        Parameters
        ----------
        packed : numpy or cupy uint8 array, ceil(N*K / 2) bytes (any shape; bitsandbytes'
            (n/2, 1)). Stored with another ``quant_storage`` dtype: pass ``packed.view(uint8)``.
            A torch tensor: ``t.cpu().numpy()``.
        absmax : float32 (or float16/float64) array (ceil(N*K / blocksize),), finite, >= 0.
            With ``compress_statistics=True`` (nested absmax) pass the dequantized absmax
            (``bitsandbytes.functional.dequantize_blockwise(qs.absmax, qs.state2) + qs.offset``).
        shape : (N, K), the weight's shape (``quant_state.shape``)
        quant_type : "nf4" or "fp4" (bitsandbytes' fp4, this module's table "fp4")
        blocksize : int > 0 (``quant_state.blocksize``)

        Returns
        -------
        LUTWeight (bits 4, table quant_type) on packed's device.

        Example
        -------
        >>> codes = np.arange(64, dtype=np.uint8) % 16
        >>> packed = (codes[0::2] << 4 | codes[1::2]).astype(np.uint8)
        >>> qw = matkern.LUTWeight.from_bitsandbytes(packed, np.float32([2.0]), (2, 32), "nf4", 64)
        >>> qw.dequantize()[0, :2]  # nf4 codes 0, 1 times absmax 2
        array([-2.       , -1.3923856], dtype=float32)
        """
        fn = "LUTWeight.from_bitsandbytes"
        _checks.check_array(packed, "packed", fn, dtypes=(np.uint8,), contiguous=False)
        _checks.check_array(
            absmax, "absmax", fn, dtypes=(np.float16, np.float32, np.float64), contiguous=False
        )
        _checks.check_choice(quant_type, "quant_type", fn, _lut_bnb.QUANT_TYPES)
        blocksize = _checks.check_int(blocksize, "blocksize", fn, min_value=1)
        N, K = _check_shape(shape, fn)
        n = N * K
        if packed.size != -(-n // 2):
            raise ValueError(
                f"{fn}(): packed must hold ceil(N*K / 2) = {-(-n // 2)} bytes for shape "
                f"{(N, K)}, got {packed.size}"
            )
        nblocks = -(-n // blocksize)
        if absmax.size != nblocks:
            raise ValueError(
                f"{fn}(): absmax must have ceil(N*K / blocksize) = {nblocks} values for shape "
                f"{(N, K)} and blocksize {blocksize}, got {absmax.size}"
            )
        am = np.asarray(_dispatch.to_host(absmax), np.float64).reshape(-1)
        if not np.isfinite(am).all() or (am < 0).any() or am.max() > np.finfo(np.float32).max:
            raise ValueError(f"{fn}(): absmax must be finite, >= 0 and within float32's range")
        gs = _lut_bnb.group_size_for(K, blocksize)
        if gs is None:
            raise ValueError(
                f"{fn}(): blocks of blocksize = {blocksize} over rows of K = {K} cannot be "
                f"held in per-row groups: gcd(K, blocksize) = {math.gcd(K, blocksize)} is "
                f"not a multiple of 32 (and blocksize is not a multiple of K)"
            )
        codes = _lut_bnb.unpack_nibbles(_dispatch.to_host(packed), n).reshape(N, K)
        scales = _lut_bnb.scales_from_absmax(am.astype(np.float32), N, K, blocksize, gs)
        table = ref.bnb_table(quant_type)
        return _build(codes, scales, table, 4, gs, quant_type, _dispatch.device_of(packed))

    def to_bitsandbytes(self, blocksize=None):
        """This weight in bitsandbytes' 4-bit format: ``(packed, absmax, shape, quant_type,
        blocksize)``, so that ``LUTWeight.from_bitsandbytes(*w.to_bitsandbytes())`` and
        ``bitsandbytes.functional.dequantize_4bit`` read it back (NumPy arrays: packed uint8
        (ceil(N*K / 2), 1), absmax float32 (ceil(N*K / blocksize),)).

        Needs a bitsandbytes table ("nf4" or "fp4", ValueError otherwise) and a ``blocksize``
        whose blocks of the flattened weight each fall in groups of one scale. Default: the
        group size, when it divides K. An odd N*K is padded with the code of 0, as
        bitsandbytes does.

        Example
        -------
        >>> W = np.random.default_rng(0).standard_normal((8, 128)).astype(np.float32)
        >>> packed, absmax, shape, qt, bs = matkern.lut_quantize(W, 4, 64, "nf4").to_bitsandbytes()
        >>> packed.shape, absmax.shape, shape, qt, bs
        ((512, 1), (16,), (8, 128), 'nf4', 64)
        """
        fn = "LUTWeight.to_bitsandbytes"
        if self.table_name not in _lut_bnb.QUANT_TYPES:
            raise ValueError(
                f"{fn}(): bitsandbytes has the tables 'nf4' and 'fp4' only, this weight uses "
                f"{self.table_name!r}"
            )
        N, K = self.shape
        if blocksize is None:
            if K % self.group_size:
                raise ValueError(
                    f"{fn}(): group_size = {self.group_size} does not divide K = {K}: pass a "
                    f"blocksize whose blocks each fall in groups of one scale"
                )
            blocksize = self.group_size
        blocksize = _checks.check_int(blocksize, "blocksize", fn, min_value=1)
        scales = _dispatch.to_host(self.scales)
        absmax = _lut_bnb.absmax_from_scales(scales, N, K, self.group_size, blocksize)
        if absmax is None:
            raise ValueError(
                f"{fn}(): blocks of blocksize = {blocksize} would span groups of different "
                f"scales (group_size = {self.group_size}, K = {K})"
            )
        table = _dispatch.to_host(self.table)
        pad = int(np.flatnonzero(table == 0)[0])
        packed = _lut_bnb.pack_nibbles(_dispatch.to_host(self.codes).reshape(-1), pad)
        return packed, absmax, (N, K), self.table_name, blocksize


def _check_shape(shape, fn):
    if not (isinstance(shape, (tuple, list)) or hasattr(shape, "__len__")) or len(shape) != 2:
        raise ValueError(f"{fn}(): shape must be (N, K), got {shape!r}")
    N = _checks.check_int(shape[0], "shape[0]", fn, min_value=1)
    K = _checks.check_int(shape[1], "shape[1]", fn, min_value=1)
    return N, K


def _check_group_size(group_size, K, fn):
    """group_size: a multiple of 32 from 32 to 4096, or None / -1 (one group per row: K)."""
    if group_size is None:
        return K
    group_size = _checks.check_int(group_size, "group_size", fn)
    if group_size == -1:
        return K
    if group_size % 32 or not 32 <= group_size <= _GROUP_MAX:
        raise ValueError(
            f"{fn}(): group_size must be a multiple of 32 from 32 to {_GROUP_MAX}, or None "
            f"(or -1) for one group per row, got {group_size}"
        )
    return group_size


def _gpu_array(a, dtype):
    """``a`` on the GPU, C-contiguous ``dtype``: the CUDA launcher reads it by pointer."""
    cp = _dispatch.cupy_module()
    return cp.ascontiguousarray(cp.asarray(a), dtype=dtype)


def _build(codes, scales, table, bits, group_size, table_name, device):
    N, K = codes.shape
    if device == "cuda":
        packed = _gpu_array(_lut_layout.pack_gpu(codes, bits), np.uint32)
        return LUTWeight(
            (N, K),
            bits,
            group_size,
            table_name,
            _gpu_array(table, np.float32),
            _gpu_array(scales, np.float32),
            packed,
            "gpu",
        )
    return LUTWeight(
        (N, K),
        bits,
        group_size,
        table_name,
        np.ascontiguousarray(table, np.float32),
        np.ascontiguousarray(scales, np.float32),
        _lut_layout.pack_cpu(codes, bits),
        "cpu",
    )


def _check_table(table, bits, fn):
    if isinstance(table, str):
        _checks.check_choice(table, "table", fn, LUT_TABLES)
        if table != "int" and bits != 4:
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
def lut_quantize(W, bits=4, group_size=128, table="nf4", *, rotation=None):
    """Quantize a weight matrix to ``bits``-bit codes into a lookup table with group scales.

    Each row of W is cut into groups of ``group_size`` consecutive inputs (the last group
    holds the rest when group_size does not divide K); a group's scale is
    ``max|W_group| / max|table|`` and each weight becomes the index of the table value nearest
    ``W / scale`` (ties: the smaller value; a negative weight nearest 0 takes the table's -0.0
    where it has one, as bitsandbytes does). Values exactly ``table[c] * scale`` come back
    exactly. The quantization runs on the host (NumPy); a CuPy W is copied over and the result
    is packed for the GPU kernels.

    Parameters
    ----------
    W : numpy.ndarray or cupy.ndarray, float16, float32 or float64, shape (N, K)
        out_features x in_features, any K, finite (NaN/Inf: ValueError). Any strides. Each
        group scale is max|W_group| / max|table| computed in float64 and rounded once to
        float32; W beyond float32's range, a scale (or table value x scale) that overflows
        float32, and a custom table whose scale would underflow far below float32's normal
        range are refused (ValueError). Quantized a chunk of rows at a time: the call holds W,
        the packed codes and the scales plus a few MiB.
    bits : 2, 3 or 4
    group_size : int, a multiple of 32 from 32 to 4096, or None (or -1): one group per row
        (the weight's ``group_size`` is then K). Groups of 32..256 columns that divide K take
        the kernels' fastest paths.
    table : "int", "fp4", "fp4_e2m1", "nf4" or array of 2**bits values
        "int": the uniform symmetric grid j - (2**bits-1)/2 (4 bits: -7.5, -6.5, .., 7.5; no
        exact zero, every code used); "fp4": bitsandbytes' fp4 (its codes and values:
        +-{0, 0.0625, 2, 3, 4, 6, 8, 12} / 12, the scale is the group's absmax);
        "fp4_e2m1": the OCP MX e2m1 values +-{0, .5, 1, 1.5, 2, 3, 4, 6} ("fp4" before 0.1.0);
        "nf4": NormalFloat-4 (bitsandbytes); the named 16-value tables need bits=4. A custom
        table is used in its given order (codes index it).
    rotation : matkern.HadamardRotation of dimension K, optional (keyword only)
        Quantize the rotated weight ``W @ Q`` instead (QuaRot-style) and keep Q with the
        weight (its ``rotation`` attribute): :func:`lut_matmul` rotates X the same way, so
        ``X @ W.T`` is unchanged up to the quantization error; ``dequantize()`` rotates back.
        The matmul writes the rotated rows of X straight into the buffer its kernel reads
        (one pass, CPU and GPU) where the base order m <= 64.

    Returns
    -------
    LUTWeight on W's device.

    Example
    -------
    >>> W = np.random.default_rng(0).standard_normal((128, 500)).astype(np.float32)
    >>> qw = matkern.lut_quantize(W, bits=3, group_size=64, table="int")  # 8 groups, last 52
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
    N, K = W.shape
    rotation = _quant_api.check_rotation(rotation, K, fn)
    if rotation is not None:
        W = _quant_api.rotate(W, rotation)
        qw = lut_quantize(W, bits, group_size, table)
        qw.rotation = rotation
        return qw
    group_size = _check_group_size(group_size, K, fn)
    tab = _check_table(table, bits, fn)
    _checks.check_index_range(N, "N (out_features)", fn)
    _checks.check_index_range(_lut_layout.k32(K), "K (in_features)", fn)
    values, reach = ref.lut_table(tab, bits)
    ref.check_quantizable(W, values, reach, fn)
    name = tab if isinstance(tab, str) else "custom"
    device = _dispatch.device_of(W)
    # A chunk of rows at a time (~1 MiB of weights: float64 and int64 temporaries of a few
    # MiB), packed straight into the result: the call holds W, the packed codes and the
    # scales plus one chunk's temporaries (it peaked at 5x W when quantizing all of W at once).
    step = max(16, (1 << 18) // K // 16 * 16)
    scales = np.empty((N, ref.n_groups(K, group_size)), np.float32)
    if device == "cuda":
        packed = np.empty((-(-N // 16), -(-K // 64), bits, 32), np.uint32)
    else:
        packed = np.empty((N, _lut_layout.k32(K) * bits // 32), np.uint32)
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
        return LUTWeight(
            (N, K),
            bits,
            group_size,
            name,
            _gpu_array(values, np.float32),
            _gpu_array(scales, np.float32),
            _gpu_array(packed, np.uint32),
            "gpu",
        )
    return LUTWeight((N, K), bits, group_size, name, values, scales, packed, "cpu")


def _check_weight(qw, fn, name="qw"):
    if not isinstance(qw, LUTWeight):
        raise TypeError(
            f"{fn}(): {name} must be a matkern.LUTWeight (from lut_quantize or "
            f"LUTWeight.from_bitsandbytes), got {type(qw).__name__}"
        )


_DEQUANT_ROWS_BYTES = 4 << 20  # float16 output: float32 rows decoded this many bytes at a time


def lut_dequantize(qw, *, dtype=np.float32, backend=None):
    """The matrix ``table[code] * scale`` (N, K) that ``qw`` stands for.

    Parameters
    ----------
    qw : LUTWeight
    dtype : float32 (default) or float16
        Each value is computed in float32 (exact: one product) and rounded once to dtype;
        float16 is made a block of rows at a time (no float32 copy of the whole matrix).
        Values beyond float16's range become +-inf.
    backend : {"reference", "cpu", "cuda"}, optional (default: the weight's device)

    Returns
    -------
    dtype (N, K), NumPy for a CPU weight, CuPy for a GPU weight.

    Example
    -------
    >>> W = np.float32([[1, -2, 0.5, 0] * 8])
    >>> matkern.lut_dequantize(matkern.lut_quantize(W, 4, 32, "int"))[0, :4]  # doctest: +SKIP
    >>> matkern.lut_dequantize(matkern.lut_quantize(W), dtype=np.float16).dtype
    dtype('float16')
    """
    fn = "lut_dequantize"
    _check_weight(qw, fn)
    dt = _quant_api.check_dequant_dtype(dtype, fn)
    be = _dispatch.pick(fn, qw.packed, backend=backend)
    N, K = qw.shape
    if be == "cpu":
        out = np.empty((N, K), dt)
        rows = N if dt == np.float32 else max(1, _DEQUANT_ROWS_BYTES // (4 * K))
        for r0 in range(0, N, rows):
            r1 = min(N, r0 + rows)
            part = out[r0:r1] if dt == np.float32 else np.empty((r1 - r0, K), np.float32)
            _dispatch.cpu().lut_dequantize(
                qw.packed[r0:r1], qw.scales[r0:r1], qw.table, qw.bits, qw._kernel_gs, K, part
            )
            if dt != np.float32:
                out[r0:r1] = part
        return out
    # reference and cuda: unpack with array ops on the weight's device (dequantization is an
    # offline step; the fused matmul never materializes this matrix)
    xp = _dispatch.array_module(qw.packed)
    codes = qw.codes
    group = xp.arange(K) // qw.group_size
    w = qw.table[codes.astype(xp.int64)] * qw.scales[:, group]
    return w.astype(xp.float32).astype(dt, copy=False)


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


@_quant_api.call_form("lut_matmul(X, W, *, bias=None, compute=None, backend=None)", ("qw",))
@arrays("X", "bias")
def lut_matmul(X, W, *, bias=None, compute=None, backend=None):
    """``X @ dequant(W).T (+ bias)`` with the weight dequantized inside the kernel.

    CPU: the codes are expanded in registers and fed to FMAs in float32. 4-bit: vpshufb
    looks up the table's four byte planes (two for bfloat16-exact tables such as "int" and
    "fp4_e2m1") and byte/word unpacks rebuild the floats; 2/3-bit: vpermps on the table held
    in a register. A GEMV kernel for one row of X (group scale applied once per group), a
    blocked kernel for up to 31 rows (4 weight rows dequantized 8192 columns at a time, then
    register tiles of up to 3 x 4 dot products over 256-column spans), and from 32 rows a wide
    one (16 weight rows dequantized 2048 columns at a time and transposed span by span, then
    6 x 16 register tiles as in a GEMM); threads over output rows.
    The result equals the float32 product with the dequantized matrix up to float32 rounding.
    GPU: the table is kept as a half2 pair table in shared memory (8-32 copies against bank
    conflicts); codes are looked up in registers, scaled, and fed to ``mma.sync`` m16n8k16 with
    float32 accumulation; split-K so that one to a few tokens fill the GPU.

    Parameters
    ----------
    X : numpy.ndarray or cupy.ndarray, float32 or float16, shape (..., K)
        Any strides, on W's device (copied to a C-contiguous float32 array only where the
        kernel needs one: strided X, float16 X on the CPU, and K not a multiple of 32, where X
        is padded with zero columns). NaN/Inf propagate to the rows they touch. No rows gives
        an empty result.
    W : LUTWeight, shape (N, K)
    bias : array (N,), float32 or float16, optional (keyword only)
    compute : {None, "float16", "bfloat16", "int8"}
        GPU: the input type of the tensor-core products (accumulation is float32).
        None means "float16". CuPy has no bfloat16 dtype, so bfloat16 takes float32 X and
        rounds it to bfloat16 in registers. float16 needs X, the table times the scales and
        the products within float16's range (|v| < 65504); bfloat16 has float32's range at
        8 bits of precision. The CPU computes in float32 (float16 X is widened first) for
        None, "float16" and "bfloat16".
        "int8" (CPU and reference; ValueError on the GPU): lower-precision activations, as
        torch's int4 CPU kernel takes bfloat16 ones. Each row of X is quantized to int8 codes
        by its absmax (as :func:`int8_matmul` does) and the table to int8
        (``reference.lut_table_int8``: exact for "int" and "fp4_e2m1", else rounded to
        max|table| / 254 at most), the products are exact integer sums per group
        (AVX-512 VNNI ``vpdpbusd`` for 4-bit weights with group_size and K multiples of 128,
        a portable loop otherwise) and ``y = sum_g scale_g * S_g * absmax / 127 / tfac``
        (float32 sums of the group terms). It moves each x by at most half a code step of
        its row's absmax / 127 (and nf4/fp4 table values by half a step of max|table| / 127):
        on N(0, 1) data the result is about 1% (relative norm) from the float32 path's, and
        its error against the exact product barely moves (nf4 g128: 8.5% -> 8.6%). A row
        holding NaN or Inf gives a NaN row.
    backend : {"reference", "cpu", "cuda"}, optional

    Returns
    -------
    (..., N) array of X's dtype and array type (float32 accumulation throughout).

    Before 0.1.0 the call was ``lut_matmul(X, qw, bias)``: a third positional argument or
    ``qw=`` raises a TypeError showing this form.

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
    _check_weight(W, fn, "W")
    # float64 (NumPy's default) is converted to float32, a copy (as in int8_matmul)
    X, bias = _quant_api.float64_to_float32(X), _quant_api.float64_to_float32(bias)
    _checks.check_array(
        X, "X", fn, dtypes=_X_DTYPES, min_ndim=1, contiguous=False, allow_empty=True
    )
    N, K = W.shape
    if X.shape[-1] != K:
        raise ValueError(
            f"{fn}(): X must have K = {K} columns (W's in_features), got shape {X.shape}"
        )
    if bias is not None:
        _checks.check_array(bias, "bias", fn, dtypes=_X_DTYPES, ndim=1, contiguous=False)
        if bias.shape[0] != N:
            raise ValueError(f"{fn}(): bias must have shape ({N},), got {bias.shape}")
    if compute is not None:
        _checks.check_choice(compute, "compute", fn, _COMPUTE)
        if compute == "bfloat16" and X.dtype != np.float32:
            raise TypeError(
                f"{fn}(): compute='bfloat16' takes float32 X (CuPy has no "
                f"bfloat16 dtype), got {X.dtype}"
            )
    if _dispatch.device_of(X) != W.device:
        raise ValueError(
            f"{fn}(): X is on {_dispatch.device_of(X)} but W on {W.device} (use "
            f"W.to_device({_dispatch.device_of(X)!r}))"
        )
    be = _dispatch.pick(fn, X, bias, W.packed, backend=backend)
    if compute == "int8" and be == "cuda":
        raise ValueError(
            f"{fn}(): compute='int8' runs on the CPU (and the reference backend); the GPU takes "
            f"compute='float16' or 'bfloat16'"
        )
    # a rotated weight: X @ W.T = (X Q)(W Q)^T. X rotated straight into the padded rows the
    # kernel reads (_rotate_quant); otherwise one fast transform of X first.
    fused = _rotate_quant.fusable(W.rotation, be)
    if not fused:
        X = _quant_api.rotate(X, W.rotation)
    lead = X.shape[:-1]
    M = int(np.prod(lead)) if lead else 1
    _checks.check_index_range(M, "M (rows of X)", fn)
    xp = _dispatch.array_module(X)
    if M == 0:
        return xp.zeros(lead + (N,), X.dtype)
    X2 = X.reshape(M, K)
    if be == "reference":
        y = (ref.lut_matmul_int8_codes if compute == "int8" else ref.lut_matmul_codes)(
            _dispatch.to_host(X2),
            _dispatch.to_host(W.codes),
            _dispatch.to_host(W.scales),
            _dispatch.to_host(W.table),
            None if bias is None else _dispatch.to_host(bias),
            W.group_size,
        )
        y = _dispatch.reference_result(y.astype(X.dtype), X)
    elif be == "cpu":
        if fused:
            xf = _rotate_quant.lut_rows(X2, W.rotation, _lut_layout.k32(K), be)
        else:
            xf = _kernel_x(X2, np.float32, np)
        bf = None if bias is None else np.ascontiguousarray(bias, np.float32)
        y = np.empty((M, N), np.float32)
        if compute == "int8":
            t8, tfac = W._int8_table
            _dispatch.cpu().lut_matmul_i8(
                xf, W.packed, W.scales, W.table, t8, tfac, W.bits, W._kernel_gs, bf, y
            )
        else:
            _dispatch.cpu().lut_matmul(xf, W.packed, W.scales, W.table, W.bits, W._kernel_gs, bf, y)
        if X.dtype != np.float32:
            y = y.astype(X.dtype)
    else:
        xk = (
            _rotate_quant.lut_rows(X2, W.rotation, _lut_layout.k32(K), be)
            if fused
            else _kernel_x(X2, X2.dtype, xp)
        )
        y = _matmul_cuda(xk, W, bias, compute or "float16")
    return y.reshape(lead + (N,))


def _kernel_x(X2, dtype, xp):
    """X (M, K) as the kernels read it: C-contiguous ``dtype``, K padded with zero columns to
    a multiple of 32 (the packed codes past K are 0: zero columns add exact zeros). A copy only
    where one of these is needed."""
    M, K = X2.shape
    kp = _lut_layout.k32(K)
    if kp == K:
        return xp.ascontiguousarray(X2, dtype=dtype)
    xk = xp.zeros((M, kp), dtype)
    xk[:, :K] = X2
    return xk


def _matmul_cuda(X, qw, bias, compute):
    cp = _dispatch.cupy_module()
    N = qw.shape[0]
    M, K = X.shape  # K: padded to a multiple of 32
    tm = 1 if M <= 8 else (2 if M <= 16 else 4)  # token tiles of 8 per warp
    m_blocks = -(-M // (8 * tm))
    n_tiles, chunks = qw.packed.shape[0], qw.packed.shape[1]
    splits, per = _splits(cp, n_tiles, m_blocks, chunks)
    if X.dtype not in (cp.float16, cp.float32):  # _kernel_x's callers give one of these
        raise TypeError(f"lut_matmul(): X must be float16 or float32 here, got {X.dtype}")
    half = X.dtype == cp.float16
    ws = cp.empty((splits, M, N), cp.float32)
    out = cp.empty((M, N), X.dtype)
    bf = None if bias is None else cp.ascontiguousarray(bias, dtype=cp.float32)
    # device pointers: the weight's arrays are contiguous and their shapes were checked when
    # it was made (LUTWeight owns them); X, ws, out and bf are made contiguous here
    _dispatch.cuda().lut_matmul(
        X.data.ptr, half, M, K, qw.packed.data.ptr, qw.scales.data.ptr, qw.table.data.ptr,
        qw.bits, qw._kernel_gs, N, tm, per, compute == "bfloat16", ws.data.ptr, splits,
        0 if bf is None else bf.data.ptr, out.data.ptr, half, cp.cuda.get_current_stream().ptr,
    )  # fmt: skip
    return out


@array_methods(init=True, array_like=True)
class LUTLinear:
    """A linear layer y = x @ W.T + bias with W stored as LUT codes (see :func:`lut_quantize`),
    the counterpart of :class:`matkern.Int8Linear`: the same constructor and call conventions.

    Parameters
    ----------
    W : array (out_features, in_features), float16/float32/float64, NumPy or CuPy
        Quantized with ``bits``, ``group_size`` and ``table`` on W's device. A weight that is
        already quantized (a :class:`LUTWeight`, e.g. from ``LUTWeight.from_bitsandbytes``):
        :meth:`from_weight`.
    bias : array (out_features,), float32 or float16, optional
    bits, group_size, table : as in :func:`lut_quantize` (keyword only; defaults 4, 128, "nf4")
    rotation : matkern.HadamardRotation, optional (keyword only): see :func:`lut_quantize`
    compute : as in :func:`lut_matmul` ("float16"/"bfloat16" on the GPU, "int8" on the CPU)
    backend : {"reference", "cpu", "cuda"}, optional

    Calling it on X (..., in_features) float32/float16 on the weight's device returns
    (..., out_features) of X's dtype.

    Example
    -------
    >>> import numpy as np, matkern
    >>> layer = matkern.LUTLinear(np.eye(64, dtype=np.float32), bias=np.ones(64, np.float32))
    >>> layer(np.arange(64, dtype=np.float32))[:3]  # nf4 keeps 0 and the group maxima exact
    array([1., 2., 3.], dtype=float32)
    """

    def __init__(
        self,
        W,
        bias=None,
        *,
        bits=4,
        group_size=128,
        table="nf4",
        rotation=None,
        compute=None,
        backend=None,
    ):
        qw = lut_quantize(W, bits, group_size, table, rotation=rotation)
        self._setup(qw, bias, compute, backend)

    @classmethod
    def from_weight(cls, W, bias=None, *, compute=None, backend=None):
        """A layer on an already quantized :class:`LUTWeight` W (used as it is)."""
        _check_weight(W, "LUTLinear.from_weight", "W")
        layer = cls.__new__(cls)
        layer._setup(W, bias, compute, backend)
        return layer

    def _setup(self, weight, bias, compute, backend):
        fn = "LUTLinear"
        if bias is not None:
            _checks.check_array(bias, "bias", fn, dtypes=_X_DTYPES, ndim=1, contiguous=False)
            if bias.shape[0] != weight.shape[0]:
                raise ValueError(
                    f"{fn}(): bias must have shape ({weight.shape[0]},), got {bias.shape}"
                )
        if compute is not None:
            _checks.check_choice(compute, "compute", fn, _COMPUTE)
        if backend is not None:
            _checks.check_choice(backend, "backend", fn, ("reference", "cpu", "cuda"))
        self.weight = weight
        self.bias = bias
        self.compute = compute
        self.backend = backend

    @property
    def in_features(self):
        return self.weight.in_features

    @property
    def out_features(self):
        return self.weight.out_features

    def __call__(self, X):
        return lut_matmul(
            X, self.weight, bias=self.bias, compute=self.compute, backend=self.backend
        )

    def __repr__(self):
        w = self.weight
        return (
            f"LUTLinear(in_features={self.in_features}, out_features={self.out_features}, "
            f"bits={w.bits}, group_size={w.group_size}, table={w.table_name!r}, "
            f"device={w.device!r})"
        )
