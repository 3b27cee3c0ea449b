"""The sparse layers on Icarus and Verilator: edge cases and the real frog CT frame (about
5k active sites), bit-exact against golden in four stall modes; cycles beside the model."""

import numpy as np
import pytest

from bnnforge.sparse_flows import generate_sparse, simulate_sparse
from golden.frog import frog_frame
from quant.layout import Folding
from sim.runner import STALL_MODES
from tests.helpers import VERILATOR_SLOW
from tests.hw.test_sparse import CIN, COUT, NMAX, B, edge_frames


@pytest.mark.parametrize("simulator", ["icarus", VERILATOR_SLOW])
def test_edge_cases(tmp_path, simulator):
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, NMAX, B, Folding(3, 4), tmp_path / "ssc")
    result = simulate_sparse(tmp_path / "ssc", edge_frames(rng), w, t, simulator,
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]


@pytest.mark.parametrize("simulator", [pytest.param("icarus", marks=pytest.mark.slow),
                                       "verilator"])
@pytest.mark.long
def test_frog_frame(tmp_path, simulator):
    """The real-data frame of 5,130 sites; on Icarus (100 s) only with the slow marker: the
    edge cases and the frog levels after reset cover the SSC engine on Icarus in CI."""
    coords, feats, bits = frog_frame(9, channels=16)
    assert len(coords) == 5130
    rng = np.random.default_rng(2)
    w = rng.integers(0, 2, (27, 16, 16))
    t = rng.integers(-40, 40, 16)
    generate_sparse(w, t, 8192, bits, Folding(8, 16), tmp_path / "ssc")
    # Stall modes on real data: the 35k frame (slow) runs all four.
    result = simulate_sparse(tmp_path / "ssc", [(coords, feats)], w, t, simulator)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    model = result["pairs"][0] * 2   # (Cout / PE) x (Cin / SIMD) = 2 cycles a pair
    assert result["frame_cycles"][0] <= 1.25 * model


@pytest.mark.slow
def test_frog_frame_35k(tmp_path):
    """The 34,331-site frog frame (704,785 pairs) on Verilator, four stall modes."""
    coords, feats, bits = frog_frame(4, channels=16)
    rng = np.random.default_rng(3)
    w = rng.integers(0, 2, (27, 16, 16))
    t = rng.integers(-40, 40, 16)
    generate_sparse(w, t, 65536, bits, Folding(16, 16), tmp_path / "ssc")
    result = simulate_sparse(tmp_path / "ssc", [(coords, feats)], w, t, "verilator",
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    assert result["pairs"][0] == 704785
    assert result["frame_cycles"][0] <= 1.25 * result["pairs"][0]


def test_limits_become_clear_messages(tmp_path):
    """A frame over the voxel limit and an unsorted frame: the hardware answers each with an
    error beat (bit-exact with the expectation), and the tool names the problem."""
    rng = np.random.default_rng(5)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, 4, B, Folding(6, 8), tmp_path / "ssc")
    too_many = (np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0]]),
                rng.integers(0, 2, (5, CIN)))
    unsorted = (np.array([[2, 0, 0], [1, 0, 0]]), rng.integers(0, 2, (2, CIN)))
    from bnnforge.sparse_flows import sparse_error_messages
    from sim.runner import run_vectors
    from sim.voxels import error_beats, frame_beats

    data, framing = frame_beats([too_many, unsorted], CIN, B)
    e1, f1 = error_beats(1, COUT)
    e2, f2 = error_beats(2, COUT)
    result = run_vectors(tmp_path / "ssc", data, e1 + e2, "icarus", stall_modes=("none",),
                         framing=framing, expected_framing=f1 + f2)
    assert result["passed"], result["log"]
    info = {"cout": COUT, "coord_bits": B, "max_voxels": 4}
    assert sparse_error_messages(result["runs"][0], [too_many, unsorted], info) == [
        "frame 0: 5 voxels exceed the design's limit of 4; generate it with a larger "
        "max_voxels or split the frame",
        "frame 1: voxel keys are not strictly increasing (unsorted or duplicate voxels); "
        "sort and merge the frame (golden.sparse.sort_frame, voxelize)"]


