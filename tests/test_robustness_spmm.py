"""Bad, aliased and mutated input for SparseMatrix / spmm and fwht's ``out=``.

What the property tests cover: CSR structure (any shape including empty rows, columns and
matrices; unsorted and duplicate column indices; scipy csr/csc/coo/bsr input and raw tuples),
values from 2**-140 to 2**120 of scale in float32 and float64, B in C and Fortran order,
``out`` separate from or overlapping B; every corrupted index structure fails with ValueError
in a subprocess (a crash fails the test instead of killing the run).

Tolerances: the CPU kernel and the reference differ only by the order of the additions in
each output entry, so every entry is compared against the float64 product within
``4 * nnz_row * eps * (|A| @ |B|)`` (the worst-case bound of a float sum of that many
products, with margin for the two roundings of a product in the kernel's dtype). Entries
whose scale leaves the normal range of the dtype are not compared (there relative precision
is lost by the input itself, not by the kernel).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matkern
from conftest import assert_no_crash

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bound_check(Y, A, B):
    """Y agrees with A @ B (float64) within the float-sum bound of the module docstring."""
    A64 = sp.csr_matrix(A, dtype=np.float64)
    exact = A64 @ B.astype(np.float64)
    mag = abs(A64) @ np.abs(B.astype(np.float64))
    per_row = np.maximum(np.diff(A64.indptr), 1)[:, None]
    eps = np.finfo(Y.dtype).eps
    tiny = np.finfo(Y.dtype).tiny
    ok = np.abs(Y.astype(np.float64) - exact) <= 4 * per_row * eps * mag + 4 * per_row * tiny
    assert ok.all(), np.argwhere(~ok)[:5]


@st.composite
def sparse_case(draw):
    m = draw(st.integers(0, 40))
    n = draw(st.integers(0, 40))
    k = draw(st.integers(0, 9))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    nnz = draw(st.integers(0, 3 * max(m, 1)))
    seed = draw(st.integers(0, 2**32 - 1))
    lo, hi = (-140, 120) if dtype == np.float64 else (-60, 60)
    scale = 2.0 ** draw(st.integers(lo, hi))
    rng = np.random.default_rng(seed)
    if m and n:
        rows = rng.integers(0, m, nnz)
        cols = rng.integers(0, n, nnz)  # duplicates on purpose: they are summed
    else:
        rows = cols = np.zeros(0, np.int64)
    vals = (rng.standard_normal(rows.size) * scale).astype(dtype)
    fmt = draw(st.sampled_from(["csr", "csc", "coo", "unsorted-csr", "tuple"]))
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(m, n))
    if fmt == "tuple":
        c = coo.tocsr()
        A = (c.data, c.indices, c.indptr, (m, n))
    elif fmt == "unsorted-csr":
        c = coo.tocsr()
        c.has_sorted_indices = False
        for r in range(m):  # reverse each row's entries
            s, e = c.indptr[r], c.indptr[r + 1]
            c.indices[s:e] = c.indices[s:e][::-1].copy()
            c.data[s:e] = c.data[s:e][::-1].copy()
        A = c
    else:
        A = coo.asformat(fmt)
    B = (rng.standard_normal((n, k)) * 2.0 ** draw(st.integers(-20, 20))).astype(dtype)
    if draw(st.booleans()):
        B = np.asfortranarray(B)
    return A, coo.tocsr(), B


@SETTINGS
@given(sparse_case(), st.sampled_from(["reference", "cpu"]))
def test_spmm_any_structure_and_scale(case, backend):
    A, csr, B = case
    Y = matkern.spmm(A, B, backend=backend)
    assert Y.shape == (csr.shape[0], B.shape[1]) and Y.dtype == B.dtype
    _bound_check(Y, csr, B)


@SETTINGS
@given(
    st.integers(1, 30),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["reference", "cpu"]),
    st.sampled_from(["full", "rows", "shifted"]),
)
def test_spmm_out_overlapping_B(n, k, seed, backend, how):
    """out = B (square B), out = a row block of B, or out and B overlapping views of one
    buffer: the result is the product of the B passed in, as if out were separate."""
    rng = np.random.default_rng(seed)
    A = sp.random(n, n, density=0.3, format="csr", random_state=rng, dtype=np.float64)
    buf = rng.standard_normal((2 * n, k))
    if how == "full":
        B, out = buf[:n], buf[:n]
    elif how == "rows":
        B, out = buf[:n], buf[n // 2 : n // 2 + n]
    else:
        flat = rng.standard_normal(n * k + k)
        B, out = flat[: n * k].reshape(n, k), flat[k:].reshape(n, k)
    expected = A @ B.copy()
    got = matkern.spmm(A, B, out=out, backend=backend)
    assert got is out
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_spmm_out_B_the_same_array():
    A = sp.random(50, 50, density=0.2, format="csr", random_state=0, dtype=np.float32)
    B = np.random.default_rng(0).standard_normal((50, 50)).astype(np.float32)
    expected = A @ B
    matkern.spmm(A, B, out=B)
    np.testing.assert_allclose(B, expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("fn", ["spmm", "fwht"])
def test_read_only_out_is_named(fn):
    x = np.ones((4, 4), np.float32)
    out = np.empty((4, 4), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=f"{fn}\\(\\): out must be writable"):
        if fn == "spmm":
            matkern.spmm(sp.eye(4, format="csr", dtype=np.float32), x, out=out)
        else:
            matkern.fwht(x, out=out)


def test_read_only_inputs_are_accepted():
    A = sp.random(30, 16, density=0.2, format="csr", random_state=0, dtype=np.float32)
    for arr in (A.data, A.indices, A.indptr):
        arr.flags.writeable = False
    B = np.ones((16, 3), np.float32)
    B.flags.writeable = False
    np.testing.assert_allclose(matkern.spmm(A, B), A @ B, rtol=2e-5)
    x = np.arange(16, dtype=np.float64)
    x.flags.writeable = False
    np.testing.assert_allclose(matkern.fwht(matkern.fwht(x)), 16 * x)


@pytest.mark.parametrize("how", ["full", "shifted"])
def test_fwht_out_overlapping_x(how):
    rng = np.random.default_rng(1)
    flat = rng.standard_normal(8 * 16 + 16)
    x = flat[: 8 * 16].reshape(8, 16)
    out = x if how == "full" else flat[16:].reshape(8, 16)
    expected = matkern.reference.fwht(x.copy())
    np.testing.assert_allclose(matkern.fwht(x, out=out), expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------ a SparseMatrix owns what it validated
@pytest.mark.parametrize("source", ["scipy", "tuple"])
def test_sparse_matrix_ignores_later_mutation(source):
    A = sp.random(40, 30, density=0.2, format="csr", random_state=2, dtype=np.float64)
    B = np.random.default_rng(2).standard_normal((30, 5))
    S = matkern.SparseMatrix(A if source == "scipy" else (A.data, A.indices, A.indptr, A.shape))
    expected = A @ B
    A.data *= 3.0  # the caller changes their arrays after construction
    A.indptr[1] = 0
    assert not S.data.flags.writeable and not S.indices.flags.writeable
    np.testing.assert_allclose(S @ B, expected, rtol=1e-12)


def test_sparse_matrix_mutated_indices_cannot_crash():
    assert_no_crash("""
        A = sp.random(200, 20, density=0.2, format="csr", random_state=0, dtype=np.float32)
        S = matkern.SparseMatrix(A)
        A.indices[:] = 10**7
        B = np.ones((20, 8), np.float32)
        assert np.allclose(S @ B, sp.random(200, 20, density=0.2, format="csr",
                           random_state=0, dtype=np.float32) @ B, rtol=1e-5)
    """)


# --------------------------------------------- corrupted structure: ValueError, never a crash
CORRUPT = {
    "column out of range": "A.indices[-1] = 10**7",
    "negative column": "A.indices[0] = -3",
    "indptr decreasing": "A.indptr[2] = A.indptr[3] + 5",
    "indptr past nnz": "A.indptr[-1] = A.indptr[-1] + 7",
    "indptr not at 0": "A.indptr[0] = 1",
}
FORMATS = ["csr", "csc"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("what", sorted(CORRUPT))
def test_corrupted_compressed_input_is_refused(fmt, what):
    assert_no_crash(
        f"""
        A = sp.random(30, 20, density=0.3, format="{fmt}", random_state=0, dtype=np.float64)
        {CORRUPT[what]}
        B = np.ones((20, 4))
        matkern.spmm(A, B)
    """,
        expect=("ValueError",),
    )


@pytest.mark.parametrize("corrupt", ["A.row[0] = 10**6", "A.col[0] = -1", "A.row = A.row[:-1]"])
def test_corrupted_coo_is_refused(corrupt):
    assert_no_crash(
        f"""
        A = sp.random(30, 20, density=0.3, format="coo", random_state=0, dtype=np.float64)
        {corrupt}
        matkern.SparseMatrix(A)
    """,
        expect=("ValueError",),
    )


def test_corrupted_bsr_is_refused():
    assert_no_crash(
        """
        A = sp.random(32, 32, density=0.3, format="csr", random_state=0).tobsr((4, 4))
        A.indices[0] = 99
        matkern.SparseMatrix(A)
    """,
        expect=("ValueError",),
    )


def test_scipy_arrays_longer_than_nnz_are_trimmed():
    """scipy allows indices/data longer than indptr[-1] and ignores the tail; so do we."""
    A = sp.csr_matrix(
        (np.array([1.0, 2.0, 99.0]), np.array([0, 1, 12345]), np.array([0, 1, 2])), shape=(2, 2)
    )
    S = matkern.SparseMatrix(A)
    assert S.nnz == 2
    np.testing.assert_allclose(S @ np.eye(2), [[1, 0], [0, 2]])


# ------------------------------------------------ generators: sizes refused before allocating
@pytest.mark.parametrize(
    "call, match",
    [
        ("band(2**40, 2)", "the number of rows = 1099511627776 overflows"),
        ("stencil27(10**5)", "the number of rows = 1000000000000000 overflows"),
        ("uniform_random(10**6, 10**6, 1.0)", "m=1000000, n=1000000, density=1.0 would need"),
        ("rmat(30, 2**20)", "scale=30, edge_factor=1048576 would need"),
    ],
)
def test_generator_sizes_refused(call, match):
    from matkern import generators as g  # noqa: F401  (used by eval)

    with pytest.raises(ValueError, match=match):
        eval("g." + call)
