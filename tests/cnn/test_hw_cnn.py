import numpy as np
import pytest

from hw.mvtu import MVTU
from hw.pool import MaxPool
from quant.bitstream import DenseLayer
from quant.errors import BnnforgeError
from quant.layout import Folding
from sim.vectors import pack_signed_lanes
from tests.cnn.nets import random_images, small_cnn
from tests.helpers import STALL_MODES, run_stream


def _pool_golden(x, k):
    n, h, w, c = x.shape
    ho, wo = h // k, w // k
    return x[:, :ho * k, :wo * k].reshape(n, ho, k, wo, k, c).max(axis=(2, 4))


@pytest.mark.parametrize("h,w,k", [(4, 6, 2), (5, 7, 2), (9, 9, 3), (3, 3, 1)])
@pytest.mark.parametrize("mode", STALL_MODES)
def test_maxpool_bit_exact(h, w, k, mode):
    rng = np.random.default_rng(h * w + k)
    c = 5
    x = rng.integers(0, 2, (2, h, w, c))
    x[0, :k, :k] = 0        # a block of zeros stays zero
    words = pack_signed_lanes(x.reshape(-1, c), 1, 1)
    dut = MaxPool(h, w, c, k)
    ho, wo = dut.out_size
    outs, _, t_out = run_stream(dut, words, 2 * ho * wo, mode, seed=h + k)
    want = pack_signed_lanes(_pool_golden(x, k).reshape(-1, c), 1, 1)
    assert outs == want


def test_maxpool_refuses_a_block_larger_than_the_map():
    with pytest.raises(BnnforgeError, match="a 4x4 pool does not fit the 3x8 map"):
        MaxPool(3, 8, 2, 4)


@pytest.mark.parametrize("pe,simd,bits", [(2, 3, 8), (4, 9, 3), (1, 1, 2)])
@pytest.mark.parametrize("mode", ["none", "both"])
def test_mvtu_multibit_inputs(pe, simd, bits, mode):
    """S = sum(w ? u : M - u) against the formula, at the extremes and at random."""
    rng = np.random.default_rng(pe * simd * bits)
    rows, cols, top = 4, 9, (1 << bits) - 1
    w = rng.integers(0, 2, (rows, cols), dtype=np.uint8)
    w[0] = 1
    layer = DenseLayer("l0", w, None, input_bits=bits)
    u = np.vstack([np.zeros(cols), np.full(cols, top), rng.integers(0, top + 1, (6, cols))])
    u = u.astype(np.int64)
    dut = MVTU(layer, Folding(pe, simd))
    outs, t_in, t_out = run_stream(dut, pack_signed_lanes(u, bits, bits), len(u), mode)
    s = np.where(w[None] == 1, u[:, None, :], top - u[:, None, :]).sum(-1)
    ew = dut.element_width
    got = [[(v >> (r * ew)) & ((1 << ew) - 1) for r in range(rows)] for v in outs]
    assert got == s.tolist()
    assert s[1, 0] == cols * top          # the all-ones row meets the largest input
    if mode == "none":
        assert t_out[0] - t_in[0] == dut.latency


@pytest.fixture(scope="module")
def cnn_design(tmp_path_factory):
    from bnnforge.kinds import kind_named

    kind = kind_named("cnn")
    bs = small_cnn(3).to_bitstream()
    folding = kind.fold(bs, target_cycles=200)
    out = tmp_path_factory.mktemp("cnn") / "design"
    return kind, bs, kind.generate(bs, folding, out), out


def test_cnn_network_on_icarus(cnn_design):
    """The whole network (multi-bit first conv with padding, pooling, a conv padded with -1, the
    flatten of a 3x3 map, dense layers) bit-exact in four stall modes; without stalls an image
    takes the model's cycles (measured at the output handshakes) within 5 %."""
    kind, bs, info, out = cnn_design
    x = random_images(5, 8)
    result = kind.simulate(bs, out, x, "icarus", stall_modes=STALL_MODES)
    assert result["mismatches"] == 0
    assert (result["hardware"] == result["golden"]).all()
    t_out = result["runs"][0]["t_out"]
    per_image = np.diff(t_out).mean()
    assert info["cycles_per_frame"] <= per_image <= 1.05 * info["cycles_per_frame"]
    from bnnforge.kinds.cnn import op_cycles
    for row in op_cycles(result, info):
        assert row["cycles_simulated"] <= row["cycles_model"], row


