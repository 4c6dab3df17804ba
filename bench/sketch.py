"""Benchmarks of the sketching family (issue #21): least squares preconditioned by a sketch
against numpy.linalg.lstsq (dense) and unpreconditioned scipy.sparse.linalg.lsqr (sparse),
and randomized_svd against scikit-learn's.

"Same accuracy": lstsq runs with its default tol (1e-8, float64) and each case's info gives
the relative residual difference to the anchor's answer (the issue's bar asks 1e-10); scipy's
lsqr gets atol = btol = the same tol and iter_lim 20000. randomized_svd runs with
scikit-learn's defaults on both sides (n_oversamples 10, n_iter "auto", LU normalization),
and the info gives both Frobenius errors ||A - U S Vt|| (equal accuracy: within 1%).
"""

import numpy as np

from bench._runner import Case

TOL = 1e-8


def _tall_dense(m, n, cond, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    if cond > 1:
        # singular values log-spaced from 1 to 1/cond: A = Q diag(s) V^T without an m x n Q
        # from a QR (too slow at this size): scale the columns of a random matrix, then mix
        # them by an orthogonal n x n V (condition number ~ cond, as the spectrum says)
        V = np.linalg.qr(rng.standard_normal((n, n)))[0]
        A = (A * np.logspace(0, -np.log10(cond), n)) @ V.T
    b = A @ rng.standard_normal(n) + rng.standard_normal(m)
    return A, b


def _keep_results(fns, anchor):
    """fns with "matkern" and ``anchor`` keeping their last result (in fns["_last"], under
    "_run" and "_ref"): info() reads the timed calls' answers instead of computing them
    again (scipy's lsqr takes seconds a call)."""
    last = {}
    for key, name in (("matkern", "_run"), (anchor, "_ref")):

        def keep(fn=fns[key], name=name):
            last[name] = fn()
            return last[name]

        fns[key] = keep
    fns["_last"] = last
    return fns


def _result(fns, name):
    """The last result of the callable fns[name] ("_run" or "_ref"), computed if none."""
    last = fns.get("_last", {})
    return last[name] if name in last else fns[name]()


def _lstsq_info(fns):
    A, b = fns["_A"], fns["_b"]
    x, info = _result(fns, "_run")
    x0 = _result(fns, "_ref")
    r, r0 = np.linalg.norm(A @ x - b), np.linalg.norm(A @ x0 - b)
    return (
        f"residual {r:.10g} vs anchor {r0:.10g} (rel. diff {(r - r0) / r0:+.1e}); "
        f"LSQR {info.iterations} steps, R from {_how(info)}, "
        f"cond est {info.condition_number:.2g}"
    )


def _how(info):
    if info.preconditioner == "gram":
        return "A^T A (Cholesky)"
    kind = {"sketch-gram": "Cholesky of its Gram", "sketch-qr": "QR", "sketch-svd": "SVD"}
    return f"{info.sketch} sketch x{info.sketch_size} ({kind.get(info.preconditioner, '?')})"


def _dense_lstsq_case(m, n, cond, label):
    import warnings

    import matkern

    def make():
        A, b = _tall_dense(m, n, cond, 0)

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return matkern.lstsq(A, b, random_state=0)

        def ref():
            return np.linalg.lstsq(A, b, rcond=None)[0]

        fns = {"matkern": run, "numpy.linalg.lstsq": ref, "_A": A, "_b": b}
        return _keep_results(fns | {"_run": run, "_ref": ref}, "numpy.linalg.lstsq")

    return Case(
        "sketch",
        f"lstsq dense {m}x{n} f64 {label}",
        make,
        bars={"numpy.linalg.lstsq": 3.0},
        info=_lstsq_info,
    )


def _sparse_lstsq_case(name, load, sample_steps=None):
    """``sample_steps`` (the full run's large generated matrix, where one scipy lsqr call
    takes ~20 s on 2 quiet cores and the runner makes at least five): scipy's lsqr runs to
    convergence once, untimed, for its answer and its step count N; the timed calls run
    ``sample_steps`` steps (atol = btol = 0: no early stop) and their time is scaled by
    (N + 1) / (sample_steps + 1): every LSQR step does the same work (one A x, one A^T y, a
    few vector updates) and the call's start (A^T b, norms) about one step's."""
    import matkern

    anchor = "scipy.sparse.linalg.lsqr"
    scale = {}
    if sample_steps:
        anchor += f" ({sample_steps} steps timed, scaled to its step count)"

    def make():
        import scipy.sparse.linalg as sla

        A = load()
        rng = np.random.default_rng(1)
        b = A @ rng.standard_normal(A.shape[1]) + rng.standard_normal(A.shape[0])
        SM = matkern.SparseMatrix(A)

        def run():
            return matkern.lstsq(SM, b, random_state=0)

        def ref():
            return sla.lsqr(A, b, atol=TOL, btol=TOL, iter_lim=20000)[0]

        fns = {"matkern": run, anchor: ref, "_A": A, "_b": b}
        fns = _keep_results(fns | {"_run": run, "_ref": ref}, anchor)
        if sample_steps:
            full = sla.lsqr(A, b, atol=TOL, btol=TOL, iter_lim=20000)
            scale[anchor] = (full[2] + 1) / (sample_steps + 1)
            fns["_last"]["_ref"] = full[0]
            fns[anchor] = lambda: sla.lsqr(A, b, atol=0.0, btol=0.0, iter_lim=sample_steps)[0]
        return fns

    return Case(
        "sketch",
        f"lstsq sparse {name}",
        make,
        bars={anchor: 3.0},
        info=_lstsq_info,
        time_scale=scale,
    )


def _movielens_tall():
    """MovieLens ratings as movies x users (9724 x 610): tall, 100k ratings; columns (users)
    scaled by their rating counts as they come (no normalization): cond in the thousands."""
    from tests import datasets

    return datasets.movielens_users().T.tocsr()


def _generated_tall(m, n, nnz):
    """Uniform random sparse m x n with the given nnz, columns scaled by 10^U(-1, 1) (features
    in different units, cond ~ 100): the conditioning that unpreconditioned LSQR pays for
    (10^U(-2, 2) took scipy's lsqr 3700 steps and 6 minutes at the quick size)."""
    import scipy.sparse as sp

    import matkern.generators as g

    A = g.uniform_random(m, n, density=nnz / (m * n), random_state=0)
    scale = 10 ** np.random.default_rng(2).uniform(-1, 1, n)
    return (A @ sp.diags(scale)).tocsr()


def _rsvd_info(fns):
    A, k = fns["_A"], fns["_k"]
    out = []
    for key in ("_run", "_ref"):
        U, s, Vt = _result(fns, key)
        # ||A - U S Vt||_F^2 = ||A||^2 - 2 tr(S U^T A V) + ||S||^2 (orthonormal U, V)
        AV = np.asarray(A @ Vt.T.astype(np.float64))
        cross = float(np.sum(s * np.einsum("ij,ij->j", U.astype(np.float64), AV)))
        out.append(np.sqrt(max(fns["_norm2"] - 2 * cross + float(np.sum(s.astype(float) ** 2)), 0)))
    return f"k={k}: Frobenius error {out[0]:.6g} (matkern) vs {out[1]:.6g} (sklearn)"


def _rsvd_case(name, load, k):
    import matkern

    def make():
        from sklearn.utils.extmath import randomized_svd as sk_rsvd

        A = load()
        Ain = matkern.SparseMatrix(A) if hasattr(A, "tocsr") else A
        norm2 = (
            float(A.multiply(A).sum())
            if hasattr(A, "tocsr")
            else float(np.sum(A.astype(float) ** 2))
        )

        def run():
            return matkern.randomized_svd(Ain, k, random_state=0)

        def ref():
            return sk_rsvd(A, k, random_state=0)

        fns = {
            "matkern": run,
            "sklearn randomized_svd": ref,
            "_A": A,
            "_k": k,
            "_norm2": norm2,
            "_run": run,
            "_ref": ref,
        }
        return _keep_results(fns, "sklearn randomized_svd")

    return Case(
        "sketch",
        f"randomized_svd {name} k={k}",
        make,
        bars={"sklearn randomized_svd": 1.5},
        info=_rsvd_info,
    )


def _dense_lowrank(m, n, seed=0):
    """float32 m x n: rank-200 signal with decaying weights plus noise."""
    rng = np.random.default_rng(seed)
    r = 200
    L = rng.standard_normal((m, r), dtype=np.float32) * (0.97 ** np.arange(r)).astype(np.float32)
    return L @ rng.standard_normal((r, n), dtype=np.float32) + 0.1 * rng.standard_normal(
        (m, n), dtype=np.float32
    )


def _cupy_gaussian_rsvd(cp, A, k, n_iter, p=10):
    """The anchor on the GPU: Halko-Martinsson-Tropp with a dense Gaussian test matrix and
    QR-normalized power steps in CuPy (what a CuPy user writes today)."""
    G = cp.random.standard_normal((A.shape[1], k + p), dtype=A.dtype)
    Q = A @ G
    for _ in range(n_iter):
        Q = cp.linalg.qr(Q)[0]
        Q = cp.linalg.qr(A.T @ Q)[0]
        Q = A @ Q
    Q = cp.linalg.qr(Q)[0]
    Uh, s, Vt = cp.linalg.svd(Q.T @ A, full_matrices=False)
    return (Q @ Uh)[:, :k], s[:k], Vt[:k]


def _gpu_cases(ctx):
    import warnings

    import matkern

    cp = ctx.cupy
    m, n = 100000, 400
    for cond, label in ((1, "well-conditioned"), (1e10, "cond 1e10")):

        def make(cond=cond):
            A, b = _tall_dense(m, n, cond, 0)
            Ad, bd = cp.asarray(A), cp.asarray(b)

            def run():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    return matkern.lstsq(Ad, bd, random_state=0)

            return {"matkern": run, "cupy.linalg.lstsq": lambda: cp.linalg.lstsq(Ad, bd)}

        yield Case("sketch", f"lstsq dense {m}x{n} f64 {label}", make, device="cuda")

    def rsvd():
        A = cp.asarray(_dense_lowrank(20000, 5000))
        return {
            "matkern": lambda: matkern.randomized_svd(A, 50, random_state=0),
            "cupy Gaussian randomized SVD": lambda: _cupy_gaussian_rsvd(cp, A, 50, 7),
        }

    yield Case("sketch", "randomized_svd dense 20000x5000 f32 k=50", rsvd, device="cuda")


def cases(ctx):
    q = ctx.quick
    if ctx.device != "cpu":
        yield from _gpu_cases(ctx)
        return
    m, n = (20000, 200) if q else (100000, 400)
    yield _dense_lstsq_case(m, n, 1, "well-conditioned")
    yield _dense_lstsq_case(m, n, 1e10, "cond 1e10")
    yield _sparse_lstsq_case("MovieLens movies x users 9724x610", _movielens_tall)
    gm, gn, gnnz = (200000, 200, 1_000_000) if q else (1_000_000, 500, 10_000_000)
    yield _sparse_lstsq_case(
        f"uniform {gm}x{gn} nnz {gnnz:.0e} (scaled columns)",
        lambda: _generated_tall(gm, gn, gnnz),
        sample_steps=None if q else 60,
    )
    dm, dn = (5000, 2000) if q else (20000, 5000)
    yield _rsvd_case(f"dense {dm}x{dn} f32", lambda: _dense_lowrank(dm, dn), 50)

    def blog():
        from tests import datasets

        return datasets.blogcatalog()

    def movielens():
        from tests import datasets

        return datasets.movielens_users()

    yield _rsvd_case("BlogCatalog 10312x10312 sparse", blog, 32)
    yield _rsvd_case("MovieLens 610x9724 sparse", movielens, 32)
