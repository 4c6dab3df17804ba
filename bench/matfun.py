"""Benchmarks of the matfun family (issue #22): Newton-Schulz orthogonalization against
LAPACK's SVD polar factor, the Newton-Schulz square root against scipy.linalg.sqrtm, Hutch++
nuclear norms against the exact singular values; on the GPU against cuSOLVER (CuPy) and a
plain CuPy Newton-Schulz loop.

Inputs and why.
- Orthogonalization: Gaussian matrices (Muon's gradients look like them: flat-ish spectra).
  256 x 128 x 128: square Gaussian matrices have some singular values near 0 (their
  smallest is ~1/(2 sqrt(n)) of the largest, less in the tail), the hard case for
  Newton-Schulz. 4096 x 1024: smallest/largest singular value ~1/3 (Marchenko-Pastur).
  The error is ||Q^T Q - I||_2 (max |s_i^2 - 1|), reported for every case; n_iter is the
  number of steps the schedule needs for the regime (checked in the info: "ok" / "MISSED").
- Square roots: 64 covariance matrices 256 x 256 of real MiniLM activations (random 256 of
  the features of each of the 12 layers' inputs, 512 tokens), regularized by 1e-2 of their
  mean eigenvalue (covariance pooling's epsilon): condition numbers ~3e3 (median) to ~1e4.
- Nuclear norm: a Gaussian (RBF) kernel matrix between 20000 random points of [0,1]^3 and
  5000 landmarks, bandwidth 0.4: a structured matrix whose spectrum decays fast (29 singular
  values hold 99% of the norm at 4000 x 1000), the regime where Hutch++ works. A flat
  spectrum (a Gaussian matrix) would leave Hutch++ the Hutchinson variance: no 1% there.
"""

import numpy as np

from bench._runner import Case


def _orth_err(Q):
    Q = np.asarray(Q, dtype=np.float64)
    if Q.shape[-2] < Q.shape[-1]:
        Q = np.swapaxes(Q, -1, -2)
    k = Q.shape[-1]
    return float(np.abs(np.swapaxes(Q, -1, -2) @ Q - np.eye(k)).max())


def _svd_polar(x):
    U, _, Vt = np.linalg.svd(x, full_matrices=False)
    return U @ Vt


def _orth_case(ctx, shape, n_iter, coefficients, target, bar, lower=1e-3, tol=None, scale_iter=4):
    """tol: per-matrix stopping at tol (n_iter the most steps), the regime's target."""
    import matkern

    name = "x".join(map(str, shape))
    steps = f"x{n_iter}" if tol is None else f"tol={tol:g} (<= {n_iter} steps)"
    label = f"orthogonalize {name} f32 {coefficients} {steps}" + (
        f" (err < {target:g})" if target else " (Muon)"
    )
    if scale_iter != 4:
        label += f" scale_iter={scale_iter}"
    if isinstance(lower, str):
        label += f" lower={lower}"
    kw = dict(lower=lower, tol=tol, scale_iter=scale_iter)

    def make():
        G = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        fns = {"matkern": lambda: matkern.orthogonalize(G, n_iter, coefficients, **kw)}
        if len(shape) == 3:
            fns["numpy svd loop (U @ Vt)"] = lambda: [_svd_polar(x) for x in G]
        else:
            fns["numpy.linalg.svd (U @ Vt)"] = lambda: _svd_polar(G)
        fns["_G"] = G
        return fns

    def info(fns):
        G = fns["_G"]
        e = _orth_err(matkern.orthogonalize(G, n_iter, coefficients, **kw))
        ef = _orth_err(matkern.orthogonalize(G, n_iter, coefficients, "frobenius", **kw))
        mark = "" if not target else (" ok" if e < target else " MISSED")
        return (
            f"||Q^T Q - I||_2 = {e:.1e}{mark} (scale='frobenius' at the same steps: {ef:.1e}); "
            f"coefficients={coefficients!r}, lower={lower if isinstance(lower, str) else f'{lower:g}'}"
        )

    anchor = "numpy svd loop (U @ Vt)" if len(shape) == 3 else "numpy.linalg.svd (U @ Vt)"
    return Case("matfun", label, make, bars={anchor: bar}, info=info)


