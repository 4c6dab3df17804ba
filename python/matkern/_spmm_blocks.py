"""Host-side preparation of the GPU block-sparse (SMaT) layout: row reordering by Jaccard
similarity of block-column patterns, 16 x 16 dense blocks, values stored in the register
order of the ``mma.sync`` A fragments so that each lane loads its share with vector loads.

Reordering. Row i's pattern is the set S_i of its block columns (column // 16). Rows whose
patterns are similar in the Jaccard sense (|S_i & S_j| / |S_i | S_j|) should share 16-row
block rows, so that their nonzeros fall into the same dense blocks. Exact greedy Jaccard
clustering (SMaT's offline step) is quadratic in the rows; we use MinHash: for a random hash h,
P[min h(S_i) == min h(S_j)] equals the Jaccard similarity, so sorting rows by a few MinHash
values (lexicographically, ties kept in the original order) places similar rows next to each
other in O(nnz log nnz). Candidate orders (the original, the MinHash order, and the order by
first block column) are scored by the number of blocks they produce; the fewest wins, so a
matrix that is already well ordered (band, stencil) keeps its order.
"""

from __future__ import annotations

import numpy as np

from ._mma_layout import a_m16n8k8_tf32, a_m16n8k16

BS = 16  # block rows and columns (one m16n8k16 A fragment, two m16n8k8 ones)


def _frag_map(mode: str) -> np.ndarray:
    """offset[r * 16 + c] of block element (r, c) in the 256 stored values (lane*8 + i)."""
    off = np.empty(256, dtype=np.int64)
    for lane in range(32):
        for i in range(8):
            if mode == "tf32":  # two m16n8k8 k-steps: element i & 3 of step i >> 2
                r, c = a_m16n8k8_tf32(lane, i & 3)
                c += 8 * (i >> 2)
            else:
                r, c = a_m16n8k16(lane, i)
            off[r * 16 + c] = lane * 8 + i
    assert np.unique(off).size == 256
    return off


FRAG = {"tf32": _frag_map("tf32"), "f16": _frag_map("f16"), "bf16": _frag_map("f16")}


def _row_of_entries(indptr):
    m = indptr.size - 1
    return np.repeat(np.arange(m, dtype=np.int64), np.diff(indptr))


def count_blocks(rows, bcols, rank, nbc):
    """Number of distinct (block row, block column) pairs when row i moves to rank[i]."""
    if rows.size == 0:
        return 0
    return int(np.unique((rank[rows] // BS) * nbc + bcols).size)


def minhash_order(rows, bcols, m, nbc, n_hashes=3, seed=0):
    """Row order from MinHash signatures of the block-column sets (empty rows last)."""
    key = np.unique(rows * nbc + bcols)  # distinct (row, block column) pairs, by row
    r, c = key // nbc, (key % nbc).astype(np.uint64)
    starts = np.searchsorted(r, np.arange(m))
    present = np.zeros(m, dtype=bool)
    present[r] = True
    rng = np.random.default_rng(seed)
    sigs = []
    for _ in range(n_hashes):
        a = np.uint64(rng.integers(1, 2**62) | 1)
        b = np.uint64(rng.integers(0, 2**62))
        h = (c * a + b) >> np.uint64(20)  # multiply-shift hash, wraps mod 2**64
        sig = np.full(m, np.iinfo(np.uint64).max, dtype=np.uint64)
        if r.size:
            sig[present] = np.minimum.reduceat(h, starts[present])
        sigs.append(sig)
    # np.lexsort: last key is primary; the original index as the least key keeps ties stable
    return np.lexsort([np.arange(m)] + sigs[::-1]).astype(np.int64)


def first_block_order(rows, bcols, m):
    first = np.full(m, np.iinfo(np.int64).max)
    if rows.size:
        np.minimum.at(first, rows, bcols)
    return np.lexsort([np.arange(m), first]).astype(np.int64)


def choose_order(indptr, indices, m, n):
    """(perm, name, block counts per candidate): perm[new_row] = original row."""
    rows = _row_of_entries(indptr)
    bcols = indices.astype(np.int64) // BS
    nbc = max(1, -(-n // BS))
    cands = {"original": np.arange(m, dtype=np.int64)}
    if rows.size:
        cands["minhash-jaccard"] = minhash_order(rows, bcols, m, nbc)
        cands["first-block-column"] = first_block_order(rows, bcols, m)
    counts = {}
    for name, perm in cands.items():
        rank = np.empty(m, dtype=np.int64)
        rank[perm] = np.arange(m)
        counts[name] = count_blocks(rows, bcols, rank, nbc)
    best = min(counts, key=lambda k: (counts[k], k != "original"))
    return cands[best], best, counts


def build_blocks(indptr, indices, data, m, n, perm, mode):
    """Block-sparse layout for rows in the order ``perm``.

    Returns dict: block_ptr (int64, n_block_rows + 1), block_col (int32), values (n_blocks *
    256, fragment order, float32 for tf32 (rounded to tf32), float16 for f16, uint16 bfloat16
    bits for bf16), out_rows (int32, n_block_rows * 16: original row of each slot, -1 for
    padding), n_blocks.
    """
    rows = _row_of_entries(indptr)
    nbc = max(1, -(-n // BS))
    nbr = -(-m // BS)
    rank = np.empty(m, dtype=np.int64)
    rank[perm] = np.arange(m)
    nr = rank[rows]
    cols = indices.astype(np.int64)
    keys = (nr // BS) * nbc + cols // BS
    uniq, inv = np.unique(keys, return_inverse=True)
    nb = int(uniq.size)
    block_row = uniq // nbc
    block_ptr = np.searchsorted(block_row, np.arange(nbr + 1)).astype(np.int64)
    block_col = (uniq % nbc).astype(np.int32)
    slot = inv.reshape(-1).astype(np.int64) * 256 + FRAG[mode][(nr % BS) * BS + cols % BS]
    vals = np.bincount(slot, weights=np.asarray(data, dtype=np.float64), minlength=nb * 256)
    if mode == "tf32":
        v = vals.astype(np.float32)
        bits = v.view(np.uint32)
        finite = np.isfinite(v)
        # round to nearest (ties away) at tf32's 10 mantissa bits, as cvt.rna.tf32.f32 does
        bits[finite] = (bits[finite] + np.uint32(0x1000)) & np.uint32(0xFFFFE000)
        values = v
    elif mode == "f16":
        values = vals.astype(np.float16)
    else:
        values = float32_to_bf16_bits(vals.astype(np.float32))
    out_rows = np.full(nbr * BS, -1, dtype=np.int32)
    out_rows[:m] = perm.astype(np.int32)
    return {
        "block_ptr": block_ptr,
        "block_col": block_col,
        "values": values,
        "out_rows": out_rows,
        "n_blocks": nb,
    }


def float32_to_bf16_bits(x):
    """Round float32 to bfloat16 (nearest even), returned as uint16 bit patterns."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    out[nan] = np.uint16(0x7FC0)
    return out


def bf16_bits_to_float32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
