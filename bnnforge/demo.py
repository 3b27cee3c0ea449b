"""``bnnforge demo``: train a binary MLP on the scikit-learn digits, export, generate Verilog,
simulate the whole test split through the network top and report cycles beside software."""

import time
from pathlib import Path

import numpy as np

from quant import bitstream as bitstream_io
from .flows import format_table, resolve_folding
from .kinds.mlp import generate_dense, measure_layers
from .progress import Progress, step
from .reports import (shard_words, shards_markdown, SYNTH_TARGET, clock_entry, clock_words, pick_simulator,
                      seconds_per_item, synth_design, synth_markdown, write_reports)

__all__ = ["run_demo", "software_timing"]

DEFAULT_LEVELS = (4, 8, 12)
DEFAULT_HIDDEN = (256, 256)

def software_timing(bitstream, input_bits, repeats=5):
    """Seconds per image of the PyTorch integer golden model and of the bit-packed NumPy
    kernel, each on the whole batch, best of ``repeats`` runs averaged over their inner loop."""
    import torch

    from golden.bitpacked import BitpackedNetwork
    from golden.integer import IntegerNetwork

    n = len(input_bits)
    torch_net = IntegerNetwork(bitstream)
    x_t = torch.from_numpy(np.asarray(input_bits))
    numpy_net = BitpackedNetwork(bitstream)
    return {"torch_seconds_per_image": seconds_per_item(lambda: torch_net(x_t), n, repeats),
            "numpy_bitpacked_seconds_per_image": seconds_per_item(lambda: numpy_net(input_bits),
                                                                  n, repeats),
            "torch_threads": torch.get_num_threads(), "batch": n}


LAYER_COLUMNS = [("name", "layer", "{}"), ("rows", "rows", "{}"), ("cols", "cols", "{}"),
                 ("pe", "PE", "{}"), ("simd", "SIMD", "{}"),
                 ("cycles_measured", "cycles measured", "{:.2f}"),
                 ("cycles_model", "cycles model", "{}"), ("ratio", "measured/model", "{:.3f}"),
                 ("busy_per_vector", "busy/vector (utilisation)", "{:.1f}")]

LAYER_VECTORS = 32
"""Vectors each layer gets when measured alone."""