def _covariances(count=64, n=256, seed=0):
    from tests import datasets

    rng = np.random.default_rng(seed)
    layers = datasets.minilm_layers()
    out = []
    for i in range(count):
        X = layers[i % len(layers)][1].astype(np.float64)
        cols = rng.choice(X.shape[1], n, replace=False)
        C = np.cov(X[:, cols], rowvar=False)
        C += 1e-2 * np.trace(C) / n * np.eye(n)
        out.append(C)
    return np.array(out)


def _rel_err(S, ex):
    d = (S.astype(np.float64) - ex).reshape(len(ex), -1)
    return float(
        (np.linalg.norm(d, axis=1) / np.linalg.norm(ex.reshape(len(ex), -1), axis=1)).max()
    )


def _sqrtm_case(ctx, method="newton-schulz"):
    import scipy.linalg

    import matkern
    from matkern.reference import matfun as ref

    count = 16 if ctx.quick else 64

    def make():
        A64 = _covariances(count)
        A = A64.astype(np.float32)
        return {
            "matkern": lambda: matkern.sqrtm_psd(A, method),
            "scipy.linalg.sqrtm loop": lambda: [scipy.linalg.sqrtm(a) for a in A],
            "numpy.linalg.eigh stack": lambda: np.linalg.eigh(A),
            "_A": A,
            "_A64": A64,
        }

    def info(fns):
        A, A64 = fns["_A"], fns["_A64"]
        ex = ref.sqrtm_psd_eigh(A64)
        w = np.linalg.eigvalsh(A64)
        cond = w[:, -1] / w[:, 0]
        e = _rel_err(matkern.sqrtm_psd(A, method), ex)
        es = _rel_err(np.array([np.real(scipy.linalg.sqrtm(a)) for a in A]), ex)
        from matkern import _matfun_iter

        if method == "polar":  # the public defaults of "polar": trace scale, lower="auto"
            _, its = _matfun_iter.sqrtm(A, "polar", None, "trace", False, "cpu", "polar", "auto")
            steps = f"{its} steps"
        else:
            _, its = _matfun_iter.sqrtm(A, method, None, "gram", False, "cpu")
            _, its_c = _matfun_iter.sqrtm(A, method, None, "gram", False, "cpu", "cubic")
            steps = f"{its} polar steps ({its_c} cubic)"
        mark = "ok" if e < 1e-5 else "MISSED"
        return (
            f"max rel. Frobenius error {e:.1e} ({mark} < 1e-5; scipy's {es:.1e}); {steps}; "
            f"condition median {np.median(cond):.1e}, max {cond.max():.1e}"
        )

    label = " method=polar (default)" if method == "polar" else f" method={method}"
    return Case(
        "matfun",
        f"sqrtm_psd {count}x256x256 f32 MiniLM covariances{label}",
        make,
        bars={"scipy.linalg.sqrtm loop": 10.0},
        info=info,
    )


def _rbf(m, n, h=0.4, seed=0):
    rng = np.random.default_rng(seed)
    X, Y = rng.random((m, 3)), rng.random((n, 3))
    D = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None] - 2 * X @ Y.T
    return np.exp(-np.maximum(D, 0) / (2 * h * h)).astype(np.float32)


def _nuclear_case(ctx):
    import matkern

    m, n = (3000, 750) if ctx.quick else (20000, 5000)

    def make():
        A = _rbf(m, n)
        return {
            "matkern": lambda: matkern.nuclear_norm(A, "hutchpp", n_probes=120, random_state=0),
            "numpy svd values (exact)": lambda: np.linalg.svd(A, compute_uv=False),
            "_A": A,
        }

    def info(fns):
        A = fns["_A"]
        ex = float(np.linalg.svd(A, compute_uv=False).astype(np.float64).sum())
        errs = [
            (matkern.nuclear_norm(A, "hutchpp", n_probes=120, random_state=s) - ex) / ex
            for s in range(3)
        ]
        l12 = (matkern.nuclear_norm(A, "l12") - ex) / ex
        mark = "ok" if max(map(abs, errs)) < 0.01 else "MISSED"
        return (
            f"RBF kernel {m}x{n} (3-D points, bandwidth 0.4); Hutch++ (120 probes) rel. error "
            + ", ".join(f"{e:+.1e}" for e in errs)
            + f" over 3 seeds ({mark} < 1%); L_(1,2): {l12:+.2f}"
        )

    return Case(
        "matfun",
        f"nuclear_norm hutchpp {m}x{n} f32 RBF kernel",
        make,
        bars={"numpy svd values (exact)": 5.0},
        info=info,
    )


