"""Packed code layouts of LUTWeight: one for the CPU kernels, one in the GPU's tile order.

Both are made of "blocks" of 32 codes in ``bits`` uint32 words (pack_blocks), except the
CPU's 4-bit blocks, which are paired (below):
- 4-bit: word w holds codes 8w .. 8w+7, code i in bits 4*(i % 8) .. 4*(i % 8) + 3;
- 2-bit: word w holds codes 16w .. 16w+15, code i in bits 2*(i % 16) ..;
- 3-bit: words 0-1 hold the low two bits of the 32 codes as in the 2-bit layout, word 2 the
  third bit (bit i of word 2 = bit 2 of code i).
On the CPU (AVX2) 2- and 3-bit codes index the table with 8-entry permutes and 4-bit codes
with byte shuffles (below); on the GPU a byte (two codes) indexes a table of half2 pairs.

CPU layout: uint32 (N, K32*bits/32), K32 = K rounded up to a multiple of 32 (codes past K are
0 and the kernels multiply them by zero columns of X); block j of row n holds W[n, 32j .. 32j+31] in words
j*bits .. (j+1)*bits - 1. For 4 bits the AVX2 kernel turns 32 one-byte indices (two 128-bit
lanes) into floats: it looks up four byte planes of the float table with vpshufb and
interleaves them back (unpack 8, then 16 bits), which yields code 8q + e of the block from
index byte CPU_POS[8q + e] = 4q + e (e < 4) or 16 + 4q + e - 4 (e >= 4). So blocks are
stored in pairs: the 32 bytes (8 words) of blocks 2i and 2i+1 hold block 2i's index bytes in
their low nibbles and block 2i+1's in their high nibbles, and one 32-byte load, a mask and
(for the odd block) one shift give a block's indices. When a row has an odd number of
blocks (K / 32 odd, possible only at group_size 32), its last block stands alone in 16
bytes: index bytes 0-15 in the low nibbles, 16-31 in the high nibbles.

GPU layout: uint32 (ceil(N/16), ceil(K/64), bits, 32): for each 16-row tile and 64-column
chunk, lane l of a warp owns one block of 32 codes, the A-fragments of mma.m16n8k16 for the
four 16x16 tiles of the chunk: code i = 8*tt + j of lane l is element j of the lane's A
fragment of tile tt (_mma_layout.a_m16n8k16, offset by (16*nt, 64*kc + 16*tt)). Words are stored
word-major so that the 32 lanes' loads of one word are one coalesced 128-byte access. Rows
and columns past (N, K) hold code 0 and are never read into the result.

Packing runs on the host (NumPy); unpacking works on NumPy and CuPy arrays alike.
"""

from __future__ import annotations

import numpy as np

from ._mma_layout import a_m16n8k16


def _xp(a):
    from . import _dispatch

    return _dispatch.array_module(a)


def pack_blocks(codes, bits):
    """(..., 32) uint8 codes -> (..., bits) uint32 words (NumPy)."""
    c = codes.astype(np.uint32)
    if bits == 4:
        c = c.reshape(c.shape[:-1] + (4, 8))
        return (c << (4 * np.arange(8, dtype=np.uint32))).sum(-1, dtype=np.uint32)
    if bits == 2:
        c = c.reshape(c.shape[:-1] + (2, 16))
        return (c << (2 * np.arange(16, dtype=np.uint32))).sum(-1, dtype=np.uint32)
    lo = pack_blocks(c & 3, 2)
    hi = ((c >> 2) & 1) << np.arange(32, dtype=np.uint32)
    return np.concatenate([lo, hi.sum(-1, dtype=np.uint32)[..., None]], axis=-1)


def unpack_blocks(words, bits):
    """(..., bits) uint32 -> (..., 32) uint8 codes (NumPy or CuPy)."""
    xp = _xp(words)
    w = words.astype(xp.uint32)
    if bits == 4:
        c = (w[..., None] >> (4 * xp.arange(8, dtype=xp.uint32))) & 15
        return c.reshape(w.shape[:-1] + (32,)).astype(xp.uint8)
    if bits == 2:
        c = (w[..., None] >> (2 * xp.arange(16, dtype=xp.uint32))) & 3
        return c.reshape(w.shape[:-1] + (32,)).astype(xp.uint8)
    lo = unpack_blocks(w[..., :2], 2)
    hi = ((w[..., 2:3] >> xp.arange(32, dtype=xp.uint32)) & 1).astype(xp.uint8)
    return lo | (hi << 2)


