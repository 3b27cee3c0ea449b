"""The engines in one design (SparseCore): ops for three engines sent one after another on one
stream, each beat naming its engine, come out bit-exact and in order."""

import numpy as np
import pytest

from golden.bscnet_fixed import apply_op
from hw.sparse import SparseLayer
from hw.sparse.core import SparseCore
from hw.sparse.words import WordPort, join_words, split_beat
from hw.sparse.site import SiteAffine, SiteLinear, pack_codes, pack_fields
from quant.errors import BnnforgeError
from quant.layout import Folding
from tests.helpers import STALL_MODES, run_stream
from tests.hw import test_site, test_sparse_loadable as tl

FMT = test_site.FMT


def _engines():
    ssc = SparseLayer.loadable("ssc", tl.CIN, tl.COUT, tl.NMAX, tl.B, Folding(tl.PE, tl.SIMD))
    ssc.name = "ssc"
    affine = SiteAffine(4, 12, FMT, name="affine")
    linear = SiteLinear.loadable(16, 12, FMT, Folding(2, 8), name="linear")
    return [ssc, affine, linear]


def _fields(word, width, names):
    """Split a whole payload into its data (low ``width`` bits) and 1-bit fields."""
    return word & ((1 << width) - 1), {n: (word >> (width + k)) & 1 for k, n in enumerate(names)}


def _words(core, k, wide, marker, extra, last, out):
    """A wide beat of engine ``k`` as the core's words (input: ``extra`` = load, the engine
    field after it; output: ``extra`` = error): marker and load/error on every word, last on
    the final one."""
    port = core.ports[k]
    n = port.words_out if out else port.words_in
    W = core.word_bits
    words = split_beat(wide, n, W)
    if out:
        return [w | marker << W | extra << (W + 1) | (last and j == n - 1) << (W + 2)
                for j, w in enumerate(words)]
    E = core.i.payload.shape()["engine"].width
    return [w | marker << W | extra << (W + 1) | k << (W + 2) | (last and j == n - 1) << (W + 2 + E)
            for j, w in enumerate(words)]


def test_three_engines_on_one_stream():
    """Three engines' ops through the core's 64-bit words: a one-word SSC engine, a plain
    affine engine of several words in and two out (its last flags kept beside it), the linear
    engine of six words in and five out; bit-exact in two stall modes."""
    core = SparseCore(_engines())
    aff = -(-core.engines[1].layout.size // 64)
    assert [(p.words_in, p.words_out) for p in core.ports][1:] == [(aff, 2), (6, 5)]
    rng = np.random.default_rng(3)
    inputs, expected = [], []
    # Engine 0: a load frame and two frames of an SSC layer (bus words and tlast/tuser).
    ssc = core.engines[0]
    d, f, want, wf = tl._layer_beats(ssc, rng, 8, 6, (1, 0, -1))
    for x, (t, u) in zip(d, f):
        inputs += _words(core, 0, x, u & 1, u >> 1, t, out=False)
    for x, (t, u) in zip(want, wf):
        expected += _words(core, 0, x, u & 1, u >> 1, t, out=True)
    # Engine 1: batch-norm + residual beats (a plain engine: the port carries last).
    for t in range(6):
        s, r = test_site._rand(rng, 12, 4), test_site._rand(rng, FMT.width, 4, 0.05)
        m, b = test_site._rand(rng, FMT.mant_width, 4, 0.1), test_site._rand(rng, FMT.width, 4)
        e = int(rng.integers(0, FMT.max_exp + 1))
        vals = {"s": s, "m": m, "b": b, "e": e, "r": r}
        inputs += _words(core, 1, pack_fields(core.engines[1].layout, vals), 0, 0, t == 5,
                         out=False)
        op = {"op": "bn_add", "sums": "s", "m": m, "e": e, "b": b, "res": "r", "sums2": None}
        got = apply_op(op, {"s": s[None], "r": r[None]}, None, FMT)[0]
        expected += _words(core, 1, pack_codes(got, FMT.width), 0, 0, t == 5, out=True)
    # Engine 2: a linear layer's load frame and sites.
    li, le = test_site._linear_frames(rng, [(16, 8, 18)], 16, 12, Folding(2, 8))
    ci, co = 16 * FMT.width, 12 * FMT.width
    for word in li:
        x, fl = _fields(word, ci, ("marker", "load", "last"))
        inputs += _words(core, 2, x, fl["marker"], fl["load"], fl["last"], out=False)
    for word in le:
        x, fl = _fields(word, co, ("marker", "error", "last"))
        expected += _words(core, 2, x, fl["marker"], fl["error"], fl["last"], out=True)
    for mode in ("none", STALL_MODES[-1]):
        outs, t_in, _ = run_stream(core, inputs, len(expected), mode, seed=6,
                                   max_cycles=200_000)
        assert outs == expected


def test_word_port_errors():
    eng = SiteAffine(4, 12, FMT, name="x")
    with pytest.raises(BnnforgeError, match=r"^the word must be whole bytes \(an AXI4 data "
                                            r"bus\), not 60 bits$"):
        WordPort(eng, 60)


def test_word_port_rate():
    """A plain engine of a beat a cycle behind 64-bit words: its input words a beat
    arrive in back-to-back cycles (the next beat's while the port hands one on), its two
    output words a beat leave back to back with ``last`` on the frame's final word only, and
    the beats are the engine's (golden) results."""
    port = WordPort(SiteAffine(4, 12, FMT, name="affine"), 64)
    n = -(-port.engine.layout.size // 64)
    assert n > 2 and (port.words_in, port.words_out, port.cycles_per_vector) == (n, 2, n)
    rng = np.random.default_rng(5)
    inputs, want = [], []
    beats = 10
    for t in range(beats):
        s, r = test_site._rand(rng, 12, 4), test_site._rand(rng, FMT.width, 4, 0.05)
        m, b = test_site._rand(rng, FMT.mant_width, 4, 0.1), test_site._rand(rng, FMT.width, 4)
        e = int(rng.integers(0, FMT.max_exp + 1))
        wide = pack_fields(port.engine.layout, {"s": s, "m": m, "b": b, "e": e, "r": r})
        for j, w in enumerate(split_beat(wide, n, 64)):
            inputs.append(w | int(t == beats - 1 and j == n - 1) << 66)
        op = {"op": "bn_add", "sums": "s", "m": m, "e": e, "b": b, "res": "r", "sums2": None}
        want.append(pack_codes(apply_op(op, {"s": s[None], "r": r[None]}, None, FMT)[0],
                               FMT.width))
    outs, t_in, t_out = run_stream(port, inputs, 2 * beats, "none")
    assert t_in == list(range(t_in[0], t_in[0] + n * beats))
    mask = (1 << 64) - 1
    got = [join_words([outs[2 * k] & mask, outs[2 * k + 1] & mask], 64) for k in range(beats)]
    assert got == want
    assert [o >> 66 for o in outs] == [0] * (2 * beats - 1) + [1]
    assert all(t_out[2 * k + 1] == t_out[2 * k] + 1 for k in range(beats))


def test_core_errors():
    with pytest.raises(BnnforgeError, match="^a core needs at least one engine$"):
        SparseCore([])
    a, b = SiteAffine(4, 12, FMT, name="x"), SiteAffine(4, 12, FMT, name="x")
    with pytest.raises(BnnforgeError, match=r"^a core's engines need distinct names, not "
                                            r"\['x', 'x'\]$"):
        SparseCore([a, b])
