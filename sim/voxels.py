"""Voxel frames on the AXI4-Stream buses of a sparse design.

Input beat: ``tdata = Cat(features, x, y, z)``, ``tuser = marker``, ``tlast`` on the frame's
last beat; an empty frame is one marker beat. An up-sampling layer takes two such parts per
frame: the coarse voxels with features, then the fine sites (features zero). Output beat:
``tdata = Cat(vector, x, y, z)`` (vector: bits, or signed sums packed ``sum_width`` bits each,
channel 0 lowest), ``tuser = Cat(marker, error)``; a frame found bad ends with one beat with
both set and the error code in the ``x`` field, which voids the frame's earlier beats (the
testbench drops them): after that, an error frame is that one beat.
"""

import functools

import numpy as np

from hw.sparse.layouts import voxel_in_layout, voxel_out_layout
from quant.bits import bits_to_int, pack_bits, unpack_bits

__all__ = ["frame_beats", "result_beats", "error_beats", "pack_sums", "unpack_sums",
           "bits_to_ints", "ints_to_bits", "pack_layout_rows",
           "layer_beats", "FrameTracker", "in_payloads", "out_payloads", "out_flags_at",
           "error_code", "load_beats", "pad_weights"]


@functools.lru_cache(maxsize=None)
def _coordinate_offsets(bits):
    layout = voxel_in_layout(0, bits)
    return tuple(layout[axis].offset for axis in "xyz")


def in_payloads(data, framing, features, bits, load=False):
    """Whole input payloads of a sparse layer (:func:`hw.sparse.voxel_in_layout`): the bus
    words ``data`` (features and coordinates) with each beat's ``(tlast, tuser)`` placed at
    the layout's ``last`` and ``marker`` (and ``load``, next to it) fields."""
    layout = voxel_in_layout(features, bits, load)
    marker, last = layout["marker"].offset, layout["last"].offset
    return [d | u << marker | t << last for d, (t, u) in zip(data, framing)]


def out_flags_at(width, bits):
    """Bit of ``marker`` in an output payload (``error`` and ``last`` follow it)."""
    return voxel_out_layout(width, bits)["marker"].offset


def out_payloads(data, framing, width, bits):
    """Whole output payloads (:func:`hw.sparse.voxel_out_layout`) of bus words and
    ``(tlast, tuser)``, ``tuser`` being ``Cat(marker, error)``."""
    layout = voxel_out_layout(width, bits)
    user, last = layout["marker"].offset, layout["last"].offset
    assert layout["error"].offset == user + 1
    return [d | u << user | t << last for d, (t, u) in zip(data, framing)]


def error_code(word, width, bits):
    """The error code of an output beat (its ``x`` field)."""
    field = voxel_out_layout(width, bits)["x"]
    return (word >> field.offset) & ((1 << bits) - 1)


def frame_beats(frames, width, bits):
    """``[(coords, vectors), ...]`` (hardware order) to bus words (vector in the low ``width``
    bits, then x, y, z) and (tlast, tuser): the input beats of feature frames, or the expected
    output beats of result frames (``tuser`` 1 marks an empty frame's beat). A vector is a 0/1
    array or an already packed integer."""
    data, framing = [], []
    offsets = np.array(_coordinate_offsets(bits), dtype=np.int64)
    for coords, vectors in frames:
        if len(coords) == 0:
            data.append(0)
            framing.append((1, 1))
            continue
        keys = (np.asarray(coords, dtype=np.int64).reshape(-1, 3) << offsets).sum(axis=1)
        if np.ndim(vectors[0]) == 0:
            words = [int(v) for v in vectors]
        else:
            words = bits_to_ints(np.asarray(vectors).reshape(len(coords), -1))
        data += [w | k << width for w, k in zip(words, keys.tolist())]
        framing += [(0, 0)] * (len(coords) - 1) + [(1, 0)]
    return data, framing


#: Rows a chunk in the vectorized packing below (bounds its temporary arrays).
_CHUNK = 1 << 15


def bits_to_ints(rows):
    """Rows of 0/1 (``N x W``) as N integers, bit ``j`` of each element ``j`` (as
    :func:`quant.bits.bits_to_int` a row)."""
    rows = np.asarray(rows)
    out = []
    for at in range(0, len(rows), _CHUNK):
        packed = pack_bits(rows[at:at + _CHUNK])
        n, raw = packed.shape[1], packed.tobytes()
        out += [int.from_bytes(raw[i:i + n], "little") for i in range(0, len(raw), n)]
    return out


def ints_to_bits(words, n):
    """Inverse of :func:`bits_to_ints`: the low ``n`` bits of each integer, ``N x n``
    ``uint8``."""
    size = (n + 7) // 8 or 1
    out = np.zeros((len(words), n), dtype=np.uint8)
    mask = (1 << n) - 1
    for at in range(0, len(words), _CHUNK):
        raw = b"".join((int(w) & mask).to_bytes(size, "little")
                       for w in words[at:at + _CHUNK])
        packed = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
        out[at:at + len(packed)] = unpack_bits(packed, n)
    return out


result_beats = frame_beats


def error_beats(code, width):
    """The single output beat of a frame rejected with ``code`` (``width``: output vector)."""
    return [code << voxel_out_layout(width, 1)["x"].offset], [(1, 3)]


