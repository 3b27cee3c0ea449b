"""BSC-Net's per-site fixed-point arithmetic in hardware: batch-norm with residual or projection
add, and the real 1x1 convolution, bit-exact against the golden ops in every stall mode, at
the cycles their models state."""

import numpy as np
import pytest

from golden.bscnet_fixed import SparseFixedPoint, apply_op
from hw.axis import AxisTop
from hw.generate import design_info, write_design
from hw.sparse.site import (SiteAffine, SiteLinear, pack_codes, pack_fields, unpack_codes)
from hw.sparse.words import split_beat
from quant.errors import BnnforgeError
from quant.fixed import signed_range
from quant.layout import Folding
from sim.cycles import interval
from sim.runner import run_vectors
from tests.helpers import STALL_MODES, run_stream

FMT = SparseFixedPoint()


def _rand(rng, width, shape, edge=0.2):
    """Signed ``width``-bit values with the extremes (saturation) among them."""
    lo, hi = signed_range(width)
    v = rng.integers(lo, hi + 1, shape)
    pick = rng.random(shape)
    v[pick < edge / 2] = lo
    v[(pick >= edge / 2) & (pick < edge)] = hi
    return v


def _affine_design(tmp_path, unit):
    top = AxisTop([unit], element_width=FMT.width)
    write_design(tmp_path, top, "site_top", {}, design_info(top, "site_top", "site-affine"))
    return tmp_path


@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("serial", [False, True])
def test_site_affine_bit_exact(tmp_path, projection, serial):
    """Batch-norm with its residual or projection add, bit-exact with golden over both
    saturation limits; a beat a cycle, or (serial: one lane's datapath) a beat every ``lanes``
    cycles; three cycles from the beat's transfer (serial: from its last lane's turn) to its
    output."""
    rng = np.random.default_rng(11 + projection)
    P, sw, n = 4, 12, 120
    unit = SiteAffine(P, sw, FMT, projection=projection, sum_width2=9 if projection else None,
                      serial=serial)
    design = _affine_design(tmp_path / "d", unit)
    beats, expected = [], []
    for t in range(n):
        s = _rand(rng, sw, P)
        m, b = _rand(rng, FMT.mant_width, P, 0.1), _rand(rng, FMT.width, P, 0.1)
        e = int(rng.integers(0, FMT.max_exp + 1))      # below, at and above frac
        vals = {"s": s, "m": m, "b": b, "e": e}
        op = {"op": "bn_add", "sums": "s", "m": m, "e": e, "b": b, "res": None, "sums2": None}
        bufs = {"s": s[None]}
        if projection:
            s2 = _rand(rng, 9, P)
            m2, b2 = _rand(rng, FMT.mant_width, P, 0.1), _rand(rng, FMT.width, P, 0.1)
            e2 = int(rng.integers(0, FMT.max_exp + 1))
            vals.update(s2=s2, m2=m2, b2=b2, e2=e2)
            op.update(sums2="t", m2=m2, e2=e2, b2=b2)
            bufs["t"] = s2[None]
        else:
            r = _rand(rng, FMT.width, P)
            vals["r"] = r
            op["res"] = "r"
            bufs["r"] = r[None]
        beats.append(pack_fields(unit.layout, vals))
        expected.append(pack_codes(apply_op(op, bufs, None, FMT)[0], FMT.width))
    # the golden results reach both saturation limits: the test sees the clamp
    lanes = [x for word in expected for x in unpack_codes(word, P, FMT.width)]
    assert min(lanes) == signed_range(FMT.width)[0] and max(lanes) == signed_range(FMT.width)[1]
    result = run_vectors(design, beats, expected, "icarus")
    assert result["passed"], result["log"]
    quiet = result["runs"][0]
    assert interval(quiet["t_out"]) == unit.cycles_per_vector == (P if serial else 1)
    assert quiet["t_out"][0] - quiet["t_in"][0] == unit.latency == (P + 3 if serial else 3)


