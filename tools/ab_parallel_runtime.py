"""A/B of the CPU parallel runtime behind every CPU kernel: the helper pool (cpp/parallel.hpp)
against the former OpenMP loops (``_cpu.set_parallel_runtime("openmp")``) and one thread,
in alternating rounds in one process, quiet and next to one spinning process.

    PYTHONPATH=python python tools/ab_parallel_runtime.py [--neighbour] [--rounds N]

Prints the median time per call of each variant and the ratios pool / openmp and
one thread / pool (> 1: the pool is faster).
"""

from __future__ import annotations

import argparse
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


def cases():
    rng = np.random.default_rng(0)
    for name in ("cora", "pubmed", "ca-CondMat", "dnn-n1024-l1"):
        A = sp.csr_matrix(scipy.io.mmread(ROOT / "data" / "matrices" / f"{name}.mtx"))
        S = matkern.SparseMatrix(A.astype(np.float32))
        B = rng.standard_normal((A.shape[1], 32), dtype=np.float32)
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
    G = rng.standard_normal((1024, 1024), dtype=np.float32)
    yield "gram syrk 1024^2 f32", (lambda: matkern.spectral_norm_bound(G))
    Gb = rng.standard_normal((256, 64, 64), dtype=np.float32)
    yield "gram batch 256x64x64", (lambda: matkern.spectral_norm_bound(Gb))
    K = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    yield "gram conv 64x64x3x3 on 32^2", (lambda: matkern.conv_spectral_norm_bound(K, (32, 32)))
    Xd = rng.standard_normal((2000, 4096), dtype=np.float32)
    srp = matkern.SparseRandomProjection(256, random_state=0).fit(Xd)
    yield "srp dense 2000x4096 k=256", (lambda: srp.transform(Xd))
    pub = sp.csr_matrix(scipy.io.mmread(ROOT / "data" / "matrices" / "pubmed.mtx"))
    yield "fastrp pubmed dim=64", (lambda: matkern.fastrp(pub, dim=64, random_state=0))
    fj = matkern.FJLT(256, random_state=0).fit(Xd)
    yield "fjlt 2000x4096 k=256", (lambda: fj.transform(Xd))
    R = sp.random(20000, 2000, density=0.005, format="csr", random_state=0)
    yield "svd fit 20000x2000 k=32", (lambda: matkern.TruncatedSVD(32, random_state=0).fit(R))


def block(fn, seconds):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--neighbour", action="store_true")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--only", default="", help="run the cases whose name contains this")
    args = p.parse_args()
    import bench._runner as R

    print(
        f"machine: {R.machine_description('cpu')}; threads {matkern.get_num_threads()}"
        f"{'; next to one spinning process' if args.neighbour else ''}"
    )
    ctx = R.busy_neighbour() if args.neighbour else None
    if ctx:
        ctx.__enter__()
    try:
        for name, fn in cases():
            if args.only not in name:
                continue
            times = {"pool": [], "openmp": [], "one thread": []}
            for _ in range(args.rounds):
                cpu().set_parallel_runtime("pool")
                times["pool"].append(block(fn, 0.05))
                cpu().set_parallel_runtime("openmp")
                times["openmp"].append(block(fn, 0.05))
                cpu().set_parallel_runtime("pool")
                with matkern.threads(1):
                    times["one thread"].append(block(fn, 0.05))
            m = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{name:24s} pool {m['pool'] * 1e3:8.3f} ms  openmp {m['openmp'] * 1e3:8.3f} ms"
                f"  1 thread {m['one thread'] * 1e3:8.3f} ms | openmp/pool "
                f"{m['openmp'] / m['pool']:5.2f}  1thread/pool {m['one thread'] / m['pool']:5.2f}"
            )
    finally:
        cpu().set_parallel_runtime("pool")
        if ctx:
            ctx.__exit__(None, None, None)


if __name__ == "__main__":
    main()
