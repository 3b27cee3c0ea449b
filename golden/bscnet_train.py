"""BSC-Net's training as its supplement gives it (Sec. B), scaled to this machine.

The supplement: two training stages for BSC-Baseline and BSC-Manual, three for BSC-Net; each
stage 128 epochs, Adam without weight decay, the learning rate divided by 10 at epochs 60 and
100; initial rates 0.001 and 0.0002 (Baseline, Manual), 0.001, 0.001 and 0.0002 (BSC-Net);
a confidence loss weighted 0.1 for FCN and 0.01 for UNET. It does not say what each stage
trains nor what the confidence loss is; our reading (docs/sparse.md):

- Stages follow the methods it cites for keeping parts real ([1-3]: ReActNet, Bi-Real,
  Real-to-Binary), whose first stage trains binary activations with real-valued weights and
  whose second binarizes the weights too, starting from the first. BSC-Baseline: ``real``
  (binary activations, real weights, plain windows) then ``binary``. BSC-Net: ``real``, then
  ``search`` (binary weights; every SFSC group mixes its candidate windows with the softmax of
  its ``alpha``, differentiable; the confidence loss on), the windows fixed at the argmax, then
  ``finetune`` (binary, fixed windows).
- The confidence loss is the mean entropy of the groups' window distributions
  ``softmax(alpha_g)``: it pushes each group towards one window, so that fixing the argmax
  after the search changes the network little.

Scaling: a stage is ``steps`` optimizer steps of one frame each (not 128 epochs of a data
set); the milestones sit at the same fractions of a stage (60/128, 100/128). With so few steps
the search's window logits barely move at the stage's rate (0.001: after 200 steps every
group's entropy was still ln 9 to four digits), so the demo gives them a rate of their own,
:data:`SCALED_ALPHA_LR` (docs/sparse.md has the measurements).
"""

import numpy as np
import torch
from torch.nn import functional as F

from quant.errors import BnnforgeError
from .bscnet import SFSC

__all__ = ["STAGES", "CONFIDENCE_WEIGHT", "confidence_loss", "set_stage", "train_staged",
           "VARIANTS", "SCALED_ALPHA_LR"]

STAGES = {
    "bsc-baseline": [{"name": "real", "lr": 1e-3, "weights": "real", "windows": "plain"},
                     {"name": "binary", "lr": 2e-4, "weights": "binary", "windows": "plain"}],
    "bsc-net": [{"name": "real", "lr": 1e-3, "weights": "real", "windows": "plain"},
                {"name": "search", "lr": 1e-3, "weights": "binary", "windows": "search"},
                {"name": "finetune", "lr": 2e-4, "weights": "binary", "windows": "fixed"}],
}
"""The supplement's stages and initial learning rates, with our reading of what each trains."""
VARIANTS = tuple(STAGES)
SCALED_ALPHA_LR = 0.1
"""The SFSC window logits' rate in the demo's search stage: the stage's 0.001 times 100, about
the ratio of the supplement's optimizer steps (128 epochs of a data set) to a stage here."""
CONFIDENCE_WEIGHT = {"fcn": 0.1, "unet": 0.01}
MILESTONES = (60 / 128, 100 / 128)


def confidence_loss(net):
    """Mean entropy (nats) of ``softmax(alpha_g)`` over the SFSC groups still searching; 0
    when none is."""
    terms = []
    for mod in net.modules():
        if isinstance(mod, SFSC) and mod.searching:
            p = torch.softmax(mod.alpha, dim=1)
            terms.append(-(p * torch.log(p.clamp_min(1e-12))).sum(dim=1))
    return torch.cat(terms).mean() if terms else torch.zeros(())


def set_stage(net, stage):
    """Put every binary convolution in ``stage``'s mode: real or binary weights; SFSC windows
    plain (shift 0), searching, or fixed (the search's argmax, once)."""
    for mod in net.modules():
        if hasattr(mod, "binarize") and hasattr(mod.binarize, "real"):
            mod.binarize.real = stage["weights"] == "real"
        if isinstance(mod, SFSC):
            if stage["windows"] == "plain":
                mod.shift_index.zero_()
                mod.fixed.fill_(True)
            elif stage["windows"] == "search":
                mod.fixed.fill_(False)
            elif mod.searching:
                mod.fix()


def _param_groups(net, lr, alpha_lr):
    if alpha_lr is None:
        return [{"params": list(net.parameters()), "lr": lr}]
    alphas = [m.alpha for m in net.modules() if isinstance(m, SFSC)]
    ids = {id(a) for a in alphas}
    return [{"params": [p for p in net.parameters() if id(p) not in ids], "lr": lr},
            {"params": alphas, "lr": alpha_lr}]


def train_staged(net, frames, variant, steps, seed=0, progress=None, alpha_lr=None):
    """Train ``net`` (a :class:`golden.bscnet.BSCNet`) through ``variant``'s stages, ``steps``
    steps a stage, one frame ``(frame, feats, labels)`` a step in turn; ``alpha_lr``: a rate of
    the SFSC window logits of their own (default: the stage's). Returns one log row a
    stage ``{stage, lr, steps, weights, windows, loss, confidence}`` (means over its last tenth
    of steps; ``confidence``, the search's entropy, only for a search stage)."""
    if variant not in STAGES:
        raise BnnforgeError(f"unknown BSC-Net training variant {variant!r}; choose one of "
                            f"{', '.join(VARIANTS)}")
    sfsc = any(isinstance(m, SFSC) for m in net.modules())
    if (variant == "bsc-net") != sfsc:
        raise BnnforgeError(f"{variant} trains a network {'with' if variant == 'bsc-net' else 'without'}"
                            f" SFSC; build it with BSCNet(sfsc={variant == 'bsc-net'})")
    weight = CONFIDENCE_WEIGHT[net.cfg["network"]]
    torch.manual_seed(seed)
    log, done, total = [], 0, steps * len(STAGES[variant])
    net.train()
    for stage in STAGES[variant]:
        set_stage(net, stage)
        opt = torch.optim.Adam(_param_groups(net, stage["lr"], alpha_lr), weight_decay=0.0)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, [max(1, round(steps * f)) for f in MILESTONES], 0.1)
        losses, confs = [], []
        for i in range(steps):
            frame, feats, labels = frames[i % len(frames)]
            loss = F.cross_entropy(net(feats, frame), labels)
            conf = confidence_loss(net)
            total_loss = loss + weight * conf if stage["windows"] == "search" else loss
            opt.zero_grad()
            total_loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            confs.append(float(conf.detach()))
            done += 1
            if progress is not None:
                progress(done, total, f"{stage['name']} loss {loss.item():.3f}")
        tail = max(1, steps // 10)
        log.append({"stage": stage["name"], "lr": stage["lr"], "steps": steps,
                    "weights": stage["weights"], "windows": stage["windows"],
                    "loss": float(np.mean(losses[-tail:])),
                    "confidence": (float(np.mean(confs[-tail:]))
                                   if stage["windows"] == "search" else None)})
    set_stage(net, {"weights": "binary", "windows": "fixed"})
    return log
