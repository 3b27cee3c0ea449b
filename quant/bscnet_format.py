"""The BSC-Net section of the weight bitstream (see ``docs/bitstream.md``).

A BSC-Net spec is plain data: ``config`` (how :class:`golden.bscnet.BSCNet` was built) and
``layers``: every binary convolution in module order, with ``name``, ``kind`` (ssc, down, up,
pointwise), ``cin``, ``cout`` and ``weights`` (``slots x Cout x Cin`` bits; ssc offsets
``k = (dx+1) + 3(dy+1) + 9(dz+1)``, down/up slots ``px + 2 py + 4 pz``). Tensors:
``bscnet.<name>.weight`` (packed bits, ``slots * Cout`` rows of ``Cin``). The real-valued parts
(first SSC layer, batch-norms, 1x1 convolutions, head) are host tensors.
"""

import numpy as np

from .bits import pack_bits, unpack_bits
from .errors import BitstreamError

__all__ = ["SLOTS", "validate_bscnet", "bscnet_section", "bscnet_from_section"]

SLOTS = {"ssc": 27, "down": 8, "up": 8, "pointwise": 1}


def validate_bscnet(spec):
    """Check a BSC-Net spec; raises :class:`BitstreamError` naming the first problem."""
    if not spec["layers"]:
        raise BitstreamError("the BSC-Net has no binary layers")
    names = set()
    for layer in spec["layers"]:
        name, kind = layer["name"], layer["kind"]
        if name in names:
            raise BitstreamError(f"two BSC-Net layers are named {name!r}")
        names.add(name)
        if kind not in SLOTS:
            raise BitstreamError(f"BSC-Net layer {name} has unknown kind {kind!r}")
        shape = (SLOTS[kind], layer["cout"], layer["cin"])
        w = np.asarray(layer["weights"])
        if w.shape != shape:
            raise BitstreamError(f"BSC-Net layer {name}: {kind} weights must be "
                                 f"{'x'.join(map(str, shape))}, not {'x'.join(map(str, w.shape))}")
        if w.size and w.max() > 1:
            raise BitstreamError(f"BSC-Net layer {name} has weights other than 0 and 1")


def bscnet_section(spec):
    """``(manifest section, tensors)`` of a spec."""
    layers, tensors = [], {}
    for layer in spec["layers"]:
        w = np.asarray(layer["weights"], dtype=np.uint8)
        tensor = f"bscnet.{layer['name']}.weight"
        tensors[tensor] = pack_bits(w.reshape(-1, w.shape[2]))
        layers.append({"name": layer["name"], "kind": layer["kind"], "cin": int(layer["cin"]),
                       "cout": int(layer["cout"]), "tensor": tensor,
                       "encoding": "packed-bits, slots*Cout rows of Cin"})
    return {"kind": "bscnet", "config": spec["config"], "layers": layers}, tensors


def bscnet_from_section(section, tensors, path):
    """The spec back from a manifest section and the file's tensors."""
    layers = []
    for entry in section["layers"]:
        kind = entry["kind"]
        if kind not in SLOTS:
            raise BitstreamError(f"{path}: BSC-Net layer {entry['name']} has unknown kind "
                                 f"{kind!r}")
        slots, cin, cout = SLOTS[kind], entry["cin"], entry["cout"]
        packed = tensors.get(entry["tensor"])
        if packed is None:
            raise BitstreamError(f"{path}: the manifest names tensor {entry['tensor']!r} but "
                                 f"the file has none")
        if packed.shape != (slots * cout, (cin + 7) // 8):
            raise BitstreamError(f"{path}: BSC-Net layer {entry['name']}: the manifest says "
                                 f"{slots}x{cout}x{cin} weights but the tensor is "
                                 f"{'x'.join(map(str, packed.shape))}")
        layers.append({"name": entry["name"], "kind": kind, "cin": cin, "cout": cout,
                       "weights": unpack_bits(packed, cin).reshape(slots, cout, cin)})
    return {"config": section["config"], "layers": layers}
