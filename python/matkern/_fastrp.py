"""The compiled routes of :func:`matkern.fastrp` (CPU and GPU) and its progress bar.

``fastrp`` (in ``randproj.py``) checks its arguments and picks the backend; :func:`prepare`
then computes what both routes share (the projection's table and scale, the inverse degrees
D^-1 and the column factors deg^beta) and :func:`embed_cpu` / :func:`embed_cuda` run the q
iterations. No checks here.
"""

from __future__ import annotations

import math
import sys
import time
from typing import NamedTuple

import numpy as np

from . import _dispatch, _gpu_csr
from ._randproj_ops import gpu_project, row_ids, row_sums
from .reference import randproj as ref

# progress=None shows a bar from this many stored edges on (the 1M-node, 10M-edge power-law
# graph of the benchmarks takes seconds per iteration on the CPU).
PROGRESS_MIN_NNZ = 5_000_000


class Walk(NamedTuple):
    """A validated graph (canonical CSR arrays of ``dtype``, on the backend's device) and the
    quantities every iteration reads."""

    indptr: object
    indices: object
    data: object
    n: int
    dim: int
    key: int  # the projection's seed key
    table: np.ndarray  # the projection's entry table (reference.randproj.rp_table)
    scale: float  # magnitude of the projection's nonzeros
    inv: object  # (n,) 1 / out-degree (0 for nodes without out-edges), dtype, on the device
    colfac: object  # (n,) deg ** normalization_strength, dtype, on the device
    dtype: np.dtype


def prepare(indptr, indices, data, dim, beta, key, dtype):
    """The :class:`Walk` of a graph: R's density is 1/sqrt(n), scikit-learn's scaling."""
    xp = _dispatch.array_module(data)
    n = indptr.shape[0] - 1
    density = 1.0 / math.sqrt(n)
    table = ref.rp_table(density, dim)
    scale = math.sqrt(1.0 / (density * dim))
    deg64 = np.asarray(_dispatch.to_host(row_sums(indptr, data, xp)), dtype=np.float64)
    inv = np.zeros(n)
    inv[deg64 > 0] = 1.0 / deg64[deg64 > 0]
    colfac = ref.degree_power(deg64, beta)
    inv_t, col_t = xp.asarray(inv.astype(dtype)), xp.asarray(colfac.astype(dtype))
    return Walk(indptr, indices, data, n, dim, key, table, scale, inv_t, col_t, dtype)


def embed_cpu(walk, steps, n_steps, l2_normalize):
    """sum_i w_i normalize(U_i) on the CPU kernels; ``steps`` yields the n_steps weights."""
    cpu = _dispatch.cpu()
    n, dtype = walk.n, walk.dtype
    indptr, indices, data = walk.indptr, walk.indices, walk.data
    emb = np.zeros((n, walk.dim), dtype=dtype)
    U = np.empty((n, walk.dim), dtype=dtype)
    cpu.rp_sparse(
        indptr, indices, data, n, walk.inv, walk.colfac, walk.key, walk.table, walk.scale, U
    )
    V = np.empty_like(U) if n_steps > 1 else None
    # S = D^-1 A once, so every graph product is a plain CSR x dense on the SpMM family's
    # kernel (matkern::csr_spmm).
    s_data = (data * np.repeat(walk.inv, np.diff(indptr))).astype(dtype, copy=False)
    for i, weight in enumerate(steps):
        if i:
            cpu.spmm_csr(n, indptr, indices, s_data, U, V)
            U, V = V, U
        if weight != 0.0:
            cpu.rp_accumulate(U, weight, bool(l2_normalize), emb)
    return emb


def embed_cuda(walk, steps, n_steps, l2_normalize, synchronize):
    """The same on the GPU; ``synchronize``: wait for the GPU after each step (so that a
    progress bar times the work, not the launches)."""
    xp = _dispatch.array_module(walk.data)
    cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
    n, dtype = walk.n, walk.dtype
    indptr, indices, data = walk.indptr, walk.indices, walk.data
    emb = xp.zeros((n, walk.dim), dtype=dtype)
    U = gpu_project(
        (indptr, indices, data),
        n,
        walk.key,
        walk.table,
        walk.dim,
        walk.scale,
        dtype=dtype,
        n=n,
        rowscale=walk.inv,
        colscale=walk.colfac,
    )
    V = xp.empty_like(U) if n_steps > 1 else None
    csr = None
    if V is not None and dtype == np.float32 and walk.dim <= _gpu_csr.MAX_K:
        # S = D^-1 A scaled once and planned once (row segments for hub rows), so that every
        # graph product runs the SpMM family's float32 CSR kernel: spmm's exact float32 path
        # (precision="fp32"), never its TF32/FP16 tensor-core kernel.
        s_data = data * walk.inv[row_ids(indptr, xp)]
        csr = _gpu_csr.plan(indptr, indices, s_data)
    for i, weight in enumerate(steps):
        if i:
            if csr is not None:
                _gpu_csr.matmul(csr, U, V)
            else:
                # float64 (the SpMM CUDA kernel takes float32 values only), or dim beyond its
                # grid limit: randproj's own CSR kernel, D^-1 applied as a row scale.
                cuda.rp_csr_spmm(indptr, indices, data, walk.inv, U, V, stream)
            U, V = V, U
        if weight != 0.0:
            if l2_normalize:
                norms = xp.sqrt((U.astype(xp.float64) ** 2).sum(axis=1, keepdims=True))
                f = xp.where(norms > 0, weight / xp.where(norms > 0, norms, 1.0), 0.0)
                emb += f.astype(dtype) * U
            else:
                emb += dtype.type(weight) * U
        if synchronize:
            xp.cuda.get_current_stream().synchronize()  # the bar then times the GPU work
    return emb


# ---------------------------------------------------------------- progress
def stderr_is_terminal():
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def _plain_progress(items, fn):
    """progress=True without tqdm: one line on stderr after each item."""
    t0 = time.perf_counter()
    for i, item in enumerate(items, 1):
        yield item
        print(
            f"{fn}(): iteration {i}/{len(items)} done after {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )


def with_progress(items, progress, nnz, fn):
    """(items, possibly wrapped in a progress bar on stderr; whether one is shown). tqdm is
    imported here only: it is not a dependency of matkern."""
    if progress is False or (
        progress is None and (nnz < PROGRESS_MIN_NNZ or not stderr_is_terminal())
    ):
        return items, False
    try:
        from tqdm import tqdm
    except ImportError:
        if progress is None:
            return items, False
        return _plain_progress(items, fn), True
    # leave=None: the finished bar stays, unless it sits below another one (the bench runner's)
    return tqdm(items, desc=fn, unit="iteration", file=sys.stderr, leave=None), True
