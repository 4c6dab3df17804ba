"""Robustness of TruncatedSVD (issue #15): corrupted sparse inputs never crash, fitted state is
owned, the cpu backend agrees with the reference on every kind of valid input.

Crash probes run in a subprocess (``conftest.assert_no_crash``): a segfault or heap abort fails
the test instead of killing the run, and each probe makes a valid call after the refused ones,
so that a silent out-of-bounds write shows up as an abort there.

Tolerances (property tests), all relative to the largest singular value s0:

- cpu vs reference, singular values and the rank-k product U diag(s) V^T: 1e-9 * s0. The two
  backends run the same algorithm and the same LAPACK calls; they differ only in the order
  of the sums in the gather / Gram / scatter kernels (a few ulps), amplified by the small
  SVDs. The data have exact rank r <= k (sparse low-rank factors), so the rank-k product has
  a gap of s_r / s0 >= ~1e-3 to the discarded part and is well conditioned even where the
  individual singular vectors are not (close singular values).
- against numpy's SVD of the whole (appended) matrix, singular values: 1e-7 * s0. The
  updates are exact for rank <= k in exact arithmetic; the "sparse" method's Gram floor
  drops complement directions below 1e-8 of a column's squared norm, i.e. ~1e-8 relative
  in the worst case (rounding noise for updates inside the current span).
- mutation of the caller's arrays after fit/add_rows: bit-identical results (the state is a
  copy; nothing is recomputed from the caller's memory).

Scales: 10**-100 .. 10**100 in float64 and 10**-15 .. 10**15 in float32 (squares of the
entries must stay normal numbers: the Gram kernel squares them in float64).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import matkern
from conftest import assert_no_crash, backend_available
from sparse_corruption import BAD_SOURCE, KINDS, as_format

hyp = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

needs_cpu = pytest.mark.skipif(not backend_available("cpu")[0], reason="cpu backend unavailable")

# --------------------------------------------------------------------------- crash probes
# Builds a corrupted (n_rows x n_cols) matrix in format fmt, corruption kind.
_BAD = (
    BAD_SOURCE
    + r"""

rng = np.random.default_rng(0)
A = rng.standard_normal((30, 20))
"""
)

_KINDS = KINDS
_CASES = [(f, k) for f, ks in _KINDS.items() for k in ks]


@needs_cpu
@pytest.mark.parametrize("fmt,kind", _CASES, ids=[f"{f}-{k}" for f, k in _CASES])
def test_corrupted_index_every_entry_point(fmt, kind):
    """Every public entry point of TruncatedSVD refuses the corrupted matrix with ValueError
    (before scipy converts it), on every method; valid calls afterwards still work."""
    code = (
        _BAD
        + f"""
fmt, kind = {fmt!r}, {kind!r}
for method in ("sparse", "zha-simon", "gkl", "rpi", "auto"):
    for init in ("dense", "lanczos", "randomized"):
        refused(lambda: matkern.TruncatedSVD(3, method=method, init=init).fit(bad(fmt, kind, (30, 20))),
                "fit")
    svd = matkern.TruncatedSVD(3, method=method, random_state=0).fit(A)
    refused(lambda: svd.add_rows(bad(fmt, kind, (4, 20))), "add_rows")
    refused(lambda: svd.partial_fit(bad(fmt, kind, (4, 20))), "partial_fit")
    refused(lambda: svd.add_columns(bad(fmt, kind, (30, 4))), "add_columns")
    Dg = sp.random(30, 2, density=0.3, format="csr", random_state=1)
    Eg = sp.random(20, 2, density=0.3, format="csr", random_state=2)
    refused(lambda: svd.update(bad(fmt, kind, (30, 2)), Eg), "update D")
    refused(lambda: svd.update(Dg, bad(fmt, kind, (20, 2))), "update E")
    refused(lambda: svd.transform(bad(fmt, kind, (5, 20))), "transform")
    # the heap is intact and the state unchanged: valid calls still work
    assert svd.n_updates_ == 0 and svd.n_samples_ == 30
    svd.update(Dg, Eg)
    svd.add_rows(sp.random(3, 20, density=0.3, format="csr", random_state=3))
    svd.add_columns(rng.standard_normal((33, 2)))
    assert np.isfinite(svd.singular_values_).all()
