"""The ``bnnforge`` command: a thin layer over the flows.

User errors (:class:`quant.errors.BnnforgeError`) print one line and exit with status 2; a
failed simulation exits with status 1.
"""

import argparse
import sys
from pathlib import Path

from quant.errors import BnnforgeError

__all__ = ["main"]


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def _family(args):
    return None if args.family == "generic" else args.family


def _add_folding(p):
    g = p.add_argument_group("folding (exactly one)")
    g.add_argument("--folding", metavar="FILE", type=Path,
                   help='JSON {"layers": [{"name", "pe", "simd"}, ...]}')
    g.add_argument("--target-cycles", metavar="N", type=_positive_int,
                   help="fewest lanes per layer with at most N cycles per vector")
    g.add_argument("--max-lanes", metavar="N", type=_positive_int,
                   help="best throughput with at most N lanes (PE x SIMD) per layer")
    p.add_argument("--reg-every", metavar="K", type=_positive_int, default=1,
                   help="adder levels between pipeline registers in popcount trees (default 1)")
    p.add_argument("--family", choices=("generic", "ecp5", "ice40"), default="generic",
                   help="target FPGA family: ecp5 counts with carry-cell popcount trees where "
                        "they win (simulation models are written beside the Verilog); generic "
                        "designs suit any family and simulator (default generic)")


def _cmd_demo(args):
    if args.network == "bscnet":
        from .demo_bscnet import run_bscnet_demo

        if args.synth:
            raise BnnforgeError("--synth applies to the mlp and groupnet demos; synthesize a "
                                "BSC-Net layer with `bnnforge verilog BITSTREAM -o DIR "
                                "--family ecp5` and `bnnforge synth DIR/LAYER`")

        out = args.out or "build/demo-bscnet"
        report = run_bscnet_demo(out_dir=out, simulator=args.simulator,
                                 voxel_size=args.voxel_size, epochs=args.epochs or 40,
                                 seed=args.seed, clock_mhz=args.clock_mhz)
        bad = report["mismatches"]
    elif args.network == "groupnet":
        from .demo_groupnet import run_groupnet_demo

        out = args.out or "build/demo-groupnet"
        report = run_groupnet_demo(
            out_dir=out, simulator=args.simulator, clock_mhz=args.clock_mhz,
            epochs=args.epochs or 30, seed=args.seed,
            target_cycles=args.target_cycles or 1024, images=args.images, synth=args.synth)
        bad = sum(r["mismatches"] for r in report["runs"])
    else:
        from .demo import run_demo

        out = args.out or "build/demo"
        report = run_demo(out_dir=out, simulator=args.simulator, clock_mhz=args.clock_mhz,
                          epochs=args.epochs or 40, seed=args.seed,
                          target_cycles=args.target_cycles or 64, images=args.images,
                          synth=args.synth)
        bad = report["mismatches"]
    print(f"reports: {Path(out) / 'report.json'}, {Path(out) / 'report.md'}")
    return 0 if bad == 0 else 1


def _load(path):
    from quant.bitstream import read

    return read(path)


def _print_folding(info):
    from .flows import format_table

    print(format_table(info["folding"], [("name", "layer", "{}"), ("rows", "rows", "{}"),
                                         ("cols", "cols", "{}"), ("pe", "PE", "{}"),
                                         ("simd", "SIMD", "{}"), ("lanes", "lanes", "{}"),
                                         ("cycles", "cycles/vector", "{}")]))


def _cmd_verilog(args):
    from .flows import generate, resolve_folding

    bs = _load(args.bitstream)
    if bs.kind == "bscnet":
        return _verilog_bscnet(args, bs)
    folding = resolve_folding(bs, args.folding, args.target_cycles, args.max_lanes)
    info = generate(bs, folding, args.output, args.reg_every, family=_family(args))
    _print_folding(info)
    print(f"wrote {args.output / info['verilog']}, {len(info['memory_files'])} memory files, "
          f"{args.output / 'folding.json'} and {args.output / 'design.json'}")
    if info["kind"] == "groupnet":
        print(f"cycles per image (model): {info['cycles_per_frame']}")
    else:
        print(f"cycles per vector (model): {info['cycles_per_vector']}; latency: "
              f"{info['latency']}")
    return 0


