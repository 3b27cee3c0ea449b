"""What the demos share: the simulator choice, synthesis of a demo design with its resources
and achieved Fmax, software timing and the report files."""

import json
import timeit
from pathlib import Path

from quant.bitstream import atomic_write
from .progress import step

__all__ = ["pick_simulator", "synth_design", "synth_markdown", "seconds_per_item",
           "write_reports", "clock_entry", "clock_words", "SYNTH_TARGET", "shards_markdown",
           "shard_words"]

SYNTH_TARGET = ("ecp5", "85k")
"""Family and device of the demos' ``--synth`` runs (the designs are then generated for it)."""

SYNTH_SEEDS = (1, 2)
"""Placement seeds of the demos' ``--synth`` runs: placed in parallel, the best Fmax kept (and
every seed's Fmax reported)."""

CORE_SEEDS = (1, 2, 3)
"""Placement seeds of the BSC-Net core (``demo --network bscnet --synth``), one after another
until one routes: the core's router takes about an hour a seed and, on a two-core machine,
runs beside the training (a second seed in parallel would take the training's core); a seed
whose router2 makes no headway is stopped (:func:`hw.synth.router2_stalled`) and the next
placed."""


def synth_design(design_dir, clock_mhz, cycles_per_image, seeds=SYNTH_SEEDS,
                 until_routed=False):
    """Synthesize and place-and-route a demo design on :data:`SYNTH_TARGET` (target clock
    ``clock_mhz``, placement ``seeds`` in parallel, or one after another ``until_routed``):
    the report's ``synth`` entry with resources, the achieved Fmax and the hardware time per
    image at that Fmax. A failed run is recorded as ``{"error": ...}``
    (logs kept), so that the simulation results are not lost. A placement of the same Verilog
    (same part, clock, seeds and tools) already in the design's folder is used again
    (``reused``: :func:`hw.synth.synthesize`)."""
    from hw.synth import fmax_of, synthesize
    from quant.errors import BnnforgeError

    family, device = SYNTH_TARGET
    step(f"synthesizing {design_dir} for {family} {device} (Yosys + nextpnr, YoWASP; the "
         f"router takes minutes)")
    try:
        r = synthesize(design_dir, family, device, clock_mhz, seed=seeds,
                       say=lambda text: print(text, flush=True), reuse=True,
                       until_routed=until_routed)
    except BnnforgeError as e:
        print(f"synthesis failed: {e}")
        return {"error": str(e)}
    fmax = fmax_of(r)
    comb = r["utilization"].get("TRELLIS_COMB", {})
    return {"part": r["part"], "lut4": r["lut4"], "ccu2c": r["carry"], "ff": r["ff"],
            "comb": r["comb"], "comb_percent": comb.get("percent"), "bram": r["bram"],
            "dsp": r["dsp"], "fmax_mhz": fmax, "freq_target_mhz": clock_mhz,
            "speed_grade": r.get("speed_grade"), "placer": r.get("placer"),
            "router": r.get("router"), "seed": r["seed"],
            "fmax_by_seed": r.get("fmax_by_seed"), "stopped": r.get("stopped") or {},
            "until_routed": bool(r.get("inputs", {}).get("until_routed")),
            "hw_seconds_per_image_at_fmax": (cycles_per_image / (fmax * 1e6)
                                             if fmax else None),
            "tools": r["tools"], "seconds": r["seconds"], "logs": r["logs"],
            "reused": bool(r.get("reused"))}


def clock_entry(target_mhz, synth=None):
    """The clock a report's hardware times use, and where it comes from: the Fmax that the
    design reached when placed and routed (``source: "placed"``), or else the target clock,
    which no placed design has shown to be reachable (``source: "target"``)."""
    if synth and synth.get("fmax_mhz"):
        return {"mhz": synth["fmax_mhz"], "source": "placed", "part": synth["part"],
                "target_mhz": target_mhz,
                "note": f"Fmax of the design placed and routed on the {synth['part']} "
                        f"(nextpnr {synth['tools']['nextpnr']}, speed grade "
                        f"{synth.get('speed_grade')}, out of context, {_seed_words(synth)})"}
    why = ("synthesis failed" if synth and "error" in synth
           else "no design was placed and routed; --synth measures the Fmax")
    return {"mhz": target_mhz, "source": "target", "part": None, "target_mhz": target_mhz,
            "note": f"a target clock, not achieved: {why}"}


