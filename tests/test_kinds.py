"""The network-kind registry: every kind implements every step, bitstreams and models find
their kind, a kind that lacks a step is refused, and the kinds' generated designs carry the
bitstream's checksum."""

import json

import numpy as np
import pytest
import torch

from bnnforge.kinds import (KINDS, STEPS, NetworkKind, kind_named, kind_of, kind_of_model,
                            register)
from quant import bitstream as bio
from quant.errors import BnnforgeError
from tests.helpers import random_dense


def test_every_kind_implements_every_step():
    assert list(KINDS) == ["mlp", "groupnet", "bscnet", "cnn"]
    for kind in KINDS.values():
        assert all(callable(getattr(kind, step)) for step in STEPS)


def test_a_kind_without_every_step_is_refused():
    class Half(NetworkKind):
        name = "half"

        def train(self, *args):
            return None

    with pytest.raises(TypeError, match="network kind 'half' does not implement export, load, "
                                        "shapes, generate, random_inputs, simulate, software, "
                                        "report_rows, describe, demo$"):
        register(Half())
    assert "half" not in KINDS


def test_bitstreams_and_models_find_their_kind(tmp_path):
    from golden.bscnet import BSCNet
    from golden.groupnet import GroupNet
    from golden.mlp import BinaryMLP

    dense = random_dense(np.random.default_rng(1), [16, 8, 4])
    assert kind_of(dense) is kind_named("mlp")
    torch.manual_seed(0)
    groupnet = GroupNet(channels=4, blocks=1, bases=2).eval()
    assert kind_of(groupnet.to_bitstream(8, 8)) is kind_named("groupnet")
    assert kind_of_model(groupnet) is kind_named("groupnet")
    assert kind_of_model(BinaryMLP([16, 4])) is kind_named("mlp")
    assert kind_of_model(BSCNet(sfsc=False)) is kind_named("bscnet")
    with pytest.raises(BnnforgeError, match="unknown network kind 'resnet'; choose one of mlp, "
                                            "groupnet, bscnet, cnn"):
        kind_named("resnet")
    with pytest.raises(BnnforgeError, match="no network kind handles a Linear"):
        kind_of_model(torch.nn.Linear(2, 2))


def test_export_then_load_is_the_golden_model(tmp_path):
    """MLP: ``export`` writes what ``load`` reads back as the integer golden network, whose
    scores equal the trained model's integer forward."""
    from golden.digits import input_spec
    from golden.mlp import BinaryMLP

    torch.manual_seed(2)
    kind = kind_named("mlp")
    model = BinaryMLP([64, 16, 10]).eval()
    bs = bio.read(bio.write(kind.export(model, input_spec((8,)), {"x": 1}), tmp_path / "m.bnn"))
    x = np.random.default_rng(0).integers(0, 2, (20, 64), dtype=np.uint8)
    direct = kind.load(model.to_bitstream(input_spec((8,))))(torch.from_numpy(x))
    assert torch.equal(kind.load(bs)(torch.from_numpy(x)), direct)
    assert bs.meta == {"x": 1} and bs.checksum.startswith("sha256:")


@pytest.mark.parametrize("name", ["mlp", "groupnet"])
def test_generated_design_carries_the_checksum(tmp_path, name):
    kind = kind_named(name)
    if name == "mlp":
        bs = random_dense(np.random.default_rng(4), [16, 8, 4])
    else:
        torch.manual_seed(0)
        bs = kind.export(__import__("golden.groupnet", fromlist=["GroupNet"]).GroupNet(
            channels=4, blocks=1, bases=1).eval(), {"height": 4, "width": 4})
    bs = bio.read(bio.write(bs, tmp_path / "n.bnn"))
    folding = kind.fold(bs, target_cycles=64)
    info = kind.generate(bs, folding, tmp_path / "d", checksum=bs.checksum)
    assert info["bitstream_checksum"] == bs.checksum
    saved = json.loads((tmp_path / "d" / "design.json").read_text())
    assert saved["bitstream_checksum"] == bs.checksum


def test_bscnet_frame_limits_follow_the_bitstream():
    """A BSC-Net design's coordinate width and frame size come from the frame the bitstream
    was made with (the demo records them), not from the wide defaults; given ones win."""
    from types import SimpleNamespace

    from bnnforge.kinds.bscnet import frame_limits

    recorded = SimpleNamespace(input={"channels": 1, "coord_bits": 7, "max_voxels": 8192})
    assert frame_limits(recorded) == {
        "max_voxels": 8192, "coord_bits": 7,
        "source": {"max_voxels": "the bitstream's frame", "coord_bits": "the bitstream's frame"}}
    assert frame_limits(recorded, coord_bits=9)["coord_bits"] == 9
    bare = frame_limits(SimpleNamespace(input={"channels": 1}))
    assert (bare["max_voxels"], bare["coord_bits"]) == (65536, 16)
    assert bare["source"]["coord_bits"] == "default; the bitstream records no frame"
