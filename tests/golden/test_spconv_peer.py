"""spconv (CPU) as the software peer: its submanifold convolution gives the golden binary SSC's
integer sums exactly, on a frame made by hand and on the frog CT volume's 5,130-site frame."""

import numpy as np
import pytest

from golden.frog import frog_frame
from golden.sparse import binary_ssc_dot, ssc_kernel_map
from golden.spconv_peer import spconv_ssc_dot
from quant.errors import BnnforgeError


def test_hand_frame_every_offset():
    """A centre site with all 26 neighbours and one far site: each offset's weight reaches the
    neighbour at that offset only (a wrong axis order or a flipped kernel would change the
    sums), checked against the golden model."""
    rng = np.random.default_rng(0)
    cube = np.array([(x, y, z) for z in (1, 2, 3) for y in (1, 2, 3) for x in (1, 2, 3)])
    coords = np.vstack([cube, [[6, 6, 6]]])
    feats = rng.integers(0, 2, (len(coords), 5), dtype=np.uint8)
    w = rng.integers(0, 2, (27, 3, 5), dtype=np.uint8)
    got, _ = spconv_ssc_dot(coords, feats, w, 3)
    want = binary_ssc_dot(feats, w, ssc_kernel_map(coords, 3))
    assert np.array_equal(got, want)
    assert got[-1].tolist() == ((2 * feats[-1].astype(int) - 1) @ (2 * w[13].T.astype(int) - 1)
                                ).tolist()


@pytest.mark.parametrize("seed", [1, 2])
def test_frog_frame_equals_golden(seed):
    coords, feats, bits = frog_frame(9)
    w = np.random.default_rng(seed).integers(0, 2, (27, 16, 16), dtype=np.uint8)
    got, _ = spconv_ssc_dot(coords, feats, w, bits)
    assert len(coords) == 5130
    assert np.array_equal(got, binary_ssc_dot(feats, w, ssc_kernel_map(coords, bits)))


def test_shifted_windows_equal_golden():
    """SFSC: four groups of output channels, each with its own window shift (one of them
    none), as one kernel-5 SubMConv3d: each group's sums equal the golden model's at its
    shift, on the hand frame (every offset reached) and the 5,130-site frog frame."""
    from golden.sparse import sparse_layer_sums

    rng = np.random.default_rng(3)
    group_shifts = [(1, 0, -1), (0, 0, 0), (-1, 1, 1), (0, -1, 0)]
    cube = np.array([(x, y, z) for z in range(1, 6) for y in range(1, 6) for x in range(1, 6)])
    frames = [(cube, 3), frog_frame(9)[::2]]
    for coords, bits in frames:
        feats = rng.integers(0, 2, (len(coords), 6), dtype=np.uint8)
        w = rng.integers(0, 2, (27, 8, 6), dtype=np.uint8)
        shifts = np.repeat(group_shifts, 2, axis=0)
        got, _ = spconv_ssc_dot(coords, feats, w, bits, shifts=shifts)
        for g, s in enumerate(group_shifts):
            ch = slice(2 * g, 2 * g + 2)
            out, want = sparse_layer_sums("ssc", (coords, feats), w[:, ch], bits, shift=s)
            assert np.array_equal(out, coords) and np.array_equal(got[:, ch], want), s


def test_shifts_checked():
    w = np.zeros((27, 2, 3), np.uint8)
    with pytest.raises(BnnforgeError, match=r"SFSC shifts must be one \(sx, sy, sz\) in -1..1 "
                       r"per output channel \(2 x 3\), not \(2, 2\)"):
        spconv_ssc_dot(np.zeros((1, 3), int), np.zeros((1, 3), np.uint8), w, 3,
                       shifts=np.zeros((2, 2), int))
    with pytest.raises(BnnforgeError, match="in -1..1"):
        spconv_ssc_dot(np.zeros((1, 3), int), np.zeros((1, 3), np.uint8), w, 3,
                       shifts=[[2, 0, 0], [0, 0, 0]])
