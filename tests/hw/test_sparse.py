"""The sparse SSC engine in Amaranth's simulator: bit-exact against golden on edge cases and
random frames under four stall modes; limits raise an error beat."""

import numpy as np
import pytest

from golden.sparse import binary_ssc_bits, sort_frame
from hw.sparse import SparseLayer, ERROR_TOO_MANY, ERROR_UNSORTED, SparseConv
from quant.errors import BnnforgeError
from quant.layout import Folding
from sim.voxels import (error_beats, frame_beats, in_payloads, out_flags_at, out_payloads,
                        result_beats)
from tests.golden.test_sparse import random_frame
from tests.helpers import STALL_MODES, run_stream

B, CIN, COUT, NMAX = 4, 8, 6, 40


def edge_frames(rng):
    cube = np.array([(x, y, z) for z in range(3) for y in range(3) for x in range(3)]) + 5
    limits = np.array([[0, 0, 0], [15, 0, 0], [0, 15, 0], [15, 15, 15], [15, 15, 14],
                       [0, 15, 15], [14, 15, 15], [1, 0, 0]])
    lonely = np.array([[2, 2, 2], [9, 9, 9], [2, 9, 13]])
    frames = [np.zeros((0, 3), dtype=np.int64), np.array([[3, 4, 5]]), cube, limits, lonely,
              random_frame(rng, NMAX, 5, bits=B)]  # the largest frame allowed
    out = []
    for coords in frames:
        feats = rng.integers(0, 2, (len(coords), CIN))
        out.append(sort_frame(coords, feats, B) if len(coords) else (coords, feats))
    return out


def _run(dut, frames, w, t, mode, extra_in=(), extra_out=()):
    data, framing = frame_beats(frames, CIN, B)
    want, want_framing = result_beats(
        [(c, binary_ssc_bits(c, f, w, t, B) if len(c) else f) for c, f in frames], COUT, B)
    inputs = in_payloads(data, framing, CIN, B)
    expected = out_payloads(want, want_framing, COUT, B)
    outs, t_in, t_out = run_stream(dut, inputs + list(extra_in), len(expected) + len(extra_out),
                                   mode, seed=3, max_cycles=200_000)
    return outs, expected + list(extra_out)


@pytest.mark.parametrize("mode", STALL_MODES)
@pytest.mark.parametrize("folding", [Folding(3, 4), Folding(6, 8)])
def test_edge_cases_bit_exact(mode, folding):
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    dut = SparseConv(w, t, NMAX, B, folding)
    outs, expected = _run(dut, edge_frames(rng), w, t, mode)
    assert outs == expected


def test_limits_give_error_beats_and_the_next_frame_is_fine():
    rng = np.random.default_rng(2)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    dut = SparseConv(w, t, NMAX, B, Folding(6, 8))
    big = random_frame(rng, NMAX + 1, 6, bits=B)
    big, big_f = sort_frame(big, rng.integers(0, 2, (len(big), CIN)), B)
    unsorted = np.array([[1, 1, 1], [0, 1, 1], [2, 2, 2]])
    good = sort_frame(np.array([[1, 2, 3], [1, 2, 4]]), rng.integers(0, 2, (2, CIN)), B)
    frames_in = [(big, big_f), (unsorted, rng.integers(0, 2, (3, CIN))), good]
    data, framing = frame_beats(frames_in, CIN, B)
    inputs = in_payloads(data, framing, CIN, B)
    outs, _, _ = run_stream(dut, inputs, 3, "both", seed=4, max_cycles=50_000,
                            frames_at=out_flags_at(COUT, B))
    err1, err2 = error_beats(ERROR_TOO_MANY, COUT)[0][0], error_beats(ERROR_UNSORTED, COUT)[0][0]
    marker_error_last = out_payloads([0], [(1, 3)], COUT, B)[0]
    assert outs[0] == err1 | marker_error_last
    assert outs[1] == err2 | marker_error_last
    want, _ = result_beats([(good[0], binary_ssc_bits(*good, w, t, B))], COUT, B)
    assert [o & ((1 << out_flags_at(COUT, B)) - 1) for o in outs[2:]] == want


def test_parameter_errors():
    w = np.zeros((27, 6, 8))
    with pytest.raises(BnnforgeError, match="^PE=4 does not divide the 6 output channels$"):
        SparseConv(w, np.zeros(6), 16, 4, Folding(4, 8))
    with pytest.raises(BnnforgeError, match=r"^ssc weights must be 27 x Cout x Cin, not "
                                            r"\(9, 6, 8\)$"):
        SparseConv(np.zeros((9, 6, 8)), np.zeros(6), 16, 4, Folding(1, 8))
    with pytest.raises(BnnforgeError, match=r"^a window shift is three of -1, 0, \+1 \(SFSC\), "
                                            r"not \(2, 0, 0\)$"):
        SparseConv(w, np.zeros(6), 16, 4, Folding(1, 8), shift=(2, 0, 0))
    with pytest.raises(BnnforgeError, match="^only an ssc layer's window shifts, not a down "
                                            "layer's$"):
        SparseLayer("down", np.zeros((8, 6, 8)), None, 16, 4, Folding(1, 8), output="sums",
                    shift=(1, 1, 1))


def test_tiled_frame_through_a_small_design(tmp_path):
    """The frog frame at voxel size 24 (579 sites, 5-bit coordinates) through an SSC design of
    at most 64 sites and 3-bit coordinates: cut into tiles with halos, run on Icarus, merged:
    the whole frame's golden sums; the halo's work shows in the pairs."""
    from bnnforge.sparse_flows import generate_sparse, simulate_tiled
    from golden.frog import frog_frame
    from quant.layout import Folding

    coords, feats, bits = frog_frame(24, 4)
    assert len(coords) == 579 and bits == 5
    w = np.random.default_rng(3).integers(0, 2, (27, 4, 4), dtype=np.uint8)
    generate_sparse(w, None, 64, 3, Folding(4, 4), tmp_path / "d", output="sums")
    r = simulate_tiled(tmp_path / "d", (coords, feats), w, "icarus")
    assert r["mismatches"] == 0 and r["errors"] == []
    assert r["tiles"] > 10 and r["largest_tile"] <= 64 and r["sites_kept"] == 579
    assert r["pairs"] > r["pairs_whole_frame"]
    assert r["cycles"] >= r["pairs"]
