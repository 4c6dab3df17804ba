"""LAPACK's Cholesky factorization and triangular inverse on one C-contiguous matrix, called
with the GIL released: SciPy's ``scipy.linalg.lapack`` wrappers hold it, so the pieces of a
stack that ``_matfun_iter.map_chunks`` spreads over threads factorized one at a time (two
threads running potrf + trtri on 256 x 256 float32 matrices: 1.9x the time of one, no gain).
The routines come from ``scipy.linalg.cython_lapack`` (SciPy's public Cython API, the same
OpenBLAS), called through ``ctypes``, which releases the GIL for the call.

Row-major arrays are passed as they lie: a symmetric A is its own column-major transpose, and
LAPACK's lower factor L (A = L L^T, column-major) is, read row-major, the upper R = L^T
(A = R^T R); its inverse likewise. Where the capsules cannot be read, the f2py wrappers
serve (correct, holding the GIL)."""

from __future__ import annotations

import ctypes
import functools

import numpy as np

_CHARP, _INTP = ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)


@functools.lru_cache(maxsize=None)
def _routine(name):
    """The ctypes function for cython_lapack's ``name``, or None."""
    try:
        from scipy.linalg import cython_lapack

        cap = cython_lapack.__pyx_capi__[name]
        # prototypes of our own: setting argtypes on ctypes.pythonapi's shared function
        # objects would change them for every other user in the process
        get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(
            ("PyCapsule_GetName", ctypes.pythonapi)
        )
        get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
            ("PyCapsule_GetPointer", ctypes.pythonapi)
        )
        ptr = get_pointer(cap, get_name(cap))
    except Exception:  # noqa: BLE001 - another SciPy build: the f2py wrappers instead
        return None
    chars = 2 if name.endswith("trtri") else 1  # (uplo[, diag], n, a, lda, info)
    proto = ctypes.CFUNCTYPE(None, *([_CHARP] * chars), _INTP, ctypes.c_void_p, _INTP, _INTP)
    return proto(ptr)


def _prefix(a):
    return "s" if a.dtype == np.float32 else "d"


def potrf_upper(a):
    """In place on a C-contiguous symmetric (k, k) float32/float64 array: its upper
    triangle becomes R with a = R^T R, from a's upper triangle (the strictly lower part is
    left as it is: ``np.triu`` the result). Returns LAPACK's info (0: done; > 0: not
    positive definite, a's content then unspecified)."""
    fn = _routine(_prefix(a) + "potrf")
    if fn is None:
        from scipy.linalg import lapack

        r, info = getattr(lapack, _prefix(a) + "potrf")(a, lower=0)
        a[...] = r
        return int(info)
    n, info = ctypes.c_int(a.shape[0]), ctypes.c_int(0)
    fn(b"L", ctypes.byref(n), a.ctypes.data, ctypes.byref(n), ctypes.byref(info))
    return info.value


def trtri_upper(a):
    """In place on a C-contiguous upper triangular (k, k) float32/float64 array (the strictly
    lower part ignored and left as it is): its inverse. Returns LAPACK's info (> 0: an exact
    zero on the diagonal)."""
    fn = _routine(_prefix(a) + "trtri")
    if fn is None:
        from scipy.linalg import lapack

        r, info = getattr(lapack, _prefix(a) + "trtri")(a, lower=0)
        a[...] = np.triu(r) + np.tril(a, -1)
        return int(info)
    n, info = ctypes.c_int(a.shape[0]), ctypes.c_int(0)
    fn(b"L", b"N", ctypes.byref(n), a.ctypes.data, ctypes.byref(n), ctypes.byref(info))
    return info.value
