import numpy as np
import pytest

from hw.mvtu import MVTU
from quant.bitstream import DenseLayer
from quant.errors import FoldingError
from quant.layout import Folding
from sim.vectors import pack_inputs
from tests.helpers import STALL_MODES, edge_vectors, run_stream


def _layer(rng, rows, cols, scores):
    w = rng.integers(0, 2, (rows, cols), dtype=np.uint8)
    w[0] = 1  # a row of all +1 weights meets the all-ones input at the maximum count
    t = None if scores else rng.integers(0, cols + 2, rows)
    if not scores:
        t[:2] = [0, cols + 1]  # always on, never on
    return DenseLayer("fc", w, t)


def _golden(layer, x):
    p = (x[:, None, :] == layer.weights[None]).sum(-1)
    return p if layer.thresholds is None else (p >= layer.thresholds).astype(int)


def _unpack(words, rows, ew):
    return np.array([[(v >> (r * ew)) & ((1 << ew) - 1) for r in range(rows)] for v in words])


FOLDINGS = [(8, 12, 2, 4, False), (8, 12, 8, 12, False), (8, 12, 1, 1, False),
            (10, 20, 5, 4, True), (6, 9, 3, 9, True), (4, 70, 2, 7, False)]


@pytest.mark.parametrize("rows,cols,pe,simd,scores", FOLDINGS)
@pytest.mark.parametrize("mode", STALL_MODES)
def test_bit_exact_under_stalls(rows, cols, pe, simd, scores, mode):
    rng = np.random.default_rng(rows * cols + pe)
    layer = _layer(rng, rows, cols, scores)
    x = edge_vectors(cols, rng, 6)
    dut = MVTU(layer, Folding(pe, simd))
    outs, t_in, t_out = run_stream(dut, pack_inputs(x), len(x), mode, seed=rows + simd)
    assert (_unpack(outs, rows, dut.element_width) == _golden(layer, x)).all()
    if mode == "none":
        assert t_out[0] - t_in[0] == dut.latency
        assert np.diff(t_out).tolist() == [dut.cycles_per_vector] * (len(x) - 1)


def test_illegal_folding():
    layer = _layer(np.random.default_rng(0), 8, 12, False)
    with pytest.raises(FoldingError, match="fc: PE=3 does not divide the layer's 8 output rows"):
        MVTU(layer, Folding(3, 4))
    with pytest.raises(FoldingError, match="fc: SIMD=5 does not divide the layer's 12 input"):
        MVTU(layer, Folding(2, 5))
