"""Group-Net: K binary bases per group in fixed point; the stem and classifier on the host, the
binary groups in hardware, one pixel of fixed-point codes a transfer."""

import json
from pathlib import Path

import numpy as np

from .base import NetworkKind, folding_json

__all__ = ["GroupNetKind", "generate_groupnet", "simulate_groupnet"]


def _shapes(bitstream):
    """``{g<g>_u<j>: (C, 9 Cin)}`` of each unit position (the bases share a folding)."""
    spec = bitstream.groupnet
    return {f"g{g}_u{j}": tuple(int(v) for v in np.asarray(unit["weights"]).shape)
            for g, group in enumerate(spec["groups"])
            for j, unit in enumerate(group["units"][0])}


def _output_pixels(bitstream):
    """``{g<g>_u<j>: output pixels}``: the map halves at every stride-2 unit."""
    spec = bitstream.groupnet
    h, w, out = spec["height"], spec["width"], {}
    for g, group in enumerate(spec["groups"]):
        for j, unit in enumerate(group["units"][0]):
            s = int(unit.get("stride", 1))
            h, w = h // s, w // s
            out[f"g{g}_u{j}"] = h * w
    return out


def generate_groupnet(bitstream, folding, out_dir, reg_every=1, family=None, checksum=None):
    """Write a Group-Net's binary part as Verilog (AXI4-Stream, one pixel a transfer)."""
    from golden.groupnet import HostParts
    from hw.folding import check_folding, folding_table
    from hw.generate import check_output_dir, design_info, write_design
    from hw.groupnet import groupnet_memory_files, groupnet_top
    from ..flows import TOP_NAME

    spec = bitstream.groupnet
    shapes = _shapes(bitstream)
    check_folding(shapes, folding)
    check_output_dir(out_dir)
    per_group = [[folding[f"g{g}_u{j}"] for j in range(len(group["units"][0]))]
                 for g, group in enumerate(spec["groups"])]
    params = HostParts(bitstream).params
    top = groupnet_top(params, spec["height"], spec["width"], per_group, reg_every, family)
    table = folding_table(shapes, folding)
    frame = max(b.cycles_per_frame for b in top.blocks)
    info = design_info(top, TOP_NAME, "groupnet", {
        "reg_every": reg_every, "family": family, "bitstream_checksum": checksum,
        "folding": table, "cycles_per_frame": frame,
        "groups": [{"name": b.name, "bases": b.bases, "shared_first_unit": b.shared,
                    "cycles_model": b.cycles_per_frame,
                    "out_pixels": b.out_size[0] * b.out_size[1]} for b in top.blocks],
        "channels": spec["channels"], "height": spec["height"], "width": spec["width"],
        "out_channels": top.blocks[-1].channels, "out_height": top.blocks[-1].out_size[0],
        "out_width": top.blocks[-1].out_size[1], "code_width": params["format"].width})
    write_design(out_dir, top, TOP_NAME, groupnet_memory_files(top), info,
                 {"folding.json": folding_json(table)})
    return json.loads((Path(out_dir) / "design.json").read_text())


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
    from ..flows import mismatched

    info = json.loads((Path(design_dir) / "design.json").read_text())
    host = HostParts(bitstream)
    codes = host.stem_codes(images)
    golden = fixed_forward(host.params, codes)
    n, c, h, w = golden.shape
    width = host.fmt.width
    expected = pack_signed_lanes(pixels(golden), width, info["lane_width"])
    result = run_vectors(design_dir, pack_pixels(codes, width), expected, simulator=simulator,
                         stall_modes=stall_modes, waves=waves, progress=progress, seed=seed)
    words = [int(v, 16) for v in result["runs"][0]["outputs"]]
    hardware = unpack_signed_lanes(words, c, width, info["lane_width"])
    hardware = hardware.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    result.update(info=info, golden=golden, hardware=hardware,
                  mismatches=len(mismatched(result, expected, lambda i: i // (h * w))),
                  predictions=host.head_logits(hardware).argmax(1).numpy(),
                  golden_predictions=host.head_logits(golden).argmax(1).numpy())
    return result


class GroupNetKind(NetworkKind):
    name, bitstream_kind, model_kind = "groupnet", "groupnet", "groupnet"
    target_unit = "image"
    output_unit = "pixel"

    def vectors_per_input(self, bitstream):
        return bitstream.groupnet["height"] * bitstream.groupnet["width"]

    def transfers_per_input(self, bitstream):
        """Output pixels an image: the last unit's map."""
        return list(_output_pixels(bitstream).values())[-1]

    def target_per_matrix(self, bitstream, target_cycles):
        """Units take ``height x width`` windows an image (the input map's)."""
        pixels = bitstream.groupnet["height"] * bitstream.groupnet["width"]
        return max(1, target_cycles // pixels)

    def fold(self, bitstream, folding_file=None, target_cycles=None, max_lanes=None):
        """As every kind folds; a cycle target is shared out by each unit's own output map
        (a unit after a stride-2 unit has a quarter of the windows, so four times the cycles
        a window)."""
        if target_cycles is None or folding_file is not None or max_lanes is not None:
            return super().fold(bitstream, folding_file, target_cycles, max_lanes)
        from hw.folding import choose_for_target

        shapes, pixels = _shapes(bitstream), _output_pixels(bitstream)
        out = {}
        for name, shape in shapes.items():
            out.update(choose_for_target({name: shape},
                                         max(1, target_cycles // pixels[name])))
        return out

    def train(self, model, x, y, epochs, seed=0, progress=None):
        from golden.groupnet import TRAINING
        from golden.train import train_classifier

        return train_classifier(model, x, y, epochs=epochs, seed=seed, threads=1,
                                progress=progress, **TRAINING)

    def export(self, model, input_spec, meta=None):
        return model.to_bitstream(input_spec["height"], input_spec["width"], meta=meta)

    def load(self, bitstream):
        from golden.groupnet import HostParts

        return HostParts(bitstream)

    def shapes(self, bitstream):
        return _shapes(bitstream)

    def generate(self, bitstream, folding, out_dir, reg_every=1, family=None, checksum=None):
        return generate_groupnet(bitstream, folding, out_dir, reg_every, family, checksum)

    def cycles_line(self, info):
        return f"cycles per image (model): {info['cycles_per_frame']}"

    def random_inputs(self, bitstream, n, rng):
        import numpy as np

        spec = bitstream.groupnet
        shape = (n, bitstream.input["images"]["channels"], spec["height"], spec["width"])
        return rng.random(shape, dtype=np.float32)

    def simulate(self, bitstream, design_dir, inputs, simulator, **kwargs):
        return simulate_groupnet(bitstream, design_dir, inputs, simulator, **kwargs)

    def software(self, bitstream, inputs):
        from ..demo_groupnet import software_timing

        return software_timing(self.load(bitstream), inputs)

    def report_rows(self, result, info):
        from sim.cycles import interval

        pixels = info.get("out_height", info["height"]) * info.get("out_width", info["width"])
        rows = [{"mode": run["mode"], "frame": interval(run["t_out"][::pixels]),
                 "model": info["cycles_per_frame"], "cycles": run["cycles"]}
                for run in result["runs"]]
        return [(rows, [("mode", "stall mode", "{}"), ("frame", "cycles/image", "{:.1f}"),
                        ("model", "model", "{}"), ("cycles", "total cycles", "{}")])]

    def describe(self, bitstream):
        import numpy as np

        spec = bitstream.groupnet

        def encoding(u):
            parts = [f"dilation {u['dilation']}"]
            if u.get("stride", 1) != 1:
                parts.append(f"stride {u['stride']}, 1x1 shortcut")
            if u.get("act"):
                parts.append(f"{u['act']['bits']}-bit activations")
            return ", ".join(parts)

        layers = [{"name": f"g{g}.b{k}.u{j}", "kind": "binary unit",
                   "shape": "x".join(map(str, np.asarray(u["weights"]).shape)),
                   "output": f"{spec['format']['width']}-bit codes",
                   "weight_bits": int(np.asarray(u["weights"]).size),
                   "encoding": encoding(u), "threshold_width": None}
                  for g, group in enumerate(spec["groups"])
                  for k, base in enumerate(group["units"]) for j, u in enumerate(base)]
        return layers, {"format": spec["format"],
                        "gates": [g["gate"] for g in spec["groups"]],
                        "lambdas": [np.asarray(g["lambdas"]).tolist() for g in spec["groups"]]}

    def demo(self, args):
        from ..demo_groupnet import run_groupnet_demo

        out = args.out or "build/demo-groupnet"
        report = run_groupnet_demo(
            out_dir=out, simulator=args.simulator, clock_mhz=args.clock_mhz,
            epochs=args.epochs or 30, seed=args.seed,
            target_cycles=args.target_cycles or 1024, images=args.images, synth=args.synth,
            shards=args.shards, scheduler=args.scheduler)
        return report, sum(r["mismatches"] for r in report["runs"]), out
