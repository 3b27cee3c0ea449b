"""Frames of any size through a sparse layer of bounded size: tiles with halos.

A sparse layer's hardware stores a whole frame (``max_voxels`` sites, ``coord_bits``-bit
coordinates). To run a frame larger or wider than that, the host cuts it into boxes; each tile
is a frame in the box's own coordinates, small enough for the hardware; the outputs of the
tiles, put back in place, are exactly the outputs of the whole frame.

- **SSC** (3x3x3, outputs at the input's sites): a tile's input is the sites of its box and of
  a halo one voxel wide around it (their neighbours); its outputs are kept at the box's sites
  only. Local coordinates are ``c - (lo - 1)``, so a box of ``2^bits - 2`` voxels a side fits
  ``bits``-bit coordinates. A shifted window (SFSC) reaches two voxels: ``reach = 2``, a halo
  two wide.
- **Down-sampling** (kernel 2, stride 2): boxes start and end at even coordinates, so that all
  eight children of a coarse site fall in one box; no halo. Local coordinates ``c - lo``.
- **Up-sampling**: boxes of the fine level, even-aligned; the tile's coarse part is the coarse
  sites of the box halved. No halo.

A box with more sites than ``max_voxels`` (its halo included) is split in two along its longest
side until every tile fits; a single voxel and its halo are at most 27 sites (125 with a
reach of 2), so ``max_voxels >= 27`` (125) always suffices. The cost is the halo: SSC computes
its sites too and throws their outputs away (``halo_pairs`` in :func:`tile_stats`).
"""

from dataclasses import dataclass

import numpy as np

from quant.errors import BnnforgeError
from .sparse import voxel_keys

__all__ = ["Tile", "tile_layer", "merge_outputs", "tile_stats"]


@dataclass
class Tile:
    """One tile: ``frame`` in local coordinates (as :func:`golden.sparse.sparse_layer_sums`
    takes it), ``keep`` (mask over the tile's outputs) and ``index`` (the global output index of
    each kept output)."""

    frame: tuple
    keep: np.ndarray
    index: np.ndarray
    origin: np.ndarray


def _inside(c, lo, hi):
    return ((c >= lo) & (c < hi)).all(axis=1)


