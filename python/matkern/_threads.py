"""Thread control: matkern's own thread count, and one BLAS thread around small dense work.

``get_num_threads`` / ``set_num_threads`` / ``threads`` are the public API (re-exported by
``matkern``); the setting lives in the CPU module (cpp/threads.hpp), where every kernel call
takes its team from it. The default comes from, in order: ``MATKERN_NUM_THREADS``,
``OMP_NUM_THREADS``, then the CPUs this process may use (its affinity mask, capped by the
CPU quota of its cgroup, so a container started with ``--cpus=2`` means 2). threadpoolctl
sees the setting as a library of user_api "matkern".

The rest of this module:

NumPy's and SciPy's wheels each bundle their own OpenBLAS, each with a thread pool whose idle
workers spin for a while after every call. A sequence of small calls that alternates between
the two (``@`` / ``numpy.linalg`` and ``scipy.linalg``), with OpenMP kernels in between, then
has one pool's spinning workers holding the cores that the other pool's need: on a 2-core
machine a TruncatedSVD update ran 3x slower (15x with another process busy) than on one
thread. ``single_blas_thread()`` limits every loaded BLAS to one thread for the duration
(through threadpoolctl), from the main thread only; nested uses share one limit, lifted by
the outermost exit.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings

from . import _checks

_ENV_VARS = ("MATKERN_NUM_THREADS", "OMP_NUM_THREADS")
_origin = {"source": None}

_state = {"controller": None, "depth": 0, "saved": []}


def _controller():
    if _state["controller"] is None:
        try:
            import scipy.linalg  # noqa: F401  (load SciPy's BLAS before the controller scans)
            from threadpoolctl import ThreadpoolController

            # Scanning the loaded libraries takes ~8 ms: once. A BLAS loaded later (another
            # package's) is not limited.
            _state["controller"] = ThreadpoolController()
        except Exception:  # threadpoolctl missing or unable to inspect: run unlimited
            _state["controller"] = False
    return _state["controller"]


@contextlib.contextmanager
def single_blas_thread():
    """Context manager: BLAS libraries run one thread inside it, when entered from the main
    thread (OpenBLAS ignores raising its thread count from other threads, so a limit set
    there could not be lifted; elsewhere, and without threadpoolctl, it does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ctl = _controller()
    top = ctl and _state["depth"] == 0
    if top:
        # The libraries' own getters and setters: threadpoolctl's limiter objects cache the
        # counts they saw.
        libs = [lc for lc in ctl.lib_controllers if lc.user_api == "blas"]
        _state["saved"] = [(lc, lc.get_num_threads()) for lc in libs]
        for lc in libs:
            lc.set_num_threads(1)
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if top:
            for lc, n in _state["saved"]:
                lc.set_num_threads(n)
            _state["saved"] = []


# ------------------------------------------------------------------ matkern's thread count
def _parse_env(var):
    """The positive integer in environment variable ``var`` (OMP_NUM_THREADS may be a list
    of per-level counts: its first), or None when unset; a bad value is warned about and
    ignored rather than failing the import."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    try:
        n = int(raw.split(",")[0])
        if n >= 1:
            return n
    except ValueError:
        pass
    warnings.warn(
        f"matkern: ignoring {var}={raw!r} (expected a positive integer)",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


def cgroup_cpu_limit(root="/sys/fs/cgroup", proc_self="/proc/self/cgroup"):
    """CPUs this process's cgroup may use by its CFS quota (a float, e.g. 2.0 for a container
    run with ``--cpus=2``), or None when no quota applies or it cannot be read. cgroup v2:
    the smallest ``cpu.max`` on the path from this process's group to the root; v1:
    ``cpu.cfs_quota_us / cpu.cfs_period_us``."""
    try:
        with open(proc_self) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2 unified hierarchy
            rel = path.strip("/")
            while True:
                limits.append(_read_quota(os.path.join(root, rel, "cpu.max"), v2=True))
                if not rel:
                    break
                rel = os.path.dirname(rel)
        elif "cpu" in controllers.split(","):
            for base in (os.path.join(root, controllers), os.path.join(root, "cpu")):
                for rel in (path.strip("/"), ""):
                    limits.append(
                        _read_quota(os.path.join(base, rel, "cpu.cfs_quota_us"), v2=False)
                    )
    limits = [q for q in limits if q is not None]
    return min(limits) if limits else None


def _read_quota(path, v2):
    try:
        with open(path) as f:
            text = f.read().split()
        if v2:
            quota, period = text[0], text[1] if len(text) > 1 else "100000"
        else:
            quota = text[0]
            with open(path.replace("cpu.cfs_quota_us", "cpu.cfs_period_us")) as f:
                period = f.read().split()[0]
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError, IndexError):
        return None


def available_cpus():
    """(count, source): the CPUs this process may run on, from its affinity mask, capped by
    its cgroup's CPU quota (rounded up: a quota of 1.5 CPUs keeps 2 threads busy)."""
    try:
        n, source = len(os.sched_getaffinity(0)), "affinity mask"
    except (AttributeError, OSError):
        n, source = os.cpu_count() or 1, "os.cpu_count()"
    quota = cgroup_cpu_limit()
    if quota is not None and math.ceil(quota) < n:
        n, source = max(1, math.ceil(quota)), f"cgroup CPU quota ({quota:g} CPUs)"
    return n, source


def default_threads():
    """(count, source) of the default thread setting: MATKERN_NUM_THREADS, then
    OMP_NUM_THREADS, then :func:`available_cpus`."""
    for var in _ENV_VARS:
        n = _parse_env(var)
        if n is not None:
            return n, var
    return available_cpus()


