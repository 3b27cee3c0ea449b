"""The BSC-Net engines in one design: one framed stream in and one out, the engine chosen by
each input beat's ``engine`` field (in ``tuser``), so one placed design runs every op of a
program that a sequencer (the host, today) feeds op after op."""

from amaranth import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from ..block import StreamBlock
from ..fifo import StreamFifo
from ..params import construction

__all__ = ["SparseCore", "core_in_layout", "core_out_layout"]

FRAMING_IN = ("marker", "load", "last")


def core_in_layout(width, engines):
    """An input beat: ``data`` (the engine's payload bits), ``marker``, ``load``, ``engine``
    (which engine takes it), ``last``; on the AXI4-Stream top ``tuser = Cat(marker, load,
    engine)``."""
    return data.StructLayout({"data": width, "marker": 1, "load": 1,
                              "engine": Shape.cast(range(max(engines, 2))).width, "last": 1})


def core_out_layout(width):
    """An output beat: ``data``, ``marker``, ``error``, ``last`` (as a sparse layer's)."""
    return data.StructLayout({"data": width, "marker": 1, "error": 1, "last": 1})


def _fields(layout):
    return {name for name, _ in layout}


class SparseCore(StreamBlock):
    """``engines``: StreamBlocks with framed streams (a sparse layer, a mean layer, the linear
    engine: ``marker``/``last`` and maybe ``load`` in, ``marker``/``error``/``last`` out) or
    plain ones (``SiteAffine``: one output a beat, in order; the core carries each beat's
    ``last`` beside it in a FIFO). An input beat goes to the engine its ``engine`` field names
    (its payload the low bits of ``data``); outputs leave a frame at a time, the lowest engine
    with a beat first (a sequencer runs one op at a time, so one engine sends at once).

    Members
    -------
    i : In(stream.Signature(core_in_layout(...)))
    o : Out(stream.Signature(core_out_layout(...)))
    busy, searching : Out(1)
    """

    def __init__(self, engines, name="core"):
        with construction(self, *engines):
            if not engines:
                raise BnnforgeError("a core needs at least one engine")
            names = [e.name for e in engines]
            if len(set(names)) != len(names) or None in names:
                raise BnnforgeError(f"a core's engines need distinct names, not {names}")
        self.engines, self.name = list(engines), name
        self.in_widths = [self._payload_width(e.i, framed_in=True) for e in engines]
        self.out_widths = [self._payload_width(e.o, framed_in=False) for e in engines]
        n = len(engines)
        super().__init__({
            "i": In(stream.Signature(core_in_layout(max(self.in_widths), n))),
            "o": Out(stream.Signature(core_out_layout(max(self.out_widths)))),
            "busy": Out(1), "searching": Out(1)})

    @property
    def user_in_bits(self):
        """Bits of the input ``tuser``: marker, load and the engine."""
        return 2 + self.i.payload.shape()["engine"].width

    @staticmethod
    def _payload_width(port, framed_in):
        shape = port.payload.shape()
        if not isinstance(shape, data.StructLayout):
            return Shape.cast(shape).width
        skip = set(FRAMING_IN) if framed_in else {"marker", "error", "last"}
        return sum(Shape.cast(f.shape).width for name, f in shape if name not in skip)

    def elaborate(self, platform):
        m = Module()
        beat = self.i.payload
        readies, outs = [], []
        for k, eng in enumerate(self.engines):
            m.submodules[eng.name] = eng
            here = beat.engine == k
            shape = eng.i.payload.shape()
            framed = isinstance(shape, data.StructLayout) and "last" in _fields(shape)
            lasts = None
            if framed:
                names = [n for n, _ in shape if n not in FRAMING_IN]
                width = self.in_widths[k]
                m.d.comb += Cat(*(getattr(eng.i.payload, n) for n in names)).eq(
                    beat.data[:width])
                for f in FRAMING_IN:
                    if f in _fields(shape):
                        m.d.comb += getattr(eng.i.payload, f).eq(getattr(beat, f))
                m.d.comb += eng.i.valid.eq(self.i.valid & here)
                readies.append(eng.i.ready)
            else:
                # A plain engine: its beats' last flags wait in a FIFO beside it.
                lasts = StreamFifo(1, 8, name=f"{eng.name}_lasts")
                m.submodules[f"{eng.name}_lasts"] = lasts
                m.d.comb += [eng.i.payload.eq(beat.data[:self.in_widths[k]]),
                             eng.i.valid.eq(self.i.valid & here & lasts.i.ready),
                             lasts.i.payload.eq(beat.last),
                             lasts.i.valid.eq(self.i.valid & here & eng.i.ready)]
                readies.append(eng.i.ready & lasts.i.ready)
            outs.append((eng, lasts))
        sel = beat.engine
        ready = readies[0]
        for k in range(1, len(readies)):
            ready = Mux(sel == k, readies[k], ready)
        m.d.comb += self.i.ready.eq(ready)
        # Output: a frame at a time from one engine (locked until its last beat). Multiplexers,
        # not assignments under conditions (Icarus leaves those undriven until inputs change).
        locked = Signal()
        cur = Signal(range(max(len(outs), 2)))
        pick = 0
        for k in reversed(range(len(outs))):
            pick = Mux(outs[k][0].o.valid, k, pick)
        src = Signal(range(max(len(outs), 2)))
        m.d.comb += src.eq(Mux(locked, cur, pick))
        o = self.o
        fields = []
        for k, (eng, lasts) in enumerate(outs):
            go = src == k
            p = eng.o.payload
            if lasts is None:
                names = [n for n, _ in p.shape() if n not in ("marker", "error", "last")]
                fields.append((Cat(*(getattr(p, n) for n in names)), p.marker, p.error,
                               p.last, eng.o.valid))
                m.d.comb += eng.o.ready.eq(go & o.ready)
            else:
                fields.append((p, 0, 0, lasts.o.payload, eng.o.valid & lasts.o.valid))
                m.d.comb += [eng.o.ready.eq(go & o.ready & lasts.o.valid),
                             lasts.o.ready.eq(go & o.ready & eng.o.valid)]
        chosen = fields[0]
        for k in range(1, len(fields)):
            chosen = tuple(Mux(src == k, a, b) for a, b in zip(fields[k], chosen))
        m.d.comb += [o.payload.data.eq(chosen[0]), o.payload.marker.eq(chosen[1]),
                     o.payload.error.eq(chosen[2]), o.payload.last.eq(chosen[3]),
                     o.valid.eq(chosen[4])]
        with m.If(o.valid & o.ready):
            m.d.sync += [locked.eq(~o.payload.last), cur.eq(src)]
        busy = 0
        searching = 0
        for eng, _ in outs:
            busy = busy | eng.busy
            if hasattr(eng, "searching"):
                searching = searching | eng.searching
        m.d.comb += [self.busy.eq(busy), self.searching.eq(searching)]
        return m
