"""Your own binary CNN with bnnforge's Python API: compose it from ordinary torch.nn modules,
train it with your own loop, export it in one call, generate Verilog and simulate it against
the golden model.

    .venv/bin/python examples/train_cnn.py [--epochs 10] [--images 50] [--out build/example-cnn]
"""

import argparse

import numpy as np
import torch
from torch.nn import functional as F

from bnnforge import api
from golden.cnn import (BatchNormSign, BinaryCNN, Conv2d, Flatten, InputConv2d, IntegerCnn,
                        Linear, MaxPool2d)
from golden.digits import load_digits_split


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--images", type=int, default=50, help="test images to simulate")
    p.add_argument("--out", default="build/example-cnn")
    p.add_argument("--simulator", default="icarus", choices=("icarus", "verilator"))
    args = p.parse_args()
    torch.manual_seed(0)

    # 1. Data: the 8x8 digits, pixels 0..16 (5-bit unsigned integers), N x C x H x W.
    data = load_digits_split(0)
    x_train = torch.tensor(data.x_train.reshape(-1, 1, 8, 8), dtype=torch.float32)
    y_train = torch.tensor(data.y_train)
    x_test = data.x_test.reshape(-1, 1, 8, 8).astype(np.int64)

    # 2. The network: bnnforge's layers are ordinary torch.nn modules.
    net = BinaryCNN(
        (1, 8, 8), 5,                                    # input shape (C, H, W) and bits
        InputConv2d(1, 16, 3, padding=1, pad_value=0, input_bits=5), BatchNormSign(16),
        Conv2d(16, 32, 3), BatchNormSign(32),            # binary weights and activations
        MaxPool2d(2),                                    # max of +-1 activations
        Flatten(), Linear(32 * 3 * 3, 64), BatchNormSign(64),
        Linear(64, 10))                                  # integer class scores

    # 3. Any training loop: here plain Adam and cross-entropy.
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.clip_()                                  # keep latent weights in [-1, 1]
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}")
    net.eval()
    with torch.no_grad():
        acc = (net(torch.tensor(x_test, dtype=torch.float32)).argmax(1).numpy()
               == data.y_test).mean()
    print(f"float accuracy on the test split: {acc:.4f}")

    # 4. Export in one call: batch-norm and sign become integer thresholds.
    bs = net.to_bitstream(meta={"example": "train_cnn"})
    api.write(bs, f"{args.out}/net.bnn")
    golden = IntegerCnn(bs)(x_test).numpy()
    print(f"golden (integer) accuracy: {(golden.argmax(1) == data.y_test).mean():.4f}")

    # 5. Verilog, then the first test images through the simulated hardware.
    info = api.generate(bs, f"{args.out}/verilog", target_cycles=256)
    print(f"wrote {args.out}/verilog/{info['verilog']}: {info['cycles_per_frame']} cycles an "
          f"image (model)")
    result = api.simulate(bs, f"{args.out}/verilog", x_test[:args.images], args.simulator)
    print(f"simulated {args.images} images on {args.simulator}: {result['mismatches']} "
          f"mismatches with the golden model")
    return 0 if result["mismatches"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
