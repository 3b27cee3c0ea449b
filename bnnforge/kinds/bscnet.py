"""BSC-Net: binarized sparse convolution on voxels; each binary SSC, down- and up-sampling layer
is its own design with the site search in hardware (sums out), the rest runs on the host."""

import json
from pathlib import Path

from .base import NetworkKind

__all__ = ["BscNetKind"]

DEFAULT_MAX_VOXELS = 65536
DEFAULT_COORD_BITS = 16


def frame_limits(bitstream, max_voxels=None, coord_bits=None):
    """A design's frame limits: given ones, else the extent and size of the frame the bitstream
    was made with (``input.coord_bits``, ``input.max_voxels``), else the wide defaults; with
    where each came from."""
    out, source = {}, {}
    for key, given, default in (("max_voxels", max_voxels, DEFAULT_MAX_VOXELS),
                                ("coord_bits", coord_bits, DEFAULT_COORD_BITS)):
        if given is not None:
            out[key], source[key] = given, "given"
        elif bitstream.input.get(key):
            out[key], source[key] = int(bitstream.input[key]), "the bitstream's frame"
        else:
            out[key], source[key] = default, "default; the bitstream records no frame"
    return dict(out, source=source)


class BscNetKind(NetworkKind):
    name, bitstream_kind, model_kind = "bscnet", "bscnet", "bscnet"
    target_unit = "frame"

    def train(self, model, frames, labels=None, epochs=200, seed=0, progress=None):
        """``frames``: ``[(frame, feats, labels), ...]``, one a step in turn (``labels`` is
        unused: each frame carries its own); the supplement's stages
        (:func:`golden.bscnet_train.train_staged`), ``epochs`` steps a stage, BSC-Net's when
        the model has SFSC, BSC-Baseline's otherwise."""
        from golden.bscnet_train import train_staged

        variant = "bsc-net" if model.config.get("sfsc") else "bsc-baseline"
        train_staged(model, frames, variant, epochs, seed, progress)
        return model.eval()

    def export(self, model, input_spec, meta=None):
        from golden.bscnet import to_bitstream

        return to_bitstream(model, input_spec, meta)

    def load(self, bitstream):
        from golden.bscnet import from_bitstream

        return from_bitstream(bitstream)

    def shapes(self, bitstream):
        """Each binary layer with a search: ``Cout x (slots * Cin)``."""
        from hw.sparse import KINDS

        net = self.load(bitstream)
        return {name: (conv.cout, KINDS[conv.kind] * conv.cin)
                for name, conv in net.binary_layers() if conv.kind != "pointwise"}

    def fold(self, bitstream, folding_file=None, target_cycles=None, max_lanes=None):
        """The layers' folding is fixed: PE = min(Cout, 16), SIMD = Cin."""
        from quant.layout import Folding

        net = self.load(bitstream)
        return {name: Folding(min(conv.cout, 16), conv.cin)
                for name, conv in net.binary_layers() if conv.kind != "pointwise"}

    def generate(self, bitstream, folding, out_dir, reg_every=1, family=None, checksum=None,
                 max_voxels=DEFAULT_MAX_VOXELS, coord_bits=DEFAULT_COORD_BITS):
        """One design directory per binary layer with a search (an SFSC layer: one a distinct
        window shift; level ``l`` gets ``coord_bits - l`` coordinate bits, at least 2);
        returns one row per design."""
        from ..demo_bscnet import layer_design, layer_level

        net = self.load(bitstream)
        rows = []
        for name, conv in net.binary_layers():
            if conv.kind == "pointwise":
                rows.append({"name": name, "kind": conv.kind, "where": "host (1x1, no search)"})
                continue
            level = layer_level(name)
            bits = max(2, coord_bits - level)
            for design, f, shift, chans in layer_design(conv, name, level, bits, max_voxels,
                                                        out_dir, family):
                rows.append({"name": name, "kind": conv.kind, "cin": conv.cin,
                             "cout": chans, "pe": f.pe, "simd": f.simd, "bits": bits,
                             "shift": shift, "where": str(design)})
        return rows

    def random_inputs(self, bitstream, n, rng):
        """The frog frame at the bitstream's voxel size (real data; ``n`` is unused)."""
        return self.frame(bitstream)

    def frame(self, bitstream, voxel_size=None):
        """``(frame, features, labels)``: the whole frog volume at ``voxel_size`` (default
        the bitstream's, else 9)."""
        from ..demo_bscnet import segmentation_frame

        net = self.load(bitstream)
        return segmentation_frame(voxel_size or int(bitstream.input.get("voxel_size", 9)),
                                  (0, 0, 0), net.cfg["levels"])

    def simulate(self, bitstream, design_dir, inputs, simulator, **kwargs):
        """The frame through the network in fixed point, every op between its first layer
        and its head in simulated hardware (:func:`bnnforge.demo_bscnet.simulate_bscnet`);
        ``{rows, mismatches, accuracy, seconds, ...}``."""
        from ..demo_bscnet import simulate_bscnet

        frame, feats, labels = inputs
        return simulate_bscnet(self.load(bitstream), frame, feats, labels, design_dir,
                               simulator, kwargs.get("clock_mhz", 200.0),
                               spconv=kwargs.get("spconv", False))

    def software(self, bitstream, inputs):
        raise NotImplementedError("BSC-Net layers report their software time per layer "
                                  "(simulate: software_seconds of each row)")

    def report_rows(self, result, info=None):
        from ..demo_bscnet import LAYER_COLUMNS

        return [(result["rows"], LAYER_COLUMNS)]

    def describe(self, bitstream):
        import numpy as np

        layers = [{"name": l["name"], "kind": l["kind"],
                   "shape": "x".join(map(str, np.asarray(l["weights"]).shape)),
                   "output": "signed sums", "weight_bits": int(np.asarray(l["weights"]).size),
                   "encoding": "packed bits, slots*Cout rows", "threshold_width": None}
                  for l in bitstream.bscnet["layers"]]
        return layers, {"config": bitstream.bscnet["config"], "host_tensors": len(bitstream.host)}

    def verilog_command(self, args, bitstream):
        from .. import flows

        if getattr(args, "engines", False):
            return self._engines_command(args, bitstream)

        if args.folding or args.target_cycles or args.max_lanes:
            print("note: BSC-Net layers use PE = min(Cout, 16), SIMD = Cin; folding options "
                  "are ignored")
        limits = frame_limits(bitstream, args.max_voxels, args.coord_bits)
        print(f"frames of at most {limits['max_voxels']} voxels ({limits['source']['max_voxels']}"
              f"), {limits['coord_bits']}-bit coordinates ({limits['source']['coord_bits']})")
        args.max_voxels, args.coord_bits = limits["max_voxels"], limits["coord_bits"]
        rows = self.generate(bitstream, None, args.output, family=flows.family(args),
                             max_voxels=args.max_voxels, coord_bits=args.coord_bits)
        part = None
        for r in rows:
            design = Path(r.get("where") or "") / "design.json"
            if r.get("where") and design.exists():
                b = json.loads(design.read_text()).get("memory_budget") or {}
                r["memory_bits"], r["fits"], part = b.get("bits"), b.get("fits"), b.get("part")
        print(flows.format_table(rows, [
            ("name", "layer", "{}"), ("kind", "kind", "{}"), ("cin", "Cin", "{}"),
            ("cout", "Cout", "{}"), ("pe", "PE", "{}"), ("simd", "SIMD", "{}"),
            ("bits", "coord bits", "{}"), ("memory_bits", "on-chip bits", "{:,}"),
            ("fits", f"memories fit {part}", "{}"), ("where", "design", "{}")]))
        print(f"wrote {sum(1 for r in rows if 'pe' in r)} layer designs under {args.output} "
              f"(max {args.max_voxels} voxels a frame); on-chip memory of all layers: "
              f"{sum(r.get('memory_bits') or 0 for r in rows):,} bits")
        return 0

    def _engines_command(self, args, bitstream):
        """``verilog --engines``: every engine the network needs in one design."""
        from golden.bscnet_fixed import FixedBscNet
        from hw.memory_budget import budget_lines
        from .. import flows
        from ..bscnet_hw import write_core
        from ..demo_bscnet import TILE_BITS, TILE_VOXELS

        family = flows.family(args)
        b = write_core(FixedBscNet(self.load(bitstream)).program, args.output, TILE_VOXELS,
                       TILE_BITS, family=family)
        engines = json.loads((Path(args.output) / "design.json").read_text())["engines"]
        print("\n".join(budget_lines(b)))
        print(f"wrote {args.output}: {len(engines)} engines in one design ({', '.join(engines)}), "
              f"weights loaded at run time, tiles of {TILE_VOXELS} sites with {TILE_BITS}-bit "
              f"coordinates; synthesize it with `bnnforge synth {args.output}`")
        return 0

    def sim_command(self, args, bitstream):
        """The frog frame through the network, every op between its first layer and its head
        in hardware."""
        from .. import flows
        from ..demo_bscnet import kind_totals, seconds_per_frame
        from ..demo_bscnet import TILE_VOXELS
        from ..progress import step
        from ..reports import write_reports

        voxel = getattr(args, "voxel_size", None) or int(bitstream.input.get("voxel_size", 9))
        core = getattr(args, "core", None)
        clock = placed_core_clock(self.load(bitstream), core) if core else None
        inputs = self.frame(bitstream, voxel)
        out = args.output or Path("build") / "sim" / Path(args.bitstream).stem
        step(f"frog frame at voxel size {voxel} "
             f"({inputs[0].size(0)} sites): the fixed-point program's ops on {args.simulator}, "
             f"first layer and head on the host")
        mhz = clock["mhz"] if clock else 200.0
        budget = self._core_budget(bitstream, core, Path(out) / "core")
        result = self.simulate(bitstream, out, inputs, args.simulator, spconv=True,
                               clock_mhz=mhz)
        tables = [flows.format_table(rows, columns) for rows, columns in
                  self.report_rows(result)]
        totals = flows.format_table(kind_totals(result["rows"]), [
            ("kind", "kind", "{}"), ("ops", "ops", "{}"),
            ("cycles_simulated", "cycles", "{:,}"), ("cycles_model", "model", "{:,}"),
            ("ratio", "ratio", "{:.2f}")])
        ok = result["mismatches"] == 0
        hw = sum(r["where"] == "hardware" for r in result["rows"])
        verdict = (f"{'PASS' if ok else 'FAIL'}: {hw} ops in hardware, "
                   f"{result['mismatches']} mismatches with the golden fixed-point program; "
                   f"accuracy {result['accuracy']:.4f} (golden "
                   f"{result['golden_accuracy']:.4f}); simulation {result['seconds']:.0f} s")
        spf = seconds_per_frame(result["rows"], mhz, result["numpy_seconds"],
                                clock["source"] if clock else "target")
        at = (f"cycles at the core's Fmax, {mhz:.1f} MHz: {clock['note']}" if clock
              else "cycles at a 200 MHz target clock, not a placed design's")
        times = (f"one frame: hardware {spf['hardware']:.4g} s ({spf['hardware_scope']}, "
                 f"{at}); NumPy golden "
                 f"program {spf['numpy']:.4g} s; spconv "
                 + (f"{spf['spconv']:.4g} s ({spf['spconv_scope']}; hardware on those "
                    f"{spf['hardware_ssc']:.4g} s, NumPy {spf['numpy_ssc']:.4g} s)"
                    if spf["spconv"] is not None else f"-: {spf['spconv_scope']}"))
        verdict += "\n" + times + (
            f"\non-chip memory: {budget['bits']:,} bits, the core's (every engine in one "
            f"design, tiles of {TILE_VOXELS} sites), whatever the frame")
        print("\n".join(tables + [totals, verdict]))
        report = {"bitstream": str(args.bitstream), "voxel_size": voxel,
                  "sites": int(inputs[0].size(0)), "simulator": args.simulator,
                  "mismatches": result["mismatches"], "accuracy": result["accuracy"],
                  "golden_accuracy": result["golden_accuracy"],
                  "simulation_seconds": result["seconds"],
                  "seconds_per_frame": spf, "clock": clock,
                  "onchip_memory_bits": budget["bits"],
                  "onchip_memory": {k: budget[k] for k in ("bits", "block_ram_estimate",
                                                           "device_block_rams", "part",
                                                           "fits")},
                  "kind_totals": kind_totals(result["rows"]), "layers": result["rows"],
                  "concatenations": result["concatenations"]}
        write_reports(Path(out), report, "\n\n".join(
            [f"# BSC-Net through the engines: frog frame at voxel size {voxel}, "
             f"{report['sites']} sites", "```\n" + totals + "\n```",
             "```\n" + "\n".join(tables) + "\n```", verdict]) + "\n")
        print(f"reports: {Path(out) / 'report.json'}, {Path(out) / 'report.md'}")
        return 0 if ok else 1

    def _core_budget(self, bitstream, core, out):
        """The memory budget of the network's core: ``core``'s (placed) or one written to
        ``out`` for the program; it follows the program's shapes and the tile, not the
        frame."""
        from golden.bscnet_fixed import FixedBscNet
        from ..bscnet_hw import write_core
        from ..demo_bscnet import TILE_BITS, TILE_VOXELS

        if core is not None:
            return json.loads((Path(core) / "design.json").read_text())["memory_budget"]
        return write_core(FixedBscNet(self.load(bitstream)).program, out, TILE_VOXELS,
                          TILE_BITS, family="ecp5")

    def demo(self, args):
        from quant.errors import BnnforgeError
        from ..demo_bscnet import run_bscnet_demo

        if args.shards:
            raise BnnforgeError("--shards splits a test set of images across Dask workers; "
                                "the bscnet demo runs one frame (leave --shards out)")
        arch = getattr(args, "arch", None) or "unet-s"
        out = args.out or ("build/demo-bscnet" if arch == "unet-s"
                           else f"build/demo-bscnet-{arch}")
        report = run_bscnet_demo(out_dir=out, simulator=args.simulator,
                                 voxel_size=args.voxel_size, steps=args.epochs or 200,
                                 seed=args.seed, clock_mhz=args.clock_mhz,
                                 arch=arch,
                                 models=tuple(getattr(args, "models", None)
                                              or ("bsc-baseline", "bsc-net")),
                                 synth=args.synth)
        return report, report["mismatches"], out


