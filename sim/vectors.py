"""Vectors on the AXI4-Stream buses of a generated design, to and from NumPy arrays."""

import numpy as np

from quant.bits import bits_to_int

__all__ = ["pack_inputs", "pack_outputs", "unpack_outputs"]


def pack_inputs(bits):
    """``N x features`` bits to one ``s_axis_tdata`` integer a row (element ``j`` at bit ``j``)."""
    return [bits_to_int(row) for row in np.asarray(bits)]


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
