import numpy as np
import pytest

from quant.bits import int_to_bits
from quant.errors import FoldingError
from quant.layout import FoldedLayout, Folding, memh_lines


@pytest.mark.parametrize("rows,cols,pe,simd", [(8, 12, 2, 4), (6, 9, 6, 9), (5, 7, 1, 1)])
def test_words_reassemble_the_matrix(rows, cols, pe, simd):
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, (rows, cols))
    t = rng.integers(0, cols + 2, rows)
    lay = FoldedLayout(rows, cols, Folding(pe, simd))
    words, thr = lay.weight_words(w), lay.threshold_words(t)
    back = np.zeros_like(w)
    back_t = np.zeros_like(t)
    for p in range(pe):
        assert len(words[p]) == lay.cycles_per_vector
        for nf in range(rows // pe):
            back_t[nf * pe + p] = thr[p][nf]
            for s in range(cols // simd):
                back[nf * pe + p, s * simd:(s + 1) * simd] = int_to_bits(
                    words[p][nf * (cols // simd) + s], simd)
    assert (back == w).all() and (back_t == t).all()


def test_illegal_folding_names_both_numbers():
    with pytest.raises(FoldingError, match="fc1: PE=3 does not divide the layer's 8 output rows"):
        FoldedLayout(8, 12, Folding(3, 4), "fc1")
    with pytest.raises(FoldingError, match="fc1: SIMD=5 does not divide the layer's 12 input "
                                           "columns"):
        FoldedLayout(8, 12, Folding(2, 5), "fc1")
    with pytest.raises(FoldingError, match="PE must be a positive integer, not 0"):
        Folding(0, 4)
    with pytest.raises(FoldingError, match="SIMD must be a positive integer, not -3"):
        Folding(1, -3)


def test_memh_lines():
    assert memh_lines([1, 255, 0], 9) == "001\n0ff\n000\n"
