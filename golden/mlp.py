"""Binary fully connected networks (XNOR-Net style) for training and their export.

Training forward, for inputs ``x`` in ``{-1, +1}``: every hidden layer is
``sign(BN(x @ sign(W)^T))`` with straight-through gradients; the last layer gives class logits
``s * (x @ sign(W)^T)`` with a learned positive scale ``s`` (which does not change the argmax).

:meth:`BinaryMLP.to_bitstream` folds each hidden layer's batch-norm into integer thresholds
(:func:`quant.thresholds.fold_batchnorm`) and the last layer becomes integer popcount scores.
The integer model of the result (:class:`golden.integer.IntegerNetwork`) is what the hardware
computes.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from quant.binarize import sign_ste
from quant.csign import BINARIZERS, WeightBinarizer
from quant.bitstream import Bitstream, DenseLayer
from quant.thresholds import fold_batchnorm

__all__ = ["BINARIZERS", "TRAINING", "BinaryLinear", "BinaryMLP"]

#: The training recipe (keyword arguments of :func:`golden.train.train_classifier`) that the
#: demo, the c-sign study and the tests share.
TRAINING = {"lr": 1e-2}


class BinaryLinear(nn.Module):
    """Fully connected layer with binary weights ``sign(W)`` (straight-through) and no bias.

    The latent weights are kept in ``[-1, 1]`` by :meth:`clip_` (BinaryConnect), which the
    training loop calls after each step.
    """

    def __init__(self, in_features, out_features, binarizer="sign"):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"BinaryLinear needs positive sizes, not {in_features}x{out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1, 1)
                                   * math.sqrt(3.0 / in_features))
        self.binarize = WeightBinarizer((out_features, in_features), binarizer)

    def binary_weight(self):
        """``+-1`` weights as the forward pass uses them (c-sign steps in training mode)."""
        return self.binarize(self.weight)

    def forward(self, x):
        return F.linear(x, self.binary_weight())

    @torch.no_grad()
    def clip_(self):
        self.weight.clamp_(-1, 1)

    def weight_bits(self):
        """The binary weights as 0/1 (bit 1 means +1; sign(0) = +1): for c-sign, the bits it
        keeps (the trained model's own binarized weights)."""
        return self.binarize.bits(self.weight).numpy()


class BinaryMLP(nn.Module):
    KIND = "mlp"  # the network kind's name (checkpoints, bnnforge.kinds)

    """Binary MLP ``sizes[0] -> ... -> sizes[-1]``; inputs are bits (0/1), outputs logits.

    Parameters
    ----------
    sizes : sequence of int
        Input bits, hidden widths, number of classes; at least two entries.
    """

    def __init__(self, sizes, binarizer="sign"):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"BinaryMLP sizes must be at least two positive integers, not {sizes}")
        self.sizes, self.binarizer = sizes, binarizer
        self.config = {"sizes": list(sizes), "binarizer": binarizer}
        self.fcs = nn.ModuleList(BinaryLinear(a, b, binarizer)
                                 for a, b in zip(sizes[:-1], sizes[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm1d(s) for s in sizes[1:-1])
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(sizes[-2])))

    def forward(self, bits):
        x = 2.0 * bits.to(self.log_scale.dtype) - 1.0
        for fc, bn in zip(self.fcs[:-1], self.bns):
            x = sign_ste(bn(fc(x)))
        return self.fcs[-1](x) * self.log_scale.exp()

    def layer_bits(self):
        """``{layer name: weight bits}`` as the model binarizes them now."""
        return {f"fc{i}": fc.weight_bits() for i, fc in enumerate(self.fcs)}

    def uncertainty(self):
        """``{layer name: summed c-sign uncertainty}`` (empty for plain sign)."""
        return {f"fc{i}": fc.binarize.uncertainty() for i, fc in enumerate(self.fcs)
                if fc.binarize.csign is not None}

    def clip_(self):
        for fc in self.fcs:
            fc.clip_()

    def to_bitstream(self, input_spec, meta=None):
        """Export as a :class:`quant.bitstream.Bitstream` (batch-norm folded, weights flipped)."""
        layers = []
        for i, fc in enumerate(self.fcs):
            w = fc.weight_bits()
            if i < len(self.bns):
                bn = self.bns[i]
                t, flip = fold_batchnorm(
                    fc.in_features, bn.weight.detach().numpy(), bn.bias.detach().numpy(),
                    bn.running_mean.numpy(), bn.running_var.numpy(), bn.eps)
                w = np.where(flip[:, None], 1 - w, w).astype(np.uint8)
                layers.append(DenseLayer(f"fc{i}", w, t))
            else:
                layers.append(DenseLayer(f"fc{i}", w, None))
        return Bitstream(layers, dict(input_spec), dict(meta or {})).validate()
