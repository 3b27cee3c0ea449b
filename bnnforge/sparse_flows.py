"""Flows of one binary sparse layer (SSC, down- or up-sampling with its search in hardware):
generate its design, run voxel frames through it against golden, turn error beats into
messages. A BSC-Net's layers (:mod:`bnnforge.kinds.bscnet`) and the benchmarks use them."""

import json
from pathlib import Path

import numpy as np

from hw.generate import check_output_dir, design_info, write_design
from .flows import TOP_NAME

__all__ = ["generate_sparse", "generate_sparse_engine", "generate_sparse_mean", "simulate_sparse",
           "simulate_tiled", "sparse_error_messages", "codes_to_bits", "bits_to_codes",
           "mean_golden"]


def generate_sparse(weights, thresholds, max_voxels, coord_bits, folding, out_dir, name="ssc",
                    kind="ssc", output="bits", offsets=1, family=None, shift=(0, 0, 0),
                    word_bits=None):
    """Write one binary sparse layer (``kind`` ssc, down, up or pointwise; search in hardware)
    as Verilog with voxel framing on tuser/tlast; ``output`` bits (thresholds) or sums;
    ``offsets`` kernel offsets a cycle; ``family`` the target FPGA family (None: generic);
    ``shift`` an ssc layer's window shift (SFSC); ``word_bits``: behind a word port."""
    from hw.sparse import SparseLayer

    check_output_dir(out_dir)
    conv = SparseLayer(kind, weights, thresholds, max_voxels, coord_bits, folding, output=output,
                       offsets=offsets, family=family, shift=shift)
    return _write_sparse(conv, out_dir, name, family, {"shift": list(conv.shift)}, word_bits)


def generate_sparse_engine(kind, cin, cout, max_voxels, coord_bits, folding, out_dir,
                           name=None, offsets=1, family=None, word_bits=None):
    """Write a binary sparse layer of up to ``cin`` x ``cout`` channels whose weights (and
    window shift, ssc) load at run time (:meth:`hw.sparse.SparseLayer.loadable`): one design
    for every binary ``kind`` layer of a network; sums out. With ``word_bits`` the engine sits
    behind a :class:`hw.sparse.words.WordPort` (as in the BSC-Net core)."""
    from hw.sparse import SparseLayer

    check_output_dir(out_dir)
    conv = SparseLayer.loadable(kind, cin, cout, max_voxels, coord_bits, folding,
                                offsets=offsets, family=family)
    return _write_sparse(conv, out_dir, name or f"{kind}_engine", family, {"loadable": True},
                         word_bits)


def _top(block, word_bits):
    """The AXI4-Stream top of a sparse block, behind a word port with ``word_bits``."""
    from hw.axis import AxisTop
    from hw.sparse.words import word_port

    return AxisTop([block if word_bits is None else word_port(block, word_bits)], sparse=True)


def _write_sparse(conv, out_dir, name, family, extra, word_bits=None):
    conv.name = name
    top = _top(conv, word_bits)
    info = design_info(top, TOP_NAME, f"sparse-{conv.kind}", {
        "layer_kind": conv.kind, "output": conv.output, "out_width": conv.out_width,
        "sum_width": conv.sum_width, "max_voxels": conv.max_voxels,
        "coord_bits": conv.coord_bits, "cin": conv.cin, "cout": conv.cout, "pe": conv.pe,
        "simd": conv.simd, "folds_per_pair": conv.folds, "offsets": conv.offsets,
        "family": family, **extra})
    write_design(out_dir, top, TOP_NAME, {}, info)
    return json.loads((Path(out_dir) / "design.json").read_text())


def generate_sparse_mean(kind, channels, fmt, max_voxels, coord_bits, out_dir, name="mean",
                         word_bits=None):
    """Write a mean layer (``kind`` down: pool, up: unpool; :class:`hw.sparse.SparseMean`) of
    ``channels`` fixed-point codes a site as Verilog with voxel framing; its features are the
    codes' bits (:func:`codes_to_bits`). ``word_bits``: behind a word port."""
    from hw.sparse import SparseMean

    check_output_dir(out_dir)
    layer = SparseMean(kind, channels, fmt, max_voxels, coord_bits)
    layer.name = name
    top = _top(layer, word_bits)
    info = design_info(top, TOP_NAME, f"sparse-mean-{kind}", {
        "layer_kind": kind, "output": "mean", "out_width": layer.out_width,
        "sum_width": fmt.width, "max_voxels": max_voxels, "coord_bits": coord_bits,
        "cin": layer.cin, "cout": channels, "channels": channels, "format": fmt.to_dict(),
        "folds_per_pair": 1, "offsets": 1, "family": None})
    write_design(out_dir, top, TOP_NAME, {}, info)
    return json.loads((Path(out_dir) / "design.json").read_text())


