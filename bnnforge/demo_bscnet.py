"""``bnnforge demo --network bscnet``: BSC-Baseline and BSC-Net (SFSC) UNET-S trained through
the supplement's stages on one side of the frog CT volume's tissue segmentation and tested on
the other; every op between the real first layer and the head in simulated hardware (each op's
output compared with the golden fixed-point program, the hardware's fed on).
"""

import concurrent.futures
import threading
import time
from pathlib import Path

import numpy as np
import torch

from .reports import clock_entry, clock_words, pick_simulator, write_reports
from .flows import format_table
from .progress import Progress, step

__all__ = ["run_bscnet_demo", "simulate_bscnet", "segmentation_frame", "split_volume",
           "training_frames",
           "layer_design", "layer_level", "LAYER_COLUMNS"]


def _predict(net, frame, feats, **kw):
    with torch.no_grad():
        return net(feats, frame, **kw).argmax(1)


def segmentation_metrics(pred, labels):
    """Voxel accuracy and mean IoU over the tissue classes present in ``labels``."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    ious = []
    for c in np.unique(labels):
        inter = np.sum((pred == c) & (labels == c))
        union = np.sum((pred == c) | (labels == c))
        ious.append(inter / union)
    return {"accuracy": float((pred == labels).mean()), "miou": float(np.mean(ious)),
            "classes": int(len(ious))}


def segmentation_frame(voxel_size, origin, levels, volume=None):
    """``(frame, feats, labels)``: the frog's tissue segmentation at ``voxel_size`` (of
    ``volume``, default the whole CT volume)."""
    from golden.bscnet import SparseFrame
    from golden.frog import frog_segmentation

    coords, labels, bits = frog_segmentation(voxel_size, origin, volume)
    frame = SparseFrame(coords, bits, levels)
    return frame, torch.ones(len(coords), 1), torch.as_tensor(labels)


SPLIT_Y = 232
"""The frog's plane of left-right symmetry, near y = 232 CT voxels (the class-balanced tissues'
mean y): the training region is the half below it, the test region the half above."""


def split_volume(volume, voxel_size):
    """``(train volumes, test volume, description)``: the CT volume cut at the frog's
    left-right midplane (at a multiple of ``voxel_size``, so no voxel of the unshifted grid
    spans both halves); the training half, and its mirror image across that plane (the other
    half of a bilateral animal looks like it; no test voxel is in either), the test half with
    the training half set to background."""
    cut = int(round(SPLIT_Y / voxel_size)) * voxel_size
    train, test = volume.copy(), volume.copy()
    train[:, cut:] = 0
    test[:, :cut] = 0
    mirrored = np.ascontiguousarray(train[:, ::-1])
    return [train, mirrored], test, (
        f"frog CT y < {cut} (one side of the midplane) for training, with its mirror image "
        f"and shifted grids; y >= {cut} for testing (unshifted grid); disjoint")


def training_frames(voxel_size, seed, levels):
    """``(train frames, test frame, split description, majority class)``: the split volume's
    training half and its mirror image on 7 grids shifted by seeded random offsets, the test
    half on the unshifted grid, each ``(frame, feats, labels)``; the training frames' most
    frequent class."""
    from golden.frog import frog_volume

    train_vols, test_vol, split = split_volume(frog_volume(), voxel_size)
    rng = np.random.default_rng(seed)
    shifts = [tuple(int(v) for v in rng.integers(1, voxel_size, 3)) for _ in range(7)]
    train = [segmentation_frame(voxel_size, o, levels, v) for o in shifts for v in train_vols]
    test = segmentation_frame(voxel_size, (0, 0, 0), levels, test_vol)
    majority = int(np.bincount(np.concatenate([t[2].numpy() for t in train])).argmax())
    return train, test, split, majority


TILE_BITS = 6
"""Coordinate bits of every hardware layer's design: frames run through it in tiles of at most
62 voxels a side (plus the halo) in their own coordinates."""
TILE_VOXELS = 512
"""Sites a tile (a part of one) the designs store: their on-chip memory does not depend on the
frame's size. 512 is a DP16KD's shallowest aspect (512 x 36), so a smaller tile would save no
block RAM; with it every engine UNET-S needs fits the LFE5U-85F in one design."""


def _max_voxels(n):
    return max(16, 1 << max(0, int(n - 1).bit_length()))


def layer_level(name):
    """A binary layer's level from its module path (``enc.3.0.a.conv`` -> 3)."""
    return int(name.split(".")[1])


