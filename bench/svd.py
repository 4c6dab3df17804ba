"""Benchmarks of the truncated-SVD updater: start from the first 50% of the rows, add the rest
in batches; total update time against recomputing a rank-k SVD (scipy / cupyx ``svds``) after
every batch, and the "sparse" method against "zha-simon" on the same batches.

Recomputing after each of 10 or 100 batches of BlogCatalog takes minutes, so the recompute
anchor times ``SAMPLE`` of the recomputations (at batches spread evenly over the sequence, so
their mean cost is the sequence's mean cost) and its time is multiplied by n_batches / SAMPLE
(``Case.time_scale``): the ratio printed is the whole sequence's, extrapolated, and the
anchor's name says so. ``--quick`` times zha-simon on MovieLens only (a BlogCatalog sequence
takes it 5-11 s here).
"""

import numpy as np

from bench._runner import Case

SAMPLE = 2
_EXACT = {}  # (matrix, k): (the exact top-k singular values, one svds call's seconds)


def _errors(A, U, s, Vt, ex, opt, norm2):
    """(max relative error of the singular values, residual / optimal residual - 1)."""
    AV = np.asarray(A @ Vt.T)
    cross = np.sum(s * np.einsum("ij,ij->j", U, AV))
    res = np.sqrt(max(norm2 - 2 * cross + np.sum((U.T @ U) * np.outer(s, s) * (Vt @ Vt.T)), 0))
    return float(np.max(np.abs(s - ex) / ex)), float(res / opt - 1)


def _batches(A, nb):
    m = A.shape[0]
    h = m // 2
    bounds = np.linspace(h, m, nb + 1).astype(int)
    return h, [A[bounds[i] : bounds[i + 1]] for i in range(nb)], bounds


def _run(base, method, batches):
    t = base.copy()
    t.method = method
    for E in batches:
        t.add_rows(E)
    return t


def _update_case(name, load, k, nb, methods_info, ctx, zha_simon=True):

    def make():
        import scipy.sparse.linalg as sla

        A, base = _start(name, load, k)
        h, batches, bounds = _batches(A, nb)
        picks = np.unique(np.linspace(0, nb - 1, SAMPLE + 2).astype(int)[1:-1])

        def recompute():
            for i in picks:
                sla.svds(A[: bounds[i + 1]], k=k)

        last = {}  # each method's last timed result: info() measures its accuracy

        def timed(method):
            def run():
                last[method] = _run(base, method, batches)

            return run

        fns = {"matkern": timed("sparse")}
        if zha_simon:
            fns["matkern zha-simon"] = timed("zha-simon")
        fns |= {
            _recompute_key(nb): recompute,
            "_A": A,
            "_base": base,
            "_batches": batches,
            "_picks": picks,
            "_last": last,
        }
        return fns

    def info(fns):
        import time

        import scipy.sparse.linalg as sla

        A = fns["_A"]
        key = (name.split(" k=")[0], k)  # the cases of one matrix and k share the exact SVD
        if key not in _EXACT:
            t0 = time.perf_counter()
            _EXACT[key] = np.sort(sla.svds(A, k=k)[1])[::-1], time.perf_counter() - t0
        ex, one = _EXACT[key]
        norm2 = float(sla.norm(A) ** 2)
        opt = np.sqrt(norm2 - np.sum(ex**2))
        parts = []
        for method in methods_info:
            last = fns["_last"]
            t = last[method] if method in last else _run(fns["_base"], method, fns["_batches"])
            U, s, Vt = t.U_, t.singular_values_, t.components_
            sv, rs = _errors(A, U, s, Vt, ex, opt, norm2)
            orth = max(np.abs(U.T @ U - np.eye(k)).max(), np.abs(Vt @ Vt.T - np.eye(k)).max())
            parts.append(
                f"{method}: sv rel err {sv:.2e}, residual +{100 * rs:.2f}% vs recompute, "
                f"orthonormal to {orth:.0e}"
            )
        n_picks = len(fns["_picks"])
        return (
            f"k={k}, {A.shape[0]}x{A.shape[1]}, first {A.shape[0] // 2} rows then {nb} "
            f"batches; recompute anchor times {n_picks} svds calls and is scaled by "
            f"{nb}/{n_picks} to the whole sequence (one svds of the full matrix: {one:.2f} s); "
            + "; ".join(parts)
        )

    bars = {"matkern zha-simon": 2.0} if zha_simon else {}
    bars[_recompute_key(nb)] = 10.0
    scale = {_recompute_key(nb): nb / _n_picks(nb)}
    return Case("svd", name, make, bars=bars, info=info, time_scale=scale)


