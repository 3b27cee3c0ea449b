"""Voxel frames on the AXI4-Stream buses of a sparse design.

Input beat: ``tdata = Cat(features, x, y, z)``, ``tuser = marker``, ``tlast`` on the frame's
last beat; an empty frame is one marker beat. Output beat: ``tdata = Cat(bits, x, y, z)``,
``tuser = Cat(marker, error)``; an error frame is one beat with both set and the error code in
the ``x`` field.
"""

import numpy as np

from quant.bits import bits_to_int

__all__ = ["frame_beats", "result_beats", "error_beats"]


def _key(c, bits):
    return int(c[0]) | int(c[1]) << bits | int(c[2]) << (2 * bits)


def frame_beats(frames, cin, bits):
    """``[(coords, feature bits), ...]`` (hardware order) to input words and (tlast, tuser)."""
    data, framing = [], []
    for coords, feats in frames:
        if len(coords) == 0:
            data.append(0)
            framing.append((1, 1))
            continue
        for i, (c, f) in enumerate(zip(coords, feats)):
            data.append(bits_to_int(np.asarray(f)) | _key(c, bits) << cin)
            framing.append((int(i == len(coords) - 1), 0))
    return data, framing


def result_beats(frames, cout, bits):
    """``[(coords, output bits), ...]`` to the expected output words and (tlast, tuser)."""
    data, framing = [], []
    for coords, out in frames:
        if len(coords) == 0:
            data.append(0)
            framing.append((1, 1))
            continue
        for i, (c, o) in enumerate(zip(coords, out)):
            data.append(bits_to_int(np.asarray(o)) | _key(c, bits) << cout)
            framing.append((int(i == len(coords) - 1), 0))
    return data, framing


def error_beats(code, cout):
    """The single output beat of a frame rejected with ``code``."""
    return [code << cout], [(1, 3)]