def codes_to_bits(codes, width):
    """Signed codes ``N x C`` as feature bits ``N x (C width)``: code ``c``'s two's complement
    bits at ``c * width``, lowest first."""
    v = np.asarray(codes, dtype=np.int64) & ((1 << width) - 1)
    bits = (v[:, :, None] >> np.arange(width)) & 1
    return bits.reshape(len(v), v.shape[1] * width).astype(np.uint8)


def bits_to_codes(bits, channels, width):
    """The inverse of :func:`codes_to_bits`."""
    b = np.asarray(bits, dtype=np.int64).reshape(len(bits), channels, width)
    v = (b << np.arange(width)).sum(axis=2)
    return np.where(v >> (width - 1), v - (1 << width), v)


def mean_golden(fmt, channels):
    """The golden outputs of a mean layer for :func:`simulate_sparse`: each output site's
    ``sat(rs(sum * r[n], pool_frac))`` over its kernel-map rows (no row: 0)."""
    from golden.bscnet_fixed import mean_over_rows

    def golden(kind, frame, rows, n_out):
        return mean_over_rows(bits_to_codes(frame[1], channels, fmt.width), rows, n_out, fmt)

    return golden


def _binary_golden(weights):
    from golden.sparse import binary_ssc_dot

    def golden(kind, frame, rows, n_out):
        return binary_ssc_dot(frame[1], weights, rows, n_out)

    return golden


def sparse_error_messages(run, frames, info, skip=0):
    """The hardware's error beats (tuser = marker | error) as messages naming the frame and the
    limit it broke; ``skip`` leading beats are a load frame's."""
    from hw.sparse import ERROR_TOO_MANY, ERROR_UNSORTED
    from sim.voxels import error_code

    messages, frame = [], 0
    beats = list(zip(run["outputs"], run["framing"]))
    for word, (last, user) in beats[:skip]:
        if user == 3:
            messages.append("the load frame was rejected (too few or too many weight words, "
                            "or folds beyond the design's); check the layer's channels "
                            "against the design's")
    for word, (last, user) in beats[skip:]:
        if user == 3:
            code = error_code(int(word, 16), info.get("out_width", info["cout"]),
                              info["coord_bits"])
            n = len(frames[frame][0]) if frame < len(frames) else "?"
            if code == ERROR_TOO_MANY:
                messages.append(f"frame {frame}: {n} voxels exceed the design's limit of "
                                f"{info['max_voxels']}; generate it with a larger max_voxels "
                                f"or split the frame")
            elif code == ERROR_UNSORTED:
                messages.append(f"frame {frame}: voxel keys are not strictly increasing "
                                f"(unsorted or duplicate voxels); sort and merge the frame "
                                f"(golden.sparse.sort_frame, voxelize)")
            else:
                messages.append(f"frame {frame}: hardware error code {code}")
        frame += int(last)
    return messages


