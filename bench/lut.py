"""Benchmarks of the LUT matmul (FLUTE): 4-bit / group-128 weights on LLaMA layer shapes
against the float32 NumPy product and PyTorch's 4-bit CPU matmul (``_weight_int4pack_mm_for_cpu``,
bf16 activations) and float32 ``F.linear`` (CPU), or cuBLAS fp16 and dequantize-then-cuBLAS
(GPU), and the quantization error on the real MiniLM layers."""

import numpy as np

from bench._runner import Case

SHAPES = [(4096, 4096), (11008, 4096)]


def _weight(N, K, seed=0):
    # LLM-like weights: N(0, 0.02) with a few larger entries per row
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((N, K), dtype=np.float32) * 0.02).astype(np.float32)
    return W


_QUANT = {}  # the weights of one shape and their quantizations, shared by its cases


def _quantized(N, K, table, gs):
    """(W, lut_quantize(W, 4, gs, table)) for _weight(N, K), kept while the cases use the same
    shape: quantizing 11008 x 4096 weights takes seconds (NumPy), and the M=1 and M=16
    cases of a layout share one."""
    import matkern

    if _QUANT.get("shape") != (N, K):
        _QUANT.clear()
        _QUANT["shape"] = (N, K)
        _QUANT["W"] = _weight(N, K)
    key = (table, gs)
    if key not in _QUANT:
        _QUANT[key] = matkern.lut_quantize(_QUANT["W"], bits=4, group_size=gs, table=table)
    return _QUANT["W"], _QUANT[key]


def _rel_err(y, exact):
    return float(np.linalg.norm(y - exact) / np.linalg.norm(exact))


TORCH_INT4 = "torch int4pack mm (bf16 X)"
TORCH_F32 = "torch f32 F.linear"
NO_TORCH = "torch not installed (bench extra): its peers skipped"


