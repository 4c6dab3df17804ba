"""Quantization error of LUT weights on real transformer layers (MiniLM-L6), as a table.

For each layer file ``data/transformer/minilm_l6_layer{0,2,5}.npz`` and each linear layer
family (attn_in, attn_out_in, ffn_in, ffn_out_in), the real activations X (512 tokens) and
weight W: the relative Frobenius error ``||X Wq^T - X W^T||_F / ||X W^T||_F`` where W is the
float32 weight and Wq its LUT-quantized version. ``python -m matkern._lut_eval [data_dir]``
prints the table (mean and max over the 12 layers, per table and bit width).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

CONFIGS = [(4, "nf4"), (4, "fp4"), (4, "int"), (3, "int"), (2, "int")]
FAMILIES = ("attn_in", "attn_out_in", "ffn_in", "ffn_out_in")
LAYERS = (0, 2, 5)


def default_data_dir():
    from ._data import data_dir

    return data_dir()


def minilm_layers(data_dir=None):
    """[(name, X float32, W float32)] for the 12 MiniLM linear layers in data/transformer."""
    base = pathlib.Path(data_dir or default_data_dir()) / "transformer"
    out = []
    for L in LAYERS:
        with np.load(base / f"minilm_l6_layer{L}.npz") as d:
            for fam in FAMILIES:
                key = f"layer{L}.{fam}"
                out.append((key, d[key + ".x"].astype(np.float32),
                            d[key + ".weight"].astype(np.float32)))
    return out


def error_table(data_dir=None, group_size=128, configs=CONFIGS, backend=None):
    """{(bits, table): [relative Frobenius error per layer]} over the 12 MiniLM layers,
    computed with ``lut_matmul`` (``backend`` as given) against float32 X @ W.T."""
    import matkern

    errs = {c: [] for c in configs}
    for _, X, W in minilm_layers(data_dir):
        exact = X.astype(np.float64) @ W.T.astype(np.float64)
        norm = np.linalg.norm(exact)
        for bits, table in configs:
            qw = matkern.lut_quantize(W, bits=bits, group_size=group_size, table=table)
            y = matkern.lut_matmul(X, qw, backend=backend)
            errs[(bits, table)].append(float(np.linalg.norm(y - exact) / norm))
    return errs


def format_table(errs, group_size=128):
    lines = [f"| bits | table | mean rel. Frobenius error | max (12 MiniLM layers, group {group_size}) |",
             "| ---: | --- | ---: | ---: |"]
    for (bits, table), e in errs.items():
        lines.append(f"| {bits} | {table} | {np.mean(e):.4f} | {np.max(e):.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else None
    for gs in (128, 32):
        print(format_table(error_table(d, group_size=gs), gs))
        print()
