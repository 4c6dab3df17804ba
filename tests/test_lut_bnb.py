"""bitsandbytes' 4-bit format: LUTWeight.from_bitsandbytes / to_bitsandbytes against the
NumPy definition of the format (reference.lut.bnb_quantize / bnb_dequantize) and known
values, and against bitsandbytes itself when it is importable (skipped with the reason
otherwise).

Tolerances
- Conversions are exact: the same codes (bytes) and absmax, and dequantized float32 values
  bit-identical to bitsandbytes' ``table[code] * absmax`` (one float32 product each).
- lut_quantize(table="nf4"/"fp4") against bitsandbytes' quantizer: the same absmax, and the
  same code for every weight except (a) weights whose scaled value W / absmax lies within
  2**-20 of the midpoint between two table values (bitsandbytes rounds x * (1 / absmax) in
  float32, matkern divides in float64: the two can fall on either side), and (b) for fp4, a
  zero that one side codes +0 (0) and the other -0 (8): the same value.
- lut_matmul on a converted weight: the CPU bound of tests/test_lut.py ((K + 2) u |X| |W|).
"""

import numpy as np
import pytest

import matkern
from matkern.reference import lut as ref
from test_lut import cpu_bound

QT = ("nf4", "fp4")
# (N, K, blocksize): blocks that divide K; blocks straddling rows at multiples of 32 (groups
# of gcd(K, blocksize)); a row inside a block (one group per row, K not a multiple of 32 and
# N * K odd: a padded last nibble); large blocks; a partial last block
SHAPES = [
    (64, 256, 64),
    (5, 96, 64),
    (4, 64, 128),
    (3, 33, 66),
    (6, 4096, 4096),
    (2, 8192, 4096),
    (7, 160, 64),
    (3, 4160, 4096),
]


def weight(N, K, seed=0):
    return np.random.default_rng(seed + N + K).standard_normal((N, K)).astype(np.float32)


@pytest.fixture(scope="module")
def bnb():
    try:
        import bitsandbytes.functional as F
        import torch
    except Exception as e:  # not installed, or no build for this machine
        pytest.skip(f"bitsandbytes is not importable here: {type(e).__name__}: {e}")
    return torch, F


def test_known_values():
    """High nibble first; nf4 codes 0 / 7 / 15 are -1 / 0 / 1 and bitsandbytes' fp4 codes 3 /
    2 / 1 / 11 are 1, 2/3, 1/192, -1 (times the block's absmax)."""
    packed = np.array([0x0F, 0x7F, 0xF0, 0x00], np.uint8)  # codes 0,15,7,15,15,0,0,0
    qw = matkern.LUTWeight.from_bitsandbytes(packed, np.float32([2.0]), (1, 8), "nf4", 64)
    np.testing.assert_array_equal(qw.codes[0], [0, 15, 7, 15, 15, 0, 0, 0])
    np.testing.assert_array_equal(qw.dequantize()[0], [-2, 2, 0, 2, 2, -2, -2, -2])
    packed = np.array([0x32, 0x1B], np.uint8)  # codes 3, 2, 1, 11
    qw = matkern.LUTWeight.from_bitsandbytes(packed, np.float32([3.0]), (1, 4), "fp4", 32)
    expect = np.float32([1, 2 / 3, 1 / 192, -1]) * np.float32(3)
    np.testing.assert_array_equal(qw.dequantize()[0], expect)
    assert qw.table_name == "fp4" and qw.bits == 4 and qw.group_size == 4


