import numpy as np
import pytest
import torch

from golden.integer import IntegerNetwork
from hw.network import dense_network
from quant.layout import Folding
from sim.vectors import pack_inputs, pack_outputs
from tests.helpers import STALL_MODES, AxisPorts, edge_vectors, random_dense, run_stream


@pytest.mark.parametrize("mode", STALL_MODES)
def test_network_top_in_amaranth(mode, tmp_path):
    rng = np.random.default_rng(21)
    net = random_dense(rng, [30, 20, 12, 7])
    folding = {"fc0": Folding(5, 6), "fc1": Folding(12, 4), "fc2": Folding(7, 12)}
    top = dense_network(net, folding)
    x = edge_vectors(30, rng, 12)
    info = {"lane_width": top.lane_width}
    expected = pack_outputs(IntegerNetwork(net)(torch.from_numpy(x)).numpy(), info)
    vcd = tmp_path / "net.vcd" if mode == "both" else None  # waveforms on request
    outs, t_in, t_out = run_stream(AxisPorts(top), pack_inputs(x), len(x), mode, seed=3, vcd=vcd)
    assert outs == expected
    if mode == "none":
        assert t_out[0] - t_in[0] == top.latency
        assert set(np.diff(t_out)) == {top.cycles_per_vector}
    if vcd:
        assert vcd.stat().st_size > 0
