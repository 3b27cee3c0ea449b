"""spconv (CPU) as the software peer: its submanifold convolution gives the golden binary SSC's
integer sums exactly, on a frame made by hand and on the frog CT volume's 5,130-site frame."""

import numpy as np
import pytest

from golden.frog import frog_frame
from golden.sparse import binary_ssc_dot, ssc_kernel_map
from golden.spconv_peer import spconv_ssc_dot


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
