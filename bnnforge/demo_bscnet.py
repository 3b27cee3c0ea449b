"""``bnnforge demo --network bscnet``: a BSC-Net UNET-S trained on the frog CT volume's tissue
segmentation, its binary encoder layers (and the first up-sampling layer) in hardware
simulation with the neighbour search on chip, the real-valued layers on the host.

Every hardware layer gets the same input bits the golden network gives it; its signed sums must
equal golden's bit for bit, and the hardware's sums are the ones the host continues with.
"""

import time
from pathlib import Path

import numpy as np
import torch

from .reports import clock_entry, clock_words, pick_simulator, write_reports
from .flows import format_table
from .progress import Progress, step

__all__ = ["run_bscnet_demo", "simulate_bscnet", "train_bscnet", "segmentation_frame",
           "layer_design", "layer_level", "LAYER_COLUMNS"]


def train_bscnet(net, frames, epochs, lr, seed):
    """Adam with the supplement's step schedule, one frame a step in turn."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(epochs * 60 / 128),
                                                       int(epochs * 100 / 128)], 0.1)
    bar = Progress("training steps")
    net.train()
    for epoch in range(epochs):
        frame, feats, labels = frames[epoch % len(frames)]
        loss = torch.nn.functional.cross_entropy(net(feats, frame), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.update(epoch + 1, epochs, f"loss {loss.item():.3f}")
    return net.eval()


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


SPLIT_FRACTION = 0.6
"""The frog volume is split along z (its short axis, 136 slices) at this fraction of the
occupied slices, rounded to a whole voxel: the network trains below and is tested above."""


def split_volume(volume, voxel_size):
    """``(train volume, test volume, description)``: the CT volume cut along z into two
    disjoint regions at a multiple of ``voxel_size`` (no voxel of the unshifted grid spans
    both), the other region's voxels set to background."""
    z = np.nonzero(volume.any(axis=(1, 2)))[0]
    cut = int(round((z.min() + SPLIT_FRACTION * (z.max() + 1 - z.min())) / voxel_size)
              * voxel_size)
    train, test = volume.copy(), volume.copy()
    train[cut:] = 0
    test[:cut] = 0
    return train, test, (f"frog CT slices z < {cut} for training (shifted grids inside it), "
                         f"z >= {cut} for testing (unshifted grid); disjoint")


TILE_BITS = 6
"""Coordinate bits of every hardware layer's design: frames run through it in tiles of at most
62 voxels a side (plus the halo) in their own coordinates."""
TILE_VOXELS = 2048
"""Sites a tile (a part of one) the designs store: their on-chip memory does not depend on the
frame's size."""


def _max_voxels(n):
    return max(16, 1 << max(0, int(n - 1).bit_length()))


def layer_level(name):
    """A binary layer's level from its module path (``enc.3.0.a.conv`` -> 3)."""
    return int(name.split(".")[1])


def layer_design(conv, name, level, frame_bits, max_voxels, out_dir, family=None):
    """Generate one binary layer (sums out) with the demo's folding: PE = min(Cout, 16),
    SIMD = Cin, for the FPGA ``family`` (None: generic). Returns ``(design dir, folding)``."""
    from quant.layout import Folding
    from .sparse_flows import generate_sparse

    folding = Folding(min(conv.cout, 16), conv.cin)
    design = Path(out_dir) / name.replace(".", "_")
    generate_sparse(conv.weight_bits(), None, max_voxels, frame_bits, folding, design,
                    name=name.replace(".", "_"), kind=conv.kind, output="sums", family=family)
    return design, folding


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
            r["hardware_seconds"] = r["cycles_simulated"] / (clock_mhz * 1e6)
    return {"rows": rows, "mismatches": runner.mismatches,
            "accuracy": float((pred == labels).float().mean()),
            "golden_accuracy": float((golden_pred == labels).float().mean()),
            "seconds": runner.sim_seconds, "predictions": pred,
            "golden_predictions": golden_pred, "numpy_seconds": numpy_seconds,
            "format": fx.fmt.to_dict()}


def run_bscnet_demo(out_dir="build/demo-bscnet", simulator=None, voxel_size=9, epochs=40,
                    seed=0, clock_mhz=200.0, arch="unet-s"):
    """Train, export, generate and simulate; returns the report (also written as
    ``report.json`` and ``report.md`` in ``out_dir``).

    Runs on one torch thread: the sparse layers' scatter-adds are not deterministic with more
    (two runs of the same demo on two threads gave 0.5682 and 0.5698), so the report is
    reproducible only on one."""
    from golden.train import torch_threads

    with torch_threads(1):
        return _run_bscnet_demo(out_dir, simulator, voxel_size, epochs, seed, clock_mhz, arch)


