import numpy as np
import pytest
import torch

from golden.groupnet import FixedPoint, GroupNet, fixed_forward, saturate
from hw.groupnet import BinaryUnitHW, groupnet_top
from quant.layout import Folding
from sim.vectors import pack_pixels, unpack_signed_lanes
from tests.helpers import STALL_MODES, AxisPorts, run_stream


def random_groupnet(seed, bases=2, decomposition="groupnet", bpac=None, channels=4, blocks=2,
                    act_bits=None, act_beta=1.0, stages=None, bpac_blocks=2):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GroupNet(channels=channels, blocks=blocks, bases=bases,
                     decomposition=decomposition, bpac_rates=bpac, act_bits=act_bits,
                     act_beta=act_beta, stages=stages, bpac_blocks=bpac_blocks).eval()
    with torch.no_grad():
        for group in model.units:
            for base in group:
                for unit in base:
                    c = unit.channels
                    unit.bn.weight.copy_(torch.from_numpy(rng.normal(0, 0.05, c)))
                    unit.bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.3, c)))
                    unit.bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 5, c)))
                    if unit.shortcut is not None:
                        bn = unit.shortcut[2]
                        bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2, c)))
                        bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.3, c)))
                        bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.5, c)))
        model.lambdas.copy_(torch.from_numpy(rng.uniform(0.2, 1.0, model.lambdas.shape)))
        model.gates.copy_(torch.from_numpy(rng.normal(0, 1, model.gates.shape)))
    return model.fixed_point(FixedPoint())


def unpack_lanes(words, c, width, lane):
    return unpack_signed_lanes(words, c, width, lane)


@pytest.mark.parametrize("mode", STALL_MODES)
def test_soft_connected_groups_with_bpac(mode):
    params = random_groupnet(1, bases=2, bpac=[1, 2])
    fmt = params["format"]
    h = w = 5
    rng = np.random.default_rng(2)
    codes = saturate(rng.integers(-3 << fmt.frac, 3 << fmt.frac, (3, 4, h, w)), fmt.width)
    codes[0, :, 0, 0] = 0  # sign(0) = +1
    want = fixed_forward(params, codes)  # N x C x H x W
    foldings = [[Folding(2, 12), Folding(4, 36)] for _ in params["groups"]]
    top = groupnet_top(params, h, w, foldings)
    outs, t_in, t_out = run_stream(AxisPorts(top), pack_pixels(codes, fmt.width), 3 * h * w,
                                   mode, seed=5)
    got = unpack_lanes(outs, 4, fmt.width, top.lane_width)
    assert (got == want.transpose(0, 2, 3, 1).reshape(-1, 4)).all()
    if mode == "none":
        # Frames follow at the pace of the slowest unit: max(padded positions, pixels x MVTU).
        model = max(b.cycles_per_frame for b in top.blocks)
        assert model == 25 * 6
        assert t_out[2 * h * w] - t_out[h * w] == model


@pytest.mark.parametrize("decomposition,bpac", [("layer", None), ("gbd1", None),
                                                 ("gbd1", [1, 2, 1]), ("gbd3", None)])
def test_hard_connected_groups(decomposition, bpac):
    """Shared first units (weights side by side) where the dilations agree, separate ones
    where BPAC gives each base its own; three bases."""
    params = random_groupnet(6, bases=3, decomposition=decomposition, bpac=bpac)
    fmt = params["format"]
    rng = np.random.default_rng(7)
    codes = saturate(rng.integers(-3 << fmt.frac, 3 << fmt.frac, (2, 4, 5, 5)), fmt.width)
    want = fixed_forward(params, codes)
    per_group = len(params["groups"][0]["units"][0])
    foldings = [[Folding(2, 12)] * len(g["units"][0]) for g in params["groups"]]
    top = groupnet_top(params, 5, 5, foldings)
    shared = [g.shared for g in top.blocks]
    assert shared[-1] == (bpac is None) and per_group >= 1
    outs, t_in, t_out = run_stream(AxisPorts(top), pack_pixels(codes, fmt.width), 50, "both",
                                   seed=8)
    got = unpack_lanes(outs, 4, fmt.width, top.lane_width)
    assert (got == want.transpose(0, 2, 3, 1).reshape(-1, 4)).all()


