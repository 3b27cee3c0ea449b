"""Real sparse data: the labelled frog CT volume shipped inside PyPI's pyvista wheel.

``examples/frog_tissues.vti`` is a VTK XML ImageData file (500 x 470 x 136 voxels, 26 tissue
labels, zlib-compressed base64 blocks). It is read here directly, without importing pyvista
(which would need VTK): the set-up installs the wheel with ``--no-deps`` only for this file.
"""

import base64
import importlib.util
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from quant.errors import BnnforgeError

__all__ = ["frog_path", "read_vti", "frog_volume", "frog_frame", "frog_segmentation",
           "FROG_CLASSES"]


def frog_path():
    """Location of ``frog_tissues.vti`` in the installed pyvista package (not imported)."""
    spec = importlib.util.find_spec("pyvista")
    if spec is None or not spec.submodule_search_locations:
        raise BnnforgeError("the frog CT volume comes from the pyvista wheel, which is not "
                            "installed: run `make setup` (it installs the wheel without its "
                            "dependencies)")
    path = Path(list(spec.submodule_search_locations)[0]) / "examples" / "frog_tissues.vti"
    if not path.exists():
        raise BnnforgeError(f"{path} is missing from the installed pyvista wheel")
    return path


def _decode_blocks(text):
    """VTK's compressed binary: a base64 header (UInt32 block count, block size, last block
    size, compressed sizes) followed by the base64 of the zlib blocks."""
    text = "".join(text.split())
    first = base64.b64decode(text[:16])
    blocks = struct.unpack("<I", first[:4])[0]
    header_bytes = 4 * (3 + blocks)
    header_chars = 4 * ((header_bytes + 2) // 3)
    header = struct.unpack(f"<{3 + blocks}I", base64.b64decode(text[:header_chars])[:header_bytes])
    data = base64.b64decode(text[header_chars:])
    out, pos = [], 0
    for size in header[3:]:
        out.append(zlib.decompress(data[pos:pos + size]))
        pos += size
    return b"".join(out)


def read_vti(path):
    """A UInt8 point-data array of a VTK ImageData file as ``z x y x x`` (C order)."""
    text = Path(path).read_text()
    extent = [int(v) for v in re.search(r'WholeExtent="([^"]+)"', text).group(1).split()]
    if 'compressor="vtkZLibDataCompressor"' not in text or 'header_type="UInt32"' not in text:
        raise BnnforgeError(f"{path}: only zlib-compressed VTK files with UInt32 headers are "
                            f"read here")
    body = re.search(r'<DataArray[^>]*type="UInt8"[^>]*format="binary"[^>]*>(.*?)</DataArray>',
                     text, re.S)
    if body is None:
        raise BnnforgeError(f"{path}: no binary UInt8 data array")
    nx, ny, nz = (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1,
                  extent[5] - extent[4] + 1)
    raw = np.frombuffer(_decode_blocks(body.group(1)), dtype=np.uint8)
    if raw.size != nx * ny * nz:
        raise BnnforgeError(f"{path}: {raw.size} values for a {nx} x {ny} x {nz} volume")
    return raw.reshape(nz, ny, nx)


def frog_volume():
    return read_vti(frog_path())


def frog_frame(voxel_size, channels=16, volume=None):
    """The frog's occupied voxels (label > 0) voxelized at ``voxel_size`` (a coarse voxel is
    active when any voxel inside is occupied): coordinates ``N x 3`` (x, y, z) in hardware
    order, ``channels`` feature bits a voxel (the bits of its rounded mean label, repeated),
    and the coordinate width that holds them. Voxel size 4 gives 34,331 sites."""
    from .sparse import sort_frame, voxelize

    vol = frog_volume() if volume is None else volume
    z, y, x = np.nonzero(vol)
    labels = vol[z, y, x].astype(np.float64)
    coords, mean = voxelize(np.stack([x, y, z], axis=1), voxel_size, bits=16,
                            origin=(0, 0, 0), features=labels)
    label = np.floor(mean[:, 0] + 0.5).astype(np.int64)
    feats = ((label[:, None] >> (np.arange(channels) % 5)) & 1).astype(np.uint8)
    bits = max(1, int(coords.max()).bit_length())
    coords, feats = sort_frame(coords, feats, bits)
    return coords, feats, bits


def frog_layer_frame(kind, coords, feats, rng):
    """The frame a sparse layer of ``kind`` takes on the frog's sites: ``(coords, feats)`` for
    ssc and down; for up, the sites' parents (down-sampled, random feature bits) as the coarse
    part and the sites as the fine part."""
    from .sparse import downsample_map

    if kind != "up":
        return coords, feats
    coarse = downsample_map(coords)[0]
    return coarse, rng.integers(0, 2, (len(coarse), feats.shape[1])).astype(np.uint8), coords


FROG_CLASSES = 16
"""Tissue classes of the segmentation task: labels 1..15 as themselves, 16 and above as one
class (the rare tissues), numbered 0..15."""


def frog_segmentation(voxel_size, origin=(0, 0, 0), volume=None):
    """The frog's occupied voxels at ``voxel_size`` with the grid shifted by ``origin`` (in CT
    voxels): ``(coords N x 3 in hardware order, class N, bits)``; a voxel's class is the most
    frequent tissue inside it (see :data:`FROG_CLASSES`)."""
    from .sparse import voxel_keys

    vol = frog_volume() if volume is None else volume
    z, y, x = np.nonzero(vol)
    pts = np.stack([x, y, z], axis=1) + np.asarray(origin, dtype=np.int64)
    v = pts // int(voxel_size)
    bits = max(1, int(v.max()).bit_length())
    keys = voxel_keys(v, bits)
    label = np.minimum(vol[z, y, x].astype(np.int64), FROG_CLASSES) - 1
    pair, counts = np.unique(keys * FROG_CLASSES + label, return_counts=True)
    key_of, lab_of = pair // FROG_CLASSES, pair % FROG_CLASSES
    order = np.lexsort((-counts, key_of))      # per key, the most frequent label first
    first = np.ones(len(order), dtype=bool)
    first[1:] = key_of[order][1:] != key_of[order][:-1]
    keys_u, labels_u = key_of[order][first], lab_of[order][first]
    mask = (1 << bits) - 1
    coords = np.stack([keys_u & mask, (keys_u >> bits) & mask, keys_u >> (2 * bits)], axis=1)
    return coords, labels_u, bits