def layer_design(conv, name, level, frame_bits, max_voxels, out_dir, family=None):
    """Generate one binary layer (sums out) with PE the largest divisor of the pass's
    channels up to 16 and SIMD = Cin, for the FPGA ``family`` (None: generic); an SFSC layer
    gives one design a distinct window shift of its groups
    (:func:`bnnforge.bscnet_hw.sfsc_passes`). Returns ``[(design dir, folding, shift,
    channels)]``."""
    from quant.layout import Folding
    from .bscnet_hw import largest_divisor, pass_name, sfsc_passes
    from .sparse_flows import generate_sparse

    w = conv.weight_bits()
    shifts = conv.shifts().tolist() if hasattr(conv, "shifts") else None
    passes = sfsc_passes(shifts, conv.cout)
    out = []
    for shift, chans in passes:
        folding = Folding(largest_divisor(len(chans), 16), conv.cin)
        base = pass_name(name.replace(".", "_"), shift, len(passes))
        design = Path(out_dir) / base
        generate_sparse(w[:, chans], None, max_voxels, frame_bits, folding, design, name=base,
                        kind=conv.kind, output="sums", family=family, shift=shift)
        out.append((design, folding, list(shift), len(chans)))
    return out


def simulate_bscnet(net, frame, feats, labels, out_dir, simulator, clock_mhz, spconv=True):
    """Run ``net`` (eval mode) on one frame in fixed point (:class:`golden.bscnet_fixed.
    FixedBscNet`) with every op of its program that has hardware in simulated hardware
    (:class:`bnnforge.bscnet_hw.ProgramRunner`): each op's output is compared with golden's
    and the next op reads the hardware's. The first layer and the head run on the host.

    Returns ``{rows, mismatches, accuracy, golden_accuracy, seconds, predictions,
    golden_predictions, numpy_seconds}``: ``rows`` one an op plus the first layer and the head
    (``where`` hardware or host), ``numpy_seconds`` the golden program's time on this CPU."""
    from golden.bscnet_fixed import FixedBscNet, run_program
    from .bscnet_hw import ProgramRunner

    fx = FixedBscNet(net)
    codes = fx.first_codes(feats, frame)
    t0 = time.perf_counter()
    golden_codes = run_program(fx.program, frame, codes)
    numpy_seconds = time.perf_counter() - t0
    golden_pred = fx.head(golden_codes).argmax(1)
    runner = ProgramRunner(fx.program, frame, out_dir, simulator, TILE_VOXELS, TILE_BITS,
                           spconv=spconv)
    hw_codes = run_program(fx.program, frame, codes, hook=runner)
    pred = fx.head(hw_codes).argmax(1)
    n = frame.size(0)
    rows = ([{"name": "stem", "op": "first layer", "kind": "ssc (real-valued)", "level": 0,
              "where": "host", "sites": n, "cycles_simulated": None, "cycles_model": None}]
            + runner.rows
            + [{"name": "head", "op": "head", "kind": "batch-norm + linear (real-valued)",
                "level": 0, "where": "host", "sites": n, "cycles_simulated": None,
                "cycles_model": None}])
    for r in rows:
        if r.get("cycles_simulated") is not None:
            # A binary op's weights load before its frame: part of its time.
            r["hardware_seconds"] = ((r["cycles_simulated"] + r.get("load_cycles", 0))
                                     / (clock_mhz * 1e6))
    return {"rows": rows, "concatenations": runner.concatenations,
            "mismatches": runner.mismatches,
            "accuracy": float((pred == labels).float().mean()),
            "golden_accuracy": float((golden_pred == labels).float().mean()),
            "seconds": runner.sim_seconds, "predictions": pred,
            "golden_predictions": golden_pred, "numpy_seconds": numpy_seconds,
            "format": fx.fmt.to_dict()}


MODELS = ("bsc-baseline", "bsc-net")


