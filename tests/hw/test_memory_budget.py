"""The memory budget of a design against a device, and the fit check that refuses a design whose
memories cannot fit before Yosys runs."""

import time

import numpy as np
import pytest

from hw.memory_budget import budget, memories
from hw.synth import SynthError, synthesize

VERILOG = """module t(input clk);
  reg [17:0] a [1023:0];
  reg [35:0] b [4095:0];
  reg [0:0] c [15:0];
  (* ram_style = "distributed" *)
  (* src = "x.py:1" *)
  reg [95:0] d [31:0];
  DP16KD #(
    .DATA_WIDTH_A(32'd36)
  ) w0 ();
endmodule
"""


def test_budget_by_hand():
    assert [(m["name"], m["width"], m["depth"], m["bits"], m["lut_ram"])
            for m in memories(VERILOG)] == [
        ("a", 18, 1024, 18432, False), ("b", 36, 4096, 147456, False), ("c", 1, 16, 16, False),
        ("d", 96, 32, 3072, True)]
    b = budget(VERILOG, "ecp5", "85k")
    # a: one 1024 x 18 block; b: eight (512 x 36 or 1024 x 18 blocks); c: one; d: LUT RAM
    # (its attribute); one by hand.
    assert [m["blocks"] for m in b["memories"]] == [8, 1, 0, 1]
    assert b["block_ram_estimate"] == 11 and b["cells_by_hand"] == 1
    assert b["bits"] == 18432 + 147456 + 16 + 3072 + 18432
    assert b["device_block_ram_bits"] == 208 * 18432 and b["fits"]
    small = budget(VERILOG, "ecp5", "12k")       # 32 blocks, 589,824 bits: still fits
    assert small["fits"] and small["part"] == "LFE5U-12F"
    ice = budget(VERILOG, "ice40", "up5k")       # 30 blocks of 4 kbit, no LUT RAM
    assert not ice["fits"]
    assert ice["reason"] == ("its memories hold 168,976 bits; the iCE40UP5K has 122,880 bits "
                             "of block RAM (30 SB_RAM40_4K) and about 0 of LUT RAM")


def test_synth_refuses_a_frame_store_that_cannot_fit(tmp_path):
    """A binary SSC layer for 8,192 voxels with 16-bit coordinates keeps ten copies of the
    keys (4.1 Mbit, more than the device's 3.8): refused in a moment, naming the memories,
    with no Yosys run."""
    from bnnforge.sparse_flows import generate_sparse
    from quant.layout import Folding

    rng = np.random.default_rng(0)
    info = generate_sparse(rng.integers(0, 2, (27, 16, 16), dtype=np.uint8),
                           rng.integers(0, 433, 16), 8192, 16, Folding(16, 16), tmp_path / "d")
    assert not info["memory_budget"]["fits"]
    t0 = time.monotonic()
    with pytest.raises(SynthError, match=r"^the design cannot fit the LFE5U-85F: its memories "
                                         r"hold [\d,]+ bits; the LFE5U-85F has 3,833,856 bits of "
                                         r"block RAM \(208 DP16KD\)"):
        synthesize(tmp_path / "d", "ecp5", "85k")
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "d" / "synth-ecp5").exists()
    assert "**the memories cannot fit**" in (tmp_path / "d" / "README.md").read_text()
