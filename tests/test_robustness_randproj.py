"""Robustness of SparseRandomProjection, fastrp and FJLT (issue #15): corrupted sparse input
never crashes, every parameter error names the argument, the expected and the received value,
n_components="auto" behaves as scikit-learn's, FJLT stays within ~2x its input + output.

Crash probes run in a subprocess (``conftest.assert_no_crash``) and make a valid call after
the refused ones, so that a silent out-of-bounds write shows up as a heap abort there.

Tolerances (property tests):

- SparseRandomProjection cpu vs reference: ``(d + 2) * eps * (|X| @ |M|^T) + eps * |Y_ref|``
  elementwise, eps of the input dtype: both compute sums of the same d products in some
  order (the standard gamma_d bound of any summation order) and the reference rounds its
  float64 result to the input dtype once (the last term).
- FJLT cpu vs reference: ``8 * (log2(d') + nnz_max + 2) * eps * ||x||_2 * scale * max_r
  ||P_r||_1`` per row: the normalized FWHT is orthonormal and each of its log2(d') stages
  adds at most one rounding per entry (so |error of z_c| <= ~log2(d') eps ||x||_2, and
  |z_c| <= ||x||_2), then a row of P sums at most nnz_max products; both backends are off
  the exact value by that much, hence the factor 2 (and 4 of slack).
- FJLT ``components_`` against the explicit dense formula scale * P @ (H[:, :d] * signs)
  (scipy.linalg.hadamard): 1e-12 relative to max|M| (float64, a different summation order).
- Memory (tracemalloc, which sees NumPy's allocations): FJLT.fit peak <= 2 x (input + its
  output, signs_ and P) + 256 KiB; FJLT.components_ peak <= 1.5 x the k x d result + 1 MiB.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import matkern
from conftest import assert_no_crash, backend_available
from sparse_corruption import BAD_SOURCE, KINDS, as_format

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# The property tests draw n_components above n_features on purpose (still a valid projection);
# scikit-learn, and so matkern, warns about it (DataDimensionalityWarning).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataDimensionalityWarning")

needs_cpu = pytest.mark.skipif(not backend_available("cpu")[0], reason="cpu backend unavailable")

# --------------------------------------------------------------------------- crash probes
_BAD = (
    BAD_SOURCE
    + r"""

X = np.random.default_rng(0).standard_normal((10, 20))
"""
)

_KINDS = KINDS
_CASES = [(f, k) for f, ks in _KINDS.items() for k in ks]


@needs_cpu
@pytest.mark.parametrize("fmt,kind", _CASES, ids=[f"{f}-{k}" for f, k in _CASES])
def test_corrupted_index_every_entry_point(fmt, kind):
    code = (
        _BAD
        + f"""
fmt, kind = {fmt!r}, {kind!r}
for backend in ("cpu", "reference"):
    P = matkern.SparseRandomProjection(4, random_state=0, backend=backend)
    refused(lambda: P.fit(bad(fmt, kind, (10, 20))), "SRP.fit")
    P.fit(X)
    refused(lambda: P.transform(bad(fmt, kind, (10, 20))), "SRP.transform")
    refused(lambda: P.transform(bad(fmt, kind, (10, 20), dtype=np.float32)), "SRP.transform f32")
    refused(lambda: P.fit_transform(bad(fmt, kind, (10, 20))), "SRP.fit_transform")
    refused(lambda: P.inverse_transform(bad(fmt, kind, (10, 4))), "SRP.inverse_transform")
    for dt in (np.float32, np.float64, np.int64, np.bool_):
        refused(lambda: matkern.fastrp(bad(fmt, kind, (20, 20), dtype=dt), dim=8,
                                       backend=backend), f"fastrp {{dt}}")
    Y = P.transform(sp.random(10, 20, density=0.3, format=fmt, random_state=1))
    assert np.isfinite(Y.toarray()).all()
    E = matkern.fastrp(sp.random(20, 20, density=0.3, format=fmt, random_state=2), dim=8,
                       backend=backend)
    assert np.isfinite(E).all()
print("done")
"""
    )
    assert "done" in assert_no_crash(code, expect=())


@needs_cpu
def test_regression_srp_corrupted_indptr_names_indptr():
    """A decreasing indptr used to reach C++ (RuntimeError text) or scipy's sort_indices
    (segfault): now a ValueError that names X.indptr, before any conversion."""
    code = (
        _BAD
        + r"""
