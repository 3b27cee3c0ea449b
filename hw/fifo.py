"""A stream FIFO block: decouples a producer that runs ahead from a slower consumer."""

from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_positive_int, construction

__all__ = ["StreamFifo"]


class StreamFifo(wiring.Component):
    """``depth`` payloads of ``width`` bits between two streams (Amaranth's
    ``SyncFIFOBuffered``: block RAM plus an output register).

    Members
    -------
    i : In(stream.Signature(width))
    o : Out(stream.Signature(width))
    busy : Out(1)
        High in each cycle in which a payload enters.
    """

    def __init__(self, width, depth, name="fifo"):
        with construction(self):
            check_positive_int("FIFO width", width)
            check_positive_int("FIFO depth", depth)
        self.width, self.depth, self.name = width, depth, name
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width)),
                          "busy": Out(1)})

    cycles_per_vector = 1

    @property
    def latency(self):
        """Cycles from a write into the empty FIFO to its output being valid."""
        return 1 if self.depth == 1 else 2

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        wiring.connect(m, wiring.flipped(self.i), buf.w_stream)
        wiring.connect(m, buf.r_stream, wiring.flipped(self.o))
        m.d.comb += self.busy.eq(self.i.valid & self.i.ready)
        return m
