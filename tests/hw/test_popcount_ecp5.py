"""The carry-save popcount (ECP5 carry-cell first level) in Amaranth's simulator, built from the
same CCU2C equations in logic: bit-exact with the count, at its stated latency."""

import random

import pytest
from amaranth.sim import Simulator

from hw.popcount_ecp5 import CarrySavePopcount, _plan
from quant.errors import BnnforgeError


def _run(dut, vectors):
    outs = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for k in range(len(vectors) + dut.latency):
            if k < len(vectors):
                ctx.set(dut.a, vectors[k][0])
                ctx.set(dut.w, vectors[k][1])
            await ctx.tick()
            if k + 1 >= dut.latency:
                outs.append(ctx.get(dut.count))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return outs[:len(vectors)]


@pytest.mark.parametrize("n", [3, 5, 8, 17, 64, 100, 256])
def test_counts_bit_exact(n):
    rng = random.Random(n)
    mask = (1 << n) - 1
    vectors = [(0, 0), (mask, 0), (mask, mask), (0, mask)] + \
        [(rng.getrandbits(n), rng.getrandbits(n)) for _ in range(60)]
    dut = CarrySavePopcount(n, chain=4 if n < 100 else 12, cells="logic")
    want = [n - bin(a ^ w).count("1") for a, w in vectors]
    assert _run(dut, vectors) == want


def test_plan_uses_every_pair_once():
    for n in range(3, 200):
        chains, left = _plan(n, 12)
        assert sum(3 * k - 1 for k in chains) + left == n and left < 3
        assert all(1 <= k <= 12 for k in chains)


def test_parameter_errors():
    with pytest.raises(BnnforgeError, match="^the carry-save popcount needs at least 3 inputs, "
                                            "not 2$"):
        CarrySavePopcount(2)
    with pytest.raises(BnnforgeError, match="^cells must be 'ecp5' or 'logic', not 'xilinx'$"):
        CarrySavePopcount(8, cells="xilinx")