@pytest.mark.parametrize("dilation", [1, 2])
def test_unit_latency(dilation):
    params = random_groupnet(3, bases=1, decomposition="layer", bpac=[dilation], blocks=1)
    fmt = params["format"]
    unit = params["groups"][-1]["units"][0][0]
    hw_unit = BinaryUnitHW(unit, 6, 6, fmt, Folding(4, 36))
    codes = saturate(np.random.default_rng(4).integers(-200, 200, (1, 4, 6, 6)), fmt.width)
    from golden.groupnet import unit_forward
    want = unit_forward(unit, codes, fmt).transpose(0, 2, 3, 1).reshape(-1, 4)
    # Out of reset the window unit first walks the top padding; start after it.
    outs, t_in, t_out = run_stream(hw_unit, pack_pixels(codes, fmt.width), 36, delay=40)
    got = unpack_lanes(outs, 4, fmt.width, fmt.width)
    assert (got == want).all()
    assert t_out[0] - t_in[0] == hw_unit.latency


@pytest.mark.parametrize("mode", ["none", "both"])
@pytest.mark.parametrize("decomposition,bases,act_bits,beta",
                         [("groupnet", 2, 2, 1.0), ("gbd1", 3, 3, 1.5)])
def test_k_bit_activations(mode, decomposition, bases, act_bits, beta):
    """Units with K-bit activations (binary weights): soft connections with BPAC, and three
    bases sharing one window unit and MVTU with 3-bit inputs; the stream equals
    :func:`golden.groupnet.fixed_forward`; a pixel's codes go below 0 and above beta, so the
    clipping at both ends is exercised, and the frame cycles are those of binary units."""
    bpac = [1, 2] if decomposition == "groupnet" else None
    params = random_groupnet(11, bases=bases, decomposition=decomposition, bpac=bpac,
                             act_bits=act_bits, act_beta=beta)
    fmt = params["format"]
    unit = params["groups"][0]["units"][0][0]
    assert unit["act"] == {"bits": act_bits, "frac": 16,
                           "mult": round(((1 << act_bits) - 1) / beta * 65536)}
    h = w = 5
    rng = np.random.default_rng(12)
    codes = saturate(rng.integers(-2 << fmt.frac, 3 << fmt.frac, (2, 4, h, w)), fmt.width)
    want = fixed_forward(params, codes)
    foldings = [[Folding(2, 12), Folding(4, 36)] for _ in params["groups"]]
    top = groupnet_top(params, h, w, foldings)
    assert all(u.mvtu.input_bits == act_bits for b in top.blocks for u in b.hardware_units)
    outs, t_in, t_out = run_stream(AxisPorts(top), pack_pixels(codes, fmt.width), 2 * h * w,
                                   mode, seed=13)
    got = unpack_lanes(outs, 4, fmt.width, top.lane_width)
    assert (got == want.transpose(0, 2, 3, 1).reshape(-1, 4)).all()
    if mode == "none":
        assert t_out[h * w] - t_out[0] == max(b.cycles_per_frame for b in top.blocks)


@pytest.mark.parametrize("mode", ["none", "both"])
@pytest.mark.parametrize("decomposition,bases,act_bits", [("groupnet", 2, None),
                                                          ("gbd1", 3, None),
                                                          ("layer", 2, 2)])
