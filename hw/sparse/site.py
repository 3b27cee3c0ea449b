"""The real-valued, per-site arithmetic of BSC-Net in fixed point (:mod:`golden.bscnet_fixed`):
batch-norm with its residual or projection add, and the real 1x1 convolution.

:class:`SiteAffine` (the ``bn_add`` op)
    A stream of beats, each ``lanes`` channels of one site: sums ``S`` (``sum_width``-bit
    two's complement), the second operand (the residual codes ``R``, or a projection's sums
    ``S2``), and the channels' parameters (mantissas ``m``, biases ``b`` and the layer's
    exponent ``e``; ``m2``, ``b2``, ``e2`` for a projection). Out: ``sat(rs(m S, e - frac) + b
    + R)`` or ``sat(rs(m S, e - frac) + b + rs(m2 S2, e2 - frac) + b2)``, ``lanes`` codes. The
    parameters travel with the data, so one design serves every layer of a width (a layer
    sequencer reads them from a parameter memory as it reads the sums). One beat a cycle;
    ``lanes`` (projection: ``2 lanes``) multipliers; three register stages (products, shifts,
    saturated sums); exponents in ``[0, max_exp]``.
:class:`SiteLinear` (the ``linear`` op)
    One beat a site: its ``Cin`` codes in, its ``Cout`` codes out,
    ``sat(rs(M z, e) + b)``; ``M`` (``Cout x Cin`` mantissas) and ``b`` are the layer's
    constants (a ROM of ``(Cout / PE)(Cin / SIMD)`` words of ``PE x SIMD`` mantissas), and
    ``PE x SIMD`` multiply-accumulates a cycle: ``(Cout / PE)(Cin / SIMD)`` cycles a site. The
    next site's codes are taken while one is computed.
"""

import math
from types import SimpleNamespace

import numpy as np
from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from quant.errors import BnnforgeError
from quant.fixed import saturate, signed_range
from ..block import StreamBlock
from ..memory_budget import DISTRIBUTED
from ..params import check_positive_int, construction, unused

__all__ = ["SiteAffine", "SiteLinear", "affine_layout", "pack_fields", "pack_codes",
           "unpack_codes", "EXP_BITS", "linear_in_layout", "linear_out_layout",
           "linear_header_layout", "linear_load_words"]

EXP_BITS = 6
"""Bits of an exponent field (``e`` in ``[0, 63]``)."""

SLOT_BANK = 7
"""Output slots (groups of PE codes) of the linear engine served by one registered copy of the
finished group's results: in the BSC-Net core, results fanned out to all 28 slots were the
largest block of router2's congestion (docs/sparse.md)."""


def affine_layout(lanes, sum_width, fmt, projection=False, sum_width2=None):
    """The input beat of :class:`SiteAffine`."""
    w, mw = fmt.width, fmt.mant_width
    fields = {"s": data.ArrayLayout(signed(sum_width), lanes),
              "m": data.ArrayLayout(signed(mw), lanes),
              "b": data.ArrayLayout(signed(w), lanes),
              "e": unsigned(EXP_BITS)}
    if projection:
        fields.update({"s2": data.ArrayLayout(signed(sum_width2), lanes),
                       "m2": data.ArrayLayout(signed(mw), lanes),
                       "b2": data.ArrayLayout(signed(w), lanes),
                       "e2": unsigned(EXP_BITS)})
    else:
        fields["r"] = data.ArrayLayout(signed(w), lanes)
    return data.StructLayout(fields)


def pack_fields(layout, values):
    """One integer of a struct layout's bits from ``{field: int or sequence of ints}`` (an
    array field's element ``k`` at its ``k``-th slot, two's complement)."""
    word = 0
    for name, field in layout:
        v = values[name]
        shape = field.shape
        if isinstance(shape, data.ArrayLayout):
            ew = shape.elem_shape.width
            for k, x in enumerate(v):
                word |= (int(x) & ((1 << ew) - 1)) << (field.offset + k * ew)
        else:
            word |= (int(v) & ((1 << shape.width) - 1)) << field.offset
    return word


def pack_codes(codes, width):
    """A row of signed codes as one integer, code ``k`` at bit ``k * width``."""
    word = 0
    for k, x in enumerate(codes):
        word |= (int(x) & ((1 << width) - 1)) << (k * width)
    return word


def unpack_codes(word, count, width):
    """The inverse of :func:`pack_codes`."""
    out = []
    for k in range(count):
        x = (int(word) >> (k * width)) & ((1 << width) - 1)
        out.append(x - (1 << width) if x >> (width - 1) else x)
    return out


def _scaled(m, prod, e, fmt, width, name):
    """``rs(prod, e - frac)`` for a run-time exponent ``e`` in ``[0, max_exp]`` (a left shift
    below ``frac``): shifters of ``max_exp - frac`` and ``frac`` places."""
    frac = fmt.frac
    top = max(fmt.max_exp - frac, 0)
    right = Signal(range(top + 1), name=f"{name}_right")
    left = Signal(range(frac + 1), name=f"{name}_left")
    m.d.comb += [right.eq(Mux(e > frac, e - frac, 0)), left.eq(Mux(e < frac, frac - e, 0))]
    half = Signal(unsigned(top + 1), name=f"{name}_half")
    m.d.comb += half.eq((Const(1, unsigned(top + 1)) << right) >> 1)
    out = Signal(signed(width), name=name)
    m.d.comb += out.eq(((prod << left) + half) >> right)
    return out


