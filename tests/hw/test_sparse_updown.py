"""Down- and up-sampling layers (and SSC with sums out) in Amaranth's simulator: bit-exact
against golden on edge cases and random frames, four stall modes, bits and sums outputs."""

import numpy as np
import pytest
from amaranth import Value
from amaranth.sim import Simulator

from golden.sparse import downsample_map, sort_frame
from hw.sparse import ERROR_TOO_MANY, ERROR_UNSORTED, SparseLayer, sum_width
from quant.errors import BnnforgeError
from quant.layout import Folding
from sim.voxels import (error_beats, frame_beats, in_payloads, layer_beats, out_flags_at,
                        out_payloads)
from tests.golden.test_sparse import random_frame
from tests.helpers import STALL_MODES, run_stream

B, CIN, COUT, NMAX = 4, 8, 6, 40


def _sorted(rng, coords, cin=CIN):
    if len(coords) == 0:
        return np.zeros((0, 3), np.int64), np.zeros((0, cin), np.uint8)
    return sort_frame(coords, rng.integers(0, 2, (len(coords), cin)), B)


def down_frames(rng):
    lim = (1 << B) - 1
    cube2 = np.array([(x, y, z) for z in (6, 7) for y in (6, 7) for x in (6, 7)])
    cube4 = np.array([(x, y, z) for z in range(4) for y in range(4) for x in range(1, 5)])
    limits = np.array([[0, 0, 0], [lim, 0, 0], [0, lim, 0], [lim, lim, lim], [lim - 1, lim, lim],
                       [0, lim, lim], [lim, lim - 1, lim - 1], [1, 0, 0]])
    lonely = np.array([[2, 2, 2], [9, 9, 9], [2, 9, 13]])
    frames = [np.zeros((0, 3)), np.array([[3, 4, 5]]), cube2, cube4[:NMAX], limits, lonely,
              random_frame(rng, NMAX, 9, bits=B)]
    return [_sorted(rng, c) for c in frames]


def up_frames(rng):
    out = []
    for fine, _ in down_frames(rng):
        coarse, _ = downsample_map(fine)
        out.append((coarse, rng.integers(0, 2, (len(coarse), CIN)), fine))
    # Fine sites whose parents are missing receive nothing; an empty coarse part.
    fine, _ = _sorted(rng, np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [9, 8, 7]]))
    coarse, cf = _sorted(rng, np.array([[1, 1, 1], [4, 4, 3]]))
    out += [(coarse, cf, fine), (np.zeros((0, 3)), np.zeros((0, CIN)), fine)]
    return out


def _run(dut, kind, frames, w, t, mode, cin=CIN):
    sw = None if t is not None else dut.sum_width
    data, framing, want, want_framing = layer_beats(kind, frames, w, t, B, cin, sw)
    ow = dut.out_width
    inputs = in_payloads(data, framing, cin, B)
    expected = out_payloads(want, want_framing, ow, B)
    outs, _, _ = run_stream(dut, inputs, len(expected), mode, seed=3, max_cycles=100_000)
    return outs, expected


@pytest.mark.parametrize("mode", STALL_MODES)
@pytest.mark.parametrize("kind", ["down", "up"])
def test_bits_bit_exact(kind, mode):
    rng = np.random.default_rng(11)
    w = rng.integers(0, 2, (8, COUT, CIN))
    t = rng.integers(-10, 10, COUT)
    frames = down_frames(rng) if kind == "down" else up_frames(rng)
    dut = SparseLayer(kind, w, t, NMAX, B, Folding(3, 4))
    outs, expected = _run(dut, kind, frames, w, t, mode)
    assert outs == expected


@pytest.mark.parametrize("kind,folding", [("ssc", Folding(2, 4)), ("down", Folding(6, 8)),
                                          ("up", Folding(1, 2))])
