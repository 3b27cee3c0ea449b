import pytest
import torch
from hypothesis import given, settings, strategies as st

from quant.activation import ActivationQuant, quantize_codes


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(1, 8), beta=st.floats(0.1, 10),
       values=st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=50))
def test_forward_is_uniform_on_clipped_range(bits, beta, values):
    y = torch.tensor(values, dtype=torch.float64)
    q = ActivationQuant(bits, beta)(y)
    levels = 2 ** bits - 1
    codes = quantize_codes(y, bits, beta)
    assert codes.min() >= 0 and codes.max() <= levels
    assert torch.allclose(q, codes.double() * beta / levels)
    # Within half a step of the clipped value.
    assert (q - y.clamp(0, beta)).abs().max() <= beta / levels / 2 + 1e-9


def test_gradient_closed_form_with_exact_zeros():
    y = torch.tensor([-1.0, 0.0, 0.2, 0.5, 1.0, 1.5], requires_grad=True)
    ActivationQuant(2, 1.0)(y).backward(torch.ones(6))
    assert y.grad.tolist() == [0, 1, 1, 1, 1, 0]


def test_rounding_is_half_up_not_half_even():
    # 2 bits on [0, 3]: codes are the values themselves; 0.5 and 2.5 round up.
    codes = quantize_codes(torch.tensor([0.5, 1.5, 2.5]), 2, 3.0)
    assert codes.tolist() == [1, 2, 3]


def test_bad_parameters():
    with pytest.raises(ValueError, match="activation bits must be a positive integer, not 0"):
        ActivationQuant(0)
    with pytest.raises(ValueError, match="the clipping value beta must be positive, not -1"):
        ActivationQuant(2, -1)
