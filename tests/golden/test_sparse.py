import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from golden.sparse import (OFFSETS, BinarySparseConv, binary_ssc_dot, dense_reference_dot,
                           downsample_map, fold_batchnorm_dot, offset_index, sort_frame,
                           ssc_kernel_map, upsample_map, voxel_keys, voxelize)
from quant.errors import BnnforgeError


def random_frame(rng, n, extent, bits=6):
    coords = rng.integers(0, extent, (n * 3, 3))
    keys = np.unique(voxel_keys(coords, bits))[:n]
    rng.shuffle(keys)
    mask = (1 << bits) - 1
    return np.stack([keys & mask, (keys >> bits) & mask, keys >> (2 * bits)], axis=1)


def loop_kernel_map(coords, bits, shift=(0, 0, 0)):
    """Reference: the kernel map by a dictionary lookup per voxel and offset."""
    index = {tuple(c): i for i, c in enumerate(np.asarray(coords).tolist())}
    rows = []
    for i, c in enumerate(np.asarray(coords).tolist()):
        for k, off in enumerate(OFFSETS.tolist()):
            nb = tuple(int(c[d] + shift[d] + off[d]) for d in range(3))
            if all(0 <= v < (1 << bits) for v in nb) and nb in index:
                rows.append((i, index[nb], k))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(0, 150), extent=st.integers(1, 16),
       shift=st.sampled_from([(0, 0, 0), (1, 0, 0), (0, -1, 0), (0, 0, 1)]))
def test_kernel_map_equals_the_loop_reference(seed, n, extent, shift):
    """The vectorized map (binary search per offset) against a per-voxel dictionary loop, on
    frames that touch the coordinate limits (bits 4, extent up to 16)."""
    rng = np.random.default_rng(seed)
    coords, _ = sort_frame(random_frame(rng, n, extent, bits=4), np.zeros((n, 1)), bits=4)
    coords = coords[:n]
    assert np.array_equal(ssc_kernel_map(coords, 4, shift), loop_kernel_map(coords, 4, shift))


def test_offset_order():
    assert offset_index(0, 0, 0) == 13
    assert [offset_index(*o) for o in OFFSETS] == list(range(27))
    assert tuple(OFFSETS[1]) == (0, -1, -1)  # x fastest


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 120), extent=st.integers(2, 12))
def test_ssc_matches_dense_reference(seed, n, extent):
    rng = np.random.default_rng(seed)
    coords, feats = sort_frame(random_frame(rng, n, extent),
                               rng.integers(0, 2, (n, 5)), bits=6)
    coords, feats = coords[:n], feats[:n]
    w = rng.integers(0, 2, (27, 3, 5))
    kmap = ssc_kernel_map(coords, 6)
    got = binary_ssc_dot(feats, w, kmap)
    assert (got == dense_reference_dot(coords, feats, w, 6)).all()
    # Symmetry of the kernel map: (i -> v at k) implies (v -> i at 26 - k).
    pairs = {tuple(r) for r in kmap.tolist()}
    assert all((j, i, 26 - k) in pairs for i, j, k in pairs)
    assert sum(1 for i, j, k in pairs if k == 13 and i == j) == len(coords)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), cin=st.integers(1, 9), cout=st.integers(1, 9),
       pairs=st.integers(0, 200), n_out=st.integers(1, 30))
def test_ssc_dot_equals_pair_by_pair_sums(seed, cin, cout, pairs, n_out):
    """Any pair list, outputs repeated within a slot included (summed one pair at a time),
    and either way round of Cin and Cout: the sums of a plain loop over the pairs."""
    rng = np.random.default_rng(seed)
    feats = rng.integers(0, 2, (40, cin))
    w = rng.integers(0, 2, (27, cout, cin))
    kmap = np.stack([rng.integers(0, n_out, pairs), rng.integers(0, 40, pairs),
                     rng.integers(0, 27, pairs)], axis=1)
    want = np.zeros((n_out, cout), dtype=np.int64)
    for u, j, k in kmap.tolist():
        for o in range(cout):
            want[u, o] += 2 * int((feats[j] == w[k, o]).sum()) - cin
    got = binary_ssc_dot(feats, w, kmap, n_out)
    assert got.dtype == np.int64 and np.array_equal(got, want)


def test_structured_cube_and_isolated_voxels():
    cube = np.array([(x, y, z) for z in range(3) for y in range(3) for x in range(3)])
    lonely = np.array([[10, 10, 10], [20, 0, 5]])
    coords, _ = sort_frame(np.concatenate([cube, lonely]), np.zeros((29, 1)), bits=5)
    kmap = ssc_kernel_map(coords, 5)
    per_site = np.bincount(kmap[:, 0], minlength=29)
    centre = np.flatnonzero((coords == [1, 1, 1]).all(axis=1))[0]
    assert per_site[centre] == 27
    for p in np.flatnonzero((coords >= 10).any(axis=1)):
        assert per_site[p] == 1  # only itself


