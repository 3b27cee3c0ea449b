"""Weight bitstream v1: one file with the network description, packed weights and thresholds.

The container is safetensors (no pickle, nothing executable). The full format is documented in
``docs/bitstream.md``. In short: the safetensors metadata holds ``format`` (the magic string
``bnnforge-bitstream``), ``version`` (``"1"``), ``manifest`` (JSON: input encoding and layers) and
``checksum`` (SHA-256 over the manifest and every tensor). Tensors are ``<layer>.weight`` (uint8,
packed bits, LSB first, ``rows x ceil(cols / 8)``) and ``<layer>.threshold`` (int32, ``rows``).

:func:`read` validates everything before returning; :func:`write` never leaves a partial file.
"""

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bits import bits_for, pack_bits, unpack_bits
from .errors import BitstreamError
from .cnn_format import cnn_from_section, cnn_section, validate_cnn
from .bscnet_format import bscnet_from_section, bscnet_section, validate_bscnet
from .groupnet_format import groupnet_from_section, groupnet_section, validate_groupnet

__all__ = ["MAGIC", "VERSION", "DenseLayer", "Bitstream", "read", "write"]

MAGIC = "bnnforge-bitstream"
VERSION = 1
BIT_ORDER = "element j is bit j%8 of byte j//8 (LSB first); bit 1 means +1, bit 0 means -1"


@dataclass
class DenseLayer:
    """A binary fully connected layer as the hardware computes it.

    ``weights`` are 0/1 of shape ``(rows, cols)``, already flipped for channels whose
    batch-norm scale was negative. With ``thresholds`` (int, ``rows``) the layer outputs the bits
    ``popcount >= T``; without (``None``) it outputs the integer popcounts as class scores.

    ``input_bits`` > 1: the inputs are unsigned ``B``-bit integers ``u`` (a first layer's
    pixels) and the "popcount" generalises to ``S = sum_j (w_j ? u_j : M - u_j)`` with
    ``M = 2^B - 1`` (bit-wise XNOR of the weight bit with every bit of ``u_j``, weighted by the
    bit's place), which is ``sum_j w'_j u_j`` plus a per-row constant (``M`` times the row's
    zero weights); for ``B = 1`` it is the XNOR popcount.
    """

    name: str
    weights: np.ndarray
    thresholds: np.ndarray = None
    input_bits: int = 1

    def __post_init__(self):
        self.weights = np.ascontiguousarray(self.weights, dtype=np.uint8)
        if self.weights.ndim != 2:
            raise BitstreamError(f"layer {self.name}: weights must be 2-D, "
                                 f"not of shape {self.weights.shape}")
        if self.thresholds is not None:
            self.thresholds = np.asarray(self.thresholds, dtype=np.int64)
        if (isinstance(self.input_bits, bool) or not isinstance(self.input_bits, (int, np.integer))
                or not 1 <= self.input_bits <= 16):
            raise BitstreamError(f"layer {self.name}: input_bits must be an integer in 1..16, "
                                 f"not {self.input_bits!r}")
        self.input_bits = int(self.input_bits)

    @property
    def max_sum(self):
        """The largest ``S``: ``cols * (2^input_bits - 1)``."""
        return self.cols * ((1 << self.input_bits) - 1)

    @property
    def rows(self):
        return self.weights.shape[0]

    @property
    def cols(self):
        return self.weights.shape[1]

    @property
    def output(self):
        return "scores" if self.thresholds is None else "bits"

    @property
    def threshold_width(self):
        return bits_for(self.max_sum + 1)

    @property
    def score_width(self):
        return bits_for(self.max_sum)


