"""How a folded binary layer's weights and thresholds sit in on-chip memory.

This is the single description of the memory layout: the memory-file exporter and the hardware
generator both call it, so they cannot disagree.

A layer of ``rows`` outputs and ``cols`` inputs is folded over ``pe`` processing elements and
``simd`` input lanes. Row ``r`` belongs to PE ``r % pe`` at neuron fold ``nf = r // pe``; its
inputs are consumed ``simd`` at a time over ``sf = cols / simd`` synapse folds. PE ``p``'s weight
memory is ``nf_count * sf_count`` words of ``simd`` bits; word ``nf * sf_count + s`` holds
``W[nf * pe + p, s * simd : (s + 1) * simd]`` with column ``s * simd + j`` at bit ``j``. PE ``p``'s
threshold memory is ``nf_count`` words; word ``nf`` holds ``T[nf * pe + p]``.
"""

from dataclasses import dataclass

import numpy as np

from .bits import bits_to_int
from .errors import FoldingError

__all__ = ["Folding", "FoldedLayout", "memh_lines", "weight_file", "threshold_file", "memory_files"]


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise FoldingError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class Folding:
    """PE and SIMD of one layer; validated against the layer's shape by :class:`FoldedLayout`."""

    pe: int
    simd: int

    def __post_init__(self):
        _check_positive("PE", self.pe)
        _check_positive("SIMD", self.simd)


class FoldedLayout:
    """Memory layout of a ``rows x cols`` binary layer folded as ``folding``.

    Raises
    ------
    FoldingError
        If ``rows`` is not a multiple of PE or ``cols`` is not a multiple of SIMD; the message
        names both numbers.
    """

    def __init__(self, rows, cols, folding, name="layer"):
        _check_positive("rows", rows)
        _check_positive("cols", cols)
        if rows % folding.pe:
            raise FoldingError(
                f"{name}: PE={folding.pe} does not divide the layer's {rows} output rows; "
                f"choose a PE that divides {rows}")
        if cols % folding.simd:
            raise FoldingError(
                f"{name}: SIMD={folding.simd} does not divide the layer's {cols} input columns; "
                f"choose a SIMD that divides {cols}")
        self.rows, self.cols, self.name = rows, cols, name
        self.pe, self.simd = folding.pe, folding.simd

    @property
    def neuron_folds(self):
        return self.rows // self.pe

    @property
    def synapse_folds(self):
        return self.cols // self.simd

    @property
    def cycles_per_vector(self):
        """Ideal cycles per input vector: ``(rows / PE) * (cols / SIMD)``."""
        return self.neuron_folds * self.synapse_folds

    def weight_words(self, weight_bits):
        """Per PE, the list of integer words of its weight memory."""
        w = np.asarray(weight_bits)
        if w.shape != (self.rows, self.cols):
            raise ValueError(f"{self.name}: weights of shape {w.shape}, expected "
                             f"{(self.rows, self.cols)}")
        words = []
        for p in range(self.pe):
            mem = []
            for nf in range(self.neuron_folds):
                row = w[nf * self.pe + p]
                for s in range(self.synapse_folds):
                    mem.append(bits_to_int(row[s * self.simd:(s + 1) * self.simd]))
            words.append(mem)
        return words

    def threshold_words(self, thresholds):
        """Per PE, the list of thresholds of its threshold memory."""
        t = np.asarray(thresholds)
        if t.shape != (self.rows,):
            raise ValueError(f"{self.name}: {t.shape[0] if t.ndim else 0} thresholds, "
                             f"expected {self.rows}")
        return [[int(t[nf * self.pe + p]) for nf in range(self.neuron_folds)]
                for p in range(self.pe)]


def memh_lines(words, width):
    """Words as ``$readmemh`` text: one zero-padded hexadecimal word a line."""
    digits = max(1, (width + 3) // 4)
    return "".join(f"{w:0{digits}x}\n" for w in words)


def weight_file(layer, pe_index):
    """Name of the memory file of PE ``pe_index``'s weights in layer ``layer``."""
    return f"{layer}_w{pe_index}.mem"


def threshold_file(layer, pe_index):
    """Name of the memory file of PE ``pe_index``'s thresholds in layer ``layer``."""
    return f"{layer}_t{pe_index}.mem"


def memory_files(layer, folding):
    """``{file name: text}`` of every memory file of a :class:`~quant.bitstream.DenseLayer`."""
    lay = FoldedLayout(layer.rows, layer.cols, folding, layer.name)
    files = {}
    for p, words in enumerate(lay.weight_words(layer.weights)):
        files[weight_file(layer.name, p)] = memh_lines(words, lay.simd)
    if layer.thresholds is not None:
        for p, words in enumerate(lay.threshold_words(layer.thresholds)):
            files[threshold_file(layer.name, p)] = memh_lines(words, layer.threshold_width)
    return files
