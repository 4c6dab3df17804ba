"""spmm / SparseMatrix: every backend against scipy (float64), the GPU block layout checked on
the host, generators, empty and degenerate matrices, and bad input.

Tolerances. Let L be the largest number of stored entries in a row, |A||B| the float64 product
of the absolute values, u the unit roundoff of the working precision. Every result entry is a
sum of at most L products, accumulated in the working precision (float32 or float64 on the
CPU; float32 on the GPU), so the classical bound for recursive summation gives
|y - A B| <= gamma_L |A||B| with gamma_L ~ L u. The tests allow 2 L u |A||B| (+ a tiny floor).
GPU modes that round their inputs add the input rounding to that: tf32 rounds A and B to 10
mantissa bits (2 * 2**-11 relative per product), bf16 to 7 bits (2 * 2**-8), f16 rounds A
(B is already float16) and the float16 output (2**-11 each; the test compares with the
float64 product of the float16 B). Those bounds are stated next to each check.
"""

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import matkern
import matkern.generators as gen
from conftest import DATA, backend_available, run_in_threads, to_backend, to_numpy
from matkern import _gpu_csr, _spmm, _spmm_blocks

KS = [1, 8, 32, 128, 512]
REAL = sorted(p.stem for p in (DATA / "matrices").glob("*.mtx"))
_REAL_CACHE = {}


def real(name):
    if name not in _REAL_CACHE:
        _REAL_CACHE[name] = sp.csr_matrix(scipy.io.mmread(DATA / "matrices" / f"{name}.mtx"))
    return _REAL_CACHE[name]


def generated():
    return {
        "band": gen.band(300, 9, random_state=0),
        "stencil27": gen.stencil27(6, 5, 4, random_state=1),
        "rmat": gen.rmat(9, 4, random_state=2),
        "uniform": gen.uniform_random(257, 130, 0.05, random_state=3),
    }


GEN = generated()


def rand_b(n, k, dtype, order="C", seed=0):
    B = np.random.default_rng(seed).uniform(-1, 1, (n, k)).astype(dtype)
    return np.asfortranarray(B) if order == "F" else B


def bound(A, B, rel):
    """rel * (|A| @ |B|) + floor, with the float64 absolute product."""
    absA = abs(A).astype(np.float64)
    return rel * (absA @ np.abs(B.astype(np.float64))) + 1e-30


def max_row_nnz(A):
    d = np.diff(A.tocsr().indptr)
    return int(d.max()) if d.size else 0


def check(A, B, backend, dtype, **kw):
    """Run spmm on backend and compare with the float64 scipy product under 2 L u |A||B|."""
    y = matkern.spmm(A, to_backend(B, backend), backend=backend, **kw)
    y = to_numpy(y)
    # scipy's promotion on the CPU and reference backends; B's dtype on the GPU
    want = B.dtype if backend == "cuda" else np.result_type(A.dtype, B.dtype)
    assert y.shape == (A.shape[0], B.shape[1]) and y.dtype == want
    expect = A.astype(np.float64) @ B.astype(np.float64)
    L = max(1, max_row_nnz(A))
    u = np.finfo(dtype).eps / 2
    tol = bound(A, B, 2 * L * u)
    assert np.all(np.abs(y - expect) <= tol), float(np.max(np.abs(y - expect) - tol))
    return y


# ------------------------------------------------------------------ CPU and reference
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("name", list(GEN))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_generated_matrices(backend, name, k, dtype, order):
    if backend == "cuda" and dtype == np.float64:
        pytest.skip("float64 is a CPU dtype")
    A = GEN[name]
    B = rand_b(A.shape[1], k, dtype, order, seed=k)
    if backend == "cuda":
        check(A, B, backend, dtype, precision="fp32")
    else:
        check(A, B, backend, dtype)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("name", REAL)
