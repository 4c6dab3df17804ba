"""Gram bounds at every scale (issue #15, items 4 and 5): never below the exact norm, never
0/inf/NaN for a nonzero finite input, on every route and backend, from the smallest
subnormal (5e-324 float64, 1.4e-45 float32) to near overflow (1.8e308 / 3.4e38); and
convolution sizes that cannot fit in memory refused before anything is allocated.

Routes covered (CPU backend): the fused kernel (smaller side <= 512, batches), the float32
chunked SYRK and the BLAS syrk/herk route (smaller side > 512), the convolutions' fused
route with the first product from the taps (<= 3x3), the fused route without it (5x5), the
stored-matrix route through the direct DFT (smaller channel side > 512) and through rfft2
(many taps), and spectral_norm_bounds batches mixing them; the reference backend on all.
Scales 2^k, k over the whole range of the dtype, with extra weight on its ends and on the
edges of the prescaling window (largest |entry| just inside and just outside 2^-32 and
2^32: inside it the kernels run unscaled).

Tolerances.
- Certified: bound >= exact with NO tolerance. The exact norm is the SVD in float64 /
  complex128 of the very same stored entries, taken after multiplying them by the exact
  power of two that brings the largest near 1 (reference.spectral_norm and
  reference.conv_spectral_norm do so), so subnormal inputs keep full relative accuracy; its
  error (~1e-15 relative) is below the margin every bound carries (>= 1e-12 relative).
- Finite, and 0.0 exactly for a zero input (a correct bound).
- Not absurdly loose: bound <= exact * r^(1/2^(T+1)) * 1.02 with r the rank bound min(m, n)
  (T = n_iter products): r^(1/2^(T+1)) is the iteration's proven worst case (sqrt(r) for the
  Frobenius norm at T = 0), and 2% covers the rounding margins (at most ~1% measured, for
  float32 at side 2048 in test_gram) and the prescaling's underflow term (sqrt(m n) times
  the smallest subnormal in units of the largest entry: nothing). Convolutions: the same with
  r = min(c_out, c_in) per frequency, plus the frequency matrices' slack (float32 rounding:
  a few 1e-7 of the taps' norm sum), within the same 2%. Plus 4 * 2^-1074 absolute: a
  float64 bound in the subnormal range rounds upward to a grid of step 4.9e-324 (a norm of
  1e-323 is bounded by 1.5e-323 at best).
- A bound above the largest float64 raises OverflowError on every backend (documented in
  the docstrings): an infinite bound is true but useless.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matkern
from conftest import assert_no_crash, backend_available
from matkern import _gram_conv
from matkern.reference import gram as ref

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
BACKENDS = [b for b in ("reference", "cpu") if backend_available(b)[0]]
HC = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


def lo_exp(dtype):
    """k such that 2^k is the dtype's smallest subnormal."""
    return int(math.log2(np.finfo(dtype).smallest_subnormal))


def hi_exp(dtype, norm_max):
    """Largest k with 2^k * norm_max (an upper bound on the scaled norm) safely below max."""
    return int(math.log2(np.finfo(dtype).max)) - int(math.ceil(math.log2(norm_max))) - 2


def scales(dtype, norm_max):
    lo, hi = lo_exp(dtype), hi_exp(dtype, norm_max)
    # Gaussian content has its largest |entry| near 2^2: k = -34 / 29 put it just inside the
    # window (no prescaling), -35 / 30 just outside.
    edges = [lo, lo + 1, lo + 5, lo + 30, -126, -127, -35, -34, -33, 0, 29, 30, 31, hi - 1, hi]
    return st.one_of(st.integers(lo, hi), st.sampled_from([k for k in edges if lo <= k <= hi]))


def content(rng, shape, dtype, kind):
    real = np.dtype(dtype).kind != "c"

    def g():
        return rng.standard_normal(shape)

    A = g() if real else g() + 1j * g()
    if kind == "rank1":
        u, v = rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
        A = np.outer(u, v) * (1 if real else 1 + 0.5j)
    elif kind == "onehot":
        A = np.zeros(shape, dtype=A.dtype)
        A[rng.integers(shape[0]), rng.integers(shape[1])] = 1.5 if real else 1 - 1j
    elif kind == "range":  # entries spread over 2^-60..1 of the largest
        A = A * np.ldexp(1.0, -rng.integers(0, 60, size=shape))
    return A


