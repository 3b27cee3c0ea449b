"""Seeded training for the golden networks: Adam or SGD, cosine, linear or step schedules
(the supplements' schedules), linear warm-up, gradient-norm clipping, progress and per-epoch
callbacks; :func:`torch_threads` pins the intra-op thread count for reproducible runs."""

import contextlib

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["seed_everything", "train_classifier", "accuracy", "torch_threads", "SCHEDULES",
           "OPTIMIZERS"]

SCHEDULES = ("cosine", "linear", "step")
OPTIMIZERS = ("adam", "sgd")


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


@contextlib.contextmanager
def torch_threads(n):
    """Run the body with ``n`` intra-op threads (restored afterwards; None changes nothing). A
    binary network's training can take another path with another thread count (reductions add
    in another order and a sign flips), so reproducible runs fix it."""
    if n is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _schedule(opt, name, total_steps, milestones, gamma, warmup):
    """The schedule over ``total_steps``; with ``warmup`` steps, a linear warm-up first (rate
    ``lr * (s + 1) / warmup`` at step ``s``) and the schedule over the steps after it."""
    rest = total_steps - warmup
    if name == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=rest)
    elif name == "linear":
        main = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / rest)
    else:
        main = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[m - warmup for m in milestones], gamma=gamma)
    if not warmup:
        return main
    ramp = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warmup)
    return torch.optim.lr_scheduler.SequentialLR(opt, [ramp, main], milestones=[warmup])


def train_classifier(model, x, y, epochs=60, lr=1e-2, batch=64, seed=0, progress=None,
                     optimizer="adam", schedule="cosine", milestones=(), gamma=0.1,
                     on_epoch=None, momentum=0.9, warmup_epochs=0, clip_grad_norm=None,
                     threads=None):
    """Train ``model`` (inputs in, logits out) with cross-entropy.

    ``schedule``: cosine or linear decay over all steps, or ``step`` (multiply the rate by
    ``gamma`` at each epoch in ``milestones``, as the BSC-Net supplement's 60/100). ``optimizer``:
    Adam or SGD with Nesterov momentum. ``warmup_epochs`` raise the rate linearly from
    ``lr / steps`` to ``lr`` first; ``clip_grad_norm`` bounds the global gradient norm of each
    step. ``progress(epoch, epochs, loss)`` and ``on_epoch(model, epoch)`` are called after
    each epoch. Models with a ``clip_`` method have their latent weights clipped after every
    step. ``threads``: train with that many intra-op threads (:func:`torch_threads`; None
    keeps the current count).
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
    total, warmup = epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch)
    sched = _schedule(opt, schedule, total, step_milestones, gamma, warmup)
    with torch_threads(threads):
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(x), generator=gen)
            loss_sum = 0.0
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                opt.step()
                sched.step()
                if hasattr(model, "clip_"):
                    model.clip_()
                loss_sum += loss.item() * len(idx)
            model.eval()
            if on_epoch:
                on_epoch(model, epoch + 1)
            if progress:
                progress(epoch + 1, epochs, loss_sum / len(x))
    model.eval()
    return model


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    pred = model(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()
    return float((pred == np.asarray(y)).mean())