def test_real_matrices(backend, name, k):
    if backend == "reference" and k > 32:
        pytest.skip("the NumPy reference is slow for large k; k <= 32 covers it")
    A = real(name)
    B = rand_b(A.shape[1], k, np.float32, seed=1)
    if backend == "cuda":
        check(A, B, backend, np.float32, precision="fp32")
    else:
        check(A, B, backend, np.float32)


def test_real_matrices_float64_fortran_cpu():
    for name in REAL:
        A = real(name)
        check(A, rand_b(A.shape[1], 20, np.float64, "F"), "cpu", np.float64)


def test_sparse_matrix_object_reuses_preparation():
    A = GEN["stencil27"]
    S = matkern.SparseMatrix(A)
    B = rand_b(A.shape[1], 16, np.float32)
    y1 = S @ B
    t = dict(S.prepare_time_)
    y2 = matkern.spmm(S, B)
    assert S.prepare_time_ == t and "cpu/float64" in t  # float64 A: B promoted, A as stored
    np.testing.assert_array_equal(y1, y2)
    assert S.kernel_.startswith("cpu-csr")
    out = np.empty((A.shape[0], 16), np.float64)  # the promoted dtype
    assert matkern.spmm(S, B, out=out) is out
    np.testing.assert_array_equal(out, y1)
    S2 = matkern.SparseMatrix(S)  # shares the CSR, has its own caches
    assert S2.prepare_time_ == {} and S2.shape == S.shape and S2.nnz == A.nnz
    np.testing.assert_array_equal(S2 @ B, y1)
    assert (S2.toscipy() != A).nnz == 0 and "SparseMatrix" in repr(S2)


@pytest.mark.parametrize("fmt", ["coo", "csc", "bsr", "lil", "dok", "dia"])
def test_any_scipy_format(fmt):
    A = GEN["band"]
    B = rand_b(A.shape[1], 8, np.float64)
    y = matkern.spmm(A.asformat(fmt), B)
    np.testing.assert_allclose(y, A @ B, rtol=1e-12, atol=1e-12)


def test_tuple_input_unsorted_and_duplicates_are_summed(backend):
    # row 0: (0,2) twice and (0,0), unsorted; row 1 empty; row 2: (2,1)
    data = np.array([1.0, 2.0, 3.0, 4.0])
    indices = np.array([2, 0, 2, 1])
    indptr = np.array([0, 3, 3, 4])
    B = rand_b(3, 5, np.float64)
    dense = np.zeros((3, 3))
    dense[0, 2], dense[0, 0], dense[2, 1] = 1.0 + 3.0, 2.0, 4.0
    y = to_numpy(
        matkern.spmm(
            (data, indices, indptr, (3, 3)),
            to_backend(B.astype(np.float32) if backend == "cuda" else B, backend),
            backend=backend,
            **({"precision": "fp32"} if backend == "cuda" else {}),
        )
    )
    np.testing.assert_allclose(y, dense @ B, rtol=1e-6, atol=1e-6)
    coo = sp.coo_matrix((data, (np.array([0, 0, 0, 2]), indices)), shape=(3, 3))
    np.testing.assert_allclose(matkern.spmm(coo, B), dense @ B, rtol=1e-12)


def test_empty_rows_columns_and_no_nonzeros(backend):
    rng = np.random.default_rng(0)
    dense = rng.uniform(-1, 1, (40, 30)) * (rng.random((40, 30)) < 0.2)
    dense[::3] = 0.0  # empty rows
    dense[:, ::4] = 0.0  # empty columns
    dt = np.float32
    kw = {"precision": "fp32"} if backend == "cuda" else {}
    for A in (sp.csr_matrix(dense), sp.csr_matrix((40, 30))):
        B = rand_b(30, 9, dt)
        y = to_numpy(matkern.spmm(A, to_backend(B, backend), backend=backend, **kw))
        np.testing.assert_allclose(y, A @ B, rtol=1e-5, atol=1e-6)
    # degenerate shapes: m, n or k = 0
    for m, n, k in [(0, 5, 3), (4, 0, 3), (4, 5, 0)]:
        y = to_numpy(
            matkern.spmm(
                sp.csr_matrix((m, n)),
                to_backend(np.ones((n, k), dt), backend),
                backend=backend,
                **kw,
            )
        )
        assert y.shape == (m, k) and not np.any(y)


