"""The checksum recipe of docs/bitstream.md, run as written (standard library only) against
bitstreams of each kind that bnnforge writes: it gives the checksum in the file, and a changed
byte, or the safetensors dtype name in place of NumPy's spelling, gives another."""

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from quant import bitstream as bio
from tests.helpers import random_dense

DOC = Path(__file__).parents[2] / "docs" / "bitstream.md"


def _doc_recipe():
    """The Python block of the doc's "Checksum, exactly" section, as a function of the raw
    file bytes that returns (computed, stored)."""
    text = DOC.read_text()
    section = text.split("## Checksum, exactly", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('raw = open("digits-mlp.bnn", "rb").read()\n', "")
    code = code.replace('assert "sha256:" + h.hexdigest() == meta["checksum"]',
                        'result = ("sha256:" + h.hexdigest(), meta["checksum"])')

    def run(raw, spelling=None):
        scope = {"raw": raw}
        src = code if spelling is None else code.replace(
            'spelling = {"U8": "|u1", "I32": "<i4", "F32": "<f4"}', f"spelling = {spelling!r}")
        exec(src, scope)
        return scope["result"]
    return run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import torch

    from golden.groupnet import GroupNet

    d = tmp_path_factory.mktemp("bs")
    bio.write(random_dense(np.random.default_rng(0), [40, 16, 10]), d / "dense.bnn")
    torch.manual_seed(0)
    bio.write(GroupNet(channels=4, blocks=1, bases=2).eval().to_bitstream(6, 6), d / "gn.bnn")
    return [d / "dense.bnn", d / "gn.bnn"]


def test_the_documented_recipe_reproduces_the_checksum(files):
    run = _doc_recipe()
    for path in files:
        raw = path.read_bytes()
        computed, stored = run(raw)
        assert computed == stored == bio.read(path).checksum
        header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
        assert {t["dtype"] for k, t in header.items() if k != "__metadata__"} <= \
            {"U8", "I32", "F32"}


def test_the_recipe_tells_a_changed_byte_and_a_wrong_dtype_spelling(files):
    run = _doc_recipe()
    raw = bytearray(files[0].read_bytes())
    raw[-1] ^= 1
    computed, stored = run(bytes(raw))
    assert computed != stored
    computed, stored = run(files[0].read_bytes(), {"U8": "U8", "I32": "I32", "F32": "F32"})
    assert computed != stored
