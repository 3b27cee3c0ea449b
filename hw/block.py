"""The interface every block of a stream pipeline declares."""

from amaranth.lib import wiring

__all__ = ["StreamBlock"]


class StreamBlock(wiring.Component):
    """A block of an :class:`~hw.axis.AxisTop` pipeline.

    Its signature has an input stream ``i``, an output stream ``o`` and ``busy`` (high in each
    cycle in which the block does work). Besides, every block states:

    Members
    -------
    name : str or None
        The block's name in the design (and in ``design.json``).
    latency : int or None
        Cycles from an input transfer into the idle block to its output being valid; None
        where it depends on the data (sparse layers).
    cycles_per_vector : int
        The cycle model: cycles between two vectors a block can accept at full rate.
    pe, simd : int or None
        The folding of a block that has one.
    """

    name = None
    latency = None
    cycles_per_vector = 1
    pe = None
    simd = None

    def block_ram_memories(self):
        """Memory files whose words sit in block-RAM cell parameters (``INITVAL``) instead of
        being read by ``$readmemh``; the files are still written, for reference."""
        return []

    def describe(self, index):
        """The block's entry in ``design.json`` (``index``: its place in the pipeline)."""
        return {"name": self.name or f"block{index}", "pe": self.pe, "simd": self.simd,
                "cycles_model": self.cycles_per_vector, "latency": self.latency}
