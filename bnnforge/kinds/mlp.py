"""The binary MLP: dense binary layers, thresholds, integer scores at the end; one vector a
transfer through a pipeline of folded matrix-vector-threshold units."""

import json
from pathlib import Path

import numpy as np

from .base import NetworkKind, folding_json

__all__ = ["MlpKind", "generate_dense", "simulate_dense", "measure_layers"]


def generate_dense(bitstream, folding, out_dir, reg_every=1, checksum=None, family=None,
                   beat_width=None):
    """Write the dense network's Verilog, memory files, folding and description to ``out_dir``
    (``beat_width``: narrow ports, :class:`hw.axis.AxisTop`)."""
    from hw.folding import check_folding, folding_table
    from hw.generate import check_output_dir, design_info, write_design
    from hw.network import dense_network, layer_shapes
    from quant.layout import memory_files
    from ..flows import TOP_NAME

    shapes = layer_shapes(bitstream)
    check_folding(shapes, folding)
    check_output_dir(out_dir)
    top = dense_network(bitstream, folding, reg_every, family, beat_width)
    files = {}
    for layer in bitstream.layers:
        files.update(memory_files(layer, folding[layer.name]))
    table = folding_table(shapes, folding)
    info = design_info(top, TOP_NAME, "dense-network",
                       {"reg_every": reg_every, "family": family, "bitstream_checksum": checksum,
                        "folding": table})
    write_design(out_dir, top, TOP_NAME, files, info, {"folding.json": folding_json(table)})
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
    from sim.vectors import from_beats, pack_inputs, pack_outputs, to_beats, unpack_outputs
    from ..flows import mismatched

    info = json.loads((Path(design_dir) / "design.json").read_text())
    golden = IntegerNetwork(bitstream)(torch.from_numpy(np.asarray(input_bits))).numpy()
    expected = pack_outputs(golden, info)
    inputs = pack_inputs(input_bits)
    bw = info.get("beat_width")
    if bw:
        # Narrow ports: beats on the bus, whole vectors (stamped at their first beat) after.
        inputs, expected = (to_beats(inputs, bw, info["beats_in"]),
                            to_beats(expected, bw, info["beats_out"]))
    result = run_vectors(design_dir, inputs, expected, simulator=simulator,
                         stall_modes=stall_modes, waves=waves, progress=progress, seed=seed)
    if bw:
        expected = from_beats(expected, bw, info["beats_out"])
        for run in result["runs"]:
            words = from_beats([int(v, 16) for v in run["outputs"]], bw, info["beats_out"])
            run.update(outputs=[f"{v:x}" for v in words], t_in=run["t_in"][::info["beats_in"]],
                       t_out=run["t_out"][::info["beats_out"]])
    hardware = unpack_outputs([int(v, 16) for v in result["runs"][0]["outputs"]], info)
    result.update(info=info, golden=golden, hardware=hardware,
                  mismatches=len(mismatched(result, expected, lambda i: i)))
    return result


def measure_layers(bitstream, folding, input_bits, simulator, out_dir, reg_every=1,
                   family=None, progress=None):
    """Each layer's cycles per vector, measured: the layer alone in its own AXI4-Stream top,
    its input never starved (the source offers a vector in every cycle) and its output never
    blocked (the sink is always ready), fed the golden model's activations of ``input_bits``;
    the cycles per vector are the spacing of its output handshakes, so a layer slower than its
    model shows. Each layer's outputs are checked against the golden model too.

    Returns one row a layer: ``{name, cycles_measured, cycles_model, ratio, latency,
    latency_model, vectors, mismatches}``."""
    import torch

    from golden.integer import IntegerNetwork
    from quant.bitstream import Bitstream
    from sim.cycles import measure

    _, outs = IntegerNetwork(bitstream)(torch.from_numpy(np.asarray(input_bits)), trace=True)
    inputs = [np.asarray(input_bits)] + [o.numpy() for o in outs[:-1]]
    rows = []
    for k, (layer, x) in enumerate(zip(bitstream.layers, inputs)):
        sub = Bitstream([layer], {"features": layer.cols}).validate()
        design = Path(out_dir) / layer.name
        info = generate_dense(sub, {layer.name: folding[layer.name]}, design, reg_every,
                              family=family)
        result = simulate_dense(sub, design, x, simulator)
        c = measure(result["runs"][0], info)
        rows.append({"name": layer.name, "cycles_measured": c["interval"],
                     "cycles_model": info["cycles_per_vector"],
                     "ratio": (c["interval"] / info["cycles_per_vector"]
                               if c["interval"] is not None else None),
                     "latency": c["latency"], "latency_model": info["latency"],
                     "vectors": len(x), "mismatches": result["mismatches"]})
        if progress:
            progress(k + 1, len(bitstream.layers))
    return rows