class SiteAffine(StreamBlock):
    """Batch-norm and add, ``lanes`` channels a beat (see :mod:`hw.sparse.site`).

    Parameters
    ----------
    lanes : int
    sum_width : int
        Bits of the sums ``S``.
    fmt : golden.bscnet_fixed.SparseFixedPoint
    projection : bool
        The second operand is a projection's sums (``sum_width2`` bits) with its own
        parameters, not residual codes.

    Members
    -------
    i : In(stream.Signature(affine_layout(...)))
    o : Out(stream.Signature(lanes * fmt.width))
        Channel ``k`` at bit ``k * fmt.width``.
    """

    def __init__(self, lanes, sum_width, fmt, projection=False, sum_width2=None, name="affine",
                 serial=False):
        with construction(self):
            check_positive_int("lanes", lanes)
            check_positive_int("sum width", sum_width)
            if projection:
                check_positive_int("projection sum width", sum_width2)
            if fmt.max_exp >= 1 << EXP_BITS:
                raise BnnforgeError(f"exponents up to {fmt.max_exp} do not fit the "
                                    f"{EXP_BITS}-bit exponent field")
        self.lanes, self.sum_width, self.fmt = lanes, sum_width, fmt
        self.projection, self.sum_width2, self.name = projection, sum_width2, name
        # serial: one lane's datapath (multipliers, exponent shifters, saturation) takes the
        # beat's lanes one a cycle, ``lanes`` cycles a beat: the logic of one lane, for an
        # engine behind a word port whose beat takes more cycles than that to arrive.
        self.serial = serial
        self.cycles_per_vector = lanes if serial else 1
        self.latency = lanes + 3 if serial else 3
        self.layout = affine_layout(lanes, sum_width, fmt, projection, sum_width2)
        super().__init__({"i": In(stream.Signature(self.layout)),
                          "o": Out(stream.Signature(lanes * fmt.width)), "busy": Out(1)})

    def elaborate(self, platform):
        if self.serial:
            return self._serial()
        m = Module()
        fmt, P = self.fmt, self.lanes
        w, frac = fmt.width, fmt.frac
        beat = self.i.payload
        pw = fmt.mant_width + max(self.sum_width, self.sum_width2 or 0)
        acc = pw + frac + 2          # a product shifted left by up to frac bits
        # Three stages that advance together unless the output is blocked: the products,
        # their shifts (with the bias and the residual summed beside them), the sum saturated.
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en),
                     self.busy.eq(self.i.valid & en)]
        v1, v2 = Signal(), Signal()
        prod = [Signal(signed(pw), name=f"prod{k}") for k in range(P)]
        prod2 = [Signal(signed(pw), name=f"prod2_{k}") for k in range(P)]
        add1 = [Signal(signed(w + 2), name=f"add1_{k}") for k in range(P)]
        e1, e21 = Signal(EXP_BITS), Signal(EXP_BITS)
        sh = [Signal(signed(acc), name=f"sh{k}") for k in range(P)]
        sh2 = [Signal(signed(acc), name=f"sh2_{k}") for k in range(P)]
        add2 = [Signal(signed(w + 2), name=f"add2_{k}") for k in range(P)]
        # (combinational parts built outside the enable: a conditional continuous assignment
        # leaves Icarus with undefined values)
        scaled = [_scaled(m, prod[k], e1, fmt, acc, f"s{k}") for k in range(P)]
        scaled2 = ([_scaled(m, prod2[k], e21, fmt, acc, f"s2_{k}") for k in range(P)]
                   if self.projection else [])
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), v2.eq(v1), e1.eq(beat.e)]
            if self.projection:
                m.d.sync += e21.eq(beat.e2)
            for k in range(P):
                m.d.sync += [prod[k].eq(beat.m[k] * beat.s[k]), add2[k].eq(add1[k])]
                if self.projection:
                    m.d.sync += [prod2[k].eq(beat.m2[k] * beat.s2[k]),
                                 add1[k].eq(beat.b[k] + beat.b2[k])]
                else:
                    m.d.sync += add1[k].eq(beat.b[k] + beat.r[k])
                m.d.sync += sh[k].eq(scaled[k])
                if self.projection:
                    m.d.sync += sh2[k].eq(scaled2[k])
        outs = []
        for k in range(P):
            t = Signal(signed(acc + 2), name=f"t{k}")
            m.d.comb += t.eq(sh[k] + add2[k] + (sh2[k] if self.projection else 0))
            o = Signal(signed(w), name=f"o{k}")
            m.d.comb += o.eq(saturate(t, w))
            outs.append(o)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(v2), self.o.payload.eq(Cat(*outs))]
        return m

    def _serial(self):
        """The serial datapath: a beat is taken into a register (the next one as its last
        lane issues), and its lane ``k`` enters the three stages ``k`` cycles later; each
        result is kept in its slot, and the last lane's completes the output word."""
        from .layouts import select

        m = Module()
        fmt, P = self.fmt, self.lanes
        w, frac = fmt.width, fmt.frac
        pw = fmt.mant_width + max(self.sum_width, self.sum_width2 or 0)
        acc = pw + frac + 2
        en = Signal()
        k = Signal(range(max(P, 2)))
        lastk = Signal()
        beat = Signal(self.layout)
        have = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), lastk.eq(k == P - 1),
                     self.i.ready.eq(~have | (en & lastk)), self.busy.eq(have & en)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [beat.eq(self.i.payload), have.eq(1)]
        with m.Elif(en & lastk):
            m.d.sync += have.eq(0)
        with m.If(en & have):
            m.d.sync += k.eq(Mux(lastk, 0, k + 1))

        def lane(field):
            return select([getattr(beat, field)[j] for j in range(P)], k)

        v1, v2, last1, last2 = Signal(), Signal(), Signal(), Signal()
        lane1, lane2 = Signal(range(max(P, 2))), Signal(range(max(P, 2)))
        e1, e21 = Signal(EXP_BITS), Signal(EXP_BITS)
        prod, prod2 = Signal(signed(pw)), Signal(signed(pw))
        add1, add2 = Signal(signed(w + 2)), Signal(signed(w + 2))
        sh, sh2 = Signal(signed(acc)), Signal(signed(acc))
        scaled = _scaled(m, prod, e1, fmt, acc, "s")
        scaled2 = _scaled(m, prod2, e21, fmt, acc, "s2") if self.projection else None
        with m.If(en):
            m.d.sync += [v1.eq(have), lane1.eq(k), last1.eq(lastk), e1.eq(beat.e),
                         prod.eq(lane("m") * lane("s")),
                         v2.eq(v1), lane2.eq(lane1), last2.eq(last1), sh.eq(scaled),
                         add2.eq(add1)]
            if self.projection:
                m.d.sync += [e21.eq(beat.e2), prod2.eq(lane("m2") * lane("s2")),
                             add1.eq(lane("b") + lane("b2")), sh2.eq(scaled2)]
            else:
                m.d.sync += add1.eq(lane("b") + lane("r"))
        t = Signal(signed(acc + 2))
        m.d.comb += t.eq(sh + add2 + (sh2 if self.projection else 0))
        out = Signal(signed(w))
        m.d.comb += out.eq(saturate(t, w))
        slots = [Signal(signed(w), name=f"slot{j}") for j in range(P - 1)]
        with m.If(en & v2):
            for j, slot in enumerate(slots):
                with m.If(lane2 == j):
                    m.d.sync += slot.eq(out)
        with m.If(en):
            m.d.sync += self.o.valid.eq(v2 & last2)
        with m.If(en & v2 & last2):
            m.d.sync += self.o.payload.eq(Cat(*slots, out))
        return m


