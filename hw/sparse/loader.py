"""Weights loaded at run time: a sparse layer's load frame, parsed and written into the
compute's weight memories, with the fold counts and window shift it sets."""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import ERROR_LOAD, load_header_layout, voxel_in_layout
from .store import end_layout

__all__ = ["WeightLoader", "weight_address", "weight_depth"]


def weight_address(slot, nf, sf):
    """Word of slot ``slot``'s SIMD weights of output fold ``nf`` at input fold ``sf`` in a PE
    row's memory of a layer whose weights load at run time: ``Cat(sf, nf, slot)``, each field
    as wide as the design's largest layer needs (no multiplier in the address path; a
    smaller layer leaves gaps)."""
    return Cat(sf, nf, slot)


def weight_depth(slots, nf_max, sf_max):
    """Words of a PE row's memory addressed by :func:`weight_address`."""
    bits = lambda n: (max(n, 2) - 1).bit_length()
    return slots << (bits(nf_max) + bits(sf_max))


class WeightLoader(wiring.Component):
    """Takes a load frame (beats with ``load`` set, the last with ``last``): a header beat
    (:func:`hw.sparse.layouts.load_header_layout` in ``Cat(features, x, y, z)``), then
    ``slots x (nf_last + 1) x (sf_last + 1) x PE`` weight beats, slot by slot, output fold by
    output fold, input fold by input fold, PE row by PE row, each with the SIMD weights in the
    low feature bits. The header is taken only while the layer is ``idle`` (no frame in
    flight), so no weight changes under a frame being computed. The frame's one output beat
    (``end``) is a marker beat, with error code :data:`ERROR_LOAD` when the frame had too
    few or too many words or a header out of range (the weights are then not valid).

    Members
    -------
    i : In(stream.Signature(voxel_in_layout(cin, coord_bits, load=True)))
    idle : In(1)
    busy : Out(1)
        A load frame is in progress (voxel beats wait).
    w_addr, w_data, w_en : Out(...), Out(simd), Out(pe)
        The weight memories' write port (one enable a PE row).
    nf_last, sf_last : Out(...)
    shift : Out(signed(2)).array(3)
    end : Out(stream.Signature(end_layout(coord_bits)))
    """

    def __init__(self, kind, slots, cin, coord_bits, pe, simd, nf_max, sf_max, depth):
        self.kind, self.slots, self.pe, self.simd = kind, slots, pe, simd
        self.nf_max, self.sf_max, self.coord_bits = nf_max, sf_max, coord_bits
        self.header = load_header_layout(nf_max, sf_max)
        super().__init__({
            "i": In(stream.Signature(voxel_in_layout(cin, coord_bits, load=True))),
            "idle": In(1), "busy": Out(1),
            "w_addr": Out(range(depth)), "w_data": Out(simd), "w_en": Out(pe),
            "nf_last": Out(self.header["nf_last"].shape),
            "sf_last": Out(self.header["sf_last"].shape),
            "shift": Out(signed(2)).array(3),
            "end": Out(stream.Signature(end_layout(coord_bits)))})

    def elaborate(self, platform):
        m = Module()
        PE, S = self.pe, self.slots
        beat = self.i.payload
        word = Cat(beat.features, beat.x, beat.y, beat.z)
        head = self.header(word[:self.header.size])
        HEADER, WORDS, END = range(3)
        state = Signal(2)
        bad = Signal()
        slot = Signal(range(max(S, 2)))
        nf = Signal(len(self.nf_last))
        sf = Signal(len(self.sf_last))
        p = Signal(range(max(PE, 2)))
        full = Signal()                 # every word has been written
        m.d.comb += [self.busy.eq(state != HEADER),
                     self.i.ready.eq(((state == HEADER) & self.idle) | (state == WORDS)),
                     self.end.valid.eq(state == END),
                     self.end.payload.code.eq(Mux(bad, ERROR_LOAD, 0)),
                     self.end.payload.error.eq(bad)]
        fire = self.i.valid & self.i.ready
        shift_ok = 1
        for v in head.shift:
            shift_ok = shift_ok & (v != -2)
        if self.kind != "ssc":
            shift_ok = Cat(*head.shift).as_unsigned() == 0
        head_ok = (head.nf_last < self.nf_max) & (head.sf_last < self.sf_max) & shift_ok
        # Word counters: p fastest, then sf, nf, slot (the order of the frame's words).
        last_p = p == PE - 1
        last_sf = sf == self.sf_last
        last_nf = nf == self.nf_last
        last_slot = slot == S - 1
        write = Signal()
        m.d.comb += [write.eq(fire & (state == WORDS) & ~full),
                     self.w_addr.eq(weight_address(slot, nf, sf)),
                     self.w_data.eq(beat.features[:self.simd]),
                     self.w_en.eq(Mux(write, 1 << p, 0))]
        with m.If(write):
            m.d.sync += p.eq(Mux(last_p, 0, p + 1))
            with m.If(last_p):
                m.d.sync += sf.eq(Mux(last_sf, 0, sf + 1))
                with m.If(last_sf):
                    m.d.sync += nf.eq(Mux(last_nf, 0, nf + 1))
                    with m.If(last_nf):
                        m.d.sync += slot.eq(Mux(last_slot, 0, slot + 1))
                        with m.If(last_slot):
                            m.d.sync += full.eq(1)
        with m.Switch(state):
            with m.Case(HEADER):
                with m.If(fire):
                    m.d.sync += [self.nf_last.eq(head.nf_last), self.sf_last.eq(head.sf_last),
                                 bad.eq(~head_ok), full.eq(~head_ok),
                                 slot.eq(0), nf.eq(0), sf.eq(0), p.eq(0),
                                 state.eq(Mux(beat.last, END, WORDS))]
                    m.d.sync += [s.eq(Mux(head_ok, h, 0))
                                 for s, h in zip(self.shift, head.shift)]
                    with m.If(beat.last):
                        m.d.sync += bad.eq(1)          # a header without words
            with m.Case(WORDS):
                with m.If(fire & beat.last):
                    # The last word must be the frame's last beat: fewer or more is an error.
                    at_last = last_p & last_sf & last_nf & last_slot
                    m.d.sync += [state.eq(END), bad.eq(bad | full | ~at_last)]
            with m.Case(END):
                with m.If(self.end.ready):
                    m.d.sync += state.eq(HEADER)
        return m
