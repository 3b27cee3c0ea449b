"""cocotb testbench for any bnnforge AXI4-Stream top: drive vectors, check, count cycles.

Not collected by pytest. :func:`sim.runner.run_vectors` writes a job file (JSON) and runs this
module in the simulator with ``BNNFORGE_JOB`` naming it. The job holds the input vectors, the
expected outputs (from the golden model) and the stall modes to run; the testbench writes the
received outputs and cycle stamps to the job's ``result`` file and fails if any output differs.

Each cycle is one loop iteration: after the rising edge the testbench drives the source and the
sink, then reads the settled handshakes in the read-only phase, so a transfer is counted in the
cycle whose edge completes it.

Idle stretches are skipped, not stepped. In stall mode "none" the testbench draws nothing at
random, so when a cycle ends with no transfer possible (the source waits on a low ``tready`` or
has nothing left, no output is valid, no block fires) the next cycles are the same until one of
the observed signals changes. The testbench then waits for that change instead of for every edge
(a long fold of a wide linear layer runs at the simulator's speed, not a Python loop's) and
counts the skipped cycles from the simulation time: each adds the busy bits it held, as a
stepped cycle would. The clock toggles inside the simulator (the runner's simulation top,
:func:`sim.runner.clock_wrapper`), so a skipped cycle costs no callback into Python.

Busy streams leave little to skip (a sparse layer moves a word every few cycles), so stall mode
"none" is by default *played*: the simulation top's player (:func:`sim.runner.player_verilog`)
drives the stream from a file in the simulator and logs every transfer, fire and busy count,
and :func:`_play` turns that log into the same counts the loop would give (tested equal:
tests/sim/test_skip_idle.py). The loop remains for the stall modes and with ``player=False``.
"""

import json
import os
import random

import cocotb
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from sim.runner import PERIOD_NS
from sim.voxels import FrameTracker

# Probability that the source holds back a beat / that the sink is not ready, per stall mode.
STALLS = {"none": (0.0, 0.0), "source": (0.35, 0.0), "sink": (0.0, 0.35), "both": (0.35, 0.35)}


async def _idle_until_change(dut, watched, limit_cycles):
    """Wait until a watched signal changes (or ``limit_cycles`` periods pass); return the number
    of whole clock periods since the last edge the caller stepped to, at the edge that woke it."""
    start = get_sim_time(unit="ns")
    await First(*[w.value_change for w in watched], Timer(limit_cycles * PERIOD_NS, unit="ns"))
    elapsed = get_sim_time(unit="ns") - start
    return elapsed // PERIOD_NS, elapsed % PERIOD_NS


def _uint(handle):
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


async def _reset(dut):
    await RisingEdge(dut.clk)
    dut.rst.value = 1
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tlast.value = 0
    dut.s_axis_tdata.value = 0
    dut.m_axis_tready.value = 0
    if hasattr(dut, "play_go"):
        dut.play_go.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


def _stream(job):
    """The job's input words and what ends a run: ``(inputs, in_last, in_user, sparse, wb,
    n_in, n_out_words, n_out, n_frames)``."""
    inputs = [int(v, 16) for v in job["inputs"]]
    sparse = job.get("in_last") is not None    # voxel frames: tlast/tuser per beat
    in_last, in_user = job.get("in_last"), job.get("in_user")
    # A design behind a word port: each beat goes in as words_in words (tuser on each, tlast
    # on the last word of a beat that has it) and comes out as words_out words, joined here,
    # so that everything below and the results are beats (a beat's t_in is its first word's
    # cycle, its t_out its last word's).
    words = job.get("words")
    wb, n_in, n_out_words = (words["bits"], words["in"], words["out"]) if words else (0, 1, 1)
    if words:
        mask = (1 << wb) - 1
        inputs, in_last, in_user = (
            [v >> (j * wb) & mask for v in inputs for j in range(n_in)],
            [int(t and j == n_in - 1) for t in in_last for j in range(n_in)],
            [u for u in in_user for _ in range(n_in)])
    n_out = len(job["expected"]) if job.get("expected") is not None else len(inputs)
    # Voxel frames end at tlast; an error beat (tuser = marker | error) voids the beats of its
    # frame that came before it: they are dropped (and counted).
    return (inputs, in_last, in_user, sparse, wb, n_in, n_out_words, n_out,
            job.get("out_frames"))


