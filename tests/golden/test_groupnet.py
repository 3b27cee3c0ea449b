import numpy as np
import pytest
import torch

from golden.groupnet import DECOMPOSITIONS, FixedPoint, GroupNet, fixed_forward, round_shift
from quant.binarize import ApproxSign


@pytest.mark.parametrize("decomposition,sizes", [("layer", [1] * 6), ("gbd1", [2, 2, 2]),
                                                 ("groupnet", [2, 2, 2]), ("gbd2", [4, 2]),
                                                 ("gbd3", [6])])
def test_decompositions(decomposition, sizes):
    model = GroupNet(channels=4, blocks=3, bases=3, decomposition=decomposition,
                     bpac_rates=[2, 3, 4])
    assert [len(g) for g in model.groups] == sizes
    params = model.fixed_point()
    gates = [g["gate"] for g in params["groups"]]
    assert gates[0] is None
    assert all((g is not None) == (decomposition == "groupnet") for g in gates[1:])
    # BPAC: base k's units in the last two blocks (units 2-5 of 3 blocks) use rate k; the
    # first block's units dilation 1.
    units = [[u["dilation"] for u in base] for g in params["groups"] for base in g["units"]]
    flat = {}
    for g, group in enumerate(params["groups"]):
        for k, base in enumerate(group["units"]):
            for j, u in enumerate(base):
                flat[(model.groups[g][j], k)] = u["dilation"]
    assert all(flat[(u, k)] == ([2, 3, 4][k] if u >= 2 else 1) for (u, k) in flat)
    assert units
    one = GroupNet(channels=4, blocks=3, bases=3, decomposition=decomposition,
                   bpac_rates=[2, 3, 4], bpac_blocks=1).fixed_point()
    assert sorted({u["dilation"] for g in one["groups"] for b in g["units"] for u in b}) == \
        [1, 2, 3, 4]


@pytest.mark.parametrize("decomposition", DECOMPOSITIONS)
def test_fixed_point_follows_float_at_high_precision(decomposition):
    """With many fractional bits the fixed-point groups reproduce the float forward pass."""
    torch.manual_seed(0)
    model = GroupNet(channels=4, blocks=2, bases=2, decomposition=decomposition,
                     bpac_rates=[1, 2]).double().eval()
    with torch.no_grad():
        model.gates.fill_(0.7)
    fmt = FixedPoint(width=48, frac=24, scale_frac=30, lambda_frac=24, gate_frac=24)
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        want = model.binary_part(model.stem(x)).numpy()
    stem = model.stem(x).detach().numpy()
    codes = np.floor(stem * 2 ** fmt.frac + 0.5).astype(np.int64)
    got = fixed_forward(model.fixed_point(fmt), codes) / 2 ** fmt.frac
    assert np.abs(got - want).max() < 1e-3


def test_round_shift_half_up():
    assert round_shift(np.array([3, 2, -2, -3, 5]), 1).tolist() == [2, 1, -1, -1, 3]


def test_approx_sign_gradient():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.25, 1.0], requires_grad=True)
    ApproxSign.apply(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 2.0, 1.5, 0.0]


def test_bad_configuration():
    with pytest.raises(ValueError, match="Group-Net bases must be between 1 and 8, not 9"):
        GroupNet(bases=9)
    with pytest.raises(ValueError, match="BPAC needs one dilation rate per base: 3 bases, 2"):
        GroupNet(bases=3, bpac_rates=[1, 2])
    with pytest.raises(ValueError, match="unknown decomposition 'x'"):
        GroupNet(decomposition="x")


