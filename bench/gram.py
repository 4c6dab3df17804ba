"""Benchmarks of the gram family: certified spectral-norm bounds (Gram iteration) against the
exact SVD (numpy/LAPACK, the per-frequency SVD of Sedghi et al. for convolutions, CuPy on the
GPU) and against Lanczos (scipy svds k=1) and 100 power iterations, which are estimates from
below, not bounds: their gap is reported beside the times."""

import numpy as np

from bench._runner import Case


def _power(W, iters=100, seed=0):
    v = np.random.default_rng(seed).standard_normal(W.shape[1]).astype(W.dtype)
    for _ in range(iters):
        v = W.T @ (W @ v)
        v /= np.linalg.norm(v)
    return float(np.linalg.norm(W @ v))


def _conv_exact(K, size):
    F = np.fft.rfft2(K, s=size, axes=(-2, -1)).transpose(2, 3, 0, 1)
    return float(np.linalg.svd(F, compute_uv=False).max())


def cases(ctx):
    import matkern

    q = ctx.quick
    if ctx.device == "cpu":
        n = 1024 if q else 2048

        def dense():
            from scipy.sparse.linalg import svds

            W = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
            return {
                "matkern": lambda: matkern.spectral_norm_bound(W, n_iter=6),
                "numpy.linalg.norm(W, 2)": lambda: np.linalg.norm(W, 2),
                "scipy svds k=1 (Lanczos, from below)": lambda: svds(
                    W, k=1, return_singular_vectors=False
                ),
                "power iteration x100 (from below)": lambda: _power(W),
                "_W": W,
            }

        def dense_info(fns):
            from scipy.sparse.linalg import svds

            W = fns["_W"]
            ex = matkern.reference.spectral_norm(W)
            b = matkern.spectral_norm_bound(W)
            lz = float(svds(W, k=1, return_singular_vectors=False)[0])
            pw = _power(W)
            return (
                f"exact {ex:.5f}; bound +{(b - ex) / ex:.2e} (certified); Lanczos "
                f"{(lz - ex) / ex:+.1e}, power x100 {(pw - ex) / ex:+.1e} (estimates from below)"
            )

        yield Case(
            "gram",
            f"dense {n}x{n} f32 bound, n_iter=6",
            dense,
            bars={"numpy.linalg.norm(W, 2)": 5.0},
            info=dense_info,
        )

        def gap_vs_iter():
            W = np.random.default_rng(1).standard_normal((512, 384))
            return {"matkern": lambda: matkern.spectral_norm_bound(W, n_iter=6), "_W": W}

        def gap_info(fns):
            W = fns["_W"]
            ex = matkern.reference.spectral_norm(W)
            gaps = [(matkern.spectral_norm_bound(W, n_iter=t) - ex) / ex for t in range(1, 10)]
            return "relative gap vs n_iter 1..9: " + ", ".join(f"{g:.1e}" for g in gaps)

        yield Case("gram", "dense 512x384 f64 gap vs n_iter (info)", gap_vs_iter, info=gap_info)

        for ks in (3, 5):

            def conv(ks=ks):
                K = np.random.default_rng(ks).standard_normal((64, 64, ks, ks)).astype(np.float32)
                return {
                    "matkern": lambda: matkern.conv_spectral_norm_bound(K, (32, 32)),
                    "exact per-frequency SVD (Sedghi)": lambda: _conv_exact(K, (32, 32)),
                    "_K": K,
                }

            def conv_info(fns):
                K = fns["_K"]
                ex = matkern.reference.conv_spectral_norm(K, (32, 32))
                b = matkern.conv_spectral_norm_bound(K, (32, 32))
                return f"exact {ex:.4f}; bound +{(b - ex) / ex:.2e}"

            yield Case(
                "gram",
                f"conv 64x64x{ks}x{ks} on 32x32 f32",
                conv,
                bars={"exact per-frequency SVD (Sedghi)": 10.0} if ks == 3 else {},
                info=conv_info,
            )

        def stack():
            rng = np.random.default_rng(2)
            layers, sizes = [], []
            for i in range(50):
                kind = i % 5
                if kind == 0:
                    layers.append(rng.standard_normal((64, 32, 3, 3)).astype(np.float32))
                    sizes.append((16, 16))
                elif kind == 1:
                    layers.append(rng.standard_normal((256, 128)).astype(np.float32))
                    sizes.append(None)
                elif kind == 2:
                    layers.append(rng.standard_normal((64, 512)).astype(np.float32))
                    sizes.append(None)
                elif kind == 3:
                    layers.append(rng.standard_normal((32, 32, 5, 5)).astype(np.float32))
                    sizes.append((16, 16))
                else:
                    layers.append(rng.standard_normal((10, 128)).astype(np.float32))
                    sizes.append(None)

            def exact_loop():
                return [
                    _conv_exact(L, s) if L.ndim == 4 else np.linalg.norm(L, 2)
                    for L, s in zip(layers, sizes)
                ]

            return {
                "matkern": lambda: matkern.spectral_norm_bounds(layers, sizes),
                "exact SVD per layer (loop)": exact_loop,
                "_layers": (layers, sizes),
            }

        def stack_info(fns):
            layers, sizes = fns["_layers"]
            b = matkern.spectral_norm_bounds(layers, sizes)
            ex = np.array(
                [
                    matkern.reference.conv_spectral_norm(L, s)
                    if L.ndim == 4
                    else matkern.reference.spectral_norm(L)
                    for L, s in zip(layers, sizes)
                ]
            )
            g = (b - ex) / ex
            return (
                f"50 layers, one call; all certified: {bool((g >= 0).all())}; max gap {g.max():.1e}"
            )

        yield Case("gram", "50 mixed layers in one call", stack, info=stack_info)
    else:
        cp = ctx.cupy
        for n in (2048, 4096):

            def dense_gpu(n=n):
                W = cp.random.standard_normal((n, n), dtype=cp.float32)
                return {
                    "matkern": lambda: matkern.spectral_norm_bound(W),
                    "cupy.linalg.svd (values)": lambda: cp.linalg.svd(W, compute_uv=False)[0],
                }

            yield Case("gram", f"dense {n}x{n} f32 bound (GPU)", dense_gpu, device="cuda")

        def conv_gpu():
            K = cp.random.standard_normal((64, 64, 3, 3), dtype=cp.float32)
            F = cp.fft.rfft2(K, s=(32, 32), axes=(-2, -1)).transpose(2, 3, 0, 1)
            return {
                "matkern": lambda: matkern.conv_spectral_norm_bound(K, (32, 32)),
                "cupy batched SVD per frequency": lambda: cp.linalg.svd(F, compute_uv=False).max(),
            }

        yield Case(
            "gram",
            "conv 64x64x3x3 on 32x32 f32 (GPU)",
            conv_gpu,
            device="cuda",
            bars={"cupy batched SVD per frequency": 10.0},
        )
