"""Rotate, then quantize: quantization error on the real MiniLM-L6 layers with and without a
randomized Hadamard rotation (issue #20's evidence).

For each of the 12 layers (tests/datasets.py: real activations X, 512 tokens, and weights W),
the relative Frobenius error ||Y - X W^T|| / ||X W^T|| of:

- W8A8 plain: ``int8_matmul(X, int8_quantize(W), threshold=0)`` (per-row int8, no outliers),
- W8A8 decomposed: the same with LLM.int8()'s outlier columns (threshold 6),
- W8A8 rotated: X and W rotated by one HadamardRotation(K), then the plain W8A8 product,
- 4-bit nf4 / int g128 weights (``lut_matmul`` with float activations), plain and rotated,
- W4A8: those 4-bit weights with per-row int8 activations, plain and rotated.

The rotation is exact (X W^T = (X Q)(W Q)^T), so every difference is quantization error.

    PYTHONPATH=python python tools/rotation_evidence.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

import matkern  # noqa: E402
from datasets import minilm_layers  # noqa: E402


def int8_rows(X):
    """Per-row symmetric int8 quantization of activations, dequantized (float32)."""
    s = np.abs(X).max(axis=1, keepdims=True) / 127.0
    s[s == 0] = 1.0
    return (np.clip(np.rint(X / s), -127, 127) * s).astype(np.float32)


def errors(X, W, rot):
    exact = X.astype(np.float64) @ W.T.astype(np.float64)
    norm = np.linalg.norm(exact)

    def err(Y):
        return float(np.linalg.norm(Y - exact) / norm)

    Xr, Wr = (rot.apply(X), rot.apply(W)) if rot is not None else (X, W)
    out = {"W8A8": err(matkern.int8_matmul(Xr, matkern.int8_quantize(Wr), threshold=0.0))}
    for table in ("nf4", "int"):
        qw = matkern.lut_quantize(Wr, bits=4, group_size=128, table=table)
        out[f"4-bit {table}"] = err(matkern.lut_matmul(Xr, qw))
        out[f"W4A8 {table}"] = err(matkern.lut_matmul(int8_rows(Xr), qw))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="rotations averaged per layer")
    args = p.parse_args(argv)
    rows = []
    for name, X, W in minilm_layers():
        exact = X.astype(np.float64) @ W.T.astype(np.float64)
        dec = matkern.int8_matmul(X, matkern.int8_quantize(W), threshold=6.0)
        plain = errors(X, W, None)
        rotated = [errors(X, W, matkern.HadamardRotation(X.shape[1], s)) for s in range(args.seeds)]
        rot = {k: float(np.mean([r[k] for r in rotated])) for k in plain}
        d = float(np.linalg.norm(dec - exact) / np.linalg.norm(exact))
        rows.append((name, plain, d, rot))
    keys = list(rows[0][1])
    print(
        f"relative error, MiniLM-L6 layers; rotated = mean over {args.seeds} HadamardRotation seeds"
    )
    head = f"{'layer':<22} {'W8A8 plain':>10} {'decomp.':>8} {'rotated':>8}"
    for k in keys[1:]:
        head += f" | {k:>11} {'rotated':>8}"
    print(head)
    for name, plain, d, rot in rows:
        line = f"{name:<22} {plain['W8A8']:>10.4f} {d:>8.4f} {rot['W8A8']:>8.4f}"
        for k in keys[1:]:
            line += f" | {plain[k]:>11.4f} {rot[k]:>8.4f}"
        print(line)
    ffn = [r for r in rows if r[0].endswith("ffn_in")]
    ok8 = all(r[3]["W8A8"] <= r[2] for r in ffn)
    print(f"goal: rotated W8A8 <= decomposed on every ffn_in layer: {'met' if ok8 else 'missed'}")
    for k in keys[1:]:
        worse = [r[0] for r in rows if r[3][k] >= r[1][k]]
        verdict = "met" if not worse else f"missed on {len(worse)}: {', '.join(worse)}"
        print(f"goal: rotated {k} below plain on every layer: {verdict}")


if __name__ == "__main__":
    main()
