"""Reference Walsh-Hadamard transform and FJLT: plain NumPy, the definition of correct."""

from __future__ import annotations

import numpy as np


def fwht(x, axis=-1, normalize=False):
    """Walsh-Hadamard transform of ``x`` along ``axis`` (Sylvester order, entries +-1).

    ``normalize=True`` divides by sqrt(n), making the transform orthonormal. Computed in the
    dtype of ``x`` by the textbook butterflies, one stage (one bit of the index) at a time.
    """
    y = np.moveaxis(np.array(x, copy=True), axis, -1)
    shape, n = y.shape, y.shape[-1]
    h = 1
    while h < n:
        v = y.reshape(-1, n // (2 * h), 2, h)
        a, b = v[:, :, 0, :], v[:, :, 1, :]
        y = np.stack([a + b, a - b], axis=2).reshape(shape)
        h *= 2
    if normalize:
        y = y * y.dtype.type(1.0 / np.sqrt(n))
    return np.moveaxis(y, -1, axis)


def fjlt(x, signs, p_dense, scale):
    """Y = scale * P · H · D · pad(x) for the rows of x.

    x (n, d); signs (d,) of +-1 (the diagonal D); p_dense (k, d') the projection as a dense
    array or a scipy.sparse matrix (then never densified: FJLT's P is k x d' and very
    sparse), d' the power of two >= d; H the normalized Hadamard transform.
    """
    n, d = x.shape
    dpad = p_dense.shape[1]
    z = np.zeros((n, dpad), dtype=x.dtype)
    z[:, :d] = x * signs
    z = fwht(z, axis=-1, normalize=True)
    if hasattr(p_dense, "toarray"):  # sparse: (P z^T)^T
        y = np.asarray(p_dense @ z.T).T
    else:
        y = z @ p_dense.T
    return (scale * y).astype(x.dtype, copy=False)
