"""Steady-state throughput measured in simulation within 5 % of the model for three foldings."""

import numpy as np
import pytest
import torch

from bnnforge.kinds.mlp import generate_dense
from golden.integer import IntegerNetwork
from hw.folding import choose_for_target
from hw.network import layer_shapes
from sim.cycles import measure
from sim.runner import run_vectors
from sim.vectors import pack_inputs, pack_outputs
from tests.helpers import random_dense


@pytest.mark.parametrize("target", [4, 32, 256])
def test_throughput_matches_model(tmp_path, target):
    rng = np.random.default_rng(target)
    net = random_dense(rng, [64, 64, 32, 10])
    folding = choose_for_target(layer_shapes(net), target)
    info = generate_dense(net, folding, tmp_path / "net")
    x = rng.integers(0, 2, (24, 64)).astype(np.uint8)
    scores = IntegerNetwork(net)(torch.from_numpy(x)).numpy()
    result = run_vectors(tmp_path / "net", pack_inputs(x), pack_outputs(scores, info),
                         "icarus", stall_modes=("none",))
    assert result["passed"]
    c = measure(result["runs"][0], info)
    assert info["cycles_per_vector"] <= target
    assert abs(c["interval"] / info["cycles_per_vector"] - 1) <= 0.05
    for block in c["blocks"]:
        assert abs(block["cycles_simulated"] / block["cycles_model"] - 1) <= 0.05
