"""matkern.dask on a real dask.distributed.LocalCluster: 2 worker processes, 1 thread each,
started once for the module and closed after it.

Every result is compared with single-process matkern on the same data and seed:

- row-chunked projections (SparseRandomProjection, FJLT) and fwht (any chunking along the
  transformed axis): bit-identical (each row is computed by the same kernel; fwht's chunked
  butterflies repeat the kernel's stages in its order, and the normalization is one final
  multiplication by the same float);
- column-chunked SparseRandomProjection: float32 partial products summed in another order,
  |difference| <= 1e-5 * max |Y| (float32 rounding of a sum of ~d/density/k terms is
  ~1e-7 relative to the row's scale; 1e-5 leaves a factor 100);
- SparseMatrix products, FastRP and int8 per row chunk: bit-identical (the same CSR kernel,
  row by row; rp_accumulate and the row quantization are row-local);
- lut_matmul: its CPU kernels pick a GEMV, blocked or wide tile by the number of rows, so
  row chunks of another size sum in another order: float32 rtol 1e-5 of the row's scale;
- spectral_norm_bound of a tall array: >= the exact norm (SVD in float64, and exact
  rationals for the adversarial rank-one case) and within 1e-3 relative of it (the Gram
  iteration's gap at n_iter=6 on these matrices, plus the rounding margin);
- TruncatedSVD: singular values of a rank-k plus noise matrix within 1e-6 relative of
  numpy.linalg.svd's (the range finder with oversampling and 2 power iterations captures the
  exact rank-k part; the noise is 1e-8).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matkern

da = pytest.importorskip("dask.array", reason="matkern.dask needs dask[array]")
distributed = pytest.importorskip("distributed", reason="matkern.dask needs distributed")
md = pytest.importorskip("matkern.dask")


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes with 1 thread each, for the whole module."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: never a clash with another cluster
            memory_limit="2GiB",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _rng(seed=0):
    return np.random.default_rng(seed)


def _data(shape, chunks, seed, dtype=np.float32):
    """(dask array made on the workers, the same values as one NumPy array): data too large
    to embed in a graph is generated where it is used, as a real pipeline would load it."""
    Xd = da.random.default_rng(seed).standard_normal(shape, chunks=chunks).astype(dtype)
    Xd = Xd.persist()
    return Xd, Xd.compute()


# ---------------------------------------------------------------- threads
def _kernel_threads_seen():
    from matkern.dask import _tasks

    with _tasks.kernel_threads():
        return matkern.get_num_threads()


def test_tasks_use_the_workers_thread_count(client):
    """A task's kernels get the worker's nthreads (1 here), whatever the machine's core count
    or the nanny's OMP_NUM_THREADS; tasks of Dask's local threaded scheduler get 1 thread."""
    seen = client.run(_kernel_threads_seen)
    assert sorted(seen.values()) == [1, 1]
    assert client.submit(_kernel_threads_seen, pure=False).result() == 1
    import dask

    assert dask.delayed(_kernel_threads_seen)().compute(scheduler="threads") == 1


def _grant_under_the_nanny():
    from matkern import _threads
    from matkern.dask import _tasks

    cpu = _threads._cpu()
    before, old = cpu.omp_max_threads(), matkern.get_num_threads()
    _threads.set_num_threads(2)
    try:
        with _threads.threads(2), _tasks._openmp_limit(2), _threads.thread_grant() as g:
            inside = g
    finally:
        _threads.set_num_threads(old)
    return before, inside, cpu.omp_max_threads()


def test_task_threads_are_not_capped_by_the_nannys_openmp_limit(client):
    """Workers start with OMP_NUM_THREADS=1, which caps matkern's grant: a task's OpenMP
    limit is raised to its share (here 2) for the task and restored after."""
    assert client.submit(_grant_under_the_nanny, pure=False).result() == (1, 2, 1)


def test_balanced_row_blocks():
    """from_scipy without row_chunks: blocks of about equal stored entries (a power-law
    graph's hub rows come first), sizes summing to the rows."""
    from matkern.dask._sparse import _balanced_row_chunks

    rng = _rng(7)
    counts = (1000 / np.arange(1, 2001) ** 0.8).astype(np.int64) + rng.integers(0, 3, 2000)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    sizes = _balanced_row_chunks(indptr, 8, "t")
    assert sum(sizes) == 2000 and len(sizes) == 8
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    per_block = np.diff(indptr[bounds])
    assert per_block.max() <= 1.2 * indptr[-1] / 8 + counts.max()
    assert _balanced_row_chunks(np.array([0, 5, 5]), 8, "t") == (1, 1)


def _owns_its_rows(block, *args):
    return np.full(block.shape[:-1] + (2,), float(block.flags.owndata), block.dtype)


def test_map_rows_passes_each_chunk_uncopied():
    """The row-chunk tasks (projections, int8/lut) receive the chunk itself: a blockwise
    contraction with concatenate=True passed numpy.concatenate([chunk]), a copy of every
    chunk. Chunks of a dask array made from a NumPy array are views of it (owndata False); a
    column-chunked X is rechunked to whole rows first, then those rows are passed as they
    are; the output has n_out columns per row chunk."""
    from matkern.dask import _tasks

    X = np.ones((40, 6), np.float32)
    for chunks in ((10, 6), (10, 3)):
        Y = _tasks.map_rows(_owns_its_rows, da.from_array(X, chunks=chunks), 7, n_out=2)
        assert Y.chunks == ((10,) * 4, (2,))
        out = Y.compute(scheduler="sync")
        assert out.shape == (40, 2) and out.dtype == np.float32
        if chunks[1] == 6:
            assert not out.any()


# ---------------------------------------------------------------- projections
@pytest.mark.parametrize("chunks", [(300, 3000), (137, 3000)])
def test_srp_row_chunks_bit_identical(client, chunks):
    Xd, X = _data((1000, 3000), chunks, 1)
    Y = matkern.SparseRandomProjection(64, random_state=3).fit_transform(X)
    p = md.SparseRandomProjection(64, random_state=3).fit(Xd)
    Yd = p.transform(Xd)
    assert isinstance(Yd, da.Array) and Yd.chunks[0] == Xd.chunks[0]
    assert np.array_equal(Yd.compute(), Y)


def test_srp_column_chunks_sum_partials(client):
    X = _rng(2).standard_normal((500, 3000)).astype(np.float32)
    Y = matkern.SparseRandomProjection(48, random_state=5).fit_transform(X)
    Xd = da.from_array(X, chunks=(200, (1000, 1500, 500)))
    Yd = md.SparseRandomProjection(48, random_state=5).fit_transform(Xd).compute()
    assert Yd.dtype == np.float32
    assert np.abs(Yd - Y).max() <= 1e-5 * np.abs(Y).max()
    # float64: the same within float64 rounding
    Y64 = matkern.SparseRandomProjection(48, random_state=5).fit_transform(X.astype(np.float64))
    Yd64 = md.SparseRandomProjection(48, random_state=5).fit_transform(Xd.astype(np.float64))
    np.testing.assert_allclose(Yd64.compute(), Y64, rtol=0, atol=1e-12 * np.abs(Y64).max())


def test_fjlt_bit_identical_and_column_chunks_rechunked(client):
    X = _rng(3).standard_normal((800, 1500)).astype(np.float32)
    Z = matkern.FJLT(32, random_state=1).fit(X).transform(X)
    for chunks in [(250, 1500), (123, 700)]:
        Xd = da.from_array(X, chunks=chunks)
        Zd = md.FJLT(32, random_state=1).fit(Xd).transform(Xd)
        assert np.array_equal(Zd.compute(), Z)


@pytest.mark.parametrize(
    "dtype, chunk_list",
    [(np.float32, [(4, 4096), (3, 1024), (8, 128), (8, 1000)]), (np.float64, [(3, 1000)])],
)
def test_fwht_bit_identical(client, dtype, chunk_list):
    x = _rng(4).standard_normal((8, 4096)).astype(dtype)
    for chunks in chunk_list:
        xd = da.from_array(x, chunks=chunks)
        got = [md.fwht(xd, normalize=normalize) for normalize in (False, True)]
        got = da.compute(*got)
        for normalize, g in zip((False, True), got):
            assert np.array_equal(g, matkern.fwht(x, normalize=normalize)), (chunks, normalize)


def test_fwht_other_axis():
    x = _rng(5).standard_normal((64, 8, 32))
    got = md.fwht(da.from_array(x, chunks=(8, 4, 32)), axis=0).compute(scheduler="sync")
    assert np.array_equal(got, matkern.fwht(x, axis=0))


def test_projection_bad_input():
    with pytest.raises(TypeError, match="fwht\\(\\): x must be a dask array"):
        md.fwht(np.ones(8))
    with pytest.raises(ValueError, match="power-of-two length along axis -1, got 1000"):
        md.fwht(da.ones((2, 1000)))
    with pytest.raises(TypeError, match="X must have dtype float32 or float64, got int64"):
        md.SparseRandomProjection(8).fit(da.ones((10, 100), dtype=np.int64))
    p = md.SparseRandomProjection(8, random_state=0).fit(da.ones((10, 100)))
    with pytest.raises(ValueError, match="X must have 100 columns \\(as fitted\\), got 99"):
        p.transform(da.ones((10, 99)))
    with pytest.raises(RuntimeError, match="call fit\\(\\) first"):
        md.FJLT(8).transform(da.ones((10, 100)))
    # NumPy input still goes to the single-process estimator
    Y = p.transform(np.ones((3, 100)))
    assert isinstance(Y, np.ndarray) and Y.shape == (3, 8)


def test_import_error_names_the_extra():
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "try:\n    import matkern.dask\nexcept ImportError as e:\n    print(e)\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    ).stdout
    assert 'pip install "matkern[dask]"' in out


def _env():
    import os
    import pathlib

    env = dict(os.environ)
    py = str(pathlib.Path(matkern.__file__).parents[1])
    env["PYTHONPATH"] = py + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------- sparse products
@pytest.fixture(scope="module")
def condmat():
    """ca-CondMat (23133 x 23133, 186936 entries): a real collaboration network."""
    import scipy.io
    import scipy.sparse as sp

    from datasets import data_dir

    return sp.csr_matrix(scipy.io.mmread(data_dir() / "matrices" / "ca-CondMat.mtx"))


def test_spmm_real_matrix_numpy_and_dask_B(client, condmat):
    A = condmat
    S = md.SparseMatrix.from_scipy(A, 5000)
    assert S.shape == A.shape and S.nnz == A.nnz and S.row_chunks == (5000,) * 4 + (3133,)
    B = _rng(6).standard_normal((A.shape[1], 24)).astype(np.float32)
    local = matkern.SparseMatrix(A)
    ref = local @ B
    Y = S @ B
    assert Y.chunks == (S.row_chunks, (24,)) and Y.dtype == ref.dtype == np.float64
    Bd = da.from_array(B, chunks=(4000, 16))
    Yd = S @ Bd
    assert Yd.chunks == (S.row_chunks, (16, 8))
    b = np.ascontiguousarray(B[:, 0])
    y, yd, y1 = da.compute(Y, Yd, S.dot(b))
    assert np.array_equal(y, ref) and np.array_equal(yd, ref)
    assert np.array_equal(y1, local @ b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spmm_dask_B_read_in_place(client, condmat, dtype):
    """A dask B of NumPy chunks of the result's dtype, column chunks of 64 or more: each task
    reads B's row chunks in place (no rechunk of B), bit-identical to the single-process product; chunks whose rows
    are not contiguous (Fortran order) are copied by the task; a float32 B with float64 A
    (a float64 result) takes the gathering path, with the same bits."""
    A = condmat.astype(dtype)
    S = md.SparseMatrix.from_scipy(A, (1, 9000, 14132))
    Bd, B = _data((A.shape[1], 150), ((1, 3000, 3000, 17132), (64, 86)), 9, dtype)
    ref = matkern.SparseMatrix(A) @ B
    assert not any("rechunk" in str(k) for k in (S @ Bd).dask)  # B's rows not gathered
    for Bv in (Bd, Bd.rechunk((5000, 150)).map_blocks(np.asfortranarray)):  # F-order chunks
        Yd = S @ Bv
        assert any("_multiply_chunks" in str(k) for k in Yd.dask)
        assert Yd.dtype == dtype and np.array_equal(Yd.compute(), ref)
    other = np.float32 if dtype == np.float64 else np.float64
    Yo = S @ Bd.astype(other)
    in_place = other == np.float64  # float32 A, float64 B: the result's dtype is B's
    assert any("_multiply_chunks" in str(k) for k in Yo.dask) == in_place
    assert np.array_equal(Yo.compute(), matkern.SparseMatrix(A) @ B.astype(other))
    Yn = S @ Bd.rechunk((5000, (100, 50)))  # a chunk narrower than 64: gathered
    assert not any("_multiply_chunks" in str(k) for k in Yn.dask)
    assert np.array_equal(Yn.compute(), ref)


def test_spmm_from_dask_chunks(client, condmat):
    A = condmat.astype(np.float32)
    X = da.from_array(A, chunks=(6000, 10000), asarray=False)  # scipy CSR chunks
    S = md.SparseMatrix.from_dask(X)
    assert S.nnz == A.nnz and S.row_chunks == X.chunks[0] and S.dtype == np.float32
    B = _rng(7).standard_normal((A.shape[1], 8)).astype(np.float32)
    assert np.array_equal((S @ B).compute(), matkern.SparseMatrix(A) @ B)


def test_spmm_bad_input(client):
    import scipy.sparse as sp

    A = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    with pytest.raises(TypeError, match="A must be a scipy.sparse matrix, got numpy.ndarray"):
        md.SparseMatrix.from_scipy(A.toarray(), 10)
    with pytest.raises(ValueError, match="row_chunks must be positive sizes summing to the 50"):
        md.SparseMatrix.from_scipy(A, (10, 10))
    S = md.SparseMatrix.from_scipy(A, 20)
    with pytest.raises(ValueError, match="B must have 40 rows"):
        S @ np.ones((41, 3))
    with pytest.raises(TypeError, match="B must have dtype float16, float32 or float64"):
        S @ np.ones((40, 3), dtype=np.int64)
    bad = sp.csr_matrix(A)
    bad.indices[3] = 1000  # corrupted: refused before scipy touches it
    with pytest.raises(ValueError, match="must lie in \\[0, 40\\)"):
        md.SparseMatrix.from_scipy(bad, 20)


# ---------------------------------------------------------------- FastRP
FASTRP_ARGS = dict(dim=64, iteration_weights=(0.0, 1.0, 1.0, 2.0), normalization_strength=-0.5)


@pytest.fixture(scope="module")
def blogcatalog():
    from datasets import blogcatalog

    return blogcatalog()


def test_fastrp_blogcatalog_bit_identical(client, blogcatalog):
    E = matkern.fastrp(blogcatalog, random_state=1, **FASTRP_ARGS)
    Ed = md.fastrp(blogcatalog, random_state=1, row_chunks=3000, **FASTRP_ARGS)
    assert Ed.chunks[0] == (3000, 3000, 3000, 1312)
    assert np.array_equal(Ed.compute(), E)


def test_fastrp_random_graph_float64_no_l2(client):
    import scipy.sparse as sp

    A = sp.random(700, 700, density=0.02, format="coo", random_state=3)
    A = (A + A.T).tocsr()
    kw = dict(dim=16, iteration_weights=(0.5, 1.0), l2_normalize=False, dtype=np.float64)
    E = matkern.fastrp(A, random_state=4, **kw)
    S = md.SparseMatrix.from_scipy(A, (100, 250, 350))
    assert np.array_equal(md.fastrp(S, random_state=4, **kw).compute(), E)


def test_fastrp_pairs_read_whole_on_one_worker(client, monkeypatch):
    """On one worker the hops read the previous (U, emb) pairs whole (no getter tasks); on
    several (this cluster) through getters: the same bits either way."""
    import scipy.sparse as sp

    from matkern.dask import _tasks

    A = sp.random(500, 500, density=0.02, format="csr", random_state=8)
    kw = dict(dim=24, iteration_weights=(0.5, 1.0, 0.0, 2.0))
    E = matkern.fastrp(A, random_state=6, progress=False, **kw)
    split = md.fastrp(A, random_state=6, row_chunks=120, **kw)
    assert any("getitem" in str(k) for k in split.dask)
    monkeypatch.setattr(_tasks, "n_workers", lambda: 1)
    whole = md.fastrp(A, random_state=6, row_chunks=120, **kw)
    assert not any("getitem" in str(k) for k in whole.dask)
    assert np.array_equal(split.compute(), E)
    assert np.array_equal(whole.compute(), E)


def test_fastrp_walk_built_once_per_dtype(client):
    """A SparseMatrix's walk is persisted on the first call of each dtype and reused by the
    next calls (same futures), which stay bit-identical to single-process fastrp for other
    seeds and weights; a float64 call gets a walk of its own."""
    import scipy.sparse as sp

    A = sp.random(600, 600, density=0.03, format="csr", random_state=5)
    A = (A + A.T).tocsr()
    S = md.SparseMatrix.from_scipy(A, 150)
    kw = dict(dim=8, iteration_weights=(0.0, 1.0, 0.5))
    first = md.fastrp(S, random_state=1, **kw).compute()
    walks = S._plans[("fastrp-walk", np.dtype(np.float32))]
    assert len(walks) == 4
    second = md.fastrp(S, random_state=2, dim=8, iteration_weights=(1.0, 2.0)).compute()
    assert S._plans[("fastrp-walk", np.dtype(np.float32))] is walks
    assert np.array_equal(first, matkern.fastrp(A, random_state=1, **kw))
    assert np.array_equal(
        second, matkern.fastrp(A, random_state=2, dim=8, iteration_weights=(1.0, 2.0))
    )
    d64 = md.fastrp(S, random_state=1, dtype=np.float64, **kw).compute()
    assert len(S._plans) == 2
    assert np.array_equal(d64, matkern.fastrp(A, random_state=1, dtype=np.float64, **kw))


def test_fastrp_bad_input(client):
    import scipy.sparse as sp

    with pytest.raises(TypeError, match="adjacency must be a matkern.dask.SparseMatrix"):
        md.fastrp(np.eye(3))
    with pytest.raises(ValueError, match="adjacency must be square"):
        md.fastrp(sp.random(10, 12, density=0.3, format="csr"), row_chunks=5)
    neg = sp.csr_matrix(-np.eye(6))
    E = md.fastrp(neg, dim=4, row_chunks=3)  # values are checked by the tasks
    with pytest.raises(ValueError, match="nonnegative weights"):
        E.compute()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 60),
    density=st.floats(0, 0.3),
    cuts=st.lists(st.integers(1, 59), max_size=5),
    dim=st.integers(1, 70),
    weights=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=1, max_size=4),
    l2=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_fastrp_property_bit_identical(client, n, density, cuts, dim, weights, l2, dtype, seed):
    """Any small graph (isolated nodes, self loops, blocks of one row), any block split, dim
    and weights (zeros included: a hop whose weight is 0 is still computed when a later one
    reads it, and skipped when none does): the embedding equals single-process fastrp bit for
    bit."""
    import scipy.sparse as sp

    A = sp.random(n, n, density=density, format="csr", random_state=seed, dtype=np.float64)
    sizes = np.diff(np.unique([0, *[c for c in cuts if c < n], n])).tolist()
    kw = dict(dim=dim, iteration_weights=tuple(weights), l2_normalize=l2, dtype=dtype)
    E = matkern.fastrp(A, random_state=seed, progress=False, **kw)
    Ed = md.fastrp(md.SparseMatrix.from_scipy(A, sizes), random_state=seed, **kw).compute()
    assert Ed.dtype == E.dtype and Ed.tobytes() == E.tobytes()


