"""UaBNN's certainty-sign (Zhao et al., IJCAI 2021, equations 3-5 and Algorithm 1).

* Uncertainty of a latent weight (Eq. 3): ``f(x) = exp(-x^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)``,
  ``sigma`` by default the *variance* of the layer's initial weights, as the paper's text says
  ("we set it equals to the variance of initialization parameters"; ``sigma_rule="std"`` takes
  their standard deviation instead).
* Combined uncertainty over the last ``m`` states (Eq. 4): ``f^(x_t) = f(x_t)`` for ``t <= m``,
  else ``1 - prod_{i=t-m..t} (1 - f(x_i))`` (``m + 1`` factors).
* c-sign (Eq. 5): ``csign(x_t) = sign(x_t)`` if ``f^(x_t) <= max(f^(x_{t-1}), Delta)``, else
  ``csign(x_{t-1})``, from the second step on (the first has no ``x_{t-1}``: ``sign``).
  ``Delta`` is adaptive: the ``delta`` quantile (default 0.1) of the layer's sorted
  ``f^(x_t)`` values.

**f > 1.** Eq. 3 is a density: with the paper's sigma (a variance, about 0.005 for a layer of
fan-in 200) ``f(0)`` is about 80, so every weight near zero has ``f > 1``, the factors
``1 - f`` of Eq. 4 are negative, ``f^`` leaves ``[0, 1]`` and is no longer monotone in the
uncertainty of the states it combines (two uncertain states make a *certain* combination:
``1 - (1 - 80)(1 - 80) < 0``), and Theorem 1's premise ``0 <= f <= 1`` fails. Eq. 4 is the
probability that at least one of the last ``m + 1`` states is uncertain, which needs
probabilities. So by default (``uncertainty="normalized"``) f is divided by its peak
``1 / (sqrt(2 pi) sigma)``: ``f(x) = exp(-x^2 / (2 sigma^2))`` in ``(0, 1]``, the same order
of weights within a step (Eq. 5's comparisons of single states are unchanged) and a proper
Eq. 4. ``uncertainty="density"`` keeps Eq. 3 literally.

:class:`CSign` keeps the state (step, last ``m`` uncertainties, previous combined uncertainty,
previous bits) in module buffers, so it is saved and restored with a checkpoint. A step happens
on each forward call in training mode (Algorithm 1 binarizes once per iteration); in eval mode
the module returns the stored bits unchanged. Gradients: straight-through, clipped to
``|x| <= 1`` (the weights' gradients are not matched to the kept bits, as in the paper).
"""

import math

import torch
from torch import nn

from .binarize import sign

__all__ = ["gaussian_uncertainty", "combined_uncertainty", "CSign", "BINARIZERS", "WeightBinarizer"]


UNCERTAINTIES = ("normalized", "density")
SIGMA_RULES = ("variance", "std")


def gaussian_uncertainty(x, sigma, uncertainty="density"):
    """Eq. 3 (``density``), or divided by its peak (``normalized``: in ``(0, 1]``)."""
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g if uncertainty == "normalized" else g / (math.sqrt(2 * math.pi) * sigma)


def combined_uncertainty(history):
    """Eq. 4 for ``t > m``: ``1 - prod (1 - f(x_i))`` over a stack of ``m + 1`` uncertainties."""
    return 1 - torch.prod(1 - history, dim=0)


class _KeptBits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits):
        ctx.save_for_backward(x)
        return bits.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype), None


