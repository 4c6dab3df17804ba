"""Packed code layouts of LUTWeight: one for the CPU kernels, one in the GPU's tile order.

Both are made of "blocks" of 32 codes stored in ``bits`` uint32 words:
- 4-bit: word w holds codes 8w .. 8w+7, code i in bits 4*(i % 8) .. 4*(i % 8) + 3;
- 2-bit: word w holds codes 16w .. 16w+15, code i in bits 2*(i % 16) ..;
- 3-bit: words 0-1 hold the low two bits of the 32 codes as in the 2-bit layout, word 2 the
  third bit (bit i of word 2 = bit 2 of code i).
A 4-bit word expands to 8 floats with two 8-entry permutes and a blend (AVX2), a 3-bit or
2-bit block likewise; on the GPU a byte (two codes) indexes a table of half2 pairs.

CPU layout: uint32 (N, K*bits/32); block j of row n holds W[n, 32j .. 32j+31]; for 4 bits
the codes inside each word are reordered for the AVX2 kernel (CPU_NIBBLE below): it splits a
block's 16 bytes into low nibbles (lane 0) and high nibbles (lane 1), looks up four byte
planes of the float table with vpshufb and interleaves them back into floats (unpack 8, then
16 bits), which yields code k of word q from byte 4q + k % 4, low nibble for k % 8 < 4.

GPU layout: uint32 (ceil(N/16), ceil(K/64), bits, 32): for each 16-row tile and 64-column
chunk, lane l of a warp owns one block of 32 codes, the A-fragments of mma.m16n8k16 for the
four 16x16 tiles of the chunk: code i = 8*tt + j of lane l (g = l // 4, t = l % 4) is
W[16*nt + g + 8*((j >> 1) & 1), 64*kc + 16*tt + 2*t + (j & 1) + 8*(j >> 2)]. Words are stored
word-major so that the 32 lanes' loads of one word are one coalesced 128-byte access. Rows
and columns past (N, K) hold code 0 and are never read into the result.

Packing runs on the host (NumPy); unpacking works on NumPy and CuPy arrays alike.
"""

from __future__ import annotations

import numpy as np


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


# 4-bit CPU blocks: code 8q + e sits at nibble CPU_NIBBLE[e] of word q.
CPU_NIBBLE = np.array([0, 2, 4, 6, 1, 3, 5, 7])
_CPU_POS = (8 * np.arange(4)[:, None] + CPU_NIBBLE[None, :]).reshape(32)  # pos of code k


def pack_cpu(codes, bits):
    """uint8 (N, K) codes, K % 32 == 0 -> uint32 (N, K*bits/32)."""
    N, K = codes.shape
    blocks = codes.reshape(N, K // 32, 32)
    if bits == 4:
        natural = np.empty_like(blocks)
        natural[..., _CPU_POS] = blocks
        blocks = natural
    return pack_blocks(blocks, bits).reshape(N, K // 32 * bits)


def unpack_cpu(packed, bits, K):
    N = packed.shape[0]
    blocks = unpack_blocks(packed.reshape(N, K // 32, bits), bits)
    if bits == 4:
        xp = _xp(packed)
        blocks = blocks[..., xp.asarray(_CPU_POS)]
    return blocks.reshape(N, K)


def _gpu_index(xp, N16, K64):
    """(rows, cols) int64 arrays of shape (N16/16, K64/64, 32 lanes, 32 codes)."""
    lane = xp.arange(32).reshape(32, 1)
    i = xp.arange(32).reshape(1, 32)
    tt, j = i // 8, i % 8
    g, t = lane // 4, lane % 4
    r_in = g + 8 * ((j >> 1) & 1)  # (32, 32)
    c_in = 16 * tt + 2 * t + (j & 1) + 8 * (j >> 2)
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
