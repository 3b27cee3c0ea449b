"""``bnnforge study csign``: the digits MLP trained with sign and with UaBNN's c-sign, three
seeds each, same schedule; flip rate per epoch per layer, summed uncertainty per epoch, final
accuracy (float and hardware-exact integer). Writes ``report.json`` and ``flip_rate.png``."""

import json
import time
from pathlib import Path

import numpy as np

from quant.bitstream import atomic_write
from .progress import Progress, step

__all__ = ["run_csign_study"]


def _uncertainty(model, sigmas):
    """Summed Eq. 3 uncertainty of the latent weights (sigma: each layer's initial spread),
    and, for c-sign, its own combined uncertainty (Eq. 4)."""
    from quant.csign import gaussian_uncertainty

    out = {}
    for i, fc in enumerate(model.fcs):
        w = fc.weight.detach()
        out[f"fc{i}"] = float(gaussian_uncertainty(w, sigmas[i]).sum())
    return out


def run_csign_study(out_dir="build/study-csign", seeds=(0, 1, 2), epochs=30, hidden=(256, 256),
                    lr=1e-2):
    import torch

    from golden.digits import input_spec, load_digits_split, thermometer
    from golden.integer import IntegerNetwork, predict
    from golden.mlp import BinaryMLP
    from golden.train import accuracy, seed_everything, train_classifier

    started = time.monotonic()
    out_dir = Path(out_dir)
    levels = (4, 8, 12)
    runs = []
    for binarizer in ("sign", "csign"):
        for seed in seeds:
            step(f"{binarizer}, seed {seed}: training the digits MLP for {epochs} epochs")
            data = load_digits_split(seed)
            xtr, xte = thermometer(data.x_train, levels), thermometer(data.x_test, levels)
            seed_everything(seed)
            model = BinaryMLP([xtr.shape[1], *hidden, 10], binarizer)
            sigmas = [float(fc.weight.detach().std()) for fc in model.fcs]
            previous = model.layer_bits()
            flips, unc, fhat = [], [], []

            def on_epoch(m, epoch):
                nonlocal previous
                now = m.layer_bits()
                flips.append({k: float((now[k] != previous[k]).mean()) for k in now})
                previous = now
                unc.append(_uncertainty(m, sigmas))
                fhat.append(m.uncertainty())

            bar = Progress("epoch")
            train_classifier(model, xtr, data.y_train, epochs=epochs, lr=lr, seed=seed,
                             on_epoch=on_epoch,
                             progress=lambda e, n, loss: bar.update(e, n, f"loss {loss:.4f}"))
            bs = model.to_bitstream(input_spec(levels))
            scores = IntegerNetwork(bs)(torch.from_numpy(xte))
            runs.append({"binarizer": binarizer, "network": "mlp", "seed": seed,
                         "flip_rate_per_epoch": flips,
                         "uncertainty_per_epoch": unc,
                         "csign_uncertainty_per_epoch": fhat,
                         "test_accuracy_float": accuracy(model, xte, data.y_test),
                         "test_accuracy_integer": float(
                             (predict(scores).numpy() == data.y_test).mean())})
    summary = _summary(runs)
    report = {"study": "csign", "epochs": epochs, "seeds": list(seeds),
              "sizes": [192, *hidden, 10], "schedule": "Adam, cosine", "lr": lr,
              "runs": runs, "summary": summary,
              "wall_seconds": time.monotonic() - started}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "report.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    atomic_write(out_dir / "flip_rate.png", lambda tmp: _plot(runs, tmp))
    _print(summary)
    return report


def _summary(runs):
    out = {}
    for b in ("sign", "csign"):
        rs = [r for r in runs if r["binarizer"] == b]
        layers = list(rs[0]["flip_rate_per_epoch"][0])
        per_epoch = np.mean([[np.mean([e[k] for k in layers]) for e in r["flip_rate_per_epoch"]]
                             for r in rs], axis=0)
        out[b] = {"mean_flip_rate_per_epoch": per_epoch.tolist(),
                  "mean_flip_rate": float(per_epoch.mean()),
                  "test_accuracy_float": [r["test_accuracy_float"] for r in rs],
                  "test_accuracy_integer": [r["test_accuracy_integer"] for r in rs]}
    return out


def _plot(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    layers = list(runs[0]["flip_rate_per_epoch"][0])
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.2), sharey=True)
    colours = {"sign": "tab:blue", "csign": "tab:orange"}
    for ax, layer in zip(axes, layers):
        for r in runs:
            ys = [e[layer] for e in r["flip_rate_per_epoch"]]
            ax.plot(range(1, len(ys) + 1), ys, color=colours[r["binarizer"]], alpha=0.7,
                    label=f"{r['binarizer']}" if r["seed"] == runs[0]["seed"] else None)
        ax.set_yscale("log")
        ax.set_title(layer)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("flip rate (fraction of weights per epoch)")
    axes[0].legend()
    fig.suptitle("Digits MLP: weight flip rate, sign vs c-sign (3 seeds each)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _print(summary):
    for b, s in summary.items():
        print(f"{b:6s} mean flip rate {s['mean_flip_rate']:.4f}  accuracy float "
              f"{np.mean(s['test_accuracy_float']):.4f}  integer "
              f"{np.mean(s['test_accuracy_integer']):.4f}")
