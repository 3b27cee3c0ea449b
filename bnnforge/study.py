"""``bnnforge study csign``: sign against UaBNN's c-sign on the digits, on the MLP and on a
convolutional network, over the paper's range of Delta and several seeds.

Each run trains one network with one binarizer (and, for c-sign, one Delta) on one seed, with
the network's shared recipe; it records every binary layer's flip rate per epoch (the fraction
of its weight bits that changed since the previous epoch), the summed uncertainty, and the
test accuracy of the float model and of its exported integer model. The report gives, per
network and Delta, the mean and spread over seeds of c-sign's flip rate and accuracy beside
sign's, and a verdict on the paper's two claims (fewer flips, higher accuracy) that counts a
difference only when it exceeds the seeds' spread. Writes ``report.json``, ``report.md`` and
``flip_rate.png`` (per-layer flip rate over training, as the paper's figure).
"""

import json
import time
from pathlib import Path

import numpy as np

from quant.bitstream import atomic_write
from .progress import Progress, step

__all__ = ["run_csign_study", "DELTAS", "NETWORKS"]

DELTAS = (0.05, 0.1, 0.5)
"""Delta (the quantile of a layer's uncertainties, Eq. 5) over the paper's range 0.05-0.5."""

NETWORKS = {"mlp": "digits MLP 192-256-256-10 (thermometer inputs)",
            "cnn": "digits CNN (5-bit input conv 1->16, conv 16->32, pool, FC 288->64->10)",
            "groupnet": "digits Group-Net (16 channels, 2 blocks, K = 1)"}


def _layers(model):
    """``{name: layer}`` of a network's binary layers (each has ``weight`` and ``binarize``)."""
    if hasattr(model, "fcs"):
        return {f"fc{i}": fc for i, fc in enumerate(model.fcs)}
    if hasattr(model, "units"):
        return {f"g{g}.b{k}.u{j}": unit for g, group in enumerate(model.units)
                for k, base in enumerate(group) for j, unit in enumerate(base)}
    return {f"l{i}": m for i, m in enumerate(m for m in model if hasattr(m, "binarize"))}


def _bits(model):
    return {name: np.asarray(layer.binarize.bits(layer.weight))
            for name, layer in _layers(model).items()}


def _network(name, binarizer, seed, hidden):
    """``(model, x_train, y_train, x_test, y_test, integer_accuracy)``."""
    import torch

    from golden.digits import as_images, input_spec, load_digits_split, thermometer

    data = load_digits_split(seed)
    if name == "mlp":
        from golden.integer import IntegerNetwork, predict
        from golden.mlp import BinaryMLP

        levels = (4, 8, 12)
        xtr, xte = thermometer(data.x_train, levels), thermometer(data.x_test, levels)
        model = BinaryMLP([xtr.shape[1], *hidden, 10], binarizer)

        def integer_accuracy(m):
            scores = IntegerNetwork(m.to_bitstream(input_spec(levels)))(torch.from_numpy(xte))
            return float((predict(scores).numpy() == data.y_test).mean())
    elif name == "cnn":
        from golden.cnn import IntegerCnn, digits_cnn

        xtr = data.x_train.reshape(-1, 1, 8, 8).astype(np.float32)
        xte = data.x_test.reshape(-1, 1, 8, 8).astype(np.float32)
        model = digits_cnn(binarizer=binarizer)

        def integer_accuracy(m):
            scores = IntegerCnn(m.to_bitstream())(xte.astype(np.int64))
            return float((scores.argmax(1).numpy() == data.y_test).mean())
    else:
        from golden.groupnet import GroupNet, fixed_forward

        xtr, xte = as_images(data.x_train), as_images(data.x_test)
        model = GroupNet(channels=16, blocks=2, bases=1, decomposition="groupnet",
                         binarizer=binarizer)

        def integer_accuracy(m):
            pred = m.head_logits(fixed_forward(m.fixed_point(), m.stem_codes(xte))).argmax(1)
            return float((pred.numpy() == data.y_test).mean())
    return model, xtr, data.y_train, xte, data.y_test, integer_accuracy


def _recipe(network):
    """The network's shared training recipe."""
    if network == "mlp":
        from golden.mlp import TRAINING
    elif network == "cnn":
        from golden.cnn import TRAINING
    else:
        from golden.groupnet import TRAINING
    return dict(TRAINING)