# ---------------------------------------------------------------- quantized inference
def test_int8_matmul_per_chunk_and_whole(client):
    rng = _rng(8)
    W = rng.standard_normal((96, 256)).astype(np.float32)
    X = rng.standard_normal((1000, 256)).astype(np.float32)
    X[5, 7], X[700, 9] = 20.0, -30.0  # outlier columns that differ between chunks
    Wq, b = matkern.int8_quantize(W), rng.standard_normal(96).astype(np.float32)
    Xd = da.from_array(X, chunks=(300, 128))  # column chunks merged: rows must be whole
    Y, Y0 = da.compute(md.int8_matmul(Xd, Wq, bias=b), md.int8_matmul(Xd, Wq, threshold=0))
    for r0 in range(0, 1000, 300):
        r1 = min(1000, r0 + 300)
        assert np.array_equal(Y[r0:r1], matkern.int8_matmul(X[r0:r1], Wq, bias=b))
    assert np.array_equal(Y0, matkern.int8_matmul(X, Wq, threshold=0))
    X3 = X.reshape(10, 100, 256).astype(np.float16)
    Y3 = md.int8_matmul(da.from_array(X3, chunks=(3, 100, 256)), Wq, threshold=0)
    assert Y3.dtype == np.float16
    assert np.array_equal(Y3.compute(), matkern.int8_matmul(X3, Wq, threshold=0))
    if matkern._dispatch.cpu().int8_vnni_enabled():  # the token is made from the layout held:
        assert Wq._pairs is None  # the int16-pair panels are never built for it


