import numpy as np
import pytest

from golden.conv import binary_conv2d_popcount, weights_hwc
from hw.conv import ConvGeometry, conv_cycles_model, conv_layer_top
from hw.fifo import StreamFifo
from quant.bitstream import DenseLayer
from quant.layout import Folding
from sim.vectors import pack_inputs, pack_outputs
from tests.helpers import STALL_MODES, AxisPorts, run_stream


@pytest.mark.parametrize("mode", STALL_MODES)
@pytest.mark.parametrize("scores", [False, True])
def test_conv_layer_in_amaranth(mode, scores):
    g = ConvGeometry(5, 6, 2, 3, 1, 1, 1, 1)
    rng = np.random.default_rng(4)
    w = rng.integers(0, 2, (4, 2, 3, 3)).astype(np.uint8)
    t = None if scores else rng.integers(6, 13, 4)
    top = conv_layer_top(DenseLayer("c", weights_hwc(w).numpy(), t), g, Folding(2, 6))
    frames = rng.integers(0, 2, (3, 2, 5, 6)).astype(np.uint8)
    p = binary_conv2d_popcount(frames, w, 1, 1, 1, 1).numpy()
    out = p if scores else (p >= t[None, :, None, None]).astype(int)
    expected = pack_outputs(out.transpose(0, 2, 3, 1).reshape(-1, 4),
                            {"lane_width": top.lane_width})
    inputs = pack_inputs(frames.transpose(0, 2, 3, 1).reshape(-1, 2))
    outs, t_in, t_out = run_stream(AxisPorts(top), inputs, len(expected), mode, seed=9)
    assert outs == expected
    if mode == "none":
        assert t_out[0] - t_in[0] == top.latency
        assert t_out[60] - t_out[30] == conv_cycles_model(*top.blocks)


def test_fifo_parameters():
    with pytest.raises(Exception, match="^FIFO depth must be a positive integer, not 0$"):
        StreamFifo(8, 0)
