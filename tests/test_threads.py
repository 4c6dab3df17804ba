"""matkern._threads.single_blas_thread: BLAS runs one thread inside it (main thread), nested
uses keep the limit until the outermost exit, and uses from other threads change nothing, so
the original counts always come back."""

import threading

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (both BLAS libraries loaded before any count)

threadpoolctl = pytest.importorskip("threadpoolctl")

from matkern._threads import single_blas_thread  # noqa: E402


def _blas_threads():
    return [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]


def test_limits_inside_and_restores_after_nesting():
    before = _blas_threads()
    with single_blas_thread():
        assert all(n == 1 for n in _blas_threads())
        with single_blas_thread():
            assert all(n == 1 for n in _blas_threads())
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_uses_from_worker_threads_leave_the_limits_alone():
    before = _blas_threads()
    inside = threading.Barrier(5)
    seen = []

    def work():
        with single_blas_thread():
            inside.wait()
            a = np.random.default_rng(0).standard_normal((64, 64))
            np.linalg.svd(a @ a.T)
            seen.append(True)

    threads = [threading.Thread(target=work) for _ in range(4)]
    with single_blas_thread():
        for t in threads:
            t.start()
        inside.wait()  # the main thread and all four workers are inside at once
        for t in threads:
            t.join()
        assert all(n == 1 for n in _blas_threads())  # the main thread's limit holds
    assert len(seen) == 4
    assert _blas_threads() == before