@pytest.mark.parametrize("stem_relu", [False, True, "absent"])
def test_bitstream_roundtrip_gives_the_same_predictions(tmp_path, stem_relu):
    """Also for a stem with a ReLU, and for a bitstream written before ``stem_relu`` existed
    (no key in its config: its stem had the ReLU)."""
    from golden.groupnet import HostParts
    from quant import bitstream as bio

    torch.manual_seed(1)
    model = GroupNet(channels=4, blocks=2, bases=3, decomposition="groupnet",
                     bpac_rates=[1, 2, 1], stem_relu=bool(stem_relu)).eval()
    with torch.no_grad():
        model.gates.fill_(-0.4)
    bs = bio.read(bio.write(model.to_bitstream(8, 8), tmp_path / "g.bnn"))
    if stem_relu == "absent":
        del bs.groupnet["config"]["stem_relu"]
    host = HostParts(bs)
    images = torch.rand(20, 1, 8, 8)
    fmt = FixedPoint()
    codes = model.stem_codes(images, fmt)
    assert (host.stem_codes(images) == codes).all()
    # Without the ReLU the first unit's signs carry information; with it every bit is +1.
    assert (codes < 0).any() != bool(stem_relu)
    want = model.head_logits(fixed_forward(model.fixed_point(fmt), codes), fmt).argmax(1)
    assert torch.equal(host.predict(images), want)
    assert [g["gate"] for g in bs.groupnet["groups"]][1] == int(
        np.floor(torch.sigmoid(torch.tensor(-0.4)).item() * 4096 + 0.5))


def test_bitpacked_popcounts_equal_torch():
    from golden.groupnet import bitpacked_popcounts, torch_popcounts

    rng = np.random.default_rng(0)
    for c, d in ((4, 1), (16, 2), (7, 3)):
        unit = {"weights": rng.integers(0, 2, (c, 9 * c)).astype(np.uint8), "dilation": d}
        bits = rng.integers(0, 2, (3, c, 8, 8)).astype(np.uint8)
        assert (bitpacked_popcounts(bits, unit) == torch_popcounts(bits, unit)).all()


