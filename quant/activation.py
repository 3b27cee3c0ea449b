"""K-bit activation quantizer (Group-Net supplement S4.1; DoReFa-Net, Hubara et al.).

Forward: clip to ``[0, beta]``, then round to ``2^K - 1`` uniform steps::

    y~ = round(clip(y, 0, beta) * (2^K - 1) / beta) * beta / (2^K - 1)

Backward: straight-through for the rounding, ``dL/dy = dL/dy~`` inside ``[0, beta]`` and 0
outside (the clip's own gradient). The integer code ``round(clip(y, 0, beta) (2^K - 1) / beta)``
in ``[0, 2^K - 1]`` is what a fixed-point datapath carries. Rounding is half away from zero on
the non-negative codes (``floor(v + 1/2)``), the same in golden and hardware; torch's ``round``
(half to even) is not used.
"""

import torch
from torch import nn

__all__ = ["quantize_codes", "ActivationQuantSTE", "ActivationQuant"]


def quantize_codes(y, bits, beta):
    """Integer codes ``floor(clip(y, 0, beta) * (2^bits - 1) / beta + 1/2)`` (int64)."""
    levels = (1 << bits) - 1
    return torch.floor(torch.clamp(y, 0, beta) * (levels / beta) + 0.5).to(torch.int64)


class ActivationQuantSTE(torch.autograd.Function):
    """Clip-and-round with the straight-through gradient inside the clipping range."""

    @staticmethod
    def forward(ctx, y, bits, beta):
        ctx.save_for_backward(y)
        ctx.beta = beta
        levels = (1 << bits) - 1
        return quantize_codes(y, bits, beta).to(y.dtype) * (beta / levels)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        inside = (y >= 0) & (y <= ctx.beta)
        return grad * inside.to(grad.dtype), None, None


class ActivationQuant(nn.Module):
    """Module form: ``bits``-bit activations on ``[0, beta]``; returns the dequantized value."""

    def __init__(self, bits=2, beta=1.0):
        super().__init__()
        if not isinstance(bits, int) or bits < 1:
            raise ValueError(f"activation bits must be a positive integer, not {bits!r}")
        if not beta > 0:
            raise ValueError(f"the clipping value beta must be positive, not {beta!r}")
        self.bits, self.beta = bits, float(beta)

    def forward(self, y):
        return ActivationQuantSTE.apply(y, self.bits, self.beta)

    def extra_repr(self):
        return f"bits={self.bits}, beta={self.beta}"
