import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from golden.conv import BinaryConv2d, binary_conv2d_popcount, conv_output_size, weights_hwc


def direct_popcount(x, w, stride, dilation, padding, pad_bit):
    """The definition, loop by loop: XNOR over every tap, padded taps equal to pad_bit."""
    n, c, h, wd = x.shape
    co, _, k, _ = w.shape
    ho = conv_output_size(h, k, stride, dilation, padding)
    wo = conv_output_size(wd, k, stride, dilation, padding)
    out = np.zeros((n, co, ho, wo), dtype=np.int64)
    for b in range(n):
        for yo in range(ho):
            for xo in range(wo):
                taps = np.full((c, k, k), pad_bit, dtype=np.int64)
                for i in range(k):
                    for j in range(k):
                        y = yo * stride - padding + i * dilation
                        xx = xo * stride - padding + j * dilation
                        if 0 <= y < h and 0 <= xx < wd:
                            taps[:, i, j] = x[b, :, y, xx]
                out[b, :, yo, xo] = (taps[None] == w).sum(axis=(1, 2, 3))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), k=st.sampled_from([1, 2, 3]), stride=st.integers(1, 2),
       dilation=st.integers(1, 3), pad_bit=st.integers(0, 1), padding=st.integers(0, 3))
def test_integer_conv_matches_definition_and_float(seed, k, stride, dilation, pad_bit, padding):
    rng = np.random.default_rng(seed)
    h, w, c, co = rng.integers(3, 8), rng.integers(3, 8), rng.integers(1, 4), rng.integers(1, 5)
    if (k - 1) * dilation + 1 > min(h, w) + 2 * padding:
        return
    x = rng.integers(0, 2, (2, c, h, w))
    layer = BinaryConv2d(c, co, k, stride, dilation, padding, pad_bit).double()
    wb = layer.weight_bits().numpy()
    p = binary_conv2d_popcount(x, wb, stride, dilation, padding, pad_bit).numpy()
    assert (p == direct_popcount(x, wb, stride, dilation, padding, pad_bit)).all()
    with torch.no_grad():
        dot = layer(2.0 * torch.from_numpy(x).double() - 1)
    assert (dot.numpy() == 2 * p - c * k * k).all()


def test_weights_hwc_order():
    w = torch.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    row = weights_hwc(w)[1]
    # element (i * k + j) * C + c is w[1, c, i, j]
    assert [int(row[(i * 2 + j) * 3 + c]) for i in range(2) for j in range(2) for c in range(3)] \
        == [int(w[1, c, i, j]) for i in range(2) for j in range(2) for c in range(3)]


def test_bad_parameters():
    with pytest.raises(ValueError, match="stride must be a positive integer, not 0"):
        BinaryConv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match=r"pad_bit must be 0 \(-1\) or 1 \(\+1\), not 5"):
        BinaryConv2d(1, 1, 3, pad_bit=5)