@dataclass
class Bitstream:
    """A binary network ready for hardware: input encoding, layers, free-form metadata.

    A dense network has ``layers``; a Group-Net has ``groupnet`` (see
    :mod:`quant.groupnet_format`) and no layers. ``host`` holds float32 tensors of the parts
    that run on the host (a Group-Net's stem and classifier).
    """

    layers: list
    input: dict
    meta: dict = field(default_factory=dict)
    groupnet: dict = None
    host: dict = field(default_factory=dict)
    bscnet: dict = None
    cnn: dict = None        # a binary CNN's ops over ``layers`` (:mod:`quant.cnn_format`)
    checksum: str = None    # the file's checksum when read from one (see docs/bitstream.md)

    @property
    def kind(self):
        if self.bscnet is not None:
            return "bscnet"
        if self.cnn is not None:
            return "cnn"
        return "groupnet" if self.groupnet is not None else "dense"

    def validate(self):
        """Check shapes and ranges; raises :class:`BitstreamError` naming the first problem."""
        if self.bscnet is not None:
            if self.layers or self.groupnet is not None:
                raise BitstreamError("a BSC-Net bitstream has no dense layers or Group-Net")
            validate_bscnet(self.bscnet)
            return self
        if self.groupnet is not None:
            if self.layers:
                raise BitstreamError("a Group-Net bitstream has no dense layers")
            validate_groupnet(self.groupnet)
            return self
        if not self.layers:
            raise BitstreamError("the bitstream has no layers")
        if self.cnn is not None:
            if self.groupnet is not None:
                raise BitstreamError("a CNN bitstream has no Group-Net")
            names = [layer.name for layer in self.layers]
            if len(set(names)) != len(names):
                raise BitstreamError("two layers have the same name")
            validate_cnn(self.cnn, self.layers)
            for layer in self.layers:
                _check_layer_values(layer)
            return self
        features = self.input.get("features")
        if features != self.layers[0].cols:
            raise BitstreamError(f"the input has {features} features but layer "
                                 f"{self.layers[0].name} takes {self.layers[0].cols}")
        names = set()
        for i, layer in enumerate(self.layers):
            if layer.name in names:
                raise BitstreamError(f"two layers are named {layer.name!r}")
            names.add(layer.name)
            if i and self.layers[i - 1].rows != layer.cols:
                prev = self.layers[i - 1]
                raise BitstreamError(f"layer {prev.name} outputs {prev.rows} values but "
                                     f"layer {layer.name} takes {layer.cols}")
            if layer.output == "scores" and i != len(self.layers) - 1:
                raise BitstreamError(f"layer {layer.name} outputs scores but is not the last")
            if layer.input_bits != 1:
                raise BitstreamError(f"layer {layer.name} takes {layer.input_bits}-bit inputs; "
                                     f"a dense network takes bits (multi-bit inputs need the "
                                     f"CNN section)")
            _check_layer_values(layer)
        return self


def _check_layer_values(layer):
    if layer.thresholds is not None:
        t = layer.thresholds
        if t.shape != (layer.rows,):
            raise BitstreamError(f"layer {layer.name} has {t.size} thresholds for "
                                 f"{layer.rows} rows")
        if t.size and (t.min() < 0 or t.max() > layer.max_sum + 1):
            raise BitstreamError(f"layer {layer.name} has thresholds outside "
                                 f"[0, {layer.max_sum + 1}]")
    if layer.weights.size and layer.weights.max() > 1:
        raise BitstreamError(f"layer {layer.name} has weights other than 0 and 1")


def _manifest(bs):
    layers = []
    for layer in bs.layers:
        entry = {
            "name": layer.name, "kind": "dense",
            "in_features": layer.cols, "out_features": layer.rows, "output": layer.output,
            "weights": {"tensor": f"{layer.name}.weight", "encoding": "packed-bits",
                        "shape": [layer.rows, layer.cols]},
            "thresholds": None, "score_width": None,
        }
        if layer.input_bits != 1:
            entry["input_bits"] = layer.input_bits
        if layer.output == "bits":
            entry["thresholds"] = {"tensor": f"{layer.name}.threshold", "dtype": "int32",
                                   "width": layer.threshold_width, "rule": "popcount >= T"}
        else:
            entry["score_width"] = layer.score_width
        layers.append(entry)
    manifest = {"bit_order": BIT_ORDER, "input": bs.input, "layers": layers, "meta": bs.meta,
                "host": sorted(bs.host)}
    if bs.groupnet is not None:
        manifest["network"], _ = groupnet_section(bs.groupnet)
    if bs.bscnet is not None:
        manifest["network"], _ = bscnet_section(bs.bscnet)
    if bs.cnn is not None:
        manifest["network"], _ = cnn_section(bs.cnn)
    return manifest


def _checksum(manifest_text, tensors):
    h = hashlib.sha256(manifest_text.encode())
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{t.dtype.str}|{list(t.shape)}|".encode())
        h.update(t.tobytes())
    return "sha256:" + h.hexdigest()