P = matkern.SparseRandomProjection(4, random_state=0).fit(X)
for kind in ("decreasing", "past_end", "not_zero_start", "wrong_length"):
    msg = refused(lambda: P.transform(bad("csr", kind, (10, 20))), kind)
    assert "X.indptr" in msg, msg
print("done")
"""
    )
    assert "done" in assert_no_crash(code, expect=())


# --------------------------------------------------------------------------- n_components
@pytest.mark.parametrize("est", [matkern.SparseRandomProjection, matkern.FJLT])
def test_regression_auto_one_sample(est):
    """One sample: the Johnson-Lindenstrauss dimension is 0 (log 1 = 0); was a
    ZeroDivisionError, now a ValueError as scikit-learn's."""
    with pytest.raises(
        ValueError, match=r"n_components='auto'.*n_samples=1.*target dimension of 0"
    ):
        est(random_state=0).fit(np.ones((1, 50)))
    assert matkern.johnson_lindenstrauss_min_dim(1) == 0  # scikit-learn returns 0 too


@pytest.mark.parametrize("est", [matkern.SparseRandomProjection, matkern.FJLT])
def test_auto_more_components_than_features(est):
    k = matkern.johnson_lindenstrauss_min_dim(100, 0.1)
    with pytest.raises(ValueError, match=f"target dimension of {k}, larger than n_features = 300"):
        est(random_state=0).fit(np.ones((100, 300)))
    # an explicit n_components above n_features is allowed (scikit-learn only warns)
    assert est(400, random_state=0).fit(np.ones((100, 300))).n_components_ == 400
    p = est(eps=0.9, random_state=0).fit(np.ones((100, 300)))
    assert p.n_components_ == matkern.johnson_lindenstrauss_min_dim(100, 0.9)


def test_jl_matches_sklearn():
    skl = pytest.importorskip("sklearn.random_projection")
    for n in (1, 2, 10, 1000, 10**6):
        for eps in (0.05, 0.1, 0.5, 0.99):
            assert matkern.johnson_lindenstrauss_min_dim(n, eps) == int(
                skl.johnson_lindenstrauss_min_dim(n, eps=eps)
            )


# --------------------------------------------------------------------------- parameters
X10 = np.ones((10, 64))
_NAN = float("nan")
_EST_PARAMS = (
    [
        (matkern.SparseRandomProjection, "n_components", v, e)
        for v, e in [
            ("all", ValueError),
            (2.5, TypeError),
            (True, TypeError),
            (0, ValueError),
            (-3, ValueError),
            (None, TypeError),
        ]
    ]
    + [
        (matkern.SparseRandomProjection, "density", v, e)
        for v, e in [
            ("x", ValueError),
            (0.0, ValueError),
            (1.5, ValueError),
            (-0.1, ValueError),
            (_NAN, ValueError),
            (True, TypeError),
            ([0.1], TypeError),
        ]
    ]
    + [
        (matkern.SparseRandomProjection, "eps", v, e)
        for v, e in [
            (0.0, ValueError),
            (1.0, ValueError),
            (-1, ValueError),
            (_NAN, ValueError),
            ("0.1", TypeError),
            (True, TypeError),
        ]
    ]
    + [
        (matkern.SparseRandomProjection, "random_state", v, e)
        for v, e in [(1.5, TypeError), ("s", TypeError), (True, TypeError)]
    ]
    + [
        (matkern.SparseRandomProjection, "dense_output", v, e)
        for v, e in [(1, TypeError), ("yes", TypeError), (None, TypeError)]
    ]
    + [
        (matkern.SparseRandomProjection, "backend", "gpu", ValueError),
    ]
    + [
        (matkern.FJLT, "n_components", v, e)
        for v, e in [
            ("all", ValueError),
            (2.5, TypeError),
            (True, TypeError),
            (0, ValueError),
            (-3, ValueError),
        ]
    ]
    + [
        (matkern.FJLT, "density", v, e)
        for v, e in [
            (0.0, ValueError),
            (1.5, ValueError),
            (_NAN, ValueError),
            (True, TypeError),
            ("auto", TypeError),
        ]
    ]
    + [
        (matkern.FJLT, "eps", v, e)
        for v, e in [(0.0, ValueError), (1.0, ValueError), (_NAN, ValueError), ("x", TypeError)]
    ]
    + [
        (matkern.FJLT, "random_state", v, e)
        for v, e in [(-1, ValueError), (1.5, TypeError), ("s", TypeError), (True, TypeError)]
    ]
    + [
        (matkern.FJLT, "backend", "gpu", ValueError),
    ]
)


