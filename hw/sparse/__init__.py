"""Binarized sparse convolution layers with their site search in hardware (BSC-Net).

A frame of active voxels streams in, sorted by key ``z * 2^(2B) + y * 2^B + x`` (one voxel a
transfer: features, coordinates; ``last`` on the frame's last beat; a ``marker`` beat is no
voxel: a frame of one marker beat is empty). Every layer stores its frame, *searches* it for
the (output site, input site, kernel slot) pairs of its kernel map, and computes, for every
output site and channel, ``y = sum over its pairs of (2 popcount(XNOR(a_in, w_slot)) - Cin)``;
it streams out either the bits ``y >= T`` (``output="bits"``) or the signed sums themselves
(``output="sums"``: for layers whose batch-norm cannot be folded, because a residual add
follows it on the host). Three kinds share the store and the compute; they differ in the
search:

``ssc`` (submanifold 3x3x3, 27 slots; outputs at the input sites)
    Sort/merge intersection: adding an offset to every key keeps the sorted order, so for each
    of the nine rows ``(dy, dz)`` a *row engine* walks the sorted keys with its own pointer,
    never backwards, keeping a window of the next three keys. For voxel ``(x, y, z)`` it drops
    keys below ``(x - 1, y + dy, z + dz)``; the window then holds the row's neighbours at
    ``dx = -1, 0, +1`` if they exist. Each row engine reads its own copy of the key memory;
    over a frame each pointer moves at most ``N`` times.
``down`` (kernel 2, stride 2, 8 slots; outputs ``unique(floor(x / 2))``)
    For fixed parities ``(y & 1, z & 1)`` the parents ``floor(x / 2)`` of the sorted fine sites
    do not decrease. The store appends each site (key and index) to the list of its parity;
    four *parity engines* each scan their own list once and pair the two children
    ``x = 2X, 2X + 1`` of a parent; a four-way merge takes the smallest parent at the heads and
    emits it with up to eight children (slot ``px + 2 py + 4 pz``). The engines scan in
    parallel, so the search needs about a cycle per parent of the largest parity class.
``up`` (transposed kernel 2, stride 2, 8 slots; outputs at the finer level's sites)
    The frame is two tlast-delimited parts: first the coarse voxels with their features, then
    the fine sites (coordinates; the feature field is ignored). Each fine site receives its
    parent ``floor(f / 2)`` at slot = its parity bits. The store appends each fine site to the
    list of its parity ``(y & 1, z & 1)``; four lanes walk their list together with their own
    copy of the coarse keys (both pointers only move forward) and queue, per fine site, whether
    its parent exists and where; the fine sites in order take the answer at the head of their
    parity's queue. A fine site whose parent is absent receives nothing (``y = 0``). Each lane
    needs at most ``N_coarse + N_fine(parity)`` steps.

``pointwise`` (1x1x1, 1 slot; outputs at the input sites)
    Every stored site is its own output with itself at slot 0 (the 1-bit projections of
    BSC-Net's SSC layers whose channel count changes).

The search runs ahead of the compute through a FIFO of records (output key, mask of present
slots, input indices); the compute takes ``ceil(Cin / SIMD) * ceil(Cout / PE)`` cycles for each
group of up to ``offsets`` present slots of a site (``offsets`` kernel offsets a cycle).

The search runs while the frame streams in: it reads only words already stored (the counts of
a cycle ago) and treats "no further word" as final only once the frame is complete, so store,
search and compute overlap and a frame takes about ``max(N, pairs * folds / offsets)`` cycles
plus the lag of one z-plane (a site's neighbours or its parent's other children lie up to one
plane further on).

Limits are parameters; a frame (or part) with more voxels than ``max_voxels`` or keys that are
not strictly increasing ends with one error beat (``marker``, ``error`` and ``last`` set, the
error code in the ``x`` field: 1 too many voxels, 2 unsorted or duplicate). Outputs may already
have left for the valid prefix of such a frame before the bad voxel arrived; the error beat
voids every beat of its frame (as a network MAC marks a bad frame on its last beat), and the
tool drops them.

Cost: key copies (ssc 10, up 4 coarse + 1 fine, pointwise 1) of ``max_voxels`` words of ``3B`` bits, 4
parity lists of ``max_voxels`` words (down: key and index; up: key), ``max_voxels * Cin``
feature bits, ``slots * Cout * Cin`` weight bits, a record FIFO.
"""

from .layer import SparseConv, SparseLayer
from .mean import SparseMean
from .layouts import (ERROR_LOAD, ERROR_TOO_MANY, ERROR_UNSORTED, KINDS, record_layout,
                      sum_width, voxel_in_layout, voxel_out_layout)

__all__ = ["SparseLayer", "SparseConv", "SparseMean", "KINDS", "ERROR_LOAD", "ERROR_TOO_MANY",
           "ERROR_UNSORTED", "sum_width", "voxel_in_layout", "voxel_out_layout", "record_layout"]