_START = {}  # matrix: (A, the rank-k SVD of its first half), shared by its cases


def _start(name, load, k):
    """(A, TruncatedSVD fitted to A's first half): the cases of one matrix and k start from
    the same fit (deterministic: random_state=0), made once."""
    import matkern

    key = (name.split(" k=")[0], k)
    if key not in _START:
        _START.clear()
        A = load()
        h = A.shape[0] // 2
        base = matkern.TruncatedSVD(k, method="sparse", init="lanczos", random_state=0).fit(A[:h])
        _START[key] = A, base
    return _START[key]


def _n_picks(nb):
    return len(np.unique(np.linspace(0, nb - 1, SAMPLE + 2).astype(int)[1:-1]))


def _recompute_key(nb, lib="scipy"):
    return f"{lib} svds after every batch (extrapolated from {_n_picks(nb)} of {nb})"


def cases(ctx):
    from tests import datasets

    if ctx.device == "cpu":
        # --quick: zha-simon (11 s and 5.5 s a sequence on BlogCatalog here) timed and checked
        # on MovieLens only
        yield _update_case(
            "BlogCatalog k=64, 50% + 10 batches",
            datasets.blogcatalog,
            64,
            10,
            ["sparse"] if ctx.quick else ["sparse", "zha-simon", "gkl", "rpi"],
            ctx,
            zha_simon=not ctx.quick,
        )
        yield _update_case(
            "BlogCatalog k=64, 50% + 100 batches",
            datasets.blogcatalog,
            64,
            100,
            ["sparse"] if ctx.quick else ["sparse", "zha-simon"],
            ctx,
            zha_simon=not ctx.quick,
        )
        yield _update_case(
            "MovieLens users k=16, 50% + 10 batches",
            datasets.movielens_users,
            16,
            10,
            ["sparse", "zha-simon", "gkl", "rpi"],
            ctx,
        )
    else:
        yield from _gpu_cases(ctx)


def _gpu_cases(ctx):
    import matkern
    from tests import datasets

    cp = ctx.cupy

    for nb in (10, 100):

        def make(nb=nb):
            import cupyx.scipy.sparse as csp
            from cupyx.scipy.sparse.linalg import svds

            A = csp.csr_matrix(datasets.blogcatalog())
            h, batches, bounds = _batches(A, nb)
            base = matkern.TruncatedSVD(64, method="sparse", init="lanczos").fit(A[:h])
            picks = np.unique(np.linspace(0, nb - 1, SAMPLE + 2).astype(int)[1:-1])

            def recompute():
                for i in picks:
                    svds(A[: int(bounds[i + 1])], k=64)
                cp.cuda.get_current_stream().synchronize()

            return {
                "matkern": lambda: _run(base, "sparse", batches),
                "matkern zha-simon": lambda: _run(base, "zha-simon", batches),
                _recompute_key(nb, "cupyx"): recompute,
            }

        yield Case(
            "svd",
            f"BlogCatalog k=64, 50% + {nb} batches (GPU)",
            make,
            device="cuda",
            bars={"matkern zha-simon": 2.0, _recompute_key(nb, "cupyx"): 10.0},
            time_scale={_recompute_key(nb, "cupyx"): nb / _n_picks(nb)},
        )