@pytest.mark.parametrize("qt", QT)
@pytest.mark.parametrize("N,K,bs", SHAPES)
def test_round_trip_against_the_format(qt, N, K, bs):
    W = weight(N, K)
    packed, absmax = ref.bnb_quantize(W, qt, bs)
    qw = matkern.LUTWeight.from_bitsandbytes(packed, absmax, (N, K), qt, bs)
    expect = ref.bnb_dequantize(packed, absmax, (N, K), qt, bs)
    np.testing.assert_array_equal(qw.dequantize(), expect)
    np.testing.assert_array_equal(qw.dequantize(np.float16), expect.astype(np.float16))
    p2, a2, shape, qt2, bs2 = qw.to_bitsandbytes(bs)
    np.testing.assert_array_equal(p2, packed)
    np.testing.assert_array_equal(a2, absmax)
    assert (shape, qt2, bs2) == ((N, K), qt, bs) and p2.dtype == np.uint8
    X = np.random.default_rng(1).standard_normal((3, K)).astype(np.float32)
    y = matkern.LUTLinear.from_weight(qw)(X)
    exact = X.astype(np.float64) @ expect.T.astype(np.float64)
    assert np.all(np.abs(y - exact) <= cpu_bound(X, expect))


@pytest.mark.parametrize("qt", QT)
@pytest.mark.parametrize("gs,K", [(64, 256), (128, 1000), (None, 100), (4096, 8192)])
def test_lut_quantize_gives_bitsandbytes_codes(qt, gs, K):
    """lut_quantize with bitsandbytes' tables, written out with to_bitsandbytes, is what
    bitsandbytes' quantizer makes of W (blocksize = the group size where it divides K; one
    group per row: blocksize K), up to the ties stated in the docstring."""
    N = 9
    W = weight(N, K, seed=3)
    qw = matkern.lut_quantize(W, 4, gs, qt)
    if K % qw.group_size:
        with pytest.raises(ValueError, match="does not divide K"):
            qw.to_bitsandbytes()
        return
    packed, absmax, _, _, bs = qw.to_bitsandbytes()
    p_ref, a_ref = ref.bnb_quantize(W, qt, bs)
    np.testing.assert_array_equal(absmax, a_ref)
    ours = qw.codes.reshape(-1)
    theirs = np.stack([p_ref.ravel() >> 4, p_ref.ravel() & 15], axis=1).reshape(-1)[: N * K]
    table = ref.bnb_table(qt)
    differ = ours != theirs
    same_value = table[ours] == table[theirs]  # fp4's +0 / -0
    v = (W.reshape(-1) * (np.float32(1) / absmax[np.arange(N * K) // bs])).astype(np.float64)
    s = np.sort(table.astype(np.float64))
    mids = (s[1:] + s[:-1]) / 2
    near_tie = np.abs(v[:, None] - mids).min(axis=1) < 2.0**-20
    assert np.all(~differ | same_value | near_tie)
    assert (differ & ~same_value).mean() < 1e-3


def test_unrepresentable_blocks_and_bad_input():
    fn = r"LUTWeight.from_bitsandbytes\(\): "
    p, a = ref.bnb_quantize(weight(7, 100), "nf4", 64)
    with pytest.raises(ValueError, match=fn + r"blocks of blocksize = 64 over rows of K = 100"):
        matkern.LUTWeight.from_bitsandbytes(p, a, (7, 100), "nf4", 64)
    p, a = ref.bnb_quantize(weight(4, 64), "fp4", 64)
    F = matkern.LUTWeight.from_bitsandbytes
    with pytest.raises(ValueError, match=fn + r"packed must hold ceil\(N\*K / 2\) = 128 bytes"):
        F(p[:-1], a, (4, 64), "fp4", 64)
    with pytest.raises(ValueError, match=fn + r"absmax must have ceil\(N\*K / blocksize\) = 4"):
        F(p, a[:3], (4, 64), "fp4", 64)
    with pytest.raises(ValueError, match=fn + "quant_type must be one of"):
        F(p, a, (4, 64), "int4", 64)
    with pytest.raises(TypeError, match=fn + "packed must have dtype uint8, got float32"):
        F(p.astype(np.float32), a, (4, 64), "fp4", 64)
    with pytest.raises(ValueError, match=fn + "absmax must be finite, >= 0"):
        F(p, -a, (4, 64), "fp4", 64)
    with pytest.raises(ValueError, match=fn + r"shape must be \(N, K\)"):
        F(p, a, (256,), "fp4", 64)
    with pytest.raises(ValueError, match=fn + "blocksize must be >= 1"):
        F(p, a, (4, 64), "fp4", 0)
    qw = matkern.lut_quantize(weight(4, 64), 4, 32, "fp4_e2m1")
    with pytest.raises(ValueError, match="bitsandbytes has the tables 'nf4' and 'fp4' only"):
        qw.to_bitsandbytes()
    qw = matkern.lut_quantize(weight(4, 64), 4, 32, "nf4")
    with pytest.raises(ValueError, match="blocks of blocksize = 64 would span groups of"):
        qw.to_bitsandbytes(64)  # two groups of different scales per block


# ------------------------------------------------------------- against bitsandbytes itself


@pytest.mark.parametrize("qt", QT)
@pytest.mark.parametrize("N,K,bs", SHAPES)
def test_against_bitsandbytes(bnb, qt, N, K, bs):
    """bitsandbytes' quantize_4bit output read by from_bitsandbytes dequantizes to exactly
    its own dequantize_4bit (its CPU kernel where blocks divide K; its plain PyTorch backend
    where blocks straddle rows, since the CPU kernel of bitsandbytes 0.50 reads those
    differently from its documented format and its other backends), and to_bitsandbytes
    gives back its bytes and absmax."""
    torch, F = bnb
    if bs not in (32, 64, 128, 256, 512, 1024, 2048, 4096):
        pytest.skip(f"bitsandbytes takes blocksizes 32 .. 4096 (powers of two), not {bs}")
    W = weight(N, K)
    q, state = F.quantize_4bit(torch.from_numpy(W), blocksize=bs, quant_type=qt)
    packed, absmax = q.numpy(), state.absmax.numpy()
    p_ref, a_ref = ref.bnb_quantize(W, qt, bs)  # the NumPy definition agrees with it
    np.testing.assert_array_equal(absmax, a_ref)
    assert np.mean(packed.ravel() != p_ref.ravel()) < 1e-3
    qw = matkern.LUTWeight.from_bitsandbytes(packed, absmax, (N, K), qt, bs)
    if K % bs == 0:
        theirs = F.dequantize_4bit(q, state).numpy()
    else:
        from bitsandbytes.backends.default import ops
        from bitsandbytes.backends.utils import _get_4bit_code

        code = _get_4bit_code(qt, q.device)
        theirs = ops._dequantize_4bit_compute(
            q.reshape(-1), state.absmax, code, bs, (N, K), torch.float32
        ).numpy()
    np.testing.assert_array_equal(qw.dequantize(), theirs)
    p2, a2, _, _, _ = qw.to_bitsandbytes(bs)
    np.testing.assert_array_equal(p2.ravel(), packed.ravel())
    np.testing.assert_array_equal(a2, absmax)
    if K % bs == 0:  # bitsandbytes reads what to_bitsandbytes writes
        qs = F.QuantState(
            absmax=torch.from_numpy(a2),
            shape=torch.Size((N, K)),
            dtype=torch.float32,
            blocksize=bs,
            quant_type=qt,
        )
        back = F.dequantize_4bit(torch.from_numpy(p2), quant_state=qs)
        np.testing.assert_array_equal(back.numpy(), qw.dequantize())


def test_against_bitsandbytes_nested_absmax(bnb):
    """compress_statistics=True: pass the dequantized absmax, as the docstring says."""
    torch, F = bnb
    W = weight(32, 512)
    q, state = F.quantize_4bit(
        torch.from_numpy(W), blocksize=64, quant_type="nf4", compress_statistics=True
    )
    absmax = (F.dequantize_blockwise(state.absmax, state.state2) + state.offset).float()
    qw = matkern.LUTWeight.from_bitsandbytes(q.numpy(), absmax.numpy(), (32, 512), "nf4", 64)
    np.testing.assert_array_equal(qw.dequantize(), F.dequantize_4bit(q, state).numpy())
