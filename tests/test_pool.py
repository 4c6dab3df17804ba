"""The helper pool (cpp/parallel.cpp) when a helper loses its core, through the CPU module's
test hooks: every helper stalls either after taking its seat in a call and before claiming
a chunk (the call must not wait for it: the caller runs every chunk), or after claiming its
first chunk (the call waits for that chunk, and the contention guard then keeps the next
calls on the caller alone). Results are compared bit for bit with one thread: the chunks are
the same whoever runs them. Time bounds are loose: a stalled helper sleeps 0.3-1.5 s, the
calls themselves take milliseconds (the guard test skips when its call's own pieces took
longer than the stall, e.g. under a sanitizer on a loaded machine: then the helpers did not
cost more than they saved)."""

import time

import numpy as np
import pytest
import scipy.sparse as sp

import matkern
from matkern._dispatch import cpu


@pytest.fixture
def pool():
    try:
        c = cpu()
    except RuntimeError as exc:
        pytest.skip(f"no CPU module: {exc}")
    if c.omp_max_threads() < 2:
        pytest.skip("one CPU: calls never reach the pool")
    old_policy, old_n = c.pool_policy(), c.get_num_threads()
    c.set_num_threads(2)
    yield c
    c.set_pool_helper_stall(0.0)
    c.set_pool_policy(**old_policy)
    c.set_num_threads(old_n)


def _problem(rows=4000):
    A = sp.random(rows, 500, density=0.02, format="csr", random_state=0, dtype=np.float32)
    B = np.random.default_rng(0).standard_normal((500, 64)).astype(np.float32)
    with matkern.threads(1):
        ref = matkern.spmm(A, B)
    return A, B, ref


def _wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_a_call_never_waits_for_a_helper_that_has_not_started(pool):
    pool.set_pool_policy(**{**pool.pool_policy(), "guard": False})
    A, B, ref = _problem()
    matkern.spmm(A, B)  # the helper exists
    pool.set_pool_helper_stall(1.5)
    before = pool.pool_stats()
    t0 = time.perf_counter()
    calls = 0
    # until a helper has joined a call (and stalled there); the calls after it find none free
    while calls < 3 or (calls < 10 and pool.pool_stats()["seats_taken"] == before["seats_taken"]):
        np.testing.assert_array_equal(matkern.spmm(A, B), ref)
        calls += 1
    elapsed = time.perf_counter() - t0
    after = pool.pool_stats()
    pool.set_pool_helper_stall(0.0)
    if after["seats_taken"] == before["seats_taken"]:
        pytest.skip("no helper joined a call in 10 calls")
    assert elapsed < 1.0, elapsed
    assert after["jobs"] - before["jobs"] == calls
    assert after["helper_chunks"] == before["helper_chunks"]
    assert after["caller_chunks"] - before["caller_chunks"] >= calls * 4
    # the helper comes back, finds every chunk of its call taken and claims none
    _wait_for(lambda: pool.pool_stats()["late_helpers"] > before["late_helpers"])
    np.testing.assert_array_equal(matkern.spmm(A, B), ref)


def _stalled_in_chunk_call(pool, A, B, ref, seconds):
    """A call during which a helper claimed a chunk and sat on it (retried while the caller
    was fast enough to claim every chunk first); returns its time."""
    pool.set_pool_helper_stall(seconds, in_chunk=True)
    for _ in range(10):
        before = pool.pool_stats()
        t0 = time.perf_counter()
        np.testing.assert_array_equal(matkern.spmm(A, B), ref)
        elapsed = time.perf_counter() - t0
        if pool.pool_stats()["helper_chunks"] > before["helper_chunks"]:
            pool.set_pool_helper_stall(0.0)
            return elapsed
    pytest.skip("the helper never claimed a chunk in 10 calls")


def test_a_call_waits_for_a_chunk_a_helper_claimed(pool):
    pool.set_pool_policy(**{**pool.pool_policy(), "guard": False})
    A, B, ref = _problem(40000)
    matkern.spmm(A, B)
    assert _stalled_in_chunk_call(pool, A, B, ref, 0.3) >= 0.25


def test_guard_keeps_calls_on_the_caller_after_a_helper_stalled(pool):
    pool.set_pool_policy(**{**pool.pool_policy(), "guard": True})
    A, B, ref = _problem(40000)
    matkern.spmm(A, B)
    backoffs = pool.pool_stats()["backoffs"]
    elapsed = _stalled_in_chunk_call(pool, A, B, ref, 1.0)
    t_end = time.perf_counter()
    if elapsed > 1.4:  # the caller's own pieces took > 0.4 s: as long as the wait, no loss
        pytest.skip(f"machine too slow for the guard's arithmetic ({elapsed:.2f} s)")
    # it waited > 0.6 s for less help than that: the next 250 ms run on the caller alone
    assert pool.pool_stats()["backoffs"] == backoffs + 1
    before = pool.pool_stats()
    contended = pool.pool_contended()
    np.testing.assert_array_equal(matkern.spmm(A, B), ref)
    after = pool.pool_stats()
    if time.perf_counter() - t_end < 0.2:  # a loaded machine may take longer between calls
        assert contended
        assert after["guarded_jobs"] == before["guarded_jobs"] + 1
        assert after["helper_chunks"] == before["helper_chunks"]
    # without the guard, the helpers are back at once
    pool.set_pool_policy(**{**pool.pool_policy(), "guard": False})
    assert not pool.pool_contended()


def test_pool_policy_checks_its_arguments(pool):
    with pytest.raises(ValueError, match="spin times must be >= 0"):
        pool.set_pool_policy(helper_spin_us=-1, caller_spin_us=0, helper_batch=False, guard=True)
    with pytest.raises(ValueError, match=r"seconds must be in \[0, 60\]"):
        pool.set_pool_helper_stall(-1.0)


def test_python_pieces_never_wait_for_a_worker_that_has_not_started():
    """_threads.run_pieces (matfun's stacks): with every worker thread busy elsewhere, the
    caller computes all pieces itself and returns; a worker that comes later claims none."""
    import threading

    from matkern import _threads

    pool = _threads._executor()
    release = threading.Event()
    blockers = [pool.submit(release.wait, 30) for _ in range(pool._max_workers)]
    try:
        caller = threading.get_ident()
        t0 = time.perf_counter()
        got = _threads.run_pieces(lambda i: (i * i, threading.get_ident()), 12, 4)
        assert time.perf_counter() - t0 < 5.0
        assert [g[0] for g in got] == [i * i for i in range(12)]
        assert all(g[1] == caller for g in got)
    finally:
        release.set()
    for b in blockers:
        b.result(timeout=30)
    # with free workers the pieces still all come back, in order
    assert [g[0] for g in _threads.run_pieces(lambda i: (i, 0), 40, 2)] == list(range(40))
    with pytest.raises(ZeroDivisionError):
        _threads.run_pieces(lambda i: 1 / (i - 5), 10, 2)
