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


@pytest.mark.parametrize("mode", STALL_MODES)
def test_narrow_ports_carry_vectors_in_beats(mode):
    """8-bit ports: each 30-bit vector in 4 beats, each 56-bit result (7 byte lanes) in 7
    beats, lowest bits first, tlast on each result's last beat; bit-exact in every stall mode,
    with the latency and interval the top states (the converters' beats + 1 cycles a vector
    set the interval here)."""
    rng = np.random.default_rng(22)
    net = random_dense(rng, [30, 20, 7])
    folding = {"fc0": Folding(5, 6), "fc1": Folding(7, 10)}
    top = dense_network(net, folding, beat_width=8)
    assert (top.beats_in, top.beats_out) == (4, 7)
    assert len(top.s_axis_tdata) == len(top.m_axis_tdata) == 8
    assert top.cycles_per_vector == max(4 * 5, 2 * 1, 4 + 1, 7 + 1) == 20
    x = edge_vectors(30, rng, 6)
    words = pack_inputs(x)
    beats = [(w >> (8 * b)) & 0xFF for w in words for b in range(4)]
    expected = pack_outputs(IntegerNetwork(net)(torch.from_numpy(x)).numpy(),
                            {"lane_width": top.lane_width})
    want = [(w >> (8 * b)) & 0xFF for w in expected for b in range(7)]
    outs, t_in, t_out = run_stream(AxisPorts(top), beats, len(want), mode, seed=5)
    assert outs == want
    if mode == "none":
        assert t_out[0] - t_in[0] == top.latency
        vector_out = t_out[::7]
        assert set(np.diff(vector_out)) == {top.cycles_per_vector}


def test_narrow_ports_are_checked():
    from quant.errors import BnnforgeError

    net = random_dense(np.random.default_rng(1), [30, 7])
    with pytest.raises(BnnforgeError, match="the beat width must be a multiple of 8 bits "
                                            r"\(AXI4-Stream tdata is whole bytes\), not 12"):
        dense_network(net, {"fc0": Folding(7, 6)}, beat_width=12)
