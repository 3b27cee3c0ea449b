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

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from quant.errors import BnnforgeError
from quant.fixed import saturate, signed_range
from ..block import StreamBlock
from ..params import check_positive_int, construction

__all__ = ["SiteAffine", "SiteLinear", "affine_layout", "pack_fields", "pack_codes",
           "unpack_codes", "EXP_BITS"]

EXP_BITS = 6
"""Bits of an exponent field (``e`` in ``[0, 63]``)."""


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

    latency = 3
    cycles_per_vector = 1

    def __init__(self, lanes, sum_width, fmt, projection=False, sum_width2=None, name="affine"):
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
        self.layout = affine_layout(lanes, sum_width, fmt, projection, sum_width2)
        super().__init__({"i": In(stream.Signature(self.layout)),
                          "o": Out(stream.Signature(lanes * fmt.width)), "busy": Out(1)})

    def elaborate(self, platform):
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


class SiteLinear(StreamBlock):
    """The real 1x1 convolution of one site (see :mod:`hw.sparse.site`).

    Parameters
    ----------
    weights : array (Cout, Cin) of int
        Mantissas (``fmt.mant_width`` bits).
    bias : array (Cout,) of int
        Codes.
    exponent : int
        ``e``: the products have ``e + frac`` fractional bits.
    fmt : golden.bscnet_fixed.SparseFixedPoint
    folding : quant.layout.Folding
        PE divides Cout, SIMD divides Cin.

    Members
    -------
    i : In(stream.Signature(Cin * fmt.width))
    o : Out(stream.Signature(Cout * fmt.width))
    """

    def __init__(self, weights, bias, exponent, fmt, folding, name="linear"):
        with construction(self):
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
            if not 0 <= exponent < 64:
                raise BnnforgeError(f"{name}: exponent {exponent} outside 0..63")
        self.weights, self.bias, self.exponent = w, b, int(exponent)
        self.cin, self.cout, self.fmt, self.name = cin, cout, fmt, name
        self.pe, self.simd = folding.pe, folding.simd
        super().__init__({"i": In(stream.Signature(cin * fmt.width)),
                          "o": Out(stream.Signature(cout * fmt.width)), "busy": Out(1)})

    @property
    def folds(self):
        return (self.cout // self.pe) * (self.cin // self.simd)

    @property
    def cycles_per_vector(self):
        """``(Cout/PE)(Cin/SIMD)`` cycles a site."""
        return self.folds

    @property
    def latency(self):
        """Input register, the site register, the folds, the product, accumulator and output
        registers."""
        return self.folds + 5

    def rom_words(self):
        """Word ``g * (Cin/SIMD) + f``: ``M[g PE + p, f SIMD + q]`` at element ``p SIMD + q``."""
        P, Q, mw = self.pe, self.simd, self.fmt.mant_width
        words = []
        for g in range(self.cout // P):
            for f in range(self.cin // Q):
                v = 0
                for p in range(P):
                    for q in range(Q):
                        x = int(self.weights[g * P + p, f * Q + q]) & ((1 << mw) - 1)
                        v |= x << ((p * Q + q) * mw)
                words.append(v)
        return words

    def elaborate(self, platform):
        m = Module()
        fmt, P, Q = self.fmt, self.pe, self.simd
        w, mw = fmt.width, fmt.mant_width
        groups, folds_in = self.cout // P, self.cin // Q
        words = self.rom_words()
        m.submodules.rom = rom = Memory(shape=unsigned(P * Q * mw), depth=len(words),
                                        init=words)
        rd = rom.read_port(domain="sync")
        # Every stage advances with en; it stops only while the last stage holds a finished
        # site that the output cannot take.
        en = Signal()
        out_free = ~self.o.valid | self.o.ready
        # The next site's codes (ibuf) are taken while one (site) is walked.
        ibuf, site = Signal(self.cin * w), Signal(self.cin * w)
        have = Signal()
        m.d.comb += self.i.ready.eq(~have)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [ibuf.eq(self.i.payload), have.eq(1)]
        z = data.ArrayLayout(signed(w), self.cin)(site)
        # Walk stage: (g, f) over the folds; the ROM word and the codes of fold f are
        # registered together for the multiply stage.
        running = Signal()
        g, f = Signal(range(groups)), Signal(range(folds_in))
        idx = Signal(range(len(words)))
        walk_last = running & (f == folds_in - 1) & (g == groups - 1)
        start = have & (~running | walk_last) & en
        m.d.comb += [rd.addr.eq(idx), rd.en.eq(en)]
        zreg = [Signal(signed(w), name=f"z{q}") for q in range(Q)]
        mul_v, mul_f, mul_g = Signal(), Signal(range(folds_in)), Signal(range(groups))
        with m.If(en):
            m.d.sync += [mul_v.eq(running), mul_f.eq(f), mul_g.eq(g)]
            with m.If(running):
                m.d.sync += [idx.eq(idx + 1), f.eq(Mux(f == folds_in - 1, 0, f + 1))]
                with m.If(f == folds_in - 1):
                    m.d.sync += g.eq(Mux(g == groups - 1, 0, g + 1))
                with m.Switch(f):
                    for fi in range(folds_in):
                        with m.Case(fi):
                            m.d.sync += [zreg[q].eq(z[fi * Q + q]) for q in range(Q)]
            with m.If(start):
                m.d.sync += [site.eq(ibuf), have.eq(0), running.eq(1), g.eq(0), f.eq(0),
                             idx.eq(0)]
            with m.Elif(walk_last):
                m.d.sync += running.eq(0)
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
            m.d.sync += [prods[p * Q + q].eq(word[p * Q + q] * zreg[q])
                         for p in range(P) for q in range(Q)]
            m.d.sync += [done_v.eq(acc_v & (acc_f == folds_in - 1)), done_g.eq(acc_g)]
            for p in range(P):
                dot = sum(prods[p * Q + q] for q in range(Q))
                with m.If(acc_v):
                    m.d.sync += accs[p].eq(Mux(acc_f == 0, 0, accs[p]) + dot)
        m.d.comb += self.busy.eq(mul_v & en)
        # Done stage: a group's accumulators rounded, biased and saturated; the last group's
        # go straight to the output register with the others'.
        final = done_v & (done_g == groups - 1)
        m.d.comb += en.eq(~final | out_free)
        e = self.exponent
        half = (1 << e) >> 1
        outs = [Signal(signed(w), name=f"out{c}") for c in range(self.cout)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(done_v & en):
            with m.Switch(done_g):
                for gi in range(groups):
                    with m.Case(gi):
                        vals = [saturate(((accs[p] + half) >> e) + int(self.bias[gi * P + p]),
                                         w) for p in range(P)]
                        if gi < groups - 1:
                            m.d.sync += [outs[gi * P + p].eq(vals[p]) for p in range(P)]
                        else:
                            last = [Signal(signed(w), name=f"last{p}") for p in range(P)]
                            m.d.comb += [last[p].eq(vals[p]) for p in range(P)]
                            m.d.sync += [self.o.valid.eq(1),
                                         self.o.payload.eq(Cat(*outs[:gi * P], *last))]
        return m
