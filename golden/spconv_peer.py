"""spconv (CPU build, PyPI ``spconv``) as the software peer of the binary sparse layers: the
same submanifold convolution on the same frame and weights, in the library users of sparse
point-cloud networks know. Optional: ``pip install 'bnnforge[sparse]'``.

Run it on one thread (``OMP_NUM_THREADS=1``): spconv's CPU scatter-add races on several
threads and its float sums then differ slightly from run to run.
"""

import numpy as np

from quant.errors import BnnforgeError

__all__ = ["spconv_ssc_dot", "spconv_available"]


def spconv_available():
    try:
        _spconv()
    except BnnforgeError:
        return False
    return True


def _spconv():
    import logging
    import warnings

    # spconv's import asks torch.fx whether it is tracing, which logs a deprecation line.
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # spconv's dependencies use deprecated library calls on import.
            warnings.simplefilter("ignore")
            import spconv.pytorch as spconv
    except ImportError as e:
        raise BnnforgeError(f"the spconv peer needs the sparse extra ({e.name} is not "
                            f"installed): pip install 'bnnforge[sparse]'")
    return spconv


def spconv_ssc_dot(coords, feat_bits, weight_bits, bits, repeats=0, shifts=None):
    """The binary SSC sums of :func:`golden.sparse.binary_ssc_dot` computed by spconv's
    ``SubMConv3d`` on +-1 features and weights (float32: exact for these integer sums).

    ``coords`` N x 3 ``(x, y, z)`` in ``[0, 2^bits)``; ``weight_bits`` 27 x Cout x Cin, slot
    ``k = (dx + 1) + 3 (dy + 1) + 9 (dz + 1)``. Returns ``(sums, seconds)``: int64 N x Cout and,
    with ``repeats``, the best of that many timed runs of the convolution alone (indices and
    weights already on the tensor, the kernel map rebuilt each run as spconv does for a new
    frame).

    ``shifts`` (SFSC): Cout x 3, each output channel's window shift ``(sx, sy, sz)`` in
    ``{-1, 0, 1}`` (its 3 x 3 x 3 window reads ``coord + shift + offset``, as
    :func:`golden.sparse.ssc_kernel_map`). spconv has no shifted window; a user of it writes
    one ``SubMConv3d`` of kernel 5 whose 3 x 3 x 3 block at each channel's shift holds that
    channel's weights and zeros elsewhere, and that is what runs here (one convolution a
    layer; its time includes the zeros' offsets)."""
    import time

    import torch

    spconv = _spconv()
    c = np.asarray(coords, dtype=np.int64)
    w = 2.0 * np.asarray(weight_bits, dtype=np.float32) - 1.0
    slots, cout, cin = w.shape
    if slots != 27:
        raise BnnforgeError(f"SSC weights must be 27 x Cout x Cin, not {w.shape}")
    # spconv's indices are (batch, d0, d1, d2) and its weight Cout x k0 x k1 x k2 x Cin; with
    # d = (z, y, x) the offset (dx, dy, dz) is weight[:, dz + 1, dy + 1, dx + 1, :].
    indices = torch.from_numpy(np.concatenate([np.zeros((len(c), 1), np.int64),
                                               c[:, ::-1]], axis=1).astype(np.int32))
    feats = torch.from_numpy(2.0 * np.asarray(feat_bits, dtype=np.float32) - 1.0)
    kernel = _kernel(w.reshape(3, 3, 3, cout, cin).transpose(3, 0, 1, 2, 4), shifts)
    conv = spconv.SubMConv3d(cin, cout, kernel.shape[1], bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel))
    shape = [1 << bits] * 3

    def run():
        with torch.no_grad():
            x = spconv.SparseConvTensor(feats, indices, shape, 1)
            return conv(x)

    y = run()
    order = np.lexsort(y.indices[:, 1:].numpy().T)   # outputs back in the input's order
    expect = np.lexsort(indices[:, 1:].numpy().T)
    sums = np.empty((len(c), cout), dtype=np.int64)
    sums[expect] = np.rint(y.features.numpy()[order]).astype(np.int64)
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return sums, best


def _kernel(k3, shifts):
    """spconv's weight (Cout x d0 x d1 x d2 x Cin, ``d = (z, y, x)``) from the 3 x 3 x 3 one:
    itself without ``shifts``, else of size 5 with each output channel's block at its shift."""
    cout = k3.shape[0]
    if shifts is None:
        return np.ascontiguousarray(k3)
    shifts = np.asarray(shifts, dtype=np.int64)
    if shifts.shape != (cout, 3) or np.abs(shifts).max(initial=0) > 1:
        raise BnnforgeError(f"SFSC shifts must be one (sx, sy, sz) in -1..1 per output "
                            f"channel ({cout} x 3), not {shifts.shape}")
    if not shifts.any():
        return np.ascontiguousarray(k3)
    k5 = np.zeros((cout, 5, 5, 5, k3.shape[-1]), k3.dtype)
    for co, (sx, sy, sz) in enumerate(shifts):
        k5[co, sz + 1:sz + 4, sy + 1:sy + 4, sx + 1:sx + 4] = k3[co]
    return k5
