"""Brevitas networks exported as QONNX, for the importer's tests and the FINN benchmark:
FINN's TFC-w1a1 and CNV-w1a1 (``brevitas_examples.bnn_pynq``, built offline with random
weights) and a small binary CNN of our own, each trained for a few batches of random data so
that batch-norm is not trivial. Needs the onnx extra (``pip install 'bnnforge[onnx]'``)."""

import warnings

import numpy as np
import torch


def _brevitas():
    with warnings.catch_warnings():
        # brevitas and its dependencies warn about their own deprecations on import.
        warnings.simplefilter("ignore")
        try:
            import brevitas.export  # noqa: F401
            import brevitas.nn  # noqa: F401
            import brevitas_examples.bnn_pynq.models  # noqa: F401
        except ImportError as e:
            from quant.errors import BnnforgeError

            raise BnnforgeError(f"Brevitas models need the onnx extra ({e.name} is not "
                                f"installed): pip install 'bnnforge[onnx]'")


def small_brevitas_cnn():
    """8x8 single-channel input quantized to 8 bits (Q1.7 as CNV), a padded 3x3 convolution,
    a valid one, pooling, a fully connected layer, a 5-class head."""
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
    from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inq = QuantIdentity(act_quant=CommonActQuant, bit_width=8, min_val=-1.0,
                                     max_val=1.0 - 2.0 ** -7, narrow_range=False,
                                     restrict_scaling_type=RestrictValueType.POWER_OF_TWO)
            w = {"weight_quant": CommonWeightQuant, "weight_bit_width": 1, "bias": False}
            a = {"act_quant": CommonActQuant, "bit_width": 1}
            self.body = nn.Sequential(
                QuantConv2d(1, 8, 3, padding=1, **w), nn.BatchNorm2d(8), QuantIdentity(**a),
                QuantConv2d(8, 16, 3, **w), nn.BatchNorm2d(16), QuantIdentity(**a),
                nn.MaxPool2d(2))
            self.head = nn.Sequential(
                QuantLinear(16 * 9, 24, **w), nn.BatchNorm1d(24), QuantIdentity(**a),
                QuantLinear(24, 5, **w), TensorNorm())

        def forward(self, x):
            x = self.inq(2.0 * x - 1.0)
            x = self.body(x)
            return self.head(x.reshape(x.shape[0], -1))

    return Net()


MODELS = {"tfc": (1, 1, 28, 28), "cnv": (1, 3, 32, 32), "small": (1, 1, 8, 8)}


def build(name, seed=0, steps=3):
    """``name`` ("tfc", "cnv" or "small") with seeded random weights after ``steps`` Adam
    steps on random data (batch-norm statistics and TensorNorm included), in eval mode."""
    _brevitas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _build(name, seed, steps)


def _build(name, seed, steps):
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    if name == "small":
        model = small_brevitas_cnn()
    else:
        model, _ = model_with_cfg(f"{name}_1w1a", pretrained=False)
    shape = MODELS[name]
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        x = torch.rand((16,) + shape[1:])
        loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 5, (16,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def export(model, name, path, dynamo=True):
    """``brevitas.export.export_qonnx`` with the input shape of ``name`` (batch 1)."""
    from brevitas.export import export_qonnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.rand(MODELS[name]), export_path=str(path), dynamo=dynamo)
    return path


def qonnx_outputs(path, xs):
    """qonnx's executor on each input (the batch is fixed at 1)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path))).transform(InferShapes())
    i, o = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([execute_onnx(model, {i: x[None]})[o] for x in xs])