def _seed_words(synth):
    by_seed = synth.get("fmax_by_seed")
    if not by_seed:
        return f"seed {synth.get('seed', 1)}"
    return (f"seed {synth['seed']}, "
            + ("the first to route of seeds tried one after another "
               if synth.get("until_routed") else "the best of seeds ")
            + ", ".join(f"{sd}: {'not routed' if f is None else f'{f:.1f}'}"
                        for sd, f in by_seed.items()) + " MHz")


def clock_words(clock):
    """``"at 200 MHz (a target clock, not achieved: ...)"`` for a report's text."""
    return f"at {clock['mhz']:.4g} MHz ({clock['note']})"


def synth_markdown(rows):
    """Markdown lines of the resources table: ``rows`` are ``(label, synth entry)``."""
    lines = ["| design | part | LUT4 | CCU2C | FF | logic slots (% of device) | block RAM | "
             "Fmax MHz (target) | hw s/image at Fmax |", "|---|---|---|---|---|---|---|---|---|"]
    for label, s in rows:
        if "error" in s:
            lines.append(f"| {label} | synthesis failed: {s['error']} | | | | | | | |")
            continue
        fmax = "-" if s["fmax_mhz"] is None else f"{s['fmax_mhz']:.1f}"
        t = s["hw_seconds_per_image_at_fmax"]
        lines.append(f"| {label} | {s['part']} | {s['lut4']} | {s['ccu2c']} | {s['ff']} | "
                     f"{s['comb']} ({s['comb_percent'] or 0:.1f} %) | {s['bram']} | {fmax} "
                     f"({s['freq_target_mhz']:g}) | {'-' if t is None else f'{t:.3e}'} |")
    return lines


def seconds_per_item(fn, items, repeats=5):
    """Seconds per item of ``fn`` (which processes ``items`` at once): the best of ``repeats``
    timings, each over as many calls as ``timeit`` needs for a stable reading."""
    loops, _ = timeit.Timer(fn).autorange()
    return min(timeit.repeat(fn, number=loops, repeat=repeats)) / loops / items


def write_reports(out_dir, report, markdown):
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "report.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    atomic_write(out_dir / "report.md", lambda tmp: Path(tmp).write_text(markdown))


def pick_simulator(simulator, clock_mhz):
    """``(simulator, note)``: the one asked for (checked), or Verilator, or Icarus when
    Verilator is unavailable (the note says so)."""
    from quant.errors import SimulatorError
    from sim.runner import available_simulators, check_simulator

    if clock_mhz <= 0:
        raise SimulatorError(f"--clock-mhz must be positive, not {clock_mhz}")
    if simulator is not None:
        check_simulator(simulator)
        return simulator, None
    sims = available_simulators()
    if not sims:
        check_simulator("verilator")
    if "verilator" in sims:
        return "verilator", None
    return sims[0], "Verilator is unavailable; simulated on Icarus Verilog instead"


def shards_markdown(r, unit="image"):
    """Lines on a test split simulated in shards (none when it ran in one piece)."""
    shards = r.get("shards")
    if not shards:
        return []
    each = ", ".join(f"{s['n']} ({s['cycles_per_input']:.2f})" if s["cycles_per_input"]
                     else str(s["n"]) for s in shards)
    return [f"Test split simulated in {len(shards)} shards on {r['engine']}; {unit}s a shard "
            f"(cycles per {unit} measured in it): {each}. The cycle figures pool the shards' "
            f"intervals; the outputs are merged in order.", ""]


def shard_words(shards, scheduler):
    """The words a progress step adds for a sharded test-set run."""
    if not shards:
        return ""
    return (f", in {shards} shards on Dask "
            f"({'the scheduler ' + scheduler if scheduler else 'a LocalCluster'})")
