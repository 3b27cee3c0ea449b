import json

from bnnforge.study import run_csign_study


def test_small_csign_study(tmp_path):
    report = run_csign_study(out_dir=tmp_path / "s", seeds=(0,), epochs=2, hidden=(16,),
                             networks=("mlp", "groupnet"), groupnet_epochs=1)
    saved = json.loads((tmp_path / "s" / "report.json").read_text())
    assert [(r["network"], r["binarizer"]) for r in saved["runs"]] == [
        ("mlp", "sign"), ("mlp", "csign"), ("groupnet", "sign"), ("groupnet", "csign")]
    for run in saved["runs"]:
        assert set(run) >= {"binarizer", "network", "seed", "flip_rate_per_epoch",
                            "test_accuracy_float", "test_accuracy_integer"}
        assert len(run["flip_rate_per_epoch"]) == (2 if run["network"] == "mlp" else 1)
        assert all(0 <= v <= 1 for e in run["flip_rate_per_epoch"] for v in e.values())
    assert (tmp_path / "s" / "flip_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["summary"]["mlp/csign"]["mean_flip_rate"] >= 0
