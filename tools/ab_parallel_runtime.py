"""A/B runs of the CPU parallel runtime behind every CPU kernel, in alternating rounds in one
process, quiet or next to one spinning process (``--neighbour``).

    PYTHONPATH=python python tools/ab_parallel_runtime.py [--mode runtime|threads|policy|simd]
        [--neighbour] [--rounds N] [--block SECONDS] [--only TEXT]

Modes (each variant timed in every round, the variants in turn):

- ``runtime``: the helper pool (cpp/parallel.hpp) against the former OpenMP loops
  (``_cpu.set_parallel_runtime("openmp")``) and matkern on one thread.
- ``threads``: matkern on 2 threads against matkern on 1 thread: issue #16's bar next to a
  busy process (2 threads never slower than 1). Its cases cover every family on the pool
  and the Python-level users of the thread budget (matfun's stacks, the sketches).
- ``simd``: every kernel at ``MATKERN_SIMD=avx2`` (read at each call) against the CPU's own
  level (AVX-512 VNNI where it has it): issue #25's "every other family no slower than its
  AVX2 path", on the ``runtime`` cases (int8, 4-bit LUT, fwht, matfun's GEMM take 512-bit
  kernels; the others run their AVX2 code at both levels).
- ``policy``: the pool's wait policies (``_cpu.set_pool_policy``: the contention guard on or
  off, the caller spinning until its helpers finish instead of sleeping after 50 us,
  SCHED_BATCH helpers) against one thread.

Prints the median time per call of each variant, the ratio of the medians to the first
variant and the median of the per-round ratios (> 1: faster than the first variant), and
the load average before and after (other work on the machine counts as neighbours too).
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import statistics
import sys
import time

import numpy as np
import scipy.io
import scipy.sparse as sp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import matkern  # noqa: E402
from matkern._dispatch import cpu  # noqa: E402

MATRICES = ("cora", "citeseer", "pubmed", "ca-CondMat", "cryg2500", "dnn-n1024-l1", "dnn-n1024-l2")


def _mtx(name):
    return sp.csr_matrix(scipy.io.mmread(ROOT / "data" / "matrices" / f"{name}.mtx"))


def runtime_cases():
    rng = np.random.default_rng(0)
    for name in ("cora", "pubmed", "ca-CondMat", "dnn-n1024-l1"):
        S = matkern.SparseMatrix(_mtx(name).astype(np.float32))
        B = rng.standard_normal((S.shape[1], 32), dtype=np.float32)
        yield f"spmm {name} k=32", (lambda S=S, B=B: S @ B)
    for shape in ((1024, 4096), (1, 2**20), (64, 2**16)):
        x = rng.standard_normal(shape, dtype=np.float32)
        yield f"fwht {shape[0]}x{shape[1]}", (lambda x=x: matkern.fwht(x))
    W = rng.standard_normal((4096, 4096), dtype=np.float32)
    Wq, Wl = matkern.int8_quantize(W), matkern.lut_quantize(W)
    for m in (1, 16, 256):
        X = rng.standard_normal((m, 4096), dtype=np.float32)
        yield f"int8 M={m} 4096^2", (lambda X=X: matkern.int8_matmul(X, Wq))
        yield f"lut nf4 M={m} 4096^2", (lambda X=X: matkern.lut_matmul(X, Wl))
    yield from _gram_cases(rng)
    Xd = rng.standard_normal((2000, 4096), dtype=np.float32)
    srp = matkern.SparseRandomProjection(256, random_state=0).fit(Xd)
    yield "srp dense 2000x4096 k=256", (lambda: srp.transform(Xd))
    pub = _mtx("pubmed")
    yield "fastrp pubmed dim=64", (lambda: matkern.fastrp(pub, dim=64, random_state=0))
    fj = matkern.FJLT(256, random_state=0).fit(Xd)
    yield "fjlt 2000x4096 k=256", (lambda: fj.transform(Xd))
    R = sp.random(20000, 2000, density=0.005, format="csr", random_state=0)
    yield "svd fit 20000x2000 k=32", (lambda: matkern.TruncatedSVD(32, random_state=0).fit(R))
    Q = rng.standard_normal((64, 128, 128), dtype=np.float32)
    yield (
        "matfun orthogonalize 64x128x128 polar x11",
        (lambda: matkern.orthogonalize(Q, n_iter=11, coefficients="polar")),
    )


def _gram_cases(rng):
    G = rng.standard_normal((1024, 1024), dtype=np.float32)
    yield "gram syrk 1024^2 f32", (lambda: matkern.spectral_norm_bound(G))
    Gb = rng.standard_normal((256, 64, 64), dtype=np.float32)
    yield "gram batch 256x64x64", (lambda: matkern.spectral_norm_bound(Gb))
    K = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    yield "gram conv 64x64x3x3 on 32^2", (lambda: matkern.conv_spectral_norm_bound(K, (32, 32)))


def threads_cases():
    """(name, make) pairs, make() building the inputs and returning the call: the families
    whose 2-thread / 1-thread ratio next to a busy process was below 1 in the committed
    bench results, on the bench's inputs (smaller where a call took seconds), and the
    Python-level users of the thread budget (matfun's stacks, the sketches)."""
    from bench.randproj import random_csr
    from tests import datasets

    rng = np.random.default_rng(0)

    def spmm(name, k):
        A = _mtx(name).astype(np.float32)
        S = matkern.SparseMatrix(A)
        B = rng.standard_normal((A.shape[1], k), dtype=np.float32)
        return lambda: S @ B

    for name in MATRICES:
        for k in (32, 128):
            yield f"spmm {name} k={k}", (lambda name=name, k=k: spmm(name, k))

    def fwht(shape, dt):
        x = rng.standard_normal(shape).astype(dt)
        return lambda: matkern.fwht(x)

    for shape, dt in (
        ((1024, 4096), "float32"),
        ((256, 2**14), "float64"),
        ((1, 2**20), "float32"),
    ):
        yield f"fwht {shape[0]}x{shape[1]} {dt}", (lambda shape=shape, dt=dt: fwht(shape, dt))

    def lut(kw):
        W = rng.standard_normal((4096, 4096), dtype=np.float32)
        Wl = matkern.lut_quantize(W, **kw)
        x1 = rng.standard_normal((1, 4096), dtype=np.float32)
        return lambda: matkern.lut_matmul(x1, Wl)

    for label, kw in (("nf4", {}), ("3-bit int", {"bits": 3, "table": "int"})):
        yield f"lut M=1 4096^2 {label}", (lambda kw=kw: lut(kw))

    def srp():
        X = random_csr(20000, 100000, 0.001, 1)
        p = matkern.SparseRandomProjection(256, random_state=0).fit(X)
        return lambda: p.transform(X)

    yield "srp sparse 20000x100000 0.1% -> 256", srp

    def svd(load, k, nb):
        A = load()
        h = A.shape[0] // 2
        bounds = np.linspace(h, A.shape[0], nb + 1).astype(int)
        batches = [A[bounds[i] : bounds[i + 1]] for i in range(nb)]
        base = matkern.TruncatedSVD(k, method="sparse", init="lanczos", random_state=0).fit(A[:h])

        def update():
            t = base.copy()
            for E in batches:
                t.add_rows(E)
            return t

        return update

    yield (
        "svd update MovieLens users k=16, 10 batches",
        (lambda: svd(datasets.movielens_users, 16, 10)),
    )
    for name, fn in _gram_cases(rng):
        yield name, (lambda fn=fn: fn)

    def sqrtm():
        P = rng.standard_normal((64, 64, 64))
        P = P @ P.transpose(0, 2, 1) + 64 * np.eye(64)
        return lambda: matkern.sqrtm_psd(P)

    yield "matfun sqrtm_psd 64x64x64 f64", sqrtm

    def ortho():
        Q = rng.standard_normal((32, 128, 128), dtype=np.float32)
        return lambda: matkern.orthogonalize(Q)

    yield "matfun orthogonalize 32x128x128 f32", ortho

    def srht():
        D = rng.standard_normal((16384, 256))
        return lambda: matkern.srht(D, 1024, random_state=0)

    yield "sketch srht 16384x256 -> 1024", srht

    def countsketch():
        Sx = random_csr(100000, 2000, 0.002, 2)
        return lambda: matkern.countsketch(Sx, 4000, random_state=0)

    yield "sketch countsketch 100000x2000 sparse -> 4000", countsketch


@contextlib.contextmanager
def runtime(name):
    cpu().set_parallel_runtime(name)
    try:
        yield
    finally:
        cpu().set_parallel_runtime("pool")


@contextlib.contextmanager
def simd(level):
    import os

    old = os.environ.get("MATKERN_SIMD")
    os.environ["MATKERN_SIMD"] = level
    try:
        yield
    finally:
        if old is None:
            del os.environ["MATKERN_SIMD"]
        else:
            os.environ["MATKERN_SIMD"] = old


@contextlib.contextmanager
def policy(**kw):
    old = cpu().pool_policy()
    cpu().set_pool_policy(**{**old, **kw})
    try:
        yield
    finally:
        cpu().set_pool_policy(**old)


def variants(mode):
    """{name: zero-argument context manager factory}; the first is the reference."""
    one = {"1 thread": lambda: matkern.threads(1)}
    two = lambda: matkern.threads(2)  # noqa: E731
    if mode == "runtime":
        return {**one, "pool": two, "openmp": lambda: runtime("openmp")}
    if mode == "threads":
        return {**one, "2 threads": two}
    if mode == "simd":
        return {"avx2": lambda: simd("avx2"), cpu().simd_level(): two}
    return {
        **one,
        "pool (default)": two,
        "no guard": lambda: policy(guard=False),
        "no guard, caller never sleeps": lambda: policy(guard=False, caller_spin_us=10**9),
        "helpers SCHED_BATCH": lambda: policy(helper_batch=True),
        "helpers spin 3 ms": lambda: policy(helper_spin_us=3000),
    }


def block(fn, seconds):
    fn()
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def loadavg():
    try:
        return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("runtime", "threads", "policy", "simd"), default="runtime")
    p.add_argument("--neighbour", action="store_true")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--block", type=float, default=0.05, help="seconds per timed block")
    p.add_argument("--only", default="", help="run the cases whose name contains this")
    args = p.parse_args()
    import bench._runner as R

    matkern.set_num_threads(max(2, matkern.get_num_threads()))
    print(
        f"machine: {R.machine_description('cpu')}; mode {args.mode}; {args.rounds} rounds of "
        f"{args.block * 1e3:.0f} ms blocks{'; next to one spinning process' if args.neighbour else ''}"
        f"; load average before {loadavg()}",
        flush=True,
    )
    vs = variants(args.mode)
    names = list(vs)
    ctx = R.busy_neighbour() if args.neighbour else None
    if ctx:
        ctx.__enter__()
    try:
        if args.mode in ("runtime", "simd"):
            cases = ((name, lambda fn=fn: fn) for name, fn in runtime_cases())
        else:
            cases = threads_cases()
        for name, make in cases:
            if args.only not in name:
                continue
            fn = make()
            times = {k: [] for k in names}
            for r in range(args.rounds):
                order = names if r % 2 == 0 else names[::-1]  # no variant always runs first
                for k in order:
                    with vs[k]():
                        times[k].append(block(fn, args.block))
            m = {k: statistics.median(v) for k, v in times.items()}
            ref = names[0]
            parts = [f"{k} {m[k] * 1e3:8.3f} ms" for k in names]
            rel = [
                f"{ref}/{k} {m[ref] / m[k]:5.2f} (paired {statistics.median(a / b for a, b in zip(times[ref], times[k])):5.2f})"
                for k in names[1:]
            ]
            print(f"{name:44s} " + "  ".join(parts) + " | " + "  ".join(rel), flush=True)
        print(f"pool counters: {cpu().pool_stats()}")
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
    print(f"load average after {loadavg()}")


if __name__ == "__main__":
    main()
