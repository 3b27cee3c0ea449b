"""``bnnforge import``: a binary network exported by Brevitas as QONNX, as a CNN bitstream.

What is read (after qonnx's ``cleanup_model`` and shape inference), along the activation path
from the graph's one input to its one output:

- **host input**: ``Reshape``/``Flatten`` and ``Mul``/``Sub``/``Add``/``Div`` by constants,
  ending at the first activation quantizer: ``BipolarQuant`` (inputs become bits, ``x >= 0``)
  or ``Quant`` (inputs become ``B``-bit unsigned codes ``u = q - q_min``). These run on the
  host in float32 exactly as qonnx runs them;
- **layers**: ``Conv`` (square kernel, group 1, no dilation) or ``MatMul``/``Gemm`` (no bias)
  whose weights are a ``BipolarQuant`` of a constant, followed by ``BatchNormalization`` and
  ``BipolarQuant`` (one integer threshold a channel, found by running that very batch-norm in
  onnxruntime over every sum the layer can produce and the sign rule of qonnx's
  ``BipolarQuant``), optionally ``MaxPool`` (square, stride = kernel, floor) after the
  quantizer, and ``Reshape``/``Flatten`` before the first fully connected layer;
- **head**: the last matrix gives integer scores ``S``; its value in the graph is
  ``a S + c`` (``a`` from the scales, ``c`` a row's constant), and the ``Sub``/``Div``/
  ``Mul``/``Add`` by constants after it (Brevitas' TensorNorm) run on the host, in float32, in
  the graph's order: the head is on the host, not folded.

Anything else is refused with one line naming the node, its op type and why.
"""

import numpy as np

from .bitstream import Bitstream, DenseLayer
from .errors import BnnforgeError

__all__ = ["import_qonnx", "ImportError_"]

_ELEMENTWISE = {"Mul": "mul", "Sub": "sub", "Add": "add", "Div": "div"}


class ImportError_(BnnforgeError):
    """A graph that bnnforge cannot map, with the node that stops it."""


def _need_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError as e:
        raise BnnforgeError(f"importing QONNX needs the onnx extra ({e.name} is not installed): "
                            f"pip install 'bnnforge[onnx]'")


def _refuse(node, why):
    raise ImportError_(f"node {node.name or '(unnamed)'} ({node.op_type}): {why}")


def _is_pow2(v):
    v = float(v)
    return v > 0 and np.log2(v) == np.round(np.log2(v))


class _Graph:
    def __init__(self, model):
        self.model = model
        self.consumers = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.producer = {o: n for n in model.graph.node for o in n.output}

    def const(self, name):
        return self.model.get_initializer(name)

    def attrs(self, node):
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def next_node(self, tensor):
        users = self.consumers.get(tensor, [])
        if len(users) != 1:
            if not users:
                return None
            _refuse(users[1], f"its input {tensor} feeds {len(users)} nodes; bnnforge maps a "
                              f"single chain of layers")
        return users[0]

    def weight(self, node, name):
        """Bits (``w >= 0``) and scale of a ``BipolarQuant`` of a constant."""
        src = self.producer.get(name)
        if src is None or src.op_type != "BipolarQuant" or self.const(src.input[0]) is None:
            _refuse(node, "its weights are not a BipolarQuant of a constant (binary weights "
                          "only)")
        scale = self.const(src.input[1])
        if scale is None or np.asarray(scale).size != 1 or not _is_pow2(np.asarray(scale).item()):
            _refuse(src, "the weight scale must be one power of two for the whole tensor")
        w = np.asarray(self.const(src.input[0]))
        return (w >= 0).astype(np.uint8), float(np.asarray(scale).item())


def _scalar_const(graph, node):
    consts = [graph.const(i) for i in node.input]
    if sum(c is not None for c in consts) != 1 or consts[0] is not None and node.op_type in (
            "Sub", "Div"):
        _refuse(node, "only an elementwise op of the tensor with one constant (tensor first) is "
                      "supported")
    return np.asarray(consts[1] if consts[1] is not None else consts[0], dtype=np.float32)


