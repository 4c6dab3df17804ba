"""What every matkern task on a Dask worker shares: the thread count its kernels may use, the
one-per-graph keys of objects sent to every worker once, and the meta (empty) arrays that
tell Dask the chunk type (NumPy or CuPy) of a result.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading

import dask
import numpy as np
from dask.array.utils import meta_from_array

from .. import _threads

# pid of the worker process whose process-wide matkern budget was set to its nthreads
_budget_pid = [None]
_budget_lock = threading.Lock()


def _current_worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


# The narrowest dense operand (columns) that a CSR product reads in place from its row chunks
# (spmm_csr_blocks) instead of a gathered copy. Narrower, finding each row's block costs more
# than the gather: 1M-node power-law graph (10M edges, 8 blocks), one worker of 2 threads,
# in place against gathered, SparseMatrix @ B (B in row chunks of 125000): k = 16 123 / 88
# ms, 32 122 / 101, 64 130 / 147, 128 199 / 263; FastRP (0, 1, 1): dim 16 0.26 / 0.20 s,
# dim 32 0.30 / 0.25 s, dim 128 0.54 / 0.66 s.
IN_PLACE_MIN_COLUMNS = 64


def active_client():
    """The distributed Client this thread would submit to, or None (no client: Dask's local
    schedulers)."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def n_workers():
    """The number of workers of the active client's cluster now (0 without a client)."""
    client = active_client()
    if client is None:
        return 0
    info = client.scheduler_info(n_workers=1)
    return int(info.get("n_workers", len(info.get("workers", ()))))


def worker_nthreads():
    """The thread count of the Dask worker running this task, or None outside a worker."""
    worker = _current_worker()
    if worker is None:
        return None
    state = getattr(worker, "state", None)
    n = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None)
    return int(n) if n else None


def task_share(nthreads):
    """Threads for the task starting now in a worker of ``nthreads`` threads: those not
    running another task (at least 1). While the worker runs nthreads tasks each gets one,
    so the tasks never hold more threads than the worker has; a task running alone (a
    gather, the last block of a hop) gets them all."""
    state = getattr(_current_worker(), "state", None)
    try:
        others = max(0, int(state.executing_count) - 1)
    except (AttributeError, TypeError):
        others = 0
    return max(1, nthreads - others)


@contextlib.contextmanager
def kernel_threads():
    """Run the body with matkern's CPU kernels limited to the worker's own thread count.

    A worker with nthreads = t runs up to t tasks at once; matkern's process-wide budget is
    set (once per worker process) to t, and a task gets the threads no other task of the
    worker is running on (:func:`task_share`): the tasks running at once share t threads
    instead of each starting a full team; this OS thread's OpenMP limit is raised to that
    (the nanny starts workers with OMP_NUM_THREADS=1, which caps matkern's grant: every
    kernel ran on one thread before). Outside a distributed worker: one thread
    in a thread of Dask's local threaded scheduler (which already runs one task per core),
    matkern's own setting in the main thread (the synchronous scheduler)."""
    n = worker_nthreads()
    if n is None:
        if threading.current_thread() is threading.main_thread():
            yield
            return
        n = 1
    else:
        with _budget_lock:
            if _budget_pid[0] != os.getpid():
                _threads.set_num_threads(n)
                _budget_pid[0] = os.getpid()
        n = task_share(n)
    with _threads.threads(n), _openmp_limit(n):
        yield


def _openmp_controllers():
    """threadpoolctl's controllers of the OpenMP runtimes loaded in this process (found once
    per process: the scan takes milliseconds)."""
    if _omp_libs[0] is None:
        ctl = _threads._controller()
        _omp_libs[0] = [lc for lc in ctl.lib_controllers if lc.user_api == "openmp"] if ctl else []
    return _omp_libs[0]


_omp_libs = [None]