@pytest.mark.parametrize(
    "est,name,value,exc", _EST_PARAMS, ids=[f"{e.__name__}-{n}={v!r}" for e, n, v, _ in _EST_PARAMS]
)
def test_bad_estimator_parameter_named(est, name, value, exc):
    kw = {"n_components": 4, name: value}
    n_comp = kw.pop("n_components")
    with pytest.raises(exc, match=name) as info:
        est(n_comp, **kw).fit(X10)
    assert "got" in str(info.value) or "must" in str(info.value)


def test_regression_fjlt_negative_seed():
    with pytest.raises(ValueError, match=r"FJLT.fit\(\): random_state must be .*got -1"):
        matkern.FJLT(4, random_state=-1).fit(X10)


_A = sp.random(30, 30, density=0.2, format="csr", random_state=0)
_FASTRP = [
    ("dim", 0, ValueError),
    ("dim", 2.0, TypeError),
    ("dim", True, TypeError),
    ("dim", -1, ValueError),
    ("iteration_weights", "abc", TypeError),
    ("iteration_weights", 3, TypeError),
    ("iteration_weights", (), ValueError),
    ("iteration_weights", (1.0, "a"), TypeError),
    ("iteration_weights", (1.0, _NAN), ValueError),
    ("iteration_weights", (True,), TypeError),
    ("iteration_weights", None, TypeError),
    ("normalization_strength", _NAN, ValueError),
    ("normalization_strength", "x", TypeError),
    ("l2_normalize", "yes", TypeError),
    ("l2_normalize", None, TypeError),
    ("random_state", 1.5, TypeError),
    ("random_state", "s", TypeError),
    ("dtype", "abc", TypeError),
    ("dtype", np.int32, TypeError),
    ("dtype", [1], TypeError),
    ("backend", "gpu", ValueError),
    ("progress", "yes", TypeError),
]


@pytest.mark.parametrize("name,value,exc", _FASTRP, ids=[f"{n}={v!r}" for n, v, _ in _FASTRP])
def test_bad_fastrp_parameter_named(name, value, exc):
    with pytest.raises(exc, match=name) as info:
        matkern.fastrp(_A, **{name: value})
    assert "got" in str(info.value) or "must not be empty" in str(info.value)


def test_regression_fastrp_string_weights():
    with pytest.raises(
        TypeError, match="iteration_weights must be a sequence of real numbers, got str 'abc'"
    ):
        matkern.fastrp(_A, iteration_weights="abc")


# --------------------------------------------------------------------------- properties
_as_format = as_format


