"""The frog frames through one SSC design of bounded size, in tiles with halos: one design
(2,048 sites, 6-bit coordinates, Cin = Cout = 16, PE = SIMD = 16, sums out) for every voxel
size, its on-chip memory the same for all; each frame cut into tiles, simulated, merged and
compared with the whole frame's golden sums. Writes build/bench/sparse_tiles.json.

    .venv/bin/python benchmarks/sparse_tiles.py [--voxel-sizes 9 4 2] [--simulator verilator]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voxel-sizes", type=int, nargs="+", default=[9, 4, 2])
    p.add_argument("--simulator", default="verilator", choices=("icarus", "verilator"))
    p.add_argument("--max-voxels", type=int, default=2048)
    p.add_argument("--coord-bits", type=int, default=6)
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    from bnnforge.flows import format_table
    from bnnforge.sparse_flows import generate_sparse, simulate_tiled
    from golden.frog import frog_frame, frog_volume
    from quant.bitstream import atomic_write
    from quant.layout import Folding

    w = np.random.default_rng(0).integers(0, 2, (27, 16, 16), dtype=np.uint8)
    design = Path(args.out) / "sparse-tiles-ssc"
    info = generate_sparse(w, None, args.max_voxels, args.coord_bits, Folding(16, 16), design,
                           output="sums")
    print(f"design {design}: {info['memory_budget']['bits']:,} bits of on-chip memory")
    volume = frog_volume()
    rows = []
    for vs in args.voxel_sizes:
        coords, feats, bits = frog_frame(vs, 16, volume)
        t0 = time.monotonic()
        r = simulate_tiled(design, (coords, feats), w, args.simulator)
        rows.append({"voxel_size": vs, "sites": len(coords), "frame_coord_bits": bits,
                     "tiles": r["tiles"], "largest_tile": r["largest_tile"],
                     "sites_with_halo": r["sites_with_halo"],
                     "pairs_whole_frame": r["pairs_whole_frame"], "pairs": r["pairs"],
                     "cycles": r["cycles"], "mismatches": r["mismatches"],
                     "onchip_memory_bits": info["memory_budget"]["bits"],
                     "simulator": args.simulator,
                     "simulation_seconds": time.monotonic() - t0})
        print(f"voxel size {vs}: {r['tiles']} tiles, {r['cycles']:,} cycles, "
              f"{r['mismatches']} mismatches", flush=True)
    print(format_table(rows, [("voxel_size", "voxel size", "{}"), ("sites", "sites", "{:,}"),
                              ("tiles", "tiles", "{}"), ("sites_with_halo", "with halos", "{:,}"),
                              ("pairs_whole_frame", "pairs (frame)", "{:,}"),
                              ("pairs", "pairs (tiles)", "{:,}"), ("cycles", "cycles", "{:,}"),
                              ("mismatches", "mismatches", "{}"),
                              ("onchip_memory_bits", "on-chip bits", "{:,}")]))
    out = Path(args.out) / "sparse_tiles.json"
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2) + "\n"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