def test_stages_with_stride_2_units_and_shortcuts(mode, decomposition, bases, act_bits):
    """ResNet stages (4 then 8 channels, one block each): the second stage's first unit has
    stride 2 and a down-sampling shortcut (2x2 sums, the real 1x1 on a folded MAC unit); 8x8
    maps in, 4x4 out; soft connections across the stage boundary, shared first units with
    three bases, and 2-bit activations; bit-exact with the golden fixed point."""
    params = random_groupnet(21, bases=bases, decomposition=decomposition, stages=[4, 8],
                             blocks=1, act_bits=act_bits,
                             bpac=[1, 2, 1][:bases] if decomposition == "gbd1" else None,
                             bpac_blocks=1)
    fmt = params["format"]
    strided = [u for g in params["groups"] for b in g["units"] for u in b
               if u["stride"] == 2]
    assert strided and all(u["shortcut"]["weights"].shape == (8, 4) for u in strided)
    h = w = 8
    rng = np.random.default_rng(22)
    codes = saturate(rng.integers(-3 << fmt.frac, 3 << fmt.frac, (2, 4, h, w)), fmt.width)
    want = fixed_forward(params, codes)
    assert want.shape == (2, 8, 4, 4)
    foldings = [[Folding(2, 12)] * len(g["units"][0]) for g in params["groups"]]
    top = groupnet_top(params, h, w, foldings)
    outs, t_in, t_out = run_stream(AxisPorts(top), pack_pixels(codes, fmt.width), 2 * 16,
                                   mode, seed=23)
    got = unpack_lanes(outs, 8, fmt.width, top.lane_width)
    assert (got == want.transpose(0, 2, 3, 1).reshape(-1, 8)).all()
    if mode == "none":
        assert t_out[16] - t_out[0] == max(b.cycles_per_frame for b in top.blocks)


def test_k_bit_activation_unit_by_hand():
    """One unit with 2-bit activations on a 1-channel 3x3 map, computed by hand: codes at
    frac 12 (1.0 = 4096), beta 1: q = clip(round(x * 3), 0, 3); sum w q over the padded
    window; output x + shift + round_shift(scale * max(S, 0), 4)."""
    from golden.groupnet import act_codes, unit_forward

    fmt = FixedPoint()
    act = {"bits": 2, "frac": 16, "mult": 3 << 16}
    x = np.array([[[[-4096, 0, 700], [1366, 2048, 2731], [4096, 8192, 1365]]]])
    # x * 3 / 4096 = -3, 0, 0.51, 1.0005, 1.5, 2.0002, 3, 6, 0.9998 -> round half up, clip
    q = act_codes(x, act, fmt)
    assert q.tolist() == [[[[0, 0, 1], [1, 2, 2], [3, 3, 1]]]]
    w = np.ones((1, 9), dtype=np.uint8)
    w[0, 4] = 0                              # the centre weight is -1, the rest +1
    unit = {"weights": w, "scale": np.array([48]), "shift": np.array([-100]), "dilation": 1,
            "act": act}
    out = unit_forward(unit, x, fmt)
    # Centre pixel: neighbours 0+0+1+1+2+3+3+1 = 11, minus its own 2: S = 9;
    # 48 * 9 = 432 >> 4 = 27: 2048 - 100 + 27 = 1975.
    assert out[0, 0, 1, 1] == 1975
    # Corner (0, 0): window (padded 0) holds q at (0,0),(0,1),(1,0),(1,1) = 0, 0, 1, 2 with
    # the centre (0,0) at weight -1: S = 0 + 1 + 2 - 0 = 3; 48 * 3 = 144 >> 4 = 9.
    assert out[0, 0, 0, 0] == -4096 - 100 + 9


def test_pixel_packing_follows_the_pixel_layout():
    """The simulation's pixel packing (sim.vectors.pack_pixels) and the hardware's pixel layout
    place every code at the same bits: a round trip through the layout's own constants."""
    from hw.groupnet import pixel_layout
    from sim.vectors import pack_pixels, unpack_signed_lanes

    rng = np.random.default_rng(9)
    width, channels = 12, 5
    codes = rng.integers(-(1 << 11), 1 << 11, (2, channels, 3, 2))
    codes[0, :, 0, 0] = [-(1 << 11), (1 << 11) - 1, -1, 0, 1]   # the extremes of a code
    words = pack_pixels(codes, width)
    layout = pixel_layout(channels, width)
    flat = codes.transpose(0, 2, 3, 1).reshape(-1, channels)
    assert words == [layout.const(row.tolist()).as_value().value for row in flat]
    assert (unpack_signed_lanes(words, channels, width, width) == flat).all()
