"""Host time of one matkern call per family on tiny inputs (issue #23: a GPU call with small M
is dominated by the Python side). The kernels' own work is negligible at these sizes, so the
time per call is the wrapper's: argument checks, dispatch, allocation, the binding call. Run
on the CPU (NumPy inputs); the GPU path adds CuPy allocations and its launches.

    PYTHONPATH=python python tools/host_overhead.py [--repeat 2000]

Prints microseconds per call (best of 5 blocks) next to NumPy's matmul of the same tiny
operands, the floor of any NumPy call.
"""

import argparse
import timeit

import numpy as np
import scipy.sparse as sp

import matkern


def cases():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1, 64), dtype=np.float32)
    W = rng.standard_normal((32, 64), dtype=np.float32)
    Wq, Wl = matkern.int8_quantize(W), matkern.lut_quantize(W, group_size=64)
    A = sp.random(32, 64, density=0.1, format="csr", random_state=0, dtype=np.float32)
    S = matkern.SparseMatrix(A)
    B = rng.standard_normal((64, 4), dtype=np.float32)
    F = rng.standard_normal((1, 64), dtype=np.float32)
    G = rng.standard_normal((16, 16), dtype=np.float32)
    srp = matkern.SparseRandomProjection(n_components=8, random_state=0).fit(X)
    return {
        "numpy X @ W.T (floor)": lambda: X @ W.T,
        "int8_matmul": lambda: matkern.int8_matmul(X, Wq),
        "int8_matmul threshold=0": lambda: matkern.int8_matmul(X, Wq, threshold=0.0),
        "lut_matmul": lambda: matkern.lut_matmul(X, Wl),
        "SparseMatrix @ B": lambda: S @ B,
        "spmm(A, B)": lambda: matkern.spmm(S, B),
        "fwht": lambda: matkern.fwht(F),
        "SparseRandomProjection.transform": lambda: srp.transform(X),
        "spectral_norm_bound": lambda: matkern.spectral_norm_bound(G),
        "orthogonalize": lambda: matkern.orthogonalize(G, n_iter=1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2000)
    args = ap.parse_args()
    for name, fn in cases().items():
        fn()
        t = min(timeit.repeat(fn, number=args.repeat, repeat=5)) / args.repeat
        print(f"{name:<34} {t * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