class MlpKind(NetworkKind):
    name, bitstream_kind, model_kind = "mlp", "dense", "mlp"
    target_unit = "vector"
    narrow_ports = True

    def train(self, model, x, y, epochs, seed=0, progress=None):
        from golden.mlp import TRAINING
        from golden.train import train_classifier

        return train_classifier(model, x, y, epochs=epochs, seed=seed, threads=1,
                                progress=progress, **TRAINING)

    def export(self, model, input_spec, meta=None):
        return model.to_bitstream(input_spec, meta)

    def load(self, bitstream):
        from golden.integer import IntegerNetwork

        return IntegerNetwork(bitstream)

    def shapes(self, bitstream):
        from hw.network import layer_shapes

        return layer_shapes(bitstream)

    def generate(self, bitstream, folding, out_dir, reg_every=1, family=None, checksum=None,
                 beat_width=None):
        return generate_dense(bitstream, folding, out_dir, reg_every, checksum, family,
                              beat_width)

    def random_inputs(self, bitstream, n, rng):
        return rng.integers(0, 2, size=(n, bitstream.input["features"]), dtype=np.uint8)

    def simulate(self, bitstream, design_dir, inputs, simulator, **kwargs):
        return simulate_dense(bitstream, design_dir, inputs, simulator, **kwargs)

    def software(self, bitstream, inputs):
        from ..demo import software_timing

        return software_timing(bitstream, inputs)

    def report_rows(self, result, info):
        from sim.cycles import measure

        rows = []
        for run in result["runs"]:
            c = measure(run, info)
            rows.append({"mode": run["mode"], "latency": c["latency"], "interval": c["interval"],
                         "model": c["model_interval"], "cycles": c["total_cycles"]})
        c = measure(result["runs"][0], info)
        return [(rows, [("mode", "stall mode", "{}"), ("latency", "latency", "{}"),
                        ("interval", "cycles/vector", "{:.2f}"), ("model", "model", "{}"),
                        ("cycles", "total cycles", "{}")]),
                (c["blocks"], [("name", "layer", "{}"),
                               ("cycles_simulated", "busy cycles/vector", "{:.2f}"),
                               ("cycles_model", "model", "{}")])]

    def describe(self, bitstream):
        return [{"name": l.name, "kind": "dense", "shape": f"{l.rows}x{l.cols}",
                 "output": l.output, "weight_bits": l.rows * l.cols,
                 "encoding": "packed bits, LSB first",
                 "threshold_width": l.threshold_width if l.output == "bits" else None}
                for l in bitstream.layers], {}

    def demo(self, args):
        from ..demo import run_demo

        out = args.out or "build/demo"
        report = run_demo(out_dir=out, simulator=args.simulator, clock_mhz=args.clock_mhz,
                          epochs=args.epochs or 40, seed=args.seed,
                          target_cycles=args.target_cycles or 64, images=args.images,
                          synth=args.synth, shards=args.shards, scheduler=args.scheduler)
        return report, report["mismatches"] + report["layer_mismatches"], out
