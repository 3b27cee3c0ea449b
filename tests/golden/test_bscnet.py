"""BSC-Net golden: sparse layers against independent dense convolutions, the supplement's
architectures, SFSC's definition, integer sums and the hook the hardware plugs into."""

import numpy as np
import pytest
import torch

from golden.bscnet import ARCHS, SFSC, SFSC_SHIFTS, BinaryConv, BSCNet, SparseFrame
from golden.sparse import binary_ssc_dot, sort_frame
from quant.errors import BnnforgeError
from tests.golden.test_sparse import random_frame

BITS = 5


def _frame(seed, n=60, extent=12):
    rng = np.random.default_rng(seed)
    c, f = sort_frame(random_frame(rng, n, extent, bits=BITS), rng.integers(0, 2, (n, 5)), BITS)
    return c, f, rng


def _grid(coords, vals, size):
    g = torch.zeros((1, vals.shape[1], size, size, size), dtype=torch.float64)
    g[0, :, coords[:, 2], coords[:, 1], coords[:, 0]] = torch.as_tensor(vals, dtype=torch.float64).T
    return g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_down_and_up_match_dense_strided_convolutions(seed):
    c, f, rng = _frame(seed)
    fr = SparseFrame(c, BITS, 2)
    a = 2.0 * f - 1
    w = 2.0 * rng.integers(0, 2, (8, 3, 5)) - 1
    down = binary_ssc_dot(f, (w + 1) / 2, fr.rows("down", 0), fr.size(1))
    kernel = torch.as_tensor(w).reshape(2, 2, 2, 3, 5).permute(3, 4, 0, 1, 2)  # [pz, py, px]
    dense = torch.nn.functional.conv3d(_grid(c, a, 1 << BITS), kernel, stride=2)
    cc = fr.coords[1]
    assert np.array_equal(down, dense[0, :, cc[:, 2], cc[:, 1], cc[:, 0]].T.round().numpy())
    # Up: every fine site receives its parent through the weight of its parity.
    ac = 2.0 * rng.integers(0, 2, (len(cc), 5)) - 1
    up = binary_ssc_dot((ac + 1) / 2, (w + 1) / 2, fr.rows("up", 0), fr.size(0))
    tkernel = torch.as_tensor(w).reshape(2, 2, 2, 3, 5).permute(4, 3, 0, 1, 2)
    dense_up = torch.nn.functional.conv_transpose3d(_grid(cc, ac, 1 << (BITS - 1)), tkernel,
                                                    stride=2)
    assert np.array_equal(up, dense_up[0, :, c[:, 2], c[:, 1], c[:, 0]].T.round().numpy())


@pytest.mark.parametrize("seed", [3, 4])
def test_sfsc_is_a_shifted_window_dense_check(seed):
    """A fixed SFSC equals, per group, a dense 5x5x5 convolution holding the group's 3x3x3
    kernel at its shift, masked at the active sites."""
    c, f, rng = _frame(seed, n=80, extent=8)
    fr = SparseFrame(c, BITS, 1)
    conv = SFSC(5, 8, groups=4)
    with torch.no_grad():
        conv.alpha.copy_(torch.randn(4, len(SFSC_SHIFTS)))
    conv.fix()
    a = torch.as_tensor(2.0 * f - 1, dtype=torch.float32)
    got = conv(a, fr, 0).detach().numpy()
    w = conv.binarize(conv.weight).detach().double()
    k5 = torch.zeros(8, 5, 5, 5, 5, dtype=torch.float64)
    for g, (sx, sy, sz) in enumerate(conv.shifts()):
        k3 = w[:, 2 * g:2 * g + 2].reshape(3, 3, 3, 2, 5).permute(3, 4, 0, 1, 2)
        k5[2 * g:2 * g + 2, :, 1 + sz:4 + sz, 1 + sy:4 + sy, 1 + sx:4 + sx] = k3
    dense = torch.nn.functional.conv3d(_grid(c, a.numpy(), 1 << BITS), k5, padding=2)
    assert np.array_equal(got, dense[0, :, c[:, 2], c[:, 1], c[:, 0]].T.numpy())
    assert {tuple(s) for s in conv.shifts()} <= {tuple(s) for s in SFSC_SHIFTS}


def test_sfsc_search_mixes_candidates_by_softmax():
    c, f, _ = _frame(5)
    fr = SparseFrame(c, BITS, 1)
    conv = SFSC(5, 4, groups=2)
    a = torch.as_tensor(2.0 * f - 1, dtype=torch.float32)
    mixed = conv(a, fr, 0)
    mixed.sum().backward()
    assert conv.alpha.grad is not None and conv.alpha.grad.abs().sum() > 0
    # Uniform alpha: the mixture is the mean of the candidates.
    conv.searching = False
    each = []
    for i in range(len(SFSC_SHIFTS)):
        conv.shift_index.fill_(i)
        each.append(conv(a, fr, 0).detach())
    assert torch.allclose(mixed.detach(), torch.stack(each).mean(0), atol=1e-5)


@pytest.mark.parametrize("arch,planes,reps", [
    ("unet-s", [16, 32, 48, 64, 80, 96, 112], 1), ("unet-h", [32, 64, 96, 128, 160, 192, 224], 2),
    ("fcn-s", [16 * (l + 1) for l in range(9)], 1), ("fcn-h", [24 * (l + 1) for l in range(9)], 2)])