def _frog_down_up(tmp_path, kind, voxel_size, seed, max_voxels, stall_modes, simulator):
    """The frog frame at ``voxel_size`` through a ``kind`` layer (sums out, one fold a pair) on
    ``simulator``; returns the run after checking it bit-exact."""
    from golden.frog import frog_layer_frame

    coords, feats, bits = frog_frame(voxel_size, channels=16)
    rng = np.random.default_rng(seed)
    frame = frog_layer_frame(kind, coords, feats, rng)
    w = rng.integers(0, 2, (8, 16, 16))
    generate_sparse(w, None, max_voxels, bits, Folding(16, 16), tmp_path / kind, kind=kind,
                    output="sums")
    result = simulate_sparse(tmp_path / kind, [frame], w, None, simulator,
                             stall_modes=stall_modes)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    return result


@pytest.mark.parametrize("kind", ["down", "up"])
def test_down_up_frog_frame_cycles(tmp_path, kind):
    """Down- and up-sampling of the 5,130-site frog frame on Icarus (a quarter of Verilator's
    time here, most of which is its build), one fold a pair: the search overlaps the store,
    so the frame takes at most 1.25x the model (an up frame must at least read its coarse part
    first: 1,087 + 5,130 beats)."""
    result = _frog_down_up(tmp_path, kind, 9, 24, 8192, ("none",), "icarus")
    assert result["pairs"][0] == 5130
    assert result["frame_cycles"][0] <= 1.25 * 5130


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["down", "up"])
def test_down_up_frog_frame_35k(tmp_path, kind):
    """The 34,331-site frog frame down- and up-sampled on Verilator, four stall modes."""
    result = _frog_down_up(tmp_path, kind, 4, 25, 65536, STALL_MODES, "verilator")
    assert result["frame_cycles"][0] <= 1.25 * result["pairs"][0]


def test_error_after_outputs_began_voids_them(tmp_path):
    """A 120-voxel frame whose last voxel repeats the first: the hardware has sent outputs of
    the valid prefix before it sees the bad voxel; the testbench drops those void beats and the
    frame reads as one error beat, and the next frame is bit-exact."""
    from golden.sparse import binary_ssc_bits, sort_frame
    from sim.runner import run_vectors
    from sim.voxels import error_beats, frame_beats, result_beats
    from tests.golden.test_sparse import random_frame

    rng = np.random.default_rng(6)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, 256, 6, Folding(6, 8), tmp_path / "ssc")
    good = sort_frame(random_frame(rng, 119, 12), rng.integers(0, 2, (119, CIN)), 6)
    bad = (np.concatenate([good[0], good[0][:1]]), np.concatenate([good[1], good[1][:1]]))
    data, framing = frame_beats([bad, good], CIN, 6)
    e, ef = error_beats(2, COUT)
    want, want_framing = result_beats([(good[0], binary_ssc_bits(*good, w, t, 6))], COUT, 6)
    result = run_vectors(tmp_path / "ssc", data, e + want, "icarus", stall_modes=("none",),
                         framing=framing, expected_framing=ef + want_framing)
    assert result["passed"], result["log"]
    assert result["runs"][0]["void_beats"] > 0


