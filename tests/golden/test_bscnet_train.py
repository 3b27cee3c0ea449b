"""BSC-Net's staged training (golden.bscnet_train): the confidence loss against the entropy
computed by hand, each stage's mode, the stages' order and rates as the supplement gives them,
and a short staged run that ends binary with fixed windows."""

import math

import numpy as np
import pytest
import torch

from golden.bscnet import SFSC, SFSC_SHIFTS, BSCNet, SparseFrame
from golden.bscnet_train import (CONFIDENCE_WEIGHT, STAGES, confidence_loss, set_stage,
                                 train_staged)
from quant.errors import BnnforgeError
from tests.golden.test_bscnet import BITS, _frame


def _sfsc_layers(net):
    return [m for m in net.modules() if isinstance(m, SFSC)]


def test_confidence_loss_is_the_mean_entropy_of_the_window_distributions():
    net = BSCNet("unet-s", levels=2, sfsc=True)
    layers = _sfsc_layers(net)
    for m in layers:
        m.searching = True
        m.alpha.data.zero_()
    k = len(SFSC_SHIFTS)
    assert k == 9
    # Uniform over nine windows: ln 9 for every group.
    assert confidence_loss(net).item() == pytest.approx(math.log(9))
    # One group of one layer with alpha = (ln 2, 0, ..., 0): p = (2/10, 1/10 x 8).
    layers[0].alpha.data[0, 0] = math.log(2)
    h = -(0.2 * math.log(0.2) + 8 * 0.1 * math.log(0.1))
    groups = sum(m.alpha.shape[0] for m in layers)
    assert confidence_loss(net).item() == pytest.approx(((groups - 1) * math.log(9) + h) / groups)
    # Fixed layers do not count; none searching gives 0.
    for m in layers:
        m.fix()
    assert confidence_loss(net).item() == 0.0


def test_stages_set_weights_and_windows():
    net = BSCNet("unet-s", levels=2, sfsc=True)
    sfsc = _sfsc_layers(net)[0]
    sfsc.alpha.data[:, 3] = 5.0
    set_stage(net, {"weights": "real", "windows": "plain"})
    w = sfsc.weight
    assert torch.equal(sfsc.binarize(w), w)
    assert not sfsc.searching and sfsc.shifts().tolist() == [[0, 0, 0]] * 4
    set_stage(net, {"weights": "binary", "windows": "search"})
    assert torch.equal(sfsc.binarize(w), torch.where(w >= 0, 1.0, -1.0))
    assert sfsc.searching
    set_stage(net, {"weights": "binary", "windows": "fixed"})
    assert not sfsc.searching and sfsc.shifts().tolist() == [SFSC_SHIFTS[3].tolist()] * 4


def test_the_supplements_stages_and_rates():
    assert [(s["name"], s["lr"]) for s in STAGES["bsc-baseline"]] == [("real", 1e-3),
                                                                      ("binary", 2e-4)]
    assert [(s["name"], s["lr"]) for s in STAGES["bsc-net"]] == [("real", 1e-3),
                                                                 ("search", 1e-3),
                                                                 ("finetune", 2e-4)]
    assert CONFIDENCE_WEIGHT == {"fcn": 0.1, "unet": 0.01}


def _frames():
    out = []
    for seed in (0, 1):
        c, _, rng = _frame(seed, n=80)
        fr = SparseFrame(c, BITS, 2)
        out.append((fr, torch.ones(len(c), 1), torch.as_tensor(rng.integers(0, 3, len(c)))))
    return out


def test_staged_training_ends_binary_with_fixed_windows_and_the_search_grows_confident():
    torch.manual_seed(0)
    net = BSCNet("unet-s", in_channels=1, classes=3, levels=2, sfsc=True)
    log = train_staged(net, _frames(), "bsc-net", 12, seed=0)
    assert [r["stage"] for r in log] == ["real", "search", "finetune"]
    assert [r["lr"] for r in log] == [1e-3, 1e-3, 2e-4]
    # The search started uniform (ln 9 a group) and the confidence loss lowered it.
    assert log[1]["confidence"] < math.log(9)
    for m in net.modules():
        if hasattr(m, "binarize"):
            assert m.binarize.real is False
        if isinstance(m, SFSC):
            assert not m.searching
            assert m.shifts().tolist() == SFSC_SHIFTS[m.alpha.argmax(1).numpy()].tolist()


def test_variant_and_network_must_agree():
    net = BSCNet("unet-s", levels=2, sfsc=False)
    with pytest.raises(BnnforgeError, match=r"^bsc-net trains a network with SFSC; build it "
                                            r"with BSCNet\(sfsc=True\)$"):
        train_staged(net, _frames(), "bsc-net", 2)
    with pytest.raises(BnnforgeError, match="^unknown BSC-Net training variant 'bsc-manual'"):
        train_staged(net, _frames(), "bsc-manual", 2)


def test_window_logits_get_a_rate_of_their_own():
    from golden.bscnet_train import _param_groups

    net = BSCNet("unet-s", levels=2, sfsc=True)
    groups = _param_groups(net, 1e-3, 0.1)
    alphas = [m.alpha for m in net.modules() if isinstance(m, SFSC)]
    assert groups[1]["lr"] == 0.1 and len(groups[1]["params"]) == len(alphas) == 6
    assert all(any(p is a for p in groups[1]["params"]) for a in alphas)
    assert len(groups[0]["params"]) + len(alphas) == len(list(net.parameters()))
    assert _param_groups(net, 1e-3, None)[0]["lr"] == 1e-3
