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


def _layers(model):
    """``{name: layer}`` of a network's binary layers (each has ``weight`` and ``binarize``)."""
    if hasattr(model, "fcs"):
        return {f"fc{i}": fc for i, fc in enumerate(model.fcs)}
    return {f"g{g}.b{k}.u{j}": unit for g, group in enumerate(model.units)
            for k, base in enumerate(group) for j, unit in enumerate(base)}


def _bits(model):
    return {name: layer.binarize.bits(layer.weight).numpy()
            for name, layer in _layers(model).items()}


def _uncertainty(model, sigmas):
    """Summed Eq. 3 uncertainty of each layer's latent weights (sigma: its initial spread)."""
    from quant.csign import gaussian_uncertainty

    return {name: float(gaussian_uncertainty(layer.weight.detach(), sigmas[name]).sum())
            for name, layer in _layers(model).items()}


def _network(name, binarizer, seed, hidden):
    """``(model, x_train, y_train, x_test, y_test, integer_accuracy, epochs scale)``."""
    import torch

    from golden.digits import as_images, input_spec, load_digits_split, thermometer
    from golden.groupnet import GroupNet, fixed_forward
    from golden.integer import IntegerNetwork, predict
    from golden.mlp import BinaryMLP

    data = load_digits_split(seed)
    if name == "mlp":
        levels = (4, 8, 12)
        xtr, xte = thermometer(data.x_train, levels), thermometer(data.x_test, levels)
        model = BinaryMLP([xtr.shape[1], *hidden, 10], binarizer)

        def integer_accuracy(m):
            scores = IntegerNetwork(m.to_bitstream(input_spec(levels)))(torch.from_numpy(xte))
            return float((predict(scores).numpy() == data.y_test).mean())
    else:
        xtr, xte = as_images(data.x_train), as_images(data.x_test)
        model = GroupNet(channels=16, blocks=2, bases=1, decomposition="groupnet",
                         binarizer=binarizer)

        def integer_accuracy(m):
            pred = m.head_logits(fixed_forward(m.fixed_point(), m.stem_codes(xte))).argmax(1)
            return float((pred.numpy() == data.y_test).mean())
    return model, xtr, data.y_train, xte, data.y_test, integer_accuracy


def run_csign_study(out_dir="build/study-csign", seeds=(0, 1, 2), epochs=30, hidden=(256, 256),
                    networks=("mlp", "groupnet"), groupnet_epochs=15):
    started = time.monotonic()
    out_dir = Path(out_dir)
    runs = []
    for network in networks:
        n_epochs = epochs if network == "mlp" else groupnet_epochs
        for binarizer in ("sign", "csign"):
            for seed in seeds:
                runs.append(_one_run(network, binarizer, seed, n_epochs, hidden))
    summary = _summary(runs)
    report = {"study": "csign", "epochs": {"mlp": epochs, "groupnet": groupnet_epochs},
              "seeds": list(seeds), "mlp_sizes": [192, *hidden, 10],
              "groupnet": "16 channels, 2 blocks, K = 1, Group-Net decomposition",
              "training": {"mlp": _recipe("mlp"), "groupnet": _recipe("groupnet")},
              "schedule": "Adam, cosine", "runs": runs, "summary": summary,
              "wall_seconds": time.monotonic() - started}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "report.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    atomic_write(out_dir / "flip_rate.png", lambda tmp: _plot(runs, tmp))
    _print(summary)
    return report


def _recipe(network):
    """The network's shared training recipe (golden.mlp.TRAINING, golden.groupnet.TRAINING)."""
    if network == "mlp":
        from golden.mlp import TRAINING
    else:
        from golden.groupnet import TRAINING
    return dict(TRAINING)


def _one_run(network, binarizer, seed, epochs, hidden):
    from golden.train import accuracy, seed_everything, train_classifier

    step(f"{network}, {binarizer}, seed {seed}: training on the digits for {epochs} epochs")
    seed_everything(seed)
    model, xtr, ytr, xte, yte, integer_accuracy = _network(network, binarizer, seed, hidden)
    sigmas = {name: float(layer.weight.detach().std()) for name, layer in _layers(model).items()}
    previous = _bits(model)
    flips, unc, fhat = [], [], []

    def on_epoch(m, epoch):
        nonlocal previous
        now = _bits(m)
        flips.append({k: float((now[k] != previous[k]).mean()) for k in now})
        previous = now
        unc.append(_uncertainty(m, sigmas))
        fhat.append({name: layer.binarize.uncertainty()
                     for name, layer in _layers(m).items()})

    bar = Progress("epoch")
    train_classifier(model, xtr, ytr, epochs=epochs, seed=seed, on_epoch=on_epoch,
                     **_recipe(network), threads=1,
                     progress=lambda e, n, loss: bar.update(e, n, f"loss {loss:.4f}"))
    return {"binarizer": binarizer, "network": network, "seed": seed,
            "flip_rate_per_epoch": flips, "uncertainty_per_epoch": unc,
            "csign_uncertainty_per_epoch": fhat,
            "test_accuracy_float": accuracy(model, xte, yte),
            "test_accuracy_integer": integer_accuracy(model)}


def _summary(runs):
    """Per network and binarizer: flip rate per epoch (mean over layers and seeds), its mean,
    and the seeds' accuracies."""
    out = {}
    for network in dict.fromkeys(r["network"] for r in runs):
        for b in ("sign", "csign"):
            rs = [r for r in runs if r["binarizer"] == b and r["network"] == network]
            per_epoch = np.mean([[np.mean(list(e.values())) for e in r["flip_rate_per_epoch"]]
                                 for r in rs], axis=0)
            out[f"{network}/{b}"] = {
                "mean_flip_rate_per_epoch": per_epoch.tolist(),
                "mean_flip_rate": float(per_epoch.mean()),
                "test_accuracy_float": [r["test_accuracy_float"] for r in rs],
                "test_accuracy_integer": [r["test_accuracy_integer"] for r in rs]}
    return out


def _plot(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = [(net, layer) for net in dict.fromkeys(r["network"] for r in runs)
              for layer in next(r for r in runs if r["network"] == net)["flip_rate_per_epoch"][0]
              if net == "mlp" or layer.endswith("b0.u0")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    colours = {"sign": "tab:blue", "csign": "tab:orange"}
    for ax, (net, layer) in zip(axes[0], panels):
        for r in (r for r in runs if r["network"] == net):
            ys = [max(e[layer], 1e-6) for e in r["flip_rate_per_epoch"]]
            first = r["seed"] == runs[0]["seed"]
            ax.plot(range(1, len(ys) + 1), ys, color=colours[r["binarizer"]], alpha=0.7,
                    label=r["binarizer"] if first else None)
        ax.set_yscale("log")
        ax.set_title(f"{net} {layer}")
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("flip rate (fraction per epoch)")
    axes[0][0].legend()
    fig.suptitle("Digits: weight flip rate per epoch, sign vs c-sign (each seed a line)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _print(summary):
    for b, s in summary.items():
        print(f"{b:15s} mean flip rate {s['mean_flip_rate']:.4f}  accuracy float "
              f"{np.mean(s['test_accuracy_float']):.4f}  integer "
              f"{np.mean(s['test_accuracy_integer']):.4f}")