def _boxes(sets, fits, side, even):
    """Boxes ``(lo, size, cands)`` covering the points of ``sets[0]``: a grid of ``side``, each
    box split along its longest side until ``fits(lo, size, cands)``.

    ``sets`` lists point sets ``(coords, scale, pad)``; a box's ``cands`` holds, for each, the
    (ascending) indices of its points in ``[lo // scale - pad, (lo + size) // scale + pad)``.
    A half's points are among its box's, so each split looks only at those: the work grows
    with the frame times the depth of the splits, not with the frame times the tiles."""
    coords = sets[0][0]

    def within(lo, size, cands):
        return [c[_inside(a[c], lo // s - p, (lo + size) // s + p)]
                for (a, s, p), c in zip(sets, cands)]

    lo0 = coords.min(axis=0) if len(coords) else np.zeros(3, np.int64)
    if even:
        lo0 = lo0 & ~1
    out = []
    stack = []
    everything = [np.arange(len(a)) for a, _, _ in sets]
    occupied = np.unique((coords - lo0) // side, axis=0) if len(coords) else []
    for cell in occupied:
        lo, size = lo0 + cell * side, np.full(3, side, dtype=np.int64)
        stack.append((lo, size, within(lo, size, everything)))
    pad = sets[0][2]
    while stack:
        lo, size, cands = stack.pop()
        own = cands[0] if pad == 0 else cands[0][_inside(coords[cands[0]], lo, lo + size)]
        if len(own) == 0:
            continue
        if fits(lo, size, cands):
            out.append((lo, size, cands))
            continue
        axis = int(np.argmax(size))
        step = 2 if even else 1
        if size[axis] <= step:
            raise BnnforgeError("a tile of one voxel does not fit the layer's max_voxels; "
                                "the hardware needs max_voxels >= 27")
        half = (size[axis] // 2 // step) * step
        a_size, b_size = size.copy(), size.copy()
        a_size[axis], b_size[axis] = half, size[axis] - half
        b_lo = lo.copy()
        b_lo[axis] += half
        stack += [(lo, a_size, within(lo, a_size, cands)),
                  (b_lo, b_size, within(b_lo, b_size, cands))]
    return sorted(out, key=lambda b: tuple(b[0][::-1]))


def tile_layer(kind, frame, bits, max_voxels, reach=1):
    """Cut ``frame`` (``(coords, feats)`` for ssc and down, ``(coarse coords, coarse feats,
    fine coords)`` for up) into tiles for a layer of ``bits``-bit coordinates and
    ``max_voxels`` sites a part; ``reach`` the farthest neighbour of an ssc layer (1, or 2
    for a shifted window). Returns ``(tiles, out_count)``."""
    least = (2 * reach + 1) ** 3 if kind == "ssc" else 27
    if max_voxels < least:
        raise BnnforgeError(f"tiles need max_voxels >= {least} (a voxel and its halo), not "
                            f"{max_voxels}")
    limit = 1 << bits
    if kind in ("ssc", "pointwise"):
        # SSC reads a halo of its reach around its tile; a pointwise layer none.
        pad = reach if kind == "ssc" else 0
        coords, feats = (np.asarray(a) for a in frame)
        coords = coords.astype(np.int64)
        side = limit - 2 * pad
        if side < 1:
            raise BnnforgeError(f"SSC tiles of reach {pad} need coordinates of at least "
                                f"{(2 * pad).bit_length()} bits, not {bits}")

        boxes = _boxes([(coords, 1, pad)],
                       lambda lo, s, c: len(c[0]) <= max_voxels and (s <= side).all(),
                       side, even=False)
        tiles = []
        for lo, size, (sel,) in boxes:          # sel: the box's sites and its halo's
            local = coords[sel] - (lo - pad)
            order = np.lexsort(local.T)          # key order: z, then y, then x
            local, idx = local[order], sel[order]
            keep = _inside(coords[idx], lo, lo + size)
            tiles.append(Tile((local, feats[idx]), keep, idx[keep], lo - pad))
        return tiles, len(coords)
    if kind == "down":
        coords, feats = (np.asarray(a) for a in frame)
        coords = coords.astype(np.int64)
        parents = coords >> 1
        pbits = max(1, int(parents.max(initial=0))).bit_length()
        pkeys = voxel_keys(parents, pbits)
        uniq = np.unique(pkeys)

        boxes = _boxes([(coords, 1, 0)], lambda lo, s, c: len(c[0]) <= max_voxels
                       and (s <= limit).all(), limit, even=True)
        tiles = []
        for lo, size, (sel,) in boxes:
            local = coords[sel] - lo
            order = np.lexsort(local.T)
            sel = sel[order]
            out_keys = np.unique(pkeys[sel])     # the tile's outputs, in key order
            index = np.searchsorted(uniq, out_keys)
            tiles.append(Tile((coords[sel] - lo, feats[sel]), np.ones(len(index), bool),
                              index, lo))
        return tiles, len(uniq)
    if kind == "up":
        coarse, cfeats, fine = (np.asarray(a) for a in frame)
        coarse, fine = coarse.astype(np.int64), fine.astype(np.int64)

        boxes = _boxes([(fine, 1, 0), (coarse, 2, 0)],
                       lambda lo, s, c: max(map(len, c)) <= max_voxels and (s <= limit).all(),
                       limit, even=True)
        tiles = []
        for lo, size, (fsel, csel) in boxes:
            fsel = fsel[np.lexsort((fine[fsel] - lo).T)]
            csel = csel[np.lexsort((coarse[csel] - lo // 2).T)]
            tiles.append(Tile((coarse[csel] - lo // 2, cfeats[csel], fine[fsel] - lo),
                              np.ones(len(fsel), bool), fsel, lo))
        return tiles, len(fine)
    raise BnnforgeError(f"unknown sparse layer kind {kind!r}")


def merge_outputs(tiles, outputs, out_count):
    """The whole frame's outputs (``out_count x C``) from each tile's (``n_tile x C``), kept
    rows only."""
    width = next((o.shape[1] for o in outputs if o.ndim == 2 and len(o)), 1)
    dtype = next((o.dtype for o in outputs if len(o)), np.int64)
    out = np.zeros((out_count, width), dtype=dtype)
    filled = np.zeros(out_count, dtype=bool)
    for t, o in zip(tiles, outputs):
        rows = np.asarray(o)[t.keep]
        out[t.index] = rows
        filled[t.index] = True
    if not filled.all():
        raise BnnforgeError(f"internal error: {int((~filled).sum())} outputs in no tile")
    return out


def tile_stats(tiles):
    """Sites a tile (with halo) and the halo's share."""
    sizes = [len(t.frame[0]) for t in tiles]
    kept = sum(int(t.keep.sum()) for t in tiles)
    return {"tiles": len(tiles), "largest_tile": max(sizes, default=0),
            "sites_with_halo": sum(sizes), "sites_kept": kept}
