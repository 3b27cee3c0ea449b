"""BSC-Net in fixed point: each op against its formula evaluated by hand, against the float
network on the same inputs within the format's rounding bound, and SFSC's shifted windows."""

import numpy as np
import pytest
import torch

from golden.bscnet import BSCNet, SparseFrame
from golden.bscnet_fixed import (FixedBscNet, SparseFixedPoint, apply_op, fixed_program,
                                 mantissas)
from quant.errors import BnnforgeError
from tests.golden.test_bscnet import BITS, _frame


def _trained_like(net, seed):
    """Batch-norm statistics and affine parameters away from their defaults (as training
    leaves them), so that every scale, bias and mean matters."""
    g = torch.Generator().manual_seed(seed)
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 3)
            mod.running_var.copy_(torch.rand(n, generator=g) * 40 + 1)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.2)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
    return net.eval()


def _bn_reference(bn):
    """``(a, c)`` with ``bn(s) = a s + c`` in float64, from the module's own tensors."""
    std = torch.sqrt(bn.running_var.double() + bn.eps).numpy()
    a = bn.weight.detach().double().numpy() / std
    return a, bn.bias.detach().double().numpy() - a * bn.running_mean.double().numpy()


def _traced(fx, frame, n):
    """``(trace, buffers)``: the program run on ``n`` sites of random features, with the
    buffers holding the first layer's codes."""
    trace, x = [], torch.rand(n, 1)
    fx(x, frame, trace=trace)
    return trace, {"x": fx.first_codes(x, frame)}


def test_ops_by_hand():
    fmt = SparseFixedPoint(width=8, frac=4, pool_frac=6)
    # bn_add: rs(3 * 5, 6 - 4) = floor((15 + 2) / 4) = 4; + b 1 + res 2 = 7; 40 * 5 = 200,
    # rs(200, 2) = 50, + 1 + 100 = 151 saturates to 127; -200 -> 50 - ... -> -128.
    op = {"op": "bn_add", "sums": "s", "m": np.array([3, 40]), "e": 6, "b": np.array([1, 1]),
          "res": "r", "sums2": None}
    out = apply_op(op, {"s": np.array([[5, 5], [5, -20]]), "r": np.array([[2, 100],
                                                                        [2, -100]])}, None, fmt)
    assert out.tolist() == [[7, 127], [7, -128]]
    # e < frac: a left shift; 3 * 5 << 2 = 60; with a projection: rs(2 * 7, 5 - 4) = 7, + 1
    op = {"op": "bn_add", "sums": "s", "m": np.array([3]), "e": 2, "b": np.array([0]),
          "res": None, "sums2": "t", "m2": np.array([2]), "e2": 5, "b2": np.array([1])}
    assert apply_op(op, {"s": np.array([[5]]), "t": np.array([[7]])}, None, fmt).tolist() == \
        [[60 + 7 + 1]]
    # linear: [[2, -3]] . [5, 4] = -2, rs(-2, 1) = floor(-1 / 2) = -1, + b 3 = 2
    op = {"op": "linear", "src": "z", "m": np.array([[2, -3]]), "e": 1, "b": np.array([3])}
    assert apply_op(op, {"z": np.array([[5, 4]])}, None, fmt).tolist() == [[2]]
    # reciprocals 1/n with 6 fractional bits, rounded half up: 64, 32, 21, 16, 13, 11, 9, 8
    assert fmt.reciprocals().tolist() == [0, 64, 32, 21, 16, 13, 11, 9, 8]


def test_pool_and_unpool_by_hand():
    fmt = SparseFixedPoint(width=8, frac=4, pool_frac=6)
    # Three fine sites under parent (0,0,0), one under (1,0,0).
    c = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]])     # hardware order
    fr = SparseFrame(c, 3, 2)
    codes = np.array([[10], [20], [-7], [31]])
    out = apply_op({"op": "pool", "level": 0, "src": "a"}, {"a": codes}, fr, fmt)
    # (10 + 20 + 31) * 21 = 1281, rs(1281, 6) = floor(1313 / 64) = 20; -7 * 64 / 64 = -7
    assert out.tolist() == [[20], [-7]]
    up = apply_op({"op": "unpool", "level": 0, "src": "b"}, {"b": np.array([[5], [9]])}, fr,
                  fmt)
    assert up.tolist() == [[5], [5], [9], [5]]


