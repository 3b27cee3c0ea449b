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
def test_first_step_is_sign(seed, shape, m):
    c = CSign(shape, sigma=0.1, m=m, delta=0.0)
    x = _walk(seed, shape, 1)[0]
    assert torch.equal(c(x), sign(x))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), shape=SHAPES, steps=st.integers(3, 8),
       delta=st.floats(0.0, 0.9), mode=st.sampled_from(["normalized", "density"]))
def test_rising_uncertainty_keeps_the_bit(seed, shape, steps, delta, mode):
    """Eq. 5 element by element, against an independent re-computation."""
    sigma, m = 0.1, 2
    c = CSign(shape, sigma=sigma, m=m, delta=delta, uncertainty=mode)
    xs = _walk(seed, shape, steps)
    fs, prev_fhat, prev_bits = [], None, None
    for t, x in enumerate(xs, start=1):
        got = c(x)
        f = gaussian_uncertainty(x, sigma, mode)
        fs.insert(0, f)
        fhat = f if t <= m else combined_uncertainty(torch.stack(fs[:m + 1]))
        if t == 1:
            want = sign(x)
        else:
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


def test_sigma_defaults_to_the_variance_of_the_initial_weights():
    """The paper: "we set it equals to the variance of initialization parameters"."""
    x = torch.tensor([[-0.3, 0.1], [0.2, 0.4]])
    mean = (-0.3 + 0.1 + 0.2 + 0.4) / 4
    var = sum((v - mean) ** 2 for v in (-0.3, 0.1, 0.2, 0.4)) / 3     # unbiased, as torch
    c = CSign((2, 2))
    c(x)
    assert abs(float(c.sigma) - var) < 1e-7
    d = CSign((2, 2), sigma_rule="std")
    d(x)
    assert abs(float(d.sigma) - var ** 0.5) < 1e-7


def test_equation_3_by_hand():
    import math

    x, sigma = torch.tensor([0.0, 0.1, -0.25]), 0.2
    density = [1 / (math.sqrt(2 * math.pi) * 0.2) * math.exp(-v * v / (2 * 0.04))
               for v in (0.0, 0.1, -0.25)]
    assert torch.allclose(gaussian_uncertainty(x, sigma, "density"), torch.tensor(density))
    assert abs(density[0] - 1.9947114) < 1e-6          # f(0) > 1 for sigma = 0.2
    peak = [math.exp(-v * v / 0.08) for v in (0.0, 0.1, -0.25)]
    assert torch.allclose(gaussian_uncertainty(x, sigma, "normalized"), torch.tensor(peak))


def test_equation_4_by_hand_and_why_f_above_one_breaks_it():
    """Eq. 4 for t > m: 1 - (1 - f_t)(1 - f_t-1)(1 - f_t-2). With f > 1 two uncertain states
    give a negative, "certain" combination; normalized f keeps it in [0, 1]."""
    f = torch.tensor([[0.5], [0.2], [0.1]])
    assert torch.allclose(combined_uncertainty(f), torch.tensor([1 - 0.5 * 0.8 * 0.9]))
    dens = torch.tensor([[2.0], [2.0], [0.0]])       # two states with density 2 (> 1)
    assert float(combined_uncertainty(dens)[0]) == 1 - (1 - 2) * (1 - 2) * 1 == 0.0
    norm = torch.tensor([[1.0], [0.9], [0.0]])
    assert 0.0 <= float(combined_uncertainty(norm)[0]) <= 1.0


def test_algorithm_1_steps_by_hand():
    """Three weights over four steps, m = 2, sigma = 0.1, normalized f, Delta the 0.0 quantile
    (the layer's smallest combined uncertainty), every value from Eq. 3-5 by hand."""
    import math

    def f(v):
        return math.exp(-v * v / (2 * 0.01))

    xs = [[0.30, 0.02, 0.05], [0.28, -0.01, -0.04], [0.25, 0.03, -0.06], [0.20, -0.01, 0.02]]
    c = CSign((3,), sigma=0.1, m=2, delta=0.0)
    # t = 1: sign.
    assert c(torch.tensor(xs[0])).tolist() == [1, 1, 1]
    # t = 2 (<= m): f^ = f(x_2); Delta = min f^; follow sign where f^ <= max(f^_1, Delta).
    fh1 = [f(v) for v in xs[0]]
    fh2 = [f(v) for v in xs[1]]
    d2 = min(fh2)
    want2 = [(1 if xs[1][i] >= 0 else -1) if fh2[i] <= max(fh1[i], d2) else 1
             for i in range(3)]
    assert c(torch.tensor(xs[1])).tolist() == want2
    # t = 3 (> m): f^ = 1 - (1 - f_3)(1 - f_2)(1 - f_1).
    fh3 = [1 - (1 - f(xs[2][i])) * (1 - f(xs[1][i])) * (1 - f(xs[0][i])) for i in range(3)]
    d3 = min(fh3)
    want3 = [(1 if xs[2][i] >= 0 else -1) if fh3[i] <= max(fh2[i], d3) + 1e-7 else want2[i]
             for i in range(3)]
    assert c(torch.tensor(xs[2])).tolist() == want3
    fh4 = [1 - (1 - f(xs[3][i])) * (1 - f(xs[2][i])) * (1 - f(xs[1][i])) for i in range(3)]
    d4 = min(fh4)
    want4 = [(1 if xs[3][i] >= 0 else -1) if fh4[i] <= max(fh3[i], d4) + 1e-7 else want3[i]
             for i in range(3)]
    assert c(torch.tensor(xs[3])).tolist() == want4
    # The example exercises both branches: at step 2 the two weights whose uncertainty rose
    # keep +1 against their sign; at step 4 the middle one still does, the others follow.
    assert want2 == [1, 1, 1] and want4 == [1, 1, 1]
    assert [1 if v >= 0 else -1 for v in xs[3]] == [1, -1, 1]