@st.composite
def _rp_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["one_row", "one_col", "tall", "wide"]))
    n, d = {
        "one_row": (1, draw(st.integers(1, 300))),
        "one_col": (draw(st.integers(1, 40)), 1),
        "tall": (draw(st.integers(20, 80)), draw(st.integers(2, 20))),
        "wide": (draw(st.integers(2, 10)), draw(st.integers(50, 600))),
    }[kind]
    lim = 250 if dtype == np.float64 else 30
    return dict(
        dtype=dtype,
        n=n,
        d=d,
        k=draw(st.integers(1, 64)),
        scale=10.0 ** draw(st.integers(-lim, lim)),
        fmt=draw(st.sampled_from(["dense", "csr", "csc", "coo"])),
        dup=draw(st.booleans()),
        density=draw(st.sampled_from([0.02, 0.3, 1.0])),
        rp_density=draw(st.sampled_from(["auto", 0.05, 1.0])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _rp_data(case):
    rng = np.random.default_rng(case["seed"])
    M = rng.standard_normal((case["n"], case["d"])) * (
        rng.random((case["n"], case["d"])) < case["density"]
    )
    M = (M * case["scale"]).astype(case["dtype"])
    return M, _as_format(M, case["fmt"], rng, case["dup"])


@needs_cpu
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rp_case())
def test_property_srp_cpu_matches_reference(case):
    M, X = _rp_data(case)

    def make(be):
        return matkern.SparseRandomProjection(
            case["k"], density=case["rp_density"], random_state=case["seed"], backend=be
        )

    cpu, ref = make("cpu").fit(X), make("reference").fit(X)
    Yc, Yr = cpu.transform(X), ref.transform(X)
    assert Yc.dtype == case["dtype"] and Yc.shape == (case["n"], case["k"])
    Mt = cpu.components_.toarray()
    np.testing.assert_array_equal(Mt, ref.components_.toarray())
    eps = np.finfo(case["dtype"]).eps
    absprod = np.abs(M.astype(np.float64)) @ np.abs(Mt).T
    tol = (case["d"] + 2) * eps * absprod + eps * np.abs(Yr.astype(np.float64))
    assert np.all(np.abs(Yc.astype(np.float64) - Yr.astype(np.float64)) <= tol)
    # and against the dense definition
    assert np.all(np.abs(Yc.astype(np.float64) - M.astype(np.float64) @ Mt.T) <= 2 * tol)


@needs_cpu
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rp_case())
def test_property_srp_caller_mutation(case):
    """Mutating X after fit/transform changes neither the fitted projection nor later results;
    sparse input is never modified by transform (duplicates summed on a copy)."""
    M, X = _rp_data(case)
    p = matkern.SparseRandomProjection(case["k"], random_state=case["seed"], dense_output=True).fit(
        X
    )
    before = p.components_.toarray()
    snap = X.copy()
    Y = p.transform(X)
    if sp.issparse(X):
        assert X.format == snap.format and X.nnz == snap.nnz
        np.testing.assert_array_equal(X.toarray(), snap.toarray())
        X.data[...] = np.nan
    else:
        X[...] = np.nan
    np.testing.assert_array_equal(p.components_.toarray(), before)
    np.testing.assert_array_equal(p.transform(snap), Y)