def test_mantissas():
    fmt = SparseFixedPoint(mant_width=8, max_exp=10)
    m, e = mantissas([0.3, -0.05], fmt, "x")
    # 0.3 * 2^8 = 76.8 (fits 127), 0.3 * 2^9 = 153.6 does not
    assert e == 8 and m.tolist() == [77, -13]
    assert mantissas([1e-4], fmt, "x")[1] == 10
    with pytest.raises(BnnforgeError, match=r"^down\.0\.lin: a value of magnitude 200 does not "
                                            r"fit a 8-bit signed integer; the fixed-point "
                                            r"format needs wider mantissas$"):
        mantissas([200.0], fmt, "down.0.lin")


@pytest.mark.parametrize("arch,seed", [("unet-s", 0), ("unet-s", 1), ("fcn-s", 0)])
def test_every_op_within_its_rounding_bound_of_the_float_network(arch, seed):
    """Each real op, given the fixed-point model's own inputs, against the float network's
    arithmetic on the same values: the error stays within the format's rounding (mantissa
    rounding times the sum, plus half a code for the bias and half for the result)."""
    c, _, _ = _frame(seed + 20, n=220, extent=16)
    fr = SparseFrame(c, BITS, 3)
    torch.manual_seed(seed)
    net = _trained_like(BSCNet(arch, levels=3, sfsc=False), seed)
    fx = FixedBscNet(net)
    F = fx.fmt.frac
    q = 2.0 ** -F
    trace, buffers = _traced(fx, fr, len(c))
    layers = dict(net.named_modules())
    checked = 0
    for op, out in trace:
        if op["op"] == "bn_add":
            owner = layers[op["name"]]
            a, cc = _bn_reference(owner.bn)
            s = buffers[op["sums"]]
            want = a * s + cc
            bound = np.abs(s) * 2.0 ** -(op["e"] + 1) + q
            if op["res"] is not None:
                want = want + buffers[op["res"]] * q
            else:
                a2, c2 = _bn_reference(owner.proj_bn)
                s2 = buffers[op["sums2"]]
                want = want + a2 * s2 + c2
                bound = bound + np.abs(s2) * 2.0 ** -(op["e2"] + 1) + q
            assert np.all(np.abs(out * q - want) <= bound + 1e-12), op["name"]
            checked += 1
        elif op["op"] == "linear":
            owner = layers[op["name"].removesuffix(".lin")]
            a, cc = _bn_reference(owner.bn_out)
            z = buffers[op["src"]] * q
            want = (z @ owner.lin.weight.detach().double().numpy().T) * a + cc
            bound = np.abs(z).sum(1, keepdims=True) * 2.0 ** -(op["e"] + 1) + q + 1e-12
            assert np.all(np.abs(out * q - want) <= bound), op["name"]
            checked += 1
        buffers[op["dst"]] = out
    assert checked == sum(op["op"] in ("bn_add", "linear") for op in fx.program["ops"]) > 10


def test_binary_ops_equal_the_float_layers_sums_sfsc_included():
    """A binary op's sums from the program's data (weight bits, SFSC shifts) equal the float
    module's own sums on the same +-1 inputs."""
    c, _, _ = _frame(30, n=200, extent=16)
    fr = SparseFrame(c, BITS, 3)
    torch.manual_seed(3)
    net = BSCNet("unet-s", levels=3, sfsc=True)
    for mod in net.modules():
        if hasattr(mod, "alpha"):
            mod.alpha.data.normal_()
    net.fix_shifts()
    net = _trained_like(net, 3)
    shifts = [op["shifts"] for op in fixed_program(net)["ops"] if op["op"] == "binary"
              and op["shifts"] is not None]
    assert len(shifts) == 2 * 3 + 2 * 2 and any(s != [[0, 0, 0]] * 4 for s in shifts)
    trace, buffers = _traced(FixedBscNet(net), fr, len(c))
    layers = dict(net.binary_layers())
    checked = 0
    for op, out in trace:
        if op["op"] == "binary":
            src = buffers[op["src"]]
            a = torch.as_tensor(2.0 * (src >= 0) - 1, dtype=torch.float32)
            with torch.no_grad():
                want = layers[op["name"]](a, fr, op["level"]).round().to(torch.int64).numpy()
            assert np.array_equal(out, want), op["name"]
            checked += 1
        buffers[op["dst"]] = out
    assert checked > 10


def test_program_needs_eval_mode():
    with pytest.raises(BnnforgeError, match="^the fixed-point program uses the batch-norm "
                                            "statistics; call net.eval\\(\\) first$"):
        fixed_program(BSCNet("unet-s", levels=2))
