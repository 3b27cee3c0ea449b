"""A bit-packed NumPy XNOR-popcount implementation of a dense network: the software baseline.

Bits are packed into 64-bit words; ``popcount(XNOR(x, w))`` over a row is the sum of
``np.bitwise_count(~(x ^ w))`` over its words, less the padding bits (zero in both operands,
so their XNOR is 1). Results are identical to :class:`golden.integer.IntegerNetwork`.
"""

import numpy as np

__all__ = ["pack64", "xnor_popcounts", "BitpackedNetwork", "windows_hwc", "conv_popcounts"]


def pack64(bits):
    """Pack ``N x n`` bits (0/1) into ``N x ceil(n / 64)`` ``uint64`` words, LSB first."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.shape[1]
    words = (n + 63) // 64
    padded = np.zeros((bits.shape[0], words * 64), dtype=np.uint8)
    padded[:, :n] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")


def xnor_popcounts(x, w, n, chunk_rows=64):
    """``popcount(XNOR(x_i, w_r))`` for packed rows ``x`` (``N x words``) and ``w``
    (``R x words``) of ``n`` valid bits: ``N x R`` int64."""
    pad = w.shape[1] * 64 - n
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.int64)
    for r in range(0, w.shape[0], chunk_rows):
        chunk = w[r:r + chunk_rows]
        xnor = ~(x[:, None, :] ^ chunk[None, :, :])
        out[:, r:r + chunk.shape[0]] = np.bitwise_count(xnor).sum(axis=2, dtype=np.int64)
    return out - pad


class BitpackedNetwork:
    """Integer inference of a dense bitstream with packed words and ``np.bitwise_count``."""

    def __init__(self, bitstream, chunk_rows=64):
        self.layers = [(pack64(layer.weights), layer.cols, layer.thresholds)
                       for layer in bitstream.layers]
        self.chunk_rows = chunk_rows

    def __call__(self, bits):
        x = pack64(bits)
        for w, n, t in self.layers:
            p = xnor_popcounts(x, w, n, self.chunk_rows)
            if t is None:
                return p
            out = (p >= t).astype(np.uint8)
            x = pack64(out)
        return out


def windows_hwc(bits, kernel, dilation, padding, pad_bit):
    """``N x C x H x W`` bits to ``N x Ho x Wo x (k k C)`` windows in hardware order (stride 1)."""
    x = np.asarray(bits, dtype=np.uint8)
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * padding, w + 2 * padding), pad_bit, dtype=np.uint8)
    xp[:, :, padding:padding + h, padding:padding + w] = x
    ho = h + 2 * padding - dilation * (kernel - 1)
    wo = w + 2 * padding - dilation * (kernel - 1)
    taps = [xp[:, :, i * dilation:i * dilation + ho, j * dilation:j * dilation + wo]
            for i in range(kernel) for j in range(kernel)]
    return np.stack(taps, axis=1).transpose(0, 3, 4, 1, 2).reshape(n, ho, wo, -1)


def conv_popcounts(bits, weight_rows, dilation, pad_bit=1, kernel=3):
    """Binary convolution (stride 1, padding = dilation) with packed words and
    ``np.bitwise_count``: ``N x Cout x H x W`` popcounts of XNOR(window, row)."""
    win = windows_hwc(bits, kernel, dilation, dilation, pad_bit)
    n, h, w, k = win.shape
    counts = xnor_popcounts(pack64(win.reshape(-1, k)), pack64(weight_rows), k)
    return counts.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