def placed_core_clock(net, core_dir):
    """The clock (:func:`bnnforge.reports.clock_entry`) of ``core_dir``, a design of every
    engine ``net``'s program runs on, placed and routed by ``bnnforge synth``: refused with the
    step to take when it is not such a design, was written for another network or has no
    routed result."""
    import json

    from golden.bscnet_fixed import FixedBscNet
    from hw.params import unused
    from hw.synth import fmax_of
    from hw.sparse.core import SparseCore
    from quant.errors import BnnforgeError
    from ..bscnet_hw import ProgramRunner, core_engines, core_identity
    from ..demo_bscnet import TILE_BITS, TILE_VOXELS
    from ..reports import clock_entry

    core_dir = Path(core_dir)
    info_path = core_dir / "design.json"
    if not info_path.is_file():
        raise BnnforgeError(f"{core_dir} is not a bnnforge design (no design.json); write the "
                            f"network's core with `bnnforge verilog BITSTREAM -o {core_dir} "
                            f"--engines`")
    info = json.loads(info_path.read_text())
    if info.get("kind") != "bscnet-core":
        raise BnnforgeError(f"{core_dir} holds a {info.get('kind')} design, not a BSC-Net core; "
                            f"write one with `bnnforge verilog BITSTREAM -o {core_dir} "
                            f"--engines`")
    runner = ProgramRunner(FixedBscNet(net).program, None, core_dir, None, TILE_VOXELS,
                           TILE_BITS)
    core = SparseCore(core_engines(runner, family=info.get("family")))
    want = core_identity(core, TILE_VOXELS, TILE_BITS)
    unused(core, *core.ports, *core.engines)
    if any(info.get(k) != v for k, v in want.items()):
        raise BnnforgeError(f"the core in {core_dir} was written for another network (its "
                            f"engines or their sizes differ from this bitstream's); write this "
                            f"one's with `bnnforge verilog BITSTREAM -o DIR --engines`")
    result_path = core_dir / "synth-ecp5" / "result.json"
    if not result_path.is_file():
        raise BnnforgeError(f"{core_dir} has not been placed and routed (no "
                            f"synth-ecp5/result.json); run `bnnforge synth {core_dir}` first")
    r = json.loads(result_path.read_text())
    fmax = fmax_of(r)
    if not fmax:
        raise BnnforgeError(f"{result_path} holds no Fmax (the design did not route); see its "
                            f"logs")
    return clock_entry(200.0, {"fmax_mhz": fmax, "part": r["part"], "tools": r["tools"],
                               "speed_grade": r.get("speed_grade"), "seed": r.get("seed"),
                               "fmax_by_seed": r.get("fmax_by_seed")})
