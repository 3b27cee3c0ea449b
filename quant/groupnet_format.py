"""The Group-Net section of the weight bitstream (see ``docs/bitstream.md``).

A Group-Net spec is plain data: ``format`` (the fixed-point format, a dict), ``height``,
``width``, ``channels``, ``config`` (how the network was built), and ``groups``: each with
``gate`` (integer or None), ``lambdas`` (K integers) and ``units`` (per base, a list of units:
``weights`` ``C x 9C`` bits in window order, ``scale`` and ``shift`` ``C`` integers,
``dilation``, ``act``: None for binary activations, else K-bit activations ``{bits, mult,
frac}``, as :func:`golden.groupnet.act_codes` computes them; ``stride`` 1 or 2 and
``shortcut``: None, or for a unit that strides or changes the channels ``{weights (C x Cin),
bias (C)}``, :func:`golden.groupnet.shortcut_forward`). A unit's weights are ``C x 9 Cin``.
Tensors (``.sc_weight``, ``.sc_bias`` for shortcuts): ``g<g>.b<k>.u<j>.weight`` (packed bits), ``.scale``, ``.shift``
(int32), ``g<g>.lambda`` (int32).
"""

import numpy as np

from .bits import pack_bits, unpack_bits
from .errors import BitstreamError

__all__ = ["validate_groupnet", "groupnet_section", "groupnet_from_section"]

_FORMAT_KEYS = ("width", "frac", "scale_frac", "lambda_frac", "gate_frac")
_INT32 = (-(1 << 31), (1 << 31) - 1)


def _int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitstreamError(f"{what} must be an integer, not {value!r}")
    return int(value)


def validate_groupnet(spec):
    """Check a Group-Net spec; raises :class:`BitstreamError` naming the first problem."""
    fmt = spec["format"]
    for key in _FORMAT_KEYS:
        _int(fmt.get(key), f"the fixed-point format's {key}")
    if not 2 <= fmt["width"] <= 32 or not 0 <= fmt["frac"] < fmt["width"]:
        raise BitstreamError(f"fixed-point width {fmt['width']} with {fmt['frac']} fractional "
                             f"bits is not supported (width 2..32, frac below width)")
    c = _int(spec["channels"], "channels")
    for key in ("height", "width"):
        if _int(spec[key], key) < 1:
            raise BitstreamError(f"the map {key} must be positive, not {spec[key]}")
    if not spec["groups"]:
        raise BitstreamError("the Group-Net has no groups")
    k_count = len(spec["groups"][0]["units"])
    if not 1 <= k_count <= 8:
        raise BitstreamError(f"a Group-Net has 1 to 8 bases, not {k_count}")
    group_in, size, outs = c, (spec["height"], spec["width"]), set()
    for g, group in enumerate(spec["groups"]):
        where = f"group {g}"
        if len(group["units"]) != k_count:
            raise BitstreamError(f"{where} has {len(group['units'])} bases, group 0 has {k_count}")
        if len(group["lambdas"]) != k_count:
            raise BitstreamError(f"{where} has {len(group['lambdas'])} lambdas for {k_count} bases")
        gate = group["gate"]
        if gate is not None:
            if g == 0:
                raise BitstreamError("group 0 cannot have a soft connection (no previous group)")
            if not 0 <= _int(gate, f"{where}'s gate") <= 1 << fmt["gate_frac"]:
                raise BitstreamError(f"{where}'s gate {gate} is outside [0, "
                                     f"{1 << fmt['gate_frac']}]")
        lengths = {len(base) for base in group["units"]}
        if len(lengths) != 1 or 0 in lengths:
            raise BitstreamError(f"{where}: every base needs the same, non-zero number of units")
        for k, base in enumerate(group["units"]):
            cin, h, w = group_in, size[0], size[1]
            for j, unit in enumerate(base):
                name = f"{where}, base {k}, unit {j}"
                shape = np.asarray(unit["weights"]).shape
                if len(shape) != 2 or shape[1] != 9 * cin:
                    raise BitstreamError(f"{name}: weights of shape {shape}, expected "
                                         f"(channels, {9 * cin}) for {cin} input channels")
                cout = shape[0]
                for key in ("scale", "shift"):
                    v = np.asarray(unit[key])
                    if v.shape != (cout,):
                        raise BitstreamError(f"{name}: {v.size} {key} values for {cout} "
                                             f"channels")
                    if v.min() < _INT32[0] or v.max() > _INT32[1]:
                        raise BitstreamError(f"{name}: {key} does not fit in 32 bits")
                act = unit.get("act")
                if act is not None:
                    bits = _int(act.get("bits"), f"{name}'s activation bits")
                    if not 2 <= bits <= 8:
                        raise BitstreamError(f"{name}: {bits}-bit activations; the hardware "
                                             f"takes 2 to 8 bits (binary ones: act None)")
                    if not 0 < _int(act.get("mult"), f"{name}'s activation multiplier") \
                            <= _INT32[1]:
                        raise BitstreamError(f"{name}: activation multiplier {act['mult']} is "
                                             f"not a positive 32-bit integer")
                    if not 0 <= _int(act.get("frac"), f"{name}'s activation fraction") <= 24:
                        raise BitstreamError(f"{name}: {act['frac']} fractional bits of the "
                                             f"activation multiplier; 0 to 24 are supported")
                d = _int(unit["dilation"], f"{name}'s dilation")
                if d < 1 or 2 * d + 1 > min(h, w) + 2 * d:
                    raise BitstreamError(f"{name}: dilation {d} is not usable")
                stride = _int(unit.get("stride", 1), f"{name}'s stride")
                if stride not in (1, 2):
                    raise BitstreamError(f"{name}: stride {stride}; units take 1 or 2")
                if stride == 2 and (h % 2 or w % 2):
                    raise BitstreamError(f"{name}: a stride-2 unit needs an even map, not "
                                         f"{h}x{w}")
                sc = unit.get("shortcut")
                if (sc is not None) != (stride != 1 or cin != cout):
                    raise BitstreamError(f"{name}: a down-sampling shortcut belongs to a unit "
                                         f"that strides or changes the channels (stride "
                                         f"{stride}, {cin} -> {cout} channels)")
                if sc is not None:
                    if np.asarray(sc["weights"]).shape != (cout, cin) or \
                            np.asarray(sc["bias"]).shape != (cout,):
                        raise BitstreamError(f"{name}: shortcut of shapes "
                                             f"{np.asarray(sc['weights']).shape} and "
                                             f"{np.asarray(sc['bias']).shape}, expected "
                                             f"{(cout, cin)} and {(cout,)}")
                    for key in ("weights", "bias"):
                        v = np.asarray(sc[key])
                        if v.min() < _INT32[0] or v.max() > _INT32[1]:
                            raise BitstreamError(f"{name}: shortcut {key} do not fit in 32 "
                                                 f"bits")
                cin, h, w = cout, h // stride, w // stride
            outs.add((cin, h, w))
        if len(outs) != 1:
            raise BitstreamError(f"{where}: its bases end in different shapes {sorted(outs)}")
        group_in, size = cin, (h, w)
        outs = set()
    return spec


