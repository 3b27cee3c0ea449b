"""Batch-norm followed by sign, folded into one integer threshold per output channel.

For a binary dot product ``y = 2 P - n`` (``P`` the popcount of the XNOR of ``n`` bits), an
optional bias ``b`` and batch-norm ``(gamma, beta, mu, sigma^2, eps)``, the sign of the
batch-norm output is ``+1`` (sign(0) = +1) exactly when

* ``gamma > 0``: ``P >= T`` with ``T = ceil((n + tau) / 2)``;
* ``gamma < 0``: ``n - P >= T`` with ``T = ceil((n - tau) / 2)``, which the hardware computes as
  ``P' >= T`` after flipping every weight bit of the channel (``P' = n - P``);
* ``gamma = 0``: the output is the constant ``sign(beta)``: ``T = 0`` (always 1) when
  ``beta >= 0``, else ``T = n + 1`` (never 1);

where ``tau = mu - b - beta * sqrt(sigma^2 + eps) / gamma``. Thresholds are rounded with ceil,
never floor, and clamped to ``[0, n + 1]``; the threshold field is ``bits_for(n + 1)`` wide.
"""

import numpy as np

__all__ = ["fold_batchnorm"]


def fold_batchnorm(n, gamma, beta, mean, var, eps, bias=None):
    """Fold batch-norm + sign after an ``n``-bit binary dot product into integer thresholds.

    Parameters
    ----------
    n : int
        Number of bits in the dot product (the layer's fan-in).
    gamma, beta, mean, var : array_like, shape (channels,)
        Batch-norm scale, shift, running mean and running variance.
    eps : float
        Batch-norm epsilon.
    bias : array_like or None
        Bias added to the dot product before batch-norm.

    Returns
    -------
    thresholds : numpy.ndarray of int64, shape (channels,)
        ``T`` in ``[0, n + 1]``: the output bit is ``popcount >= T``.
    flip : numpy.ndarray of bool, shape (channels,)
        Channels whose weight bits must be inverted (negative ``gamma``).
    """
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    bias = np.zeros_like(gamma) if bias is None else np.asarray(bias, dtype=np.float64)
    std = np.sqrt(var + eps)
    thresholds = np.zeros(gamma.shape, dtype=np.int64)
    flip = gamma < 0
    nonzero = gamma != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = mean - bias - beta * std / np.where(nonzero, gamma, 1.0)
    pos = gamma > 0
    # Work on the doubled scale so that ceil sees exact integers where tau is one.
    thresholds[pos] = np.ceil((n + tau[pos]) / 2.0)
    thresholds[flip] = np.ceil((n - tau[flip]) / 2.0)
    thresholds[~nonzero] = np.where(beta[~nonzero] >= 0, 0, n + 1)
    return np.clip(thresholds, 0, n + 1), flip
