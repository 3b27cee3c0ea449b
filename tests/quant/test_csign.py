import io

import torch
from hypothesis import given, settings, strategies as st

from quant.binarize import sign
from quant.csign import CSign, combined_uncertainty, gaussian_uncertainty

SHAPES = st.tuples(st.integers(1, 6), st.integers(1, 6))


def _walk(seed, shape, steps):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 0.1
    out = [x.clone()]
    for _ in range(steps - 1):
        x = x + torch.randn(shape, generator=g) * 0.05
        out.append(x.clone())
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), shape=SHAPES, steps=st.integers(1, 8))
def test_delta_one_is_sign(seed, shape, steps):
    c = CSign(shape, sigma=0.1, delta=1.0)
    for x in _walk(seed, shape, steps):
        assert torch.equal(c(x), sign(x))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), shape=SHAPES, m=st.integers(1, 3))
def test_first_m_steps_are_sign(seed, shape, m):
    c = CSign(shape, sigma=0.1, m=m, delta=0.0)
    for x in _walk(seed, shape, m):
        assert torch.equal(c(x), sign(x))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), shape=SHAPES, steps=st.integers(3, 8),
       delta=st.floats(0.0, 0.9))
def test_rising_uncertainty_keeps_the_bit(seed, shape, steps, delta):
    """Eq. 5 element by element, against an independent re-computation."""
    sigma, m = 0.1, 2
    c = CSign(shape, sigma=sigma, m=m, delta=delta)
    xs = _walk(seed, shape, steps)
    fs, prev_fhat, prev_bits = [], None, None
    for t, x in enumerate(xs, start=1):
        got = c(x)
        f = gaussian_uncertainty(x, sigma)
        fs.insert(0, f)
        if t <= m:
            fhat, want = f, sign(x)
        else:
            fhat = combined_uncertainty(torch.stack(fs[:m + 1]))
            d = torch.quantile(fhat.flatten().double(), delta).float()
            keep = fhat > torch.maximum(prev_fhat, d)
            want = torch.where(keep, prev_bits, sign(x))
            # Where the combined uncertainty rose above both thresholds, the bit is kept.
            assert torch.equal(got[keep], prev_bits[keep])
        assert torch.equal(got, want)
        prev_fhat, prev_bits = fhat, want


def test_state_roundtrips_through_a_checkpoint():
    c = CSign((4, 5), delta=0.3)
    xs = _walk(1, (4, 5), 6)
    for x in xs[:4]:
        c(x)
    buf = io.BytesIO()
    torch.save(c.state_dict(), buf)
    buf.seek(0)
    d = CSign((4, 5), delta=0.3)
    d.load_state_dict(torch.load(buf, weights_only=True))
    for x in xs[4:]:
        assert torch.equal(c(x), d(x))
    c.eval()
    d.eval()
    assert torch.equal(c(xs[0]), d(xs[0]))


def test_gradient_is_clipped_straight_through_with_exact_zeros():
    c = CSign((5,), sigma=0.5)
    x = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.5], requires_grad=True)
    y = c(x)
    assert y.tolist() == [-1, -1, 1, 1, 1]
    y.backward(torch.arange(1.0, 6.0))
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 0.0]


def test_sigma_defaults_to_the_initial_spread():
    x = torch.tensor([[-0.3, 0.1], [0.2, 0.4]])
    c = CSign((2, 2))
    c(x)
    assert abs(float(c.sigma) - float(x.std())) < 1e-7
