"""Where the registers of a warp's ``mma.sync`` fragments sit in the tile: the shapes the CUDA
kernels use (cuda/mma.cuh describes the same layouts; both follow the PTX ISA, "Matrix
fragments for mma.m16n8k*").

Element ``i`` of lane ``lane``'s fragment is at the returned position: ``(row, col)`` of A
(M x K) or C (M x N), ``(k, n)`` of B. The elements are numbered through the registers, two
16-bit or four 8-bit ones a register, the lower index in the lower bits. With
``g = lane // 4`` and ``t = lane % 4``. Works element-wise on integers and on NumPy / CuPy
integer arrays alike, so the host-side layouts (``_spmm_blocks``, ``_lut_layout``) and the host
replays of the kernels' index logic in the tests read the one description.
"""

from __future__ import annotations


def _gt(lane):
    return lane >> 2, lane & 3


def a_m16n8k8_tf32(lane, i):
    """(row, col) in the 16 x 8 A tile of element i (0..3) of an m16n8k8 .tf32 fragment."""
    g, t = _gt(lane)
    return g + 8 * (i & 1), t + 4 * (i >> 1)


def b_m16n8k8_tf32(lane, i):
    """(k, n) in the 8 x 8 B tile of element i (0..1) of an m16n8k8 .tf32 fragment."""
    g, t = _gt(lane)
    return t + 4 * i, g


def a_m16n8k16(lane, i):
    """(row, col) in the 16 x 16 A tile of element i (0..7) of an m16n8k16 f16/bf16 fragment."""
    g, t = _gt(lane)
    return g + 8 * ((i >> 1) & 1), 2 * t + (i & 1) + 8 * (i >> 2)


def b_m16n8k16(lane, i):
    """(k, n) in the 16 x 8 B tile of element i (0..3) of an m16n8k16 f16/bf16 fragment."""
    g, t = _gt(lane)
    return 2 * t + (i & 1) + 8 * (i >> 1), g


def a_m16n8k32_s8(lane, i):
    """(row, col) in the 16 x 32 A tile of byte i (0..15) of an m16n8k32 .s8 fragment."""
    g, t = _gt(lane)
    return g + 8 * ((i >> 2) & 1), 4 * t + (i & 3) + 16 * (i >> 3)


def b_m16n8k32_s8(lane, i):
    """(k, n) in the 32 x 8 B tile of byte i (0..7) of an m16n8k32 .s8 fragment."""
    g, t = _gt(lane)
    return 4 * t + (i & 3) + 16 * (i >> 2), g


def c_m16n8(lane, i):
    """(row, col) in the 16 x 8 C/D tile of element i (0..3); the same for every shape above."""
    g, t = _gt(lane)
    return g + 8 * (i >> 1), 2 * t + (i & 1)
