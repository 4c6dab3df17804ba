"""Backend choice, written once for every kernel family.

NumPy input runs the C++ CPU kernels, CuPy input the CUDA kernels on CuPy's current stream;
``backend="reference" | "cpu" | "cuda"`` forces one. Asking for a backend that is not there
raises one RuntimeError that says why (not built, no GPU, no CuPy).
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

BACKENDS = ("reference", "cpu", "cuda")

try:
    from . import _cpu  # type: ignore[attr-defined]

    _cpu_error = None
except ImportError as exc:  # the CPU module always builds; this is a broken install
    _cpu = None
    _cpu_error = f"the CPU extension module failed to import: {exc}"

if importlib.util.find_spec(__package__ + "._cuda") is None:
    _cuda = None
    _cuda_error = (
        "matkern was built without its CUDA module (no CUDA compiler at build time, or "
        "MATKERN_CUDA=OFF)"
    )
else:
    try:
        from . import _cuda  # type: ignore[attr-defined]

        _cuda_error = None
    except ImportError as exc:
        _cuda = None
        _cuda_error = f"the CUDA extension module failed to import: {exc}"

_cupy = None
_cupy_error = None
_gpu_checked = None


def cupy_module():
    """Return the cupy module, or raise RuntimeError saying why it cannot be imported."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            _cupy = importlib.import_module("cupy")
        except Exception as exc:  # ImportError, or CUDA errors raised at import
            _cupy_error = f"CuPy is not importable: {exc}"
    if _cupy is None:
        raise RuntimeError(_cupy_error)
    return _cupy


def is_cupy_array(x) -> bool:
    """True for a cupy.ndarray (checked without importing CuPy)."""
    t = type(x)
    return t.__module__.split(".")[0] == "cupy" and t.__name__ == "ndarray"


def is_cupyx_sparse(x) -> bool:
    """True for a cupyx.scipy.sparse matrix (checked without importing CuPy)."""
    return type(x).__module__.startswith("cupyx.scipy.sparse")


def is_sparse(x) -> bool:
    """True for a scipy.sparse or cupyx.scipy.sparse matrix or array (checked without
    importing either)."""
    return type(x).__module__.startswith("scipy.sparse") or is_cupyx_sparse(x)


def device_of(x) -> str:
    """'cpu' for NumPy arrays and scipy.sparse matrices, 'cuda' for CuPy/cupyx ones."""
    if isinstance(x, np.ndarray):
        return "cpu"
    if is_cupy_array(x) or is_cupyx_sparse(x):
        return "cuda"
    if is_sparse(x):  # scipy.sparse: the cupyx case returned above
        return "cpu"
    raise TypeError(f"expected a NumPy or CuPy array, got {type(x).__module__}.{type(x).__name__}")


def gpu_status() -> tuple[bool, str]:
    """(usable, reason): whether the CUDA backend can run now, and why not."""
    global _gpu_checked
    if _gpu_checked is None:
        if _cuda is None:
            _gpu_checked = (False, _cuda_error)
        else:
            info = _cuda.device_info()
            if info["count"] == 0:
                _gpu_checked = (False, f"no usable GPU: {info['error']}")
            else:
                try:
                    cupy_module()
                    _gpu_checked = (True, f"GPU 0: {info['name']}")
                except RuntimeError as exc:
                    _gpu_checked = (False, str(exc))
    return _gpu_checked


def cpu():
    """The CPU extension module, or RuntimeError."""
    if _cpu is None:
        raise RuntimeError(f"backend 'cpu' is not available: {_cpu_error}")
    return _cpu


def cuda():
    """The CUDA extension module, once a GPU and CuPy are usable; else RuntimeError."""
    ok, why = gpu_status()
    if not ok:
        raise RuntimeError(f"backend 'cuda' is not available: {why}")
    return _cuda


def stream_ptr() -> int:
    """The handle of CuPy's current stream, for the CUDA launchers."""
    return cupy_module().cuda.get_current_stream().ptr


def pick(fn: str, *arrays, backend: str | None = None) -> str:
    """Choose the backend for a call of ``fn`` on ``arrays`` (None entries are ignored).

    Returns "reference", "cpu" or "cuda". Mixed NumPy/CuPy inputs and a forced backend that
    does not match the arrays' device raise ValueError; a missing backend RuntimeError.
    """
    devices = set()
    for a in arrays:
        if a is None:
            continue
        try:
            devices.add(device_of(a))
        except TypeError as exc:
            raise TypeError(f"{fn}(): {exc}") from None
    if len(devices) > 1:
        raise ValueError(
            f"{fn}(): all arrays must be on one device; got both NumPy (cpu) and CuPy (cuda) arrays"
        )
    dev = devices.pop() if devices else "cpu"
    if backend is None:
        if dev == "cuda":
            cuda()
            return "cuda"
        return "cpu" if _cpu is not None else "reference"
    if backend not in BACKENDS:
        raise ValueError(f"{fn}(): backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "cpu":
        if dev == "cuda":
            raise ValueError(
                f"{fn}(): backend='cpu' needs NumPy arrays, got CuPy arrays (copy them with "
                "cupy.asnumpy first)"
            )
        cpu()
    elif backend == "cuda":
        if dev == "cpu":
            raise ValueError(
                f"{fn}(): backend='cuda' needs CuPy arrays, got NumPy arrays (copy them with "
                "cupy.asarray first)"
            )
        cuda()
    return backend


def to_host(x):
    """x on the host: CuPy arrays and cupyx sparse matrices are copied to NumPy arrays and
    scipy sparse matrices; anything else passes through unchanged."""
    if is_cupy_array(x) or is_cupyx_sparse(x):
        return x.get()
    return x


def reference_result(result, template, out=None):
    """What a call that ran the NumPy reference returns: ``result`` (a NumPy array) with
    ``template``'s array type (CuPy when ``template`` is a CuPy array or cupyx sparse matrix),
    written into ``out`` and ``out`` returned when given."""
    if device_of(template) == "cuda":
        result = cupy_module().asarray(result)
    if out is None:
        return result
    out[...] = result
    return out


def like(result, template):
    """Return ``result`` (NumPy, or a tuple of them) with ``template``'s array type."""
    if not is_cupy_array(template):
        return result
    cp = cupy_module()
    if isinstance(result, tuple):
        return tuple(cp.asarray(r) if isinstance(r, np.ndarray) else r for r in result)
    return cp.asarray(result) if isinstance(result, np.ndarray) else result


def array_module(x):
    """numpy for NumPy arrays, cupy for CuPy arrays."""
    return cupy_module() if is_cupy_array(x) else np
