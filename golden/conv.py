"""Binary 2-D convolution: trainable (float, straight-through) and integer (popcounts).

Padding is explicit: a padded position holds a *bit*, ``pad_bit = 1`` meaning +1 (the Group-Net
authors pad binary convolutions with +1) and ``pad_bit = 0`` meaning -1. Zero is not a binary
value, so there is no zero padding here.

Hardware order of a window (shared with :mod:`hw.window` and the bitstream): element
``(i * k + j) * C + c`` is channel ``c`` of kernel row ``i``, kernel column ``j``; a weight
tensor ``(Cout, C, k, k)`` is laid out for hardware by :func:`weights_hwc`.
"""

import torch
from torch import nn
from torch.nn import functional as F

from quant.csign import WeightBinarizer

__all__ = ["conv_output_size", "pad_bits", "binary_conv2d_popcount", "weights_hwc",
           "BinaryConv2d"]


def conv_output_size(size, kernel, stride=1, dilation=1, padding=0):
    """``floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pad_bits(x, padding, pad_bit):
    """Pad the last two dimensions of a 0/1 or +-1 tensor with the value of ``pad_bit``."""
    if padding == 0:
        return x
    is_bits = x.dtype in (torch.uint8, torch.bool, torch.int64, torch.int32)
    value = float(pad_bit) if is_bits else (1.0 if pad_bit else -1.0)
    return F.pad(x, (padding,) * 4, value=value)


def binary_conv2d_popcount(x_bits, w_bits, stride=1, dilation=1, padding=0, pad_bit=1):
    """Integer binary convolution: ``popcount(XNOR(window, w))`` for every output position.

    ``x_bits``: ``N x C x H x W`` of 0/1; ``w_bits``: ``Cout x C x k x k`` of 0/1. Returns int64
    ``N x Cout x Ho x Wo``. The +-1 products are summed in float64, exact for any realistic
    fan-in, and turned into popcounts with ``P = (dot + n) / 2``, ``n = C k k``.
    """
    x = 2.0 * pad_bits(torch.as_tensor(x_bits).to(torch.int64), padding, pad_bit).double() - 1
    w = 2.0 * torch.as_tensor(w_bits).double() - 1
    dot = F.conv2d(x, w, stride=stride, dilation=dilation)
    n = w.shape[1] * w.shape[2] * w.shape[3]
    return ((dot.round().to(torch.int64) + n) // 2)


def weights_hwc(w_bits):
    """``Cout x C x k x k`` weights as ``Cout x (k k C)`` rows in hardware window order."""
    w = torch.as_tensor(w_bits)
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


class BinaryConv2d(nn.Module):
    """Convolution with binary weights ``sign(W)`` (straight-through) on +-1 inputs.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    stride, dilation, padding : int
    pad_bit : 0 or 1
        Value of padded positions: 1 means +1 (default, as the Group-Net authors), 0 means -1.
    binarizer : "sign" or "csign"
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, dilation=1,
                 padding=None, pad_bit=1, binarizer="sign"):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("stride", stride),
                            ("dilation", dilation)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value}")
        if pad_bit not in (0, 1):
            raise ValueError(f"pad_bit must be 0 (-1) or 1 (+1), not {pad_bit}")
        self.stride, self.dilation, self.pad_bit = stride, dilation, pad_bit
        self.padding = dilation * (kernel_size - 1) // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,
                                               kernel_size).uniform_(-1, 1)
                                   * (3.0 / (in_channels * kernel_size ** 2)) ** 0.5)
        self.binarize = WeightBinarizer(self.weight.shape, binarizer)

    def forward(self, x):
        x = pad_bits(x, self.padding, self.pad_bit)
        return F.conv2d(x, self.binarize(self.weight), stride=self.stride,
                        dilation=self.dilation)

    @torch.no_grad()
    def clip_(self):
        self.weight.clamp_(-1, 1)

    def weight_bits(self):
        return self.binarize.bits(self.weight)
