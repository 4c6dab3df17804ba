"""matkern.dask with CuPy chunks: the same code path as NumPy chunks (the chunk type comes from
the dask array's meta), on a LocalCluster of one worker process with one thread.

Every test runs twice: with NumPy chunks (everywhere: it checks the test itself) and with CuPy
chunks (marked gpu, skipped without a usable GPU and CuPy). The results keep the input's chunk
type and are compared with single-process matkern on the same arrays:

- projections, fwht, int8/lut per row chunk: bit-identical with NumPy chunks (see
  test_dask.py); with CuPy chunks within 1e-5 of the result's largest entry for the
  projections and fwht (a GPU kernel's reduction order may follow the launch shape, which
  follows the chunk's rows), and bit-identical for int8/lut compared chunk by chunk (the
  same call on the same chunk);
- SparseMatrix @ B: exact with NumPy chunks. On the GPU float32 B runs precision "tf32" by
  default, and the kernel (tf32 tensor-core blocks or the CSR kernel) is chosen per matrix by
  the auto rule, so a block and the whole matrix may take different kernels: products whose
  inputs were rounded to tf32's 10-bit mantissa (2^-11 relative) against float32 ones, about
  15 a row: within 3e-3 of the largest entry;
- spectral_norm_bound: at least the exact norm, within 1% of it;
- TruncatedSVD: singular values within 1e-6 relative of numpy.linalg.svd's (test_dask.py).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

import matkern
from matkern import _dispatch

da = pytest.importorskip("dask.array", reason="matkern.dask needs dask[array]")
distributed = pytest.importorskip("distributed", reason="matkern.dask needs distributed")
md = pytest.importorskip("matkern.dask")


def _xp_params():
    ok, why = _dispatch.gpu_status()
    gpu = [pytest.mark.gpu]
    if not ok:
        gpu.append(pytest.mark.skip(reason=f"CuPy chunks need a usable GPU: {why}"))
    return [pytest.param("numpy", id="numpy"), pytest.param("cupy", marks=gpu, id="cupy")]


@pytest.fixture(params=_xp_params())
def xp(request):
    return np if request.param == "numpy" else _dispatch.cupy_module()


@pytest.fixture(scope="module")
def client():
    """One worker process with one thread (a GPU worker: one per GPU, as dask-cuda starts)."""
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit="4GiB",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _on(xp, X, chunks):
    """X as a dask array of ``xp`` chunks (moved to the device by each chunk's task)."""
    meta = xp.empty((0,) * X.ndim, dtype=X.dtype)
    return da.from_array(X, chunks=chunks).map_blocks(xp.asarray, dtype=X.dtype, meta=meta)


def _same(got, want, xp, rel):
    """got (an xp array) equals want: bit for bit with NumPy, else within rel * max|want|."""
    assert isinstance(got, xp.ndarray), type(got)
    got, want = _dispatch.to_host(got), _dispatch.to_host(want)
    if xp is np:
        assert np.array_equal(got, want)
    else:
        assert np.abs(got - want).max() <= rel * np.abs(want).max()


def test_projections_keep_the_chunk_type(client, xp):
    X = np.random.default_rng(1).standard_normal((600, 2000)).astype(np.float32)
    Xd, Xx = _on(xp, X, (200, 2000)), xp.asarray(X)
    srp = md.SparseRandomProjection(32, random_state=3).fit(Xd)
    Y = srp.transform(Xd)
    assert isinstance(Y._meta, xp.ndarray)
    want = matkern.SparseRandomProjection(32, random_state=3).fit_transform(Xx)
    _same(Y.compute(), want, xp, 1e-5)
    Z = md.FJLT(16, random_state=1).fit(Xd).transform(Xd).compute()
    _same(Z, matkern.FJLT(16, random_state=1).fit(Xx).transform(Xx), xp, 1e-5)
    x = np.random.default_rng(4).standard_normal((8, 4096)).astype(np.float32)
    for chunks in [(4, 4096), (4, 1024)]:  # whole rows, and the chunked butterflies
        got = md.fwht(_on(xp, x, chunks), normalize=True).compute()
        _same(got, matkern.fwht(xp.asarray(x), normalize=True), xp, 1e-5)


def test_quantized_matmul_on_the_chunks_device(client, xp):
    rng = np.random.default_rng(8)
    W = rng.standard_normal((96, 256)).astype(np.float32)
    X = rng.standard_normal((400, 256)).astype(np.float32)
    X[5, 7] = 20.0  # an outlier column in the first chunk only
    device = "cpu" if xp is np else "cuda"
    Wq = matkern.int8_quantize(W).to_device(device)
    qw = matkern.lut_quantize(W, bits=4, group_size=128).to_device(device)
    Xd, Xx = _on(xp, X, (100, 256)), xp.asarray(X)
    Y8, Y4 = da.compute(md.int8_matmul(Xd, Wq), md.lut_matmul(Xd, qw))
    for r0 in range(0, 400, 100):
        rows = slice(r0, r0 + 100)
        _same(Y8[rows], matkern.int8_matmul(Xx[rows], Wq), xp, 0)
        _same(Y4[rows], matkern.lut_matmul(Xx[rows], qw), xp, 0)


def test_sparse_products_with_device_B(client, xp):
    A = sp.random(2000, 1500, density=0.01, format="csr", random_state=2, dtype=np.float32)
    S = md.SparseMatrix.from_scipy(A, 500)
    B = np.random.default_rng(3).standard_normal((1500, 16)).astype(np.float32)
    want = matkern.spmm(A, xp.asarray(B))
    _same((S @ xp.asarray(B)).compute(), want, xp, 3e-3)  # B sent to the worker once
    _same((S @ _on(xp, B, (700, 8))).compute(), want, xp, 3e-3)  # B a dask array


def test_norm_and_svd_of_device_chunks(client, xp):
    A = np.random.default_rng(10).standard_normal((5000, 30)).astype(np.float32)
    b = md.spectral_norm_bound(_on(xp, A, (1000, 30)))
    exact = np.linalg.norm(A.astype(np.float64), 2)
    assert exact <= float(b) <= exact * (1 + 1e-2)
    k, rng = 5, np.random.default_rng(13)
    basis = np.linalg.qr(rng.standard_normal((64, k)))[0].T
    L = (rng.standard_normal((3000, k)) * np.geomspace(10, 1, k)) @ basis
    L += 1e-8 * rng.standard_normal(L.shape)
    svd = md.TruncatedSVD(k, n_iter=1, random_state=0).fit(_on(xp, L, (1000, 64)))
    s = np.linalg.svd(L, compute_uv=False)
    np.testing.assert_allclose(_dispatch.to_host(svd.singular_values_), s[:k], rtol=1e-6)
    U = svd.U_.compute()
    assert isinstance(U, xp.ndarray) and U.shape == (3000, k)