def run_bscnet_demo(out_dir="build/demo-bscnet", simulator=None, voxel_size=9, steps=200,
                    seed=0, clock_mhz=200.0, arch="unet-s", models=MODELS, synth=False):
    """Train each of ``models`` (BSC-Baseline: plain SSC; BSC-Net: SFSC) through the
    supplement's stages (:mod:`golden.bscnet_train`, ``steps`` a stage), export, and run
    each between its first layer and its head in simulated hardware; returns the report
    (also ``report.json`` and ``report.md`` in ``out_dir``). The report's ``layers``,
    ``seconds_per_frame`` and memory figures are the last model's (BSC-Net by default: SFSC
    included); every model's are in ``hardware_runs``.

    The hardware is one design (``out_dir/core``: :func:`bnnforge.bscnet_hw.write_core`,
    every engine the network needs); the report's ``onchip_memory_bits`` are its memories'.
    ``synth``: place and route it on the LFE5U-85F first (``clock_mhz`` the target) and give
    every hardware time at the Fmax it reached.

    Runs on one torch thread: the sparse layers' scatter-adds are not deterministic with more
    (two runs of the same demo on two threads gave 0.5682 and 0.5698), so the report is
    reproducible only on one."""
    from golden.train import torch_threads

    with torch_threads(1):
        return _run_bscnet_demo(out_dir, simulator, voxel_size, steps, seed, clock_mhz, arch,
                                tuple(models), synth)


TRAINING_KERNELS_NOTE = (
    "training on one thread repeats exactly on one machine, but its float results follow "
    "the CPU kernels torch picks (ATEN_CPU_CAPABILITY): with the same code, frames and seed 0 "
    "BSC-Net reached mean IoU 0.1172 on AVX2 kernels and 0.1816 on the default ones "
    "(docs/sparse.md)")
"""What the evaluation's float figures depend on beyond the code and the seed."""


def _train_model(variant, arch, train, steps, seed):
    from golden.bscnet import BSCNet
    from golden.bscnet_train import SCALED_ALPHA_LR, STAGES, train_staged
    from golden.frog import FROG_CLASSES

    stages = " -> ".join(f"{s['name']} (lr {s['lr']:g})" for s in STAGES[variant])
    step(f"training {variant} {arch.upper()} ({'SFSC' if variant == 'bsc-net' else 'plain SSC'}"
         f"): stages {stages}, {steps} steps each, Adam with the step schedule"
         + (f", window logits at rate {SCALED_ALPHA_LR:g}" if variant == "bsc-net" else ""))
    torch.manual_seed(seed)
    net = BSCNet(arch, in_channels=1, classes=FROG_CLASSES, sfsc=variant == "bsc-net")
    bar = Progress("training steps")
    log = train_staged(net, train, variant, steps, seed,
                       progress=lambda d, t, msg: bar.update(d, t, msg),
                       alpha_lr=SCALED_ALPHA_LR if variant == "bsc-net" else None)
    return net.eval(), log


def core_program(arch):
    """The program whose shapes size the engines (the same for every model of ``arch``), from
    a network built on a fork of torch's random state: the caller's random stream is left
    as it was. The demo builds it before the placement thread starts, so that the thread
    never draws from torch's global generator while a model being trained is initialized."""
    import torch

    from golden.bscnet import BSCNet
    from golden.bscnet_fixed import FixedBscNet
    from golden.frog import FROG_CLASSES

    with torch.random.fork_rng():
        net = BSCNet(arch, in_channels=1, classes=FROG_CLASSES, sfsc=True).eval()
    return FixedBscNet(net).program


