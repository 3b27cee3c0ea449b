"""``bnnforge demo --network cnn``: a small binary CNN on the scikit-learn digits, built from the
Python API (:mod:`golden.cnn`): trained, exported, generated, the whole test split simulated,
and the cycles set beside software."""

import time
from pathlib import Path

import numpy as np

from quant import bitstream as bitstream_io
from .flows import format_table
from .kinds.cnn import generate_cnn, op_cycles
from .progress import Progress, step
from .reports import (shards_markdown, shard_words, SYNTH_TARGET, clock_entry, pick_simulator, seconds_per_item,
                      synth_design, synth_markdown, write_reports)

__all__ = ["run_cnn_demo", "DEFAULT_TARGET"]

DEFAULT_TARGET = 256
"""Folding target of the demo: cycles an image."""


def run_cnn_demo(out_dir="build/demo-cnn", simulator=None, clock_mhz=200.0, epochs=20, seed=0,
                 target_cycles=None, images=None, synth=False, shards=None, scheduler=None):
    """The whole flow; returns the report (also written as JSON and Markdown). ``shards``:
    the test split simulated in that many shards on Dask (``scheduler`` or a LocalCluster)."""
    import torch

    from golden.cnn import IntegerCnn, digits_cnn
    from golden.digits import load_digits_split
    from golden.train import accuracy, seed_everything
    from .kinds import kind_named

    started = time.monotonic()
    out_dir = Path(out_dir)
    target_cycles = target_cycles or DEFAULT_TARGET
    simulator, note = pick_simulator(simulator, clock_mhz)
    step("loading the scikit-learn digits (1,797 real 8x8 images, shipped with scikit-learn)")
    data = load_digits_split(seed)
    x_train = data.x_train.reshape(-1, 1, 8, 8).astype(np.int64)   # pixels 0..16: 5 bits
    x_test = data.x_test.reshape(-1, 1, 8, 8).astype(np.int64)
    y_test = data.y_test
    if images is not None:
        x_test, y_test = x_test[:images], y_test[:images]

    kind = kind_named("cnn")
    seed_everything(seed)
    model = digits_cnn()
    step(f"training a binary CNN ({_describe(model)}) for {epochs} epochs (seed {seed})")
    bar = Progress("epoch")
    kind.train(model, x_train.astype(np.float32), data.y_train, epochs, seed,
               progress=lambda e, n, loss: bar.update(e, n, f"loss {loss:.4f}"))
    acc_float = accuracy(model, x_test.astype(np.float32), y_test)

    bs_path = out_dir / "digits-cnn.bnn"
    bitstream_io.write(kind.export(model, meta={"network": "cnn", "dataset": "sklearn-digits",
                                                "seed": seed}), bs_path)
    bs = bitstream_io.read(bs_path)
    golden_scores = IntegerCnn(bs)(x_test).numpy()
    acc_golden = float((golden_scores.argmax(1) == y_test).mean())
    family = SYNTH_TARGET[0] if synth else None
    folding = kind.fold(bs, target_cycles=target_cycles)
    design = out_dir / "verilog"
    step(f"generating {design} (at most {target_cycles} cycles an image)")
    info = generate_cnn(bs, folding, design, family=family, checksum=bs.checksum)
    step(f"simulating {len(x_test)} test images on {simulator}"
         + shard_words(shards, scheduler))
    bar = Progress("images")
    t0 = time.monotonic()
    from .shards import simulate_test_set
    from sim.cycles import pooled_interval

    result = simulate_test_set(kind, bs, bs_path, design, folding, x_test, simulator, shards,
                               family, scheduler,
                               progress=lambda done, _: bar.update(done, len(x_test)))
    wall = time.monotonic() - t0
    acc_hw = float((result["hardware"].argmax(1) == y_test).mean())
    t_out = result["runs"][0]["t_out"]
    cycles = pooled_interval([run["t_out"] for run in result["runs"]])
    synth_r = synth_design(design, clock_mhz, cycles) if synth else None
    clock = clock_entry(clock_mhz, synth_r)
    with torch.no_grad():
        net = IntegerCnn(bs)
        software = {"torch_seconds_per_image": seconds_per_item(lambda: net(x_test),
                                                                len(x_test), 3),
                    "torch_threads": torch.get_num_threads(), "batch": len(x_test),
                    "scope": "the integer golden model (PyTorch, float64 convolutions)"}
    hw_seconds = cycles / (clock["mhz"] * 1e6) if cycles else None
    report = {
        "network": "cnn", "dataset": "sklearn-digits", "architecture": _describe(model),
        "simulator": simulator, "simulator_note": note, "epochs": epochs, "seed": seed,
        "accuracy": {"float": acc_float, "golden": acc_golden, "hardware": acc_hw},
        "images": int(len(y_test)), "mismatches": int(result["mismatches"]),
        "target_cycles": target_cycles, "cycles_per_image": cycles,
        "cycles_per_image_source": "measured at the output handshakes (steady state)",
        "cycles_per_image_model": info["cycles_per_frame"],
        "latency_cycles": t_out[0] - result["runs"][0]["t_in"][0] if t_out else None,
        "layers": [dict(r, **{k: f[k] for k in ("pe", "simd")})
                   if (f := next((f for f in info["folding"] if f["name"] == r["name"]), None))
                   else r for r in op_cycles(result, info)],
        "folding": info["folding"], "family": family, "synth": synth_r, "clock": clock,
        "hw_seconds_per_image": hw_seconds, "software": software,
        "speedup_vs_torch": (software["torch_seconds_per_image"] / hw_seconds
                             if hw_seconds else None),
        "shards": result["shards"], "engine": result["engine"],
        "simulation_wall_seconds": wall, "demo_wall_seconds": time.monotonic() - started,
        "files": {"bitstream": str(bs_path), "verilog": str(design),
                  "simulator_log": result["log"]}}
    summary = _summary(report)
    write_reports(out_dir, report, summary)
    print(summary)
    return report


