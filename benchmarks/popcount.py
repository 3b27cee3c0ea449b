"""Popcount trees on ECP5-85F after place-and-route: the plain registered adder tree against
the carry-save tree with carry-cell full adders (``hw/popcount_ecp5.py``), side by side in one
run, for N = 64, 256 and 1024.

Each tree sits between registered ``a``/``w`` inputs and its registered count, out of context,
nextpnr at 200 MHz, seed 1. Writes ``build/bench/popcount.json``: a list of ``{tree, n, lut4,
ccu2c, ff, comb, fmax_mhz}`` (``comb``: nextpnr's TRELLIS_COMB, a carry cell counting as two,
plus the feed cells of each chain) and prints the table.

    .venv/bin/python benchmarks/popcount.py [--n 64 256 1024] [--seed 1]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth import Module, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hw.generate import to_verilog  # noqa: E402
from hw.popcount import XnorPopcount  # noqa: E402
from hw.popcount_ecp5 import CarrySavePopcount  # noqa: E402
from hw.synth import synthesize  # noqa: E402
from quant.bits import bits_for  # noqa: E402

TREES = {"plain": lambda n: XnorPopcount(n), "carry-save": lambda n: CarrySavePopcount(n)}


class Bench(wiring.Component):
    """Registered operands -> tree -> the tree's registered count."""

    def __init__(self, n, tree):
        self.n, self.tree = n, tree
        super().__init__({"a": In(n), "w": In(n), "count": Out(bits_for(n))})

    def elaborate(self, platform):
        m = Module()
        ra, rw = Signal(self.n), Signal(self.n)
        m.d.sync += [ra.eq(self.a), rw.eq(self.w)]
        m.submodules.tree = t = TREES[self.tree](self.n)
        m.d.comb += [t.a.eq(ra), t.w.eq(rw), t.en.eq(1), self.count.eq(t.count)]
        return m


def run(n, tree, out, seed):
    design = out / f"{tree}-{n}"
    design.mkdir(parents=True, exist_ok=True)
    (design / "bench.v").write_text(to_verilog(Bench(n, tree), "bench"))
    (design / "design.json").write_text(json.dumps({"top": "bench", "verilog": "bench.v"}))
    r = synthesize(design, "ecp5", "85k", 200.0, seed, say=lambda s: None)
    return {"tree": tree, "n": n, "lut4": r["lut4"], "ccu2c": r["carry"], "ff": r["ff"],
            "comb": r["comb"], "fmax_mhz": round(r["fmax_mhz"]["clk"], 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("build/bench"))
    args = p.parse_args()
    rows = []
    for n in args.n:
        for tree in TREES:
            print(f"==> {tree} tree, N = {n}", flush=True)
            rows.append(run(n, tree, args.out / "popcount", args.seed))
            print(f"    {rows[-1]}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "popcount.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{'tree':>10} {'N':>5} {'LUT4':>6} {'CCU2C':>6} {'FF':>6} {'comb':>6} "
          f"{'vs plain':>8} {'Fmax MHz':>9}")
    plain = {r["n"]: r for r in rows if r["tree"] == "plain"}
    for r in rows:
        ratio = r["comb"] / plain[r["n"]]["comb"] if r["n"] in plain else float("nan")
        print(f"{r['tree']:>10} {r['n']:>5} {r['lut4']:>6} {r['ccu2c']:>6} {r['ff']:>6} "
              f"{r['comb']:>6} {ratio:>8.2f} {r['fmax_mhz']:>9.1f}")
    print(f"wrote {args.out / 'popcount.json'}")


if __name__ == "__main__":
    main()
