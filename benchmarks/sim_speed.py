"""Simulation speed in stall mode "none", three ways: the testbench's loop stepping every cycle
(step), the loop skipping idle stretches (skip), and the simulation top's player driving the
stream in the simulator (play, the default). Two workloads: a long-fold design (linear: the
loadable linear engine, C x C channels, PE 4 x SIMD 8, C^2/32 cycles a site, with its load
frame and random sites) and a busy stream (ssc: the BSC-Net SSC engine, 16 x 16 channels, on
the frog frame at --voxel-size in tiles of 512 sites, a word in and three out a site every
few cycles). Outputs are checked against golden. Writes build/bench/sim_speed[_ssc].json.

    .venv/bin/python benchmarks/sim_speed.py [--workload linear|ssc] [--channels 704]
        [--sites 200] [--voxel-size 4] [--simulator verilator] [--modes play skip step]

Seconds are wall-clock on this machine for the run (the simulator is built first, untimed;
for ssc they include cutting the frame into tiles and the golden sums); cycles are the
testbench's, load frame included.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=704)
    p.add_argument("--sites", type=int, default=200)
    p.add_argument("--simulator", default="verilator")
    p.add_argument("--modes", nargs="+", default=["play", "skip", "step"],
                   choices=["play", "skip", "step"])
    p.add_argument("--workload", default="linear", choices=["linear", "ssc"])
    p.add_argument("--voxel-size", type=int, default=4)
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    if args.workload == "ssc":
        return ssc_workload(args)
    from golden.bscnet_fixed import SparseFixedPoint, apply_op
    from hw.axis import AxisTop
    from hw.generate import design_info, write_design
    from hw.sparse.site import SiteLinear, linear_load_words, pack_codes
    from quant.layout import Folding
    from sim.runner import run_vectors

    C, n = args.channels, args.sites
    fmt, folding = SparseFixedPoint(), Folding(4, 8)
    design = Path(args.out) / "sim_speed" / f"linear-{C}"
    top = AxisTop([SiteLinear.loadable(C, C, fmt, folding, name="linear_engine")], sparse=True)
    write_design(design, top, "bnn_top", {}, design_info(top, "bnn_top", "linear"))
    rng = np.random.default_rng(0)
    w, b = rng.integers(-2000, 2000, (C, C)), rng.integers(-500, 500, C)
    z = rng.integers(-3000, 3000, (n, C))
    load = linear_load_words(w, b, 17, fmt, folding, C, C)
    want = apply_op({"op": "linear", "src": "z", "m": w, "e": 17, "b": b}, {"z": z}, None, fmt)
    beats = load + [pack_codes(r, fmt.width) for r in z]
    framing = ([(int(i == len(load) - 1), 2) for i in range(len(load))]
               + [(int(i == n - 1), 0) for i in range(n)])
    expected = [0] + [pack_codes(r, fmt.width) for r in want]
    want_framing = [(1, 1)] + [(int(i == n - 1), 0) for i in range(n)]
    # Build (and check the load frame alone), untimed.
    run_vectors(design, load, [0], args.simulator, stall_modes=("none",),
                framing=framing[:len(load)], expected_framing=[(1, 1)])
    rows = []
    for mode in args.modes:
        t = time.monotonic()
        r = run_vectors(design, beats, expected, args.simulator, stall_modes=("none",),
                        framing=framing, expected_framing=want_framing,
                        skip_idle=mode != "step", player=mode == "play")
        seconds = time.monotonic() - t
        run = r["runs"][0]
        if not r["passed"]:
            raise SystemExit(f"{mode}: outputs differ from golden; see {r['log']}")
        rows.append(_row(mode, int(run["cycles"]), seconds, steps=run["steps"]))
        print(f"{C} x {C}, {n} sites, {args.simulator}, {mode}: {int(run['cycles']):,} cycles "
              f"({run['steps']:,} looked at) in {seconds:.1f} s = "
              f"{run['cycles'] / seconds:,.0f} cycles/s")
    out = Path(args.out) / "sim_speed.json"
    out.write_text(json.dumps({"channels": C, "sites": n, "simulator": args.simulator,
                               "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def _row(mode, cycles, seconds, **extra):
    """A timed run's row in the benchmark's JSON."""
    return {"mode": mode, "cycles": cycles, **extra, "seconds": round(seconds, 2),
            "cycles_per_second": round(cycles / seconds)}


def ssc_workload(args):
    import functools

    import sim.runner
    from bnnforge.sparse_flows import generate_sparse_engine, simulate_tiled
    from golden.frog import frog_frame
    from quant.layout import Folding

    coords, feats, _ = frog_frame(args.voxel_size, channels=16)
    w = np.random.default_rng(8).integers(0, 2, (27, 16, 16))
    design = Path(args.out) / "sim_speed" / "ssc-engine"
    generate_sparse_engine("ssc", 192, 16, 512, 6, Folding(16, 16), design, name="ssc_engine",
                           word_bits=64)
    run = sim.runner.run_vectors
    rows = []
    for mode in ["build"] + args.modes:
        sim.runner.run_vectors = functools.partial(run, skip_idle=mode != "step",
                                                   player=mode in ("play", "build"))
        try:
            t = time.monotonic()
            r = simulate_tiled(design, (coords[:64], feats[:64]) if mode == "build"
                               else (coords, feats), w, args.simulator)
            seconds = time.monotonic() - t
        finally:
            sim.runner.run_vectors = run
        if r["mismatches"]:
            raise SystemExit(f"{mode}: outputs differ from golden")
        if mode == "build":
            continue
        rows.append(_row(mode, r["cycles"], seconds, tiles=r["tiles"]))
        print(f"SSC engine, frog frame at voxel size {args.voxel_size} ({len(coords):,} sites, "
              f"{r['tiles']} tiles), {args.simulator}, {mode}: {r['cycles']:,} cycles in "
              f"{seconds:.1f} s = {r['cycles'] / seconds:,.0f} cycles/s")
    out = Path(args.out) / "sim_speed_ssc.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workload": "ssc", "voxel_size": args.voxel_size,
                               "sites": len(coords), "simulator": args.simulator,
                               "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
