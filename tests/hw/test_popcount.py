import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.popcount import PopcountStream, XnorPopcount, popcount_latency
from quant.bits import bits_to_int
from quant.errors import BnnforgeError
from tests.helpers import STALL_MODES, edge_vectors, run_stream


@pytest.mark.parametrize("n,reg_every", [(1, 1), (7, 1), (64, 1), (65, 2), (100, 3), (256, 8)])
def test_counts_and_latency(n, reg_every):
    """Edge cases and random pairs, one a cycle; the count appears exactly `latency` later."""
    rng = np.random.default_rng(n)
    a = edge_vectors(n, rng)
    w = np.concatenate([edge_vectors(n, rng)[:5], rng.integers(0, 2, (len(a) - 5, n))])
    w[1] = 0  # all-ones against all-zeros: count 0
    expect = (a == w).sum(axis=1)
    dut = XnorPopcount(n, reg_every)
    got = {}

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for cycle in range(len(a) + dut.latency + 1):
            if cycle < len(a):
                ctx.set(dut.a, bits_to_int(a[cycle]))
                ctx.set(dut.w, bits_to_int(w[cycle]))
            await ctx.tick()
            got[cycle + 1] = ctx.get(dut.count)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [got[k + dut.latency] for k in range(len(a))] == expect.tolist()
    assert dut.latency == popcount_latency(n, reg_every)
    assert expect.max() == n  # the maximum count is among the cases


def test_enable_holds_the_pipeline():
    dut = XnorPopcount(16, 1)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        ctx.set(dut.a, 0xFFFF)
        ctx.set(dut.w, 0xFFFF)
        await ctx.tick()
        ctx.set(dut.en, 0)
        ctx.set(dut.a, 0)
        for _ in range(5):
            await ctx.tick()
        ctx.set(dut.en, 1)
        for _ in range(dut.latency - 1):
            await ctx.tick()
        assert ctx.get(dut.count) == 16

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("mode", STALL_MODES)
def test_stream_four_stall_modes(mode):
    n = 24
    rng = np.random.default_rng(3)
    a, w = edge_vectors(n, rng, 30), rng.integers(0, 2, (35, n))
    dut = PopcountStream(n, 2)
    inputs = [bits_to_int(x) | bits_to_int(y) << n for x, y in zip(a, w)]
    outs, t_in, t_out = run_stream(dut, inputs, len(inputs), mode, seed=7)
    assert outs == (a == w).sum(axis=1).tolist()
    if mode == "none":
        assert t_out[0] - t_in[0] == dut.latency
        assert np.diff(t_out).tolist() == [1] * (len(inputs) - 1)


def test_parameter_errors():
    with pytest.raises(BnnforgeError, match=r"^popcount width must be a positive integer, not -3$"):
        XnorPopcount(-3)
    with pytest.raises(BnnforgeError, match=r"^reg_every must be a positive integer, not 0$"):
        XnorPopcount(8, 0)