def _verilog_bscnet(args, bs):
    """One design directory per binary SSC / down / up layer (sums out; batch-norm, residuals
    and the real-valued layers run on the host)."""
    from golden.bscnet import from_bitstream
    from .demo_bscnet import _layer_level, layer_design
    from .flows import format_table

    if args.folding or args.target_cycles or args.max_lanes:
        print("note: BSC-Net layers use PE = min(Cout, 16), SIMD = Cin; folding options are "
              "ignored")
    net = from_bitstream(bs)
    rows = []
    for name, conv in net.binary_layers():
        level = _layer_level(name)
        if conv.kind == "pointwise":
            rows.append({"name": name, "kind": conv.kind, "where": "host (1x1, no search)"})
            continue
        bits = max(2, args.coord_bits - level)
        design, folding = layer_design(conv, name, level, bits, args.max_voxels, args.output,
                                       _family(args))
        rows.append({"name": name, "kind": conv.kind, "cin": conv.cin, "cout": conv.cout,
                     "pe": folding.pe, "simd": folding.simd, "bits": bits,
                     "where": str(design)})
    print(format_table(rows, [("name", "layer", "{}"), ("kind", "kind", "{}"),
                              ("cin", "Cin", "{}"), ("cout", "Cout", "{}"), ("pe", "PE", "{}"),
                              ("simd", "SIMD", "{}"), ("bits", "coord bits", "{}"),
                              ("where", "design", "{}")]))
    print(f"wrote {sum(1 for r in rows if 'pe' in r)} layer designs under {args.output} "
          f"(max {args.max_voxels} voxels a frame)")
    return 0


def _sim_bscnet(args, bs):
    """The frog frame through the network, binary encoder layers in hardware."""
    from golden.bscnet import from_bitstream
    from .demo_bscnet import _frame, hardware_layer_names, simulate_bscnet, _summary_table
    from .progress import step

    net = from_bitstream(bs)
    size = int(bs.input.get("voxel_size", 9))
    frame, feats, labels = _frame(size, (0, 0, 0), net.cfg["levels"])
    out = args.output or Path("build") / "sim" / Path(args.bitstream).stem
    names = hardware_layer_names(net)
    step(f"frog frame at voxel size {size} ({frame.size(0)} sites): {len(names)} binary layers "
         f"on {args.simulator}, the others on the host")
    rows, bad, acc, seconds = simulate_bscnet(net, frame, feats, labels, out, args.simulator,
                                              200.0, names)
    print(_summary_table(rows))
    ok = bad == 0
    print(f"{'PASS' if ok else 'FAIL'}: {len(rows)} layers, {bad} mismatches with the golden "
          f"model; accuracy with the hardware's sums {acc:.4f}; simulation {seconds:.0f} s")
    return 0 if ok else 1


def _cmd_sim(args):
    import numpy as np

    from sim.cycles import measure
    from .flows import format_table, generate, resolve_folding, simulate_dense
    from .progress import Progress, step

    bs = _load(args.bitstream)
    if bs.kind == "bscnet":
        return _sim_bscnet(args, bs)
    folding = resolve_folding(bs, args.folding, args.target_cycles, args.max_lanes)
    out = args.output or Path("build") / "sim" / Path(args.bitstream).stem
    step(f"generating {out}")
    info = generate(bs, folding, out, args.reg_every, family=_family(args))
    _print_folding(info)
    if bs.kind == "groupnet":
        return _sim_groupnet(args, bs, info, out)
    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 2, size=(args.vectors, info["in_width"]), dtype=np.uint8)
    step(f"simulating {args.vectors} random vectors on {args.simulator}, stall modes "
         f"{', '.join(args.stall)}")
    bar = Progress("vectors")
    result = simulate_dense(bs, out, x, args.simulator, stall_modes=args.stall,
                            waves=args.waves, progress=lambda d, n: bar.update(d, n),
                            seed=args.seed)
    rows = []
    for run in result["runs"]:
        c = measure(run, info)
        rows.append({"mode": run["mode"], "latency": c["latency"], "interval": c["interval"],
                     "model": c["model_interval"], "cycles": c["total_cycles"]})
    print(format_table(rows, [("mode", "stall mode", "{}"), ("latency", "latency", "{}"),
                              ("interval", "cycles/vector", "{:.2f}"),
                              ("model", "model", "{}"), ("cycles", "total cycles", "{}")]))
    c = measure(result["runs"][0], info)
    print(format_table(c["blocks"], [("name", "layer", "{}"),
                                     ("cycles_simulated", "busy cycles/vector", "{:.2f}"),
                                     ("cycles_model", "model", "{}")]))
    return _verdict(result, f"{args.vectors} vectors", args.stall)