class CSign(nn.Module):
    """Certainty-sign binarizer of a weight tensor of ``shape``; returns ``+-1``.

    Parameters
    ----------
    shape : tuple of int
    sigma : float
        Eq. 3's spread (default: set from the first weights seen, their standard deviation).
    m : int
        States combined by Eq. 4 (default 2).
    delta : float
        Quantile of the layer's uncertainties used as ``Delta`` (default 0.1; 1.0 makes c-sign
        plain sign).
    sigma_rule : "variance" or "std"
        How ``sigma`` is set from the first weights seen when not given (the paper: variance).
    uncertainty : "normalized" or "density"
        Eq. 3 divided by its peak (default; see the module's note on f > 1) or literally.
    """

    def __init__(self, shape, sigma=None, m=2, delta=0.1, sigma_rule="variance",
                 uncertainty="normalized"):
        super().__init__()
        if m < 1:
            raise ValueError(f"m must be a positive integer, not {m}")
        if not 0.0 <= delta <= 1.0:
            raise ValueError(f"delta is a quantile in [0, 1], not {delta}")
        if sigma_rule not in SIGMA_RULES:
            raise ValueError(f"sigma_rule must be one of {', '.join(SIGMA_RULES)}, not "
                             f"{sigma_rule!r}")
        if uncertainty not in UNCERTAINTIES:
            raise ValueError(f"uncertainty must be one of {', '.join(UNCERTAINTIES)}, not "
                             f"{uncertainty!r}")
        self.m, self.delta = m, delta
        self.sigma_rule, self.uncertainty_mode = sigma_rule, uncertainty
        # Of the last step, for studies: the threshold Delta and the share of weights whose
        # combined uncertainty exceeds 1e-6.
        self.last_delta, self.uncertain_share = None, None
        self.register_buffer("sigma", torch.tensor(float("nan") if sigma is None else sigma))
        self.register_buffer("step", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("history", torch.zeros((m, *shape)))   # f(x_{t-1}) .. f(x_{t-m})
        self.register_buffer("prev_fhat", torch.zeros(shape))
        self.register_buffer("bits", torch.ones(shape))             # csign(x_{t-1}), +-1
        self.register_buffer("flips", torch.tensor(0, dtype=torch.int64))

    @torch.no_grad()
    def update(self, x):
        """One training step: the new bits for latent weights ``x`` (Eq. 5)."""
        if torch.isnan(self.sigma):
            spread = (float(x.var()) if self.sigma_rule == "variance" else float(x.std())) \
                if x.numel() > 1 else 1.0
            self.sigma.fill_(spread if spread > 0 else 1.0)
        t = int(self.step) + 1
        f = gaussian_uncertainty(x, self.sigma, self.uncertainty_mode)
        # Eq. 4: the state alone for t <= m, else the last m + 1 states combined.
        fhat = f if t <= self.m else combined_uncertainty(
            torch.cat([f[None], self.history[:self.m]]))
        if t == 1:
            new = sign(x)          # no previous state: c-sign starts as sign
        else:
            delta = torch.quantile(fhat.flatten().double(), self.delta).to(fhat.dtype)
            self.last_delta = float(delta)
            follow = fhat <= torch.maximum(self.prev_fhat, delta)
            new = torch.where(follow, sign(x), self.bits)
        self.uncertain_share = float((fhat > 1e-6).float().mean())
        if t > 1:
            self.flips.fill_(int((new != self.bits).sum()))
        self.history.copy_(torch.cat([f[None], self.history[:-1]]))
        self.prev_fhat.copy_(fhat)
        self.bits.copy_(new)
        self.step.fill_(t)
        return new

    def forward(self, x):
        if self.training:
            self.update(x.detach())
        elif int(self.step) == 0:
            return sign(x)
        return _KeptBits.apply(x, self.bits)

    def uncertainty(self):
        """The layer's summed combined uncertainty at the last step (``sum f^``)."""
        return float(self.prev_fhat.sum())

    def weight_bits(self):
        """The kept bits as 0/1 (bit 1 means +1)."""
        return (self.bits > 0).to(torch.uint8)


BINARIZERS = ("sign", "csign")


class WeightBinarizer(nn.Module):
    """The weight binarizer of a layer: ``sign`` (clipped straight-through) or ``csign``
    (:class:`CSign`, stepping in training mode). Returns ``+-1`` weights."""

    def __init__(self, shape, kind="sign"):
        super().__init__()
        if kind not in BINARIZERS:
            raise ValueError(f"unknown binarizer {kind!r}; choose one of {', '.join(BINARIZERS)}")
        self.kind = kind
        self.csign = CSign(tuple(shape)) if kind == "csign" else None
        self.real = False
        """While True the latent weights pass through unbinarized (a first training stage with
        real-valued weights and binary activations); :meth:`bits` is unaffected."""

    def forward(self, w):
        from .binarize import sign_ste

        if self.real:
            return w
        return sign_ste(w) if self.csign is None else self.csign(w)

    def bits(self, w):
        """The binary weights as 0/1: for c-sign the bits it keeps once it has stepped."""
        if self.csign is not None and int(self.csign.step) > 0:
            return self.csign.weight_bits()
        return (w.detach() >= 0).to(torch.uint8)

    def uncertainty(self):
        return None if self.csign is None else self.csign.uncertainty()
