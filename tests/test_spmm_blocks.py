"""The CSR kernels that read a dense operand held as row blocks in separate arrays
(``spmm_csr_blocks``, and FastRP's fused hop ``rp_hop``): the Dask FastRP's hops read the
previous iterate's row chunks in place with them instead of concatenating the chunks.

Both must give the same bits as the one-array kernels (``spmm_csr`` on the blocks'
concatenation, then ``rp_accumulate``): the same sums in the same order. Tolerance 0 (bytes
compared), on both SIMD levels; any block layout (empty blocks, one-row blocks, views with a
row stride beyond k), unsorted and duplicate column indices.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from matkern import _dispatch


def _csr(m, n, density, dtype, seed, unsorted):
    """(indptr int64, indices int32, data) of a random m x n CSR; unsorted: each row's entries
    reversed and its first entry repeated (a duplicate, summed by the kernels)."""
    A = sp.random(m, n, density=density, format="csr", random_state=seed, dtype=dtype)
    ip, ix, d = A.indptr.astype(np.int64), A.indices.astype(np.int32), A.data
    if unsorted and A.nnz:
        rows_ix, rows_d, ptr = [], [], [0]
        for i in range(m):
            r_ix, r_d = ix[ip[i] : ip[i + 1]][::-1], d[ip[i] : ip[i + 1]][::-1]
            if r_ix.size:
                r_ix, r_d = np.append(r_ix, r_ix[0]), np.append(r_d, r_d[0])
            rows_ix.append(r_ix)
            rows_d.append(r_d)
            ptr.append(ptr[-1] + r_ix.size)
        ip = np.array(ptr, dtype=np.int64)
        ix = np.concatenate(rows_ix).astype(np.int32)
        d = np.concatenate(rows_d).astype(dtype)
    return ip, ix, np.ascontiguousarray(d, dtype=dtype)


def _blocks(B, sizes, strided):
    """B's rows split into blocks of ``sizes``; strided: each block a view of a wider array
    (row stride > k), else a C-contiguous copy of its own."""
    out, r = [], 0
    for s in sizes:
        part = B[r : r + s]
        if strided:
            wide = np.full((s, B.shape[1] + 5), np.nan, dtype=B.dtype)
            wide[:, : B.shape[1]] = part
            part = wide[:, : B.shape[1]]
        else:
            part = part.copy()
        out.append(part)
        r += s
    return out


def _sizes(n, cuts):
    """Block sizes adding up to n from sorted cut points (repeats make empty blocks)."""
    edges = [0] + sorted(min(c, n) for c in cuts) + [n]
    return [b - a for a, b in zip(edges[:-1], edges[1:])]


def _simd(monkeypatch, level):
    if level == "portable":
        monkeypatch.setenv("MATKERN_SIMD", "portable")
    else:
        monkeypatch.delenv("MATKERN_SIMD", raising=False)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 50),
    n=st.integers(1, 80),
    k=st.integers(1, 150),
    density=st.floats(0, 0.6),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    dtype=st.sampled_from([np.float32, np.float64]),
    unsorted=st.booleans(),
    strided=st.booleans(),
    level=st.sampled_from(["portable", "native"]),
    seed=st.integers(0, 2**16),
)
def test_blocks_equal_one_array(m, n, k, density, cuts, dtype, unsorted, strided, level, seed):
    with pytest.MonkeyPatch.context() as mp:
        _simd(mp, level)
        cpu = _dispatch.cpu()
        ip, ix, d = _csr(m, n, density, dtype, seed, unsorted)
        B = np.random.default_rng(seed).standard_normal((n, k)).astype(dtype)
        want = np.full((m, k), np.nan, dtype=dtype)
        cpu.spmm_csr(n, ip, ix, d, B, want)
        got = np.full((m, k), np.nan, dtype=dtype)
        cpu.spmm_csr_blocks(n, ip, ix, d, _blocks(B, _sizes(n, cuts), strided), got)
        assert got.tobytes() == want.tobytes()


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 70),
    n=st.integers(1, 70),
    k=st.integers(1, 140),
    cuts=st.lists(st.integers(0, 70), max_size=4),
    dtype=st.sampled_from([np.float32, np.float64]),
    l2=st.booleans(),
    with_base=st.booleans(),
    keep_u=st.booleans(),
    level=st.sampled_from(["portable", "native"]),
    seed=st.integers(0, 2**16),
)
def test_hop_equals_spmm_then_accumulate(m, n, k, cuts, dtype, l2, with_base, keep_u, level, seed):
    """rp_hop = spmm_csr then rp_accumulate, bit for bit: emb written from base (base kept
    as it was) or added to in place, the iterate written only when asked for; rows of the
    product that are zero (rows without entries) add zeros."""
    with pytest.MonkeyPatch.context() as mp:
        _simd(mp, level)
        cpu = _dispatch.cpu()
        ip, ix, d = _csr(m, n, 0.2, dtype, seed, False)
        rng = np.random.default_rng(seed)
        B = rng.standard_normal((n, k)).astype(dtype)
        base = rng.standard_normal((m, k)).astype(dtype)
        keep = base.copy()
        V = np.empty((m, k), dtype=dtype)
        cpu.spmm_csr(n, ip, ix, d, B, V)
        want = base.copy()
        if with_base:
            want = np.empty_like(base)
            cpu.rp_accumulate(V, 0.7, l2, want, base)
        else:
            cpu.rp_accumulate(V, 0.7, l2, want)
        emb = np.full_like(base, np.nan) if with_base else base.copy()
        U = np.full_like(base, np.nan) if keep_u else None
        blocks = _blocks(B, _sizes(n, cuts), False)
        cpu.rp_hop(n, ip, ix, d, blocks, 0.7, l2, emb, base if with_base else None, U)
        assert emb.tobytes() == want.tobytes()
        assert base.tobytes() == keep.tobytes()
        if keep_u:
            assert U.tobytes() == V.tobytes()


def test_hub_rows_and_many_blocks():
    """Rows far longer than the kernel's run of 256 entries (a hub of a power-law graph), and
    more blocks than a row touches, in float32 with k = 128 (FastRP's width)."""
    cpu = _dispatch.cpu()
    rng = np.random.default_rng(0)
    n, k = 5000, 128
    A = sp.random(40, n, density=0.01, format="lil", random_state=1, dtype=np.float32)
    A[3, :] = rng.standard_normal(n).astype(np.float32)  # a full row: 5000 entries
    A = A.tocsr()
    ip, ix = A.indptr.astype(np.int64), A.indices.astype(np.int32)
    B = rng.standard_normal((n, k)).astype(np.float32)
    want = np.empty((40, k), np.float32)
    cpu.spmm_csr(n, ip, ix, A.data, B, want)
    for sizes in ([n], [1] * 100 + [n - 100], [7, 0, 993, 4000]):
        got = np.empty_like(want)
        cpu.spmm_csr_blocks(n, ip, ix, A.data, _blocks(B, sizes, False), got)
        assert got.tobytes() == want.tobytes()


def test_bad_blocks():
    cpu = _dispatch.cpu()
    ip, ix, d = _csr(6, 10, 0.5, np.float32, 0, False)
    B = np.ones((10, 4), np.float32)
    out = np.empty((6, 4), np.float32)
    with pytest.raises(ValueError, match="1 to 65536 blocks"):
        cpu.spmm_csr_blocks(10, ip, ix, d, [], out)
    with pytest.raises(ValueError, match="add up to n"):
        cpu.spmm_csr_blocks(10, ip, ix, d, [B[:4], B[4:9]], out)
    with pytest.raises(ValueError, match="column count"):
        cpu.spmm_csr_blocks(10, ip, ix, d, [B[:4], np.ones((6, 5), np.float32)], out)
    with pytest.raises(ValueError, match="rows must be contiguous"):
        cpu.spmm_csr_blocks(10, ip, ix, d, [B[:4], np.asfortranarray(B[4:])], out)
    wide = np.ones((10, 8), np.float32)
    with pytest.raises(ValueError, match="rows must be contiguous"):  # one row, strided
        cpu.spmm_csr_blocks(10, ip, ix, d, [B[:9], wide[9:, ::2]], out)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cpu.spmm_csr_blocks(10, ip, ix, d, [B], out[:5])
    emb = np.zeros((6, 4), np.float32)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cpu.rp_hop(10, ip, ix, d, [B], 1.0, True, emb, None, np.empty((6, 3), np.float32))
    with pytest.raises(ValueError, match="add up to n"):
        cpu.rp_hop(10, ip, ix, d, [B[:3]], 1.0, True, emb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accumulate_row_norms(dtype):
    """The l2 weights of rp_accumulate (eight running sums of squares in double) against
    NumPy's float64 norms, rows of 1 to 300 entries, zero rows left at zero. float32: within
    2 eps (the rounding of w to float32 and of the product; the float64 sum of float32
    squares is exact but for its additions, far below float32's eps). float64: the sum's
    additions too: at most k/8 + 3 of them on any square's path (a lane, then the tree), so
    the norm is within about (k/8 + 3)/2 eps, plus the 2 roundings: (k/16 + 4) eps."""
    cpu = _dispatch.cpu()
    rng = np.random.default_rng(7)
    for k in (1, 7, 8, 9, 128, 300):
        u = (rng.standard_normal((50, k)) * np.logspace(-20, 20, 50)[:, None]).astype(dtype)
        u[4] = 0
        emb = np.zeros_like(u)
        cpu.rp_accumulate(u, 0.7, True, emb)
        u64 = u.astype(np.float64)
        norms = np.linalg.norm(u64, axis=1, keepdims=True)
        want = np.divide(0.7 * u64, norms, out=np.zeros_like(u64), where=norms > 0)
        eps = np.finfo(dtype).eps
        rtol = 2 * eps if dtype == np.float32 else (k / 16 + 4) * eps
        np.testing.assert_allclose(emb, want, rtol=rtol, atol=0)
        assert not emb[4].any()
