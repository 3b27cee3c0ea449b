"""Mean pooling and unpooling of fixed-point codes over a sparse layer's kernel map (the
``pool`` and ``unpool`` ops of :mod:`golden.bscnet_fixed`): the down-sampling search gives each
coarse site its present children, the up-sampling search each fine site its parent; the
compute sums the codes of a site's present inputs and scales the sum by the reciprocal of
their number, ``sat(rs(sum * r[n], pool_frac))`` (a parent alone: its codes exactly)."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from quant.fixed import saturate
from ..params import check_positive_int, construction
from .compute import output_stage
from .layouts import KINDS, PAIRS_PER_SITE, record_layout, voxel_in_layout, voxel_out_layout
from .layer import SparseLayer
from .ports import read_port
from .store import end_layout

__all__ = ["SparseMean", "MeanCompute"]


class MeanCompute(wiring.Component):
    """For each record, the codes of its present slots (one a cycle, lowest first) summed per
    channel and scaled by ``r[count]``; the same ports as
    :class:`~hw.sparse.compute.SparseCompute`. With ``max_inputs`` 1 (unpooling: a fine site
    has one parent) the mean is the one input's codes (``r[1] = 2^pool_frac``), or 0 without
    one: no multipliers."""

    def __init__(self, channels, fmt, coord_bits, max_voxels, slots, max_inputs=None):
        self.channels, self.fmt, self.slots = channels, fmt, slots
        self.max_inputs = slots if max_inputs is None else max_inputs
        self.coord_bits, self.max_voxels = coord_bits, max_voxels
        width = channels * fmt.width
        super().__init__({
            "records": In(stream.Signature(record_layout(slots, coord_bits, max_voxels))),
            "feats": In(read_port(max_voxels, width)).array(1),
            "o": Out(stream.Signature(voxel_out_layout(width, coord_bits))),
            "end": In(stream.Signature(end_layout(coord_bits))),
            "reset": In(1), "bad": In(1), "error_code": In(coord_bits), "frame_end": Out(1),
            "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        S, C, fmt = self.slots, self.channels, self.fmt
        w = fmt.width
        records = self.records
        pending = Signal()
        en = ~pending
        rec = Signal(records.payload.shape())
        remaining = Signal(S)
        loaded = Signal()
        low = Signal(S)
        m.d.comb += low.eq(remaining & (~remaining + 1))
        pick = Signal(range(S))
        for k in range(S):
            with m.If(low[k]):
                m.d.comb += pick.eq(k)
        rest = remaining & ~low
        issue = en & loaded
        last_item = issue & (rest == 0)
        first = Signal()
        m.d.comb += records.ready.eq(en & (~loaded | last_item))
        with m.If(self.reset):
            m.d.sync += loaded.eq(0)
        with m.Elif(records.valid & records.ready):
            m.d.sync += [rec.eq(records.payload), remaining.eq(records.payload.mask),
                         loaded.eq(1), first.eq(1)]
        with m.Elif(last_item):
            m.d.sync += loaded.eq(0)
        with m.If(issue & ~last_item):
            m.d.sync += [first.eq(0), remaining.eq(rest)]
        real = issue & (remaining != 0)
        m.d.comb += self.busy.eq(real)
        index = Signal(len(rec.index[0]))
        for k in range(S):
            with m.If(pick == k):
                m.d.comb += index.eq(rec.index[k])
        port = self.feats[0]
        m.d.comb += [port.addr.eq(index), port.en.eq(en)]
        # The read's cycle: what travels beside the codes.
        c_valid, c_first, c_last, c_real, c_frame_last = (Signal(name=n) for n in (
            "c_valid", "c_first", "c_last", "c_real", "c_frame_last"))
        c_key = Signal(len(rec.key))
        with m.If(en):
            m.d.sync += [c_valid.eq(issue), c_first.eq(first & issue), c_last.eq(last_item),
                         c_real.eq(real), c_key.eq(rec.key), c_frame_last.eq(rec.last)]
        codes = data.ArrayLayout(signed(w), C)(port.data)
        sw = w + 4
        sums = [Signal(signed(sw), name=f"sum{c}") for c in range(C)]
        count = Signal(range(S + 1))
        nxt_count = Signal(range(S + 1))
        m.d.comb += nxt_count.eq(Mux(c_first, 0, count) + c_real)
        recip = [0] + [int(v) for v in fmt.reciprocals()[1:S + 1]]
        r = Signal(unsigned(fmt.pool_frac + 2))
        with m.Switch(nxt_count):
            for n, v in enumerate(recip):
                with m.Case(n):
                    m.d.comb += r.eq(v)
        half = 1 << (fmt.pool_frac - 1)
        # A register stage between the sums and the scaling multiply.
        d_valid, d_last, d_frame_last = Signal(), Signal(), Signal()
        d_key = Signal(len(rec.key))
        d_r = Signal(unsigned(fmt.pool_frac + 2))
        d_sums = [Signal(signed(sw), name=f"dsum{c}") for c in range(C)]
        outs = []
        for c in range(C):
            nxt = Signal(signed(sw), name=f"nsum{c}")
            m.d.comb += nxt.eq(Mux(c_first, 0, sums[c]) + Mux(c_real, codes[c], 0))
            with m.If(en & c_valid):
                m.d.sync += sums[c].eq(nxt)
            with m.If(en):
                m.d.sync += d_sums[c].eq(nxt)
            o = Signal(signed(w), name=f"mean{c}")
            if self.max_inputs == 1:
                m.d.comb += o.eq(d_sums[c])         # a sum of at most one code
            else:
                m.d.comb += o.eq(saturate((d_sums[c] * d_r + half) >> fmt.pool_frac, w))
            outs.append(o)
        with m.If(en & c_valid):
            m.d.sync += count.eq(nxt_count)
        with m.If(en):
            m.d.sync += [d_valid.eq(c_valid), d_last.eq(c_last), d_frame_last.eq(c_frame_last),
                         d_key.eq(c_key), d_r.eq(r)]
        output_stage(m, self, pending, d_valid, d_last, d_frame_last, d_key, Cat(*outs))
        return m


class SparseMean(SparseLayer):
    """The mean of the codes of each site's inputs over a down-sampling (``pool``: coarse sites
    from their children) or up-sampling (``unpool``: fine sites from their parent) kernel map,
    with the search in hardware (:class:`~hw.sparse.SparseLayer`'s store and searches).

    Parameters
    ----------
    kind : "down" or "up"
    channels : int
        Codes a site (the feature field holds ``channels x fmt.width`` bits, channel 0 lowest).
    fmt : golden.bscnet_fixed.SparseFixedPoint
    max_voxels, coord_bits : int
    """

    def __init__(self, kind, channels, fmt, max_voxels, coord_bits, record_depth=8):
        with construction(self):
            if kind not in ("down", "up"):
                raise BnnforgeError(f"a mean layer pools over a down- or up-sampling map, not "
                                    f"{kind!r}")
            check_positive_int("channels", channels)
            check_positive_int("max voxels", max_voxels)
            if coord_bits < 2:
                raise BnnforgeError(f"a {kind}-sampling layer needs at least 2 coordinate "
                                    f"bits, not {coord_bits}")
        self.kind, self.slots, self.output = kind, KINDS[kind], "mean"
        self.channels, self.fmt = channels, fmt
        self.cin = self.out_width = channels * fmt.width
        self.cout, self.sum_width = channels, fmt.width
        self.max_voxels, self.coord_bits = max_voxels, coord_bits
        self.pe, self.simd, self.offsets, self.record_depth = None, None, 1, record_depth
        self.weights, self.thresholds, self.family, self.reg_every = None, None, None, 1
        self.runtime_weights = False
        wiring.Component.__init__(self, {
            "i": In(stream.Signature(voxel_in_layout(self.cin, coord_bits))),
            "o": Out(stream.Signature(voxel_out_layout(self.out_width, coord_bits))),
            "busy": Out(1), "searching": Out(1)})

    @property
    def folds(self):
        return 1

    def make_compute(self):
        return MeanCompute(self.channels, self.fmt, self.coord_bits, self.max_voxels,
                           self.slots, PAIRS_PER_SITE[self.kind])
