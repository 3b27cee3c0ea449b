"""Verilog generation: Amaranth to Verilog, memories linked to their ``$readmemh`` files.

A generated design directory holds ``<top>.v``, one ``.mem`` file per weight and threshold
memory (see :mod:`quant.layout`), ``folding.json`` where a folding applies, and ``design.json``
(ports, widths, per-block folding, latency, cycles). A design that instantiates FPGA primitives
(ECP5's CCU2C carry cells, with ``--family ecp5``) also gets the simulation models of those
primitives (``design.json``'s ``sim_models``: read by the simulators, never by synthesis); the
words of memories built from ECP5 block RAM cells sit in the cells' ``INITVAL`` parameters
(``block_ram_files``: their memory files are written for reference, not read); ``README.md``
is the core's datasheet (:mod:`hw.datasheet`). It is
written to a temporary directory first and moved into place only when complete.
"""

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from quant.errors import BnnforgeError
from .datasheet import write_datasheet

__all__ = ["to_verilog", "link_memory_files", "compact_zero_initialisers", "design_info",
           "check_output_dir", "write_design"]

_LITERAL = re.compile(r"(\d+)'([bhd])([0-9a-fA-F_]+)")

# Primitives a generated design may instantiate, and the file of each one's simulation model.
_SIM_MODELS = {"CCU2C": "ccu2c_sim.v", "DP16KD": "dp16kd_sim.v"}


def to_verilog(top, name):
    """Verilog text of the Amaranth component ``top`` as module ``name`` (no source paths)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    return verilog.convert(top, name=name, emit_src=False)


def _literal_value(text):
    match = _LITERAL.fullmatch(text.strip())
    if not match:
        raise BnnforgeError(f"internal error: unexpected memory initialiser {text!r}")
    base = {"b": 2, "h": 16, "d": 10}[match.group(2)]
    return int(match.group(3).replace("_", ""), base)


_ZERO_INIT = re.compile(
    r"^(?P<indent>\s*)reg \[(?P<msb>\d+):0\] (?P<mem>[\w$]+) \[(?P<hi>\d+):(?P<lo>\d+)\];\n"
    r"(?P=indent)initial begin\n(?P<body>(?:\s*(?P=mem)\[\d+\] = \d+'h0+;\n)+)"
    r"(?P=indent)end\n", re.M)


def compact_zero_initialisers(verilog):
    """Write the initial block of a memory whose every word is zero as one loop.

    Amaranth writes one line a word (a RAM of 65,536 words is 65,536 lines: a layer of a large
    sparse frame came to 24 MB of Verilog); the loop says the same to every simulator and to
    Yosys in three lines."""
    def loop(m):
        hi, lo = int(m.group("hi")), int(m.group("lo"))
        words = m.group("body").count("\n")
        if words != abs(hi - lo) + 1:
            return m.group(0)      # not every word listed: leave it as written
        ind, mem, width = m.group("indent"), m.group("mem"), int(m.group("msb")) + 1
        a, b = sorted((hi, lo))
        return (f"{ind}reg [{width - 1}:0] {mem} [{hi}:{lo}];\n"
                f"{ind}initial begin : {mem}_zero\n"
                f"{ind}  integer i;\n"
                f"{ind}  for (i = {a}; i <= {b}; i = i + 1) {mem}[i] = {width}'h0;\n"
                f"{ind}end\n")
    return _ZERO_INIT.sub(loop, verilog)


def link_memory_files(verilog, files):
    """Replace each memory's inline initial block with ``$readmemh("<name>.mem", <name>)``.

    ``files`` maps file names (``<memory name>.mem``) to their ``$readmemh`` text. Every memory
    in ``files`` must be declared in ``verilog``; where it has an inline initialiser, that must
    hold exactly the file's words (a check that the hardware and the memory files come from one
    layout).
    """
    for fname, text in files.items():
        mem = fname[:-len(".mem")]
        decl = re.search(rf"^(\s*)reg \[[^\]]+\] {re.escape(mem)} \[(\d+):(\d+)\];\n", verilog,
                         re.M)
        if not decl:
            raise BnnforgeError(f"internal error: memory {mem} not found in the Verilog")
        indent = decl.group(1)
        init = re.compile(rf"{indent}initial begin\n((?:\s*{re.escape(mem)}\[\d+\] = [^;]+;\n)*)"
                          rf"\s*end\n")
        block = init.match(verilog, decl.end())
        words = [int(w, 16) for w in text.split()]
        if block:
            inline = {}
            for line in block.group(1).strip().splitlines():
                idx, val = re.match(rf"\s*{re.escape(mem)}\[(\d+)\] = ([^;]+);", line).groups()
                inline[int(idx)] = _literal_value(val)
            expect = {i: w for i, w in enumerate(words) if w}
            if {i: v for i, v in inline.items() if v} != expect:
                raise BnnforgeError(f"internal error: memory {mem} differs from {fname}")
            end = block.end()
        else:
            end = decl.end()
        # Explicit addresses: a descending range is read from its lowest address everywhere.
        lo, hi = sorted(int(x) for x in decl.group(2, 3))
        verilog = (verilog[:decl.end()]
                   + f'{indent}initial $readmemh("{fname}", {mem}, {lo}, {hi});\n'
                   + verilog[end:])
    return verilog


def design_info(top, name, kind, extra=None):
    """The ``design.json`` description of an :class:`~hw.axis.AxisTop`."""
    blocks = [b.describe(k) for k, b in enumerate(top.blocks)]
    info = {"top": name, "kind": kind, "in_width": top.in_width,
            "tdata_in": len(top.s_axis_tdata), "tdata_out": len(top.m_axis_tdata),
            "element_width": top.element_width, "lane_width": top.lane_width,
            "lanes": top.lanes, "frame_outputs": top.frame_outputs, "blocks": blocks,
            "cycles_per_vector": top.cycles_per_vector,
            "latency": top.latency, "beat_width": top.beat_width,
            "beats_in": top.beats_in, "beats_out": top.beats_out}
    words = getattr(top.blocks[0], "words_info", None)
    words = words() if words is not None else None
    if words is not None and len(top.blocks) == 1:
        info["words"] = words            # an engine behind a word port (hw.sparse.words)
    info.update(extra or {})
    return info


def check_output_dir(out_dir):
    """Refuse an output directory that holds anything but a bnnforge design."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BnnforgeError(f"{out_dir} exists and is not a directory")
    if out_dir.exists() and not (out_dir / "design.json").exists() and any(out_dir.iterdir()):
        raise BnnforgeError(f"{out_dir} exists and is not a bnnforge design directory; "
                            f"choose an empty or new output directory")
    return out_dir