class _Beats:
    """Output words joined into beats, with their stamps and framing checked as they come."""

    def __init__(self, mode, sparse, wb, n_out_words, frame_outputs):
        self.mode, self.sparse, self.wb, self.n = mode, sparse, wb, n_out_words
        self.frame_outputs = frame_outputs
        self.received, self.t_out, self.framing = [], [], []
        self.tracker = FrameTracker()
        self.joined, self.word = 0, 0

    def word_in(self, cycle, data, last, user):
        """One output word; True when it completed a beat."""
        self.joined |= data << (self.word * self.wb)
        self.word += 1
        if self.word < self.n:
            assert not last, f"{self.mode}: m_axis_tlast on word {self.word} of a beat of {self.n}"
            return False
        self.received.append(self.joined)
        self.joined, self.word = 0, 0
        self.t_out.append(cycle)
        if self.sparse:
            self.framing.append((last, user))
            self.tracker.beat((self.received, self.t_out, self.framing), last, user == 3)
        want_last = len(self.received) % self.frame_outputs == 0
        assert self.sparse or last == want_last, (
            f"m_axis_tlast is {last} on output {len(self.received)}, "
            f"expected {int(want_last)} (frames of {self.frame_outputs})")
        return True


async def _play(dut, job, limit):
    """Stall mode "none" by the simulation top's player (:func:`sim.runner.player_verilog`):
    the stream runs at the simulator's speed with no callback into Python a cycle; the same
    counts as :func:`_run_mode` from the player's log."""
    from sim.runner import PLAYER_IN, PLAYER_OUT

    inputs, in_last, in_user, sparse, wb, n_in, n_out_words, n_out, n_frames = _stream(job)
    stop = n_frames if sparse else n_out * n_out_words
    with open(PLAYER_IN, "w") as f:
        f.write(f"{len(inputs)} {n_in} {int(sparse)} {stop} {limit} "
                f"{int(job.get('fires', True))}\n")
        last = in_last if sparse else [1] * len(inputs)
        user = in_user if sparse else [0] * len(inputs)
        f.writelines(f"{v:x} {t:x} {u:x}\n" for v, t, u in zip(inputs, last, user))
    await _reset(dut)
    n_fire = len(dut.layer_fire)
    dut.play_go.value = 1
    await RisingEdge(dut.play_done)
    dut.play_go.value = 0
    beats = _Beats("none", sparse, wb, n_out_words, job.get("frame_outputs", 1))
    t_in, fires, busy = [], [[] for _ in range(n_fire)], [0] * n_fire
    search = cycles = 0
    timed_out = False
    with open(PLAYER_OUT) as f:
        for line in f:
            tag, *v = line.split()
            if tag == "o":
                beats.word_in(int(v[0]), int(v[1], 16), int(v[2], 16), int(v[3], 16))
            elif tag == "i":
                t_in.append(int(v[0]))
            elif tag == "f":
                fire = int(v[1], 16)
                for k in range(n_fire):
                    if fire >> k & 1:
                        fires[k].append(int(v[0]))
            elif tag == "b":
                busy[int(v[0])] = int(v[1])
            elif tag == "s":
                search = int(v[0])
            else:
                cycles, timed_out = int(v[0]), tag == "t"
    if timed_out:
        raise AssertionError(f"none: timeout after {limit} cycles with {len(beats.received)} "
                             f"of {n_out} outputs")
    return {"mode": "none", "outputs": [f"{v:x}" for v in beats.received], "t_in": t_in,
            "t_out": beats.t_out, "fires": fires if job.get("fires", True) else None,
            "busy": busy, "cycles": cycles,
            "framing": beats.framing, "search_cycles": search,
            "void_beats": sum(beats.tracker.void), "steps": 0}


