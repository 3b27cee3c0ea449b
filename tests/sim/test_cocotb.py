"""The generated Verilog on Icarus and Verilator under cocotb: bit-exact against the golden
model in four stall modes, with latency and throughput measured against the model."""

import numpy as np
import pytest
import torch

from bnnforge.kinds.mlp import generate_dense
from golden.integer import IntegerNetwork
from hw.axis import AxisTop
from hw.generate import design_info, write_design
from hw.mvtu import MVTU
from hw.popcount import PopcountStream
from quant.bits import bits_for, bits_to_int
from quant.layout import Folding, memory_files
from sim.cycles import measure
from sim.runner import STALL_MODES, run_vectors
from sim.vectors import pack_inputs, pack_outputs
from tests.helpers import VERILATOR_SLOW, edge_vectors, public_scopes, random_dense

SIMULATORS = ["icarus", "verilator"]


def _check(result, info, n):
    assert result["passed"], result["log"]
    assert [r["mode"] for r in result["runs"]] == list(STALL_MODES)
    for run in result["runs"]:
        assert len(run["outputs"]) == n
    quiet = measure(result["runs"][0], info)
    assert quiet["latency"] == info["latency"]
    assert quiet["interval"] == info["cycles_per_vector"]
    return quiet


@pytest.mark.parametrize("simulator", ["icarus", VERILATOR_SLOW])
def test_popcount_unit(tmp_path, simulator):
    n = 100
    rng = np.random.default_rng(11)
    a = edge_vectors(n, rng, 30)
    w = np.concatenate([np.zeros((1, n)), np.ones((1, n)), 1 - a[2:3],
                        rng.integers(0, 2, (len(a) - 3, n))])
    top = AxisTop([PopcountStream(n, reg_every=2)], element_width=bits_for(n))
    write_design(tmp_path / "pc", top, "popcount_top", {},
                 design_info(top, "popcount_top", "popcount"))
    info = design_info(top, "popcount_top", "popcount")
    inputs = [bits_to_int(x) | bits_to_int(y) << n for x, y in zip(a, w)]
    expected = pack_outputs((a == w).sum(axis=1)[:, None], info)
    assert max(expected) == n and min(expected) == 0  # both extreme counts are among the cases
    _check(run_vectors(tmp_path / "pc", inputs, expected, simulator), info, len(a))


@pytest.mark.parametrize("simulator", ["icarus", VERILATOR_SLOW])
def test_mvtu(tmp_path, simulator):
    rng = np.random.default_rng(12)
    layer = random_dense(rng, [40, 12], scores_last=False).layers[0]
    layer.thresholds[:2] = [0, 41]
    folding = Folding(3, 8)
    top = AxisTop([MVTU(layer, folding)])
    info = design_info(top, "mvtu_top", "mvtu")
    write_design(tmp_path / "mvtu", top, "mvtu_top", memory_files(layer, folding), info)
    x = edge_vectors(40, rng, 25)
    bits = ((x[:, None, :] == layer.weights[None]).sum(-1) >= layer.thresholds).astype(int)
    c = _check(run_vectors(tmp_path / "mvtu", pack_inputs(x), pack_outputs(bits, info),
                           simulator), info, len(x))
    assert c["blocks"][0]["cycles_simulated"] == (12 // 3) * (40 // 8)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.long
def test_network_top(tmp_path, simulator):
    rng = np.random.default_rng(13)
    net = random_dense(rng, [72, 32, 24, 10])
    folding = {"fc0": Folding(4, 24), "fc1": Folding(8, 8), "fc2": Folding(2, 24)}
    info = generate_dense(net, folding, tmp_path / "net")
    x = edge_vectors(72, rng, 35)
    scores = IntegerNetwork(net)(torch.from_numpy(x)).numpy()
    result = run_vectors(tmp_path / "net", pack_inputs(x), pack_outputs(scores, info),
                         simulator)
    c = _check(result, info, len(x))
    assert [b["cycles_simulated"] for b in c["blocks"]] == [24, 12, 5]
    if simulator == "verilator":
        # only the simulation top is public to VPI: the design's own logic stays optimizable
        assert public_scopes(result["build"]) == {"TOP", "bnnforge_clocked"}
