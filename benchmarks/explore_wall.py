"""Wall time of a design-space sweep, serial (one Dask worker) vs two local workers.

Two networks, each swept at its default targets (six powers of two within the lane budget,
`bnnforge explore`): the digits MLP (trained as `bnnforge demo` trains it, 40 epochs) and a
Group-Net (8 channels, 2 blocks, K = 1, trained with `bnnforge demo --network groupnet`'s
recipe, 30 epochs). With 16 channels the trained Group-Net needs 192 multipliers of the
LFE5U-85F's 156 (its batch-norm constants take three 18x18 blocks each), so no point of that
sweep places. Every point generates, simulates 16 random inputs (bit-exactness, cycles at the
handshakes) and places and routes for the LFE5U-85F. Each sweep runs in a fresh directory (no
cache), first on one worker, then on two. Writes build/bench/explore.json and leaves each
sweep's results.json and pareto.png under build/bench/explore/<network>-<workers>w/.

    .venv/bin/python benchmarks/explore_wall.py [--networks mlp groupnet] [--workers 1 2]

Run it on an otherwise idle machine: the two-worker sweep uses both cores.
"""

import argparse
import json
import shutil
import time
from pathlib import Path


def digits_mlp(path):
    from bnnforge.demo import DEFAULT_HIDDEN, DEFAULT_LEVELS
    from bnnforge.kinds import kind_named
    from golden.digits import input_spec, load_digits_split, thermometer
    from golden.mlp import BinaryMLP
    from golden.train import seed_everything
    from quant import bitstream as bitstream_io

    data = load_digits_split(0)
    x = thermometer(data.x_train, DEFAULT_LEVELS)
    seed_everything(0)
    model = BinaryMLP([x.shape[1], *DEFAULT_HIDDEN, 10])
    kind_named("mlp").train(model, x, data.y_train, 40, 0)
    return bitstream_io.write(model.to_bitstream(input_spec(DEFAULT_LEVELS),
                                                 {"network": "mlp"}), path)


def groupnet(path):
    from bnnforge.kinds import kind_named
    from golden.digits import as_images, load_digits_split
    from golden.groupnet import GroupNet
    from golden.train import seed_everything
    from quant import bitstream as bitstream_io

    data = load_digits_split(0)
    seed_everything(0)
    model = GroupNet(channels=8, blocks=2, bases=1, decomposition="groupnet")
    kind_named("groupnet").train(model, as_images(data.x_train), data.y_train, 30, 0)
    return bitstream_io.write(model.to_bitstream(8, 8, meta={"network": "groupnet"}), path)


NETWORKS = {"mlp": ("digits-mlp", digits_mlp), "groupnet": ("groupnet-c8-k1", groupnet)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    from bnnforge.explore import explore, point_label
    from bnnforge.flows import format_table
    from quant.bitstream import atomic_write

    out = Path(args.out)
    result_path = out / "explore.json"
    results = json.loads(result_path.read_text()) if result_path.exists() else {}
    for net in args.networks:
        name, build = NETWORKS[net]
        bs = out / "explore" / f"{name}.bnn"
        if not bs.exists():
            print(f"training {name}", flush=True)
            build(bs)
        for w in args.workers:
            sweep_dir = out / "explore" / f"{name}-{w}w"
            shutil.rmtree(sweep_dir, ignore_errors=True)
            t0 = time.monotonic()
            r = explore(bs, sweep_dir, workers=w,
                        progress=lambda d, n, running: print(f"  {name}, {w} workers: {d}/{n} "
                                                             f"points ({running} running)",
                                                             flush=True))
            wall = time.monotonic() - t0
            points = [{k: p.get(k) for k in ("target_cycles", "lanes", "cycles_per_input",
                                             "mismatches", "logic_slots", "ff", "bram", "dsp",
                                             "fmax_mhz", "inputs_per_second", "seconds",
                                             "error")} for p in r["points"]]
            results[f"{name}-{w}w"] = {"network": name, "workers": w, "engine": r["engine"],
                                       "wall_seconds": wall, "points": points,
                                       "pareto_logic": r["pareto_logic"],
                                       "pareto_bram": r["pareto_bram"]}
            print(f"{name} on {w} worker(s): {wall:.0f} s ({r['engine']})")
            print(format_table([dict(p, rule=point_label(p)) for p in r["points"]], [
                ("rule", "folding", "{}"), ("lanes", "lanes", "{}"),
                ("cycles_per_input", "cycles", "{:.1f}"), ("mismatches", "mismatches", "{}"),
                ("logic_slots", "logic slots", "{}"), ("bram", "BRAM", "{}"),
                ("dsp", "DSP", "{}"), ("fmax_mhz", "Fmax MHz", "{:.1f}"),
                ("inputs_per_second", "inputs/s", "{:.3g}"), ("seconds", "s", "{:.0f}"),
                ("error", "error", "{}")]), flush=True)
            atomic_write(result_path,
                         lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    for net in args.networks:
        name = NETWORKS[net][0]
        walls = {w: results[f"{name}-{w}w"]["wall_seconds"] for w in args.workers
                 if f"{name}-{w}w" in results}
        print(f"{name}: " + ", ".join(f"{w} worker(s) {s:.0f} s" for w, s in walls.items()))
    print(f"wrote {result_path}")


if __name__ == "__main__":
    main()
