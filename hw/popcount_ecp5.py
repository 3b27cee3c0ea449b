"""A LUT-efficient XNOR-popcount for ECP5: full adders in carry cells that fuse the XOR.

An ECP5 carry cell (CCU2C) has two halves; each computes ``P = LUT4(A, B, C, D)``,
``S = P ^ CIN`` and ``COUT = P ? CIN : G`` with ``G = LUT2(A, B)`` (the low four bits of the
same table). With the table ``P = A ^ B ^ C ^ D`` the half is a *full adder* of
``x0 = A ^ B``, ``x1 = C ^ D`` and ``CIN`` (``G = A ^ B`` is right whenever ``P = 0``, i.e.
``x0 == x1``); a second half whose ``P`` is 0 passes that carry out as its ``S`` and injects
``G = A ^ B`` of a third pair as the next full adder's ``CIN``. One carry cell (two logic slots)
so takes three (a, w) pairs and leaves a sum and a carry; a chain of ``k`` cells starts with a
half adder (``CIN = 0``) and consumes ``3k - 1`` pairs. Chains are at most ``chain`` cells long
(the carry never ripples further than one full adder, but long chains make long false paths).

This first level counts mismatches ``x = a ^ w``; the rest is a carry-save tree of 3:2 full
adders in LUTs (two LUT4 each), a register after every level, and a final carry-propagate
adder, registered, then ``count = n - mismatches`` (the XNOR count), registered: one carry
chain per stage.

``cells="ecp5"`` instantiates ``CCU2C`` primitives (for ECP5 synthesis; simulators need a
CCU2C model, ``hw/verilog/ccu2c.v``); ``cells="logic"`` builds the same equations from plain
logic (Amaranth simulation, other families).
"""

from amaranth import Cat, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from quant.errors import BnnforgeError
from .params import check_positive_int, construction

__all__ = ["CarrySavePopcount", "XOR4_FA", "TAP_XOR", "TAP_NONE", "csa_latency"]

XOR4_FA = 0x6996
"""Full-adder half: ``P = A ^ B ^ C ^ D``, ``G = A ^ B``."""
TAP_XOR = 0x0006
"""Tap half (``D = 1``): ``P = 0`` (passes the carry in as ``S``), ``G = A ^ B`` (the next
full adder's third input)."""
TAP_NONE = 0x0000


