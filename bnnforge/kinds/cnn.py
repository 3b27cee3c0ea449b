"""General binary CNNs (convolutions, pooling, fully connected layers; a first layer over
multi-bit pixels): images in as pixels, one vector of class scores an image out."""

import json
from pathlib import Path

import numpy as np

from .base import NetworkKind, folding_json

__all__ = ["CnnKind", "generate_cnn", "simulate_cnn", "pack_images"]


def generate_cnn(bitstream, folding, out_dir, reg_every=1, family=None, checksum=None):
    """Write the CNN's Verilog, memory files, folding and description to ``out_dir``."""
    from hw.cnn import cnn_network, vectors_per_image
    from hw.network import layer_shapes
    from hw.folding import check_folding, folding_table
    from hw.generate import check_output_dir, design_info, write_design
    from quant.layout import memory_files
    from ..flows import TOP_NAME

    shapes = layer_shapes(bitstream)
    check_folding(shapes, folding)
    check_output_dir(out_dir)
    top, ops = cnn_network(bitstream, folding, reg_every, family)
    files = {}
    for layer in bitstream.layers:
        files.update(memory_files(layer, folding[layer.name]))
    table = folding_table(shapes, folding)
    vectors = vectors_per_image(bitstream)
    for row in table:
        row["vectors_per_image"] = vectors[row["name"]]
    inp = bitstream.cnn["input"]
    info = design_info(top, TOP_NAME, "cnn", {
        "reg_every": reg_every, "family": family, "bitstream_checksum": checksum,
        "folding": table, "ops": ops,
        "cycles_per_frame": max(op["cycles_model"] for op in ops),
        "height": inp["height"], "width": inp["width"], "channels": inp["channels"],
        "input_bits": inp["bits"]})
    write_design(out_dir, top, TOP_NAME, files, info, {"folding.json": folding_json(table)})
    return json.loads((Path(out_dir) / "design.json").read_text())


def pack_images(images, bits):
    """``N x C x H x W`` unsigned integers to one ``s_axis_tdata`` word a pixel (raster order,
    image after image; channel ``c`` at bits ``[c B, (c + 1) B)``)."""
    from sim.vectors import pack_signed_lanes, pixels

    return pack_signed_lanes(pixels(np.asarray(images, dtype=np.int64)), bits, bits)


