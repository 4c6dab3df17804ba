"""Benchmarks of the Walsh-Hadamard family: fwht and FJLT against FFT, the NumPy reference and
scikit-learn's Gaussian random projection (dense BLAS product)."""

import numpy as np

from bench._runner import Case


def _distortion(Y, X, rng):
    i = rng.integers(0, X.shape[0], 3000)
    j = rng.integers(0, X.shape[0], 3000)
    keep = i != j
    d0 = np.linalg.norm(X[i[keep]] - X[j[keep]], axis=1)
    d1 = np.linalg.norm(Y[i[keep]] - Y[j[keep]], axis=1)
    r = d1 / d0
    return float(np.quantile(np.abs(r - 1), 0.99))


def cases(ctx):
    import matkern

    q = ctx.quick
    if ctx.device == "cpu":
        rows, n = (1024, 4096) if q else (4096, 4096)

        def fwht_batch():
            x = np.random.default_rng(0).standard_normal((rows, n)).astype(np.float32)
            out = np.empty_like(x)
            return {
                "matkern": lambda: matkern.fwht(x, out=out),
                "numpy.fft.rfft": lambda: np.fft.rfft(x, axis=-1),
                "reference": lambda: matkern.reference.fwht(x),
            }

        yield Case(
            "hadamard",
            f"fwht {rows}x{n} f32",
            fwht_batch,
            bars={"numpy.fft.rfft": 2.0, "reference": 20.0},
        )

        def fwht_long():
            x = np.random.default_rng(1).standard_normal((1, 1 << 20)).astype(np.float32)
            out = np.empty_like(x)
            return {
                "matkern": lambda: matkern.fwht(x, out=out),
                "numpy.fft.rfft": lambda: np.fft.rfft(x, axis=-1),
            }

        yield Case("hadamard", "fwht 1x2^20 f32 (one row)", fwht_long)

        def fwht_f64():
            x = np.random.default_rng(2).standard_normal((rows // 4, 1 << 14))
            out = np.empty_like(x)
            return {
                "matkern": lambda: matkern.fwht(x, out=out),
                "numpy.fft.rfft": lambda: np.fft.rfft(x, axis=-1),
            }

        yield Case("hadamard", f"fwht {rows // 4}x2^14 f64", fwht_f64)

        npts, d, k = (2048, 16384, 256) if q else (8192, 16384, 256)

        def fjlt():
            from sklearn.random_projection import GaussianRandomProjection

            rng = np.random.default_rng(3)
            X = rng.standard_normal((npts, d), dtype=np.float32)
            t = matkern.FJLT(k, random_state=0).fit(X)
            g = GaussianRandomProjection(k, random_state=0).fit(X)
            return {
                "matkern": lambda: t.transform(X),
                "sklearn GaussianRandomProjection": lambda: g.transform(X),
                "_X": X,
                "_t": t,
                "_g": g,
            }

        def fjlt_info(fns):
            rng = np.random.default_rng(4)
            X = fns["_X"][:1000]
            a = _distortion(fns["_t"].transform(X), X, rng)
            b = _distortion(fns["_g"].transform(X), X, rng)
            return f"99% of distance ratios within 1+-{a:.3f} (FJLT) vs 1+-{b:.3f} (Gaussian)"

        yield Case(
            "hadamard",
            f"FJLT {npts}x{d} -> {k} f32",
            fjlt,
            bars={"sklearn GaussianRandomProjection": 3.0},
            info=fjlt_info,
        )
        yield from _mixed_cases(ctx, matkern, np)
        yield from _rotated_matmul_cases(ctx, matkern, np)
    else:
        yield from _mixed_cases(ctx, matkern, ctx.cupy)
        yield from _rotated_matmul_cases(ctx, matkern, ctx.cupy)
        cp = ctx.cupy
        for rows, n in [(4096, 4096), (64, 1 << 15), (16, 1 << 20)]:

            def fwht_gpu(rows=rows, n=n):
                x = cp.random.standard_normal((rows, n), dtype=cp.float32)
                out = cp.empty_like(x)
                return {
                    "matkern": lambda: matkern.fwht(x, out=out),
                    "cupy.fft.rfft": lambda: cp.fft.rfft(x, axis=-1),
                }

            yield Case("hadamard", f"fwht {rows}x{n} f32", fwht_gpu, device="cuda")

        def fjlt_gpu():
            X = cp.random.standard_normal((8192, 16384), dtype=cp.float32)
            t = matkern.FJLT(256, random_state=0).fit(X)
            G = cp.random.standard_normal((256, 16384), dtype=cp.float32) / 16.0
            return {
                "matkern": lambda: t.transform(X),
                "cupy dense Gaussian (cuBLAS)": lambda: X @ G.T,
            }

        yield Case("hadamard", "FJLT 8192x16384 -> 256 f32", fjlt_gpu, device="cuda")


def _mixed_cases(ctx, matkern, xp):
    """Issue #20: the m * 2^k transform (a HadamardRotation, normalized, random signs) against
    a dense rotation by BLAS (cuBLAS on the GPU: what projects without a kernel do; bar 5x),
    and against the power-of-two transform of the next size per element (``time_scale``
    rescales that anchor to this length; bar 0.5: within 2x, for m <= 28)."""
    device = "cpu" if xp is np else "cuda"
    rows_for = {384: 16384, 1536: 4096, 5120: 1024, 11008: 512}
    if ctx.quick:
        rows_for = {n: max(64, r // 4) for n, r in rows_for.items()}
    for n, rows in rows_for.items():
        pow2 = 1 << (n - 1).bit_length()
        m = matkern._hadamard_orders.split_order(n)[0]

        def make(n=n, rows=rows, pow2=pow2):
            rng = np.random.default_rng(n)
            X = xp.asarray(rng.standard_normal((rows, n), dtype=np.float32))
            # a dense n x n matrix: the product costs the same as with an orthogonal one
            Q = xp.asarray(rng.standard_normal((n, n), dtype=np.float32) / np.float32(n**0.5))
            rot = matkern.HadamardRotation(n, random_state=0)
            Xp = xp.asarray(rng.standard_normal((rows, pow2), dtype=np.float32))
            rot2 = matkern.HadamardRotation(pow2, random_state=0)
            return {
                "matkern": lambda: rot.apply(X),
                "dense rotation X @ Q (BLAS)": lambda: X @ Q,
                f"power-of-two rotation ({pow2}, per element)": lambda: rot2.apply(Xp),
            }

        key = f"power-of-two rotation ({pow2}, per element)"
        bars = {"dense rotation X @ Q (BLAS)": 5.0}
        if m <= 28:
            bars[key] = 0.5
        yield Case(
            "hadamard",
            f"HadamardRotation {rows}x{n} f32 (m={m})",
            make,
            bars=bars,
            device=device,
            time_scale={key: n / pow2},
        )


UNROTATED = "unrotated call"


def _rotated_matmul_cases(ctx, matkern, xp):
    """Issue #20: int8_matmul (threshold 0: a rotated call has no outliers left to decompose)
    and lut_matmul (nf4, groups of 128) with a rotated weight against the same call with an
    unrotated weight of the same shape, at M = 1, 16, 256 and the shapes (N, K) of LLaMA and
    MiniLM. The rotated call rotates X on the fly, fused with the activation pass
    (_rotate_quant): bar 1/1.15 (the rotated call at most 1.15x the unrotated one's time)."""
    device = "cpu" if xp is np else "cuda"
    dt = np.float32 if xp is np else np.float16
    for kind in ("int8", "lut"):
        for n, k in ((4096, 4096), (11008, 4096), (1536, 384)):
            for m in (1, 16, 256):

                def make(kind=kind, n=n, k=k, m=m):
                    rng = np.random.default_rng(n + k + m)
                    W = xp.asarray(rng.standard_normal((n, k), dtype=np.float32) * 0.05)
                    X = xp.asarray(rng.standard_normal((m, k), dtype=np.float32)).astype(dt)
                    rot = matkern.HadamardRotation(k, random_state=0)
                    if kind == "int8":
                        Wr, Wp = matkern.int8_quantize(W, rotation=rot), matkern.int8_quantize(W)
                        return {
                            "matkern": lambda: matkern.int8_matmul(X, Wr, threshold=0.0),
                            UNROTATED: lambda: matkern.int8_matmul(X, Wp, threshold=0.0),
                        }
                    Wr = matkern.lut_quantize(W, 4, 128, "nf4", rotation=rot)
                    Wp = matkern.lut_quantize(W, 4, 128, "nf4")
                    return {
                        "matkern": lambda: matkern.lut_matmul(X, Wr),
                        UNROTATED: lambda: matkern.lut_matmul(X, Wp),
                    }

                name = "int8_matmul" if kind == "int8" else "lut_matmul nf4"
                yield Case(
                    "hadamard",
                    f"rotated {name} M={m} N={n} K={k} {np.dtype(dt).name}",
                    make,
                    bars={UNROTATED: 1 / 1.15},
                    device=device,
                )
