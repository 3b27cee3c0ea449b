"""Small binary CNNs the tests share: built from the Python API, batch-norm statistics from a
few batches of random inputs so that thresholds are not trivial."""

import numpy as np
import torch

from golden.cnn import (BatchNormSign, BinaryCNN, Conv2d, Flatten, InputConv2d, Linear,
                        MaxPool2d)


def small_cnn(seed=0, bits=4, size=8):
    """Multi-bit input conv ("same", pad 0), valid conv, pool, conv padded with -1, flatten of
    a 3x3 map, two dense layers."""
    torch.manual_seed(seed)
    net = BinaryCNN((1, size, size), bits,
                    InputConv2d(1, 8, 3, padding=1, pad_value=0, input_bits=bits),
                    BatchNormSign(8),
                    Conv2d(8, 16, 3), BatchNormSign(16), MaxPool2d(2),
                    Conv2d(16, 16, 3, padding=1, pad_value=0), BatchNormSign(16),
                    Flatten(), Linear(16 * 9, 32), BatchNormSign(32), Linear(32, 10))
    x = random_images(seed, 64, bits, size)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.from_numpy(x).float())
    net.eval()
    return net


def random_images(seed, n, bits=4, size=8, channels=1):
    return np.random.default_rng(seed).integers(0, 1 << bits, (n, channels, size, size))
