import json
import struct

import numpy as np
import pytest

from quant import bitstream as bio
from quant.bitstream import Bitstream, DenseLayer
from quant.errors import BitstreamError
from tests.helpers import random_dense


@pytest.fixture
def net():
    return random_dense(np.random.default_rng(1), [20, 16, 10])


def test_roundtrip(tmp_path, net):
    path = bio.write(net, tmp_path / "n.bnn")
    back = bio.read(path)
    assert back.input == net.input
    for a, b in zip(net.layers, back.layers):
        assert a.name == b.name
        assert (a.weights == b.weights).all()
        assert (a.thresholds is None) == (b.thresholds is None)
        if a.thresholds is not None:
            assert (a.thresholds == b.thresholds).all()
    assert [p.name for p in tmp_path.iterdir()] == ["n.bnn"]


def _raw_header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return raw, n, json.loads(raw[8:8 + n])


def _rewrite(path, header, data):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_wrong_magic(tmp_path, net):
    path = bio.write(net, tmp_path / "n.bnn")
    raw, n, header = _raw_header(path)
    header["__metadata__"]["format"] = "something-else"
    _rewrite(path, header, raw[8 + n:])
    with pytest.raises(BitstreamError, match="wrong magic 'something-else': not a bnnforge"):
        bio.read(path)


def test_wrong_version(tmp_path, net):
    path = bio.write(net, tmp_path / "n.bnn")
    raw, n, header = _raw_header(path)
    header["__metadata__"]["version"] = "7"
    _rewrite(path, header, raw[8 + n:])
    with pytest.raises(BitstreamError, match="version '7' is not supported; this bnnforge "
                                             "reads version 1"):
        bio.read(path)


@pytest.mark.parametrize("keep", [0, 5, 40, -3])
def test_truncated(tmp_path, net, keep):
    path = bio.write(net, tmp_path / "n.bnn")
    raw = path.read_bytes()
    path.write_bytes(raw[:keep] if keep >= 0 else raw[:keep])
    with pytest.raises(BitstreamError, match="truncated bitstream"):
        bio.read(path)


def test_checksum_mismatch(tmp_path, net):
    path = bio.write(net, tmp_path / "n.bnn")
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x10  # a weight or threshold byte
    path.write_bytes(bytes(raw))
    with pytest.raises(BitstreamError, match="checksum mismatch"):
        bio.read(path)


def test_manifest_and_data_shapes_disagree(tmp_path, net):
    path = bio.write(net, tmp_path / "n.bnn")
    raw, n, header = _raw_header(path)
    meta = header["__metadata__"]
    manifest = json.loads(meta["manifest"])
    manifest["layers"][0]["out_features"] = 17
    manifest["layers"][1]["in_features"] = 17
    meta["manifest"] = json.dumps(manifest, sort_keys=True)
    tensors = {}  # recompute the checksum as a careless editor would
    from safetensors.numpy import load
    tensors = load(raw)
    meta["checksum"] = bio._checksum(meta["manifest"], tensors)
    _rewrite(path, header, raw[8 + n:])
    with pytest.raises(BitstreamError, match=r"layer fc0: the manifest says 17x20 weights .* "
                                             r"but the tensor is 16x3 uint8"):
        bio.read(path)


def test_not_a_bitstream(tmp_path):
    path = tmp_path / "x.bnn"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(BitstreamError, match="not a bnnforge bitstream"):
        bio.read(path)
    with pytest.raises(BitstreamError, match="no such file"):
        bio.read(tmp_path / "missing.bnn")