def core_design(arch, out_dir, synth, clock_mhz, program=None):
    """The network's hardware as one design (every engine; :func:`bnnforge.bscnet_hw.
    write_core`) in ``out_dir``, for the LFE5U-85F; with ``synth`` placed and routed
    (``clock_mhz`` the target). ``program``: :func:`core_program`'s (built here if None).
    Returns ``(memory budget, synth entry or None)``: the entry as the other demos'
    (:func:`bnnforge.reports.synth_design`) with ``fits``."""
    from hw.memory_budget import budget_lines
    from .bscnet_hw import write_core
    from .reports import CORE_SEEDS, synth_design

    if program is None:
        program = core_program(arch)
    step(f"the hardware: every engine {arch.upper()} needs in one design ({out_dir}), tiles of "
         f"{TILE_VOXELS} sites with {TILE_BITS}-bit coordinates")
    budget = write_core(program, out_dir, TILE_VOXELS, TILE_BITS, family="ecp5")
    for line in budget_lines(budget):
        print("    " + line)
    if not synth:
        return budget, None
    entry = synth_design(out_dir, clock_mhz, 0, seeds=CORE_SEEDS, until_routed=True)
    entry.pop("hw_seconds_per_image_at_fmax", None)
    entry["fits"] = "error" not in entry
    return budget, entry


def _run_bscnet_demo(out_dir, simulator, voxel_size, steps, seed, clock_mhz, arch, models,
                     synth=False):
    from golden.bscnet import BSCNet, from_bitstream, to_bitstream
    from golden.bscnet_fixed import FixedBscNet
    from golden.bscnet_train import VARIANTS
    from quant.bitstream import read, write
    from quant.errors import BnnforgeError

    bad = [m for m in models if m not in VARIANTS]
    if bad or not models:
        raise BnnforgeError(f"unknown BSC-Net model {bad[0] if bad else ''!r}; choose from "
                            f"{', '.join(VARIANTS)}")
    started = time.monotonic()
    out_dir = Path(out_dir)
    simulator, note = pick_simulator(simulator, clock_mhz)
    levels = BSCNet(arch, sfsc=False).cfg["levels"]
    train, (frame, feats, labels), split, majority = training_frames(voxel_size, seed, levels)
    step(f"frog CT volume (pyvista's wheel): tissue segmentation at voxel size {voxel_size}; "
         f"{split}")
    # The core is placed and routed (minutes to an hour) while the models train: the
    # placement runs in its tools' own processes; the simulations wait for its clock. The
    # thread is a daemon, so that an interrupted demo does not wait for the router (Ctrl-C
    # reaches the tools too: they are in the terminal's process group).
    placing = concurrent.futures.Future()
    program = core_program(arch)

    def place():
        try:
            placing.set_result(core_design(arch, out_dir / "core", synth, clock_mhz,
                                           program=program))
        except BaseException as e:          # handed to the main thread by result()
            placing.set_exception(e)

    threading.Thread(target=place, name="core-placement", daemon=True).start()
    trained = {variant: _train_model(variant, arch, train, steps, seed) for variant in models}
    if synth and not placing.done():
        step("training done; waiting for the core's place and route")
    budget, synth_entry = placing.result()
    clock = clock_entry(clock_mhz, synth_entry)
    y = labels.numpy()
    runs, entries = {}, []
    for variant in models:
        net, log = trained[variant]
        pred_float = _predict(net, frame, feats)
        bs_path = out_dir / f"{variant}.bnn"
        # The frame's extent (coordinate bits) and size, so that designs made from this
        # bitstream follow the data rather than a wide default.
        write(to_bitstream(net, {"channels": 1, "voxel_size": voxel_size,
                                 "coord_bits": int(frame.bits[0]),
                                 "max_voxels": _max_voxels(len(feats))},
                           {"arch": arch, "dataset": "frog-tissues", "model": variant}), bs_path)
        golden_net = from_bitstream(read(bs_path))
        ops = len(FixedBscNet(golden_net).program["ops"])
        step(f"{variant}: its {ops} ops between first layer and head in hardware on "
             f"{simulator}, one op after another (golden: the fixed-point program); frame of "
             f"{frame.size(0)} sites")
        sim = simulate_bscnet(golden_net, frame, feats, labels, out_dir / "designs" / variant,
                              simulator, clock["mhz"])
        hw_rows = [r for r in sim["rows"] if r["where"] == "hardware"]
        runs[variant] = {
            "bitstream": bs_path.name, "training": log, "mismatches": sim["mismatches"],
            "accuracy": {"float": float((pred_float == labels).float().mean()),
                         "golden": sim["golden_accuracy"], "hardware": sim["accuracy"]},
            "layers": sim["rows"], "concatenations": sim["concatenations"],
            "simulation_seconds": sim["seconds"],
            "seconds_per_frame": seconds_per_frame(sim["rows"], clock["mhz"],
                                                   sim["numpy_seconds"], clock["source"]),
            "onchip_memory_bits": max(r["onchip_memory_bits"] for r in hw_rows),
            "onchip_memory_bits_all_designs": sum(r["onchip_memory_bits"] for r in hw_rows),
            "designs_memory_fit": sum(bool(r.get("memory_fits")) for r in hw_rows),
            "format": sim["format"], "sfsc_shifts": _shifts(golden_net)}
        entries.append({"name": variant, "arch": arch,
                        "float": segmentation_metrics(pred_float.numpy(), y),
                        "golden": segmentation_metrics(sim["golden_predictions"].numpy(), y),
                        "hardware": segmentation_metrics(sim["predictions"].numpy(), y)})
    main = runs[models[-1]]
    evaluation = {"split": split, "test_sites": int(len(y)),
                  "majority_class": dict(segmentation_metrics(np.full(len(y), majority), y),
                                         label=majority),
                  "models": entries,
                  "torch_cpu_kernels": torch.backends.cpu.get_cpu_capability(),
                  "torch_cpu_kernels_note": TRAINING_KERNELS_NOTE}
    report = {"network": "bscnet", "arch": arch, "model": models[-1],
              "sfsc": models[-1] == "bsc-net", "dataset": "frog-tissues",
              "voxel_size": voxel_size, "sites": frame.size(0),
              "sites_per_level": [frame.size(l) for l in range(levels)],
              "simulator": simulator, "simulator_note": note, "clock_mhz": clock_mhz,
              "clock": clock, "steps_per_stage": steps, "seed": seed,
              "mismatches": sum(r["mismatches"] for r in runs.values()),
              "format": main["format"], "accuracy": main["accuracy"],
              "accuracy_note": "golden: the fixed-point program (golden.bscnet_fixed), which "
                               "the hardware matches bit for bit; float: the float network",
              "evaluation": evaluation,
              "layers": main["layers"], "concatenations": main["concatenations"],
              "concatenations_note": "not layers: no arithmetic; the op that reads one "
                                     "streams its channel blocks' words one after another",
              "simulation_seconds": main["simulation_seconds"],
              "seconds_per_frame": main["seconds_per_frame"],
              "tile": {"coord_bits": TILE_BITS, "max_voxels": TILE_VOXELS},
              "onchip_memory_bits": budget["bits"],
              "onchip_memory": {"design": "core", "bits": budget["bits"],
                                "block_ram_estimate": budget["block_ram_estimate"],
                                "device_block_rams": budget["device_block_rams"],
                                "part": budget["part"], "fits": budget["fits"]},
              "onchip_memory_bits_largest_engine": main["onchip_memory_bits"],
              "onchip_memory_bits_all_designs": main["onchip_memory_bits_all_designs"],
              "designs_memory_fit": main["designs_memory_fit"],
              "hardware_runs": runs, "synth": synth_entry,
              "demo_wall_seconds": time.monotonic() - started}
    summary = _summary(report)
    write_reports(out_dir, report, summary)
    print(summary)
    return report


