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


def _kind_names():
    from .kinds import KINDS

    return tuple(KINDS)


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
    p.add_argument("--beat-width", metavar="BITS", type=_positive_int,
                   help="dense networks: narrow AXI4-Stream ports of BITS bits (a multiple of "
                        "8), each vector in several beats, lowest bits first (default: one "
                        "whole vector a transfer)")


def _cmd_demo(args):
    from .kinds import kind_named

    _report, bad, out = kind_named(args.network).demo(args)
    print(f"reports: {Path(out) / 'report.json'}, {Path(out) / 'report.md'}")
    return 0 if bad == 0 else 1


def _load(path):
    from quant.bitstream import read

    return read(path)


def _cmd_verilog(args):
    from .kinds import kind_of

    bs = _load(args.bitstream)
    kind = kind_of(bs)
    if args.engines and kind.name != "bscnet":
        raise BnnforgeError(f"--engines applies to BSC-Net bitstreams; {args.bitstream} holds "
                            f"a network of kind {kind.name}")
    return kind.verilog_command(args, bs)


def _cmd_sim(args):
    from .kinds import kind_of

    bs = _load(args.bitstream)
    kind = kind_of(bs)
    for flag, value in (("--voxel-size", args.voxel_size), ("--core", args.core)):
        if value is not None and kind.name != "bscnet":
            raise BnnforgeError(f"{flag} applies to BSC-Net bitstreams; "
                                f"{args.bitstream} holds a network of kind {kind.name}")
    return kind.sim_command(args, bs)


def _cmd_quantize(args):
    from golden.checkpoint import load_checkpoint
    from quant.bitstream import write
    from .kinds import kind_of_model

    model, spec, meta = load_checkpoint(args.checkpoint)
    bs = kind_of_model(model).export(model, spec, meta)
    write(bs, args.output)
    print(f"wrote {args.output} ({bs.kind}, {args.output.stat().st_size} bytes)")
    return 0


def _cmd_inspect(args):
    import json

    from .flows import format_table
    from .kinds import kind_of

    bs = _load(args.bitstream)
    kind = kind_of(bs)
    layers, extra = kind.describe(bs)
    info = {"file": str(args.bitstream), "bytes": args.bitstream.stat().st_size,
            "kind": bs.kind, "network": kind.name, "checksum": bs.checksum, "input": bs.input,
            "meta": bs.meta, "layers": layers,
            "weight_bits": sum(l["weight_bits"] for l in layers), **extra}
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

    r = synthesize(args.design, args.family, args.device, args.freq,
                   args.seed[0] if len(args.seed) == 1 else args.seed,
                   say=lambda text: print(text, flush=True))
    rows = [{"resource": k, "used": v["used"], "available": v["available"],
             "percent": v["percent"]} for k, v in r["utilization"].items()]
    print(format_table(rows, [("resource", "resource", "{}"), ("used", "used", "{}"),
                              ("available", "available", "{}"), ("percent", "%", "{:.2f}")]))
    print(f"{r['part']}: LUT4 {r['lut4']}, carry cells {r['carry']}, flip-flops {r['ff']}, "
          f"logic slots {r['comb']}, block RAMs {r['bram']}, DSPs {r['dsp']}")
    for clk, f in r["fmax_mhz"].items():
        print(f"Fmax {clk}: {f:.1f} MHz (target {r['freq_target_mhz']:g} MHz)")
    if r.get("fmax_by_seed"):
        print("Fmax by placement seed: " + ", ".join(
            f"{sd}: {'failed' if f is None else f'{f:.1f} MHz'}"
            for sd, f in r["fmax_by_seed"].items()) + f"; kept seed {r['seed']}")
    print(f"{r['tools']['yosys']}, nextpnr {r['tools']['nextpnr']}, seed {r['seed']}; "
          f"logs in {r['logs']}")
    if args.json:
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(r, indent=2) + "\n"))
        print(f"wrote {args.json}")
    return 0


