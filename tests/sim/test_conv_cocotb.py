"""A binary convolution layer (sliding window + MVTU) on Icarus and Verilator: bit-exact in four
stall modes, frames marked by tlast, cycles per frame against the model."""

import numpy as np
import pytest

from golden.conv import binary_conv2d_popcount, weights_hwc
from hw.conv import ConvGeometry, conv_cycles_model, conv_layer_top
from hw.generate import design_info, write_design
from quant.bitstream import DenseLayer
from quant.layout import Folding, memory_files
from sim.cycles import interval
from sim.runner import run_vectors
from sim.vectors import pack_inputs, pack_outputs

CASES = {  # geometry, Cout, folding, simulators
    "pad-dilated": (ConvGeometry(6, 7, 3, 3, 1, 2, 2, 1), 8, Folding(4, 9), ["icarus", "verilator"]),
    "strided": (ConvGeometry(7, 6, 2, 3, 2, 1, 1, 0), 6, Folding(6, 18), ["icarus"]),
}


@pytest.mark.parametrize("case,simulator", [(c, s) for c, v in CASES.items() for s in v[3]])
def test_conv_layer(tmp_path, case, simulator):
    g, cout, folding, _ = CASES[case]
    rng = np.random.default_rng(len(case))
    w = rng.integers(0, 2, (cout, g.channels, g.kernel, g.kernel)).astype(np.uint8)
    n = g.channels * g.kernel ** 2
    t = rng.integers(n // 2 - 3, n // 2 + 4, cout)
    layer = DenseLayer("conv0", weights_hwc(w).numpy(), t)
    top = conv_layer_top(layer, g, folding)
    info = design_info(top, "conv_top", "conv")
    write_design(tmp_path / "conv", top, "conv_top", memory_files(layer, folding), info)
    frames = rng.integers(0, 2, (4, g.channels, g.height, g.width)).astype(np.uint8)
    frames[0] = 1 - g.pad_bit
    p = binary_conv2d_popcount(frames, w, g.stride, g.dilation, g.padding, g.pad_bit).numpy()
    bits = (p >= t[None, :, None, None]).astype(np.uint8)  # N x Cout x Ho x Wo
    expected = pack_outputs(bits.transpose(0, 2, 3, 1).reshape(-1, cout), info)
    inputs = pack_inputs(frames.transpose(0, 2, 3, 1).reshape(-1, g.channels))
    result = run_vectors(tmp_path / "conv", inputs, expected, simulator)
    assert result["passed"], result["log"]
    quiet = result["runs"][0]
    per_frame = len(expected) // len(frames)
    frame_cycles = interval(quiet["t_out"][::per_frame])
    model = conv_cycles_model(*top.blocks)
    assert abs(frame_cycles / model - 1) <= 0.05, (frame_cycles, model)
