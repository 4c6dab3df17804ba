"""Concurrent callers (issue #16): four Python threads, each running a stream of mixed calls
(spmm on pubmed, int8_matmul and lut_matmul at M=16 on 1024x1024, fwht 256x4096), against
the same calls run one after another on one Python thread. The ratio is sequential time /
concurrent time (>= 1: sharing the process-wide thread budget loses no throughput); the
notes give the slowest call's time in the concurrent run over its solo time (goal <= 4).
"""

import threading
import time

import numpy as np

from bench._runner import Case

N_THREADS = 4
ROUNDS = 3  # each thread's stream: ROUNDS x the four calls


def _calls():
    import pathlib

    import scipy.io
    import scipy.sparse as sp

    import matkern

    rng = np.random.default_rng(0)
    path = pathlib.Path(__file__).resolve().parent.parent / "data" / "matrices" / "pubmed.mtx"
    A = matkern.SparseMatrix(sp.csr_matrix(scipy.io.mmread(path)).astype(np.float32))
    B = rng.standard_normal((A.shape[1], 32), dtype=np.float32)
    W = rng.standard_normal((1024, 1024), dtype=np.float32)
    X = rng.standard_normal((16, 1024), dtype=np.float32)
    Wq, Wl = matkern.int8_quantize(W), matkern.lut_quantize(W)
    F = rng.standard_normal((256, 4096), dtype=np.float32)
    return {
        "spmm": lambda: A @ B,
        "int8_matmul": lambda: matkern.int8_matmul(X, Wq),
        "lut_matmul": lambda: matkern.lut_matmul(X, Wl),
        "fwht": lambda: matkern.fwht(F),
    }


def _stream(calls, lat):
    for _ in range(ROUNDS):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            lat.setdefault(name, []).append(time.perf_counter() - t0)


def cases(ctx):
    if ctx.device != "cpu":
        return

    def make():
        calls = _calls()
        solo = {}
        for name, fn in calls.items():
            fn()
            t0 = time.perf_counter()
            for _ in range(5):
                fn()
            solo[name] = (time.perf_counter() - t0) / 5
        worst = {"ratio": 0.0}

        def concurrent():
            lats = [{} for _ in range(N_THREADS)]
            ts = [threading.Thread(target=_stream, args=(calls, lats[i])) for i in range(N_THREADS)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            worst["ratio"] = max(
                worst["ratio"], max(max(v) / solo[name] for lat in lats for name, v in lat.items())
            )

        def sequential():
            for _ in range(N_THREADS):
                _stream(calls, {})

        return {
            "matkern": concurrent,
            "same calls one after another": sequential,
            "_worst": worst,
            "_solo": solo,
        }

    def info(fns):
        solo = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in fns["_solo"].items())
        return (
            f"slowest concurrent call / its solo time: {fns['_worst']['ratio']:.2f} "
            f"(goal <= 4); solo: {solo}"
        )

    yield Case(
        "concurrency",
        f"{N_THREADS} threads x mixed calls",
        make,
        bars={"same calls one after another": 1.0},
        info=info,
    )
