"""The datasheet (README.md) written beside every generated core: its port table agrees with
the Verilog's ports, its layout lines with the design, and a synthesis result adds resources."""

import re

import numpy as np

from bnnforge.kinds.mlp import generate_dense
from hw.datasheet import datasheet
from quant.layout import Folding
from tests.helpers import random_dense


def _verilog_ports(text, top="bnn_top"):
    body = text.split(f"module {top}(", 1)[1].split("endmodule", 1)[0]
    ports = {}
    for direction, width, name in re.findall(r"^  (input|output) (?:\[(\d+):0\] )?(\w+);",
                                             body, re.M):
        ports[name] = ("in" if direction == "input" else "out",
                       int(width) + 1 if width else 1)
    return ports


def _datasheet_ports(text):
    return {n: (d, int(w)) for n, d, w in re.findall(r"^\| `(\w+)` \| (in|out) \| (\d+) \|",
                                                     text, re.M)}


def test_datasheet_ports_and_layout_match_the_design(tmp_path):
    net = random_dense(np.random.default_rng(4), [40, 16, 10])
    folding = {"fc0": Folding(4, 10), "fc1": Folding(5, 8)}
    for name, beat in (("wide", None), ("narrow", 8)):
        info = generate_dense(net, folding, tmp_path / name, checksum="sha256:abc",
                              beat_width=beat)
        sheet = (tmp_path / name / "README.md").read_text()
        verilog = (tmp_path / name / "bnn_top.v").read_text()
        assert _datasheet_ports(sheet) == _verilog_ports(verilog)
        assert "Bitstream checksum: `sha256:abc`" in sheet
        assert f"one vector every **{info['cycles_per_vector']}** cycles" in sheet
        assert f"Latency (model): **{info['latency']}** cycles" in sheet
        assert "element `r` in its own 8-bit lane at bits `[8 r, 8 r + 5)`" in sheet
        assert "Not synthesized yet" in sheet
    assert "An input vector is 5 beats, lowest bits first" in sheet
    assert "high on the last of the 10 beats of each output vector" in sheet


def test_a_synthesis_result_adds_resources_and_fmax(tmp_path):
    net = random_dense(np.random.default_rng(4), [40, 10])
    info = generate_dense(net, {"fc0": Folding(5, 8)}, tmp_path / "d")
    result = {"part": "LFE5U-85F", "family": "ecp5", "tools": {"yosys": "Y", "nextpnr": "N"},
              "seed": 1, "out_of_context": True, "lut4": 11, "carry": 12, "ff": 13, "comb": 14,
              "bram": 1, "dsp": 0, "fmax_mhz": {"clk": 250.0}, "freq_target_mhz": 200.0}
    sheet = datasheet(info, [result])
    assert "| 11 | 12 | 13 | 14 | 1 | 0 | 250.0 MHz (200 MHz) |" in sheet
    assert f"At that Fmax: {250.0 / info['cycles_per_vector']:.4g} M vectors/s" in sheet
    assert "Not synthesized yet" not in sheet
