"""A Brevitas network into bnnforge through QONNX: define and train a binary CNN in Brevitas
(here with a strided, padded first convolution over 8-bit RGB inputs), export it with
`brevitas.export.export_qonnx`, then `bnnforge import`, and `bnnforge run` on the golden model
and on the simulated hardware; both must equal qonnx's own executor on the same inputs.

    .venv/bin/python examples/import_brevitas.py [--out build/example-brevitas] [--dynamo]
"""

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from bnnforge.brevitas_models import qonnx_outputs
from bnnforge.cli import main as bnnforge


def network():
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
    from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
    from torch import nn

    w = {"weight_quant": CommonWeightQuant, "weight_bit_width": 1, "bias": False}
    a = {"act_quant": CommonActQuant, "bit_width": 1}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inq = QuantIdentity(act_quant=CommonActQuant, bit_width=8, min_val=-1.0,
                                     max_val=1.0 - 2.0 ** -7, narrow_range=False,
                                     restrict_scaling_type=RestrictValueType.POWER_OF_TWO)
            self.features = nn.Sequential(
                QuantConv2d(3, 16, 3, stride=2, padding=1, **w), nn.BatchNorm2d(16),
                QuantIdentity(**a),                                         # 16x16 -> 8x8
                QuantConv2d(16, 32, 3, **w), nn.BatchNorm2d(32), QuantIdentity(**a),  # 6x6
                nn.MaxPool2d(2),                                            # 3x3
                QuantConv2d(32, 64, 3, **w), nn.BatchNorm2d(64), QuantIdentity(**a))  # 1x1
            self.classifier = nn.Sequential(QuantLinear(64, 10, **w), TensorNorm())

        def forward(self, x):
            x = self.features(self.inq(2.0 * x - 1.0))
            return self.classifier(x.reshape(x.shape[0], -1))

    return Net()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/example-brevitas")
    p.add_argument("--dynamo", action="store_true", help="torch.export-based exporter")
    p.add_argument("--simulator", default="icarus", choices=("icarus", "verilator"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = network()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        model.train()
        for _ in range(5):   # a few batches of random data: batch-norm is not trivial
            loss = torch.nn.functional.cross_entropy(model(torch.rand(32, 3, 16, 16)),
                                                     torch.randint(0, 10, (32,)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        from brevitas.export import export_qonnx

        export_qonnx(model, torch.rand(1, 3, 16, 16), export_path=str(out / "net.onnx"),
                     dynamo=args.dynamo)
    print(f"exported {out / 'net.onnx'}")
    if bnnforge(["import", str(out / "net.onnx"), "-o", str(out / "net.bnn")]):
        return 1
    x = np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32)
    np.save(out / "x.npy", x)
    ref = qonnx_outputs(out / "net.onnx", x)
    ok = True
    for sim in (None, args.simulator):
        y = out / f"y-{sim or 'golden'}.npy"
        argv = ["run", str(out / "net.bnn"), "--inputs", str(out / "x.npy"), "-o", str(y)]
        if sim:
            argv += ["--simulator", sim, "--target-cycles", "2048", "--design",
                     str(out / "verilog")]
        if bnnforge(argv):
            return 1
        same = np.array_equal(np.load(y), ref)
        ok &= same
        print(f"{'simulated hardware' if sim else 'golden model'}: outputs "
              f"{'equal' if same else 'DIFFER FROM'} qonnx's execute_onnx on {len(x)} inputs")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