def run_demo(out_dir="build/demo", simulator=None, clock_mhz=200.0, epochs=40, seed=0,
             target_cycles=64, levels=DEFAULT_LEVELS, hidden=DEFAULT_HIDDEN, images=None,
             synth=False, shards=None, scheduler=None):
    """The whole flow; returns the report dictionary (also written as JSON and Markdown).
    ``shards``: the test split simulated in that many shards on Dask (``scheduler`` or a
    LocalCluster), outputs and cycles merged.
    ``synth``: generate for :data:`SYNTH_TARGET`, synthesize and place-and-route the design and
    report its resources, Fmax and the hardware time per image at that Fmax."""
    import torch

    from golden.digits import input_spec, load_digits_split, thermometer
    from golden.integer import IntegerNetwork, predict
    from golden.mlp import BinaryMLP
    from golden.train import accuracy, seed_everything
    from .kinds import kind_named
    from sim.cycles import measure_runs
    from .shards import simulate_test_set

    started = time.monotonic()
    out_dir = Path(out_dir)
    simulator, fallback_note = pick_simulator(simulator, clock_mhz)

    step("loading the scikit-learn digits (1,797 real 8x8 images, shipped with scikit-learn)")
    data = load_digits_split(seed)
    x_train, x_test = thermometer(data.x_train, levels), thermometer(data.x_test, levels)
    y_test = data.y_test
    if images is not None:
        x_test, y_test = x_test[:images], y_test[:images]
    sizes = [x_train.shape[1], *hidden, 10]

    step(f"training a binary MLP {' -> '.join(map(str, sizes))} for {epochs} epochs "
         f"(seed {seed})")
    seed_everything(seed)
    model = BinaryMLP(sizes)
    bar = Progress("epoch")
    # The kind's recipe, on one thread: the trained network does not depend on the core count.
    kind_named("mlp").train(model, x_train, data.y_train, epochs, seed,
                            progress=lambda e, n, loss: bar.update(e, n, f"loss {loss:.4f}"))
    acc_float = accuracy(model, x_test, y_test)

    step("exporting the weight bitstream")
    bs_path = out_dir / "digits-mlp.bnn"
    bitstream_io.write(model.to_bitstream(input_spec(levels), {"network": "mlp",
                                                               "dataset": "sklearn-digits",
                                                               "seed": seed}), bs_path)
    bs = bitstream_io.read(bs_path)
    golden_scores = IntegerNetwork(bs)(torch.from_numpy(x_test)).numpy()
    acc_golden = float((predict(golden_scores).numpy() == y_test).mean())

    folding = resolve_folding(bs, target_cycles=target_cycles)
    family = SYNTH_TARGET[0] if synth else None
    step(f"generating Verilog (folding chosen for at most {target_cycles} cycles a layer"
         + (f", for {family}" if family else "") + ")")
    info = generate_dense(bs, folding, out_dir / "verilog", family=family, checksum=bs.checksum)
    print(format_table(info["folding"], [("name", "layer", "{}"), ("pe", "PE", "{}"),
                                         ("simd", "SIMD", "{}"), ("lanes", "lanes", "{}"),
                                         ("cycles", "cycles/image", "{}")]))

    step(f"simulating {len(x_test)} test images through the network top on {simulator}"
         + (f" ({fallback_note})" if fallback_note else "") + shard_words(shards, scheduler))
    t_sim = time.monotonic()
    bar = Progress("images")
    result = simulate_test_set(kind_named("mlp"), bs, bs_path, out_dir / "verilog", folding,
                               x_test, simulator, shards, family, scheduler,
                               progress=lambda d, n: bar.update(d, n))
    sim_wall = time.monotonic() - t_sim
    hw_scores = result["hardware"]
    acc_hw = float((hw_scores.argmax(axis=1) == y_test).mean())
    cyc = measure_runs(result["runs"], info)

    n_layer = min(len(x_test), LAYER_VECTORS)
    # Cycles do not depend on the simulator; Icarus builds a small design in seconds where
    # Verilator compiles for minutes.
    from sim.runner import available_simulators
    layer_sim = "icarus" if "icarus" in available_simulators() else simulator
    step(f"measuring each layer alone on {layer_sim}: its own top, input never starved, output "
         f"never blocked, {n_layer} vectors of the golden model's activations")
    bar = Progress("layers")
    alone = measure_layers(bs, folding, x_test[:n_layer], layer_sim, out_dir / "layers",
                           family=family, progress=lambda d, n: bar.update(d, n))

    step("timing the same network in software on this CPU")
    soft = software_timing(bs, x_test)
    cycles_per_image = cyc["interval"] if cyc["interval"] is not None else cyc["latency"]
    synth_entry = synth_design(out_dir / "verilog", clock_mhz, cycles_per_image) if synth else None
    # With a synthesis result the hardware runs at the Fmax it achieved.
    clock = clock_entry(clock_mhz, synth_entry)
    hw_clock = clock["mhz"]
    hw_seconds = cycles_per_image / (hw_clock * 1e6)
    layers = []
    for b, t, a in zip(cyc["blocks"], info["folding"], alone):
        layers.append({"name": b["name"], "rows": t["rows"], "cols": t["cols"], "pe": t["pe"],
                       "simd": t["simd"], "cycles_measured": a["cycles_measured"],
                       "cycles_model": a["cycles_model"], "ratio": a["ratio"],
                       "latency_alone": a["latency"], "latency_alone_model": a["latency_model"],
                       "mismatches_alone": a["mismatches"], "vectors_alone": a["vectors"],
                       "busy_per_vector": b["cycles_simulated"]})
    report = {
        "network": "mlp", "sizes": sizes, "dataset": "sklearn-digits",
        "input_encoding": {"kind": "thermometer", "levels": list(levels)},
        "accuracy": {"float": acc_float, "golden": acc_golden, "hardware": acc_hw},
        "images": int(len(x_test)), "mismatches": int(result["mismatches"]),
        "layer_mismatches": sum(l["mismatches_alone"] for l in layers),
        "simulator": simulator, "simulator_note": fallback_note, "layers": layers,
        "layer_simulator": layer_sim,
        "cycles_per_image": cycles_per_image,
        "cycles_per_image_model": info["cycles_per_vector"],
        "latency_cycles": cyc["latency"], "latency_cycles_model": info["latency"],
        "total_cycles": cyc["total_cycles"], "clock_mhz": clock_mhz,
        "clock": clock, "hw_clock_mhz": hw_clock,
        "hw_seconds_per_image": hw_seconds, "software": soft,
        "speedup_vs_numpy_bitpacked": soft["numpy_bitpacked_seconds_per_image"] / hw_seconds,
        "speedup_vs_torch": soft["torch_seconds_per_image"] / hw_seconds,
        "simulation_wall_seconds": sim_wall,
        "shards": result["shards"], "engine": result["engine"],
        "family": family, "synth": synth_entry,
        "demo_wall_seconds": time.monotonic() - started,
        "files": {"bitstream": str(bs_path), "verilog": str(out_dir / "verilog"),
                  "simulator_log": result["log"]},
    }
    table = format_table(layers, LAYER_COLUMNS)
    summary = _summary(report, table)
    write_reports(out_dir, report, summary)
    print(summary)
    return report


