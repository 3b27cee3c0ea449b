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

__all__ = ["network_shapes", "resolve_folding", "generate", "generate_dense",
           "generate_groupnet", "simulate_dense", "simulate_groupnet", "format_table"]

TOP_NAME = "bnn_top"


def network_shapes(bitstream):
    """``{name: (rows, cols)}`` of every folded matrix: dense layers, or a Group-Net's unit
    positions ``g<g>_u<j>`` (``C x 9C``, one folding shared by the bases)."""
    if bitstream.kind == "dense":
        return layer_shapes(bitstream)
    spec = bitstream.groupnet
    c = spec["channels"]
    return {f"g{g}_u{j}": (c, 9 * c) for g, group in enumerate(spec["groups"])
            for j in range(len(group["units"][0]))}


def resolve_folding(bitstream, folding_file=None, target_cycles=None, max_lanes=None):
    """The network's folding from exactly one of a file, a cycle target or a lane budget.

    The cycle target is per input vector for a dense network and per image (frame) for a
    Group-Net, whose units take ``height x width`` windows a frame."""
    given = [x is not None for x in (folding_file, target_cycles, max_lanes)]
    if sum(given) != 1:
        raise FoldingError("give exactly one of --folding FILE, --target-cycles N or "
                           "--max-lanes N (bnnforge never picks the slowest folding silently)")
    shapes = network_shapes(bitstream)
    if folding_file is not None:
        return load_folding(folding_file, shapes)
    if target_cycles is not None:
        if bitstream.kind == "groupnet":
            pixels = bitstream.groupnet["height"] * bitstream.groupnet["width"]
            target_cycles = max(1, target_cycles // pixels)
        return choose_for_target(shapes, target_cycles)
    return choose_for_lanes(shapes, max_lanes)


def generate(bitstream, folding, out_dir, reg_every=1, checksum=None, family=None):
    """Generate the design of a dense or Group-Net bitstream (see :func:`generate_dense` and
    :func:`generate_groupnet`); ``family`` is the target FPGA family (None: generic)."""
    if bitstream.kind == "groupnet":
        return generate_groupnet(bitstream, folding, out_dir, reg_every, family)
    return generate_dense(bitstream, folding, out_dir, reg_every, checksum, family)


def _folding_json(table):
    return json.dumps({"layers": [{k: r[k] for k in ("name", "pe", "simd")}
                                  for r in table]}, indent=2) + "\n"


def generate_groupnet(bitstream, folding, out_dir, reg_every=1, family=None):
    """Write a Group-Net's binary part as Verilog (AXI4-Stream, one pixel a transfer)."""
    from hw.groupnet import groupnet_memory_files, groupnet_top

    spec = bitstream.groupnet
    shapes = network_shapes(bitstream)
    check_folding(shapes, folding)
    check_output_dir(out_dir)
    per_group = [[folding[f"g{g}_u{j}"] for j in range(len(group["units"][0]))]
                 for g, group in enumerate(spec["groups"])]
    params = _groupnet_params(bitstream)
    top = groupnet_top(params, spec["height"], spec["width"], per_group, reg_every, family)
    table = folding_table(shapes, folding)
    frame = max(b.cycles_per_frame for b in top.blocks)
    info = design_info(top, TOP_NAME, "groupnet", {
        "reg_every": reg_every, "family": family, "folding": table, "cycles_per_frame": frame,
        "groups": [{"name": b.name, "bases": b.bases, "shared_first_unit": b.shared,
                    "cycles_model": b.cycles_per_frame} for b in top.blocks],
        "channels": spec["channels"], "height": spec["height"], "width": spec["width"],
        "code_width": params["format"].width})
    write_design(out_dir, top, TOP_NAME, groupnet_memory_files(top), info,
                 {"folding.json": _folding_json(table)})
    return json.loads((Path(out_dir) / "design.json").read_text())


def _groupnet_params(bitstream):
    from golden.groupnet import HostParts

    return HostParts(bitstream).params


def simulate_groupnet(bitstream, design_dir, images, simulator, stall_modes=("none",),
                      waves=None, progress=None, seed=0):
    """Stem on the host, groups in the simulated hardware, classifier on the host; every
    output pixel compared with the golden fixed-point model.

    Returns the runner's result with ``golden`` and ``hardware`` (``N x C x H x W`` codes of
    the first stall mode), ``mismatches`` (images with any differing pixel in any stall mode),
    ``predictions`` (hardware) and ``golden_predictions``.
    """
    from golden.groupnet import HostParts, fixed_forward
    from sim.runner import run_vectors
    from sim.vectors import pack_pixels, pack_signed_lanes, pixels, unpack_signed_lanes

    info = json.loads((Path(design_dir) / "design.json").read_text())
    host = HostParts(bitstream)
    codes = host.stem_codes(images)
    golden = fixed_forward(host.params, codes)
    n, c, h, w = golden.shape
    width = host.fmt.width
    expected = pack_signed_lanes(pixels(golden), width, info["lane_width"])
    result = run_vectors(design_dir, pack_pixels(codes, width), expected, simulator=simulator,
                         stall_modes=stall_modes, waves=waves, progress=progress, seed=seed)
    bad = set()
    for run in result["runs"]:
        got = [int(v, 16) for v in run["outputs"]]
        bad.update(i // (h * w) for i, (g, e) in enumerate(zip(got, expected)) if g != e)
        bad.update(i // (h * w) for i in range(len(got), len(expected)))
    words = [int(v, 16) for v in result["runs"][0]["outputs"]]
    hardware = unpack_signed_lanes(words, c, width, info["lane_width"])
    hardware = hardware.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    result.update(info=info, golden=golden, hardware=hardware, mismatches=len(bad),
                  predictions=host.head_logits(hardware).argmax(1).numpy(),
                  golden_predictions=host.head_logits(golden).argmax(1).numpy())
    return result


def generate_dense(bitstream, folding, out_dir, reg_every=1, checksum=None, family=None):
    """Write the dense network's Verilog, memory files, folding and description to ``out_dir``."""
    shapes = layer_shapes(bitstream)
    check_folding(shapes, folding)
    check_output_dir(out_dir)
    top = dense_network(bitstream, folding, reg_every, family)
    files = {}
    for layer in bitstream.layers:
        files.update(memory_files(layer, folding[layer.name]))
    table = folding_table(shapes, folding)
    folding_json = _folding_json(table)
    info = design_info(top, TOP_NAME, "dense-network",
                       {"reg_every": reg_every, "family": family, "bitstream_checksum": checksum,
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


def generate_sparse(weights, thresholds, max_voxels, coord_bits, folding, out_dir, name="ssc",
                    kind="ssc", output="bits", offsets=1, family=None):
    """Write one binary sparse layer (``kind`` ssc, down or up; search in hardware) as Verilog
    with voxel framing on tuser/tlast; ``output`` bits (thresholds) or sums; ``offsets``
    kernel offsets a cycle; ``family`` the target FPGA family (None: generic)."""
    from hw.axis import AxisTop
    from hw.sparse import SparseLayer

    check_output_dir(out_dir)
    conv = SparseLayer(kind, weights, thresholds, max_voxels, coord_bits, folding, output=output,
                       offsets=offsets, family=family)
    conv.name = name
    top = AxisTop([conv], sparse=True)
    info = design_info(top, TOP_NAME, f"sparse-{kind}", {
        "layer_kind": kind, "output": output, "out_width": conv.out_width,
        "sum_width": conv.sum_width, "max_voxels": max_voxels, "coord_bits": coord_bits,
        "cin": conv.cin, "cout": conv.cout, "pe": folding.pe, "simd": folding.simd,
        "folds_per_pair": conv.folds, "offsets": offsets, "family": family})
    write_design(out_dir, top, TOP_NAME, {}, info)
    return json.loads((Path(out_dir) / "design.json").read_text())


def sparse_error_messages(run, frames, info):
    """The hardware's error beats (tuser = marker | error) as messages naming the frame and the
    limit it broke."""
    from hw.sparse import ERROR_TOO_MANY, ERROR_UNSORTED

    messages, frame = [], 0
    for word, (last, user) in zip(run["outputs"], run["framing"]):
        if user == 3:
            code = (int(word, 16) >> info.get("out_width", info["cout"])) & (
                (1 << info["coord_bits"]) - 1)
            n = len(frames[frame][0]) if frame < len(frames) else "?"
            if code == ERROR_TOO_MANY:
                messages.append(f"frame {frame}: {n} voxels exceed the design's limit of "
                                f"{info['max_voxels']}; generate it with a larger max_voxels "
                                f"or split the frame")
            elif code == ERROR_UNSORTED:
                messages.append(f"frame {frame}: voxel keys are not strictly increasing "
                                f"(unsorted or duplicate voxels); sort and merge the frame "
                                f"(golden.sparse.sort_frame, voxelize)")
            else:
                messages.append(f"frame {frame}: hardware error code {code}")
        frame += int(last)
    return messages


def simulate_sparse(design_dir, frames, weights, thresholds, simulator, stall_modes=("none",),
                    waves=None, progress=None, seed=0):
    """Run voxel frames through a sparse layer design and compare every output beat (vector,
    coordinates, framing) with golden. ``frames``: ``(coords, feature bits)`` for ssc/down,
    ``(coarse coords, coarse feature bits, fine coords)`` for up; ``thresholds`` None for a
    design that outputs sums. Returns the runner's result with ``mismatches`` (frames with any
    difference), ``pairs`` per frame, ``frame_cycles`` per frame (first input beat to last
    output beat, stall mode none), ``search_cycles`` and ``outputs`` (per frame, the
    hardware's bits or sums, N x Cout)."""
    from golden.sparse import sparse_layer_rows, sparse_layer_sums
    from sim.runner import run_vectors
    from sim.voxels import layer_beats, unpack_sums

    info = json.loads((Path(design_dir) / "design.json").read_text())
    kind = info.get("layer_kind", "ssc")
    bits, cin, cout = info["coord_bits"], info["cin"], info["cout"]
    sw = info.get("sum_width") if thresholds is None else None
    maps = [sparse_layer_rows(kind, f, bits) for f in frames]
    golden = [sparse_layer_sums(kind, f, weights, bits, rows) for f, rows in zip(frames, maps)]
    data, framing, want, want_framing = layer_beats(kind, frames, weights, thresholds, bits,
                                                    cin, sw, golden)
    per_site = 28 * info["folds_per_pair"] + 8
    result = run_vectors(design_dir, data, want, simulator=simulator, stall_modes=stall_modes,
                         waves=waves, progress=progress, seed=seed, framing=framing,
                         expected_framing=want_framing,
                         max_cycles=10_000 + 4 * sum(len(f[0]) + len(f[-1]) for f in frames)
                         * per_site)
    sizes = [max(1, len(c)) for c, _ in golden]
    ends = np.cumsum(sizes)
    bad = set()
    for run in result["runs"]:
        got = [int(v, 16) for v in run["outputs"]]
        for i, (g, e, gf, ef) in enumerate(zip(got, want, run["framing"], want_framing)):
            if g != e or list(gf) != list(ef):
                bad.add(int(np.searchsorted(ends, i, side="right")))
        bad.update(int(np.searchsorted(ends, i, side="right"))
                   for i in range(len(got), len(want)))
    quiet = result["runs"][0]
    in_sizes = [sum(max(1, len(p)) for p in ((f[0], f[2]) if kind == "up" else (f[0],)))
                for f in frames]
    in_ends = np.cumsum(in_sizes)
    in_starts = np.concatenate([[0], in_ends[:-1]])
    words = [int(v, 16) for v in quiet["outputs"]]
    mask = (1 << info["out_width"]) - 1
    outputs, start = [], 0
    for (coords, _), n in zip(golden, sizes):
        vec = [w & mask for w in words[start:start + len(coords)]]
        start += n
        if thresholds is None:
            outputs.append(unpack_sums(vec, sw, cout))
        else:
            outputs.append(np.array([[(v >> j) & 1 for j in range(cout)] for v in vec],
                                    dtype=np.uint8).reshape(len(vec), cout))
    result["errors"] = sparse_error_messages(quiet, frames, info)
    result.update(info=info, mismatches=len(bad), pairs=[len(rows) for _, rows in maps],
                  outputs=outputs,
                  frame_cycles=[quiet["t_out"][e - 1] - quiet["t_in"][s] + 1
                                for s, e in zip(in_starts, ends) if e <= len(quiet["t_out"])],
                  search_cycles=quiet.get("search_cycles"))
    return result
