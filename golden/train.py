"""A small, seeded training loop for the golden networks (Adam, cosine schedule)."""

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["seed_everything", "train_classifier", "accuracy"]


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def train_classifier(model, x, y, epochs=60, lr=1e-2, batch=64, seed=0, progress=None):
    """Train ``model`` (bits in, logits out) with Adam and a cosine learning-rate schedule.

    ``progress(epoch, epochs, loss)`` is called after each epoch. Models with a ``clip_``
    method have their latent weights clipped after every step.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * ((len(x) + batch - 1) // batch))
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
        if progress:
            progress(epoch + 1, epochs, total / len(x))
    model.eval()
    return model


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    pred = model(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()
    return float((pred == np.asarray(y)).mean())