def _run_bscnet_demo(out_dir, simulator, voxel_size, epochs, seed, clock_mhz, arch):
    from golden.bscnet import BSCNet, from_bitstream, to_bitstream
    from golden.bscnet_fixed import FixedBscNet
    from golden.frog import FROG_CLASSES
    from quant.bitstream import read, write

    started = time.monotonic()
    out_dir = Path(out_dir)
    simulator, note = pick_simulator(simulator, clock_mhz)
    levels = BSCNet(arch, sfsc=False).cfg["levels"]
    from golden.frog import frog_volume

    train_vol, test_vol, split = split_volume(frog_volume(), voxel_size)
    step(f"frog CT volume (pyvista's wheel): tissue segmentation at voxel size {voxel_size}; "
         f"{split}")
    rng = np.random.default_rng(seed)
    shifts = [tuple(int(v) for v in rng.integers(1, voxel_size, 3)) for _ in range(7)]
    train = [segmentation_frame(voxel_size, o, levels, train_vol) for o in shifts]
    test = segmentation_frame(voxel_size, (0, 0, 0), levels, test_vol)
    step(f"training BSC-Net {arch.upper()} (binary SSC, sign weights, ApproxSign activations) "
         f"for {epochs} steps, Adam with the supplement's step schedule")
    torch.manual_seed(seed)
    net = BSCNet(arch, in_channels=1, classes=FROG_CLASSES, sfsc=False)
    train_bscnet(net, train, epochs, 1e-3, seed)
    pred_float = _predict(net, test[0], test[1])
    acc_float = float((pred_float == test[2]).float().mean())
    bs_path = out_dir / "bscnet.bnn"
    # The frame's extent (coordinate bits) and size, so that designs made from this bitstream
    # follow the data rather than a wide default.
    write(to_bitstream(net, {"channels": 1, "voxel_size": voxel_size,
                             "coord_bits": int(test[0].bits[0]),
                             "max_voxels": _max_voxels(len(test[1]))},
                       {"arch": arch, "dataset": "frog-tissues"}), bs_path)
    golden_net = from_bitstream(read(bs_path))
    frame, feats, labels = test
    ops = len(FixedBscNet(golden_net).program["ops"])
    step(f"running the network's {ops} ops between its first layer and its head in hardware "
         f"on {simulator}, one op after another (golden: the fixed-point program); frame of "
         f"{frame.size(0)} sites")
    sim = simulate_bscnet(golden_net, frame, feats, labels, out_dir / "designs", simulator,
                          clock_mhz)
    rows = sim["rows"]
    pred_golden, pred_hw = sim["golden_predictions"], sim["predictions"]
    train_labels = np.concatenate([t[2].numpy() for t in train])
    majority = int(np.bincount(train_labels).argmax())
    y = labels.numpy()
    evaluation = {
        "split": split, "test_sites": int(len(y)),
        "majority_class": dict(segmentation_metrics(np.full(len(y), majority), y),
                               label=majority),
        "models": [{"name": "bsc-baseline", "arch": arch,
                    "float": segmentation_metrics(pred_float.numpy(), y),
                    "golden": segmentation_metrics(pred_golden.numpy(), y),
                    "hardware": segmentation_metrics(pred_hw.numpy(), y)}],
        "note": "BSC-Net (with SFSC) is not in this demo: SFSC has no hardware mapping yet"}
    hw_rows = [r for r in rows if r["where"] == "hardware"]
    report = {"network": "bscnet", "arch": arch, "sfsc": False, "dataset": "frog-tissues",
              "voxel_size": voxel_size, "sites": frame.size(0),
              "sites_per_level": [frame.size(l) for l in range(levels)],
              "simulator": simulator, "simulator_note": note, "clock_mhz": clock_mhz,
              "clock": clock_entry(clock_mhz), "epochs": epochs, "seed": seed,
              "mismatches": sim["mismatches"], "format": sim["format"],
              "accuracy": {"float": acc_float, "golden": sim["golden_accuracy"],
                           "hardware": sim["accuracy"]},
              "accuracy_note": "golden: the fixed-point program (golden.bscnet_fixed), which "
                               "the hardware matches bit for bit; float: the float network",
              "evaluation": evaluation,
              "layers": rows, "simulation_seconds": sim["seconds"],
              "seconds_per_frame": seconds_per_frame(rows, clock_mhz, sim["numpy_seconds"]),
              "tile": {"coord_bits": TILE_BITS, "max_voxels": TILE_VOXELS},
              "onchip_memory_bits": max(r["onchip_memory_bits"] for r in hw_rows),
              "onchip_memory_bits_all_designs": sum(r["onchip_memory_bits"] for r in hw_rows),
              "designs_memory_fit": sum(bool(r.get("memory_fits")) for r in hw_rows),
              "synth": None,
              "demo_wall_seconds": time.monotonic() - started}
    summary = _summary(report)
    write_reports(out_dir, report, summary)
    print(summary)
    return report


