"""Concurrent callers (issue #16): four Python threads, each running a stream of mixed calls
(spmm on pubmed, int8_matmul and lut_matmul at M=16 on 1024x1024, fwht 256x4096), against
the same calls run one after another on one Python thread. The ratio is sequential time /
concurrent time (>= 1: sharing the process-wide thread budget loses no throughput); the
notes give the slowest call's time in the concurrent run over its solo time (goal <= 4).

Two cases: four new threads per timed run (their start and join timed too, and each new
thread's first parallel call builds its own OpenMP team), and a pool of four threads started
once and reused, as a ThreadPoolExecutor, a Dask worker or joblib keeps its threads.
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


class _Pool:
    """N_THREADS threads started once; run() releases them for one stream each and waits
    for all (two barriers), returning each thread's call latencies."""

    def __init__(self, calls):
        self.calls, self.stop = calls, False
        self.start = threading.Barrier(N_THREADS + 1)
        self.end = threading.Barrier(N_THREADS + 1)
        self.lats = [{} for _ in range(N_THREADS)]
        self.threads = [
            threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(N_THREADS)
        ]
        for t in self.threads:
            t.start()

    def _loop(self, i):
        while True:
            self.start.wait()
            if self.stop:
                return
            self.lats[i] = {}
            _stream(self.calls, self.lats[i])
            self.end.wait()

    def run(self):
        self.start.wait()
        self.end.wait()
        return self.lats

    def close(self):
        self.stop = True
        self.start.wait()
        for t in self.threads:
            t.join()


def cases(ctx):
    if ctx.device != "cpu":
        return

    def make(pooled=False):
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

        fns = {"same calls one after another": sequential, "_worst": worst, "_solo": solo}
        if not pooled:
            fns["matkern"] = concurrent
            return fns
        pool = _Pool(calls)

        def run_pool():
            lats = pool.run()
            worst["ratio"] = max(
                worst["ratio"], max(max(v) / solo[name] for lat in lats for name, v in lat.items())
            )

        fns["matkern"] = run_pool
        fns["_close"] = pool.close
        return fns

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
    yield Case(
        "concurrency",
        f"{N_THREADS} pooled threads x mixed calls",
        lambda: make(pooled=True),
        bars={"same calls one after another": 1.0},
        info=info,
    )
