"""An engine behind a narrow port: its wide beats in and out as words of ``word_bits`` (the
external memory's word), so that one core of many engines shares a word-wide stream instead of
one as wide as its widest engine's beat.

A wide input beat arrives as ``words_in`` words, lowest bits first (word ``k`` holds bits
``[k * word_bits, (k + 1) * word_bits)``, the last one padded with zeros); the beat's ``marker``
and ``load`` are the last word's, its ``last`` the last word's ``last`` (a sender sets ``tlast``
on the last word of a frame's last beat only). A wide output beat leaves as ``words_out``
words the same way: each word carries the beat's ``marker`` and ``error``, and ``last`` is set
on the last word of a beat that ends a frame.

The words of the next beat are taken while the engine holds a beat (in the cycle it takes it,
too): ``words_in`` cycles a beat in and ``words_out`` a beat out at full rate.
"""

from amaranth import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from ..block import StreamBlock
from ..fifo import StreamFifo
from ..params import check_positive_int, construction

__all__ = ["WordPort", "word_port", "word_in_layout", "word_out_layout", "split_beat",
           "join_words", "FRAMING_IN", "FRAMING_OUT", "payload_width"]

FRAMING_IN = ("marker", "load", "last")
FRAMING_OUT = ("marker", "error", "last")


def word_in_layout(word_bits):
    """An input word: ``data``, ``marker``, ``load``, ``last`` (tuser = marker | load << 1)."""
    return data.StructLayout({"data": word_bits, "marker": 1, "load": 1, "last": 1})


def word_out_layout(word_bits):
    """An output word: ``data``, ``marker``, ``error``, ``last``."""
    return data.StructLayout({"data": word_bits, "marker": 1, "error": 1, "last": 1})


def _framed(shape):
    return isinstance(shape, data.StructLayout) and "last" in {n for n, _ in shape}


def payload_width(port, framing):
    """Bits of a stream's payload without its framing fields (a plain stream's whole width)."""
    shape = port.payload.shape()
    if not isinstance(shape, data.StructLayout):
        return Shape.cast(shape).width
    return sum(Shape.cast(f.shape).width for name, f in shape if name not in framing)


def split_beat(value, words, word_bits):
    """A wide beat's words, lowest bits first."""
    mask = (1 << word_bits) - 1
    return [(int(value) >> (k * word_bits)) & mask for k in range(words)]


def join_words(values, word_bits):
    """The inverse of :func:`split_beat`."""
    return sum(int(v) << (k * word_bits) for k, v in enumerate(values))


def word_port(engine, word_bits=64):
    """``engine`` behind words of ``word_bits``: its own word engine where it has one (the
    loadable linear engine, :meth:`hw.sparse.site.SiteLinear.word_engine`, which keeps its
    wide beats in memories instead of registers), else a :class:`WordPort`. Either speaks
    the same words."""
    own = getattr(engine, "word_engine", None)
    native = own(word_bits) if own is not None else None
    return native if native is not None else WordPort(engine, word_bits)