def _shifts(net):
    """Each SFSC layer's chosen window shift a group."""
    return {name: conv.shifts().tolist() for name, conv in net.binary_layers()
            if hasattr(conv, "shifts")}


def seconds_per_frame(rows, clock_mhz, numpy_seconds, clock_source="target"):
    """One frame's time: in hardware (the ops' simulated cycles, one op after another, at the
    clock), in the NumPy golden program on this CPU (every op, first layer and head excluded),
    and in spconv (the SSC layers only: ``spconv_scope``), beside the hardware's and NumPy's
    time on those SSC layers."""
    ssc = [r for r in rows if r.get("kind") == "ssc" and r["where"] == "hardware"]
    timed = [r for r in ssc if r.get("spconv_seconds") is not None]
    hw = [r for r in rows if r["where"] == "hardware"]
    return {"hardware": sum(r["hardware_seconds"] for r in hw),
            "hardware_clock_mhz": clock_mhz, "hardware_clock_source": clock_source,
            "hardware_scope": f"{len(hw)} ops in hardware, summed (one after another), "
                              "their weight loads included",
            "numpy": numpy_seconds,
            "numpy_scope": "the golden fixed-point program (every op) on this CPU",
            "numpy_ssc": sum(r.get("software_seconds") or 0 for r in ssc),
            "numpy_ssc_scope": "each SSC layer alone, its kernel map (the search) built each "
                               "time; the program builds each level's map once",
            "hardware_ssc": sum(r["hardware_seconds"] for r in ssc),
            "spconv": sum(r["spconv_seconds"] for r in timed) if timed else None,
            "spconv_scope": _spconv_scope(ssc, timed),
            "spconv_equal": all(r["spconv_equal"] for r in timed) if timed else None}


