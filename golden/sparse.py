"""Sparse voxel tensors and binarized sparse convolution (BSC-Net, Xu et al., CVPR 2023).

Coordinates are integers ``(x, y, z)`` in ``[0, 2^bits)`` per frame (one frame = one point
cloud; a batch is a list of frames). Inside a frame, voxels are kept in the hardware's order:
sorted by the key ``z * 2^(2 bits) + y * 2^bits + x`` (lexicographic in ``(z, y, x)``), which
adding an offset to every coordinate preserves.

Conventions shared with the hardware (``docs/sparse.md``):

* A site that is not active contributes nothing (it is absent, not -1).
* Kernel offsets of a 3x3x3 kernel: ``k = (dx + 1) + 3 (dy + 1) + 9 (dz + 1)``, centre 13.
* Every engine computes a cross-correlation: ``out[u] = sum_k W_k . in[u + off_k]`` over the
  offsets with ``u + off_k`` active.
* Submanifold convolution (SSC) outputs exactly at the input's active sites.
* Binary SSC: ``y_u = sum over present k of (2 popcount(XNOR(a_{u+k}, w_k)) - Cin)``; with
  batch-norm folded, the output bit is ``y_u >= T`` (a threshold on the signed sum, because
  the number of present offsets varies from site to site).
"""

import numpy as np
import torch
from torch import nn

from quant.csign import WeightBinarizer
from quant.errors import BnnforgeError

__all__ = ["OFFSETS", "offset_index", "voxel_keys", "voxelize", "sort_frame", "ssc_kernel_map",
           "downsample_map", "upsample_map", "binary_ssc_dot", "dense_reference_dot",
           "fold_batchnorm_dot", "BinarySparseConv", "binary_ssc_bits", "sparse_layer_sums",
           "sparse_layer_rows",
           "pointwise_map"]

