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


# ------------------------------------------------------------ matkern's own thread control
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import scipy.sparse as sp  # noqa: E402

import matkern  # noqa: E402
from matkern import _threads  # noqa: E402
from matkern._dispatch import cpu  # noqa: E402


@pytest.fixture
def setting():
    """Restore the process-wide setting after a test that changes it."""
    old = cpu().get_num_threads()
    yield
    cpu().set_num_threads(old)


def test_set_get_and_scope_restores(setting):
    matkern.set_num_threads(3)
    assert matkern.get_num_threads() == 3
    with matkern.threads(1):
        assert matkern.get_num_threads() == 1
        assert cpu().hold_threads(0.0) == 1
        with matkern.threads(2):
            assert matkern.get_num_threads() == 2
        assert matkern.get_num_threads() == 1
    assert matkern.get_num_threads() == 3
    with matkern.threads(8):  # capped by the process-wide setting
        assert matkern.get_num_threads() == 3


def test_scope_is_per_thread(setting):
    matkern.set_num_threads(4)
    inside, other = threading.Event(), []

    def worker():
        inside.wait()
        other.append(matkern.get_num_threads())

    t = threading.Thread(target=worker)
    t.start()
    with matkern.threads(1):
        inside.set()
        t.join()
        assert matkern.get_num_threads() == 1
    assert other == [4]


def test_bad_thread_counts_are_named():
    with pytest.raises(ValueError, match="set_num_threads\\(\\): n must be >= 1, got 0"):
        matkern.set_num_threads(0)
    with pytest.raises(TypeError, match="threads\\(\\): n must be an integer, got float"):
        with matkern.threads(1.5):
            pass


def test_threadpoolctl_limits_matkern(setting):
    matkern.set_num_threads(2)
    info = [d for d in threadpoolctl.threadpool_info() if d["user_api"] == "matkern"]
    assert len(info) == 1 and info[0]["num_threads"] == 2
    with threadpoolctl.threadpool_limits(1):
        assert matkern.get_num_threads() == 1
        assert cpu().hold_threads(0.0) == 1
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):  # OpenMP's own limit counts
        assert cpu().hold_threads(0.0) == 1
    assert matkern.get_num_threads() == 2


def test_concurrent_calls_share_one_budget(setting):
    """Four threads at once with a budget of 2: every call runs with at least one thread, and
    the threads held at any moment never exceed max(budget, calls running)."""
    matkern.set_num_threads(2)
    teams, peak, stop = [], [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], cpu().threads_in_use())

    w = threading.Thread(target=watch)
    w.start()
    calls = [lambda: teams.append(cpu().hold_threads(0.2)) for _ in range(4)]
    from conftest import run_in_threads

    run_in_threads(calls)
    stop.set()
    w.join()
    assert sorted(teams)[0] == 1 and all(t >= 1 for t in teams)
    assert sum(teams) <= 2 + 3  # the first may take both; the rest find none free and take 1
    assert peak[0] <= 5 and cpu().threads_in_use() == 0


def test_a_refused_call_returns_its_grant(setting):
    """Bindings check their arguments inside their call guard (GIL released, grant held): an
    error still returns the grant, and arrives as the same ValueError."""
    matkern.set_num_threads(2)
    bad_indptr = np.array([1, 1, 2], np.int64)
    with pytest.raises(ValueError, match="svd_gather: indptr must start at 0"):
        cpu().svd_gather(
            bad_indptr, np.zeros(2, np.int32), np.ones(2), np.zeros((5, 3)), np.empty((2, 3))
        )
    assert cpu().threads_in_use() == 0