def test_architectures_follow_the_supplement(arch, planes, reps):
    net = BSCNet(arch, sfsc=False)
    assert net.planes == planes
    assert all(len(level) == reps for level in net.enc)
    assert len(net.down) == len(planes) - 1 == len(net.up)
    kinds = [mod.kind for _, mod in net.binary_layers()]
    ssc_layers = 2 * reps * len(planes) + (2 * reps * (len(planes) - 1) if arch[0] == "u" else 0)
    assert kinds.count("ssc") == ssc_layers
    assert kinds.count("down") == kinds.count("up") == len(planes) - 1
    # 1-bit 1x1 projections only where an SSC layer changes the channel count (UNET decoder).
    assert kinds.count("pointwise") == (len(planes) - 1 if arch[0] == "u" else 0)
    # Real-valued parts: the first SSC layer, the 1x1 convolutions of Conv/DeConv, the head.
    assert net.stem.shape == (27, planes[0], 1)
    assert net.down[0].lin.weight.shape == (planes[1], planes[0])
    head = planes[0] if arch[0] == "u" else sum(planes)
    assert net.head.in_features == head


def test_integer_sums_and_hook():
    c, _, _ = _frame(7, n=200, extent=16)
    fr = SparseFrame(c, BITS, 3)
    net = BSCNet("unet-s", levels=3, sfsc=False).eval()
    x = torch.ones(len(c), 1)
    trace = []
    y = net(x, fr, trace=trace)
    names = [t["name"] for t in trace]
    assert names[:4] == ["enc.0.0.a.conv", "enc.0.0.b.conv", "down.0.conv", "enc.1.0.a.conv"]
    for t in trace:   # each recorded sum is the integer binary convolution of its input bits
        mod = dict(net.binary_layers())[t["name"]]
        rows = fr.rows(mod.kind, t["level"])
        want = binary_ssc_dot(t["bits"], mod.weight_bits(), rows, len(t["sums"]))
        assert np.array_equal(t["sums"], want), t["name"]
    # A hook that returns the same sums changes nothing; one that changes them changes y.
    same = net(x, fr, sums_hook=lambda name, conv, level, bits, sums: sums.numpy())
    assert torch.equal(same, y)
    other = net(x, fr, sums_hook=lambda name, conv, level, bits, sums: sums.numpy() + 2)
    assert not torch.equal(other, y)


def test_errors():
    with pytest.raises(BnnforgeError, match="^unknown BSC-Net architecture 'unet-m'; choose one "
                                            "of unet-s, unet-h, fcn-s, fcn-h$"):
        BSCNet("unet-m")
    with pytest.raises(BnnforgeError, match="^SFSC: 3 groups do not divide 16 output channels$"):
        SFSC(16, 16, groups=3)
    c, _, _ = _frame(8)
    with pytest.raises(BnnforgeError, match="^the frame has 2 levels; unet-s needs 7$"):
        BSCNet("unet-s")(torch.ones(len(c), 1), SparseFrame(c, BITS, 2))
    with pytest.raises(BnnforgeError, match="not in hardware order"):
        SparseFrame(c[::-1], BITS, 1)
    assert set(ARCHS) == {"unet-s", "unet-h", "fcn-s", "fcn-h"}
    assert BinaryConv("down", 4, 4).weight.shape == (8, 4, 4)


@pytest.mark.parametrize("sfsc", [False, True])
def test_bitstream_round_trip_gives_the_same_outputs(tmp_path, sfsc):
    """Export (quantize) and read back: the network from the bitstream computes the same
    logits and the same integer sums in every binary layer."""
    from golden.bscnet import from_bitstream, to_bitstream
    from quant.bitstream import read, write

    c, _, _ = _frame(9, n=150, extent=14)
    fr = SparseFrame(c, BITS, 3)
    net = BSCNet("unet-s", levels=3, sfsc=sfsc, binarizer="csign")
    net.train()
    x = torch.rand(len(c), 1)
    net(x, fr)                      # one training step's statistics and c-sign state
    if sfsc:
        with pytest.raises(BnnforgeError, match="the SFSC shift search is still running"):
            to_bitstream(net, {"channels": 1})
        net.fix_shifts()
    net.eval()
    write(to_bitstream(net, {"channels": 1}), tmp_path / "b.bnn")
    bs = read(tmp_path / "b.bnn")
    assert bs.kind == "bscnet"
    back = from_bitstream(bs)
    t1, t2 = [], []
    assert torch.equal(net(x, fr, trace=t1), back(x, fr, trace=t2))
    assert [t["name"] for t in t1] == [t["name"] for t in t2]
    assert all(np.array_equal(a["sums"], b["sums"]) for a, b in zip(t1, t2))


def test_sfsc_candidates_are_the_figure_s_corner_shifts():
    """The paper's SFSC figure: the output site at the window's centre, or at one of its
    corners (in 3-D: the eight shifts of one voxel along every axis at once)."""
    import itertools

    want = {(0, 0, 0)} | set(itertools.product((-1, 1), repeat=3))
    assert {tuple(int(v) for v in s) for s in SFSC_SHIFTS} == want
    assert len(SFSC_SHIFTS) == 9 and tuple(SFSC_SHIFTS[0]) == (0, 0, 0)
