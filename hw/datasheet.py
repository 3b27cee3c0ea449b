"""The datasheet written beside every generated core (``README.md`` in the design directory):
what an integrator needs to connect the core without reading its Verilog. It is written from
``design.json`` when the design is generated, and written again with resources and Fmax after
``bnnforge synth`` (from ``synth-<family>/result.json``)."""

import json
from pathlib import Path

__all__ = ["datasheet", "write_datasheet"]

_KIND_TEXT = {
    "dense-network": "a binary fully connected network (dense layers, thresholds, integer "
                     "scores at the end); one input vector gives one output vector",
    "groupnet": "the binary groups of a Group-Net; one pixel of a feature map a transfer, "
                "an image is a frame of height x width pixels in raster order",
    "cnn": "a binary CNN (convolutions, max-pooling, fully connected layers); an image is a "
           "frame of height x width pixels in raster order, one pixel a transfer, and gives "
           "one vector of class scores",
}
_SPARSE_TEXT = ("one binary sparse voxel layer with its neighbour search; voxels of a frame in "
                "sorted order, one a transfer")


def _ports(info):
    n = len(info["blocks"])
    rows = [("clk", "in", 1, "clock; every register samples on its rising edge"),
            ("rst", "in", 1, "synchronous reset, active high"),
            ("s_axis_tdata", "in", info["tdata_in"], "input data (layout below)"),
            ("s_axis_tvalid", "in", 1, "input beat valid"),
            ("s_axis_tready", "out", 1, "the core takes the beat in a cycle with tvalid"),
            ("s_axis_tlast", "in", 1, "ignored for dense, Group-Net and CNN cores (beats "
                                      "are counted); ends a frame for sparse cores")]
    if info["kind"].startswith("sparse"):
        rows.append(("s_axis_tuser", "in", 1, "frame marker (see docs/sparse.md)"))
    rows += [("m_axis_tdata", "out", info["tdata_out"], "output data (layout below)"),
             ("m_axis_tvalid", "out", 1, "output beat valid"),
             ("m_axis_tready", "in", 1, "the sink takes the beat; hold it high for full "
                                        "throughput"),
             ("m_axis_tlast", "out", 1, _tlast_out(info))]
    if info["kind"].startswith("sparse"):
        rows += [("m_axis_tuser", "out", 2, "marker, error (see docs/sparse.md)"),
                 ("search_busy", "out", 1, "observation: the neighbour search is working")]
    rows += [("layer_fire", "out", n, "observation: bit k is high in a cycle in which block "
                                      "k hands a vector on; leave unconnected in a product"),
             ("layer_busy", "out", n, "observation: bit k is high in a cycle in which block "
                                      "k issues work (utilisation)")]
    return rows


def _tlast_out(info):
    if info["kind"].startswith("sparse"):
        return "last beat of an output frame"
    beats = info.get("beats_out") or 1
    frame = info.get("frame_outputs", 1)
    if beats > 1:
        return f"high on the last of the {beats} beats of each output vector"
    if frame > 1:
        return f"high on the last of each frame of {frame} output transfers"
    return "high on every output transfer (one vector a frame)"


def _layout(info):
    lines = []
    ew, lane, lanes = info["element_width"], info["lane_width"], info["lanes"]
    if info["kind"] == "dense-network":
        lines.append(f"- **Input vector**: {info['in_width']} bits, element `j` at bit `j` "
                     f"(bit 1 is +1, bit 0 is -1).")
    elif info["kind"] == "groupnet":
        lines.append(f"- **Input pixel**: {info['channels']} channels, channel `c` as a "
                     f"{info['code_width']}-bit two's-complement code at bit "
                     f"`c * {info['code_width']}` (the stem's output in the bitstream's fixed "
                     f"point; see docs/groupnet.md).")
    elif info["kind"] == "cnn":
        b = info["input_bits"]
        lines.append(f"- **Input pixel**: {info['channels']} channels of {b} bit"
                     f"{'s' if b > 1 else ''}, channel `c` at bits `[{b} c, {b} c + {b})`"
                     + (" (unsigned codes)" if b > 1 else " (bit 1 is +1)")
                     + f"; an image is {info['height']} x {info['width']} pixels in raster "
                       f"order, image after image.")
    else:
        lines.append("- **Input voxel**: coordinates and feature bits as docs/sparse.md lays "
                     "them out.")
    if ew == 1:
        lines.append(f"- **Output**: {lanes} bits, element `r` at bit `r`.")
    else:
        lines.append(f"- **Output**: {lanes} elements of {ew} bits, element `r` in its own "
                     f"{lane}-bit lane at bits `[{lane} r, {lane} r + {ew})`, the lane's upper "
                     f"{lane - ew} bits zero" + (" (unsigned popcount scores)."
                                                 if info["kind"] in ("dense-network", "cnn")
                                                 else
                                                 " (two's complement)."))
    if info.get("beat_width"):
        bw = info["beat_width"]
        lines.append(f"- **Narrow ports**: {bw}-bit beats. An input vector is "
                     f"{info['beats_in']} beats, lowest bits first (beat `b` carries bits "
                     f"`[{bw} b, {bw} b + {bw})`, bits past the vector are ignored); an output "
                     f"vector is {info['beats_out']} beats the same way, tlast on its last.")
    elif info["tdata_in"] > info["in_width"]:
        lines.append(f"- `s_axis_tdata` is {info['tdata_in']} bits (whole bytes); bits from "
                     f"{info['in_width']} up are ignored.")
    return lines


