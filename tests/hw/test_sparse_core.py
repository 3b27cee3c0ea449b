"""The engines in one design (SparseCore): ops for three engines sent one after another on one
stream, each beat naming its engine, come out bit-exact and in order."""

import numpy as np
import pytest

from golden.bscnet_fixed import apply_op
from hw.sparse import SparseLayer
from hw.sparse.core import SparseCore
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


def test_three_engines_on_one_stream():
    core = SparseCore(_engines())
    W = core.i.payload.shape()["data"].width
    Wo = core.o.payload.shape()["data"].width
    E = core.i.payload.shape()["engine"].width

    def cin(d, marker, load, engine, last):
        return d | marker << W | load << (W + 1) | engine << (W + 2) | last << (W + 2 + E)

    def cout(d, marker, error, last):
        return d | marker << Wo | error << (Wo + 1) | last << (Wo + 2)

    rng = np.random.default_rng(3)
    inputs, expected = [], []
    # Engine 0: a load frame and two frames of an SSC layer (bus words and tlast/tuser).
    ssc = core.engines[0]
    d, f, want, wf = tl._layer_beats(ssc, rng, 8, 6, (1, 0, -1))
    inputs += [cin(x, u & 1, u >> 1, 0, t) for x, (t, u) in zip(d, f)]
    expected += [cout(x, u & 1, u >> 1, t) for x, (t, u) in zip(want, wf)]
    # Engine 1: batch-norm + residual beats (a plain engine: the core carries last).
    for t in range(6):
        s, r = test_site._rand(rng, 12, 4), test_site._rand(rng, FMT.width, 4, 0.05)
        m, b = test_site._rand(rng, FMT.mant_width, 4, 0.1), test_site._rand(rng, FMT.width, 4)
        e = int(rng.integers(0, FMT.max_exp + 1))
        vals = {"s": s, "m": m, "b": b, "e": e, "r": r}
        inputs.append(cin(pack_fields(core.engines[1].layout, vals), 0, 0, 1, int(t == 5)))
        op = {"op": "bn_add", "sums": "s", "m": m, "e": e, "b": b, "res": "r", "sums2": None}
        got = apply_op(op, {"s": s[None], "r": r[None]}, None, FMT)[0]
        expected.append(cout(pack_codes(got, FMT.width), 0, 0, int(t == 5)))
    # Engine 2: a linear layer's load frame and sites.
    li, le = test_site._linear_frames(rng, [(16, 8, 18)], 16, 12, Folding(2, 8))
    ci, co = 16 * FMT.width, 12 * FMT.width
    for word in li:
        x, fl = _fields(word, ci, ("marker", "load", "last"))
        inputs.append(cin(x, fl["marker"], fl["load"], 2, fl["last"]))
    for word in le:
        x, fl = _fields(word, co, ("marker", "error", "last"))
        expected.append(cout(x, fl["marker"], fl["error"], fl["last"]))
    for mode in ("none", STALL_MODES[-1]):
        outs, _, _ = run_stream(core, inputs, len(expected), mode, seed=6, max_cycles=200_000)
        assert outs == expected


def test_core_errors():
    with pytest.raises(BnnforgeError, match="^a core needs at least one engine$"):
        SparseCore([])
    a, b = SiteAffine(4, 12, FMT, name="x"), SiteAffine(4, 12, FMT, name="x")
    with pytest.raises(BnnforgeError, match=r"^a core's engines need distinct names, not "
                                            r"\['x', 'x'\]$"):
        SparseCore([a, b])
