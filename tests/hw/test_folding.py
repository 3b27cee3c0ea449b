import json

import pytest

from hw.folding import choose_for_lanes, choose_for_target, load_folding
from quant.errors import FoldingError
from quant.layout import Folding

SHAPES = {"fc0": (256, 192), "fc1": (256, 256), "fc2": (10, 256)}


def _cycles(shapes, folding):
    return {n: (r // folding[n].pe) * (c // folding[n].simd) for n, (r, c) in shapes.items()}


@pytest.mark.parametrize("target", [1, 7, 64, 1000, 10**6])
def test_target_is_met_with_fewest_lanes(target):
    folding = choose_for_target(SHAPES, target)
    for name, (rows, cols) in SHAPES.items():
        f = folding[name]
        assert rows % f.pe == 0 and cols % f.simd == 0
        cyc = (rows // f.pe) * (cols // f.simd)
        assert cyc <= target
        # No legal folding with fewer lanes meets the target.
        for pe in range(1, rows + 1):
            for simd in range(1, cols + 1):
                if rows % pe == 0 and cols % simd == 0 and pe * simd < f.pe * f.simd:
                    assert (rows // pe) * (cols // simd) > target


@pytest.mark.parametrize("lanes", [1, 16, 100, 1024])
def test_lanes_budget_balances_the_pipeline(lanes):
    folding = choose_for_lanes(SHAPES, lanes)
    cycles = _cycles(SHAPES, folding)
    assert all(f.pe * f.simd <= lanes for f in folding.values())
    # The bottleneck is the best the budget allows for the hardest layer.
    best = min((256 // pe) * (256 // simd) for pe in (1, 2, 4, 8, 16, 32, 64, 128, 256)
               for simd in (1, 2, 4, 8, 16, 32, 64, 128, 256) if pe * simd <= lanes)
    assert max(cycles.values()) == best


def test_bad_targets():
    with pytest.raises(FoldingError, match="^target cycles must be a positive integer, not 0$"):
        choose_for_target(SHAPES, 0)
    with pytest.raises(FoldingError, match="^max lanes must be a positive integer, not -1$"):
        choose_for_lanes(SHAPES, -1)


def test_folding_file(tmp_path):
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"layers": [{"name": "fc0", "pe": 4, "simd": 8},
                                           {"name": "fc1", "pe": 2, "simd": 256},
                                           {"name": "fc2", "pe": 5, "simd": 1}]}))
    assert load_folding(path, SHAPES)["fc1"] == Folding(2, 256)
    path.write_text(json.dumps({"layers": [{"name": "fc0", "pe": 3, "simd": 8}]}))
    with pytest.raises(FoldingError, match="no entry for layer\\(s\\) fc1, fc2"):
        load_folding(path, SHAPES)
    path.write_text(json.dumps({"layers": [{"name": n, "pe": 3, "simd": 8} for n in SHAPES]}))
    with pytest.raises(FoldingError, match="fc0: PE=3 does not divide the layer's 256 output"):
        load_folding(path, SHAPES)
    path.write_text("{not json")
    with pytest.raises(FoldingError, match="not a folding file"):
        load_folding(path, SHAPES)
