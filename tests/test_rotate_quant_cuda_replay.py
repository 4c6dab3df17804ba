"""Host replay of the fused rotate + quantize CUDA kernel's index logic (cuda/rotate_quant.cu),
runnable without a GPU.

The replay walks, for one block (one row), exactly the indices the kernel's threads use: the
load with the sign flip, the H_m stage in passes of whole blocks (thread t, slot r -> output e =
e0 + t + r * NT, read z[b m + j] for j ascending, a barrier, then the writes), the butterflies
(pair t -> a = (t / h) 2h + t % h and a + h, one barrier per stage), the scale and the int8
codes. Within each interval between barriers it checks that no element written by one thread is
read or written by another (a race the GPU would not report), and that every element is written
exactly once per pass and per stage.

The arithmetic is replayed in float32 in the kernel's order (the H_m sums j ascending from 0,
the products +-z exact), which is also the CPU kernels' order: the replayed rows and codes must
equal the CPU fused kernel's bit for bit. On a GPU, test_rotate_quant.py's routes run the
kernel itself.
"""

import numpy as np
import pytest

import matkern
from matkern import _hadamard_orders, _rotate_quant

NT, KPER = 256, 8  # as in cuda/rotate_quant.cu


def check_disjoint(accesses):
    """accesses: list of (thread, reads, writes) in one barrier interval: no element written by
    a thread is touched by another."""
    owner = {}
    for t, _, writes in accesses:
        for e in writes:
            assert owner.setdefault(e, t) == t, f"element {e} written by threads {owner[e]}, {t}"
    for t, reads, _ in accesses:
        for e in reads:
            assert owner.get(e, t) == t, f"element {e} read by {t}, written by {owner[e]}"


def replay_row(x, signs, m, p, round_f16=False):
    n = m * p
    mp = (m + 7) // 8 * 8
    ht = _hadamard_orders.padded_columns(m, np.float32) if m > 1 else None
    z = np.zeros(n, np.float32)
    for t in range(NT):  # load
        for e in range(t, n, NT):
            z[e] = x[e] * signs[e] if signs is not None else x[e]
    if m > 1:
        pass_blocks = max(1, NT * KPER // m)
        for b0 in range(0, p, pass_blocks):
            e0, e1 = b0 * m, min(p, b0 + pass_blocks) * m
            acc = {}
            reads = []
            for t in range(NT):
                mine = []
                for r in range(KPER):
                    e = e0 + t + r * NT
                    if e < e1:
                        b, i = e // m, e - (e // m) * m
                        a = np.float32(0)
                        for j in range(m):
                            a = np.float32(a + z[b * m + j] * ht.flat[j * mp + i])
                        acc[e] = a
                        mine.append(e)
                reads.append(mine)
            assert sorted(acc) == list(range(e0, e1))  # each output of the pass exactly once
            # the writes after the barrier: each thread its own outputs only
            check_disjoint([(t, [], reads[t]) for t in range(NT)])
            for e, v in acc.items():
                z[e] = v
    h = m
    while h < n:
        touched = []
        new = z.copy()
        for t in range(NT):
            mine = []
            for q in range(t, n // 2, NT):
                a = (q // h) * 2 * h + q % h
                u, v = z[a], z[a + h]
                new[a], new[a + h] = np.float32(u + v), np.float32(u - v)
                mine += [a, a + h]
            touched.append((t, mine, mine))
        check_disjoint(touched)
        assert sorted(e for _, w, _ in touched for e in w) == list(range(n))
        z = new
        h *= 2
    s = np.float32(1.0 / np.sqrt(np.float64(n)))
    z = (z * s).astype(np.float32)
    if round_f16:
        z = z.astype(np.float16).astype(np.float32)
    return z


def replay_codes(z, kp):
    a = np.abs(z)
    if not np.isfinite(a).all():
        return np.zeros(kp, np.int8), np.float32("nan")
    mx = np.float32(a.max())
    if mx == 0:
        return np.zeros(kp, np.int8), mx
    pre = np.float32(2.0**100) if mx < np.float32(2.0**-64) else np.float32(1)
    inv = np.float32(127) / np.float32(mx * pre)
    q = np.zeros(kp, np.int8)
    q[: z.size] = np.rint((z * pre).astype(np.float32) * inv)
    return q, mx


@pytest.mark.parametrize("n", [384, 256, 80, 1536, 96])
def test_replay_equals_the_cpu_fused_kernel(n):
    rng = np.random.default_rng(n)
    X = rng.standard_normal((2, n)).astype(np.float32)
    rot = matkern.HadamardRotation(n, random_state=2)
    signs, ht, m, p = _rotate_quant.kernel_arrays(rot, np.float32)
    rows = np.empty((2, n), np.float32)
    matkern._cpu.rotate_rows_padded(X, signs, ht, m, p, False, rows)
    kp = -(-n // 32) * 32
    for r in range(2):
        z = replay_row(X[r], signs, m, p)
        assert np.array_equal(z, rows[r])
        q, mx = replay_codes(z, kp)
        q_cpu = np.empty((1, n + (n & 1)), np.int16)
        s_cpu = np.empty(1, np.float32)
        matkern._cpu.rotate_quantize_int8(X[r : r + 1], signs, ht, m, p, False, q_cpu, s_cpu)
        assert np.array_equal(q[:n], q_cpu[0, :n]) and mx == s_cpu[0]
        assert not q[n:].any()


def test_replay_float16_rounding_and_single_block():
    """m > NT * KPER / m blocks per pass (m = 60: 34 blocks of 60 per pass) and the float16
    rounding of a float16 call."""
    x = np.random.default_rng(0).standard_normal(60 * 64).astype(np.float32) * 300
    rot = matkern.HadamardRotation(60 * 64, random_state=1)
    signs, ht, m, p = _rotate_quant.kernel_arrays(rot, np.float32)
    assert (m, p) == (60, 64)
    z = replay_row(x, signs, m, p, round_f16=True)
    out = np.empty((1, m * p), np.float32)
    matkern._cpu.rotate_rows_padded(x[None], signs, ht, m, p, True, out)
    assert np.array_equal(z, out[0])
