"""Binarized sparse convolution layers with their site search in hardware (BSC-Net).

A frame of active voxels streams in, sorted by key ``z * 2^(2B) + y * 2^B + x`` (one voxel a
transfer: features, coordinates; ``last`` on the frame's last beat; a ``marker`` beat is no
voxel: a frame of one marker beat is empty). Every layer stores its frame, *searches* it for
the (output site, input site, kernel slot) pairs of its kernel map, and computes, for every
output site and channel, ``y = sum over its pairs of (2 popcount(XNOR(a_in, w_slot)) - Cin)``;
it streams out either the bits ``y >= T`` (``output="bits"``) or the signed sums themselves
(``output="sums"``: for layers whose batch-norm cannot be folded, because a residual add
follows it on the host). Three kinds share the store and the compute; they differ in the
search:

``ssc`` (submanifold 3x3x3, 27 slots; outputs at the input sites)
    Sort/merge intersection: adding an offset to every key keeps the sorted order, so for each
    of the nine rows ``(dy, dz)`` a *row engine* walks the sorted keys with its own pointer,
    never backwards, keeping a window of the next three keys. For voxel ``(x, y, z)`` it drops
    keys below ``(x - 1, y + dy, z + dz)``; the window then holds the row's neighbours at
    ``dx = -1, 0, +1`` if they exist. Each row engine reads its own copy of the key memory;
    over a frame each pointer moves at most ``N`` times.
``down`` (kernel 2, stride 2, 8 slots; outputs ``unique(floor(x / 2))``)
    For fixed parities ``(y & 1, z & 1)`` the parents ``floor(x / 2)`` of the sorted fine sites
    do not decrease. The store appends each site (key and index) to the list of its parity;
    four *parity engines* each scan their own list once and pair the two children
    ``x = 2X, 2X + 1`` of a parent; a four-way merge takes the smallest parent at the heads and
    emits it with up to eight children (slot ``px + 2 py + 4 pz``). The engines scan in
    parallel, so the search needs about a cycle per parent of the largest parity class.
``up`` (transposed kernel 2, stride 2, 8 slots; outputs at the finer level's sites)
    The frame is two tlast-delimited parts: first the coarse voxels with their features, then
    the fine sites (coordinates; the feature field is ignored). Each fine site receives its
    parent ``floor(f / 2)`` at slot = its parity bits. The store appends each fine site to the
    list of its parity ``(y & 1, z & 1)``; four lanes walk their list together with their own
    copy of the coarse keys (both pointers only move forward) and queue, per fine site, whether
    its parent exists and where; the fine sites in order take the answer at the head of their
    parity's queue. A fine site whose parent is absent receives nothing (``y = 0``). Each lane
    needs at most ``N_coarse + N_fine(parity)`` steps.

The search runs ahead of the compute through a FIFO of records (output key, mask of present
slots, input indices); the compute takes ``ceil(Cin / SIMD) * ceil(Cout / PE)`` cycles for each
group of up to ``offsets`` present slots of a site (``offsets`` kernel offsets a cycle).

The search runs while the frame streams in: it reads only words already stored (the counts of
a cycle ago) and treats "no further word" as final only once the frame is complete, so store,
search and compute overlap and a frame takes about ``max(N, pairs * folds / offsets)`` cycles
plus the lag of one z-plane (a site's neighbours or its parent's other children lie up to one
plane further on).

Limits are parameters; a frame (or part) with more voxels than ``max_voxels`` or keys that are
not strictly increasing ends with one error beat (``marker``, ``error`` and ``last`` set, the
error code in the ``x`` field: 1 too many voxels, 2 unsorted or duplicate). Outputs may already
have left for the valid prefix of such a frame before the bad voxel arrived; the error beat
voids every beat of its frame (as a network MAC marks a bad frame on its last beat), and the
tool drops them.

Cost: key copies (ssc 10, up 4 coarse + 1 fine) of ``max_voxels`` words of ``3B`` bits, 4
parity lists of ``max_voxels`` words (down: key and index; up: key), ``max_voxels * Cin``
feature bits, ``slots * Cout * Cin`` weight bits, a record FIFO.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for, bits_to_int
from quant.errors import BnnforgeError
from .fifo import StreamFifo
from .params import check_family, check_positive_int, construction
from .popcount import XnorPopcount, popcount_latency

__all__ = ["SparseLayer", "SparseConv", "KINDS", "ERROR_TOO_MANY", "ERROR_UNSORTED",
           "sum_width"]

ERROR_TOO_MANY = 1
ERROR_UNSORTED = 2

KINDS = {"ssc": 27, "down": 8, "up": 8}
"""Kernel slots of each layer kind."""

PAIR_DEPTH = 16
"""Items each down-sampling parity engine may run ahead of the merge."""

_PAIRS_PER_SITE = {"ssc": 27, "down": 8, "up": 1}
# Key-memory copies per input part: (copies, stores features).
_PARTS = {"ssc": [(10, True)], "down": [(0, True)], "up": [(4, True), (1, False)]}
# The part whose sites are also kept in one list per parity (y & 1, z & 1).
_PARITY_PART = {"down": 0, "up": 1}


def sum_width(kind, cin):
    """Bits of one signed sum ``y``: it holds ``+-pairs_per_site * Cin``."""
    return bits_for(_PAIRS_PER_SITE[kind] * cin) + 1


def _parent_key(key, bits):
    """The key of ``floor(c / 2)`` for the key of coordinates ``c`` (``bits`` a coordinate)."""
    x, y, z = key[:bits], key[bits:2 * bits], key[2 * bits:3 * bits]
    return Cat(x[1:], Const(0, 1), y[1:], Const(0, 1), z[1:], Const(0, 1))


def _select(values, index):
    """``values[index]`` as a chain of continuous assignments. (An ``Array`` becomes a
    ``case`` in an ``always @*`` block, which Icarus does not evaluate until an input changes:
    a read port whose data stays at its initial value would leave it undefined.)"""
    out = values[-1]
    for i in reversed(range(len(values) - 1)):
        out = Mux(index == i, values[i], out)
    return out


class SparseLayer(wiring.Component):
    """A binary sparse convolution with its search in hardware; see the module docstring.

    Parameters
    ----------
    kind : "ssc", "down" or "up"
    weights : array (slots, Cout, Cin) of 0/1
        ``W_k``; ssc offsets ``k = (dx+1) + 3(dy+1) + 9(dz+1)``, down/up slots
        ``px + 2 py + 4 pz``. For ``output="bits"`` the rows of channels with a negative
        batch-norm scale are already flipped.
    thresholds : array (Cout,) of int, or None
        ``output="bits"``: output bit = ``y >= T``. Must be None for ``output="sums"``.
    max_voxels, coord_bits : int
        Frame (and part) limit and coordinate width ``B``.
    folding : Folding
        PE divides Cout, SIMD divides Cin.
    output : "bits" or "sums"
        Sums are ``sum_width(kind, Cin)``-bit two's complement, channel 0 lowest.
    offsets : int
        Kernel offsets computed in parallel (``offsets x PE`` trees of SIMD lanes, ``offsets``
        read ports on the feature memory and on each weight memory).
    family : None, "ecp5" or "ice40"
        Target family: ECP5 gets the carry-save popcount where it wins.

    Members
    -------
    i : In(stream.Signature(Cin + 3B + 2))
        ``Cat(features, x, y, z, marker, last)``.
    o : Out(stream.Signature(out_width + 3B + 3))
        ``Cat(bits or sums, x, y, z, marker, error, last)``.
    busy : Out(1)
        High in each cycle in which a (pair, fold) enters the XNOR-popcount pipeline.
    searching : Out(1)
        High in each cycle in which the search works (not waiting for the record FIFO): the
        search's own cycles.
    """

    def __init__(self, kind, weights, thresholds, max_voxels, coord_bits, folding,
                 output="bits", reg_every=1, record_depth=8, offsets=1, family=None):
        import numpy as np

        with construction(self):
            if kind not in KINDS:
                raise BnnforgeError(f"unknown sparse layer kind {kind!r}; choose one of "
                                    f"{', '.join(KINDS)}")
            slots = KINDS[kind]
            w = np.asarray(weights)
            if w.ndim != 3 or w.shape[0] != slots:
                raise BnnforgeError(f"{kind} weights must be {slots} x Cout x Cin, not "
                                    f"{w.shape}")
            check_positive_int("max voxels", max_voxels)
            check_positive_int("coordinate bits", coord_bits)
            if kind != "ssc" and coord_bits < 2:
                raise BnnforgeError(f"a {kind}-sampling layer needs at least 2 coordinate "
                                    f"bits, not {coord_bits}")
            _, cout, cin = w.shape
            if cout % folding.pe:
                raise BnnforgeError(f"PE={folding.pe} does not divide the {cout} output channels")
            if cin % folding.simd:
                raise BnnforgeError(f"SIMD={folding.simd} does not divide the {cin} input "
                                    f"channels")
            check_positive_int("offsets per cycle", offsets)
            check_family(family)
            if offsets > slots:
                raise BnnforgeError(f"{offsets} offsets per cycle, but a {kind} layer has "
                                    f"{slots} kernel slots")
            if output not in ("bits", "sums"):
                raise BnnforgeError(f"output must be 'bits' or 'sums', not {output!r}")
            if output == "sums":
                if thresholds is not None:
                    raise BnnforgeError("a layer that outputs sums takes no thresholds")
                t = None
            else:
                t = np.asarray(thresholds, dtype=np.int64)
                if t.shape != (cout,):
                    raise BnnforgeError(f"{t.size} thresholds for {cout} output channels")
        self.kind, self.slots, self.output = kind, slots, output
        self.weights, self.thresholds = w.astype(np.uint8), t
        self.cin, self.cout = cin, cout
        self.max_voxels, self.coord_bits = max_voxels, coord_bits
        self.pe, self.simd, self.reg_every = folding.pe, folding.simd, reg_every
        self.family = family
        self.record_depth, self.offsets = record_depth, offsets
        self.sum_width = sum_width(kind, cin)
        self.out_width = cout if output == "bits" else cout * self.sum_width
        b = coord_bits
        super().__init__({"i": In(stream.Signature(cin + 3 * b + 2)),
                          "o": Out(stream.Signature(self.out_width + 3 * b + 3)),
                          "busy": Out(1), "searching": Out(1)})

    @property
    def folds(self):
        """Cycles of XNOR-popcount work a pair: ``(Cout/PE)(Cin/SIMD)``."""
        return (self.cout // self.pe) * (self.cin // self.simd)

    def cycles_model(self, pairs):
        """DESIGN.md's model: ``pairs * ceil(Cin/SIMD) * ceil(Cout/PE) / offsets``."""
        return pairs * self.folds / self.offsets

    @property
    def cycles_per_vector(self):
        """A bound on the cycles per input voxel the testbench's timeout uses."""
        return 27 if self.kind == "ssc" else 8

    latency = None

    def elaborate(self, platform):
        m = Module()
        self._m = m
        B, N = self.coord_bits, self.max_voxels
        self._KW, self._IW = 3 * B, max(1, (N - 1).bit_length())
        store = self._store(m)
        search = {"ssc": self._search_ssc, "down": self._search_down,
                  "up": self._search_up}[self.kind]
        rec_w = self._KW + 1 + self.slots * (1 + self._IW)
        records = StreamFifo(rec_w, self.record_depth, name="records")
        m.submodules.records = records
        search(m, store, records.i)
        self._compute(m, store, records.o)
        return m

    # ---- frame store ----------------------------------------------------------------------
    def _store(self, m):
        """Store the frame's parts; check limits and order; run the EMPTY / ERROR beats.
        Returns a namespace of the signals the other stages use."""
        B, N, cin, KW = self.coord_bits, self.max_voxels, self.cin, self._KW
        parts = _PARTS[self.kind]
        feat = self.i.payload[:cin]
        in_key = self.i.payload[cin:cin + KW]
        marker = self.i.payload[cin + KW]
        last = self.i.payload[cin + KW + 1]

        single = len(parts) == 1
        part = Const(0, 1) if single else Signal(range(len(parts)))
        counts, keys, feats, prevs = [], [], [], []
        overflow, unsorted = Signal(), Signal()
        LOAD, ERROR, EMPTY, RUN = range(4)
        state = Signal(2)
        m.d.comb += self.i.ready.eq(state == LOAD)
        fire_in = self.i.valid & self.i.ready
        n_cur = Signal(range(N + 1))
        prev_cur = Signal(KW)
        too_many_now = fire_in & ~marker & (n_cur == N)
        unsorted_now = fire_in & ~marker & (n_cur != 0) & (in_key <= prev_cur)
        write = Signal()
        m.d.comb += write.eq(fire_in & ~marker & ~overflow & ~unsorted & ~too_many_now &
                             ~unsorted_now)
        for p, (copies, with_feats) in enumerate(parts):
            n = Signal(range(N + 1), name=f"n{p}")
            prev = Signal(KW, name=f"prev{p}")
            here = write if single else write & (part == p)
            mems = []
            for r in range(copies):
                mem = memory.Memory(shape=KW, depth=N, init=[])
                m.submodules[f"keys{p}_{r}"] = mem
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(n), wp.data.eq(in_key), wp.en.eq(here)]
                mems.append(mem)
            fmem = None
            if with_feats:
                fmem = memory.Memory(shape=cin, depth=N, init=[])
                m.submodules[f"feats{p}"] = fmem
                fwp = fmem.write_port()
                m.d.comb += [fwp.addr.eq(n), fwp.data.eq(feat), fwp.en.eq(here)]
            with m.If(here):
                m.d.sync += [n.eq(n + 1), prev.eq(in_key)]
            counts.append(n)
            keys.append(mems)
            feats.append(fmem)
            prevs.append(prev)
        m.d.comb += [n_cur.eq(_select(counts, part)), prev_cur.eq(_select(prevs, part))]
        # Down-sampling (its sites) and up-sampling (its fine sites): each site also goes to the
        # list of its parity (y & 1, z & 1), with its index, so that each parity engine reads
        # only its own sites.
        # (The up-sampling lanes need no index: they answer in the fine sites' order.)
        by_parity, parity_counts = [], []
        if self.kind in _PARITY_PART:
            pp = _PARITY_PART[self.kind]
            parity = Cat(in_key[B], in_key[2 * B])
            entry = Cat(in_key, counts[pp][:self._IW]) if self.kind == "down" else in_key
            for e in range(4):
                pn = Signal(range(N + 1), name=f"pn{e}")
                mem = memory.Memory(shape=len(entry), depth=N, init=[])
                m.submodules[f"parity{e}"] = mem
                wp = mem.write_port()
                hit = write & (parity == e) & (part == pp)
                m.d.comb += [wp.addr.eq(pn), wp.data.eq(entry), wp.en.eq(hit)]
                with m.If(hit):
                    m.d.sync += pn.eq(pn + 1)
                by_parity.append(mem)
                parity_counts.append(pn)
        with m.If(too_many_now):
            m.d.sync += overflow.eq(1)
        with m.Elif(unsorted_now):
            m.d.sync += unsorted.eq(1)

        out_free = ~self.o.valid | self.o.ready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        def marker_beat(code, error):
            """A marker beat ending a frame: no vector, the code in x."""
            return Cat(Const(0, self.out_width), code, Const(0, 2 * B), Const(1, 1), error,
                       Const(1, 1))

        def emit_marker(code):
            m.d.sync += [self.o.payload.eq(marker_beat(Const(code, B), Const(int(code != 0), 1))),
                         self.o.valid.eq(1)]

        frame_done = Signal()
        final = len(parts) - 1
        with m.Switch(state):
            with m.Case(LOAD):
                with m.If(fire_in & last):
                    with m.If(Const(0, 1) if single else part != final):
                        if not single:
                            m.d.sync += part.eq(part + 1)
                    with m.Else():
                        bad = overflow | unsorted | too_many_now | unsorted_now
                        m.d.sync += state.eq(Mux(bad, ERROR,
                                                 Mux((n_cur == 0) & ~write, EMPTY, RUN)))
            with m.Case(ERROR):
                # Records of the valid prefix may be in flight; the compute then ends the frame
                # with the error beat. With none (no site stored in the last part), end it here.
                with m.If(out_free & (counts[final] == 0)):
                    with m.If(overflow):
                        emit_marker(ERROR_TOO_MANY)
                    with m.Else():
                        emit_marker(ERROR_UNSORTED)
                    m.d.comb += frame_done.eq(1)
            with m.Case(EMPTY):
                with m.If(out_free):
                    emit_marker(0)
                    m.d.comb += frame_done.eq(1)
        with m.If(frame_done):
            m.d.sync += [state.eq(LOAD), overflow.eq(0), unsorted.eq(0)]
            if not single:
                m.d.sync += part.eq(0)
            m.d.sync += [n.eq(0) for n in counts + parity_counts]

        # What the searches may read: the counts of a cycle ago (a word written in cycle t is
        # in a read port's data from t + 2 on) and whether the frame is complete (no more words
        # will come: the last beat was taken, or the frame was found bad and the store stopped).
        avail = [Signal.like(n, name=f"avail{p}") for p, n in enumerate(counts)]
        p_avail = [Signal.like(n, name=f"pavail{e}") for e, n in enumerate(parity_counts)]
        complete = Signal()
        with m.If(frame_done):
            m.d.sync += [a.eq(0) for a in avail + p_avail] + [complete.eq(0)]
        with m.Else():
            m.d.sync += [a.eq(n) for a, n in zip(avail + p_avail, counts + parity_counts)]
            m.d.sync += complete.eq((state == RUN) | (state == ERROR))

        class Store:
            pass
        s = Store()
        s.counts, s.keys, s.feats = avail, keys, feats
        s.by_parity, s.parity_counts = by_parity, p_avail
        s.complete, s.frame_done = complete, frame_done
        s.reset = frame_done
        s.out_free = out_free
        s.bad = state == ERROR
        code = Signal(B)
        m.d.comb += code.eq(Mux(overflow, ERROR_TOO_MANY, ERROR_UNSORTED))
        s.error_beat = marker_beat(code, Const(1, 1))
        return s

    def _reader(self, m, mem, step, reset, name):
        """A read port whose data is always the word at a pointer ``p`` (``p + step`` is
        presented as the next address), and a flag for "data valid" after a reset."""
        N = self.max_voxels
        p = Signal(range(N + 1), name=f"{name}_p")
        ok = Signal(name=f"{name}_ok")
        rp = mem.read_port(transparent_for=())
        m.d.comb += [rp.addr.eq(Mux(step, p + 1, p)), rp.en.eq(1)]
        with m.If(reset):
            m.d.sync += [p.eq(0), ok.eq(0)]
        with m.Else():
            m.d.sync += [p.eq(p + step), ok.eq(1)]
        return p, rp.data, ok

    # ---- searches -------------------------------------------------------------------------
    def _search_ssc(self, m, s, rec):
        B, N, KW, IW = self.coord_bits, self.max_voxels, self._KW, self._IW
        n, key_mems, complete = s.counts[0], s.keys[0], s.complete
        advance_voxel = Signal()
        ci, centre, centre_ok = self._reader(m, key_mems[9], advance_voxel, s.reset, "centre")
        cx, cy, cz = centre[:B], centre[B:2 * B], centre[2 * B:]
        # A voxel is searched once it is stored and either a later one is, or the frame is
        # complete (so that its record knows whether it is the frame's last).
        search_active = (ci < n) & (complete | (ci + 1 < n)) & centre_ok
        dones, masks, idxs = [], [], []
        lim = (1 << B) - 1
        for r in range(9):
            dy, dz = r % 3 - 1, r // 3 - 1
            rp = key_mems[r].read_port(transparent_for=())
            p = Signal(range(N + 1), name=f"r{r}_p")       # index of window slot 0
            rd = Signal(range(N + 1), name=f"r{r}_rd")     # next index to read
            inflight = Signal(name=f"r{r}_inflight")
            win = [Signal(KW, name=f"r{r}_w{k}") for k in range(3)]
            cnt = Signal(range(4), name=f"r{r}_cnt")
            done = Signal(name=f"r{r}_done")
            mask = Signal(3, name=f"r{r}_mask")
            ny = Signal(B + 1, name=f"r{r}_y")
            nz = Signal(B + 1, name=f"r{r}_z")
            m.d.comb += [ny.eq(cy + dy), nz.eq(cz + dz)]
            row_ok = Signal(name=f"r{r}_ok")
            m.d.comb += row_ok.eq(((cy != 0) if dy < 0 else (cy != lim) if dy > 0 else 1) &
                                  ((cz != 0) if dz < 0 else (cz != lim) if dz > 0 else 1))
            lower = Signal(KW, name=f"r{r}_lower")
            m.d.comb += lower.eq(Cat(Mux(cx == 0, 0, cx - 1)[:B], ny[:B], nz[:B]))
            row_key = Cat(ny[:B], nz[:B])
            pop = Signal(name=f"r{r}_pop")
            issue = Signal(name=f"r{r}_issue")
            space = (cnt - pop + inflight) < 3
            m.d.comb += [issue.eq((rd < n) & space), rp.addr.eq(rd), rp.en.eq(1)]
            with m.If(s.reset):
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
                m.d.comb += hit.eq(Mux(present & (cx != 0) & (xs == cx - 1), 1, 0) |
                                   Mux(present & (xs == cx), 2, 0) |
                                   Mux(present & (cx != lim) & (xs == cx + 1), 4, 0))
                hits.append(hit)
            found = hits[0] | hits[1] | hits[2]
            nbr = [Signal(IW, name=f"r{r}_j{d}") for d in range(3)]
            for d in range(3):
                m.d.comb += nbr[d].eq(Mux(hits[0][d], p, Mux(hits[1][d], p + 1, p + 2)))
            with m.If(advance_voxel | s.reset):
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
            rec.payload.eq(Cat(centre, ci == n - 1, Cat(*masks), Cat(*idxs))),
            advance_voxel.eq(rec.valid & rec.ready),
            self.searching.eq(search_active & ~(all_done & ~rec.ready)),
        ]

    def _search_down(self, m, s, rec):
        B, N, KW, IW = self.coord_bits, self.max_voxels, self._KW, self._IW
        n = s.counts[0]
        heads, head_ok, exhausted, pops = [], [], [], []
        for e in range(4):
            ne = s.parity_counts[e]
            rp = s.by_parity[e].read_port(transparent_for=())
            rd = Signal(range(N + 1), name=f"d{e}_rd")
            inflight = Signal(name=f"d{e}_inflight")
            aidx = Signal(IW, name=f"d{e}_aidx")
            q = fifo.SyncFIFO(width=KW + 2 + 2 * IW, depth=PAIR_DEPTH)
            m.submodules[f"pairs{e}"] = q
            issue = (rd < ne) & (q.level + inflight <= PAIR_DEPTH - 2)
            m.d.comb += [rp.addr.eq(rd), rp.en.eq(1)]
            with m.If(s.reset):
                m.d.sync += [rd.eq(0), inflight.eq(0)]
            with m.Else():
                m.d.sync += [rd.eq(rd + issue), inflight.eq(issue)]
            m.d.comb += aidx.eq(rp.data[KW:])
            match = inflight
            parent = _parent_key(rp.data[:KW], B)
            px = rp.data[0]
            # Pending item: a parent with its first child, waiting for a possible second.
            pv = Signal(name=f"d{e}_pv")
            pkey = Signal(KW, name=f"d{e}_pkey")
            pmask = Signal(2, name=f"d{e}_pmask")
            pidx = [Signal(IW, name=f"d{e}_pidx{j}") for j in range(2)]
            new_mask = Mux(px, 2, 1)
            new_idx = [Mux(px == j, aidx, 0) for j in range(2)]
            scan_done = s.complete & (rd == ne) & ~inflight
            combine = match & pv & (pkey == parent)
            push_data = Signal(KW + 2 + 2 * IW, name=f"d{e}_push")
            m.d.comb += push_data.eq(Cat(pkey, pmask, pidx[0], pidx[1]))
            with m.If(combine):
                m.d.comb += [q.w_en.eq(1), push_data.eq(
                    Cat(pkey, pmask | new_mask, Mux(px, pidx[0], aidx), Mux(px, aidx, pidx[1])))]
                m.d.sync += pv.eq(0)
            with m.Elif(match):
                m.d.comb += q.w_en.eq(pv)
                m.d.sync += [pv.eq(1), pkey.eq(parent), pmask.eq(new_mask),
                             pidx[0].eq(new_idx[0]), pidx[1].eq(new_idx[1])]
            with m.Elif(scan_done & pv & q.w_rdy):
                m.d.comb += q.w_en.eq(1)
                m.d.sync += pv.eq(0)
            with m.If(s.reset):
                m.d.sync += pv.eq(0)
            m.d.comb += q.w_data.eq(push_data)
            heads.append(q.r_data)
            head_ok.append(q.r_rdy)
            exhausted.append(scan_done & ~pv)
            pops.append(q.r_en)
        # Four-way merge: the smallest parent at the heads, with its children from every engine.
        best = Signal(KW)
        cand = Const((1 << KW) - 1, KW)
        for e in range(4):
            k = heads[e][:KW]
            cand = Mux(head_ok[e] & (k < cand), k, cand)
        m.d.comb += best.eq(cand)
        sel = [head_ok[e] & (heads[e][:KW] == best) for e in range(4)]
        mask8 = Cat(*[Mux(sel[e], heads[e][KW:KW + 2], 0) for e in range(4)])
        idx8 = Cat(*[heads[e][KW + 2 + j * IW:KW + 2 + (j + 1) * IW]
                     for e in range(4) for j in range(2)])
        all_ready = Const(1)
        any_head = Const(0)
        for e in range(4):
            all_ready = all_ready & (head_ok[e] | exhausted[e])
            any_head = any_head | head_ok[e]
        can = all_ready & any_head
        finished = all_ready & ~any_head       # implies a complete frame
        held_v = Signal()
        held = Signal(len(rec.payload))
        fire = can & (~held_v | rec.ready)
        for e in range(4):
            m.d.comb += pops[e].eq(fire & sel[e])
        with m.If(fire):
            m.d.sync += [held.eq(Cat(best, Const(0, 1), mask8, idx8)), held_v.eq(1)]
        with m.Elif(finished & rec.ready):
            m.d.sync += held_v.eq(0)
        with m.If(s.reset):
            m.d.sync += held_v.eq(0)
        m.d.comb += [
            rec.valid.eq(held_v & (can | finished)),
            rec.payload.eq(held | Mux(finished, 1 << KW, 0)),
            self.searching.eq((n != 0) & ~(finished & ~held_v) &
                              ~(held_v & (can | finished) & ~rec.ready)),
        ]

    def _search_up(self, m, s, rec):
        B, IW = self.coord_bits, self._IW
        n_coarse, n_fine = s.counts[0], s.counts[1]

        # Four lanes, one per parity class of the fine sites: each walks its own fine list and
        # the coarse keys together (both pointers only move forward) and queues, per fine site,
        # whether its parent exists and where.
        heads, head_ok, pops = [], [], []
        for e in range(4):
            ne = s.parity_counts[e]
            step_f, step_c = Signal(name=f"u{e}_stepf"), Signal(name=f"u{e}_stepc")
            fp, fdata, f_ok = self._reader(m, s.by_parity[e], step_f, s.reset, f"u{e}_f")
            cp, cdata, c_ok = self._reader(m, s.keys[0][e], step_c, s.reset, f"u{e}_c")
            q = fifo.SyncFIFO(width=1 + IW, depth=PAIR_DEPTH)
            m.submodules[f"parents{e}"] = q
            parent = _parent_key(fdata, B)
            ready = (fp < ne) & f_ok & c_ok
            present = cp < n_coarse
            behind = present & (cdata < parent)
            m.d.comb += [step_c.eq(ready & behind), step_f.eq(ready & ~behind & q.w_rdy),
                         q.w_en.eq(step_f),
                         q.w_data.eq(Cat(present & (cdata == parent), cp[:IW]))]
            heads.append(q.r_data)
            head_ok.append(q.r_rdy)
            pops.append(q.r_en)
        # The fine sites in order: each takes the answer at the head of its parity's queue.
        emit = Signal()
        fi, fine, fine_ok = self._reader(m, s.keys[1][0], emit & rec.ready, s.reset, "fine")
        which = Cat(fine[B], fine[2 * B])
        slot = Cat(fine[0], fine[B], fine[2 * B])
        head, ok = _select(heads, which), _select(head_ok, which)
        active = Signal()
        m.d.comb += [active.eq((fi < n_fine) & (s.complete | (fi + 1 < n_fine)) & fine_ok),
                     emit.eq(active & ok)]
        for e in range(4):
            m.d.comb += pops[e].eq(emit & rec.ready & (which == e))
        mask8 = Cat(*[head[0] & (slot == j) for j in range(8)])
        m.d.comb += [
            rec.valid.eq(emit),
            rec.payload.eq(Cat(fine, fi == n_fine - 1, mask8, Cat(*[head[1:]] * 8))),
            self.searching.eq(active & ~(emit & ~rec.ready)),
        ]

    # ---- compute --------------------------------------------------------------------------
    def _compute(self, m, s, records):
        """For each present slot (lowest first) and each fold, gather the input's features,
        XNOR-popcount them against ``W_slot`` by PE trees of SIMD lanes, accumulate signed sums
        per output channel and emit them (or their thresholds) after the last slot."""
        S, KW, IW = self.slots, self._KW, self._IW
        cin, cout, PE, SIMD = self.cin, self.cout, self.pe, self.simd
        NF, SF = cout // PE, cin // SIMD
        feat_mem = s.feats[0]
        en = Signal()
        pending = Signal()
        m.d.comb += en.eq(~pending)
        rec_w = len(records.payload)
        rec = Signal(rec_w)
        rec_key, rec_last = rec[:KW], rec[KW]
        base = KW + 1 + S
        rec_idx = Array(rec[base + k * IW:base + (k + 1) * IW] for k in range(S))
        remaining = Signal(S)
        loaded = Signal()
        U = self.offsets
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
        last_fold = (nf == NF - 1) & (sf == SF - 1)
        # A record without pairs (an up-sampled site without parent) still yields an output.
        issue_c = Signal()
        m.d.comb += issue_c.eq(en & loaded)
        last_item = issue_c & (last_fold & (rems[-1] == 0) | (remaining == 0))
        real = issue_c & (remaining != 0)
        first_item = Signal()
        m.d.comb += records.ready.eq(en & (~loaded | last_item))
        with m.If(s.reset):
            m.d.sync += loaded.eq(0)
        with m.Elif(records.valid & records.ready):
            m.d.sync += [rec.eq(records.payload), remaining.eq(records.payload[KW + 1:base]),
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
                    m.d.sync += remaining.eq(rems[-1])
        m.d.comb += self.busy.eq(real)

        frps = []
        for u in range(U):
            frp = feat_mem.read_port(transparent_for=())
            m.d.comb += [frp.addr.eq(rec_idx[picks[u]]), frp.en.eq(en)]
            frps.append(frp)
        ctrl = Signal(4 + len(nf) + len(sf) + KW + 1 + U)
        with m.If(en):
            m.d.sync += ctrl.eq(Cat(issue_c, first_item & issue_c, last_item, real,
                                    nf, sf, rec_key, rec_last,
                                    Cat(*[issue_c & v for v in valids])))
        trees = []          # trees[u][p]
        wmems = []
        for p_ in range(PE):
            words = []
            for k in range(S):
                for f in range(NF):
                    row = self.weights[k, f * PE + p_]
                    for j in range(SF):
                        words.append(bits_to_int(row[j * SIMD:(j + 1) * SIMD]))
            wmem = memory.Memory(shape=SIMD, depth=len(words), init=words)
            m.submodules[f"w{p_}"] = wmem
            wmems.append(wmem)
        s1_sf = ctrl[4 + len(nf):4 + len(nf) + len(sf)]
        for u in range(U):
            row_trees = []
            fslice = frps[u].data.word_select(s1_sf, SIMD) if SF > 1 else frps[u].data
            for p_ in range(PE):
                wrp = wmems[p_].read_port(transparent_for=())
                m.d.comb += [wrp.addr.eq((picks[u] * NF + nf) * SF + sf), wrp.en.eq(en)]
                tree = XnorPopcount(SIMD, self.reg_every, self.family)
                m.submodules[f"tree{p_}" if U == 1 else f"tree{u}_{p_}"] = tree
                m.d.comb += [tree.a.eq(fslice), tree.w.eq(wrp.data), tree.en.eq(en)]
                row_trees.append(tree)
            trees.append(row_trees)
        L = popcount_latency(SIMD, self.reg_every, self.family)
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
        c_frame_last = c[4 + len(nf) + len(sf) + KW]
        c_lanes = c[-U:]

        yw = self.sum_width
        acc = [Signal(signed(yw), name=f"y{o}") for o in range(cout)]
        nxt_acc = []
        for o in range(cout):
            f, p_ = divmod(o, PE)
            contrib = Signal(signed(yw), name=f"c{o}")
            terms = []
            for u in range(U):
                hit = c_lanes[u] & (c_nf == f) if NF > 1 else c_lanes[u]
                terms.append(Mux(hit, trees[u][p_].count * 2 - SIMD, 0))
            m.d.comb += contrib.eq(sum(terms))
            y_next = Signal(signed(yw), name=f"yn{o}")
            m.d.comb += y_next.eq(Mux(c_first, 0, acc[o]) + contrib)
            with m.If(en & c_valid):
                m.d.sync += acc[o].eq(y_next)
            nxt_acc.append(y_next)
        if self.output == "bits":
            vector = Cat(*[y >= int(t) for y, t in zip(nxt_acc, self.thresholds)])
        else:
            vector = Cat(*nxt_acc)
        result = Cat(vector, c_key, Const(0, 2), c_frame_last)
        held = Signal.like(result)
        # The frame's last output of a frame found bad becomes its error beat (the beats before
        # it in that frame are void).
        with m.If(pending):
            with m.If(s.out_free):
                m.d.sync += [self.o.payload.eq(Mux(s.bad & held[-1], s.error_beat, held)),
                             self.o.valid.eq(1), pending.eq(0)]
                with m.If(held[-1]):
                    m.d.comb += s.frame_done.eq(1)
        with m.Elif(c_valid & c_last):
            with m.If(s.out_free):
                m.d.sync += [self.o.payload.eq(Mux(s.bad & c_frame_last, s.error_beat, result)),
                             self.o.valid.eq(1)]
                with m.If(c_frame_last):
                    m.d.comb += s.frame_done.eq(1)
            with m.Else():
                m.d.sync += [held.eq(result), pending.eq(1)]


class SparseConv(SparseLayer):
    """The binary SSC 3x3x3 layer (``SparseLayer("ssc", ...)``)."""

    def __init__(self, weights, thresholds, max_voxels, coord_bits, folding, **kwargs):
        super().__init__("ssc", weights, thresholds, max_voxels, coord_bits, folding, **kwargs)
