"""BSC-Baseline and BSC-Net (UNET-S) trained through the supplement's stages as the BSC-Net
demo trains them (golden.bscnet_train, the demo's left/right split of the frog CT volume), over
several seeds: held-out voxel accuracy and mean IoU of the float networks, mean and standard
deviation, beside the majority class; BSC-Net with the window logits at the stage's rate and
at the demo's scaled rate. Writes build/bench/bscnet_training.json.

    .venv/bin/python benchmarks/bscnet_training.py [--seeds 0 1 2] [--steps 200]
        [--voxel-size 9] [--jobs 2] [--configs bsc-baseline bsc-net:stage bsc-net:scaled]

Every run on one torch thread (the sparse scatter-adds are deterministic there), runs in
parallel processes (``--jobs``). The figures repeat exactly on one machine but follow the CPU
kernels torch picks (recorded as ``torch_cpu_kernels``; ``ATEN_CPU_CAPABILITY=default`` or
``avx2`` chooses): on seed 0 BSC-Net's mean IoU was 0.1172 on AVX2 kernels and 0.1816 on the
default ones.
"""

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

CONFIGS = {"bsc-baseline": ("bsc-baseline", None), "bsc-net:stage": ("bsc-net", None),
           "bsc-net:scaled": ("bsc-net", "scaled")}
"""Model and the window logits' rate (the stage's, or the demo's scaled one)."""


def _run(args):
    variant, alpha, seed, steps, voxel_size = args
    import torch

    from bnnforge.demo_bscnet import _predict, segmentation_metrics, training_frames
    from golden.bscnet import BSCNet
    from golden.bscnet_train import SCALED_ALPHA_LR, train_staged
    from golden.frog import FROG_CLASSES
    from golden.train import torch_threads

    with torch_threads(1):
        levels = BSCNet("unet-s", sfsc=False).cfg["levels"]
        train, (frame, feats, labels), _, majority = training_frames(voxel_size, seed, levels)
        torch.manual_seed(seed)
        net = BSCNet("unet-s", in_channels=1, classes=FROG_CLASSES,
                     sfsc=variant == "bsc-net")
        t0 = time.perf_counter()
        log = train_staged(net, train, variant, steps, seed,
                           alpha_lr=SCALED_ALPHA_LR if alpha == "scaled" else None)
        seconds = time.perf_counter() - t0
        y = labels.numpy()
        m = segmentation_metrics(_predict(net.eval(), frame, feats).numpy(), y)
        base = segmentation_metrics(np.full(len(y), majority), y)
    return {"model": variant, "window_logit_rate": alpha or "stage", "seed": seed,
            "steps_per_stage": steps, "accuracy": m["accuracy"], "miou": m["miou"],
            "search_entropy": next((r["confidence"] for r in log
                                    if r["confidence"] is not None), None),
            "final_loss": log[-1]["loss"], "train_seconds": seconds,
            "majority": {"accuracy": base["accuracy"], "miou": base["miou"]}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--voxel-size", type=int, default=9)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    from bnnforge.flows import format_table
    from quant.bitstream import atomic_write

    configs = [CONFIGS[c] for c in args.configs]
    tasks = [(v, a, s, args.steps, args.voxel_size) for v, a in configs for s in args.seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(_run, tasks))
    summary = []
    for v, a in configs:
        mine = [r for r in runs if r["model"] == v and r["window_logit_rate"] == (a or "stage")]
        row = {"model": v, "window_logit_rate": a or "stage", "seeds": len(mine)}
        for key in ("accuracy", "miou"):
            vals = np.array([r[key] for r in mine])
            row[key], row[key + "_sd"] = float(vals.mean()), float(vals.std(ddof=1)) \
                if len(vals) > 1 else 0.0
        ent = [r["search_entropy"] for r in mine if r["search_entropy"] is not None]
        row["search_entropy"] = float(np.mean(ent)) if ent else None
        summary.append(row)
    majority = runs[0]["majority"]
    summary.append({"model": "majority class", "window_logit_rate": "-", "seeds": "-",
                    "accuracy": majority["accuracy"], "miou": majority["miou"]})
    print(format_table(summary, [
        ("model", "model", "{}"), ("window_logit_rate", "window logits' rate", "{}"),
        ("seeds", "seeds", "{}"), ("accuracy", "accuracy", "{:.4f}"),
        ("accuracy_sd", "sd", "{:.4f}"), ("miou", "mean IoU", "{:.4f}"),
        ("miou_sd", "sd", "{:.4f}"), ("search_entropy", "search entropy", "{:.4f}")]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    kernels = torch.backends.cpu.get_cpu_capability()
    print(f"torch CPU kernels: {kernels}")
    text = json.dumps({"runs": runs, "summary": summary, "voxel_size": args.voxel_size,
                       "steps_per_stage": args.steps, "torch_cpu_kernels": kernels},
                      indent=1) + "\n"
    atomic_write(out / "bscnet_training.json", lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {out / 'bscnet_training.json'}")


if __name__ == "__main__":
    main()
