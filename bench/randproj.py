"""Benchmarks of the randproj family: SparseRandomProjection against scikit-learn's, FastRP
against a plain scipy + scikit-learn implementation of the same algorithm, a 1M-node
power-law graph (time and peak memory), and GPU cases against CuPy with the explicit matrix."""

import numpy as np

from bench._runner import Case


def _plain_fastrp(A, dim, weights, beta, seed):
    """FastRP as GTmac/FastRP writes it: scipy products, sklearn's SparseRandomProjection and
    normalize (float64)."""
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize
    from sklearn.random_projection import SparseRandomProjection

    n = A.shape[0]
    deg = np.asarray(A.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros(n), where=deg > 0)
    S = sp.diags(inv) @ A
    t = SparseRandomProjection(dim, density=1 / np.sqrt(n), random_state=seed).fit(S)
    col = np.power(deg, beta, out=np.zeros(n), where=deg > 0)
    R = (t.components_ @ sp.diags(col)).T
    U = (S @ R).toarray()
    emb = np.zeros_like(U)
    for i, w in enumerate(weights):
        if i:
            U = S @ U
        emb += w * normalize(U, norm="l2", axis=1)
    return emb


def random_csr(n, d, density, seed):
    """n x d float32 CSR with round(d * density) uniformly placed entries per row (duplicates
    summed), built row-wise (scipy.sparse.random enumerates n * d positions)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    per = max(1, round(d * density))
    cols = rng.integers(0, d, (n, per))
    rows = np.repeat(np.arange(n), per)
    X = sp.csr_matrix(
        (rng.standard_normal(n * per).astype(np.float32), (rows, cols.ravel())), shape=(n, d)
    )
    X.sum_duplicates()
    return X


def power_law_graph(n, m, seed=0):
    """A symmetric graph with about m directed edges and Zipf-like degrees (Chung-Lu style)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, n + 1) ** 0.7
    w /= w.sum()
    half = m // 2
    src = rng.choice(n, half, p=w)
    dst = rng.integers(0, n, half)
    A = sp.coo_matrix((np.ones(half, np.float32), (src, dst)), shape=(n, n))
    A = (A + A.T).tocsr()
    A.sum_duplicates()
    return A