def _cmd_import(args):
    from quant.bitstream import write
    from quant.onnx_import import import_qonnx

    bs = import_qonnx(args.model)
    write(bs, args.output)
    host = bs.meta["host"]
    print(f"imported {args.model}: {len(bs.layers)} matrices, "
          f"{len(bs.cnn['ops']) - len(bs.layers)} pools; input {host['input_shape']} "
          f"({bs.cnn['input']['bits']}-bit codes on the host), head on the host "
          f"({len(host['output_ops'])} ops)")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


def _cmd_explore(args):
    from .explore import explore
    from .flows import format_table
    from .progress import Progress, step

    step(f"exploring {args.bitstream} on Dask ({args.scheduler or 'a LocalCluster'})")
    bar = Progress("points")
    r = explore(args.bitstream, args.output, args.targets, tuple(args.families),
                tuple(args.clocks), args.vectors, args.simulator, not args.no_synth,
                args.scheduler, args.workers,
                progress=lambda done, n, running: bar.update(done, n, f"{running} running"),
                lanes=tuple(args.lanes), **({"max_lanes": args.max_lanes} if args.max_lanes
                                            else {}))
    print(f"engine: {r['engine']}, {r['workers']} workers, {r['wall_seconds']:.0f} s")
    from .explore import point_label

    print(format_table([dict(p, rule=point_label(p)) for p in r["points"]], [
        ("rule", "folding", "{}"), ("family", "family", "{}"),
        ("cycles_per_input", "cycles/input", "{:.1f}"), ("mismatches", "mismatches", "{}"),
        ("lanes", "lanes", "{}"), ("logic_slots", "logic slots", "{}"), ("ff", "FF", "{}"),
        ("bram", "BRAM", "{}"), ("fmax_mhz", "Fmax MHz", "{:.1f}"),
        ("inputs_per_second", "inputs/s", "{:.3g}"), ("cached", "cached", "{}"),
        ("error", "error", "{}")]))
    out = Path(args.output or Path("build") / "explore" / Path(args.bitstream).stem)
    print(f"wrote {out / 'results.json'}" + ("" if args.no_synth else
                                              f" and {out / 'pareto.png'}"))
    return 0 if all(p.get("mismatches", 0) == 0 for p in r["points"]) else 1


def _cmd_run(args):
    from .running import run_bitstream

    return run_bitstream(args)


