"""Group-Net hardware on Icarus and Verilator: sliding-window unit, a K-base unit and whole
Group-Net blocks, bit-exact against golden in four stall modes; cycles independent of K."""

import numpy as np
import pytest
import torch

from bnnforge.flows import resolve_folding
from bnnforge.kinds.groupnet import generate_groupnet, simulate_groupnet
from golden.groupnet import GroupNet
from hw.axis import AxisTop
from hw.generate import design_info, write_design
from hw.window import SlidingWindow
from quant.bits import bits_to_int
from sim.cycles import interval
from sim.runner import STALL_MODES, run_vectors
from tests.helpers import VERILATOR_SLOW
from tests.hw.test_window import golden_windows



def _model(bases, decomposition="groupnet", bpac=None, seed=0, blocks=2):
    torch.manual_seed(seed)
    model = GroupNet(channels=4, blocks=blocks, bases=bases, decomposition=decomposition,
                     bpac_rates=bpac).eval()
    with torch.no_grad():
        model.gates.uniform_(-1, 1)
        model.lambdas.uniform_(0.2, 1.0)
        for group in model.units:
            for base in group:
                for unit in base:
                    unit.bn.weight.uniform_(-0.1, 0.1)
                    unit.bn.running_mean.uniform_(-4, 4)
    return model


@pytest.mark.parametrize("simulator", ["icarus", VERILATOR_SLOW])
def test_sliding_window_unit(tmp_path, simulator):
    h, w, c, k, s, d, p, pb = 6, 7, 3, 3, 1, 2, 2, 1
    swu = SlidingWindow(h, w, c, k, s, d, p, pb)
    ho, wo = swu.out_size
    top = AxisTop([swu], frame_outputs=ho * wo)
    info = design_info(top, "swu_top", "window")
    write_design(tmp_path / "swu", top, "swu_top", {}, info)
    frames = np.random.default_rng(3).integers(0, 2, (3, c, h, w)).astype(np.uint8)
    frames[0] = 0
    inputs = [bits_to_int(f[:, y, x]) for f in frames for y in range(h) for x in range(w)]
    expected = [wd for f in frames for wd in golden_windows(f, k, s, d, p, pb)]
    result = run_vectors(tmp_path / "swu", inputs, expected, simulator)
    assert result["passed"], result["log"]
    assert [r["mode"] for r in result["runs"]] == list(STALL_MODES)


@pytest.mark.parametrize("simulator,decomposition,bpac,blocks", [
    ("icarus", "groupnet", [1, 2, 1], 2),   # soft connections, BPAC: every base its own units
    # one block on Verilator: half the Verilog (most of the time is Verilator's build)
    ("verilator", "groupnet", [1, 2, 1], 1),
    pytest.param("verilator", "groupnet", [1, 2, 1], 2, marks=pytest.mark.slow),
    ("icarus", "gbd1", None, 2),            # hard connections: shared first units
    ("icarus", "layer", None, 2),
    pytest.param("verilator", "layer", None, 2, marks=pytest.mark.slow),
])
@pytest.mark.long
def test_groupnet_blocks(tmp_path, simulator, decomposition, bpac, blocks):
    model = _model(3, decomposition, bpac, blocks=blocks)
    bs = model.to_bitstream(6, 6)
    folding = resolve_folding(bs, target_cycles=6 * 6 * 4)
    generate_groupnet(bs, folding, tmp_path / "gn")
    images = torch.rand(3, 1, 6, 6)
    result = simulate_groupnet(bs, tmp_path / "gn", images, simulator, stall_modes=STALL_MODES)
    assert result["passed"] and result["mismatches"] == 0, result["log"]
    assert (result["predictions"] == result["golden_predictions"]).all()
    assert (result["hardware"] == result["golden"]).all()


def test_cycles_do_not_depend_on_k(tmp_path):
    """K bases work in parallel: at equal per-base folding a frame takes the same cycles."""
    frames = {}
    for bases in (1, 3, 5):
        bs = _model(bases, "groupnet", seed=bases).to_bitstream(6, 6)
        folding = resolve_folding(bs, target_cycles=6 * 6 * 8)
        info = generate_groupnet(bs, folding, tmp_path / f"k{bases}")
        result = simulate_groupnet(bs, tmp_path / f"k{bases}", torch.rand(3, 1, 6, 6), "icarus")
        assert result["mismatches"] == 0
        t_out = result["runs"][0]["t_out"]
        measured = interval(t_out[::36])
        assert abs(measured / info["cycles_per_frame"] - 1) <= 0.05
        frames[bases] = measured
    assert max(frames.values()) / min(frames.values()) <= 1.05, frames
