"""AXI4-Stream top level around a chain of stream blocks."""

from amaranth import C, Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from .block import StreamBlock
from .params import check_positive_int, construction

__all__ = ["AxisTop", "byte_align"]


def byte_align(width):
    """``width`` rounded up to whole bytes (AXI4-Stream ``tdata`` is a multiple of 8)."""
    return max(8, -(-width // 8) * 8)


def _width(port):
    """Bits of a stream port's payload (a plain value or a layout's view)."""
    return len(Value.cast(port.payload))


class AxisTop(wiring.Component):
    """AXI4-Stream ports around ``blocks``, connected in order (``o`` of one to ``i`` of the
    next).

    One transfer carries one whole vector (or one pixel of a feature map). ``m_axis_tlast``
    marks the last output transfer of a frame of ``frame_outputs`` transfers (every transfer
    when ``frame_outputs`` is 1); the input ``tlast`` is accepted and ignored (frames are
    counted). The input vector sits in the low bits of ``s_axis_tdata``. The output is
    ``lanes`` elements of ``element_width`` bits; an element wider than one bit is placed in
    its own byte-aligned lane of ``m_axis_tdata`` (element ``r`` at bit
    ``r * byte_align(element_width)``), bits are packed (element ``r`` at bit ``r``).

    Members
    -------
    s_axis_tdata, s_axis_tvalid, s_axis_tready, s_axis_tlast
        AXI4-Stream slave (input).
    m_axis_tdata, m_axis_tvalid, m_axis_tready, m_axis_tlast
        AXI4-Stream master (output).
    layer_fire : Out(len(blocks))
        Bit ``k`` is high in each cycle in which block ``k`` hands a vector on: an observation
        port for measuring each block's throughput; leave it unconnected in a product.
    layer_busy : Out(len(blocks))
        Bit ``k`` is block ``k``'s ``busy``: the cycles in which it does work.

    With ``beat_width`` (a multiple of 8; dense vectors only) the ports are that narrow: an
    input vector arrives as ``beats_in`` beats, lowest bits first (beat ``b`` holds bits
    ``[b * beat_width, (b + 1) * beat_width)``, the last beat padded with zeros), and an output
    vector leaves as ``beats_out`` beats the same way, ``m_axis_tlast`` on its last beat. Input
    ``tlast`` is ignored (beats are counted).
    """

    def __init__(self, blocks, element_width=1, frame_outputs=1, sparse=False, beat_width=None):
        with construction(self, *[b for b in blocks if isinstance(b, StreamBlock)]):
            if not blocks:
                raise BnnforgeError("an AXI4-Stream top needs at least one block")
            for k, block in enumerate(blocks):
                if not isinstance(block, StreamBlock):
                    raise BnnforgeError(f"block {k} is a {type(block).__name__}, not a "
                                        f"StreamBlock (i, o, busy, name, latency, cycle model)")
            for a, b in zip(blocks[:-1], blocks[1:]):
                if a.o.payload.shape() != b.i.payload.shape():
                    raise BnnforgeError(f"cannot chain a block of output {a.o.payload.shape()} "
                                        f"into a block of input {b.i.payload.shape()}")
            check_positive_int("frame_outputs", frame_outputs)
            if beat_width is not None:
                check_positive_int("beat width", beat_width)
                if beat_width % 8:
                    raise BnnforgeError(f"the beat width must be a multiple of 8 bits (AXI4-"
                                        f"Stream tdata is whole bytes), not {beat_width}")
                if sparse or frame_outputs != 1:
                    raise BnnforgeError("a narrow stream (beat width) is for dense networks: "
                                        "one vector in, one vector out")
            if _width(blocks[-1].o) % element_width:
                raise BnnforgeError(f"output of {_width(blocks[-1].o)} bits is not a "
                                    f"whole number of {element_width}-bit elements")
        self.blocks = list(blocks)
        self.element_width = element_width
        self.frame_outputs = frame_outputs
        self.sparse = sparse
        # A sparse (voxel) stream's payload ends in its framing bits: the input's in
        # (marker, last) or (marker, load, last) for weights loaded at run time, the output's
        # in (marker, error, last); they travel as tuser/tlast.
        self.user_in = getattr(blocks[0], "user_in_bits", 1)
        self.in_width = _width(blocks[0].i) - (self.user_in + 1 if sparse else 0)
        self.out_width = _width(blocks[-1].o) - (3 if sparse else 0)
        self.lanes = self.out_width // element_width
        self.lane_width = 1 if element_width == 1 else byte_align(element_width)
        self.beat_width = beat_width
        self.vector_out_width = byte_align(self.lanes * self.lane_width)
        bw = beat_width
        self.beats_in = 1 if bw is None else -(-self.in_width // bw)
        self.beats_out = 1 if bw is None else -(-self.vector_out_width // bw)
        super().__init__({
            "s_axis_tdata": In(bw or byte_align(self.in_width)), "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1), "s_axis_tlast": In(1),
            "m_axis_tdata": Out(bw or self.vector_out_width),
            "m_axis_tvalid": Out(1), "m_axis_tready": In(1), "m_axis_tlast": Out(1),
            "layer_fire": Out(len(blocks)), "layer_busy": Out(len(blocks)),
            **({"s_axis_tuser": In(self.user_in), "m_axis_tuser": Out(2),
                "search_busy": Out(1)}
               if sparse else {}),
        })

    @property
    def cycles_per_vector(self):
        """Initiation interval of the chain: that of its slowest block (or, with narrow
        ports, of the width converters: ``beats + 1`` cycles a vector each way)."""
        chain = max(b.cycles_per_vector for b in self.blocks)
        if self.beat_width is None:
            return chain
        return max(chain, self.beats_in + 1, self.beats_out + 1)

    @property
    def latency(self):
        """Cycles from an input transfer into the idle chain to its output being valid: the
        sum of the blocks' latencies (every block is ready when idle); with narrow ports, from
        the first input beat to the first output beat (``beats_in`` cycles to collect the
        vector, one to hand the result to the output converter). None when a block does not
        model its latency."""
        if any(b.latency is None for b in self.blocks):
            return None
        chain = sum(b.latency for b in self.blocks)
        return chain if self.beat_width is None else chain + self.beats_in + 1

    def elaborate(self, platform):
        m = Module()
        for k, block in enumerate(self.blocks):
            m.submodules[block.name or f"block{k}"] = block
        for a, b in zip(self.blocks[:-1], self.blocks[1:]):
            wiring.connect(m, a.o, b.i)
        first, last = self.blocks[0], self.blocks[-1]
        ew = self.element_width
        out_payload = Value.cast(last.o.payload)[:self.out_width]
        lanes = [out_payload[r * ew:(r + 1) * ew] for r in range(self.lanes)]
        pad = self.lane_width - ew
        if ew > 1 and pad:
            data = Cat(*[Cat(lane, C(0, pad)) for lane in lanes])
        else:
            data = out_payload
        count = Signal(range(self.frame_outputs))
        if self.frame_outputs > 1:
            with m.If(self.m_axis_tvalid & self.m_axis_tready):
                m.d.sync += count.eq(Mux(count == self.frame_outputs - 1, 0, count + 1))
        if self.sparse:
            m.d.comb += [
                first.i.payload.eq(Cat(self.s_axis_tdata[:self.in_width], self.s_axis_tuser,
                                       self.s_axis_tlast)),
                self.m_axis_tuser.eq(Cat(last.o.payload.marker, last.o.payload.error)),
                self.m_axis_tlast.eq(last.o.payload.last),
                self.search_busy.eq(first.searching if hasattr(first, "searching") else 0),
            ]
        elif self.beat_width is not None:
            self._converters(m, first, last, data)
        else:
            m.d.comb += [first.i.payload.eq(self.s_axis_tdata[:self.in_width]),
                         self.m_axis_tlast.eq(count == self.frame_outputs - 1)]
        if self.beat_width is None:
            m.d.comb += [
                first.i.valid.eq(self.s_axis_tvalid),
                self.s_axis_tready.eq(first.i.ready),
                self.m_axis_tdata.eq(data),
                self.m_axis_tvalid.eq(last.o.valid),
                last.o.ready.eq(self.m_axis_tready),
            ]
        m.d.comb += [
            self.layer_fire.eq(Cat(*[b.o.valid & b.o.ready for b in self.blocks])),
            self.layer_busy.eq(Cat(*[b.busy for b in self.blocks])),
        ]
        return m

    def _converters(self, m, first, last, data):
        """Narrow ports: beats shifted into a vector register at its top end, and a result
        register shifted out at its bottom end. Each side takes a vector, or gives one, in
        the cycle after its last beat (its ``ready``/``valid`` is a register's flag)."""
        bw = self.beat_width
        sreg, full = Signal(self.beats_in * bw), Signal()
        beat = Signal(range(self.beats_in))
        m.d.comb += [self.s_axis_tready.eq(~full), first.i.valid.eq(full),
                     first.i.payload.eq(sreg[:self.in_width])]
        with m.If(self.s_axis_tvalid & ~full):
            m.d.sync += sreg.eq(Cat(sreg[bw:], self.s_axis_tdata) if self.beats_in > 1
                                else self.s_axis_tdata)
            with m.If(beat == self.beats_in - 1):
                m.d.sync += [beat.eq(0), full.eq(1)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        with m.If(full & first.i.ready):
            m.d.sync += full.eq(0)

        oreg, ofull = Signal(self.beats_out * bw), Signal()
        obeat = Signal(range(self.beats_out))
        m.d.comb += [last.o.ready.eq(~ofull), self.m_axis_tvalid.eq(ofull),
                     self.m_axis_tdata.eq(oreg[:bw]),
                     self.m_axis_tlast.eq(obeat == self.beats_out - 1)]
        with m.If(last.o.valid & ~ofull):
            m.d.sync += [oreg.eq(data), ofull.eq(1), obeat.eq(0)]
        with m.If(ofull & self.m_axis_tready):
            m.d.sync += oreg.eq(oreg[bw:])
            with m.If(obeat == self.beats_out - 1):
                m.d.sync += ofull.eq(0)
            with m.Else():
                m.d.sync += obeat.eq(obeat + 1)