def test_sums_bit_exact(kind, folding):
    rng = np.random.default_rng(12)
    w = rng.integers(0, 2, (27 if kind == "ssc" else 8, COUT, CIN))
    frames = up_frames(rng) if kind == "up" else down_frames(rng)
    dut = SparseLayer(kind, w, None, NMAX, B, folding, output="sums")
    assert dut.sum_width == sum_width(kind, CIN) == {"ssc": 9, "down": 8, "up": 5}[kind]
    outs, expected = _run(dut, kind, frames, w, None, "both")
    assert outs == expected


def test_down_search_keeps_pace():
    """A 40-site frame with one pair a site and one fold a pair: the search runs while the
    frame streams in. The first parent is complete once the planes z = 0 and 1 are stored;
    from then on the compute takes a cycle a pair (plus the pipeline), and outputs leave
    before the frame's last site has arrived."""
    rng = np.random.default_rng(13)
    w = rng.integers(0, 2, (8, COUT, CIN))
    frame = _sorted(rng, random_frame(rng, NMAX, 9, bits=B))
    dut = SparseLayer("down", w, None, NMAX, B, Folding(COUT, CIN), output="sums")
    data, framing, want, _ = layer_beats("down", [frame], w, None, B, CIN, dut.sum_width)
    inputs = in_payloads(data, framing, CIN, B)
    _, t_in, t_out = run_stream(dut, inputs, len(want), "none")
    first_planes = int((frame[0][:, 2] < 2).sum())
    assert 0 < first_planes < NMAX
    assert t_out[0] < t_in[-1]
    assert t_out[-1] - t_in[first_planes - 1] <= NMAX + 8


def test_up_limits_error_beats():
    """A fine part over the limit, then an unsorted coarse part: one error beat each."""
    rng = np.random.default_rng(14)
    w = rng.integers(0, 2, (8, COUT, CIN))
    t = rng.integers(-4, 4, COUT)
    dut = SparseLayer("up", w, t, 4, B, Folding(6, 8))
    big = np.array([[x, 0, 0] for x in range(5)])
    c1, f1 = _sorted(rng, np.array([[0, 0, 0], [1, 0, 0]]))
    frames_in = [(c1, f1, big), (np.array([[2, 0, 0], [1, 0, 0]]), f1, big[:2])]
    from sim.voxels import frame_beats
    parts = []
    for c, f, fine in frames_in:
        parts += [(c, f), (fine, np.zeros((len(fine), CIN), np.uint8))]
    data, framing = frame_beats(parts, CIN, B)
    inputs = in_payloads(data, framing, CIN, B)
    outs, _, _ = run_stream(dut, inputs, 2, "both", seed=5, frames_at=out_flags_at(COUT, B))
    flags = out_payloads([0], [(1, 3)], COUT, B)[0]
    assert outs == [error_beats(ERROR_TOO_MANY, COUT)[0][0] | flags,
                    error_beats(ERROR_UNSORTED, COUT)[0][0] | flags]


@pytest.mark.parametrize("kind", ["ssc", "down"])
def test_error_found_late_voids_the_outputs_already_sent(kind):
    """A frame that turns out unsorted at its last voxel: outputs of its valid prefix have
    already left (the search overlaps the store), the error beat ends the frame and voids them;
    the next frame is bit-exact."""
    rng = np.random.default_rng(15)
    slots = 27 if kind == "ssc" else 8
    w = rng.integers(0, 2, (slots, COUT, CIN))
    t = rng.integers(-4, 4, COUT)
    dut = SparseLayer(kind, w, t, NMAX, B, Folding(6, 8))
    good = _sorted(rng, random_frame(rng, NMAX - 1, 9, bits=B))
    bad = (np.concatenate([good[0], good[0][:1]]), np.concatenate([good[1], good[1][:1]]))
    data, framing, want, want_framing = layer_beats(kind, [good], w, t, B, CIN)
    bad_data, bad_framing = frame_beats([bad], CIN, B)
    inputs = in_payloads(bad_data + data, bad_framing + framing, CIN, B)
    voided = []
    outs, _, _ = run_stream(dut, inputs, 2, "none", frames_at=out_flags_at(COUT, B), voided=voided)
    flags = out_payloads([0], [(1, 3)], COUT, B)[0]
    assert voided[0] > 0
    assert outs[0] == error_beats(ERROR_UNSORTED, COUT)[0][0] | flags
    assert outs[1:] == out_payloads(want, want_framing, COUT, B)


