"""Fork and join of streams, obeying the stream rules (a valid never waits for a ready)."""

from amaranth import Signal

__all__ = ["fork", "join_ready"]


def fork(m, src, sinks, name="fork"):
    """Eager fork of stream ``src`` into ``sinks``: each sink takes the payload when it is
    ready; ``src`` is released when every sink has taken it. ``sinks`` are ``(valid, ready)``
    pairs of signals; the caller connects their payloads."""
    done = [Signal(name=f"{name}_done{k}") for k in range(len(sinks))]
    taken = []
    for (valid, ready), d in zip(sinks, done):
        m.d.comb += valid.eq(src.valid & ~d)
        taken.append(d | ready)
    all_taken = taken[0]
    for t in taken[1:]:
        all_taken = all_taken & t
    m.d.comb += src.ready.eq(all_taken)
    for (valid, ready), d in zip(sinks, done):
        with m.If(src.valid & src.ready):
            m.d.sync += d.eq(0)
        with m.Elif(valid & ready):
            m.d.sync += d.eq(1)


def join_ready(m, sources, fire):
    """Release every stream of ``sources`` in the cycle ``fire`` (which must imply that all are
    valid)."""
    for s in sources:
        m.d.comb += s.ready.eq(fire)