def _default_in_subprocess(env_extra, pre=""):
    env = {k: v for k, v in os.environ.items() if k not in _threads._ENV_VARS}
    env.update(env_extra)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(matkern.__file__))
    code = (
        pre + "import matkern, matkern._threads as t\n"
        "print(matkern.get_num_threads(), '|', t.thread_setting_source())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    n, src = r.stdout.strip().split(" | ")
    return int(n), src, r.stderr


def test_default_order_env_then_affinity():
    assert _default_in_subprocess({"MATKERN_NUM_THREADS": "5", "OMP_NUM_THREADS": "3"})[:2] == (
        5,
        "MATKERN_NUM_THREADS",
    )
    assert _default_in_subprocess({"OMP_NUM_THREADS": "3,1"})[:2] == (3, "OMP_NUM_THREADS")
    n, src, err = _default_in_subprocess(
        {"MATKERN_NUM_THREADS": "lots"}, pre="import os; os.sched_setaffinity(0, {0})\n"
    )
    assert (n, src) == (1, "affinity mask") and "ignoring MATKERN_NUM_THREADS='lots'" in err


def test_cgroup_quota_is_read(tmp_path):
    """A cgroup v2 tree whose group allows 1.5 CPUs (and whose parent allows 4) limits to 1.5;
    v1's quota/period files likewise; "max" and missing files mean no limit."""
    proc = tmp_path / "cgroup"
    proc.write_text("0::/a/b\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "cpu.max").write_text("400000 100000\n")
    (tmp_path / "a" / "b" / "cpu.max").write_text("150000 100000\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path), str(proc)) == 1.5
    (tmp_path / "a" / "b" / "cpu.max").write_text("max 100000\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path), str(proc)) == 4.0
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "job").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu,cpuacct" / "job" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:memory:/x\n3:cpu,cpuacct:/job\n")
    assert _threads.cgroup_cpu_limit(str(v1), str(proc)) == 2.0
    proc.write_text("3:cpu,cpuacct:/\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path / "none"), str(proc)) is None


def test_results_identical_for_any_thread_count(setting, tmp_path):
    """1, 2 and "many" threads give bit-identical results on every parallel route. "Many" is
    16 in a subprocess with OMP_NUM_THREADS=16 (in this process a call's team is capped by
    OpenMP's limit, the core count), so chunking for 16 threads is exercised on any machine."""
    from thread_cases import kernel_results

    with matkern.threads(1):
        one = kernel_results()
    matkern.set_num_threads(2)
    two = kernel_results()
    env = dict(os.environ, OMP_NUM_THREADS="16", MATKERN_NUM_THREADS="16")
    tests = os.path.dirname(os.path.abspath(__file__))
    src = os.path.dirname(os.path.dirname(os.path.abspath(matkern.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([src, tests, env.get("PYTHONPATH", "")])
    out = tmp_path / "many.npz"
    subprocess.run(
        [sys.executable, os.path.join(tests, "thread_cases.py"), str(out)],
        env=env,
        check=True,
        timeout=300,
    )
    many = np.load(out)
    assert sorted(many.files) == sorted(one)
    for k in one:
        assert type(one[k]) is np.ndarray, k
        np.testing.assert_array_equal(one[k], many[k], err_msg=k)
        np.testing.assert_array_equal(two[k], many[k], err_msg=k)


# --------------------------------------------- the helper pool (cpp/parallel.hpp) under stress
def test_pool_many_callers_stay_correct(setting):
    """Eight Python threads at once, each with its own thread count, on a budget of 3: every
    product equals the one computed alone (bit for bit: rows never cross chunks)."""
    matkern.set_num_threads(3)
    mats = [
        sp.random(2000 + 300 * i, 400, density=0.02, format="csr", random_state=i, dtype=np.float32)
        for i in range(8)
    ]
    B = np.random.default_rng(0).standard_normal((400, 40)).astype(np.float32)
    alone = [matkern.spmm(A, B) for A in mats]

    def call(i):
        def run():
            with matkern.threads(1 + i % 3):
                return matkern.spmm(mats[i], B)

        return run

    from conftest import run_in_threads

    got = run_in_threads([call(i) for i in range(8)], repeats=20)
    for g, a in zip(got, alone):
        np.testing.assert_array_equal(g, a)
    assert cpu().threads_in_use() == 0


def test_pool_and_openmp_runtimes_agree(setting):
    matkern.set_num_threads(2)
    A = sp.random(5000, 300, density=0.03, format="csr", random_state=3, dtype=np.float64)
    B = np.asfortranarray(np.random.default_rng(3).standard_normal((300, 64)))
    try:
        cpu().set_parallel_runtime("openmp")
        ref = matkern.spmm(A, B)
    finally:
        cpu().set_parallel_runtime("pool")
    np.testing.assert_array_equal(matkern.spmm(A, B), ref)
    with pytest.raises(ValueError, match="must be 'pool' or 'openmp'"):
        cpu().set_parallel_runtime("tbb")


def test_pool_after_fork_does_not_hang():
    """A forked child has no pool helpers; its calls run on the caller alone, never waiting."""
    code = """
import os, numpy as np, scipy.sparse as sp, matkern
A = sp.random(4000, 300, density=0.03, format="csr", random_state=0, dtype=np.float32)
B = np.ones((300, 32), np.float32)
y = matkern.spmm(A, B)  # the pool exists now
pid = os.fork()
if pid == 0:
    ok = np.array_equal(matkern.spmm(A, B), y)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, status
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(matkern.__file__)))
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_python_level_work_takes_its_threads_from_the_budget():
    """matfun's stack pieces run in Python threads: they hold a grant from the same budget as
    the kernels, so a second grant while the first is held gets what is left (at least 1)."""
    from matkern import _dispatch, _threads

    cpu = _dispatch.cpu()
    with matkern.threads(2):
        before = cpu.threads_in_use()
        with _threads.thread_grant() as first:
            assert first == min(2, matkern.get_num_threads())
            assert cpu.threads_in_use() == before + first
            with _threads.thread_grant() as second:
                assert second == max(1, min(2, matkern.get_num_threads()) - first)
        assert cpu.threads_in_use() == before