def linear_in_layout(cin, width):
    """An input beat of a linear engine (weights loaded at run time): a site's ``codes``, or a
    load frame's word; ``marker`` (an empty frame), ``load`` (tuser), ``last`` (tlast)."""
    return data.StructLayout({"codes": cin * width, "marker": 1, "load": 1, "last": 1})


def linear_out_layout(cout, width):
    """An output beat of a linear engine: a site's ``codes``, or the one marker beat of a load
    frame (``error`` set when it was malformed) or of an empty frame; ``last`` (tlast)."""
    return data.StructLayout({"codes": cout * width, "marker": 1, "error": 1, "last": 1})


def linear_header_layout(groups, folds):
    """A linear engine's load header: the last output group ``g_last = Cout/PE - 1``, the
    last input fold ``f_last = Cin/SIMD - 1`` and the exponent ``e``."""
    return data.StructLayout({"g_last": Shape.cast(range(max(groups, 2))).width,
                              "f_last": Shape.cast(range(max(folds, 2))).width,
                              "e": EXP_BITS})


def linear_load_words(weights, bias, exponent, fmt, folding, cin_max, cout_max):
    """The load frame of a linear engine (:meth:`SiteLinear.loadable` of up to ``cin_max`` x
    ``cout_max`` channels) for one layer: the header, the weight words group by group and fold
    by fold, a word of ``PE`` biases a group (the ``codes`` field of each beat)."""
    w = np.asarray(weights, dtype=np.int64)
    cout, cin = w.shape
    P, Q = folding.pe, folding.simd
    header = linear_header_layout(cout_max // P, cin_max // Q)
    words = [header.const({"g_last": cout // P - 1, "f_last": cin // Q - 1,
                           "e": int(exponent)}).as_value().value]
    mw = fmt.mant_width
    for g in range(cout // P):
        for f in range(cin // Q):
            v = 0
            for p in range(P):
                for q in range(Q):
                    v |= (int(w[g * P + p, f * Q + q]) & ((1 << mw) - 1)) << ((p * Q + q) * mw)
            words.append(v)
    b = np.asarray(bias, dtype=np.int64)
    words += [pack_codes(b[g * P:(g + 1) * P], fmt.width) for g in range(cout // P)]
    return words


def _buffers(m, name, count, width, chunk_bits, addr, data, enable):
    """``count`` LUT-RAM memories of ``width`` bits holding two buffers of ``2^chunk_bits``
    words each (the buffer is the address's top bit), written at ``addr`` with ``data`` where
    ``enable(k)``: a word engine's site or output buffers."""
    mems = []
    for k in range(count):
        m.submodules[f"{name}{k}"] = mem = Memory(shape=unsigned(width), depth=2 << chunk_bits,
                                                  init=[], attrs=DISTRIBUTED)
        mems.append(mem)
        wp = mem.write_port()
        m.d.comb += [wp.addr.eq(addr), wp.data.eq(data), wp.en.eq(enable(k))]
    return mems


class SiteLinear(StreamBlock):
    """The real 1x1 convolution of one site (see :mod:`hw.sparse.site`).

    Parameters
    ----------
    weights : array (Cout, Cin) of int, or None
        Mantissas (``fmt.mant_width`` bits). None: loaded at run time (:meth:`loadable`).
    bias : array (Cout,) of int
        Codes.
    exponent : int
        ``e``: the products have ``e + frac`` fractional bits.
    fmt : golden.bscnet_fixed.SparseFixedPoint
    folding : quant.layout.Folding
        PE divides Cout, SIMD divides Cin.
    word_bits : int or None
        A loadable engine's own word port (:meth:`word_engine`): beats in and out as words of
        this many bits (a power of two), sites and results kept in LUT RAM.

    Members
    -------
    i : In(stream.Signature(Cin * fmt.width)), or ``linear_in_layout`` when loadable, or
        ``hw.sparse.words.word_in_layout(word_bits)``
    o : Out(stream.Signature(Cout * fmt.width)), or ``linear_out_layout`` when loadable, or
        ``hw.sparse.words.word_out_layout(word_bits)``
    """

    def __init__(self, weights, bias, exponent, fmt, folding, name="linear", channels=None,
                 word_bits=None):
        with construction(self):
            if weights is None:
                cin, cout = channels
                w = np.zeros((cout, cin), np.int64)
                b = np.zeros(cout, np.int64)
            else:
                w = np.asarray(weights, dtype=np.int64)
                b = np.asarray(bias, dtype=np.int64)
            if w.ndim != 2:
                raise BnnforgeError(f"{name}: weights must be Cout x Cin, not {w.shape}")
            cout, cin = w.shape
            if b.shape != (cout,):
                raise BnnforgeError(f"{name}: {b.size} biases for {cout} output channels")
            lo, hi = signed_range(fmt.mant_width)
            if w.size and (w.min() < lo or w.max() > hi):
                raise BnnforgeError(f"{name}: weights outside {fmt.mant_width}-bit mantissas")
            lo, hi = signed_range(fmt.width)
            if b.size and (b.min() < lo or b.max() > hi):
                raise BnnforgeError(f"{name}: biases outside {fmt.width}-bit codes")
            if cout % folding.pe:
                raise BnnforgeError(f"{name}: PE={folding.pe} does not divide the {cout} "
                                    f"output channels")
            if cin % folding.simd:
                raise BnnforgeError(f"{name}: SIMD={folding.simd} does not divide the {cin} "
                                    f"input channels")
            if weights is not None and not 0 <= exponent < 64:
                raise BnnforgeError(f"{name}: exponent {exponent} outside 0..63")
            if weights is None and folding.pe * folding.simd * fmt.mant_width > cin * fmt.width:
                raise BnnforgeError(f"{name}: a weight word ({folding.pe} x {folding.simd} "
                                    f"mantissas) is wider than a beat of {cin} codes")
            if word_bits is not None:
                if weights is not None:
                    raise BnnforgeError(f"{name}: words in and out need run-time weights "
                                        f"(SiteLinear.loadable)")
                check_positive_int("word bits", word_bits)
                if word_bits < 8 or word_bits & (word_bits - 1):
                    raise BnnforgeError(f"{name}: the word must be a power of two of at least "
                                        f"8 bits (an AXI4 data bus), not {word_bits}")
        self.runtime_weights = weights is None
        self.word_bits = word_bits
        self.weights, self.bias = w, b
        self.exponent = None if self.runtime_weights else int(exponent)
        self.cin, self.cout, self.fmt, self.name = cin, cout, fmt, name
        self.pe, self.simd = folding.pe, folding.simd
        if word_bits is not None:
            from .words import word_in_layout, word_out_layout
            w = fmt.width
            self.beat_in, self.beat_out = cin * w, cout * w
            self.words_in = -(-self.beat_in // word_bits)
            self.words_out = -(-self.beat_out // word_bits)
            sig = {"i": In(stream.Signature(word_in_layout(word_bits))),
                   "o": Out(stream.Signature(word_out_layout(word_bits))),
                   "searching": Out(1)}
        elif self.runtime_weights:
            sig = {"i": In(stream.Signature(linear_in_layout(cin, fmt.width))),
                   "o": Out(stream.Signature(linear_out_layout(cout, fmt.width)))}
        else:
            sig = {"i": In(stream.Signature(cin * fmt.width)),
                   "o": Out(stream.Signature(cout * fmt.width))}
        super().__init__({**sig, "busy": Out(1)})

    @classmethod
    def loadable(cls, cin, cout, fmt, folding, name="linear"):
        """A linear engine of up to ``cin`` x ``cout`` channels (whole folds) whose mantissas,
        biases and exponent load at run time: a load frame (``load`` set, ``last`` on its
        last beat) holds a header (:func:`linear_header_layout`), then the weight words
        group by group, fold by fold (``PE x SIMD`` mantissas each, as :meth:`rom_words`),
        then a word of ``PE`` biases a group; it yields one marker beat (``error`` if
        malformed). Sites then stream as frames (``last`` on a frame's last site); channels
        beyond the loaded ones are 0."""
        return cls(None, None, None, fmt, folding, name=name, channels=(cin, cout))

    def word_engine(self, word_bits):
        """This loadable engine with its own port of ``word_bits`` words (the protocol of
        :class:`hw.sparse.words.WordPort`, the same words a beat each way), or None (weights
        fixed, or a word that is not a power of two): it writes a site's words into small
        memories and reads them back a fold at a time, and writes each finished group into
        output memories that its port reads a word at a time, instead of holding the site, the
        next site and the results in registers of ``Cin x width`` bits (the 14-way selection of
        2,688-bit registers and the 28 output slots were most of the BSC-Net core's
        congestion, docs/sparse.md)."""
        from quant.layout import Folding

        if not self.runtime_weights or word_bits < 8 or word_bits & (word_bits - 1):
            return None
        unused(self)                        # the word engine replaces this one
        return SiteLinear(None, None, None, self.fmt, Folding(self.pe, self.simd),
                          name=self.name, channels=(self.cin, self.cout), word_bits=word_bits)

    def words_info(self):
        """``design.json``'s ``words`` (a word engine, :meth:`word_engine`; else None)."""
        if self.word_bits is None:
            return None
        return {"bits": self.word_bits, "in": self.words_in, "out": self.words_out}

    @property
    def user_in_bits(self):
        """Bits of the input ``tuser`` on an AXI4-Stream top: marker and load."""
        return 2

    @property
    def folds(self):
        return (self.cout // self.pe) * (self.cin // self.simd)

    @property
    def cycles_per_vector(self):
        """``(Cout/PE)(Cin/SIMD)`` cycles a site (a word engine: at least its words a beat)."""
        if self.word_bits is not None:
            return max(self.folds, self.words_in, self.words_out)
        return self.folds

    @property
    def latency(self):
        """Input register, the site register, the folds, the product, accumulator, two
        rounding, write and output registers (a word engine: None, as any engine behind a word
        port)."""
        return None if self.word_bits is not None else self.folds + 8

    def rom_words(self):
        """Word ``g * (Cin/SIMD) + f``: ``M[g PE + p, f SIMD + q]`` at element ``p SIMD + q``
        (the words of a load frame, :func:`linear_load_words`)."""
        from quant.layout import Folding

        groups = self.cout // self.pe
        words = linear_load_words(self.weights, self.bias, 0, self.fmt,
                                  Folding(self.pe, self.simd), self.cin, self.cout)
        return words[1:len(words) - groups]

    def elaborate(self, platform):
        m = Module()
        fmt, P, Q = self.fmt, self.pe, self.simd
        w, mw = fmt.width, fmt.mant_width
        groups, folds_in = self.cout // P, self.cin // Q
        rt = self.runtime_weights
        words = self.word_bits is not None
        if rt:
            m.submodules.rom = rom = Memory(shape=unsigned(P * Q * mw),
                                            depth=groups * folds_in, init=[])
        else:
            m.submodules.rom = rom = Memory(shape=unsigned(P * Q * mw),
                                            depth=groups * folds_in, init=self.rom_words())
        rd = rom.read_port(domain="sync")
        # The layer's shape: constants, or registers a load frame sets. The biases: a word of
        # PE biases a group in a small memory, read for the group entering the done stage
        # (a register a channel and a group multiplexer a PE took 2,688 flip-flops and about
        # 2,600 LUTs for 112 channels).
        bias_words = [] if rt else [sum((int(self.bias[gi * P + p]) & ((1 << w) - 1)) << (p * w)
                                        for p in range(P)) for gi in range(groups)]
        m.submodules.biases = biases = Memory(shape=unsigned(P * w), depth=groups,
                                              init=bias_words)
        bias_rd = biases.read_port(domain="sync")
        if rt:
            g_last = Signal(range(max(groups, 2)))
            f_last = Signal(range(max(folds_in, 2)))
            e = Signal(EXP_BITS)
        else:
            g_last, f_last, e = groups - 1, folds_in - 1, self.exponent
        # Every stage advances with en; it stops only while the last stage holds a finished
        # site that the output cannot take.
        en = Signal()
        loader_free = Signal()          # no load frame in progress (driven by _loader)
        running = Signal()
        g, f = Signal(range(groups)), Signal(range(folds_in))
        walk_last = running & (f == f_last) & (g == g_last)
        # The input: the next site's codes are taken while one is walked; ``have`` (a site
        # waiting), its ``last``, and the codes of the fold read in the walk stage, registered
        # with the ROM word for the multiply stage.
        mul_v, mul_f, mul_g = Signal(), Signal(range(folds_in)), Signal(range(groups))
        if words:
            inp = self._word_input(m, en, running, walk_last, f, mul_f)
        else:
            inp = self._beat_input(m, en, running, f, loader_free)
        have, zfold, src = inp.have, inp.zfold, inp.src
        site_last = Signal()
        start = have & (~running | walk_last) & en
        m.d.comb += [rd.addr.eq(g * folds_in + f), rd.en.eq(en)]
        mul_l, acc_l, done_l = Signal(), Signal(), Signal()
        with m.If(en):
            m.d.sync += [mul_v.eq(running), mul_f.eq(f), mul_g.eq(g), mul_l.eq(site_last),
                         acc_l.eq(mul_l)]
            with m.If(running):
                m.d.sync += f.eq(Mux(f == f_last, 0, f + 1))
                with m.If(f == f_last):
                    m.d.sync += g.eq(Mux(g == g_last, 0, g + 1))
            with m.If(start):
                m.d.sync += [site_last.eq(inp.next_last), running.eq(1), g.eq(0), f.eq(0)]
                inp.on_start()
            with m.Elif(walk_last):
                m.d.sync += running.eq(0)
            with m.If(walk_last):
                inp.on_walk_end()
        # Multiply stage: the PE x SIMD products registered; accumulate stage: their sums
        # into PE accumulators.
        acc_w = w + mw + bits_for(self.cin) + 1
        accs = [Signal(signed(acc_w), name=f"acc{p}") for p in range(P)]
        word = data.ArrayLayout(signed(mw), P * Q)(rd.data)
        prods = [Signal(signed(w + mw), name=f"prod{k}") for k in range(P * Q)]
        acc_v, acc_f, acc_g = Signal(), Signal(range(folds_in)), Signal(range(groups))
        done_v, done_g = Signal(), Signal(range(groups))
        with m.If(en):
            m.d.sync += [acc_v.eq(mul_v), acc_f.eq(mul_f), acc_g.eq(mul_g)]
            m.d.sync += [prods[p * Q + q].eq(word[p * Q + q] * zfold[q])
                         for p in range(P) for q in range(Q)]
            m.d.sync += [done_v.eq(acc_v & (acc_f == f_last)), done_g.eq(acc_g),
                         done_l.eq(acc_l)]
            for p in range(P):
                dot = sum(prods[p * Q + q] for q in range(Q))
                with m.If(acc_v):
                    m.d.sync += accs[p].eq(Mux(acc_f == 0, 0, accs[p]) + dot)
        m.d.comb += self.busy.eq(mul_v & en)
        # Done stage: a group's accumulators rounded, biased and saturated; write stage: the
        # results written into the output (registers or memories, below).
        wr_v, wr_g, wr_l = Signal(), Signal(range(groups)), Signal()
        m.d.comb += [bias_rd.addr.eq(acc_g), bias_rd.en.eq(en)]
        group_bias = data.ArrayLayout(signed(w), P)(bias_rd.data)
        if rt:
            # a copy of the exponent for each PE's rounding shifter (it drives them all)
            e_pe = [Signal(EXP_BITS, name=f"e_pe{p}") for p in range(P)]
            m.d.sync += [x.eq(e) for x in e_pe]
            top_half = fmt.max_exp
            half = [Signal(max(top_half, 1), name=f"half{p}") for p in range(P)]
            m.d.comb += [half[p].eq((Const(1, top_half + 1) << e_pe[p]) >> 1)
                         for p in range(P)]
        else:
            half = [(1 << self.exponent) >> 1] * P
            top_half = max(half[0].bit_length(), 1)
            e_pe = [e] * P
        # (acc + half) >> e in acc_w + 1 bits (the exponent is at most max_exp, so half is
        # below 2^max_exp): sized signals, not the shift's own widening to 2^EXP_BITS bits.
        # Three register stages (in one, the rounding add, the run-time shifter, the bias add
        # and the saturation were the BSC-Net core's critical path: 24.6 ns): the rounded sum,
        # then the shifted one, then the biased and saturated result (the write stage).
        round_w = max(acc_w, top_half + 1) + 1
        last = [Signal(signed(w), name=f"last{p}") for p in range(P)]
        r1_v, r1_g, r1_l = Signal(), Signal(range(groups)), Signal()
        r2_v, r2_g, r2_l = Signal(), Signal(range(groups)), Signal()
        r1_bias, r2_bias = Signal(P * w), Signal(P * w)
        with m.If(en):
            m.d.sync += [r1_v.eq(done_v), r1_g.eq(done_g), r1_l.eq(done_l),
                         r1_bias.eq(group_bias.as_value()),
                         r2_v.eq(r1_v), r2_g.eq(r1_g), r2_l.eq(r1_l), r2_bias.eq(r1_bias),
                         wr_v.eq(r2_v), wr_g.eq(r2_g), wr_l.eq(r2_l)]
        bias2 = data.ArrayLayout(signed(w), P)(r2_bias)
        for p in range(P):
            rsum = Signal(signed(round_w), name=f"rsum{p}")
            rshift = Signal(signed(round_w), name=f"rshift{p}")
            with m.If(en):
                m.d.sync += [rsum.eq(accs[p] + half[p]), rshift.eq(rsum >> e_pe[p])]
            m.d.comb += last[p].eq(saturate(rshift + bias2[p], w))
        write = (wr_v, wr_g, wr_l, Cat(*last))
        if words:
            out_free, emit_marker = self._word_output(m, en, write, g_last, groups)
        else:
            out_free, emit_marker = self._beat_output(m, en, write, g_last, groups)
        m.d.comb += en.eq(~wr_v | out_free)
        if rt:
            idle = inp.idle & ~running & ~mul_v & ~acc_v & ~done_v & ~r1_v & ~r2_v & ~wr_v
            end_go, bad = self._loader(m, src, rom, g_last, f_last, e, biases, idle, out_free,
                                       groups, folds_in, loader_free)
            emit_marker(end_go, bad)
        else:
            m.d.comb += self.i.ready.eq(src.ready)
        return m

    def _beat_input(self, m, en, running, f, loader_free):
        """A site's codes taken into a register while the previous one is walked, moved into
        the site register as its walk starts; the walk stage registers the fold's codes,
        selected from it."""
        Q, w, rt = self.simd, self.fmt.width, self.runtime_weights
        codes_in = self.i.payload.codes if rt else self.i.payload
        ibuf, site = Signal(self.cin * w), Signal(self.cin * w)
        ibuf_last = Signal()
        have = Signal()
        is_site = (~self.i.payload.load & ~self.i.payload.marker & loader_free) if rt else 1
        take = self.i.valid & ~have & is_site
        with m.If(take):
            m.d.sync += [ibuf.eq(codes_in), have.eq(1)]
            if rt:
                m.d.sync += ibuf_last.eq(self.i.payload.last)
        z = data.ArrayLayout(signed(w), self.cin)(site)
        zreg = [Signal(signed(w), name=f"z{q}") for q in range(Q)]
        with m.If(en & running):
            with m.Switch(f):
                for fi in range(self.cin // Q):
                    with m.Case(fi):
                        m.d.sync += [zreg[q].eq(z[fi * Q + q]) for q in range(Q)]

        def on_start():
            m.d.sync += [site.eq(ibuf), have.eq(0)]

        src = SimpleNamespace(valid=self.i.valid, ready=self.i.ready, site_ready=~have)
        if rt:
            src.codes, src.load = self.i.payload.codes, self.i.payload.load
            src.marker, src.last = self.i.payload.marker, self.i.payload.last
        else:
            src.ready = ~have
        return SimpleNamespace(have=have, next_last=ibuf_last, zfold=zreg, src=src,
                               idle=~have, on_start=on_start, on_walk_end=lambda: None)

    def _word_input(self, m, en, running, walk_last, f, mul_f):
        """A site's words written into two buffers of small memories (``kf`` memories of a
        word each, a chunk of ``fc`` folds across them): one buffer filled while the other is
        walked, a fold a cycle read back for the multiply stage. A load frame's beats keep
        their first words (the header, a weight word or a word of biases) in ``head``."""
        wb, n = self.word_bits, self.words_in
        P, Q, w, mw = self.pe, self.simd, self.fmt.width, self.fmt.mant_width
        fw = Q * w
        fc, kf = wb // math.gcd(fw, wb), fw // math.gcd(fw, wb)
        chunks = -(-(self.cin // Q) // fc)
        cb = max(1, (chunks - 1).bit_length())
        s = fc.bit_length() - 1
        word = self.i.payload
        b_in, cur = Signal(), Signal()
        full = [Signal(name=f"site_full{b}") for b in range(2)]
        lasts = [Signal(name=f"site_last{b}") for b in range(2)]
        wi, ic, ip = Signal(range(max(n, 2))), Signal(cb), Signal(range(max(kf, 2)))
        at_end = wi == n - 1
        full_in = Mux(b_in, full[1], full[0])
        beat_ready = Signal()
        m.d.comb += self.i.ready.eq(~full_in & (~at_end | beat_ready))
        take = self.i.valid & self.i.ready
        special = word.load | word.marker
        mems = _buffers(m, "site", kf, wb, cb, Cat(ic, b_in), word.data,
                        lambda j: take & (ip == j))
        header = linear_header_layout(self.cout // P, self.cin // Q)
        head_words = -(-max(header.size, P * Q * mw, P * w) // wb)
        head = Signal(head_words * wb)
        with m.If(take):
            m.d.sync += wi.eq(Mux(at_end, 0, wi + 1))
            with m.If(at_end):
                m.d.sync += [ic.eq(0), ip.eq(0)]
            with m.Elif(ip == kf - 1):
                m.d.sync += [ip.eq(0), ic.eq(ic + 1)]
            with m.Else():
                m.d.sync += ip.eq(ip + 1)
            with m.If(wi < head_words):
                m.d.sync += head.eq(Cat(head[wb:], word.data) if head_words > 1 else word.data)
            with m.If(at_end & ~special):
                for b in range(2):
                    with m.If(b_in == b):
                        m.d.sync += [full[b].eq(1), lasts[b].eq(word.last)]
                m.d.sync += b_in.eq(~b_in)
        # The walk reads buffer cur; a site waiting is the next buffer's while one is walked.
        fchunk = Signal(cb)
        m.d.comb += fchunk.eq(f >> s)
        reads = []
        for mem in mems:
            rp = mem.read_port(domain="sync")
            m.d.comb += [rp.addr.eq(Cat(fchunk, cur)), rp.en.eq(en)]
            reads.append(rp.data)
        zword = Cat(*reads)
        if s:
            sel = Signal(s)
            m.d.comb += sel.eq(mul_f)
            zbits = zword.word_select(sel, fw)
        else:
            zbits = zword[:fw]
        z = data.ArrayLayout(signed(w), Q)(zbits)

        def on_walk_end():
            for b in range(2):
                with m.If(cur == b):
                    m.d.sync += full[b].eq(0)
            m.d.sync += cur.eq(~cur)

        # (a beat of no more words than the head: its last word joins it as the beat ends)
        codes = Cat(head[wb:], word.data) if head_words >= n else head
        src = SimpleNamespace(codes=codes, load=word.load, marker=word.marker, last=word.last,
                              valid=self.i.valid & at_end & ~full_in, ready=beat_ready,
                              site_ready=1)
        m.d.comb += self.searching.eq(0)
        return SimpleNamespace(
            have=Mux(running, Mux(cur, full[0], full[1]), Mux(cur, full[1], full[0])),
            next_last=Mux(running, Mux(cur, lasts[0], lasts[1]), Mux(cur, lasts[1], lasts[0])),
            zfold=[z[q] for q in range(Q)], src=src, idle=~full[0] & ~full[1],
            on_start=lambda: None, on_walk_end=on_walk_end)

    def _beat_output(self, m, en, write, g_last, groups):
        """Results registered in a copy for each bank of slots (so that no result bit fans out
        to every slot across the chip), written into the group's slot of the output register
        (all slots are cleared by the marker beat of each load, so the channels beyond the
        loaded ones stay 0); the last group makes the beat valid. A slot is written only while
        the output register is free."""
        P, w, rt = self.pe, self.fmt.width, self.runtime_weights
        wr_v, wr_g, wr_l, results = write
        out_free = ~self.o.valid | self.o.ready
        banks = [Signal(P * w, name=f"bank{b}") for b in range(-(-groups // SLOT_BANK))]
        with m.If(en):
            m.d.sync += [bank.eq(results) for bank in banks]
        # A register a slot (enable and clear each), the output payload wired from them: in
        # one payload register the slots' enables stayed multiplexers (2,800 LUTs).
        slots = [Signal(P * w, name=f"slot{gi}") for gi in range(groups)]
        clear = Signal()                    # the loader's marker beat clears every slot
        out_codes = self.o.payload.codes if rt else self.o.payload
        m.d.comb += out_codes.eq(Cat(*slots))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        for gi in range(groups):
            with m.If(clear):
                m.d.sync += slots[gi].eq(0)
            with m.Elif(wr_v & en & (wr_g == gi)):
                m.d.sync += slots[gi].eq(banks[gi // SLOT_BANK])
        marker, error, o_last = Signal(), Signal(), Signal()
        with m.If(wr_v & en & (wr_g == g_last)):
            m.d.sync += [self.o.valid.eq(1), marker.eq(0), error.eq(0), o_last.eq(wr_l)]
        if rt:
            m.d.comb += [self.o.payload.marker.eq(marker), self.o.payload.error.eq(error),
                         self.o.payload.last.eq(o_last)]

        def emit_marker(go, bad):
            m.d.comb += clear.eq(go)
            with m.If(go):
                m.d.sync += [self.o.valid.eq(1), marker.eq(1), error.eq(bad), o_last.eq(1)]

        return out_free, emit_marker

    def _word_output(self, m, en, write, g_last, groups):
        """Finished groups written into two buffers of small memories (``gc`` memories of a
        group each, a chunk of ``gc`` groups making ``kc`` words), one filled while the port
        reads the other out a word a cycle (groups beyond the loaded ones, and a marker beat's
        words, read as 0)."""
        wb, n_out = self.word_bits, self.words_out
        gw = self.pe * self.fmt.width
        gc, kc = wb // math.gcd(gw, wb), gw // math.gcd(gw, wb)
        chunks = -(-groups // gc)
        cb = max(1, (chunks - 1).bit_length())
        sg = gc.bit_length() - 1
        wr_v, wr_g, wr_l, results = write
        b_wr, b_rd = Signal(), Signal()
        ofull = [Signal(name=f"out_full{b}") for b in range(2)]
        ngroups = [Signal(range(groups + 1), name=f"out_groups{b}") for b in range(2)]
        omark = [Signal(name=f"out_marker{b}") for b in range(2)]
        oerr = [Signal(name=f"out_error{b}") for b in range(2)]
        olast = [Signal(name=f"out_last{b}") for b in range(2)]
        wdata = Signal(gw)
        with m.If(en):
            m.d.sync += wdata.eq(results)
        ws, wc = Signal(range(max(gc, 2))), Signal(cb)
        wfree = ~Mux(b_wr, ofull[1], ofull[0])
        put = wr_v & wfree
        mems = _buffers(m, "out", gc, gw, cb, Cat(wc, b_wr), wdata, lambda c: put & (ws == c))

        def finish(marker, error, last, n):
            for b in range(2):
                with m.If(b_wr == b):
                    m.d.sync += [ofull[b].eq(1), ngroups[b].eq(n), omark[b].eq(marker),
                                 oerr[b].eq(error), olast[b].eq(last)]
            m.d.sync += b_wr.eq(~b_wr)

        with m.If(put):
            with m.If(wr_g == g_last):
                m.d.sync += [ws.eq(0), wc.eq(0)]
                finish(0, 0, wr_l, g_last + 1)
            with m.Elif(ws == gc - 1):
                m.d.sync += [ws.eq(0), wc.eq(wc + 1)]
            with m.Else():
                m.d.sync += ws.eq(ws + 1)
        # The port: a word of the buffer b_rd a cycle into the output register.
        k, rc, rp = Signal(range(max(n_out, 2))), Signal(cb), Signal(range(max(kc, 2)))

        def sel(pair):
            return Mux(b_rd, pair[1], pair[0])

        parts = []
        for c, mem in enumerate(mems):
            port = mem.read_port(domain="comb")
            m.d.comb += port.addr.eq(Cat(rc, b_rd))
            index = Cat(Const(c, sg), rc) if sg else rc
            parts.append(Mux(index < sel(ngroups), port.data, 0))
        chunk = Cat(*parts)
        word = chunk.word_select(rp, wb) if kc > 1 else chunk[:wb]
        o = self.o
        step = sel(ofull) & (~o.valid | o.ready)
        final = k == n_out - 1
        with m.If(o.valid & o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(step):
            m.d.sync += [o.valid.eq(1), o.payload.data.eq(word),
                         o.payload.marker.eq(sel(omark)), o.payload.error.eq(sel(oerr)),
                         o.payload.last.eq(sel(olast) & final)]
            with m.If(final):
                m.d.sync += [k.eq(0), rc.eq(0), rp.eq(0), b_rd.eq(~b_rd)]
                for b in range(2):
                    with m.If(b_rd == b):
                        m.d.sync += ofull[b].eq(0)
            with m.Else():
                m.d.sync += k.eq(k + 1)
                with m.If(rp == kc - 1):
                    m.d.sync += [rp.eq(0), rc.eq(rc + 1)]
                with m.Else():
                    m.d.sync += rp.eq(rp + 1)

        def emit_marker(go, bad):
            with m.If(go):
                finish(1, bad, 1, 0)

        return wfree, emit_marker

    def _loader(self, m, src, rom, g_last, f_last, e, biases, idle, out_free, groups,
                folds_in, loader_free):
        """Load frames and marker beats of a loadable engine: the header (taken only while no
        site is in flight), the weight words into the ROM's write port, a word of biases a
        group into the bias memory, then the frame's marker beat (which clears the output
        slots). ``src``: the beats (``codes``, ``load``, ``marker``, ``last``, ``valid``,
        the ``ready`` it drives, and ``site_ready``). Returns ``(end_go, bad)``: the frame's
        marker beat goes out in this cycle, and whether it is an error."""
        fmt, P = self.fmt, self.pe
        beat = src
        header = linear_header_layout(groups, folds_in)
        head = header(beat.codes[:header.size])
        HEADER, WORDS, BIAS, END = range(4)
        state = Signal(2)
        bad = Signal()
        wg, wf = Signal(range(max(groups, 2))), Signal(range(max(folds_in, 2)))
        bg = Signal(range(max(groups, 2)))
        done = Signal()                     # every word and bias has been written
        special = beat.load | beat.marker
        m.d.comb += [loader_free.eq(state == HEADER),
                     src.ready.eq(Mux(special, ((state == HEADER) & idle) |
                                      (state == WORDS) | (state == BIAS),
                                      src.site_ready & (state == HEADER)))]
        fire = src.valid & src.ready & special
        wp = rom.write_port()
        in_words = fire & (state == WORDS) & ~done
        m.d.comb += [wp.addr.eq(wg * folds_in + wf), wp.data.eq(beat.codes[:len(wp.data)]),
                     wp.en.eq(in_words)]
        head_ok = ((head.g_last < groups) & (head.f_last < folds_in) &
                   (head.e <= fmt.max_exp))
        with m.If(in_words):
            m.d.sync += wf.eq(Mux(wf == f_last, 0, wf + 1))
            with m.If(wf == f_last):
                m.d.sync += wg.eq(Mux(wg == g_last, 0, wg + 1))
                with m.If(wg == g_last):
                    m.d.sync += state.eq(BIAS)
        in_bias = fire & (state == BIAS) & ~done
        bias_wp = biases.write_port()
        m.d.comb += [bias_wp.addr.eq(bg), bias_wp.data.eq(beat.codes[:P * fmt.width]),
                     bias_wp.en.eq(in_bias)]
        with m.If(in_bias):
            m.d.sync += bg.eq(bg + 1)
            with m.If(bg == g_last):
                m.d.sync += done.eq(1)
        end_go = Signal()
        m.d.comb += end_go.eq((state == END) & out_free)
        with m.Switch(state):
            with m.Case(HEADER):
                with m.If(fire):
                    m.d.sync += [g_last.eq(head.g_last), f_last.eq(head.f_last), e.eq(head.e),
                                 bad.eq(beat.load & ~head_ok), done.eq(beat.load & ~head_ok),
                                 wg.eq(0), wf.eq(0), bg.eq(0)]
                    with m.If(beat.marker | beat.last):
                        # An empty frame's marker, or a header alone (malformed).
                        m.d.sync += [state.eq(END), bad.eq(beat.load)]
                    with m.Else():
                        m.d.sync += state.eq(WORDS)
            with m.Case(WORDS, BIAS):
                with m.If(fire & beat.last):
                    at_last = (state == BIAS) & (bg == g_last)
                    m.d.sync += [state.eq(END), bad.eq(bad | done | ~at_last)]
            with m.Case(END):
                with m.If(out_free):
                    m.d.sync += state.eq(HEADER)
        return end_go, bad
