import numpy as np
import pytest
import torch

from golden.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from golden.digits import input_spec, load_digits_split, thermometer
from golden.integer import IntegerNetwork
from golden.mlp import BinaryMLP
from golden.train import train_classifier


def _trained(binarizer, schedule="cosine", optimizer="adam"):
    data = load_digits_split(0)
    x = thermometer(data.x_train[:300], (8,))
    torch.manual_seed(0)
    model = BinaryMLP([64, 32, 10], binarizer)
    train_classifier(model, x, data.y_train[:300], epochs=3, schedule=schedule,
                     optimizer=optimizer, milestones=(2,), lr=0.01)
    return model, x


@pytest.mark.parametrize("binarizer,schedule,optimizer", [("sign", "step", "sgd"),
                                                          ("csign", "linear", "adam")])
def test_export_equals_the_models_own_binarized_forward(binarizer, schedule, optimizer):
    """For c-sign the bitstream holds the bits c-sign kept, so the integer model predicts
    exactly what the trained model's binarized forward pass predicts."""
    model, x = _trained(binarizer, schedule, optimizer)
    bs = model.to_bitstream(input_spec((8,)))
    scores = IntegerNetwork(bs)(torch.from_numpy(x))
    with torch.no_grad():
        logits = model(torch.from_numpy(x).float())
    assert torch.equal(scores.argmax(1), logits.argmax(1))
    if binarizer == "csign":
        kept = model.fcs[-1].binarize.csign.weight_bits().numpy()
        assert (bs.layers[-1].weights == kept).all()


def test_checkpoint_roundtrip_keeps_csign_state(tmp_path):
    model, x = _trained("csign")
    path = save_checkpoint(tmp_path / "m.ckpt", model, input_spec((8,)), {"seed": 0})
    back, spec, meta = load_checkpoint(path)
    assert spec == input_spec((8,)) and meta == {"seed": 0}
    for a, b in zip(model.fcs, back.fcs):
        assert torch.equal(a.binarize.csign.bits, b.binarize.csign.bits)
        assert int(a.binarize.csign.step) == int(b.binarize.csign.step) > 0
    with torch.no_grad():
        assert torch.equal(model(torch.from_numpy(x).float()), back(torch.from_numpy(x).float()))


def test_bad_checkpoints(tmp_path):
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a bnnforge checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")
    model, _ = _trained("sign")
    path = save_checkpoint(tmp_path / "m.ckpt", model, input_spec((8,)))
    data = torch.load(path, weights_only=True)
    data["state_dict"]["fcs.0.weight"] = torch.zeros(5, 5)
    torch.save(data, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_checkpoint(tmp_path / "broken.ckpt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_identity_ste_and_xnor_scales():
    from quant.binarize import ScaledSign, SignIdentitySTE, xnor_scale

    x = torch.tensor([-3.0, 0.0, 0.5], requires_grad=True)
    SignIdentitySTE.apply(x).backward(torch.tensor([1.0, 2.0, 3.0]))
    assert x.grad.tolist() == [1.0, 2.0, 3.0]
    w = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    assert float(xnor_scale(w)) == 1.25
    assert xnor_scale(w, per_channel=True).flatten().tolist() == [2.0, 0.5]
    assert ScaledSign(per_channel=True)(w).tolist() == [[2.0, -2.0], [0.5, 0.5]]


def test_csign_in_conv_groupnet_and_sparse_layers():
    """c-sign is usable in convolution, Group-Net units and sparse convolution: in training
    each forward steps it, and the exported bits are the ones it keeps."""
    from golden.conv import BinaryConv2d
    from golden.groupnet import GroupNet
    from golden.sparse import BinarySparseConv, ssc_kernel_map

    conv = BinaryConv2d(2, 3, binarizer="csign").train()
    conv(torch.ones(1, 2, 4, 4))
    assert int(conv.binarize.csign.step) == 1
    assert torch.equal(conv.weight_bits(), conv.binarize.csign.weight_bits())

    net = GroupNet(channels=4, blocks=1, bases=2, binarizer="csign").train()
    net(torch.rand(2, 1, 6, 6))
    unit = net.units[0][1][0]
    assert int(unit.binarize.csign.step) == 1
    from golden.conv import weights_hwc
    assert (net.eval().fixed_point()["groups"][0]["units"][1][0]["weights"]
            == weights_hwc(unit.binarize.csign.weight_bits()).numpy()).all()

    coords = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]])
    sparse = BinarySparseConv(2, 2, binarizer="csign").train()
    sparse(torch.ones(3, 2), ssc_kernel_map(coords, 4))
    assert int(sparse.binarize.csign.step) == 1
