"""Read ports between the frame store and its readers, and a pointer that walks one."""

from amaranth import Mux, Signal
from amaranth.lib import memory

__all__ = ["read_port", "walker"]


def read_port(max_voxels, shape):
    """The signature of a read port of a ``max_voxels``-word memory of ``shape`` words, as its
    memory sees it (``Out`` on the store, ``In`` on a reader)."""
    return memory.ReadPort.Signature(addr_width=(max_voxels - 1).bit_length(), shape=shape)


def walker(m, port, step, reset, name, max_voxels):
    """A pointer ``p`` over a read port whose data is always the word at ``p`` (``p + step``
    is presented as the next address), and a flag for "data valid" a cycle after a reset.
    Returns ``(p, data, ok)``."""
    p = Signal(range(max_voxels + 1), name=f"{name}_p")
    ok = Signal(name=f"{name}_ok")
    m.d.comb += [port.addr.eq(Mux(step, p + 1, p)), port.en.eq(1)]
    with m.If(reset):
        m.d.sync += [p.eq(0), ok.eq(0)]
    with m.Else():
        m.d.sync += [p.eq(p + step), ok.eq(1)]
    return p, port.data, ok