@pytest.mark.parametrize("pe,simd", [(3, 4), (1, 8), (6, 1)])
def test_site_linear_bit_exact_at_its_folds(tmp_path, pe, simd):
    rng = np.random.default_rng(pe * 10 + simd)
    cin, cout, n, e = 8, 6, 24, 17
    w = _rand(rng, FMT.mant_width, (cout, cin), 0.1)
    b = _rand(rng, FMT.width, cout, 0.1)
    z = _rand(rng, FMT.width, (n, cin), 0.05)
    z[:4] = rng.integers(-300, 300, (4, cin))               # some sites far from saturation
    unit = SiteLinear(w, b, e, FMT, Folding(pe, simd))
    top = AxisTop([unit], element_width=FMT.width)
    write_design(tmp_path / "d", top, "site_top", {}, design_info(top, "site_top", "linear"))
    want = apply_op({"op": "linear", "src": "z", "m": w, "e": e, "b": b}, {"z": z}, None, FMT)
    lo, hi = signed_range(FMT.width)
    assert (want == lo).any() and (want == hi).any() and ((want > lo) & (want < hi)).any()
    result = run_vectors(tmp_path / "d", [pack_codes(r, FMT.width) for r in z],
                         [pack_codes(r, FMT.width) for r in want], "icarus")
    assert result["passed"], result["log"]
    quiet = result["runs"][0]
    folds = (cout // pe) * (cin // simd)
    assert unit.cycles_per_vector == folds
    assert interval(quiet["t_out"]) == folds
    assert quiet["t_out"][0] - quiet["t_in"][0] == unit.latency


def test_site_errors():
    with pytest.raises(BnnforgeError, match="^lin: PE=4 does not divide the 6 output channels$"):
        SiteLinear(np.zeros((6, 8)), np.zeros(6), 3, FMT, Folding(4, 1), name="lin")
    with pytest.raises(BnnforgeError, match="^lin: 5 biases for 6 output channels$"):
        SiteLinear(np.zeros((6, 8)), np.zeros(5), 3, FMT, Folding(1, 1), name="lin")
    with pytest.raises(BnnforgeError, match="^lin: weights outside 18-bit mantissas$"):
        SiteLinear(np.full((2, 2), 1 << 17), np.zeros(2), 3, FMT, Folding(1, 1), name="lin")
    with pytest.raises(BnnforgeError, match="^lanes must be a positive integer, not 0$"):
        SiteAffine(0, 8, FMT)


def _linear_frames(rng, layers, cin_max, cout_max, folding, corrupt=None):
    """Load frames and a frame of sites for each ``(cin, cout, e)``, as whole input payloads
    of a linear engine, with golden's output payloads (``corrupt`` changes the first load
    frame's words and expects its error beat)."""
    from hw.sparse.site import linear_load_words

    W = FMT.width
    ci, co = cin_max * W, cout_max * W

    def pin(d, marker, load, last):
        return d | marker << ci | load << (ci + 1) | last << (ci + 2)

    def pout(d, marker, err, last):
        return d | marker << co | err << (co + 1) | last << (co + 2)

    inputs, expected = [], []
    for k, (cin, cout, e) in enumerate(layers):
        w = _rand(rng, FMT.mant_width, (cout, cin), 0.1)
        b = _rand(rng, FMT.width, cout, 0.1)
        words = linear_load_words(w, b, e, FMT, folding, cin_max, cout_max)
        if corrupt is not None and k == 0:
            words = corrupt(words)
        inputs += [pin(x, 0, 1, int(i == len(words) - 1)) for i, x in enumerate(words)]
        expected.append(pout(0, 1, int(corrupt is not None and k == 0), 1))
        if corrupt is not None and k == 0:
            continue
        z = _rand(rng, FMT.width, (9, cin), 0.05)
        want = apply_op({"op": "linear", "src": "z", "m": w, "e": e, "b": b}, {"z": z}, None,
                        FMT)
        for i, (zr, wr) in enumerate(zip(z, want)):
            inputs.append(pin(pack_codes(np.pad(zr, (0, cin_max - cin)), W), 0, 0, int(i == 8)))
            expected.append(pout(pack_codes(np.pad(wr, (0, cout_max - cout)), W), 0, 0,
                                 int(i == 8)))
    return inputs, expected


@pytest.mark.parametrize("mode", STALL_MODES)
def test_linear_engine_runs_three_layers(mode):
    """One linear engine (16 x 12 channels at most, PE 2, SIMD 8) loads three layers one
    after another (all channels; a half of each; 16 -> 8) and equals the golden op on each;
    channels beyond a layer's are 0."""
    rng = np.random.default_rng(7)
    dut = SiteLinear.loadable(16, 12, FMT, Folding(2, 8))
    inputs, expected = _linear_frames(rng, [(16, 12, 17), (8, 4, 20), (16, 8, 15)], 16, 12,
                                      Folding(2, 8))
    outs, _, _ = run_stream(dut, inputs, len(expected), mode, seed=4, max_cycles=100_000)
    assert outs == expected


@pytest.mark.parametrize("words", [False, True])
@pytest.mark.parametrize("case", ["short", "long", "header only", "exponent"])
def test_linear_engine_rejects_malformed_load_frames(case, words):
    """A malformed load frame ends in the error beat, on the engine with beats and on its word
    engine (64-bit words)."""
    from hw.sparse.site import linear_header_layout

    rng = np.random.default_rng(8)
    dut = SiteLinear.loadable(16, 12, FMT, Folding(2, 8))
    if words:
        dut = dut.word_engine(64)
    header = linear_header_layout(6, 2)
    corrupt = {"short": lambda w: w[:-1], "long": lambda w: w + [0], "header only": lambda w:
               w[:1], "exponent": lambda w: [header.const(
                   {"g_last": 5, "f_last": 1, "e": FMT.max_exp + 1}).as_value().value] + w[1:]}
    inputs, expected = _linear_frames(rng, [(16, 12, 17), (16, 12, 18)], 16, 12, Folding(2, 8),
                                      corrupt=corrupt[case])
    if words:
        inputs = _as_words(inputs, 16 * FMT.width, 6)
        expected = _as_words(expected, 12 * FMT.width, 5)
    outs, _, _ = run_stream(dut, inputs, len(expected), "none", seed=4, max_cycles=100_000)
    assert outs == expected


def test_linear_engine_parameter_errors():
    with pytest.raises(BnnforgeError, match=r"^lin: a weight word \(4 x 8 mantissas\) is "
                                            r"wider than a beat of 16 codes$"):
        SiteLinear.loadable(16, 12, FMT, Folding(4, 8), name="lin")
    with pytest.raises(BnnforgeError, match="^lin: PE=5 does not divide the 12 output "
                                            "channels$"):
        SiteLinear.loadable(16, 12, FMT, Folding(5, 8), name="lin")


def _as_words(payloads, width, n, word_bits=64):
    """Whole beats (``width`` bits of codes, then three 1-bit fields) as ``n`` words each: the
    fields on every word, ``last`` on the beat's final word only."""
    out = []
    for x in payloads:
        d, f = x & ((1 << width) - 1), x >> width
        flags, last = f & 3, f >> 2
        for j, v in enumerate(split_beat(d, n, word_bits)):
            out.append(v | flags << word_bits | (last and j == n - 1) << (word_bits + 2))
    return out


@pytest.mark.parametrize("mode", STALL_MODES)
@pytest.mark.parametrize("pe, simd", [(2, 8), (2, 4)])
def test_linear_word_engine_runs_three_layers(mode, pe, simd):
    """The linear engine with its own 64-bit word port (sites and results in memories, not
    registers): the three layers of :func:`test_linear_engine_runs_three_layers` as words,
    bit-exact. SIMD 8 puts a fold of 8 codes in 3 words; SIMD 4 puts two folds in 3 words
    (a fold selected from a chunk); PE 2 puts 4 groups' results in 3 output words."""
    rng = np.random.default_rng(7)
    dut = SiteLinear.loadable(16, 12, FMT, Folding(pe, simd)).word_engine(64)
    assert (dut.words_in, dut.words_out) == (6, 5)
    inputs, expected = _linear_frames(rng, [(16, 12, 17), (8, 4, 20), (16, 8, 15)], 16, 12,
                                      Folding(pe, simd))
    win = _as_words(inputs, 16 * FMT.width, 6)
    want = _as_words(expected, 12 * FMT.width, 5)
    outs, _, _ = run_stream(dut, win, len(want), mode, seed=4, max_cycles=100_000)
    assert outs == want


def test_linear_word_engine_rate():
    """A site of 32 codes (12 words) and 4 results (2 words) on one fold group of 4 folds: the
    words limit the rate, so the sites' words enter back to back, 12 cycles a site, and the
    results leave a site every 12 cycles."""
    rng = np.random.default_rng(9)
    dut = SiteLinear.loadable(32, 4, FMT, Folding(4, 8)).word_engine(64)
    assert (dut.words_in, dut.words_out, dut.folds, dut.cycles_per_vector) == (12, 2, 4, 12)
    inputs, expected = _linear_frames(rng, [(32, 4, 19)], 32, 4, Folding(4, 8))
    win = _as_words(inputs, 32 * FMT.width, 12)
    want = _as_words(expected, 4 * FMT.width, 2)
    outs, t_in, t_out = run_stream(dut, win, len(want), "none", max_cycles=10_000)
    assert outs == want
    sites = t_in[-9 * 12:]
    assert sites == list(range(sites[0], sites[0] + 9 * 12))
    firsts = t_out[-9 * 2::2]
    assert np.diff(firsts).tolist() == [12] * 8


def test_linear_word_engine_errors():
    with pytest.raises(BnnforgeError, match=r"^lin: the word must be a power of two of at "
                                            r"least 8 bits \(an AXI4 data bus\), not 48$"):
        SiteLinear(None, None, None, FMT, Folding(2, 8), name="lin", channels=(16, 12),
                   word_bits=48)
    with pytest.raises(BnnforgeError, match=r"^lin: words in and out need run-time weights "
                                            r"\(SiteLinear.loadable\)$"):
        SiteLinear(np.zeros((2, 2)), np.zeros(2), 3, FMT, Folding(1, 1), name="lin",
                   word_bits=64)
    from hw.params import unused

    fixed = SiteLinear(np.zeros((2, 2)), np.zeros(2), 3, FMT, Folding(1, 1))
    odd = SiteLinear.loadable(16, 12, FMT, Folding(2, 8))
    unused(fixed, odd)
    assert fixed.word_engine(64) is None and odd.word_engine(48) is None
