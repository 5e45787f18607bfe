"""The demo pipeline end to end, at a tiny size (the real demo is `magnipath demo`)."""

import json

from magnipath.cli import main
from magnipath.cli.demo import STRICT_EXIT
from qupath_bridge.geojson import read_geojson


def test_demo_runs_end_to_end_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--size", "4096", "--n-train", "2",
                 "--epochs", "2", "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    # every stage wrote what it says it wrote
    assert (out / "dataset" / "manifest.json").exists()
    assert (out / "model" / "model_card.json").exists()
    assert summary["dataset"]["n_tiles"] > 0
    m = summary["metrics"]
    assert 0.0 <= m["mean_iou"] <= 1.0 and set(m["iou"]) >= {"TLS", "Carcinoma", "Stroma"}
    objs = read_geojson(summary["objects"]["geojson"])  # valid QuPath GeoJSON, maybe empty
    assert all(o.classification in ("TLS", "Carcinoma") for o in objs)
    assert summary["qupath"]["written"] in (True, False)
    assert set(summary["timings_s"]) >= {"synth_s", "tile_s", "train_s", "infer_s", "total_s"}
    # the epoch budget, not the time cap, ended training
    assert summary["training"] == {**summary["training"], "epochs": 2, "epochs_done": 2,
                                   "stopped_by_time_cap": False}
    assert "note" not in summary["training"]
    # the demo's own summary file, and the text form ends with the results
    assert json.loads((out / "summary.json").read_text())["metrics"] == m
    assert main(["demo", "--out", str(out), "--size", "4096", "--n-train", "2",
                 "--epochs", "1", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"full summary (JSON): {out / 'summary.json'}"
    assert lines[1].startswith("MagniPath demo finished in ")
    assert lines[2].startswith("IoU on the held-out slide: ") and "mIoU" in lines[2]
    assert lines[-1].startswith("training: 1 of 1 epochs in ")


def test_demo_says_when_the_time_cap_cut_training_and_strict_fails(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--size", "4096", "--n-train", "2", "--epochs", "5",
                 "--train-seconds", "0.01", "--strict", "--quiet"])
    assert code == STRICT_EXIT
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("training stopped by the time cap after 1 of 5 epochs; results will "
                           "be lower; rerun with --train-seconds ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"]["stopped_by_time_cap"] is True
    assert summary["training"]["suggested_train_seconds"] >= 60
