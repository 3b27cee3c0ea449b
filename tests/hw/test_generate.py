import json
import re

import numpy as np
import pytest

from bnnforge.kinds.mlp import generate_dense
from hw.folding import choose_for_target
from hw.network import layer_shapes
from quant.errors import BnnforgeError
from quant.layout import Folding, FoldedLayout
from tests.helpers import random_dense


@pytest.fixture(scope="module")
def net():
    return random_dense(np.random.default_rng(5), [24, 16, 10])


def test_verilog_reads_every_memory_file(tmp_path, net):
    folding = {"fc0": Folding(4, 8), "fc1": Folding(2, 16)}
    info = generate_dense(net, folding, tmp_path / "d")
    verilog = (tmp_path / "d" / info["verilog"]).read_text()
    loaded = re.findall(r'\$readmemh\("([^"]+)", (\w+), 0, \d+\);', verilog)
    assert sorted(f for f, _ in loaded) == sorted(info["memory_files"])
    assert all(f == f"{mem}.mem" for f, mem in loaded)
    assert "initial begin" not in verilog  # no memory keeps an inline copy
    # The files hold the layout's words (one source of truth for bits).
    lay = FoldedLayout(16, 24, folding["fc0"])
    for p, words in enumerate(lay.weight_words(net.layers[0].weights)):
        text = (tmp_path / "d" / f"fc0_w{p}.mem").read_text().split()
        assert [int(t, 16) for t in text] == words
    for p, words in enumerate(lay.threshold_words(net.layers[0].thresholds)):
        text = (tmp_path / "d" / f"fc0_t{p}.mem").read_text().split()
        assert [int(t, 16) for t in text] == words
    # Ports and description.
    header = re.search(r"module bnn_top\(([^)]*)\)", verilog).group(1)
    for port in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
                 "m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast", "clk", "rst"):
        assert port in header
    assert json.loads((tmp_path / "d" / "folding.json").read_text())["layers"][1] == \
        {"name": "fc1", "pe": 2, "simd": 16}
    assert info["cycles_per_vector"] == max(4 * 3, 5 * 1)
    assert "/" not in "".join(re.findall(r'src = "([^"]*)"', verilog))  # no source paths


def test_all_zero_memory_is_still_read_from_its_file(tmp_path, net):
    net.layers[0].weights[:] = 0
    info = generate_dense(net, {"fc0": Folding(16, 24), "fc1": Folding(10, 16)}, tmp_path / "d")
    verilog = (tmp_path / "d" / info["verilog"]).read_text()
    assert '$readmemh("fc0_w0.mem", fc0_w0, 0, 0);' in verilog


def test_failed_generation_leaves_nothing(tmp_path, net, monkeypatch):
    import hw.generate

    def boom(verilog, files):
        raise BnnforgeError("synthetic failure")

    monkeypatch.setattr(hw.generate, "link_memory_files", boom)
    with pytest.raises(BnnforgeError, match="synthetic failure"):
        generate_dense(net, choose_for_target(layer_shapes(net), 8), tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_foreign_directory(tmp_path, net):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(BnnforgeError, match="exists and is not a bnnforge design directory"):
        generate_dense(net, choose_for_target(layer_shapes(net), 8), tmp_path / "d")
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"


def test_axis_top_takes_only_stream_blocks():
    """Every block of a pipeline declares the same interface; anything else is refused with
    a message naming it."""
    from amaranth.hdl import Fragment
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    from hw.axis import AxisTop
    from hw.popcount import PopcountStream
    from quant.errors import BnnforgeError

    class Loose(wiring.Component):
        i: In(stream.Signature(8))
        o: Out(stream.Signature(8))

        def elaborate(self, platform):
            raise AssertionError("never elaborated")

    loose, first, block = Loose(), PopcountStream(4), PopcountStream(4)
    loose._MustUse__silence = True
    for used in (first, block):     # elaborated, so that no sub-block is left unused
        Fragment.get(used, None)
    with pytest.raises(BnnforgeError, match="^block 1 is a Loose, not a StreamBlock \\(i, o, "
                                            "busy, name, latency, cycle model\\)$"):
        AxisTop([first, loose])
    assert block.describe(2) == {"name": "block2", "pe": None, "simd": None,
                                 "cycles_model": 1, "latency": block.latency}


def test_zero_initialisers_are_one_loop(tmp_path):
    """A RAM whose words all start at zero is initialised by one loop, not one line a word: a
    sparse layer for 65,536 voxels was 24 MB of Verilog (for 8,192, with a line a word, its
    memories alone would be over 2 MB; it is now under 1 MB); a memory with any other word
    keeps its lines."""
    import numpy as np

    from bnnforge.sparse_flows import generate_sparse
    from hw.generate import compact_zero_initialisers
    from quant.layout import Folding

    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, (27, 16, 16), dtype=np.uint8)
    info = generate_sparse(w, rng.integers(0, 433, 16), 8192, 7, Folding(16, 16),
                           tmp_path / "big")
    text = (tmp_path / "big" / info["verilog"]).read_text()
    assert len(text) < 1_000_000
    assert "for (i = 0; i <= 8191; i = i + 1) feats0[i] = 16'h0;" in text
    kept = ("  reg [3:0] m [1:0];\n  initial begin\n    m[0] = 4'h0;\n    m[1] = 4'h3;\n"
            "  end\n")
    assert compact_zero_initialisers(kept) == kept