@st.composite
def _fjlt_case(draw):
    return dict(
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        n=draw(st.integers(1, 20)),
        d=draw(st.integers(1, 700)),
        k=draw(st.integers(1, 48)),
        density=draw(st.sampled_from([None, 0.01, 0.2, 1.0])),
        scale=10.0 ** draw(st.integers(-30, 30)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@needs_cpu
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fjlt_case())
def test_property_fjlt_cpu_matches_reference_and_components(case):
    import scipy.linalg

    rng = np.random.default_rng(case["seed"])
    X = (rng.standard_normal((case["n"], case["d"])) * case["scale"]).astype(case["dtype"])

    def mk(be):
        return matkern.FJLT(
            case["k"], density=case["density"], random_state=case["seed"], backend=be
        ).fit(X)

    cpu, ref = mk("cpu"), mk("reference")
    Yc, Yr = cpu.transform(X), ref.transform(X)
    assert Yc.dtype == X.dtype and Yc.shape == (case["n"], case["k"])
    P = cpu.projection_
    dpad = cpu.padded_features_
    eps = np.finfo(case["dtype"]).eps
    rownorm = np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    sP = cpu.scale_ * float(abs(P).sum(axis=1).max())
    nnz_max = int(np.diff(P.indptr).max())
    tol = 8 * (math.log2(dpad) + nnz_max + 2) * eps * rownorm * sP + np.finfo(case["dtype"]).tiny
    assert np.all(np.abs(Yc.astype(np.float64) - Yr.astype(np.float64)) <= tol)
    # components_ against the explicit formula (small d' only: a dense Hadamard matrix), in
    # the fitted dtype (computed in float64, rounded once); the same P and signs_ for a
    # float64 fit of the same seed
    if dpad <= 1024:
        H = scipy.linalg.hadamard(dpad) / math.sqrt(dpad)
        expect = cpu.scale_ * (P @ (H[:, : case["d"]] * cpu.signs_))
        atol = 1e-12 * max(np.abs(expect).max(), 1e-300)
        got = cpu.components_
        assert not got.flags.writeable and got.dtype == case["dtype"]
        np.testing.assert_allclose(got, expect.astype(case["dtype"]), rtol=0, atol=atol)
        cpu = matkern.FJLT(case["k"], density=case["density"], random_state=case["seed"])
        cpu.fit(X.astype(np.float64))
        got = cpu.components_
        np.testing.assert_allclose(got, expect, rtol=0, atol=atol)
        Y64 = cpu.transform(X.astype(np.float64))
        tol64 = 8 * (math.log2(dpad) + nnz_max + 2) * np.finfo(np.float64).eps * rownorm * sP
        assert np.all(np.abs(Y64 - X.astype(np.float64) @ got.T) <= 2 * tol64 + 1e-300)


# --------------------------------------------------------------------------- FJLT draw, memory
@pytest.mark.parametrize("block", [None, 997], ids=["default", "chunks-across-rows"])
def test_fjlt_projection_distribution(block, monkeypatch):
    """P's law: each of the k x d' entries nonzero with probability q, independently, values
    N(0, 1). Counts, per-row variance, column spread and value moments against their
    expectations (6 sigma), in the sparse (binomial + sampled positions) and dense (Bernoulli
    cells) draws."""
    for q, k, dpad in ((0.003, 400, 4096), (0.3, 64, 512)):
        f = matkern.FJLT(k, density=q, random_state=7).fit(np.ones((2, dpad)))
        P = f.projection_
        cells = k * dpad
        assert abs(P.nnz - cells * q) <= 6 * math.sqrt(cells * q * (1 - q))
        rows = np.diff(P.indptr)
        # row counts ~ Binomial(dpad, q): sample variance close to dpad q (1 - q)
        var = dpad * q * (1 - q)
        assert abs(rows.var(ddof=1) / var - 1) <= 6 * math.sqrt(2 / (k - 1)) + 0.05
        # positions uniform: 8 column bins each hold ~1/8 of the nonzeros
        bins = np.bincount(P.indices * 8 // dpad, minlength=8)
        assert np.all(np.abs(bins - P.nnz / 8) <= 6 * math.sqrt(P.nnz / 8))
        v = P.data
        assert abs(v.mean()) <= 6 / math.sqrt(v.size)
        assert abs(v.var() - 1) <= 6 * math.sqrt(2 / v.size)
        assert P.has_sorted_indices and np.all(np.diff(P.indices[P.indptr[0] : P.indptr[1]]) > 0)
        # no duplicate cell
        Pc = P.copy()
        Pc.sum_duplicates()
        assert Pc.nnz == P.nnz


def _peak(f):
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        out = f()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_regression_fjlt_fit_memory():
    """FJLT(1024).fit on d = 65536 drew a dense k x d' mask (577 MB peak) to choose ~4k
    nonzeros; now about 2x the input + output (signs_ and P)."""
    X = np.random.default_rng(0).standard_normal((16, 65536)).astype(np.float32)
    f, peak = _peak(lambda: matkern.FJLT(1024, random_state=0).fit(X))
    P = f.projection_
    output = f.signs_.nbytes + P.data.nbytes + P.indices.nbytes + P.indptr.nbytes
    assert peak <= 2 * (X.nbytes + output) + (256 << 10), (peak, X.nbytes, output)


def test_fjlt_fit_memory_dense_projection():
    """A dense P (density 0.5): the draw's scratch is a fixed few MB, not k x d'."""
    X = np.ones((8, 8192), np.float32)
    f, peak = _peak(lambda: matkern.FJLT(512, density=0.5, random_state=0).fit(X))
    P = f.projection_
    output = f.signs_.nbytes + P.data.nbytes + P.indices.nbytes + P.indptr.nbytes
    assert peak <= 2 * (X.nbytes + output) + (256 << 10), (peak, X.nbytes, output)


def test_regression_fjlt_components_memory():
    """components_ built a dense d' x d identity and its transform; now row blocks of P."""
    X = np.ones((8, 16384), np.float32)
    f = matkern.FJLT(256, random_state=0).fit(X)
    M, peak = _peak(lambda: f.components_)
    assert M.shape == (256, 16384)
    assert peak <= 1.5 * M.nbytes + (1 << 20), (peak, M.nbytes)


def test_fjlt_refuses_what_cannot_fit():
    with pytest.raises(ValueError, match=r"FJLT.fit\(\): the projection P would need about .* GiB"):
        matkern.FJLT(2**31 - 1, density=1.0, random_state=0).fit(np.ones((2, 2**20), np.float32))