def test_lut_matmul(client):
    rng = _rng(9)
    W = rng.standard_normal((96, 256)).astype(np.float32)
    X = rng.standard_normal((500, 256)).astype(np.float32)
    qw, b = matkern.lut_quantize(W, bits=4, group_size=128), np.ones(96, np.float32)
    Yd = md.lut_matmul(da.from_array(X, chunks=(20, 256)), qw, bias=b).compute()  # blocked tiles
    ref = matkern.lut_matmul(X, qw, bias=b)  # wide tiles
    assert np.abs(Yd - ref).max() <= 1e-5 * np.abs(ref).max()
    assert np.array_equal(Yd[:20], matkern.lut_matmul(X[:20], qw, bias=b))
    # compute="int8": each row chunk quantized on its own rows, as the whole-array call does
    Y8 = md.lut_matmul(da.from_array(X, chunks=(100, 256)), qw, compute="int8").compute()
    assert np.array_equal(Y8, matkern.lut_matmul(X, qw, compute="int8"))


def test_weight_token_counts_the_rotation():
    """Equal codes under different rotations are different weights: their cache keys differ,
    so a worker never reuses one weight's shared copy for the other."""
    import dask.base

    from matkern.dask import _quant

    codes, scale = np.arange(8, dtype=np.int8), np.ones(2, np.float32)
    r1 = matkern.HadamardRotation(64, random_state=1)
    r2 = matkern.HadamardRotation(64, random_state=2)

    def key(rotation=None):
        return dask.base.tokenize(_quant._token(codes, scale, rotation=rotation))

    assert key() == key() and key(r1) == key(r1)
    assert len({key(), key(r1), key(r2)}) == 3


