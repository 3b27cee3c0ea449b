"""The shared fixed-point rounding and saturation: closed forms written out here, and the same
function on NumPy integers and in Amaranth hardware gives the same numbers."""

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from quant.fixed import round_shift, saturate, to_fixed


def test_round_half_up_and_saturate_on_integers():
    v = np.array([-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7])
    # floor((v + 2) / 4): halves (-6, -2, 2, 6) go up.
    assert round_shift(v, 2).tolist() == [-2, -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert round_shift(v, 0).tolist() == v.tolist()
    assert saturate([-200, -128, 127, 300], 8).tolist() == [-128, -128, 127, 127]
    assert to_fixed([0.5, -0.5, 0.2499, 1.0], 2).tolist() == [2, -2, 1, 4]
    assert to_fixed([100.0], 4, width=8).tolist() == [127]


@pytest.mark.parametrize("shift,width", [(0, 6), (3, 6), (5, 4)])
def test_hardware_equals_integers(shift, width):
    values = list(range(-300, 301, 7))
    x = Signal(signed(12))
    r = Signal(signed(12))
    s = Signal(signed(width))
    m = Module()
    m.d.comb += [r.eq(round_shift(x, shift)), s.eq(saturate(round_shift(x, shift), width))]
    got = []
    sim = Simulator(m)

    async def tb(ctx):
        for v in values:
            ctx.set(x, v)
            got.append((ctx.get(r), ctx.get(s)))

    sim.add_testbench(tb)
    sim.run()
    want_r = round_shift(values, shift)
    assert got == list(zip(want_r.tolist(), saturate(want_r, width).tolist()))