class FrameTracker:
    """Output frames of a sparse design as they arrive: call :meth:`beat` after appending a
    beat to each of the parallel lists (payloads, cycle stamps, ...). An error beat drops the
    beats of its frame received before it (they are void); ``void`` lists how many, per error
    frame; ``frames`` counts the frames completed."""

    def __init__(self):
        self.frames, self.start, self.void = 0, 0, []

    def beat(self, lists, last, error):
        if error:
            self.void.append(len(lists[0]) - 1 - self.start)
            for kept in lists:
                del kept[self.start:-1]
        if last:
            self.frames += 1
            self.start = len(lists[0])


def _field_bits(values, width):
    """N x K signed values as N x (K width) bits: ``width``-bit two's complement fields,
    each LSB first."""
    n, k = values.shape
    return (((values & ((1 << width) - 1))[..., None] >> np.arange(width)) & 1).reshape(
        n, k * width)


def pack_sums(sums, width):
    """N x Cout signed sums to N integers of ``width``-bit two's complement fields."""
    sums = np.asarray(sums, dtype=np.int64)
    return bits_to_ints(_field_bits(sums if sums.ndim == 2 else sums.reshape(len(sums), -1),
                                    width))


def pack_layout_rows(layout, values, n):
    """N integers of a struct layout's bits (as :func:`hw.sparse.site.pack_fields` a row):
    ``values`` maps each field to N rows of an array field's elements, or to one value (or N
    values) of a plain field; two's complement."""
    from amaranth.lib import data

    bits = np.zeros((n, layout.size), dtype=np.uint8)
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.ArrayLayout):
            ew, count = shape.elem_shape.width, shape.length
        else:
            ew, count = field.width, 1
        v = np.asarray(values[name], dtype=np.int64)
        v = np.broadcast_to(v.reshape(-1, count) if v.ndim else v, (n, count))
        bits[:, field.offset:field.offset + count * ew] = _field_bits(v, ew)
    return bits_to_ints(bits)


def unpack_sums(words, width, cout):
    """Inverse of :func:`pack_sums`."""
    bits = ints_to_bits(words, width * cout).reshape(len(words), cout, width)
    values = (bits.astype(np.int64) << np.arange(width)).sum(axis=-1)
    return values - ((values >> (width - 1)) << width)       # two's complement


def layer_beats(kind, frames, weights, thresholds, bits, cin, sum_width=None, golden=None,
                cout=None):
    """Input beats and the golden output beats of one sparse layer on ``frames``.

    ``frames``: ``(coords, feature bits)`` for ssc/down, ``(coarse coords, coarse feature
    bits, fine coords)`` for up. ``thresholds`` None means the layer outputs sums of
    ``sum_width`` bits; ``golden`` may give the frames' ``(out coords, sums)`` already
    computed. Returns ``(data, framing, want, want_framing)``."""
    from golden.sparse import sparse_layer_sums

    parts, outs = [], []
    cout = np.asarray(weights).shape[1] if cout is None else cout
    if golden is None:
        golden = [sparse_layer_sums(kind, f, weights, bits) for f in frames]
    for frame, (coords, sums) in zip(frames, golden):
        if kind == "up":
            coarse, feats, fine = frame
            parts += [(coarse, feats), (fine, np.zeros((len(fine), cin), np.uint8))]
        else:
            parts.append(frame[:2])
        if len(coords) == 0:
            outs.append((coords, []))
        elif thresholds is None:
            outs.append((coords, pack_sums(sums, sum_width)))
        else:
            outs.append((coords, (sums >= np.asarray(thresholds)).astype(np.uint8)))
    data, framing = frame_beats(parts, cin, bits)
    width = cout if thresholds is not None else cout * sum_width
    want, want_framing = result_beats(outs, width, bits)
    return data, framing, want, want_framing


def pad_weights(weights, pe, simd):
    """A layer's weights ``S x Cout x Cin`` with Cout padded to whole PE folds (zero rows; the
    outputs there are dropped); Cin must already be whole SIMD folds."""
    w = np.asarray(weights, dtype=np.uint8)
    s, cout, cin = w.shape
    if cin % simd:
        raise ValueError(f"{cin} input channels are not whole folds of SIMD = {simd}")
    out = np.zeros((s, -(-cout // pe) * pe, cin), np.uint8)
    out[:, :cout] = w
    return out


def load_beats(info, weights, shift=(0, 0, 0)):
    """The load frame of a layer whose weights load at run time (``info``: its design.json):
    the header beat, then the weight words slot by slot, output fold, input fold, PE row
    (:class:`hw.sparse.loader.WeightLoader`). Returns ``(data, framing, want, want_framing)``
    with the frame's one expected output beat (a marker beat)."""
    from hw.sparse.layouts import load_header_layout

    pe, simd = info["pe"], info["simd"]
    w = pad_weights(weights, pe, simd)
    slots, cout, cin = w.shape
    nf, sf = cout // pe, cin // simd
    header = load_header_layout(info["cout"] // pe, info["cin"] // simd)
    head = header.const({"nf_last": nf - 1, "sf_last": sf - 1,
                         "shift": [int(v) for v in shift]}).as_value().value
    data = [head]
    for k in range(slots):
        for f in range(nf):
            for j in range(sf):
                for p in range(pe):
                    data.append(bits_to_int(w[k, f * pe + p, j * simd:(j + 1) * simd]))
    framing = [(int(i == len(data) - 1), 2) for i in range(len(data))]
    return data, framing, [0], [(1, 1)]
