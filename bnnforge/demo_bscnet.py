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

__all__ = ["run_bscnet_demo", "hardware_layer_names", "simulate_bscnet", "train_bscnet",
           "segmentation_frame", "layer_design", "layer_level", "LAYER_COLUMNS"]


def hardware_layer_names(net):
    """The binary layers the demo runs in hardware: the encoder's SSC layers, the Conv
    (down-sampling) layers and the deepest DeConv (up-sampling) layer."""
    levels = net.cfg["levels"]
    names = [name for name, _ in net.binary_layers()
             if name.startswith(("enc.", "down."))]
    return names + [f"up.{levels - 2}.conv"]


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


def _accuracy(net, frame, feats, labels, **kw):
    return float((_predict(net, frame, feats, **kw) == labels).float().mean())


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


def simulate_bscnet(net, frame, feats, labels, out_dir, simulator, clock_mhz, names=None):
    """Run ``net`` on one frame with the binary layers ``names`` (default
    :func:`hardware_layer_names`) in hardware simulation; every layer's sums are compared with
    golden's and the host goes on with the hardware's. Returns ``(rows, mismatches,
    accuracy, simulation seconds, predictions)``."""
    from golden.sparse import sparse_layer_sums
    from golden.spconv_peer import spconv_available
    from golden.train import torch_threads
    from .sparse_flows import simulate_tiled

    wanted = hardware_layer_names(net) if names is None else names
    rows, mismatches, sim_seconds = [], 0, 0.0
    bar = Progress("hardware layers")

    def hook(name, conv, level, bits_in, sums):
        nonlocal mismatches, sim_seconds
        if name not in wanted:
            return None
        kind, w = conv.kind, conv.weight_bits()
        bits = frame.bits[level]
        if kind == "up":
            fr = (frame.coords[level + 1], bits_in, frame.coords[level])
            n_in = len(frame.coords[level + 1])
        else:
            fr = (frame.coords[level], bits_in)
            n_in = len(frame.coords[level])
        # Every layer's design has the same bounded size whatever the frame: the frame runs
        # through it in tiles with halos (golden/tiling.py).
        design, folding = layer_design(conv, name, level, TILE_BITS, TILE_VOXELS, out_dir)
        t0 = time.monotonic()
        result = simulate_tiled(design, fr, w, simulator)
        sim_seconds += time.monotonic() - t0
        hw = result["outputs"]
        gold = sums.round().to(torch.int64).numpy()
        bad = int(result["mismatches"]) + int(not np.array_equal(hw, gold))
        mismatches += bad
        reps = 3
        t1 = time.perf_counter()
        for _ in range(reps):
            sparse_layer_sums(kind, fr, w, bits)
        software = (time.perf_counter() - t1) / reps
        peer = {}
        if kind == "ssc" and spconv_available():
            # spconv's SubMConv3d on the same frame and weights, one thread (its CPU
            # scatter-add races on several): its sums must be golden's.
            from golden.spconv_peer import spconv_ssc_dot

            with torch_threads(1):
                sp_sums, sp_seconds = spconv_ssc_dot(fr[0], fr[1], w, bits, repeats=3)
            peer = {"spconv_seconds": sp_seconds,
                    "spconv_equal": bool(np.array_equal(sp_sums, gold))}
        pairs = result["pairs"]
        cycles = result["cycles"] or None
        folds = (conv.cout // folding.pe) * (conv.cin // folding.simd)
        rows.append({"name": name, "kind": kind, "level": level, "voxels": n_in,
                     "out_voxels": len(hw), "cin": conv.cin, "cout": conv.cout,
                     "pe": folding.pe, "simd": folding.simd, "pairs": pairs,
                     "cycles_simulated": cycles, "cycles_model": pairs * folds,
                     "ratio": cycles / (pairs * folds) if cycles and pairs else None,
                     "search_cycles": result["search_cycles"], "mismatches": bad,
                     "tiles": result["tiles"], "largest_tile": result["largest_tile"],
                     "onchip_memory_bits": result["info"]["memory_budget"]["bits"],
                     "pairs_whole_frame": result["pairs_whole_frame"],
                     "software_seconds": software, **peer,
                     "hardware_seconds": cycles / (clock_mhz * 1e6) if cycles else None,
                     "simulation_seconds": time.monotonic() - t0})
        bar.update(len(rows), len(wanted), name)
        return hw

    pred = _predict(net, frame, feats, sums_hook=hook)
    acc = float((pred == labels).float().mean())
    return rows, mismatches, acc, sim_seconds, pred


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
    pred_golden = _predict(golden_net, frame, feats)
    acc_golden = float((pred_golden == labels).float().mean())

    step(f"running {len(hardware_layer_names(golden_net))} binary layers in hardware on "
         f"{simulator} (the other layers on the host); frame of {frame.size(0)} sites")
    rows, mismatches, acc_hw, sim_seconds, pred_hw = simulate_bscnet(
        golden_net, frame, feats, labels, out_dir / "designs", simulator, clock_mhz)
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
    for r in rows:
        r["speedup"] = (r["software_seconds"] / r["hardware_seconds"]
                        if r["hardware_seconds"] else None)
    report = {"network": "bscnet", "arch": arch, "sfsc": False, "dataset": "frog-tissues",
              "voxel_size": voxel_size, "sites": frame.size(0),
              "sites_per_level": [frame.size(l) for l in range(levels)],
              "simulator": simulator, "simulator_note": note, "clock_mhz": clock_mhz,
              "clock": clock_entry(clock_mhz), "epochs": epochs, "seed": seed, "mismatches": mismatches,
              "accuracy": {"float": acc_float, "golden": acc_golden, "hardware": acc_hw},
              "evaluation": evaluation,
              "layers": rows, "simulation_seconds": sim_seconds,
              "seconds_per_frame": seconds_per_frame(rows, clock_mhz),
              "tile": {"coord_bits": TILE_BITS, "max_voxels": TILE_VOXELS},
              "onchip_memory_bits": max(r["onchip_memory_bits"] for r in rows),
              "onchip_memory_bits_all_layers": sum(r["onchip_memory_bits"] for r in rows),
              "demo_wall_seconds": time.monotonic() - started}
    summary = _summary(report)
    write_reports(out_dir, report, summary)
    print(summary)
    return report


def seconds_per_frame(rows, clock_mhz):
    """The hardware layers' time for one frame: in hardware (simulated cycles at the clock),
    in the NumPy golden model, and in spconv (its SSC layers only; the down- and up-sampling
    layers are not timed there: ``spconv_scope``), all summed over the layers."""
    ssc = [r for r in rows if r["kind"] == "ssc"]
    timed = [r for r in ssc if r.get("spconv_seconds") is not None]
    return {"hardware": sum(r["hardware_seconds"] or 0 for r in rows),
            "hardware_clock_mhz": clock_mhz, "hardware_clock_source": "target",
            "numpy": sum(r["software_seconds"] for r in rows),
            "numpy_ssc": sum(r["software_seconds"] for r in ssc),
            "hardware_ssc": sum(r["hardware_seconds"] or 0 for r in ssc),
            "spconv": sum(r["spconv_seconds"] for r in timed) if timed else None,
            "spconv_scope": f"the {len(timed)} SSC layers of {len(rows)} hardware layers "
                            f"(spconv, one thread)" if timed else "spconv not installed",
            "spconv_equal": all(r["spconv_equal"] for r in timed) if timed else None}


LAYER_COLUMNS = [
    ("name", "layer", "{}"), ("kind", "kind", "{}"), ("voxels", "voxels", "{}"),
    ("pairs", "pairs", "{}"), ("cin", "Cin", "{}"), ("cout", "Cout", "{}"),
    ("cycles_simulated", "cycles", "{}"), ("cycles_model", "model", "{}"),
    ("ratio", "ratio", "{:.2f}"), ("search_cycles", "search", "{}"), ("tiles", "tiles", "{}"),
    ("software_seconds", "software s", "{:.4f}"), ("spconv_seconds", "spconv s", "{:.4f}"),
    ("speedup", "speed-up", "{:.0f}x"),
    ("mismatches", "mismatches", "{}")]


def _miou(r):
    m = r["evaluation"]["models"][0]
    return (f"float {m['float']['miou']:.4f}, golden {m['golden']['miou']:.4f}, hardware "
            f"{m['hardware']['miou']:.4f}")


def _s(v):
    return "-" if v is None else f"{v:.3g} s"


def _summary(r):
    table = format_table(r["layers"], LAYER_COLUMNS)
    a = r["accuracy"]
    return (f"# BSC-Net demo ({r['arch'].upper()}, frog tissues, voxel size {r['voxel_size']}, "
            f"{r['sites']} sites)\n\n"
            f"Sites per level: {r['sites_per_level']}. Simulator: {r['simulator']}. "
            f"Hardware layers: {len(r['layers'])}; the others run on the host. Every layer's "
            f"design stores at most {r['tile']['max_voxels']} sites with "
            f"{r['tile']['coord_bits']}-bit coordinates, whatever the frame: the frame runs "
            f"through it in tiles with halos (docs/sparse.md); on-chip memory of the largest "
            f"layer design {r['onchip_memory_bits']:,} bits, of all "
            f"{r['onchip_memory_bits_all_layers']:,}.\n\n"
            f"Held-out evaluation ({r['evaluation']['split']}; {r['evaluation']['test_sites']} "
            f"test sites): voxel accuracy float {a['float']:.4f}, golden (bitstream) "
            f"{a['golden']:.4f}, with the hardware's sums {a['hardware']:.4f}; mean IoU over "
            f"the tissue classes present: {_miou(r)}; predicting the training region's "
            f"majority class: accuracy {r['evaluation']['majority_class']['accuracy']:.4f}, "
            f"mean IoU {r['evaluation']['majority_class']['miou']:.4f}.\n\n"
            f"```\n{table}\n```\n\n"
            f"Mismatches: {r['mismatches']}. Cycles: first input beat to last output beat of "
            f"each tile, summed (the search overlaps the store); model: pairs x "
            f"(Cout/PE)(Cin/SIMD), pairs with the tiles' halos. Hardware "
            f"time {clock_words(r['clock'])} vs the golden sparse convolution (NumPy) on "
            f"this CPU; spconv (CPU, one thread) on the SSC layers, its sums "
            f"{'equal to' if r['seconds_per_frame']['spconv_equal'] else 'NOT equal to'} the "
            f"golden ones. Per frame, summed over the hardware layers: hardware "
            f"{r['seconds_per_frame']['hardware']:.3g} s (target clock), NumPy golden "
            f"{r['seconds_per_frame']['numpy']:.3g} s; SSC layers only: hardware "
            f"{r['seconds_per_frame']['hardware_ssc']:.3g} s, NumPy "
            f"{r['seconds_per_frame']['numpy_ssc']:.3g} s, spconv "
            f"{_s(r['seconds_per_frame']['spconv'])}. "
            f"Simulation {r['simulation_seconds']:.0f} s, demo "
            f"{r['demo_wall_seconds']:.0f} s.\n")
