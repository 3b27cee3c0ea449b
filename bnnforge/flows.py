"""The flows behind the command line: folding, Verilog generation, simulation against golden."""

import json
from pathlib import Path

import numpy as np

from hw.folding import (check_folding, choose_for_lanes, choose_for_target, folding_table,
                        load_folding)
from hw.generate import check_output_dir, design_info, write_design
from hw.network import dense_network, layer_shapes
from quant.errors import FoldingError
from quant.layout import memory_files

__all__ = ["resolve_folding", "generate_dense", "simulate_dense", "format_table"]

TOP_NAME = "bnn_top"


def resolve_folding(bitstream, folding_file=None, target_cycles=None, max_lanes=None):
    """The network's folding from exactly one of a file, a cycle target or a lane budget."""
    given = [x is not None for x in (folding_file, target_cycles, max_lanes)]
    if sum(given) != 1:
        raise FoldingError("give exactly one of --folding FILE, --target-cycles N or "
                           "--max-lanes N (bnnforge never picks the slowest folding silently)")
    shapes = layer_shapes(bitstream)
    if folding_file is not None:
        return load_folding(folding_file, shapes)
    if target_cycles is not None:
        return choose_for_target(shapes, target_cycles)
    return choose_for_lanes(shapes, max_lanes)


def generate_dense(bitstream, folding, out_dir, reg_every=1, checksum=None):
    """Write the dense network's Verilog, memory files, folding and description to ``out_dir``."""
    shapes = layer_shapes(bitstream)
    check_folding(shapes, folding)
    check_output_dir(out_dir)
    top = dense_network(bitstream, folding, reg_every)
    files = {}
    for layer in bitstream.layers:
        files.update(memory_files(layer, folding[layer.name]))
    table = folding_table(shapes, folding)
    folding_json = json.dumps({"layers": [{k: r[k] for k in ("name", "pe", "simd")}
                                          for r in table]}, indent=2) + "\n"
    info = design_info(top, TOP_NAME, "dense-network",
                       {"reg_every": reg_every, "bitstream_checksum": checksum,
                        "folding": table})
    write_design(out_dir, top, TOP_NAME, files, info, {"folding.json": folding_json})
    return json.loads((Path(out_dir) / "design.json").read_text())


def simulate_dense(bitstream, design_dir, input_bits, simulator, stall_modes=("none",),
                   waves=None, progress=None, seed=0):
    """Run ``input_bits`` through the design and compare every output with the golden model.

    Returns the runner's result with ``info``, ``golden`` and ``hardware`` (``N x lanes``
    integer outputs of the first stall mode) and ``mismatches`` (vectors that differ in any
    stall mode).
    """
    import torch

    from golden.integer import IntegerNetwork
    from sim.runner import run_vectors
    from sim.vectors import pack_inputs, pack_outputs, unpack_outputs

    info = json.loads((Path(design_dir) / "design.json").read_text())
    golden = IntegerNetwork(bitstream)(torch.from_numpy(np.asarray(input_bits))).numpy()
    expected = pack_outputs(golden, info)
    result = run_vectors(design_dir, pack_inputs(input_bits), expected, simulator=simulator,
                         stall_modes=stall_modes, waves=waves, progress=progress, seed=seed)
    bad = set()
    for run in result["runs"]:
        got = [int(v, 16) for v in run["outputs"]]
        bad.update(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
        bad.update(range(len(got), len(expected)))
    hardware = unpack_outputs([int(v, 16) for v in result["runs"][0]["outputs"]], info)
    result.update(info=info, golden=golden, hardware=hardware, mismatches=len(bad))
    return result


def format_table(rows, columns):
    """A plain-text table of ``rows`` (dicts) with ``columns`` (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else fmt.format(r[k])) for k, _, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