def test_word_port_frames_errors_and_stalls(tmp_path):
    """An SSC layer behind a word port of 8 bits (a beat of 20 bits in three words, out in
    three): the edge-case frames in four stall modes are bit-exact, and a frame whose bad voxel
    comes after outputs began is answered by one error beat (its three words joined), the
    beats before it voided, the next frame bit-exact."""
    from golden.sparse import binary_ssc_bits, sort_frame
    from sim.runner import run_vectors
    from sim.voxels import error_beats, frame_beats, result_beats
    from tests.golden.test_sparse import random_frame

    rng = np.random.default_rng(31)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    info = generate_sparse(w, t, NMAX, B, Folding(3, 4), tmp_path / "ssc", word_bits=8)
    assert info["words"] == {"bits": 8, "in": -(-(CIN + 3 * B) // 8),
                             "out": -(-(COUT + 3 * B) // 8)} and info["tdata_in"] == 8
    result = simulate_sparse(tmp_path / "ssc", edge_frames(rng), w, t, "icarus",
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    good = sort_frame(random_frame(rng, NMAX - 1, 5, bits=B), rng.integers(0, 2, (NMAX - 1, CIN)),
                      B)
    bad = (np.concatenate([good[0], good[0][:1]]), np.concatenate([good[1], good[1][:1]]))
    data, framing = frame_beats([bad, good], CIN, B)
    e, ef = error_beats(2, COUT)
    want, want_framing = result_beats([(good[0], binary_ssc_bits(*good, w, t, B))], COUT, B)
    result = run_vectors(tmp_path / "ssc", data, e + want, "icarus", stall_modes=STALL_MODES,
                         framing=framing, expected_framing=ef + want_framing)
    assert result["passed"], result["log"]
    assert all(run["void_beats"] > 0 for run in result["runs"])
    from quant.errors import SimulatorError

    with pytest.raises(SimulatorError, match=r"sits behind a word port: its beats need voxel "
                                             r"framing \(framing=\[\(tlast, tuser\), \.\.\.\] a "
                                             r"beat\)$"):
        run_vectors(tmp_path / "ssc", data, e + want, "icarus")


@pytest.mark.parametrize("mesh", ["airplane", "ant"])
def test_point_clouds_from_meshes(tmp_path, mesh):
    """Point clouds sampled from pyvista's meshes (ASCII and binary PLY), voxelized into
    frames of a few hundred sites (a 28th of the longest side a voxel), on Icarus with and
    without stalls on both sides (each side's stalls alone: the edge cases)."""
    from golden.meshes import mesh_points
    from golden.sparse import sort_frame, voxelize

    pts = mesh_points(mesh, 4000, seed=1)
    size = (pts.max(axis=0) - pts.min(axis=0)).max() / 28
    coords, counts = voxelize(pts, size, bits=6)
    feats = ((counts.astype(np.int64) >> np.arange(CIN) % 4) & 1).astype(np.uint8)
    coords, feats = sort_frame(coords, feats, 6)
    assert 150 < len(coords) < 1000
    rng = np.random.default_rng(4)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, 2048, 6, Folding(6, 8), tmp_path / "ssc")
    result = simulate_sparse(tmp_path / "ssc", [(coords, feats)], w, t, "icarus",
                             stall_modes=("none", "both"))
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    assert [r["mode"] for r in result["runs"]] == ["none", "both"]


@pytest.mark.parametrize("simulator", ["icarus", VERILATOR_SLOW])
@pytest.mark.parametrize("kind", ["down", "up"])
def test_down_up_edge_cases(tmp_path, simulator, kind):
    """Down- and up-sampling layers (sums out) on the edge-case frames, four stall modes."""
    from tests.hw.test_sparse_updown import B as B2, CIN as C2, NMAX as N2, down_frames, up_frames

    rng = np.random.default_rng(21)
    w = rng.integers(0, 2, (8, 6, C2))
    frames = down_frames(rng) if kind == "down" else up_frames(rng)
    generate_sparse(w, None, N2, B2, Folding(3, 4), tmp_path / kind, kind=kind, output="sums")
    result = simulate_sparse(tmp_path / kind, frames, w, None, simulator,
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    from golden.sparse import sparse_layer_sums
    for f, got in zip(frames, result["outputs"]):
        assert np.array_equal(got, sparse_layer_sums(kind, f, w, B2)[1])


@pytest.mark.parametrize("simulator", ["icarus", VERILATOR_SLOW])
def test_up_frog_levels_first_frame_after_reset(tmp_path, simulator):
    """The frog's level 5 sites up-sampled from level 6, as the first frame after reset (a
    selection that Icarus left undefined when it was a case in an always block)."""
    from golden.bscnet import SparseFrame
    from golden.frog import frog_segmentation
    from golden.sparse import sparse_layer_sums

    coords, _, bits = frog_segmentation(9)
    fr = SparseFrame(coords, bits, 6)
    rng = np.random.default_rng(22)
    w = rng.integers(0, 2, (8, 8, 8))
    frame = (fr.coords[5], rng.integers(0, 2, (len(fr.coords[5]), 8)), fr.coords[4])
    generate_sparse(w, None, 16, fr.bits[4], Folding(4, 8), tmp_path / "up", kind="up",
                    output="sums")
    result = simulate_sparse(tmp_path / "up", [frame], w, None, simulator)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    assert np.array_equal(result["outputs"][0], sparse_layer_sums("up", frame, w, fr.bits[4])[1])


def test_offsets_per_cycle_edge_cases(tmp_path, simulator="icarus"):
    """Three kernel offsets a cycle (three feature read ports, 3 x PE trees) in Verilog on
    Icarus (Verilator: ``benchmarks/sparse_frog.py --offsets 3``)."""
    rng = np.random.default_rng(23)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, NMAX, B, Folding(3, 4), tmp_path / "ssc", offsets=3)
    result = simulate_sparse(tmp_path / "ssc", edge_frames(rng), w, t, simulator,
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]


def test_pointwise_edge_cases_and_tiles(tmp_path):
    """A pointwise (1x1x1) layer, sums out: the edge-case frames in four stall modes (a pair a
    site, so a frame takes about its sites x folds cycles), and the frog frame at voxel size
    24 through a 64-site design in tiles without halos."""
    from bnnforge.sparse_flows import simulate_tiled
    from golden.frog import frog_frame
    from golden.sparse import sparse_layer_sums

    rng = np.random.default_rng(23)
    w = rng.integers(0, 2, (1, 6, CIN))
    frames = edge_frames(rng)
    generate_sparse(w, None, NMAX, B, Folding(3, 4), tmp_path / "pw", kind="pointwise",
                    output="sums")
    result = simulate_sparse(tmp_path / "pw", frames, w, None, "icarus",
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    for f, got in zip(frames, result["outputs"]):
        assert np.array_equal(got, sparse_layer_sums("pointwise", f, w, B)[1])
    for f, pairs in zip(frames, result["pairs"]):
        assert pairs == len(f[0])
    coords, feats, _ = frog_frame(24, 4)
    w4 = rng.integers(0, 2, (1, 4, 4), dtype=np.uint8)
    generate_sparse(w4, None, 64, 3, Folding(4, 4), tmp_path / "t", kind="pointwise",
                    output="sums")
    r = simulate_tiled(tmp_path / "t", (coords, feats), w4, "icarus")
    assert r["mismatches"] == 0 and r["errors"] == []
    assert r["pairs"] == r["pairs_whole_frame"] == 579 and r["sites_kept"] == 579


@pytest.mark.parametrize("kind", ["down", "up"])
def test_mean_pool_and_unpool(tmp_path, kind):
    """Mean pooling (down: a coarse site from its present children) and unpooling (up: a fine
    site from its parent; none: 0) of fixed-point codes, the search in hardware: the edge-case
    frames in four stall modes against golden.bscnet_fixed's mean, and an unpool gives back
    exactly the parent's codes."""
    from bnnforge.sparse_flows import (bits_to_codes, codes_to_bits, generate_sparse_mean,
                                       mean_golden)
    from golden.bscnet_fixed import SparseFixedPoint
    from golden.sparse import sparse_layer_rows
    from quant.fixed import signed_range
    from tests.hw.test_sparse_updown import B as B2, NMAX as N2, down_frames, up_frames

    fmt, C = SparseFixedPoint(), 3
    rng = np.random.default_rng(31)
    lo, hi = signed_range(fmt.width)

    def codes(n):
        v = rng.integers(lo, hi + 1, (n, C))
        v[: n // 3] = rng.integers(-5000, 5000, (n // 3, C))   # means that round
        return codes_to_bits(v, fmt.width)

    if kind == "down":
        frames = [(c, codes(len(c))) for c, _ in down_frames(rng)]
    else:
        frames = [(cc, codes(len(cc)), fine) for cc, _, fine in up_frames(rng)]
    generate_sparse_mean(kind, C, fmt, N2, B2, tmp_path / kind)
    golden = mean_golden(fmt, C)
    result = simulate_sparse(tmp_path / kind, frames, None, None, "icarus",
                             stall_modes=STALL_MODES, golden_fn=golden)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    for f, got in zip(frames, result["outputs"]):
        coords, rows = sparse_layer_rows(kind, f, B2)
        assert np.array_equal(got, golden(kind, f, rows, len(coords)))
        if kind == "up" and len(rows):
            parent = bits_to_codes(f[1], C, fmt.width)[rows[:, 1]]
            assert np.array_equal(got[rows[:, 0]], parent)
    if kind == "down":
        # a parent of three children: (a + b + c) * round(2^15 / 3) rounded, not the exact mean
        assert any(np.bincount(sparse_layer_rows("down", f, B2)[1][:, 0]).max(initial=0) == 3
                   for f in frames if len(f[0]))


@pytest.mark.long
def test_sfsc_shifted_window_edge_cases_and_tiles(tmp_path):
    """An SSC layer whose window is shifted to a corner (SFSC), sums out: the edge-case frames
    in four stall modes equal golden's shifted kernel map; the frog frame at voxel size 24
    through a 128-site design in tiles with a two-voxel halo equals the whole frame's sums."""
    from bnnforge.sparse_flows import simulate_tiled
    from golden.sparse import sparse_layer_sums

    rng = np.random.default_rng(29)
    shift = (1, -1, 1)
    w = rng.integers(0, 2, (27, 6, CIN))
    frames = edge_frames(rng)
    generate_sparse(w, None, NMAX, B, Folding(3, 4), tmp_path / "sfsc", output="sums",
                    shift=shift)
    result = simulate_sparse(tmp_path / "sfsc", frames, w, None, "icarus",
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    for f, got in zip(frames, result["outputs"]):
        assert np.array_equal(got, sparse_layer_sums("ssc", f, w, B, shift=shift)[1])
    coords, feats, bits = frog_frame(24, 4)
    w4 = rng.integers(0, 2, (27, 4, 4), dtype=np.uint8)
    shift = (-1, -1, 1)
    generate_sparse(w4, None, 128, 4, Folding(4, 4), tmp_path / "t", output="sums",
                    shift=shift)
    r = simulate_tiled(tmp_path / "t", (coords, feats), w4, "icarus")
    assert r["mismatches"] == 0 and r["errors"] == []
    assert np.array_equal(r["outputs"], sparse_layer_sums("ssc", (coords, feats), w4, bits,
                                                          shift=shift)[1])
    assert r["sites_kept"] == len(coords) and r["tiles"] > 1


def test_frame_cycles_partition_a_run():
    """Frames sent back to back: a frame whose first beats entered while the one before it was
    still computed is counted from the cycle after that one's last output (and the first frame
    from after the load frame's marker beat), so the frames' cycles add up to the run's."""
    from bnnforge.sparse_flows import _frame_cycles

    run = {"t_in": [0, 1, 2, 3, 4, 5, 6], "t_out": [9, 30, 31, 50]}
    # beats 0-1: the load frame (its marker out at 9); frame 1: beats 2-4, outputs 1-2;
    # frame 2: beats 5-6 (in before frame 1's outputs), output 3
    assert _frame_cycles(run, [2, 5], [3, 4], 1) == [31 - 10 + 1, 50 - 32 + 1]
    assert sum(_frame_cycles(run, [2, 5], [3, 4], 1)) == 50 - 10 + 1
    # no load frame: the first frame from its first beat
    assert _frame_cycles({"t_in": [4, 5], "t_out": [20]}, [0], [1], 0) == [17]


@pytest.mark.long
def test_word_port_frog_tiles_same_cycles(tmp_path):
    """The frog frame at voxel size 24 in tiles through a loadable SSC engine with and without
    a 64-bit word port (one word in, three out a site): bit-exact both, and the same cycles,
    the port's words hidden behind the pairs' work."""
    from bnnforge.sparse_flows import generate_sparse_engine, simulate_tiled

    coords, feats, bits = frog_frame(24, channels=16)
    w = np.random.default_rng(8).integers(0, 2, (27, 16, 16))
    cycles = []
    for wb in (None, 64):
        d = tmp_path / f"w{wb}"
        info = generate_sparse_engine("ssc", 16, 16, 128, 4, Folding(16, 16), d, word_bits=wb)
        r = simulate_tiled(d, (coords, feats), w, "icarus")
        assert r["mismatches"] == 0 and r["tiles"] > 1
        cycles.append(r["cycles"])
    assert info["words"] == {"bits": 64, "in": 1, "out": 3}
    assert cycles[0] == cycles[1]
