"""The bit layouts of the sparse layers' streams: voxel beats in and out, and the search's
records. One description serves the hardware, the simulation's packing and the tests
(:meth:`amaranth.lib.data.Layout.const` builds a beat; ``as_value().value`` is its integer)."""

from amaranth import Cat, Const, Mux, Shape, Value
from amaranth.lib import data

from quant.bits import bits_for

__all__ = ["KINDS", "PAIRS_PER_SITE", "ERROR_TOO_MANY", "ERROR_UNSORTED", "ERROR_LOAD",
           "voxel_in_layout", "load_header_layout",
           "voxel_out_layout", "record_layout", "index_bits", "sum_width", "voxel_key",
           "parent_key", "select", "pack"]

ERROR_TOO_MANY = 1
ERROR_UNSORTED = 2
ERROR_LOAD = 3
"""A load frame (weights loaded at run time) that is malformed: too few or too many words, or
a header out of the design's range."""

KINDS = {"ssc": 27, "down": 8, "up": 8, "pointwise": 1}
"""Kernel slots of each layer kind."""

PAIRS_PER_SITE = {"ssc": 27, "down": 8, "up": 1, "pointwise": 1}
"""The most pairs one output site can have."""


def voxel_in_layout(features, coord_bits, load=False):
    """An input beat, lowest bits first: ``features``, ``x``, ``y``, ``z`` (``coord_bits``
    each), ``marker`` (no voxel: an empty frame's beat), ``load`` (only in a design whose
    weights load at run time: the beat belongs to a load frame), ``last`` (the frame's or
    part's last beat). On the AXI4-Stream top ``tdata`` carries features and coordinates,
    ``tuser`` the marker (and load), ``tlast`` the last flag."""
    return data.StructLayout({"features": features, "x": coord_bits, "y": coord_bits,
                              "z": coord_bits, "marker": 1, **({"load": 1} if load else {}),
                              "last": 1})


def load_header_layout(nf_max, sf_max):
    """The first beat of a load frame, in ``Cat(features, x, y, z)``: the last output fold
    ``nf_last = Cout/PE - 1``, the last input fold ``sf_last = Cin/SIMD - 1`` and the window
    shift ``(sx, sy, sz)`` (ssc; two's complement, -1..1)."""
    from amaranth import signed

    return data.StructLayout({"nf_last": Shape.cast(range(max(nf_max, 2))).width,
                              "sf_last": Shape.cast(range(max(sf_max, 2))).width,
                              "shift": data.ArrayLayout(signed(2), 3)})


def voxel_out_layout(width, coord_bits):
    """An output beat, lowest bits first: ``vector`` (bits, or sums), ``x``, ``y``, ``z``,
    ``marker``, ``error`` and ``last``. A marker beat carries no vector; with ``error`` set it
    ends a frame found bad, with the error code in ``x``."""
    return data.StructLayout({"vector": width, "x": coord_bits, "y": coord_bits,
                              "z": coord_bits, "marker": 1, "error": 1, "last": 1})


def index_bits(max_voxels):
    """Bits of a site index below ``max_voxels`` (at least one)."""
    return max(1, (max_voxels - 1).bit_length())


def record_layout(slots, coord_bits, max_voxels):
    """A search record: the output site's ``key`` (``Cat(x, y, z)``), ``last`` (the frame's
    last output site), the ``mask`` of present kernel slots and the input site ``index`` of
    each slot (meaningful where the mask is set)."""
    return data.StructLayout({"key": 3 * coord_bits, "last": 1, "mask": slots,
                              "index": data.ArrayLayout(index_bits(max_voxels), slots)})


def sum_width(kind, cin):
    """Bits of one signed sum ``y``: it holds ``+-pairs_per_site * Cin``."""
    return bits_for(PAIRS_PER_SITE[kind] * cin) + 1


def voxel_key(beat):
    """``Cat(x, y, z)`` of a voxel beat (a view of either voxel layout): the key whose order
    is the frame's order."""
    return Cat(beat.x, beat.y, beat.z)


def parent_key(key, bits):
    """The key of ``floor(c / 2)`` for the key of coordinates ``c`` (``bits`` a coordinate)."""
    x, y, z = key[:bits], key[bits:2 * bits], key[2 * bits:3 * bits]
    return Cat(x[1:], Const(0, 1), y[1:], Const(0, 1), z[1:], Const(0, 1))


def select(values, index):
    """``values[index]`` as a chain of continuous assignments. (An ``Array`` becomes a
    ``case`` in an ``always @*`` block, which Icarus does not evaluate until an input changes:
    a read port whose data stays at its initial value would leave it undefined.)"""
    out = values[-1]
    for i in reversed(range(len(values) - 1)):
        out = Mux(index == i, values[i], out)
    return out


def pack(layout, **fields):
    """One value with ``layout``'s bits: each named field (an int or a value, zero-extended or
    truncated to the field's width), zero where not named. Built as one ``Cat`` in the
    layout's order, so that an assignment of it stays a continuous assignment in Verilog
    (field-by-field assignments become a process, which Icarus may leave unevaluated)."""
    parts = []
    for name, field in layout:
        width = Shape.cast(field.shape).width
        v = fields.pop(name, 0)
        if isinstance(v, int):
            parts.append(Const(v, width))
            continue
        v = Value.cast(v)
        parts.append(v[:width] if len(v) >= width else Cat(v, Const(0, width - len(v))))
    if fields:
        raise ValueError(f"{', '.join(fields)} not in the layout")
    return Cat(*parts)