def scaled(A, k, dtype):
    """The stored array 2^k A in dtype (rounding where it underflows: that is the input)."""
    if np.iscomplexobj(A):
        return (np.ldexp(A.real, k) + 1j * np.ldexp(A.imag, k)).astype(dtype)
    return np.ldexp(A, k).astype(dtype)


def loose(r, n_iter):
    return r ** (1.0 / 2 ** (n_iter + 1)) * 1.02


def check(b, ex, r, n_iter, what):
    assert np.isfinite(b), what
    if ex == 0:
        assert b == 0.0, what
        return
    assert b >= ex, (what, b, ex)
    assert b <= ex * loose(r, n_iter) + 4 * 2.0**-1074, (what, b, ex, b / ex)


# ---------------------------------------------------------------- dense, property-based
SMALL_SHAPES = [
    (1, 1),
    (1, 9),
    (9, 1),
    (1, 600),
    (600, 1),
    (5, 3),
    (17, 40),
    (64, 64),
    (70, 9),
    (512, 520),
]
LARGE_SHAPES = [(513, 530), (530, 513)]  # smaller side > 512: SYRK32 (float32) / BLAS


def dense_case(draw_seed, shape, dtype, kind, k):
    rng = np.random.default_rng(draw_seed)
    A = content(rng, shape, dtype, kind)
    W = scaled(A, k, dtype)
    return W, ref.spectral_norm(W)


@pytest.mark.parametrize("be", BACKENDS)
@settings(max_examples=50, deadline=None, suppress_health_check=HC)
@given(
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    shape=st.sampled_from(SMALL_SHAPES),
    kind=st.sampled_from(["gauss", "rank1", "onehot", "range"]),
    n_iter=st.integers(0, 7),
    seed=st.integers(0, 2**31),
)
def test_dense_any_scale_certified(be, data, dtype, shape, kind, n_iter, seed):
    m, n = shape
    k = data.draw(scales(dtype, 16 * math.sqrt(m * n) + 16), label="k")
    W, ex = dense_case(seed, shape, dtype, kind, k)
    b = matkern.spectral_norm_bound(W, n_iter=n_iter, backend=be)
    check(b, ex, min(m, n), n_iter, (be, dtype, shape, kind, k))


@pytest.mark.parametrize("be", BACKENDS)
@settings(max_examples=12, deadline=None, suppress_health_check=HC)
@given(
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    shape=st.sampled_from(LARGE_SHAPES),
    seed=st.integers(0, 2**31),
)
def test_dense_large_routes_any_scale(be, data, dtype, shape, seed):
    """SYRK32 (float32), BLAS syrk/herk (the others); the reference at n_iter = 3 (cost)."""
    m, n = shape
    k = data.draw(scales(dtype, 16 * math.sqrt(m * n) + 16), label="k")
    W, ex = dense_case(seed, shape, dtype, "gauss", k)
    n_iter = 6 if be == "cpu" else 3
    b = matkern.spectral_norm_bound(W, n_iter=n_iter, backend=be)
    check(b, ex, min(m, n), n_iter, (be, dtype, shape, k))


@pytest.mark.parametrize("be", BACKENDS)
@settings(max_examples=30, deadline=None, suppress_health_check=HC)
@given(
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    batch=st.integers(1, 6),
    shape=st.sampled_from([(1, 1), (3, 4), (20, 7)]),
    seed=st.integers(0, 2**31),
)
def test_dense_stack_each_matrix_its_own_scale(be, data, dtype, batch, shape, seed):
    """A stack whose matrices span the whole range at once: each is prescaled on its own."""
    m, n = shape
    sc = scales(dtype, 16 * math.sqrt(m * n) + 16)
    ks = [data.draw(sc, label=f"k{i}") for i in range(batch)]
    rng = np.random.default_rng(seed)
    W = np.stack([scaled(content(rng, shape, dtype, "gauss"), k, dtype) for k in ks])
    ex = ref.spectral_norm(W)
    b = matkern.spectral_norm_bound(W, backend=be)
    for i in range(batch):
        check(b[i], ex[i], min(m, n), 6, (be, dtype, ks[i]))


