"""The design-space sweep on a LocalCluster of two workers: rows, a failed point that does not
stop the sweep, and a rerun that takes every finished point from the cache."""

import json
import re

import numpy as np
import pytest

from bnnforge.explore import default_targets, explore, pareto_front
from quant import bitstream as bitstream_io
from tests.helpers import random_dense

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_sweep_cache_and_a_failed_point(tmp_path):
    path = bitstream_io.write(random_dense(np.random.default_rng(2), [32, 16, 10]),
                              tmp_path / "net.bnn")
    out = tmp_path / "x"
    r = explore(path, out, targets=[0, 4, 16], families=("generic",), vectors=8, synth=False,
                workers=2, lanes=(40,))
    saved = json.loads((out / "results.json").read_text())
    assert re.fullmatch(r"dask\.distributed LocalCluster \(2 workers, 1 thread each\), "
                        r"scheduler tcp://127\.0\.0\.1:\d+", saved["engine"])
    assert saved["workers"] == 2
    bad, four, sixteen, budget = saved["points"]
    assert bad["target_cycles"] == 0 and bad["error"].startswith("FoldingError: target cycles")
    for p, t in ((four, 4), (sixteen, 16)):
        assert p["mismatches"] == 0 and "error" not in p
        assert p["cycles_per_input"] == p["cycles_per_input_model"] <= t
    assert four["lanes"] > sixteen["lanes"]
    # 40 lanes a matrix: the 16 x 32 layer's best is 32 lanes (16 cycles), and every layer
    # then takes the fewest lanes for 16 cycles
    assert budget["max_lanes"] == 40 and budget["mismatches"] == 0
    assert max(f["pe"] * f["simd"] for f in budget["folding"]) <= 40
    assert budget["cycles_per_input"] == budget["cycles_per_input_model"] == 16
    again = explore(path, out, targets=[4, 16], families=("generic",), vectors=8, synth=False)
    assert again["engine"] == "none: every point cached"
    assert [p["cached"] for p in again["points"]] == [True, True]
    assert [p["cycles_per_input"] for p in again["points"]] == [four["cycles_per_input"],
                                                               sixteen["cycles_per_input"]]
    assert r["points"][1]["cached"] is False


def test_pareto_front_and_default_targets():
    rows = [{"target_cycles": 1, "logic_slots": 10, "inputs_per_second": 5},
            {"target_cycles": 2, "logic_slots": 20, "inputs_per_second": 4},   # dominated
            {"target_cycles": 3, "logic_slots": 30, "inputs_per_second": 9}]
    assert [r["target_cycles"] for r in pareto_front(rows, "logic_slots")] == [1, 3]
    from bnnforge.kinds import kind_named

    bs = random_dense(np.random.default_rng(0), [192, 256, 256, 10])
    # Within 2,048 lanes: 32 cycles needs 1,536 + 2,048 + 80 lanes, 64 cycles 768 + 1,024
    # + 40.
    assert default_targets(kind_named("mlp"), bs) == [64, 128, 256, 512, 1024, 2048]
    assert default_targets(kind_named("mlp"), bs, max_lanes=1 << 20) == [4, 8, 16, 32, 64, 128]
    from golden.groupnet import GroupNet
    import torch

    torch.manual_seed(0)
    gn = GroupNet(channels=16, blocks=2, bases=1, decomposition="groupnet").eval()
    # 8 x 8 pixels: a matrix (16 x 144) takes at least 64 cycles an image, one a pixel;
    # lanes 4 units x 16 x 144 / (target / 64): 2,304 at 256 cycles, 1,152 at 512
    assert default_targets(kind_named("groupnet"), gn.to_bitstream(8, 8)) == \
        [512, 1024, 2048, 4096, 8192, 16384]
