"""A binary CNN (:mod:`quant.cnn_format`) as one dataflow pipeline behind AXI4-Stream ports:
pixels in, one vector of class scores an image out.

Each convolution is a sliding-window unit, a FIFO and a folded MVTU (a 1x1 convolution of
stride 1 is the MVTU alone); each pooling a :class:`hw.pool.MaxPool`; a fully connected layer
after a map larger than one pixel gathers the whole map with a sliding window as large as the
map (one window, in ``(h, w, c)`` order: the flatten), then its MVTU.
"""

from .axis import AxisTop
from .fifo import StreamFifo
from .mvtu import MVTU
from .pool import MaxPool
from .window import SlidingWindow

__all__ = ["cnn_blocks", "cnn_network", "vectors_per_image"]


def vectors_per_image(bitstream):
    """``{matrix name: vectors an image}``: output positions of a convolution, 1 for a dense
    layer."""
    from quant.cnn_format import cnn_shapes

    return {r["name"]: (r["out"][0] * r["out"][1] if r["op"] == "conv" else 1)
            for r in cnn_shapes(bitstream.cnn, bitstream.layers) if r["layer"] is not None}


def _window(name, h, w, c, b, k, stride, padding, pad_value):
    pad_pixel = 0
    for ch in range(c):
        pad_pixel |= pad_value << (ch * b)
    swu = SlidingWindow(h, w, c * b, k, stride, 1, padding, pad_pixel=pad_pixel)
    swu.name = f"{name}_swu"
    return swu


def cnn_blocks(bitstream, folding, reg_every=1, family=None):
    """The blocks of the pipeline, in order, and one row an op: ``{name, op, blocks,
    cycles_model}`` (cycles an image by the model: the slowest of its blocks)."""
    from quant.cnn_format import cnn_shapes

    blocks, rows = [], []
    for index, r in enumerate(cnn_shapes(bitstream.cnn, bitstream.layers)):
        h, w, c, b = r["in"]
        spec, layer = r["spec"], r["layer"]
        if r["op"] == "pool":
            pool = MaxPool(h, w, c, spec["kernel"], name=r["name"])
            mine = [pool]
            cycles = pool.cycles_per_frame
        else:
            mvtu = MVTU(layer, folding[layer.name], reg_every, family)
            if r["op"] == "conv":
                k, s, p = spec["kernel"], spec["stride"], spec["padding"]
                if k == 1 and s == 1 and p == 0:
                    swu = None
                else:
                    swu = _window(layer.name, h, w, c, b, k, s, p, spec["pad_value"])
            else:
                swu = None if h == 1 else _window(layer.name, h, w, c, b, h, 1, 0, 0)
            positions = r["out"][0] * r["out"][1]
            cycles = positions * mvtu.cycles_per_vector
            if swu is None:
                mine = [mvtu]
                cycles = max(cycles, h * w)
            else:
                depth = -(-swu.latency // mvtu.cycles_per_vector) + 2
                fifo = StreamFifo(len(swu.o.payload), depth, name=f"{layer.name}_fifo")
                mine = [swu, fifo, mvtu]
                cycles = max(cycles, swu.cycles_per_frame)
                if index:
                    # The window unit can take the next image's first rows only after it has
                    # emitted this image's last windows; a FIFO of pixels before it lets the
                    # layer before run on into the next image meanwhile, so that this layer
                    # does not wait for those rows at the start of every image (CNV-w1a1 at
                    # BNN-PYNQ's folding took 36,706 cycles an image for a model of 32,768
                    # without it).
                    pix = StreamFifo(c * b, swu.kernel * w, name=f"{layer.name}_pixfifo")
                    mine.insert(0, pix)
        blocks += mine
        rows.append({"name": r["name"], "op": r["op"], "blocks": [m.name for m in mine],
                     "cycles_model": cycles, "in": list(r["in"]), "out": list(r["out"])})
    return blocks, rows


def cnn_network(bitstream, folding, reg_every=1, family=None):
    """The network top: pixels of ``channels * bits`` bits in (raster order, an image after
    another), the last layer's scores out (one transfer an image, one byte-aligned lane a
    class). Returns ``(top, rows)`` (see :func:`cnn_blocks`)."""
    blocks, rows = cnn_blocks(bitstream, folding, reg_every, family)
    return AxisTop(blocks, element_width=blocks[-1].element_width), rows