def _summary(r, table):
    a, s = r["accuracy"], r["software"]
    return "\n".join([
        "# bnnforge demo: binary MLP on the scikit-learn digits", "",
        f"Network {' -> '.join(map(str, r['sizes']))}, thermometer input levels "
        f"{r['input_encoding']['levels']}, simulated on {r['simulator']}"
        + (f" ({r['simulator_note']})" if r["simulator_note"] else "") + ".", "",
        "| accuracy (test split) | value |", "|---|---|",
        f"| float (PyTorch) | {a['float']:.4f} |", f"| golden integer | {a['golden']:.4f} |",
        f"| hardware (simulated) | {a['hardware']:.4f} |", "",
        f"Images simulated: {r['images']}; mismatches with the golden integer model: "
        f"**{r['mismatches']}** (and {r['layer_mismatches']} in the layers simulated alone).",
        "", *shards_markdown(r),
        "```", table, "```", "",
        f"Cycles measured: each layer alone in its own top on {r['layer_simulator']}, its "
        "input never starved and its output never blocked, from the spacing of its output "
        "handshakes. Busy: the cycles "
        "in which the layer issued work in the whole network, per vector (utilisation, equal "
        "to the model by construction).", "",
        *[f"**{l['name']} is slower than its model: {l['cycles_measured']:.2f} cycles per "
          f"vector measured, {l['cycles_model']} modelled.**" for l in r["layers"]
          if l["ratio"] is not None and l["ratio"] > 1.0],
        *([""] if any(l["ratio"] is not None and l["ratio"] > 1.0 for l in r["layers"])
          else []),
        f"Cycles per image: {r['cycles_per_image']:.2f} simulated, "
        f"{r['cycles_per_image_model']} model; latency {r['latency_cycles']} cycles "
        f"(model {r['latency_cycles_model']}).", "",
        "| per image | seconds | hardware speed-up |", "|---|---|---|",
        f"| hardware {clock_words(r['clock'])} | {r['hw_seconds_per_image']:.3e} | 1 |",
        f"| PyTorch golden (CPU, {s['torch_threads']} threads, batch {s['batch']}) | "
        f"{s['torch_seconds_per_image']:.3e} | {r['speedup_vs_torch']:.1f}x |",
        f"| bit-packed NumPy (np.bitwise_count, batch {s['batch']}) | "
        f"{s['numpy_bitpacked_seconds_per_image']:.3e} | "
        f"{r['speedup_vs_numpy_bitpacked']:.1f}x |", "",
        *(["## Resources and Fmax (`--synth`)", "",
           *synth_markdown([("network top", r["synth"])]), "",
           "Out of context at nextpnr's speed grade 6, the best of placement seeds "
           f"{', '.join(str(k) for k in (r['synth'].get('fmax_by_seed') or {1: 0}))}; the "
           "hardware time per image at the achieved Fmax "
           "uses the simulated cycles per image.", ""] if r.get("synth") else []),
        f"Simulation wall time {r['simulation_wall_seconds']:.1f} s; whole demo "
        f"{r['demo_wall_seconds']:.1f} s.", ""])
