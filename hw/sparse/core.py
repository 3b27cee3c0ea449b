"""The BSC-Net engines in one design: one framed stream of words in and one out, the engine
chosen by each input word's ``engine`` field (in ``tuser``), so one placed design runs every
op of a program that a sequencer (the host, today) feeds op after op.

Each engine sits behind its own word port (:func:`~hw.sparse.words.word_port`): the core's
streams are one word wide (``word_bits``, the external memory's word), and each engine
assembles its wide beats from words beside itself and splits its wide results into words. (A
stream as wide as the widest beat, 2,691 bits for the linear engine, fanned out to every
engine and back through a 2,688-bit output switch of 5,299 LUT4: the core placed at 60 % but
did not route.)"""

from amaranth import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from ..block import StreamBlock
from ..fifo import StreamFifo
from ..params import construction
from .words import word_port

__all__ = ["SparseCore", "core_in_layout", "core_out_layout", "WORD_BITS", "CORE_FIFO"]

WORD_BITS = 64
"""The core's word: one 64-bit word a cycle each way, the external memory's bus."""
CORE_FIFO = 4
"""Words of the FIFO at the core's input and at its output."""


def core_in_layout(width, engines):
    """An input word: ``data``, ``marker``, ``load``, ``engine`` (which engine takes it),
    ``last``; on the AXI4-Stream top ``tuser = Cat(marker, load, engine)``."""
    return data.StructLayout({"data": width, "marker": 1, "load": 1,
                              "engine": Shape.cast(range(max(engines, 2))).width, "last": 1})


def core_out_layout(width):
    """An output word: ``data``, ``marker``, ``error``, ``last`` (as a word port's)."""
    return data.StructLayout({"data": width, "marker": 1, "error": 1, "last": 1})


class SparseCore(StreamBlock):
    """``engines``: StreamBlocks with framed streams (a sparse layer, a mean layer, the linear
    engine) or plain ones (``SiteAffine``), each behind a port of ``word_bits`` words
    (:func:`~hw.sparse.words.word_port`: a :class:`WordPort`, or the linear engine's own).
    An input word goes to the engine its ``engine`` field names; outputs leave a frame at a
    time, the lowest engine with a word first (a sequencer runs one op at a time,
    so one engine sends at once).

    Members
    -------
    i : In(stream.Signature(core_in_layout(word_bits, ...)))
    o : Out(stream.Signature(core_out_layout(word_bits)))
    busy, searching : Out(1)
    ports : list of WordPort or word engines
        One an engine, in order: ``words_in`` and ``words_out`` a beat of each.
    """

    def __init__(self, engines, name="core", word_bits=WORD_BITS):
        with construction(self, *engines):
            if not engines:
                raise BnnforgeError("a core needs at least one engine")
            names = [e.name for e in engines]
            if len(set(names)) != len(names) or None in names:
                raise BnnforgeError(f"a core's engines need distinct names, not {names}")
        self.engines, self.name, self.word_bits = list(engines), name, word_bits
        self.ports = [word_port(e, word_bits) for e in engines]
        super().__init__({
            "i": In(stream.Signature(core_in_layout(word_bits, len(engines)))),
            "o": Out(stream.Signature(core_out_layout(word_bits))),
            "busy": Out(1), "searching": Out(1)})

    @property
    def user_in_bits(self):
        """Bits of the input ``tuser``: marker, load and the engine."""
        return 2 + self.i.payload.shape()["engine"].width

    def elaborate(self, platform):
        m = Module()
        wb, n = self.word_bits, len(self.ports)
        # A FIFO at each side of the core, so that no ready crosses it combinationally: the
        # placed core's critical path ran from one engine's output valid through the output
        # switch into another engine's ready and on through its pipeline (39.9 MHz).
        m.submodules.in_fifo = fin = StreamFifo(self.i.payload.shape(), CORE_FIFO, "core_in")
        m.submodules.out_fifo = fout = StreamFifo(core_out_layout(wb), CORE_FIFO, "core_out")
        wiring.connect(m, wiring.flipped(self.i), fin.i)
        wiring.connect(m, fout.o, wiring.flipped(self.o))
        word = fin.o.payload
        for k, port in enumerate(self.ports):
            m.submodules[port.name] = port
            m.d.comb += [port.i.payload.data.eq(word.data),
                         port.i.payload.marker.eq(word.marker),
                         port.i.payload.load.eq(word.load),
                         port.i.payload.last.eq(word.last),
                         port.i.valid.eq(fin.o.valid & (word.engine == k))]
        ready = self.ports[0].i.ready
        for k in range(1, n):
            ready = Mux(word.engine == k, self.ports[k].i.ready, ready)
        m.d.comb += fin.o.ready.eq(ready)
        # Output: a frame at a time from one engine, chosen in a cycle of its own (the lowest
        # engine with a word; registered) and locked until its last word, so an engine's
        # ready depends on no other engine's valid. Multiplexers, not assignments under
        # conditions (Icarus leaves those undriven until inputs change).
        locked = Signal()
        cur = Signal(range(max(n, 2)))
        pick = 0
        for k in reversed(range(n)):
            pick = Mux(self.ports[k].o.valid, k, pick)
        chosen = self.ports[0].o.payload.as_value()
        valid = self.ports[0].o.valid
        for k, port in enumerate(self.ports):
            m.d.comb += port.o.ready.eq(locked & (cur == k) & fout.i.ready)
            if k:
                chosen = Mux(cur == k, port.o.payload.as_value(), chosen)
                valid = Mux(cur == k, port.o.valid, valid)
        m.d.comb += [fout.i.payload.eq(chosen), fout.i.valid.eq(locked & valid)]
        any_valid = 0
        for port in self.ports:
            any_valid = any_valid | port.o.valid
        with m.If(~locked):
            with m.If(any_valid):
                m.d.sync += [locked.eq(1), cur.eq(pick)]
        with m.Elif(fout.i.valid & fout.i.ready & fout.i.payload.last):
            m.d.sync += locked.eq(0)
        busy = searching = 0
        for port in self.ports:
            busy, searching = busy | port.busy, searching | port.searching
        m.d.comb += [self.busy.eq(busy), self.searching.eq(searching)]
        return m
