"""Simulated vs model cycles of the demo-sized network (192 -> 256 -> 256 -> 10) at several
foldings, bit-exact against golden. Writes build/bench/foldings.json and prints a table.

    .venv/bin/python benchmarks/foldings.py [--simulator icarus|verilator] [--vectors N]
                                            [--targets 16 64 256]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bnnforge.flows import format_table
from bnnforge.kinds.mlp import generate_dense, simulate_dense
from hw.folding import choose_for_target
from hw.network import layer_shapes
from quant.bitstream import Bitstream, DenseLayer
from sim.cycles import measure


def demo_sized_network(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [192, 256, 256, 10]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        t = None if i == 2 else rng.integers(a // 2 - 8, a // 2 + 8, size=b)
        layers.append(DenseLayer(f"fc{i}", rng.integers(0, 2, (b, a), dtype=np.uint8), t))
    return Bitstream(layers, {"features": 192}).validate()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--simulator", default="verilator", choices=("icarus", "verilator"))
    p.add_argument("--vectors", type=int, default=64)
    p.add_argument("--targets", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    net = demo_sized_network()
    x = np.random.default_rng(1).integers(0, 2, (args.vectors, 192), dtype=np.uint8)
    rows, layer_rows = [], []
    for target in args.targets:
        folding = choose_for_target(layer_shapes(net), target)
        design = Path(args.out) / f"foldings-t{target}"
        t0 = time.monotonic()
        info = generate_dense(net, folding, design)
        result = simulate_dense(net, design, x, args.simulator)
        c = measure(result["runs"][0], info)
        rows.append({"target": target, "mismatches": result["mismatches"],
                     "cycles_simulated": c["interval"], "cycles_model": info["cycles_per_vector"],
                     "ratio": c["interval"] / info["cycles_per_vector"],
                     "latency": c["latency"], "latency_model": info["latency"],
                     "wall_seconds": time.monotonic() - t0})
        for b, f in zip(c["blocks"], info["folding"]):
            layer_rows.append({"target": target, "name": b["name"], "pe": f["pe"],
                               "simd": f["simd"], "cycles_simulated": b["cycles_simulated"],
                               "cycles_model": b["cycles_model"],
                               "ratio": b["cycles_simulated"] / b["cycles_model"]})
    print(format_table(rows, [("target", "target", "{}"), ("mismatches", "mismatches", "{}"),
                              ("cycles_simulated", "cycles/vector sim", "{:.2f}"),
                              ("cycles_model", "model", "{}"), ("ratio", "sim/model", "{:.3f}"),
                              ("latency", "latency", "{}"),
                              ("latency_model", "latency model", "{}"),
                              ("wall_seconds", "wall s", "{:.1f}")]))
    print(format_table(layer_rows, [("target", "target", "{}"), ("name", "layer", "{}"),
                                    ("pe", "PE", "{}"), ("simd", "SIMD", "{}"),
                                    ("cycles_simulated", "busy cycles sim", "{:.2f}"),
                                    ("cycles_model", "model", "{}"),
                                    ("ratio", "sim/model", "{:.3f}")]))
    out = Path(args.out) / "foldings.json"
    out.write_text(json.dumps({"simulator": args.simulator, "vectors": args.vectors,
                               "networks": rows, "layers": layer_rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
