"""Shared test helpers: edge-case vectors, random layers, an Amaranth stream driver."""

import random

import numpy as np
import pytest
from amaranth import Value
from amaranth.sim import Simulator

from quant.bitstream import Bitstream, DenseLayer
from sim.voxels import FrameTracker

STALL_MODES = ("none", "source", "sink", "both")

#: Verilator runs only with the slow marker: CI runs one Verilator test per top kind (dense
#: network, Group-Net, convolution, sparse layer) and Icarus for the rest.
VERILATOR_SLOW = pytest.param("verilator", marks=pytest.mark.slow)
_STALL = {"none": (0.0, 0.0), "source": (0.35, 0.0), "sink": (0.0, 0.35), "both": (0.35, 0.35)}


def edge_vectors(n, rng, randoms=8):
    """All zeros, all ones, alternating, a single one, a single zero, then random rows."""
    rows = [np.zeros(n), np.ones(n), np.arange(n) % 2, np.eye(1, n, n - 1)[0],
            1 - np.eye(1, n, 0)[0]]
    rows += list(rng.integers(0, 2, size=(randoms, n)))
    return np.array(rows, dtype=np.uint8)


def public_scopes(build_dir):
    """The scopes whose signals a Verilator build made public to VPI (``varInsert`` calls in
    the generated symbol table)."""
    import re
    from pathlib import Path

    text = "".join(p.read_text() for p in Path(build_dir).glob("Vtop__Syms*.cpp"))
    return set(re.findall(r"__Vscopep_(\w+)->varInsert\(", text))


def random_dense(rng, sizes, scores_last=True):
    """A random dense bitstream with thresholds over the whole legal range [0, n + 1]."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(0, 2, size=(b, a), dtype=np.uint8)
        last = i == len(sizes) - 2
        t = None if (last and scores_last) else rng.integers(0, a + 2, size=b)
        layers.append(DenseLayer(f"fc{i}", w, t))
    return Bitstream(layers, {"features": sizes[0]}).validate()


class AxisPorts:
    """The AXI4-Stream ports of an :class:`hw.axis.AxisTop` seen as ``i``/``o`` streams."""

    class _End:
        def __init__(self, payload, valid, ready):
            self.payload, self.valid, self.ready = payload, valid, ready

    def __init__(self, top):
        self.top = top
        self.i = self._End(top.s_axis_tdata, top.s_axis_tvalid, top.s_axis_tready)
        self.o = self._End(top.m_axis_tdata, top.m_axis_tvalid, top.m_axis_tready)


def run_stream(dut, inputs, n_out, mode="none", seed=0, max_cycles=100_000, vcd=None, delay=0,
               frames_at=None, voided=None):
    """Drive ``inputs`` into ``dut.i`` and collect ``n_out`` outputs of ``dut.o`` in Amaranth's
    simulator, with the stall mode's random source pauses and sink back-pressure. ``dut`` may
    be an :class:`AxisPorts` view of an AXI4-Stream top.

    The source starts ``delay`` cycles after reset. Returns ``(outputs, t_in, t_out)``:
    payloads and the cycles of the transfers.

    ``frames_at``: for voxel streams, the bit of ``marker`` in the output payload (``error``
    and ``last`` follow it). ``n_out`` then counts frames, and the beats an error beat voids
    (those of its frame before it) are dropped; their number per error frame is appended to
    the list ``voided`` if given.
    """
    p_idle, p_block = _STALL[mode]
    rng = random.Random(seed)
    outs, t_in, t_out = [], [], []
    tracker = FrameTracker()

    # Payloads as plain bits (a layout's view casts to its signal).
    i_payload, o_payload = Value.cast(dut.i.payload), Value.cast(dut.o.payload)

    async def bench(ctx):
        sent, holding = 0, False
        for cycle in range(max_cycles):
            if not holding:
                if cycle >= delay and sent < len(inputs) and rng.random() >= p_idle:
                    ctx.set(i_payload, inputs[sent])
                    ctx.set(dut.i.valid, 1)
                    holding = True
                else:
                    ctx.set(dut.i.valid, 0)
            ready = rng.random() >= p_block
            ctx.set(dut.o.ready, ready)
            if holding and ctx.get(dut.i.ready):
                t_in.append(cycle)
                sent += 1
                holding = False
            if ready and ctx.get(dut.o.valid):
                outs.append(ctx.get(o_payload))
                t_out.append(cycle)
                if frames_at is not None:
                    flags = outs[-1] >> frames_at
                    tracker.beat((outs, t_out), flags & 4, flags & 3 == 3)
            await ctx.tick()
            if (len(outs) if frames_at is None else tracker.frames) == n_out:
                if voided is not None:
                    voided.extend(tracker.void)
                return
        raise AssertionError(f"timeout: {len(outs)} of {n_out} outputs")

    sim = Simulator(dut.top if isinstance(dut, AxisPorts) else dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    return outs, t_in, t_out
