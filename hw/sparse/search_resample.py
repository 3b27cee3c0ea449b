"""The site searches of the down-sampling (kernel 2, stride 2) and up-sampling (transposed)
layers: four parity engines each."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import index_bits, parent_key, record_layout, select
from .ports import read_port, walker

__all__ = ["DownSearch", "UpSearch", "PAIR_DEPTH"]

PAIR_DEPTH = 16
"""Items each parity engine may run ahead of the merge."""


class DownSearch(wiring.Component):
    """For fixed parities ``(y & 1, z & 1)`` the parents ``floor(x / 2)`` of the sorted fine
    sites do not decrease. Four *parity engines* each scan their own list of sites once and
    pair the two children ``x = 2X, 2X + 1`` of a parent; a four-way merge takes the smallest
    parent at the heads and emits it with up to eight children (slot ``px + 2 py + 4 pz``).
    The engines scan in parallel, so the search needs about a cycle per parent of the largest
    parity class.

    Members
    -------
    parity : In(read_port(max_voxels, 3 * coord_bits + index bits)).array(4)
        ``Cat(key, index)`` of the sites of parity ``e = (y & 1) + 2 (z & 1)``.
    parity_counts : In(range(max_voxels + 1)).array(4)
    count, complete, reset : In(range(max_voxels + 1)), In(1), In(1)
    records : Out(stream.Signature(record_layout(8, ...)))
        One a parent, in key order.
    searching : Out(1)
    """

    def __init__(self, coord_bits, max_voxels):
        self.coord_bits, self.max_voxels = coord_bits, max_voxels
        entry = 3 * coord_bits + index_bits(max_voxels)
        n_range = range(max_voxels + 1)
        super().__init__({
            "parity": In(read_port(max_voxels, entry)).array(4),
            "parity_counts": In(n_range).array(4),
            "count": In(n_range), "complete": In(1), "reset": In(1),
            "records": Out(stream.Signature(record_layout(8, coord_bits, max_voxels))),
            "searching": Out(1)})

    def elaborate(self, platform):
        m = Module()
        B, N = self.coord_bits, self.max_voxels
        KW, IW = 3 * B, index_bits(N)
        rec = self.records
        # A parent with its children of one parity class (x even and odd).
        pair = data.StructLayout({"key": KW, "mask": 2, "index": data.ArrayLayout(IW, 2)})
        heads, head_ok, exhausted, pops = [], [], [], []
        for e in range(4):
            ne = self.parity_counts[e]
            rp = self.parity[e]
            rd = Signal(range(N + 1), name=f"d{e}_rd")
            inflight = Signal(name=f"d{e}_inflight")
            q = fifo.SyncFIFO(width=pair.size, depth=PAIR_DEPTH)
            m.submodules[f"pairs{e}"] = q
            issue = (rd < ne) & (q.level + inflight <= PAIR_DEPTH - 2)
            m.d.comb += [rp.addr.eq(rd), rp.en.eq(1)]
            with m.If(self.reset):
                m.d.sync += [rd.eq(0), inflight.eq(0)]
            with m.Else():
                m.d.sync += [rd.eq(rd + issue), inflight.eq(issue)]
            aidx = rp.data[KW:]
            parent = parent_key(rp.data[:KW], B)
            px = rp.data[0]
            # Pending item: a parent with its first child, waiting for a possible second.
            pv = Signal(name=f"d{e}_pv")
            pend = Signal(pair, name=f"d{e}_pend")
            new_mask = Mux(px, 2, 1)
            scan_done = self.complete & (rd == ne) & ~inflight
            combine = inflight & pv & (pend.key == parent)
            push = Signal(pair, name=f"d{e}_push")
            m.d.comb += push.eq(pend)
            with m.If(combine):
                m.d.comb += [q.w_en.eq(1), push.mask.eq(pend.mask | new_mask),
                             push.index[0].eq(Mux(px, pend.index[0], aidx)),
                             push.index[1].eq(Mux(px, aidx, pend.index[1]))]
                m.d.sync += pv.eq(0)
            with m.Elif(inflight):
                m.d.comb += q.w_en.eq(pv)
                m.d.sync += [pv.eq(1), pend.key.eq(parent), pend.mask.eq(new_mask),
                             pend.index[0].eq(Mux(px, 0, aidx)),
                             pend.index[1].eq(Mux(px, aidx, 0))]
            with m.Elif(scan_done & pv & q.w_rdy):
                m.d.comb += q.w_en.eq(1)
                m.d.sync += pv.eq(0)
            with m.If(self.reset):
                m.d.sync += pv.eq(0)
            m.d.comb += q.w_data.eq(push)
            heads.append(pair(q.r_data))
            head_ok.append(q.r_rdy)
            exhausted.append(scan_done & ~pv)
            pops.append(q.r_en)
        # Four-way merge: the smallest parent at the heads, with its children from every engine.
        best = Signal(KW)
        cand = Const((1 << KW) - 1, KW)
        for e in range(4):
            cand = Mux(head_ok[e] & (heads[e].key < cand), heads[e].key, cand)
        m.d.comb += best.eq(cand)
        sel = [head_ok[e] & (heads[e].key == best) for e in range(4)]
        mask8 = Cat(*[Mux(sel[e], heads[e].mask, 0) for e in range(4)])
        idx8 = Cat(*[heads[e].index[j] for e in range(4) for j in range(2)])
        all_ready = Const(1)
        any_head = Const(0)
        for e in range(4):
            all_ready = all_ready & (head_ok[e] | exhausted[e])
            any_head = any_head | head_ok[e]
        can = all_ready & any_head
        finished = all_ready & ~any_head       # implies a complete frame
        held_v = Signal()
        held = Signal(rec.payload.shape())
        fire = can & (~held_v | rec.ready)
        for e in range(4):
            m.d.comb += pops[e].eq(fire & sel[e])
        with m.If(fire):
            m.d.sync += [held.key.eq(best), held.last.eq(0), held.mask.eq(mask8),
                         held.index.eq(idx8), held_v.eq(1)]
        with m.Elif(finished & rec.ready):
            m.d.sync += held_v.eq(0)
        with m.If(self.reset):
            m.d.sync += held_v.eq(0)
        m.d.comb += [
            rec.valid.eq(held_v & (can | finished)),
            rec.payload.eq(held), rec.payload.last.eq(finished),
            self.searching.eq((self.count != 0) & ~(finished & ~held_v) &
                              ~(held_v & (can | finished) & ~rec.ready)),
        ]
        return m


class UpSearch(wiring.Component):
    """Each fine site receives its parent ``floor(f / 2)`` at slot = its parity bits. Four
    lanes, one per parity class ``(y & 1, z & 1)`` of the fine sites, walk their fine list
    together with their own copy of the coarse keys (both pointers only move forward) and
    queue, per fine site, whether its parent exists and where; the fine sites in order take
    the answer at the head of their parity's queue. A fine site whose parent is absent gets a
    record without slots. Each lane needs at most ``N_coarse + N_fine(parity)`` steps.

    Members
    -------
    parity : In(read_port(max_voxels, 3 * coord_bits)).array(4)
        The fine sites of each parity.
    coarse : In(read_port(max_voxels, 3 * coord_bits)).array(4)
        A copy of the coarse keys for each lane.
    fine : In(read_port(max_voxels, 3 * coord_bits))
        The fine sites in order.
    parity_counts : In(range(max_voxels + 1)).array(4)
    n_coarse, n_fine, complete, reset : In(...)
    records : Out(stream.Signature(record_layout(8, ...)))
        One a fine site, in the fine sites' order.
    searching : Out(1)
    """

    def __init__(self, coord_bits, max_voxels):
        self.coord_bits, self.max_voxels = coord_bits, max_voxels
        kw, n_range = 3 * coord_bits, range(max_voxels + 1)
        super().__init__({
            "parity": In(read_port(max_voxels, kw)).array(4),
            "coarse": In(read_port(max_voxels, kw)).array(4),
            "fine": In(read_port(max_voxels, kw)),
            "parity_counts": In(n_range).array(4),
            "n_coarse": In(n_range), "n_fine": In(n_range), "complete": In(1), "reset": In(1),
            "records": Out(stream.Signature(record_layout(8, coord_bits, max_voxels))),
            "searching": Out(1)})

    def elaborate(self, platform):
        m = Module()
        B, N = self.coord_bits, self.max_voxels
        IW = index_bits(N)
        rec, reset = self.records, self.reset
        heads, head_ok, pops = [], [], []
        for e in range(4):
            ne = self.parity_counts[e]
            step_f, step_c = Signal(name=f"u{e}_stepf"), Signal(name=f"u{e}_stepc")
            fp, fdata, f_ok = walker(m, self.parity[e], step_f, reset, f"u{e}_f", N)
            cp, cdata, c_ok = walker(m, self.coarse[e], step_c, reset, f"u{e}_c", N)
            q = fifo.SyncFIFO(width=1 + IW, depth=PAIR_DEPTH)
            m.submodules[f"parents{e}"] = q
            parent = parent_key(fdata, B)
            ready = (fp < ne) & f_ok & c_ok
            present = cp < self.n_coarse
            behind = present & (cdata < parent)
            m.d.comb += [step_c.eq(ready & behind), step_f.eq(ready & ~behind & q.w_rdy),
                         q.w_en.eq(step_f),
                         q.w_data.eq(Cat(present & (cdata == parent), cp[:IW]))]
            heads.append(q.r_data)
            head_ok.append(q.r_rdy)
            pops.append(q.r_en)
        # The fine sites in order: each takes the answer at the head of its parity's queue.
        emit = Signal()
        n_fine = self.n_fine
        fi, fine, fine_ok = walker(m, self.fine, emit & rec.ready, reset, "fine", N)
        which = Cat(fine[B], fine[2 * B])
        slot = Cat(fine[0], fine[B], fine[2 * B])
        head, ok = select(heads, which), select(head_ok, which)
        active = Signal()
        m.d.comb += [active.eq((fi < n_fine) & (self.complete | (fi + 1 < n_fine)) & fine_ok),
                     emit.eq(active & ok)]
        for e in range(4):
            m.d.comb += pops[e].eq(emit & rec.ready & (which == e))
        m.d.comb += [
            rec.valid.eq(emit),
            rec.payload.key.eq(fine), rec.payload.last.eq(fi == n_fine - 1),
            rec.payload.mask.eq(Cat(*[head[0] & (slot == j) for j in range(8)])),
            rec.payload.index.eq(Cat(*[head[1:]] * 8)),
            self.searching.eq(active & ~(emit & ~rec.ready)),
        ]
        return m