def test_quant_bad_input():
    Wq = matkern.int8_quantize(np.ones((4, 8), np.float32))
    with pytest.raises(ValueError, match="X must have 8 columns"):
        md.int8_matmul(da.ones((3, 9), dtype=np.float32), Wq)
    with pytest.raises(TypeError, match="X must have dtype float32 or float16, got float64"):
        md.int8_matmul(da.ones((3, 8)), Wq)
    with pytest.raises(TypeError, match="W must be a LUTWeight"):
        md.lut_matmul(da.ones((3, 8), dtype=np.float32), Wq)
    with pytest.raises(ValueError, match="bias must have shape \\(4,\\)"):
        md.int8_matmul(da.ones((3, 8), dtype=np.float32), Wq, bias=np.ones(5, np.float32))


# ---------------------------------------------------------------- certified norms
def test_spectral_norm_bound_tall(client):
    Ad, A = _data((20000, 40), (3000, 40), 10)
    b = md.spectral_norm_bound(Ad)
    exact = np.linalg.norm(A.astype(np.float64), 2)
    assert exact <= b <= exact * (1 + 1e-2)  # Gram iteration's gap at n_iter=6, rank 40
    assert b == pytest.approx(matkern.spectral_norm_bound(A), rel=1e-3)
    assert md.spectral_norm_bound(Ad, n_iter=0) >= np.linalg.norm(A.astype(np.float64))
    assert md.spectral_norm_bound(da.zeros((10, 3), chunks=5)) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectral_norm_bound_adversarial_rounding(client, dtype):
    """Chunks [1, s, s, ..., s] with s^2 = 2^-54: a float sum adds each s^2 to 1 and rounds it
    away (ties to even), so the plain Gram value falls below the exact norm; the margin must
    cover it at every scale (float64 also at 2^+-1000, beyond float32's range)."""
    from fractions import Fraction

    m = 1 << 14
    col = np.full(m, 2.0**-27)
    col[0] = 1.0
    A = np.tile(col, 8)[:, None]
    exact0 = 8 * (1 + (m - 1) * Fraction(1, 2**54))  # the squares, summed exactly
    assert Fraction(float((A.T @ A)[0, 0])) < exact0  # the float sum falls below
    scales = (0, 60) if dtype == np.float32 else (0, 1000, -1000)
    for sc in scales:
        As = np.ldexp(A, sc).astype(dtype)  # exact: powers of two in range
        exact = exact0 * Fraction(2) ** (2 * sc)
        b = md.spectral_norm_bound(da.from_array(As, chunks=(m, 1)))
        assert exact <= Fraction(b) ** 2 <= exact * (1 + Fraction(1, 10**8)), sc
    # mixed scales across chunks: rescaling the small chunks underflows, still an upper bound
    B = _rng(11).standard_normal((4000, 5))
    B[:2000] *= 2.0**-900
    B[2000:] *= 2.0**500
    exact = np.linalg.norm(np.ldexp(B, -500), 2)
    b = np.ldexp(md.spectral_norm_bound(da.from_array(B, chunks=(1000, 5))), -500)
    assert exact <= b <= exact * (1 + 1e-2)


