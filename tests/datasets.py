"""The repository's real data (data/) for tests, benchmarks and tools; not part of matkern.

Tests import it as ``datasets`` (pytest puts tests/ on the path); ``python -m bench`` from the
repository root imports it as ``tests.datasets``. Provenance of every file: data/README.md.

- ``data_dir()``: where data/ is.
- ``blogcatalog()``, ``movielens_users()``: real sparse matrices for the svd family.
- ``minilm_layers()``, ``error_table()``, ``format_table()``: LUT quantization error on the
  real MiniLM-L6 layers (``python tools/lut_error_table.py`` prints the table).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np


def data_dir() -> pathlib.Path:
    """The repository's data/ folder: $MATKERN_DATA, else beside this file's checkout, else
    ./data."""
    env = os.environ.get("MATKERN_DATA")
    candidates = [pathlib.Path(env)] if env else []
    candidates += [
        pathlib.Path(__file__).resolve().parents[1] / "data",
        pathlib.Path.cwd() / "data",
    ]
    for c in candidates:
        if (c / "graphs").is_dir():
            return c
    raise FileNotFoundError(
        "matkern's data/ folder was not found (set MATKERN_DATA, or run from a checkout)"
    )


# ------------------------------------------------------------------------- svd family


def blogcatalog(path=None):
    """BlogCatalog adjacency (10312 x 10312, scipy CSR float64, symmetric 0/1)."""
    import scipy.io

    path = path or data_dir() / "graphs" / "blogcatalog.mat"
    return scipy.io.loadmat(path)["network"].tocsr().astype(np.float64)


def movielens_users(path=None):
    """MovieLens ml-latest-small as a user x movie rating matrix (scipy CSR float64), rows in the
    order of each user's first rating (timestamp), columns the sorted movie ids."""
    import scipy.sparse as sp

    path = path or data_dir() / "ratings" / "ratings.csv"
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    user, movie, rating, ts = (
        raw[:, 0].astype(np.int64),
        raw[:, 1].astype(np.int64),
        raw[:, 2],
        raw[:, 3],
    )
    users, uinv = np.unique(user, return_inverse=True)
    _, minv = np.unique(movie, return_inverse=True)
    first = np.full(len(users), np.inf)
    np.minimum.at(first, uinv, ts)
    rank = np.empty(len(users), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(users))
    A = sp.csr_matrix((rating, (rank[uinv], minv)), shape=(len(users), minv.max() + 1))
    A.sum_duplicates()
    return A


# ------------------------------------------------------------------------- LUT family
# Quantization error of LUT weights on real transformer layers (MiniLM-L6). For each layer file
# data/transformer/minilm_l6_layer{0,2,5}.npz and each linear layer family, the real activations
# X (512 tokens) and weight W: the relative Frobenius error ||X Wq^T - X W^T||_F / ||X W^T||_F,
# W the float32 weight and Wq its LUT-quantized version.

# "fp4" is bitsandbytes' fp4, "fp4_e2m1" the OCP grid (called "fp4" before 0.1.0)
LUT_CONFIGS = [(4, "nf4"), (4, "fp4"), (4, "fp4_e2m1"), (4, "int"), (3, "int"), (2, "int")]
MINILM_FAMILIES = ("attn_in", "attn_out_in", "ffn_in", "ffn_out_in")
MINILM_LAYERS = (0, 2, 5)


def minilm_layers(data=None):
    """[(name, X float32, W float32)] for the 12 MiniLM linear layers in ``data``/transformer
    (``data``: the data/ folder, default ``data_dir()``)."""
    base = pathlib.Path(data or data_dir()) / "transformer"
    out = []
    for layer in MINILM_LAYERS:
        with np.load(base / f"minilm_l6_layer{layer}.npz") as d:
            for fam in MINILM_FAMILIES:
                key = f"layer{layer}.{fam}"
                out.append(
                    (key, d[key + ".x"].astype(np.float32), d[key + ".weight"].astype(np.float32))
                )
    return out


def error_table(data=None, group_size=128, configs=LUT_CONFIGS, backend=None):
    """{(bits, table): [relative Frobenius error per layer]} over the 12 MiniLM layers,
    computed with ``lut_matmul`` (``backend`` as given) against float32 X @ W.T."""
    import matkern

    errs = {c: [] for c in configs}
    for _, X, W in minilm_layers(data):
        exact = X.astype(np.float64) @ W.T.astype(np.float64)
        norm = np.linalg.norm(exact)
        for bits, table in configs:
            qw = matkern.lut_quantize(W, bits=bits, group_size=group_size, table=table)
            y = matkern.lut_matmul(X, qw, backend=backend)
            errs[(bits, table)].append(float(np.linalg.norm(y - exact) / norm))
    return errs


def format_table(errs, group_size=128):
    """``error_table``'s result as a Markdown table: mean and max error per (bits, table)."""
    lines = [
        f"| bits | table | mean rel. Frobenius error | max (12 MiniLM layers, group {group_size}) |",
        "| ---: | --- | ---: | ---: |",
    ]
    for (bits, table), e in errs.items():
        lines.append(f"| {bits} | {table} | {np.mean(e):.4f} | {np.max(e):.4f} |")
    return "\n".join(lines)
