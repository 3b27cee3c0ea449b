"""Designs generated for ECP5 (carry-save popcount trees of CCU2C cells, weights in DP16KD block
RAM with its output register) on Icarus and Verilator with bnnforge's CCU2C and DP16KD models: bit-exact against golden in four stall modes, latency and
interval as the design says; the generic design of the same network has no primitive."""

import json

import numpy as np
import pytest
import torch

from bnnforge.kinds.mlp import generate_dense
from bnnforge.sparse_flows import generate_sparse, simulate_sparse
from golden.integer import IntegerNetwork
from golden.sparse import sort_frame
from hw.popcount import CARRY_SAVE_MIN_WIDTH, popcount_latency
from quant.layout import Folding
from sim.cycles import measure
from sim.runner import STALL_MODES, run_vectors
from sim.vectors import pack_inputs, pack_outputs
from tests.golden.test_sparse import random_frame
from tests.helpers import edge_vectors, random_dense


@pytest.mark.parametrize("simulator", ["icarus",
                                       pytest.param("verilator", marks=pytest.mark.slow)])
def test_ecp5_network_bit_exact(tmp_path, simulator):
    rng = np.random.default_rng(21)
    net = random_dense(rng, [192, 64, 10])
    # fc0 counts 96 bits a cycle (carry-save tree) from 64 x 96 = 6,144 weight bits a PE: block
    # RAM with its output register; fc1 counts 4 bits (below the threshold: plain) from a
    # small memory read into a register.
    folding = {"fc0": Folding(2, 96), "fc1": Folding(5, 4)}
    assert 4 < CARRY_SAVE_MIN_WIDTH <= 96
    info = generate_dense(net, folding, tmp_path / "net", family="ecp5")
    verilog = (tmp_path / "net" / info["verilog"]).read_text()
    assert info["family"] == "ecp5"
    assert info["sim_models"] == ["ccu2c_sim.v", "dp16kd_sim.v"]
    assert info["block_ram_files"] == ["fc0_w0.mem", "fc0_w1.mem"]
    # Chains of k cells take 3k - 1 pairs: 96 = 5 x 17 + 11, so 5 x 6 + 4 cells a PE; each
    # PE's 96-bit words take three 36-bit block RAM cells.
    assert verilog.count("CCU2C #(") == 2 * 34
    assert verilog.count("DP16KD #(") == 2 * 3
    assert '$readmemh("fc0_w0.mem"' not in verilog and '$readmemh("fc1_w0.mem"' in verilog
    # Input buffer, two cycles of weight read, the tree, accumulate, threshold, fold register,
    # output register.
    assert info["blocks"][0]["latency"] - (64 // 2) * (192 // 96) - 6 == \
        popcount_latency(96, 1, "ecp5") > popcount_latency(96)
    x = edge_vectors(192, rng, 15)
    scores = IntegerNetwork(net)(torch.from_numpy(x)).numpy()
    result = run_vectors(tmp_path / "net", pack_inputs(x), pack_outputs(scores, info), simulator)
    assert result["passed"], result["log"]
    assert [len(r["outputs"]) for r in result["runs"]] == [len(x)] * len(STALL_MODES)
    quiet = measure(result["runs"][0], info)
    assert quiet["latency"] == info["latency"]
    assert quiet["interval"] == info["cycles_per_vector"]


def test_generic_design_has_no_primitives(tmp_path):
    rng = np.random.default_rng(21)
    net = random_dense(rng, [96, 32, 10])
    folding = {"fc0": Folding(4, 48), "fc1": Folding(2, 4)}
    info = generate_dense(net, folding, tmp_path / "net")
    assert info["family"] is None and info["sim_models"] == []
    assert "CCU2C" not in (tmp_path / "net" / info["verilog"]).read_text()
    assert not (tmp_path / "net" / "ccu2c_sim.v").exists()


def test_ecp5_sparse_layer_bit_exact(tmp_path):
    """An SSC layer with 32-lane carry-save trees on Icarus, four stall modes."""
    rng = np.random.default_rng(22)
    cin, cout, bits = 32, 8, 5
    w = rng.integers(0, 2, (27, cout, cin))
    t = rng.integers(-100, 100, cout)
    frames = []
    for n in (1, 60, 200):
        coords = random_frame(rng, n, 8, bits=bits)
        frames.append(sort_frame(coords, rng.integers(0, 2, (n, cin)), bits))
    info = generate_sparse(w, t, 256, bits, Folding(4, 32), tmp_path / "ssc", family="ecp5")
    assert info["sim_models"] == ["ccu2c_sim.v"]
    result = simulate_sparse(tmp_path / "ssc", frames, w, t, "icarus", stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    assert json.loads((tmp_path / "ssc" / "design.json").read_text())["family"] == "ecp5"