def _spconv_scope(ssc, timed):
    if not timed:
        return "spconv not installed" if ssc else "no SSC layer"
    shifted = sum(r.get("spconv_kernel") == 5 for r in timed)
    return (f"the {len(timed)} SSC layers (spconv, one thread)" +
            (f"; {shifted} of them SFSC, each as one SubMConv3d of kernel 5 with every group's "
             f"3 x 3 x 3 weights at its window shift and zeros elsewhere" if shifted else ""))


LAYER_COLUMNS = [
    ("name", "op", "{}"), ("kind", "kind", "{}"), ("where", "where", "{}"),
    ("level", "level", "{}"), ("sites", "sites", "{}"), ("pairs", "pairs", "{}"),
    ("cin", "Cin", "{}"), ("cout", "Cout", "{}"), ("channels", "C", "{}"),
    ("cycles_simulated", "cycles", "{}"), ("cycles_model", "model", "{}"),
    ("tiles", "tiles", "{}"), ("software_seconds", "NumPy s", "{:.4f}"),
    ("spconv_seconds", "spconv s", "{:.4f}"), ("mismatches", "mismatches", "{}")]


def kind_totals(rows):
    """Cycles simulated and modelled per op kind (hardware ops)."""
    out = {}
    for r in rows:
        if r["where"] != "hardware":
            continue
        t = out.setdefault(r["kind"], {"kind": r["kind"], "ops": 0, "cycles_simulated": 0,
                                       "cycles_model": 0})
        t["ops"] += 1
        t["cycles_simulated"] += r["cycles_simulated"]
        t["cycles_model"] += r["cycles_model"]
    for t in out.values():
        t["ratio"] = t["cycles_simulated"] / t["cycles_model"] if t["cycles_model"] else None
    return list(out.values())


def _evaluation_table(r):
    rows = []
    for m in r["evaluation"]["models"]:
        run = r["hardware_runs"][m["name"]]
        row = {"model": m["name"], "mismatches": run["mismatches"]}
        for where in ("float", "golden", "hardware"):
            row[f"{where}_acc"] = m[where]["accuracy"]
            row[f"{where}_miou"] = m[where]["miou"]
        rows.append(row)
    maj = r["evaluation"]["majority_class"]
    rows.append({"model": f"majority class ({maj['label']})", "float_acc": maj["accuracy"],
                 "float_miou": maj["miou"]})
    cols = [("model", "model", "{}")]
    for where in ("float", "golden", "hardware"):
        cols += [(f"{where}_acc", f"{where} acc", "{:.4f}"),
                 (f"{where}_miou", f"{where} mIoU", "{:.4f}")]
    return format_table(rows, cols + [("mismatches", "mismatches", "{}")])


def _s(v):
    return "-" if v is None else f"{v:.3g} s"


