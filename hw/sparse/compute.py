"""The compute stage of a sparse layer: gathers the inputs of each search record, XNOR-popcounts
them against the kernel slots' weights, accumulates signed sums and emits the output beats."""

from amaranth import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_to_int
from ..popcount import XnorPopcount, popcount_latency
from .layouts import pack, record_layout, voxel_out_layout
from .loader import weight_address, weight_depth
from .ports import read_port
from .store import end_layout

__all__ = ["SparseCompute", "output_stage"]


class SparseCompute(wiring.Component):
    """For each record's present slots (lowest first, ``offsets`` a cycle) and each fold, read
    the input sites' features, XNOR-popcount them against ``W_slot`` with ``offsets x PE``
    trees of SIMD lanes, accumulate the signed sums per output channel and emit them, or their
    thresholds, after the last slot: ``ceil(Cin/SIMD) * ceil(Cout/PE)`` cycles for each group
    of up to ``offsets`` present slots. A record without present slots (an up-sampled site
    without parent) still yields its output (sums 0).

    The output register also carries the frame ends the store asks for (``end``); the last
    output of a frame found bad becomes its error beat.

    Members
    -------
    records : In(stream.Signature(record_layout(...)))
    feats : In(ReadPort.Signature(...)).array(offsets)
        Read ports of the store's features.
    o : Out(stream.Signature(voxel_out_layout(out_width, coord_bits)))
    end : In(stream.Signature(end_layout(coord_bits)))
    reset, bad, error_code : In(1), In(1), In(coord_bits)
        The store's frame end, bad frame and its error code.
    frame_end : Out(1)
        A frame's last output beat is written to the output register in this cycle.
    busy : Out(1)
        High in each cycle in which a (pair, fold) enters the XNOR-popcount pipeline.
    w_addr, w_data, w_en, nf_last, sf_last : In(...)
        Only with ``weights`` None (loaded at run time, :class:`hw.sparse.loader.
        WeightLoader`): the weight memories' write port, and the folds of the layer loaded;
        output channels beyond ``(nf_last + 1) PE`` are 0.
    """

    def __init__(self, weights, thresholds, coord_bits, max_voxels, pe, simd, offsets,
                 out_width, sum_width, reg_every=1, family=None, shape=None):
        slots, cout, cin = weights.shape if weights is not None else shape
        self.weights, self.thresholds = weights, thresholds
        self.runtime_weights = weights is None
        self.slots, self.cin, self.cout, self.pe, self.simd = slots, cin, cout, pe, simd
        self.offsets, self.sum_width, self.reg_every, self.family = (offsets, sum_width,
                                                                       reg_every, family)
        self.coord_bits, self.max_voxels = coord_bits, max_voxels
        NF, SF = cout // pe, cin // simd
        self.depth = weight_depth(slots, NF, SF) if self.runtime_weights else slots * NF * SF
        super().__init__({
            "records": In(stream.Signature(record_layout(slots, coord_bits, max_voxels))),
            "feats": In(read_port(max_voxels, cin)).array(offsets),
            "o": Out(stream.Signature(voxel_out_layout(out_width, coord_bits))),
            "end": In(stream.Signature(end_layout(coord_bits))),
            "reset": In(1), "bad": In(1), "error_code": In(coord_bits), "frame_end": Out(1),
            "busy": Out(1),
            **({"w_addr": In(range(self.depth)), "w_data": In(simd), "w_en": In(pe),
                "nf_last": In(range(max(NF, 2))), "sf_last": In(range(max(SF, 2)))}
               if self.runtime_weights else {})})

    def _weight_memories(self, m):
        """One memory a PE row: word ``(slot * NF + nf) * SF + sf`` holds that slot's SIMD
        weights of output channel ``nf * PE + p`` at fold ``sf``; loaded at run time through
        ``w_*`` when the compute has no weights, at :func:`hw.sparse.loader.weight_address`."""
        S, PE, SIMD = self.slots, self.pe, self.simd
        NF, SF = self.cout // PE, self.cin // SIMD
        mems = []
        if self.runtime_weights:
            for p in range(PE):
                mem = memory.Memory(shape=SIMD, depth=self.depth, init=[])
                m.submodules[f"w{p}"] = mem
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(self.w_data),
                             wp.en.eq(self.w_en[p])]
                mems.append(mem)
            return mems
        for p in range(PE):
            words = []
            for k in range(S):
                for f in range(NF):
                    row = self.weights[k, f * PE + p]
                    words.extend(bits_to_int(row[j * SIMD:(j + 1) * SIMD]) for j in range(SF))
            mem = memory.Memory(shape=SIMD, depth=len(words), init=words)
            m.submodules[f"w{p}"] = mem
            mems.append(mem)
        return mems

    def elaborate(self, platform):
        m = Module()
        S, U = self.slots, self.offsets
        cout, PE, SIMD = self.cout, self.pe, self.simd
        NF, SF = cout // PE, self.cin // SIMD
        records, o = self.records, self.o
        en = Signal()
        pending = Signal()
        m.d.comb += en.eq(~pending)
        rec = Signal(records.payload.shape())
        rec_idx = Array(rec.index[k] for k in range(S))
        remaining = Signal(S)
        loaded = Signal()
        # The U lowest present slots: one-hot picks, their indices and valid flags.
        rems, picks, valids = [remaining], [], []
        for u in range(U):
            r = rems[-1]
            low = Signal(S, name=f"pick{u}_onehot")
            m.d.comb += low.eq(r & (~r + 1))
            k_u = Signal(range(S), name=f"pick{u}")
            for k in range(S):
                with m.If(low[k]):
                    m.d.comb += k_u.eq(k)
            rest = Signal(S, name=f"rest{u}")
            m.d.comb += rest.eq(r & ~low)
            picks.append(k_u)
            valids.append(r != 0)
            rems.append(rest)
        nf = Signal(range(max(NF, 2)))
        sf = Signal(range(max(SF, 2)))
        nf_end = nf == (self.nf_last if self.runtime_weights else NF - 1)
        sf_end = sf == (self.sf_last if self.runtime_weights else SF - 1)
        last_fold = nf_end & sf_end
        issue_c = Signal()
        m.d.comb += issue_c.eq(en & loaded)
        last_item = issue_c & (last_fold & (rems[-1] == 0) | (remaining == 0))
        real = issue_c & (remaining != 0)
        first_item = Signal()
        m.d.comb += records.ready.eq(en & (~loaded | last_item))
        with m.If(self.reset):
            m.d.sync += loaded.eq(0)
        with m.Elif(records.valid & records.ready):
            m.d.sync += [rec.eq(records.payload), remaining.eq(records.payload.mask),
                         loaded.eq(1), first_item.eq(1), nf.eq(0), sf.eq(0)]
        with m.Elif(last_item):
            m.d.sync += loaded.eq(0)
        with m.If(issue_c & ~last_item):
            m.d.sync += first_item.eq(0)
            if SF > 1:
                m.d.sync += sf.eq(Mux(sf_end, 0, sf + 1))
            with m.If(sf_end):
                if NF > 1:
                    m.d.sync += nf.eq(Mux(nf_end, 0, nf + 1))
                with m.If(nf_end):
                    m.d.sync += remaining.eq(rems[-1])
        m.d.comb += self.busy.eq(real)

        for u in range(U):
            m.d.comb += [self.feats[u].addr.eq(rec_idx[picks[u]]), self.feats[u].en.eq(en)]
        # What travels beside the operands through the popcount pipeline.
        ctrl_layout = data.StructLayout({
            "valid": 1, "first": 1, "last": 1, "real": 1, "nf": len(nf), "sf": len(sf),
            "key": len(rec.key), "frame_last": 1, "lanes": U})
        ctrl = Signal(ctrl_layout)
        with m.If(en):
            m.d.sync += [ctrl.valid.eq(issue_c), ctrl.first.eq(first_item & issue_c),
                         ctrl.last.eq(last_item), ctrl.real.eq(real), ctrl.nf.eq(nf),
                         ctrl.sf.eq(sf), ctrl.key.eq(rec.key), ctrl.frame_last.eq(rec.last)]
            for u in range(U):
                m.d.sync += ctrl.lanes[u].eq(issue_c & valids[u])
        wmems = self._weight_memories(m)
        trees = []          # trees[u][p]
        for u in range(U):
            row_trees = []
            word = self.feats[u].data
            fslice = word.word_select(ctrl.sf, SIMD) if SF > 1 else word
            for p in range(PE):
                wrp = wmems[p].read_port(transparent_for=())
                addr = (weight_address(picks[u], nf, sf) if self.runtime_weights else
                        (picks[u] * NF + nf) * SF + sf)
                m.d.comb += [wrp.addr.eq(addr), wrp.en.eq(en)]
                tree = XnorPopcount(SIMD, self.reg_every, self.family)
                m.submodules[f"tree{p}" if U == 1 else f"tree{u}_{p}"] = tree
                m.d.comb += [tree.a.eq(fslice), tree.w.eq(wrp.data), tree.en.eq(en)]
                row_trees.append(tree)
            trees.append(row_trees)
        chain = [ctrl]
        for stage in range(popcount_latency(SIMD, self.reg_every, self.family)):
            nxt = Signal(ctrl_layout, name=f"ctrl{stage + 1}")
            with m.If(en):
                m.d.sync += nxt.eq(chain[-1])
            chain.append(nxt)
        c = chain[-1]

        yw = self.sum_width
        acc = [Signal(signed(yw), name=f"y{ch}") for ch in range(cout)]
        nxt_acc = []
        for ch in range(cout):
            f, p = divmod(ch, PE)
            contrib = Signal(signed(yw), name=f"c{ch}")
            terms = []
            for u in range(U):
                hit = c.lanes[u] & (c.nf == f) if NF > 1 else c.lanes[u]
                terms.append(Mux(hit, trees[u][p].count * 2 - SIMD, 0))
            m.d.comb += contrib.eq(sum(terms))
            y_next = Signal(signed(yw), name=f"yn{ch}")
            m.d.comb += y_next.eq(Mux(c.first, 0, acc[ch]) + contrib)
            with m.If(en & c.valid):
                m.d.sync += acc[ch].eq(y_next)
            if self.runtime_weights and NF > 1:
                y_next = Mux(f <= self.nf_last, y_next, 0)
            nxt_acc.append(y_next)
        if self.thresholds is not None:
            vector = [y >= int(t) for y, t in zip(nxt_acc, self.thresholds)]
        else:
            vector = nxt_acc
        output_stage(m, self, pending, c.valid, c.last, c.frame_last, c.key, Cat(*vector))
        return m


