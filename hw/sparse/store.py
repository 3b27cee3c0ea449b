"""The frame store of a sparse layer: voxel beats in, key and feature memories with read ports
for the search and the compute, the frame's limits checked."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import (ERROR_TOO_MANY, ERROR_UNSORTED, index_bits, select, voxel_in_layout,
                      voxel_key)
from .ports import read_port

__all__ = ["FrameStore", "PARTS", "PARITY_PART", "end_layout"]

PARTS = {"ssc": [(10, True)], "down": [(0, True)], "up": [(4, True), (1, False)],
         "pointwise": [(1, True)]}
"""Input parts of a frame per kind: (key-memory copies, whether it stores features)."""

PARITY_PART = {"down": 0, "up": 1}
"""The part whose sites are also kept in one list per parity ``(y & 1, z & 1)``."""


def end_layout(coord_bits):
    """A frame end the store asks the output to emit: the ``code`` (0 for an empty frame) and
    whether it is an ``error``."""
    return data.StructLayout({"code": coord_bits, "error": 1})


class FrameStore(wiring.Component):
    """Stores a frame's parts: keys (in ``copies`` memories each, so that several search
    engines read them at once), features, and for down/up-sampling one list per parity class.

    The store takes beats while it loads a frame; when the frame's last beat arrives it either
    runs the frame (the search and compute read it) or, for an empty or bad frame with nothing
    to compute, asks for the frame's single marker beat on ``end``. A frame with more than
    ``max_voxels`` voxels in a part, or keys not strictly increasing, is *bad*: the store stops
    writing, and ``bad`` and ``error_code`` tell the output to end the frame with an error beat.

    Members
    -------
    i : In(stream.Signature(voxel_in_layout(cin, coord_bits)))
    keys<p> : Out(ReadPort.Signature(...)).array(copies)
        Read ports of part ``p``'s key copies (words ``Cat(x, y, z)``).
    feats : Out(ReadPort.Signature(...)).array(offsets)
        Read ports of part 0's features.
    parity : Out(ReadPort.Signature(...)).array(4)
        Down: ``Cat(key, index)`` of the sites of each parity; up: the fine sites' keys.
    counts, parity_counts : Out(range(max_voxels + 1)).array(...)
        The words stored a cycle ago (a word written in cycle t is in a read port's data from
        t + 2 on): what the readers may read.
    complete : Out(1)
        No more words will come for this frame (its last beat was taken, or it was found bad).
    frame_done : Out(1)
        The frame ends in this cycle (its last output beat leaves): readers reset.
    bad, error_code : Out(1), Out(coord_bits)
    end : Out(stream.Signature(end_layout(coord_bits)))
        The marker beat of a frame without outputs.
    frame_end : In(1)
        The output's last beat of a frame with outputs leaves in this cycle.
    idle : Out(1)
        No frame in flight: the last one has ended and no beat of the next is taken yet.
    """

    def __init__(self, kind, cin, coord_bits, max_voxels, offsets):
        self.kind, self.cin, self.coord_bits, self.max_voxels = kind, cin, coord_bits, max_voxels
        self.parts = PARTS[kind]
        n_range = range(max_voxels + 1)
        kw = 3 * coord_bits
        members = {"i": In(stream.Signature(voxel_in_layout(cin, coord_bits))),
                   "feats": Out(read_port(max_voxels, cin)).array(offsets),
                   "counts": Out(n_range).array(len(self.parts)),
                   "complete": Out(1), "frame_done": Out(1), "bad": Out(1),
                   "error_code": Out(coord_bits),
                   "end": Out(stream.Signature(end_layout(coord_bits))), "frame_end": In(1),
                   "idle": Out(1)}
        for p, (copies, _) in enumerate(self.parts):
            if copies:
                members[f"keys{p}"] = Out(read_port(max_voxels, kw)).array(copies)
        if kind in PARITY_PART:
            entry = kw + index_bits(max_voxels) if kind == "down" else kw
            members["parity"] = Out(read_port(max_voxels, entry)).array(4)
            members["parity_counts"] = Out(n_range).array(4)
        super().__init__(members)

    @staticmethod
    def _serve(m, mem, port):
        """Connect one of our read-port members to a new read port of ``mem``."""
        rp = mem.read_port(transparent_for=())
        m.d.comb += [rp.addr.eq(port.addr), rp.en.eq(port.en), port.data.eq(rp.data)]

    def elaborate(self, platform):
        m = Module()
        B, N, cin = self.coord_bits, self.max_voxels, self.cin
        KW, IW = 3 * B, index_bits(N)
        parts = self.parts
        beat = self.i.payload
        feat, in_key, marker, last = beat.features, voxel_key(beat), beat.marker, beat.last

        single = len(parts) == 1
        part = Const(0, 1) if single else Signal(range(len(parts)))
        counts, prevs = [], []
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
            for r in range(copies):
                mem = memory.Memory(shape=KW, depth=N, init=[])
                m.submodules[f"keys{p}_{r}"] = mem
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(n), wp.data.eq(in_key), wp.en.eq(here)]
                self._serve(m, mem, getattr(self, f"keys{p}")[r])
            if with_feats:
                fmem = memory.Memory(shape=cin, depth=N, init=[])
                m.submodules[f"feats{p}"] = fmem
                fwp = fmem.write_port()
                m.d.comb += [fwp.addr.eq(n), fwp.data.eq(feat), fwp.en.eq(here)]
                for port in self.feats:
                    self._serve(m, fmem, port)
            with m.If(here):
                m.d.sync += [n.eq(n + 1), prev.eq(in_key)]
            counts.append(n)
            prevs.append(prev)
        m.d.comb += [n_cur.eq(select(counts, part)), prev_cur.eq(select(prevs, part))]
        # Down-sampling (its sites) and up-sampling (its fine sites): each site also goes to the
        # list of its parity (y & 1, z & 1), with its index for down-sampling, so that each
        # parity engine reads only its own sites. (The up-sampling lanes need no index: they
        # answer in the fine sites' order.)
        parity_counts = []
        if self.kind in PARITY_PART:
            pp = PARITY_PART[self.kind]
            parity = Cat(beat.y[0], beat.z[0])
            entry = Cat(in_key, counts[pp][:IW]) if self.kind == "down" else in_key
            for e in range(4):
                pn = Signal(range(N + 1), name=f"pn{e}")
                mem = memory.Memory(shape=len(entry), depth=N, init=[])
                m.submodules[f"parity{e}"] = mem
                wp = mem.write_port()
                hit = write & (parity == e) & (part == pp)
                m.d.comb += [wp.addr.eq(pn), wp.data.eq(entry), wp.en.eq(hit)]
                with m.If(hit):
                    m.d.sync += pn.eq(pn + 1)
                self._serve(m, mem, self.parity[e])
                parity_counts.append(pn)
        with m.If(too_many_now):
            m.d.sync += overflow.eq(1)
        with m.Elif(unsorted_now):
            m.d.sync += unsorted.eq(1)

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
        # Records of the valid prefix of a bad frame may be in flight; the output then ends the
        # frame with the error beat. With none (no site stored in the last part), and for an
        # empty frame, the store asks for the frame's marker beat. (Continuous assignments, not
        # a case in a process: Icarus leaves such a process unevaluated until its inputs
        # change.)
        asks_error = (state == ERROR) & (counts[final] == 0)
        m.d.comb += [self.end.valid.eq(asks_error | (state == EMPTY)),
                     self.end.payload.code.eq(Mux(asks_error, self.error_code, 0)),
                     self.end.payload.error.eq(asks_error)]
        frame_done = self.frame_done
        m.d.comb += frame_done.eq(self.frame_end | (self.end.valid & self.end.ready))
        started = Signal()
        m.d.comb += self.idle.eq((state == LOAD) & ~started)
        with m.If(fire_in):
            m.d.sync += started.eq(1)
        with m.If(frame_done):
            m.d.sync += [state.eq(LOAD), overflow.eq(0), unsorted.eq(0), started.eq(0)]
            if not single:
                m.d.sync += part.eq(0)
            m.d.sync += [n.eq(0) for n in counts + parity_counts]

        # What the readers may read: the counts of a cycle ago and whether the frame is
        # complete.
        avail = list(self.counts) + (list(self.parity_counts) if parity_counts else [])
        with m.If(frame_done):
            m.d.sync += [a.eq(0) for a in avail] + [self.complete.eq(0)]
        with m.Else():
            m.d.sync += [a.eq(n) for a, n in zip(avail, counts + parity_counts)]
            m.d.sync += self.complete.eq((state == RUN) | (state == ERROR))
        m.d.comb += [self.bad.eq(state == ERROR),
                     self.error_code.eq(Mux(overflow, ERROR_TOO_MANY, ERROR_UNSORTED))]
        return m