@contextlib.contextmanager
def _openmp_limit(n):
    """This OS thread's OpenMP limit set to n for the body, then restored.

    matkern's thread grant is capped by OpenMP's limit of the calling thread, and the nanny
    starts workers with OMP_NUM_THREADS=1 (so that libraries do not start a team per task):
    without this, every kernel in a worker of t threads ran on one thread. The limit is
    per OS thread, so other tasks and other libraries in the worker keep the nanny's."""
    libs = _openmp_controllers() if n > 1 else []
    saved = [lc.get_num_threads() for lc in libs]
    for lc, s in zip(libs, saved):
        if s != n:
            lc.set_num_threads(n)
    try:
        yield
    finally:
        for lc, s in zip(libs, saved):
            if s != n:
                lc.set_num_threads(s)


def in_worker(fn):
    """Decorator: ``fn`` runs under :func:`kernel_threads` (every task body of this package)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with kernel_threads():
            return fn(*args, **kwargs)

    return run


def shared(obj, name, token=None):
    """One graph key holding ``obj``: every task that takes it depends on that key, so each
    worker receives it once, however many of its tasks use it. ``token``: what identifies
    obj (default: obj itself), so that equal objects share the key."""
    token = dask.base.tokenize(obj if token is None else token)
    return dask.delayed(obj, pure=True, name=f"matkern-{name}-{token}")


def meta(x, ndim, dtype):
    """An empty array of x's chunk type (NumPy or CuPy) with ``ndim`` dimensions."""
    return meta_from_array(x, ndim=ndim, dtype=np.dtype(dtype))


def is_dask_array(x):
    import dask.array as da

    return isinstance(x, da.Array)


def check_dask_array(x, name, fn, *, dtypes=None, ndim=None):
    """A dask array of known shape with the given dtype(s) and number of dimensions."""
    from .. import _checks

    if not is_dask_array(x):
        raise TypeError(
            f"{fn}(): {name} must be a dask array, got {type(x).__module__}.{type(x).__name__}"
        )
    if dtypes is not None and x.dtype not in [np.dtype(d) for d in dtypes]:
        raise TypeError(
            f"{fn}(): {name} must have dtype {_checks.dtype_names(dtypes)}, got {x.dtype}"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{fn}(): {name} must be {ndim}-dimensional, got shape {x.shape}")
    if any(np.isnan(s) for s in x.shape):
        raise ValueError(
            f"{fn}(): {name} must have known chunk sizes, got shape {x.shape} "
            "(call x.compute_chunk_sizes() first)"
        )
    if x.size == 0:
        raise ValueError(f"{fn}(): {name} must not be empty, got shape {x.shape}")
    return x


def one_chunk_along(x, axis):
    """x with a single chunk along ``axis`` (rechunked only when it has several)."""
    if len(x.chunks[axis]) == 1:
        return x
    return x.rechunk({axis: -1})


def map_rows(fn, X, *args, n_out, dtype=None, out_meta=None):
    """``fn(chunk, *args)`` for each row chunk of X (..., K) -> a dask array (..., n_out)
    chunked like X along the leading axes; X is first given one chunk along its last axis.
    ``args`` are passed whole to every task (Delayed objects from :func:`shared` included).

    No axis is contracted, so each task receives the chunk itself: a blockwise contraction
    with ``concatenate=True`` passes ``numpy.concatenate([chunk])``, a copy of every chunk
    (a 25000 x 4096 float32 chunk: 400 MB and ~0.1 s a task)."""
    import dask.array as da

    X = one_chunk_along(X, X.ndim - 1)
    dtype = X.dtype if dtype is None else np.dtype(dtype)
    idx = "abcdefgh"[: X.ndim]
    return da.blockwise(
        fn, idx, X, idx, *sum(((a, None) for a in args), ()),
        adjust_chunks={idx[-1]: n_out}, dtype=dtype,
        meta=meta(X._meta, X.ndim, dtype) if out_meta is None else out_meta,
    )  # fmt: skip