def _sentence(text):
    """``text`` with its first letter in upper case (the rest as written: names keep theirs)."""
    return text[:1].upper() + text[1:]


def _cnn_timing(info):
    return [f"- Interval (model): one image every **{info['cycles_per_frame']}** cycles once the "
            f"pipeline is full, with `m_axis_tready` high and the input never starved (the "
            f"slowest op: its window unit at one padded position a cycle, or its MVTU's "
            f"positions x folds).",
            "- Latency: measured at the handshakes by `bnnforge sim` (layers start on an image "
            "before the layer before has finished it, so it is not the sum of the blocks' "
            "latencies below); the interval is checked equal to the model by the test suite."]


def datasheet(info, synth=()):
    """The datasheet's Markdown text for ``design.json`` contents ``info`` and synthesis
    results ``synth`` (the dicts ``hw.synth.synthesize`` returns)."""
    top = info["top"]
    lines = [f"# `{top}`: bnnforge core datasheet", "",
             f"{_sentence(_KIND_TEXT.get(info['kind'], _SPARSE_TEXT))}. Verilog: "
             f"`{info['verilog']}` "
             f"(module `{top}`), generated by bnnforge for "
             + (f"the {info['family']} family" if info.get("family") else "any FPGA family "
                                                                           "(generic)")
             + ".", "",
             f"Bitstream checksum: `{info.get('bitstream_checksum') or 'not recorded'}` (the "
             f"weights this core holds; `bnnforge inspect` prints a bitstream's, and "
             f"docs/bitstream.md gives the recipe).", "",
             "## Ports", "", "| port | dir | width | meaning |", "|---|---|---|---|"]
    lines += [f"| `{n}` | {d} | {w} | {m} |" for n, d, w, m in _ports(info)]
    lines += ["", "Both streams are AXI4-Stream: a beat moves in a cycle in which `tvalid` and "
              "`tready` are both high at the rising edge of `clk`. `s_axis_tready` may be high "
              "while `s_axis_tvalid` is low; `m_axis_tvalid`, once high, stays high with the "
              "same data until the beat moves.", "", "## Data layout", "", *_layout(info), "",
              "## Reset", "",
              "`rst` is synchronous and active high: hold it for at least one rising edge of "
              "`clk`. While it is high every register takes its initial value at each edge: "
              "results in flight are dropped, `m_axis_tvalid` goes low, and a beat offered "
              "during reset is lost even if `s_axis_tready` shows high, so do not offer beats "
              "before `rst` is low. After reset the core is empty and ready. Memories keep "
              "their contents (they are read-only).", "",
              "## Timing", "", *(_cnn_timing(info) if info["kind"] == "cnn" else [
              f"- Interval (model): one vector every **{info['cycles_per_vector']}** cycles "
              f"once the pipeline is full, with `m_axis_tready` high and the input never "
              f"starved (the slowest block"
              + (", or the width converters' beats + 1" if info.get("beat_width") else "")
              + ").",
              f"- Latency (model): **{info['latency']}** cycles from the first input beat of a "
              f"vector into the idle core to its first output beat being valid."
              if info.get("latency") is not None else
              "- Latency: depends on the data (sparse frames); see docs/sparse.md.",
              "- Both figures are measured at the handshakes in simulation by `bnnforge sim` "
              "(and checked equal to the model by the test suite)."]), "",
              "| block | PE | SIMD | cycles a vector (model) | latency (model) |",
              "|---|---|---|---|---|"]
    lines += [f"| {b['name']} | {b['pe'] or '-'} | {b['simd'] or '-'} | {b['cycles_model']} | "
              f"{b['latency'] if b['latency'] is not None else '-'} |" for b in info["blocks"]]
    mem = info.get("memory_files", [])
    in_cells = set(info.get("block_ram_files", []))
    lines += ["", "## Files", ""]
    read = [f for f in mem if f not in in_cells]
    if read:
        lines.append(f"- Memory files read by `$readmemh` (relative paths: keep them in the "
                     f"simulator's or synthesis tool's working directory): "
                     + ", ".join(f"`{f}`" for f in read) + ".")
    if in_cells:
        lines.append("- Memory files whose words sit in DP16KD block RAM `INITVAL` parameters "
                     "in the Verilog (written for reference, not read): "
                     + ", ".join(f"`{f}`" for f in sorted(in_cells)) + ".")
    if info.get("sim_models"):
        lines.append("- Simulation models of the FPGA primitives the Verilog instantiates, for "
                     "simulators only (synthesis uses the vendor cells): "
                     + ", ".join(f"`{f}`" for f in info["sim_models"]) + ".")
    lines.append("- `design.json`: this description as data (fields in docs/design.md)"
                 + ("; `folding.json`: the folding." if info.get("folding") else "."))
    b = info.get("memory_budget")
    if b:
        from .memory_budget import BLOCK_RAMS

        cell = BLOCK_RAMS[b["family"]]["cell"]
        lines += ["", "## On-chip memory", "",
                  f"{b['bits']:,} bits in {len(b['memories']) + b.get('memories_not_listed', 0)}"
                  f" memories" + (f" and {b['cells_by_hand']} {cell} cells" if b["cells_by_hand"]
                                  else "")
                  + f", about {b['block_ram_estimate']} {cell} if each memory took its own "
                  f"blocks; the {b['part']} has {b['device_block_rams']} "
                  f"({b['device_block_ram_bits']:,} bits) and about "
                  f"{b['device_lut_ram_bits']:,} bits of LUT RAM: "
                  + ("the memories can fit." if b["fits"] else
                     "**the memories cannot fit** (`bnnforge synth` refuses the design)."), ""]
        if b["memories"]:
            lines += ["| memory | words x bits | bits | " + cell + " |", "|---|---|---|---|"]
            lines += [f"| `{m['name']}` | {m['depth']} x {m['width']} | {m['bits']:,} | "
                      f"{m['blocks']} |" for m in b["memories"]]
            if b.get("memories_not_listed"):
                lines.append(f"| ({b['memories_not_listed']} smaller ones) | | | |")
    lines += ["", "## Resources and Fmax", ""]
    if not synth:
        lines.append("Not synthesized yet: `bnnforge synth <this directory>` places and routes "
                     "it and writes the figures here.")
    from .synth import fmax_of

    for r in synth:
        fmax = fmax_of(r)
        lines += [f"{r['part']} ({r['family']}), Yosys {r['tools']['yosys']}, nextpnr "
                  f"{r['tools']['nextpnr']}"
                  + (f", speed grade {r['speed_grade']}" if r.get("speed_grade") else "")
                  + f", seed {r['seed']}"
                  + (", out of context" if r.get("out_of_context") else "") + ":", "",
                  "| LUT4 | carry cells | flip-flops | logic cells | block RAM | DSP | "
                  "Fmax (target) |", "|---|---|---|---|---|---|---|",
                  f"| {r['lut4']} | {r['carry']} | {r['ff']} | {r['comb']} | {r['bram']} | "
                  f"{r['dsp']} | "
                  + (f"{fmax:.1f} MHz" if fmax else "-")
                  + f" ({r['freq_target_mhz']:g} MHz) |", ""]
        if fmax:
            lines.append(f"At that Fmax: {fmax / info['cycles_per_vector']:.4g} M vectors/s "
                         f"(interval model), latency "
                         + (f"{info['latency'] / fmax:.3g} us." if info.get("latency")
                            else "data-dependent."))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_datasheet(design_dir):
    """(Re)write ``README.md`` in ``design_dir`` from its ``design.json`` and any synthesis
    results."""
    d = Path(design_dir)
    info = json.loads((d / "design.json").read_text())
    synth = [json.loads(p.read_text()) for p in sorted(d.glob("synth-*/result.json"))]
    (d / "README.md").write_text(datasheet(info, synth))
