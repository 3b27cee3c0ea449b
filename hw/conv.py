"""A binary convolution layer: sliding window unit followed by a folded MVTU."""

from dataclasses import dataclass

from .axis import AxisTop
from .fifo import StreamFifo
from .mvtu import MVTU
from .window import SlidingWindow

__all__ = ["ConvGeometry", "conv_blocks", "conv_layer_top", "conv_cycles_model"]


@dataclass(frozen=True)
class ConvGeometry:
    """Shape of a binary convolution on a ``height x width`` map of ``channels`` bits."""

    height: int
    width: int
    channels: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    padding: int = 0
    pad_bit: int = 1


def conv_blocks(layer, geometry, folding, reg_every=1, family=None):
    """``[SlidingWindow, StreamFifo, MVTU]`` for ``layer`` (a dense layer whose ``cols`` are
    the window, in the order of :func:`golden.conv.weights_hwc`).

    The FIFO lets the window unit run ahead through the padding and the first rows of the next
    frame while the MVTU still works on the last windows of this one: it holds enough windows
    to cover the window unit's lead-in (``latency``) at the MVTU's pace.
    """
    g = geometry
    swu = SlidingWindow(g.height, g.width, g.channels, g.kernel, g.stride, g.dilation,
                        g.padding, g.pad_bit)
    swu.name = f"{layer.name}_swu"
    mvtu = MVTU(layer, folding, reg_every, family)
    depth = -(-swu.latency // mvtu.cycles_per_vector) + 2
    fifo = StreamFifo(len(swu.o.payload), depth, name=f"{layer.name}_fifo")
    return [swu, fifo, mvtu]


def conv_cycles_model(swu, fifo, mvtu):
    """Cycles a frame: the slower of the window unit (one padded position a cycle) and the
    MVTU (``(rows / PE) * (cols / SIMD)`` a window)."""
    ho, wo = swu.out_size
    return max(swu.cycles_per_frame, ho * wo * mvtu.cycles_per_vector)


def conv_layer_top(layer, geometry, folding, reg_every=1, family=None):
    """A single binary convolution layer behind AXI4-Stream ports, ``tlast`` on each frame's
    last output pixel."""
    swu, _, mvtu = blocks = conv_blocks(layer, geometry, folding, reg_every, family)
    ho, wo = swu.out_size
    return AxisTop(blocks, element_width=mvtu.element_width, frame_outputs=ho * wo)