def seconds_per_frame(rows, clock_mhz, numpy_seconds):
    """One frame's time: in hardware (the ops' simulated cycles, one op after another, at the
    clock), in the NumPy golden program on this CPU (every op, first layer and head excluded),
    and in spconv (the SSC layers only: ``spconv_scope``), beside the hardware's and NumPy's
    time on those SSC layers."""
    ssc = [r for r in rows if r.get("kind") == "ssc" and r["where"] == "hardware"]
    timed = [r for r in ssc if r.get("spconv_seconds") is not None]
    hw = [r for r in rows if r["where"] == "hardware"]
    return {"hardware": sum(r["hardware_seconds"] for r in hw),
            "hardware_clock_mhz": clock_mhz, "hardware_clock_source": "target",
            "hardware_scope": f"{len(hw)} ops in hardware, summed (one after another)",
            "numpy": numpy_seconds,
            "numpy_scope": "the golden fixed-point program (every op) on this CPU",
            "numpy_ssc": sum(r.get("software_seconds") or 0 for r in ssc),
            "numpy_ssc_scope": "each SSC layer alone, its kernel map (the search) built each "
                               "time; the program builds each level's map once",
            "hardware_ssc": sum(r["hardware_seconds"] for r in ssc),
            "spconv": sum(r["spconv_seconds"] for r in timed) if timed else None,
            "spconv_scope": f"the {len(timed)} SSC layers (spconv, one thread)" if timed
                            else "spconv not installed",
            "spconv_equal": all(r["spconv_equal"] for r in timed) if timed else None}


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


def _miou(r):
    m = r["evaluation"]["models"][0]
    return (f"float {m['float']['miou']:.4f}, golden {m['golden']['miou']:.4f}, hardware "
            f"{m['hardware']['miou']:.4f}")


def _s(v):
    return "-" if v is None else f"{v:.3g} s"


def _summary(r):
    table = format_table(r["layers"], LAYER_COLUMNS)
    kinds = format_table(kind_totals(r["layers"]), [
        ("kind", "kind", "{}"), ("ops", "ops", "{}"), ("cycles_simulated", "cycles", "{:,}"),
        ("cycles_model", "model", "{:,}"), ("ratio", "ratio", "{:.2f}")])
    a, spf = r["accuracy"], r["seconds_per_frame"]
    hw = [x for x in r["layers"] if x["where"] == "hardware"]
    host = [x["name"] for x in r["layers"] if x["where"] == "host"]
    fmt = r["format"]
    return (f"# BSC-Net demo ({r['arch'].upper()}, frog tissues, voxel size {r['voxel_size']}, "
            f"{r['sites']} sites)\n\n"
            f"Sites per level: {r['sites_per_level']}. Simulator: {r['simulator']}. "
            f"{len(hw)} ops in hardware, one after another (each its own design, the frame's "
            f"buffers between them on the host as a layer sequencer's external memory would "
            f"hold them); on the host: {', '.join(host)}. Fixed point: {fmt['width']}-bit "
            f"codes with {fmt['frac']} fractional bits, {fmt['mant_width']}-bit mantissas. "
            f"Every design with a frame store keeps at most {r['tile']['max_voxels']} sites "
            f"with {r['tile']['coord_bits']}-bit coordinates, whatever the frame (tiles with "
            f"halos, docs/sparse.md); on-chip memory of the largest design "
            f"{r['onchip_memory_bits']:,} bits; the memories of {r['designs_memory_fit']} of "
            f"the {len(hw)} ops' designs fit the LFE5U-85F.\n\n"
            f"Held-out evaluation ({r['evaluation']['split']}; {r['evaluation']['test_sites']} "
            f"test sites): voxel accuracy float {a['float']:.4f}, golden (fixed point) "
            f"{a['golden']:.4f}, hardware {a['hardware']:.4f}; mean IoU over the tissue classes "
            f"present: {_miou(r)}; predicting the training region's majority class: accuracy "
            f"{r['evaluation']['majority_class']['accuracy']:.4f}, mean IoU "
            f"{r['evaluation']['majority_class']['miou']:.4f}.\n\n"
            f"Cycles per op kind (simulated: first input beat to last output beat, tiles "
            f"summed; model: pairs x folds for binary layers with the tiles' halos, beats for "
            f"batch-norm, sites x folds for the 1x1, present inputs for the means):\n\n"
            f"```\n{kinds}\n```\n\n```\n{table}\n```\n\n"
            f"Mismatches: {r['mismatches']}. One frame: hardware {spf['hardware']:.3g} s "
            f"({spf['hardware_scope']}, {clock_words(r['clock'])}); NumPy golden program "
            f"{spf['numpy']:.3g} s on this CPU (each level's kernel map built once). SSC "
            f"layers only, each alone with its search: hardware {spf['hardware_ssc']:.3g} s, "
            f"NumPy {spf['numpy_ssc']:.3g} s (kernel map included), spconv (CPU, one "
            f"thread) {_s(spf['spconv'])}, its sums "
            f"{'equal to' if spf['spconv_equal'] else 'NOT equal to'} the hardware's. "
            f"Simulation {r['simulation_seconds']:.0f} s, demo "
            f"{r['demo_wall_seconds']:.0f} s.\n")
