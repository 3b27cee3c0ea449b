"""A dense binary network as a dataflow pipeline of MVTUs behind AXI4-Stream ports."""

from .axis import AxisTop
from .mvtu import MVTU

__all__ = ["dense_network", "layer_shapes"]


def layer_shapes(bitstream):
    """``{layer name: (rows, cols)}`` of a dense bitstream."""
    return {layer.name: (layer.rows, layer.cols) for layer in bitstream.layers}


def dense_network(bitstream, folding, reg_every=1, family=None, beat_width=None):
    """The network top: one :class:`~hw.mvtu.MVTU` a layer, chained, with AXI4-Stream ports.

    ``folding`` is ``{layer name: Folding}``. The output is the last layer's scores, one
    byte-aligned lane a class (or its bits, when the last layer has thresholds). ``family``:
    the target FPGA family (:class:`hw.mvtu.MVTU`). ``beat_width``: narrow ports, a vector in
    several beats (:class:`hw.axis.AxisTop`).
    """
    # With narrow ports the input converter holds a whole vector until the first unit takes
    # it, so that unit needs no buffer of its own.
    blocks = [MVTU(layer, folding[layer.name], reg_every, family,
                   input_buffer=not (k == 0 and beat_width is not None))
              for k, layer in enumerate(bitstream.layers)]
    return AxisTop(blocks, element_width=blocks[-1].element_width, beat_width=beat_width)
