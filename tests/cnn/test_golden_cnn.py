import numpy as np
import pytest
import torch

from golden.cnn import (BatchNormSign, BinaryCNN, Conv2d, IntegerCnn, Linear, MaxPool2d,
                        step_thresholds)
from quant import bitstream as bitstream_io
from quant.errors import BitstreamError
from tests.cnn.nets import random_images, small_cnn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float_equals_integer(seed, tmp_path):
    net = small_cnn(seed)
    bs = net.to_bitstream()
    x = random_images(seed + 10, 200)
    with torch.no_grad():
        logits = net(torch.from_numpy(x).float())
    scores = IntegerCnn(bs)(x)
    n = bs.layers[-1].cols
    # The float model's logits are (2 S - n) times its positive scale: exactly.
    assert torch.equal((2 * scores - n).float() * net.log_scale.exp(), logits)
    path = bitstream_io.write(bs, tmp_path / "net.bnn")
    again = bitstream_io.read(path)
    assert again.kind == "cnn"
    assert torch.equal(IntegerCnn(again)(x), scores)


def test_integer_model_by_hand():
    """One 2x2 conv on 2-bit inputs, by hand: S = sum(w ? u : 3 - u)."""
    from quant.bitstream import Bitstream, DenseLayer

    w = np.array([[1, 0, 1, 1]], dtype=np.uint8)            # window (0,0) (0,1) (1,0) (1,1)
    conv = DenseLayer("c", w, np.array([5]), input_bits=2)
    fc = DenseLayer("f", np.array([[1], [0]], dtype=np.uint8), None)
    bs = Bitstream([conv, fc], {}, cnn={
        "input": {"height": 2, "width": 2, "channels": 1, "bits": 2},
        "ops": [{"op": "conv", "layer": "c", "kernel": 2, "stride": 1, "padding": 0,
                 "pad_value": 0}, {"op": "dense", "layer": "f"}]}).validate()
    u = np.array([[[[3, 1], [0, 2]]]])
    s = 3 + (3 - 1) + 0 + 2            # = 7 >= 5: bit 1
    assert s == 7
    assert IntegerCnn(bs)(u).tolist() == [[1, 0]]
    u2 = np.array([[[[0, 3], [0, 0]]]])  # S = 0 + 0 + 0 + 0 = 0 < 5: bit 0
    assert IntegerCnn(bs)(u2).tolist() == [[0, 1]]


def test_step_thresholds_rising_falling_and_not_a_step():
    def bits_of(s):
        return np.stack([s >= 4, s <= 2, s >= 99, s >= 0], axis=1)
    t, flip = step_thresholds("x", bits_of, 6)
    assert t.tolist() == [4, 4, 7, 0] and flip.tolist() == [False, True, False, False]
    with pytest.raises(BitstreamError, match="layer x, channel 0: its output is not a step"):
        step_thresholds("x", lambda s: ((s % 2) == 0)[:, None], 6)


def test_export_refuses_a_hidden_layer_without_batchnorm():
    net = BinaryCNN((1, 4, 4), 1, Conv2d(1, 4, 3), MaxPool2d(2), Linear(4, 2))
    with pytest.raises(BitstreamError, match=r"layer 0 \(Conv2d\) must be followed by a "
                                             r"BatchNormSign"):
        net.to_bitstream()


def test_spec_errors_name_the_op():
    bs = small_cnn().to_bitstream()
    bs.cnn["ops"][0]["kernel"] = 5
    with pytest.raises(BitstreamError, match=r"layer l0 \(conv\): its matrix has 9 columns but "
                                             r"a 5x5 window of 1 channels has 25"):
        bs.validate()
    bs = small_cnn().to_bitstream()
    bs.cnn["ops"].insert(0, {"op": "pool", "kernel": 2})
    with pytest.raises(BitstreamError, match="pooling takes binary activations, not 4-bit"):
        bs.validate()


def test_run_command_on_a_cnn_bitstream(tmp_path, capsys):
    """`bnnforge run` on the golden model writes the integer scores; pixels out of range and a
    file that is not .npy are one-line errors that leave no output file."""
    from bnnforge.cli import main

    bs = small_cnn(4).to_bitstream()
    path = bitstream_io.write(bs, tmp_path / "c.bnn")
    x = random_images(9, 5)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(path), "--inputs", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), IntegerCnn(bs)(x).numpy())
    np.save(tmp_path / "big.npy", x * 2)
    capsys.readouterr()
    assert main(["run", str(path), "--inputs", str(tmp_path / "big.npy"), "-o",
                 str(tmp_path / "z.npy")]) == 2
    assert capsys.readouterr().err == ("bnnforge: error: pixel values must be in [0, 15] "
                                       "(4-bit), found [0, 30]\n")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    assert main(["run", str(path), "--inputs", str(tmp_path / "bad.npy"), "-o",
                 str(tmp_path / "z.npy")]) == 2
    assert "bad.npy: not a NumPy .npy array" in capsys.readouterr().err
    assert not (tmp_path / "z.npy").exists()