# ---------------------------------------------------------------- conv, property-based
CONV_CASES = [  # (kernel shape, input size): route on the CPU
    ((1, 1, 1, 1), (1, 1)),  # fused, first product from the taps
    ((3, 2, 3, 3), (6, 5)),  # fused, first from the taps, odd width
    ((2, 4, 2, 2), (8, 8)),  # fused, first from the taps, c_out < c_in
    ((4, 3, 5, 5), (8, 8)),  # fused, Gram products only (81 offsets > 25)
    ((2, 3, 9, 9), (10, 10)),  # stored matrices through rfft2 (81 taps: not few)
    ((514, 513, 1, 1), (1, 2)),  # stored matrices (smaller side > 512), direct DFT, BLAS
]


@pytest.mark.parametrize("be", BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=HC)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float64]),
    case=st.sampled_from(range(len(CONV_CASES))),
    kind=st.sampled_from(["gauss", "range"]),
    n_iter=st.integers(1, 6),
    seed=st.integers(0, 2**31),
    batched=st.booleans(),
)
def test_conv_any_scale_certified(be, data, dtype, case, kind, n_iter, seed, batched):
    shape, size = CONV_CASES[case]
    if shape[0] > 512 and be == "reference":
        n_iter = min(n_iter, 2)  # 513-sided products in NumPy, one frequency at a time
    c_out, c_in, kh, kw = shape
    k = data.draw(scales(dtype, 8 * kh * kw * math.sqrt(c_out * c_in)), label="k")
    rng = np.random.default_rng(seed)
    A = content(rng, (c_out * c_in, kh * kw), dtype, kind).reshape(shape)
    K = scaled(A, k, dtype)
    ex = ref.conv_spectral_norm(K, size)
    if batched:  # with a dense matrix of another scale in the same call
        W = scaled(content(rng, (3, 5), dtype, "gauss"), -k // 2, dtype)
        b, bw = matkern.spectral_norm_bounds([K, W], [size, None], n_iter=n_iter, backend=be)
        check(bw, ref.spectral_norm(W), 3, n_iter, (be, dtype, "dense", k))
    else:
        b = matkern.conv_spectral_norm_bound(K, size, n_iter=n_iter, backend=be)
    check(b, ex, min(c_out, c_in), n_iter, (be, dtype, shape, kind, k, batched))


# ---------------------------------------------------------------- deterministic sweeps
def sweep(dtype, norm_max, n=14):
    """n scales evenly over the dtype's whole range, its ends and the window's edges."""
    lo, hi = lo_exp(dtype), hi_exp(dtype, norm_max)
    ks = set(np.linspace(lo, hi, n).astype(int)) | {lo, lo + 1, -35, -34, 29, 30, hi}
    return sorted(ks)


@pytest.mark.parametrize("be", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (6, 9), (513, 520)])
def test_dense_sweep_every_route(be, dtype, shape):
    """Every scale band for every dense route (fused; SYRK32 / BLAS above side 512), so no
    part of the range depends on what hypothesis happens to draw."""
    m, n = shape
    big = m > 512
    ks = sweep(dtype, 16 * math.sqrt(m * n) + 16, 14)
    if big:  # the exact SVDs cost ~0.5 s each here: subnormal, both window edges, near max
        ks = [lo_exp(dtype) + 12, -34, 29, 30, ks[-1]]
    n_iter = 3 if big and be == "reference" else 6
    rng = np.random.default_rng(11)
    A = content(rng, shape, dtype, "gauss")
    for k in ks:
        W = scaled(A, k, dtype)
        b = matkern.spectral_norm_bound(W, n_iter=n_iter, backend=be)
        check(b, ref.spectral_norm(W), min(m, n), n_iter, (be, dtype, shape, k))


