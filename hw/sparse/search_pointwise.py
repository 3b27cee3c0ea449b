"""The search of a pointwise (1x1x1) layer: every stored site is its own output, with itself
at slot 0."""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import record_layout
from .ports import read_port, walker

__all__ = ["PointwiseSearch"]


class PointwiseSearch(wiring.Component):
    """One record a stored site, in the frame's order: its key, mask ``1`` and its own index.
    A site is searched once it is stored and either a later one is or the frame is complete
    (so that its record knows whether it is the frame's last).

    Members
    -------
    keys : In(read_port(max_voxels, 3 * coord_bits))
    count, complete, reset : In(range(max_voxels + 1)), In(1), In(1)
    records : Out(stream.Signature(record_layout(1, ...)))
    searching : Out(1)
    """

    def __init__(self, coord_bits, max_voxels):
        self.coord_bits, self.max_voxels = coord_bits, max_voxels
        super().__init__({
            "keys": In(read_port(max_voxels, 3 * coord_bits)),
            "count": In(range(max_voxels + 1)), "complete": In(1), "reset": In(1),
            "records": Out(stream.Signature(record_layout(1, coord_bits, max_voxels))),
            "searching": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n, rec = self.count, self.records
        advance = rec.valid & rec.ready
        ci, key, ok = walker(m, self.keys, advance, self.reset, "site", self.max_voxels)
        active = (ci < n) & (self.complete | (ci + 1 < n)) & ok
        m.d.comb += [rec.valid.eq(active), rec.payload.key.eq(key),
                     rec.payload.last.eq(ci == n - 1), rec.payload.mask.eq(1),
                     rec.payload.index.eq(ci), self.searching.eq(active & rec.ready)]
        return m