def cases(ctx):
    import matkern

    q = ctx.quick
    if ctx.device == "cpu":
        n, d = (5000, 10000) if q else (20000, 10000)

        def dense():
            from sklearn.random_projection import SparseRandomProjection

            X = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
            p = matkern.SparseRandomProjection(256, random_state=0).fit(X)
            s = SparseRandomProjection(256, random_state=0).fit(X)
            return {
                "matkern": lambda: p.transform(X),
                "sklearn SparseRandomProjection": lambda: s.transform(X),
            }

        yield Case(
            "randproj",
            f"dense {n}x{d} f32 -> 256",
            dense,
            bars={"sklearn SparseRandomProjection": 3.0},
        )

        ns, ds = (50000, 100000) if q else (200000, 100000)

        def sparse():
            from sklearn.random_projection import SparseRandomProjection

            X = random_csr(ns, ds, 0.001, 1)
            p = matkern.SparseRandomProjection(256, random_state=0).fit(X)
            s = SparseRandomProjection(256, random_state=0).fit(X)
            return {
                "matkern": lambda: p.transform(X),
                "sklearn SparseRandomProjection": lambda: s.transform(X),
            }

        yield Case(
            "randproj",
            f"sparse CSR {ns}x{ds} 0.1% f32 -> 256",
            sparse,
            bars={"sklearn SparseRandomProjection": 2.0},
        )

        blog = dict(
            dim=512,
            iteration_weights=(0.0, 0.0, 1.0, 6.67),
            normalization_strength=-0.64,
            random_state=0,
        )

        def fastrp_blog():
            import pathlib

            import scipy.io

            path = pathlib.Path(__file__).resolve().parent.parent / "data/graphs/blogcatalog.mat"
            A = scipy.io.loadmat(path)["network"].tocsr()
            return {
                "matkern": lambda: matkern.fastrp(A, **blog),
                "scipy+sklearn FastRP": lambda: _plain_fastrp(
                    A, 512, blog["iteration_weights"], -0.64, 0
                ),
            }

        yield Case(
            "randproj",
            "FastRP BlogCatalog dim 512, 4 iterations",
            fastrp_blog,
            bars={"scipy+sklearn FastRP": 3.0},
            info=lambda r: "bar also: matkern <= 1 s wall",
        )

        nn, mm = (200_000, 2_000_000) if q else (1_000_000, 10_000_000)

        def fastrp_big():
            A = power_law_graph(nn, mm)
            # the long run of the family: a bar over its iterations (below the runner's bar,
            # cleared after each call)
            return {
                "matkern": lambda: matkern.fastrp(
                    A, dim=128, iteration_weights=(0, 1, 1), random_state=0, progress=True
                ),
                "_A": A,
            }

        def big_info(r):
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return (
                f"power-law graph {nn} nodes, {r['_A'].nnz} stored edges, dim 128, 3 "
                f"iterations; process peak RSS {peak:.0f} MiB"
            )

        yield Case("randproj", f"FastRP power-law {nn} nodes dim 128", fastrp_big, info=big_info)
    else:
        cp = ctx.cupy

        def dense_gpu():
            import cupyx.scipy.sparse as csp

            X = cp.random.standard_normal((20000, 10000), dtype=cp.float32)
            p = matkern.SparseRandomProjection(256, random_state=0).fit(X)
            M = cp.asarray(p.components_.toarray().astype(np.float32))
            Ms = csp.csr_matrix(M.T)
            return {
                "matkern": lambda: p.transform(X),
                "cupy dense matmul": lambda: X @ M.T,
                "cupyx sparse": lambda: (Ms.T @ X.T).T,
            }

        yield Case("randproj", "dense 20000x10000 f32 -> 256", dense_gpu, device="cuda")

        def sparse_gpu():
            import cupyx.scipy.sparse as csp

            Xh = random_csr(200000, 100000, 0.001, 1)
            X = csp.csr_matrix(Xh)
            p = matkern.SparseRandomProjection(256, random_state=0).fit(Xh)
            Mt = csp.csr_matrix(p.components_.T.astype(np.float32))
            return {
                "matkern": lambda: p.transform(X),
                "cupyx sparse @ explicit": lambda: (X @ Mt).toarray(),
            }

        yield Case("randproj", "sparse CSR 200000x100000 0.1% -> 256", sparse_gpu, device="cuda")

        def fastrp_gpu():
            import pathlib

            import cupyx.scipy.sparse as csp
            import scipy.io

            path = pathlib.Path(__file__).resolve().parent.parent / "data/graphs/blogcatalog.mat"
            Ah = scipy.io.loadmat(path)["network"].tocsr().astype(np.float32)
            A = csp.csr_matrix(Ah)
            n = Ah.shape[0]
            deg = cp.asarray(np.asarray(Ah.sum(1)).ravel())
            S = csp.diags(1 / deg) @ A
            p = matkern.SparseRandomProjection(512, density=1 / np.sqrt(n), random_state=0).fit(Ah)
            R = cp.asarray(p.components_.T.toarray().astype(np.float32)) * (deg**-0.64)[:, None]

            def cupy_fastrp():
                U = S @ R
                emb = cp.zeros_like(U)
                for i, w in enumerate((0.0, 0.0, 1.0, 6.67)):
                    if i:
                        U = S @ U
                    emb += w * U / cp.linalg.norm(U, axis=1, keepdims=True)
                return emb

            return {
                "matkern": lambda: matkern.fastrp(
                    A,
                    dim=512,
                    iteration_weights=(0, 0, 1, 6.67),
                    normalization_strength=-0.64,
                    random_state=0,
                ),
                "cupy FastRP (explicit R)": cupy_fastrp,
            }

        yield Case("randproj", "FastRP BlogCatalog dim 512", fastrp_gpu, device="cuda")
