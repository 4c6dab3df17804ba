"""Arrays from other libraries (issue #17, item 3): PyTorch tensors, DLPack producers,
``__array__`` objects, numpy.matrix and masked arrays at every public entry point.

A torch CPU tensor reaches the kernels as a NumPy view of its own memory, so every result
must equal the NumPy call on ``t.numpy()`` (the same memory) **bit for bit**: no tolerance
anywhere in this module. Results must be torch tensors on the input's device; ``out=``
tensors are written in place (same object, same ``data_ptr``). CUDA tensors: the same on the
GPU, on PyTorch's current stream (skipped without a usable GPU). Torch tests skip with the
reason when torch is not importable.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import matkern
from matkern import _dispatch, _interop

try:
    import torch
except ImportError as exc:  # torch is in the test extra; without it these tests skip
    torch = None
    _torch_why = f"torch is not importable: {exc}"
else:
    _torch_why = ""

needs_torch = pytest.mark.skipif(torch is None, reason=_torch_why)
# torch warns on creating its (beta) sparse CSR tensors; that is torch's, not ours
torch_sparse = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")


def _gpu():
    if torch is None:
        return False, _torch_why
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    return _dispatch.gpu_status()


needs_cuda = pytest.mark.skipif(not _gpu()[0], reason=f"no CUDA tensors here: {_gpu()[1]}")


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tensor(*shape, dtype=np.float32, seed=0):
    return torch.from_numpy(rand(*shape, dtype=dtype, seed=seed))


def same(result, expected):
    """``result`` is a CPU torch tensor equal bit for bit to the NumPy ``expected``."""
    assert isinstance(result, torch.Tensor), type(result)
    assert result.device.type == "cpu"
    got = result.numpy()
    assert got.dtype == expected.dtype and got.shape == expected.shape
    bits = [np.ascontiguousarray(a).view(np.uint8) for a in (got, expected)]
    assert np.array_equal(*bits)


# ---------------------------------------------------------------- the conversion itself
@needs_torch
def test_cpu_tensor_is_read_in_place():
    t = tensor(6, 8)
    for view in (t, t.T, t[1:, ::2]):
        a = _interop.to_native(view, "x", "f")
        assert isinstance(a, np.ndarray)
        assert a.ctypes.data == view.data_ptr()
        assert a.strides == tuple(s * 4 for s in view.stride())


@needs_torch
def test_numpy_result_becomes_a_tensor_in_place():
    a = rand(3, 4)
    assert _interop._to_torch(a).data_ptr() == a.ctypes.data
    ro = rand(3)
    ro.flags.writeable = False  # torch would hand it out writable: copied instead
    t = _interop._to_torch(ro)
    assert t.data_ptr() != ro.ctypes.data and np.array_equal(t.numpy(), ro)


# ---------------------------------------------------------------- every family, torch CPU
@needs_torch
def test_fwht():
    t = tensor(5, 16)
    same(matkern.fwht(t), matkern.fwht(t.numpy()))
    same(matkern.fwht(t, normalize=True), matkern.fwht(t.numpy(), normalize=True))
    v = tensor(16, 5, dtype=np.float64).T  # a strided view, as any NumPy view
    same(matkern.fwht(v), matkern.fwht(v.numpy()))


@needs_torch
def test_fwht_out_is_written_in_place():
    t = tensor(3, 8)
    expected = matkern.fwht(t.numpy())
    out = torch.empty(3, 8)
    ptr = out.data_ptr()
    r = matkern.fwht(t, out=out)
    assert r is out and out.data_ptr() == ptr
    same(out, expected)
    r = matkern.fwht(t, out=t)  # in place
    assert r is t
    same(t, expected)


@needs_torch
def test_fjlt():
    t = tensor(20, 100)
    same(matkern.fjlt(t, 8, random_state=0), matkern.fjlt(t.numpy(), 8, random_state=0))
    f = matkern.FJLT(8, random_state=0).fit(t)
    same(f.transform(t), f.transform(t.numpy()))
    same(matkern.FJLT(8, random_state=0).fit_transform(t), f.transform(t.numpy()))


def _csr(m=30, n=20, dtype=np.float32):
    return sp.random(m, n, density=0.2, format="csr", random_state=0, dtype=dtype)


@needs_torch
def test_spmm_dense_operand():
    A = _csr()
    S = matkern.SparseMatrix(A)
    B = tensor(20, 5)
    expected = matkern.spmm(S, B.numpy())
    same(matkern.spmm(S, B), expected)
    same(matkern.spmm(A, B), expected)
    same(S @ B, expected)
    same(S.dot(B), expected)
    b = B[:, 0]  # 1-D, strided
    same(S @ b, matkern.spmm(S, b.numpy()))
    X = tensor(4, 30)
    same(X @ S, X.numpy() @ S)  # torch's __matmul__ gives way to SparseMatrix.__rmatmul__


@needs_torch
def test_spmm_out_is_written_in_place():
    S = matkern.SparseMatrix(_csr())
    B = tensor(20, 5)
    out = torch.empty(30, 5)
    ptr = out.data_ptr()
    r = matkern.spmm(S, B, out=out)
    assert r is out and out.data_ptr() == ptr
    same(out, matkern.spmm(S, B.numpy()))
    out1 = torch.empty(30)
    assert matkern.spmm(S, B[:, 1], out=out1) is out1
    same(out1, matkern.spmm(S, B.numpy()[:, 1]))


@needs_torch
@torch_sparse
def test_sparse_tensors_as_A():
    A = _csr(dtype=np.float64)
    dense = torch.from_numpy(A.toarray())
    B = rand(20, 3, dtype=np.float64)
    expected = matkern.spmm(A, B)
    for T in (dense.to_sparse_csr(), dense.to_sparse()):
        np.testing.assert_array_equal(matkern.spmm(T, B), expected)  # B NumPy: NumPy result
        same(matkern.SparseMatrix(T) @ torch.from_numpy(B), expected)
    parts = (torch.from_numpy(A.data), torch.from_numpy(A.indices), torch.from_numpy(A.indptr))
    np.testing.assert_array_equal(matkern.spmm((*parts, A.shape), B), expected)
    with pytest.raises(TypeError, match="to_sparse_csr"):
        matkern.SparseMatrix(dense.to_sparse_csc())


@needs_torch
def test_int8():
    W = tensor(16, 40)
    X = tensor(2, 3, 40, seed=1)
    bias = tensor(16, seed=2)
    Wq, Wq_np = matkern.int8_quantize(W), matkern.int8_quantize(W.numpy())
    np.testing.assert_array_equal(Wq.codes, Wq_np.codes)
    np.testing.assert_array_equal(Wq.scale, Wq_np.scale)
    expected = matkern.int8_matmul(X.numpy(), Wq_np, bias=bias.numpy())
    same(matkern.int8_matmul(X, Wq, bias=bias), expected)
    same(matkern.int8_matmul(X.half(), Wq), matkern.int8_matmul(X.half().numpy(), Wq_np))
    layer = matkern.Int8Linear(W, bias=bias)
    same(layer(X), expected)
    # the result follows X: NumPy X with a torch bias gives NumPy
    assert isinstance(matkern.int8_matmul(X.numpy(), Wq, bias=bias), np.ndarray)
    A = torch.randint(-128, 128, (5, 33), dtype=torch.int8)
    B = torch.randint(-128, 128, (7, 33), dtype=torch.int8)
    same(matkern.int8_gemm(A, B), matkern.int8_gemm(A.numpy(), B.numpy()))
    same(
        matkern.int8_gemm(A[:, 1:], B[:, 1:]), matkern.int8_gemm(A.numpy()[:, 1:], B.numpy()[:, 1:])
    )


@needs_torch
def test_lut():
    W = tensor(32, 128)
    X = tensor(3, 128, seed=1)
    table = torch.linspace(-1, 1, 16)
    for tab in ("nf4", table):
        qw = matkern.lut_quantize(W, 4, 32, tab)
        qw_np = matkern.lut_quantize(W.numpy(), 4, 32, tab if isinstance(tab, str) else tab.numpy())
        np.testing.assert_array_equal(qw.packed, qw_np.packed)
        np.testing.assert_array_equal(qw.scales, qw_np.scales)
        same(matkern.lut_matmul(X, qw), matkern.lut_matmul(X.numpy(), qw_np))
        same(matkern.lut_matmul(X[0], qw), matkern.lut_matmul(X.numpy()[0], qw_np))
    # prepared weights hold NumPy arrays: their dequantization is NumPy (documented)
    assert isinstance(matkern.lut_dequantize(qw), np.ndarray)
    strided = tensor(128, 3).T  # any strides, as for a NumPy view
    same(matkern.lut_matmul(strided, qw), matkern.lut_matmul(strided.numpy(), qw))


@needs_torch
def test_spectral_norm_bounds():
    W = tensor(12, 9, dtype=np.float64)
    assert matkern.spectral_norm_bound(W) == matkern.spectral_norm_bound(W.numpy())
    Wc = torch.complex(W, W.flip(0))
    assert matkern.spectral_norm_bound(Wc.conj()) == matkern.spectral_norm_bound(
        np.conj(Wc.numpy())
    )  # the conjugate bit: materialized first
    stack = tensor(3, 6, 5)
    same(matkern.spectral_norm_bound(stack), matkern.spectral_norm_bound(stack.numpy()))
    K = tensor(4, 3, 3, 3)
    assert matkern.conv_spectral_norm_bound(K, (8, 8)) == matkern.conv_spectral_norm_bound(
        K.numpy(), (8, 8)
    )
    layers = [W, K]
    expected = matkern.spectral_norm_bounds([W.numpy(), K.numpy()], [None, (8, 8)])
    same(matkern.spectral_norm_bounds(layers, [None, (8, 8)]), expected)


@needs_torch
@torch_sparse
def test_random_projections():
    X = tensor(10, 50)
    p = matkern.SparseRandomProjection(6, random_state=0).fit(X)
    expected = p.transform(X.numpy())
    same(p.transform(X), expected)
    same(matkern.SparseRandomProjection(6, random_state=0).fit_transform(X), expected)
    Xs = X * (X > 1)
    sparse = p.transform(Xs.to_sparse_csr())  # sparse in, sparse out (scikit-learn's default)
    assert isinstance(sparse, torch.Tensor) and sparse.layout == torch.sparse_csr
    same(sparse.to_dense(), p.transform(sp.csr_array(Xs.numpy())).toarray())
    G = _csr(40, 40, np.float32)
    G = G + G.T
    Gt = torch.from_numpy(G.toarray()).to_sparse_csr()
    same(matkern.fastrp(Gt, dim=8, random_state=0), matkern.fastrp(G, dim=8, random_state=0))


@needs_torch
def test_truncated_svd():
    A = tensor(40, 12, dtype=np.float64)
    E = tensor(5, 12, dtype=np.float64, seed=1)
    svd = matkern.TruncatedSVD(3, method="zha-simon").fit(A)
    ref = matkern.TruncatedSVD(3, method="zha-simon").fit(A.numpy())
    np.testing.assert_array_equal(svd.singular_values_, ref.singular_values_)
    same(svd.transform(E), ref.transform(E.numpy()))
    svd.add_rows(E)
    ref.add_rows(E.numpy())
    np.testing.assert_array_equal(svd.singular_values_, ref.singular_values_)
    D, F = tensor(45, 2, dtype=np.float64), tensor(12, 2, dtype=np.float64, seed=3)
    svd.update(D, F)
    ref.update(D.numpy(), F.numpy())
    np.testing.assert_array_equal(svd.components_, ref.components_)
    assert isinstance(svd.components_, np.ndarray)  # fitted attributes stay NumPy


@needs_torch
@settings(max_examples=25, deadline=None)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    rows=st.integers(1, 6),
    log_n=st.integers(0, 6),
    view=st.sampled_from(["plain", "transposed", "sliced"]),
)
def test_fwht_any_layout(dtype, rows, log_n, view):
    n = 1 << log_n
    if view == "transposed":
        t = tensor(n, rows, dtype=dtype).T
    elif view == "sliced":
        t = tensor(rows, 2 * n, dtype=dtype)[:, ::2]
    else:
        t = tensor(rows, n, dtype=dtype)
    same(matkern.fwht(t), matkern.fwht(t.numpy()))


# ---------------------------------------------------------------- refusals
@needs_torch
def test_requires_grad_is_refused():
    W = tensor(8, 8).requires_grad_()
    with pytest.raises(
        TypeError, match=r"fwht\(\): x is a torch tensor that requires grad.*x\.detach\(\)"
    ):
        matkern.fwht(W)
    with pytest.raises(TypeError, match=r"spectral_norm_bound\(\): W .*requires grad"):
        matkern.spectral_norm_bound(torch.nn.Parameter(tensor(4, 4)))
    p = matkern.SparseRandomProjection(2, random_state=0).fit(W.detach())
    with pytest.raises(TypeError, match=r"SparseRandomProjection.transform\(\): X .*requires grad"):
        p.transform(W)
    same(matkern.fwht(W.detach()), matkern.fwht(W.detach().numpy()))


@needs_torch
def test_unsupported_tensors_are_refused():
    with pytest.raises(TypeError, match=r"fwht\(\): x has dtype torch.bfloat16"):
        matkern.fwht(torch.ones(4, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="device 'meta'"):
        matkern.fwht(torch.ones(4, device="meta"))


def test_masked_arrays_are_refused():
    m = np.ma.masked_array(rand(4, 8), mask=rand(4, 8) > 0)
    with pytest.raises(TypeError, match=r"fwht\(\): x must not be a masked array"):
        matkern.fwht(m)
    with pytest.raises(TypeError, match=r"int8_quantize\(\): W must not be a masked array"):
        matkern.int8_quantize(m)
    with pytest.raises(TypeError, match=r"spectral_norm_bound\(\): W must not be a masked"):
        matkern.spectral_norm_bound(m)
    with pytest.raises(TypeError, match=r"spmm\(\): B must not be a masked array"):
        matkern.spmm(_csr(30, 4), m)
    with pytest.raises(TypeError, match=r"SparseRandomProjection.fit\(\): X must not be a masked"):
        matkern.SparseRandomProjection(2).fit(m)
    with pytest.raises(TypeError, match=r"spectral_norm_bounds\(\): layers\[1\] must not be"):
        matkern.spectral_norm_bounds([rand(3, 3), m])


# ---------------------------------------------------------------- other kinds of arrays
class DLPackOnly:
    """A minimal producer: the DLPack protocol and nothing else (no __array__)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class ArrayOnly:
    """An object that only converts itself with __array__ (as pandas or xarray do)."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return np.array(self._a, dtype=dtype, copy=True)


def test_dlpack_producer():
    x = rand(4, 8)
    p = DLPackOnly(x)
    assert _interop.to_native(p, "x", "f").ctypes.data == x.ctypes.data  # zero-copy
    y = matkern.fwht(p)
    assert type(y) is np.ndarray  # other producers get NumPy (CPU) back, as documented
    np.testing.assert_array_equal(y, matkern.fwht(x))
    Wq = matkern.int8_quantize(DLPackOnly(rand(8, 8)))
    np.testing.assert_array_equal(
        matkern.int8_matmul(DLPackOnly(x), Wq), matkern.int8_matmul(x, Wq)
    )
    p_ = matkern.SparseRandomProjection(3, random_state=0).fit(DLPackOnly(x))
    np.testing.assert_array_equal(p_.transform(DLPackOnly(x)), p_.transform(x))


def test_array_only_object_is_copied():
    x = rand(4, 8)
    a = _interop.to_native(ArrayOnly(x), "x", "f")
    assert type(a) is np.ndarray and a.ctypes.data != x.ctypes.data
    np.testing.assert_array_equal(matkern.fwht(ArrayOnly(x)), matkern.fwht(x))
    assert matkern.spectral_norm_bound(ArrayOnly(x)) == matkern.spectral_norm_bound(x)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_numpy_matrix():
    W = rand(8, 6)
    M = np.matrix(W)
    Wq, Wq_ref = matkern.int8_quantize(M), matkern.int8_quantize(W)
    np.testing.assert_array_equal(Wq.codes, Wq_ref.codes)
    assert matkern.spectral_norm_bound(M) == matkern.spectral_norm_bound(W)
    y = matkern.fwht(np.matrix(rand(3, 8)))
    assert type(y) is np.ndarray  # results are plain ndarrays
    np.testing.assert_array_equal(y, matkern.fwht(rand(3, 8)))
    S = matkern.SparseMatrix(_csr(30, 8))
    r = matkern.spmm(S, np.matrix(rand(8, 2)))
    assert type(r) is np.ndarray
    np.testing.assert_array_equal(r, matkern.spmm(S, rand(8, 2)))


def test_numpy_scalars_are_not_arrays():
    # numpy scalars have __array__ but are arguments, not arrays: passed through untouched
    W = rand(8, 8)
    layer = matkern.Int8Linear(W, threshold=np.float32(2.0))
    assert layer.threshold == 2.0
    np.testing.assert_array_equal(layer(W), matkern.int8_matmul(W, layer.weight, threshold=2.0))


def test_jax_arrays():
    jnp = pytest.importorskip("jax.numpy", reason="JAX is not installed (an optional check)")
    x = rand(4, 16)
    y = matkern.fwht(jnp.asarray(x))
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, matkern.fwht(x))


# ---------------------------------------------------------------- CUDA tensors
@needs_cuda
def test_cuda_tensor_round_trip():
    cp = _dispatch.cupy_module()
    t = tensor(4, 64).cuda()
    y = matkern.fwht(t)
    assert isinstance(y, torch.Tensor) and y.device == t.device
    expected = matkern.fwht(cp.asarray(t.cpu().numpy()))
    assert torch.equal(y.cpu(), torch.from_numpy(cp.asnumpy(expected)))
    out = torch.empty_like(t)
    assert matkern.fwht(t, out=out) is out
    assert torch.equal(out, y)


@needs_cuda
def test_cuda_call_runs_on_torchs_current_stream():
    cp = _dispatch.cupy_module()

    @_interop.arrays("x")
    def probe(x):
        return cp.cuda.get_current_stream().ptr

    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        assert probe(torch.ones(4, device="cuda")) == s.cuda_stream
        t = tensor(64, 256).cuda()
        y = matkern.fwht(t)  # queued on s after t's copy: no sync needed
    s.synchronize()
    assert torch.equal(y.cpu(), torch.from_numpy(matkern.fwht(t.cpu().numpy())))


class FakeDevice(DLPackOnly):
    """A producer that says its data lives on DLPack device type ``kind``."""

    def __init__(self, a, kind):
        super().__init__(a)
        self._kind = kind

    def __dlpack_device__(self):
        return (self._kind, 0)


def test_producer_devices():
    x = rand(4, 8)
    with pytest.raises(TypeError, match=r"fwht\(\): x .* is on DLPack device type 4"):
        matkern.fwht(FakeDevice(x, 4))  # OpenCL: neither NumPy nor CuPy reads it
    try:
        _dispatch.cupy_module()
    except RuntimeError:
        with pytest.raises(RuntimeError, match=r"fwht\(\): x .* is on a CUDA device and CuPy"):
            matkern.fwht(FakeDevice(x, 2))


def test_types_passed_as_arguments_are_not_arrays():
    """dtype=np.float32 (a class with an ``__array__`` attribute) reaches the function as it
    is (it was once converted to an object array: SparseMatrix.prepare(dtype=np.float32))."""
    import scipy.sparse as sparse

    S = matkern.SparseMatrix(sparse.random(20, 20, density=0.2, format="csr", random_state=0))
    assert S.prepare("cpu", np.float32) is S
    assert not matkern._interop.is_foreign(np.float32)
    assert not matkern._interop.is_foreign(np.float64)