# 4-bit CPU blocks: code k of a block is index byte CPU_POS[k] (see the docstring).
_E = np.arange(32) % 8
CPU_POS = 4 * (np.arange(32) // 8) + np.where(_E < 4, _E, 12 + _E)
_BYTE_SHIFT = 8 * np.arange(4, dtype=np.uint32)


def _bytes_to_words(b):
    """(..., 4n) uint8 -> (..., n) uint32, little-endian."""
    b = b.astype(np.uint32).reshape(b.shape[:-1] + (b.shape[-1] // 4, 4))
    return (b << _BYTE_SHIFT).sum(-1, dtype=np.uint32)


def _words_to_bytes(w):
    """(..., n) uint32 -> (..., 4n) uint8 (NumPy or CuPy), little-endian."""
    xp = _xp(w)
    b = (w[..., None] >> xp.asarray(_BYTE_SHIFT)) & 255
    return b.reshape(w.shape[:-1] + (4 * w.shape[-1],)).astype(xp.uint8)


def _index_bytes(blocks):
    """(..., 32) codes -> (..., 32) index bytes: byte CPU_POS[k] = code k."""
    out = np.empty_like(blocks)
    out[..., CPU_POS] = blocks
    return out


def k32(K):
    """K rounded up to a multiple of 32: the columns a packed row holds."""
    return -(-K // 32) * 32


def pack_cpu(codes, bits):
    """uint8 (N, K) codes -> uint32 (N, k32(K)*bits/32) (zero codes past K)."""
    N, K = codes.shape
    if K % 32:
        padded = np.zeros((N, k32(K)), np.uint8)
        padded[:, :K] = codes
        codes, K = padded, k32(K)
    nb = K // 32
    blocks = codes.reshape(N, nb, 32)
    if bits != 4:
        return pack_blocks(blocks, bits).reshape(N, nb * bits)
    idx = _index_bytes(blocks.astype(np.uint8))
    npair = nb // 2
    pairs = idx[:, : 2 * npair].reshape(N, npair, 2, 32)
    words = [_bytes_to_words(pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(N, 8 * npair)]
    if nb % 2:  # the lone last block: index bytes 0-15 low nibbles, 16-31 high nibbles
        last = idx[:, -1]
        words.append(_bytes_to_words(last[:, :16] | (last[:, 16:] << 4)))
    return np.concatenate(words, axis=1)


def unpack_cpu(packed, bits, K):
    """uint32 (N, k32(K)*bits/32) -> uint8 (N, K) (NumPy or CuPy)."""
    if K % 32:
        return unpack_cpu(packed, bits, k32(K))[:, :K]
    xp = _xp(packed)
    N, nb = packed.shape[0], K // 32
    if bits != 4:
        return unpack_blocks(packed.reshape(N, nb, bits), bits).reshape(N, K)
    npair = nb // 2
    b = _words_to_bytes(packed[:, : 8 * npair].reshape(N, npair, 8))  # (N, npair, 32)
    idx = [xp.stack([b & 15, b >> 4], axis=2).reshape(N, 2 * npair, 32)]
    if nb % 2:
        last = _words_to_bytes(packed[:, 8 * npair :])  # (N, 16)
        idx.append(xp.concatenate([last & 15, last >> 4], axis=1)[:, None, :])
    idx = xp.concatenate(idx, axis=1)
    return idx[..., xp.asarray(CPU_POS)].reshape(N, K)


def _gpu_index(xp, N16, K64):
    """(rows, cols) int64 arrays of shape (N16/16, K64/64, 32 lanes, 32 codes)."""
    lane = xp.arange(32).reshape(32, 1)
    i = xp.arange(32).reshape(1, 32)
    tt, j = i // 8, i % 8
    r_in, c_in = a_m16n8k16(lane, j)  # (32, 32): element j of the A fragment of tile tt
    c_in = c_in + 16 * tt
    nt = xp.arange(N16 // 16).reshape(-1, 1, 1, 1)
    kc = xp.arange(K64 // 64).reshape(1, -1, 1, 1)
    return 16 * nt + r_in, 64 * kc + c_in


def pack_gpu(codes, bits):
    """uint8 (N, K) codes -> uint32 (ceil(N/16), ceil(K/64), bits, 32) (NumPy)."""
    N, K = codes.shape
    N16, K64 = -(-N // 16) * 16, -(-K // 64) * 64
    padded = np.zeros((N16, K64), np.uint8)
    padded[:N, :K] = codes
    rows, cols = _gpu_index(np, N16, K64)
    blocks = padded[rows, cols]  # (nt, kc, lane, 32)
    words = pack_blocks(blocks, bits)  # (nt, kc, lane, bits)
    return np.ascontiguousarray(words.transpose(0, 1, 3, 2))


def unpack_gpu(packed, bits, N, K):
    xp = _xp(packed)
    words = packed.transpose(0, 1, 3, 2)
    blocks = unpack_blocks(words, bits)  # (nt, kc, lane, 32)
    N16, K64 = packed.shape[0] * 16, packed.shape[1] * 64
    rows, cols = _gpu_index(xp, N16, K64)
    out = xp.zeros((N16, K64), xp.uint8)
    out[rows, cols] = blocks
    return out[:N, :K]
