"""FastRP on a row-partitioned graph: every hop a distributed SpMM.

Per row block b of the adjacency (a :class:`matkern.dask.SparseMatrix` block, on its worker):
the canonical CSR in the compute dtype, the out-degrees and D^-1; the column factors
deg^beta of all n nodes are gathered once (one n-vector, sent to every block). Then

    U_1[b] = D_b^-1 A_b diag(colfac) R        (R generated once, on a worker, from the seed)
    U_i[b] = (D^-1 A)_b U_{i-1}                (U_{i-1} read in place from its row blocks)
    emb[b] = sum_i w_i normalize(U_i[b])

with the same kernels, row by row, as single-process :func:`matkern.fastrp`: the embedding
is bit-identical. Each hop's task takes every block of U_{i-1} as an argument (on several
workers as keys of their own, taken from each block's (U, emb) pair, so that another worker
fetches U's blocks without the embeddings) and the SpMM reads them where they are
(``spmm_csr_blocks``): no task concatenates them, which cost a copy and the first touch of
n x dim new values per hop (0.15 s of 0.68 at 1M nodes x 128).
"""

from __future__ import annotations

import math
import operator

import dask
import dask.array as da
import numpy as np

from .. import _checks, _dispatch, _randproj_ops, _sparse_input, _threads, randproj
from .._randproj_ops import row_sums
from ..reference import randproj as ref
from . import _tasks
from ._sparse import SparseMatrix

__all__ = ["fastrp"]

_FN = "fastrp"


@_tasks.in_worker
def _walk_block(block, dtype):
    """(indptr, indices, weights, s_data, inv, deg64) of one row block: canonical CSR
    (sorted, duplicates summed) checked finite and nonnegative, as fastrp checks the whole
    adjacency, and S = D^-1 A's values in ``dtype``."""
    import scipy.sparse as sp

    A = sp.csr_matrix((block.data, block.indices, block.indptr), shape=block.shape)
    A = _sparse_input.canonical_csr(A, "adjacency", _FN, dtype=dtype, nnz_limit=2**62)
    data = np.ascontiguousarray(A.data, dtype=dtype)
    if data.size and not bool(np.isfinite(data).all()):
        raise ValueError(f"{_FN}(): adjacency must have finite weights, got NaN or Inf")
    if data.size and bool((data < 0).any()):
        raise ValueError(
            f"{_FN}(): adjacency must have nonnegative weights (a transition matrix is built "
            "from it), got a negative weight"
        )
    indptr = A.indptr.astype(np.int64, copy=False)
    indices = A.indices.astype(np.int32, copy=False)
    deg64 = np.asarray(row_sums(indptr, data, np), dtype=np.float64)
    inv64 = np.zeros(deg64.shape[0])
    inv64[deg64 > 0] = 1.0 / deg64[deg64 > 0]
    inv = inv64.astype(dtype)
    s_data = (data * np.repeat(inv, np.diff(indptr))).astype(dtype, copy=False)
    return indptr, indices, data, s_data, inv, deg64


def _degrees(walk):
    return walk[5]


def _column_factors(degrees, beta, dtype):
    return ref.degree_power(np.concatenate(degrees), beta).astype(dtype)


@_tasks.in_worker
def _random_matrix(n, dim, key, table):
    """R (n x dim, entries +-1 before the scale) as CSR (indptr, components, values float32),
    generated from the seed once per graph: one key that every block's first task reads,
    instead of each block generating all n rows of R (8 blocks of the 200000-node graph: 78
    ms against 24 ms on one thread)."""
    indptr, comps, negs = _randproj_ops.generate("cpu", key, table, dim, 0, n, np)
    return indptr, comps, np.where(negs == 1, np.float32(-1), np.float32(1))


def _project(walk, R, colfac, dim, scale, dtype):
    """U_1 of one block: the projection of D_b^-1 A_b diag(colfac) R, with the rows of
    rp_sparse (the same bits as single-process fastrp)."""
    indptr, indices, data, _, inv, _ = walk
    ptr, comps, vals = R
    U = np.empty((indptr.shape[0] - 1, dim), dtype=dtype)
    _dispatch.cpu().rp_sparse_given(indptr, indices, data, inv, colfac, ptr, comps, vals, scale, U)
    return U


def _add(emb, U, weight, l2):
    """emb + w normalize(U) in a new array, written in one pass with emb as the kernel's base
    (a task never changes its inputs, so a task recomputed after a worker failure adds
    nothing twice); emb None: zeros."""
    if emb is None:
        out = np.zeros_like(U)
        _dispatch.cpu().rp_accumulate(U, weight, l2, out)
    else:
        out = np.empty_like(U)
        _dispatch.cpu().rp_accumulate(U, weight, l2, out, emb)
    return out


@_tasks.in_worker
def _first(walk, R, colfac, dim, scale, dtype, weight, l2, keep_u):
    """Iteration 1 of one block: (U_1, emb after it), or emb alone when no hop follows."""
    U = _project(walk, R, colfac, dim, scale, dtype)
    emb = _add(None, U, weight, l2) if weight != 0.0 else None
    return (U, emb) if keep_u else emb


