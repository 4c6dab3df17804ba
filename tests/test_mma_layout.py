"""matkern._mma_layout, the fragment layouts the host-side layouts and kernel replays read
(cuda/mma.cuh describes the same): every map covers its tile exactly once, and a few entries
checked by hand against the PTX ISA's figures ("Matrix fragments for mma.m16n8k*")."""

import numpy as np
import pytest

from matkern import _mma_layout as layout

# (map, elements per lane, tile shape)
MAPS = [
    (layout.a_m16n8k8_tf32, 4, (16, 8)),
    (layout.b_m16n8k8_tf32, 2, (8, 8)),
    (layout.a_m16n8k16, 8, (16, 16)),
    (layout.b_m16n8k16, 4, (16, 8)),
    (layout.a_m16n8k32_s8, 16, (16, 32)),
    (layout.b_m16n8k32_s8, 8, (32, 8)),
    (layout.c_m16n8, 4, (16, 8)),
]


@pytest.mark.parametrize("fmap,per_lane,shape", MAPS, ids=[m[0].__name__ for m in MAPS])
def test_each_map_covers_its_tile_once(fmap, per_lane, shape):
    hits = np.zeros(shape, int)
    for lane in range(32):
        for i in range(per_lane):
            hits[fmap(lane, i)] += 1
    assert (hits == 1).all()


@pytest.mark.parametrize("fmap,per_lane,shape", MAPS, ids=[m[0].__name__ for m in MAPS])
def test_maps_work_on_arrays(fmap, per_lane, shape):
    lane, i = np.arange(32)[:, None], np.arange(per_lane)[None, :]
    r, c = np.broadcast_arrays(*fmap(lane, i))
    assert [(int(r[a, b]), int(c[a, b])) for a in (0, 13, 31) for b in range(per_lane)] == [
        fmap(a, b) for a in (0, 13, 31) for b in range(per_lane)
    ]


def test_spot_values_from_the_ptx_isa():
    # lane 13: g = 3, t = 1
    assert layout.a_m16n8k8_tf32(13, 3) == (11, 5)
    assert layout.b_m16n8k8_tf32(13, 1) == (5, 3)
    assert layout.a_m16n8k16(13, 5) == (3, 11)  # a5: row g, column 2t + 8 + 1
    assert layout.b_m16n8k16(13, 2) == (10, 3)  # b2: k = 2t + 8
    assert layout.a_m16n8k32_s8(13, 13) == (11, 21)  # a13: row g + 8, column 16 + 4t + 1
    assert layout.b_m16n8k32_s8(13, 6) == (22, 3)  # b6: k = 16 + 4t + 2
    assert layout.c_m16n8(13, 3) == (11, 3)  # c3: row g + 8, column 2t + 1
