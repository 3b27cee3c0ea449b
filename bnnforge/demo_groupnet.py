"""``bnnforge demo --network groupnet``: a small Group-Net CNN on the scikit-learn digits with
K = 1, 3 and 5 bases, K = 3 with 2-bit activations, and K = 3 with 2-bit activations in two
ResNet stages (16 and 32 channels, a stride-2 unit and a down-sampling shortcut between them):
trained, exported, generated, the whole test split simulated, and the cycles set beside
software."""

import time
from pathlib import Path

import numpy as np

from quant import bitstream as bitstream_io
from .reports import (shards_markdown, shard_words, SYNTH_TARGET, clock_entry, pick_simulator, seconds_per_item,
                      synth_design, synth_markdown, write_reports)
from .flows import format_table, resolve_folding
from .kinds.groupnet import generate_groupnet
from .progress import Progress, step

__all__ = ["run_groupnet_demo"]


def software_timing(host, images):
    from golden.groupnet import bitpacked_popcounts, fixed_forward, torch_popcounts

    codes = host.stem_codes(images)
    n = len(images)
    return {
        "torch_seconds_per_image": seconds_per_item(
            lambda: fixed_forward(host.params, codes, popcounts=torch_popcounts), n, 3),
        "numpy_bitpacked_seconds_per_image": seconds_per_item(
            lambda: fixed_forward(host.params, codes, popcounts=bitpacked_popcounts), n, 3),
        "scope": "the binary groups in fixed point (stem and classifier excluded, as in hardware)",
        "batch": n}


