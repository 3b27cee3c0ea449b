"""The testbench skips idle cycles (stall mode none) without changing a single count: the same
runs stepped cycle by cycle and skipped give the same outputs, cycle stamps, fires, busy and
search cycles, while the skipped run looks at far fewer cycles."""

import functools

import numpy as np
import pytest

import sim.runner
from bnnforge.sparse_flows import generate_sparse, simulate_sparse
from golden.bscnet_fixed import SparseFixedPoint, apply_op
from hw.axis import AxisTop
from hw.generate import design_info, write_design
from hw.sparse.site import SiteLinear, pack_codes
from quant.layout import Folding
from sim.runner import run_vectors
from tests.hw.test_sparse import CIN, COUT, NMAX, B, edge_frames

FMT = SparseFixedPoint()
COUNTS = ("outputs", "t_in", "t_out", "fires", "busy", "cycles", "framing", "search_cycles",
          "void_beats")


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_long_folds_skipped_with_equal_counts(tmp_path, simulator):
    """A linear unit of 256 cycles a site (PE 1, SIMD 1, 16 x 16): a site's fold is one wait."""
    rng = np.random.default_rng(5)
    cin = cout = 16
    w = rng.integers(-2000, 2000, (cout, cin))
    b = rng.integers(-500, 500, cout)
    z = rng.integers(-3000, 3000, (12, cin))
    unit = SiteLinear(w, b, 17, FMT, Folding(1, 1))
    top = AxisTop([unit], element_width=FMT.width)
    write_design(tmp_path / "d", top, "site_top", {}, design_info(top, "site_top", "linear"))
    want = apply_op({"op": "linear", "src": "z", "m": w, "e": 17, "b": b}, {"z": z}, None, FMT)
    beats = [pack_codes(r, FMT.width) for r in z]
    expected = [pack_codes(r, FMT.width) for r in want]
    stepped = run_vectors(tmp_path / "d", beats, expected, simulator, stall_modes=("none",),
                          skip_idle=False)
    skipped = run_vectors(tmp_path / "d", beats, expected, simulator, stall_modes=("none",))
    assert stepped["passed"] and skipped["passed"], skipped["log"]
    a, b_ = stepped["runs"][0], skipped["runs"][0]
    assert {k: a[k] for k in COUNTS} == {k: b_[k] for k in COUNTS}
    assert a["cycles"] >= 12 * 256 and a["steps"] == a["cycles"]
    assert b_["steps"] * 10 < b_["cycles"]
    assert a["busy"][0] > 11 * 256          # busy through the skipped folds, counted


def test_sparse_search_cycles_equal_when_skipped(tmp_path, monkeypatch):
    """An SSC layer's edge-case frames: the search's busy cycles and every stamp are the same
    stepped and skipped (the runs also pass against golden)."""
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, NMAX, B, Folding(1, 2), tmp_path / "ssc")
    frames = edge_frames(rng)
    skipped = simulate_sparse(tmp_path / "ssc", frames, w, t, "icarus")
    monkeypatch.setattr(sim.runner, "run_vectors",
                        functools.partial(sim.runner.run_vectors, skip_idle=False))
    stepped = simulate_sparse(tmp_path / "ssc", frames, w, t, "icarus")
    assert skipped["mismatches"] == stepped["mismatches"] == 0
    a, b = stepped["runs"][0], skipped["runs"][0]
    assert {k: a[k] for k in COUNTS} == {k: b[k] for k in COUNTS}
    assert a["search_cycles"] > 0 and b["steps"] < a["steps"]
