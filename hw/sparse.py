"""Binarized submanifold sparse convolution with the neighbour search in hardware.

A frame of active voxels streams in, sorted by key ``z * 2^(2B) + y * 2^B + x`` (one voxel a
transfer: features, coordinates; ``last`` on the frame's last beat; a ``marker`` beat is no
voxel: a frame of one marker beat is empty). The engine stores the frame, then for every voxel
in order finds its present neighbours and computes, for every output channel,
``y = sum over present offsets k of (2 popcount(XNOR(a_nbr, w_k)) - Cin)`` and ``y >= T``.

Neighbour search (sort/merge intersection): adding an offset to every key keeps the sorted
order, so for each of the nine rows ``(dy, dz)`` a *row engine* walks the sorted keys with its
own pointer, never backwards, keeping a window of the next three keys. For voxel ``(x, y, z)``
it drops keys below ``(x - 1, y + dy, z + dz)``; the window then holds the row's neighbours at
``dx = -1, 0, +1`` if they exist. Each row engine reads its own copy of the key memory, so the
nine engines work in parallel; over a frame each pointer moves at most ``N`` times, so the
search costs about one cycle a voxel and overlaps the XNOR-popcount work, which takes
``ceil(Cin / SIMD) * ceil(Cout / PE)`` cycles for each (voxel, neighbour) pair. Results wait in
a FIFO of match records (voxel, 27-bit mask of present offsets, neighbour indices).

Limits are parameters; a frame with more voxels than ``max_voxels`` or keys that are not
strictly increasing gets no output but one error beat (``marker`` and ``error`` set, the
error code in the ``x`` field: 1 too many voxels, 2 unsorted or duplicate).

Cost: ``10 * max_voxels`` key words (nine row engines and the centre reader),
``max_voxels * Cin`` feature bits, ``27 * Cout * Cin`` weight bits, a match-record FIFO.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for, bits_to_int
from quant.errors import BnnforgeError
from .fifo import StreamFifo
from .params import check_positive_int, construction
from .popcount import XnorPopcount, popcount_latency

__all__ = ["SparseConv", "ERROR_TOO_MANY", "ERROR_UNSORTED"]

ERROR_TOO_MANY = 1
ERROR_UNSORTED = 2


class SparseConv(wiring.Component):
    """Binary SSC 3x3x3 with hardware neighbour search; see the module docstring.

    Parameters
    ----------
    weights : array (27, Cout, Cin) of 0/1
        ``W_k`` for offset ``k = (dx+1) + 3(dy+1) + 9(dz+1)``, rows already flipped for
        channels with a negative batch-norm scale.
    thresholds : array (Cout,) of int
        Output bit = ``y >= T`` (``y`` with flipped rows for flipped channels).
    max_voxels, coord_bits : int
        Frame limit and coordinate width ``B``.
    folding : Folding
        PE divides Cout, SIMD divides Cin.

    Members
    -------
    i : In(stream.Signature(Cin + 3B + 2))
        ``Cat(features, x, y, z, marker, last)``.
    o : Out(stream.Signature(Cout + 3B + 3))
        ``Cat(bits, x, y, z, marker, error, last)``.
    busy : Out(1)
        High in each cycle in which a (pair, fold) enters the XNOR-popcount pipeline.
    searching : Out(1)
        High in each cycle in which the neighbour search works (a voxel is being searched and
        the record FIFO is not blocking it): the search's own cycles.
    """

    def __init__(self, weights, thresholds, max_voxels, coord_bits, folding, reg_every=1,
                 record_depth=8):
        import numpy as np

        with construction(self):
            w = np.asarray(weights)
            if w.ndim != 3 or w.shape[0] != 27:
                raise BnnforgeError(f"sparse weights must be 27 x Cout x Cin, not {w.shape}")
            check_positive_int("max voxels", max_voxels)
            check_positive_int("coordinate bits", coord_bits)
            _, cout, cin = w.shape
            if cout % folding.pe:
                raise BnnforgeError(f"PE={folding.pe} does not divide the {cout} output channels")
            if cin % folding.simd:
                raise BnnforgeError(f"SIMD={folding.simd} does not divide the {cin} input "
                                    f"channels")
            t = np.asarray(thresholds, dtype=np.int64)
            if t.shape != (cout,):
                raise BnnforgeError(f"{t.size} thresholds for {cout} output channels")
        self.weights, self.thresholds = w.astype(np.uint8), t
        self.cin, self.cout = cin, cout
        self.max_voxels, self.coord_bits = max_voxels, coord_bits
        self.pe, self.simd, self.reg_every = folding.pe, folding.simd, reg_every
        self.record_depth = record_depth
        b = coord_bits
        super().__init__({"i": In(stream.Signature(cin + 3 * b + 2)),
                          "o": Out(stream.Signature(cout + 3 * b + 3)), "busy": Out(1),
                          "searching": Out(1)})

    @property
    def folds(self):
        """Cycles of XNOR-popcount work a (voxel, neighbour) pair: ``(Cout/PE)(Cin/SIMD)``."""
        return (self.cout // self.pe) * (self.cin // self.simd)

    def cycles_model(self, pairs):
        """DESIGN.md's model: ``pairs * ceil(Cin/SIMD) * ceil(Cout/PE)``."""
        return pairs * self.folds

    cycles_per_vector = 27
    """At most 27 pairs a voxel at one fold each: a bound the testbench's timeout uses."""
    latency = None

    def elaborate(self, platform):
        m = Module()
        B, N = self.coord_bits, self.max_voxels
        cin, cout, PE, SIMD = self.cin, self.cout, self.pe, self.simd
        NF, SF = cout // PE, cin // SIMD
        KW = 3 * B
        IW = max(1, (N - 1).bit_length())

        # ---- input fields
        feat = self.i.payload[:cin]
        in_key = self.i.payload[cin:cin + KW]
        marker = self.i.payload[cin + KW]
        last = self.i.payload[cin + KW + 1]

        # ---- frame store
        n = Signal(range(N + 1))          # voxels stored
        prev = Signal(KW)
        overflow, unsorted = Signal(), Signal()
        key_mems = []
        for r in range(10):               # nine row engines + the centre reader
            mem = memory.Memory(shape=KW, depth=N, init=[])
            m.submodules[f"keys{r}"] = mem
            key_mems.append(mem)
        feat_mem = memory.Memory(shape=cin, depth=N, init=[])
        m.submodules.feats = feat_mem

        LOAD, ERROR, EMPTY, RUN = range(4)
        state = Signal(2)
        write = Signal()
        m.d.comb += self.i.ready.eq(state == LOAD)
        fire_in = self.i.valid & self.i.ready
        m.d.comb += write.eq(fire_in & ~marker & ~overflow & ~unsorted & (n < N) &
                             ((n == 0) | (in_key > prev)))
        for mem in key_mems:
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(n), wp.data.eq(in_key), wp.en.eq(write)]
        fwp = feat_mem.write_port()
        m.d.comb += [fwp.addr.eq(n), fwp.data.eq(feat), fwp.en.eq(write)]
        with m.If(write):
            m.d.sync += [n.eq(n + 1), prev.eq(in_key)]
        with m.If(fire_in & ~marker):
            with m.If(n == N):
                m.d.sync += overflow.eq(1)
            with m.Elif((n != 0) & (in_key <= prev)):
                m.d.sync += unsorted.eq(1)

        # ---- output register (shared by error/empty beats and results)
        out_free = ~self.o.valid | self.o.ready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        def emit_marker(code):
            error = Const(int(code != 0), 1)
            m.d.sync += [self.o.payload.eq(Cat(Const(0, cout), Const(code, B), Const(0, 2 * B),
                                                Const(1, 1), error, Const(1, 1))),
                         self.o.valid.eq(1)]

        start_run = Signal()
        frame_done = Signal()
        with m.Switch(state):
            with m.Case(LOAD):
                with m.If(fire_in & last):
                    m.d.sync += state.eq(Mux(overflow | unsorted | (~marker & (n == N)) |
                                             (~marker & (n != 0) & (in_key <= prev)), ERROR,
                                             Mux((n == 0) & ~write, EMPTY, RUN)))
                    m.d.comb += start_run.eq(1)
            with m.Case(ERROR):
                with m.If(out_free):
                    with m.If(overflow):
                        emit_marker(ERROR_TOO_MANY)
                    with m.Else():
                        emit_marker(ERROR_UNSORTED)
                    m.d.comb += frame_done.eq(1)
            with m.Case(EMPTY):
                with m.If(out_free):
                    emit_marker(0)
                    m.d.comb += frame_done.eq(1)
            with m.Case(RUN):
                pass
        with m.If(frame_done):
            m.d.sync += [state.eq(LOAD), n.eq(0), overflow.eq(0), unsorted.eq(0)]

        running = state == RUN

        # ---- search: centre reader and nine row engines
        # Centre: the key of output voxel `ci`, read ahead so it is ready when needed.
        ci = Signal(range(N + 1))            # voxel being searched
        centre = key_mems[9].read_port(transparent_for=())
        cnext = Signal.like(ci)
        m.d.comb += [centre.addr.eq(cnext), centre.en.eq(1)]
        cx, cy, cz = centre.data[:B], centre.data[B:2 * B], centre.data[2 * B:]
        advance_voxel = Signal()
        m.d.comb += cnext.eq(Mux(advance_voxel, ci + 1, ci))
        centre_ok = Signal()             # centre.data holds key[ci] (one cycle after a change)
        with m.If(start_run | frame_done):
            m.d.sync += [ci.eq(0), centre_ok.eq(0)]
        with m.Elif(running):
            m.d.sync += [ci.eq(cnext), centre_ok.eq(~advance_voxel)]

        search_active = running & (ci < n) & centre_ok
        dones, masks, idxs = [], [], []
        for r in range(9):
            dy, dz = r % 3 - 1, r // 3 - 1
            rp = key_mems[r].read_port(transparent_for=())
            p = Signal(range(N + 1), name=f"r{r}_p")       # index of window slot 0
            rd = Signal(range(N + 1), name=f"r{r}_rd")     # next index to read
            inflight = Signal(name=f"r{r}_inflight")
            win = [Signal(KW, name=f"r{r}_w{s}") for s in range(3)]
            cnt = Signal(range(4), name=f"r{r}_cnt")
            done = Signal(name=f"r{r}_done")
            mask = Signal(3, name=f"r{r}_mask")
            # Row of this engine for the current voxel, with range checks.
            ny = Signal(B + 1, name=f"r{r}_y")
            nz = Signal(B + 1, name=f"r{r}_z")
            m.d.comb += [ny.eq(cy + dy), nz.eq(cz + dz)]
            row_ok = Signal(name=f"r{r}_ok")
            lim = (1 << B) - 1
            m.d.comb += row_ok.eq(((cy != 0) if dy < 0 else (cy != lim) if dy > 0 else 1) &
                                  ((cz != 0) if dz < 0 else (cz != lim) if dz > 0 else 1))
            lower = Signal(KW, name=f"r{r}_lower")
            m.d.comb += lower.eq(Cat(Mux(cx == 0, 0, cx - 1)[:B], ny[:B], nz[:B]))
            row_key = Cat(ny[:B], nz[:B])
            # Window fill: read the next key whenever a slot is (or is about to be) free.
            pop = Signal(name=f"r{r}_pop")
            issue = Signal(name=f"r{r}_issue")
            space = (cnt - pop + inflight) < 3
            m.d.comb += [issue.eq(running & (rd < n) & space), rp.addr.eq(rd), rp.en.eq(1)]
            with m.If(start_run | frame_done):
                m.d.sync += [p.eq(0), rd.eq(0), inflight.eq(0), cnt.eq(0)]
            with m.Elif(running):
                m.d.sync += [inflight.eq(issue), rd.eq(rd + issue)]
                # Shift on pop, append arriving data.
                shifted = [Mux(pop, win[s + 1] if s < 2 else win[2], win[s]) for s in range(3)]
                count_after_pop = cnt - pop
                for s in range(3):
                    with m.If(inflight & (count_after_pop == s)):
                        m.d.sync += win[s].eq(rp.data)
                    with m.Else():
                        m.d.sync += win[s].eq(shifted[s])
                m.d.sync += [cnt.eq(count_after_pop + inflight), p.eq(p + pop)]
            settled = (cnt == 3) | ((rd == n) & ~inflight)
            m.d.comb += pop.eq(search_active & ~done & (cnt != 0) & (win[0] < lower) & row_ok)
            finish = Signal(name=f"r{r}_finish")
            m.d.comb += finish.eq(search_active & ~done & ~pop & (settled | ~row_ok))
            hits = []
            for s in range(3):
                xs = win[s][:B]
                hit = Signal(3, name=f"r{r}_hit{s}")   # one-hot dx+1
                present = (cnt > s) & (win[s][B:] == row_key) & row_ok
                m.d.comb += hit.eq(Mux(present & (cx != 0) & (xs == cx - 1), 1, 0) |
                                   Mux(present & (xs == cx), 2, 0) |
                                   Mux(present & (cx != lim) & (xs == cx + 1), 4, 0))
                hits.append(hit)
            found = hits[0] | hits[1] | hits[2]
            # Index of the neighbour at dx: the slot whose hit has that bit.
            nbr = [Signal(IW, name=f"r{r}_j{d}") for d in range(3)]
            for d in range(3):
                m.d.comb += nbr[d].eq(Mux(hits[0][d], p, Mux(hits[1][d], p + 1, p + 2)))
            with m.If(advance_voxel | start_run | frame_done):
                m.d.sync += done.eq(0)
            with m.Elif(finish):
                m.d.sync += [done.eq(1), mask.eq(found)]
            kept = [Signal(IW, name=f"r{r}_nbr{d}") for d in range(3)]
            with m.If(finish):
                m.d.sync += [kept[d].eq(nbr[d]) for d in range(3)]
            dones.append(done)
            masks.append(mask)
            idxs.extend(kept)

        # ---- match records
        rec_w = KW + 1 + 27 + 27 * IW
        records = StreamFifo(rec_w, self.record_depth, name="records")
        m.submodules.records = records
        all_done = dones[0]
        for d in dones[1:]:
            all_done = all_done & d
        m.d.comb += [
            records.i.valid.eq(search_active & all_done),
            records.i.payload.eq(Cat(centre.data, ci == n - 1, Cat(*masks), Cat(*idxs))),
            advance_voxel.eq(records.i.valid & records.i.ready),
            self.searching.eq(search_active & ~(all_done & ~records.i.ready)),
        ]

        # ---- compute: iterate (present offset k, neuron fold, synapse fold)
        en = Signal()
        pending = Signal()
        m.d.comb += en.eq(~pending)
        rec = Signal(rec_w)                  # the record being worked on
        rec_key, rec_last = rec[:KW], rec[KW]
        rec_idx = Array(rec[KW + 28 + k * IW:KW + 28 + (k + 1) * IW] for k in range(27))
        remaining = Signal(27)
        loaded = Signal()
        k_cur = Signal(5)                 # the lowest offset still to do
        for k in reversed(range(27)):
            with m.If(remaining[k]):
                m.d.comb += k_cur.eq(k)
        nf = Signal(range(max(NF, 2)))
        sf = Signal(range(max(SF, 2)))
        last_fold = (nf == NF - 1) & (sf == SF - 1)
        only_one = (remaining & (remaining - 1)) == 0
        issue_c = Signal()
        m.d.comb += issue_c.eq(en & loaded & (remaining != 0))
        last_item = issue_c & last_fold & only_one
        first_item = Signal()
        m.d.comb += records.o.ready.eq(en & (~loaded | last_item))
        with m.If(frame_done | start_run):
            m.d.sync += loaded.eq(0)
        with m.Elif(records.o.valid & records.o.ready):
            mask = records.o.payload[KW + 1:KW + 28]     # the new record's present offsets
            m.d.sync += [rec.eq(records.o.payload), remaining.eq(mask),
                         loaded.eq(1), first_item.eq(1), nf.eq(0), sf.eq(0)]
        with m.Elif(last_item):
            m.d.sync += loaded.eq(0)
        with m.If(issue_c & ~last_item):
            m.d.sync += first_item.eq(0)
            if SF > 1:
                m.d.sync += sf.eq(Mux(sf == SF - 1, 0, sf + 1))
            with m.If(sf == SF - 1):
                if NF > 1:
                    m.d.sync += nf.eq(Mux(nf == NF - 1, 0, nf + 1))
                with m.If(nf == NF - 1):
                    m.d.sync += remaining.eq(remaining & ~(1 << k_cur))
        m.d.comb += self.busy.eq(issue_c)

        # Stage 1: feature word and weights.
        frp = feat_mem.read_port(transparent_for=())
        m.d.comb += [frp.addr.eq(rec_idx[k_cur]), frp.en.eq(en)]
        ctrl = Signal(4 + len(nf) + len(sf) + KW + 1)
        with m.If(en):
            m.d.sync += ctrl.eq(Cat(issue_c, first_item & issue_c, last_item, Const(0, 1),
                                    nf, sf, rec_key, rec_last))
        trees = []
        for p_ in range(PE):
            words = []
            for k in range(27):
                for f in range(NF):
                    row = self.weights[k, f * PE + p_]
                    for s in range(SF):
                        words.append(bits_to_int(row[s * SIMD:(s + 1) * SIMD]))
            wmem = memory.Memory(shape=SIMD, depth=len(words), init=words)
            m.submodules[f"w{p_}"] = wmem
            wrp = wmem.read_port(transparent_for=())
            m.d.comb += [wrp.addr.eq((k_cur * NF + nf) * SF + sf), wrp.en.eq(en)]
            tree = XnorPopcount(SIMD, self.reg_every)
            m.submodules[f"tree{p_}"] = tree
            s1_sf = ctrl[4 + len(nf):4 + len(nf) + len(sf)]
            fslice = frp.data.word_select(s1_sf, SIMD) if SF > 1 else frp.data
            m.d.comb += [tree.a.eq(fslice), tree.w.eq(wrp.data), tree.en.eq(en)]
            trees.append(tree)
        L = popcount_latency(SIMD, self.reg_every)
        chain = [ctrl]
        for stage in range(L):
            nxt = Signal.like(ctrl, name=f"ctrl{stage + 1}")
            with m.If(en):
                m.d.sync += nxt.eq(chain[-1])
            chain.append(nxt)
        c = chain[-1]
        c_valid, c_first, c_last = c[0], c[1], c[2]
        c_nf = c[4:4 + len(nf)]
        c_key = c[4 + len(nf) + len(sf):4 + len(nf) + len(sf) + KW]
        c_frame_last = c[-1]

        # Accumulate signed sums for every output channel.
        yw = bits_for(27 * cin) + 1
        acc = [Signal(signed(yw), name=f"y{o}") for o in range(cout)]
        nxt_acc = []
        for o in range(cout):
            f, p_ = divmod(o, PE)
            contrib = Signal(signed(yw), name=f"c{o}")
            m.d.comb += contrib.eq(Mux(c_nf == f, trees[p_].count * 2 - SIMD, 0)
                                   if NF > 1 else trees[p_].count * 2 - SIMD)
            y_next = Signal(signed(yw), name=f"yn{o}")
            m.d.comb += y_next.eq(Mux(c_first, 0, acc[o]) + contrib)
            with m.If(en & c_valid):
                m.d.sync += acc[o].eq(y_next)
            nxt_acc.append(y_next)
        out_bits = Cat(*[y >= int(t) for y, t in zip(nxt_acc, self.thresholds)])
        result = Cat(out_bits, c_key, Const(0, 2), c_frame_last)
        held = Signal.like(result)
        with m.If(pending):
            with m.If(out_free):
                m.d.sync += [self.o.payload.eq(held), self.o.valid.eq(1), pending.eq(0)]
                with m.If(held[-1]):
                    m.d.comb += frame_done.eq(1)
        with m.Elif(running & c_valid & c_last):
            with m.If(out_free):
                m.d.sync += [self.o.payload.eq(result), self.o.valid.eq(1)]
                with m.If(c_frame_last):
                    m.d.comb += frame_done.eq(1)
            with m.Else():
                m.d.sync += [held.eq(result), pending.eq(1)]
        return m