def test_spectral_norm_bounds_layers(client):
    rng = _rng(12)
    layers = [
        np.diag([2.0, 1.0]),
        rng.standard_normal((30, 20)).astype(np.float32),
        rng.standard_normal((4, 3, 3, 3)),
        rng.standard_normal((30, 20)).astype(np.float32),
    ]
    sizes = [None, None, (8, 8), None]
    got = md.spectral_norm_bounds(layers, sizes)
    assert np.array_equal(got, matkern.spectral_norm_bounds(layers, sizes))
    with pytest.raises(ValueError, match="input_sizes\\[2\\] is required"):
        md.spectral_norm_bounds(layers)
    with pytest.raises(ValueError, match="A must have at most 16384 columns"):
        md.spectral_norm_bound(da.ones((2, 16385), chunks=(2, 16385)))


# ---------------------------------------------------------------- truncated SVD
def _low_rank(n, d, k, seed, chunks):
    """(dask, NumPy) rank-k matrix (singular values ~ 10 ... 1) plus 1e-8 noise, made on the
    workers."""
    basis = np.linalg.qr(_rng(seed).standard_normal((d, k)))[0].T
    rng = da.random.default_rng(seed)
    A = (rng.standard_normal((n, k), chunks=(chunks[0], k)) * np.geomspace(10, 1, k)) @ basis
    A = (A + 1e-8 * rng.standard_normal((n, d), chunks=chunks)).persist()
    return A, A.compute()


