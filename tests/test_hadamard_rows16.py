"""The 16-row AVX-512 kernel of the m * 2^k transform (cpp/hadamard_avx512.cpp).

Tolerance: none. The kernel computes every value with the same operations in the same order
as the row kernels (the H_m stage as a chain of exact +-x products added to 0, x_0 first; the
Sylvester butterflies stage by stage; the scale last), so fwht, ``HadamardRotation.apply``,
the fused rotate routes and FJLT(padding="hadamard") must give bit-identical results at every
SIMD level, whatever the row count (groups of 16, a partial last group, fewer than 4 rows on
the row kernel) and with or without a separate output array. Any difference is a bug. (The
power-of-two FJLT is left out: its AVX2 sparse gather uses FMA, the portable one does not.)
"""

import numpy as np
import pytest

import matkern
from conftest import simd_level_run

# Every route that runs the m * 2^k transform on float32 rows, for row counts around the
# 16-row groups; saved as one flat float32 vector.
_CODE = """
import sys, numpy as np, matkern
from matkern import _rotate_quant
rng = np.random.default_rng(0)
out = []
for n in (12, 24, 40, 96, 384, 448, 1280, 5120):
    rot = matkern.HadamardRotation(n, random_state=n)
    for rows in (1, 3, 4, 15, 17, 33):
        scale = (10.0 ** rng.uniform(-3, 3, (rows, 1))).astype(np.float32)
        X = rng.standard_normal((rows, n), dtype=np.float32) * scale
        out.append(matkern.fwht(X))
        Y = X.copy()
        out.append(matkern.fwht(Y, normalize=True, out=Y))
        out.append(rot.apply(X))
        out.append(rot.apply_transpose(X))
        out.append(_rotate_quant.lut_cpu_rows(X.astype(np.float16), rot, n + 32))
    if n > 12:  # (d = 7 pads to 8, the power-of-two FJLT, whose AVX2 gather uses FMA)
        X = rng.standard_normal((21, n - 5), dtype=np.float32)
        out.append(matkern.FJLT(4, padding="hadamard", random_state=1).fit_transform(X))
np.save(sys.argv[1], np.concatenate([a.ravel() for a in out]))
print(matkern.backends()["simd"])
"""


def test_every_simd_level_gives_the_same_bits():
    results = {}
    for level in ("portable", "avx2", "avx512_vnni"):
        try:
            results[level] = simd_level_run(level, _CODE)
        except pytest.skip.Exception:
            continue
    if "avx512_vnni" not in results:
        pytest.skip("this CPU or build has no AVX-512 kernels")
    for level, got in results.items():
        assert np.array_equal(got, results["portable"]), level


@pytest.mark.parametrize("n", [384, 512, 1536])
@pytest.mark.parametrize("rows", [1, 5, 16, 40])
def test_apply_equals_sign_flip_then_fwht(n, rows):
    """apply() on float32 runs the fused one-pass kernel; the unfused composition it replaces
    gives the same bits."""
    X = np.random.default_rng(rows).standard_normal((rows, n), dtype=np.float32)
    rot = matkern.HadamardRotation(n, random_state=7)
    manual = matkern.fwht(X * rot.signs_.astype(np.float32), normalize=True)
    got = rot.apply(X)
    assert got.dtype == np.float32 and got.shape == X.shape
    assert np.array_equal(got, manual)
    # a strided view, and leading axes
    wide = np.zeros((rows, 2 * n), np.float32)
    wide[:, ::2] = X
    assert np.array_equal(rot.apply(wide[:, ::2]), manual)
    assert np.array_equal(rot.apply(X.reshape(rows, 1, n)).reshape(rows, n), manual)


def test_fwht_out_of_place_leaves_the_input():
    X = np.random.default_rng(3).standard_normal((37, 384), dtype=np.float32)
    keep = X.copy()
    out = np.empty_like(X)
    assert matkern.fwht(X, out=out) is out
    assert np.array_equal(X, keep)
    Y = X.copy()
    assert np.array_equal(out, matkern.fwht(Y, out=Y))