async def _run_mode(dut, job, mode, seed, progress=None):
    p_idle, p_block = STALLS[mode]
    rng = random.Random(seed)
    inputs, in_last, in_user, sparse, wb, n_in, n_out_words, n_out, n_frames = _stream(job)
    beats = _Beats(mode, sparse, wb, n_out_words, job.get("frame_outputs", 1))
    n_fire = len(dut.layer_fire)
    await _reset(dut)
    sent = 0
    t_in, fires = [], [[] for _ in range(n_fire)]
    busy = [0] * n_fire
    search = 0
    holding = False
    cycle = 0
    limit = job.get("max_cycles", 1_000_000)
    skip = mode == "none" and job.get("skip_idle", True)
    watched = [dut.s_axis_tready, dut.m_axis_tvalid, dut.layer_fire, dut.layer_busy]
    watched += [dut.search_busy] if sparse else []
    woken = False
    steps = 0                   # loop iterations: the cycles the testbench looked at
    def more():
        return beats.tracker.frames < n_frames if sparse else len(beats.received) < n_out

    while more():
        steps += 1
        if not woken:
            await RisingEdge(dut.clk)
            cycle += 1
        woken = False
        if cycle > limit:
            raise AssertionError(f"{mode}: timeout after {limit} cycles with "
                                 f"{len(beats.received)} of {n_out} outputs")
        if not holding:
            if sent < len(inputs) and rng.random() >= p_idle:
                dut.s_axis_tdata.value = inputs[sent]
                dut.s_axis_tvalid.value = 1
                dut.s_axis_tlast.value = in_last[sent] if sparse else 1
                if sparse:
                    dut.s_axis_tuser.value = in_user[sent]
                holding = True
            else:
                dut.s_axis_tvalid.value = 0
        dut.m_axis_tready.value = int(rng.random() >= p_block)
        await ReadOnly()
        if holding and dut.s_axis_tready.value:
            if sent % n_in == 0:
                t_in.append(cycle)
            sent += 1
            holding = False
        if dut.m_axis_tvalid.value and dut.m_axis_tready.value:
            done = beats.word_in(cycle, _uint(dut.m_axis_tdata), int(dut.m_axis_tlast.value),
                                 _uint(dut.m_axis_tuser) if sparse else 0)
            if done and progress and len(beats.received) % 16 == 0:
                progress(len(beats.received))
        searching = int(dut.search_busy.value) if sparse else 0
        search += searching
        fire = _uint(dut.layer_fire)
        work = _uint(dut.layer_busy)
        for k in range(n_fire):
            if fire >> k & 1:
                fires[k].append(cycle)
            busy[k] += work >> k & 1
        idle = (holding or sent == len(inputs)) and not dut.m_axis_tvalid.value and fire == 0
        if skip and idle and more():
            # Nothing can move until a watched signal changes: wait for it at the simulator's
            # speed. Cycles cycle+1 .. cycle+periods-1 hold this cycle's values.
            periods, rest = await _idle_until_change(dut, watched, limit - cycle + 1)
            if rest:
                raise AssertionError(f"{mode}: an observed signal changed between clock edges "
                                     f"({rest} ns after one); the testbench counts whole cycles")
            if periods > 1:
                for k in range(n_fire):
                    busy[k] += (work >> k & 1) * (periods - 1)
                search += searching * (periods - 1)
            if periods >= 1:           # the loop's next turn is that edge's cycle
                cycle += periods
                woken = True
    return {"mode": mode, "outputs": [f"{v:x}" for v in beats.received], "t_in": t_in,
            "t_out": beats.t_out, "fires": fires if job.get("fires", True) else None,
            "busy": busy, "cycles": cycle,
            "framing": beats.framing, "search_cycles": search,
            "void_beats": sum(beats.tracker.void), "steps": steps}


@cocotb.test()
async def run_vectors(dut):
    """Every requested stall mode: all outputs must equal the expected ones."""
    job_path = os.environ["BNNFORGE_JOB"]
    with open(job_path) as f:
        job = json.load(f)
    results = []
    modes = job["stall_modes"]
    for i, mode in enumerate(modes):
        done = i * len(job["inputs"])

        def progress(n, done=done):
            with open(job["progress"], "w") as f:
                f.write(f"{done + n} {len(modes) * len(job['inputs'])}\n")

        if (mode == "none" and job.get("player", True) and job.get("skip_idle", True)
                and hasattr(dut, "play_go")):
            results.append(await _play(dut, job, job.get("max_cycles", 1_000_000)))
        else:
            results.append(await _run_mode(dut, job, mode, job.get("seed", 0) + i,
                                           progress if job.get("progress") else None))
    with open(job["result"], "w") as f:
        # json.dumps, not json.dump: dump encodes in Python (2.5x slower on a 50 MB result).
        f.write(json.dumps({"runs": results}))
    if job.get("expected") is not None:
        for run in results:
            bad = [k for k, (got, exp) in enumerate(zip(run["outputs"], job["expected"]))
                   if int(got, 16) != int(exp, 16)]
            if job.get("expected_framing") is not None:
                bad += [k for k, (got, exp) in enumerate(zip(run["framing"],
                                                             job["expected_framing"]))
                        if list(got) != list(exp)]
            assert not bad and len(run["outputs"]) == len(job["expected"]), (
                f"stall mode {run['mode']}: {len(bad)} of {len(job['expected'])} outputs "
                f"differ from the golden model (first at vector {bad[0] if bad else '-'})")
