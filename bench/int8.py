"""Benchmarks of LLM.int8(): int8_matmul (activation quantization, outlier path with threshold
6.0 on data with a few outlier columns, int8 product, epilogue: all counted) against NumPy's
float32 matmul (OpenBLAS) on the CPU and cuBLAS fp16 (CuPy matmul) on the GPU, LLaMA layer
shapes (N, K)."""

import warnings

import numpy as np

from bench._runner import Case

SHAPES = [(4096, 4096), (11008, 4096), (4096, 11008)]
N_OUTLIER_COLS = 4


def _x_with_outliers(rng, m, k, xp=np):
    X = rng.standard_normal((m, k), dtype=np.float32)
    cols = rng.choice(k, N_OUTLIER_COLS, replace=False)
    X[:, cols] *= 20.0  # |x| well above 6 in most rows: the decomposition runs
    return X


def _exact(xs, W):
    """xs @ W.T in float64, W taken 1024 rows at a time (a float64 copy of an 11008 x 4096
    weight is 360 MB)."""
    x64 = xs.astype(np.float64)
    return np.hstack([x64 @ W[i : i + 1024].T.astype(np.float64) for i in range(0, len(W), 1024)])


def _accuracy(fns):
    y, exact = fns["_y"](), fns["_exact"]
    e = float(np.linalg.norm(y.astype(np.float64) - exact) / np.linalg.norm(exact))
    return f"rel. Frobenius error vs float32 {e:.4f}; weight {fns['_wbytes'] / 2**20:.0f} MiB int8"


TORCH_PEER = "torch dynamic int8 Linear (fbgemm)"


def _torch_int8_linear(W):
    """PyTorch's dynamically quantized Linear (int8 weight, per-call activation quantization,
    fbgemm/onednn kernels) on W, or None where torch is not installed (bench extra, pinned)."""
    try:
        import torch
    except ImportError:
        return None
    import matkern

    torch.set_num_threads(matkern.get_num_threads())  # equal thread counts
    lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(W))
    with warnings.catch_warnings():  # torch deprecates its quantized tensors, not the module
        warnings.simplefilter("ignore", UserWarning)
        q = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8
        )

    def run(X):
        with torch.inference_mode():
            return q(X)

    return torch, run


_SHAPE = {}  # the shape whose weights the cases of one shape share (one shape held at a time)


def _shape_weights(n, k):
    """(W, its Int8Weight, the torch peer or None) for shape (n, k), made once for the four
    cases of that shape: a weight of 11008 x 4096 and its quantizations take seconds."""
    import matkern

    if (n, k) not in _SHAPE:
        _SHAPE.clear()
        W = np.random.default_rng(n + k).standard_normal((n, k), dtype=np.float32) * 0.05
        _SHAPE[(n, k)] = (W, matkern.int8_quantize(W), _torch_int8_linear(W))
    return _SHAPE[(n, k)]


def cases(ctx):
    import matkern

    if ctx.device == "cpu":
        ms = (1, 16, 256, 2048)
        for n, k in SHAPES:
            for m in ms:
                # M=2048 is 70-185 GFLOP a call: with --quick only the square shape runs it
                if ctx.quick and m == 2048 and (n, k) != (4096, 4096):
                    continue

                def make(n=n, k=k, m=m):
                    rng = np.random.default_rng(n + k + m)
                    W, Wq, peer = _shape_weights(n, k)
                    X = _x_with_outliers(rng, m, k)
                    xs = X[:8]
                    fns = {
                        "matkern": lambda: matkern.int8_matmul(X, Wq, threshold=6.0),
                        "numpy float32 matmul": lambda: X @ W.T,
                        "_y": lambda: matkern.int8_matmul(xs, Wq, threshold=6.0),
                        "_exact": _exact(xs, W),
                        "_wbytes": Wq.nbytes,
                    }
                    if peer is not None:
                        torch, run = peer
                        Xt = torch.from_numpy(X)
                        fns[TORCH_PEER] = lambda: run(Xt)
                    return fns

                bar = 2.0 if m == 1 else 1.0
                # issue #25's bar against fbgemm: 1.2x at M = 1, 16, 256
                bars = {"numpy float32 matmul": bar}
                if m <= 256:
                    bars[TORCH_PEER] = 1.2
                yield Case(
                    "int8", f"int8_matmul M={m} N={n} K={k} f32", make, bars=bars, info=_accuracy
                )
    else:
        cp = ctx.cupy
        for n, k in SHAPES:
            for m in (1, 16, 256, 4096):

                def make_gpu(n=n, k=k, m=m):
                    rng = np.random.default_rng(n + k + m)
                    W = cp.asarray(rng.standard_normal((n, k), dtype=np.float32) * 0.05)
                    X = cp.asarray(_x_with_outliers(rng, m, k)).astype(cp.float16)
                    W16 = W.astype(cp.float16)
                    Wq = matkern.int8_quantize(W16)
                    xs = X[:8]
                    return {
                        "matkern": lambda: matkern.int8_matmul(X, Wq, threshold=6.0),
                        "cupy fp16 matmul (cuBLAS)": lambda: X @ W16.T,
                        "_y": lambda: cp.asnumpy(matkern.int8_matmul(xs, Wq, threshold=6.0)),
                        "_exact": cp.asnumpy(xs.astype(cp.float64) @ W16.astype(cp.float64).T),
                        "_wbytes": Wq.nbytes,
                    }

                bar = 1.5 if m >= 256 else (1.0 if m == 1 else None)
                yield Case(
                    "int8",
                    f"int8_matmul M={m} N={n} K={k} f16",
                    make_gpu,
                    bars={} if bar is None else {"cupy fp16 matmul (cuBLAS)": bar},
                    device="cuda",
                    info=_accuracy,
                )