def test_nan_inf_propagate_to_rows_that_touch_them(backend):
    A = sp.csr_matrix(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    B = np.ones((3, 4), np.float32)
    B[0, 1] = np.nan
    B[1, 2] = np.inf
    y = to_numpy(matkern.spmm(A, to_backend(B, backend), backend=backend))
    assert np.isnan(y[0, 1]) and np.isinf(y[1, 2])
    assert np.isfinite(y[0, [0, 2, 3]]).all() and np.isfinite(y[1, [0, 1, 3]]).all()
    assert not np.any(y[2])


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 60),
    n=st.integers(0, 60),
    k=st.integers(0, 70),
    density=st.floats(0, 1),
    f_order=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_property_cpu_matches_scipy(m, n, k, density, f_order, dtype, seed):
    A = sp.random(m, n, density=density, format="csr", random_state=seed)
    B = rand_b(n, k, dtype, "F" if f_order else "C", seed=seed)
    if m and k:
        check(A, B, "cpu", dtype)
    else:
        assert matkern.spmm(A, B).shape == (m, k)


def test_simd_and_portable_paths_agree(monkeypatch):
    A = GEN["rmat"]
    for dtype in (np.float32, np.float64):
        for order in ("C", "F"):
            for k in (3, 8, 45, 130):
                B = rand_b(A.shape[1], k, dtype, order)
                monkeypatch.setenv("MATKERN_SIMD", "portable")
                S = matkern.SparseMatrix(A)
                yp = check(A, B, "cpu", dtype)
                yp2 = S @ B
                assert S.kernel_ == "cpu-csr-portable"
                monkeypatch.delenv("MATKERN_SIMD")
                ya = check(A, B, "cpu", dtype)
                np.testing.assert_allclose(yp, ya, rtol=20 * np.finfo(dtype).eps, atol=1e-5)
                np.testing.assert_array_equal(yp, yp2)