def _gpu_cases(ctx):
    import matkern

    cp = ctx.cupy

    def plain_ns(G, n_iter):  # a plain CuPy cubic Newton-Schulz loop, Frobenius-scaled
        X = G / cp.linalg.norm(G.reshape(G.shape[0], -1), axis=1)[:, None, None]
        for _ in range(n_iter):
            X = 1.5 * X - 0.5 * (X @ cp.swapaxes(X, 1, 2)) @ X
        return X

    def stack():
        G = cp.asarray(np.random.default_rng(0).standard_normal((256, 128, 128)), cp.float32)
        return {
            "matkern": lambda: matkern.orthogonalize(G, 11, "polar"),
            "cupy svd batched (U @ Vt)": lambda: (lambda u, s, v: u @ v)(*cp.linalg.svd(G)),
            "plain CuPy Newton-Schulz x11": lambda: plain_ns(G, 11),
        }

    yield Case(
        "matfun",
        "orthogonalize 256x128x128 f32 polar x11 (GPU)",
        stack,
        bars={"cupy svd batched (U @ Vt)": 5.0},
        device="cuda",
    )

    def big():
        G = cp.asarray(np.random.default_rng(0).standard_normal((4096, 1024)), cp.float32)
        return {
            "matkern": lambda: matkern.orthogonalize(G, 8, "polar"),
            "cupy.linalg.svd (U @ Vt)": lambda: (lambda u, s, v: u @ v)(
                *cp.linalg.svd(G, full_matrices=False)
            ),
            "plain CuPy Newton-Schulz x8": lambda: plain_ns(G[None], 8),
        }

    yield Case(
        "matfun",
        "orthogonalize 4096x1024 f32 polar x8 (GPU)",
        big,
        bars={"cupy.linalg.svd (U @ Vt)": 3.0},
        device="cuda",
    )

    def sq():
        A = cp.asarray(_covariances(64), cp.float32)

        def eigh_sqrt():
            w, V = cp.linalg.eigh(A)
            return (V * cp.sqrt(cp.maximum(w, 0))[:, None, :]) @ cp.swapaxes(V, 1, 2)

        return {"matkern": lambda: matkern.sqrtm_psd(A), "cupy eigh sqrt": eigh_sqrt}

    yield Case("matfun", "sqrtm_psd 64x256x256 f32 (GPU)", sq, device="cuda")


def cases(ctx):
    if ctx.device == "cuda":
        yield from _gpu_cases(ctx)
        return
    # --quick: a quarter of the stack, a quarter of the big matrix (the SVD anchors of the
    # full sizes take minutes a call on a busy 2-core machine)
    stack = (64, 128, 128) if ctx.quick else (256, 128, 128)
    big = (2048, 512) if ctx.quick else (4096, 1024)
    yield _orth_case(ctx, stack, 5, "muon", None, 5.0)
    yield _orth_case(ctx, stack, 11, "polar", 1e-2, 5.0)
    # the strict regime on the stack too (12 steps: 4.5e-7 on these Gaussian matrices)
    yield _orth_case(ctx, stack, 12, "polar", 1e-5, 5.0)
    # per-matrix stopping: most of these matrices need 7 steps, the worst 11-12; a looser
    # bound (scale_iter=1: (sum s^4)^(1/4)) costs these stacks no extra steps under the polar
    # schedule, and each Gram product of the bound costs about one Newton-Schulz product
    for si in (4, 1):
        yield _orth_case(ctx, stack, 15, "polar", 1e-2, 5.0, tol=1e-2, scale_iter=si)
        yield _orth_case(ctx, stack, 15, "polar", 1e-5, 5.0, tol=1e-5, scale_iter=si)
    yield _orth_case(ctx, big, 6, "polar", 1e-2, 3.0)
    yield _orth_case(ctx, big, 8, "polar", 1e-5, 3.0)
    yield _orth_case(ctx, big, 4, "polar", 1e-5, 3.0, lower=0.25)
    # lower="auto": the schedule from each matrix's estimated smallest singular value (a
    # Cholesky of the first Gram product), so no prior knowledge of the conditioning
    yield _orth_case(ctx, big, 15, "polar", 1e-2, 3.0, lower="auto", tol=1e-2)
    yield _orth_case(ctx, big, 15, "polar", 1e-5, 3.0, lower="auto", tol=1e-5)
    yield _sqrtm_case(ctx)
    yield _sqrtm_case(ctx, "polar")
    yield _nuclear_case(ctx)
