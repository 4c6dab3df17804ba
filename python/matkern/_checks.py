"""Argument checks, written once and worded alike for every family.

Every message names the function, the argument, what was expected and what came, e.g.
``ValueError: fwht(): x must have a power-of-two length along axis -1, got 1000``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._dispatch import array_module, is_cupy_array

INT32_MAX = 2**31 - 1


def dtype_names(dtypes) -> str:
    names = [np.dtype(d).name for d in dtypes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_array(
    x,
    name: str,
    fn: str,
    *,
    dtypes=None,
    ndim=None,
    min_ndim=None,
    contiguous: bool = True,
    allow_empty: bool = False,
    finite: bool = False,
):
    """Validate an array argument and return it unchanged.

    TypeError for a non-array or a wrong dtype; ValueError for a wrong number of dimensions,
    an empty dimension (unless ``allow_empty``), a non-C-contiguous layout (when
    ``contiguous``) and NaN/Inf (when ``finite``).
    """
    if isinstance(x, np.ma.MaskedArray):  # its mask would be ignored (see _interop)
        raise TypeError(f"{fn}(): {name} must not be a masked array (numpy.ma.MaskedArray)")
    if not (isinstance(x, np.ndarray) or is_cupy_array(x)):
        raise TypeError(
            f"{fn}(): {name} must be a NumPy or CuPy array, got {type(x).__module__}."
            f"{type(x).__name__}"
        )
    if dtypes is not None and x.dtype not in [np.dtype(d) for d in dtypes]:
        raise TypeError(f"{fn}(): {name} must have dtype {dtype_names(dtypes)}, got {x.dtype}")
    if ndim is not None and x.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{fn}(): {name} must be {ndim}-dimensional, got shape {x.shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(
            f"{fn}(): {name} must have at least {min_ndim} dimension(s), got shape {x.shape}"
        )
    if not allow_empty and x.size == 0:
        raise ValueError(f"{fn}(): {name} must not be empty, got shape {x.shape}")
    if contiguous and not x.flags.c_contiguous:
        layout = "a Fortran-ordered array" if x.flags.f_contiguous else "a strided view"
        raise ValueError(
            f"{fn}(): {name} must be C-contiguous, got {layout} of shape {x.shape} "
            "(pass numpy.ascontiguousarray(x) / cupy.ascontiguousarray(x))"
        )
    if finite and x.size and not bool(array_module(x).isfinite(x).all()):
        raise ValueError(f"{fn}(): {name} must be finite, got NaN or Inf")
    return x


def check_int(value, name: str, fn: str, *, min_value=None, max_value=None) -> int:
    """An integer argument (bool rejected) within bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}(): {name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{fn}(): {name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{fn}(): {name} must be <= {max_value}, got {value}")
    return value


def check_float(value, name: str, fn: str, *, min_value=None, max_value=None, strict=False):
    """A real number argument within bounds (strict: min_value excluded)."""
    if type(value) is not float:  # the common case first: no ABC check (hot in every call)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{fn}(): {name} must be a real number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:  # an int beyond float's range
            raise ValueError(f"{fn}(): {name} must be finite, got {value}") from None
    if not math.isfinite(value):
        raise ValueError(f"{fn}(): {name} must be finite, got {value}")
    if min_value is not None and (value <= min_value if strict else value < min_value):
        op = ">" if strict else ">="
        raise ValueError(f"{fn}(): {name} must be {op} {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{fn}(): {name} must be <= {max_value}, got {value}")
    return value


def check_choice(value, name: str, fn: str, choices):
    if value not in choices:
        raise ValueError(f"{fn}(): {name} must be one of {tuple(choices)}, got {value!r}")
    return value


def normalize_axis(axis, ndim: int, name: str, fn: str) -> int:
    axis = check_int(axis, name, fn)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}(): {name}={axis} is out of range for a {ndim}-dimensional array")
    return axis % ndim


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def check_out(out, shape, dtype, like, name: str, fn: str):
    """An ``out=`` array: same array type and device as ``like``, exact shape and dtype, C order."""
    if out is None:
        return None
    check_array(out, name, fn, allow_empty=True)
    if is_cupy_array(out) != is_cupy_array(like):
        raise TypeError(
            f"{fn}(): {name} must be a {type(like).__module__}.ndarray like the input, got "
            f"{type(out).__module__}.ndarray"
        )
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{fn}(): {name} must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != np.dtype(dtype):
        raise TypeError(f"{fn}(): {name} must have dtype {np.dtype(dtype).name}, got {out.dtype}")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError(f"{fn}(): {name} must be writable, got a read-only array")
    return out


def may_overlap(a, b) -> bool:
    """True when two arrays of one library may share memory (a cheap bounds test): a kernel
    that reads ``b`` while it writes ``a`` must then write a temporary instead."""
    if a is None or b is None or is_cupy_array(a) != is_cupy_array(b):
        return False
    return bool(array_module(a).may_share_memory(a, b))


def check_index_range(n: int, name: str, fn: str, limit: int = INT32_MAX) -> int:
    """Sizes that the kernels index with 32-bit integers."""
    if n > limit:
        raise ValueError(
            f"{fn}(): {name} = {n} overflows the 32-bit indices the kernels use (max {limit})"
        )
    return n


def available_memory() -> int:
    """Bytes of memory this machine can still give (MemAvailable on Linux; the free physical
    pages elsewhere; a large number when neither can be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(nbytes, what: str, fn: str):
    """Refuse, before allocating, a call whose working memory (``nbytes``, an estimate made
    from the arguments) exceeds what the machine has available: a clear ValueError that names
    the argument(s) in ``what`` instead of a MemoryError or the OOM killer part way through."""
    avail = available_memory()
    if nbytes > avail:
        raise ValueError(
            f"{fn}(): {what} would need about {nbytes / 2**30:.3g} GiB of memory, more than the "
            f"{avail / 2**30:.3g} GiB available"
        )
    return nbytes


def check_random_state(random_state, fn: str) -> np.random.Generator:
    """None, an int seed or a numpy Generator/RandomState, as scikit-learn accepts."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        if isinstance(random_state, bool):
            raise TypeError(f"{fn}(): random_state must be None, an int or a Generator, got bool")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise TypeError(
        f"{fn}(): random_state must be None, an int, a numpy Generator or RandomState, got "
        f"{type(random_state).__name__}"
    )
