"""A stream FIFO block: decouples a producer that runs ahead from a slower consumer."""

from amaranth import Module, Shape
from amaranth.lib import fifo, stream
from amaranth.lib.wiring import In, Out

from .params import check_positive_int, construction
from .block import StreamBlock

__all__ = ["StreamFifo"]


class StreamFifo(StreamBlock):
    """``depth`` payloads of ``shape`` (a width, or a layout) between two streams (Amaranth's
    ``SyncFIFOBuffered``: block RAM plus an output register).

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    busy : Out(1)
        High in each cycle in which a payload enters.
    """

    def __init__(self, shape, depth, name="fifo"):
        with construction(self):
            width = shape if isinstance(shape, int) else Shape.cast(shape).width
            check_positive_int("FIFO width", width)
            check_positive_int("FIFO depth", depth)
        self.width, self.depth, self.name = width, depth, name
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
                          "busy": Out(1)})

    cycles_per_vector = 1

    @property
    def latency(self):
        """Cycles from a write into the empty FIFO to its output being valid."""
        return 1 if self.depth == 1 else 2

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.d.comb += [buf.w_data.eq(self.i.payload), buf.w_en.eq(self.i.valid),
                     self.i.ready.eq(buf.w_rdy),
                     self.o.payload.eq(buf.r_data), self.o.valid.eq(buf.r_rdy),
                     buf.r_en.eq(self.o.ready)]
        m.d.comb += self.busy.eq(self.i.valid & self.i.ready)
        return m