@_tasks.in_worker
def _step(walk, emb, weight, l2, keep_u, *blocks):
    """One hop of one block, its contribution to the embedding added in the same pass:
    U_i[b] = (D^-1 A)_b U_{i-1}, with U_{i-1} given as its row ``blocks`` (read in place),
    and emb + w normalize(U_i[b]) (emb: the block's embedding so far, or None); returns
    (U_i[b], emb), or emb alone after the last hop (the array's chunk; U_i[b] is then never
    stored: each run of its rows is added to the embedding while in cache). ``emb`` and the
    blocks may also come as the previous hop's (U, emb) pairs (one worker: no getters)."""
    if isinstance(emb, tuple):
        emb = emb[1]
    blocks = [b[0] if isinstance(b, tuple) else b for b in blocks]
    indptr, indices, _, s_data, _, _ = walk
    n = sum(b.shape[0] for b in blocks)
    shape = (indptr.shape[0] - 1, blocks[0].shape[1])
    dtype = blocks[0].dtype
    U = np.empty(shape, dtype=dtype) if keep_u else None
    if weight != 0.0:
        # emb + w normalize(U) into a new array, with emb as the kernel's base (a task never
        # changes its inputs, so a task recomputed after a worker failure adds nothing twice)
        out = np.zeros(shape, dtype=dtype) if emb is None else np.empty_like(emb)
        _dispatch.cpu().rp_hop(n, indptr, indices, s_data, blocks, weight, l2, out, emb, U)
        emb = out
    elif keep_u:
        _dispatch.cpu().spmm_csr_blocks(n, indptr, indices, s_data, blocks, U)
    return (U, emb) if keep_u else emb


@_tasks.in_worker
def _gather(*parts):
    """U_{i-1} of the whole graph in one new array, from its row blocks or the blocks'
    (U, emb) pairs: for dims below IN_PLACE_MIN_COLUMNS, where the one-array kernel beats
    reading the blocks in place. The blocks are copied on the threads the task may use
    (matkern's grant), each writing its own rows: the copy and the first touch of the new
    pages are split over them."""
    blocks = [p[0] if isinstance(p, tuple) else p for p in parts]
    offsets = np.cumsum([0] + [b.shape[0] for b in blocks])
    out = np.empty((int(offsets[-1]),) + blocks[0].shape[1:], dtype=blocks[0].dtype)

    def piece(i):
        out[offsets[i] : offsets[i + 1]] = blocks[i]  # NumPy copies with the GIL released

    with _threads.thread_grant() as granted:
        _threads.run_pieces(piece, len(blocks), granted)
    return out


def _zeros_if_none(emb, rows, dim, dtype):
    return np.zeros((rows, dim), dtype=dtype) if emb is None else emb