def simulate_sparse(design_dir, frames, weights, thresholds, simulator, stall_modes=("none",),
                    waves=None, progress=None, seed=0, golden_fn=None, shift=None):
    """Run voxel frames through a sparse layer design and compare every output beat (vector,
    coordinates, framing) with golden. ``frames``: ``(coords, feature bits)`` for ssc/down,
    ``(coarse coords, coarse feature bits, fine coords)`` for up; ``thresholds`` None for a
    design that outputs sums. Returns the runner's result with ``mismatches`` (frames with any
    difference), ``pairs`` per frame, ``frame_cycles`` per frame (first input beat to last
    output beat, stall mode none), ``search_cycles`` and ``outputs`` (per frame, the
    hardware's bits or sums, N x Cout). ``golden_fn(kind, frame, rows, n_out)`` gives the
    golden outputs of a layer that is not a binary convolution (:func:`mean_golden`).

    A design whose weights load at run time (``loadable`` in its design.json) gets a load
    frame of ``weights`` and ``shift`` first (its marker beat is checked too, not counted
    as a frame); the frames' features are padded to its input channels and ``outputs`` hold
    the loaded layer's channels."""
    from golden.sparse import sparse_layer_rows
    from sim.runner import run_vectors
    from sim.voxels import ints_to_bits, layer_beats, load_beats, pad_weights, unpack_sums

    info = json.loads((Path(design_dir) / "design.json").read_text())
    kind = info.get("layer_kind", "ssc")
    bits, cin, cout = info["coord_bits"], info["cin"], info["cout"]
    sw = info.get("sum_width") if thresholds is None else None
    loadable = bool(info.get("loadable"))
    if shift is None:
        shift = info.get("shift") or (0, 0, 0)
    shift = tuple(int(v) for v in shift)
    maps = [sparse_layer_rows(kind, f, bits, shift) for f in frames]
    n_out = cout
    if loadable:
        # The hardware computes whole PE folds (the padding channels' weights are 0) and
        # outputs 0 beyond them.
        n_out = np.asarray(weights).shape[1]
        golden_fn = _binary_golden(pad_weights(weights, info["pe"], info["simd"]))
    fn = golden_fn or _binary_golden(weights)
    golden = [(coords, fn(kind, f, rows, len(coords))) for f, (coords, rows) in zip(frames, maps)]
    if loadable:
        frames = [tuple(_pad_features(part, cin) if i == 1 else part for i, part in enumerate(f))
                  for f in frames]
        golden = [(c, _pad_features(g, cout)) for c, g in golden]
    data, framing, want, want_framing = layer_beats(kind, frames, weights, thresholds, bits,
                                                    cin, sw, golden, cout=cout)
    if loadable:
        head = load_beats(info, weights, shift)
        data, framing = head[0] + data, head[1] + framing
        want, want_framing = head[2] + want, head[3] + want_framing
    per_site = 28 * info["folds_per_pair"] + 8
    # Input beats of each frame (an up frame's two parts); the rest are the load frame's.
    in_sizes = [sum(max(1, len(p)) for p in ((f[0], f[2]) if kind == "up" else (f[0],)))
                for f in frames]
    result = run_vectors(design_dir, data, want, simulator=simulator, stall_modes=stall_modes,
                         waves=waves, progress=progress, seed=seed, framing=framing,
                         expected_framing=want_framing, fires=False,
                         max_cycles=10_000 + 4 * sum(len(f[0]) + len(f[-1]) for f in frames)
                         * per_site + 2 * (len(data) - sum(in_sizes)))
    skip = 1 if loadable else 0             # the load frame's beat
    sizes = [max(1, len(c)) for c, _ in golden]
    ends = np.cumsum(sizes) + skip
    bad = set()
    for run in result["runs"]:
        got = [int(v, 16) for v in run["outputs"]]
        for i, (g, e, gf, ef) in enumerate(zip(got, want, run["framing"], want_framing)):
            if g != e or list(gf) != list(ef):
                bad.add(int(np.searchsorted(ends, i, side="right")))
        bad.update(int(np.searchsorted(ends, i, side="right"))
                   for i in range(len(got), len(want)))
    quiet = result["runs"][0]
    in_ends = np.cumsum(in_sizes) + (len(data) - sum(in_sizes))
    in_starts = in_ends - np.asarray(in_sizes, dtype=np.int64)
    words = [int(v, 16) for v in quiet["outputs"]]
    mask = (1 << info["out_width"]) - 1
    outputs, start = [], skip
    for (coords, _), n in zip(golden, sizes):
        vec = [w & mask for w in words[start:start + len(coords)]]
        start += n
        if thresholds is None:
            outputs.append(unpack_sums(vec, sw, cout)[:, :n_out])
        else:
            outputs.append(ints_to_bits(vec, cout))
    result["errors"] = sparse_error_messages(quiet, frames, info, skip)
    if loadable and quiet["t_out"]:
        # The load frame: its first beat in to its marker beat out.
        result["load_cycles"] = int(quiet["t_out"][0] - quiet["t_in"][0] + 1)
    result.update(info=info, mismatches=len(bad), pairs=[len(rows) for _, rows in maps],
                  outputs=outputs,
                  frame_cycles=_frame_cycles(quiet, in_starts, ends, skip),
                  search_cycles=quiet.get("search_cycles"))
    return result


