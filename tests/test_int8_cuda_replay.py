"""Host replay of the int8 CUDA GEMM's index logic (cuda/int8.cu), runnable without a GPU.

The tensor-core kernel cannot run on machines without a GPU, and a wrong fragment offset
there gives wrong numbers, not a crash. This test replays, in NumPy, exactly the offsets that
gemm_mma_kernel uses: the cp.async tile loads with zero fill (rows past M/N, K past Kp), the
padded shared-memory rows, the per-lane 32-bit fragment loads, and the epilogue's (row, col)
for each accumulator; the mma itself is replayed from the PTX ISA's fragment layout for
mma.m16n8k32 .s8 (a lane's registers -> tile positions: matkern._mma_layout, the Python form
of the layouts described in cuda/mma.cuh), independently of the kernel's code.
The result must equal A @ B.T exactly. On a GPU, test_int8.py checks the kernel itself.
"""

import numpy as np
import pytest

from matkern._mma_layout import a_m16n8k32_s8, b_m16n8k32_s8, c_m16n8

BM, BN, BK, LDS, NT = 128, 128, 64, 64 + 16, 256  # as in cuda/int8.cu


def mma_replay(a_regs, b_regs):
    """a_regs[lane] = 16 bytes, b_regs[lane] = 8 bytes -> c[lane] = 4 int sums (PTX layout)."""
    A = np.zeros((16, 32), np.int64)
    B = np.zeros((32, 8), np.int64)
    for lane in range(32):
        for i in range(16):
            A[a_m16n8k32_s8(lane, i)] = a_regs[lane][i]
        for i in range(8):
            B[b_m16n8k32_s8(lane, i)] = b_regs[lane][i]
    C = A @ B
    return [[C[c_m16n8(lane, i)] for i in range(4)] for lane in range(32)]


def kernel_replay(A, B, M, N, Kp):
    out = np.zeros((M, N), np.int64)
    for by in range(-(-M // BM)):
        for bx in range(-(-N // BN)):
            m0, n0 = by * BM, bx * BN
            acc = np.zeros((8, 4, 4, 32, 4), np.int64)  # warp, i, j, lane, e
            for k0 in range(0, Kp, BK):
                As = np.zeros(BM * LDS, np.int64)
                Bs = np.zeros(BN * LDS, np.int64)
                for tid in range(NT):  # load_tile
                    for c in range(tid, BM * BK // 16, NT):
                        r, col = c // (BK // 16), (c % (BK // 16)) * 16
                        kin = k0 + col < Kp
                        if kin and m0 + r < M:
                            As[r * LDS + col : r * LDS + col + 16] = A[
                                m0 + r, k0 + col : k0 + col + 16
                            ]
                        if kin and n0 + r < N:
                            Bs[r * LDS + col : r * LDS + col + 16] = B[
                                n0 + r, k0 + col : k0 + col + 16
                            ]
                for warp in range(8):
                    wm, wn = warp // 4, warp % 4
                    for ks in (0, 32):
                        a = np.zeros((4, 32, 16), np.int64)
                        b = np.zeros((4, 32, 8), np.int64)
                        for lane in range(32):
                            g, t = lane // 4, lane % 4
                            for i in range(4):
                                r = wm * 64 + i * 16 + g
                                offs = [
                                    r * LDS + ks + 4 * t,
                                    (r + 8) * LDS + ks + 4 * t,
                                    r * LDS + ks + 16 + 4 * t,
                                    (r + 8) * LDS + ks + 16 + 4 * t,
                                ]
                                a[i, lane] = np.concatenate([As[o : o + 4] for o in offs])
                            for j in range(4):
                                c = wn * 32 + j * 8 + g
                                offs = [c * LDS + ks + 4 * t, c * LDS + ks + 16 + 4 * t]
                                b[j, lane] = np.concatenate([Bs[o : o + 4] for o in offs])
                        for i in range(4):
                            for j in range(4):
                                acc[warp, i, j] += np.array(mma_replay(a[i], b[j]))
            for warp in range(8):  # epilogue
                wm, wn = warp // 4, warp % 4
                for lane in range(32):
                    g, t = lane // 4, lane % 4
                    for i in range(4):
                        for j in range(4):
                            r, c = m0 + wm * 64 + i * 16 + g, n0 + wn * 32 + j * 8 + 2 * t
                            for e in range(4):
                                rr, cc = r + (8 if e >= 2 else 0), c + (e & 1)
                                if rr < M and cc < N:
                                    out[rr, cc] = acc[warp, i, j, lane, e]
    return out


@pytest.mark.parametrize("m,n,k", [(5, 9, 32), (130, 20, 96), (17, 131, 40)])
def test_mma_kernel_index_replay(m, n, k):
    rng = np.random.default_rng(m + n + k)
    kp = -(-k // 32) * 32
    A = np.zeros((m, kp), np.int64)
    B = np.zeros((n, kp), np.int64)
    A[:, :k] = rng.integers(-128, 128, (m, k))
    B[:, :k] = rng.integers(-128, 128, (n, k))
    np.testing.assert_array_equal(kernel_replay(A, B, m, n, kp), A @ B.T)


# ---------------------------------------------------------------- outlier-column compaction
CT = 1024  # compact_kernel's block (kCompactThreads)


def compact_replay(flags, cap):
    """compact_kernel's indices, chunk by chunk: a ballot per warp of 32, the warps' counts in
    shared memory, each flagged lane's slot = the chunk's base + the counts of the warps
    before it + the set bits below it in its warp's ballot. Returns (cols[:cap], count)."""
    k = len(flags)
    cols = np.full(cap, -1, np.int64)
    base = 0
    for c0 in range(0, k, CT):
        f = np.zeros(CT, bool)
        n = min(CT, k - c0)
        f[:n] = flags[c0 : c0 + n]
        ballots = [
            sum(1 << lane for lane in range(32) if f[w * 32 + lane]) for w in range(CT // 32)
        ]
        s_warp = [bin(b).count("1") for b in ballots]
        for t in range(CT):
            w, lane = divmod(t, 32)
            if not f[t]:
                continue
            pos = base + sum(s_warp[:w]) + bin(ballots[w] & ((1 << lane) - 1)).count("1")
            if pos < cap:
                cols[pos] = c0 + t
        base += sum(s_warp)
    return cols, base


@pytest.mark.parametrize(
    "k,density,cap",
    [
        (5, 0.5, 64),
        (1024, 0.01, 64),
        (3000, 0.02, 64),
        (4096, 0.5, 64),
        (11008, 0.001, 64),
        (700, 1.0, 0),
    ],
)
def test_outlier_compaction_replay(k, density, cap):
    """The replayed compaction gives the flagged columns in ascending order (the first cap of
    them) and their full count, as NumPy's flatnonzero: the order the fused epilogue sums in
    and the count that picks the cuBLAS path."""
    rng = np.random.default_rng(k)
    flags = rng.random(k) < density
    cols, count = compact_replay(flags, cap)
    want = np.flatnonzero(flags)
    assert count == len(want)
    n = min(cap, count)
    np.testing.assert_array_equal(cols[:n], want[:n])
    assert (cols[n:] == -1).all()