def fastrp(
    adjacency,
    dim=128,
    iteration_weights=(0.0, 1.0, 1.0),
    normalization_strength=0.0,
    l2_normalize=True,
    random_state=None,
    *,
    dtype=np.float32,
    row_chunks=None,
):
    """FastRP node embeddings of a graph held by the Dask workers (see :func:`matkern.fastrp`
    for the method and every parameter but these).

    Parameters
    ----------
    adjacency : matkern.dask.SparseMatrix (n x n, row blocks on the workers) or a scipy
        sparse matrix (then split into ``row_chunks`` rows per block with
        :meth:`SparseMatrix.from_scipy`; default: 8 blocks of about equal stored entries)
    row_chunks : int or sequence of block sizes, for scipy input only

    Returns
    -------
    A lazy dask array (n, dim) of ``dtype`` with NumPy chunks, row-chunked like the blocks;
    **bit-identical** to ``matkern.fastrp`` of the same graph and seed on the CPU. Each hop is
    one distributed SpMM: every block multiplies its rows by the previous iterate, read in
    place from its row blocks (each worker fetches the blocks it lacks once per hop: at most
    n x dim values). The adjacency's values are checked (finite, nonnegative) by the tasks,
    so an error surfaces when the result is computed (or, without a distributed client, when
    a SparseMatrix's walk is first built).

    For a :class:`SparseMatrix` the walk of each block (the checks, the values of D^-1 A and
    the degrees, about 4-8 bytes per stored edge more) is built on the first call of each
    dtype and kept on the workers with the blocks, until the SparseMatrix is dropped: later
    calls (other seeds, weights, dims) start at the projection.

    Example
    -------
    >>> import scipy.sparse as sp, matkern.dask
    >>> A = sp.random(1000, 1000, density=0.01, format="csr", random_state=0)
    >>> E = matkern.dask.fastrp(A + A.T, dim=64, random_state=0, row_chunks=250)
    >>> E.shape, E.chunks[0]
    ((1000, 64), (250, 250, 250, 250))
    """
    fn = _FN
    reuse = isinstance(adjacency, SparseMatrix)
    if reuse:
        if row_chunks is not None:
            raise ValueError(f"{fn}(): row_chunks is for scipy input only (S is already split)")
        S = adjacency
    elif _dispatch.is_sparse(adjacency) and not _dispatch.is_cupyx_sparse(adjacency):
        S = SparseMatrix.from_scipy(adjacency, row_chunks)
    else:
        raise TypeError(
            f"{fn}(): adjacency must be a matkern.dask.SparseMatrix or a scipy.sparse matrix, "
            f"got {type(adjacency).__module__}.{type(adjacency).__name__}"
        )
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn}(): dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}(): dtype must be float32 or float64, got {dtype}")
    n, d = S.shape
    if n != d:
        raise ValueError(
            f"{fn}(): adjacency must be square (an adjacency matrix), got shape {S.shape}"
        )
    dim = _checks.check_int(dim, "dim", fn, min_value=1, max_value=_checks.INT32_MAX)
    weights = randproj._check_weights(iteration_weights, fn)
    beta = _checks.check_float(normalization_strength, "normalization_strength", fn)
    l2 = randproj._check_flag(l2_normalize, "l2_normalize", fn)
    key = ref.rp_seed_key(randproj._seed_of(random_state, fn))
    density = 1.0 / math.sqrt(n)
    table = ref.rp_table(density, dim)
    scale = math.sqrt(1.0 / (density * dim))

    # The graph: per block a walk task, its degrees, then one task per iteration (the
    # projection, then each hop with its share of the embedding added; a hop's task depends
    # on every block's task of the hop before, on several workers through two getters per
    # block: its U and its emb); the last iteration's tasks are the result array's chunks.
    # 2 + q tasks per block (and 2 getters per block and hop) for q iterations.
    token = dask.base.tokenize([b.key for b in S.blocks], dtype, dim, weights, beta, l2, key)
    name = f"matkern-fastrp-{token}"
    q = len(weights)
    delayed = dask.delayed

    def build_walks():
        return [delayed(_walk_block, pure=True)(blk, dtype) for blk in S.blocks]

    # A SparseMatrix the caller keeps: its walk (the checks, D^-1 A's values, the degrees)
    # is built once per dtype and kept on the workers with the blocks; later calls (other
    # seeds, weights) start from it. A scipy input is split for this call only.
    walks = S._plan(("fastrp-walk", dtype), build_walks) if reuse else build_walks()
    degrees = [delayed(_degrees, pure=True)(w) for w in walks]
    colfac = delayed(_column_factors, pure=True)(degrees, beta, dtype)
    chunk_keys = [(name, b, 0) for b in range(len(walks))]
    last = q == 1
    R = delayed(_random_matrix, pure=True)(n, dim, key, table)
    first_args = (R, colfac, dim, scale, dtype)
    steps = [
        delayed(_first, pure=True)(
            w, *first_args, weights[0], l2, not last, dask_key_name=chunk_keys[b] if last else None
        )
        for b, w in enumerate(walks)
    ]
    # On a cluster of several workers, U_{i-1}'s blocks and the embeddings become keys of
    # their own, taken from the (U, emb) pairs where they lie: another worker's tasks then
    # fetch U's blocks alone, not the embeddings beside them (half the bytes moved per hop
    # once the embedding has a term: 2 workers x 1 thread, 1M nodes, 1.0 -> 0.77 s). With
    # one worker nothing moves, and the 16 getters per hop cost more than they save (0.54 ->
    # 0.57 s): the pairs are read whole.
    # Below IN_PLACE_MIN_COLUMNS columns the iterate is gathered into one array per hop (one
    # task; the hops then run the one-array kernel), which costs less than finding each row's
    # block (dim 32: 0.25 against 0.30 s).
    split = _tasks.n_workers() > 1
    gather = dim < _tasks.IN_PLACE_MIN_COLUMNS
    for i in range(1, q):
        last = i == q - 1
        if split:
            iterate = [delayed(operator.getitem, pure=True)(st, 0) for st in steps]
            embs = [delayed(operator.getitem, pure=True)(st, 1) for st in steps]
        else:
            iterate, embs = steps, steps
        if gather:
            iterate = [delayed(_gather, pure=True)(*iterate)]
        steps = [
            delayed(_step, pure=True)(
                w,
                emb,
                weights[i],
                l2,
                not last,
                *iterate,
                dask_key_name=chunk_keys[b] if last else None,
            )
            for b, (w, emb) in enumerate(zip(walks, embs))
        ]
    if all(w == 0.0 for w in weights):  # every chunk None: zeros, as fastrp gives
        steps = [
            delayed(_zeros_if_none, pure=True)(
                st, rows, dim, dtype, dask_key_name=(name + "-zeros", b, 0)
            )
            for b, (st, rows) in enumerate(zip(steps, S.row_chunks))
        ]
        name += "-zeros"
    graph = dask.highlevelgraph.HighLevelGraph.merge(*[st.dask for st in steps])
    meta = np.empty((0, 0), dtype=dtype)
    return da.Array(graph, name, (tuple(S.row_chunks), (dim,)), meta=meta)
