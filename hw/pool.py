"""Max-pooling of binary activations: a stream of pixels in, a stream of pooled pixels out."""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from .block import StreamBlock
from .params import check_positive_int, construction

__all__ = ["MaxPool"]


class MaxPool(StreamBlock):
    """``k x k`` max-pooling, stride ``k``, of a ``height x width`` map of ``channels`` bits.

    On bits (1 meaning +1) the maximum is the OR. Pixels arrive in raster order, one a
    transfer; pooled pixels leave in raster order, ``(height // k) x (width // k)`` a frame
    (rows and columns beyond the last whole block are taken and dropped, as a floor pooling
    does). A row of partial ORs (``width // k`` words, a ring of registers rotated once a
    block) holds the blocks of the current block row. One pixel a cycle when the sink keeps up.

    Raises
    ------
    BnnforgeError
        On a non-positive size or a block larger than the map.
    """

    cycles_per_vector = 1

    def __init__(self, height, width, channels, kernel, name=None):
        with construction(self):
            for what, value in (("height", height), ("width", width), ("channels", channels),
                                ("kernel", kernel)):
                check_positive_int(what, value)
            if kernel > min(height, width):
                raise BnnforgeError(f"a {kernel}x{kernel} pool does not fit the "
                                    f"{height}x{width} map")
        self.height, self.width, self.channels, self.kernel = height, width, channels, kernel
        self.name = name
        super().__init__({"i": In(stream.Signature(channels)),
                          "o": Out(stream.Signature(channels)), "busy": Out(1)})

    @property
    def out_size(self):
        return self.height // self.kernel, self.width // self.kernel

    @property
    def latency(self):
        """Cycles from the last input pixel of a block to its pooled pixel: one."""
        return 1

    @property
    def cycles_per_frame(self):
        return self.height * self.width

    def elaborate(self, platform):
        m = Module()
        k, C = self.kernel, self.channels
        ho, wo = self.out_size
        row, col = Signal(range(self.height)), Signal(range(self.width))
        kr, kc = Signal(range(k)), Signal(range(k))          # place inside the block
        hor = Signal(C)                                       # OR along the block's row
        ring = [Signal(C, name=f"ring{j}") for j in range(wo)]
        inside = Signal()
        m.d.comb += inside.eq((row < ho * k) & (col < wo * k))

        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready),
                     self.busy.eq(self.i.valid & self.i.ready)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        px = self.i.payload
        with m.If(self.i.valid & self.i.ready):
            # Counters of the raster position and of the place inside the block.
            with m.If(col == self.width - 1):
                m.d.sync += [col.eq(0), kc.eq(0)]
                with m.If(row == self.height - 1):
                    m.d.sync += [row.eq(0), kr.eq(0)]
                with m.Else():
                    m.d.sync += [row.eq(row + 1), kr.eq(Mux(kr == k - 1, 0, kr + 1))]
            with m.Else():
                m.d.sync += [col.eq(col + 1), kc.eq(Mux(kc == k - 1, 0, kc + 1))]
            with m.If(inside):
                line = Mux(kc == 0, px, px | hor) if k > 1 else px
                with m.If(kc == k - 1):
                    # A block row is complete: fold it into the ring's head and rotate.
                    new = Signal(C)
                    m.d.comb += new.eq(line if k == 1 else
                                       (line | (ring[0] & (kr != 0).replicate(C))))
                    m.d.sync += [a.eq(b) for a, b in zip(ring, ring[1:] + [new])]
                    with m.If(kr == k - 1):
                        m.d.sync += [self.o.payload.eq(new), self.o.valid.eq(1)]
                with m.Else():
                    m.d.sync += hor.eq(line)
        return m

