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


def frame_beats(frames, width, bits):
    """``[(coords, bit vectors), ...]`` (hardware order) to bus words (vector in the low
    ``width`` bits, then x, y, z) and (tlast, tuser): the input beats of feature frames, or the
    expected output beats of result frames (``tuser`` 1 marks an empty frame's beat)."""
    data, framing = [], []
    for coords, vectors in frames:
        if len(coords) == 0:
            data.append(0)
            framing.append((1, 1))
            continue
        for i, (c, v) in enumerate(zip(coords, vectors)):
            data.append(bits_to_int(np.asarray(v)) | _key(c, bits) << width)
            framing.append((int(i == len(coords) - 1), 0))
    return data, framing


result_beats = frame_beats


def error_beats(code, cout):
    """The single output beat of a frame rejected with ``code``."""
    return [code << cout], [(1, 3)]
