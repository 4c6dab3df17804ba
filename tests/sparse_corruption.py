"""Sparse test inputs shared by the robustness tests: corrupted matrices for the crash probes
(``BAD_SOURCE``, ``KINDS``) and valid but messy ones (:func:`as_format`).

``BAD_SOURCE`` is Python source (run inside the probe's fresh interpreter) defining
``bad(fmt, kind, shape, seed=0, dtype=np.float64)``, a matrix of format fmt ("csr", "csc",
"coo") with one corruption of ``KINDS[fmt]`` made after construction, as a user's code
could, and ``refused(f, what)``, which runs f and returns the message of the ValueError
(TypeError for float index arrays) it must raise.
"""

BAD_SOURCE = r"""
import numpy as np, scipy.sparse as sp, matkern

def bad(fmt, kind, shape, seed=0, dtype=np.float64):
    M = sp.random(*shape, density=0.5, format=fmt, random_state=seed, dtype=np.float64)
    while M.nnz < 2:  # the corruptions touch the first two stored entries
        seed += 1
        M = sp.random(*shape, density=0.5, format=fmt, random_state=seed, dtype=np.float64)
    M = M.astype(dtype)
    if fmt == "coo":
        row, col = M.row.copy(), M.col.copy()
        tgt = {"oob": (col, shape[1] + 3), "neg": (col, -3), "huge": (col, 2**31 - 1),
               "row_oob": (row, shape[0]), "row_neg": (row, -1)}
        if kind == "short":
            M.coords = (row[:-1], col)
            return M
        arr, val = tgt[kind]
        arr[1] = val
        M.coords = (row, col)
        return M
    minor = shape[1] if fmt == "csr" else shape[0]
    if kind == "oob":
        M.indices[1] = minor + 10**7
    elif kind == "neg":
        M.indices[0] = -3
    elif kind == "huge":
        M.indices[0] = 2**31 - 1
    elif kind == "huge64":
        M.indices = M.indices.astype(np.int64); M.indptr = M.indptr.astype(np.int64)
        M.indices[0] = 2**40
    elif kind == "float_indices":
        M.indices = M.indices.astype(np.float64)
    elif kind == "decreasing":
        ip = M.indptr.copy(); ip[1] = ip[-1]; ip[2] = 0; M.indptr = ip
    elif kind == "wrong_length":
        M.indptr = M.indptr[:-1].copy()
    elif kind == "not_zero_start":
        ip = M.indptr.copy(); ip[0] = 1; M.indptr = ip
    elif kind == "past_end":
        ip = M.indptr.copy(); ip[-1] = M.indices.size + 5; M.indptr = ip
    return M

def refused(f, what):
    try:
        f()
    except (TypeError if kind == "float_indices" else ValueError) as e:
        return str(e)
    raise AssertionError(f"no ValueError for {what}")
"""

_COMPRESSED = [
    "oob",
    "neg",
    "huge",
    "huge64",
    "decreasing",
    "wrong_length",
    "not_zero_start",
    "past_end",
]
KINDS = {
    "csr": _COMPRESSED + ["float_indices"],
    "csc": _COMPRESSED,
    "coo": ["oob", "neg", "huge", "row_oob", "row_neg", "short"],
}


def as_format(M, fmt, rng, dup):
    """Dense M as ``fmt`` ("dense", "coo", "csr", "csc"). ``dup``: every stored entry split in
    two halves that sum to it, in shuffled (unsorted) order, kept as given by building the
    compressed formats directly (scipy's constructors would canonicalise a COO)."""
    import numpy as np
    import scipy.sparse as sp

    if fmt == "dense":
        return np.ascontiguousarray(M)
    r, c = np.nonzero(M)
    v = M[r, c]
    if dup and r.size:
        half = (v / 2).astype(M.dtype)
        r, c, v = np.concatenate([r, r]), np.concatenate([c, c]), np.concatenate([half, v - half])
        p = rng.permutation(r.size)
        r, c, v = r[p], c[p], v[p]
    if fmt == "coo":
        return sp.coo_matrix((v, (r, c)), shape=M.shape)
    major, minor, n_major, cls = (
        (r, c, M.shape[0], sp.csr_matrix) if fmt == "csr" else (c, r, M.shape[1], sp.csc_matrix)
    )
    order = np.argsort(major, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(major, minlength=n_major))])
    return cls((v[order], minor[order], indptr), shape=M.shape)
