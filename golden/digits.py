"""The scikit-learn digits: 1,797 real 8x8 handwritten digits shipped inside scikit-learn.

Pixels are integers 0..16. The binary network's input is a thermometer code of each pixel: for
levels ``(l_1, ..., l_L)`` bit ``k * 64 + p`` is ``pixel_p >= l_k`` (level-major). One level
is plain binarization; more levels keep more of the grey scale while the first layer stays a
binary XNOR-popcount layer like the others (no fixed-point first layer in hardware).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["DigitsSplit", "load_digits_split", "thermometer", "input_spec", "as_images"]

PIXELS = 64
PIXEL_MAX = 16


def thermometer(images, levels):
    """``N x 64`` pixels (0..16) to ``N x (64 * len(levels))`` bits, level-major."""
    images = np.asarray(images)
    return np.concatenate([(images >= level) for level in levels], axis=1).astype(np.uint8)


def as_images(pixels):
    """``N x 64`` pixels (0..16) to ``N x 1 x 8 x 8`` float32 images on [0, 1] (the Group-Net's
    real-valued stem input)."""
    return (np.asarray(pixels, dtype=np.float32) / PIXEL_MAX).reshape(-1, 1, 8, 8)


def input_spec(levels):
    """The bitstream's description of this input encoding."""
    return {"features": PIXELS * len(levels),
            "encoding": {"kind": "thermometer", "source": "sklearn-digits", "pixels": PIXELS,
                         "pixel_max": PIXEL_MAX, "levels": [int(l) for l in levels],
                         "bit": "k * 64 + p is pixel p >= levels[k]"}}


@dataclass
class DigitsSplit:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(seed=0, test_fraction=0.2):
    """A stratified, seeded train/test split of the digits (pixels as integers 0..16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, data.target, test_size=test_fraction,
                                          random_state=seed, stratify=data.target)
    return DigitsSplit(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64))