def _sim_groupnet(args, bs, info, out):
    import numpy as np

    from sim.cycles import interval
    from .flows import format_table, simulate_groupnet
    from .progress import Progress, step

    spec = bs.groupnet
    shape = (args.vectors, bs.input["images"]["channels"], spec["height"], spec["width"])
    images = np.random.default_rng(args.seed).random(shape, dtype=np.float32)
    pixels = spec["height"] * spec["width"]
    step(f"simulating {args.vectors} random images on {args.simulator}, stall modes "
         f"{', '.join(args.stall)} (stem and classifier on the host)")
    bar = Progress("pixels")
    result = simulate_groupnet(bs, out, images, args.simulator, stall_modes=args.stall,
                               waves=args.waves, progress=lambda d, n: bar.update(d, n),
                               seed=args.seed)
    rows = []
    for run in result["runs"]:
        rows.append({"mode": run["mode"], "frame": interval(run["t_out"][::pixels]),
                     "model": info["cycles_per_frame"], "cycles": run["cycles"]})
    print(format_table(rows, [("mode", "stall mode", "{}"),
                              ("frame", "cycles/image", "{:.1f}"),
                              ("model", "model", "{}"), ("cycles", "total cycles", "{}")]))
    return _verdict(result, f"{args.vectors} images", args.stall)


def _verdict(result, what, stall):
    """Print the waveform's place and PASS/FAIL; the exit status."""
    if "waves" in result:
        print(f"waveform: {result['waves']}")
    ok = result["passed"] and result["mismatches"] == 0
    print(f"{'PASS' if ok else 'FAIL'}: {what} x {len(stall)} stall modes, "
          f"{result['mismatches']} mismatches with the golden model "
          f"(simulator log: {result['log']})")
    return 0 if ok else 1


def _cmd_quantize(args):
    from golden.bscnet import BSCNet, to_bitstream
    from golden.checkpoint import load_checkpoint
    from golden.groupnet import GroupNet
    from quant.bitstream import write

    model, spec, meta = load_checkpoint(args.checkpoint)
    if isinstance(model, BSCNet):
        bs = to_bitstream(model, spec, meta)
    elif isinstance(model, GroupNet):
        bs = model.to_bitstream(spec["height"], spec["width"], meta=meta)
    else:
        bs = model.to_bitstream(spec, meta)
    write(bs, args.output)
    print(f"wrote {args.output} ({bs.kind}, {args.output.stat().st_size} bytes)")
    return 0


def _cmd_inspect(args):
    import json
    import struct

    import numpy as np

    from quant.bitstream import read
    from .flows import format_table

    bs = read(args.bitstream)
    raw = args.bitstream.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    checksum = json.loads(raw[8:8 + n])["__metadata__"]["checksum"]
    if bs.kind == "dense":
        layers = [{"name": l.name, "kind": "dense", "shape": f"{l.rows}x{l.cols}",
                   "output": l.output, "weight_bits": l.rows * l.cols,
                   "encoding": "packed bits, LSB first",
                   "threshold_width": l.threshold_width if l.output == "bits" else None}
                  for l in bs.layers]
    elif bs.kind == "bscnet":
        layers = [{"name": l["name"], "kind": l["kind"],
                   "shape": "x".join(map(str, np.asarray(l["weights"]).shape)),
                   "output": "signed sums", "weight_bits": int(np.asarray(l["weights"]).size),
                   "encoding": "packed bits, slots*Cout rows", "threshold_width": None}
                  for l in bs.bscnet["layers"]]
    else:
        spec = bs.groupnet
        c = spec["channels"]
        layers = [{"name": f"g{g}.b{k}.u{j}", "kind": "binary unit",
                   "shape": f"{c}x{9 * c}", "output": f"{spec['format']['width']}-bit codes",
                   "weight_bits": 9 * c * c, "encoding": f"dilation {u['dilation']}",
                   "threshold_width": None}
                  for g, group in enumerate(spec["groups"])
                  for k, base in enumerate(group["units"]) for j, u in enumerate(base)]
    info = {"file": str(args.bitstream), "bytes": len(raw), "kind": bs.kind,
            "checksum": checksum, "input": bs.input, "meta": bs.meta, "layers": layers,
            "weight_bits": sum(l["weight_bits"] for l in layers)}
    if bs.kind == "bscnet":
        info["config"] = bs.bscnet["config"]
        info["host_tensors"] = len(bs.host)
    if bs.kind == "groupnet":
        info["format"] = bs.groupnet["format"]
        info["gates"] = [g["gate"] for g in bs.groupnet["groups"]]
        info["lambdas"] = [np.asarray(g["lambdas"]).tolist() for g in bs.groupnet["groups"]]
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{info['file']}: {info['kind']} network, {info['bytes']} bytes, {info['checksum']}")
    print(format_table(layers, [("name", "layer", "{}"), ("kind", "kind", "{}"),
                                ("shape", "shape", "{}"), ("output", "output", "{}"),
                                ("weight_bits", "weight bits", "{}"),
                                ("encoding", "encoding", "{}")]))
    print(f"total weight bits: {info['weight_bits']}")
    return 0