def _describe(model):
    from golden.cnn import BatchNormSign, Flatten

    parts = []
    for m in model:
        if isinstance(m, (BatchNormSign, Flatten)):
            continue
        name = type(m).__name__
        if getattr(m, "weight", None) is not None and m.weight.dim() == 4:
            parts.append(f"{name} {m.weight.shape[1]}->{m.weight.shape[0]} k{m.weight.shape[-1]}"
                         f" p{m.padding}")
        elif hasattr(m, "out_features"):
            parts.append(f"{name} {m.in_features}->{m.out_features}")
        else:
            parts.append(f"{name} {m.kernel_size}")
    return ", ".join(parts)


def _summary(r):
    a = r["accuracy"]
    rows = [{"what": "accuracy (float / golden / hardware)",
             "value": f"{a['float']:.4f} / {a['golden']:.4f} / {a['hardware']:.4f}"},
            {"what": "mismatches (hardware vs golden)", "value": f"{r['mismatches']} of "
                                                                 f"{r['images']} images"},
            {"what": "cycles/image (measured / model)",
             "value": f"{r['cycles_per_image']:.1f} / {r['cycles_per_image_model']}"},
            {"what": "latency (cycles, measured)", "value": str(r["latency_cycles"])},
            {"what": f"hardware s/image at {r['clock']['mhz']:.4g} MHz ({r['clock']['source']})",
             "value": f"{r['hw_seconds_per_image']:.3g}"},
            {"what": "PyTorch golden s/image on this CPU",
             "value": f"{r['software']['torch_seconds_per_image']:.3g}"}]
    layers = format_table(r["layers"], [
        ("name", "op", "{}"), ("op", "kind", "{}"), ("pe", "PE", "{}"), ("simd", "SIMD", "{}"),
        ("cycles_simulated", "busy cycles/image", "{:.1f}"), ("cycles_model", "model", "{}")])
    return "\n".join([
        "# bnnforge demo: a binary CNN on the scikit-learn digits", "",
        f"{r['architecture']}; trained {r['epochs']} epochs (seed {r['seed']}), folded for at "
        f"most {r['target_cycles']} cycles an image, the test split simulated on "
        f"{r['simulator']}" + (f" ({r['simulator_note']})" if r["simulator_note"] else "") + ".",
        "", "```", format_table(rows, [("what", "", "{}"), ("value", "", "{}")]), "```", "",
        "Per op (busy cycles of its slowest block, measured at the blocks' busy ports, beside "
        "the model):", "", "```", layers, "```", "", *shards_markdown(r),
        "Hardware time is the measured cycles per image at the clock: \"placed\" is the Fmax "
        "the design reached after place and route, \"target\" a clock no placed design has "
        "reached (" + r["clock"]["note"] + ").", "",
        *(["## Resources and Fmax (`--synth`)", "", *synth_markdown([("CNN", r["synth"])]), ""]
          if r["synth"] else []),
        f"Whole demo {r['demo_wall_seconds']:.1f} s.", ""])
