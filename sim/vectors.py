"""Vectors on the AXI4-Stream buses of a generated design, to and from NumPy arrays."""

import numpy as np

from quant.bits import bits_to_int

__all__ = ["pack_inputs", "pack_outputs", "unpack_outputs", "pack_pixels", "pack_signed_lanes",
           "pixels", "unpack_signed_lanes", "to_beats", "from_beats"]


def pack_inputs(bits):
    """``N x features`` bits to one ``s_axis_tdata`` integer a row (element ``j`` at bit ``j``)."""
    return [bits_to_int(row) for row in np.asarray(bits)]


def to_beats(words, width, beats):
    """Each integer as ``beats`` beats of ``width`` bits, lowest bits first."""
    mask = (1 << width) - 1
    return [(w >> (b * width)) & mask for w in words for b in range(beats)]


def from_beats(beats_list, width, beats):
    """Inverse of :func:`to_beats` (a trailing incomplete vector is dropped)."""
    return [sum(beats_list[i + b] << (b * width) for b in range(beats))
            for i in range(0, len(beats_list) - beats + 1, beats)]


def pack_outputs(values, info):
    """``N x lanes`` golden outputs to ``m_axis_tdata`` integers, laid out as ``info``
    (``design.json``) says: element ``r`` at bit ``r * lane_width``."""
    lane = info["lane_width"]
    out = []
    for row in np.asarray(values):
        v = 0
        for r, x in enumerate(row):
            v |= int(x) << (r * lane)
        out.append(v)
    return out


def unpack_outputs(words, info):
    """Inverse of :func:`pack_outputs`: ``N x lanes`` int64."""
    lane, ew = info["lane_width"], info["element_width"]
    mask = (1 << ew) - 1
    return np.array([[(w >> (r * lane)) & mask for r in range(info["lanes"])] for w in words],
                    dtype=np.int64).reshape(len(words), info["lanes"])


def pack_signed_lanes(rows, width, lane):
    """``M x C`` signed codes to one integer a row: channel ``c`` as a ``width``-bit two's
    complement field at bit ``c * lane``."""
    flat = (np.asarray(rows, dtype=np.int64) & ((1 << width) - 1)).tolist()
    return [sum(v << (ch * lane) for ch, v in enumerate(row)) for row in flat]


def pixels(codes):
    """``N x C x H x W`` to ``(N H W) x C``, pixels in raster order, frame after frame."""
    codes = np.asarray(codes)
    return codes.transpose(0, 2, 3, 1).reshape(-1, codes.shape[1])


def pack_pixels(codes, width):
    """``N x C x H x W`` signed codes to one ``s_axis_tdata`` integer a pixel (channels
    packed: channel ``c`` at bit ``c * width``)."""
    return pack_signed_lanes(pixels(codes), width, width)


def unpack_signed_lanes(words, channels, width, lane):
    """Output words to ``len(words) x channels`` signed codes (channel ``c`` in the
    ``width``-bit field at bit ``c * lane``)."""
    mask, half = (1 << width) - 1, 1 << (width - 1)
    vals = np.array([[(w >> (c * lane)) & mask for c in range(channels)] for w in words],
                    dtype=np.int64).reshape(len(words), channels)
    return np.where(vals >= half, vals - (1 << width), vals)
