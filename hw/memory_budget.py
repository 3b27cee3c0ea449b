"""The on-chip memory a generated design needs, against a device: every memory of the Verilog
(bits, and the block RAMs it takes in the cheapest aspect ratio), the block-RAM cells the design
instantiates by hand, and whether the memories can fit the device at all.

The fit rule is a proof of *not* fitting, not a promise of fitting: a design whose memories hold
more bits than the device's block RAM and LUT RAM together cannot be placed, whatever the tools
do, and ``bnnforge synth`` refuses it before Yosys runs (a 14 Mbit sparse frame store once ran
Yosys for four minutes into a WebAssembly out-of-memory error). Block counts are the estimate of
one memory alone in its best aspect ratio; Yosys may pack differently or put small memories in
LUTs.
"""

import re

__all__ = ["BLOCK_RAMS", "DISTRIBUTED", "memories", "budget", "budget_lines"]

BLOCK_RAMS = {
    # cell, bits a cell, (depth, width) aspect ratios, LUT RAM bits per LUT4 of the device
    "ecp5": {"cell": "DP16KD", "bits": 18432,
             "modes": [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)],
             # one LUT4 in eight is a RAM LUT of 16 bits (the LFE5U-85F: 10,455 of 83,640)
             "lut_ram_bits_per_lut": 2},
    "ice40": {"cell": "SB_RAM40_4K", "bits": 4096,
              "modes": [(2048, 2), (1024, 4), (512, 8), (256, 16)], "lut_ram_bits_per_lut": 0},
}

_DECL = re.compile(r"^\s*reg \[(\d+):0\] ([\w$\\.]+) \[(\d+):(\d+)\];")
_ATTR = re.compile(r"^\s*\(\*.*\*\)\s*$")
DISTRIBUTED = {"ram_style": "distributed"}
"""The attributes of a memory that Yosys must put in LUT RAM (``memory_libmap`` reads
``ram_style``); :func:`budget` counts such a memory's bits, but no block RAM."""


def memories(verilog):
    """``[{name, width, depth, bits, lut_ram}]`` of every memory declared in ``verilog``
    (``lut_ram``: declared with ``ram_style = "distributed"`` among the attributes before
    it)."""
    out, attrs = [], []
    for line in verilog.splitlines():
        if _ATTR.match(line):
            attrs.append(line)
            continue
        found = _DECL.match(line)
        if found:
            msb, name, hi, lo = found.groups()
            width, depth = int(msb) + 1, abs(int(hi) - int(lo)) + 1
            lut = any(re.search(r'ram_style\s*=\s*"distributed"', a) for a in attrs)
            out.append({"name": name, "width": width, "depth": depth, "bits": width * depth,
                        "lut_ram": lut})
        attrs = []
    return out


def _blocks(width, depth, family, lut_ram=False):
    if lut_ram:
        return 0
    return min(-(-depth // d) * -(-width // w) for d, w in BLOCK_RAMS[family]["modes"])


def budget(verilog, family="ecp5", device="85k"):
    """The memory budget of a design's Verilog on ``device`` of ``family`` (names as
    ``bnnforge synth`` takes them)."""
    from .synth import FAMILIES

    fam = BLOCK_RAMS[family]
    part, luts, _ff, cells, _dsp = FAMILIES[family]["devices"][device]
    mems = memories(verilog)
    for m in mems:
        m["blocks"] = _blocks(m["width"], m["depth"], family, m["lut_ram"])
    by_hand = len(re.findall(rf"^\s*{fam['cell']} #\(", verilog, re.M))
    bits = sum(m["bits"] for m in mems) + by_hand * fam["bits"]
    bram_bits = cells * fam["bits"]
    lut_bits = luts * fam["lut_ram_bits_per_lut"]
    blocks = sum(m["blocks"] for m in mems) + by_hand
    fits = bits <= bram_bits + lut_bits
    return {"family": family, "device": device, "part": part,
            "memories": sorted(mems, key=lambda m: -m["bits"]),
            "cells_by_hand": by_hand, "bits": bits, "block_ram_estimate": blocks,
            "device_block_rams": cells, "device_block_ram_bits": bram_bits,
            "device_lut_ram_bits": lut_bits, "fits": fits,
            "reason": None if fits else (
                f"its memories hold {bits:,} bits; the {part} has {bram_bits:,} bits of block "
                f"RAM ({cells} {fam['cell']}) and about {lut_bits:,} of LUT RAM")}


def budget_lines(b, top=5):
    """A few lines for the terminal: the total against the device and the largest memories."""
    cell = BLOCK_RAMS[b["family"]]["cell"]
    lines = [f"on-chip memory: {b['bits']:,} bits, about {b['block_ram_estimate']} {cell} "
             f"(the {b['part']} has {b['device_block_rams']}, {b['device_block_ram_bits']:,} "
             f"bits, and about {b['device_lut_ram_bits']:,} bits of LUT RAM)"
             + ("" if b["fits"] else ": DOES NOT FIT")]
    for m in b["memories"][:top]:
        lines.append(f"  {m['name']}: {m['depth']} x {m['width']} = {m['bits']:,} bits, "
                     + ("LUT RAM" if m["lut_ram"] else f"{m['blocks']} {cell}"))
    if len(b["memories"]) > top:
        rest = b["memories"][top:]
        lines.append(f"  {len(rest)} more memories: {sum(m['bits'] for m in rest):,} bits")
    if b["cells_by_hand"]:
        lines.append(f"  {b['cells_by_hand']} {cell} instantiated by hand (weights)")
    return lines
