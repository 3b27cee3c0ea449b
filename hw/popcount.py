"""XNOR-popcount: the count of equal bits of two ``n``-bit vectors, through a pipelined tree."""

from amaranth import Module, Signal, Cat
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from .params import check_family, check_positive_int, construction
from .block import StreamBlock

__all__ = ["XnorPopcount", "PopcountStream", "popcount_latency", "uses_carry_save",
           "CARRY_SAVE_MIN_WIDTH"]

CARRY_SAVE_MIN_WIDTH = 8
"""The narrowest tree generated as ECP5's carry-save popcount: from N = 8 on it takes fewer logic
slots than the plain tree (0.88 of them at N = 8, 0.55 at 1024) at an Fmax within a few percent
of it and far above the 200 MHz target (``benchmarks/popcount.py``, docs/popcount.md)."""


def uses_carry_save(n, family):
    """Whether a design for ``family`` counts ``n`` bits with the ECP5 carry-save tree."""
    return family == "ecp5" and n >= CARRY_SAVE_MIN_WIDTH


def tree_depth(n):
    """Adder levels of a binary tree over ``n`` leaves: ``ceil(log2(n))``."""
    return (n - 1).bit_length()


def popcount_latency(n, reg_every=1, family=None):
    """Register stages of an ``n``-input tree: the plain tree with a register every
    ``reg_every`` levels has ``max(1, ceil(ceil(log2(n)) / reg_every))``; the ECP5 carry-save
    tree (see :func:`uses_carry_save`) its own (full-adder levels + 3) plus its operand
    registers."""
    if uses_carry_save(n, family):
        from .popcount_ecp5 import csa_latency
        return csa_latency(n) + 1         # + the operand registers
    return max(1, -(-tree_depth(n) // reg_every))


class XnorPopcount(wiring.Component):
    """``count = popcount(XNOR(a, w))``, pipelined, advancing only when ``en`` is high.

    The tree adds pairs of partial counts level by level (``ceil(log2(n))`` levels). A register
    stage follows every ``reg_every``-th level and always the last one; with ``n = 1`` the XNOR
    itself is registered. For ``family="ecp5"`` and ``n >= CARRY_SAVE_MIN_WIDTH`` the unit is
    instead :class:`hw.popcount_ecp5.CarrySavePopcount` built from CCU2C carry cells behind
    registered operands (registered after every level; ``reg_every`` does not apply); any other
    family gets the plain tree.

    Parameters
    ----------
    n : int
        Width of ``a`` and ``w``.
    reg_every : int
        Adder levels between register stages.
    family : None, "ecp5" or "ice40"
        The FPGA family the design is generated for.

    Members
    -------
    a, w : In(n)
        Operands, sampled when ``en`` is high.
    en : In(1)
        Clock enable of every stage (a stalled pipeline keeps its contents).
    count : Out(bits_for(n))
        The count of the operands presented ``latency`` enabled cycles earlier.
    """

    def __init__(self, n, reg_every=1, family=None):
        with construction(self):
            check_positive_int("popcount width", n)
            check_positive_int("reg_every", reg_every)
            check_family(family)
        self.n, self.reg_every, self.family = n, reg_every, family
        super().__init__({"a": In(n), "w": In(n), "en": In(1), "count": Out(bits_for(n))})

    @property
    def latency(self):
        """Register stages (:func:`popcount_latency`)."""
        return popcount_latency(self.n, self.reg_every, self.family)

    def elaborate(self, platform):
        m = Module()
        if uses_carry_save(self.n, self.family):
            from .popcount_ecp5 import CarrySavePopcount
            m.submodules.csa = csa = CarrySavePopcount(self.n, cells="ecp5")
            # Operands registered first: in a design they come from block RAM, whose data
            # arrives late in the cycle (5.8 ns on ECP5), and the carry chains need the rest.
            a, w = Signal(self.n), Signal(self.n)
            with m.If(self.en):
                m.d.sync += [a.eq(self.a), w.eq(self.w)]
            m.d.comb += [csa.a.eq(a), csa.w.eq(w), csa.en.eq(self.en),
                         self.count.eq(csa.count)]
            return m
        xnor = Signal(self.n)
        m.d.comb += xnor.eq(~(self.a ^ self.w))
        nodes = [xnor[i] for i in range(self.n)]
        depth = tree_depth(self.n)
        if depth == 0:
            nodes = [self._register(m, nodes[0], "l0_0")]
        for level in range(1, depth + 1):
            pairs = [nodes[i] + nodes[i + 1] for i in range(0, len(nodes) - 1, 2)]
            if len(nodes) % 2:
                pairs.append(nodes[-1])
            if level % self.reg_every == 0 or level == depth:
                pairs = [self._register(m, v, f"l{level}_{i}") for i, v in enumerate(pairs)]
            nodes = pairs
        m.d.comb += self.count.eq(nodes[0])
        return m

    def _register(self, m, value, name):
        width = min(len(value), bits_for(self.n))
        reg = Signal(width, name=name)
        with m.If(self.en):
            m.d.sync += reg.eq(value)
        return reg


class PopcountStream(StreamBlock):
    """:class:`XnorPopcount` behind streams: payload ``Cat(a, w)`` in, the count out.

    Initiation interval 1; the whole pipeline stalls while the output is valid and not ready.

    Members
    -------
    i : In(stream.Signature(2 * n))
    o : Out(stream.Signature(bits_for(n)))
    busy : Out(1)
        High in each cycle in which a vector enters the pipeline.
    """

    def __init__(self, n, reg_every=1):
        with construction(self):
            self.unit = XnorPopcount(n, reg_every)
        self.n = n
        super().__init__({"i": In(stream.Signature(2 * n)),
                          "o": Out(stream.Signature(bits_for(n))), "busy": Out(1)})

    @property
    def latency(self):
        """Cycles from an input transfer to its output being valid: the unit's latency."""
        return self.unit.latency

    cycles_per_vector = 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        en = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
            unit.en.eq(en),
            unit.a.eq(self.i.payload[:self.n]),
            unit.w.eq(self.i.payload[self.n:]),
            self.o.payload.eq(unit.count),
            self.busy.eq(self.i.valid & self.i.ready),
        ]
        valid = Signal(unit.latency)
        with m.If(en):
            m.d.sync += valid.eq(Cat(self.i.valid, valid[:-1]))
        m.d.comb += self.o.valid.eq(valid[-1])
        return m