OFFSETS = np.array([(dx, dy, dz) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                   dtype=np.int64)


def offset_index(dx, dy, dz):
    """``k = (dx + 1) + 3 (dy + 1) + 9 (dz + 1)``."""
    return (dx + 1) + 3 * (dy + 1) + 9 * (dz + 1)


def voxel_keys(coords, bits):
    """Sort keys ``z * 2^(2 bits) + y * 2^bits + x`` of ``N x 3`` coordinates."""
    c = np.asarray(coords, dtype=np.int64)
    return (c[:, 2] << (2 * bits)) | (c[:, 1] << bits) | c[:, 0]


def check_coords(coords, bits):
    c = np.asarray(coords, dtype=np.int64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise BnnforgeError(f"voxel coordinates must be N x 3 (x, y, z), not {c.shape}")
    bad = np.flatnonzero(((c < 0) | (c >= 1 << bits)).any(axis=1))
    if bad.size:
        x, y, z = c[bad[0]]
        raise BnnforgeError(f"voxel ({x}, {y}, {z}) is outside the coordinate range "
                            f"[0, {(1 << bits) - 1}] of {bits}-bit coordinates ({bad.size} "
                            f"voxels out of range); use a larger voxel size or more "
                            f"coordinate bits")
    return c


def sort_frame(coords, feats, bits):
    """Coordinates and features in hardware order; duplicates are an error."""
    c = check_coords(coords, bits)
    keys = voxel_keys(c, bits)
    order = np.argsort(keys, kind="stable")
    if np.any(np.diff(keys[order]) == 0):
        raise BnnforgeError("the frame has duplicate voxels; merge them first (voxelize)")
    return c[order], np.asarray(feats)[order]


def voxelize(points, voxel_size, bits, origin=None, features=None):
    """Points ``M x 3`` to unique voxels at ``voxel_size``: ``floor((p - origin) / size)``.

    Duplicates merge (features averaged when given, else the voxel's point count is the
    feature). Returns ``(coords N x 3, feats N x F)`` in hardware order. Coordinates outside
    ``[0, 2^bits)`` raise a clear error.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise BnnforgeError(f"points must be M x 3, not {p.shape}")
    if not voxel_size > 0:
        raise BnnforgeError(f"the voxel size must be positive, not {voxel_size}")
    origin = p.min(axis=0) if origin is None else np.asarray(origin, dtype=np.float64)
    v = np.floor((p - origin) / voxel_size).astype(np.int64)
    check_coords(v, bits)
    keys = voxel_keys(v, bits)
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    coords = np.zeros((len(uniq), 3), dtype=np.int64)
    coords[inverse] = v
    if features is None:
        feats = counts[:, None].astype(np.float64)
    else:
        f = np.asarray(features, dtype=np.float64).reshape(len(p), -1)
        feats = np.zeros((len(uniq), f.shape[1]))
        np.add.at(feats, inverse, f)
        feats /= counts[:, None]
    return coords, feats


def ssc_kernel_map(coords, bits, shift=(0, 0, 0)):
    """Submanifold 3x3x3 kernel map of a frame in hardware order: int64 ``P x 3`` rows
    ``(output index u, input index j, k)`` with ``coord_j = coord_u + shift + offset_k``, sorted
    by output then ``k``. ``shift = 0`` is the SSC map; SFSC's groups use one of its shifts.
    Neighbours are found by binary search of the sorted keys, one offset at a time."""
    c = check_coords(coords, bits)
    n = len(c)
    if n == 0:
        return np.zeros((0, 3), np.int64)
    keys = voxel_keys(c, bits)
    rows = []
    limit = 1 << bits
    for k, off in enumerate(OFFSETS):
        nc = c + off + np.asarray(shift)
        ok = ((nc >= 0) & (nc < limit)).all(axis=1)
        nk = voxel_keys(np.where(ok[:, None], nc, 0), bits)
        pos = np.minimum(np.searchsorted(keys, nk), n - 1)
        hit = ok & (keys[pos] == nk)
        u = np.flatnonzero(hit)
        rows.append(np.stack([u, pos[hit], np.full(len(u), k)], axis=1))
    rows = np.concatenate(rows)
    return rows[np.lexsort((rows[:, 2], rows[:, 0]))]


def pointwise_map(coords):
    """1x1 convolution: every site feeds itself, rows ``(i, i, 0)``."""
    n = len(np.asarray(coords))
    return np.stack([np.arange(n), np.arange(n), np.zeros(n, dtype=np.int64)], axis=1)


def downsample_map(coords):
    """Kernel 2, stride 2: outputs ``unique(floor(x / 2))``; each input feeds one output at
    slot ``px + 2 py + 4 pz`` (its parity bits). Returns ``(out_coords, rows)`` with rows
    ``(output index, input index, slot)``; outputs in the order of their keys."""
    c = np.asarray(coords, dtype=np.int64)
    parent = c >> 1
    slot = (c[:, 0] & 1) + 2 * (c[:, 1] & 1) + 4 * (c[:, 2] & 1)
    bits = max(1, int(parent.max(initial=0))).bit_length()
    keys = voxel_keys(parent, bits)
    uniq, inverse = np.unique(keys, return_inverse=True)
    out = np.zeros((len(uniq), 3), dtype=np.int64)
    out[inverse] = parent
    rows = np.stack([inverse, np.arange(len(c)), slot], axis=1)
    return out, rows[np.lexsort((rows[:, 2], rows[:, 0]))]


def upsample_map(fine_coords, coarse_coords, allow_missing=False):
    """Transposed kernel 2, stride 2 onto the finer level's sites: fine site ``f`` receives
    only its parent ``floor(f / 2)`` with weight slot = its parity bits. Returns rows
    ``(fine index, coarse index, slot)``; a fine site whose parent is absent is an error, or,
    with ``allow_missing``, receives nothing (as in the hardware)."""
    f = np.asarray(fine_coords, dtype=np.int64)
    cc = np.asarray(coarse_coords, dtype=np.int64)
    bits = max(1, int(cc.max(initial=0)), int((f >> 1).max(initial=0))).bit_length()
    index = {int(k): i for i, k in enumerate(voxel_keys(cc, bits))}
    parents = voxel_keys(f >> 1, bits)
    missing = [i for i, key in enumerate(parents.tolist()) if key not in index]
    if missing and allow_missing:
        keep = np.array([key in index for key in parents.tolist()], dtype=bool)
        rows = upsample_map(f[keep], cc)
        rows[:, 0] = np.flatnonzero(keep)[rows[:, 0]]
        return rows
    if missing:
        raise BnnforgeError(f"{len(missing)} fine voxels have no coarse parent (first: "
                            f"{tuple(f[missing[0]])})")
    slot = (f[:, 0] & 1) + 2 * (f[:, 1] & 1) + 4 * (f[:, 2] & 1)
    return np.stack([np.arange(len(f)), np.array([index[k] for k in parents.tolist()],
                                                dtype=np.int64), slot], axis=1)


def binary_ssc_dot(feat_bits, weight_bits, kmap, n_out=None):
    """Integer binary sparse convolution: ``y[u, o] = sum over pairs (u, j, k) of
    2 popcount(XNOR(a_j, w[k, o])) - Cin``. ``feat_bits`` N x Cin, ``weight_bits``
    slots x Cout x Cin; int64 ``n_out`` x Cout (``n_out`` defaults to N, as for SSC).

    The +-1 products are summed in floating point, where BLAS does the matrix products: every
    partial sum is an integer of at most ``slots x Cin`` in magnitude, exact in float32 below
    2**24 (float64 beyond). A slot's pairs are added at once where each output appears once
    in them (a rulebook's slot), else one pair at a time."""
    a_bits = np.asarray(feat_bits)
    w_bits = np.asarray(weight_bits)
    slots, cout, cin = w_bits.shape
    dtype = np.float32 if slots * cin < 1 << 24 else np.float64
    a = 2 * a_bits.astype(dtype) - 1
    w = 2 * w_bits.astype(dtype) - 1
    n_out = a.shape[0] if n_out is None else n_out
    y = np.zeros((n_out, cout), dtype=dtype)
    kmap = np.asarray(kmap, dtype=np.int64).reshape(-1, 3)
    kmap = kmap[np.argsort(kmap[:, 2], kind="stable")]
    bounds = np.searchsorted(kmap[:, 2], np.arange(slots + 1))
    for k in range(slots):
        out, src = kmap[bounds[k]:bounds[k + 1], 0], kmap[bounds[k]:bounds[k + 1], 1]
        if not len(out):
            continue
        # Fewer outputs than inputs a site: multiply every site first, then gather.
        prod = (a @ w[k].T)[src] if cout < cin else a[src] @ w[k].T
        if np.bincount(out, minlength=n_out).max() <= 1:
            y[out] += prod
        else:
            np.add.at(y, out, prod)
    return y.astype(np.int64)


def dense_reference_dot(coords, feat_bits, weight_bits, bits):
    """The same sums from a dense 3-D convolution: the map holds +-1 at active sites and 0 at
    absent ones (so they contribute nothing), read back at the active sites."""
    c = check_coords(coords, bits)
    lo = c.min(axis=0) - 1
    size = c.max(axis=0) - lo + 2
    a = 2.0 * torch.as_tensor(np.asarray(feat_bits), dtype=torch.float64) - 1
    grid = torch.zeros((1, a.shape[1], size[2], size[1], size[0]), dtype=torch.float64)
    rel = c - lo
    grid[0, :, rel[:, 2], rel[:, 1], rel[:, 0]] = a.T
    w = 2.0 * torch.as_tensor(np.asarray(weight_bits), dtype=torch.float64) - 1
    # W_k at offset (dx, dy, dz) is kernel[dz + 1, dy + 1, dx + 1] of a cross-correlation.
    kernel = w.reshape(3, 3, 3, w.shape[1], w.shape[2]).permute(3, 4, 0, 1, 2)
    y = torch.nn.functional.conv3d(grid, kernel, padding=1)
    return y[0, :, rel[:, 2], rel[:, 1], rel[:, 0]].T.round().to(torch.int64).numpy()


def fold_batchnorm_dot(gamma, beta, mean, var, eps, low, high):
    """Batch-norm + sign on a signed sum ``y`` in ``[low, high]`` folded into ``y' >= T``
    (``y' = -y`` for channels whose weights are flipped, ``gamma < 0``); ceil rounding, ``T``
    clamped to ``[low, high + 1]`` (constant outputs for ``gamma = 0``)."""
    gamma, beta = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    std = np.sqrt(var + eps)
    flip = gamma < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = mean - beta * std / np.where(gamma != 0, gamma, 1.0)
    t = np.where(flip, np.ceil(-tau), np.ceil(tau))
    t = np.where(gamma == 0, np.where(beta >= 0, low, high + 1), t)
    return np.clip(t, low, high + 1).astype(np.int64), flip


class BinarySparseConv(nn.Module):
    """Binary submanifold 3x3x3 convolution for training: ``+-1`` features gathered through the
    kernel map, ``sign(W_k)`` with the straight-through gradient, scattered with
    ``index_add``."""

    def __init__(self, in_channels, out_channels, binarizer="sign"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(27, out_channels, in_channels).uniform_(-1, 1)
                                   * (3.0 / (27 * in_channels)) ** 0.5)
        self.binarize = WeightBinarizer(self.weight.shape, binarizer)

    def forward(self, feats, kmap):
        w = self.binarize(self.weight)
        out = feats.new_zeros(feats.shape[0], w.shape[1])
        kmap = torch.as_tensor(kmap)
        for k in range(27):
            sel = kmap[kmap[:, 2] == k]
            if len(sel):
                out = out.index_add(0, sel[:, 0], feats[sel[:, 1]] @ w[k].T)
        return out

    def weight_bits(self):
        return self.binarize.bits(self.weight).numpy()


def sparse_layer_rows(kind, frame, bits, shift=(0, 0, 0)):
    """Output coordinates and kernel-map rows ``(out, in, slot)`` of one hardware layer on one
    frame: ``(coords, feat_bits)`` for ``ssc``, ``down`` and ``pointwise``, ``(coarse_coords,
    coarse_feat_bits, fine_coords)`` for ``up`` (absent parents give no row). ``shift``: an
    ``ssc`` layer's window shift (SFSC)."""
    if any(shift) and kind != "ssc":
        raise BnnforgeError(f"only an ssc layer's window shifts, not a {kind} layer's")
    if kind == "ssc":
        coords = frame[0]
        return coords, (ssc_kernel_map(coords, bits, shift) if len(coords)
                        else np.zeros((0, 3), np.int64))
    if kind == "down":
        return downsample_map(frame[0])
    if kind == "up":
        coarse, _, fine = frame
        return fine, upsample_map(fine, coarse, allow_missing=True)
    if kind == "pointwise":
        n = len(frame[0])
        return frame[0], np.stack([np.arange(n), np.arange(n), np.zeros(n, np.int64)], axis=1)
    raise BnnforgeError(f"unknown sparse layer kind {kind!r}")


def sparse_layer_sums(kind, frame, weight_bits, bits, rows=None, shift=(0, 0, 0)):
    """Golden signed sums of one hardware layer on one frame: ``(out_coords, sums)``
    (``rows``: the frame's :func:`sparse_layer_rows`, when already at hand)."""
    coords, rows = sparse_layer_rows(kind, frame, bits, shift) if rows is None else rows
    return coords, binary_ssc_dot(frame[1], weight_bits, rows, len(coords))


def binary_ssc_bits(coords, feat_bits, weight_bits, thresholds, bits):
    """Output bits ``y >= T`` of a binary SSC layer on one frame (hardware order)."""
    kmap = ssc_kernel_map(coords, bits)
    return (binary_ssc_dot(feat_bits, weight_bits, kmap) >= np.asarray(thresholds)).astype(
        np.uint8)
