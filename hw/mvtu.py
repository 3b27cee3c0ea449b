"""Matrix-vector-threshold unit: a binary fully connected layer folded over PE x SIMD."""

from amaranth import Module, Signal, Cat, Mux
from amaranth.lib import memory, stream
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from quant.layout import FoldedLayout, Folding, threshold_file, weight_file
from .params import check_family, check_positive_int, construction
from .popcount import XnorPopcount, popcount_latency
from .block import StreamBlock
from .bram_ecp5 import MAX_DEPTH, BlockRom

__all__ = ["MVTU", "BLOCK_RAM_BITS", "BLOCK_RAM_MIN_DEPTH"]


def _mem_name(filename):
    return filename[:-len(".mem")]


BLOCK_RAM_BITS = 4096
"""Weight memories of at least this many bits get a block RAM hint in designs for iCE40."""

BLOCK_RAM_MIN_DEPTH = 64
"""ECP5 weight memories of at least this many words (up to 1,024) go to DP16KD block RAM with
its output register; shallower ones are logic read into a register (a 16-word ROM is one LUT4
a bit, while a block RAM would hold 16 of its 512 words). Deeper ROMs in logic lose more than
they save: the digits MLP with its 64-word memories in LUTs placed at 109 MHz, the address
register driving thousands of LUTs across the die."""