print("done")
"""
    )
    assert "done" in assert_no_crash(code, expect=())


@needs_cpu
@pytest.mark.parametrize("method", ["sparse", "zha-simon"])
def test_regression_issue15_huge_and_negative_index(method):
    """The issue's examples: indices [1, 10**7] on a 20-column CSR (segfaulted in the gather
    kernel), and a negative index (scipy's tocsc wrote out of bounds, the next call aborted)."""
    code = f"""
rng = np.random.default_rng(0)
svd = matkern.TruncatedSVD(3, method={method!r}).fit(rng.standard_normal((30, 20)))
E = sp.csr_matrix((np.ones(2), np.array([1, 10**7]), np.array([0, 1, 2])), shape=(2, 20))
try:
    svd.add_rows(E)
except ValueError as e:
    assert "E.indices must lie in [0, 20)" in str(e), e
else:
    raise AssertionError("accepted")
E = sp.random(2, 20, density=0.3, format="csr", random_state=0)
E.indices[0] = -1
for _ in range(2):
    try:
        svd.add_rows(E)
    except ValueError as e:
        assert "E.indices" in str(e)
    else:
        raise AssertionError("accepted")
svd.add_rows(sp.random(2, 20, density=0.3, format="csr", random_state=1))
svd.update(rng.standard_normal((32, 1)), rng.standard_normal((20, 1)))
print("done")
"""
    assert "done" in assert_no_crash(code, expect=())


@needs_cpu
def test_kernels_check_their_indices():
    """The compiled gather / Gram / scatter refuse out-of-range, negative and malformed index
    arrays themselves (ValueError from std::invalid_argument), whoever calls them."""
    code = r"""
from matkern import _dispatch
cpu = _dispatch.cpu()
B = np.zeros((5, 3)); out = np.empty((2, 3))
ip = np.array([0, 1, 2], np.int64); d = np.ones(2)
def refused(f):
    try:
        f()
    except ValueError:
        return
    raise AssertionError("accepted")
for ix in ([0, 5], [-1, 0], [0, 2**31 - 1]):
    refused(lambda: cpu.svd_gather(ip, np.array(ix, np.int32), d, B, out))
refused(lambda: cpu.svd_gather(np.array([0, 2, 1], np.int64), np.array([0, 1], np.int32), d, B, out))
refused(lambda: cpu.svd_gather(np.array([1, 1, 2], np.int64), np.array([0, 1], np.int32), d, B, out))
refused(lambda: cpu.svd_gather(np.array([0, 1, 9], np.int64), np.array([0, 1], np.int32), d, B, out))
G = np.empty((2, 2))
cp_ = np.array([0, 1, 2, 2, 2, 2], np.int64)
refused(lambda: cpu.svd_gram(ip, np.array([0, 1], np.int32), d, cp_, np.array([0, 7], np.int32), d, G))
refused(lambda: cpu.svd_gram(ip, np.array([0, 9], np.int32), d, cp_, np.array([0, 1], np.int32), d, G))
Y = np.ones((2, 3))
refused(lambda: cpu.svd_scatter(np.array([0, 9], np.int32), ip, np.array([0, 1], np.int32), d, Y, B))
refused(lambda: cpu.svd_scatter(np.array([1, 1], np.int32), ip, np.array([0, 1], np.int32), d, Y, B))
refused(lambda: cpu.svd_scatter(np.array([0, 1], np.int32), ip, np.array([0, 2], np.int32), d, Y, B))
cpu.svd_gather(ip, np.array([0, 4], np.int32), d, B, out)
print("done")
"""
    assert "done" in assert_no_crash(code, expect=())


# --------------------------------------------------------------------------- parameters
_PARAMS = [
    ("n_components", 2.5, TypeError),
    ("n_components", True, TypeError),
    ("n_components", 0, ValueError),
    ("n_components", -1, ValueError),
    ("method", "qr", ValueError),
    ("method", 3, ValueError),
    ("method", float("nan"), ValueError),
    ("init", "svd", ValueError),
    ("update_rank", 0, ValueError),
    ("update_rank", 1.5, TypeError),
    ("update_n_iter", -1, ValueError),
    ("update_n_iter", True, TypeError),
    ("sparse_density", float("nan"), ValueError),
    ("sparse_density", 2.0, ValueError),
    ("sparse_density", "x", TypeError),
    ("n_iter", -1, ValueError),
    ("n_oversamples", -2, ValueError),
    ("n_oversamples", None, TypeError),
    ("random_state", -1, ValueError),
    ("random_state", 1.5, TypeError),
    ("random_state", "seed", TypeError),
    ("random_state", True, TypeError),
    ("backend", "gpu", ValueError),
]


@pytest.mark.parametrize("name,value,exc", _PARAMS, ids=[f"{p}={v!r}" for p, v, _ in _PARAMS])
def test_bad_parameter_named(name, value, exc):
    kw = {"n_components": 2, name: value}
    n_comp = kw.pop("n_components")
    with pytest.raises(exc, match=name) as info:
        matkern.TruncatedSVD(n_comp, **kw).fit(np.ones((5, 4)))
    assert "got" in str(info.value)


# --------------------------------------------------------------------------- properties
def _low_rank(rng, m, n, r, density):
    """A sparse-ish matrix of rank <= r: (rows of B masked) @ (columns of C masked)."""
    B = rng.standard_normal((m, r)) * (rng.random((m, 1)) < max(density, 1.0 / m))
    Cm = rng.standard_normal((r, n)) * (rng.random((1, n)) < max(density, 1.0 / n))
    B[0] = rng.standard_normal(r)  # never all-zero
    Cm[:, 0] = rng.standard_normal(r)
    return B @ Cm


def _as_format(M, fmt, dtype, rng, dup):
    return as_format(M.astype(dtype), fmt, rng, dup)


@st.composite
def _svd_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape_kind = draw(st.sampled_from(["one_row", "one_col", "tall", "wide", "square"]))
    m, n = {
        "one_row": (1, draw(st.integers(1, 30))),
        "one_col": (draw(st.integers(1, 30)), 1),
        "tall": (draw(st.integers(20, 60)), draw(st.integers(2, 10))),
        "wide": (draw(st.integers(2, 10)), draw(st.integers(20, 60))),
        "square": (draw(st.integers(2, 25)),) * 2,
    }[shape_kind]
    k = draw(st.integers(1, min(m, n)))
    r = draw(st.integers(1, k))
    lim = 100 if dtype == np.float64 else 15
    scale = 10.0 ** draw(st.integers(-lim, lim))
    return dict(
        dtype=dtype,
        m=m,
        n=n,
        k=k,
        r=r,
        scale=scale,
        fmt=draw(st.sampled_from(["dense", "csr", "csc", "coo"])),
        dup=draw(st.booleans()),
        density=draw(st.sampled_from([0.05, 0.3, 1.0])),
        method=draw(st.sampled_from(["sparse", "zha-simon", "auto"])),
        c=draw(st.integers(1, 8)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _run(case, backend, mutate=False):
    rng = np.random.default_rng(case["seed"])
    m, n, c = case["m"], case["n"], case["c"]
    full = _low_rank(rng, m + c, n, case["r"], case["density"]) * case["scale"]
    A = _as_format(full[:m], case["fmt"], case["dtype"], rng, case["dup"])
    E = _as_format(full[m:], case["fmt"], case["dtype"], rng, case["dup"])
    svd = matkern.TruncatedSVD(case["k"], method=case["method"], init="dense", backend=backend).fit(
        A
    )
    svd.add_rows(E)
    res = (svd.singular_values_, svd.U_, svd.components_)
    if mutate:  # the caller reuses its buffers: the fitted state must not see it
        for X in (A, E):
            if sp.issparse(X):
                X.data[...] = np.nan
                if X.format == "coo":
                    X.row[...] = 0
                    X.col[...] = 0
                else:
                    X.indices[...] = 0
            else:
                X[...] = np.nan
        again = (svd.singular_values_, svd.U_, svd.components_)
        for a, b in zip(res, again):
            np.testing.assert_array_equal(a, b)
        # and later updates go on from the state, as for an untouched twin
        twin_E = full[:1].astype(case["dtype"])
        svd.add_rows(twin_E)
        res = res + (svd.singular_values_,)
    return res, full.astype(case["dtype"]).astype(np.float64)


@needs_cpu
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_svd_case())
def test_property_cpu_matches_reference(case):
    (s_c, U_c, V_c), full = _run(case, "cpu")
    (s_r, U_r, V_r), _ = _run(case, "reference")
    s0 = max(float(s_r[0]), np.finfo(float).tiny)
    np.testing.assert_allclose(s_c, s_r, rtol=0, atol=1e-9 * s0)
    np.testing.assert_allclose((U_c * s_c) @ V_c, (U_r * s_r) @ V_r, rtol=0, atol=1e-9 * s0)
    exact = np.linalg.svd(full, compute_uv=False)[: case["k"]]
    np.testing.assert_allclose(s_c, exact, rtol=0, atol=1e-7 * s0)


@needs_cpu
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_svd_case())
def test_property_state_owned_after_caller_mutation(case):
    """Mutating every array the caller passed (data to NaN, indices to 0) after fit/add_rows
    changes no result, and the next update matches an estimator that never saw it."""
    mutated, _ = _run(case, "cpu", mutate=True)
    rng = np.random.default_rng(case["seed"])
    m, n, c = case["m"], case["n"], case["c"]
    full = _low_rank(rng, m + c, n, case["r"], case["density"]) * case["scale"]
    A = _as_format(full[:m], case["fmt"], case["dtype"], rng, case["dup"])
    E = _as_format(full[m:], case["fmt"], case["dtype"], rng, case["dup"])
    twin = (
        matkern.TruncatedSVD(case["k"], method=case["method"], init="dense", backend="cpu")
        .fit(A)
        .add_rows(E)
    )
    twin.add_rows(full[:1].astype(case["dtype"]))
    np.testing.assert_array_equal(mutated[3], twin.singular_values_)


@needs_cpu
def test_copy_has_its_own_random_state():
    """copy() branches get independent generators: an update on one does not change the
    draws of the other ("rpi" draws a random start per update)."""
    rng = np.random.default_rng(1)
    A, E = rng.standard_normal((40, 30)), rng.standard_normal((5, 30))
    a = matkern.TruncatedSVD(4, method="rpi", random_state=0).fit(A)
    b = a.copy()
    c = a.copy()
    a.add_rows(E)  # advances a's generator only
    b.add_rows(E)
    c.add_rows(E)
    np.testing.assert_array_equal(b.singular_values_, c.singular_values_)
    np.testing.assert_array_equal(a.singular_values_, b.singular_values_)