def _bn_bits(graph, bn, rank, values):
    """Run the graph's own BatchNormalization node in onnxruntime on ``values``
    (``K x C``, float32) and return ``values`` through it."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, c = values.shape
    inits = [numpy_helper.from_array(np.asarray(graph.const(n), dtype=np.float32), f"p{i}")
             for i, n in enumerate(bn.input[1:])]
    shape = [1, c, k, 1] if rank == 4 else [k, c]
    node = helper.make_node("BatchNormalization", ["x"] + [f"p{i}" for i in range(4)], ["y"],
                            epsilon=graph.attrs(bn).get("epsilon", 1e-5))
    g = helper.make_graph([node], "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = values.T[None, :, :, None] if rank == 4 else values
    y = sess.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
    return y[0, :, :, 0].T if rank == 4 else y


def import_qonnx(path, meta=None):
    """Read the QONNX file ``path`` into a CNN :class:`~quant.bitstream.Bitstream` whose
    ``meta["host"]`` (constants in ``host``) holds the host's input and output steps
    (:mod:`quant.host_io`)."""
    _need_onnx()
    from pathlib import Path

    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    if not path.is_file():
        raise BnnforgeError(f"{path}: no such file")
    try:
        model = ModelWrapper(str(path))
    except Exception as e:  # onnx raises several kinds on a file that is not a model
        raise BnnforgeError(f"{path}: not an ONNX model ({type(e).__name__}: {e})")
    try:
        model = cleanup_model(model).transform(InferShapes())
    except Exception as e:
        raise BnnforgeError(f"{path}: qonnx's cleanup failed ({type(e).__name__}: {e})")
    graph = _Graph(model)
    inputs = [i for i in model.graph.input if graph.const(i.name) is None]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise BnnforgeError(f"{path}: the graph must have one input and one output, not "
                            f"{len(inputs)} and {len(model.graph.output)}")
    in_name, out_name = inputs[0].name, model.graph.output[0].name
    in_shape = list(model.get_tensor_shape(in_name))
    if not in_shape or in_shape[0] != 1:
        raise BnnforgeError(f"{path}: the input's batch dimension must be fixed at 1, not "
                            f"{in_shape[:1]}")

    host, host_ops, consts = {}, [], {}
    tensor, node = in_name, graph.next_node(in_name)
    # Host input steps up to the first activation quantizer.
    while node is not None and node.op_type not in ("BipolarQuant", "Quant"):
        if node.op_type in ("Reshape", "Flatten"):
            shape = model.get_tensor_shape(node.output[0])
            host_ops.append({"op": "reshape", "shape": list(shape)})
        elif node.op_type in _ELEMENTWISE:
            name = f"in{len(consts)}"
            consts[name] = _scalar_const(graph, node)
            host_ops.append({"op": _ELEMENTWISE[node.op_type], "const": name})
        else:
            _refuse(node, "before the first quantizer only Reshape, Flatten and Mul/Sub/Add/Div "
                          "by constants are supported")
        tensor = node.output[0]
        node = graph.next_node(tensor)
    if node is None:
        raise BnnforgeError(f"{path}: no activation quantizer (BipolarQuant or Quant) on the "
                            f"input: not a binary network bnnforge can map")
    shape = list(model.get_tensor_shape(node.output[0]))
    if len(shape) == 2:
        c, h, w = shape[1], 1, 1
    elif len(shape) == 4:
        c, h, w = shape[1:]
    else:
        _refuse(node, f"its output has shape {shape}; bnnforge takes N x C x H x W or N x F")
    if node.op_type == "BipolarQuant":
        scale = graph.const(node.input[1])
        if scale is None or np.asarray(scale).size != 1 or not _is_pow2(np.asarray(scale).item()):
            _refuse(node, "the activation scale must be one power of two")
        in_bits, act_scale, offset = 1, float(np.asarray(scale).item()), None
        quant = {"kind": "bipolar"}
    else:
        a = graph.attrs(node)
        scale, zp, bw = (graph.const(n) for n in node.input[1:4])
        if any(v is None or np.asarray(v).size != 1 for v in (scale, zp, bw)):
            _refuse(node, "scale, zero point and bit width must be single constants")
        bw = int(np.asarray(bw).item())
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        rounding = a.get("rounding_mode", b"ROUND")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        if not 2 <= bw <= 16 or not _is_pow2(np.asarray(scale).item()):
            _refuse(node, f"an input quantizer of {bw} bits with scale {np.asarray(scale).item()}"
                          f" is not supported (2..16 bits, a power-of-two scale)")
        from qonnx.custom_op.general.intquant import max_int, min_int

        q_min = int(min_int(signed, narrow, bw))
        q_max = int(max_int(signed, narrow, bw))
        zp_v = float(np.asarray(zp).item())
        if zp_v != round(zp_v):
            _refuse(node, "the zero point must be an integer")
        in_bits, act_scale = bw, float(np.asarray(scale).item())
        offset = q_min - int(zp_v)          # the value of code u is (u + offset) * scale
        consts["quant_scale"] = np.asarray(scale, dtype=np.float32)
        consts["quant_zeropt"] = np.asarray(zp, dtype=np.float32)
        quant = {"kind": "int", "bits": bw, "signed": signed, "narrow": narrow,
                 "rounding": rounding, "q_min": q_min, "q_max": q_max}
        if q_max - q_min > (1 << bw) - 1:
            _refuse(node, "the code range does not fit its bit width")
    spec = {"input": {"height": h, "width": w, "channels": c, "bits": in_bits}, "ops": []}
    layers, head_ops = [], []
    tensor = node.output[0]
    node = graph.next_node(tensor)
    bits, map_hwc = in_bits, (h, w, c)
    out_affine = None
    while node is not None:
        op = node.op_type
        if op in ("Reshape", "Flatten"):
            oshape = model.get_tensor_shape(node.output[0])
            if len(oshape) != 2 or oshape[1] != int(np.prod(map_hwc)):
                _refuse(node, f"only a flatten to 1 x {int(np.prod(map_hwc))} is supported")
            tensor, node = node.output[0], graph.next_node(node.output[0])
            continue
        if op == "MaxPool":
            a = graph.attrs(node)
            k = a.get("kernel_shape", [0, 0])
            if (len(set(k)) != 1 or list(a.get("strides", k)) != list(k)
                    or any(a.get("pads", [0]))
                    or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1]))):
                _refuse(node, "only square pools with stride = kernel, no padding, floor mode")
            if bits != 1 or not layers:
                _refuse(node, "pooling is supported on binary activations only (after a "
                              "BipolarQuant, as FINN orders it)")
            spec["ops"].append({"op": "pool", "kernel": int(k[0])})
            hh, ww, cc = map_hwc
            map_hwc = (hh // k[0], ww // k[0], cc)
            tensor, node = node.output[0], graph.next_node(node.output[0])
            continue
        if op not in ("Conv", "MatMul", "Gemm"):
            _refuse(node, "not a layer bnnforge maps (Conv, MatMul, Gemm, BatchNormalization, "
                          "BipolarQuant, MaxPool, Reshape)")
        if out_affine is not None:
            _refuse(node, "a layer after the scores layer")
        name = f"l{len(layers)}"
        hh, ww, cc = map_hwc
        if op == "Conv":
            a = graph.attrs(node)
            wbits, w_scale = graph.weight(node, node.input[1])
            k = a.get("kernel_shape", list(wbits.shape[2:]))
            strides, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
            if (len(node.input) > 2 or a.get("group", 1) != 1 or len(set(k)) != 1
                    or len(set(strides)) != 1 or len(set(pads)) != 1
                    or any(d != 1 for d in a.get("dilations", [1, 1]))):
                _refuse(node, "only square kernels, equal strides and padding, group 1, no "
                              "dilation and no bias are supported")
            pad = int(pads[0])
            if pad and bits == 1:
                _refuse(node, "zero padding of +-1 activations has no binary form; pad the "
                              "input of the first layer only, or use valid convolutions")
            pad_value = -offset if pad else 0
            if pad and not 0 <= pad_value < 1 << bits:
                _refuse(node, "the padded zero is not a code of the input quantizer")
            from golden.conv import weights_hwc

            wmat = weights_hwc(wbits).numpy().astype(np.uint8)
            op_spec = {"op": "conv", "layer": name, "kernel": int(k[0]),
                       "stride": int(strides[0]), "padding": pad, "pad_value": int(pad_value)}
            oshape = model.get_tensor_shape(node.output[0])
            new_map = (oshape[2], oshape[3], oshape[1])
            rank = 4
        else:
            wname = node.input[1]
            wbits, w_scale = graph.weight(node, wname)
            if op == "Gemm":
                a = graph.attrs(node)
                if (len(node.input) > 2 or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                        or a.get("beta", 1.0) != 1.0):
                    _refuse(node, "only Gemm without bias, transA or scaling is supported")
                wmat = wbits if a.get("transB", 0) else wbits.T
            else:
                wmat = wbits.T
            wmat = np.ascontiguousarray(wmat)
            if hh * ww > 1:
                # The graph flattens (c, h, w); the hardware streams (h, w, c).
                perm = np.arange(hh * ww * cc).reshape(cc, hh, ww).transpose(1, 2, 0).ravel()
                wmat = wmat[:, perm]
            op_spec = {"op": "dense", "layer": name}
            new_map = (1, 1, wmat.shape[0])
            rank = 2
        n = wmat.shape[1]
        big_m = (1 << bits) - 1
        zeros = (wmat == 0).sum(axis=1).astype(np.float64)
        ones = n - zeros
        # The graph's value of the sum S: a S + c (exact in float32: powers of two, integers).
        if bits == 1:
            a_s = 2.0 * act_scale * w_scale
            c_s = -n * act_scale * w_scale * np.ones(len(zeros))
        else:
            a_s = act_scale * w_scale
            c_s = act_scale * w_scale * (-big_m * zeros + offset * (ones - zeros))
        nxt = graph.next_node(node.output[0])
        if nxt is not None and nxt.op_type == "BatchNormalization":
            q = graph.next_node(nxt.output[0])
            if q is None or q.op_type != "BipolarQuant":
                _refuse(nxt, "a batch-norm must be followed by a BipolarQuant (binary "
                             "activations)")
            qs = graph.const(q.input[1])
            if qs is None or np.asarray(qs).size != 1 or not _is_pow2(np.asarray(qs).item()):
                _refuse(q, "the activation scale must be one power of two")

            def bits_of(s, bn=nxt, rank=rank, a_s=a_s, c_s=c_s):
                values = (a_s * s[:, None].astype(np.float64) + c_s[None, :]).astype(np.float32)
                return _bn_bits(graph, bn, rank, values) >= 0

            from golden.cnn import step_thresholds

            t, flip = step_thresholds(name, bits_of, n * big_m)
            wmat = np.where(flip[:, None], 1 - wmat, wmat).astype(np.uint8)
            layers.append(DenseLayer(name, wmat, t, bits))
            act_scale, bits = float(np.asarray(qs).item()), 1
            tensor = q.output[0]
        else:
            layers.append(DenseLayer(name, wmat.astype(np.uint8), None, bits))
            out_affine = {"a": a_s}
            consts["out_c"] = c_s.astype(np.float32)
            tensor = node.output[0]
        spec["ops"].append(op_spec)
        map_hwc = new_map
        node = graph.next_node(tensor)
        if out_affine is not None:
            # The head: elementwise ops by constants up to the graph's output.
            while node is not None:
                if node.op_type not in _ELEMENTWISE:
                    _refuse(node, "after the scores layer only Mul/Sub/Add/Div by constants "
                                  "(a TensorNorm head) are supported")
                cname = f"out{len(head_ops)}"
                consts[cname] = _scalar_const(graph, node)
                head_ops.append({"op": _ELEMENTWISE[node.op_type], "const": cname})
                tensor = node.output[0]
                node = graph.next_node(tensor)
    if out_affine is None:
        raise BnnforgeError(f"{path}: the graph does not end in a scores layer (MatMul/Gemm "
                            f"without batch-norm and quantizer)")
    if tensor != out_name:
        raise BnnforgeError(f"{path}: the chain ends at {tensor}, not at the graph's output "
                            f"{out_name}")
    host_meta = {"source": "qonnx", "file": path.name, "onnx_input": in_name,
                 "onnx_output": out_name, "input_shape": in_shape,
                 "output_shape": list(model.get_tensor_shape(out_name)),
                 "input_ops": host_ops, "input_quant": quant, "output_scale": out_affine["a"],
                 "output_offset": "out_c", "output_ops": head_ops,
                 "head": "on the host (float32, the graph's order)"}
    meta = dict(meta or {})
    meta["host"] = host_meta
    bs = Bitstream(layers, {"shape": [c, h, w], "bits": in_bits,
                            "layout": "NCHW integer codes (see meta.host for the ONNX input)"},
                   meta, host={k: np.asarray(v, dtype=np.float32) for k, v in consts.items()},
                   cnn=spec)
    return bs.validate()
