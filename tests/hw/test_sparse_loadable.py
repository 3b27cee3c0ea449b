"""A binary sparse layer whose weights, channel counts and window shift load at run time: one
design runs several layers one after another, each bit-exact against golden; malformed load
frames end in an error beat and the next load works."""

import numpy as np
import pytest

from golden.sparse import sort_frame, sparse_layer_sums
from hw.sparse import ERROR_LOAD, SparseLayer
from quant.errors import BnnforgeError
from quant.layout import Folding
from sim.voxels import (error_beats, frame_beats, in_payloads, load_beats, out_payloads,
                        pack_sums, pad_weights, result_beats)
from tests.golden.test_sparse import random_frame
from tests.helpers import STALL_MODES, run_stream

B, CIN, COUT, NMAX, PE, SIMD = 4, 8, 12, 40, 4, 4
INFO = {"pe": PE, "simd": SIMD, "cin": CIN, "cout": COUT}


def _layer_beats(dut, rng, cin, cout, shift, frames=2):
    """A load frame and ``frames`` random frames of one layer, with golden's outputs: the
    loaded channels' sums (whole PE folds; the padding channels have zero weights), 0 beyond."""
    w = rng.integers(0, 2, (27, cout, cin))
    data, framing, want, want_framing = load_beats(INFO, w, shift)
    fr = [sort_frame(c, rng.integers(0, 2, (len(c), cin)), B)
          for c in (random_frame(rng, 30, 5, bits=B) for _ in range(frames))]
    d, f = frame_beats([(c, np.pad(a, ((0, 0), (0, CIN - cin)))) for c, a in fr], CIN, B)
    outs = []
    for frame in fr:
        coords, sums = sparse_layer_sums("ssc", frame, pad_weights(w, PE, SIMD), B, shift=shift)
        outs.append((coords, pack_sums(np.pad(sums, ((0, 0), (0, COUT - sums.shape[1]))),
                                       dut.sum_width)))
    o, of = result_beats(outs, COUT * dut.sum_width, B)
    return data + d, framing + f, want + o, want_framing + of


def _run(dut, parts, mode):
    data, framing, want, want_framing = (sum((p[k] for p in parts), []) for k in range(4))
    inputs = in_payloads(data, framing, CIN, B, load=True)
    expected = out_payloads(want, want_framing, COUT * dut.sum_width, B)
    outs, _, _ = run_stream(dut, inputs, len(expected), mode, seed=5, max_cycles=200_000)
    return outs, expected


@pytest.mark.parametrize("mode", STALL_MODES)
def test_one_design_runs_three_layers(mode):
    """Layers of 8 -> 6 channels (a PE fold padded) with a corner window, 4 -> 4 unshifted
    and 8 -> 8 with the opposite corner, loaded one after another into one design."""
    rng = np.random.default_rng(0)
    dut = SparseLayer.loadable("ssc", CIN, COUT, NMAX, B, Folding(PE, SIMD))
    parts = [_layer_beats(dut, rng, cin, cout, shift)
             for cin, cout, shift in [(8, 6, (1, -1, 0)), (4, 4, (0, 0, 0)), (8, 8, (-1, 1, 1))]]
    outs, expected = _run(dut, parts, mode)
    assert outs == expected


def _bad_load(words):
    """A load frame of an 8 -> 12 layer whose words are cut to ``words`` (or extended)."""
    data, framing, _, _ = load_beats(INFO, np.zeros((27, COUT, CIN), np.uint8))
    data = (data + [0] * len(data))[:1 + words]
    return data, [(int(i == len(data) - 1), 2) for i in range(len(data))]


@pytest.mark.parametrize("case", ["short", "long", "header only", "folds beyond"])
def test_malformed_load_frames_give_an_error_beat(case):
    rng = np.random.default_rng(1)
    dut = SparseLayer.loadable("ssc", CIN, COUT, NMAX, B, Folding(PE, SIMD))
    full = 27 * 3 * 2 * PE
    if case == "folds beyond":
        # nf_last = 3 in a design of three output folds (its field holds 0..3).
        data, framing = _bad_load(full)
        data[0] |= 3
    else:
        data, framing = _bad_load({"short": full - 1, "long": full + 1, "header only": 0}[case])
    bad = error_beats(ERROR_LOAD, COUT * dut.sum_width)
    outs, expected = _run(dut, [(data, framing, *bad), _layer_beats(dut, rng, 8, 8, (0, 1, 0))],
                          "none")
    assert outs == expected


def test_parameter_errors():
    f = Folding(PE, SIMD)
    with pytest.raises(BnnforgeError, match="^a layer whose weights load at run time outputs "
                                            "sums$"):
        SparseLayer("ssc", None, None, NMAX, B, f, channels=(CIN, COUT))
    with pytest.raises(BnnforgeError, match="^a layer whose weights load at run time needs at "
                                            r"least 2 coordinate bits \(its load error code\)$"):
        SparseLayer.loadable("ssc", CIN, COUT, NMAX, 1, f)
    # 64 output folds (6 bits), 2 input folds (1 bit), the shift (6 bits): 13 > 2 + 3 x 2.
    with pytest.raises(BnnforgeError, match=r"^the load header \(13 bits\) does not fit a beat "
                                            r"of 2 features and 3 x 2 coordinate bits; widen "
                                            r"the coordinates$"):
        SparseLayer.loadable("ssc", 2, 64, NMAX, 2, Folding(1, 1))
    with pytest.raises(BnnforgeError, match="^a window shift loaded at run time needs weights "
                                            r"loaded at run time \(SparseLayer.loadable\)$"):
        SparseLayer("ssc", np.zeros((27, COUT, CIN)), None, NMAX, B, f, output="sums",
                    shift=None)
    with pytest.raises(BnnforgeError, match="^PE=5 does not divide the 12 output channels$"):
        SparseLayer.loadable("down", CIN, COUT, NMAX, B, Folding(5, SIMD))


def test_a_load_frame_longer_than_its_frame(tmp_path):
    """A 128 -> 128 layer's load frame (27 x 8 x 8 x 16 = 27,648 words) before a frame of one
    site, on Icarus: the testbench's time limit counts the load frame (it once timed out
    here, as the FCN-S demo's deepest level did), and the site's sums equal golden's."""
    from bnnforge.sparse_flows import generate_sparse_engine, simulate_sparse

    rng = np.random.default_rng(9)
    design = tmp_path / "ssc"
    generate_sparse_engine("ssc", 128, 128, 16, 3, Folding(16, 16), design)
    w = rng.integers(0, 2, (27, 128, 128))
    frame = (np.array([[2, 3, 1]]), rng.integers(0, 2, (1, 128)))
    r = simulate_sparse(design, [frame], w, None, "icarus")
    assert r["mismatches"] == 0 and r["errors"] == []
    assert np.array_equal(r["outputs"][0], sparse_layer_sums("ssc", frame, w, 3)[1])
    assert r["load_cycles"] >= 1 + 27 * 8 * 8 * 16
