"""The host's part of an imported network (``meta["host"]`` of a bitstream, constants in its
``host`` tensors): from the ONNX graph's input to the hardware's integer codes, and from the
hardware's integer scores to the graph's output. Both run in float32 with NumPy in the graph's
order, as qonnx's executor runs those nodes, so the outputs are the graph's outputs exactly.
"""

import numpy as np

from .errors import BnnforgeError

__all__ = ["HostIO"]

_OPS = {"mul": np.multiply, "sub": np.subtract, "add": np.add, "div": np.divide}


class HostIO:
    """``encode(x)``: the graph's input (``N x ...``, its shape with any batch ``N``) to
    ``N x C x H x W`` integer codes; ``decode(scores)``: integer scores to the graph's output."""

    def __init__(self, bitstream):
        self.meta = bitstream.meta.get("host")
        if self.meta is None:
            raise BnnforgeError("this bitstream has no host steps (it was not imported)")
        self.consts = bitstream.host
        inp = bitstream.cnn["input"]
        self.chw = (inp["channels"], inp["height"], inp["width"])

    def check(self, x):
        want = tuple(self.meta["input_shape"][1:])
        x = np.asarray(x)
        if x.shape[1:] != want and x.shape != want:
            raise BnnforgeError(f"the network takes inputs of shape N x "
                                f"{' x '.join(map(str, want))} (the ONNX graph's input "
                                f"{self.meta['onnx_input']}), not {x.shape}")
        return x.reshape((-1,) + want) if x.shape == want else x

    def encode(self, x):
        x = self.check(x).astype(np.float32)
        n = x.shape[0]
        for op in self.meta["input_ops"]:
            if op["op"] == "reshape":
                x = x.reshape((n,) + tuple(op["shape"][1:]))
            else:
                x = _OPS[op["op"]](x, self.consts[op["const"]])
        q = self.meta["input_quant"]
        if q["kind"] == "bipolar":
            codes = (x >= 0).astype(np.int64)
        else:
            y = x / self.consts["quant_scale"]
            y = y + self.consts["quant_zeropt"]
            y = np.where(y > q["q_max"], np.float32(q["q_max"]), y)
            y = np.where(y < q["q_min"], np.float32(q["q_min"]), y)
            y = _round(q["rounding"])(y)
            codes = y.astype(np.int64) - q["q_min"]
        return codes.reshape((n,) + self.chw)

    def decode(self, scores):
        s = np.asarray(scores, dtype=np.float64)
        y = (self.meta["output_scale"] * s + self.consts[self.meta["output_offset"]]
             ).astype(np.float32)
        for op in self.meta["output_ops"]:
            y = _OPS[op["op"]](y, self.consts[op["const"]])
        return y.astype(np.float32)


def _round(mode):
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round
    if mode == "FLOOR":
        return np.floor
    if mode == "CEIL":
        return np.ceil
    raise BnnforgeError(f"rounding mode {mode} of the input quantizer is not supported "
                        f"(ROUND, HALF_EVEN, FLOOR, CEIL)")