def _frame_cycles(run, in_starts, ends, skip):
    """Each frame's cycles in a run of frames sent back to back: from its first input beat,
    or from the cycle after the previous frame's (or the load frame's) last output beat if
    that is later, to its last output beat. A frame's first beats may enter (a word port
    holds one) while the frame before it is still computed; counted from its first input
    beat, that time would be counted twice, so the frames' cycles partition the run."""
    t_in, t_out = run["t_in"], run["t_out"]
    out, prev = [], (t_out[skip - 1] + 1 if skip and len(t_out) >= skip else None)
    for s, e in zip(in_starts, ends):
        if e > len(t_out):
            break
        start = t_in[s] if prev is None else max(t_in[s], prev)
        out.append(int(t_out[e - 1] - start + 1))
        prev = t_out[e - 1] + 1
    return out


def simulate_tiled(design_dir, frame, weights, simulator, stall_modes=("none",), golden_fn=None,
                   shift=None):
    """Run a frame of any size through a sparse layer design of bounded size: the frame is cut
    into tiles that fit the design's ``max_voxels`` and ``coord_bits``
    (:mod:`golden.tiling`), the tiles run as consecutive frames, and their outputs are put
    back together and compared with the whole frame's golden sums.

    Returns ``{outputs, mismatches, tiles, largest_tile, sites_with_halo, pairs, cycles,
    search_cycles, pairs_whole_frame, site_pairs}`` (``site_pairs``: the whole frame's pairs
    of each output site): ``mismatches`` counts tiles the runner found
    different plus 1 if the merged sums differ from the whole frame's; ``cycles`` sums the
    tiles' frame cycles (first input beat to last output beat, no stalls). ``golden_fn``: as
    for :func:`simulate_sparse`; ``shift`` the window shift of a design that loads it (else
    the design's own)."""
    from golden.sparse import sparse_layer_rows
    from golden.tiling import merge_outputs, tile_layer, tile_stats

    info = json.loads((Path(design_dir) / "design.json").read_text())
    kind = info.get("layer_kind", "ssc")
    shift = tuple(int(v) for v in (shift if shift is not None else
                                   info.get("shift") or (0, 0, 0)))
    tiles, n_out = tile_layer(kind, frame, info["coord_bits"], info["max_voxels"],
                              reach=1 + max(abs(v) for v in shift))
    result = simulate_sparse(design_dir, [t.frame for t in tiles], weights, None, simulator,
                             stall_modes=stall_modes, golden_fn=golden_fn, shift=shift)
    merged = merge_outputs(tiles, result["outputs"], n_out)
    wbits = max(1, int(max(np.asarray(p).max(initial=0) for p in
                           ((frame[0], frame[2]) if kind == "up" else (frame[0],)))
                       ).bit_length())
    whole_rows = sparse_layer_rows(kind, frame, wbits, shift)
    want = (golden_fn or _binary_golden(weights))(kind, frame, whole_rows[1],
                                                  len(whole_rows[0]))
    return {"outputs": merged,
            "mismatches": int(result["mismatches"]) + int(not np.array_equal(merged, want)),
            **tile_stats(tiles), "pairs": int(sum(result["pairs"])),
            "pairs_whole_frame": len(whole_rows[1]),
            "site_pairs": np.bincount(np.asarray(whole_rows[1])[:, 0].astype(np.int64),
                                      minlength=len(whole_rows[0])) if len(whole_rows[1])
            else np.zeros(len(whole_rows[0]), np.int64),
            "cycles": int(sum(result["frame_cycles"])), "search_cycles":
            result["search_cycles"], "errors": result["errors"], "info": info,
            "load_cycles": result.get("load_cycles", 0)}


def _pad_features(a, width):
    """``N x C`` padded with zero columns to ``N x width``."""
    a = np.asarray(a)
    if a.shape[1] == width:
        return a
    out = np.zeros((len(a), width), a.dtype)
    out[:, :a.shape[1]] = a
    return out