def groupnet_section(spec):
    """``(manifest section, tensors)`` of a validated spec."""
    tensors, groups = {}, []
    for g, group in enumerate(spec["groups"]):
        tensors[f"g{g}.lambda"] = np.asarray(group["lambdas"], dtype=np.int32)
        bases = []
        for k, base in enumerate(group["units"]):
            units = []
            for j, unit in enumerate(base):
                prefix = f"g{g}.b{k}.u{j}"
                tensors[f"{prefix}.weight"] = pack_bits(np.asarray(unit["weights"]))
                tensors[f"{prefix}.scale"] = np.asarray(unit["scale"], dtype=np.int32)
                tensors[f"{prefix}.shift"] = np.asarray(unit["shift"], dtype=np.int32)
                act, sc = unit.get("act"), unit.get("shortcut")
                if sc is not None:
                    tensors[f"{prefix}.sc_weight"] = np.asarray(sc["weights"], dtype=np.int32)
                    tensors[f"{prefix}.sc_bias"] = np.asarray(sc["bias"], dtype=np.int32)
                w = np.asarray(unit["weights"])
                units.append({"prefix": prefix, "dilation": int(unit["dilation"]),
                              "act": None if act is None else
                              {k: int(act[k]) for k in ("bits", "mult", "frac")},
                              "stride": int(unit.get("stride", 1)), "cout": int(w.shape[0]),
                              "cin": int(w.shape[1] // 9), "shortcut": sc is not None})
            bases.append(units)
        groups.append({"gate": None if group["gate"] is None else int(group["gate"]),
                       "lambdas": f"g{g}.lambda", "units": bases})
    section = {"kind": "groupnet", "format": dict(spec["format"]), "height": spec["height"],
               "width": spec["width"], "channels": spec["channels"],
               "config": spec.get("config", {}), "groups": groups,
               "unit": "sat(x + shift + round_shift(scale * max(2P - 9C, 0), scale_frac - frac)); "
                       "with act: max(sum w q, 0), q = clip(round_shift(x * mult, frac + "
                       "act.frac), 0, 2^bits - 1)"}
    return section, tensors


def groupnet_from_section(section, tensors, path):
    """The spec back from a manifest section and the file's tensors."""
    def tensor(name):
        if name not in tensors:
            raise BitstreamError(f"{path}: the manifest names tensor {name!r} but the file "
                                 f"has none")
        return tensors[name]

    c = section["channels"]
    groups = []
    for group in section["groups"]:
        bases = []
        for base in group["units"]:
            units = []
            for unit in base:
                packed = tensor(f"{unit['prefix']}.weight")
                cin, cout = unit.get("cin", c), unit.get("cout", c)
                if packed.shape != (cout, (9 * cin + 7) // 8):
                    raise BitstreamError(f"{path}: {unit['prefix']}: the manifest says {cin} "
                                         f"-> {cout} channels but the weight tensor is "
                                         f"{'x'.join(map(str, packed.shape))}")
                sc = None
                if unit.get("shortcut"):
                    sc = {"weights": tensor(f"{unit['prefix']}.sc_weight").astype(np.int64),
                          "bias": tensor(f"{unit['prefix']}.sc_bias").astype(np.int64)}
                units.append({"weights": unpack_bits(packed, 9 * cin),
                              "scale": tensor(f"{unit['prefix']}.scale").astype(np.int64),
                              "shift": tensor(f"{unit['prefix']}.shift").astype(np.int64),
                              "dilation": unit["dilation"], "act": unit.get("act"),
                              "stride": unit.get("stride", 1), "shortcut": sc})
            bases.append(units)
        groups.append({"gate": group["gate"],
                       "lambdas": tensor(group["lambdas"]).astype(np.int64), "units": bases})
    return {"format": section["format"], "height": section["height"],
            "width": section["width"], "channels": c, "config": section.get("config", {}),
            "groups": groups}
