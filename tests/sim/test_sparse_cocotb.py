"""The sparse SSC engine on Icarus and Verilator: edge cases and the real frog CT frame (about
5k active sites), bit-exact against golden in four stall modes; cycles beside the model."""

import numpy as np
import pytest

from bnnforge.flows import generate_sparse, simulate_sparse
from golden.frog import frog_frame
from quant.layout import Folding
from sim.runner import STALL_MODES
from tests.hw.test_sparse import CIN, COUT, NMAX, B, edge_frames


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_edge_cases(tmp_path, simulator):
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, NMAX, B, Folding(3, 4), tmp_path / "ssc")
    result = simulate_sparse(tmp_path / "ssc", edge_frames(rng), w, t, simulator,
                             stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_frog_frame(tmp_path, simulator):
    coords, feats, bits = frog_frame(9, channels=16)
    assert len(coords) == 5130
    rng = np.random.default_rng(2)
    w = rng.integers(0, 2, (27, 16, 16))
    t = rng.integers(-40, 40, 16)
    generate_sparse(w, t, 8192, bits, Folding(8, 16), tmp_path / "ssc")
    modes = ("none",) if simulator == "icarus" else ("none", "both")
    result = simulate_sparse(tmp_path / "ssc", [(coords, feats)], w, t, simulator,
                             stall_modes=modes)
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
