"""Seeded generators of sparse test matrices (scipy.sparse CSR, float64 values).

The four classes that SpMM papers (SMaT among them) measure on: band matrices, 3-D
finite-element stencils, power-law graphs (R-MAT) and uniform random matrices. Every
generator takes ``random_state`` (None, an int seed or a numpy Generator) so that the same
seed gives the same matrix; values are drawn uniform in [-1, 1) unless stated otherwise.

Example
-------
>>> import matkern.generators as g
>>> A = g.band(1024, 16, random_state=0)
>>> A.shape, A.nnz
((1024, 1024), 17336)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _checks

__all__ = ["band", "stencil27", "rmat", "uniform_random"]


def _values(rng, n):
    return rng.uniform(-1.0, 1.0, n)


# Bytes per stored entry while a generator builds its matrix: COO rows, columns and values
# (24), the CSR copy (12) and scipy's temporaries; measured peaks stay below this.
_BYTES_PER_ENTRY = 64


def _check_size(n_rows, n_cols, entries, what, fn):
    """Sizes that fit the 32-bit indices of the kernels and the memory of this machine."""
    _checks.check_index_range(n_rows, "the number of rows", fn)
    _checks.check_index_range(n_cols, "the number of columns", fn)
    _checks.check_memory(int(entries) * _BYTES_PER_ENTRY, what, fn)


def band(n, bandwidth, *, random_state=None):
    """Band matrix: n x n with A[i, j] != 0 exactly when |i - j| <= bandwidth // 2.

    ``bandwidth`` is the total width of the band (SMaT's "band b": b diagonals around the
    main one), 1 <= bandwidth <= 2n - 1. nnz is about n * bandwidth.

    Example
    -------
    >>> A = band(8, 3, random_state=1)   # tridiagonal
    >>> A.nnz
    22
    """
    fn = "band"
    n = _checks.check_int(n, "n", fn, min_value=1)
    bandwidth = _checks.check_int(bandwidth, "bandwidth", fn, min_value=1, max_value=2 * n - 1)
    _check_size(n, n, n * (bandwidth // 2 * 2 + 1), f"n={n}, bandwidth={bandwidth}", fn)
    rng = _checks.check_random_state(random_state, fn)
    h = bandwidth // 2
    offsets = np.arange(-h, h + 1)
    rows = np.repeat(np.arange(n), offsets.size)
    cols = rows + np.tile(offsets, n)
    keep = (cols >= 0) & (cols < n)
    rows, cols = rows[keep], cols[keep]
    A = sp.csr_matrix((_values(rng, rows.size), (rows, cols)), shape=(n, n))
    A.sort_indices()
    return A


def stencil27(nx, ny=None, nz=None, *, random_state=None):
    """27-point stencil on an nx x ny x nz grid (trilinear hexahedral finite elements, the
    pattern of SuiteSparse's cant/consph class): one row per grid point, nonzeros at the
    point and its 26 neighbours inside the grid. Points are numbered x fastest.

    Values: random off-diagonal entries in [-1, 0) and a dominant diagonal (26.5 plus a
    random part), like an assembled stiffness matrix.

    Example
    -------
    >>> A = stencil27(4, random_state=0)
    >>> A.shape, A.nnz
    ((64, 64), 1000)
    """
    fn = "stencil27"
    nx = _checks.check_int(nx, "nx", fn, min_value=1)
    ny = nx if ny is None else _checks.check_int(ny, "ny", fn, min_value=1)
    nz = nx if nz is None else _checks.check_int(nz, "nz", fn, min_value=1)
    points = nx * ny * nz
    _check_size(points, points, 27 * points, f"nx, ny, nz = {nx}, {ny}, {nz}", fn)
    rng = _checks.check_random_state(random_state, fn)
    ix, iy, iz = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    ix, iy, iz = (a.transpose(2, 1, 0).ravel() for a in (ix, iy, iz))  # x fastest
    rows_l, cols_l = [], []
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                jx, jy, jz = ix + dx, iy + dy, iz + dz
                ok = (jx >= 0) & (jx < nx) & (jy >= 0) & (jy < ny) & (jz >= 0) & (jz < nz)
                src = np.nonzero(ok)[0]
                rows_l.append(src)
                cols_l.append(jx[ok] + nx * (jy[ok] + ny * jz[ok]))
    rows = np.concatenate(rows_l)
    cols = np.concatenate(cols_l)
    vals = -rng.uniform(0.0, 1.0, rows.size)
    vals[rows == cols] = 26.5 + rng.uniform(0.0, 1.0, int((rows == cols).sum()))
    A = sp.csr_matrix((vals, (rows, cols)), shape=(nx * ny * nz,) * 2)
    A.sort_indices()
    return A


def rmat(scale, edge_factor=16, *, a=0.57, b=0.19, c=0.19, random_state=None):
    """R-MAT power-law graph (Chakrabarti et al. 2004; Graph500 parameters by default):
    2**scale vertices, about ``edge_factor * 2**scale`` directed edges, each placed by
    descending ``scale`` levels of a 2 x 2 partition with probabilities a, b, c, d = 1-a-b-c.
    Duplicate edges are merged (their values summed), so nnz is somewhat below the edge count.
    Vertex labels are randomly permuted (as Graph500 does) so that the hubs are spread out.

    Example
    -------
    >>> A = rmat(10, 8, random_state=0)
    >>> A.shape
    (1024, 1024)
    """
    fn = "rmat"
    scale = _checks.check_int(scale, "scale", fn, min_value=1, max_value=30)
    edge_factor = _checks.check_int(edge_factor, "edge_factor", fn, min_value=1)
    a = _checks.check_float(a, "a", fn, min_value=0.0, max_value=1.0)
    b = _checks.check_float(b, "b", fn, min_value=0.0, max_value=1.0)
    c = _checks.check_float(c, "c", fn, min_value=0.0, max_value=1.0)
    if a + b + c > 1.0:
        raise ValueError(f"{fn}(): a + b + c must be <= 1, got {a + b + c}")
    _check_size(
        1 << scale,
        1 << scale,
        edge_factor << scale,
        f"scale={scale}, edge_factor={edge_factor}",
        fn,
    )
    rng = _checks.check_random_state(random_state, fn)
    n = 1 << scale
    m = edge_factor * n
    rows = np.zeros(m, dtype=np.int64)
    cols = np.zeros(m, dtype=np.int64)
    for level in range(scale):
        r = rng.random(m)
        bit_row = r >= a + b  # quadrants c and d are the lower half
        bit_col = ((r >= a) & (r < a + b)) | (r >= a + b + c)
        rows |= bit_row.astype(np.int64) << level
        cols |= bit_col.astype(np.int64) << level
    perm = rng.permutation(n)
    A = sp.csr_matrix((_values(rng, m), (perm[rows], perm[cols])), shape=(n, n))
    A.sum_duplicates()
    return A


def uniform_random(m, n=None, density=0.01, *, random_state=None):
    """m x n matrix whose nonzeros are placed uniformly at random, ``round(density * m * n)``
    distinct positions.

    Example
    -------
    >>> A = uniform_random(100, 200, 0.05, random_state=0)
    >>> A.shape, A.nnz
    ((100, 200), 1000)
    """
    fn = "uniform_random"
    m = _checks.check_int(m, "m", fn, min_value=1)
    n = m if n is None else _checks.check_int(n, "n", fn, min_value=1)
    density = _checks.check_float(density, "density", fn, min_value=0.0, max_value=1.0)
    _check_size(m, n, density * m * n, f"m={m}, n={n}, density={density}", fn)
    rng = _checks.check_random_state(random_state, fn)
    A = sp.random(
        m, n, density=density, format="csr", random_state=rng, data_rvs=lambda k: _values(rng, k)
    )
    A.sort_indices()
    return A
