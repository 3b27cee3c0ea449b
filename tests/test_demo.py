"""The demo flow end to end on a small configuration (the full run is `make demo`)."""

import json

import pytest

from bnnforge.demo import run_demo


@pytest.mark.parametrize("simulator", ["icarus"])
def test_small_demo(tmp_path, simulator):
    report = run_demo(out_dir=tmp_path / "demo", simulator=simulator, epochs=4, images=24,
                      hidden=(32,), target_cycles=16, clock_mhz=100.0)
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert (tmp_path / "demo" / "report.md").read_text().startswith("# bnnforge demo")
    assert report["images"] == 24 and report["mismatches"] == 0
    assert report["accuracy"]["hardware"] == report["accuracy"]["golden"]
    assert report["simulator"] == simulator
    for layer in report["layers"]:
        assert set(layer) >= {"name", "pe", "simd", "cycles_measured", "cycles_model"}
        # Measured alone at its output handshakes: each layer keeps to its model.
        assert layer["cycles_measured"] == layer["cycles_model"]
        assert layer["latency_alone"] == layer["latency_alone_model"]
        assert layer["busy_per_vector"] == layer["cycles_model"]
    assert report["layer_mismatches"] == 0
    assert report["cycles_per_image"] == max(l["cycles_model"] for l in report["layers"])
    assert report["hw_seconds_per_image"] == report["cycles_per_image"] / 100e6
    # Nothing was placed: the clock is a target and the report says so.
    assert report["clock"]["source"] == "target" and report["clock"]["mhz"] == 100.0
    md = (tmp_path / "demo" / "report.md").read_text()
    assert ("| hardware at 100 MHz (a target clock, not achieved: no design was placed and "
            "routed; --synth measures the Fmax) |") in md
    soft = report["software"]
    assert soft["torch_seconds_per_image"] > 0 and soft["numpy_bitpacked_seconds_per_image"] > 0
    assert report["speedup_vs_numpy_bitpacked"] == pytest.approx(
        soft["numpy_bitpacked_seconds_per_image"] / report["hw_seconds_per_image"])


def test_a_layer_slower_than_its_model_shows(tmp_path, monkeypatch):
    """A layer whose hardware takes twice the cycles its model claims (the model is made to
    claim half): measured alone at its output handshakes it shows the factor of two, the other
    layer keeps to its model, and the report says which layer is slow."""
    from hw.mvtu import MVTU

    real = MVTU.cycles_per_vector.fget
    monkeypatch.setattr(MVTU, "cycles_per_vector", property(
        lambda self: real(self) // 2 if self.name == "fc1" else real(self)))
    report = run_demo(out_dir=tmp_path / "demo", simulator="icarus", epochs=1, images=8,
                      hidden=(32,), target_cycles=16, clock_mhz=100.0)
    fc0, fc1 = report["layers"]
    assert fc0["ratio"] == 1.0
    assert fc1["cycles_model"] == 8 and fc1["cycles_measured"] == 16 and fc1["ratio"] == 2.0
    md = (tmp_path / "demo" / "report.md").read_text()
    assert ("**fc1 is slower than its model: 16.00 cycles per vector measured, 8 modelled.**"
            in md)
    assert "fc0 is slower" not in md


@pytest.mark.long
def test_small_demo_with_synthesis(tmp_path):
    """--synth: the design is generated for ECP5, simulated bit-exact with its carry cells,
    placed and routed; the report gives resources and the achieved Fmax, and the hardware time
    per image uses that Fmax."""
    report = run_demo(out_dir=tmp_path / "demo", simulator="icarus", epochs=2, images=12,
                      hidden=(32,), target_cycles=16, clock_mhz=100.0, synth=True)
    assert report["mismatches"] == 0 and report["family"] == "ecp5"
    s = report["synth"]
    assert "error" not in s, s
    assert s["part"] == "LFE5U-85F" and s["lut4"] > 0 and s["ff"] > 0 and s["ccu2c"] > 0
    assert (s["placer"], s["router"]) == ("heap", "router1")      # nextpnr's defaults
    assert 50 < s["fmax_mhz"] < 1000 and s["freq_target_mhz"] == 100.0
    assert report["hw_clock_mhz"] == s["fmax_mhz"]
    assert report["hw_seconds_per_image"] == report["cycles_per_image"] / (s["fmax_mhz"] * 1e6)
    assert s["hw_seconds_per_image_at_fmax"] == report["hw_seconds_per_image"]
    md = (tmp_path / "demo" / "report.md").read_text()
    assert "## Resources and Fmax (`--synth`)" in md
    assert f"| network top | LFE5U-85F | {s['lut4']} | {s['ccu2c']} | {s['ff']} |" in md
    assert report["clock"] == {
        "mhz": s["fmax_mhz"], "source": "placed", "part": "LFE5U-85F", "target_mhz": 100.0,
        "note": f"Fmax of the design placed and routed on the LFE5U-85F (nextpnr "
                f"{s['tools']['nextpnr']}, speed grade 6, out of context, seed {s['seed']}, "
                f"the best of seeds 1: {s['fmax_by_seed'][1]:.1f}, "
                f"2: {s['fmax_by_seed'][2]:.1f} MHz)"}
    assert (f"| hardware at {s['fmax_mhz']:.4g} MHz (Fmax of the design placed and routed on "
            f"the LFE5U-85F") in md
    assert s["fmax_mhz"] == max(s["fmax_by_seed"].values())
    assert f"MHz)) | {report['hw_seconds_per_image']:.3e} | 1 |" in md
