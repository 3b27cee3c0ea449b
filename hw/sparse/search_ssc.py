"""The neighbour search of a submanifold 3x3x3 layer: nine row engines over sorted keys."""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import index_bits, record_layout
from .ports import read_port, walker

__all__ = ["SscSearch"]


class SscSearch(wiring.Component):
    """Sort/merge intersection: adding an offset to every key keeps the sorted order, so for
    each of the nine rows ``(dy, dz)`` a *row engine* walks the sorted keys with its own
    pointer, never backwards, keeping a window of the next three keys. For voxel ``(x, y, z)``
    it drops keys below ``(x - 1, y + dy, z + dz)``; the window then holds the row's neighbours
    at ``dx = -1, 0, +1`` if they exist. Each row engine reads its own copy of the keys (and
    a tenth copy gives the voxel searched); over a frame each pointer moves at most ``N``
    times. A voxel is searched once it is stored and either a later one is or the frame is
    complete, so that its record knows whether it is the frame's last.

    ``shift = (sx, sy, sz)`` (each -1, 0 or +1) moves the window (SFSC,
    :class:`golden.bscnet.SFSC`): slot ``k`` then finds ``(x, y, z) + shift + offset_k``; the
    order argument holds for any fixed offset, so only the row keys and bounds change.
    Neighbours outside ``[0, 2^B)`` are absent. ``shift=None``: the shift is an input
    (``shift_in``, set before a frame and held through it), so one design serves every window
    of an SFSC layer.

    Members
    -------
    keys : In(read_port(max_voxels, 3 * coord_bits)).array(10)
        Rows ``r = (dy + 1) + 3 (dz + 1)`` at 0..8, the voxel searched at 9.
    count, complete, reset : In(range(max_voxels + 1)), In(1), In(1)
        Keys readable, no more to come, the frame's end.
    records : Out(stream.Signature(record_layout(27, ...)))
        One a voxel, in the frame's order; slot ``k = (dx+1) + 3(dy+1) + 9(dz+1)``.
    searching : Out(1)
        High in each cycle in which the search works (not waiting for ``records``).
    shift_in : In(signed(2)).array(3)
        ``(sx, sy, sz)`` when ``shift`` is None.
    """

    def __init__(self, coord_bits, max_voxels, shift=(0, 0, 0)):
        self.coord_bits, self.max_voxels = coord_bits, max_voxels
        self.shift = None if shift is None else tuple(int(v) for v in shift)
        super().__init__({
            "keys": In(read_port(max_voxels, 3 * coord_bits)).array(10),
            "count": In(range(max_voxels + 1)), "complete": In(1), "reset": In(1),
            "records": Out(stream.Signature(record_layout(27, coord_bits, max_voxels))),
            "searching": Out(1),
            **({"shift_in": In(signed(2)).array(3)} if shift is None else {})})

    def elaborate(self, platform):
        m = Module()
        B, N = self.coord_bits, self.max_voxels
        KW, IW = 3 * B, index_bits(N)
        n, complete, reset, rec = self.count, self.complete, self.reset, self.records
        advance_voxel = Signal()
        ci, centre, centre_ok = walker(m, self.keys[9], advance_voxel, reset, "centre", N)
        cx, cy, cz = centre[:B], centre[B:2 * B], centre[2 * B:]
        search_active = (ci < n) & (complete | (ci + 1 < n)) & centre_ok
        dones, masks, idxs = [], [], []
        lim = (1 << B) - 1
        sx, sy, sz = self.shift if self.shift is not None else tuple(self.shift_in)

        def within(c, o):
            """``c + o`` inside ``[0, lim]`` (``o`` a constant or a signed value)."""
            if isinstance(o, int):
                return (c >= -o) if o < 0 else (c <= lim - o) if o > 0 else 1
            t = Signal(signed(B + 3))
            m.d.comb += t.eq(c + o)
            return (t >= 0) & (t <= lim)

        def moved(c, o):
            return (c - (-o)) if isinstance(o, int) and o < 0 else (c + o)

        for r in range(9):
            oy, oz = r % 3 - 1 + sy, r // 3 - 1 + sz
            rp = self.keys[r]
            p = Signal(range(N + 1), name=f"r{r}_p")       # index of window slot 0
            rd = Signal(range(N + 1), name=f"r{r}_rd")     # next index to read
            inflight = Signal(name=f"r{r}_inflight")
            win = [Signal(KW, name=f"r{r}_w{k}") for k in range(3)]
            cnt = Signal(range(4), name=f"r{r}_cnt")
            done = Signal(name=f"r{r}_done")
            mask = Signal(3, name=f"r{r}_mask")
            ny = Signal(B + 1, name=f"r{r}_y")
            nz = Signal(B + 1, name=f"r{r}_z")
            m.d.comb += [ny.eq(moved(cy, oy)), nz.eq(moved(cz, oz))]
            row_ok = Signal(name=f"r{r}_ok")
            m.d.comb += row_ok.eq(within(cy, oy) & within(cz, oz))
            lower = Signal(KW, name=f"r{r}_lower")
            lx = sx - 1                                    # the row's first x offset
            m.d.comb += lower.eq(Cat(Mux(within(cx, lx), moved(cx, lx), 0)[:B], ny[:B], nz[:B]))
            row_key = Cat(ny[:B], nz[:B])
            pop = Signal(name=f"r{r}_pop")
            issue = Signal(name=f"r{r}_issue")
            space = (cnt - pop + inflight) < 3
            m.d.comb += [issue.eq((rd < n) & space), rp.addr.eq(rd), rp.en.eq(1)]
            with m.If(reset):
                m.d.sync += [p.eq(0), rd.eq(0), inflight.eq(0), cnt.eq(0)]
            with m.Else():
                m.d.sync += [inflight.eq(issue), rd.eq(rd + issue)]
                shifted = [Mux(pop, win[k + 1] if k < 2 else win[2], win[k]) for k in range(3)]
                count_after_pop = cnt - pop
                for k in range(3):
                    with m.If(inflight & (count_after_pop == k)):
                        m.d.sync += win[k].eq(rp.data)
                    with m.Else():
                        m.d.sync += win[k].eq(shifted[k])
                m.d.sync += [cnt.eq(count_after_pop + inflight), p.eq(p + pop)]
            settled = (cnt == 3) | (complete & (rd == n) & ~inflight)
            m.d.comb += pop.eq(search_active & ~done & (cnt != 0) & (win[0] < lower) & row_ok)
            finish = Signal(name=f"r{r}_finish")
            m.d.comb += finish.eq(search_active & ~done & ~pop & (settled | ~row_ok))
            hits = []
            for k in range(3):
                xs = win[k][:B]
                hit = Signal(3, name=f"r{r}_hit{k}")   # one-hot dx+1
                present = (cnt > k) & (win[k][B:] == row_key) & row_ok
                m.d.comb += hit.eq(Cat(*(present & within(cx, sx + d) &
                                         (xs == moved(cx, sx + d)) for d in (-1, 0, 1))))
                hits.append(hit)
            found = hits[0] | hits[1] | hits[2]
            nbr = [Signal(IW, name=f"r{r}_j{d}") for d in range(3)]
            for d in range(3):
                m.d.comb += nbr[d].eq(Mux(hits[0][d], p, Mux(hits[1][d], p + 1, p + 2)))
            with m.If(advance_voxel | reset):
                m.d.sync += done.eq(0)
            with m.Elif(finish):
                m.d.sync += [done.eq(1), mask.eq(found)]
            kept = [Signal(IW, name=f"r{r}_nbr{d}") for d in range(3)]
            with m.If(finish):
                m.d.sync += [kept[d].eq(nbr[d]) for d in range(3)]
            dones.append(done)
            masks.append(mask)
            idxs.extend(kept)
        all_done = dones[0]
        for d in dones[1:]:
            all_done = all_done & d
        m.d.comb += [
            rec.valid.eq(search_active & all_done),
            rec.payload.key.eq(centre), rec.payload.last.eq(ci == n - 1),
            rec.payload.mask.eq(Cat(*masks)), rec.payload.index.eq(Cat(*idxs)),
            advance_voxel.eq(rec.valid & rec.ready),
            self.searching.eq(search_active & ~(all_done & ~rec.ready)),
        ]
        return m