def atomic_write(path, write_to):
    """Call ``write_to(tmp_path)`` and move the result to ``path`` only if it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        write_to(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(bs, path):
    """Write ``bs`` to ``path`` atomically (validated first; no partial file on failure)."""
    from safetensors.numpy import save_file

    bs.validate()
    tensors = {f"host.{name}": np.asarray(t, dtype=np.float32) for name, t in bs.host.items()}
    if bs.groupnet is not None:
        tensors.update(groupnet_section(bs.groupnet)[1])
    if bs.bscnet is not None:
        tensors.update(bscnet_section(bs.bscnet)[1])
    for layer in bs.layers:
        tensors[f"{layer.name}.weight"] = pack_bits(layer.weights)
        if layer.thresholds is not None:
            tensors[f"{layer.name}.threshold"] = layer.thresholds.astype(np.int32)
    manifest_text = json.dumps(_manifest(bs), sort_keys=True)
    # safetensors writes an array's buffer as it lies in memory: every tensor in C order.
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    metadata = {"format": MAGIC, "version": str(VERSION), "manifest": manifest_text,
                "checksum": _checksum(manifest_text, tensors)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return Path(path)


def _header(raw, path):
    if len(raw) < 8:
        raise BitstreamError(f"{path}: truncated bitstream ({len(raw)} bytes, no header)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        if n > 100_000_000:
            raise BitstreamError(f"{path}: not a bnnforge bitstream (no safetensors header)")
        raise BitstreamError(f"{path}: truncated bitstream (header of {n} bytes, file of "
                             f"{len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + n])
        assert isinstance(header, dict)
    except (ValueError, AssertionError):
        raise BitstreamError(f"{path}: not a bnnforge bitstream (no safetensors header)")
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != MAGIC:
        raise BitstreamError(f"{path}: wrong magic {meta.get('format')!r}: not a bnnforge "
                             f"bitstream (expected {MAGIC!r})")
    if meta.get("version") != str(VERSION):
        raise BitstreamError(f"{path}: bitstream version {meta.get('version')!r} is not "
                             f"supported; this bnnforge reads version {VERSION}")
    end = max((t["data_offsets"][1] for t in header.values()), default=0)
    if 8 + n + end > len(raw):
        raise BitstreamError(f"{path}: truncated bitstream (data ends at byte {len(raw)}, "
                             f"expected {8 + n + end})")
    return meta


def read(path):
    """Read and validate a bitstream; raises :class:`BitstreamError` naming the problem."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BitstreamError(f"{path}: no such file")
    except IsADirectoryError:
        raise BitstreamError(f"{path}: is a directory, not a bitstream file")
    meta = _header(raw, path)
    try:
        tensors = load(raw)
    except SafetensorError as e:
        raise BitstreamError(f"{path}: corrupt bitstream container ({e})")
    manifest_text = meta.get("manifest", "")
    if meta.get("checksum") != _checksum(manifest_text, tensors):
        raise BitstreamError(f"{path}: checksum mismatch: the file is corrupt or was edited; "
                             f"export it again")
    try:
        manifest = json.loads(manifest_text)
        layers = [_layer_from(entry, tensors, path) for entry in manifest["layers"]]
        host = {name: _tensor(tensors, f"host.{name}", path) for name in manifest.get("host", [])}
        groupnet = bscnet = cnn = None
        if "network" in manifest:
            kind = manifest["network"].get("kind")
            if kind == "groupnet":
                groupnet = groupnet_from_section(manifest["network"], tensors, path)
            elif kind == "bscnet":
                bscnet = bscnet_from_section(manifest["network"], tensors, path)
            elif kind == "cnn":
                cnn = cnn_from_section(manifest["network"], tensors, path)
            else:
                raise BitstreamError(f"{path}: unknown network kind {kind!r}")
        bs = Bitstream(layers=layers, input=manifest["input"], meta=manifest.get("meta", {}),
                       groupnet=groupnet, host=host, bscnet=bscnet, cnn=cnn,
                       checksum=meta["checksum"])
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, BitstreamError):
            raise
        raise BitstreamError(f"{path}: malformed manifest ({type(e).__name__}: {e})")
    try:
        return bs.validate()
    except BitstreamError as e:
        raise BitstreamError(f"{path}: {e}")


def _tensor(tensors, name, path):
    if name not in tensors:
        raise BitstreamError(f"{path}: the manifest names tensor {name!r} but the file has none")
    return tensors[name]


def _layer_from(entry, tensors, path):
    name = entry["name"]
    rows, cols = entry["out_features"], entry["in_features"]
    if entry.get("kind") != "dense":
        raise BitstreamError(f"{path}: layer {name} has unknown kind {entry.get('kind')!r}")
    packed = _tensor(tensors, entry["weights"]["tensor"], path)
    expect = (rows, (cols + 7) // 8)
    if packed.shape != expect or packed.dtype != np.uint8:
        raise BitstreamError(f"{path}: layer {name}: the manifest says {rows}x{cols} weights "
                             f"(packed {expect[0]}x{expect[1]} uint8) but the tensor is "
                             f"{'x'.join(map(str, packed.shape))} {packed.dtype}")
    thresholds = None
    if entry["output"] == "bits":
        thresholds = _tensor(tensors, entry["thresholds"]["tensor"], path)
        if thresholds.shape != (rows,):
            raise BitstreamError(f"{path}: layer {name}: the manifest says {rows} thresholds "
                                 f"but the tensor has shape {thresholds.shape}")
    elif entry["output"] != "scores":
        raise BitstreamError(f"{path}: layer {name} has unknown output {entry['output']!r}")
    return DenseLayer(name, unpack_bits(packed, cols), thresholds, entry.get("input_bits", 1))