@pytest.mark.parametrize("be", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv_sweep_every_route(be, dtype, case):
    shape, size = CONV_CASES[case]
    c_out, c_in, kh, kw = shape
    big = c_out > 512
    ks = sweep(dtype, 8 * kh * kw * math.sqrt(c_out * c_in), 5 if big else 14)
    n_iter = 2 if big and be == "reference" else 6
    A = np.random.default_rng(12).standard_normal(shape)
    for k in ks:
        K = scaled(A, k, dtype)
        b = matkern.conv_spectral_norm_bound(K, size, n_iter=n_iter, backend=be)
        check(b, ref.conv_spectral_norm(K, size), min(c_out, c_in), n_iter, (be, dtype, k))


# ---------------------------------------------------------------- exact regressions
@pytest.mark.parametrize("be", BACKENDS)
def test_issue_examples(be):
    # 1x1x1x1 kernel of 1e-39 (float32: subnormal) gave 5.8e-40 on the CPU. Tight to the
    # rounding margins: a few float32 units (complex64 frequency matrices), ~1e-12 float64.
    for dt, rtol in ((np.float32, 1e-5), (np.float64, 1e-9)):
        K = np.full((1, 1, 1, 1), 1e-39, dtype=dt)
        b = matkern.conv_spectral_norm_bound(K, (1, 1), backend=be)
        assert float(K.ravel()[0]) <= b <= float(K.ravel()[0]) * (1 + rtol), (dt, b)
    # float64 matrix whose largest entry is subnormal: NaN on the CPU, OverflowError in the
    # reference.
    for W in (
        np.full((1, 1), 1e-310),
        np.array([[1e-310, -3e-311], [2e-320, 5e-324]]),
        np.full((3, 2), 5e-324),
        np.full((2, 2), 1e-310 + 1e-311j),
    ):
        b = matkern.spectral_norm_bound(W, backend=be)
        check(b, ref.spectral_norm(W), 2, 6, W)
    rng = np.random.default_rng(3)
    base = rng.standard_normal((4, 3, 3, 3))
    # float32 conv at 1e27 .. 3e38 (NaN from ~1e27), float64 at 1e-81 and below
    for dt, scale_list in (
        (np.float32, [1e27, 1e30, 1e35, 3e37]),
        (np.float64, [1e-81, 1e-100, 1e-200, 1e-300, 1e-310, 1e38, 1e100, 1e300]),
    ):
        for s in scale_list:
            K = (base * s / np.abs(base).max()).astype(dt)
            ex = ref.conv_spectral_norm(K, (8, 8))
            b = matkern.conv_spectral_norm_bound(K, (8, 8), backend=be)
            assert ex <= b <= ex * 1.02, (dt, s, b, ex)
    # the largest float32 everywhere in a 1x1 kernel: the bound is a float64, no overflow
    K = np.full((1, 1, 1, 1), np.finfo(np.float32).max, dtype=np.float32)
    b = matkern.conv_spectral_norm_bound(K, (2, 2), backend=be)
    assert float(K.ravel()[0]) <= b <= float(K.ravel()[0]) * (1 + 1e-5)


@pytest.mark.parametrize("be", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_inputs_give_zero(be, dtype):
    for shape in [(1, 1), (4, 7), (600, 1)]:
        assert matkern.spectral_norm_bound(np.zeros(shape, dtype), backend=be) == 0.0
    if np.dtype(dtype).kind == "f":
        for ks in [(1, 1, 1, 1), (3, 2, 3, 3), (2, 2, 5, 5)]:
            K = np.zeros(ks, dtype)
            assert matkern.conv_spectral_norm_bound(K, (8, 8), backend=be) == 0.0
        b = matkern.spectral_norm_bounds(
            [np.zeros((3, 3, 3, 3), dtype), np.zeros((2, 5), dtype)], [(6, 6), None], backend=be
        )
        assert list(b) == [0.0, 0.0]


@pytest.mark.parametrize("be", BACKENDS)
def test_bound_above_float64_max_raises_overflow(be):
    big = np.finfo(np.float64).max
    cases = [
        lambda: matkern.spectral_norm_bound(np.full((2, 2), big / 2), backend=be),
        lambda: matkern.spectral_norm_bound(np.full((1, 1), big), backend=be),
        lambda: matkern.spectral_norm_bound(np.full((3, 2, 2), big / 2), backend=be),
        lambda: matkern.conv_spectral_norm_bound(
            np.full((1, 1, 2, 2), big / 2), (4, 4), backend=be
        ),
        lambda: matkern.spectral_norm_bounds(
            [np.ones((2, 2)), np.full((2, 2), big / 2)], backend=be
        ),
        lambda: ref.gram_bound(np.full((2, 2), big / 2)),
    ]
    for f in cases:
        with pytest.raises(OverflowError, match="exceeds the largest float64"):
            f()
    # just below: a finite bound
    W = np.full((2, 2), big / 4)
    b = matkern.spectral_norm_bound(W, backend=be)
    assert big / 2 <= b < np.inf


def test_max_abs_batch_binding():
    """The scale check's C++ reduction: exact max |entry| per matrix, signs, subnormals,
    zeros, the largest float; bad sizes refused."""
    cpu = pytest.importorskip("matkern._cpu")
    A = np.array(
        [
            [0.0, -3e-310, 1e-320, 2.0],
            [0, 0, -0.0, 0],
            [-np.finfo(float).max, 1, 2, 3],
            [5e-324, -1e-323, 0, 0],
        ]
    )
    out = np.empty(4)
    cpu.gram_max_abs_batch(A.reshape(-1), 4, out)
    assert list(out) == [2.0, 0.0, np.finfo(float).max, 1e-323]
    B = np.array([[-1e-45, 0], [3e38, -3.4e38]], np.float32)
    out = np.empty(2)
    cpu.gram_max_abs_batch(B.reshape(-1), 2, out)
    assert list(out) == [float(np.float32(1e-45)), float(np.float32(3.4e38))]
    big = np.random.default_rng(0).standard_normal((300, 1000))  # threaded
    out = np.empty(300)
    cpu.gram_max_abs_batch(big.reshape(-1), 300, out)
    assert np.array_equal(out, np.abs(big).max(axis=1))
    with pytest.raises(ValueError, match="size mismatch"):
        cpu.gram_max_abs_batch(A.reshape(-1), 3, np.empty(3))
    with pytest.raises(ValueError, match="size mismatch"):
        cpu.gram_max_abs_batch(A.reshape(-1), 4, np.empty(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_window_edges_match_inside_and_outside(dtype):
    """Right at the prescaling window's edges the CPU bound scales exactly with the input
    (up to the margins): 2^31..2^33 and 2^-33..2^-31 times one matrix give the same bound
    times the power of two, to 1e-6 relative (float32 rounding margins differ by the scaled
    entries' absolute underflow terms at most)."""
    rng = np.random.default_rng(5)
    A = content(rng, (20, 30), dtype, "gauss")
    A = A / np.abs(A).max()
    b0 = matkern.spectral_norm_bound(A.astype(dtype), backend="cpu")
    for k in (-34, -33, -32, -31, 31, 32, 33, 34):
        b = matkern.spectral_norm_bound(scaled(A, k, dtype), backend="cpu")
        assert b == pytest.approx(math.ldexp(b0, k), rel=1e-6), k


# ---------------------------------------------------------------- memory refusal
HUGE = [
    ("conv_spectral_norm_bound(np.ones((1, 1, 3, 3), np.float32), (46000, 46000))", "input_size"),
    (
        "conv_spectral_norm_bound(np.ones((1, 1, 3, 3)), (46000, 46000), backend='reference')",
        "input_size",
    ),
    ("conv_spectral_norm_bound(np.ones((1, 1, 40, 40)), (46000, 46000))", "input_size"),
    (
        "spectral_norm_bounds([np.ones((2, 2)), np.ones((1, 1, 3, 3))], [None, (46000, 46000)])",
        "input_sizes[1]",
    ),
]


@pytest.mark.parametrize("call,name", HUGE)
def test_huge_input_size_refused_before_allocating(call, name):
    """Sizes whose phase tables / frequency matrices need hundreds of GiB (within the 32-bit
    index limit), in a subprocess whose address space is capped at 16 GiB: a refusal that
    came after allocating would show as MemoryError or a crash instead."""
    # (not under AddressSanitizer, tools/asan_test.sh: its shadow memory needs more address
    # space than the cap allows, and the run would fail before it starts)
    out = assert_no_crash(
        "import os, resource\n"
        "if 'libasan' not in os.environ.get('LD_PRELOAD', ''):\n"
        "    resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))\n"
        "try:\n"
        f"    matkern.{call}\n"
        "except ValueError as e:\n"
        "    print('REFUSED', e)\n",
        expect=(),
    )
    assert "REFUSED" in out and "GiB" in out and f"{name} = (46000, 46000)" in out, out


def test_memory_limit_message_and_estimate(monkeypatch):
    """The refusal names the argument and comes from the estimate against the available
    memory (faked small here); the estimate is an upper bound on what the call allocates
    (NumPy allocations, traced by tracemalloc) and within 4x of it."""
    import tracemalloc

    K = np.ones((4, 4, 3, 3))
    monkeypatch.setattr(_gram_conv, "available_bytes", lambda: 1 << 20)
    with pytest.raises(ValueError, match=r"input_size = \(256, 256\) needs about .* GiB"):
        matkern.conv_spectral_norm_bound(K, (256, 256))
    with pytest.raises(ValueError, match=r"input_sizes\[0\]"):
        matkern.spectral_norm_bounds([K], [(256, 256)])
    matkern.conv_spectral_norm_bound(K, (8, 8))  # small enough: runs
    monkeypatch.undo()
    rng = np.random.default_rng(0)
    for shape, size, be in [
        ((8, 8, 3, 3), (96, 96), "cpu"),
        ((8, 8, 3, 3), (24, 24), "reference"),
        ((4, 4, 5, 5), (64, 64), "cpu"),
        ((4, 4, 16, 16), (64, 64), "cpu"),
        ((600, 2, 3, 3), (32, 32), "cpu"),
        ((1, 1, 3, 3), (128, 128), "cpu"),
    ]:
        if be not in BACKENDS:
            continue
        for dt in (np.float32, np.float64):
            K = rng.standard_normal(shape).astype(dt)
            matkern.conv_spectral_norm_bound(K, size, backend=be)  # first-call imports, caches
            tracemalloc.start()
            try:
                matkern.conv_spectral_norm_bound(K, size, backend=be)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            est = _gram_conv.needed_bytes(K, *size, be)
            assert peak <= est <= 4 * peak + (1 << 20), (shape, size, be, dt, peak, est)


def test_memory_limit_counts_the_layers_held_together(monkeypatch):
    """spectral_norm_bounds holds every stored-matrix layer's frequency matrices at once: two
    layers that each fit can be refused together, naming the one that tips it over."""
    K = np.ones((2, 2, 9, 9))  # rfft2 route (stored matrices) on every backend
    one = _gram_conv.needed_bytes(K, 64, 64, "cpu")
    monkeypatch.setattr(_gram_conv, "available_bytes", lambda: int(1.5 * one))
    matkern.spectral_norm_bounds([K], [(64, 64)])
    with pytest.raises(ValueError, match=r"input_sizes\[2\] = \(64, 64\).*layers before it"):
        matkern.spectral_norm_bounds([K, np.ones((3, 3)), K], [(64, 64), None, (64, 64)])


@pytest.mark.parametrize("be", BACKENDS)
def test_many_layers_each_at_its_own_scale(be):
    """spectral_norm_bounds groups same-shape dense layers, and the stored-matrix convolutions'
    frequency matrices, into one batch: each layer keeps its own scale."""
    rng = np.random.default_rng(21)
    W = rng.standard_normal((5, 4))
    K = rng.standard_normal((3, 2, 9, 9))  # rfft2 route: stored matrices, grouped
    Kf = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)  # fused on the CPU
    layers, sizes, exact = [], [], []
    for k in (-1070, -300, -40, 0, 40, 300, 1010):
        Wk = np.ldexp(W, k)
        Kk = np.ldexp(K, k)
        layers += [Wk, Kk]
        sizes += [None, (10, 10)]
        exact += [ref.spectral_norm(Wk), ref.conv_spectral_norm(Kk, (10, 10))]
    for k in (-149, -60, 0, 60, 120):
        Kk = scaled(Kf, k, np.float32)
        layers.append(Kk)
        sizes.append((6, 6))
        exact.append(ref.conv_spectral_norm(Kk, (6, 6)))
    b = matkern.spectral_norm_bounds(layers, sizes, backend=be)
    for i, (bi, ex) in enumerate(zip(b, exact)):
        check(bi, ex, 4, 6, (be, i))


def test_unscale_never_passes_a_non_bound():
    """The last step of every route refuses NaN or negative values (an internal error) instead
    of returning them, and rounds upward: additions by an ulp, subnormal results by one more."""
    with pytest.raises(FloatingPointError, match="internal error"):
        ref.unscale_bound(np.array([1.0, np.nan]), np.array([0, 0]), np.zeros(2), "f")
    with pytest.raises(FloatingPointError, match="internal error"):
        ref.unscale_bound(np.array([-1.0]), np.array([0]), np.zeros(1), "f")
    out = ref.unscale_bound(
        np.array([1.0, 0.75, 0.0]), np.array([5, -1074, -1074]), np.array([1e-30, 0.0, 0.0]), "f"
    )
    assert out[0] > 32.0 and out[1] >= 0.75 * 2.0**-1074 and out[2] == 0.0
