"""General binary CNNs: layers to compose and train as ordinary ``torch.nn`` modules, their
export to a bitstream, and the integer model that the hardware must match bit for bit.

The layers (all take and give NCHW tensors):

- :class:`InputConv2d`: a first convolution with binary weights over multi-bit unsigned inputs
  (for example 8-bit pixels ``u`` in ``[0, 255]``): ``y = sum w' u`` with ``w' = sign(W)``.
- :class:`Conv2d`: a binary convolution over +-1 activations, padded with +1 or -1.
- :class:`Linear`: a binary fully connected layer (:class:`golden.mlp.BinaryLinear`).
- :class:`BatchNormSign`: batch-norm then sign (straight-through); after export, one integer
  threshold a channel.
- :class:`MaxPool2d`: max-pooling of +-1 activations over ``k x k`` blocks, stride ``k`` (put it
  after a :class:`BatchNormSign`, as FINN orders it).
- :class:`Flatten`: the map as a vector in ``(h, w, c)`` order, the order the hardware streams.

:class:`BinaryCNN` chains them (like ``nn.Sequential``) and :meth:`BinaryCNN.to_bitstream`
exports the trained network in one call. The integer model (:class:`IntegerCnn`) computes, for
each matrix layer, ``S = sum_j (w_j ? u_j : M - u_j)`` (the XNOR popcount for bits, see
:class:`quant.bitstream.DenseLayer`), thresholds ``S >= T``, ORs for pooling, and the last
layer's ``S`` as scores.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from quant.binarize import sign_ste
from quant.bitstream import Bitstream, DenseLayer
from quant.csign import WeightBinarizer
from quant.errors import BitstreamError
from .conv import BinaryConv2d, pad_bits, weights_hwc
from .mlp import BinaryLinear

__all__ = ["InputConv2d", "Conv2d", "Linear", "BatchNormSign", "MaxPool2d", "Flatten",
           "BinaryCNN", "IntegerCnn", "step_thresholds", "TRAINING"]

#: The training recipe of the CNN demo (keyword arguments of
#: :func:`golden.train.train_classifier`).
TRAINING = {"lr": 1e-2}


class InputConv2d(nn.Module):
    """First convolution: binary weights, multi-bit unsigned inputs (integer-valued floats in
    ``[0, 2^input_bits - 1]``), padded with ``pad_value``."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0,
                 pad_value=0, input_bits=8, binarizer="sign"):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not 1 <= input_bits <= 16:
            raise ValueError(f"input_bits must be in 1..16, not {input_bits}")
        if not 0 <= pad_value < 1 << input_bits:
            raise ValueError(f"pad_value must be in [0, {(1 << input_bits) - 1}], "
                             f"not {pad_value}")
        if not 0 <= padding < kernel_size:
            raise ValueError(f"padding must be in [0, {kernel_size - 1}], not {padding}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.pad_value, self.input_bits = pad_value, input_bits
        fan_in = in_channels * kernel_size ** 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,
                                               kernel_size).uniform_(-1, 1)
                                   * math.sqrt(3.0 / fan_in))
        self.binarize = WeightBinarizer(self.weight.shape, binarizer)

    def forward(self, x):
        if self.padding:
            x = F.pad(x, (self.padding,) * 4, value=float(self.pad_value))
        return F.conv2d(x, self.binarize(self.weight), stride=self.stride)

    @torch.no_grad()
    def clip_(self):
        self.weight.clamp_(-1, 1)

    def weight_bits(self):
        return self.binarize.bits(self.weight)


class Conv2d(BinaryConv2d):
    """Binary convolution over +-1 activations; ``padding`` positions hold ``pad_value`` (1
    means +1, 0 means -1). No padding by default ("valid")."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0,
                 pad_value=1, binarizer="sign"):
        if not 0 <= padding < kernel_size:
            raise ValueError(f"padding must be in [0, {kernel_size - 1}], not {padding}")
        super().__init__(in_channels, out_channels, kernel_size, stride, 1, padding, pad_value,
                         binarizer)


class Linear(BinaryLinear):
    """Binary fully connected layer over +-1 activations (:class:`golden.mlp.BinaryLinear`)."""


class BatchNormSign(nn.modules.batchnorm._BatchNorm):
    """Batch-norm over channels (of an ``N x C`` or ``N x C x H x W`` input) then sign with a
    straight-through gradient: +-1 out, ``sign(0) = +1``."""

    def _check_input_dim(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchNormSign takes N x C or N x C x H x W, not {x.dim()}-D")

    def forward(self, x):
        return sign_ste(super().forward(x))

    def normalize(self, x):
        """Batch-norm alone (no sign), as used in evaluation."""
        return super().forward(x)


class MaxPool2d(nn.MaxPool2d):
    """Max-pooling over ``k x k`` blocks with stride ``k`` (floor: a partial block at the edge
    is dropped)."""

    def __init__(self, kernel_size=2):
        super().__init__(kernel_size, kernel_size)


class Flatten(nn.Module):
    """``N x C x H x W`` to ``N x (H W C)`` in ``(h, w, c)`` order."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1)


