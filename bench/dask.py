"""Benchmarks of matkern.dask on a LocalCluster of worker processes started for each case.

- Dask's overhead: one worker process (with every core as its threads) against single-process
  matkern, for the sparse projection of a 400000 x 4096 float32 array (k = 256; 50000 rows
  with --quick) and FastRP on the 1M-node / 10M-edge power-law graph of the randproj bench
  (200k / 2M with --quick). Bar: the single worker at least 0.8x the single-process speed
  (ratio = single-process time / Dask time >= 0.8).
- Scaling: 2 worker processes x 1 thread against 1 worker x 1 thread, projection of 100000
  rows (25000 with --quick) and the same FastRP graph (full runs only: --quick skips its two
  cluster starts); on a 2-core machine the ideal is 2x; no bar.

The projection's input is written once, chunk by chunk, to a file in /dev/shm (6.5 GB at
the full size; the system's temporary directory when /dev/shm is missing): the single-process
baseline maps the whole file, and the workers map their own row chunks of it (a task per
chunk, persisted before timing), so both read the same pages and the array is in memory once,
never on the client's heap nor in a graph. A timed call computes the result and keeps it on
the workers (persist + wait), as a pipeline's next step would read it, then drops it. Needs
dask[array] and distributed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile

import numpy as np

from bench._runner import Case


def _cluster(n_workers, threads):
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads,
        processes=True,
        dashboard_address=":0",  # a free port: never a clash with another cluster
        memory_limit=0,
        silence_logs=logging.ERROR,
    )
    return cluster, distributed.Client(cluster, set_as_default=False)


def _timed(client, build):
    """A zero-argument callable: build(seed) a lazy collection, persist it on ``client``'s
    workers, wait for it, drop it. Each call takes a new seed: the same graph twice would have
    the same keys, which the cluster may still hold from the call before."""
    import itertools

    import distributed

    seeds = itertools.count(1)

    def run():
        with client.as_current():
            y = client.persist(build(next(seeds)))
            distributed.wait(y)
            del y

    return run


def _closer(*pairs, files=()):
    def close():
        for cluster, client in pairs:
            client.close()
            cluster.close()
        for path in files:
            with contextlib.suppress(OSError):
                os.remove(path)

    return close


def _shared_file(n, d, rows, seed=0):
    """A float32 n x d array of standard normals in a new file of shared memory, written
    chunk by chunk (never whole on the heap); returns its path."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="matkern-bench-dask-", suffix=".f32", dir=base)
    rng = np.random.default_rng(seed)
    with os.fdopen(fd, "wb") as f:
        for r0 in range(0, n, rows):
            f.write(rng.standard_normal((min(rows, n - r0), d), dtype=np.float32).tobytes())
    return path


def _map_rows(path, r0, r1, d):
    """Rows r0..r1-1 of the shared file as a read-only array (a mapping, not a copy)."""
    return np.memmap(path, dtype=np.float32, mode="r", offset=r0 * d * 4, shape=(r1 - r0, d))


def _dask_rows(path, n, d, rows):
    """The shared file as a dask array of row chunks, each mapped by the worker that holds it."""
    import dask
    import dask.array as da

    parts = [
        da.from_delayed(
            dask.delayed(_map_rows, pure=True)(path, r0, min(n, r0 + rows), d),
            shape=(min(n, r0 + rows) - r0, d),
            dtype=np.float32,
            meta=np.empty((0, 0), np.float32),
        )
        for r0 in range(0, n, rows)
    ]
    return da.concatenate(parts, axis=0)


def cases(ctx):
    if ctx.device != "cpu":
        return
    try:
        import dask.array  # noqa: F401  (the extra is installed)

        import matkern
        import matkern.dask as md
    except ImportError:
        return
    q = ctx.quick
    cores = os.cpu_count() or 1
    n, d, k = (50_000, 4096, 256) if q else (400_000, 4096, 256)
    rows = 25_000

    def projection(n_rows, layouts):
        """{name: callable} for each (name, workers, threads) in layouts, plus single-process
        matkern when asked ("single")."""

        def make():
            fns, pairs = {}, []
            path = _shared_file(n_rows, d, rows)
            for name, workers, threads in layouts:
                if workers == 0:
                    X = _map_rows(path, 0, n_rows, d)
                    p = matkern.SparseRandomProjection(k, random_state=0).fit(X)
                    fns[name] = lambda p=p, X=X: p.transform(X)
                    continue
                cluster, client = _cluster(workers, threads)
                pairs.append((cluster, client))
                with client.as_current():
                    Xd = client.persist(_dask_rows(path, n_rows, d, rows))

                def build(seed, Xd=Xd):
                    return md.SparseRandomProjection(k, random_state=seed).fit(Xd).transform(Xd)

                fns[name] = _timed(client, build)
            fns["_close"] = _closer(*pairs, files=[path])
            return fns

        return make

    yield Case(
        "dask",
        f"SRP {n}x{d} f32 k={k}: 1 worker x {cores} threads",
        projection(n, [("matkern", 1, cores), ("single-process matkern", 0, 0)]),
        bars={"single-process matkern": 0.8},
        info=lambda r: f"row chunks of {rows}; the ratio is Dask's overhead (goal >= 0.8)",
    )
    n_scale = 25_000 if q else 100_000
    yield Case(
        "dask",
        f"SRP {n_scale}x{d} f32 k={k}: 2 workers vs 1 (1 thread each)",
        projection(n_scale, [("matkern", 2, 1), ("dask 1 worker x 1 thread", 1, 1)]),
        info=lambda r: f"scaling on {cores} cores (ideal 2x with 2 free cores)",
    )

    nn, mm = (200_000, 2_000_000) if q else (1_000_000, 10_000_000)
    fastrp_kw = dict(dim=128, iteration_weights=(0, 1, 1))

    def fastrp(layouts):
        def make():
            from bench.randproj import power_law_graph

            A = power_law_graph(nn, mm)
            fns, pairs = {"_A": A}, []
            for name, workers, threads in layouts:
                if workers == 0:
                    fns[name] = lambda: matkern.fastrp(
                        A, random_state=0, progress=False, **fastrp_kw
                    )
                    continue
                cluster, client = _cluster(workers, threads)
                pairs.append((cluster, client))
                with client.as_current():
                    S = md.SparseMatrix.from_scipy(A)  # 8 blocks of equal stored entries
                fns[name] = _timed(
                    client, lambda seed, S=S: md.fastrp(S, random_state=seed, **fastrp_kw)
                )
            fns["_close"] = _closer(*pairs)
            return fns

        return make

    def graph_info(r):
        return f"power-law graph {nn} nodes, {r['_A'].nnz} stored edges, dim 128, 8 row blocks of about equal stored entries"

    yield Case(
        "dask",
        f"FastRP power-law {nn} nodes: 1 worker x {cores} threads",
        fastrp([("matkern", 1, cores), ("single-process matkern", 0, 0)]),
        bars={"single-process matkern": 0.8},
        info=graph_info,
    )
    if q:  # the SRP case shows the scaling; this one starts two more clusters
        return
    yield Case(
        "dask",
        f"FastRP power-law {nn} nodes: 2 workers vs 1 (1 thread each)",
        fastrp([("matkern", 2, 1), ("dask 1 worker x 1 thread", 1, 1)]),
        info=graph_info,
    )
