"""The sparse layer: frame store, site search, record FIFO and compute wired together."""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from ..fifo import StreamFifo
from ..params import check_family, check_positive_int, construction
from .compute import SparseCompute
from .layouts import (KINDS, load_header_layout, record_layout, sum_width, voxel_in_layout,
                      voxel_out_layout)
from .loader import WeightLoader
from .search_resample import DownSearch, UpSearch
from .search_pointwise import PointwiseSearch
from .search_ssc import SscSearch
from .store import FrameStore
from ..block import StreamBlock

__all__ = ["SparseLayer", "SparseConv"]


class SparseLayer(StreamBlock):
    """A binary sparse convolution with its search in hardware (see :mod:`hw.sparse`).

    Parameters
    ----------
    kind : "ssc", "down", "up" or "pointwise"
    weights : array (slots, Cout, Cin) of 0/1, or None
        ``W_k``; ssc offsets ``k = (dx+1) + 3(dy+1) + 9(dz+1)``, down/up slots
        ``px + 2 py + 4 pz``. For ``output="bits"`` the rows of channels with a negative
        batch-norm scale are already flipped. None: the weights load at run time
        (:meth:`loadable`).
    thresholds : array (Cout,) of int, or None
        ``output="bits"``: output bit = ``y >= T``. Must be None for ``output="sums"``.
    max_voxels, coord_bits : int
        Frame (and part) limit and coordinate width ``B``.
    folding : Folding
        PE divides Cout, SIMD divides Cin.
    output : "bits" or "sums"
        Sums are ``sum_width(kind, Cin)``-bit two's complement, channel 0 lowest.
    shift : (sx, sy, sz), each -1, 0 or +1
        An ``ssc`` layer's window shift (SFSC's chosen window for the output channels of
        this layer): slot ``k`` reads the site at ``u + shift + offset_k``.
    offsets : int
        Kernel offsets computed in parallel (``offsets x PE`` trees of SIMD lanes, ``offsets``
        read ports on the feature memory and on each weight memory).
    family : None, "ecp5" or "ice40"
        Target family: ECP5 gets the carry-save popcount where it wins.

    Members
    -------
    i : In(stream.Signature(voxel_in_layout(Cin, B)))
        Features, x, y, z, marker, last.
    o : Out(stream.Signature(voxel_out_layout(out_width, B)))
        Bits or sums, x, y, z, marker, error, last.
    busy : Out(1)
        High in each cycle in which a (pair, fold) enters the XNOR-popcount pipeline.
    searching : Out(1)
        High in each cycle in which the search works (not waiting for the record FIFO): the
        search's own cycles.
    """

    def __init__(self, kind, weights, thresholds, max_voxels, coord_bits, folding,
                 output="bits", reg_every=1, record_depth=8, offsets=1, family=None,
                 shift=(0, 0, 0), channels=None):
        import numpy as np

        with construction(self):
            if kind not in KINDS:
                raise BnnforgeError(f"unknown sparse layer kind {kind!r}; choose one of "
                                    f"{', '.join(KINDS)}")
            slots = KINDS[kind]
            if weights is None:
                if channels is None:
                    raise BnnforgeError("a layer without weights loads them at run time: give "
                                        "its channels (SparseLayer.loadable)")
                if output != "sums":
                    raise BnnforgeError("a layer whose weights load at run time outputs sums")
                cin, cout = channels
                check_positive_int("input channels", cin)
                check_positive_int("output channels", cout)
                w = None
            else:
                w = np.asarray(weights)
                if w.ndim != 3 or w.shape[0] != slots:
                    raise BnnforgeError(f"{kind} weights must be {slots} x Cout x Cin, not "
                                        f"{w.shape}")
                _, cout, cin = w.shape
            check_positive_int("max voxels", max_voxels)
            check_positive_int("coordinate bits", coord_bits)
            if kind != "ssc" and coord_bits < 2:
                raise BnnforgeError(f"a {kind}-sampling layer needs at least 2 coordinate "
                                    f"bits, not {coord_bits}")
            if cout % folding.pe:
                raise BnnforgeError(f"PE={folding.pe} does not divide the {cout} output channels")
            if cin % folding.simd:
                raise BnnforgeError(f"SIMD={folding.simd} does not divide the {cin} input "
                                    f"channels")
            check_positive_int("offsets per cycle", offsets)
            shift = tuple(int(v) for v in shift) if np.ndim(shift) == 1 else shift
            if shift is None and weights is not None:
                raise BnnforgeError("a window shift loaded at run time needs weights loaded "
                                    "at run time (SparseLayer.loadable)")
            if shift is not None and (not isinstance(shift, tuple) or len(shift) != 3
                    or any(v not in (-1, 0, 1) for v in shift)):
                raise BnnforgeError(f"a window shift is three of -1, 0, +1 (SFSC), not {shift!r}")
            if shift is not None and any(shift) and kind != "ssc":
                raise BnnforgeError(f"only an ssc layer's window shifts, not a {kind} layer's")
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
            if weights is None:
                if coord_bits < 2:
                    raise BnnforgeError("a layer whose weights load at run time needs at "
                                        "least 2 coordinate bits (its load error code)")
                header = load_header_layout(cout // folding.pe, cin // folding.simd).size
                if header > cin + 3 * coord_bits:
                    raise BnnforgeError(f"the load header ({header} bits) does not fit a beat "
                                        f"of {cin} features and 3 x {coord_bits} coordinate "
                                        f"bits; widen the coordinates")
        self.kind, self.slots, self.output = kind, slots, output
        self.runtime_weights = weights is None
        self.weights = None if w is None else w.astype(np.uint8)
        self.thresholds = t
        self.cin, self.cout = cin, cout
        self.max_voxels, self.coord_bits = max_voxels, coord_bits
        self.pe, self.simd, self.reg_every = folding.pe, folding.simd, reg_every
        self.family, self.shift = family, shift
        self.record_depth, self.offsets = record_depth, offsets
        self.sum_width = sum_width(kind, cin)
        self.out_width = cout if output == "bits" else cout * self.sum_width
        super().__init__({"i": In(stream.Signature(voxel_in_layout(cin, coord_bits,
                                                                   load=self.runtime_weights))),
                          "o": Out(stream.Signature(voxel_out_layout(self.out_width,
                                                                     coord_bits))),
                          "busy": Out(1), "searching": Out(1)})

    @classmethod
    def loadable(cls, kind, cin, cout, max_voxels, coord_bits, folding, **kwargs):
        """A layer of up to ``cin`` x ``cout`` channels whose weights, channel counts (whole
        folds) and, for ssc, window shift load at run time: a *load frame* (beats with
        ``load`` set in ``tuser``; :class:`hw.sparse.loader.WeightLoader`) before the voxel
        frames it applies to; sums out (``cout`` of them, channels beyond the loaded ones 0).
        One design then serves every binary layer of a network up to those sizes."""
        return cls(kind, None, None, max_voxels, coord_bits, folding, output="sums",
                   channels=(cin, cout), shift=None if kind == "ssc" else (0, 0, 0), **kwargs)

    @property
    def user_in_bits(self):
        """Bits of the input ``tuser``: marker, and load for a loadable layer."""
        return 2 if self.runtime_weights else 1

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
        return {"ssc": 27, "pointwise": 1}.get(self.kind, 8)

    latency = None

    def make_compute(self):
        """The stage after the record FIFO (the XNOR-popcount compute)."""
        return SparseCompute(self.weights, self.thresholds, self.coord_bits, self.max_voxels,
                             self.pe, self.simd, self.offsets, self.out_width, self.sum_width,
                             self.reg_every, self.family,
                             shape=(self.slots, self.cout, self.cin))

    def elaborate(self, platform):
        m = Module()
        B, N = self.coord_bits, self.max_voxels
        m.submodules.store = store = FrameStore(self.kind, self.cin, B, N, self.offsets)
        search = (SscSearch(B, N, self.shift) if self.kind == "ssc" else
                  {"down": DownSearch, "up": UpSearch,
                   "pointwise": PointwiseSearch}[self.kind](B, N))
        m.submodules.search = search
        m.submodules.records = records = StreamFifo(
            record_layout(self.slots, B, N), self.record_depth, name="records")
        m.submodules.compute = compute = self.make_compute()
        if self.runtime_weights:
            self._load_path(m, store, search, compute)
        else:
            wiring.connect(m, wiring.flipped(self.i), store.i)
            wiring.connect(m, store.end, compute.end)
        wiring.connect(m, search.records, records.i)
        wiring.connect(m, records.o, compute.records)
        wiring.connect(m, compute.o, wiring.flipped(self.o))
        for u in range(self.offsets):
            wiring.connect(m, compute.feats[u], store.feats[u])
        m.d.comb += [store.frame_end.eq(compute.frame_end), compute.reset.eq(store.frame_done),
                     compute.bad.eq(store.bad), compute.error_code.eq(store.error_code),
                     search.complete.eq(store.complete), search.reset.eq(store.frame_done),
                     self.busy.eq(compute.busy), self.searching.eq(search.searching)]
        if self.kind == "ssc":
            for r in range(10):
                wiring.connect(m, search.keys[r], store.keys0[r])
            m.d.comb += search.count.eq(store.counts[0])
        elif self.kind == "pointwise":
            wiring.connect(m, search.keys, store.keys0[0])
            m.d.comb += search.count.eq(store.counts[0])
        else:
            for e in range(4):
                wiring.connect(m, search.parity[e], store.parity[e])
                m.d.comb += search.parity_counts[e].eq(store.parity_counts[e])
        if self.kind == "down":
            m.d.comb += search.count.eq(store.counts[0])
        if self.kind == "up":
            for e in range(4):
                wiring.connect(m, search.coarse[e], store.keys0[e])
            wiring.connect(m, search.fine, store.keys1[0])
            m.d.comb += [search.n_coarse.eq(store.counts[0]), search.n_fine.eq(store.counts[1])]
        return m

    def _load_path(self, m, store, search, compute):
        """Load beats to the weight loader, voxel beats to the store (held while a load
        frame is in progress); the loader's end beat and the store's share the output."""
        from amaranth import Mux

        NF, SF = self.cout // self.pe, self.cin // self.simd
        m.submodules.loader = loader = WeightLoader(
            self.kind, self.slots, self.cin, self.coord_bits, self.pe, self.simd, NF, SF,
            compute.depth)
        beat = self.i.payload
        to_load = beat.load
        m.d.comb += [
            loader.i.payload.eq(beat), loader.i.valid.eq(self.i.valid & to_load),
            store.i.valid.eq(self.i.valid & ~to_load & ~loader.busy),
            self.i.ready.eq(Mux(to_load, loader.i.ready, store.i.ready & ~loader.busy)),
            loader.idle.eq(store.idle),
            compute.w_addr.eq(loader.w_addr), compute.w_data.eq(loader.w_data),
            compute.w_en.eq(loader.w_en), compute.nf_last.eq(loader.nf_last),
            compute.sf_last.eq(loader.sf_last),
            compute.end.valid.eq(store.end.valid | loader.end.valid),
            compute.end.payload.eq(Mux(loader.end.valid, loader.end.payload,
                                       store.end.payload)),
            loader.end.ready.eq(compute.end.ready),
            store.end.ready.eq(compute.end.ready & ~loader.end.valid)]
        for f in ("features", "x", "y", "z", "marker", "last"):
            m.d.comb += getattr(store.i.payload, f).eq(getattr(beat, f))
        if self.kind == "ssc":
            m.d.comb += [a.eq(b) for a, b in zip(search.shift_in, loader.shift)]


class SparseConv(SparseLayer):
    """The binary SSC 3x3x3 layer (``SparseLayer("ssc", ...)``)."""

    def __init__(self, weights, thresholds, max_voxels, coord_bits, folding, **kwargs):
        super().__init__("ssc", weights, thresholds, max_voxels, coord_bits, folding, **kwargs)
