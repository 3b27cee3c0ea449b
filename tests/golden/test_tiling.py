"""Tiles with halos: a frame cut into tiles of bounded size and coordinate width gives, put
back together, exactly the whole frame's sums, for the three layer kinds."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden.frog import frog_frame
from golden.sparse import sort_frame, sparse_layer_sums
from golden.tiling import merge_outputs, tile_layer, tile_stats


def _tiled(kind, frame, w, bits, tile_bits, max_voxels, shift=(0, 0, 0)):
    tiles, n = tile_layer(kind, frame, tile_bits, max_voxels,
                          reach=1 + max(abs(v) for v in shift))
    for t in tiles:
        assert len(t.frame[0]) <= max_voxels and (len(t.frame) < 3 or
                                                  len(t.frame[2]) <= max_voxels)
        for part in (t.frame[0], t.frame[-1]):
            assert part.min(initial=0) >= 0 and part.max(initial=0) < 1 << tile_bits
    outs = [sparse_layer_sums(kind, t.frame, w, tile_bits, shift=shift)[1] for t in tiles]
    return merge_outputs(tiles, outs, n), tiles


def _frame(seed, n, extent, cin=3):
    rng = np.random.default_rng(seed)
    c = np.unique(rng.integers(0, extent, (n, 3)), axis=0)
    bits = max(1, int(c.max()).bit_length())
    f = rng.integers(0, 2, (len(c), cin), dtype=np.uint8)
    return (*sort_frame(c, f, bits), bits)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), extent=st.sampled_from([4, 9, 33]),
       tile_bits=st.integers(2, 5), max_voxels=st.sampled_from([27, 40, 1000]))
def test_ssc_tiles_equal_the_whole_frame(seed, n, extent, tile_bits, max_voxels):
    coords, feats, bits = _frame(seed, n, extent)
    w = np.random.default_rng(seed + 1).integers(0, 2, (27, 2, 3), dtype=np.uint8)
    want = sparse_layer_sums("ssc", (coords, feats), w, bits)[1]
    got, _ = _tiled("ssc", (coords, feats), w, bits, tile_bits, max_voxels)
    assert np.array_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), extent=st.sampled_from([4, 9, 33]),
       tile_bits=st.integers(3, 5), max_voxels=st.sampled_from([125, 200, 1000]),
       shift=st.tuples(*[st.integers(-1, 1)] * 3))
def test_shifted_window_tiles_equal_the_whole_frame(seed, n, extent, tile_bits, max_voxels,
                                                    shift):
    """SFSC's shifted windows reach two voxels: tiles with a halo two wide give the whole
    frame's sums."""
    coords, feats, bits = _frame(seed, n, extent)
    w = np.random.default_rng(seed + 1).integers(0, 2, (27, 2, 3), dtype=np.uint8)
    want = sparse_layer_sums("ssc", (coords, feats), w, bits, shift=shift)[1]
    got, _ = _tiled("ssc", (coords, feats), w, bits, tile_bits, max_voxels, shift)
    assert np.array_equal(got, want)


def test_tiles_refuse_a_layer_too_small_for_a_shifted_window():
    from quant.errors import BnnforgeError

    coords, feats, _ = _frame(0, 20, 9)
    with pytest.raises(BnnforgeError, match=r"tiles need max_voxels >= 125 \(a voxel and its "
                                            r"halo\), not 100"):
        tile_layer("ssc", (coords, feats), 4, 100, reach=2)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), extent=st.sampled_from([4, 9, 33]),
       tile_bits=st.integers(1, 5), max_voxels=st.sampled_from([27, 40, 1000]))
def test_down_and_up_tiles_equal_the_whole_frame(seed, n, extent, tile_bits, max_voxels):
    from golden.sparse import downsample_map

    coords, feats, bits = _frame(seed, n, extent)
    w = np.random.default_rng(seed + 1).integers(0, 2, (8, 2, 3), dtype=np.uint8)
    want = sparse_layer_sums("down", (coords, feats), w, bits)[1]
    got, _ = _tiled("down", (coords, feats), w, bits, tile_bits, max_voxels)
    assert np.array_equal(got, want)
    coarse, _ = downsample_map(coords)
    cf = np.random.default_rng(seed + 2).integers(0, 2, (len(coarse), 3), dtype=np.uint8)
    want = sparse_layer_sums("up", (coarse, cf, coords), w, bits)[1]
    got, _ = _tiled("up", (coarse, cf, coords), w, bits, tile_bits, max_voxels)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("voxel_size", [9, 4])
def test_frog_frames_in_5_bit_tiles_of_1024_sites(voxel_size):
    """The frog frames (5,130 and 34,331 sites, 6- and 7-bit coordinates) in tiles of 5-bit
    coordinates and at most 1,024 sites: the same SSC sums."""
    coords, feats, bits = frog_frame(voxel_size, 4)
    w = np.random.default_rng(0).integers(0, 2, (27, 4, 4), dtype=np.uint8)
    want = sparse_layer_sums("ssc", (coords, feats), w, bits)[1]
    got, tiles = _tiled("ssc", (coords, feats), w, bits, 5, 1024)
    assert np.array_equal(got, want)
    s = tile_stats(tiles)
    assert s["sites_kept"] == len(coords) and s["largest_tile"] <= 1024