def _summary(r):
    table = format_table(r["layers"], LAYER_COLUMNS)
    kinds = format_table(kind_totals(r["layers"]), [
        ("kind", "kind", "{}"), ("ops", "ops", "{}"), ("cycles_simulated", "cycles", "{:,}"),
        ("cycles_model", "model", "{:,}"), ("ratio", "ratio", "{:.2f}")])
    spf = r["seconds_per_frame"]
    hw = [x for x in r["layers"] if x["where"] == "hardware"]
    host = [x["name"] for x in r["layers"] if x["where"] == "host"]
    fmt, mem = r["format"], r["onchip_memory"]
    return (f"# BSC-Net demo ({r['arch'].upper()}, frog tissues, voxel size {r['voxel_size']}, "
            f"{r['sites']} sites)\n\n"
            f"Sites per level: {r['sites_per_level']}. Simulator: {r['simulator']}. "
            f"{len(hw)} ops in hardware, one after another on the engines of one design "
            f"(core/: every engine the network needs; the frame's buffers between ops on the "
            f"host, as a layer sequencer's external memory would hold them; each op simulated "
            f"on its engine alone: the same generator and parameters, generic cells instead of "
            f"ECP5 carry cells); on the host: "
            f"{', '.join(host)}. Fixed point: {fmt['width']}-bit codes with {fmt['frac']} "
            f"fractional bits, {fmt['mant_width']}-bit mantissas. Every engine with a frame "
            f"store keeps at most {r['tile']['max_voxels']} sites with "
            f"{r['tile']['coord_bits']}-bit coordinates, whatever the frame (tiles with halos, "
            f"docs/sparse.md): the design's on-chip memory is {mem['bits']:,} bits, about "
            f"{mem['block_ram_estimate']} block RAMs of the {mem['part']}'s "
            f"{mem['device_block_rams']} (estimate before synthesis).\n\n"
            + _synth_line(r.get("synth")) +
            f"Held-out evaluation ({r['evaluation']['split']}; {r['evaluation']['test_sites']} "
            f"test sites; voxel accuracy and mean IoU over the tissue classes present; golden: "
            f"the fixed-point program; majority class: the training region's, its row under "
            f"float):\n\n```\n{_evaluation_table(r)}\n```\n\n"
            f"Trained with torch's {r['evaluation']['torch_cpu_kernels']} CPU kernels: "
            f"{r['evaluation']['torch_cpu_kernels_note']}.\n\n"
            f"The tables below are {r['model']}'s ({'SFSC' if r['sfsc'] else 'plain SSC'}); "
            f"every model's are in report.json's hardware_runs.\n\n"
            f"Cycles per op kind (simulated: first input beat to last output beat, tiles "
            f"summed; model: pairs x folds for binary layers with the tiles' halos, beats for "
            f"batch-norm, sites x folds for the 1x1, present inputs for the means):\n\n"
            f"```\n{kinds}\n```\n\n```\n{table}\n```\n\n"
            f"Mismatches: {r['mismatches']}. One frame: hardware {spf['hardware']:.3g} s "
            f"({spf['hardware_scope']}, {clock_words(r['clock'])}); NumPy golden program "
            f"{spf['numpy']:.3g} s on this CPU (each level's kernel map built once). "
            + "".join(_spconv_line(name, run["seconds_per_frame"])
                      for name, run in r["hardware_runs"].items())
            + f"Simulation {r['simulation_seconds']:.0f} s, demo "
            f"{r['demo_wall_seconds']:.0f} s.\n")


def _synth_line(synth):
    if synth is None:
        return ""
    if "error" in synth:
        return f"Place and route failed: {synth['error']}\n\n"
    return (f"Placed and routed on the {synth['part']} (Yosys + nextpnr, seed {synth['seed']}): "
            f"{synth['lut4']:,} LUT4, {synth['ccu2c']:,} CCU2C, {synth['ff']:,} FF, "
            f"{synth['bram']} DP16KD, {synth['dsp']} DSP; Fmax {synth['fmax_mhz']:.1f} MHz "
            f"(target {synth['freq_target_mhz']:g}).\n\n")


def _spconv_line(name, spf):
    """The SSC layers of one model beside spconv (SFSC's as kernel-5 SubMConv3d)."""
    if spf["spconv"] is None:
        return f"{name}: SSC layers not set beside spconv ({spf['spconv_scope']}). "
    return (f"{name}, SSC layers only, each alone with its search: hardware "
            f"{spf['hardware_ssc']:.3g} s, NumPy {spf['numpy_ssc']:.3g} s (kernel map "
            f"included), spconv {_s(spf['spconv'])} ({spf['spconv_scope']}), its sums "
            f"{'equal to' if spf['spconv_equal'] else 'NOT equal to'} the hardware's. ")
