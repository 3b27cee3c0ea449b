"""Seeded training for the golden networks: Adam or SGD, cosine, linear or step schedules
(the supplements' schedules), progress and per-epoch callbacks."""

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["seed_everything", "train_classifier", "accuracy", "SCHEDULES", "OPTIMIZERS"]

SCHEDULES = ("cosine", "linear", "step")
OPTIMIZERS = ("adam", "sgd")


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def _schedule(opt, name, total_steps, milestones, gamma):
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if name == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / total_steps)
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)


def train_classifier(model, x, y, epochs=60, lr=1e-2, batch=64, seed=0, progress=None,
                     optimizer="adam", schedule="cosine", milestones=(), gamma=0.1,
                     on_epoch=None, momentum=0.9):
    """Train ``model`` (inputs in, logits out) with cross-entropy.

    ``schedule``: cosine or linear decay over all steps, or ``step`` (multiply the rate by
    ``gamma`` at each epoch in ``milestones``, as the BSC-Net supplement's 60/100). ``optimizer``:
    Adam or SGD with Nesterov momentum. ``progress(epoch, epochs, loss)`` and
    ``on_epoch(model, epoch)`` are called after each epoch. Models with a ``clip_`` method have
    their latent weights clipped after every step.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    steps_per_epoch = (len(x) + batch - 1) // batch
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True)
    step_milestones = [m * steps_per_epoch for m in milestones]
    sched = _schedule(opt, schedule, epochs * steps_per_epoch, step_milestones, gamma)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if hasattr(model, "clip_"):
                model.clip_()
            total += loss.item() * len(idx)
        model.eval()
        if on_epoch:
            on_epoch(model, epoch + 1)
        if progress:
            progress(epoch + 1, epochs, total / len(x))
    model.eval()
    return model


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    pred = model(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()
    return float((pred == np.asarray(y)).mean())