def _one_run(network, binarizer, delta, seed, epochs, hidden, sigma_rule="variance"):
    import torch

    from golden.train import accuracy, seed_everything, train_classifier

    torch.set_num_threads(1)
    seed_everything(seed)
    model, xtr, ytr, xte, yte, integer_accuracy = _network(network, binarizer, seed, hidden)
    layers = _layers(model)
    for layer in layers.values():
        if layer.binarize.csign is not None:
            layer.binarize.csign.delta = delta
            layer.binarize.csign.sigma_rule = sigma_rule
    previous = _bits(model)
    flips = {name: [] for name in layers}
    fhat, deltas, shares = [], {name: [] for name in layers}, {name: [] for name in layers}

    def on_epoch(m, epoch):
        nonlocal previous
        now = _bits(m)
        for k in now:
            flips[k].append(float((now[k] != previous[k]).mean()))
        previous = now
        fhat.append({name: layer.binarize.uncertainty() for name, layer in _layers(m).items()})
        for name, layer in _layers(m).items():
            c = layer.binarize.csign
            if c is not None:
                deltas[name].append(c.last_delta)
                shares[name].append(c.uncertain_share)

    started = time.monotonic()
    train_classifier(model, xtr, ytr, epochs=epochs, seed=seed, on_epoch=on_epoch,
                     **_recipe(network), threads=1)
    per_epoch = [float(np.mean([flips[k][e] for k in flips])) for e in range(epochs)]
    return {"network": network, "binarizer": binarizer,
            "delta": delta if binarizer == "csign" else None, "seed": seed, "epochs": epochs,
            "flip_rate_per_layer": flips, "flip_rate_per_epoch": per_epoch,
            "mean_flip_rate": float(np.mean(per_epoch)),
            "csign_uncertainty_per_epoch": fhat,
            "delta_value_per_layer": deltas if binarizer == "csign" else None,
            "uncertain_share_per_layer": shares if binarizer == "csign" else None,
            "test_accuracy_float": accuracy(model, xte, yte),
            "test_accuracy_integer": integer_accuracy(model),
            "seconds": time.monotonic() - started}


def _job(args):
    return _one_run(*args)