def _plan(n, chain):
    """Chain lengths (cells) for ``n`` pairs, and the pairs left for plain XOR gates."""
    chains, left = [], n
    while left >= 3:
        k = min(chain, (left + 1) // 3)
        chains.append(k)
        left -= 3 * k - 1
    return chains, left


def _fa_levels(n, chain):
    """Full-adder levels that reduce the carry cells' columns to two rows."""
    chains, left = _plan(n, chain)
    cols = {0: sum(chains) + left, 1: sum(chains)}
    levels = 0
    while max(cols.values()) > 2:
        new = {}
        for w, c in cols.items():
            fa, rest = divmod(c, 3)
            new[w] = new.get(w, 0) + fa + rest
            if fa:
                new[w + 1] = new.get(w + 1, 0) + fa
        cols, levels = new, levels + 1
    return levels


def csa_latency(n, chain=6):
    """Register stages of :class:`CarrySavePopcount` of width ``n``: one after the carry
    cells, one per full-adder level, one after the final adder and one after
    ``n - mismatches``."""
    return _fa_levels(n, chain) + 3


class CarrySavePopcount(wiring.Component):
    """``count = popcount(XNOR(a, w))`` with the interface of :class:`hw.popcount.XnorPopcount`
    (``a``, ``w``, ``en``, ``count``); see the module docstring.

    Parameters
    ----------
    n : int
        Operand width (at least 3).
    chain : int
        Longest carry chain, in cells.
    cells : "ecp5" or "logic"
    pipelined : bool
        False leaves out every register (for the equivalence proof).
    """

    def __init__(self, n, chain=6, cells="ecp5", pipelined=True):
        with construction(self):
            check_positive_int("popcount width", n)
            check_positive_int("chain length", chain)
            if n < 3:
                raise BnnforgeError(f"the carry-save popcount needs at least 3 inputs, not {n}")
            if cells not in ("ecp5", "logic"):
                raise BnnforgeError(f"cells must be 'ecp5' or 'logic', not {cells!r}")
        self.n, self.chain, self.cells, self.pipelined = n, chain, cells, pipelined
        super().__init__({"a": In(n), "w": In(n), "en": In(1), "count": Out(bits_for(n))})

    @property
    def latency(self):
        """Register stages (:func:`csa_latency`)."""
        return csa_latency(self.n, self.chain)

    def _ccu2c(self, m, name, a0, b0, c0, d0, a1, b1, c1, d1, cin, init0, init1):
        s0, s1, cout = (Signal(name=f"{name}_{x}") for x in ("s0", "s1", "cout"))
        if self.cells == "ecp5":
            m.submodules[name] = Instance(
                "CCU2C", p_INIT0=Const(init0, 16), p_INIT1=Const(init1, 16),
                p_INJECT1_0="NO", p_INJECT1_1="NO", i_CIN=cin,
                i_A0=a0, i_B0=b0, i_C0=c0, i_D0=d0, i_A1=a1, i_B1=b1, i_C1=c1, i_D1=d1,
                o_S0=s0, o_S1=s1, o_COUT=cout)
            return s0, s1, cout

        def lut4(init, a, b, c, d):
            return Const(init, 16).bit_select(Cat(a, b, c, d), 1)

        def lut2(init, a, b):
            return Const(init & 0xF, 4).bit_select(Cat(a, b), 1)

        p0, g0 = lut4(init0, a0, b0, c0, d0), lut2(init0, a0, b0)
        c_mid = Signal(name=f"{name}_c0")
        m.d.comb += [s0.eq(p0 ^ cin), c_mid.eq(Mux(p0, cin, g0))]
        p1, g1 = lut4(init1, a1, b1, c1, d1), lut2(init1, a1, b1)
        m.d.comb += [s1.eq(p1 ^ c_mid), cout.eq(Mux(p1, c_mid, g1))]
        return s0, s1, cout

    def _register(self, m, value, name):
        reg = Signal(len(value), name=name)
        if not self.pipelined:          # the combinational twin the formal proof checks
            m.d.comb += reg.eq(value)
            return reg
        with m.If(self.en):
            m.d.sync += reg.eq(value)
        return reg

    def elaborate(self, platform):
        m = Module()
        a, w = self.a, self.w
        chains, left = _plan(self.n, self.chain)
        cols = {0: [], 1: []}
        i = 0
        for ch, k in enumerate(chains):
            cin = Const(0, 1)
            for j in range(k):
                p, q = i, i + 1
                i += 2
                last = j == k - 1
                if last:
                    a1 = b1 = Const(0, 1)
                    init1 = TAP_NONE
                else:
                    a1, b1 = a[i], w[i]
                    i += 1
                    init1 = TAP_XOR
                s0, s1, cout = self._ccu2c(m, f"csa{ch}_{j}", a[p], w[p], a[q], w[q],
                                           a1, b1, Const(0, 1), Const(1, 1), cin,
                                           XOR4_FA, init1)
                cols[0].append(s0)
                cols[1].append(s1)
                cin = cout
        for r in range(i, self.n):
            x = Signal(name=f"x{r}")
            m.d.comb += x.eq(a[r] ^ w[r])
            cols[0].append(x)
        level = 0
        cols = {wt: [self._register(m, b, f"l0_{wt}_{j}") for j, b in enumerate(bs)]
                for wt, bs in cols.items()}
        while max(len(b) for b in cols.values()) > 2:
            level += 1
            new = {}
            for wt in sorted(cols):
                bits = cols[wt]
                j = 0
                while len(bits) - j >= 3:
                    x, y, z = bits[j:j + 3]
                    j += 3
                    s, c = Signal(name=f"fa{level}_{wt}_{j}_s"), Signal(name=f"fa{level}_{wt}_{j}_c")
                    m.d.comb += [s.eq(x ^ y ^ z), c.eq((x & y) | (x & z) | (y & z))]
                    new.setdefault(wt, []).append(s)
                    new.setdefault(wt + 1, []).append(c)
                new.setdefault(wt, []).extend(bits[j:])
            cols = {wt: [self._register(m, b, f"l{level}_{wt}_{j}") for j, b in enumerate(bs)]
                    for wt, bs in new.items() if bs}
        width = bits_for(self.n)
        rows = [Cat(*[(cols.get(wt, []) + [Const(0, 1)] * 2)[r] for wt in range(width)])
                for r in range(2)]
        total = Signal(width + 1)
        m.d.comb += total.eq(rows[0] + rows[1])
        mismatches = self._register(m, total[:width], "mismatch_reg")
        count = self._register(m, (self.n - mismatches)[:width], "count_reg")
        m.d.comb += self.count.eq(count)
        return m