def _torch_peers(W, X, group_size=128):
    """PyTorch's peers of a 4-bit g128 product X @ W.T at matkern's thread count (issue #25):
    ``_weight_int4pack_mm_for_cpu`` on W quantized by torch's own asymmetric 4-bit scheme
    (per group: w = (q - 8) * scale + zero, scale and zero in bf16; X in bf16), and float32
    ``F.linear`` on W. None where torch is not importable."""
    try:
        import torch
    except ImportError:
        return None
    import matkern

    torch.set_num_threads(matkern.get_num_threads())  # equal thread counts
    N, K = W.shape
    G = W.reshape(N, K // group_size, group_size)
    lo, hi = G.min(axis=2), G.max(axis=2)
    scale = np.maximum(hi - lo, 1e-12) / 15
    q = np.clip(np.rint((G - lo[..., None]) / scale[..., None]), 0, 15).astype(np.int32)
    packed = torch._convert_weight_to_int4pack_for_cpu(torch.from_numpy(q.reshape(N, K)), 1)
    sz = np.stack([scale, lo + 8 * scale], axis=-1).transpose(1, 0, 2)  # (K / G, N, 2)
    sz = torch.from_numpy(np.ascontiguousarray(sz)).to(torch.bfloat16)
    xb, xt, wt = torch.from_numpy(X).to(torch.bfloat16), torch.from_numpy(X), torch.from_numpy(W)

    def int4():
        with torch.inference_mode():
            return torch._weight_int4pack_mm_for_cpu(xb, packed, group_size, sz)

    def f32():
        with torch.inference_mode():
            return torch.nn.functional.linear(xt, wt)

    return {TORCH_INT4: int4, TORCH_F32: f32}


def cases(ctx):
    import matkern

    if ctx.device == "cpu":
        combos = [(N, K, M, "nf4") for N, K in SHAPES for M in (1, 16, 256)]
        # "int" (and "fp4_e2m1") tables are bfloat16-exact: the AVX2 kernel looks up 2 byte
        # planes instead of 4
        combos += [(N, K, 1, "int") for N, K in SHAPES]
        combos = [(N, K, M, table, 128) for N, K, M, table in combos]
        # bitsandbytes-style weights: large blocks, one group per row, K ending in a partial
        # group (4000 = 31 x 128 + 32) and K not a multiple of 32 (X padded): the same bars as
        # the 128-column groups that divide K
        combos += [
            (4096, 4096, 1, "nf4", 4096),
            (4096, 4096, 16, "fp4", 4096),
            (4096, 4096, 1, "nf4", None),
            (4096, 4000, 1, "nf4", 128),
            (4096, 4001, 16, "nf4", 128),
        ]
        # the cases of one shape in a row: they share its weight (_quantized)
        first = {}
        for c in combos:
            first.setdefault(c[:2], len(first))
        combos.sort(key=lambda c: first[c[:2]])
        for N, K, M, table, gs in combos:
            # torch's int4pack peers take whole groups of 128 only
            with_peers = gs == 128 and table == "nf4" and K % 128 == 0

            def make(N=N, K=K, M=M, table=table, gs=gs, with_peers=with_peers):
                W, qw = _quantized(N, K, table, gs)
                X = np.random.default_rng(1).standard_normal((M, K)).astype(np.float32)
                x = X[0].copy()
                out = {
                    "matkern": (lambda: matkern.lut_matmul(x, qw))
                    if M == 1
                    else (lambda: matkern.lut_matmul(X, qw))
                }
                if M == 1:
                    out["numpy f32 matvec"] = lambda: W @ x
                else:
                    out["numpy f32 matmul"] = lambda: X @ W.T
                peers = _torch_peers(W, X) if with_peers else None
                if peers is not None:  # issue #25's peers: int4pack up to M = 16, f32 at 256
                    out.update({TORCH_INT4: peers[TORCH_INT4]} if M <= 16 else peers)
                out.update(_X=X, _W=W, _qw=qw, _torch=peers is not None or not with_peers)
                return out

            def info(f, M=M):
                X, W, qw = f["_X"], f["_W"], f["_qw"]
                err = _rel_err(matkern.lut_matmul(X, qw), X @ W.T)
                s = (
                    f"weights {qw.nbytes / 2**20:.1f} MiB vs {W.nbytes / 2**20:.0f} MiB "
                    f"f32; rel. error vs f32 {err:.3f}"
                )
                return s if f["_torch"] else f"{s}; {NO_TORCH}"

            anchor = "numpy f32 matvec" if M == 1 else "numpy f32 matmul"
            g = "per-row" if gs is None else f"g{gs}"
            bars = {anchor: 3.0 if M == 1 else (1.3 if M <= 16 else 1.0)}
            if with_peers:  # issue #25: 1.2x int4pack, at M = 256 1x f32
                bars.update({TORCH_INT4: 1.2} if M <= 16 else {TORCH_F32: 1.0})
            yield Case(
                "lut",
                f"lut_matmul M={M} {N}x{K} 4-bit {g} {table}",
                make,
                bars=bars,
                info=info,
            )

        # compute="int8" (int8 activations, vpdpbusd), the form torch's int4pack peer takes
        # (bf16 activations): the same shapes and issue #25's bars
        for N, K in SHAPES:
            for M in (1, 16, 256):

                def make_i8(N=N, K=K, M=M):
                    W, qw = _quantized(N, K, "nf4", 128)
                    X = np.random.default_rng(1).standard_normal((M, K)).astype(np.float32)
                    A = X[0].copy() if M == 1 else X
                    out = {"matkern": lambda: matkern.lut_matmul(A, qw, compute="int8")}
                    peers = _torch_peers(W, X)
                    if peers is not None:
                        out.update({TORCH_INT4: peers[TORCH_INT4]} if M <= 16 else peers)
                    out.update(_X=X, _W=W, _qw=qw, _peers=peers)
                    return out

                def info_i8(f):
                    X, W, qw, peers = f["_X"], f["_W"], f["_qw"], f["_peers"]
                    exact = X.astype(np.float64) @ W.T.astype(np.float64)
                    e8 = _rel_err(matkern.lut_matmul(X, qw, compute="int8"), exact)
                    ef = _rel_err(matkern.lut_matmul(X, qw), exact)
                    s = f"rel. error vs exact: int8 X {e8:.4f}, float32 X {ef:.4f}"
                    if peers is None:
                        return f"{s}; {NO_TORCH}"
                    yt = peers[TORCH_INT4]().float().numpy()
                    return f"{s}, torch int4pack (its own 4-bit scheme) {_rel_err(yt, exact):.4f}"

                bars = {TORCH_INT4: 1.2} if M <= 16 else {TORCH_F32: 1.0}
                yield Case(
                    "lut",
                    f"lut_matmul M={M} {N}x{K} 4-bit g128 nf4 compute=int8",
                    make_i8,
                    bars=bars,
                    info=info_i8,
                )

        def make_3bit():
            W = _weight(4096, 4096)
            qw = matkern.lut_quantize(W, bits=3, group_size=128, table="int")
            x = np.random.default_rng(2).standard_normal(4096).astype(np.float32)
            return {"matkern": lambda: matkern.lut_matmul(x, qw), "numpy f32 matvec": lambda: W @ x}

        yield Case("lut", "lut_matmul M=1 4096x4096 3-bit g128 int", make_3bit)

        def make_minilm():
            from tests.datasets import minilm_layers

            name, X, W = minilm_layers()[2]  # layer0.ffn_in: 1536 x 384, 512 real tokens
            qw = matkern.lut_quantize(W, bits=4, group_size=128, table="nf4")
            return {
                "matkern": lambda: matkern.lut_matmul(X, qw),
                "numpy f32 matmul": lambda: X @ W.T,
            }

        def minilm_info(_):
            from tests.datasets import error_table

            errs = error_table(group_size=128)
            return "MiniLM rel. Frobenius error (mean of 12 layers, g128): " + ", ".join(
                f"{b}-bit {t} {np.mean(e):.3f}" for (b, t), e in errs.items()
            )

        yield Case(
            "lut", "lut_matmul MiniLM ffn_in 512x384 -> 1536 (real)", make_minilm, info=minilm_info
        )
    else:
        cp = ctx.cupy
        gpu_combos = [(N, K, M, 128) for N, K in SHAPES for M in (1, 4, 16, 64)]
        # large groups and a partial last group (4000 = 31 x 128 + 32), bars as above
        gpu_combos += [(4096, 4096, 1, 4096), (4096, 4000, 16, 128)]
        for N, K, M, gs in gpu_combos:

            def make_gpu(N=N, K=K, M=M, gs=gs):
                W = _weight(N, K)
                qw = matkern.lut_quantize(W, bits=4, group_size=gs, table="nf4")
                qg = qw.to_device("cuda")
                W16 = cp.asarray(W.astype(np.float16))
                X = cp.asarray(np.random.default_rng(1).standard_normal((M, K)).astype(np.float16))
                return {
                    "matkern": lambda: matkern.lut_matmul(X, qg),
                    "cuBLAS fp16": lambda: X @ W16.T,
                    "dequantize-then-cuBLAS": lambda: (
                        X @ matkern.lut_dequantize(qg, dtype=cp.float16).T
                    ),
                    "_X": X,
                    "_W": W,
                    "_qg": qg,
                }

            def info_gpu(f):
                X = f["_X"]
                exact = cp.asnumpy(X).astype(np.float32) @ f["_W"].T
                y = cp.asnumpy(matkern.lut_matmul(X, f["_qg"])).astype(np.float32)
                return f"rel. error vs f32 {_rel_err(y, exact):.3f}"

            yield Case(
                "lut",
                f"lut_matmul M={M} {N}x{K} 4-bit g{gs} nf4 fp16",
                make_gpu,
                bars={"cuBLAS fp16": 2.0} if M <= 16 else {},
                device="cuda",
                info=info_gpu,
            )