def _run_k(bases, data, out_dir, simulator, args, progress_label, act_bits=None, stages=None):
    from golden.groupnet import GroupNet, HostParts
    from golden.train import accuracy, seed_everything
    from sim.cycles import pooled_interval
    from .kinds import kind_named
    from .shards import simulate_test_set

    k_dir = out_dir / (f"k{bases}" + (f"-a{act_bits}" if act_bits else "")
                       + ("-s" + "-".join(map(str, stages)) if stages else ""))
    acts = f"{act_bits}-bit activations" if act_bits else "binary activations"
    shape = (f"stages of {', '.join(map(str, stages))} channels (stride-2 units with "
             f"down-sampling shortcuts), {args['blocks']} blocks each" if stages else
             f"{args['channels']} channels, {args['blocks']} blocks")
    step(f"K = {bases}, {acts}: training a Group-Net ({shape}, soft connections) for "
         f"{args['epochs']} epochs")
    seed_everything(args["seed"])
    model = GroupNet(channels=args["channels"], blocks=args["blocks"], bases=bases,
                     decomposition="groupnet", act_bits=act_bits, stages=stages)
    bar = Progress("epoch")
    kind_named("groupnet").train(model, data["x_train"], data["y_train"], args["epochs"],
                                 args["seed"],
                                 progress=lambda e, n, loss: bar.update(e, n, f"loss {loss:.4f}"))
    acc_float = accuracy(model, data["x_test"], data["y_test"])
    bs_path = k_dir / "groupnet.bnn"
    bitstream_io.write(model.to_bitstream(8, 8, meta={"network": "groupnet", "bases": bases,
                                                      "dataset": "sklearn-digits"}), bs_path)
    bs = bitstream_io.read(bs_path)
    host = HostParts(bs)
    folding = resolve_folding(bs, target_cycles=args["target_cycles"])
    family = SYNTH_TARGET[0] if args["synth"] else None
    info = generate_groupnet(bs, folding, k_dir / "verilog", family=family,
                             checksum=bs.checksum)
    step(f"K = {bases}: simulating {len(data['x_test'])} test images on {simulator}"
         + shard_words(args["shards"], args["scheduler"]))
    bar = Progress(progress_label)
    t0 = time.monotonic()
    pixels = info["out_height"] * info["out_width"]      # output pixels an image
    n_images = len(data["x_test"])
    result = simulate_test_set(
        kind_named("groupnet"), bs, bs_path, k_dir / "verilog", folding, data["x_test"],
        simulator, args["shards"], family, args["scheduler"],
        # on this machine progress counts output pixels, on Dask images
        progress=lambda d, n: bar.update(d // pixels if n > n_images else d, n_images))
    wall = time.monotonic() - t0
    y = data["y_test"]
    runs = result["runs"]
    layers = []
    for i, g in enumerate(info["groups"]):
        # the last output pixel of each image; intervals pooled over the shards' runs
        layers.append({"name": g["name"], "bases": g["bases"],
                       "shared_first_unit": g["shared_first_unit"],
                       "cycles_simulated": pooled_interval([r["fires"][i] for r in runs],
                                                           g["out_pixels"]),
                       "cycles_model": g["cycles_model"]})
    cycles_per_image = pooled_interval([r["t_out"] for r in runs], pixels)
    spec = bs.groupnet
    lanes = sum(f["lanes"] * (len(spec["groups"][int(f["name"][1:].split("_")[0])]["units"]))
                for f in info["folding"])
    synth = (synth_design(k_dir / "verilog", args["clock_mhz"], cycles_per_image)
             if args["synth"] else None)
    # With a synthesis result the hardware runs at the Fmax it achieved.
    clock = clock_entry(args["clock_mhz"], synth)
    hw_clock = clock["mhz"]
    return {
        "bases": bases, "act_bits": act_bits or 1,
        "accuracy": {"float": acc_float,
                     "golden": float((result["golden_predictions"] == y).mean()),
                     "hardware": float((result["predictions"] == y).mean())},
        "images": int(len(y)), "mismatches": int(result["mismatches"]),
        "layers": layers, "cycles_per_image": cycles_per_image,
        "cycles_per_image_model": info["cycles_per_frame"],
        "hw_seconds_per_image": cycles_per_image / (hw_clock * 1e6),
        "hw_clock_mhz": hw_clock, "clock": clock,
        "family": family, "synth": synth,
        "software": software_timing(host, data["x_test"]),
        "weight_bits": int(sum(np.asarray(u["weights"]).size for g in spec["groups"]
                               for base in g["units"] for u in base)),
        "lanes": lanes, "stages": list(stages) if stages else None,
        "folding": info["folding"], "simulation_wall_seconds": wall,
        "shards": result["shards"], "engine": result["engine"],
        "files": {"bitstream": str(bs_path), "verilog": str(k_dir / "verilog"),
                  "simulator_log": result["log"]},
    }


def run_groupnet_demo(out_dir="build/demo-groupnet", simulator=None, clock_mhz=200.0,
                      epochs=30, seed=0, target_cycles=1024, bases=(1, 3, 5), images=None,
                      channels=16, blocks=2, synth=False, shards=None, scheduler=None,
                      act_runs=((3, 2, None), (3, 2, (16, 32)))):
    """Train, export, generate and simulate one Group-Net for each K in ``bases`` (binary
    activations, one stage) and for each ``(K, bits, stages)`` of ``act_runs`` (K-bit
    activations with binary weights, supplement S4, the units' MVTUs taking multi-bit inputs;
    ``stages`` None or ResNet stages' channels, stride-2 units with down-sampling shortcuts
    starting each later stage); with ``synth``, synthesize each design
    (:func:`bnnforge.demo.synth_design`); with ``shards``, simulate each test split in that
    many shards on Dask."""
    from golden.digits import as_images, load_digits_split

    started = time.monotonic()
    out_dir = Path(out_dir)
    simulator, note = pick_simulator(simulator, clock_mhz)
    step("loading the scikit-learn digits (1,797 real 8x8 images, shipped with scikit-learn)")
    split = load_digits_split(seed)
    data = {"x_train": as_images(split.x_train), "y_train": split.y_train,
            "x_test": as_images(split.x_test), "y_test": split.y_test}
    if images is not None:
        data["x_test"], data["y_test"] = data["x_test"][:images], data["y_test"][:images]
    args = {"epochs": epochs, "seed": seed, "target_cycles": target_cycles,
            "clock_mhz": clock_mhz, "channels": channels, "blocks": blocks, "synth": synth,
            "shards": shards, "scheduler": scheduler}
    runs = [_run_k(k, data, out_dir, simulator, args, "images") for k in bases]
    runs += [_run_k(k, data, out_dir, simulator, args, "images", act_bits=a, stages=st)
             for k, a, st in act_runs]
    report = {"network": "groupnet", "dataset": "sklearn-digits", "simulator": simulator,
              "simulator_note": note, "clock_mhz": clock_mhz, "target_cycles": target_cycles,
              "channels": channels, "blocks": blocks, "decomposition": "groupnet",
              "runs": runs, "demo_wall_seconds": time.monotonic() - started}
    for run in runs:
        s = run["software"]
        run["speedup_vs_numpy_bitpacked"] = s["numpy_bitpacked_seconds_per_image"] / \
            run["hw_seconds_per_image"]
    summary = _summary(report)
    write_reports(out_dir, report, summary)
    print(summary)
    return report


def _summary(r):
    synthesized = any(x.get("synth") for x in r["runs"])
    rows = [{"bases": x["bases"], "acts": x.get("act_bits", 1),
             "stages": "/".join(map(str, x["stages"])) if x.get("stages") else
             str(r["channels"]), "float": x["accuracy"]["float"],
             "golden": x["accuracy"]["golden"], "hardware": x["accuracy"]["hardware"],
             "mismatches": x["mismatches"], "cycles": x["cycles_per_image"],
             "model": x["cycles_per_image_model"], "weight_bits": x["weight_bits"],
             "lanes": x["lanes"], "torch": x["software"]["torch_seconds_per_image"],
             "numpy": x["software"]["numpy_bitpacked_seconds_per_image"],
             "hw": x["hw_seconds_per_image"],
             "clock": f"{x['clock']['mhz']:.4g} ({x['clock']['source']})"} for x in r["runs"]]
    table = format_table(rows, [
        ("bases", "K", "{}"), ("acts", "act bits", "{}"), ("stages", "channels", "{}"),
        ("float", "acc float", "{:.4f}"), ("golden", "acc golden", "{:.4f}"),
        ("hardware", "acc hw", "{:.4f}"), ("mismatches", "mismatches", "{}"),
        ("cycles", "cycles/image sim", "{:.1f}"), ("model", "model", "{}"),
        ("weight_bits", "weight bits", "{}"), ("lanes", "lanes", "{}"),
        ("clock", "clock MHz", "{}"), ("hw", "hw s/image", "{:.2e}"),
        ("torch", "torch s/image", "{:.2e}"), ("numpy", "numpy packed s/image", "{:.2e}")])
    return "\n".join([
        "# bnnforge demo: Group-Net on the scikit-learn digits", "",
        f"{r['channels']} channels, {r['blocks']} blocks (Group-Net decomposition, soft "
        f"connections), folding for at most {r['target_cycles']} cycles per image, simulated "
        f"on {r['simulator']}" + (f" ({r['simulator_note']})" if r["simulator_note"] else "")
        + ".", "", "```", table, "```", "",
        "hw s/image is the simulated cycles per image at the clock: \"placed\" is the Fmax "
        "the design reached after place and route, \"target\" a clock no placed design has "
        "reached (" + r["runs"][0]["clock"]["note"] + ").", "",
        *[line for x in r["runs"] for line in shards_markdown(x)],
        "Software times are the binary groups in fixed point on this CPU (PyTorch convolution "
        "or packed 64-bit words with np.bitwise_count; units with multi-bit activations use "
        "the convolution in both), batch of the test split. \"act bits\" > 1: binary "
        "weights with K-bit activations (supplement S4), the MVTUs taking multi-bit inputs "
        "(a popcount tree a bit plane).", "",
        *(["## Resources and Fmax (`--synth`)", "",
           *synth_markdown([(f"K = {x['bases']}", x["synth"]) for x in r["runs"]]), "",
           "Out of context at nextpnr's speed grade 6, the best of placement seeds 1 and 2; "
           "hw s/image then uses the achieved Fmax.", ""]
          if synthesized else []),
        f"Whole demo {r['demo_wall_seconds']:.1f} s.", ""])
