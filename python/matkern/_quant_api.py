"""Pieces shared by the two quantized-weight families (int8.py, lut.py): the call form of their
matmuls and the dtype a weight is dequantized to."""

from __future__ import annotations

import functools

import numpy as np

DEQUANT_DTYPES = (np.float32, np.float16)


def call_form(new_form, renamed=()):
    """Decorator for ``fn(X, W, *, ...)``: a third positional argument or an old keyword name
    for W (``renamed``) raises a TypeError that shows ``new_form``, instead of Python's
    generic message (the old forms were ``lut_matmul(X, qw, bias)``, ``int8_matmul(X, Wq=..)``)."""

    def wrap(f):
        name = f.__name__

        @functools.wraps(f)
        def checked(*args, **kwargs):
            if len(args) > 2:
                raise TypeError(
                    f"{name}() takes X and W positionally and the rest by keyword "
                    f"({len(args)} positional arguments given): call {new_form}"
                )
            for old in renamed:
                if old in kwargs:
                    raise TypeError(
                        f"{name}(): the weight argument is now W (was {old}=): call {new_form}"
                    )
            return f(*args, **kwargs)

        return checked

    return wrap


def check_dequant_dtype(dtype, fn):
    """np.float32 or np.float16 (as a dtype, type or name): the dtype a dequantized weight takes."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in [np.dtype(d) for d in DEQUANT_DTYPES]:
        raise TypeError(f"{fn}(): dtype must be float32 or float16, got {dtype!r}")
    return dt


def float64_to_float32(x):
    """float64 input (NumPy's default) as float32, the quantized kernels' compute type: a
    converted copy, so the result is float32 too. Anything else is returned as it is, for
    the argument checks to judge. The same rule in int8_quantize, int8_matmul and lut_matmul
    (lut_quantize converts its float64 weight the same way)."""
    if getattr(x, "dtype", None) == np.float64 and hasattr(x, "astype"):
        return x.astype(np.float32)
    return x


def check_rotation(rotation, k, fn):
    """None, or a :class:`matkern.HadamardRotation` of dimension k (the weight's in_features)."""
    if rotation is None:
        return None
    from .rotation import HadamardRotation

    if not isinstance(rotation, HadamardRotation):
        raise TypeError(
            f"{fn}(): rotation must be None or a matkern.HadamardRotation, "
            f"got {type(rotation).__name__}"
        )
    if rotation.n != k:
        raise ValueError(
            f"{fn}(): rotation must have n = {k} (the weight's in_features), got n = {rotation.n}"
        )
    return rotation


def rotate(x, rotation):
    """``x @ Q`` for the rows of x (..., K): float32/float64 as they are; float16 rotated in
    float32 and rounded back to float16 (the matmul then quantizes it as any float16 input)."""
    if rotation is None:
        return x
    if x.dtype == np.float16:
        return rotation.apply(x.astype(np.float32)).astype(np.float16)
    return rotation.apply(x)