def test_limits_do_not_wrap():
    bits = 3
    coords, _ = sort_frame(np.array([[7, 0, 0], [0, 1, 0], [7, 7, 7], [0, 0, 0]]),
                           np.zeros((4, 1)), bits)
    kmap = ssc_kernel_map(coords, bits)
    # (7,0,0) and (0,1,0) are consecutive keys but not neighbours.
    i = np.flatnonzero((coords == [7, 0, 0]).all(axis=1))[0]
    j = np.flatnonzero((coords == [0, 1, 0]).all(axis=1))[0]
    assert not ((kmap[:, 0] == i) & (kmap[:, 1] == j)).any()


def test_voxelize_and_errors():
    pts = np.array([[0.1, 0.1, 0.1], [0.2, 0.3, 0.1], [1.5, 0.1, 0.1]])
    coords, feats = voxelize(pts, 1.0, bits=4, origin=(0, 0, 0))
    assert coords.tolist() == [[0, 0, 0], [1, 0, 0]] and feats[:, 0].tolist() == [2, 1]
    with pytest.raises(BnnforgeError, match=r"voxel \(16, 1, 1\) is outside the coordinate "
                                            r"range \[0, 15\] of 4-bit coordinates"):
        voxelize(pts * 11, 1.0, bits=4, origin=(0, 0, 0))
    with pytest.raises(BnnforgeError, match="duplicate voxels"):
        sort_frame(np.array([[1, 1, 1], [1, 1, 1]]), np.zeros((2, 1)), 4)


def test_down_and_up_sampling_maps():
    fine = np.array([[0, 0, 0], [1, 0, 0], [3, 2, 1], [2, 3, 0]])
    coarse, rows = downsample_map(fine)
    assert sorted(map(tuple, coarse.tolist())) == [(0, 0, 0), (1, 1, 0)]
    assert len(rows) == 4 and sorted(rows[:, 1].tolist()) == [0, 1, 2, 3]
    for o, i, slot in rows.tolist():
        assert (coarse[o] == fine[i] >> 1).all()
        assert slot == (fine[i][0] & 1) + 2 * (fine[i][1] & 1) + 4 * (fine[i][2] & 1)
    up = upsample_map(fine, coarse)
    assert up[:, 0].tolist() == [0, 1, 2, 3]
    assert all((coarse[c] == fine[f] >> 1).all() for f, c, _ in up.tolist())
    with pytest.raises(BnnforgeError, match="1 fine voxels have no coarse parent"):
        upsample_map(np.array([[9, 9, 9]]), coarse)


def test_float_module_equals_integer_and_folded_threshold():
    rng = np.random.default_rng(2)
    coords, feats = sort_frame(random_frame(rng, 60, 6), rng.integers(0, 2, (60, 4)), 6)
    kmap = ssc_kernel_map(coords, 6)
    conv = BinarySparseConv(4, 3).double()
    y = conv(2 * torch.from_numpy(feats).double() - 1, kmap).detach().numpy()
    dot = binary_ssc_dot(feats, conv.weight_bits(), kmap)
    assert (y == dot).all()
    gamma, beta = np.array([1.0, -2.0, 0.0]), np.array([0.5, 0.3, -1.0])
    mean, var = np.array([3.0, -4.0, 0.0]), np.array([4.0, 9.0, 1.0])
    t, flip = fold_batchnorm_dot(gamma, beta, mean, var, 0.0, -108, 108)
    want = gamma * (dot - mean) / np.sqrt(var) + beta >= 0
    got = np.where(flip, -dot, dot) >= t
    assert (got == want).all()


def test_pointwise_map():
    from golden.sparse import pointwise_map

    assert pointwise_map(np.zeros((3, 3))).tolist() == [[0, 0, 0], [1, 1, 0], [2, 2, 0]]


@pytest.mark.parametrize("mesh,vertices,faces", [("airplane", 1335, 2452), ("ant", 486, 912)])
def test_ply_meshes_from_the_wheel(mesh, vertices, faces):
    """ASCII (airplane) and binary (ant) PLY: every vertex and triangle read; sampled points
    lie on the surface's bounding box."""
    from golden.frog import frog_path
    from golden.meshes import read_ply, sample_surface

    verts, tris = read_ply(frog_path().parent / f"{mesh}.ply")
    assert verts.shape == (vertices, 3) and len(tris) == faces and tris.max() < vertices
    pts = sample_surface(verts, tris, 500, seed=0)
    assert (pts >= verts.min(axis=0) - 1e-9).all() and (pts <= verts.max(axis=0) + 1e-9).all()
