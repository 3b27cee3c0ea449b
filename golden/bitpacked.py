"""A bit-packed NumPy XNOR-popcount implementation of a dense network: the software baseline.

Bits are packed into 64-bit words; ``popcount(XNOR(x, w))`` over a row is the sum of
``np.bitwise_count(~(x ^ w))`` over its words, less the padding bits (zero in both operands,
so their XNOR is 1). Results are identical to :class:`golden.integer.IntegerNetwork`.
"""

import numpy as np

__all__ = ["pack64", "BitpackedNetwork"]


def pack64(bits):
    """Pack ``N x n`` bits (0/1) into ``N x ceil(n / 64)`` ``uint64`` words, LSB first."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.shape[1]
    words = (n + 63) // 64
    padded = np.zeros((bits.shape[0], words * 64), dtype=np.uint8)
    padded[:, :n] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")


class BitpackedNetwork:
    """Integer inference of a dense bitstream with packed words and ``np.bitwise_count``."""

    def __init__(self, bitstream, chunk_rows=64):
        self.layers = [(pack64(layer.weights), layer.cols, layer.thresholds)
                       for layer in bitstream.layers]
        self.chunk_rows = chunk_rows

    def _popcounts(self, x, w, n):
        pad = w.shape[1] * 64 - n
        out = np.empty((x.shape[0], w.shape[0]), dtype=np.int64)
        for r in range(0, w.shape[0], self.chunk_rows):
            chunk = w[r:r + self.chunk_rows]
            xnor = ~(x[:, None, :] ^ chunk[None, :, :])
            out[:, r:r + chunk.shape[0]] = np.bitwise_count(xnor).sum(axis=2, dtype=np.int64)
        return out - pad

    def __call__(self, bits):
        x = pack64(bits)
        for w, n, t in self.layers:
            p = self._popcounts(x, w, n)
            if t is None:
                return p
            out = (p >= t).astype(np.uint8)
            x = pack64(out)
        return out
