"""Point clouds sampled from the small PLY meshes shipped in PyPI's pyvista wheel (airplane,
ant, nut, sphere), read without pyvista: ASCII or binary little-endian PLY with float vertices
and polygon faces."""

import struct
from pathlib import Path

import numpy as np

from quant.errors import BnnforgeError

__all__ = ["read_ply", "sample_surface", "mesh_points"]

_TYPES = {"char": "b", "int8": "b", "uchar": "B", "uint8": "B", "short": "h", "int16": "h",
          "ushort": "H", "uint16": "H", "int": "i", "int32": "i", "uint": "I", "uint32": "I",
          "float": "f", "float32": "f", "double": "d", "float64": "d"}


def read_ply(path):
    """``(vertices V x 3, triangles F x 3)`` of a PLY mesh (polygons fanned into triangles)."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise BnnforgeError(f"{path}: not a PLY file")
    header = raw[:end].decode("ascii", "replace").splitlines()
    body = raw[raw.index(b"\n", end) + 1:]
    fmt = next(l.split()[1] for l in header if l.startswith("format"))
    elements = []
    for line in header:
        words = line.split()
        if words[:1] == ["element"]:
            elements.append((words[1], int(words[2]), []))
        elif words[:1] == ["property"]:
            elements[-1][2].append(words[1:])
    if fmt == "ascii":
        tokens = iter(body.split())

        def value(kind):
            return float(next(tokens)) if _TYPES[kind] in "fd" else int(next(tokens))
    elif fmt == "binary_little_endian":
        pos = 0

        def value(kind):
            nonlocal pos
            (v,) = struct.unpack_from("<" + _TYPES[kind], body, pos)
            pos += struct.calcsize(_TYPES[kind])
            return v
    else:
        raise BnnforgeError(f"{path}: PLY format {fmt!r} is not supported")
    verts, faces = None, []
    for name, count, props in elements:
        rows = [[[value(p[2]) for _ in range(value(p[1]))] if p[0] == "list" else value(p[0])
                 for p in props] for _ in range(count)]
        if name == "vertex":
            verts = np.array([r[:3] for r in rows], dtype=np.float64)
        elif name == "face":
            faces = [r[0] for r in rows]
    tris = [(f[0], f[i], f[i + 1]) for f in faces for i in range(1, len(f) - 1)]
    return verts, np.array(tris, dtype=np.int64).reshape(-1, 3)


def sample_surface(verts, tris, count, seed=0):
    """``count`` points uniformly on the mesh surface (area-weighted triangles), seeded."""
    rng = np.random.default_rng(seed)
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    pick = rng.choice(len(tris), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return a[pick] + u[:, None] * (b[pick] - a[pick]) + v[:, None] * (c[pick] - a[pick])


def mesh_points(name, count, seed=0):
    """Points sampled from pyvista's ``examples/<name>.ply``."""
    from .frog import frog_path

    return sample_surface(*read_ply(frog_path().parent / f"{name}.ply"), count, seed)
