"""Arrays from other libraries: PyTorch tensors, JAX arrays and any other DLPack producer in,
the caller's kind out.

matkern's kernels take NumPy (CPU) and CuPy (GPU) arrays. The public entry points are wrapped
by :func:`arrays` (functions) or :func:`array_methods` (classes), which hand every other kind
of array to them as NumPy or CuPy *without copying* and give the result back in the caller's
kind:

- ``torch.Tensor``: a CPU tensor becomes a NumPy view (``numpy.from_dlpack``), a CUDA tensor a
  CuPy view (``cupy.from_dlpack``), and the call runs on PyTorch's current stream of that
  device (a ``cupy.cuda.ExternalStream`` of ``torch.cuda.current_stream()``), so no
  synchronization is added. Array results come back as tensors on the result's device
  (``torch.from_dlpack``, zero-copy); an ``out=`` tensor is returned as the same object.
  A tensor that requires grad is refused (TypeError: matkern records no gradients; pass
  ``x.detach()``), as ``Tensor.numpy()`` refuses it. Strided (non-contiguous) tensors become
  strided views and follow the same rules as NumPy views. Tensors whose dtype NumPy/CuPy
  cannot hold (``bfloat16``) are refused with TypeError. A tensor with the conjugate or
  negative bit set is materialized first (a copy). Sparse tensors (``torch.sparse_csr``,
  ``torch.sparse_coo``, 2-D) go where scipy/cupyx sparse matrices go (SparseMatrix, spmm's A,
  SparseRandomProjection, fastrp, TruncatedSVD), converted to a scipy/cupyx CSR/COO matrix
  over the same index and value memory.
- Any other ``__dlpack__`` producer (JAX arrays, ...): read through ``numpy.from_dlpack`` /
  ``cupy.from_dlpack`` (zero-copy; CuPy's current stream), and the result is returned as
  NumPy (CPU) or CuPy (GPU): convert it with the producer's own ``from_dlpack`` (e.g.
  ``jax.numpy.from_dlpack(y)``; mind that JAX without x64 turns float64 into float32).
- Objects with only ``__array__`` (pandas, xarray, ...): converted with ``numpy.asarray``, a
  copy in general; the result is NumPy. Estimators leave them to their own input validation
  (as scikit-learn's, which keeps a DataFrame's column names).
- ``numpy.matrix``: taken as the 2-D ndarray it holds (a view); results are ndarrays.
- ``numpy.ma.MaskedArray``: refused with TypeError naming the argument (the kernels would
  ignore the mask).

Prepared objects (SparseMatrix, Int8Weight, LUTWeight) and fitted estimators keep NumPy/CuPy
arrays: their attributes are NumPy/CuPy whatever they were made from; the products and
transforms they compute follow the kind of their input.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys

import numpy as np

from . import _dispatch

__all__ = ["arrays", "array_methods", "to_native"]

# DLPack device types (dlpack.h DLDeviceType) that NumPy resp. CuPy can read.
_HOST_DEVICES = (1, 3)  # kDLCPU, kDLCUDAHost
_CUDA_DEVICES = (2, 13)  # kDLCUDA, kDLCUDAManaged
# Objects of these packages are taken as they are: the kernels' own kinds, matkern's objects,
# and NumPy's scalars, dtypes and generators (which have ``__array__`` but are no arrays).
_NATIVE_PACKAGES = ("numpy", "cupy", "cupyx", "scipy", "matkern")


def _torch():
    """The torch module if it is imported (a torch tensor can only exist then), else None."""
    return sys.modules.get("torch")


def is_torch_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _describe(x) -> str:
    t = type(x)
    return f"{t.__module__}.{t.__name__}"


def is_foreign(x, array_like: bool = True) -> bool:
    """True when ``x`` is an array that matkern's checks do not take as it is (or refuse):
    a DLPack producer other than NumPy/CuPy, an ``__array__`` object (when ``array_like``),
    a numpy.matrix or a masked array. Cheap for the common case (NumPy arrays, scalars)."""
    t = type(x)
    if t is np.ndarray or x is None:
        return False
    if isinstance(x, np.ndarray):
        return isinstance(x, (np.matrix, np.ma.MaskedArray))
    if t.__module__.partition(".")[0] in _NATIVE_PACKAGES:
        return False
    if isinstance(x, type):  # a class (dtype=np.float32, torch.Tensor): no array
        return False
    return hasattr(x, "__dlpack__") or (array_like and hasattr(x, "__array__"))


def _any_foreign(values, array_like):
    for v in values:
        if is_foreign(v, array_like):
            return True
        if type(v) in (list, tuple):
            for w in v:
                if is_foreign(w, array_like):
                    return True
    return False


class _Call:
    """What one wrapped call converted: the originals by the id of their native views (so
    that a returned ``out`` is the caller's object), and whether any was a torch tensor."""

    def __init__(self, fn, array_like):
        self.fn = fn
        self.array_like = array_like
        self.memo = {}  # id(original) -> (original, native)
        self.originals = {}  # id(native) -> original
        self.cuda_device = None  # torch CUDA device index whose stream the call runs on

    def convert(self, x, name):
        if not is_foreign(x, self.array_like):
            return x
        hit = self.memo.get(id(x))
        if hit is not None:
            return hit[1]
        native = to_native(x, name, self.fn, array_like=self.array_like)
        self.memo[id(x)] = (x, native)  # keeps x alive, so its id is not reused
        self.originals[id(native)] = x
        return native

    def convert_value(self, x, name):
        """A value or a list/tuple of values (each converted, the container rebuilt)."""
        if type(x) in (list, tuple) and _any_foreign(x, self.array_like):
            return type(x)(self.convert(v, f"{name}[{i}]") for i, v in enumerate(x))
        return self.convert(x, name)


def to_native(x, name: str, fn: str, *, array_like: bool = True):
    """``x`` as a NumPy or CuPy array (or scipy/cupyx sparse matrix for a torch sparse
    tensor), sharing its memory where the producer allows; see the module docstring.
    TypeError/ValueError name ``fn`` and ``name``."""
    if isinstance(x, np.ndarray):
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(
                f"{fn}(): {name} must not be a masked array (numpy.ma.MaskedArray): the "
                f"kernels would ignore its mask; pass {name}.filled(value) or an ndarray of "
                "the entries to use"
            )
        if isinstance(x, np.matrix):
            return np.asarray(x)  # the 2-D ndarray it holds, a view
        return x
    if is_torch_tensor(x):
        return _from_torch(x, name, fn)
    if hasattr(x, "__dlpack__"):
        return _from_dlpack(x, name, fn)
    if array_like and hasattr(x, "__array__"):
        a = np.asarray(x)  # a copy in general (what the object's __array__ gives)
        if isinstance(a, np.ma.MaskedArray) or a.dtype == object:
            raise TypeError(
                f"{fn}(): {name} ({_describe(x)}) converts to a "
                f"{'masked' if isinstance(a, np.ma.MaskedArray) else 'object'} array, "
                "which the kernels cannot take"
            )
        return np.asarray(a)
    return x


def _from_dlpack(x, name, fn, what=None):
    """A NumPy or CuPy view of a DLPack producer."""
    what = what or _describe(x)
    try:
        device = int(x.__dlpack_device__()[0]) if hasattr(x, "__dlpack_device__") else 1
    except Exception as exc:  # a producer that cannot say where its data lives
        raise TypeError(f"{fn}(): {name} ({what}) does not give its DLPack device: {exc}") from None
    if device in _HOST_DEVICES:
        convert = np.from_dlpack
    elif device in _CUDA_DEVICES:
        try:
            convert = _dispatch.cupy_module().from_dlpack
        except RuntimeError as exc:
            raise RuntimeError(
                f"{fn}(): {name} ({what}) is on a CUDA device and CuPy cannot take it: {exc}"
            ) from None
    else:
        raise TypeError(
            f"{fn}(): {name} ({what}) is on DLPack device type {device}; matkern takes CPU "
            "and CUDA arrays"
        )
    try:
        return convert(x)
    except (BufferError, TypeError, ValueError, RuntimeError) as exc:
        dtype = getattr(x, "dtype", None)
        raise TypeError(
            f"{fn}(): {name} ({what}, dtype {dtype}) cannot be read through DLPack: {exc}"
        ) from None


def _from_torch(t, name, fn):
    torch = _torch()
    if t.requires_grad:
        raise TypeError(
            f"{fn}(): {name} is a torch tensor that requires grad; matkern records no "
            f"gradients: pass {name}.detach()"
        )
    if t.device.type not in ("cpu", "cuda"):
        raise TypeError(
            f"{fn}(): {name} is a torch tensor on device {t.device.type!r}; matkern takes "
            "CPU tensors (CPU kernels) and CUDA tensors (CUDA kernels)"
        )
    if t.layout != torch.strided:
        return _from_torch_sparse(t, name, fn)
    if t.dtype == torch.bfloat16:
        raise TypeError(
            f"{fn}(): {name} has dtype torch.bfloat16, which NumPy and CuPy cannot hold: "
            f"convert it ({name}.float() or {name}.half())"
        )
    if t.is_conj():
        t = t.resolve_conj()  # DLPack cannot carry the lazy conjugate: a copy
    if t.is_neg():
        t = t.resolve_neg()
    return _from_dlpack(t, name, fn, what=f"torch.Tensor on {t.device}")


def _from_torch_sparse(t, name, fn):
    """A 2-D torch CSR or COO tensor as a scipy (CPU) or cupyx (CUDA) matrix of the same
    format, its index and value arrays shared through DLPack."""
    torch = _torch()
    if t.dim() != 2 or t.dense_dim() != 0:
        raise ValueError(
            f"{fn}(): {name} must be a 2-D sparse tensor without batch or dense dimensions, "
            f"got shape {tuple(t.shape)}"
        )
    cuda = t.device.type == "cuda"
    if cuda:
        import cupyx.scipy.sparse as sp
    else:
        import scipy.sparse as sp
    part = functools.partial(_from_torch, fn=fn)
    if t.layout == torch.sparse_csr:
        data = part(t.values(), f"{name}.values()")
        indices = part(t.col_indices(), f"{name}.col_indices()")
        indptr = part(t.crow_indices(), f"{name}.crow_indices()")
        make = sp.csr_matrix if cuda else sp.csr_array
        return make((data, indices, indptr), shape=tuple(t.shape))
    if t.layout == torch.sparse_coo:
        t = t.coalesce()  # sorted, duplicates summed (a copy only when it was not coalesced)
        ij = t.indices()
        data = part(t.values(), f"{name}.values()")
        row, col = part(ij[0], f"{name}.indices()[0]"), part(ij[1], f"{name}.indices()[1]")
        make = sp.coo_matrix if cuda else sp.coo_array
        return make((data, (row, col)), shape=tuple(t.shape))
    raise TypeError(
        f"{fn}(): {name} is a torch tensor of layout {t.layout}; matkern takes strided, "
        f"sparse_csr and sparse_coo tensors (convert with {name}.to_sparse_csr())"
    )


def _to_torch(result):
    torch = _torch()
    if isinstance(result, np.ndarray) and not result.flags.writeable:
        result = result.copy()  # torch would share it writable: never hand out a read-only buffer
    return torch.from_dlpack(result)


def _wrap(result, call, like):
    """``result`` in the caller's kind: an array that is one of the converted arguments'
    views is returned as that argument (``out=``); NumPy/CuPy arrays become tensors when
    ``like`` is a torch tensor; tuples and lists are mapped."""
    if type(result) in (tuple, list):
        return type(result)(_wrap(r, call, like) for r in result)
    original = call.originals.get(id(result))
    if original is not None:
        return original
    if is_torch_tensor(like) and (
        isinstance(result, np.ndarray) or _dispatch.is_cupy_array(result)
    ):
        return _to_torch(result)
    if is_torch_tensor(like) and _dispatch.is_sparse(result):
        return _sparse_to_torch(result)
    return result


def _sparse_to_torch(result):
    """A scipy/cupyx sparse result (e.g. SparseRandomProjection of sparse input, which stays
    sparse as in scikit-learn) as a torch sparse CSR tensor on the result's device."""
    import warnings

    torch = _torch()
    csr = result.tocsr()
    parts = [_to_torch(a) for a in (csr.indptr, csr.indices, csr.data)]
    with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support", category=UserWarning)
        # the structure is ours (canonical CSR): no invariant check needed
        return torch.sparse_csr_tensor(*parts, size=tuple(csr.shape), check_invariants=False)


@contextlib.contextmanager
def _torch_stream(device_index, fn):
    """Run on PyTorch's current stream of CUDA device ``device_index``: CuPy's current
    stream (which the launchers and CuPy's own operations use) becomes that stream, so the
    call is ordered after the work already queued for the tensors, without a sync."""
    torch = _torch()
    try:
        cp = _dispatch.cupy_module()
    except RuntimeError as exc:
        raise RuntimeError(
            f"{fn}(): CUDA tensors run on the CUDA backend, which is not available: {exc}"
        ) from None
    ptr = torch.cuda.current_stream(device_index).cuda_stream
    with cp.cuda.Device(device_index), cp.cuda.ExternalStream(ptr, device_index):
        yield


def _torch_cuda_device(values):
    for v in values:
        for w in v if type(v) in (list, tuple) else (v,):
            if is_torch_tensor(w) and w.device.type == "cuda":
                return w.device.index if w.device.index is not None else 0
    return None


def _run(func, fn, array_like, bound, names, like):
    """Convert ``names`` of ``bound`` (inspect.BoundArguments), call, wrap the result."""
    call = _Call(fn, array_like)
    values = [bound.arguments[n] for n in names if n in bound.arguments]
    device = _torch_cuda_device(values)
    stream = _torch_stream(device, fn) if device is not None else contextlib.nullcontext()
    with stream:
        for n in names:
            if n in bound.arguments:
                bound.arguments[n] = call.convert_value(bound.arguments[n], n)
        result = func(*bound.args, **bound.kwargs)
        return _wrap(result, call, like)


def arrays(*names):
    """Decorator for a public function whose arguments ``names`` are arrays: any DLPack
    producer, ``__array__`` object or numpy.matrix passed there reaches the function as NumPy
    or CuPy, and array results come back in the kind of the first of ``names`` that was given
    (torch tensors stay torch; see the module docstring). NumPy and CuPy calls go straight
    through (one type test per argument)."""

    def decorate(func):
        sig = inspect.signature(func)
        fn = func.__qualname__
        missing = [n for n in names if n not in sig.parameters]
        if missing:
            raise TypeError(f"arrays(): {fn} has no parameter(s) {missing}")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if not _any_foreign(args, True) and not _any_foreign(kwargs.values(), True):
                return func(*args, **kwargs)
            bound = sig.bind(*args, **kwargs)
            like = next((bound.arguments[n] for n in names if n in bound.arguments), None)
            if type(like) in (list, tuple):
                like = like[0] if like else None
            return _run(func, fn, True, bound, names, like)

        return wrapper

    return decorate


# Methods wrapped by array_methods besides the public ones.
_DUNDERS = ("__call__", "__matmul__", "__rmatmul__")


def array_methods(cls=None, *, init=False, array_like=False):
    """Class decorator: every public method defined in the class (and ``__call__``,
    ``__matmul__``, ``__rmatmul__``; ``__init__`` when ``init``) takes arrays of any kind in
    any argument, as :func:`arrays`, and its array results come back in the kind of the
    first converted argument. ``array_like=False`` (estimators) leaves ``__array__``-only
    objects (lists, DataFrames) to the method's own validation. Methods added to the class
    later by a subclass are not wrapped."""

    def decorate(cls):
        wanted = set(_DUNDERS) | ({"__init__"} if init else set())
        for attr, value in list(vars(cls).items()):
            if not inspect.isfunction(value):
                continue
            if attr.startswith("_") and attr not in wanted:
                continue
            setattr(cls, attr, _method(value, array_like))
        return cls

    return decorate if cls is None else decorate(cls)


def _method(func, array_like):
    sig = inspect.signature(func)
    fn = func.__qualname__
    names = list(sig.parameters)[1:]  # not self

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        if not _any_foreign(args, array_like) and not _any_foreign(kwargs.values(), array_like):
            return func(self, *args, **kwargs)
        bound = sig.bind(self, *args, **kwargs)
        like = next(
            (v for v in (bound.arguments.get(n) for n in names) if is_foreign(v, array_like)),
            None,
        )
        return _run(func, fn, array_like, bound, names, like)

    return wrapper
