"""Voxel beats packed a whole frame at a time equal the layouts' fields, element by element."""

import numpy as np
import pytest
from amaranth.lib import data

from hw.sparse.layouts import voxel_in_layout
from quant.bits import bits_to_int
from sim.voxels import (bits_to_ints, frame_beats, ints_to_bits, pack_layout_rows, pack_sums,
                        unpack_sums)


def test_rows_pack_as_one_row_at_a_time():
    rng = np.random.default_rng(3)
    for width in (1, 7, 64, 65, 200):
        rows = rng.integers(0, 2, (33_000 if width == 7 else 33, width), dtype=np.uint8)
        rows[0], rows[-1] = 0, 1
        words = bits_to_ints(rows)
        assert words == [bits_to_int(r) for r in rows]
        assert np.array_equal(ints_to_bits(words, width), rows)
    with pytest.raises(ValueError, match="^pack_bits takes only 0 and 1$"):
        bits_to_ints(np.array([[0, 2]]))


def test_sums_pack_into_twos_complement_fields():
    width, cout = 6, 5
    sums = np.array([[-32, 31, 0, -1, 1], [5, -5, 17, -17, 30]])
    words = pack_sums(sums, width)
    for word, row in zip(words, sums):
        fields = [(word >> (j * width)) & 63 for j in range(cout)]
        assert fields == [int(v) % 64 for v in row]
    assert np.array_equal(unpack_sums(words, width, cout), sums)
    big = np.random.default_rng(4).integers(-(1 << 13), 1 << 13, (40_000, 16))
    assert np.array_equal(unpack_sums(pack_sums(big, 14), 14, 16), big)


@pytest.mark.parametrize("projection", [False, True])
def test_layout_rows_pack_as_pack_fields(projection):
    """The batch-norm engines' beats (array fields of lanes, plain exponent fields) a frame
    at a time, equal to :func:`hw.sparse.site.pack_fields` a beat, negatives included."""
    from golden.bscnet_fixed import SparseFixedPoint
    from hw.sparse.site import affine_layout, pack_fields

    fmt, lanes, n = SparseFixedPoint(), 4, 300
    layout = affine_layout(lanes, 13, fmt, projection, 11 if projection else None)
    rng = np.random.default_rng(6)
    values = {}
    for name, field in layout:
        if isinstance(field.shape, data.ArrayLayout):
            w = field.shape.elem_shape.width
            values[name] = rng.integers(-(1 << (w - 1)), 1 << (w - 1), (n, lanes))
        else:
            values[name] = int(rng.integers(0, 1 << field.width))
    words = pack_layout_rows(layout, values, n)
    assert words == [pack_fields(layout, {k: v[i] if np.ndim(v) else v
                                          for k, v in values.items()}) for i in range(n)]
    assert max(words).bit_length() <= layout.size


def test_frame_beats_place_features_and_coordinates_as_the_layout():
    cin, bits = 5, 4
    layout = voxel_in_layout(cin, bits)
    rng = np.random.default_rng(5)
    coords = rng.integers(0, 1 << bits, (9, 3))
    feats = rng.integers(0, 2, (9, cin), dtype=np.uint8)
    data_, framing = frame_beats([(coords, feats), (np.zeros((0, 3)), []),
                                  (coords[:2], [3, 17])], cin, bits)
    assert framing == [(0, 0)] * 8 + [(1, 0), (1, 1), (0, 0), (1, 0)]
    for word, c, f in zip(data_, list(coords) + [None] + list(coords[:2]),
                          list(feats) + [None, 3, 17]):
        if c is None:
            assert word == 0
            continue
        view = data.Const(layout, word)
        assert [view.x, view.y, view.z] == [int(v) for v in c]
        assert view.features == (f if np.ndim(f) == 0 else bits_to_int(f))
