"""Does a training recipe converge whatever the seed and the thread count? Trains the digits
networks (the Group-Net of the demo and the c-sign study, the binary MLP) over seeds x thread
counts and prints the test accuracy of each run, its minimum, mean and spread. Writes
build/bench/training_stability.json.

    .venv/bin/python benchmarks/training_stability.py [--network groupnet|mlp]
        [--seeds 0 1 2 3 4] [--threads 1 2] [--epochs 15] [--bases 2] [--hidden 256 256]
        [--binarizer sign|csign] [--stem-relu]
        [--lr LR] [--warmup-epochs E] [--clip-grad-norm G]

Without --lr/--warmup-epochs/--clip-grad-norm the network's own recipe is used
(golden.groupnet.TRAINING or golden.mlp.TRAINING).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def one_run(network, seed, threads, epochs, bases, binarizer, recipe, hidden=(256, 256),
            stem_relu=False):
    from golden.digits import load_digits_split
    from golden.train import accuracy, seed_everything, torch_threads, train_classifier

    data = load_digits_split(seed)
    with torch_threads(threads):
        seed_everything(seed)
        if network == "groupnet":
            from golden.digits import as_images
            from golden.groupnet import GroupNet

            xtr, xte = as_images(data.x_train), as_images(data.x_test)
            model = GroupNet(channels=16, blocks=2, bases=bases, decomposition="groupnet",
                             binarizer=binarizer, stem_relu=stem_relu)
        else:
            from golden.digits import thermometer
            from golden.mlp import BinaryMLP

            levels = (4, 8, 12)
            xtr, xte = thermometer(data.x_train, levels), thermometer(data.x_test, levels)
            model = BinaryMLP([xtr.shape[1], *hidden, 10], binarizer)
        t0 = time.monotonic()
        train_classifier(model, xtr, data.y_train, epochs=epochs, seed=seed, **recipe)
        return {"seed": seed, "threads": threads, "accuracy": accuracy(model, xte, data.y_test),
                "seconds": time.monotonic() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="groupnet", choices=("groupnet", "mlp"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--bases", type=int, default=2, help="Group-Net bases K")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256],
                   help="the MLP's hidden layer sizes")
    p.add_argument("--binarizer", default="sign", choices=("sign", "csign"))
    p.add_argument("--stem-relu", action="store_true",
                   help="Group-Net: the stem with a ReLU, as before (collapses on some runs)")
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--clip-grad-norm", type=float)
    p.add_argument("--out", default="build/bench")
    args = p.parse_args()
    if args.network == "groupnet":
        from golden.groupnet import TRAINING
    else:
        from golden.mlp import TRAINING
    recipe = dict(TRAINING)
    for key in ("lr", "warmup_epochs", "clip_grad_norm"):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    runs = []
    for seed in args.seeds:
        for threads in args.threads:
            r = one_run(args.network, seed, threads, args.epochs, args.bases, args.binarizer,
                        recipe, args.hidden, args.stem_relu)
            runs.append(r)
            print(f"seed {seed}  threads {threads}  accuracy {r['accuracy']:.4f}  "
                  f"({r['seconds']:.0f} s)", flush=True)
    acc = np.array([r["accuracy"] for r in runs])
    summary = {"min": float(acc.min()), "mean": float(acc.mean()), "std": float(acc.std())}
    print(f"{args.network} {args.binarizer} recipe {recipe}, {args.epochs} epochs: min "
          f"{summary['min']:.4f}  mean {summary['mean']:.4f}  std {summary['std']:.4f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"network": args.network, "binarizer": args.binarizer, "epochs": args.epochs,
              "bases": args.bases, "hidden": args.hidden, "stem_relu": args.stem_relu,
              "recipe": recipe, "runs": runs,
              "summary": summary}
    name = f"{args.network}_k{args.bases}" if args.network == "groupnet" else "mlp"
    name += "_stemrelu" if args.stem_relu else ""
    (out / f"training_stability_{name}_{args.binarizer}_{args.epochs}ep.json").write_text(
        json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
