import numpy as np
import pytest

from bnnforge.brevitas_models import build, export, qonnx_outputs
from golden.cnn import IntegerCnn
from quant import bitstream as bitstream_io
from quant.errors import BnnforgeError
from quant.host_io import HostIO
from quant.onnx_import import import_qonnx

CASES = [("tfc", True, 8), ("tfc", False, 8), ("cnv", False, 3), ("cnv", True, 3),
         ("small", True, 8), ("small", False, 8)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cache = {}

    def get(name, dynamo):
        if (name, dynamo) not in cache:
            d = tmp_path_factory.mktemp(name)
            model = build(name, seed=len(cache))
            path = export(model, name, d / f"{name}.onnx", dynamo)
            cache[name, dynamo] = path
        return cache[name, dynamo]
    return get


@pytest.mark.parametrize("name,dynamo,n", CASES)
def test_imported_equals_qonnx_executor(exported, name, dynamo, n, tmp_path):
    """Host input steps, integer golden model and host head give exactly qonnx's outputs
    (float32, bit for bit) on random inputs, through a bitstream file."""
    path = exported(name, dynamo)
    bs = bitstream_io.read(bitstream_io.write(import_qonnx(path), tmp_path / "m.bnn"))
    io = HostIO(bs)
    xs = np.random.default_rng(7).random((n,) + tuple(io.meta["input_shape"][1:]),
                                         dtype=np.float32)
    ours = io.decode(IntegerCnn(bs)(io.encode(xs)).numpy())
    ref = qonnx_outputs(path, xs)
    assert ours.dtype == ref.dtype == np.float32
    assert np.array_equal(ours, ref)
    # Thresholds are not trivial: some channels are neither always on nor always off.
    t = bs.layers[0].thresholds
    assert ((t > 0) & (t <= bs.layers[0].max_sum)).sum() > len(t) // 2


def test_unseen_network_in_hardware(exported, tmp_path):
    """A Brevitas CNN no other test sees: imported, generated, simulated on Icarus with 0
    mismatches, and the hardware's scores through the head equal qonnx's outputs."""
    from bnnforge.kinds import kind_named

    path = exported("small", True)
    bs = import_qonnx(path)
    kind = kind_named("cnn")
    io = HostIO(bs)
    xs = np.random.default_rng(3).random((6, 1, 8, 8), dtype=np.float32)
    out = tmp_path / "design"
    kind.generate(bs, kind.fold(bs, target_cycles=300), out)
    result = kind.simulate(bs, out, io.encode(xs), "icarus", stall_modes=("none", "both"))
    assert result["mismatches"] == 0
    assert np.array_equal(io.decode(result["hardware"]), qonnx_outputs(path, xs))


def test_tfc_in_hardware(exported, tmp_path):
    from bnnforge.kinds import kind_named

    bs = import_qonnx(exported("tfc", True))
    kind = kind_named("cnn")
    io = HostIO(bs)
    xs = np.random.default_rng(4).random((5, 1, 28, 28), dtype=np.float32)
    out = tmp_path / "design"
    kind.generate(bs, kind.fold(bs, target_cycles=64), out)
    result = kind.simulate(bs, out, io.encode(xs), "icarus")
    assert result["mismatches"] == 0
    assert (result["hardware"] == IntegerCnn(bs)(io.encode(xs)).numpy()).all()


def _graph_with(tmp_path, op):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    return path


def test_refuses_an_unsupported_node_naming_it(tmp_path):
    with pytest.raises(BnnforgeError, match=r"^node Relu_0 \(Relu\): before the first quantizer "
                                            r"only Reshape, Flatten and Mul/Sub/Add/Div"):
        import_qonnx(_graph_with(tmp_path, "Relu"))


def test_refuses_a_file_that_is_not_onnx(tmp_path):
    p = tmp_path / "x.onnx"
    p.write_bytes(b"\x00garbage")
    with pytest.raises(BnnforgeError, match="not an ONNX model"):
        import_qonnx(p)


def test_import_and_run_commands(exported, tmp_path, capsys):
    """`bnnforge import` then `bnnforge run` on the golden model and on Icarus: the outputs are
    qonnx's; a wrong input shape is one line, exit status 2 and no output file."""
    from bnnforge.cli import main

    path = exported("small", False)
    bnn = tmp_path / "small.bnn"
    assert main(["import", str(path), "-o", str(bnn)]) == 0
    xs = np.random.default_rng(11).random((4, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", xs)
    ref = qonnx_outputs(path, xs)
    assert main(["run", str(bnn), "--inputs", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), ref)
    assert main(["run", str(bnn), "--inputs", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "yh.npy"), "--simulator", "icarus", "--target-cycles", "400",
                 "--design", str(tmp_path / "design")]) == 0
    assert np.array_equal(np.load(tmp_path / "yh.npy"), ref)
    np.save(tmp_path / "bad.npy", xs[:, :, :4])
    capsys.readouterr()
    assert main(["run", str(bnn), "--inputs", str(tmp_path / "bad.npy"),
                 "-o", str(tmp_path / "ybad.npy")]) == 2
    err = capsys.readouterr().err
    assert err == ("bnnforge: error: the network takes inputs of shape N x 1 x 8 x 8 (the ONNX "
                   "graph's input global_in), not (4, 1, 4, 8)\n")
    assert not (tmp_path / "ybad.npy").exists()
