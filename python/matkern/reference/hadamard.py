"""Reference Walsh-Hadamard transform and FJLT: plain NumPy, the definition of correct."""

from __future__ import annotations

import numpy as np


def fwht(x, axis=-1, normalize=False, transpose=False):
    """Walsh-Hadamard transform of ``x`` along ``axis``: ``H_n x`` (``H_n^T x`` with
    ``transpose``).

    For a power of two n, H_n is in Sylvester order, entries +-1. For n = p * m (p a power
    of two, m the base order of ``matkern._hadamard_orders.split_order``), H_n = H_p kron H_m:
    the axis read as (p, m), H_m (a Paley matrix) applied to each block of m, then the
    Sylvester transform across the blocks. ``normalize=True`` divides by sqrt(n), making the
    transform orthonormal. Computed in the dtype of ``x`` by a matrix product and the textbook
    butterflies, one stage (one bit of the index) at a time.
    """
    from .._hadamard_orders import base_matrix, split_order

    y = np.moveaxis(np.array(x, copy=True), axis, -1)
    m, p = split_order(y.shape[-1])
    if m > 1:
        H = base_matrix(m, y.dtype)
        blocks = y.reshape(y.shape[:-1] + (p, m))
        y = (blocks @ (H if transpose else H.T)).reshape(y.shape)
        y = np.moveaxis(_sylvester(np.moveaxis(y.reshape(y.shape[:-1] + (p, m)), -1, 0)), 0, -1)
        y = y.reshape(y.shape[:-2] + (p * m,))
        if normalize:
            y = y * y.dtype.type(1.0 / np.sqrt(p * m))
        return np.moveaxis(y, -1, axis)
    y = _sylvester(y)
    if normalize:
        y = y * y.dtype.type(1.0 / np.sqrt(y.shape[-1]))
    return np.moveaxis(y, -1, axis)


def _sylvester(y):
    """The unnormalized Sylvester-order transform along the last axis (a power of two)."""
    shape, n = y.shape, y.shape[-1]
    h = 1
    while h < n:
        v = y.reshape(-1, n // (2 * h), 2, h)
        a, b = v[:, :, 0, :], v[:, :, 1, :]
        y = np.stack([a + b, a - b], axis=2).reshape(shape)
        h *= 2
    return y


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
