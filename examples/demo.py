"""matkern demo: what was built, then a few kernels on NumPy arrays (CuPy arrays when a GPU is
usable), each checked against matkern.reference."""

import time

import numpy as np

import matkern

matkern.show_config()
rng = np.random.default_rng(0)


def timed(label, fn):
    fn()
    t0 = time.perf_counter()
    r = fn()
    print(f"{label:<48} {1e3 * (time.perf_counter() - t0):8.2f} ms")
    return r


x = rng.standard_normal((4096, 4096)).astype(np.float32)
y = timed("fwht 4096 x 4096 float32 (matkern, CPU)", lambda: matkern.fwht(x))
timed("numpy.fft.rfft of the same array", lambda: np.fft.rfft(x))
err = np.abs(y[:64] - matkern.reference.fwht(x[:64])).max()
print(f"  max |matkern - reference| on 64 rows: {err:.2e}")

X = rng.standard_normal((4000, 8192)).astype(np.float32)
t = matkern.FJLT(256, random_state=0).fit(X)
Y = timed("FJLT 4000 x 8192 -> 256 (matkern, CPU)", lambda: t.transform(X))
i, j = rng.integers(0, 4000, (2, 2000))
keep = i != j
ratio = np.linalg.norm(Y[i[keep]] - Y[j[keep]], axis=1) / np.linalg.norm(
    X[i[keep]] - X[j[keep]], axis=1
)
print(
    f"  pairwise distance ratios: median {np.median(ratio):.3f}, 99% within 1 +- "
    f"{np.quantile(np.abs(ratio - 1), 0.99):.3f}"
)

if matkern.backends()["gpu_usable"]:
    import cupy as cp

    xg = cp.asarray(x)
    yg = timed(
        "fwht 4096 x 4096 float32 (matkern, GPU)",
        lambda: (matkern.fwht(xg), cp.cuda.get_current_stream().synchronize())[0],
    )
    print(f"  GPU vs CPU max difference: {float(abs(yg.get() - y).max()):.2e}")
else:
    print(f"GPU part skipped: {matkern.backends()['gpu_reason']}")