def test_failed_export_leaves_nothing(tmp_path, net):
    net.layers[1] = DenseLayer("fc1", np.ones((10, 15), dtype=np.uint8), None)  # 16 -> 15
    with pytest.raises(BitstreamError, match="layer fc0 outputs 16 values but layer fc1 "
                                             "takes 15"):
        bio.write(net, tmp_path / "n.bnn")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_nothing(tmp_path, net, monkeypatch):
    import safetensors.numpy

    def boom(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        bio.write(net, tmp_path / "n.bnn")
    assert list(tmp_path.iterdir()) == []


def test_validation_messages():
    w = np.zeros((4, 8), dtype=np.uint8)
    with pytest.raises(BitstreamError, match="the input has 9 features but layer a takes 8"):
        Bitstream([DenseLayer("a", w, np.zeros(4))], {"features": 9}).validate()
    with pytest.raises(BitstreamError, match=r"thresholds outside \[0, 9\]"):
        Bitstream([DenseLayer("a", w, np.full(4, 10))], {"features": 8}).validate()
    with pytest.raises(BitstreamError, match="layer a outputs scores but is not the last"):
        Bitstream([DenseLayer("a", w), DenseLayer("b", np.zeros((2, 4)))],
                  {"features": 8}).validate()


def _groupnet_bitstream():
    rng = np.random.default_rng(0)
    c = 3
    unit = lambda d: {"weights": rng.integers(0, 2, (c, 9 * c)).astype(np.uint8),
                      "scale": rng.integers(-900, 900, c), "shift": rng.integers(-9, 9, c),
                      "dilation": d}
    spec = {"format": {"width": 20, "frac": 12, "scale_frac": 16, "lambda_frac": 12,
                       "gate_frac": 12}, "height": 6, "width": 6, "channels": c, "config": {},
            "groups": [{"gate": None, "lambdas": np.array([100, 200]),
                        "units": [[unit(1), unit(1)], [unit(2), unit(2)]]},
                       {"gate": 1000, "lambdas": np.array([3, 4]),
                        "units": [[unit(1), unit(1)], [unit(1), unit(1)]]}]}
    host = {"head.weight": rng.normal(size=(10, c)).astype(np.float32)}
    return Bitstream([], {"features": c * 20}, {}, groupnet=spec, host=host)


def test_groupnet_roundtrip(tmp_path):
    bs = _groupnet_bitstream()
    back = bio.read(bio.write(bs, tmp_path / "g.bnn"))
    assert back.kind == "groupnet"
    for g0, g1 in zip(bs.groupnet["groups"], back.groupnet["groups"]):
        assert g0["gate"] == g1["gate"] and (g0["lambdas"] == g1["lambdas"]).all()
        for b0, b1 in zip(g0["units"], g1["units"]):
            for u0, u1 in zip(b0, b1):
                assert (u0["weights"] == u1["weights"]).all()
                assert (u0["scale"] == u1["scale"]).all() and (u0["shift"] == u1["shift"]).all()
                assert u0["dilation"] == u1["dilation"]
    assert (back.host["head.weight"] == bs.host["head.weight"]).all()


def test_groupnet_validation(tmp_path):
    bs = _groupnet_bitstream()
    bs.groupnet["groups"][1]["gate"] = 5000
    with pytest.raises(BitstreamError, match=r"group 1's gate 5000 is outside \[0, 4096\]"):
        bio.write(bs, tmp_path / "g.bnn")
    bs = _groupnet_bitstream()
    bs.groupnet["groups"][0]["gate"] = 3
    with pytest.raises(BitstreamError, match="group 0 cannot have a soft connection"):
        bs.validate()
    bs = _groupnet_bitstream()
    bs.groupnet["groups"][1]["lambdas"] = np.array([1, 2, 3])
    with pytest.raises(BitstreamError, match="group 1 has 3 lambdas for 2 bases"):
        bs.validate()
    bs = _groupnet_bitstream()
    bs.groupnet["groups"][0]["units"][1][0]["scale"] = np.zeros(2)
    with pytest.raises(BitstreamError, match="group 0, base 1, unit 0: 2 scale values for 3 "
                                             "channels"):
        bs.validate()
    assert list(tmp_path.iterdir()) == []


def test_groupnet_manifest_and_tensor_disagree(tmp_path):
    path = bio.write(_groupnet_bitstream(), tmp_path / "g.bnn")
    raw, n, header = _raw_header(path)
    meta = header["__metadata__"]
    manifest = json.loads(meta["manifest"])
    manifest["network"]["groups"][0]["units"][0][0]["cin"] = 4
    meta["manifest"] = json.dumps(manifest, sort_keys=True)
    from safetensors.numpy import load
    meta["checksum"] = bio._checksum(meta["manifest"], load(raw))
    _rewrite(path, header, raw[8 + n:])
    with pytest.raises(BitstreamError, match="g0.b0.u0: the manifest says 4 -> 3 channels but "
                                             "the weight tensor is 3x4"):
        bio.read(path)


def test_weights_not_in_c_order_round_trip(tmp_path):
    """A weight matrix that is a view in another memory order (a transpose, a column
    permutation) is written in C order: the checksum holds and the bits come back."""
    from quant.bitstream import Bitstream, DenseLayer, read, write

    w = np.random.default_rng(0).integers(0, 2, (12, 20), dtype=np.uint8)
    layer = DenseLayer("fc0", w.T.copy(order="F").T[:, ::-1], None)
    bs = Bitstream([layer], {"features": 20}).validate()
    again = read(write(bs, tmp_path / "w.bnn"))
    assert (again.layers[0].weights == w[:, ::-1]).all()
