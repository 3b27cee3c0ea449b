"""The binary SSC layer on the frog CT volume's frames in software: bnnforge's NumPy golden
model (kernel map by binary search, then the sums) beside spconv's CPU build (SubMConv3d), both
on one thread, with the sums checked equal. Writes build/bench/spconv.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spconv_peer.py [--voxel-sizes 9 4 2]
        [--channels 16] [--repeats 3]

Times are wall-clock seconds on this machine, the best of ``--repeats`` runs; spconv's include
building its kernel map (indices) for the frame, as the golden's include its kernel map.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voxel-sizes", type=int, nargs="+", default=[9, 4, 2])
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from bnnforge.flows import format_table
    from golden.frog import frog_frame, frog_volume
    from golden.sparse import binary_ssc_dot, ssc_kernel_map
    from golden.spconv_peer import spconv_ssc_dot
    from quant.bitstream import atomic_write

    volume = frog_volume()
    rows = []
    for vs in args.voxel_sizes:
        coords, feats, bits = frog_frame(vs, args.channels, volume)
        w = np.random.default_rng(0).integers(0, 2, (27, args.channels, args.channels),
                                              dtype=np.uint8)
        best, want, pairs = None, None, None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            kmap = ssc_kernel_map(coords, bits)
            want = binary_ssc_dot(feats, w, kmap)
            t = time.perf_counter() - t0
            best = t if best is None else min(best, t)
            pairs = len(kmap)
        got, spconv_s = spconv_ssc_dot(coords, feats, w, bits, repeats=args.repeats)
        rows.append({"voxel_size": vs, "sites": len(coords), "pairs": pairs,
                     "channels": args.channels, "coord_bits": bits,
                     "sums_equal": bool(np.array_equal(got, want)),
                     "numpy_golden_seconds": best, "spconv_seconds": spconv_s,
                     "threads": 1, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
        print(f"voxel size {vs}: {len(coords)} sites, {pairs} pairs, sums equal: "
              f"{rows[-1]['sums_equal']}", flush=True)
    print(format_table(rows, [("voxel_size", "voxel size", "{}"), ("sites", "sites", "{:,}"),
                              ("pairs", "pairs", "{:,}"), ("sums_equal", "sums equal", "{}"),
                              ("numpy_golden_seconds", "NumPy golden s", "{:.4f}"),
                              ("spconv_seconds", "spconv s", "{:.4f}")]))
    out = Path(args.out) / "spconv.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2) + "\n"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
