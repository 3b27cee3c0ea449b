"""The steps every network kind implements; the command line, the flows, checkpoints and the
demos reach a kind only through them."""

import json

from quant.errors import FoldingError

__all__ = ["NetworkKind", "STEPS", "folding_json"]

STEPS = ("train", "export", "load", "shapes", "fold", "generate", "random_inputs", "simulate",
         "software", "report_rows", "describe", "verilog_command", "sim_command", "demo")
"""What a kind implements (see :class:`NetworkKind`); the registry checks every kind has them."""


def folding_json(table):
    """``folding.json`` of a design: the PE and SIMD of every folded matrix."""
    return json.dumps({"layers": [{k: r[k] for k in ("name", "pe", "simd")}
                                  for r in table]}, indent=2) + "\n"


class NetworkKind:
    """One network kind (``name`` in the one vocabulary: ``mlp``, ``groupnet``, ``bscnet``).

    Steps
    -----
    train(model, x, y, epochs, seed, progress)
        Train with the kind's recipe on one thread; returns the model.
    export(model, input_spec, meta)
        The trained model as a :class:`quant.bitstream.Bitstream`.
    load(bitstream)
        The golden model of a bitstream (what the hardware must match bit for bit).
    shapes(bitstream)
        ``{name: (rows, cols)}`` of every folded matrix.
    fold(bitstream, folding_file, target_cycles, max_lanes)
        The folding from exactly one of the three (never the slowest one silently).
    generate(bitstream, folding, out_dir, reg_every, family, checksum)
        Verilog, memory files, ``folding.json`` and ``design.json``; returns ``design.json``.
    random_inputs(bitstream, n, rng)
        ``n`` random inputs of the kind's input type (vectors, images, frames).
    simulate(bitstream, design_dir, inputs, simulator, stall_modes, waves, progress, seed)
        Run the inputs through the generated design and compare with the golden model; the
        result has ``mismatches`` and the runner's ``runs``.
    software(bitstream, inputs)
        Seconds per input of the same work on the CPU (PyTorch golden and bit-packed NumPy).
    report_rows(result, info)
        Rows of the cycle table of a simulation: measured at handshakes beside the model.
    describe(bitstream)
        ``(layers, extra)`` for ``bnnforge inspect``.
    verilog_command(args, bitstream), sim_command(args, bitstream)
        ``bnnforge verilog`` and ``bnnforge sim``; return the exit status.
    demo(args)
        ``bnnforge demo --network NAME``: ``(report, mismatches, out_dir)``.

    A new kind is one module with a subclass that implements these, registered in
    :mod:`bnnforge.kinds`.
    """

    name = None
    bitstream_kind = None   # what Bitstream.kind says for this kind
    model_kind = None       # KIND of the golden model class (checkpoints)
    target_unit = "vector"  # what a cycle target counts cycles of
    output_unit = "vector"  # what one output transfer of the design carries (progress bars)
    narrow_ports = False    # whether the design can take vectors in narrow beats

    def vectors_per_input(self, bitstream):
        """Matrix-vector products the busiest matrix does for one input (an image of a CNN
        or Group-Net, a vector of an MLP): the fewest cycles an input can take."""
        return 1

    def transfers_per_input(self, bitstream):
        """Output transfers of the design for one input."""
        return 1

    def target_per_matrix(self, bitstream, target_cycles):
        """A cycle target (per :attr:`target_unit`) as cycles per vector of each matrix."""
        return target_cycles

    def fold(self, bitstream, folding_file=None, target_cycles=None, max_lanes=None):
        from hw.folding import choose_for_lanes, choose_for_target, load_folding

        given = [x is not None for x in (folding_file, target_cycles, max_lanes)]
        if sum(given) != 1:
            raise FoldingError("give exactly one of --folding FILE, --target-cycles N or "
                               "--max-lanes N (bnnforge never picks the slowest folding "
                               "silently)")
        shapes = self.shapes(bitstream)
        if folding_file is not None:
            return load_folding(folding_file, shapes)
        if target_cycles is not None:
            return choose_for_target(shapes, self.target_per_matrix(bitstream, target_cycles))
        return choose_for_lanes(shapes, max_lanes)

    def verilog_command(self, args, bitstream):
        """Fold, generate, print the folding and the model's cycles."""
        from .. import flows

        folding = self.fold(bitstream, args.folding, args.target_cycles, args.max_lanes)
        info = self.generate(bitstream, folding, args.output, args.reg_every,
                             family=flows.family(args), checksum=bitstream.checksum,
                             **self._port_options(args))
        flows.print_folding(info)
        print(f"wrote {args.output / info['verilog']}, {len(info['memory_files'])} memory "
              f"files, {args.output / 'folding.json'} and {args.output / 'design.json'}")
        print(self.cycles_line(info))
        flows.print_budget(info)
        return 0

    def _port_options(self, args):
        beat_width = getattr(args, "beat_width", None)
        if beat_width is None:
            return {}
        if not self.narrow_ports:
            from quant.errors import BnnforgeError

            raise BnnforgeError(f"--beat-width is for dense networks (mlp); a {self.name} "
                                f"design streams one {self.output_unit} a transfer")
        return {"beat_width": beat_width}

    def _sim_sharded(self, args, bitstream, folding, inputs, shards, what):
        """``bnnforge sim --shards N``: the inputs split across Dask workers (no stalls)."""
        from .. import flows
        from ..progress import Progress, step
        from ..shards import simulate_sharded

        step(f"simulating {what} on {args.simulator} in {shards} shards on Dask "
             f"({args.scheduler or 'a LocalCluster, one worker per core'})")
        bar = Progress(self.target_unit + "s")
        r = simulate_sharded(args.bitstream, folding, inputs, args.simulator, shards,
                             family=flows.family(args), reg_every=args.reg_every,
                             scheduler=args.scheduler,
                             progress=lambda d, n: bar.update(d, n))
        print(f"engine: {r['engine']}")
        print(flows.format_table([dict(s, shard=i) for i, s in enumerate(r["shards"])],
                                 [("shard", "shard", "{}"), ("n", self.target_unit + "s", "{}"),
                                  ("cycles", "cycles", "{}"),
                                  ("cycles_per_input", f"cycles/{self.target_unit}",
                                   "{:.2f}")]))
        if r["mismatches"]:
            print(f"FAIL: {r['mismatches']} of {what} differ from the golden model")
            return 1
        print(f"PASS: {what} in {shards} shards, 0 mismatches with the golden model")
        return 0

    def cycles_line(self, info):
        return (f"cycles per vector (model): {info['cycles_per_vector']}; latency: "
                f"{info['latency']}")

    def sim_command(self, args, bitstream):
        """Fold, generate, simulate random inputs in the stall modes, print the cycle table
        and the verdict."""
        from pathlib import Path

        import numpy as np

        from .. import flows
        from ..progress import Progress, step

        folding = self.fold(bitstream, args.folding, args.target_cycles, args.max_lanes)
        out = args.output or Path("build") / "sim" / Path(args.bitstream).stem
        step(f"generating {out}")
        info = self.generate(bitstream, folding, out, args.reg_every, family=flows.family(args),
                             checksum=bitstream.checksum, **self._port_options(args))
        flows.print_folding(info)
        inputs = self.random_inputs(bitstream, args.vectors, np.random.default_rng(args.seed))
        what = f"{args.vectors} {self.target_unit}s"
        shards = getattr(args, "shards", None) or 1
        if shards > 1:
            return self._sim_sharded(args, bitstream, folding, inputs, shards, what)
        step(f"simulating {args.vectors} random {self.target_unit}s on {args.simulator}, stall "
             f"modes {', '.join(args.stall)}")
        bar = Progress(self.output_unit + "s")
        result = self.simulate(bitstream, out, inputs, args.simulator, stall_modes=args.stall,
                               waves=args.waves, progress=lambda d, n: bar.update(d, n),
                               seed=args.seed)
        for rows, columns in self.report_rows(result, info):
            print(flows.format_table(rows, columns))
        return flows.verdict(result, what, args.stall)
