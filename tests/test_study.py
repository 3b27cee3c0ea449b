import json

from bnnforge.study import run_csign_study


def test_small_csign_study(tmp_path):
    """Two seeds, two Deltas, both networks, one epoch: every run's rows, per-layer flip rates,
    the summary's spreads and a verdict row per network and Delta, the plot and report.md."""
    report = run_csign_study(out_dir=tmp_path / "s", seeds=(0, 1), epochs={"mlp": 2, "cnn": 1},
                             hidden=(16,), networks=("mlp", "cnn"), deltas=(0.1, 0.5))
    saved = json.loads((tmp_path / "s" / "report.json").read_text())
    assert len(saved["runs"]) == 2 * (2 + 2 * 2)
    assert {(r["network"], r["binarizer"], r["delta"]) for r in saved["runs"]} == {
        (n, "sign", None) for n in ("mlp", "cnn")} | {
        (n, "csign", d) for n in ("mlp", "cnn") for d in (0.1, 0.5)}
    for run in saved["runs"]:
        layers = run["flip_rate_per_layer"]
        assert list(layers) == (["fc0", "fc1"] if run["network"] == "mlp"
                                else ["l0", "l1", "l2", "l3"])
        assert all(len(v) == run["epochs"] and all(0 <= x <= 1 for x in v)
                   for v in layers.values())
        mean = sum(sum(v) for v in layers.values()) / (len(layers) * run["epochs"])
        assert abs(run["mean_flip_rate"] - mean) < 1e-12
    s = saved["summary"]["mlp/csign/delta=0.1"]
    flips = [r["mean_flip_rate"] for r in saved["runs"]
             if r["network"] == "mlp" and r["delta"] == 0.1]
    assert abs(s["mean_flip_rate"]["mean"] - sum(flips) / 2) < 1e-12
    assert [(v["network"], v["delta"]) for v in saved["verdict"]["rows"]] == [
        ("mlp", 0.1), ("mlp", 0.5), ("cnn", 0.1), ("cnn", 0.5)]
    for v in saved["verdict"]["rows"]:
        assert v["fewer_flips"]["result"] in ("holds", "reversed",
                                              "no difference beyond the spread")
    md = (tmp_path / "s" / "report.md").read_text()
    assert "## Verdict" in md and "| mlp | 0.1 |" in md
    assert (tmp_path / "s" / "flip_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["verdict"] == saved["verdict"]