def _cpu():
    from . import _dispatch

    return _dispatch.cpu()


@contextlib.contextmanager
def thread_grant():
    """Take a team from matkern's thread budget for Python-level parallel work (as a kernel
    call does for its duration) and yield its size (at least 1); given back on exit. Calls
    running at once from several Python threads share the budget instead of each starting
    get_num_threads() threads."""
    try:
        grant = _cpu().ThreadGrant()
    except RuntimeError:  # no CPU module: the setting alone
        yield get_num_threads()
        return
    try:
        yield grant.granted
    finally:
        grant.release()


def pool_contended():
    """Whether the helper pool's contention guard keeps its helpers back now (recent
    parallel calls lost more time waiting for helpers whose cores were taken than the helpers
    saved): Python-level parallel work then runs on the calling thread too."""
    try:
        return bool(_cpu().pool_contended())
    except RuntimeError:  # no CPU module
        return False


_workers = {"pool": None, "pid": None}


def _executor():
    from concurrent.futures import ThreadPoolExecutor

    if _workers["pid"] != os.getpid():  # none yet, or inherited through fork (no threads)
        _workers["pool"] = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1))
        _workers["pid"] = os.getpid()
    return _workers["pool"]


def run_pieces(fn, n, threads):
    """[fn(0), ..., fn(n - 1)] computed on the calling thread and up to ``threads - 1`` worker
    threads, as the CPU kernels' helper pool does it: pieces are claimed one at a time, the
    caller starts at once and waits only for pieces a worker has claimed, never for a worker
    that has not started (its core taken by another process). The first exception raised by
    a piece is raised here, after every claimed piece has finished."""
    results = [None] * n
    errors = []
    claim = iter(range(n)).__next__  # one piece per call, atomic under the GIL
    cond = threading.Condition()
    done = [0]

    def work():
        while True:
            try:
                i = claim()
            except StopIteration:
                return
            try:
                results[i] = fn(i)
            except BaseException as exc:  # reported by the caller
                errors.append(exc)
            with cond:
                done[0] += 1
                cond.notify_all()

    if threads > 1 and n > 1:
        pool = _executor()
        for _ in range(min(threads, n) - 1):
            pool.submit(work)
    work()
    with cond:
        cond.wait_for(lambda: done[0] == n)
    if errors:
        raise errors[0]
    return results


def _init_from_environment():
    """Called once at import: the default setting goes into the CPU module, and threadpoolctl
    learns to see it."""
    from . import _dispatch

    if _dispatch._cpu is None:
        return
    n, source = default_threads()
    _dispatch._cpu.set_num_threads(n)
    _origin["source"] = source
    _register_threadpoolctl()


def get_num_threads() -> int:
    """Threads a matkern CPU kernel called now from this thread may use: this thread's own
    count (:func:`threads`) if it has one, else the process-wide setting.

    Example
    -------
    >>> import matkern
    >>> with matkern.threads(1):
    ...     matkern.get_num_threads()
    1
    """
    c = _cpu()
    setting, local = c.get_num_threads(), c.get_local_threads()
    return min(local, setting) if local else setting


def set_num_threads(n) -> None:
    """Set the process-wide thread count, which is also the process's budget: kernel calls
    running at once from several Python threads share it (each gets what is free, at least
    one thread, and never waits). Overrides the environment and ``threadpoolctl`` defaults
    until changed again; ``threadpoolctl.threadpool_limits`` changes it for its scope.

    Parameters
    ----------
    n : int >= 1

    Example
    -------
    >>> import matkern
    >>> old = matkern.get_num_threads()
    >>> matkern.set_num_threads(1)
    >>> matkern.set_num_threads(old)
    """
    n = _checks.check_int(n, "n", "set_num_threads", min_value=1)
    _cpu().set_num_threads(n)
    _origin["source"] = "set_num_threads()"


def thread_setting_source() -> str:
    """Where the process-wide setting came from: "set_num_threads()", "MATKERN_NUM_THREADS",
    "OMP_NUM_THREADS", "affinity mask", "cgroup CPU quota (...)" (threadpoolctl changes
    show as themselves only in the count)."""
    return _origin["source"] or "not set"


@contextlib.contextmanager
def threads(n):
    """Context manager: matkern's kernels called from *this* Python thread use at most ``n``
    threads inside it (other threads' calls are unaffected); the previous count comes back
    on exit, nested uses included. ``n`` above the process-wide setting is capped by it.

    Example
    -------
    >>> import numpy as np, matkern
    >>> with matkern.threads(1):
    ...     y = matkern.fwht(np.ones(8))
    """
    n = _checks.check_int(n, "n", "threads", min_value=1)
    c = _cpu()
    previous = c.get_local_threads()
    c.set_local_threads(n)
    try:
        yield n
    finally:
        c.set_local_threads(previous)


def _register_threadpoolctl():
    """Let threadpoolctl find matkern's setting (user_api "matkern") through the two C
    functions the CPU module exports, so ``threadpool_limits(1)`` limits matkern too."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register") or _origin.get("registered"):
        return

    class MatkernController(threadpoolctl.LibController):
        user_api = "matkern"
        internal_api = "matkern"
        filename_prefixes = ("_cpu.",)
        check_symbols = ("matkern_get_num_threads", "matkern_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.matkern_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.matkern_set_num_threads(int(num_threads))

        def get_version(self):
            from . import __version__

            return __version__

    threadpoolctl.register(MatkernController)
    _origin["registered"] = True