class WordPort(StreamBlock):
    """``engine`` (a framed sparse engine, or a plain one such as ``SiteAffine`` whose beats'
    ``last`` flags this port keeps in a FIFO beside it) behind words of ``word_bits``.

    Members
    -------
    i : In(stream.Signature(word_in_layout(word_bits)))
    o : Out(stream.Signature(word_out_layout(word_bits)))
    busy, searching : Out(1)
        The engine's (``searching`` 0 for an engine without a search).
    """

    def __init__(self, engine, word_bits=64):
        with construction(self, engine):
            check_positive_int("word bits", word_bits)
            if word_bits % 8:
                raise BnnforgeError(f"the word must be whole bytes (an AXI4 data bus), not "
                                    f"{word_bits} bits")
        self.engine, self.word_bits, self.name = engine, word_bits, engine.name
        self.framed = _framed(engine.i.payload.shape())
        self.beat_in = payload_width(engine.i, FRAMING_IN)
        self.beat_out = payload_width(engine.o, FRAMING_OUT)
        self.words_in = -(-self.beat_in // word_bits)
        self.words_out = -(-self.beat_out // word_bits)
        self.latency = None
        self.cycles_per_vector = max(engine.cycles_per_vector, self.words_in, self.words_out)
        super().__init__({"i": In(stream.Signature(word_in_layout(word_bits))),
                          "o": Out(stream.Signature(word_out_layout(word_bits))),
                          "busy": Out(1), "searching": Out(1)})

    user_in_bits = 2
    """Bits of the input ``tuser`` on an AXI4-Stream top: marker and load."""

    def block_ram_memories(self):
        return self.engine.block_ram_memories()

    def words_info(self):
        """``design.json``'s ``words``: the word and the words a beat each way."""
        return {"bits": self.word_bits, "in": self.words_in, "out": self.words_out}

    def elaborate(self, platform):
        m = Module()
        eng, wb = self.engine, self.word_bits
        m.submodules.engine = eng
        n, k_out = self.words_in, self.words_out
        lasts = None
        if not self.framed:
            m.submodules.lasts = lasts = StreamFifo(1, 8, name=f"{self.name}_lasts")

        # In: words shifted into the top of a beat register; the beat is the engine's when
        # full, and the next beat's words enter while (or as) the engine takes it.
        sreg = Signal(n * wb)
        full = Signal()
        count = Signal(range(max(n, 2)))
        f_marker, f_load, f_last = Signal(), Signal(), Signal()
        take = Signal()
        beat = sreg[:self.beat_in]
        if self.framed:
            shape = eng.i.payload.shape()
            names = [x for x, _ in shape if x not in FRAMING_IN]
            m.d.comb += Cat(*(getattr(eng.i.payload, x) for x in names)).eq(beat)
            fields = {x for x, _ in shape}
            for x, reg in (("marker", f_marker), ("load", f_load), ("last", f_last)):
                if x in fields:
                    m.d.comb += getattr(eng.i.payload, x).eq(reg)
            m.d.comb += [eng.i.valid.eq(full), take.eq(full & eng.i.ready)]
        else:
            m.d.comb += [eng.i.payload.eq(beat), lasts.i.payload.eq(f_last),
                         eng.i.valid.eq(full & lasts.i.ready),
                         lasts.i.valid.eq(full & eng.i.ready),
                         take.eq(full & eng.i.ready & lasts.i.ready)]
        accept = Signal()
        done = Signal()
        m.d.comb += [self.i.ready.eq(~full | take), accept.eq(self.i.valid & self.i.ready),
                     done.eq(accept & (count == n - 1))]
        with m.If(accept):
            m.d.sync += sreg.eq(Cat(sreg[wb:], self.i.payload.data) if n > 1
                                else self.i.payload.data)
            m.d.sync += count.eq(Mux(count == n - 1, 0, count + 1))
        with m.If(done):
            m.d.sync += [f_marker.eq(self.i.payload.marker), f_load.eq(self.i.payload.load),
                         f_last.eq(self.i.payload.last)]
        m.d.sync += full.eq(done | (full & ~take))

        # Out: a beat loaded into a register shifted out a word a cycle; the next beat loads
        # as its last word leaves.
        oreg = Signal(k_out * wb)
        ofull = Signal()
        obeat = Signal(range(max(k_out, 2)))
        o_marker, o_error, o_last = Signal(), Signal(), Signal()
        room = Signal()
        load = Signal()
        final = Signal()
        m.d.comb += [final.eq(obeat == k_out - 1),
                     room.eq(~ofull | (self.o.ready & final))]
        p = eng.o.payload
        if self.framed:
            names = [x for x, _ in p.shape() if x not in FRAMING_OUT]
            wide = Cat(*(getattr(p, x) for x in names))
            marker, error, last = p.marker, p.error, p.last
            m.d.comb += [eng.o.ready.eq(room), load.eq(room & eng.o.valid)]
        else:
            wide, marker, error, last = p, 0, 0, lasts.o.payload
            m.d.comb += [eng.o.ready.eq(room & lasts.o.valid),
                         lasts.o.ready.eq(room & eng.o.valid),
                         load.eq(room & eng.o.valid & lasts.o.valid)]
        with m.If(load):
            m.d.sync += [oreg.eq(wide), ofull.eq(1), obeat.eq(0), o_marker.eq(marker),
                         o_error.eq(error), o_last.eq(last)]
        with m.Elif(ofull & self.o.ready):
            m.d.sync += [oreg.eq(oreg[wb:]), obeat.eq(obeat + 1)]
            with m.If(final):
                m.d.sync += ofull.eq(0)
        m.d.comb += [self.o.valid.eq(ofull), self.o.payload.data.eq(oreg[:wb]),
                     self.o.payload.marker.eq(o_marker), self.o.payload.error.eq(o_error),
                     self.o.payload.last.eq(o_last & final),
                     self.busy.eq(eng.busy),
                     self.searching.eq(eng.searching if hasattr(eng, "searching") else 0)]
        return m
