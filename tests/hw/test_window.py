import numpy as np
import pytest
import torch

from golden.conv import pad_bits
from hw.window import SlidingWindow
from quant.bits import bits_to_int
from quant.errors import BnnforgeError
from tests.helpers import STALL_MODES, run_stream


def golden_windows(x, k, stride, dilation, padding, pad_bit):
    """Windows of one ``C x H x W`` frame in raster order, element (i*k + j)*C + c."""
    xp = pad_bits(torch.from_numpy(x)[None].long(), padding, pad_bit)[0].numpy()
    _, hp, wp = xp.shape
    extent = (k - 1) * dilation + 1
    out = []
    for y0 in range(0, hp - extent + 1, stride):
        for x0 in range(0, wp - extent + 1, stride):
            taps = [xp[:, y0 + i * dilation, x0 + j * dilation] for i in range(k) for j in range(k)]
            out.append(bits_to_int(np.concatenate(taps)))
    return out


GEOMETRIES = [  # height, width, channels, kernel, stride, dilation, padding, pad_bit
    (5, 6, 3, 3, 1, 1, 1, 1), (7, 7, 2, 3, 2, 1, 1, 0), (8, 9, 1, 3, 1, 2, 2, 1),
    (4, 4, 4, 1, 1, 1, 0, 1), (6, 5, 2, 2, 1, 1, 0, 1), (9, 9, 2, 3, 1, 3, 3, 0),
    (1, 1, 2, 1, 1, 1, 0, 0), (3, 3, 1, 3, 1, 1, 0, 1),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("mode", STALL_MODES)
def test_windows_bit_exact(geometry, mode):
    h, w, c, k, s, d, p, pb = geometry
    rng = np.random.default_rng(sum(geometry))
    frames = rng.integers(0, 2, (3, c, h, w)).astype(np.uint8)
    frames[0] = 1 - pb  # a frame of the opposite of the padding shows every padded tap
    dut = SlidingWindow(h, w, c, k, s, d, p, pb)
    inputs = [bits_to_int(f[:, y, x]) for f in frames for y in range(h) for x in range(w)]
    expected = [win for f in frames for win in golden_windows(f, k, s, d, p, pb)]
    outs, t_in, t_out = run_stream(dut, inputs, len(expected), mode, seed=sum(geometry))
    assert outs == expected
    assert len(expected) == 3 * dut.out_size[0] * dut.out_size[1]
    if mode == "none":
        assert t_out[0] - t_in[0] == dut.latency
        # Frames follow each other at one padded position a cycle.
        per_frame = len(expected) // 3
        assert t_out[2 * per_frame] - t_out[per_frame] == dut.cycles_per_frame


def test_parameter_errors():
    with pytest.raises(BnnforgeError, match="^kernel must be a positive integer, not 0$"):
        SlidingWindow(4, 4, 1, 0)
    with pytest.raises(BnnforgeError, match="^padding must be a non-negative integer, not -1$"):
        SlidingWindow(4, 4, 1, 3, padding=-1)
    with pytest.raises(BnnforgeError, match=r"^kernel extent 5 \(kernel 3, dilation 2\) exceeds "
                                            r"the padded 4x4 map$"):
        SlidingWindow(4, 4, 1, 3, dilation=2)
    with pytest.raises(BnnforgeError, match=r"^padding 3 exceeds the reach of kernel 3 at "
                                            r"dilation 1 \(2\): some windows would hold only "
                                            r"padding$"):
        SlidingWindow(4, 4, 1, 3, padding=3)
    with pytest.raises(BnnforgeError, match=r"^pad_bit must be 0 \(-1\) or 1 \(\+1\), not 2$"):
        SlidingWindow(4, 4, 1, 3, padding=1, pad_bit=2)