class MVTU(StreamBlock):
    """A binary fully connected layer: ``rows`` outputs of ``popcount(XNOR(x, W_r))`` compared
    with per-row thresholds (or, for a scores layer, the popcounts themselves).

    The layer is folded over ``pe`` processing elements and ``simd`` input lanes (see
    :mod:`quant.layout`). Each vector takes ``(rows / pe) * (cols / simd)`` cycles; a second
    vector is buffered while the first is computed, so the initiation interval in steady state
    is the same number. Weights and thresholds sit in on-chip memories named after their memory
    files, so the generated Verilog can load them with ``$readmemh``.

    Parameters
    ----------
    layer : quant.bitstream.DenseLayer
        Weights (0/1, already flipped) and thresholds, or no thresholds for a scores layer.
    folding : quant.layout.Folding
        PE and SIMD; PE must divide the rows and SIMD the columns.
    reg_every : int
        Adder levels between register stages of each PE's popcount tree.
    family : None, "ecp5" or "ice40"
        Target family: ECP5 gets the carry-save popcount where it wins
        (:class:`hw.popcount.XnorPopcount`).

    Members
    -------
    i : In(stream.Signature(cols))
        One whole input vector a transfer, element ``j`` at bit ``j``.
    o : Out(stream.Signature(rows * element_width))
        One whole output vector a transfer: row ``r`` at bits ``[r * ew, (r + 1) * ew)`` with
        ``ew = 1`` for bits and ``bits_for(cols)`` for scores.
    busy : Out(1)
        High in each cycle in which a (neuron fold, synapse fold) is issued: counting it
        measures the unit's own work per vector, whatever the units around it do.

    The inputs may be unsigned ``B``-bit integers (``layer.input_bits``, a CNN's first layer):
    element ``j`` at bits ``[j B, (j + 1) B)``; each PE then has ``B`` popcount trees, one a bit
    plane (the XNOR of the weight bit with bit ``b`` of every lane), summed with their place
    values in one more register stage: ``S = sum_b 2^b popcount_b``
    (:class:`quant.bitstream.DenseLayer`).

    input_buffer : bool
        False leaves out the buffer of the next vector (``cols`` flip-flops): the unit then
        takes a vector only when it starts computing it, so the block before must hold it
        (narrow ports' width converter does).

    Raises
    ------
    FoldingError
        When PE does not divide ``rows`` or SIMD does not divide ``cols``.
    """

    def __init__(self, layer, folding, reg_every=1, family=None, input_buffer=True):
        with construction(self):
            check_positive_int("reg_every", reg_every)
            check_family(family)
            self.layout = FoldedLayout(layer.rows, layer.cols, folding, layer.name)
        self.layer = layer
        self.name = layer.name
        self.reg_every, self.family = reg_every, family
        self.input_buffer = input_buffer
        self.element_width = 1 if layer.output == "bits" else layer.score_width
        self.input_bits = layer.input_bits
        super().__init__({"i": In(stream.Signature(layer.cols * layer.input_bits)),
                          "o": Out(stream.Signature(layer.rows * self.element_width)),
                          "busy": Out(1)})

    @property
    def layout_folding(self):
        return Folding(self.pe, self.simd)

    @property
    def pe(self):
        return self.layout.pe

    @property
    def simd(self):
        return self.layout.simd

    @property
    def cycles_per_vector(self):
        """Initiation interval in steady state: ``(rows / PE) * (cols / SIMD)``."""
        return self.layout.cycles_per_vector

    @property
    def tree_latency(self):
        """The popcount tree's latency, plus the register of the place-value sum of the bit
        planes for multi-bit inputs."""
        return (popcount_latency(self.simd, self.reg_every, self.family)
                + (1 if self.input_bits > 1 else 0))

    @property
    def weight_latency(self):
        """Cycles of a weight read: 2 in ECP5 designs (the block RAM's output register, or a
        register after a small memory), 1 otherwise."""
        return 2 if self.family == "ecp5" else 1

    def _weight_cells(self, depth):
        """How a PE's weight memory is built: "bram" (DP16KD cells with their output register,
        :class:`hw.bram_ecp5.BlockRom`), "logic+reg" (a memory Yosys maps as it likes, then a
        register), or "memory" (an Amaranth memory with a hint, read in one cycle)."""
        if self.family == "ecp5":
            if BLOCK_RAM_MIN_DEPTH <= depth <= MAX_DEPTH:
                return "bram"
            return "logic+reg"
        return "memory"

    def block_ram_memories(self):
        """Memory files whose contents sit in DP16KD ``INITVAL`` parameters (not read by
        ``$readmemh``)."""
        depth = self.layout.neuron_folds * self.layout.synapse_folds
        if self._weight_cells(depth) != "bram":
            return []
        return [weight_file(self.layer.name, p) for p in range(self.pe)]

    @property
    def latency(self):
        """Cycles from an input transfer into an idle unit to its output being valid:
        ``(rows / PE) * (cols / SIMD) + tree_latency + weight_latency + 4`` (input buffer,
        weight read, accumulate, threshold, fold register, output register); one fewer without
        the input buffer."""
        return (self.cycles_per_vector + self.tree_latency + self.weight_latency
                + (4 if self.input_buffer else 3))

    def _weight_ram_attrs(self, bits):
        """Weight memories of a design for a family go to block RAM from BLOCK_RAM_BITS on
        (read-only memories would otherwise become LUT logic: the spine demo's weights took
        most of its 14,504 LUT4 on ECP5); smaller ones, and generic designs, are left to the
        synthesis tool."""
        if self.family is not None and bits >= BLOCK_RAM_BITS:
            return {"ram_style": "block"}
        return None

    def memory_files(self):
        """Names of the memory files this unit's Verilog reads."""
        names = [weight_file(self.layer.name, p) for p in range(self.pe)]
        if self.layer.output == "bits":
            names += [threshold_file(self.layer.name, p) for p in range(self.pe)]
        return names

    def elaborate(self, platform):
        m = Module()
        lay, layer = self.layout, self.layer
        NF, SF, PE, SIMD = lay.neuron_folds, lay.synapse_folds, lay.pe, lay.simd
        ew = self.element_width
        scores = layer.output == "scores"
        B = self.input_bits

        # `en`: the compute pipeline advances; it is low while a finished vector waits in
        # `collect` (`pending`). Three registers hold the same fact: `pending` for the few
        # gates of the output stage, `en` for the enables of thousands of registers, `ram_en`
        # for the block RAMs, which sit in columns away from the logic. Each is a register
        # (no gate between it and its loads), and `ram_en` is computed from `en` rather than
        # `pending` so that synthesis does not merge it with `en` (each is placed near its own
        # loads).
        en = Signal(init=1)
        ram_en = Signal(init=1)
        pending = Signal()

        # Input: one buffered vector (`inbuf`) and the one being computed (`cur`).
        inbuf, inbuf_full, cur = Signal(layer.cols * B), Signal(), Signal(layer.cols * B)

        # Issue: one (neuron fold, synapse fold) a cycle.
        active = Signal()
        nf, sf = Signal(range(NF)), Signal(range(SF))
        D = NF * SF          # issues (folds) a vector
        addr = Signal(range(D))
        last_issue = Signal()
        # `at_end`: `addr` is at the vector's last (neuron, synapse) fold. A register, so that
        # `load` (which enables the whole `cur` register) is one LUT of registers.
        at_end = Signal(init=int(D == 1))
        # `near_end`: `addr` is one before the last fold (the next value of `at_end` when the
        # issue advances), also a register, so that `load`'s next value is two LUTs deep.
        near_end = Signal(init=int(D == 2))
        # `load` (take `inbuf` into `cur`: it enables the whole `cur` register) is
        # `en & inbuf_full & (~active | last_issue)`, kept as a register of its own computed
        # from the next values of those registers, so that it reaches its hundreds of loads
        # with no gate on the way.
        load = Signal()
        en_next, full_next, active_next, at_end_next = Signal(), Signal(), Signal(), Signal()
        m.d.comb += last_issue.eq(active & at_end)
        # `turn` is `en & active` (a register from their next values when `load` is one).
        turn = Signal()
        if self.input_buffer:
            m.d.sync += turn.eq(en_next & active_next)
        else:
            m.d.comb += turn.eq(en & active)
        # `cur` turns by SIMD bits a fold, so the fold's slice is always its low SIMD bits (no
        # SF-to-1 multiplexer); after SF folds it is back where it started for the next
        # neuron fold.
        with m.If(load):
            m.d.sync += [cur.eq(inbuf), active.eq(1)]
            if self.input_buffer:
                m.d.sync += inbuf_full.eq(0)
        if SF > 1:
            with m.Elif(turn):
                m.d.sync += cur.eq(Cat(cur[SIMD * B:], cur[:SIMD * B]))
        # With two cycles or more a vector, `ready` is the buffer's own flag (a register: no
        # path from this unit's issue logic back into the unit before it); a unit that takes a
        # vector every cycle takes the next one in the cycle it hands its vector on.
        if not self.input_buffer:
            # No buffer: `inbuf` is the input payload itself, taken when computing starts.
            m.d.comb += [inbuf.eq(self.i.payload), inbuf_full.eq(self.i.valid),
                         self.i.ready.eq(en & (~active | last_issue)),
                         load.eq(self.i.valid & self.i.ready)]
        elif self.cycles_per_vector >= 2:
            m.d.comb += self.i.ready.eq(~inbuf_full)
        else:
            m.d.comb += self.i.ready.eq(~inbuf_full | load)
        if self.input_buffer:
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [inbuf.eq(self.i.payload), inbuf_full.eq(1)]
        with m.If(en & active):
            m.d.sync += [
                sf.eq(0 if SF == 1 else (sf + 1) % SF),
                addr.eq(0 if D == 1 else (addr + 1) % D),
            ]
            if D > 1:
                m.d.sync += [at_end.eq(near_end),
                             near_end.eq(addr == (D - 3 if D >= 3 else 1))]
            with m.If(sf == SF - 1):
                m.d.sync += nf.eq(0 if NF == 1 else (nf + 1) % NF)
            with m.If(last_issue & ~load):
                m.d.sync += active.eq(0)
        m.d.comb += [
            full_next.eq((self.i.valid & self.i.ready) | (inbuf_full & ~load)),
            active_next.eq(load | (active & ~(en & last_issue))),
            at_end_next.eq(Mux(en & active, near_end, at_end) if D > 1 else 1),
        ]
        if self.input_buffer:
            m.d.sync += load.eq(en_next & full_next & (~active_next | at_end_next))

        m.d.comb += self.busy.eq(en & active)

        # Stage 1: weight words and the input slice.
        ctrl_w = 4 + len(nf)
        s1 = Signal(ctrl_w)
        slice_ = Signal(SIMD * B)
        with m.If(en):
            m.d.sync += [
                s1.eq(Cat(active, sf == 0, sf == SF - 1, last_issue, nf)),
                slice_.eq(cur[:SIMD * B]),
            ]
        # A weight read of two cycles: the input slice and the control wait one more cycle.
        for k in range(self.weight_latency - 1):
            s1_d, slice_d = Signal.like(s1, name=f"s1_d{k}"), Signal.like(slice_, name=f"slice_d{k}")
            with m.If(en):
                m.d.sync += [s1_d.eq(s1), slice_d.eq(slice_)]
            s1, slice_ = s1_d, slice_d
        cells = self._weight_cells(D)
        trees = []
        for p, words_p in enumerate(lay.weight_words(layer.weights)):
            name = _mem_name(weight_file(layer.name, p))
            if cells == "memory":
                mem = memory.Memory(shape=SIMD, depth=D, init=words_p,
                                    attrs=self._weight_ram_attrs(SIMD * D))
                m.submodules[name] = mem
                rp = mem.read_port()
            else:
                rp = BlockRom(SIMD, D, words_p, "ecp5" if cells == "bram" else "logic",
                              name=name)
                m.submodules[name] = rp
            m.d.comb += [rp.addr.eq(addr), rp.en.eq(ram_en if cells == "bram" else en)]
            planes = []
            for b in range(B):
                tree = XnorPopcount(SIMD, self.reg_every, self.family)
                m.submodules[f"tree{p}" if B == 1 else f"tree{p}_b{b}"] = tree
                plane = slice_ if B == 1 else Cat(*(slice_[j * B + b] for j in range(SIMD)))
                m.d.comb += [tree.a.eq(plane), tree.w.eq(rp.data), tree.en.eq(en)]
                planes.append(tree.count)
            if B == 1:
                trees.append(planes[0])
            else:
                wsum = Signal(bits_for(SIMD * ((1 << B) - 1)), name=f"wsum{p}")
                with m.If(en):
                    m.d.sync += wsum.eq(sum(c << b for b, c in enumerate(planes)))
                trees.append(wsum)
        L = self.tree_latency

        # Control travels beside the trees.
        chain = [s1]
        for k in range(L):
            nxt = Signal(ctrl_w, name=f"ctrl{k + 1}")
            with m.If(en):
                m.d.sync += nxt.eq(chain[-1])
            chain.append(nxt)
        c = chain[-1]
        c_valid, c_first, c_last, c_final, c_nf = c[0], c[1], c[2], c[3], c[4:]

        # Accumulate; the totals of a neuron fold are registered, then compared with the
        # thresholds in the next cycle (an adder and a comparator in series do not fit one
        # 200 MHz cycle on ECP5).
        acc_w = bits_for(layer.max_sum)
        totals = []
        for p, count in enumerate(trees):
            acc = Signal(acc_w, name=f"acc{p}")
            total = Signal(acc_w, name=f"total{p}")
            # `acc` is cleared after the last synapse fold of a neuron fold (a synchronous
            # reset of its register), so the adder needs no multiplexer before it.
            m.d.comb += total.eq(acc + count)
            with m.If(en & c_valid):
                m.d.sync += acc.eq(Mux(c_last, 0, total))
            totals.append(total)
        t_reg = Signal(PE * acc_w)
        t_valid, t_final = Signal(), Signal()
        with m.If(en):
            m.d.sync += [t_reg.eq(Cat(*totals)), t_valid.eq(c_valid & c_last),
                         t_final.eq(c_final)]
        results = []
        for p in range(PE):
            total = t_reg.word_select(p, acc_w)
            if scores:
                results.append(total)
            else:
                name = _mem_name(threshold_file(layer.name, p))
                tmem = memory.Memory(shape=layer.threshold_width, depth=NF,
                                     init=lay.threshold_words(layer.thresholds)[p])
                m.submodules[name] = tmem
                trp = tmem.read_port()
                m.d.comb += [trp.addr.eq(c_nf), trp.en.eq(en)]
                results.append(total >= trp.data)
        # A register between the thresholds and the collection of the folds: the compare ends
        # one path, the collection of the folds (and the next unit) starts the next.
        r_out = Signal(len(Cat(*results)))
        # `r_done`: the vector's last fold is in `r_out` (one flag, so that loading the output
        # register is one LUT of registers).
        r_valid, r_done = Signal(), Signal()
        with m.If(en):
            m.d.sync += [r_out.eq(Cat(*results)), r_valid.eq(t_valid),
                         r_done.eq(t_valid & t_final)]

        # Collect the folds of a vector; hand it to the output register. Folds arrive in
        # order and shift in at the top: once the last one is in, fold `nf` sits at slot `nf`
        # (no decoder of the fold index on the write enables).
        width = layer.rows * ew
        slot = PE * ew
        collect = Signal(width)
        vec = Cat(collect[slot:], r_out) if NF > 1 else r_out
        # The enable of `collect`, `en & r_valid`, as a register computed from the next
        # values of both (no gate between it and the wide register).
        collect_en = Signal()
        m.d.sync += collect_en.eq(en_next & Mux(en, t_valid, r_valid))
        with m.If(collect_en):
            m.d.sync += collect.eq(vec)
        out_free = ~self.o.valid | self.o.ready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(pending):
            with m.If(out_free):
                m.d.sync += [self.o.payload.eq(collect), self.o.valid.eq(1)]
        with m.Elif(r_done):
            with m.If(out_free):
                m.d.sync += [self.o.payload.eq(vec), self.o.valid.eq(1)]
        pending_next = Signal()
        m.d.comb += pending_next.eq(~out_free & (pending | r_done))
        m.d.comb += en_next.eq(~pending_next)
        m.d.sync += [pending.eq(pending_next), en.eq(~pending_next),
                     ram_en.eq(~(~out_free & (~en | r_done)))]
        return m