def test_parameter_errors():
    w = np.zeros((8, 6, 8))
    with pytest.raises(BnnforgeError, match="^unknown sparse layer kind 'pool'; choose one of "
                                            "ssc, down, up, pointwise$"):
        SparseLayer("pool", w, np.zeros(6), 16, 4, Folding(1, 8))
    with pytest.raises(BnnforgeError, match=r"^down weights must be 8 x Cout x Cin, not "
                                            r"\(27, 6, 8\)$"):
        SparseLayer("down", np.zeros((27, 6, 8)), np.zeros(6), 16, 4, Folding(1, 8))
    with pytest.raises(BnnforgeError, match="^a layer that outputs sums takes no thresholds$"):
        SparseLayer("up", w, np.zeros(6), 16, 4, Folding(1, 8), output="sums")
    with pytest.raises(BnnforgeError, match="^output must be 'bits' or 'sums', not 'ints'$"):
        SparseLayer("up", w, None, 16, 4, Folding(1, 8), output="ints")
    with pytest.raises(BnnforgeError, match="^a up-sampling layer needs at least 2 coordinate "
                                            "bits, not 1$"):
        SparseLayer("up", w, None, 16, 1, Folding(1, 8), output="sums")


@pytest.mark.parametrize("kind,offsets,folding", [
    ("ssc", 2, Folding(3, 4)), ("ssc", 27, Folding(6, 8)), ("down", 3, Folding(2, 8)),
    ("up", 2, Folding(3, 4))])
def test_offsets_per_cycle_bit_exact(kind, offsets, folding):
    """Several kernel offsets a cycle: the same sums, in fewer cycles."""
    rng = np.random.default_rng(15)
    w = rng.integers(0, 2, (27 if kind == "ssc" else 8, COUT, CIN))
    frames = up_frames(rng) if kind == "up" else down_frames(rng)
    dut = SparseLayer(kind, w, None, NMAX, B, folding, output="sums", offsets=offsets)
    outs, expected = _run(dut, kind, frames, w, None, "both")
    assert outs == expected


def test_offsets_divide_the_compute_cycles():
    """A full 3x3x3 cube (27 sites, 343 pairs) at one fold a pair: the busy cycles are the
    groups of up to ``offsets`` present slots per site."""
    from golden.sparse import ssc_kernel_map

    rng = np.random.default_rng(16)
    cube = np.array([(x, y, z) for z in range(3) for y in range(3) for x in range(3)]) + 5
    frame = _sorted(rng, cube)
    kmap = ssc_kernel_map(frame[0], B)
    per_site = np.bincount(kmap[:, 0], minlength=27)
    w = rng.integers(0, 2, (27, COUT, CIN))
    for offsets in (1, 4):
        dut = SparseLayer("ssc", w, None, NMAX, B, Folding(COUT, CIN), output="sums",
                          offsets=offsets)
        data, framing, want, _ = layer_beats("ssc", [frame], w, None, B, CIN, dut.sum_width)
        inputs = in_payloads(data, framing, CIN, B)
        busy = []
        sim = Simulator(dut)
        sim.add_clock(1e-6)

        async def bench(ctx):
            sent, got = 0, 0
            ctx.set(dut.o.ready, 1)
            for _ in range(5000):
                if sent < len(inputs):
                    ctx.set(Value.cast(dut.i.payload), inputs[sent])
                    ctx.set(dut.i.valid, 1)
                else:
                    ctx.set(dut.i.valid, 0)
                fired = sent < len(inputs) and ctx.get(dut.i.ready)
                busy.append(ctx.get(dut.busy))
                got += ctx.get(dut.o.valid)
                sent += fired
                await ctx.tick()
                if got >= len(want):
                    break

        sim.add_testbench(bench)
        sim.run()
        assert sum(busy) == int(sum(-(-per_site // offsets)))
