"""The Python API beside the layers of :mod:`golden.cnn`: generate and simulate a bitstream in
two calls (the same steps as ``bnnforge verilog`` and ``bnnforge sim``).

    from golden.cnn import BinaryCNN, InputConv2d, BatchNormSign, Conv2d, MaxPool2d, Flatten, Linear
    from bnnforge import api

    net = BinaryCNN((1, 8, 8), 5, InputConv2d(1, 16, 3, padding=1, input_bits=5), ...)
    ...train with any loop...
    bs = net.to_bitstream()                    # batch-norm folded into thresholds
    api.write(bs, "net.bnn")
    info = api.generate(bs, "build/net", target_cycles=256)
    result = api.simulate(bs, "build/net", images, simulator="icarus")
    assert result["mismatches"] == 0
"""

from quant.bitstream import read, write

__all__ = ["generate", "simulate", "read", "write"]


def generate(bitstream, out_dir, target_cycles=None, folding=None, max_lanes=None,
             family=None):
    """Fold (exactly one of ``target_cycles`` (an image), a ``folding`` JSON file or
    ``max_lanes``) and write the design to ``out_dir``; returns its ``design.json``."""
    from .kinds import kind_of

    kind = kind_of(bitstream)
    chosen = kind.fold(bitstream, folding, target_cycles, max_lanes)
    return kind.generate(bitstream, chosen, out_dir, family=family,
                         checksum=bitstream.checksum)


def simulate(bitstream, design_dir, inputs, simulator="icarus", stall_modes=("none",)):
    """Run ``inputs`` through the generated design in cocotb and compare with the golden
    model: the result has ``golden``, ``hardware`` and ``mismatches``."""
    from .kinds import kind_of

    return kind_of(bitstream).simulate(bitstream, design_dir, inputs, simulator,
                                       stall_modes=stall_modes)
