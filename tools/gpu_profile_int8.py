"""Where the time of a GPU int8_matmul / lut_matmul call goes (issue #23): the call and its
stages timed alone with cupyx.profiler.benchmark (host time and CUDA-event time), on the
benchmark's data (float16 X with 4 outlier columns, threshold 6), next to cuBLAS fp16.
Needs a GPU:  PYTHONPATH=python python3 tools/gpu_profile_int8.py  (PROFILE_QUICK=1: 4096 x 4096)
"""

import os
import sys

import cupy as cp
import numpy as np
from cupyx.profiler import benchmark

sys.path.insert(0, ".")
import matkern  # noqa: E402
from bench.int8 import _x_with_outliers  # noqa: E402
from matkern import int8 as mi  # noqa: E402
from matkern.reference import int8 as ref  # noqa: E402


def show(name, fn, n=30):
    r = benchmark(fn, n_repeat=n, n_warmup=5)
    cpu = float(np.median(r.cpu_times)) * 1e6
    gpu = float(np.median(r.gpu_times[0])) * 1e6
    print(f"  {name:<34} host {cpu:9.1f} us   gpu {gpu:9.1f} us", flush=True)


def profile_case(n, k, m):
    rng = np.random.default_rng(n + k + m)
    W = cp.asarray(rng.standard_normal((n, k), dtype=np.float32) * 0.05).astype(cp.float16)
    X = cp.asarray(_x_with_outliers(rng, m, k)).astype(cp.float16)
    Wq = matkern.int8_quantize(W)
    print(f"M={m} N={n} K={k}", flush=True)
    show("cuBLAS fp16 X @ W.T", lambda: X @ W.T)
    show("int8_matmul threshold 6", lambda: matkern.int8_matmul(X, Wq, threshold=6.0))
    show("int8_matmul threshold 0", lambda: matkern.int8_matmul(X, Wq, threshold=0.0))
    cols = mi._outlier_columns(X, 6.0, cp)
    print(f"  ({cols.size} outlier columns)")
    show("_outlier_columns", lambda: mi._outlier_columns(X, 6.0, cp))
    show("_codes_columns", lambda: mi._codes_columns(Wq, cols))
    codes = mi._codes_columns(Wq, cols)
    show("dequantize_rows", lambda: ref.dequantize_rows(codes, Wq.scale, cp))
    wo = ref.dequantize_rows(codes, Wq.scale, cp)
    show("X[:, cols].astype(f32)", lambda: X[:, cols].astype(cp.float32))
    xo = X[:, cols].astype(cp.float32)
    show("xo @ wo.T", lambda: cp.ascontiguousarray(xo @ wo.T))
    add = cp.ascontiguousarray(xo @ wo.T)
    show("_cuda_matmul (mask, addend)", lambda: mi._cuda_matmul(X, Wq, cols, None, add))
    show("_cuda_matmul_fused t=6", lambda: mi._cuda_matmul_fused(X, Wq, 6.0, None))
    show("_cuda_matmul_fused t=0", lambda: mi._cuda_matmul_fused(X, Wq, 0.0, None))
    if m <= 16:
        Wl = matkern.lut_quantize(W, bits=4, group_size=128, table="nf4")
        show("lut_matmul nf4 g128", lambda: matkern.lut_matmul(X, Wl))


def main():
    shapes = [(4096, 4096)] if os.environ.get("PROFILE_QUICK") else [(4096, 4096), (11008, 4096)]
    for n, k in shapes:
        for m in (1, 16, 256, 4096):
            profile_case(n, k, m)


if __name__ == "__main__":
    main()
