"""The memory budget of every engine a BSC-Net program needs, in one design (SparseCore), for
the LFE5U-85F, at several tile sizes; with --synth, a design that fits is placed and routed.

    .venv/bin/python benchmarks/bscnet_core.py [--arch unet-s] [--tiles 512 1024 2048] [--synth]

Prints, per tile size: the memories' bits and DP16KD estimate against the device's 208, and
whether the fit check passes (the same check `bnnforge synth` runs before Yosys)."""

import argparse
import json
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="unet-s")
    ap.add_argument("--tiles", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--synth", action="store_true")
    ap.add_argument("--out", default="build/bench/bscnet_core")
    args = ap.parse_args(argv)

    from golden.bscnet import BSCNet
    from golden.bscnet_fixed import FixedBscNet
    from bnnforge.bscnet_hw import write_core
    from bnnforge.demo_bscnet import TILE_BITS

    # The engines' sizes follow the program's shapes, not its trained values.
    program = FixedBscNet(BSCNet(args.arch, in_channels=1, classes=16, sfsc=True).eval()).program
    rows = []
    for sites in args.tiles:
        out = Path(args.out) / f"{args.arch}-{sites}"
        b = write_core(program, out, sites, TILE_BITS, family="ecp5")
        engines = json.loads((out / "design.json").read_text())["engines"]
        row = {"arch": args.arch, "tile_sites": sites, "memory_bits": b["bits"],
               "block_ram_estimate": b["block_ram_estimate"],
               "device_block_rams": b["device_block_rams"], "fits": b["fits"],
               "engines": engines}
        print(f"{args.arch} core, tiles of {sites} sites: {b['bits']:,} bits of memory, about "
              f"{b['block_ram_estimate']} DP16KD of {b['device_block_rams']}: "
              f"{'fits' if b['fits'] else 'does not fit'}")
        if args.synth and b["fits"]:
            from hw.synth import synthesize

            row["synth"] = synthesize(out, "ecp5")
            print(row["synth"])
        rows.append(row)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
