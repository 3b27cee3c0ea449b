"""The binary sparse layers (SSC, down-sampling, up-sampling) on the real frog CT frames:
cycles simulated (first input beat to last output beat) vs the model (pairs x ceil(Cin/SIMD)
x ceil(Cout/PE) / offsets), the search's own cycles, and the same layer in software (golden's
kernel map and integer sums on this CPU). Writes build/bench/sparse_frog[_KIND][_offsetsU].json.

    .venv/bin/python benchmarks/sparse_frog.py [--kind ssc|down|up] [--simulator verilator]
        [--voxel-sizes 9 4] [--offsets 1]

For ``down`` the frame is the frog's sites at the voxel size; for ``up`` the coarse part is
their parents (down-sampled sites, random features) and the fine part the sites themselves.
"""

import argparse
import json
import time
import timeit
from pathlib import Path

import numpy as np

from bnnforge.flows import format_table
from bnnforge.sparse_flows import generate_sparse, simulate_sparse
from golden.frog import frog_frame, frog_layer_frame, frog_volume
from golden.sparse import binary_ssc_dot, sparse_layer_rows
from hw.sparse import KINDS
from quant.layout import Folding


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", default="ssc", choices=tuple(KINDS))
    p.add_argument("--simulator", default="verilator", choices=("icarus", "verilator"))
    p.add_argument("--voxel-sizes", type=int, nargs="+", default=[9, 4])
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--pe", type=int, default=16)
    p.add_argument("--simd", type=int, default=16)
    p.add_argument("--offsets", type=int, default=1, help="kernel offsets a cycle (1)")
    p.add_argument("--clock-mhz", type=float, default=200.0)
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    vol = frog_volume()
    rng = np.random.default_rng(0)
    c, kind = args.channels, args.kind
    w = rng.integers(0, 2, (KINDS[kind], c, c))
    t = rng.integers(-40, 40, c)
    rows = []
    for size in args.voxel_sizes:
        coords, feats, bits = frog_frame(size, channels=c, volume=vol)
        frame = frog_layer_frame(kind, coords, feats, rng)
        n = len(coords)
        design = Path(args.out) / f"sparse-frog-{kind}-v{size}"
        info = generate_sparse(w, t, 1 << max(1, (n - 1).bit_length()), bits,
                               Folding(args.pe, args.simd), design, kind=kind,
                               offsets=args.offsets)
        t0 = time.monotonic()
        result = simulate_sparse(design, [frame], w, t, args.simulator)
        wall = time.monotonic() - t0
        out_coords, kmap = sparse_layer_rows(kind, frame, bits)
        soft = min(timeit.repeat(lambda: binary_ssc_dot(frame[1], w, kmap, len(out_coords)),
                                 number=1, repeat=3))
        search = min(timeit.repeat(lambda: sparse_layer_rows(kind, frame, bits), number=1,
                                   repeat=3))
        model = len(kmap) * info["folds_per_pair"] / args.offsets
        cycles = result["frame_cycles"][0]
        hw = cycles / (args.clock_mhz * 1e6)
        rows.append({"voxel_size": size, "voxels": n, "outputs": len(out_coords),
                     "pairs": len(kmap),
                     "mismatches": result["mismatches"], "cycles_simulated": cycles,
                     "cycles_model": model, "ratio": cycles / model,
                     "cycles_per_voxel": cycles / n,
                     "search_cycles": result["runs"][0]["search_cycles"],
                     "hw_seconds": hw,
                     "clock": {"mhz": args.clock_mhz, "source": "target",
                               "note": "a target clock; no sparse layer was placed at it"},
                     "software_seconds": soft + search,
                     "software_search_seconds": search, "software_conv_seconds": soft,
                     "speedup": (soft + search) / hw, "simulation_wall_seconds": wall})
    print(format_table(rows, [
        ("voxel_size", "voxel", "{}"), ("voxels", "sites", "{}"), ("outputs", "outputs", "{}"),
        ("pairs", "pairs", "{}"),
        ("mismatches", "mismatch", "{}"), ("cycles_simulated", "cycles sim", "{}"),
        ("cycles_model", "model", "{}"), ("ratio", "sim/model", "{:.3f}"),
        ("cycles_per_voxel", "cyc/site", "{:.1f}"), ("search_cycles", "search cyc", "{}"),
        ("hw_seconds", f"hw s @{args.clock_mhz:g} MHz (target, not placed)", "{:.2e}"),
        ("software_seconds", "software s", "{:.2e}"), ("speedup", "speed-up", "{:.0f}x"),
        ("simulation_wall_seconds", "sim wall s", "{:.0f}")]))
    out = Path(args.out) / ("sparse_frog" + ("" if kind == "ssc" else f"_{kind}") +
                            ("" if args.offsets == 1 else f"_offsets{args.offsets}") + ".json")
    out.write_text(json.dumps({"kind": kind, "simulator": args.simulator, "channels": c,
                               "pe": args.pe,
                               "simd": args.simd, "offsets": args.offsets, "frames": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
