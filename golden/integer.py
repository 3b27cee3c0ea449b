"""The integer model: exactly what the hardware computes, from a weight bitstream.

For a layer with weight bits ``w`` (``rows x cols``) and input bits ``x``, the popcount of the
XNOR is ``P = (x' . w' + cols) / 2`` with ``x' = 2x - 1`` and ``w' = 2w - 1``. The dot product is
computed in float32, which is exact for these integers (``|x' . w'| <= cols < 2^24``), then
turned into integers. A layer with thresholds outputs ``P >= T``; the last layer outputs ``P``
as class scores; the predicted class is the first index of the largest score.
"""

import torch

__all__ = ["IntegerNetwork", "predict"]

_EXACT_LIMIT = 1 << 24


class IntegerNetwork(torch.nn.Module):
    """Integer inference of a dense :class:`quant.bitstream.Bitstream`."""

    def __init__(self, bitstream):
        super().__init__()
        self.bitstream = bitstream
        self.names = [layer.name for layer in bitstream.layers]
        for layer in bitstream.layers:
            if layer.cols >= _EXACT_LIMIT:
                raise ValueError(f"layer {layer.name} is too wide for the exact float path")
        self.weights = [torch.from_numpy(2.0 * layer.weights.astype("float32") - 1.0)
                        for layer in bitstream.layers]
        self.thresholds = [None if layer.thresholds is None else
                           torch.from_numpy(layer.thresholds) for layer in bitstream.layers]

    def popcounts(self, bits, index):
        """Popcount of XNOR(input, weights) of layer ``index`` for a batch of bit vectors."""
        x = 2.0 * bits.float() - 1.0
        dot = (x @ self.weights[index].T).round().to(torch.int64)
        return (dot + self.weights[index].shape[1]) // 2

    @torch.no_grad()
    def forward(self, bits, trace=False):
        """Scores (``N x classes``, int64) for input bits ``N x features``; with ``trace`` also
        the list of every layer's output."""
        x = torch.as_tensor(bits)
        outs = []
        for i, t in enumerate(self.thresholds):
            p = self.popcounts(x, i)
            x = p if t is None else (p >= t).to(torch.uint8)
            outs.append(x)
        return (x, outs) if trace else x


def predict(scores):
    """The predicted class: the first index of the largest score."""
    return torch.as_tensor(scores).argmax(dim=1)
