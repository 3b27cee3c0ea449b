"""Binarizers for training, in three layers (pure function, autograd function, module).

* :func:`sign`: ``+1`` where ``x >= 0``, else ``-1`` (sign(0) = +1, matching bit 1 = +1).
* :class:`SignSTE`: forward :func:`sign`; backward the clipped straight-through estimator
  ``dL/dx = dL/dy * 1[|x| <= 1]`` (Courbariaux et al., 2016; Hubara et al., 2016).
* :class:`BinarySign`: the module used by the golden networks.
"""

import torch
from torch import nn

__all__ = ["sign", "SignSTE", "sign_ste", "BinarySign", "ApproxSign", "approx_sign",
           "SignIdentitySTE", "xnor_scale", "ScaledSign"]


def sign(x):
    """``+1`` where ``x >= 0``, ``-1`` elsewhere, in ``x``'s dtype."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _SignForward(torch.autograd.Function):
    """Forward :func:`sign`, keeping ``x`` for a subclass's surrogate gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)


class SignSTE(_SignForward):
    """Sign with the clipped straight-through gradient ``1[|x| <= 1]``."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x):
    """Functional form of :class:`SignSTE`."""
    return SignSTE.apply(x)


class BinarySign(nn.Module):
    """Module form of :class:`SignSTE` for activations: returns ``+-1`` values."""

    def forward(self, x):
        return sign_ste(x)


class ApproxSign(_SignForward):
    """Sign with Bi-Real Net's piecewise-polynomial gradient (Liu et al., ECCV 2018):
    ``dL/dx = dL/dy * (2 - 2|x|)`` on ``[-1, 1]``, 0 outside. Forward as :func:`sign`."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2 - 2 * x.abs(), min=0)


def approx_sign(x):
    """Functional form of :class:`ApproxSign`."""
    return ApproxSign.apply(x)


class SignIdentitySTE(_SignForward):
    """Sign with the plain (identity) straight-through gradient ``dL/dx = dL/dy``."""

    @staticmethod
    def backward(ctx, grad):
        return grad


def xnor_scale(w, per_channel=False):
    """XNOR-Net's scale ``alpha = mean |W|``: one for the tensor, or one per output channel
    (dimension 0) with ``per_channel``, shaped to broadcast against ``w``."""
    if per_channel:
        return w.abs().reshape(w.shape[0], -1).mean(dim=1).reshape(-1, *([1] * (w.dim() - 1)))
    return w.abs().mean()


class ScaledSign(nn.Module):
    """``alpha * sign(W)`` (XNOR-Net) with the clipped straight-through gradient; returns the
    scaled weights. ``per_channel`` gives each output channel its own ``alpha``."""

    def __init__(self, per_channel=False):
        super().__init__()
        self.per_channel = per_channel

    def forward(self, w):
        return sign_ste(w) * xnor_scale(w.detach(), self.per_channel)