def output_stage(m, comp, pending, valid, last, frame_last, key, vector):
    """The output register of a sparse compute stage ``comp`` (its ``o``, ``end``, ``bad``,
    ``error_code``, ``frame_end``): a site's ``vector`` leaves when ``valid & last``; while the
    output is blocked it waits in a held register and ``pending`` (which the caller's pipeline
    stops on) is set. The frame's last output of a frame found bad becomes its error beat (the
    beats before it in that frame are void). A frame without outputs gets the store's marker
    beat (empty frame, or bad before any site of its last part was stored). The handshake
    signals are continuous assignments (Icarus leaves a process unevaluated until its inputs
    change)."""
    o = comp.o
    B, out_layout = comp.coord_bits, o.payload.shape()
    result = Signal(out_layout)
    m.d.comb += result.eq(pack(out_layout, vector=vector, x=key[:B], y=key[B:2 * B],
                               z=key[2 * B:], last=frame_last))
    error_beat = Signal(out_layout)
    m.d.comb += error_beat.eq(pack(out_layout, x=comp.error_code, marker=1, error=1, last=1))
    held = Signal(o.payload.shape())
    out_free = ~o.valid | o.ready
    with m.If(o.valid & o.ready):
        m.d.sync += o.valid.eq(0)
    take_held = pending & out_free
    take_result = ~pending & valid & last & out_free
    take_end = ~pending & ~(valid & last) & out_free
    m.d.comb += [comp.end.ready.eq(take_end),
                 comp.frame_end.eq((take_held & held.last) | (take_result & frame_last))]
    with m.If(take_held):
        m.d.sync += [o.payload.eq(Mux(comp.bad & held.last, error_beat.as_value(),
                                      held.as_value())),
                     o.valid.eq(1), pending.eq(0)]
    with m.If(take_result):
        m.d.sync += [o.payload.eq(Mux(comp.bad & frame_last, error_beat.as_value(),
                                      result.as_value())),
                     o.valid.eq(1)]
    with m.If(~pending & valid & last & ~out_free):
        m.d.sync += [held.eq(result), pending.eq(1)]
    with m.If(take_end & comp.end.valid):
        m.d.sync += [o.payload.eq(pack(out_layout, x=comp.end.payload.code, marker=1,
                                       error=comp.end.payload.error, last=1)),
                     o.valid.eq(1)]
