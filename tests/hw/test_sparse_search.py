"""Each site search on its own (with the frame store that feeds it) in Amaranth's simulator:
the records equal the golden kernel maps, under back-pressure on the records."""

import random

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from golden.sparse import sort_frame, sparse_layer_rows
from hw.sparse.layouts import KINDS, voxel_in_layout
from hw.sparse.search_resample import DownSearch, UpSearch
from hw.sparse.search_ssc import SscSearch
from hw.sparse.store import FrameStore
from tests.golden.test_sparse import random_frame

B, CIN, NMAX = 4, 2, 48


class SearchBench(wiring.Component):
    """A frame store and one search, wired as in :class:`hw.sparse.SparseLayer`; the frame
    ends when the search's last record is taken."""

    def __init__(self, kind, shift=(0, 0, 0)):
        self.kind = kind
        self.store = FrameStore(kind, CIN, B, NMAX, 1)
        self.search = (SscSearch(B, NMAX, shift) if kind == "ssc" else
                       {"down": DownSearch, "up": UpSearch}[kind](B, NMAX))
        super().__init__({"i": wiring.In(self.store.i.signature.flip()),
                          "records": wiring.Out(self.search.records.signature)})

    def elaborate(self, platform):
        m = Module()
        store, search = self.store, self.search
        m.submodules.store, m.submodules.search = store, search
        wiring.connect(m, wiring.flipped(self.i), store.i)
        wiring.connect(m, search.records, wiring.flipped(self.records))
        m.d.comb += [store.frame_end.eq(self.records.valid & self.records.ready &
                                        self.records.payload.last),
                     store.end.ready.eq(1), store.feats[0].en.eq(0),
                     search.complete.eq(store.complete), search.reset.eq(store.frame_done)]
        if self.kind == "ssc":
            for r in range(10):
                wiring.connect(m, search.keys[r], store.keys0[r])
        else:
            for e in range(4):
                wiring.connect(m, search.parity[e], store.parity[e])
                m.d.comb += search.parity_counts[e].eq(store.parity_counts[e])
        if self.kind == "up":
            for e in range(4):
                wiring.connect(m, search.coarse[e], store.keys0[e])
            wiring.connect(m, search.fine, store.keys1[0])
            m.d.comb += [search.n_coarse.eq(store.counts[0]), search.n_fine.eq(store.counts[1])]
        else:
            m.d.comb += search.count.eq(store.counts[0])
        return m


def _beats(layout, coords):
    return [layout.const({"features": 0, "x": int(c[0]), "y": int(c[1]), "z": int(c[2]),
                          "marker": 0, "last": int(i == len(coords) - 1)})
            for i, c in enumerate(coords)]


def _expected(kind, frame, shift=(0, 0, 0)):
    """``(key, mask, {slot: input index})`` of each output site, from the golden map."""
    out_coords, rows = sparse_layer_rows(kind, frame, B, shift)
    want = []
    for u, c in enumerate(out_coords):
        mine = rows[rows[:, 0] == u]
        key = int(c[0]) | int(c[1]) << B | int(c[2]) << 2 * B
        want.append((key, sum(1 << int(k) for k in mine[:, 2]),
                     {int(k): int(j) for _, j, k in mine}))
    return want


def _run(kind, frame, seed, shift=(0, 0, 0)):
    bench = SearchBench(kind, shift)
    layout = voxel_in_layout(CIN, B)
    parts = [frame[0]] if kind != "up" else [frame[0], frame[2]]
    inputs = [b for part in parts for b in _beats(layout, part)]
    got = []
    rng = random.Random(seed)
    n_out = len(_expected(kind, frame, shift))

    async def tb(ctx):
        sent = 0
        for _ in range(20_000):
            ctx.set(bench.i.valid, sent < len(inputs))
            if sent < len(inputs):
                ctx.set(bench.i.payload, inputs[sent])
            ready = rng.random() < 0.7
            ctx.set(bench.records.ready, ready)
            if sent < len(inputs) and ctx.get(bench.i.ready):
                sent += 1
            if ready and ctx.get(bench.records.valid):
                rec = ctx.get(bench.records.payload)
                got.append((rec.key, rec.mask,
                            {k: rec.index[k] for k in range(KINDS[kind]) if rec.mask >> k & 1},
                            rec.last))
            await ctx.tick()
            if len(got) == n_out:
                return
        raise AssertionError(f"timeout: {len(got)} of {n_out} records")

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


def _frames(kind, rng):
    frames = []
    for n, extent in ((1, 3), (12, 3), (NMAX, 5), (30, 16)):
        coords = random_frame(rng, n, extent, bits=B)
        coords, feats = sort_frame(coords, np.zeros((len(coords), CIN), np.uint8), B)
        if kind != "up":
            frames.append((coords, feats))
            continue
        # Coarse sites: the parents of most fine sites (some fine sites keep none).
        parents = np.unique(coords >> 1, axis=0)[::2] if len(coords) > 1 else coords >> 1
        coarse, cfeats = sort_frame(parents, np.zeros((len(parents), CIN), np.uint8), B)
        frames.append((coarse, cfeats, coords))
    return frames


@pytest.mark.parametrize("kind", ["ssc", "down", "up"])
def test_search_records_equal_the_golden_kernel_map(kind):
    rng = np.random.default_rng({"ssc": 1, "down": 2, "up": 3}[kind])
    for i, frame in enumerate(_frames(kind, rng)):
        want = _expected(kind, frame)
        got = _run(kind, frame, seed=i)
        assert [g[:3] for g in got] == want
        assert [g[3] for g in got] == [0] * (len(want) - 1) + [1]


@pytest.mark.parametrize("shift", [(-1, -1, -1), (1, 1, 1), (1, -1, 1), (-1, 1, 0)])
def test_sfsc_search_finds_the_shifted_window(shift):
    """SFSC's shifted windows (corners of the 3x3x3 window and one face-edge shift): the
    records equal the golden shifted kernel map, the frame's borders included (extent 16 at
    4-bit coordinates)."""
    rng = np.random.default_rng(7)
    for i, frame in enumerate(_frames("ssc", rng)):
        want = _expected("ssc", frame, shift)
        got = _run("ssc", frame, seed=i, shift=shift)
        assert [g[:3] for g in got] == want
        assert [g[3] for g in got] == [0] * (len(want) - 1) + [1]


def test_pack_follows_the_layout():
    """``pack`` places each field where the layout says (checked against the layout's own
    constants) and refuses a field the layout does not have."""
    from amaranth import Const, Value
    from amaranth.sim import Simulator as Sim

    from hw.sparse.layouts import pack, voxel_out_layout

    layout = voxel_out_layout(6, 4)
    value = pack(layout, vector=Const(0b101101, 6), x=Const(3, 2), z=9, error=1, last=1)
    want = layout.const({"vector": 0b101101, "x": 3, "y": 0, "z": 9, "marker": 0, "error": 1,
                         "last": 1}).as_value().value
    sim = Sim(Module())
    got = []

    async def tb(ctx):
        got.append(ctx.get(Value.cast(value)))

    sim.add_testbench(tb)
    sim.run()
    assert got == [want]
    with pytest.raises(ValueError, match="colour not in the layout"):
        pack(layout, colour=1)
