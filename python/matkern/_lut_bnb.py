"""bitsandbytes' 4-bit format <-> LUTWeight's codes and group scales (host side, NumPy).

bitsandbytes (``quantize_4bit``) flattens the weight (N, K) in row-major order, cuts it into
blocks of ``blocksize`` consecutive values (the last one partial when blocksize does not divide
N * K), keeps one float32 absmax per block, and stores two 4-bit codes per byte, the first
value in the high nibble: byte i = code[2i] << 4 | code[2i + 1] (an odd count is padded with
the code of 0). It dequantizes ``code_table[code] * absmax[block]`` in float32, the tables being
"nf4" (reference.lut.NF4) and "fp4" (reference.lut.FP4_BNB), both of reach 1.

LUTWeight groups are per row. A block layout maps onto groups when each group of a row lies in
one block: blocksize a multiple of K (a row in one block: one group per row), or groups of
gcd(K, blocksize) columns when that is a multiple of 32 (blocksize | K gives groups of
blocksize), the block's absmax repeated over its groups.
"""

from __future__ import annotations

import math

import numpy as np

QUANT_TYPES = ("nf4", "fp4")


def unpack_nibbles(packed, n):
    """uint8 bytes -> the first n codes (uint8), high nibble first."""
    b = np.asarray(packed, np.uint8).reshape(-1)
    codes = np.empty(2 * b.size, np.uint8)
    codes[0::2] = b >> 4
    codes[1::2] = b & 15
    return codes[:n]


def pack_nibbles(codes, pad_code):
    """uint8 codes (n,) -> uint8 (ceil(n / 2), 1), high nibble first, an odd tail padded."""
    c = np.asarray(codes, np.uint8).reshape(-1)
    if c.size % 2:
        c = np.concatenate([c, np.array([pad_code], np.uint8)])
    return ((c[0::2] << 4) | c[1::2]).astype(np.uint8).reshape(-1, 1)


def group_size_for(K, blocksize):
    """The group size (columns per group; K for one group per row) whose groups each lie in
    one bitsandbytes block, or None where none is a multiple of 32 (or the whole row)."""
    if blocksize % K == 0:
        return K
    g = math.gcd(K, blocksize)
    return g if g % 32 == 0 else None


def scales_from_absmax(absmax, N, K, blocksize, group_size):
    """float32 (N, ceil(K / group_size)): the absmax of the block holding each group."""
    ng = -(-K // group_size)
    start = np.arange(N, dtype=np.int64)[:, None] * K + np.arange(ng, dtype=np.int64) * group_size
    return np.asarray(absmax, np.float32)[start // blocksize]


def absmax_from_scales(scales, N, K, group_size, blocksize):
    """float32 (ceil(N*K / blocksize),) absmax per block, or None where some block covers
    groups of different scales (the weight cannot be written with this blocksize)."""
    s = np.ascontiguousarray(scales, np.float32).reshape(-1)  # groups in flat order
    if K % blocksize == 0 and group_size == blocksize:
        return s.copy()
    n, ng = N * K, scales.shape[1]
    first = np.arange(0, n, blocksize, dtype=np.int64)  # each block's first and last element
    last = np.minimum(first + blocksize, n) - 1

    def flat_group(e):
        return (e // K) * ng + (e % K) // group_size

    g0, g1 = flat_group(first), flat_group(last)
    run = np.concatenate([[0], np.cumsum(s[1:] != s[:-1])])  # runs of equal scales
    if not bool((run[g0] == run[g1]).all()):
        return None
    return s[g0]