def run_csign_study(out_dir="build/study-csign", seeds=(0, 1, 2, 3, 4), epochs=None,
                    hidden=(256, 256), networks=("mlp", "cnn"), deltas=DELTAS, jobs=1,
                    sigma_rule="variance"):
    """Every (network, sign | c-sign at each Delta, seed) run; ``jobs`` runs at a time (each on
    one thread, so results do not depend on ``jobs``). ``epochs``: ``{network: epochs}``
    (default: MLP 30, CNN 10, Group-Net 15). ``sigma_rule``: c-sign's sigma from the variance
    of the initial weights (the paper's text) or their standard deviation."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    epochs = {"mlp": 30, "cnn": 10, "groupnet": 15, **(epochs or {})}
    plan = [(net, "sign", None, seed, epochs[net], hidden) for net in networks for seed in seeds]
    plan += [(net, "csign", d, seed, epochs[net], hidden, sigma_rule) for net in networks
             for d in deltas for seed in seeds]
    step(f"c-sign study: {len(plan)} training runs ({', '.join(networks)}; sign and c-sign at "
         f"Delta {', '.join(map(str, deltas))}; seeds {', '.join(map(str, seeds))}), {jobs} at "
         f"a time")
    bar = Progress("runs")
    runs = []
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            for r in pool.map(_job, plan):
                runs.append(r)
                bar.update(len(runs), len(plan), f"{r['network']} {r['binarizer']} "
                                                  f"{r['delta'] or ''} seed {r['seed']}")
    else:
        for p in plan:
            runs.append(_job(p))
            bar.update(len(runs), len(plan), f"{p[0]} {p[1]} {p[2] or ''} seed {p[3]}")
    summary = _summary(runs)
    verdict = _verdict(summary)
    report = {"study": "csign", "networks": {n: NETWORKS[n] for n in networks},
              "epochs": {n: epochs[n] for n in networks}, "seeds": list(seeds),
              "deltas": list(deltas),
              "training": {n: _recipe(n) for n in networks},
              "csign": f"quant/csign.py: sigma = {sigma_rule} of the initial weights"
                       + (" (the paper's text)" if sigma_rule == "variance" else "")
                       + ", m = 2, Eq. 3 normalized to its peak, Eq. 5 from the second step",
              "sigma_rule": sigma_rule,
              "schedule": "Adam, cosine", "runs": runs, "summary": summary,
              "verdict": verdict, "wall_seconds": time.monotonic() - started, "jobs": jobs}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "report.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    atomic_write(out_dir / "flip_rate.png", lambda tmp: _plot(runs, tmp))
    md = _markdown(report)
    atomic_write(out_dir / "report.md", lambda tmp: Path(tmp).write_text(md))
    print(md)
    return report


def _stats(values):
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


def _summary(runs):
    """Per network and binarizer setting: flip rate and accuracies over seeds."""
    out = {}
    for network in dict.fromkeys(r["network"] for r in runs):
        settings = dict.fromkeys((r["binarizer"], r["delta"]) for r in runs
                                 if r["network"] == network)
        for b, d in settings:
            rs = [r for r in runs if r["network"] == network and r["binarizer"] == b
                  and r["delta"] == d]
            key = f"{network}/{b}" + (f"/delta={d}" if d is not None else "")
            extra = {}
            if b == "csign":
                # The threshold Delta reached (last epoch, mean over layers and seeds) and the
                # share of weights whose combined uncertainty is above 1e-6.
                extra = {"delta_value_last_epoch": float(np.mean(
                    [v[-1] for r in rs for v in r["delta_value_per_layer"].values() if v])),
                         "uncertain_share_last_epoch": float(np.mean(
                    [v[-1] for r in rs for v in r["uncertain_share_per_layer"].values() if v]))}
            out[key] = {"network": network, "binarizer": b, "delta": d, **extra,
                        "mean_flip_rate": _stats([r["mean_flip_rate"] for r in rs]),
                        "test_accuracy_float": _stats([r["test_accuracy_float"] for r in rs]),
                        "test_accuracy_integer": _stats([r["test_accuracy_integer"]
                                                         for r in rs])}
    return out


def _verdict(summary):
    """The paper's claims per network and Delta: c-sign flips fewer weights, and is more
    accurate. A difference counts only when it exceeds twice its standard error over seeds."""
    out = {"rule": "a difference counts when |mean(c-sign) - mean(sign)| > 2 x its standard "
                   "error over seeds (sqrt(s_c^2/n + s_s^2/n))", "rows": []}
    for key, s in summary.items():
        if s["binarizer"] != "csign":
            continue
        base = summary[f"{s['network']}/sign"]
        row = {"network": s["network"], "delta": s["delta"]}
        for what, metric, better in (("fewer_flips", "mean_flip_rate", -1),
                                     ("higher_accuracy", "test_accuracy_integer", 1)):
            c, b = s[metric], base[metric]
            diff = c["mean"] - b["mean"]
            se = float(np.sqrt(c["std"] ** 2 / c["n"] + b["std"] ** 2 / b["n"]))
            significant = abs(diff) > 2 * se
            holds = significant and np.sign(diff) == better
            row[what] = {"csign": c["mean"], "sign": b["mean"], "difference": diff,
                         "standard_error": se,
                         "result": "holds" if holds else
                         ("reversed" if significant else "no difference beyond the spread")}
        out["rows"].append(row)
    return out


def _markdown(r):
    lines = ["# Study: sign vs UaBNN's c-sign on the digits", "",
             f"Seeds {', '.join(map(str, r['seeds']))}; Delta {', '.join(map(str, r['deltas']))}"
             f" (the paper's range is 0.05 to 0.5); {r['csign']}; Adam with a cosine schedule, "
             f"the networks' shared recipes; one thread a run.", ""]
    for n, desc in r["networks"].items():
        lines.append(f"- {n}: {desc}, {r['epochs'][n]} epochs")
    lines += ["", "| network | binarizer | Delta | mean flip rate an epoch (mean +- std) | "
              "accuracy float | accuracy integer (min-max) |", "|---|---|---|---|---|---|"]
    for s in r["summary"].values():
        f, a, i = s["mean_flip_rate"], s["test_accuracy_float"], s["test_accuracy_integer"]
        lines.append(f"| {s['network']} | {s['binarizer']} | {s['delta'] or '-'} | "
                     f"{f['mean']:.5f} +- {f['std']:.5f} | {a['mean']:.4f} +- {a['std']:.4f} | "
                     f"{i['mean']:.4f} +- {i['std']:.4f} ({i['min']:.4f}-{i['max']:.4f}) |")
    cs = [s for s in r["summary"].values() if s["binarizer"] == "csign"]
    if cs:
        lines += ["", "What c-sign's threshold was at the end of training (mean over layers and "
                      "seeds): " + "; ".join(
                          f"{s['network']} Delta {s['delta']}: Delta = "
                          f"{s['delta_value_last_epoch']:.3g}, weights with combined "
                          f"uncertainty above 1e-6: {100 * s['uncertain_share_last_epoch']:.2f} %"
                          for s in cs) + ". Delta changes a decision only for a weight whose "
                      "combined uncertainty lies between Delta and its previous one, and only "
                      "matters when its sign changes; a weight whose sign changes sits near "
                      "zero, at the peak of the uncertainty, above every Delta of the range. "
                      "Where the runs of different Delta are identical, that is why."]
    lines += ["", "## Verdict", "", f"Rule: {r['verdict']['rule']}.", "",
              "| network | Delta | fewer flips? (c-sign vs sign) | higher accuracy? (integer) |",
              "|---|---|---|---|"]
    for row in r["verdict"]["rows"]:
        ff, ha = row["fewer_flips"], row["higher_accuracy"]
        lines.append(f"| {row['network']} | {row['delta']} | {ff['result']}: {ff['csign']:.5f} vs "
                     f"{ff['sign']:.5f} ({ff['difference']:+.5f} +- {ff['standard_error']:.5f}) | "
                     f"{ha['result']}: {ha['csign']:.4f} vs {ha['sign']:.4f} "
                     f"({ha['difference']:+.4f} +- {ha['standard_error']:.4f}) |")
    holds = [row for row in r["verdict"]["rows"]
             if row["fewer_flips"]["result"] == "holds"
             and row["higher_accuracy"]["result"] == "holds"]
    lines += ["", ("Both claims hold for: " + ", ".join(f"{x['network']} at Delta {x['delta']}"
                                                       for x in holds) + ".") if holds else
              "The paper's claims (fewer flips and higher accuracy together) do not hold for any "
              "network and Delta here.", "",
              f"Runs: {len(r['runs'])}, {r['wall_seconds']:.0f} s with {r['jobs']} at a time. "
              f"Per-layer flip rates over training: flip_rate.png.", ""]
    return "\n".join(lines)


def _plot(runs, path):
    """Per layer, the flip rate per epoch (mean over seeds) of sign and of c-sign at each
    Delta, one row of panels a network."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    networks = list(dict.fromkeys(r["network"] for r in runs))
    layers = {n: list(next(r for r in runs if r["network"] == n)["flip_rate_per_layer"])
              for n in networks}
    cols = max(len(v) for v in layers.values())
    fig, axes = plt.subplots(len(networks), cols, figsize=(3.4 * cols, 3.0 * len(networks)),
                             squeeze=False)
    settings = list(dict.fromkeys((r["binarizer"], r["delta"]) for r in runs))
    colours = dict(zip(settings, ["black", "tab:blue", "tab:orange", "tab:green", "tab:red"]))
    for i, n in enumerate(networks):
        for j in range(cols):
            ax = axes[i][j]
            if j >= len(layers[n]):
                ax.axis("off")
                continue
            layer = layers[n][j]
            for b, d in settings:
                rs = [r for r in runs if r["network"] == n and r["binarizer"] == b
                      and r["delta"] == d]
                if not rs:
                    continue
                ys = np.mean([r["flip_rate_per_layer"][layer] for r in rs], axis=0)
                ax.plot(range(1, len(ys) + 1), np.maximum(ys, 1e-6), color=colours[(b, d)],
                        label=b if d is None else f"c-sign {d}")
            ax.set_yscale("log")
            ax.set_title(f"{n} {layer}", fontsize=9)
            ax.set_xlabel("epoch")
        axes[i][0].set_ylabel("flip rate (mean over seeds)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Digits: weight flip rate per layer and epoch, sign vs c-sign")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