def step_thresholds(name, bits_of, max_sum):
    """Integer thresholds of a layer from the exact decision function of its float model.

    ``bits_of(S)`` gives, for integer sums ``S`` (a 1-D int64 array), the output bits
    ``len(S) x rows`` (bool) that the float model computes. Every row must be a step in ``S``:
    rising (``bit = S >= T``) or falling (the row's weights are flipped, ``S' = max_sum - S``,
    and ``bit = S' >= T``). Returns ``(thresholds, flip)``; raises :class:`BitstreamError`
    naming the row when a decision is not a step (then no threshold can express it)."""
    s = np.arange(max_sum + 1, dtype=np.int64)
    bits = np.asarray(bits_of(s), dtype=bool)
    rows = bits.shape[1]
    t = np.empty(rows, dtype=np.int64)
    flip = np.zeros(rows, dtype=bool)
    d = np.diff(bits.astype(np.int8), axis=0)
    for r in range(rows):
        col = bits[:, r]
        if (d[:, r] >= 0).all():
            t[r] = np.argmax(col) if col.any() else max_sum + 1
        elif (d[:, r] <= 0).all():
            flip[r] = True
            t[r] = max_sum - int(np.nonzero(col)[0][-1])
        else:
            raise BitstreamError(f"layer {name}, channel {r}: its output is not a step "
                                 f"function of the sum (it changes {int(np.abs(d[:, r]).sum())} "
                                 f"times), so no threshold expresses it")
    return t, flip


class BinaryCNN(nn.Sequential):
    """A binary CNN: the layers of this module in order, class logits out.

    Parameters
    ----------
    input_shape : (channels, height, width)
    input_bits : int
        Bits of an input value (the first layer is an :class:`InputConv2d` when > 1; with 1 the
        inputs are bits and the first layer a :class:`Conv2d` or :class:`Linear`).
    *layers : the modules, ending in a :class:`Linear` that gives the scores.

    ``forward`` takes ``N x C x H x W`` integer-valued inputs in ``[0, 2^input_bits - 1]``;
    the scores are multiplied by a learned positive scale (argmax unchanged).
    """

    KIND = "cnn"

    def __init__(self, input_shape, input_bits, *layers):
        super().__init__(*layers)
        self.input_shape, self.input_bits = tuple(int(v) for v in input_shape), int(input_bits)
        self.config = {"input_shape": list(self.input_shape), "input_bits": self.input_bits}
        last = [m for m in layers if isinstance(m, (InputConv2d, Conv2d, Linear))][-1]
        fan_in = last.in_features if isinstance(last, Linear) else 1
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(fan_in)))

    def forward(self, x):
        x = x.to(self.log_scale.dtype)
        if self.input_bits == 1:
            x = 2.0 * x - 1.0
        for m in self:
            x = m(x)
        return x * self.log_scale.exp()

    def clip_(self):
        for m in self:
            if hasattr(m, "clip_"):
                m.clip_()

    @torch.no_grad()
    def to_bitstream(self, meta=None):
        """Export as a CNN :class:`quant.bitstream.Bitstream`: each matrix with its batch-norm
        and sign folded into integer thresholds (from the float model's own decisions, so float
        and integer inference agree), the last one as integer scores."""
        self.eval()
        c, h, w = self.input_shape
        spec = {"input": {"height": h, "width": w, "channels": c, "bits": self.input_bits},
                "ops": []}
        layers, mods, bits = [], list(self), self.input_bits
        i = 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, MaxPool2d):
                spec["ops"].append({"op": "pool", "kernel": m.kernel_size})
                i += 1
                continue
            if isinstance(m, Flatten):
                i += 1
                continue
            if not isinstance(m, (InputConv2d, Conv2d, Linear)):
                raise BitstreamError(f"layer {i} ({type(m).__name__}) cannot be exported: a "
                                     f"BatchNormSign must follow a convolution or linear layer")
            name = f"l{len(layers)}"
            if isinstance(m, InputConv2d) != (bits > 1):
                raise BitstreamError(f"layer {i} ({type(m).__name__}) takes "
                                     f"{m.input_bits if isinstance(m, InputConv2d) else 1}-bit "
                                     f"inputs but its input has {bits} bits")
            if isinstance(m, Linear):
                wbits = np.asarray(m.weight_bits(), dtype=np.uint8)
                op = {"op": "dense", "layer": name}
            else:
                wbits = weights_hwc(m.weight_bits()).numpy().astype(np.uint8)
                k = m.weight.shape[-1]
                op = {"op": "conv", "layer": name, "kernel": k, "stride": m.stride,
                      "padding": m.padding,
                      "pad_value": int(m.pad_value if isinstance(m, InputConv2d) else m.pad_bit)}
            n = wbits.shape[1]
            big_m = (1 << bits) - 1
            zeros = (wbits == 0).sum(axis=1)
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if isinstance(nxt, BatchNormSign):
                # The float model's value for a sum S: 2 S - n on +-1 inputs, S - M n0 on
                # multi-bit ones.
                def bits_of(s, bn=nxt, zeros=zeros, n=n, big_m=big_m, conv=op["op"] == "conv"):
                    s = torch.from_numpy(s).float()[:, None]
                    y = (s - big_m * torch.from_numpy(zeros).float()[None, :] if big_m > 1
                         else (2 * s - n).expand(-1, len(zeros)))
                    if conv:
                        # Evaluated as the model does: one N x C x H x W map (channels apart).
                        return (bn.normalize(y.T[None, :, :, None])[0, :, :, 0] >= 0).T.numpy()
                    return (bn.normalize(y) >= 0).numpy()

                t, flip = step_thresholds(name, bits_of, n * big_m)
                wbits = np.where(flip[:, None], 1 - wbits, wbits).astype(np.uint8)
                layers.append(DenseLayer(name, wbits, t, bits))
                i += 2
            elif nxt is None and isinstance(m, Linear):
                layers.append(DenseLayer(name, wbits, None, bits))
                i += 1
            else:
                raise BitstreamError(f"layer {i} ({type(m).__name__}) must be followed by a "
                                     f"BatchNormSign (only the last Linear gives scores)")
            spec["ops"].append(op)
            bits = 1
        return Bitstream(layers, {"shape": [c, h, w], "bits": self.input_bits,
                                  "layout": "NCHW integers"},
                         dict(meta or {}), cnn=spec).validate()