def test_multibit_activations_train_export_and_follow_float(tmp_path):
    """Binary weights with 2-bit activations (supplement S4.1): the units see quantized codes
    (four levels on [0, beta]) and the gradient reaches the latent weights; the fixed point
    follows the float network at high precision, and the bitstream keeps the activations."""
    from quant import bitstream as bio

    torch.manual_seed(0)
    model = GroupNet(channels=4, blocks=1, bases=2, decomposition="gbd1", act_bits=2,
                     act_beta=2.0)
    unit = model.units[0][0][0]
    seen = {}
    # (A forward hook that returns a value replaces the output: return None.)
    hook = unit.act.register_forward_hook(
        lambda m, i, o: [seen.setdefault("out", o.detach()), None][1])
    model(torch.rand(2, 1, 6, 6)).sum().backward()
    levels = torch.unique(seen["out"])
    assert set((levels * 1.5).round().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert unit.weight.grad is not None and unit.weight.grad.abs().sum() > 0
    hook.remove()
    model = model.double().eval()
    fmt = FixedPoint(width=48, frac=24, scale_frac=30, lambda_frac=24, gate_frac=24)
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        want = model.binary_part(model.stem(x)).numpy()
        stem = model.stem(x).numpy()
    codes = np.floor(stem * 2 ** fmt.frac + 0.5).astype(np.int64)
    params = model.fixed_point(fmt)
    assert params["groups"][0]["units"][0][0]["act"] == {"bits": 2, "frac": 16,
                                                       "mult": 3 * 65536 // 2}
    got = fixed_forward(params, codes) / 2 ** fmt.frac
    assert np.abs(got - want).max() < 1e-3
    bs = bio.read(bio.write(model.float().to_bitstream(6, 6), tmp_path / "k.bnn"))
    units = [u for g in bs.groupnet["groups"] for b in g["units"] for u in b]
    assert all(u["act"] == {"bits": 2, "frac": 16, "mult": 98304} for u in units)
    assert bs.groupnet["config"]["act_beta"] == 2.0


def test_unit_weight_gradient_is_the_unscaled_straight_through_one():
    """dL/dW = dL/dW_b * 1[|W| <= 1] where W_b = sign(W) * mean|W| is what the convolution
    uses: the scale does not shrink the latent weights' gradient."""
    import torch.nn.functional as F

    from golden.groupnet import BinaryUnit
    from quant.binarize import approx_sign, sign

    torch.manual_seed(0)
    unit = BinaryUnit(4, dilation=2)
    with torch.no_grad():
        unit.weight[0, 0, 0, 0] = 1.5   # outside the clipping range: no gradient
    x = torch.randn(2, 4, 6, 6)
    unit(x).square().sum().backward()
    w = unit.weight.detach()
    wb = (sign(w) * w.abs().mean()).requires_grad_()
    b = F.pad(approx_sign(x), (2,) * 4, value=1.0)
    (unit.bn(F.relu(F.conv2d(b, wb, dilation=2))) + x).square().sum().backward()
    assert torch.allclose(unit.weight.grad, wb.grad * (w.abs() <= 1), atol=1e-5)
    assert unit.weight.grad[0, 0, 0, 0] == 0


@pytest.mark.parametrize("decomposition", ["groupnet", "gbd1", "layer"])
def test_stages_follow_float_and_round_trip(tmp_path, decomposition):
    """ResNet stages (4, 8, 16 channels): each later stage's first unit strides 2 with a
    down-sampling shortcut; the fixed point follows the float network at high precision, the
    bitpacked popcounts equal torch's on the strided units, and the bitstream keeps the
    strides and shortcuts (the host predicts as the model does)."""
    from golden.groupnet import HostParts, bitpacked_popcounts
    from quant import bitstream as bio

    torch.manual_seed(3)
    model = GroupNet(channels=4, blocks=1, bases=2, decomposition=decomposition,
                     stages=[4, 8, 16], bpac_rates=[1, 2], bpac_blocks=1).double().eval()
    assert [(u.cin, u.channels, u.stride) for g in model.units for u in g[0]] == [
        (4, 4, 1), (4, 4, 1), (4, 8, 2), (8, 8, 1), (8, 16, 2), (16, 16, 1)]
    fmt = FixedPoint(width=48, frac=24, scale_frac=30, lambda_frac=24, gate_frac=24)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        want = model.binary_part(model.stem(x)).numpy()
        stem = model.stem(x).numpy()
    assert want.shape == (2, 16, 2, 2)
    codes = np.floor(stem * 2 ** fmt.frac + 0.5).astype(np.int64)
    params = model.fixed_point(fmt)
    got = fixed_forward(params, codes) / 2 ** fmt.frac
    assert np.abs(got - want).max() < 1e-3
    assert np.array_equal(fixed_forward(params, codes, popcounts=bitpacked_popcounts),
                          fixed_forward(params, codes))
    model = model.float()
    bs = bio.read(bio.write(model.to_bitstream(8, 8), tmp_path / "s.bnn"))
    strides = [u["stride"] for g in bs.groupnet["groups"] for b in g["units"] for u in b]
    assert strides.count(2) == 2 * 2        # two strided units a base, two bases
    images = torch.rand(5, 1, 8, 8)
    f = FixedPoint()
    want = model.head_logits(fixed_forward(model.fixed_point(f), model.stem_codes(images, f)),
                             f).argmax(1)
    assert torch.equal(HostParts(bs).predict(images), want)


def test_stage_validation_names_the_unit():
    from quant.errors import BitstreamError

    torch.manual_seed(0)
    model = GroupNet(channels=4, blocks=1, bases=1, decomposition="layer", stages=[4, 8])
    bs = model.to_bitstream(8, 8)
    unit = bs.groupnet["groups"][2]["units"][0][0]
    unit["shortcut"] = None
    with pytest.raises(BitstreamError, match=r"^group 2, base 0, unit 0: a down-sampling "
                                             r"shortcut belongs to a unit that strides or "
                                             r"changes the channels \(stride 2, 4 -> 8 "
                                             r"channels\)$"):
        bs.validate()
    bs = model.to_bitstream(6, 6)
    bs.groupnet["height"] = 7
    with pytest.raises(BitstreamError, match="^group 2, base 0, unit 0: a stride-2 unit needs "
                                             "an even map, not 7x6$"):
        bs.validate()