def _cmd_synth(args):
    import json

    from hw.synth import synthesize
    from quant.bitstream import atomic_write
    from .flows import format_table

    r = synthesize(args.design, args.family, args.device, args.freq, args.seed,
                   say=lambda text: print(text, flush=True))
    rows = [{"resource": k, "used": v["used"], "available": v["available"],
             "percent": v["percent"]} for k, v in r["utilization"].items()]
    print(format_table(rows, [("resource", "resource", "{}"), ("used", "used", "{}"),
                              ("available", "available", "{}"), ("percent", "%", "{:.2f}")]))
    print(f"{r['part']}: LUT4 {r['lut4']}, carry cells {r['carry']}, flip-flops {r['ff']}, "
          f"logic slots {r['comb']}, block RAMs {r['bram']}, DSPs {r['dsp']}")
    for clk, f in r["fmax_mhz"].items():
        print(f"Fmax {clk}: {f:.1f} MHz (target {r['freq_target_mhz']:g} MHz)")
    print(f"{r['tools']['yosys']}, nextpnr {r['tools']['nextpnr']}, seed {r['seed']}; "
          f"logs in {r['logs']}")
    if args.json:
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(r, indent=2) + "\n"))
        print(f"wrote {args.json}")
    return 0


def _cmd_study(args):
    from .study import run_csign_study

    run_csign_study(out_dir=args.out, epochs=args.epochs, seeds=tuple(range(args.seeds)),
                    networks=("mlp", "groupnet") if args.network == "both" else (args.network,))
    print(f"reports: {Path(args.out) / 'report.json'}, {Path(args.out) / 'flip_rate.png'}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="bnnforge",
        description="Generate FPGA hardware for binary neural networks, simulate it against "
                    "a golden model, and compare its cycles with software.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="train, export, generate and simulate the digits network",
                       description="Train a binary MLP on the scikit-learn digits, export its "
                                   "bitstream, generate Verilog, simulate the test split "
                                   "through it and report accuracy and cycles beside "
                                   "software.")
    p.add_argument("--network", choices=("mlp", "groupnet", "bscnet"), default="mlp",
                   help="mlp: binary MLP (default); groupnet: Group-Net CNN with K = 1, 3, 5; "
                        "bscnet: BSC-Net UNET-S on the frog CT volume (sparse voxels)")
    p.add_argument("--out", help="output directory (default build/demo, build/demo-groupnet "
                                 "or build/demo-bscnet)")
    p.add_argument("--simulator", choices=("icarus", "verilator"),
                   help="default: Verilator, or Icarus where Verilator is unavailable")
    p.add_argument("--clock-mhz", type=float, default=200.0,
                   help="clock for the hardware time per image (default 200)")
    p.add_argument("--epochs", type=_positive_int,
                   help="training epochs (40 for mlp, 30 for groupnet; training steps, 40, "
                        "for bscnet)")
    p.add_argument("--voxel-size", type=_positive_int, default=9,
                   help="bscnet: frog voxel size in CT voxels (9: 5,130 sites; 4: 34,331)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and order (0)")
    p.add_argument("--target-cycles", type=_positive_int,
                   help="folding target in cycles per image for every layer (default 64 for "
                        "mlp, 1024 for groupnet)")
    p.add_argument("--images", type=_positive_int,
                   help="simulate only the first N test images (default: all)")
    p.add_argument("--synth", action="store_true",
                   help="mlp, groupnet: generate for ECP5, synthesize and place-and-route on the "
                        "LFE5U-85F (YoWASP; minutes) and report resources, Fmax and the hardware "
                        "time per image at the achieved Fmax")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("synth", help="synthesize and place-and-route a design (YoWASP)",
                       description="Run Yosys synthesis and nextpnr place-and-route (the "
                                   "package registry's WebAssembly builds) on a design "
                                   "directory written by `bnnforge verilog`; print LUTs, "
                                   "flip-flops, carry cells, block RAMs, DSPs and Fmax.")
    p.add_argument("design", type=Path, help="design directory (with design.json)")
    p.add_argument("--family", choices=("ecp5", "ice40"), default="ecp5")
    p.add_argument("--device", help="ecp5: 12k, 25k, 45k, 85k (default); ice40: up5k "
                                    "(default), hx8k")
    p.add_argument("--freq", type=float, default=200.0, metavar="MHZ",
                   help="target clock (default 200)")
    p.add_argument("--seed", type=int, default=1, help="placement seed (1)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("verilog", help="write Verilog and memory files for a bitstream",
                       description="Generate the network top (AXI4-Stream ports) as Verilog "
                                   "with one $readmemh file per weight and threshold memory.")
    p.add_argument("bitstream", type=Path, help="weight bitstream (.bnn)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    p.add_argument("--max-voxels", type=_positive_int, default=65536,
                   help="BSC-Net: voxels a frame each layer accepts (default 65536)")
    p.add_argument("--coord-bits", type=_positive_int, default=16,
                   help="BSC-Net: coordinate bits at level 0, one fewer per level (default 16)")
    _add_folding(p)
    p.set_defaults(func=_cmd_verilog)

    p = sub.add_parser("sim", help="simulate a bitstream's hardware against the golden model",
                       description="Generate the design, run random vectors through it under "
                                   "cocotb and compare every output with the golden integer "
                                   "model; print pass/fail and cycles.")
    p.add_argument("bitstream", type=Path, help="weight bitstream (.bnn)")
    p.add_argument("--simulator", choices=("icarus", "verilator"), default="icarus")
    p.add_argument("--waves", type=Path, metavar="FILE",
                   help="write a waveform (FST on Icarus, VCD on Verilator)")
    p.add_argument("-o", "--output", type=Path, help="design directory "
                                                    "(default build/sim/<bitstream name>)")
    p.add_argument("--vectors", type=_positive_int, default=100,
                   help="random vectors, or images for a Group-Net (100)")
    p.add_argument("--stall", nargs="+", default=["none", "source", "sink", "both"],
                   choices=("none", "source", "sink", "both"), help="stall modes (all four)")
    p.add_argument("--seed", type=int, default=0, help="seed of the vectors and stalls (0)")
    _add_folding(p)
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser("quantize", help="export a checkpoint as a weight bitstream",
                       description="Load a bnnforge checkpoint safely (weights only) and write "
                                   "its weight bitstream (batch-norm folded, bits packed).")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="bitstream to write")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("inspect", help="print a bitstream's layers, sizes and checksum",
                       description="Validate a weight bitstream and describe it.")
    p.add_argument("bitstream", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("study", help="studies: csign (sign vs UaBNN's c-sign)",
                       description="csign: train the digits MLP with sign and c-sign, several "
                                   "seeds, and report flip rates and accuracy.")
    p.add_argument("name", choices=("csign",))
    p.add_argument("--out", default="build/study-csign")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--seeds", type=_positive_int, default=3)
    p.add_argument("--network", choices=("mlp", "groupnet", "both"), default="both",
                   help="the digits MLP, the digits Group-Net (K = 1), or both (default)")
    p.set_defaults(func=_cmd_study)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BnnforgeError as e:
        print(f"bnnforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bnnforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
