"""The testbench skips idle cycles (stall mode none) without changing a single count: the same
runs stepped cycle by cycle, skipped, and played by the simulation top's player (the stream
driven in the simulator, no Python a cycle) give the same outputs, cycle stamps, fires, busy
and search cycles, while the skipped run looks at far fewer cycles and the played one at
none."""

import functools
from pathlib import Path

import numpy as np
import pytest

import sim.runner
from bnnforge.sparse_flows import generate_sparse, simulate_sparse
from golden.bscnet_fixed import SparseFixedPoint, apply_op
from hw.axis import AxisTop
from hw.generate import design_info, write_design
from hw.sparse.site import SiteLinear, pack_codes
from quant.layout import Folding
from sim.runner import PLAYER_OUT, run_vectors
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
    skipped = run_vectors(tmp_path / "d", beats, expected, simulator, stall_modes=("none",),
                          player=False)
    played = run_vectors(tmp_path / "d", beats, expected, simulator, stall_modes=("none",))
    assert stepped["passed"] and skipped["passed"] and played["passed"], played["log"]
    a, b_, c = stepped["runs"][0], skipped["runs"][0], played["runs"][0]
    assert {k: a[k] for k in COUNTS} == {k: b_[k] for k in COUNTS} == {k: c[k] for k in COUNTS}
    assert a["cycles"] >= 12 * 256 and a["steps"] == a["cycles"]
    assert b_["steps"] * 10 < b_["cycles"] and c["steps"] == 0
    assert a["busy"][0] > 11 * 256          # busy through the skipped folds, counted
    # Without fires the player logs no line a firing cycle; every other count is the same.
    quiet = run_vectors(tmp_path / "d", beats, expected, simulator, stall_modes=("none",),
                        fires=False)
    d = quiet["runs"][0]
    assert quiet["passed"] and d["fires"] is None
    assert {k: d[k] for k in COUNTS if k != "fires"} == {k: c[k] for k in COUNTS if k != "fires"}
    logged = [Path(r["log"]).with_name(PLAYER_OUT).read_text().splitlines()
              for r in (played, quiet)]
    firing = set().union(*map(set, c["fires"]))
    assert len(firing) >= 12 and sum(x.startswith("f ") for x in logged[0]) == len(firing)
    assert not any(x.startswith("f ") for x in logged[1])


def test_player_timeout_names_the_outputs_missing(tmp_path):
    """A run that waits for an output that never comes ends at ``max_cycles`` in the player
    as in the testbench's loop, and says how many outputs arrived."""
    from quant.errors import SimulatorError

    rng = np.random.default_rng(6)
    w, b = rng.integers(-9, 9, (4, 4)), rng.integers(-9, 9, 4)
    z = rng.integers(-99, 99, (2, 4))
    unit = SiteLinear(w, b, 3, FMT, Folding(4, 4))
    top = AxisTop([unit], element_width=FMT.width)
    write_design(tmp_path / "d", top, "site_top", {}, design_info(top, "site_top", "linear"))
    want = apply_op({"op": "linear", "src": "z", "m": w, "e": 3, "b": b}, {"z": z}, None, FMT)
    expected = [pack_codes(r, FMT.width) for r in want] + [0]     # one output too many
    for player in (True, False):
        with pytest.raises(SimulatorError, match=r"^the icarus simulation did not run "
                           r"\(SystemExit: 1\): none: timeout after 500 cycles with 2 of 3 "
                           r"outputs; see .*simulator.log$"):
            run_vectors(tmp_path / "d", [pack_codes(r, FMT.width) for r in z], expected,
                        "icarus", stall_modes=("none",), max_cycles=500, player=player)


def test_sparse_search_cycles_equal_when_skipped(tmp_path, monkeypatch):
    """An SSC layer's edge-case frames: the search's busy cycles and every stamp are the same
    stepped, skipped and played (the runs also pass against golden)."""
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2, (27, COUT, CIN))
    t = rng.integers(-24, 24, COUT)
    generate_sparse(w, t, NMAX, B, Folding(1, 2), tmp_path / "ssc")
    frames = edge_frames(rng)
    skipped = simulate_sparse(tmp_path / "ssc", frames, w, t, "icarus")
    run = sim.runner.run_vectors
    monkeypatch.setattr(sim.runner, "run_vectors", functools.partial(run, skip_idle=False))
    stepped = simulate_sparse(tmp_path / "ssc", frames, w, t, "icarus")
    monkeypatch.setattr(sim.runner, "run_vectors", functools.partial(run, player=False))
    looped = simulate_sparse(tmp_path / "ssc", frames, w, t, "icarus")
    assert skipped["mismatches"] == stepped["mismatches"] == looped["mismatches"] == 0
    a, b, c = stepped["runs"][0], skipped["runs"][0], looped["runs"][0]
    assert {k: a[k] for k in COUNTS} == {k: b[k] for k in COUNTS} == {k: c[k] for k in COUNTS}
    assert a["search_cycles"] > 0 and b["steps"] == 0 < c["steps"] < a["steps"]
