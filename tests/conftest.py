"""Shared test fixtures: every test runs over the backends present; the others are shown as
skipped with the reason."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import matkern
from matkern import _dispatch

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def backend_available(name: str) -> tuple[bool, str]:
    if name == "reference":
        return True, ""
    if name == "cpu":
        return (_dispatch._cpu is not None, _dispatch._cpu_error or "")
    ok, why = _dispatch.gpu_status()
    return ok, why


def _backend_params():
    params = []
    for name in _dispatch.BACKENDS:
        ok, why = backend_available(name)
        marks = [] if ok else [pytest.mark.skip(reason=f"{name} backend unavailable: {why}")]
        if name == "cuda":
            marks.append(pytest.mark.gpu)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    """'reference', 'cpu' or 'cuda' (skipped where not usable)."""
    return request.param


@pytest.fixture(params=[p for p in _backend_params() if p.values[0] != "reference"])
def compiled_backend(request):
    """'cpu' or 'cuda' only: for tests of the compiled kernels against the reference."""
    return request.param


def to_backend(a, backend):
    """Move a NumPy array to the array type the backend takes (CuPy for 'cuda')."""
    if backend == "cuda":
        return _dispatch.cupy_module().asarray(a)
    return a


def to_numpy(a):
    return _dispatch.to_host(a)


@pytest.fixture
def xp_of():
    return to_backend


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a usable CUDA GPU and CuPy")
    config.addinivalue_line("markers", "slow: long-running (skipped with -m 'not slow')")


def pytest_report_header(config):
    b = matkern.backends()
    return (
        f"matkern {b['version']}: simd={b['simd']} omp_threads={b['omp_threads']} "
        f"cuda_built={b['cuda_built']} gpu_usable={b['gpu_usable']} ({b['gpu_reason']}) "
        f"MATKERN_SIMD={os.environ.get('MATKERN_SIMD', '')}"
    )


# Tolerances keyed by dtype, for results that differ from the reference only by the order of
# floating-point additions: a few ulps times the growth of the sum.
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def simd_runs(code, suffix=".npy"):
    """Run ``code`` in two fresh interpreters, one with MATKERN_SIMD=portable and one with the
    default (AVX2 where the CPU has it); the code saves its results to ``sys.argv[1]`` and
    prints ``matkern.backends()['simd']``. Returns the two loaded results, portable first, after
    checking that the first run really took the portable kernels. A subprocess, so that no
    kernel choice cached in the process can leak between the two runs."""
    import subprocess
    import sys
    import tempfile

    outs = []
    for simd in ("portable", ""):
        path = os.path.join(tempfile.mkdtemp(), "r" + suffix)
        env = dict(os.environ, MATKERN_SIMD=simd)
        r = subprocess.run(
            [sys.executable, "-c", code, path], env=env, capture_output=True, text=True, check=True
        )
        outs.append((r.stdout.strip().splitlines()[-1], np.load(path)))
    assert outs[0][0] == "portable"
    return outs[0][1], outs[1][1]


SIMD_NAMES = {"portable": "portable", "avx2": "avx2+fma", "avx512_vnni": "avx512_vnni"}


def simd_level_run(level, code, suffix=".npy"):
    """Run ``code`` (as in ``simd_runs``) in a fresh interpreter with MATKERN_SIMD=level and
    return its loaded result; skip the calling test when this CPU (or build) lacks the level,
    which matkern then caps at the CPU's own."""
    import subprocess
    import sys
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "r" + suffix)
    env = dict(os.environ, MATKERN_SIMD=level)
    r = subprocess.run(
        [sys.executable, "-c", code, path], env=env, capture_output=True, text=True, check=True
    )
    ran = r.stdout.strip().splitlines()[-1]
    if ran != SIMD_NAMES[level]:
        pytest.skip(f"this CPU or build has no {level} kernels (ran {ran})")
    return np.load(path)


def run_in_threads(calls, repeats=1):
    """Run each zero-argument callable in ``calls`` in a thread of its own, all at once, each
    ``repeats`` times; return the last result of each, in order. An exception raised in a
    thread is raised here (a plain Thread would swallow it)."""
    import threading

    results = [None] * len(calls)
    errors = []

    def work(i):
        try:
            for _ in range(repeats):
                results[i] = calls[i]()
        except BaseException as exc:  # re-raised in the calling thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def probe(code, timeout=120):
    """Run ``code`` in a fresh interpreter (matkern importable, numpy as np and scipy.sparse as
    sp already imported) so that a segfault or abort fails the calling test instead of killing
    the run. Returns (returncode, stdout, stderr); a negative return code is a signal (a crash).
    Tests use ``assert_no_crash`` below; this is the raw form."""
    import subprocess
    import sys
    import textwrap

    pre = "import numpy as np, scipy.sparse as sp, matkern\n"
    env = dict(os.environ)
    src = str(pathlib.Path(matkern.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-c", pre + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return r.returncode, r.stdout, r.stderr


def assert_no_crash(code, expect=None, timeout=120):
    """``code`` must run to its end in a subprocess, or stop with a Python exception whose
    type name is in ``expect`` (e.g. ``("ValueError", "TypeError")``) -- never a signal, a heap
    abort or an exception of another kind. Returns the subprocess's stdout."""
    rc, out, err = probe(code, timeout)
    assert rc >= 0, f"crashed with signal {-rc}:\n{err[-3000:]}"
    if rc == 0:
        return out
    last = err.strip().splitlines()[-1] if err.strip() else ""
    kind = last.split(":", 1)[0].rsplit(".", 1)[-1]
    assert expect and kind in expect, f"exit {rc}, expected one of {expect}:\n{err[-3000:]}"
    return out