def test_truncated_svd_fit_and_add_rows(client):
    k = 6
    Ad, A = _low_rank(6000, 128, k, 13, (1500, 64))
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    svd = md.TruncatedSVD(k, n_iter=1, random_state=0).fit(Ad)
    np.testing.assert_allclose(svd.singular_values_, s[:k], rtol=1e-6)
    cos_v = np.abs(np.sum(svd.components_ * Vt[:k], axis=1))
    cos_u = np.abs(np.sum(svd.U_.compute() * U[:, :k], axis=0))
    np.testing.assert_allclose(cos_v, 1.0, atol=1e-6)
    np.testing.assert_allclose(cos_u, 1.0, atol=1e-6)
    merged = md.TruncatedSVD(k).partial_fit(Ad[:2500]).add_rows(Ad[2500:])
    np.testing.assert_allclose(merged.singular_values_, s[:k], rtol=1e-6)
    assert merged.n_samples_ == 6000 and merged.U_.shape == (6000, k)
    assert svd.transform(Ad).shape == (6000, k)


def test_truncated_svd_bad_input():
    with pytest.raises(ValueError, match="n_components must be <= min\\(A.shape\\) = 5"):
        md.TruncatedSVD(6).fit(da.ones((100, 5)))
    svd = md.TruncatedSVD(2).partial_fit(da.ones((100, 5)))
    with pytest.raises(ValueError, match="A must have 5 columns \\(as fitted\\), got 4"):
        svd.add_rows(da.ones((10, 4)))


# ---------------------------------------------------------------- a worker lost mid-way
def test_worker_killed_during_fastrp(client, blogcatalog):
    """One worker process is killed (SIGKILL) once the hops have started: the scheduler
    recomputes what it held (graph blocks included) on the other and the restarted worker;
    the embedding is still complete and bit-identical (no block lost or counted twice)."""
    import os
    import signal
    import time

    kw = dict(FASTRP_ARGS, iteration_weights=(0.0, 1.0, 1.0, 1.0, 1.0, 2.0))
    E = matkern.fastrp(blogcatalog, random_state=2, **kw)
    Ed = md.fastrp(blogcatalog, random_state=2, row_chunks=1300, **kw)
    future = client.compute(Ed)
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and time.monotonic() < deadline and not future.done():
        for addr, keys in client.has_what().items():
            if any("_step" in str(key) for key in keys):
                victim = addr
                break
        time.sleep(0.005)
    assert victim is not None and not future.done(), "the hops ended before a worker was killed"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    assert np.array_equal(future.result(timeout=120), E)