def test_pixel_fifo_before_every_window_unit_but_the_first(cnn_design):
    """Every window unit after the first has a FIFO of pixels before it, as deep as the
    kernel's rows (the next image's first rows while this one's last windows are computed)."""
    _, _, info, _ = cnn_design
    names = [b["name"] for b in info["blocks"]]
    swus = [n for n in names if n.endswith("_swu")]
    assert len(swus) == 4
    assert f"{swus[0][:-4]}_pixfifo" not in names
    for s in swus[1:]:
        assert names[names.index(s) - 1] == f"{s[:-4]}_pixfifo"


def test_balanced_convolutions_run_at_the_model(tmp_path):
    """Two convolutions of equal work an image (36 windows x 4 cycles, 16 windows x 9 cycles):
    the second needs 15 pixels of the first's output (60 cycles) before its first window of an
    image; with the pixel FIFO they come while it finishes the image before, so an image takes
    the model's 144 cycles, measured at the output handshakes."""
    from bnnforge.kinds import kind_named
    from quant.bitstream import Bitstream

    rng = np.random.default_rng(1)
    l0 = DenseLayer("c0", rng.integers(0, 2, (4, 9), dtype=np.uint8), rng.integers(3, 7, 4))
    l1 = DenseLayer("c1", rng.integers(0, 2, (3, 36), dtype=np.uint8), rng.integers(15, 22, 3))
    l2 = DenseLayer("f", rng.integers(0, 2, (3, 48), dtype=np.uint8), None)
    conv = {"op": "conv", "kernel": 3, "stride": 1, "padding": 0, "pad_value": 0}
    bs = Bitstream([l0, l1, l2], {}, cnn={
        "input": {"height": 8, "width": 8, "channels": 1, "bits": 1},
        "ops": [dict(conv, layer="c0"), dict(conv, layer="c1"),
                {"op": "dense", "layer": "f"}]}).validate()
    kind = kind_named("cnn")
    folding = {"c0": Folding(1, 9), "c1": Folding(1, 12), "f": Folding(3, 48)}
    info = kind.generate(bs, folding, tmp_path / "d")
    assert info["cycles_per_frame"] == 144
    result = kind.simulate(bs, tmp_path / "d", rng.integers(0, 2, (10, 1, 8, 8)), "icarus")
    assert result["mismatches"] == 0
    gaps = np.diff(result["runs"][0]["t_out"])
    assert gaps[3:].tolist() == [144] * (len(gaps) - 3)


def test_strided_convolutions_on_icarus(tmp_path):
    """Stride 2 on the multi-bit first layer (padded with code 5) and on a binary layer padded
    with -1, a 1x1 convolution (the MVTU alone), a 3x3 pool: bit-exact, float = golden."""
    import torch

    from bnnforge.kinds import kind_named
    from golden.cnn import (BatchNormSign, BinaryCNN, Conv2d, Flatten, InputConv2d,
                            IntegerCnn, Linear, MaxPool2d)

    torch.manual_seed(2)
    net = BinaryCNN((2, 12, 12), 3,
                    InputConv2d(2, 8, 3, stride=2, padding=1, pad_value=5, input_bits=3),
                    BatchNormSign(8),                                   # 6x6
                    Conv2d(8, 8, 3, stride=2, padding=1, pad_value=0), BatchNormSign(8),  # 3x3
                    Conv2d(8, 6, 1), BatchNormSign(6), MaxPool2d(3),    # 1x1
                    Flatten(), Linear(6, 4))
    x = random_images(4, 32, bits=3, size=12, channels=2)
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(x).float())
    net.eval()
    bs = net.to_bitstream()
    with torch.no_grad():
        logits = net(torch.from_numpy(x).float())
    scores = IntegerCnn(bs)(x)
    assert torch.equal((2 * scores - 6).float() * net.log_scale.exp(), logits)
    kind = kind_named("cnn")
    kind.generate(bs, kind.fold(bs, target_cycles=64), tmp_path / "d")
    result = kind.simulate(bs, tmp_path / "d", x[:6], "icarus", stall_modes=("none", "both"))
    assert result["mismatches"] == 0


def test_cnn_datasheet(cnn_design):
    """The CNN core's datasheet: its ports agree with the Verilog's, the input pixel layout
    and the interval an image are the design's."""
    from tests.hw.test_datasheet import _datasheet_ports, _verilog_ports

    _, _, info, out = cnn_design
    text = (out / "README.md").read_text()
    assert _datasheet_ports(text) == _verilog_ports((out / info["verilog"]).read_text())
    assert text.startswith("# `bnn_top`: bnnforge core datasheet\n\nA binary CNN (")
    assert ("- **Input pixel**: 1 channels of 4 bits, channel `c` at bits `[4 c, 4 c + 4)` "
            "(unsigned codes); an image is 8 x 8 pixels in raster order") in text
    assert f"one image every **{info['cycles_per_frame']}** cycles" in text