def check_images(bitstream, images):
    """``images`` as an int64 array ``N x C x H x W`` in the input's range, or a clear error."""
    from quant.errors import BnnforgeError

    inp = bitstream.cnn["input"]
    shape = (inp["channels"], inp["height"], inp["width"])
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1:] != shape:
        raise BnnforgeError(f"the network takes N x {' x '.join(map(str, shape))} images, not an "
                            f"array of shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer) and not np.array_equal(x, np.round(x)):
        raise BnnforgeError("the network takes integer pixel values; these are not integers")
    x = x.astype(np.int64)
    top = (1 << inp["bits"]) - 1
    if x.size and (x.min() < 0 or x.max() > top):
        raise BnnforgeError(f"pixel values must be in [0, {top}] ({inp['bits']}-bit), found "
                            f"[{x.min()}, {x.max()}]")
    return x


def simulate_cnn(bitstream, design_dir, images, simulator, stall_modes=("none",), waves=None,
                 progress=None, seed=0):
    """Run ``images`` through the design; every image's scores compared with the golden
    model. Returns the runner's result with ``golden`` and ``hardware`` scores (first stall
    mode) and ``mismatches`` (images that differ in any stall mode)."""
    from golden.cnn import IntegerCnn
    from sim.runner import run_vectors
    from sim.vectors import pack_outputs, unpack_outputs
    from ..flows import mismatched

    info = json.loads((Path(design_dir) / "design.json").read_text())
    x = check_images(bitstream, images)
    golden = IntegerCnn(bitstream)(x).numpy()
    expected = pack_outputs(golden, info)
    result = run_vectors(design_dir, pack_images(x, info["input_bits"]), expected,
                         simulator=simulator, stall_modes=stall_modes, waves=waves,
                         progress=progress, seed=seed)
    hardware = unpack_outputs([int(v, 16) for v in result["runs"][0]["outputs"]], info)
    result.update(info=info, golden=golden, hardware=hardware,
                  mismatches=len(mismatched(result, expected, lambda i: i)))
    return result


def op_cycles(result, info):
    """One row an op: busy cycles an image of its slowest block (measured at the blocks'
    ``busy`` ports) beside the model; pooled over the runs of a sharded simulation."""
    runs = result["runs"]
    images = max(1, sum(len(run["t_out"]) for run in runs))
    busy = {b["name"]: sum(run["busy"][i] for run in runs)
            for i, b in enumerate(info["blocks"])}
    return [{"name": op["name"], "op": op["op"],
             "cycles_simulated": max(busy.get(b, 0) for b in op["blocks"]) / images,
             "cycles_model": op["cycles_model"]} for op in info["ops"]]


class CnnKind(NetworkKind):
    name, bitstream_kind, model_kind = "cnn", "cnn", "cnn"
    target_unit = "image"
    output_unit = "image"

    def fold(self, bitstream, folding_file=None, target_cycles=None, max_lanes=None):
        """A cycle target counts cycles an image: each matrix gets the target divided by the
        vectors it computes an image (its output positions)."""
        from hw.cnn import vectors_per_image
        from hw.folding import choose_for_target

        if target_cycles is None or folding_file is not None or max_lanes is not None:
            return super().fold(bitstream, folding_file, target_cycles, max_lanes)
        shapes = self.shapes(bitstream)
        vectors = vectors_per_image(bitstream)
        out = {}
        for name, shape in shapes.items():
            out.update(choose_for_target({name: shape}, max(1, target_cycles // vectors[name])))
        return out

    def vectors_per_input(self, bitstream):
        from hw.cnn import vectors_per_image

        return max(vectors_per_image(bitstream).values())

    def train(self, model, x, y, epochs, seed=0, progress=None):
        from golden.cnn import TRAINING
        from golden.train import train_classifier

        return train_classifier(model, x, y, epochs=epochs, seed=seed, threads=1,
                                progress=progress, **TRAINING)

    def export(self, model, input_spec=None, meta=None):
        return model.to_bitstream(meta)

    def load(self, bitstream):
        from golden.cnn import IntegerCnn

        return IntegerCnn(bitstream)

    def shapes(self, bitstream):
        from hw.network import layer_shapes

        return layer_shapes(bitstream)

    def generate(self, bitstream, folding, out_dir, reg_every=1, family=None, checksum=None):
        return generate_cnn(bitstream, folding, out_dir, reg_every, family, checksum)

    def cycles_line(self, info):
        return f"cycles per image (model): {info['cycles_per_frame']}"

    def random_inputs(self, bitstream, n, rng):
        inp = bitstream.cnn["input"]
        return rng.integers(0, 1 << inp["bits"],
                            size=(n, inp["channels"], inp["height"], inp["width"]))

    def simulate(self, bitstream, design_dir, inputs, simulator, **kwargs):
        return simulate_cnn(bitstream, design_dir, inputs, simulator, **kwargs)

    def software(self, bitstream, inputs):
        from ..reports import seconds_per_item

        net = self.load(bitstream)
        x = check_images(bitstream, inputs)
        import torch

        return {"torch_seconds_per_image": seconds_per_item(lambda: net(x), len(x), 3),
                "torch_threads": torch.get_num_threads(), "batch": len(x)}

    def report_rows(self, result, info):
        from sim.cycles import interval

        rows = [{"mode": run["mode"], "frame": interval(run["t_out"]),
                 "model": info["cycles_per_frame"], "cycles": run["cycles"]}
                for run in result["runs"]]
        return [(rows, [("mode", "stall mode", "{}"), ("frame", "cycles/image", "{:.1f}"),
                        ("model", "model", "{}"), ("cycles", "total cycles", "{}")]),
                (op_cycles(result, info),
                 [("name", "op", "{}"), ("op", "kind", "{}"),
                  ("cycles_simulated", "busy cycles/image", "{:.1f}"),
                  ("cycles_model", "model", "{}")])]

    def describe(self, bitstream):
        from quant.cnn_format import cnn_shapes

        layers = []
        for r in cnn_shapes(bitstream.cnn, bitstream.layers):
            layer = r["layer"]
            shape = "x".join(map(str, r["out"][:3]))
            layers.append({
                "name": r["name"], "kind": r["op"],
                "shape": f"{layer.rows}x{layer.cols}" if layer else f"-> {shape}",
                "output": layer.output if layer else "bits",
                "weight_bits": layer.rows * layer.cols if layer else 0,
                "encoding": ("max of bits (OR)" if layer is None else
                             f"packed bits, LSB first; {layer.input_bits}-bit inputs"
                             if layer.input_bits > 1 else "packed bits, LSB first"),
                "threshold_width": layer.threshold_width if layer and layer.output == "bits"
                else None})
        return layers, {"input": bitstream.cnn["input"]}

    def demo(self, args):
        from ..demo_cnn import run_cnn_demo

        out = args.out or "build/demo-cnn"
        report = run_cnn_demo(out_dir=out, simulator=args.simulator, clock_mhz=args.clock_mhz,
                              epochs=args.epochs or 20, seed=args.seed,
                              target_cycles=args.target_cycles, images=args.images,
                              synth=args.synth, shards=args.shards,
                              scheduler=args.scheduler)
        return report, report["mismatches"], out