def test_many_threads_at_once():
    A = GEN["stencil27"]
    S = matkern.SparseMatrix(A)
    rng = np.random.default_rng(3)
    Bs = [rng.standard_normal((A.shape[1], 40)).astype(np.float32) for _ in range(8)]
    expect = [A @ B for B in Bs]
    results = run_in_threads([lambda B=B: S @ B for B in Bs], repeats=5)
    for r, e in zip(results, expect):
        np.testing.assert_allclose(r, e, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ bad input
def test_bad_input():
    A = GEN["band"]
    B = rand_b(300, 4, np.float32)
    with pytest.raises(TypeError, match=r"spmm\(\): A must be"):
        matkern.spmm(A.toarray(), B)
    with pytest.raises(TypeError, match=r"spmm\(\): B must be a NumPy"):
        matkern.spmm(A, [[1.0]])
    with pytest.raises(TypeError, match=r"spmm\(\): B must have dtype float32 or float64"):
        matkern.spmm(A, B.astype(np.float16))
    with pytest.raises(TypeError, match="B must have dtype"):
        matkern.spmm(A, B.astype(np.int32))
    with pytest.raises(ValueError, match="B must have 300 rows"):
        matkern.spmm(A, rand_b(299, 4, np.float32))
    with pytest.raises(ValueError, match="1- or 2-dimensional"):
        matkern.spmm(A, np.ones((300, 1, 1), np.float32))
    with pytest.raises(ValueError, match="C- or Fortran-contiguous"):
        matkern.spmm(A, rand_b(300, 8, np.float32)[:, ::2])
    with pytest.raises(ValueError, match="out must have shape"):
        matkern.spmm(A, B, out=np.empty((300, 5), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float64"):  # A is float64
        matkern.spmm(A, B, out=np.empty((300, 4), np.float32))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        matkern.spmm(A, B, out=np.empty((300, 4), np.float32, order="F"))
    with pytest.raises(ValueError, match="precision must be one of"):
        matkern.spmm(A, B, precision="fp8")
    with pytest.raises(ValueError, match="kernel must be one of"):
        matkern.spmm(A, B, kernel="dense")
    with pytest.raises(ValueError, match="backend must be one of"):
        matkern.spmm(A, B, backend="gpu")
    with pytest.raises(TypeError, match="values must be real"):
        matkern.SparseMatrix(A.astype(np.complex64))


def test_bad_csr_tuples():
    d, i, p = np.ones(2), np.array([0, 1]), np.array([0, 1, 2])
    with pytest.raises(ValueError, match="A.indptr must have 4 entries"):
        matkern.SparseMatrix((d, i, p, (3, 2)))
    with pytest.raises(ValueError, match="indptr must start at 0"):
        matkern.SparseMatrix((d, i, np.array([1, 1, 2]), (2, 2)))
    with pytest.raises(ValueError, match="nondecreasing"):
        matkern.SparseMatrix((d, i, np.array([0, 2, 1]), (2, 2)))
    with pytest.raises(ValueError, match="A.data has 3 entries; indptr\\[-1\\] says 2"):
        matkern.SparseMatrix((np.ones(3), i, p, (2, 2)))
    with pytest.raises(ValueError, match="A.indices must lie in \\[0, 2\\)"):
        matkern.SparseMatrix((d, np.array([0, 2]), p, (2, 2)))
    with pytest.raises(ValueError, match="A.indices must lie in"):
        matkern.SparseMatrix((d, np.array([-1, 0]), p, (2, 2)))
    with pytest.raises(TypeError, match="A.indices must be an integer array"):
        matkern.SparseMatrix((d, i.astype(float), p, (2, 2)))
    with pytest.raises(ValueError, match="shape must be a tuple"):
        matkern.SparseMatrix((d, i, p, [2, 2]))
    with pytest.raises(ValueError, match="must be >= 0"):
        matkern.SparseMatrix((d, i, p, (-2, 2)))
    # what a wrapped int32 indptr looks like: a negative jump
    wrapped = np.array([0, 2**31 - 1, 2**31 - 1 + 5], dtype=np.int64).astype(np.int32)
    with pytest.raises(ValueError, match="nondecreasing"):
        matkern.SparseMatrix((np.ones(4), np.zeros(4, np.int32), wrapped, (2, 1)))


def test_32bit_index_overflow():
    empty = (np.zeros(0), np.zeros(0, np.int32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="overflows the 32-bit indices"):
        matkern.SparseMatrix(empty + ((1, 2**31),))
    with pytest.raises(ValueError, match="overflows the 32-bit indices"):
        matkern.SparseMatrix(empty + ((2**31, 1),))  # rows checked before indptr's length
    with pytest.raises(ValueError, match="overflows the 32-bit indices"):
        matkern.SparseMatrix(empty + ((1, 2**32 + 5),))
    # the largest allowed column count works (no allocation of n-sized arrays on the CPU path)
    S = matkern.SparseMatrix(
        (np.array([2.0]), np.array([2**31 - 2]), np.array([0, 1]), (1, 2**31 - 1))
    )
    assert S.shape == (1, 2**31 - 1) and S.indices.dtype == np.int32


def test_integer_values_are_converted():
    A = sp.csr_matrix(np.array([[1, 0], [0, 3]], dtype=np.int64))
    S = matkern.SparseMatrix(A)
    assert S.dtype == np.float64
    np.testing.assert_allclose(S @ np.ones((2, 2)), [[1, 1], [3, 3]])


# ------------------------------------------------------------------ GPU layout on the host
@pytest.mark.parametrize("mode", ["tf32", "f16", "bf16"])
@pytest.mark.parametrize("name", list(GEN) + ["dnn-n1024-l1"])
def test_block_layout_reconstructs_matrix(mode, name):
    """The fragment-ordered blocks, mapped back through FRAG and out_rows, give A again (up to
    the rounding of the mode). This checks on any machine what the GPU kernel reads."""
    A = GEN[name] if name in GEN else real(name)
    m, n = A.shape
    perm, order, counts = _spmm_blocks.choose_order(A.indptr.astype(np.int64), A.indices, m, n)
    assert sorted(perm) == list(range(m)) and counts[order] == min(counts.values())
    blk = _spmm_blocks.build_blocks(A.indptr.astype(np.int64), A.indices, A.data, m, n, perm, mode)
    vals = blk["values"]
    vals = _spmm_blocks.bf16_bits_to_float32(vals) if mode == "bf16" else vals.astype(np.float64)
    nbr = blk["block_ptr"].size - 1
    D = np.zeros((nbr * 16, -(-n // 16) * 16))
    for br in range(nbr):
        for b in range(blk["block_ptr"][br], blk["block_ptr"][br + 1]):
            c = blk["block_col"][b] * 16
            D[br * 16 : br * 16 + 16, c : c + 16] = vals[b * 256 : (b + 1) * 256][
                _spmm_blocks.FRAG[mode]
            ].reshape(16, 16)
    rows = blk["out_rows"]
    assert np.all(rows[m:] == -1)
    back = np.zeros((m, n))
    back[rows[:m]] = D[:m, :n]
    rel = {"tf32": 2.0**-11, "f16": 2.0**-11, "bf16": 2.0**-8}[mode]
    dense = A.toarray()
    floor = 2.0**-25 if mode == "f16" else 0.0  # half the float16 subnormal spacing
    assert np.all(np.abs(back - dense) <= rel * np.abs(dense) + floor)
    assert blk["n_blocks"] == counts[order]


def test_reordering_helps_scrambled_band():
    """A band matrix with rows shuffled: the Jaccard (MinHash) order must find far fewer
    blocks than the scrambled order."""
    A = gen.band(2048, 32, random_state=0)
    P = np.random.default_rng(0).permutation(2048)
    As = A[P]
    S = matkern.SparseMatrix(As)
    st_ = S.block_stats()
    assert st_["reorder"] != "original"
    assert st_["n_blocks"] < 0.5 * st_["block_counts"]["original"]
    assert st_["fill_ratio"] > 0.3


def test_bf16_rounding_helper():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-9, -2.5, np.inf, 0.0], np.float32)
    y = _spmm_blocks.bf16_bits_to_float32(_spmm_blocks.float32_to_bf16_bits(x))
    np.testing.assert_array_equal(y, [1.0, 1.0, 1.0 + 2**-7, -2.5, np.inf, 0.0])
    assert np.isnan(
        _spmm_blocks.bf16_bits_to_float32(
            _spmm_blocks.float32_to_bf16_bits(np.array([np.nan], np.float32))
        )
    )


def long_row_matrix():
    """Power-law-like: a few rows far longer than the GPU CSR segment, the rest short."""
    rng = np.random.default_rng(5)
    A = sp.random(600, 3000, density=0.002, format="lil", random_state=5)
    for r, length in [(3, 2999), (100, 700), (599, 257), (200, 250)]:
        cols = rng.choice(3000, length, replace=False)
        A[r, cols] = rng.uniform(-1, 1, length)
    return sp.csr_matrix(A)


def test_gpu_csr_row_segments_partition_rows():
    """The host side of the GPU CSR split of long rows: segments cover every row's entries in
    order, at most SEG each, and a NumPy emulation of the kernel's sums gives A @ B."""
    A = long_row_matrix()
    bounds, seg_row, seg_slot, split_rows = _gpu_csr.row_segments(A.indptr.astype(np.int64))
    seg_len = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == A.nnz and np.all(seg_len <= _gpu_csr.SEG)
    assert np.array_equal(np.unique(seg_row), np.arange(A.shape[0]))
    counts = np.diff(A.indptr)
    assert np.array_equal(split_rows, np.nonzero(counts > _gpu_csr.SEG)[0])
    assert {3, 100, 599} <= set(split_rows.tolist())
    B = rand_b(3000, 5, np.float64)
    out = np.zeros((600, 5))
    part = np.zeros((split_rows.size, 5))
    for s_ in range(seg_row.size):
        p0, p1 = bounds[s_], bounds[s_ + 1]
        assert np.all((A.indptr[seg_row[s_]] <= p0) & (p1 <= A.indptr[seg_row[s_] + 1]))
        acc = A.data[p0:p1] @ B[A.indices[p0:p1]]
        if seg_slot[s_] < 0:
            out[seg_row[s_]] = acc
        else:
            part[seg_slot[s_]] += acc
    out[split_rows] = part
    np.testing.assert_allclose(out, A @ B, rtol=1e-12, atol=1e-12)
    dummy = _gpu_csr.row_segments(GEN["band"].indptr.astype(np.int64))
    assert dummy[0].size == 1


# ------------------------------------------------------------------ GPU kernels
GPU_CASES = list(GEN) + ["dnn-n1024-l1", "cora", "cryg2500", "long-rows"]


def need_gpu():
    ok, why = backend_available("cuda")
    if not ok:
        pytest.skip(f"cuda backend unavailable: {why}")


def _gpu_matrix(name):
    if name == "long-rows":
        return long_row_matrix()
    return GEN[name] if name in GEN else real(name)


@pytest.mark.gpu
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("name", GPU_CASES)
@pytest.mark.parametrize(
    "precision,kernel",
    [
        ("tf32", "blocked"),
        ("bf16", "blocked"),
        ("f16", "blocked"),
        ("tf32", "csr"),
        ("f16", "csr"),
        (None, None),
    ],
)
def test_gpu_kernels(name, k, precision, kernel):
    need_gpu()
    import cupy as cp

    A = _gpu_matrix(name)
    dtype = np.float16 if precision == "f16" else np.float32
    B = rand_b(A.shape[1], k, dtype, seed=k)
    S = matkern.SparseMatrix(A)
    y = matkern.spmm(S, cp.asarray(B), precision=precision, kernel=kernel)
    assert isinstance(y, cp.ndarray) and y.dtype == dtype and y.shape == (A.shape[0], k)
    y = cp.asnumpy(y).astype(np.float64)
    expect = A.astype(np.float64) @ B.astype(np.float64)
    L = max(1, max_row_nnz(A))
    acc = L * 2.0**-24
    if S.kernel_.startswith("cuda-blocked"):
        rel = {"tf32": 2 * 2.0**-11, "bf16": 2 * 2.0**-8, "f16": 2.0**-11}[precision or "tf32"]
    else:
        rel = 0.0
    tol = bound(A, B, 2 * (rel + acc))
    if dtype == np.float16:
        # the float16 result is rounded once more (2**-11 relative), and in the subnormal
        # range each rounding of A's entries or of the result is off by up to 2**-25 absolute
        pattern = (abs(A) > 0).astype(np.float64)
        tol = (
            tol
            + 2.0**-11 * np.abs(expect)
            + 2.0**-24 * (1 + pattern @ np.abs(B.astype(np.float64)))
        )
    assert np.all(np.abs(y - expect) <= tol), float(np.max(np.abs(y - expect) - tol))
    if kernel is not None:
        assert S.kernel_ == f"cuda-{kernel}" + (f"-{precision}" if kernel == "blocked" else "")


@pytest.mark.gpu
def test_gpu_auto_rule_and_fortran_b():
    need_gpu()
    import cupy as cp

    A = gen.band(1024, 33, random_state=0)
    S = matkern.SparseMatrix(A)
    B = rand_b(1024, 64, np.float32, "F")
    y = cp.asnumpy(S @ cp.asfortranarray(cp.asarray(B)))
    assert S.kernel_ == "cuda-blocked-tf32" and S.fill_ratio_ >= _spmm.BLOCKED_MIN_FILL
    np.testing.assert_allclose(y, A @ B, rtol=0, atol=float(np.max(bound(A, B, 4 * 2.0**-11))))
    Bn = B.copy()
    Bn[5, 3] = np.nan
    y = cp.asnumpy(S @ cp.asarray(Bn))  # non-finite B: CSR, NaN only where A touches row 5
    assert np.array_equal(np.isnan(y[:, 3]), A[:, 5].toarray().ravel() != 0)
    R = gen.rmat(12, 4, random_state=0)
    SR = matkern.SparseMatrix(R)
    SR @ cp.asarray(rand_b(R.shape[1], 8, np.float32))
    assert SR.kernel_ == "cuda-csr" and SR.fill_ratio_ < 0.1
    Bf = rand_b(R.shape[1], 8, np.float32)
    np.testing.assert_allclose(cp.asnumpy(SR @ cp.asarray(Bf)), R @ Bf, rtol=1e-4, atol=1e-4)
    assert "cuda/reorder" in SR.prepare_time_


@pytest.mark.gpu
def test_gpu_cupyx_input_and_bad_dtype():
    need_gpu()
    import cupy as cp
    import cupyx.scipy.sparse as csp

    A = GEN["stencil27"]
    Ag = csp.csr_matrix(A)
    B = rand_b(A.shape[1], 16, np.float32)
    y = cp.asnumpy(matkern.spmm(Ag, cp.asarray(B), precision="fp32"))
    np.testing.assert_allclose(y, A @ B, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="float32 or float16 on backend 'cuda'"):
        matkern.spmm(Ag, cp.asarray(B, dtype=cp.float64))
    with pytest.raises(ValueError, match="needs float16 B"):
        matkern.spmm(Ag, cp.asarray(B), precision="f16")
    with pytest.raises(ValueError, match="one device"):
        matkern.spmm(A, cp.asarray(B), out=np.empty((A.shape[0], 16), np.float32))


# ------------------------------------------------------------------ generators
def test_generators_seeded_and_shaped():
    for f, args in [
        (gen.band, (500, 17)),
        (gen.stencil27, (5,)),
        (gen.rmat, (8, 4)),
        (gen.uniform_random, (100, 50, 0.1)),
    ]:
        a, b = f(*args, random_state=7), f(*args, random_state=7)
        assert (a != b).nnz == 0 and a.has_sorted_indices
        c = f(*args, random_state=8)
        assert not np.array_equal(a.data, c.data) or a.nnz != c.nnz
    A = gen.band(500, 17, random_state=0)
    r, c = A.nonzero()
    assert np.max(np.abs(r - c)) == 8 and A.nnz == 500 * 17 - 2 * (8 * 9 // 2)
    S = gen.stencil27(4, 5, 6, random_state=0)
    # 27-point stencil: (3n-2) neighbours per axis product
    assert S.shape == (120, 120) and S.nnz == (3 * 4 - 2) * (3 * 5 - 2) * (3 * 6 - 2)
    assert np.all(S.diagonal() > 26)
    R = gen.rmat(10, 8, random_state=0)
    deg = np.diff(R.indptr)
    assert R.shape == (1024, 1024) and deg.max() > 8 * deg.mean()  # power-law hubs
    U = gen.uniform_random(100, 50, 0.1, random_state=0)
    assert U.nnz == 500
    with pytest.raises(ValueError, match="bandwidth must be <="):
        gen.band(4, 8)
    with pytest.raises(ValueError, match="a \\+ b \\+ c must be <= 1"):
        gen.rmat(4, a=0.6, b=0.3, c=0.3)