BUDGET_DEVICE = {None: ("ecp5", "85k"), "ecp5": ("ecp5", "85k"), "ice40": ("ice40", "up5k")}
"""The device a design's memory budget is set against: its family's default device (a generic
design: the LFE5U-85F)."""


def design_budget(verilog, family=None):
    """``design.json``'s ``memory_budget``: :func:`hw.memory_budget.budget` on the default
    device of ``family``, with the 20 largest memories listed."""
    from .memory_budget import budget

    b = budget(verilog, *BUDGET_DEVICE[family])
    listed = b["memories"][:20]
    return dict(b, memories=listed, memories_not_listed=len(b["memories"]) - len(listed))


def _same_design(new, old):
    """Whether the design directory ``old`` holds every file of ``new`` (but its datasheet,
    which lists synthesis results) with the same bytes."""
    for f in new.iterdir():
        if f.name != "README.md" and not (
                (old / f.name).is_file() and (old / f.name).read_bytes() == f.read_bytes()):
            return False
    return True


def write_design(out_dir, top, name, memory_files, info, extra_files=None):
    """Write Verilog, memory files, ``design.json`` (and ``extra_files``) to ``out_dir``.

    The directory is assembled next to ``out_dir`` and renamed into place, so an interrupted or
    failed generation leaves no partial design. An existing ``out_dir`` is replaced only if it
    is a bnnforge design directory; when it held this very design (every file written here
    the same, byte for byte), its synthesis results (``synth-*``) are kept, so that a design
    written again is not placed again (:func:`hw.synth.synthesize`'s ``reuse``).
    """
    out_dir = check_output_dir(out_dir)
    in_cells = sorted({f for b in getattr(top, "blocks", []) for f in b.block_ram_memories()})
    verilog = link_memory_files(compact_zero_initialisers(to_verilog(top, name)),
                                {f: t for f, t in memory_files.items() if f not in in_cells})

    def assemble(tmp):
        (tmp / f"{name}.v").write_text(verilog)
        for fname, text in memory_files.items():
            (tmp / fname).write_text(text)
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text)
        models = sorted(f for cell, f in _SIM_MODELS.items()
                        if re.search(rf"^\s*{cell} #\(", verilog, re.M))
        for fname in models:
            shutil.copy(Path(__file__).parent / "verilog" / fname, tmp / fname)
        (tmp / "design.json").write_text(json.dumps(dict(
            info, verilog=f"{name}.v", memory_files=sorted(memory_files),
            block_ram_files=in_cells, sim_models=models,
            memory_budget=design_budget(verilog, info.get("family"))), indent=2) + "\n")
        write_datasheet(tmp)

    return _put_in_place(out_dir, assemble)


def copy_design(src, out_dir):
    """Copy the design in directory ``src`` (its files, no results) to ``out_dir`` as
    :func:`write_design` would write it there."""
    def assemble(tmp):
        for f in Path(src).iterdir():
            if f.is_file():
                shutil.copy(f, tmp / f.name)

    return _put_in_place(check_output_dir(out_dir), assemble)


def _put_in_place(out_dir, assemble):
    """``assemble(tmp)`` writes a design into a folder next to ``out_dir``, which then replaces
    ``out_dir`` (keeping its ``synth-*`` results if it held the same files)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        assemble(tmp)
        if out_dir.exists():
            if _same_design(tmp, out_dir):
                for results in out_dir.glob("synth-*/"):
                    results.rename(tmp / results.name)
                write_datasheet(tmp)            # with the kept results
            old = out_dir.with_name(out_dir.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
