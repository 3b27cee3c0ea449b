"""Folded integer thresholds give the same bits as float batch-norm + sign, ties included."""

import numpy as np
from hypothesis import given, settings, strategies as st

from quant.thresholds import fold_batchnorm


def float_bn_sign(p, n, gamma, beta, mean, var, eps):
    y = 2.0 * p - n
    return (gamma * (y - mean) / np.sqrt(var + eps) + beta) >= 0


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 300), channels=st.integers(1, 16), seed=st.integers(0, 2**32 - 1),
       tie=st.booleans())
def test_fold_matches_float_bn_sign(n, channels, seed, tie):
    rng = np.random.default_rng(seed)
    gamma = rng.normal(size=channels) * rng.choice([1.0, 1e-3], size=channels)
    gamma[rng.random(channels) < 0.2] = 0.0
    if tie:
        # Integer tau with beta = 0 puts the decision exactly on reachable popcounts.
        beta = np.where(gamma == 0, rng.choice([-1.0, 0.0, 1.0], size=channels), 0.0)
        mean = rng.integers(-n - 2, n + 3, size=channels).astype(np.float64)
    else:
        beta = rng.normal(size=channels)
        mean = rng.normal(size=channels) * n / 2
    var = rng.uniform(0.01, 4 * n, size=channels)
    eps = 1e-5
    thresholds, flip = fold_batchnorm(n, gamma, beta, mean, var, eps)
    assert thresholds.min() >= 0 and thresholds.max() <= n + 1
    p = np.arange(n + 1)[:, None]
    want = float_bn_sign(p, n, gamma, beta, mean, var, eps)
    p_seen = np.where(flip, n - p, p)  # the hardware sees flipped weights' popcount
    got = p_seen >= thresholds
    assert (got == want).all()


def test_negative_gamma_flips_and_zero_gamma_is_constant():
    t, flip = fold_batchnorm(10, [-1.0, 0.0, 0.0], [0.0, 0.5, -0.5], [2.0, 0, 0], [1, 1, 1], 0.0)
    assert flip.tolist() == [True, False, False]
    # gamma < 0, tau = 2: sign is +1 iff 2P - 10 <= 2 iff P <= 6 iff n - P >= 4.
    assert t.tolist() == [4, 0, 11]


def test_ceil_not_floor():
    # tau = 1 with n = 4: y >= 1 iff 2P - 4 >= 1 iff P >= 2.5, so T = 3 (floor would give 2).
    t, _ = fold_batchnorm(4, [1.0], [0.0], [1.0], [1.0], 0.0)
    assert t.tolist() == [3]