class IntegerCnn(torch.nn.Module):
    """Integer inference of a CNN bitstream: exactly what the hardware computes.

    ``forward(u)`` takes ``N x C x H x W`` integers in ``[0, 2^B - 1]`` and returns int64 scores
    ``N x classes``; with ``trace`` also every op's output (``N x H x W x C`` uint8 bits, the
    last op's scores)."""

    def __init__(self, bitstream):
        super().__init__()
        from quant.cnn_format import cnn_shapes

        self.bitstream = bitstream
        self.ops = cnn_shapes(bitstream.cnn, bitstream.layers)

    @staticmethod
    def matrix_sums(x, layer, op):
        """``S`` of a conv (``x``: N x H x W x C, float64) or dense layer."""
        big_m = float((1 << layer.input_bits) - 1)
        w = torch.from_numpy(2.0 * layer.weights.astype(np.float64) - 1.0)
        zeros = torch.from_numpy((layer.weights == 0).sum(axis=1).astype(np.float64))
        if op["op"] == "dense":
            dot = x.reshape(x.shape[0], -1) @ w.T
        else:
            spec = op["spec"]
            k, c = spec["kernel"], x.shape[3]
            wk = w.reshape(-1, k, k, c).permute(0, 3, 1, 2)
            xc = x.permute(0, 3, 1, 2)
            if spec["padding"]:
                xc = F.pad(xc, (spec["padding"],) * 4, value=float(spec["pad_value"]))
            dot = F.conv2d(xc, wk, stride=spec["stride"]).permute(0, 2, 3, 1)
        return (dot + big_m * zeros).round().to(torch.int64)

    @torch.no_grad()
    def forward(self, u, trace=False):
        x = torch.as_tensor(np.asarray(u)).to(torch.float64).permute(0, 2, 3, 1)
        outs = []
        for op in self.ops:
            if op["op"] == "pool":
                k = op["spec"]["kernel"]
                ho, wo = op["out"][0], op["out"][1]
                n, c = x.shape[0], x.shape[3]
                x = x[:, :ho * k, :wo * k].reshape(n, ho, k, wo, k, c).amax(dim=(2, 4))
                outs.append(x.to(torch.uint8))
                continue
            layer = op["layer"]
            s = self.matrix_sums(x, layer, op)
            if layer.thresholds is None:
                x = s.reshape(s.shape[0], -1)
                outs.append(x)
            else:
                x = (s >= torch.from_numpy(layer.thresholds)).to(torch.float64)
                outs.append(x.to(torch.uint8))
        return (x, outs) if trace else x


def digits_cnn(channels=(16, 32), hidden=64, input_bits=5, binarizer="sign"):
    """The CNN of ``bnnforge demo --network cnn`` for the 8x8 digits (pixels 0..16, 5 bits): a
    "same" 3x3 convolution over the pixels (padded with 0), a valid binary 3x3 convolution,
    2x2 max-pooling, a fully connected layer over the 3x3 map and the 10 class scores."""
    c1, c2 = channels
    b = binarizer
    return BinaryCNN((1, 8, 8), input_bits,
                     InputConv2d(1, c1, 3, padding=1, pad_value=0, input_bits=input_bits,
                                 binarizer=b),
                     BatchNormSign(c1),
                     Conv2d(c1, c2, 3, binarizer=b), BatchNormSign(c2), MaxPool2d(2),
                     Flatten(), Linear(c2 * 9, hidden, b), BatchNormSign(hidden),
                     Linear(hidden, 10, b))
