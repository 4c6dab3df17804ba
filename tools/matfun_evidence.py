"""Evidence for issue #22 (matrix functions and norms), printed as Markdown tables:

1. Orthogonality error ||Q^T Q - I||_2 and distance ||Q - UV^T||_2 to the SVD polar factor
   after n Newton-Schulz steps, scale="gram" against scale="frobenius", for the cubic and
   polar schedules, on a Gaussian 512 x 256 matrix, the MiniLM weights (384 x 384,
   1536 x 384) and the digits CNN kernels reshaped (c_out x c_in kh kw): the steps each
   scaling needs to reach 1e-2 and 1e-5.
2. sqrtm_psd relative Frobenius error against scipy.linalg.sqrtm (float64) across condition
   numbers, for each method (the Cholesky + Newton "polar" route, coupled Newton-Schulz
   polar/cubic, Pade, Taylor at several degrees),
   with the time of each on a 32 x 256 x 256 stack: the seed paper's claim that Pade/Taylor
   beat Newton-Schulz at equal accuracy, checked here.
3. Nuclear norm: the L_{1,2} approximation's error and Hutch++'s error against the exact
   value as a function of the probes, on BlogCatalog's adjacency (10312 x 10312 sparse, as
   dense float32), MiniLM activations (512 x 1536) and a structured RBF kernel matrix.

Run on a quiet machine: ``PYTHONPATH=python python tools/matfun_evidence.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, ROOT)

import matkern  # noqa: E402
from matkern.reference import matfun as ref  # noqa: E402
from tests import datasets  # noqa: E402


def orth_err(Q):
    Q = np.asarray(Q, dtype=np.float64)
    if Q.shape[-2] < Q.shape[-1]:
        Q = Q.T
    return float(np.abs(Q.T @ Q - np.eye(Q.shape[1])).max())


def real_matrices():
    layers = datasets.minilm_layers()
    out = [("Gaussian 512x256", np.random.default_rng(0).standard_normal((512, 256)))]
    out += [(f"MiniLM {name} W", W) for name, _, W in layers[:4]]
    d = np.load(os.path.join(datasets.data_dir(), "conv", "digits_cnn.npz"))
    for key in ("conv1.weight", "conv3.weight"):
        K = d[key]
        out.append((f"CNN {key} reshaped", K.reshape(K.shape[0], -1)))
    return [(n, np.ascontiguousarray(W, dtype=np.float32)) for n, W in out]


def steps_to(G, target, coefficients, scale, max_steps=40):
    for n in range(0, max_steps + 1):
        if orth_err(matkern.orthogonalize(G, n, coefficients, scale)) < target:
            return n
    return None


def section_orthogonalize(quick):
    print("## 1. Newton-Schulz orthogonalization: certified Gram scaling vs Frobenius\n")
    print("Steps to reach ||Q^T Q - I||_2 < target (float32; '-' = not within 40 steps).\n")
    print("| matrix | schedule | 1e-2 gram | 1e-2 frobenius | 1e-5 gram | 1e-5 frobenius |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    mats = real_matrices()[: 3 if quick else None]
    for name, G in mats:
        for coef in ("cubic", "polar"):
            cells = []
            for target in (1e-2, 1e-5):
                for scale in ("gram", "frobenius"):
                    s = steps_to(G, target, coef, scale)
                    cells.append("-" if s is None else str(s))
            label = name if "x" in name.split()[-1] else f"{name} {G.shape[0]}x{G.shape[1]}"
            print(f"| {label} | {coef} | " + " | ".join(cells) + " |")
    print("\nError after n cubic steps (Gaussian 512x256 and the first MiniLM weight):\n")
    print(
        "| matrix | n | orth. err gram | orth. err frobenius | dist. to UV^T gram | dist. frob. |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, G in mats[:2]:
        P = ref.polar_factor(G)
        for n in (2, 4, 6, 8, 10, 12, 16):
            row = []
            Qg = matkern.orthogonalize(G, n, "cubic", "gram")
            Qf = matkern.orthogonalize(G, n, "cubic", "frobenius")
            row += [orth_err(Qg), orth_err(Qf)]
            row += [np.linalg.norm(Qg - P, 2), np.linalg.norm(Qf - P, 2)]
            print(f"| {name} | {n} | " + " | ".join(f"{v:.1e}" for v in row) + " |")
    print()


def spd(rng, batch, n, cond):
    Qs = np.linalg.qr(rng.standard_normal((batch, n, n)))[0]
    w = np.geomspace(1.0, 1.0 / cond, n)
    return (Qs * w[None, None, :]) @ np.swapaxes(Qs, 1, 2)


def section_sqrtm(quick):
    import scipy.linalg

    print("## 2. sqrtm_psd: error against scipy.linalg.sqrtm across condition numbers\n")
    batch = 8 if quick else 32
    print(f"float32 input, {batch} x 256 x 256, eigenvalues log-spaced; max relative Frobenius")
    print("error against scipy.linalg.sqrtm in float64; time of the stack (this machine).\n")
    methods = [
        ("polar: Cholesky + Newton + Newton-Schulz (adaptive)", dict(method="polar")),
        ("newton-schulz polar (adaptive)", dict(method="newton-schulz")),
        ("newton-schulz cubic (adaptive)", dict(method="newton-schulz", coefficients="cubic")),
        ("pade 4", dict(method="pade", n_iter=4)),
        ("pade 8", dict(method="pade", n_iter=8)),
        ("pade 16", dict(method="pade", n_iter=16)),
        ("taylor 10", dict(method="taylor", n_iter=10)),
        ("taylor 40", dict(method="taylor", n_iter=40)),
    ]
    conds = (1e1, 1e2, 1e3, 1e4, 1e5)
    print("| method | " + " | ".join(f"cond {c:.0e}" for c in conds) + " | time (cond 1e3) |")
    print("| --- | " + " | ".join("---:" for _ in conds) + " | ---: |")
    rng = np.random.default_rng(0)
    mats = {c: spd(rng, batch, 256, c) for c in conds}
    exact = {c: np.array([np.real(scipy.linalg.sqrtm(a)) for a in mats[c]]) for c in conds}
    for label, kw in methods:
        cells = []
        for c in conds:
            A = mats[c].astype(np.float32)
            S = matkern.sqrtm_psd(A, **kw).astype(np.float64)
            d = np.linalg.norm((S - exact[c]).reshape(batch, -1), axis=1)
            cells.append(f"{(d / np.linalg.norm(exact[c].reshape(batch, -1), axis=1)).max():.1e}")
        A = mats[1e3].astype(np.float32)
        t0 = time.perf_counter()
        matkern.sqrtm_psd(A, **kw)
        cells.append(f"{(time.perf_counter() - t0) * 1e3:.0f} ms")
        print(f"| {label} | " + " | ".join(cells) + " |")
    t0 = time.perf_counter()
    [scipy.linalg.sqrtm(a) for a in mats[1e3].astype(np.float32)]
    print(f"\nscipy.linalg.sqrtm loop at cond 1e3: {(time.perf_counter() - t0) * 1e3:.0f} ms\n")


def section_nuclear(quick):
    print("## 3. Nuclear norm: L_{1,2} and Hutch++ against the exact value\n")
    mats = []
    name, X, _ = datasets.minilm_layers()[3]
    mats.append((f"MiniLM {name} activations", np.ascontiguousarray(X, dtype=np.float32)))
    if not quick:
        B = datasets.blogcatalog().toarray().astype(np.float32)
        mats.append(("BlogCatalog adjacency 10312x10312", B))
    rng = np.random.default_rng(0)
    P, L = rng.random((4000, 3)), rng.random((1000, 3))
    D = (P * P).sum(1)[:, None] + (L * L).sum(1)[None] - 2 * P @ L.T
    mats.append(
        ("RBF kernel 4000x1000, h=0.4", np.exp(-np.maximum(D, 0) / 0.32).astype(np.float32))
    )
    probes = (15, 30, 60, 120, 240)
    print("| matrix | exact | L_{1,2} err | " + " | ".join(f"Hutch++ {p}" for p in probes) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in probes) + " |")
    for name, A in mats:
        ex = float(np.linalg.svd(A.astype(np.float64), compute_uv=False).sum())
        l12 = (matkern.nuclear_norm(A, "l12") - ex) / ex
        cells = []
        for p in probes:
            errs = [
                abs(matkern.nuclear_norm(A, "hutchpp", n_probes=p, random_state=s) - ex) / ex
                for s in range(3)
            ]
            cells.append(f"{np.mean(errs):.1e}")
        print(f"| {name} | {ex:.4g} | {l12:+.2f} | " + " | ".join(cells) + " |")
    print("\n(Hutch++ cells: mean |relative error| over 3 seeds.)\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer matrices, smaller stacks")
    p.add_argument("--only", choices=["orthogonalize", "sqrtm", "nuclear"])
    args = p.parse_args(argv)
    if args.only in (None, "orthogonalize"):
        section_orthogonalize(args.quick)
    if args.only in (None, "sqrtm"):
        section_sqrtm(args.quick)
    if args.only in (None, "nuclear"):
        section_nuclear(args.quick)


if __name__ == "__main__":
    main()