def _cmd_study(args):
    from .study import run_csign_study

    networks = ("mlp", "cnn") if args.network == "both" else (args.network,)
    epochs = {n: args.epochs for n in networks} if args.epochs else None
    run_csign_study(out_dir=args.out, epochs=epochs, seeds=tuple(range(args.seeds)),
                    networks=networks, deltas=tuple(args.delta), jobs=args.jobs,
                    sigma_rule=args.sigma)
    print(f"reports: {Path(args.out) / 'report.json'}, {Path(args.out) / 'report.md'}, "
          f"{Path(args.out) / 'flip_rate.png'}")
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
    p.add_argument("--network", choices=_kind_names(), default="mlp",
                   help="mlp: binary MLP (default); groupnet: Group-Net CNN with K = 1, 3, 5; "
                        "bscnet: BSC-Net UNET-S on the frog CT volume (sparse voxels); cnn: a "
                        "binary CNN (convolutions, pooling, fully connected) from the Python API")
    p.add_argument("--out", help="output directory (default build/demo, build/demo-groupnet, "
                                 "build/demo-bscnet or build/demo-cnn)")
    p.add_argument("--simulator", choices=("icarus", "verilator"),
                   help="default: Verilator, or Icarus where Verilator is unavailable")
    p.add_argument("--clock-mhz", type=float, default=200.0,
                   help="clock for the hardware time per image (default 200)")
    p.add_argument("--epochs", type=_positive_int,
                   help="training epochs (40 for mlp, 30 for groupnet, 20 for cnn; for "
                        "bscnet the steps of each training stage, 200)")
    p.add_argument("--voxel-size", type=_positive_int, default=9,
                   help="bscnet: frog voxel size in CT voxels (9: 5,130 sites; 4: 34,331)")
    p.add_argument("--arch", choices=("unet-s", "fcn-s"), default="unet-s",
                   help="bscnet: the supplement's network (default unet-s)")
    p.add_argument("--models", nargs="+", choices=("bsc-baseline", "bsc-net"),
                   default=["bsc-baseline", "bsc-net"],
                   help="bscnet: the models trained and run in hardware (default both: "
                        "BSC-Baseline with plain SSC, BSC-Net with SFSC)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and order (0)")
    p.add_argument("--target-cycles", type=_positive_int,
                   help="folding target in cycles per image for every layer (default 64 for "
                        "mlp, 1024 for groupnet, 256 for cnn)")
    p.add_argument("--images", type=_positive_int,
                   help="simulate only the first N test images (default: all)")
    p.add_argument("--synth", action="store_true",
                   help="generate for ECP5, synthesize and place-and-route on the LFE5U-85F "
                        "(YoWASP; minutes; for bscnet the whole network's engines in one "
                        "design: hours on two cores) and report resources, Fmax and the "
                        "hardware time per image or frame at the achieved Fmax")
    p.add_argument("--shards", type=_positive_int, metavar="N",
                   help="mlp, groupnet, cnn: simulate the test split in N shards on Dask (a "
                        "LocalCluster, one worker per core, or --scheduler); needs the dask "
                        "extra")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --shards: an existing Dask scheduler (tcp://host:8786)")
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
    p.add_argument("--seed", type=int, nargs="+", default=[1],
                   help="placement seed (1); several run in parallel and the best is kept")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("verilog", help="write Verilog and memory files for a bitstream",
                       description="Generate the network top (AXI4-Stream ports) as Verilog "
                                   "with one $readmemh file per weight and threshold memory.")
    p.add_argument("bitstream", type=Path, help="weight bitstream (.bnn)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    p.add_argument("--max-voxels", type=_positive_int,
                   help="BSC-Net: voxels a frame each layer accepts (default: the bitstream's "
                        "frame size, else 65536)")
    p.add_argument("--coord-bits", type=_positive_int,
                   help="BSC-Net: coordinate bits at level 0, one fewer per level (default: the "
                        "extent of the bitstream's frame, else 16)")
    p.add_argument("--engines", action="store_true",
                   help="BSC-Net: the network's engines in one design (weights loaded at run "
                        "time, frames in tiles of 512 sites: the design `demo --network bscnet "
                        "--synth` places) instead of a design a layer")
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
    p.add_argument("--shards", type=_positive_int,
                   help="split the vectors across Dask workers (a LocalCluster with one worker "
                        "per core, or --scheduler); each worker generates the design from the "
                        "bitstream and simulates its shard, no stalls")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler for --shards (tcp://host:8786)")
    p.add_argument("--voxel-size", type=_positive_int,
                   help="bscnet: the frog frame at this voxel size (default: the bitstream's; "
                        "4: 34,331 sites, 2: 192,213) through the same engines")
    p.add_argument("--core", type=Path, metavar="DIR",
                   help="bscnet: the network's engines in one design, placed and routed "
                        "(`bnnforge verilog BITSTREAM -o DIR --engines`, then `bnnforge synth "
                        "DIR`): the hardware time is given at its Fmax instead of a target "
                        "clock")
    _add_folding(p)
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser("import", help="import a QONNX model (Brevitas export) as a bitstream",
                       description="Read a binary network exported by Brevitas as QONNX "
                                   "(TorchScript or dynamo exporter), run qonnx's cleanup, map "
                                   "it to a CNN bitstream (thresholds from batch-norm and the "
                                   "quantizers; input quantizer and head on the host) or refuse "
                                   "it naming the node that stops it. Needs the onnx extra: "
                                   "pip install 'bnnforge[onnx]'.")
    p.add_argument("model", type=Path, help="QONNX file (.onnx)")
    p.add_argument("-o", "--output", type=Path, required=True, help="bitstream to write")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("run", help="run your inputs through a bitstream (golden or simulated)",
                       description="Run the inputs in a .npy file through the golden model, or "
                                   "through the simulated hardware when --simulator is given, "
                                   "and write the outputs as .npy. For an imported model the "
                                   "inputs are the ONNX graph's input (N x its shape) and the "
                                   "outputs the graph's output, head included.")
    p.add_argument("bitstream", type=Path, help="weight bitstream (.bnn)")
    p.add_argument("--inputs", type=Path, required=True, metavar="X.npy")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="Y.npy")
    p.add_argument("--simulator", choices=("icarus", "verilator"),
                   help="simulate the generated hardware (default: the golden model only)")
    p.add_argument("--design", type=Path, help="design directory for --simulator (default "
                                               "build/run/<bitstream name>)")
    _add_folding(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("explore", help="sweep foldings, families and clocks on Dask",
                       description="For each folding (cycle target), family and clock target: "
                                   "generate, check bit-exact in simulation, synthesize and "
                                   "place; results.json (one row a point) and pareto.png under "
                                   "build/explore/<name>. Points are cached by content; a rerun "
                                   "resumes.")
    p.add_argument("bitstream", type=Path)
    p.add_argument("-o", "--output", type=Path, help="default build/explore/<bitstream name>")
    p.add_argument("--targets", type=_positive_int, nargs="+", metavar="N",
                   help="cycle targets (default: six powers of two from the network's shapes, "
                        "the fastest within --max-lanes)")
    p.add_argument("--max-lanes", type=_positive_int, default=None, metavar="N",
                   help="lane budget (sum of PE x SIMD) of the default targets (2048)")
    p.add_argument("--lanes", type=_positive_int, nargs="+", default=[], metavar="N",
                   help="lane budgets to sweep as points: the best throughput with at most N "
                        "lanes a matrix")
    p.add_argument("--families", nargs="+", default=["ecp5"], choices=("ecp5", "generic"))
    p.add_argument("--clocks", type=float, nargs="+", default=[200.0], metavar="MHZ")
    p.add_argument("--vectors", type=_positive_int, default=16,
                   help="random inputs simulated a point (16)")
    p.add_argument("--simulator", choices=("icarus", "verilator"), default="icarus")
    p.add_argument("--no-synth", action="store_true", help="simulate only (no place and route)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler")
    p.add_argument("--workers", type=_positive_int,
                   help="LocalCluster workers (default: one per core)")
    p.set_defaults(func=_cmd_explore)

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
                       description="csign: train the digits MLP and a digits CNN with sign and "
                                   "with c-sign at several Delta, several seeds each; report "
                                   "per-layer flip rates, accuracy, and a verdict on the "
                                   "paper's claims.")
    p.add_argument("name", choices=("csign",))
    p.add_argument("--out", default="build/study-csign")
    p.add_argument("--epochs", type=_positive_int,
                   help="epochs of every network (default: MLP 30, CNN 10, Group-Net 15)")
    p.add_argument("--seeds", type=_positive_int, default=5, help="seeds 0..N-1 (5)")
    p.add_argument("--delta", type=float, nargs="+", default=[0.05, 0.1, 0.5],
                   help="c-sign's Delta values (default 0.05 0.1 0.5, the paper's range)")
    p.add_argument("--jobs", type=_positive_int, default=1,
                   help="training runs at a time, one thread each (default 1)")
    p.add_argument("--sigma", choices=("variance", "std"), default="variance",
                   help="c-sign's sigma: the variance of the initial weights (the paper's text, "
                        "default) or their standard deviation")
    p.add_argument("--network", choices=("mlp", "cnn", "groupnet", "both"), default="both",
                   help="the digits MLP, the digits CNN, the digits Group-Net (K = 1), or both "
                        "MLP and CNN (default)")
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
