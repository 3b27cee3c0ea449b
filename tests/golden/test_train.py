"""The training loop's schedule with warm-up, gradient-norm clipping and thread pinning."""

import math

import pytest
import torch
from torch import nn

from golden.train import _schedule, torch_threads, train_classifier


@pytest.mark.parametrize("name", ["cosine", "linear", "step"])
def test_warmup_then_schedule(name):
    """Linear warm-up over 3 steps, then the schedule over the 7 remaining ones (closed forms
    written out here, not taken from the code)."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.3)
    sched = _schedule(opt, name, 10, [3 + 4], 0.1, 3)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    rest = {"cosine": [0.3 * (1 + math.cos(math.pi * i / 7)) / 2 for i in range(7)],
            "linear": [0.3 * (1 - i / 7) for i in range(7)],
            "step": [0.3] * 4 + [0.03] * 3}[name]
    assert lrs == pytest.approx([0.1, 0.2, 0.3] + rest)


def test_without_warmup_the_schedule_starts_at_once():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = _schedule(opt, "cosine", 4, [], 0.1, 0)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * i / 4)) / 2 for i in range(4)])


def _moved(clip):
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    x, y = torch.randn(64, 8) * 100, torch.randint(0, 3, (64,))
    train_classifier(model, x, y, epochs=1, lr=1.0, batch=16, optimizer="sgd",
                     schedule="linear", clip_grad_norm=clip)
    end = torch.cat([p.detach().flatten() for p in model.parameters()])
    return float((end - start).norm())


def test_gradient_norm_clipping_bounds_each_step():
    """SGD with Nesterov momentum 0.9: a step moves the weights by at most ``lr * 10 * clip``
    when every gradient's norm is at most ``clip``; four steps of rate <= 1 here."""
    assert _moved(1e-3) <= 4 * 10 * 1e-3
    assert _moved(None) > 1.0


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
